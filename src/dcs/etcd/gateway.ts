// etcd's v3 API through its gRPC gateway: JSON over HTTP/1.1 on the client port, what Patroni's
// own etcd3 DCS speaks (patroni/dcs/etcd3.py). Chosen over gRPC (etcd3 + @grpc/grpc-js) for the
// idle cost: ~1 MB less code to load, ~30 MB less memory, no HTTP/2 pings, and ~1.0 ms of CPU per
// unary call instead of ~1.7 ms (design13.md).
//
// What etcd3's client did for us and is done here:
//   - the API version prefix: GET /version once per member (again after it failed), then
//     /v3alpha (cluster < 3.3), /v3beta (3.3) or /v3 (3.4+), as Patroni chooses it;
//   - require-leader: `Grpc-Metadata-hasleader: true` on every call, which the gateway hands to
//     etcd as the gRPC metadata clientv3.WithRequireLeader sets (a leaderless member refuses
//     unary calls and cancels watches with "no leader");
//   - a deadline on every unary call (REQUEST_TIMEOUT_MS, version and authentication included);
//   - user/password: POST /auth/authenticate once, the token in the Authorization header of
//     every call, and one re-authentication when etcd reports the token invalid (a restarted
//     etcd forgot it);
//   - failover (endpoints.ts): a call that fails for a connection reason is tried at once on the
//     next usable member; anything beyond that is the source's retry loop;
//   - TLS from a SecureContext (tls-trust.ts) with SNI only for host names: an endpoint written
//     as an IP address sends none (RFC 6066; Go's client, the original's, sends none either);
//   - every socket, unary or watch, is handed to TcpLiveness (tcp.ts) once connected.
// Unary calls share one keep-alive connection per member (more only while calls overlap); every
// watch has a connection of its own, because Go's HTTP/1 server reads a request's whole body
// before it answers, so one request carries exactly one create_request (watch-stream.ts).
// Proxy variables (https_proxy, grpc_proxy) are not honoured: grpc-js honoured them implicitly,
// nothing documented or tested them, and the other DCS clients (http-client.ts) never did.
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { tagEndpoint, type EndpointHealth } from './endpoints.js';
import type { TcpLiveness } from './tcp.js';

/**
 * Deadline of every unary call (get, lease TTL query, authenticate). Longer than a default
 * etcd leader election (1 s election timeout), so a read during an election still succeeds;
 * shorter than etcd's own 7 s request timeout, so a member that cannot reach a quorum is
 * abandoned for the next endpoint instead of being waited on.
 */
export const REQUEST_TIMEOUT_MS = 3000;
/**
 * The largest answer accepted (one unary body, one line of a watch stream). A prefix at its
 * limits (prefix-source.ts: 10,000 keys, 3 MiB of keys and values) is ~5.3 MB of JSON (base64
 * is 4/3 of the bytes, plus ~120 bytes of framing per key); beyond 8 MiB the answer is refused
 * unread rather than buffered.
 */
export const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** gRPC status codes (google.golang.org/grpc/codes), as the gateway reports them. */
export const GrpcCode = {
  Canceled: 1, Unknown: 2, InvalidArgument: 3, DeadlineExceeded: 4, NotFound: 5, PermissionDenied: 7,
  FailedPrecondition: 9, Unimplemented: 12, Unavailable: 14, Unauthenticated: 16,
} as const;
const CODE_BY_NAME: Record<string, number> = { ...GrpcCode, OK: 0, AlreadyExists: 6, ResourceExhausted: 8, Aborted: 10, OutOfRange: 11, Internal: 13, DataLoss: 15 };

/** etcd answered with an error: its gRPC code and message (never the request, so never a password). */
export class EtcdGatewayError extends Error {
  constructor(readonly code: number, message: string, readonly status?: number) {
    super(message);
    this.name = 'EtcdGatewayError';
  }
}

/** A call's deadline: when it passes, and how long the call was given (for the message). */
interface Deadline {
  readonly at: number;
  readonly ms: number;
}

