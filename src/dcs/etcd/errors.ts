// Turns what the etcd client (gateway.ts) throws — an answer from etcd with its gRPC code, a
// deadline, a socket or TLS error — into one typed error with a message an operator can act on:
// which endpoint, what went wrong, and (for TLS and auth) which setting to look at.
// Messages never contain the password or the auth token (neither is ever part of an error).
import { endpointOf } from './endpoints.js';
import { EtcdDeadlineError, EtcdGatewayError, EtcdResponseTooLargeError, GrpcCode } from './gateway.js';
import { EtcdWatchLostError } from './watch-stream.js';

export type EtcdFailureReason =
  | 'auth' // wrong user or password
  | 'auth-token' // token invalidated (etcd restarted); re-authenticating fixes it
  | 'permission' // the user may not read the key
  | 'tls' // certificate verification or client certificate refused
  | 'no-leader' // the member lost its raft leader (partitioned)
  | 'timeout' // no answer within the call deadline
  | 'unavailable' // connection refused, reset, or keepalive timeout
  | 'watch' // the watch was cancelled or its stream ended
  | 'too-large' // a watched prefix holds far more than a Patroni cluster (prefix-source.ts)
  | 'other';

export class EtcdSourceError extends Error {
  constructor(readonly reason: EtcdFailureReason, message: string, readonly endpoint: string | undefined, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EtcdSourceError';
  }
}

export interface ErrorContext {
  endpoints: readonly string[];
  user?: string | undefined;
  /** What was read: a key, or "the keys under <prefix>". */
  key: string;
}

/** The cause as an operator reads it: no "Error:" prefix, OpenSSL's reason without its location. */
function detailOf(message: string): string {
  let m = message.replace(/^\w*Error:\s*/, '').replace(/\.\s*$/, '');
  // OpenSSL's "80EC05EE…:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/…"
  const ssl = /SSL routines:[^:]*:([^:]+)/.exec(m);
  if (ssl) m = ssl[1]!;
  return m.trim();
}

const TLS_PATTERN = /certificate|self[- ]signed|SSL|TLS|handshake|issuer|CERT_|ERR_TLS/i;
// A plain server answering a ClientHello: OpenSSL's parse errors, or Go's etcd simply closing
// (with a FIN: Node's "disconnected before secure TLS connection was established"; with a RST,
// which Go's close sends when our ClientHello is still unread: gateway.ts words the reset as
// "reset before secure TLS connection was established").
const NOT_TLS = /wrong version number|packet length too long|http request|before secure TLS connection/i;
const CLIENT_CERT_REFUSED = /alert bad certificate|certificate required|alert unknown ca|alert handshake failure/i;

export function describeEtcdError(e: unknown, ctx: ErrorContext): EtcdSourceError {
  if (e instanceof EtcdSourceError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const endpoint = endpointOf(err);
  const where = endpoint ?? ctx.endpoints.join(', ');
  const detail = detailOf(err.message);
  const make = (reason: EtcdFailureReason, msg: string) => new EtcdSourceError(reason, msg, endpoint, { cause: err });

  if (err instanceof EtcdGatewayError) {
    if (/authentication failed/.test(err.message)) {
      return make('auth', `etcd authentication failed for user "${ctx.user ?? ''}" at ${where}: invalid user name or password (check etcd-user / etcd-password)`);
    }
    if (err.code === GrpcCode.Unauthenticated || /auth store is old/.test(err.message)) {
      return make('auth-token', `etcd at ${where} rejected the auth token (etcd restarted?); re-authenticating`);
    }
    if (err.code === GrpcCode.PermissionDenied) {
      return make('permission', `etcd user "${ctx.user ?? ''}" may not read ${ctx.key} at ${where}: permission denied`);
    }
    if (/no leader/i.test(err.message)) {
      return make('no-leader', `etcd member ${where} has no raft leader (cut off from its cluster?): ${detail}`);
    }
    if (err.code === GrpcCode.DeadlineExceeded || /timed out|deadline exceeded/i.test(err.message)) return make('timeout', `etcd at ${where} did not answer in time: ${detail}`);
    if (err.code === GrpcCode.Unavailable) return make('unavailable', `etcd unreachable at ${where}: ${detail}`);
    return make('other', `etcd error at ${where}: ${detail}`);
  }
  if (err instanceof EtcdDeadlineError) return make('timeout', `etcd at ${where} did not answer in time: ${detail}`);
  if (err instanceof EtcdWatchLostError) return make('watch', `etcd watch on ${ctx.key} at ${where} lost: ${detail}`);
  if (err instanceof EtcdResponseTooLargeError) return make('too-large', `etcd at ${where} sent an answer for ${ctx.key} larger than ${err.limit} bytes`);
  if (NOT_TLS.test(err.message)) {
    return make('tls', `TLS handshake with ${where} failed: the server closed the connection or does not speak TLS (${detail}); for a plain etcd write http:// (an endpoint without a scheme uses TLS, as in the original)`);
  }
  if (TLS_PATTERN.test(err.message) || /^ERR_TLS|^ERR_SSL|CERT/.test((err as NodeJS.ErrnoException).code ?? '')) {
    return CLIENT_CERT_REFUSED.test(err.message)
      ? make('tls', `TLS handshake with ${where} failed: the server refused our client certificate (${detail}); check etcd-cert-file / etcd-key-file`)
      : make('tls', `certificate verify failed for ${where}: ${detail} (check etcd-ca-file)`);
  }
  if (/timed out/i.test(err.message)) return make('timeout', `etcd at ${where} did not answer in time: ${detail}`);
  if (/ECONNREFUSED|ECONNRESET|EPIPE|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|socket hang up|keepalive|went silent|closed the connection/i.test(err.message)) {
    return make('unavailable', `etcd unreachable at ${where}: ${detail}`);
  }
  return make('other', `etcd error at ${where}: ${detail}`);
}
