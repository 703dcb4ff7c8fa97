// gRPC channel credentials for etcd over TLS, from a SecureContext (tls-trust.ts), that send
// SNI only for host names. grpc-js's own secure credentials always set the TLS ServerName to the
// endpoint's host, so an endpoint written as an IP address (the usual way for etcd) makes Node
// print "DeprecationWarning: Setting the TLS ServerName to an IP address is not permitted by
// RFC 6066" to stderr, and sends the IP as SNI, which Go's client (the original) never does.
// Verification is unchanged: Node checks the certificate against `host` (IP SANs for an IP).
// Both credentials (TLS and plain) hand every new TCP connection to a TcpLiveness first, which
// turns on fast kernel keepalive and watches for a silent peer (etcd-tcp.ts).
import type { Socket } from 'node:net';
import { isIP } from 'node:net';
import { connect, type SecureContext } from 'node:tls';
import { CallCredentials, ChannelCredentials, experimental, type ChannelOptions } from '@grpc/grpc-js';
import type { TcpLiveness } from './tcp.js';

type GrpcUri = experimental.GrpcUri;
type SecureConnector = experimental.SecureConnector;

/** The host the server certificate must be valid for, from the channel's target. */
export function targetHost(target: GrpcUri, options: ChannelOptions): string {
  // Behind an HTTP CONNECT proxy (grpc_proxy / https_proxy) the channel's target is the proxy;
  // grpc-js keeps the server's own target in this option, as "dns:host:port".
  const proxied: unknown = options['grpc.http_connect_target'];
  const authority = typeof proxied === 'string' ? proxied.replace(/^dns:(\/\/[^/]*\/)?/, '') : target.path;
  return experimental.splitHostPort(authority)?.host ?? authority;
}

/**
 * A connection reset while our ClientHello waits for an answer is what a plain (non-TLS) etcd
 * does about as often as closing with a FIN: Go closes the connection after reading a request
 * it cannot parse, and the kernel resets it when bytes of ours are still unread. Node words the
 * FIN case "Client network socket disconnected before secure TLS connection was established"
 * but the reset case only "read ECONNRESET", which reads like an outage; say it alike (errors.ts
 * then names the scheme). Errors after the handshake never come here (the promise is settled).
 */
function handshakeError(e: NodeJS.ErrnoException): Error {
  // Node's own FIN wording carries code ECONNRESET too; it needs no rewording.
  if ((e.code !== 'ECONNRESET' && e.code !== 'EPIPE') || /before secure TLS connection/.test(e.message)) return e;
  const wrapped = new Error(`connection reset before secure TLS connection was established (${e.message})`, { cause: e });
  (wrapped as NodeJS.ErrnoException).code = e.code;
  return wrapped;
}

export class EtcdTlsCredentials extends ChannelCredentials {
  constructor(private readonly context: SecureContext, private readonly liveness?: TcpLiveness) {
    super();
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(target: GrpcUri, options: ChannelOptions, callCredentials?: CallCredentials): SecureConnector {
    const host = targetHost(target, options);
    const context = this.context;
    const perCall = callCredentials ?? CallCredentials.createEmpty();
    return {
      connect: (socket: Socket) => new Promise((resolve, reject) => {
        this.liveness?.adopt(socket, target.path);
        const tlsSocket = connect({
          socket, secureContext: context, host, ALPNProtocols: ['h2'],
          // RFC 6066: SNI carries host names only. Without servername Node verifies against host.
          ...(isIP(host) === 0 ? { servername: host } : {}),
        }, () => {
          // rejectUnauthorized (the default) already fails the handshake; this is a second lock.
          if (!tlsSocket.authorized) reject(tlsSocket.authorizationError);
          else resolve({ socket: tlsSocket, secure: true });
        });
        tlsSocket.on('error', (e: NodeJS.ErrnoException) => reject(handshakeError(e)));
      }),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => perCall,
      destroy: () => undefined,
    };
  }
}

/** Plain (http://) etcd endpoints: grpc-js's insecure credentials, plus the liveness watch. */
export class EtcdPlainCredentials extends ChannelCredentials {
  constructor(private readonly liveness?: TcpLiveness) {
    super();
  }

  _isSecure(): boolean {
    return false;
  }

  _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(target: GrpcUri, _options: ChannelOptions, callCredentials?: CallCredentials): SecureConnector {
    const perCall = callCredentials ?? CallCredentials.createEmpty();
    return {
      connect: (socket: Socket) => {
        this.liveness?.adopt(socket, target.path);
        return Promise.resolve({ socket, secure: false });
      },
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => perCall,
      destroy: () => undefined,
    };
  }
}
