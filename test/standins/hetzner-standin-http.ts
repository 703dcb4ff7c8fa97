// Shared plumbing of the Hetzner stand-ins: a real HTTP server on 127.0.0.1 (port 0), or an
// HTTPS one on any address (the daemon refuses http:// API URLs except on loopback), a log of
// every request with its clock time, scripted faults, and a count of requests held on purpose
// (hanging, answered later on the clock, or answered when a provider-side job finishes) for the
// Driver's notion of "quiet".
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { type AddressInfo } from 'node:net';
import { type Clock } from '../../src/vip/hetzner/clock.js';

export interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  readonly at: number;
  readonly body: string;
  status?: number;
  /** The client went away before it was answered (a held request it gave up on). */
  abandoned?: boolean;
  /** When (clock time) it went away, if it did. */
  goneAt?: number;
}

/** A scripted answer that replaces the normal one. */
export type Fault =
  | { readonly kind: 'reply'; readonly status: number; readonly body: unknown; readonly headers?: Record<string, string> }
  /** Raw text body (for malformed JSON). */
  | { readonly kind: 'raw'; readonly status: number; readonly text: string; readonly contentType?: string }
  /** Never answer; the client must give up by itself. */
  | { readonly kind: 'hang' };

export interface Reply {
  status: number;
  body?: unknown;
  text?: string;
  contentType?: string;
  headers?: Record<string, string>;
  /** Answer only after this much fake time (the request is held meanwhile). */
  delayMs?: number;
}

/**
 * The answer once a job the provider runs has finished (a Robot failover switch). The job runs
 * to its end whether or not the client is still waiting: the request only waits for it.
 */
export interface Deferred {
  readonly deferred: Promise<Reply>;
}

export type Handler = (req: LoggedRequest, headers: IncomingMessage['headers']) => Reply | 'hang' | Deferred;

/** A server certificate (PEM text) for an HTTPS stand-in, e.g. from test/harness/tls.ts. */
export interface StandinTls {
  readonly cert: string;
  readonly key: string;
}

export class StandinServer {
  parked = 0;
  readonly log: LoggedRequest[] = [];
  #server: Server;
  #url = '';
  readonly #tls: boolean;

  constructor(
    /** A FakeClock for unit tests, or realClock for end-to-end tests with real daemons. */
    private readonly clock: Clock,
    private readonly handler: Handler,
    tls?: StandinTls,
  ) {
    this.#tls = tls !== undefined;
    this.#server = tls
      ? createTlsServer({ cert: tls.cert, key: tls.key }, (req, res) => this.#onRequest(req, res))
      : createServer((req, res) => this.#onRequest(req, res));
  }

  get url(): string {
    return this.#url;
  }

  /** Listens on a free port of `host` (default 127.0.0.1). */
  async listen(host = '127.0.0.1'): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, host, resolve));
    const addr = this.#server.address() as AddressInfo;
    const h = host.includes(':') ? `[${host}]` : host;
    this.#url = `${this.#tls ? 'https' : 'http'}://${h}:${addr.port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Requests logged with `method` at fake times in [from, to). */
  count(method: string, from = -Infinity, to = Infinity, pathPrefix = ''): number {
    return this.log.filter((r) => r.method === method && r.at >= from && r.at < to && r.path.startsWith(pathPrefix)).length;
  }

  /** The most requests (of `method`, or all) seen in any window of `windowMs`. */
  maxInWindow(windowMs: number, method?: string): number {
    const ts = this.log.filter((r) => method === undefined || r.method === method).map((r) => r.at);
    let best = 0;
    let lo = 0;
    for (let hi = 0; hi < ts.length; hi++) {
      while ((ts[hi] as number) - (ts[lo] as number) >= windowMs) lo++;
      best = Math.max(best, hi - lo + 1);
    }
    return best;
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry: LoggedRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        at: this.clock.now(),
        body: Buffer.concat(chunks).toString('utf8'),
      };
      this.log.push(entry);
      let reply: Reply | 'hang' | Deferred;
      try {
        reply = this.handler(entry, req.headers);
      } catch (err) {
        reply = { status: 500, text: `stand-in bug: ${(err as Error).message}` };
      }
      if (reply === 'hang') {
        this.#hold(res, () => this.#gone(entry));
        return;
      }
      if ('deferred' in reply) {
        const release = this.#hold(res, () => this.#gone(entry));
        void reply.deferred.then((r) => {
          entry.status = r.status;
          release();
          send(res, r);
        });
        return;
      }
      const r = reply;
      entry.status = r.status;
      if (r.delayMs !== undefined && r.delayMs > 0) {
        const handle = this.clock.setTimeout(() => {
          release();
          send(res, r);
        }, r.delayMs);
        const release = this.#hold(res, () => {
          this.#gone(entry);
          this.clock.clearTimeout(handle);
        });
        return;
      }
      send(res, r);
    });
  }

  #gone(entry: LoggedRequest): void {
    entry.abandoned = true;
    entry.goneAt = this.clock.now();
  }

  /** Counts `res` as held until it is answered or the client goes away; returns the un-hold. */
  #hold(res: ServerResponse, onClientGone: () => void): () => void {
    this.parked++;
    let held = true;
    const release = (): void => {
      if (held) {
        held = false;
        this.parked--;
      }
    };
    res.on('close', () => {
      if (held) onClientGone();
      release();
    });
    return release;
  }
}

function send(res: ServerResponse, r: Reply): void {
  if (res.destroyed) return;
  const headers: Record<string, string> = { ...(r.headers ?? {}) };
  let payload = '';
  if (r.text !== undefined) {
    payload = r.text;
    headers['Content-Type'] = r.contentType ?? 'text/plain';
  } else if (r.body !== undefined) {
    payload = JSON.stringify(r.body);
    headers['Content-Type'] = 'application/json';
  }
  res.writeHead(r.status, headers);
  res.end(payload);
}

/** Turns a fault into a reply for the stand-in handlers. */
export function faultReply(f: Fault): Reply | 'hang' {
  if (f.kind === 'hang') return 'hang';
  if (f.kind === 'raw') return { status: f.status, text: f.text, contentType: f.contentType ?? 'application/json' };
  return { status: f.status, body: f.body, headers: f.headers };
}
