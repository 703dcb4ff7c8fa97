// A small HTTP(S) client for the DCS sources that speak HTTP (Consul, Patroni REST): a list of
// endpoints with failover to the next when one cannot answer, explicit timeouts per request
// (a short one for connecting, so a dead endpoint is left quickly, and one for the whole
// answer), and TLS from the etcd-* files verified as the Go original verifies (tls-trust.ts).
//
// Built on node:http/node:https rather than the global fetch: Node 20's fetch takes neither a
// per-request CA nor a client certificate without importing undici's Agent, and undici is not
// a direct dependency. node:https takes `ca`, `cert` and `key` on an Agent, and its socket
// events let us time the connect phase separately from the (possibly long) blocking answer.
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import { clientSecureContext, readTlsFiles, type TlsFiles } from './tls-trust.js';

export { DcsTlsConfigError, type TlsFiles } from './tls-trust.js';

export type EndpointFailureKind =
  | 'refused' | 'connect-timeout' | 'response-timeout' | 'tls' | 'dns' | 'network' | 'rejected';

/** One endpoint could not serve one request. */
export class EndpointError extends Error {
  constructor(
    readonly endpoint: string,
    readonly kind: EndpointFailureKind,
    message: string,
    options?: ErrorOptions & { reusedSocket?: boolean; code?: string },
  ) {
    super(`${displayEndpoint(endpoint)}: ${message}`, options);
    this.name = 'EndpointError';
    this.reusedSocket = options?.reusedSocket ?? false;
    this.code = options?.code;
  }
  readonly reusedSocket: boolean;
  readonly code: string | undefined;
}

/** No endpoint could serve the request; `failures` has one entry per endpoint tried. */
export class AllEndpointsFailedError extends Error {
  constructor(readonly failures: readonly EndpointError[]) {
    super(failures.length === 1 ? failures[0]!.message
      : `no endpoint answered: ${failures.map((f) => f.message).join('; ')}`, { cause: failures[0] });
    this.name = 'AllEndpointsFailedError';
  }
}

/** Thrown by request() after close() or when the caller's signal aborts it. */
export class RequestAbortedError extends Error {
  constructor() {
    super('request aborted');
    this.name = 'RequestAbortedError';
  }
}

/**
 * An endpoint as it may appear in logs and errors: without user:password (an endpoint URL may
 * carry basic-auth credentials, which Node sends; they must not reach the journal).
 */
export function displayEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

/** Query parameters in order; a null value is sent as a bare flag (`?consistent`). */
export type Query = ReadonlyArray<readonly [string, string | null]>;

/**
 * `endpoint` + `path` (+ query) without a doubled or missing slash: 'http://h:8008/' +
 * '/leader' → 'http://h:8008/leader'. A base path on the endpoint is kept
 * ('https://h/consul/' + 'v1/kv/k' → 'https://h/consul/v1/kv/k'). `path` must be encoded.
 */
