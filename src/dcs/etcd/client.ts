// Builds the etcd3 client the leader source uses: every endpoint, user/password, TLS with the
// server certificate verified as the Go original verifies it (tls-trust.ts, grpc-tls.ts), fast
// TCP keepalive on every connection (etcd-tcp.ts), gRPC keepalive for a frozen peer, etcd's
// require-leader metadata on every call, a deadline on every unary call, and fault handling
// that sticks to one member and leaves retry pacing to the source (etcd3's default circuit
// breaker would refuse calls for 5 s after etcd returns; see etcd-endpoints.ts).
import { readFileSync } from 'node:fs';
import { InterceptingCall, Metadata, type CallOptions, type ChannelCredentials, type Interceptor } from '@grpc/grpc-js';
import { castGrpcError, Etcd3, type IOptions } from 'etcd3';
import { EndpointHealth, failoverPolicy } from './endpoints.js';
import { TcpLiveness } from './tcp.js';
import { EtcdPlainCredentials, EtcdTlsCredentials } from './grpc-tls.js';
import { clientSecureContext, readTlsFiles } from '../tls-trust.js';

/**
 * HTTP/2 ping period while a call (the watch stream) is open. A silent network is noticed much
 * sooner by TCP keepalive (etcd-tcp.ts); these pings remain for a peer whose kernel still
 * answers but whose etcd process does not (frozen, swapped out, stuck). etcd 3.4 counts a ping that
 * comes sooner than `--grpc-keepalive-min-time` (default 5 s) after the previous one as a
 * strike and closes the connection (GOAWAY too_many_pings) at the third strike. grpc-js sends
 * the next ping this long after the previous ack, and Node timers can fire up to ~1 ms early,
 * so 5.5 s keeps a 0.5 s margin above etcd's minimum.
 */
export const KEEPALIVE_TIME_MS = 5500;
/**
 * How long a ping may stay unanswered before the connection counts as dead. etcd answers pings
 * from its HTTP/2 reader, outside raft and the disk, in well under a millisecond; 2.5 s only
 * fires for a peer that vanished without a RST (power loss, cable cut, firewall drop, frozen
 * process): at most KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS = 8 s.
 */
export const KEEPALIVE_TIMEOUT_MS = 2500;
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
    super(`cannot read ${setting} ${file}: ${(cause as Error).message}`);
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

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/**
 * etcd3's own watch re-attach backoff. The source never lets etcd3 re-attach a watcher (it
 * discards it on the first disconnect and re-reads), so this only paces etcd3's attempt to
 * re-open an empty stream, which it then abandons.
 */
const WATCH_REATTACH_MS = 1000;
const watchBackoff = { duration: WATCH_REATTACH_MS, next: () => watchBackoff } as unknown as WatchBackoff;

export interface EtcdClient {
  readonly client: Etcd3;
  /** Which member calls stick to and which ones failed lately. */
  readonly endpoints: EndpointHealth;
  /** Watches every connection for a silent peer; its owner decides about suspects. */
  readonly liveness: TcpLiveness;
}

/**
 * Which scheme every endpoint is dialled with. etcd's Go client (the original's) picks the
 * transport once, from the first endpoint: http:// is plain, https:// (or no scheme, given the
 * original always passes a TLS config) is TLS, and the other endpoints' schemes are ignored.
 * etcd3 uses one transport for all hosts too, so every host is written with that scheme.
 */
