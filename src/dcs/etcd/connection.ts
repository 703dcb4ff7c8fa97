// The one etcd client a daemon keeps, whatever number of keys and prefixes it watches: one
// member in use at a time (endpoints.ts), one keep-alive connection to it for the unary calls,
// and one streaming request (so one connection) per watched subject (gateway.ts: Go's HTTP/1
// server takes one create_request per request). Sources register here; what is shared is
// decided here, once for all of them:
//   - the start-up warnings about TLS files and mixed schemes (one line, not one per source);
//   - the silent-connection check (tcp.ts): when a connection to the member being watched goes
//     quiet, ONE serializable count_only Range proves the member reachable for every source; if
//     it gets no answer, the connection is closed and every watching source fails at once (an
//     unreachable view each) and re-reads;
//   - the frozen-member check: while a watch is open and nothing came from the member for
//     KEEPALIVE_TIME_MS, the same Range with a KEEPALIVE_TIMEOUT_MS deadline (client.ts).
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../log.js';
import { wakeups } from '../../wakeups.js';
import { buildEtcdClient, effectiveEtcdHosts, KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS, type EtcdClientOptions } from './client.js';
import type { EndpointHealth } from './endpoints.js';
import { EtcdSourceError } from './errors.js';
import { hostPort, type EtcdGateway } from './gateway.js';
import type { SuspectConnection, TcpLiveness } from './tcp.js';

export { hostPort } from './gateway.js';

/**
 * How long a suspect connection (tcp.ts) has to answer a serializable Range. etcd answers
 * it from the member's memory without raft or disk, in about a millisecond on a LAN; 300 ms
 * leaves room for one TCP retransmission at Linux's minimum RTO (200 ms), so a single lost
 * packet is not reported as an outage. A healthy link is never suspected (the kernel answers
 * keepalive probes however busy etcd is), so this deadline only ever meets a lossy or dead one.
 * Silent partition noticed within SUSPECT_MS + CONFIRM_MS = 1.55 s of the last sign of life.
 */
export const CONFIRM_MS = 300;
/** The frozen-member check may run this much before its time, to share a wake-up (wakeups.ts). */
const FROZEN_CHECK_SLACK_MS = 500;

/** What a source offers the liveness checks while it has a watch open. */
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
  readonly gateway: EtcdGateway;
  readonly health: EndpointHealth;
  readonly liveness: TcpLiveness;
  private readonly users = new Set<ConnectionUser>();
  private closed = false;
  /** The confirming read in flight, shared by every connection suspected meanwhile. */
  private confirming: Promise<boolean> | null = null;
  private frozenProbe = false;
  private frozenScheduled = false;

  /** Reads the TLS files now: a missing file is a configuration error (thrown), not an outage. */
  constructor(readonly opts: EtcdClientOptions, private readonly log: Logger) {
    const built = buildEtcdClient(opts, (e, target) => {
      log.warn({ err: e.message, target }, 'etcd: cannot turn on TCP keepalive for this connection; a silent peer is noticed by the frozen-member check only (about 8 s)');
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
    this.gateway = built.gateway;
    this.health = built.endpoints;
    this.liveness = built.liveness;
    this.gateway.onStreams = () => this.scheduleFrozenCheck();
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

  /** Closes the client (every connection, every watch). Sources must be closed first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.liveness.stop();
    wakeups.cancel(this);
    this.gateway.close();
  }

  private probes(): WatchingProbe[] {
    return [...this.users].map((u) => u.watchingProbe()).filter((p): p is WatchingProbe => p !== null);
  }

  /** Fails every watching source: the member they watch is gone. */
  private failAll(probes: readonly WatchingProbe[], e: Error): void {
    for (const p of probes) p.fail(e);
  }

  /** A connection heard nothing for SUSPECT_MS: prove the member alive with one cheap call, or fail every watch on it. */
  private confirmAlive(c: SuspectConnection): Promise<boolean> {
    const current = this.health.current;
    const probes = this.probes();
    // Not the member being watched (an idle connection to another one), or no watch to lose:
    // close it; the next call dials afresh.
    if (probes.length === 0 || current === undefined || hostPort(current) !== c.target) return Promise.resolve(false);
    // Every connection to the member goes quiet at once in a partition: one read answers for all.
    if (this.confirming) return this.confirming;
    const confirming = this.gateway.range({ key: probes[0]!.key, serializable: true, countOnly: true }, { endpoint: current, deadlineMs: CONFIRM_MS }).then(
      () => {
        this.log.debug({ endpoint: current, silentMs: c.silentMs, watches: probes.length }, 'etcd: a keepalive probe went unanswered, but the member answered a read');
        return true;
      },
      (e: unknown) => {
        const err = e instanceof Error && !/deadline exceeded/.test(e.message)
          ? e
          : new EtcdSourceError('unavailable', `etcd at ${current} went silent: nothing received for ${c.silentMs} ms (TCP keepalive unanswered) and no answer to a read within ${CONFIRM_MS} ms; network cut or packets dropped?`, current);
        // Every watch on the member is lost: each has its own connection there.
        this.failAll(this.probes(), err);
        return false;
      },
    ).finally(() => {
      this.confirming = null;
    });
    this.confirming = confirming;
    return confirming;
  }

  // ---- frozen member ------------------------------------------------------------------------

  private scheduleFrozenCheck(): void {
    if (this.closed || this.gateway.openStreams === 0) {
      wakeups.cancel(this);
      this.frozenScheduled = false;
      return;
    }
    if (this.frozenScheduled || this.frozenProbe) return;
    this.frozenScheduled = true;
    const due = Math.max(0, this.gateway.lastHeard + KEEPALIVE_TIME_MS - performance.now());
    // Not ref'd: an open watch alone must not keep a closing process alive on this timer.
    wakeups.schedule(this, Math.max(0, due - FROZEN_CHECK_SLACK_MS), due, () => {
      this.frozenScheduled = false;
      this.frozenCheck();
    }, false);
  }

  private frozenCheck(): void {
    if (this.closed || this.gateway.openStreams === 0) return;
    const quiet = performance.now() - this.gateway.lastHeard;
    const current = this.health.current;
    if (quiet < KEEPALIVE_TIME_MS - FROZEN_CHECK_SLACK_MS || current === undefined) {
      this.scheduleFrozenCheck();
      return;
    }
    const probes = this.probes();
    if (probes.length === 0) {
      this.scheduleFrozenCheck();
      return;
    }
    this.frozenProbe = true;
    void this.gateway.range({ key: probes[0]!.key, serializable: true, countOnly: true }, { endpoint: current, deadlineMs: KEEPALIVE_TIMEOUT_MS }).then(
      () => undefined,
      (e: unknown) => {
        if (this.closed) return;
        const err = e instanceof Error && !/deadline exceeded/.test(e.message)
          ? e
          : new EtcdSourceError('unavailable', `etcd at ${current} stopped answering: nothing received for ${Math.round(quiet)} ms and no answer to a read within ${KEEPALIVE_TIMEOUT_MS} ms (member frozen or stuck?)`, current);
        this.failAll(this.probes(), err);
      },
    ).finally(() => {
      this.frozenProbe = false;
      this.scheduleFrozenCheck();
    });
  }
}