const deadlineIn = (ms: number): Deadline => ({ at: performance.now() + ms, ms });

/** No answer within the call's deadline. */
export class EtcdDeadlineError extends Error {
  constructor(readonly ms: number) {
    super(`deadline exceeded: no answer within ${ms} ms`);
    this.name = 'EtcdDeadlineError';
  }
}

/** An answer larger than MAX_RESPONSE_BYTES (refused unread). */
export class EtcdResponseTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`answer larger than ${limit} bytes`);
    this.name = 'EtcdResponseTooLargeError';
  }
}

/** A member too old for what is asked of it. */
export class EtcdUnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EtcdUnsupportedError';
  }
}

/**
 * Whether a failure is the member's (try another one, avoid it for a while) rather than the
 * request's: anything without an answer from etcd (socket, TLS, deadline), and the answers
 * Unavailable (no leader included) and DeadlineExceeded.
 */
export function isRecoverable(e: unknown): boolean {
  if (e instanceof EtcdGatewayError) return e.code === GrpcCode.Unavailable || e.code === GrpcCode.DeadlineExceeded;
  return !(e instanceof EtcdResponseTooLargeError || e instanceof EtcdUnsupportedError);
}

/**
 * The error of a gateway answer: unary `{"error","message","code"}`, streaming
 * `{"error":{"grpc_code","http_code","message","http_status"}}` (grpc-gateway's two shapes).
 */
export function gatewayError(body: unknown, status?: number): EtcdGatewayError {
  const o = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
  const err = o.error;
  if (err && typeof err === 'object') {
    const s = err as Record<string, unknown>;
    return new EtcdGatewayError(Number(s.grpc_code ?? GrpcCode.Unknown), String(s.message ?? 'unknown error'), Number(s.http_code ?? status) || undefined);
  }
  const message = typeof o.message === 'string' ? o.message : typeof err === 'string' ? err : `HTTP ${status ?? '?'}`;
  return new EtcdGatewayError(typeof o.code === 'number' ? o.code : GrpcCode.Unknown, message, status);
}

/** A watch's cancel_reason ("rpc error: code = PermissionDenied desc = etcdserver: permission denied") as the error it names. */
export function cancelReasonError(reason: string): EtcdGatewayError | null {
  const m = /code = (\w+) desc = ([\s\S]*)$/.exec(reason);
  if (!m) return null;
  return new EtcdGatewayError(CODE_BY_NAME[m[1]!] ?? GrpcCode.Unknown, m[2]!.trim());
}

const isTokenError = (e: unknown): boolean =>
  e instanceof EtcdGatewayError && (e.code === GrpcCode.Unauthenticated || /auth store is old/.test(e.message));

export interface RangeRequest {
  key: Buffer;
  rangeEnd?: Buffer;
  limit?: number;
  serializable?: boolean;
  countOnly?: boolean;
  keysOnly?: boolean;
}

export interface KeyValue {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly mod_revision: string;
  /** Lease id, '0' without. */
  readonly lease: string;
}

export interface RangeResponse {
  readonly header: { readonly revision: string };
  readonly kvs: KeyValue[];
  readonly more: boolean;
  readonly count: string;
}

export interface CallOptions {
  /** Only this member (no failover): the liveness checks ask the member being watched. */
  endpoint?: string | undefined;
  deadlineMs?: number | undefined;
}

/** Receives one streaming answer (watch-stream.ts). At most one of error/end is called, once. */
export interface StreamSink {
  /** The member answered 200: the stream is open. */
  open(endpoint: string): void;
  data(chunk: Buffer): void;
  error(e: Error): void;
  end(): void;
}

export interface StreamHandle {
  /** Aborts the request (and its connection): etcd cancels the watch when the connection goes. */
  close(): void;
  /** The token the request was sent with (to drop it when etcd says it is invalid). */
  readonly token: string | null;
}

