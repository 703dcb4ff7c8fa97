// The operations endpoint: /metrics (Prometheus), /healthz (the daemon's loops are alive),
// /readyz (the DCS has answered at least once), /status (JSON for humans and scripts).
// Everything it reports comes from callbacks, so this file knows nothing about the daemon's
// internals and can be tested with fakes. Read-only: GET and HEAD, nothing else.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import { formatListenAddress, parseListenAddress, type ListenAddress } from './listen-address.js';
import type { Metrics } from './metrics.js';
import { toSafeJson } from './redact.js';

/** What /healthz and /readyz report. `detail` is shown to the caller as is: no secrets. */
export interface Check {
  ok: boolean;
  detail?: unknown;
}

export interface OpsHttpOptions {
  /** `http-enabled`: when false nothing listens and start()/close() do nothing. */
  enabled: boolean;
  /** `http-listen`: host:port or [v6]:port; port 0 picks a free one (tests). */
  listen: string;
  metrics: Pick<Metrics, 'render' | 'contentType' | 'error' | 'hasDcsAnswered'>;
  /** Liveness of the daemon's loops, e.g. the reconcile loop's last heartbeat is recent. */
  health: () => Check;
  /** Readiness; defaults to "the DCS has answered at least once" from `metrics`. */
  ready?: () => Check;
  /**
   * The body of /status; secrets under secret-looking keys are masked regardless, and registered
   * secret values are scrubbed out of every string (ops/redact.ts).
   */
  status: () => unknown;
  logger?: Logger;
}

export interface OpsHttp {
  readonly enabled: boolean;
  /** Resolves once listening; rejects with an HttpListenError naming the address. */
  start(): Promise<void>;
  /** Resolves once the server and every connection are closed. */
  close(): Promise<void>;
  /** The bound address (with the real port), or null when not listening. */
  address(): ListenAddress | null;
}

export class HttpListenError extends Error {
  readonly code: string | undefined;
  constructor(address: string, cause: NodeJS.ErrnoException) {
    const why = cause.code === 'EADDRINUSE' ? 'the address is already in use (another vip-manager instance? pick another http-listen)'
      : cause.code === 'EADDRNOTAVAIL' ? 'no local interface has this address'
        : cause.code === 'EACCES' ? 'permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)'
          : cause.message;
    super(`cannot serve HTTP on ${address}: ${cause.code ?? 'error'}: ${why}; fix http-listen or set http-enabled to false`, { cause });
    this.name = 'HttpListenError';
    this.code = cause.code;
  }
}

// Bounds that keep a slow or hostile client from holding the endpoint: requests are tiny.
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_HEADERS = 50;
const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';
const ALLOWED_METHODS = 'GET, HEAD';
/**
 * The largest /status body served. The status board bounds every field, so a real document is
 * a few tens of KB; past this something unbounded slipped in, and a short error is served
 * instead of making every caller (and the event loop that serialises it) pay for it.
 */
export const MAX_STATUS_BYTES = 256 * 1024;

type Route = (res: ServerResponse) => Promise<void>;

class DisabledOpsHttp implements OpsHttp {
  readonly enabled = false;
  async start(): Promise<void> {}
  async close(): Promise<void> {}
  address(): ListenAddress | null {
    return null;
  }
}

class OpsHttpServer implements OpsHttp {
  readonly enabled = true;
  private readonly server: Server;
  private readonly where: ListenAddress;
  private readonly routes: ReadonlyMap<string, Route>;
  private listening = false;

