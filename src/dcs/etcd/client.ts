// Builds the etcd client the sources use (gateway.ts): every endpoint, user/password, TLS with
// the server certificate verified as the Go original verifies it (tls-trust.ts), fast TCP
// keepalive on every connection (tcp.ts), etcd's require-leader on every call, a deadline on
// every unary call, and failover that sticks to one member (endpoints.ts).
import { readFileSync } from 'node:fs';
import { EndpointHealth } from './endpoints.js';
import { EtcdGateway } from './gateway.js';
import { TcpLiveness } from './tcp.js';
import { clientSecureContext, readTlsFiles } from '../tls-trust.js';

export { REQUEST_TIMEOUT_MS } from './gateway.js';

/**
 * While a watch is open, nothing heard from the member for this long (no answer, no watch line)
 * makes the connection send one serializable count-only Range to it. A silent network is
 * noticed much sooner by TCP keepalive (tcp.ts); this is for a member whose kernel still
 * answers but whose etcd process does not (frozen, swapped out, stuck), which gRPC's HTTP/2
 * pings used to catch. Lease queries (lease-check-interval below this) make the probe
 * unnecessary; without a lease it costs one request every 5.5 s (0.18/s).
 */
export const KEEPALIVE_TIME_MS = 5500;
/**
 * How long that Range may take. etcd answers it from the member's memory, without raft or
 * disk, in about a millisecond; 2.5 s only passes for a member that stopped working: a frozen
 * member is noticed within KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS = 8 s, as with gRPC pings.
 */
export const KEEPALIVE_TIMEOUT_MS = 2500;

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

export interface EtcdClient {
  readonly gateway: EtcdGateway;
  /** Which member calls stick to and which ones failed lately. */
  readonly endpoints: EndpointHealth;
  /** Watches every connection for a silent peer; its owner decides about suspects. */
  readonly liveness: TcpLiveness;
}

/**
 * Which scheme every endpoint is dialled with. etcd's Go client (the original's) picks the
 * transport once, from the first endpoint: http:// is plain, https:// (or no scheme, given the
 * original always passes a TLS config) is TLS, and the other endpoints' schemes are ignored.
 */
export function effectiveEtcdHosts(endpoints: readonly string[]): { secure: boolean; hosts: string[] } {
  const secure = !(endpoints[0] ?? '').startsWith('http://');
  const scheme = secure ? 'https://' : 'http://';
  return { secure, hosts: endpoints.map((e) => scheme + e.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')) };
}

/** Builds the client. Throws EtcdConfigFileError when a TLS file cannot be read, DcsTlsConfigError when it cannot be used. */
export function buildEtcdClient(opts: EtcdClientOptions, onLivenessError?: (e: Error, target: string) => void): EtcdClient {
  if (Boolean(opts.certFile) !== Boolean(opts.keyFile)) {
    throw new Error(opts.certFile ? 'etcd-cert-file requires etcd-key-file' : 'etcd-key-file requires etcd-cert-file');
  }
  const { secure, hosts } = effectiveEtcdHosts(opts.endpoints);
  // Read (and checked) even for plain endpoints: a missing file is a configuration error.
  const material = readTlsFiles(opts, readFile);
  const secureContext = secure ? clientSecureContext(material) : undefined;
  const liveness = new TcpLiveness(onLivenessError);
  const health = new EndpointHealth(hosts);
  const gateway = new EtcdGateway({ endpoints: hosts, secure, secureContext, user: opts.user, password: opts.password, health, liveness });
  return { gateway, endpoints: health, liveness };
}