/** A JSON kv of a range or watch answer: bytes are base64, int64s strings, zero values omitted. */
export function decodeKv(kv: Record<string, unknown>): KeyValue {
  return {
    key: Buffer.from(String(kv.key ?? ''), 'base64'),
    value: Buffer.from(String(kv.value ?? ''), 'base64'),
    mod_revision: String(kv.mod_revision ?? '0'),
    lease: String(kv.lease ?? '0'),
  };
}

const b64 = (b: Buffer): string => b.toString('base64');

/** host and port of an endpoint URL (brackets of an IPv6 literal removed). */
function hostAndPort(endpoint: string, secure: boolean): { host: string; port: number } {
  const u = new URL(endpoint);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) || (secure ? 443 : 80) };
}

/** host:port of an endpoint URL, the name its connections are tracked under (tcp.ts). */
export function hostPort(endpoint: string): string {
  return endpoint.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/.*$/, '');
}

/**
 * A connection reset while our ClientHello waits for an answer is what a plain (non-TLS) etcd
 * does about as often as closing with a FIN: Go closes the connection after reading a request
 * it cannot parse, and the kernel resets it when bytes of ours are still unread. Node words the
 * FIN case "Client network socket disconnected before secure TLS connection was established"
 * but the reset case only "read ECONNRESET", which reads like an outage; say it alike (errors.ts
 * then names the scheme).
 */
function rewordHandshakeReset(e: NodeJS.ErrnoException): void {
  if ((e.code !== 'ECONNRESET' && e.code !== 'EPIPE') || /before secure TLS connection/.test(e.message)) return;
  e.message = `connection reset before secure TLS connection was established (${e.message})`;
}

export interface GatewayOptions {
  /** Every endpoint, with the scheme they are all dialled with (client.ts effectiveEtcdHosts). */
  endpoints: readonly string[];
  secure: boolean;
  secureContext?: tls.SecureContext | undefined;
  user?: string | undefined;
  password?: string | undefined;
  health: EndpointHealth;
  liveness: TcpLiveness;
}

type Agent = http.Agent & {
  createConnection(options: { host?: string | null; port?: number | string | null }, cb?: unknown): net.Socket;
};

export class EtcdGateway {
  /** performance.now() when anything last came from a member (an answer, a watch line). */
  lastHeard = -Infinity;
  /** Watch requests open now. */
  openStreams = 0;
  /** Called when openStreams changes (the connection's frozen-member check follows it). */
  onStreams: () => void = () => undefined;

  private token: string | null = null;
  private authenticating: Promise<string | null> | null = null;
  private readonly prefixes = new Map<string, Promise<string>>();
  private readonly unary: Agent;
  private readonly streams: Agent;
  private readonly open = new Set<http.ClientRequest>();
  private readonly addresses = new Map<string, { host: string; port: number }>();
  private closed = false;

  constructor(private readonly opts: GatewayOptions) {
    // One idle connection kept per member; unref'd while idle (an idle client must not keep a
    // closing process alive). Node's own keepSocketAlive would also call setKeepAlive(true, 1 s),
    // which on current libuv rewrites the probe count tcp.ts set: not wanted.
    this.unary = new http.Agent({ keepAlive: true, maxFreeSockets: 1, scheduling: 'lifo' }) as Agent;
    this.unary.keepSocketAlive = (socket) => {
      (socket as net.Socket).unref();
      return true;
    };
    this.streams = new http.Agent({ keepAlive: false }) as Agent;
    const connect = (o: { host?: string | null; port?: number | string | null }) => this.connect(String(o.host ?? ''), Number(o.port));
    this.unary.createConnection = connect;
    this.streams.createConnection = connect;
  }

  private address(ep: string): { host: string; port: number } {
    let a = this.addresses.get(ep);
    if (!a) {
      a = hostAndPort(ep, this.opts.secure);
      this.addresses.set(ep, a);
    }
    return a;
  }

  get health(): EndpointHealth {
    return this.opts.health;
  }