  constructor(private readonly opts: OpsHttpOptions) {
    this.where = parseListenAddress(opts.listen);
    const ready = opts.ready ?? (() => ({
      ok: opts.metrics.hasDcsAnswered(),
      detail: opts.metrics.hasDcsAnswered() ? 'the DCS has answered' : 'waiting for the first DCS answer',
    }));
    this.routes = new Map<string, Route>([
      ['/metrics', (res) => this.serveMetrics(res)],
      ['/healthz', async (res) => this.serveCheck(res, opts.health())],
      ['/readyz', async (res) => this.serveCheck(res, ready())],
      ['/status', async (res) => this.serveStatus(res)],
    ]);
    this.server = createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: HEADERS_TIMEOUT_MS }, (req, res) => {
      void this.handle(req, res);
    });
    this.server.maxHeadersCount = MAX_HEADERS;
    // A malformed request must cost us a closed socket, never an 'error' on the server.
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  start(): Promise<void> {
    const shown = formatListenAddress(this.where);
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(new HttpListenError(shown, err));
      this.server.once('error', onError);
      this.server.listen({ host: this.where.host, port: this.where.port }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.opts.logger?.error({ err }, 'HTTP endpoint error'));
        this.listening = true;
        this.opts.logger?.info({ address: formatListenAddress(this.address() ?? this.where) }, 'HTTP endpoint listening');
        resolve();
      });
    });
  }

  close(): Promise<void> {
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    return new Promise((resolve, reject) => {
      this.server.close((err) => (err ? reject(err) : resolve()));
      // Idle keep-alive connections (Prometheus keeps one) would otherwise hold close() open.
      this.server.closeAllConnections();
    });
  }

  address(): ListenAddress | null {
    const a = this.server.address() as AddressInfo | string | null;
    if (!this.listening || a === null || typeof a === 'string') return null;
    return { host: a.address, port: a.port };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    const path = (req.url ?? '/').split('?', 1)[0] as string;
    const route = this.routes.get(path);
    if (!route) return send(res, 404, TEXT_TYPE, `not found: try /metrics, /healthz, /readyz or /status\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', ALLOWED_METHODS);
      return send(res, 405, TEXT_TYPE, `method ${req.method} not allowed: use GET or HEAD\n`);
    }
    try {
      await route(res);
    } catch (err) {
      // The error text stays in the log; the caller learns only that it failed.
      this.opts.metrics.error('http');
      this.opts.logger?.error({ err, path }, 'HTTP endpoint handler failed');
      if (!res.headersSent) send(res, 500, TEXT_TYPE, 'internal error, see the vip-manager log\n');
      else res.destroy();
    }
  }

  private async serveMetrics(res: ServerResponse): Promise<void> {
    send(res, 200, this.opts.metrics.contentType, await this.opts.metrics.render());
  }

  private serveCheck(res: ServerResponse, check: Check): void {
    const body = { status: check.ok ? 'ok' : 'unavailable', detail: check.detail ?? null };
    send(res, check.ok ? 200 : 503, JSON_TYPE, toSafeJson(body) + '\n');
  }

  private async serveStatus(res: ServerResponse): Promise<void> {
    const body = toSafeJson(await this.opts.status(), 2) + '\n';
    const bytes = Buffer.byteLength(body, 'utf8');
    if (bytes <= MAX_STATUS_BYTES) return send(res, 200, JSON_TYPE, body);
    this.opts.metrics.error('http');
    this.opts.logger?.error({ bytes, limit: MAX_STATUS_BYTES }, 'the /status document grew past its bound; serving an error instead');
    send(res, 500, JSON_TYPE, toSafeJson({ error: `status document too large (${bytes} bytes, limit ${MAX_STATUS_BYTES}); see the vip-manager log` }) + '\n');
  }
}

/** Node leaves out the body of a HEAD response by itself; Content-Length stays truthful. */
function send(res: ServerResponse, status: number, type: string, body: string): void {
  const bytes = Buffer.from(body, 'utf8');
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': bytes.length });
  res.end(bytes);
}

/** The endpoint for `http-enabled`/`http-listen`; a do-nothing one when disabled. */
export function createOpsHttp(opts: OpsHttpOptions): OpsHttp {
  return opts.enabled ? new OpsHttpServer(opts) : new DisabledOpsHttp();
}
