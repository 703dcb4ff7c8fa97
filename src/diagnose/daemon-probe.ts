// Is a vip-manager daemon already running here? Asked the way an operator would: GET /status on
// the configured `http-listen` (a wildcard listen address is asked on loopback). Its answer is
// the daemon's own view (daemon/status.ts); read-only, one request, a short timeout. Each
// configured entry is looked up in its `vips[]` by name (by address when no name matches: a
// daemon from before several VIPs has only the top-level fields, which are its one VIP).
import http from 'node:http';
import type { Config } from '../config/schema.js';
import { displayText } from '../dcs/leader-value.js';
import { normaliseIp } from '../net/ip.js';
import { formatListenAddress, parseListenAddress } from '../ops/listen-address.js';
import { fact, type Fact, type ForeignHolder } from './report.js';

/** Loopback answers in well under a millisecond; a daemon busy for a second is worth a WARN. */
export const DAEMON_TIMEOUT_MS = 1000;
const MAX_BODY_BYTES = 256 * 1024;

/** One VIP's part of /status (daemon/status.ts StatusBoard.snapshot). */
interface VipDoc {
  name?: unknown;
  config?: { ip?: unknown; netmask?: unknown; interface?: unknown };
  leader?: { value?: unknown; isThisNode?: unknown } | null;
  vip?: { held?: unknown; conflict?: unknown };
}

/** /status: every entry under `vips`; the first one's fields also at the top level (older daemons: only there). */
interface StatusDoc extends VipDoc {
  version?: unknown;
  vips?: unknown;
}

/** What the probe compares a running daemon's VIPs with: the configured entries. */
export interface DaemonEntry {
  readonly name: string;
  readonly ip: string;
  readonly netmask: number;
}

export interface DaemonProbe {
  readonly fact: Fact;
  /**
   * Per entry name, what the running daemon reports as another host holding that VIP:
   * `vip.conflict` of its /status entry, `{ mac, … }` or a list of such (issue 15 part 4, the
   * address-conflict alarm). No entry when it reports none, does not manage it, or is not running.
   */
  readonly foreign: ReadonlyMap<string, ForeignHolder[]>;
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

function conflicts(doc: VipDoc): ForeignHolder[] {
  const raw = doc.vip?.conflict;
  const list = Array.isArray(raw) ? raw : raw ? [raw] : [];
  return list
    .filter((c): c is { mac: string } => typeof c === 'object' && c !== null && typeof (c as { mac?: unknown }).mac === 'string')
    .map((c) => ({ mac: c.mac.toLowerCase(), source: 'daemon' as const, how: 'reported by the running daemon' }));
}

/** The daemon's VIPs: `vips[]`, or for a daemon from before several VIPs the top-level fields. */
function vipDocs(doc: StatusDoc): VipDoc[] {
  if (Array.isArray(doc.vips)) return doc.vips.filter((v): v is VipDoc => typeof v === 'object' && v !== null);
  return [doc];
}

const addressOf = (v: VipDoc) => `${String(v.config?.ip)}/${String(v.config?.netmask)}`;
const sameAddress = (v: VipDoc, e: DaemonEntry) => sameIp(v.config?.ip, e.ip) && v.config?.netmask === e.netmask;
const nameOf = (v: VipDoc) => (typeof v.name === 'string' ? v.name : null);

/** The daemon's VIP for a configured entry: by name; by address when no name matches (an older daemon names none). */
function matchEntry(docs: readonly VipDoc[], e: DaemonEntry): { doc: VipDoc; same: boolean } | null {
  const byName = docs.find((v) => nameOf(v) === e.name);
  if (byName) return { doc: byName, same: sameAddress(byName, e) };
  const byAddress = docs.find((v) => sameAddress(v, e));
  return byAddress ? { doc: byAddress, same: true } : null;
}

function state(v: VipDoc): string {
  const held = v.vip?.held === true ? 'holds the VIP' : 'does not hold the VIP';
  const leader = typeof v.leader?.value === 'string' ? `leader ${JSON.stringify(displayText(v.leader.value))}` : 'leader not known yet';
  return `${held} (${leader})`;
}

/** "198.51.100.100/24 (primary), 198.51.100.101/24 (billing)": a name only where it is not the address. */
function listVips(docs: readonly VipDoc[]): string {
  if (docs.length === 0) return 'no VIP';
  return docs.map((v) => {
    const name = nameOf(v);
    return name === null || sameIp(v.config?.ip, name) ? addressOf(v) : `${addressOf(v)} (${displayText(name)})`;
  }).join(', ');
}

export async function probeDaemon(cfg: Config, entries: readonly DaemonEntry[] = [{ name: cfg.name, ip: cfg.ip, netmask: cfg.netmask }]): Promise<DaemonProbe> {
  const subject = 'daemon';
  const none = new Map<string, ForeignHolder[]>();
  if (!cfg['http-enabled']) return { fact: fact('SKIP', subject, 'not checked: http-enabled is false, so a running daemon has no endpoint to ask'), foreign: none };
  const listen = parseListenAddress(cfg['http-listen']);
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  const url = `http://${formatListenAddress({ host, port: listen.port })}/status`;
  let answer: { status: number; body: string };
  try {
    answer = await get(host, listen.port);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ETIMEDOUT' ? `no answer within ${DAEMON_TIMEOUT_MS} ms` : (e as Error).message;
    return { fact: fact('WARN', subject, `none answers on ${url} (${why}): nothing keeps this host in step with the DCS`), foreign: none };
  }
  let doc: StatusDoc | null = null;
  try {
    const parsed: unknown = JSON.parse(answer.body);
    if (answer.status === 200 && typeof parsed === 'object' && parsed !== null && 'vip' in parsed && 'config' in parsed) doc = parsed as StatusDoc;
  } catch { /* not ours */ }
  if (doc === null) return { fact: fact('WARN', subject, `something that is not vip-manager answers on ${url} (HTTP ${answer.status})`), foreign: none };
  const version = typeof doc.version === 'string' ? ` ${displayText(doc.version)}` : '';
  const docs = vipDocs(doc);
  const matches = entries.map((e) => ({ e, m: matchEntry(docs, e) }));
  const foreign = new Map<string, ForeignHolder[]>();
  for (const { e, m } of matches) if (m?.same) foreign.set(e.name, conflicts(m.doc));
  if (entries.length === 1) {
    const { e, m } = matches[0]!;
    if (!m?.same) {
      const vip = docs.length === 1 && nameOf(docs[0]!) === null ? addressOf(docs[0]!) : listVips(docs);
      return { fact: fact('WARN', subject, `vip-manager${version} answers on ${url} but manages ${vip}, not ${e.ip}/${e.netmask} (another instance?)`), foreign };
    }
    return { fact: fact('OK', subject, `vip-manager${version} runs here (${url}): ${state(m.doc)}`), foreign };
  }
  // Several entries: one line for all, each entry named, so the shared facts stay one line each.
  const parts = matches.map(({ e, m }) => {
    const name = displayText(e.name);
    if (m === null) return `${name}: not managed by it`;
    if (!m.same) return `${name}: managed as ${addressOf(m.doc)}, not ${e.ip}/${e.netmask}`;
    return `${name} ${state(m.doc)}`;
  });
  const missing = matches.some(({ m }) => !m?.same);
  const text = `vip-manager${version} runs here (${url}): ${parts.join('; ')}`
    + (missing ? ` (it manages ${listVips(docs)}: reload it after a configuration change, or is it another instance?)` : '');
  return { fact: fact(missing ? 'WARN' : 'OK', subject, text), foreign };
}