  /** A Range (linearizable unless `serializable`). */
  async range(req: RangeRequest, options: CallOptions = {}): Promise<RangeResponse> {
    const body: Record<string, unknown> = { key: b64(req.key) };
    if (req.rangeEnd) body.range_end = b64(req.rangeEnd);
    if (req.limit !== undefined) body.limit = String(req.limit);
    if (req.serializable) body.serializable = true;
    if (req.countOnly) body.count_only = true;
    if (req.keysOnly) body.keys_only = true;
    const res = (await this.call('/kv/range', body, options)) as Record<string, unknown>;
    const header = (res.header ?? {}) as Record<string, unknown>;
    const kvs = Array.isArray(res.kvs) ? (res.kvs as Record<string, unknown>[]).map(decodeKv) : [];
    return { header: { revision: String(header.revision ?? '0') }, kvs, more: res.more === true, count: String(res.count ?? '0') };
  }

  /** A lease's remaining and granted TTL in whole seconds (-1: expired, revoked or unknown). */
  async leaseTimeToLive(id: string, options: CallOptions = {}): Promise<{ ttl: number; grantedTtl: number }> {
    const res = (await this.call('/lease/timetolive', { ID: id }, options)) as Record<string, unknown>;
    return { ttl: Number(res.TTL ?? -1), grantedTtl: Number(res.grantedTTL ?? 0) };
  }

  /** One unary call: failover over the usable members (or only `options.endpoint`). */
  async call(method: string, body: unknown, options: CallOptions = {}): Promise<unknown> {
    const health = this.opts.health;
    const order = options.endpoint !== undefined ? [options.endpoint] : health.order();
    let last: unknown = new Error('no etcd endpoint to call');
    for (const ep of order) {
      if (options.endpoint === undefined && !health.allows(ep)) continue;
      try {
        const res = await this.attempt(ep, method, body, options.deadlineMs ?? REQUEST_TIMEOUT_MS);
        health.succeeded(ep);
        return res;
      } catch (e) {
        tagEndpoint(e, ep);
        if (!isRecoverable(e)) throw e;
        this.memberFailed(ep);
        last = e;
      }
    }
    throw last;
  }

  /**
   * Opens one streaming POST (a watch) on the member in use (or the first usable one): no
   * failover here; a failure goes to the sink, and the source's re-read picks the next member.
   */
  openStream(method: string, body: unknown, sink: StreamSink): StreamHandle {
    const health = this.opts.health;
    const ep = health.current ?? health.order().find((e) => health.allows(e))!;
    let req: http.ClientRequest | null = null;
    let done = false;
    const handle = { token: this.token, close: () => finish(null) };
    const finish = (e: Error | null, ended = false): void => {
      if (done) return;
      done = true;
      if (req) {
        this.open.delete(req);
        req.destroy();
        this.openStreams--;
        this.onStreams();
      }
      if (e) {
        tagEndpoint(e, ep);
        if (isRecoverable(e)) this.memberFailed(ep);
        sink.error(e);
      } else if (ended) {
        sink.end();
      }
    };
    const deadline = deadlineIn(REQUEST_TIMEOUT_MS);
    void (async () => {
      const prefix = await this.versionPrefix(ep, deadline);
      const token = await this.currentToken(ep, prefix, deadline);
      if (done) return;
      if (this.closed) throw new Error('etcd client closed');
      handle.token = token;
      req = http.request({ agent: this.streams, ...this.address(ep), method: 'POST', path: prefix + method, headers: this.headers(token) });
      this.open.add(req);
      this.openStreams++;
      this.onStreams();
      req.on('error', (e) => finish(e));
      req.on('response', (res) => {
        this.heard();
        if (res.statusCode !== 200) {
          void readBody(res).then((text) => finish(gatewayError(parseJson(text), res.statusCode)), (e: Error) => finish(e));
          return;
        }
        health.succeeded(ep);
        sink.open(ep);
        res.on('data', (chunk: Buffer) => {
          if (done) return;
          this.heard();
          sink.data(chunk);
        });
        res.on('end', () => finish(null, true));
        res.on('error', (e) => finish(e));
      });
      req.end(JSON.stringify(body));
    })().catch((e: unknown) => finish(e instanceof Error ? e : new Error(String(e))));
    return handle;
  }