export function effectiveEtcdHosts(endpoints: readonly string[]): { secure: boolean; hosts: string[] } {
  const secure = !(endpoints[0] ?? '').startsWith('http://');
  const scheme = secure ? 'https://' : 'http://';
  return { secure, hosts: endpoints.map((e) => scheme + e.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')) };
}

/** The parts of etcd3's connection pool that hold the channel credentials (etcd3 1.1). */
interface PoolCredentials {
  hosts: Array<{ channelCredentials: ChannelCredentials }>;
  authenticator: { credentials: ChannelCredentials };
}

/**
 * etcd3 builds its credentials with grpc-js's createSsl from raw PEM (createInsecure for
 * http://) and offers no way to pass a SecureContext or a ChannelCredentials; it keeps them in two places (each host's channels,
 * and the authenticator's Authenticate call), both used only when a call first opens a channel.
 * Replacing both right after construction, before any call, makes every channel use ours.
 * Fails loudly if a new etcd3 moved them, rather than silently verifying differently.
 */
function installCredentials(client: Etcd3, credentials: ChannelCredentials): void {
  const pool = (client as unknown as { pool?: Partial<PoolCredentials> }).pool;
  const hosts = pool?.hosts;
  if (!pool || !Array.isArray(hosts) || !pool.authenticator || !('credentials' in pool.authenticator)
    || hosts.length === 0 || hosts.some((h) => !('channelCredentials' in h))) {
    throw new Error('etcd3 internals changed: cannot install the TLS credentials (see src/dcs/etcd/client.ts)');
  }
  for (const h of hosts) h.channelCredentials = credentials;
  pool.authenticator.credentials = credentials;
}

/** The parts of etcd3's connection pool that authenticate (etcd3 1.1). */
interface PoolAuth {
  hosts: Array<{ host: string; getServiceClient(name: string): unknown }>;
  authenticator: { getCredentialsFromHost: (address: string, name: string, password: string, callOptions: CallOptions | undefined) => Promise<string> };
}

interface AuthService {
  authenticate(req: { name: string; password: string }, md: Metadata, opts: CallOptions, cb: (err: Error | null, res?: { token: string }) => void): void;
}

/**
 * etcd3 sends Authenticate through a gRPC client of its own, built without the channel options,
 * which grpc-js therefore gives a TCP connection of its own beside the one every other call
 * shares (and never closes with the client). Sending it through the host's shared clients, as
 * every other call, keeps one connection per member. Fails loudly if a new etcd3 moved this.
 */
function shareAuthConnection(client: Etcd3): void {
  const pool = (client as unknown as { pool?: Partial<PoolAuth> }).pool;
  const hosts = pool?.hosts;
  const auth = pool?.authenticator;
  if (!Array.isArray(hosts) || !auth || typeof auth.getCredentialsFromHost !== 'function'
    || hosts.some((h) => typeof h.host !== 'string' || typeof h.getServiceClient !== 'function')) {
    throw new Error('etcd3 internals changed: cannot share the connection with Authenticate (see src/dcs/etcd/client.ts)');
  }
  auth.getCredentialsFromHost = (address, name, password, callOptions) => {
    const host = hosts.find((h) => h.host === address);
    if (!host) return Promise.reject(new Error(`etcd3: no host ${address} to authenticate with`));
    let svc: AuthService;
    try {
      svc = host.getServiceClient('Auth') as AuthService;
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return new Promise<string>((resolve, reject) => {
      svc.authenticate({ name, password }, new Metadata(), callOptions ?? {}, (err, res) => (err ? reject(castGrpcError(err)) : resolve(res!.token)));
    });
  };
}

/** Builds the client. Throws EtcdConfigFileError when a TLS file cannot be read, DcsTlsConfigError when it cannot be used. */
export function buildEtcdClient(opts: EtcdClientOptions, onLivenessError?: (e: Error, target: string) => void): EtcdClient {
  if (Boolean(opts.certFile) !== Boolean(opts.keyFile)) {
    throw new Error(opts.certFile ? 'etcd-cert-file requires etcd-key-file' : 'etcd-key-file requires etcd-cert-file');
  }
  const { secure, hosts } = effectiveEtcdHosts(opts.endpoints);
  // Read (and checked) even for plain endpoints: a missing file is a configuration error.
  const material = readTlsFiles(opts, readFile);
  const liveness = new TcpLiveness(onLivenessError);
  const credentials = secure ? new EtcdTlsCredentials(clientSecureContext(material), liveness) : new EtcdPlainCredentials(liveness);
  const deadline = () => ({ deadline: Date.now() + REQUEST_TIMEOUT_MS });
  const health = new EndpointHealth(hosts);

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
      host: (ep) => health.policyFor(ep),
      global: failoverPolicy(hosts.length),
      watchBackoff,
    },
  };
  if (opts.user) {
    options.auth = { username: opts.user, password: opts.password ?? '', callOptions: deadline };
  }
  const client = new Etcd3(options);
  installCredentials(client, credentials);
  shareAuthConnection(client);
  return { client, endpoints: health, liveness };
}
