// Helpers for the daemon-level operations tests: plain HTTP GETs against a daemon's ops
// endpoint (from the switch namespace, where the test process lives), a small parser for the
// Prometheus text format, and a way to start a daemon on a bed node with extra environment
// and without waiting for readiness (bed.start() always waits for the "ready:" line).
import { request } from 'node:http';
import { isReadyLine, type Daemon, type LogRecord } from '../harness/daemon.js';
import type { Bed } from '../daemon/bed.js';

/** The ops endpoint's port in every test here; each daemon binds its own node's LAN address. */
export const HTTP_PORT = 9466;

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One GET on a fresh connection (no keep-alive: nothing lingers after a test). */
export function get(host: string, path: string, timeoutMs = 3000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port: HTTP_PORT, path, method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${host}:${HTTP_PORT}${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The body of /status (src/daemon/status.ts), as far as these tests read it. */
export interface StatusJson {
  version: string;
  commit: string;
  runtime: { node: string; embedded: boolean };
  startedAt: string;
  /** The first entry's fields stand at the top level too (name, config, leader, dcs, vip, transitions). */
  name: string;
  config: Record<string, unknown>;
  leader: { value: string | null; revision: string; isThisNode: boolean; connected: boolean; lastAnswerAt: string; leaseSecondsLeft: number | null } | null;
  dcs: { reachable: boolean; unreachableSince: string | null; lastError: string | null };
  vip: { held: boolean; heldSince: string | null; ready: boolean | null; detail: string | null };
  transitions: Array<{ direction: string; cause: string; reason: string; value: string | null; revision: string | null; at: string; reactionMs: number | null; tookMs: number }>;
  /** One object per VIP entry, in configuration order. */
  vips: Array<Pick<StatusJson, 'name' | 'config' | 'leader' | 'dcs' | 'vip' | 'transitions'>>;
}

export async function getJson<T = unknown>(host: string, path: string): Promise<{ status: number; json: T; body: string }> {
  const r = await get(host, path);
  return { status: r.status, json: JSON.parse(r.body) as T, body: r.body };
}

/** The error code of a GET that must fail (e.g. ECONNREFUSED), or throws if it succeeded. */
export async function getError(host: string, path: string): Promise<string> {
  try {
    const r = await get(host, path);
    throw new Error(`GET ${path} unexpectedly answered HTTP ${r.status}`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === undefined) throw e;
    return code;
  }
}

/** A parsed Prometheus exposition: every sample with its labels. */
export class Samples {
  readonly rows: Array<{ name: string; labels: Record<string, string>; value: number }> = [];

  constructor(readonly text: string) {
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
      if (!m) throw new Error(`unparseable metrics line: ${line}`);
      const labels: Record<string, string> = {};
      for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
      const raw = m[3]!;
      const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
      this.rows.push({ name: m[1]!, labels, value });
    }
  }

  /** The value of the sample with exactly these labels, or undefined when there is none. */
  find(name: string, labels: Record<string, string> = {}): number | undefined {
    const want = Object.entries(labels);
    const row = this.rows.find((r) => r.name === name && Object.keys(r.labels).length === want.length
      && want.every(([k, v]) => r.labels[k] === v));
    return row?.value;
  }

  /** Like find(), but the sample must exist. */
  value(name: string, labels: Record<string, string> = {}): number {
    const v = this.find(name, labels);
    if (v === undefined) throw new Error(`no sample ${name}${JSON.stringify(labels)} in:\n${this.text.split('\n').filter((l) => l.startsWith('vip_manager')).join('\n')}`);
    return v;
  }

  /** A labelled counter that has not been incremented yet has no series: count it as 0. */
  counter(name: string, labels: Record<string, string> = {}): number {
    return this.find(name, labels) ?? 0;
  }
}

export async function metrics(host: string): Promise<Samples> {
  const r = await get(host, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered HTTP ${r.status}: ${r.body}`);
  return new Samples(r.body);
}

/** Scrapes until `check` holds (the values change a moment after the log line says so). */
export async function metricsUntil(host: string, what: string, check: (s: Samples) => boolean, timeoutMs = 5000): Promise<Samples> {
  const start = performance.now();
  for (;;) {
    const s = await metrics(host);
    if (check(s)) return s;
    if (performance.now() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last scrape:\n${s.text.split('\n').filter((l) => l.startsWith('vip_manager')).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** GETs /status until `check` holds. */
export async function statusUntil(host: string, what: string, check: (s: StatusJson) => boolean, timeoutMs = 5000): Promise<StatusJson> {
  const start = performance.now();
  for (;;) {
    const { json } = await getJson<StatusJson>(host, '/status');
    if (check(json)) return json;
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last /status:\n${JSON.stringify(json, null, 2)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface SpawnOptions {
  /** Extra flags after the bed's usual ones. */
  extra?: string[];
  env?: Record<string, string>;
  /** Wait for the "ready:" line (the first DCS answer applied); default true. */
  waitReady?: boolean;
}

/** Starts vip-manager on bed node i as bed.start() does, plus `extra` flags and `env`. */
export function spawnOn(bed: Bed, i: 0 | 1, opts: SpawnOptions = {}): Promise<Daemon> {
  return bed.start(i, opts.extra ?? [], { env: opts.env, waitReady: opts.waitReady });
}

export { isReadyLine };
export const isHttpListening = (r: LogRecord): boolean => r.msg === 'HTTP endpoint listening';