  /** Forgets a token etcd called invalid (a stream's cancel), unless a newer one replaced it. */
  tokenRejected(token: string | null): void {
    if (token !== null && this.token === token) this.token = null;
  }

  /** Closes every connection and aborts every request. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const req of this.open) req.destroy();
    this.open.clear();
    this.unary.destroy();
    this.streams.destroy();
  }

  // ---- one attempt on one member ----------------------------------------------------------

  private async attempt(ep: string, method: string, body: unknown, deadlineMs: number): Promise<unknown> {
    const deadline = deadlineIn(deadlineMs);
    const prefix = await this.versionPrefix(ep, deadline);
    let token = await this.currentToken(ep, prefix, deadline);
    const send = () => this.request(ep, 'POST', prefix + method, JSON.stringify(body), token, deadline);
    try {
      return await send();
    } catch (e) {
      if (!this.opts.user || !isTokenError(e)) throw e;
      // A restarted etcd forgot every token: authenticate once more and repeat the call once.
      this.tokenRejected(token);
      token = await this.currentToken(ep, prefix, deadline);
      return await send();
    }
  }

  private memberFailed(ep: string): void {
    this.opts.health.failed(ep);
    // Asked again on the next call: the member may come back upgraded (or downgraded).
    this.prefixes.delete(ep);
  }

  /** /v3alpha, /v3beta or /v3 for this member, from its GET /version (Patroni's choice). */
  private versionPrefix(ep: string, deadline: Deadline): Promise<string> {
    let p = this.prefixes.get(ep);
    if (!p) {
      p = this.request(ep, 'GET', '/version', null, null, deadline).then((v) => {
        const o = (v ?? {}) as Record<string, unknown>;
        const parse = (s: unknown): number[] | null => (typeof s === 'string' && /^\d+\.\d+\.\d+/.test(s) ? s.split('.').map((x) => parseInt(x, 10)) : null);
        const server = parse(o.etcdserver);
        // "not_decided" while a new cluster agrees on its version: the member's own then.
        const cluster = parse(o.etcdcluster) ?? server;
        if (!server || !cluster) throw new EtcdGatewayError(GrpcCode.Unknown, `not an etcd version answer on ${ep}/version`);
        const below = (v: number[], ...w: number[]) => v[0]! !== w[0]! ? v[0]! < w[0]! : v[1]! !== w[1]! ? v[1]! < w[1]! : (v[2] ?? 0) < (w[2] ?? 0);
        if (below(server, 3, 0, 4)) throw new EtcdUnsupportedError(`etcd ${String(o.etcdserver)} at ${ep} is older than 3.0.4, the first with the v3 JSON gateway`);
        if (below(cluster, 3, 3, 0)) {
          if (this.opts.user) throw new EtcdUnsupportedError(`etcd cluster version ${String(o.etcdcluster)} at ${ep} takes no user and password over its JSON gateway (3.3 or later does)`);
          return '/v3alpha';
        }
        return below(cluster, 3, 4, 0) ? '/v3beta' : '/v3';
      });
      this.prefixes.set(ep, p);
      p.catch(() => {
        if (this.prefixes.get(ep) === p) this.prefixes.delete(ep);
      });
    }
    return p;
  }

  /** The auth token (authenticating first if there is none yet); null without a user. */
  private currentToken(ep: string, prefix: string, deadline: Deadline): Promise<string | null> {
    if (!this.opts.user) return Promise.resolve(null);
    if (this.token !== null) return Promise.resolve(this.token);
    if (!this.authenticating) {
      const body = JSON.stringify({ name: this.opts.user, password: this.opts.password ?? '' });
      this.authenticating = this.request(ep, 'POST', `${prefix}/auth/authenticate`, body, null, deadline).then(
        (res) => {
          this.authenticating = null;
          const token = (res as Record<string, unknown> | null)?.token;
          this.token = typeof token === 'string' && token !== '' ? token : null;
          return this.token;
        },
        (e: unknown) => {
          this.authenticating = null;
          // etcd with authentication off: calls go without a token (as Patroni does).
          if (e instanceof EtcdGatewayError && /authentication is not enabled/.test(e.message)) return null;
          throw e;
        },
      );
    }
    return this.authenticating;
  }

