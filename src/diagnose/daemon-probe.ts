// Is a vip-manager daemon already running here? Asked the way an operator would: GET /status on
// the configured `http-listen` (a wildcard listen address is asked on loopback). Its answer is
// the daemon's own view (daemon/status.ts); read-only, one request, a short timeout.
import http from 'node:http';
import type { Config } from '../config/schema.js';
import { displayText } from '../dcs/leader-value.js';
import { normaliseIp } from '../net/ip.js';
import { formatListenAddress, parseListenAddress } from '../ops/listen-address.js';
import { fact, type Fact, type ForeignHolder } from './report.js';

/** Loopback answers in well under a millisecond; a daemon busy for a second is worth a WARN. */
export const DAEMON_TIMEOUT_MS = 1000;
const MAX_BODY_BYTES = 256 * 1024;

interface StatusDoc {
  version?: unknown;
  config?: { ip?: unknown; netmask?: unknown; interface?: unknown };
  leader?: { value?: unknown; isThisNode?: unknown } | null;
  vip?: { held?: unknown; conflict?: unknown };
}

export interface DaemonProbe {
  readonly fact: Fact;
  /**
   * What the running daemon reports as another host holding the VIP: `vip.conflict` of its
   * /status, `{ mac, … }` or a list of such (issue 15 part 4, the address-conflict alarm).
   * Empty when it reports none or is not running.
   */
  readonly foreign: ForeignHolder[];
}

function get(host: string, port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/status', timeout: DAEMON_TIMEOUT_MS, headers: { accept: 'application/json' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_BODY_BYTES) chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${DAEMON_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

function sameIp(a: unknown, b: string): boolean {
  try {
    return typeof a === 'string' && normaliseIp(a) === normaliseIp(b);
  } catch {
    return false;
  }
}

function conflicts(doc: StatusDoc): ForeignHolder[] {
  const raw = doc.vip?.conflict;
  const list = Array.isArray(raw) ? raw : raw ? [raw] : [];
  return list
    .filter((c): c is { mac: string } => typeof c === 'object' && c !== null && typeof (c as { mac?: unknown }).mac === 'string')
    .map((c) => ({ mac: c.mac.toLowerCase(), source: 'daemon' as const, how: 'reported by the running daemon' }));
}

export async function probeDaemon(cfg: Config): Promise<DaemonProbe> {
  const subject = 'daemon';
  if (!cfg['http-enabled']) return { fact: fact('SKIP', subject, 'not checked: http-enabled is false, so a running daemon has no endpoint to ask'), foreign: [] };
  const listen = parseListenAddress(cfg['http-listen']);
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  const url = `http://${formatListenAddress({ host, port: listen.port })}/status`;
  let answer: { status: number; body: string };
  try {
    answer = await get(host, listen.port);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ETIMEDOUT' ? `no answer within ${DAEMON_TIMEOUT_MS} ms` : (e as Error).message;
    return { fact: fact('WARN', subject, `none answers on ${url} (${why}): nothing keeps this host in step with the DCS`), foreign: [] };
  }
  let doc: StatusDoc | null = null;
  try {
    const parsed: unknown = JSON.parse(answer.body);
    if (answer.status === 200 && typeof parsed === 'object' && parsed !== null && 'vip' in parsed && 'config' in parsed) doc = parsed as StatusDoc;
  } catch { /* not ours */ }
  if (doc === null) return { fact: fact('WARN', subject, `something that is not vip-manager answers on ${url} (HTTP ${answer.status})`), foreign: [] };
  const version = typeof doc.version === 'string' ? ` ${displayText(doc.version)}` : '';
  const held = doc.vip?.held === true ? 'holds the VIP' : 'does not hold the VIP';
  const leader = typeof doc.leader?.value === 'string' ? `leader ${JSON.stringify(displayText(doc.leader.value))}` : 'leader not known yet';
  const vip = `${String(doc.config?.ip)}/${String(doc.config?.netmask)}`;
  if (!sameIp(doc.config?.ip, cfg.ip) || doc.config?.netmask !== cfg.netmask) {
    return { fact: fact('WARN', subject, `vip-manager${version} answers on ${url} but manages ${vip}, not ${cfg.ip}/${cfg.netmask} (another instance?)`), foreign: [] };
  }
  return { fact: fact('OK', subject, `vip-manager${version} runs here (${url}): ${held} (${leader})`), foreign: conflicts(doc) };
}
