// A real Prometheus server (Debian's /usr/bin/prometheus) for the operator-kit tests: it scrapes
// the daemons of a bed and evaluates the shipped alert rules, so the rules and the dashboard's
// queries run on live data. It listens on an address of the test's own namespace, keeps its
// TSDB in a temp dir, and is killed by PID and its dir removed on dispose and on process exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../harness/etcd.js';

const PROMETHEUS = '/usr/bin/prometheus';
/** Prometheus 2.42 replays an empty TSDB and serves in about a second; a loaded box needs more. */
const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 100;

const live = new Set<{ child: ChildProcess; dir: string }>();
process.once('exit', () => {
  for (const p of live) {
    try { if (p.child.pid) process.kill(p.child.pid, 'SIGKILL'); } catch { /* gone */ }
    rmSync(p.dir, { recursive: true, force: true });
  }
});

export interface Sample { metric: Record<string, string>; value: [number, string] }

export interface PrometheusServer {
  readonly url: string;
  /** GET /api/v1/<path>: its `data`; throws unless Prometheus answers "success". */
  api<T>(path: string): Promise<T>;
  /** An instant query; throws unless Prometheus answers "success". */
  query(expr: string): Promise<Sample[]>;
  /** Queries until `check` holds on the result. */
  queryUntil(expr: string, what: string, check: (s: Sample[]) => boolean, timeoutMs?: number): Promise<Sample[]>;
  stderrTail(): string;
  dispose(): Promise<void>;
}

function get(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Starts Prometheus with `config` (prometheus.yml text) listening on `host`. */
export async function startPrometheus(host: string, config: string): Promise<PrometheusServer> {
  if (!existsSync(PROMETHEUS)) throw new Error(`this test needs ${PROMETHEUS}: apt-get install --no-install-recommends prometheus`);
  const dir = mkdtempSync(join(tmpdir(), 'vmt-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, config);
  const port = await freePort(host);
  const url = `http://${host}:${port}`;
  const child = spawn(PROMETHEUS, [
    `--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=${host}:${port}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const entry = { child, dir };
  live.add(entry);
  let tail: string[] = [];
  child.stderr!.on('data', (c: Buffer) => { tail = [...tail, ...c.toString('utf8').split('\n').filter(Boolean)].slice(-15); });
  let exited: number | null | undefined;
  const gone = new Promise<void>((r) => child.once('exit', (code) => { exited = code; r(); }));

  const dispose = async () => {
    if (exited === undefined && child.pid) {
      process.kill(child.pid, 'SIGTERM');
      await gone;
    }
    live.delete(entry);
    rmSync(dir, { recursive: true, force: true });
  };

  const start = performance.now();
  for (;;) {
    if (exited !== undefined) {
      await dispose();
      throw new Error(`prometheus exited (${exited}) before it was ready:\n${tail.join('\n')}`);
    }
    const r = await get(`${url}/-/ready`).catch(() => undefined);
    if (r?.status === 200) break;
    if (performance.now() - start > READY_TIMEOUT_MS) {
      await dispose();
      throw new Error(`prometheus not ready on ${url} after ${READY_TIMEOUT_MS} ms:\n${tail.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }

  const api = async <T>(path: string): Promise<T> => {
    const r = await get(`${url}/api/v1/${path}`);
    const body = JSON.parse(r.body) as { status: string; error?: string; data?: T };
    if (r.status !== 200 || body.status !== 'success') throw new Error(`/api/v1/${path}: HTTP ${r.status} ${body.error ?? r.body}`);
    return body.data as T;
  };
  const query = async (expr: string): Promise<Sample[]> => {
    const data = await api<{ resultType: string; result: Sample[] }>(`query?query=${encodeURIComponent(expr)}`);
    if (data.resultType !== 'vector') throw new Error(`query ${expr}: a ${data.resultType}, not an instant vector`);
    return data.result;
  };

  return {
    url,
    api,
    query,
    async queryUntil(expr, what, check, timeoutMs = 20_000) {
      const t0 = performance.now();
      for (;;) {
        const s = await query(expr);
        if (check(s)) return s;
        if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${expr} = ${JSON.stringify(s)}`);
        await new Promise((r) => setTimeout(r, POLL_MS * 2));
      }
    },
    stderrTail: () => tail.join('\n'),
    dispose,
  };
}
