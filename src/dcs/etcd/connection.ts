// The one etcd client a daemon keeps, whatever number of keys and prefixes it watches: one
// member in use at a time (endpoints.ts), one TCP connection to it (grpc-js shares one
// subchannel between the KV, Watch and Lease services of a client, because they are built with
// the same credentials object and options), and one gRPC watch stream (etcd3's WatchManager
// attaches every watcher of a client to a single stream). Sources register here; what is
// shared is decided here, once for all of them:
//   - the start-up warnings about TLS files and mixed schemes (one line, not one per source);
//   - the silent-connection check (tcp.ts): when the connection the watches ride on goes
//     quiet, ONE serializable count_only Range proves it alive for every source; if it gets no
//     answer, the connection is closed and every source watching on it fails at once (an
//     unreachable view each) and re-reads.
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../log.js';
import { buildEtcdClient, effectiveEtcdHosts, type EtcdClientOptions } from './client.js';
import type { EndpointHealth } from './endpoints.js';
import { EtcdSourceError } from './errors.js';
import type { SuspectConnection, TcpLiveness } from './tcp.js';

/**
 * How long a suspect connection (tcp.ts) has to answer a serializable Range. etcd answers
 * it from the member's memory without raft or disk, in about a millisecond on a LAN; 300 ms
 * leaves room for one TCP retransmission at Linux's minimum RTO (200 ms), so a single lost
 * packet is not reported as an outage. A healthy link is never suspected (the kernel answers
 * keepalive probes however busy etcd is), so this deadline only ever meets a lossy or dead one.
 * Silent partition noticed within SUSPECT_MS + CONFIRM_MS = 1.55 s of the last sign of life.
 */
export const CONFIRM_MS = 300;

/** host:port of an endpoint URL, as grpc-js names the channel's target. */
export function hostPort(endpoint: string): string {
  return endpoint.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
}

/** What a source offers the silent-connection check while it has a watch open. */
export interface WatchingProbe {
  /** A key the source may read (the check's Range reads it, count only). */
  readonly key: Buffer;
  /** Fails the source's current session (bound to it: a later session is not touched). */
  fail(error: Error): void;
}

/** A source using the connection. */
export interface ConnectionUser {
  /** Non-null while the source's watch is open (or being opened) on the connection. */
  watchingProbe(): WatchingProbe | null;
}

export class EtcdConnection {
  readonly client: Etcd3;
  readonly health: EndpointHealth;
  readonly liveness: TcpLiveness;
  private readonly users = new Set<ConnectionUser>();
  private closed = false;

  /** Reads the TLS files now: a missing file is a configuration error (thrown), not an outage. */
  constructor(readonly opts: EtcdClientOptions, private readonly log: Logger) {
    const built = buildEtcdClient(opts, (e, target) => {
      log.warn({ err: e.message, target }, 'etcd: cannot turn on TCP keepalive for this connection; a silent peer is noticed by gRPC keepalive only (about 8 s)');
    });
    built.liveness.setConfirm((c) => this.confirmAlive(c));
    const { secure, hosts } = effectiveEtcdHosts(opts.endpoints);
    if ((opts.caFile || opts.certFile) && !secure) {
      log.warn({ endpoints: opts.endpoints }, 'etcd: TLS files are set but the endpoints are http://; they are not used');
    }
    if (opts.endpoints.some((e) => (secure ? e.startsWith('http://') : !e.startsWith('http://')))) {
      // etcd's Go client (the original's) does the same: one transport, from the first endpoint.
      log.warn({ endpoints: hosts }, `etcd: dcs-endpoints mix schemes; every endpoint is dialled with the first one's (${secure ? 'https' : 'http'}), as in the original`);
    }
    this.client = built.client;
    this.health = built.endpoints;
    this.liveness = built.liveness;
  }

  /** The endpoint calls currently go to (the member that last answered). */
  get endpoint(): string | undefined {
    return this.health.current;
  }

  /** Adds a source; the returned function removes it. */
  register(user: ConnectionUser): () => void {
    this.users.add(user);
    return () => {
      this.users.delete(user);
    };
  }

  /** Closes the client (every channel, every stream). Sources must be closed first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.liveness.stop();
    this.client.close();
  }

  /** A connection heard nothing for SUSPECT_MS: prove it alive with one cheap call, or fail every watch on it. */
  private confirmAlive(c: SuspectConnection): Promise<boolean> {
    const current = this.health.current;
    const probes = [...this.users].map((u) => u.watchingProbe()).filter((p): p is WatchingProbe => p !== null);
    // Not the member being watched (an idle connection to another one), or no watch to lose:
    // close it; the next call dials afresh.
    if (probes.length === 0 || current === undefined || hostPort(current) !== c.target) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      let settled = false;
      const settle = (alive: boolean, error?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!alive) {
          c.close();
          const e = error instanceof Error ? error : new EtcdSourceError('unavailable', `etcd at ${current} went silent: nothing received for ${c.silentMs} ms (TCP keepalive unanswered) and no answer to a read within ${CONFIRM_MS} ms; network cut or packets dropped?`, current);
          // Every watch rides on this connection (one stream): all of them are lost.
          for (const p of probes) p.fail(e);
        } else {
          this.log.debug({ endpoint: current, silentMs: c.silentMs, watches: probes.length }, 'etcd: a keepalive probe went unanswered, but the member answered a read');
        }
        resolve(alive);
      };
      const timer = setTimeout(() => settle(false), CONFIRM_MS);
      this.client.kv
        .range({ key: probes[0]!.key, serializable: true, count_only: true })
        // Answered by another member (etcd3 failed over): the watched one is still silent.
        .then(() => settle(this.health.current === current), (e: unknown) => settle(false, e));
    });
  }
}
