// The etcd (v3 API) leader source: reads the trigger key once, then watches it from the
// revision after that read, so at idle the only traffic is gRPC keepalive pings plus, when the
// key has a lease, one LeaseTimeToLive call per `lease-check-interval`, plus the kernel's TCP
// keepalive probes (etcd-tcp.ts), which this process only reads about once a second.
//
// State machine (one "session" = one read plus the watch that follows it):
//
//   idle ──start()──▶ reading ──get ok──▶ watching ──watch/lease failure──▶ reading (at once,
//                       │  ▲                 │                               if the watch had been
//               get fails  │ timer           │ events → value views          confirmed for
//                       ▼  │                 │ lease TTL → deadline views    STABLE_WATCH_MS)
//                     backoff ◀──────────────┘ (otherwise: create failed, never confirmed, or
//                                                 broke right after confirmation)
//   any ──close()──▶ closed
//
//   reading:  one linearizable, require-leader Range of the key. Success emits a value view
//             (the outage, if any, ends) and opens a watch from header revision + 1, so no
//             change between the read and the watch can be missed.
//   watching: watch events emit value views in order (per watch response only the last state
//             is emitted: the reconciler keeps only the latest view anyway). The lease tracker
//             queries the key's lease TTL at once and every `lease-check-interval` ms.
//   failure:  any error (stream error/end, cancel by etcd, compaction, no leader, token
//             invalidated, lease query failure, get failure) emits an `unreachable` view
//             (since = first failure after the last success, failures = count) and discards
//             watch and lease tracker. The first re-read after a stable watch is immediate
//             (a compaction or an expired token is fixed by re-reading at once) and restarts
//             the backoff; every later attempt waits on it: `retry-num` retries `retry-after`
//             apart, then growing ×1.6 to BACKOFF_MAX_DELAY_MS, with jitter. It never gives up.
//   silence: when nothing came back on the connection the source uses for SUSPECT_MS (a TCP
//             keepalive probe unanswered), one serializable Range checks it within
//             CONFIRM_MS; no answer (or one from another member) is a failure as above, and
//             the silent connection is closed so the re-read dials afresh.
//   Every async callback carries the session number it belongs to; late answers of an
//   abandoned session are dropped, so views are never emitted out of order.
import { performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../log.js';
import { Backoff } from '../../backoff.js';
import { buildEtcdClient, effectiveEtcdHosts } from './client.js';
import type { EndpointHealth } from './endpoints.js';
import { describeEtcdError, EtcdSourceError } from './errors.js';
import type { SuspectConnection } from './tcp.js';
import { LeaseTracker, NO_LEASE, queryLeaseDeadline } from './lease.js';
import { KeyWatch, type KeyEvent } from './watch.js';
import { leaderValue, sameBytes } from '../leader-value.js';
import type { LeaderSource, LeaderValue, LeaderView } from '../../reconcile/ports.js';

/**
 * A fresh lease deadline is re-emitted only when it moved by at least this much. etcd reports
 * whole seconds, so successive readings of an untouched lease wobble by up to 1 s; every
 * reading is a sound lower bound, so keeping the previous one within that wobble is safe and
 * avoids a view every `lease-check-interval`. A real renewal (Patroni: every loop_wait = 10 s)
 * moves it by more and is reported.
 */
export const LEASE_DEADLINE_MIN_STEP_MS = 1000;
/**
 * A watch confirmed at least this long ago counts as a healthy session: when it breaks, the
 * backoff starts over and the key is re-read at once. A watch that breaks sooner keeps the
 * backoff growing, so a member that cancels every watch right away is not hammered.
 */
export const STABLE_WATCH_MS = 1000;
/**
 * How long a suspect connection (etcd-tcp.ts) has to answer a serializable Range. etcd answers
 * it from the member's memory without raft or disk, in about a millisecond on a LAN; 300 ms
 * leaves room for one TCP retransmission at Linux's minimum RTO (200 ms), so a single lost
 * packet is not reported as an outage. A healthy link is never suspected (the kernel answers
 * keepalive probes however busy etcd is), so this deadline only ever meets a lossy or dead one.
 * Silent partition noticed within SUSPECT_MS + CONFIRM_MS = 1.55 s of the last sign of life.
 */
export const CONFIRM_MS = 300;

/** host:port of an endpoint URL, as grpc-js names the channel's target. */
function hostPort(endpoint: string): string {
  return endpoint.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
}

export interface EtcdSourceOptions {
  endpoints: string[];
  triggerKey: string;
  user?: string | undefined;
  password?: string | undefined;
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** ms between the first retries (retry-after). */
  retryAfter: number;
  /** Retries at `retryAfter` before the delay grows (retry-num). */
  retryNum: number;
  /** ms between lease TTL queries (lease-check-interval). */
  leaseCheckInterval: number;
}

type State =
  | { readonly name: 'idle' }
  | { readonly name: 'reading'; readonly session: number }
  | { readonly name: 'watching'; readonly session: number; readonly watch: KeyWatch; confirmedAt: number | null }
  | { readonly name: 'backoff'; readonly session: number; readonly timer: NodeJS.Timeout }
  | { readonly name: 'closed' };

interface Outage {
  readonly since: number;
  failures: number;
}

export class EtcdLeaderSource implements LeaderSource {
  readonly kind = 'etcd' as const;
  readonly providesLeaseDeadline = true;

  private readonly client: Etcd3;
  private readonly health: EndpointHealth;
  private readonly backoff: Backoff;
  private readonly lease: LeaseTracker;
  private state: State = { name: 'idle' };
  private session = 0;
  private onView: (view: LeaderView) => void = () => undefined;
  /** The last value view emitted (the `last` of unreachable views). */
  private lastValue: LeaderValue | null = null;
  /** Lease id of the key as last seen ('0': none). */
  private keyLease = NO_LEASE;
  /** Whether lastValue.leaseDeadline comes from a TTL query (not the "unknown yet" placeholder). */
  private deadlineQueried = false;
  private outage: Outage | null = null;
  private lastFailureReason: string | undefined;

  constructor(private readonly opts: EtcdSourceOptions, private readonly log: Logger) {
    // Reads the TLS files now: a missing file is a configuration error, not an outage.
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
    this.backoff = new Backoff({ initialMs: opts.retryAfter, flatRetries: opts.retryNum });
    this.lease = new LeaseTracker((id) => queryLeaseDeadline(this.client, id), opts.leaseCheckInterval, {
      onDeadline: (id, deadline) => this.onLeaseDeadline(id, deadline),
      onError: (e) => this.fail(this.session, e),
    });
  }

  /** The endpoint calls currently go to (the member that last answered), for status and logs. */
  get endpoint(): string | undefined {
    return this.health.current;
  }

  start(onView: (view: LeaderView) => void): void {
    if (this.state.name !== 'idle') throw new Error(`EtcdLeaderSource.start() called in state ${this.state.name}`);
    this.onView = onView;
    this.log.info({ endpoints: this.opts.endpoints, key: this.opts.triggerKey, user: this.opts.user }, 'etcd: reading leader key');
    this.read();
  }

  async close(): Promise<void> {
    const prev = this.state;
    if (prev.name === 'closed') return;
    this.state = { name: 'closed' };
    this.session++;
    this.lease.stop();
    if (prev.name === 'backoff') clearTimeout(prev.timer);
    if (prev.name === 'watching') await prev.watch.close();
    this.client.close();
    this.log.debug('etcd: closed');
  }

  // ---- reading ----------------------------------------------------------------------------

  private read(): void {
    const session = ++this.session;
    this.state = { name: 'reading', session };
    const sentAt = performance.now();
    this.client.kv
      .range({ key: Buffer.from(this.opts.triggerKey) })
      .then((res) => {
        if (session !== this.session) return;
        const kv = res.kvs[0];
        const lease = kv?.lease && kv.lease !== NO_LEASE ? kv.lease : NO_LEASE;
        this.emitValue({
          // Bytes, never decoded: the comparison with trigger-value is byte for byte.
          value: kv ? kv.value : null,
          revision: kv ? kv.mod_revision : res.header.revision,
          at: sentAt,
          lease,
          forceEmit: true,
        });
        this.startWatch(session, (BigInt(res.header.revision) + 1n).toString());
      })
      .catch((e: unknown) => this.fail(session, e));
  }

  // ---- watching ---------------------------------------------------------------------------

  private startWatch(session: number, fromRevision: string): void {
    const watch = new KeyWatch(this.client, this.opts.triggerKey, fromRevision, {
      onConnected: () => {
        if (session !== this.session || this.state.name !== 'watching') return;
        this.state.confirmedAt = performance.now();
        this.log.debug({ fromRevision, endpoint: this.health.current }, 'etcd: watching leader key');
      },
      onEvents: (events, receivedAt) => {
        if (session !== this.session) return;
        this.onEvents(events, receivedAt);
      },
      onFailure: (e) => this.fail(session, e),
    });
    this.state = { name: 'watching', session, watch, confirmedAt: null };
    this.lease.track(this.keyLease);
  }

  private onEvents(events: KeyEvent[], receivedAt: number): void {
    const last = events[events.length - 1]!;
    this.emitValue({ value: last.value, revision: last.modRevision, at: receivedAt, lease: last.lease, forceEmit: false });
    if (last.lease === NO_LEASE) {
      this.lease.track(NO_LEASE);
    } else {
      this.lease.track(last.lease); // a new lease or a new value: query at once
    }
  }

  private onLeaseDeadline(leaseId: string, deadline: number): void {
    const last = this.lastValue;
    if (this.state.name !== 'watching' || !last || leaseId !== this.keyLease) return;
    const known = this.deadlineQueried ? last.leaseDeadline : null;
    if (known !== null && Math.abs(deadline - known) < LEASE_DEADLINE_MIN_STEP_MS) return;
    this.deadlineQueried = true;
    this.publish({ ...last, leaseDeadline: deadline });
  }

  // ---- silence ------------------------------------------------------------------------------

  /** A connection heard nothing for SUSPECT_MS: prove it alive with one cheap call, or fail. */
  private confirmAlive(c: SuspectConnection): Promise<boolean> {
    const current = this.health.current;
    const state = this.state;
    // Not the member being watched (an idle connection to another one), or no watch to lose:
    // close it; the next call dials afresh.
    if (state.name !== 'watching' || current === undefined || hostPort(current) !== c.target) return Promise.resolve(false);
    const session = state.session;
    return new Promise<boolean>((resolve) => {
      let settled = false;
      const settle = (alive: boolean, error?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!alive) {
          c.close();
          this.fail(session, error ?? new EtcdSourceError('unavailable', `etcd at ${current} went silent: nothing received for ${c.silentMs} ms (TCP keepalive unanswered) and no answer to a read within ${CONFIRM_MS} ms; network cut or packets dropped?`, current));
        } else {
          this.log.debug({ endpoint: current, silentMs: c.silentMs }, 'etcd: a keepalive probe went unanswered, but the member answered a read');
        }
        resolve(alive);
      };
      const timer = setTimeout(() => settle(false), CONFIRM_MS);
      this.client.kv
        .range({ key: Buffer.from(this.opts.triggerKey), serializable: true, count_only: true })
        // Answered by another member (etcd3 failed over): the watched one is still silent.
        .then(() => settle(this.health.current === current), (e: unknown) => settle(false, e));
    });
  }

  // ---- views --------------------------------------------------------------------------------

  /**
   * The deadline a value view carries before its lease was queried: the one already known for
   * the same lease (a renewal can only move it later), else null — "no deadline known", until
   * the query that follows at once replaces it. Not `at`: "could expire now" reads as expired,
   * and a restart on the holder (or Patroni re-putting its key under a new lease) would drop the
   * VIP for the few ms the query takes. Null is safe: hold-lease without a deadline acts as
   * release.
   */
  private leaseDeadlineFor(lease: string): number | null {
    if (lease === NO_LEASE) return null;
    const last = this.lastValue;
    if (last && this.keyLease === lease && this.deadlineQueried && last.leaseDeadline !== null) return last.leaseDeadline;
    this.deadlineQueried = false;
    return null;
  }

  private emitValue(v: { value: Buffer | null; revision: string; at: number; lease: string; forceEmit: boolean }): void {
    const leaseDeadline = this.leaseDeadlineFor(v.lease);
    this.keyLease = v.lease;
    const view = leaderValue(v.value, v.revision, v.at, leaseDeadline);
    if (this.outage) {
      this.log.info({ value: view.value, revision: v.revision, outageMs: Math.round(performance.now() - this.outage.since), failures: this.outage.failures }, 'etcd: reachable again');
      this.outage = null;
    } else if (!v.forceEmit && this.lastValue && this.lastValue.revision === v.revision && sameBytes(this.lastValue.bytes, v.value)) {
      return;
    }
    this.publish(view);
  }

  private publish(view: LeaderValue): void {
    this.lastValue = view;
    this.log.debug({ value: view.value, revision: view.revision, leaseDeadlineInMs: view.leaseDeadline === null ? null : Math.round(view.leaseDeadline - performance.now()) }, 'etcd: leader key');
    this.deliver(view);
  }

  /** A throwing consumer is a bug there, not an etcd failure: log it, never let it reach fail(). */
  private deliver(view: LeaderView): void {
    try {
      this.onView(view);
    } catch (e) {
      this.log.error({ err: e }, 'etcd: the leader-view consumer threw');
    }
  }

  // ---- failure ------------------------------------------------------------------------------

  private fail(session: number, e: unknown): void {
    if (session !== this.session) return;
    const state = this.state;
    if (state.name === 'closed' || state.name === 'idle' || state.name === 'backoff') return;
    const error: EtcdSourceError = describeEtcdError(e, { endpoints: this.opts.endpoints, user: this.opts.user, key: this.opts.triggerKey });
    const now = performance.now();
    const outage = (this.outage ??= { since: now, failures: 0 });
    outage.failures++;
    this.lease.stop();
    const wasStableWatch = state.name === 'watching' && state.confirmedAt !== null && now - state.confirmedAt >= STABLE_WATCH_MS;
    if (state.name === 'watching') void state.watch.close();
    // Bump the session: late callbacks of the failed one are ignored from here on.
    const next = ++this.session;
    // Warn on the first failure and whenever the cause changes; repeats go to debug.
    const fresh = outage.failures === 1 || error.reason !== this.lastFailureReason;
    this.lastFailureReason = error.reason;
    (fresh ? this.log.warn : this.log.debug).call(this.log, { reason: error.reason, failures: outage.failures, err: error.message }, 'etcd: leader key unreachable');
    this.deliver({ kind: 'unreachable', since: outage.since, error, failures: outage.failures, last: this.lastValue });
    if (wasStableWatch) {
      this.backoff.reset();
      this.read();
      return;
    }
    const delay = this.backoff.next();
    const timer = setTimeout(() => {
      if (this.state.name === 'backoff' && this.state.session === next) this.read();
    }, delay);
    this.state = { name: 'backoff', session: next, timer };
  }
}
