// dcs-endpoints as the Go original's clients read them. etcd's Go client takes an endpoint
// without a scheme (`10.0.0.1:2379`) and, because the original always hands it a TLS config,
// dials it with TLS: such an endpoint is https:// here too, and --check-config shows it so.
// The original's Consul and Patroni clients need a URL (Consul's refuses `host:port`, Patroni's
// prepends nothing and every poll fails), so there an endpoint without a scheme is refused.
import * as v from 'valibot';
import { quote } from './show.js';

/** `host:port` or `[v6]:port`, nothing else: what etcd's Go client dials as a bare address. */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

function hasUserinfo(s: string): boolean {
  try {
    const u = new URL(s);
    return u.username !== '' || u.password !== '';
  } catch {
    return false;
  }
}

export const isHostPort = (s: string): boolean => !s.includes('://') && HOST_PORT.test(s) && Number(HOST_PORT.exec(s)![2]) <= 65535;

/** The per-element check; which form is allowed for which dcs-type is decided by resolveDcsEndpoints. */
export const dcsEndpoint = v.pipe(
  v.string(),
  v.check((s) => isHttpUrl(s) || isHostPort(s), 'expected an http:// or https:// URL (etcd also takes host:port)'),
  // A user or password in the URL never reaches the DCS (it would be taken for part of the host
  // name) and would be printed wherever the endpoint is: the credentials have keys of their own.
  // Where both fail ("ftp://u:p@h"), the loader reports the first issue only: the one above.
  v.check((s) => !hasUserinfo(s), 'expected no user or password in the URL: put the user in etcd-user and the password in etcd-password or VIP_ETCD_PASSWORD (consul: consul-token)'),
);

/**
 * The endpoints with the scheme the original would use, or the one-line problem naming the key.
 * `where` says where the value came from (for the message).
 */
export function resolveDcsEndpoints(dcsType: unknown, endpoints: unknown, where: string): { endpoints?: string[]; problem?: string } {
  if (!Array.isArray(endpoints)) return {};
  const bare = (endpoints as string[]).filter(isHostPort);
  if (bare.length === 0) return {};
  if (dcsType === 'etcd') return { endpoints: (endpoints as string[]).map((e) => (isHostPort(e) ? `https://${e}` : e)) };
  return {
    problem: `dcs-endpoints: ${quote(bare[0]!)} from ${where} is not valid; expected an http:// or https:// URL (only etcd endpoints may omit the scheme)`,
  };
}