export function joinUrl(endpoint: string, path: string, query: Query = []): URL {
  const url = new URL(endpoint);
  // A query written into the path is kept as given (Patroni's '/replica?lag=16MB' works as a
  // trigger-key in the Go original, which concatenates endpoint and key).
  const q = path.indexOf('?');
  const rawQuery = q >= 0 ? path.slice(q + 1) : '';
  const pathOnly = q >= 0 ? path.slice(0, q) : path;
  const base = url.pathname.replace(/\/+$/, '');
  const rest = pathOnly.replace(/^\/+/, '');
  url.pathname = `${base}/${rest}`;
  const built = query.map(([k, v]) => (v === null ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`));
  url.search = [rawQuery, ...built].filter((part) => part !== '').join('&');
  url.hash = '';
  return url;
}

export interface HttpAnswer {
  /** The endpoint that answered, in its displayable form (displayEndpoint: no credentials). */
  readonly endpoint: string;
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** At most maxBodyBytes of the body; `truncated` says whether more was drained and dropped. */
  readonly body: Buffer;
  readonly truncated: boolean;
}

export interface HttpRequest {
  method?: 'GET' | 'PUT' | 'DELETE';
  /** Encoded path below the endpoint. */
  path: string;
  query?: Query;
  /** Deadline for the whole answer, from the moment the request starts. */
  timeoutMs: number;
  /** Body bytes kept; the rest is read and dropped so the connection can be reused. */
  maxBodyBytes: number;
  /**
   * Decides whether an HTTP answer means "this endpoint cannot serve now" (e.g. Consul's
   * 500 "No cluster leader"): return the reason to fail over to the next endpoint.
   */
  rejectAnswer?: (answer: HttpAnswer) => string | null;
  /** Aborts this request alone (RequestAbortedError), e.g. to restart a parked blocking query. */
  signal?: AbortSignal;
}

export interface FailoverHttpClientOptions {
  endpoints: readonly string[];
  tls: TlsFiles;
  /** Sent with every request (e.g. X-Consul-Token). Never logged. */
  headers?: Readonly<Record<string, string>>;
  /** TCP connect (plus TLS handshake for https) must finish within this. */
  connectTimeoutMs: number;
  log: Logger;
}

// TLS verification failures carry OpenSSL's reason as the error code; these are the ones a
// wrong or missing etcd-ca-file (or a certificate for another name) produces.
const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED', 'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE', 'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH',
]);

function httpsAgentOptions(files: TlsFiles): https.AgentOptions {
  // One context for every connection. node:https sends no SNI for an IP host by itself.
  return { keepAlive: true, secureContext: clientSecureContext(readTlsFiles(files), files.alsoDefaultRoots) };
}

function classify(endpoint: string, err: NodeJS.ErrnoException, reusedSocket: boolean, caFile: string | undefined): EndpointError {
  const code = err.code ?? '';
  const opts = { cause: err, reusedSocket, code };
  if (code === 'ECONNREFUSED') return new EndpointError(endpoint, 'refused', 'connection refused', opts);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new EndpointError(endpoint, 'dns', `cannot resolve host (${code})`, opts);
  // A plain HTTP server answering our ClientHello: OpenSSL cannot parse its reply as a record.
  const notTls = /wrong version number|packet length too long/.exec(err.message);
  if (notTls) {
    return new EndpointError(endpoint, 'tls', `TLS handshake failed: the server does not speak TLS (${notTls[0]}); write http:// for a plain endpoint`, opts);
  }
  if (TLS_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_')) {
    const hint = caFile ? `is ${caFile} (etcd-ca-file) the CA that signed the server certificate?`
      : 'set etcd-ca-file to the CA that signed the server certificate';
    return new EndpointError(endpoint, 'tls', `TLS verification failed: ${err.message} (${code}); ${hint}`, opts);
  }
  return new EndpointError(endpoint, 'network', `${err.message}${code ? ` (${code})` : ''}`, opts);
}

export class FailoverHttpClient {
  private readonly endpoints: readonly string[];
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgent: https.Agent;
  private readonly closing = new AbortController();
  private preferred = 0;

  /** Throws DcsTlsConfigError when a configured TLS file cannot be read. */
  constructor(private readonly opts: FailoverHttpClientOptions) {
    if (opts.endpoints.length === 0) throw new Error('at least one endpoint is required');
    this.endpoints = [...opts.endpoints];
    this.httpsAgent = new https.Agent(httpsAgentOptions(opts.tls));
  }

  /** The endpoint the next request goes to first (the last one that answered). */
  get currentEndpoint(): string {
    return this.endpoints[this.preferred]!;
  }

  /**
   * Tries the endpoints in turn, starting with the one that answered last, until one answers
   * (and `rejectAnswer` accepts it). Throws AllEndpointsFailedError or RequestAbortedError.
   */
  async request(req: HttpRequest): Promise<HttpAnswer> {
    const failures: EndpointError[] = [];
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (this.preferred + i) % this.endpoints.length;
      const endpoint = this.endpoints[idx]!;
      let answer: HttpAnswer;
      try {
        answer = await this.requestEndpoint(endpoint, req);
      } catch (e) {
        if (e instanceof RequestAbortedError) throw e;
        failures.push(e as EndpointError);
        continue;
      }
      const rejected = req.rejectAnswer?.(answer) ?? null;
      if (rejected !== null) {
        failures.push(new EndpointError(endpoint, 'rejected', rejected));
        continue;
      }
      if (idx !== this.preferred) {
        this.opts.log.info({ endpoint: displayEndpoint(endpoint), previous: displayEndpoint(this.currentEndpoint) }, 'switched to another DCS endpoint');
        this.preferred = idx;
      }
      return answer;
    }
    throw new AllEndpointsFailedError(failures);
  }

  /** Aborts requests in flight and closes kept-alive connections. */
  close(): void {
    this.closing.abort();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private async requestEndpoint(endpoint: string, req: HttpRequest): Promise<HttpAnswer> {
    try {
      return await this.requestOnce(endpoint, req);
    } catch (e) {
      // A kept-alive connection the server closed while idle fails the first write with a
      // reset; Node's documentation recommends retrying once on a fresh connection.
      if (e instanceof EndpointError && e.reusedSocket && e.kind === 'network') return this.requestOnce(endpoint, req);
      throw e;
    }
  }

  private requestOnce(endpoint: string, req: HttpRequest): Promise<HttpAnswer> {
    if (this.closing.signal.aborted || req.signal?.aborted) return Promise.reject(new RequestAbortedError());
    const url = joinUrl(endpoint, req.path, req.query);
    const secure = url.protocol === 'https:';
    const caFile = this.opts.tls.caFile;
    return new Promise<HttpAnswer>((resolve, reject) => {
      let settled = false;
      let connectTimer: NodeJS.Timeout | undefined;
      const timers: NodeJS.Timeout[] = [];
      const onAbort = () => finish(new RequestAbortedError());
      const finish = (err: Error | null, answer?: HttpAnswer) => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        if (connectTimer) clearTimeout(connectTimer);
        this.closing.signal.removeEventListener('abort', onAbort);
        req.signal?.removeEventListener('abort', onAbort);
        if (err) {
          r.destroy();
          reject(err);
        } else {
          resolve(answer!);
        }
      };
      const r = (secure ? https : http).request(url, {
        method: req.method ?? 'GET',
        agent: secure ? this.httpsAgent : this.httpAgent,
        headers: { accept: 'application/json', ...this.opts.headers },
      });
      this.closing.signal.addEventListener('abort', onAbort);
      req.signal?.addEventListener('abort', onAbort);
      timers.push(setTimeout(() => finish(new EndpointError(endpoint, 'response-timeout',
        `no answer within ${req.timeoutMs} ms`, { reusedSocket: r.reusedSocket })), req.timeoutMs));
      r.on('socket', (sock: Socket) => {
        if (!sock.connecting) return; // a kept-alive connection: nothing to time
        connectTimer = setTimeout(() => finish(new EndpointError(endpoint, 'connect-timeout',
          `could not connect within ${this.opts.connectTimeoutMs} ms`)), this.opts.connectTimeoutMs);
        sock.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
      });
      r.on('error', (err: NodeJS.ErrnoException) => finish(classify(endpoint, err, r.reusedSocket, caFile)));
      r.on('response', (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        let truncated = false;
        res.on('data', (chunk: Buffer) => {
          if (kept + chunk.length <= req.maxBodyBytes) {
            chunks.push(chunk);
            kept += chunk.length;
          } else {
            truncated = true; // keep reading (draining) so the connection stays reusable
          }
        });
        res.on('end', () => finish(null, {
          endpoint: displayEndpoint(endpoint), status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), truncated,
        }));
        res.on('error', (err: NodeJS.ErrnoException) => finish(classify(endpoint, err, false, caFile)));
        res.on('aborted', () => finish(new EndpointError(endpoint, 'network', 'connection closed in the middle of the answer')));
      });
      r.end();
    });
  }
}
