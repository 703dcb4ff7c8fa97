// Shared by the Consul and Patroni source tests: collect views, wait for one, capture logs.
import http from 'node:http';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log.js';
import type { LeaderSource, LeaderView } from '../../src/reconcile/ports.js';

/** Every view a source reported, and a wait for one that matches. */
export interface Collected<V> {
  readonly views: V[];
  /** Resolves with the first view (already seen from `from` on, or future) matching `pred`. */
  waitFor(pred: (v: V) => boolean, timeoutMs: number, from?: number): Promise<V>;
}

export type ViewLog = Collected<LeaderView>;

/** Starts `source` and collects its views (leader views, key sets); `show` words them in a timeout's message. */
export function collect<V>(source: { start(onView: (v: V) => void): void }, show: (v: V) => string): Collected<V> {
  const views: V[] = [];
  const waiters = new Set<() => void>();
  source.start((v) => {
    views.push(v);
    for (const w of [...waiters]) w();
  });
  return {
    views,
    waitFor(pred, timeoutMs, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = views.slice(from).find(pred);
          if (found) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching view within ${timeoutMs} ms; views: ${JSON.stringify(views.map(show))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}

export function collectViews(source: LeaderSource): ViewLog {
  return collect(source, describe);
}

export function describe(v: LeaderView): string {
  return v.kind === 'value' ? `value:${v.value}@${v.revision}` : `unreachable#${v.failures}:${v.error.message}`;
}

export const isValue = (value: string | null) => (v: LeaderView) => v.kind === 'value' && v.value === value;
export const isUnreachable = (v: LeaderView) => v.kind === 'unreachable';

export interface CapturedLog {
  readonly log: Logger;
  readonly lines: Array<Record<string, unknown>>;
}

/** A debug-level JSON logger whose lines are kept for assertions. */
export function captureLog(): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger({ format: 'json', verbose: true, destination: dest }), lines };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Got { status: number; headers: http.IncomingHttpHeaders; body: string; ms: number }

/** One plain HTTP GET, timed from sending to the end of the answer. */
export function httpGet(url: string, headers: Record<string, string> = {}): Promise<Got> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http.get(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - t0 }));
    }).on('error', reject);
  });
}