  private headers(token: string | null): Record<string, string> {
    const h: Record<string, string> = { 'Content-Type': 'application/json', 'Grpc-Metadata-hasleader': 'true' };
    if (token !== null) h.Authorization = token;
    return h;
  }

  private heard(): void {
    this.lastHeard = performance.now();
  }

  /** One HTTP exchange; a request on a reused keep-alive connection the server had just closed is sent once more. */
  private async request(ep: string, method: string, path: string, body: string | null, token: string | null, deadline: Deadline): Promise<unknown> {
    try {
      return await this.exchange(ep, method, path, body, token, deadline);
    } catch (e) {
      if ((e as { reusedSocket?: boolean }).reusedSocket && (e as NodeJS.ErrnoException).code === 'ECONNRESET' && performance.now() < deadline.at) {
        return this.exchange(ep, method, path, body, token, deadline);
      }
      throw e;
    }
  }

  private exchange(ep: string, method: string, path: string, body: string | null, token: string | null, deadline: Deadline): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('etcd client closed'));
    const ms = Math.max(1, Math.round(deadline.at - performance.now()));
    return new Promise((resolve, reject) => {
      const headers = method === 'GET' ? {} : this.headers(token);
      const req = http.request({ agent: this.unary, ...this.address(ep), method, path, headers });
      this.open.add(req);
      const timer = setTimeout(() => req.destroy(new EtcdDeadlineError(deadline.ms)), ms);
      let settled = false;
      const settle = (e: Error | null, v?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.open.delete(req);
        if (e) {
          if (req.reusedSocket) Object.defineProperty(e, 'reusedSocket', { value: true });
          reject(e);
        } else {
          resolve(v);
        }
      };
      req.on('error', (e) => settle(e));
      req.on('response', (res) => {
        readBody(res).then((text) => {
          this.heard();
          const json = parseJson(text);
          const status = res.statusCode ?? 0;
          if (status >= 400 || json === undefined) settle(gatewayError(json ?? { message: `HTTP ${status}: ${text.slice(0, 200)}` }, status));
          else settle(null, json);
        }, (e: Error) => {
          req.destroy();
          settle(e);
        });
      });
      req.end(body ?? undefined);
    });
  }

  // ---- connections --------------------------------------------------------------------------

  /** Dials one member; the TCP socket goes to TcpLiveness once connected, before TLS if any. */
  private connect(host: string, port: number): net.Socket {
    const raw = net.connect({ host, port });
    const target = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    raw.once('connect', () => this.opts.liveness.adopt(raw, target));
    if (!this.opts.secure) return raw;
    let secured = false;
    const socket = tls.connect({
      socket: raw, host, secureContext: this.opts.secureContext, ALPNProtocols: ['http/1.1'],
      // RFC 6066: SNI carries host names only. Without servername Node verifies against host.
      ...(net.isIP(host) === 0 ? { servername: host } : {}),
    });
    socket.once('secureConnect', () => {
      secured = true;
      // rejectUnauthorized (the default) already fails the handshake; this is a second lock.
      if (!socket.authorized) socket.destroy(socket.authorizationError ?? new Error('server certificate not authorized'));
    });
    // Registered before the HTTP client's listener: it sees the reworded message.
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (!secured) rewordHandshakeReset(e);
    });
    return socket;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_RESPONSE_BYTES) {
        res.destroy(new EtcdResponseTooLargeError(MAX_RESPONSE_BYTES));
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
    res.on('close', () => {
      if (!res.complete) reject(new Error('etcd closed the connection in the middle of an answer'));
    });
  });
}
