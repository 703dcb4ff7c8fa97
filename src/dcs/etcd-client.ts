// Builds the etcd3 client the leader source uses: every endpoint, user/password, TLS with the
// server certificate verified, gRPC keepalive tuned to notice a silent peer, etcd's
// require-leader metadata on every call, and fault handling that leaves retry pacing to the
// source (etcd3's default circuit breaker would refuse calls for 5 s after etcd returns).
import { readFileSync } from 'node:fs';
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';

/**
 * HTTP/2 ping period while a call (the watch stream) is open. etcd 3.4 refuses pings closer
 * than `--grpc-keepalive-min-time` (default 5 s) and answers the third early one with GOAWAY
 * too_many_pings; grpc-js schedules the next ping this long after the previous ack, so 6 s
 * keeps a 1 s margin for timer and scheduling jitter.
 */
export const KEEPALIVE_TIME_MS = 6000;
/**
 * How long an unacknowledged ping may stay unanswered before the connection counts as dead.
 * A loaded etcd answers pings in microseconds (they bypass raft and the disk), so 3 s only
 * fires for a peer that vanished without a RST (power loss, cable cut, firewall drop).
 * Silent-peer detection: at most KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS = 9 s.
 */
export const KEEPALIVE_TIMEOUT_MS = 3000;
/**
 * Deadline of every unary call (get, lease TTL query, authenticate). Longer than a default
 * etcd leader election (1 s election timeout), so a read during an election still succeeds;
 * shorter than etcd's own 7 s request timeout, so a member that cannot reach a quorum is
 * abandoned for the next endpoint instead of being waited on.
 */
export const REQUEST_TIMEOUT_MS = 3000;

/** gRPC metadata that makes etcd refuse (unary) or cancel (streams) calls on a leaderless member. */
const REQUIRE_LEADER_KEY = 'hasleader';
const REQUIRE_LEADER_VALUE = 'true';

export interface EtcdClientOptions {
  endpoints: string[];
  user?: string | undefined;
  password?: string | undefined;
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

/** A TLS file that cannot be read: names the setting and the path. */
export class EtcdConfigFileError extends Error {
  constructor(readonly setting: string, readonly file: string, cause: unknown) {
    super(`cannot read ${setting} ${file}: ${(cause as NodeJS.ErrnoException).code ?? ''} ${(cause as Error).message}`.replace(/\s+/g, ' '));
    this.name = 'EtcdConfigFileError';
  }
}

function readFile(setting: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new EtcdConfigFileError(setting, file, e);
  }
}

/** Adds `hasleader: true` to every call's metadata (etcd's clientv3.WithRequireLeader). */
export const requireLeaderInterceptor: Interceptor = (options, nextCall) =>
  new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set(REQUIRE_LEADER_KEY, REQUIRE_LEADER_VALUE);
      next(metadata, listener);
    },
  });

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;
type GlobalPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** The property errors from a call carry: the endpoint the call went to. */
export const ENDPOINT = Symbol('etcd endpoint');

export function endpointOf(e: unknown): string | undefined {
  return e && typeof e === 'object' ? (e as { [ENDPOINT]?: string })[ENDPOINT] : undefined;
}

// etcd3 only ever calls `execute` on its policies (connection-pool.js), so these minimal
// objects stand in for cockatiel policies without a dependency on cockatiel itself.

/** Per endpoint: no circuit breaker (it blocked calls for 5 s after etcd came back); tags errors. */
function hostPolicy(endpoint: string): HostPolicy {
  const policy = {
    async execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      try {
        return await fn({ signal: new AbortController().signal });
      } catch (e) {
        if (e && typeof e === 'object' && !(ENDPOINT in e)) Object.defineProperty(e, ENDPOINT, { value: endpoint });
        throw e;
      }
    },
  };
  return policy as unknown as HostPolicy;
}

/**
 * Across endpoints: a call that fails for a connection reason (unavailable, deadline, no
 * leader) is tried once on each other endpoint at once, so one dead member costs one attempt,
 * not a backoff period. Anything beyond that is the source's retry loop.
 */
function globalPolicy(hostCount: number): GlobalPolicy {
  const policy = {
    async execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      let last: unknown;
      for (let i = 0; i < hostCount; i++) {
        try {
          return await fn({ signal: new AbortController().signal });
        } catch (e) {
          last = e;
          if (!(e instanceof Error) || !isRecoverableError(e)) throw e;
        }
      }
      throw last;
    },
  };
  return policy as unknown as GlobalPolicy;
}

/**
 * etcd3's own watch re-attach backoff. The source never lets etcd3 re-attach a watcher (it
 * discards it on the first disconnect and re-reads), so this only paces etcd3's attempt to
 * re-open an empty stream, which it then abandons.
 */
const WATCH_REATTACH_MS = 1000;
const watchBackoff = { duration: WATCH_REATTACH_MS, next: () => watchBackoff } as unknown as WatchBackoff;

/** Builds the client. Throws EtcdConfigFileError when a TLS file cannot be read. */
export function buildEtcdClient(opts: EtcdClientOptions): Etcd3 {
  const hosts = opts.endpoints;
  const secure = hosts.some((h) => h.startsWith('https:'));
  const ca = opts.caFile ? readFile('etcd-ca-file', opts.caFile) : undefined;
  const cert = opts.certFile ? readFile('etcd-cert-file', opts.certFile) : undefined;
  const key = opts.keyFile ? readFile('etcd-key-file', opts.keyFile) : undefined;
  const deadline = () => ({ deadline: Date.now() + REQUEST_TIMEOUT_MS });

  const options: IOptions = {
    hosts,
    grpcOptions: {
      'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
      // Pings only while the watch stream is open: etcd 3.4 does not permit pings without
      // a stream, and when nothing is open there is nothing to keep alive.
      'grpc.keepalive_permit_without_calls': 0,
      interceptors: [requireLeaderInterceptor],
    },
    // Unary calls get a deadline; the watch stream must not (it lives for days).
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : deadline()),
    dialTimeout: REQUEST_TIMEOUT_MS,
    faultHandling: {
      host: hostPolicy,
      global: globalPolicy(hosts.length),
      watchBackoff,
    },
  };
  if (secure && (ca || cert || key)) {
    // grpc-js falls back to the system CAs when rootCertificate is null.
    options.credentials = { rootCertificate: ca ?? (null as unknown as Buffer), ...(key ? { privateKey: key } : {}), ...(cert ? { certChain: cert } : {}) };
  }
  if (opts.user) {
    options.auth = { username: opts.user, password: opts.password ?? '', callOptions: deadline };
  }
  return new Etcd3(options);
}
