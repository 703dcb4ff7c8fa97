// The etcd (v3 API) leader source: reads the trigger key once, then watches it from the
// revision after that read, so at idle the only traffic is, when the key has a lease, one
// LeaseTimeToLive call per `lease-check-interval` (without one, the frozen-member check's read
// every 5.5 s: connection.ts), plus the kernel's TCP keepalive probes (tcp.ts), which this
// process only reads about once a second.
//
// The read/watch/retry state machine is watch-loop.ts (shared with the prefix source); this
// file adds what only a leader key has: its lease. The lease tracker queries the key's lease
// TTL at once after every read or change and every `lease-check-interval` ms while watching;
// a failed query is a failure like any other. Built alone (tests, tools) the source has its
// own client; built by a backend (backend.ts) it shares the daemon's one connection.
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../log.js';
import { EtcdConnection } from './connection.js';
import type { EtcdClientOptions } from './client.js';
import type { RangeResponse } from './gateway.js';
import { LeaseTracker, NO_LEASE, queryLeaseDeadline } from './lease.js';
import type { KeyEvent } from './watch-stream.js';
import { EtcdWatchLoop, type RetryOptions } from './watch-loop.js';
import { leaderValue, sameBytes } from '../leader-value.js';
import type { LeaderSource, LeaderValue, LeaderView } from '../../reconcile/ports.js';

export { CONFIRM_MS } from './connection.js';
export { STABLE_WATCH_MS } from './watch-loop.js';

/**
 * A fresh lease deadline is re-emitted only when it moved by at least this much. etcd reports
 * whole seconds, so successive readings of an untouched lease wobble by up to 1 s; every
 * reading is a sound lower bound, so keeping the previous one within that wobble is safe and
 * avoids a view every `lease-check-interval`. A real renewal (Patroni: every loop_wait = 10 s)
 * moves it by more and is reported.
 */
export const LEASE_DEADLINE_MIN_STEP_MS = 1000;

/** What every etcd source of a daemon shares: the client settings, retry pacing, lease checks. */
export interface EtcdSessionOptions extends EtcdClientOptions, RetryOptions {
  /** ms between lease TTL queries (lease-check-interval). */
  leaseCheckInterval: number;
}

export interface EtcdSourceOptions extends EtcdSessionOptions {
  triggerKey: string;
}

export class EtcdLeaderSource extends EtcdWatchLoop<LeaderValue> implements LeaderSource {
  readonly kind = 'etcd' as const;
  readonly providesLeaseDeadline = true;

  private readonly lease: LeaseTracker;
  /** Lease id of the key as last seen ('0': none). */
  private keyLease = NO_LEASE;
  /** Whether lastValue.leaseDeadline comes from a TTL query (not the "unknown yet" placeholder). */
  private deadlineQueried = false;
  private readonly keyBytes: Buffer;

  /**
   * With `conn` (backend.ts) the source uses that shared connection and leaves it open on
   * close(); without, it builds its own client from `opts` (reading the TLS files now: a
   * missing file throws, as a configuration error) and closes it with itself.
   */
  constructor(private readonly opts: EtcdSourceOptions, log: Logger, conn?: EtcdConnection) {
    const key = opts.triggerKey;
    super(conn ?? new EtcdConnection(opts, log), opts, log, { subject: key, noun: 'leader key', fields: { key }, probeKey: key, errorKey: key }, conn === undefined);
    this.keyBytes = Buffer.from(key);
    this.lease = new LeaseTracker((id) => queryLeaseDeadline(this.conn.gateway, id), opts.leaseCheckInterval, {
      onDeadline: (id, deadline) => this.onLeaseDeadline(id, deadline),
      onError: (e) => this.fail(this.session, e),
    });
  }

  override start(onView: (view: LeaderView) => void): void {
    super.start(onView);
  }

  protected startLog(): void {
    this.log.info({ endpoints: this.conn.opts.endpoints, key: this.opts.triggerKey, user: this.conn.opts.user }, 'etcd: reading leader key');
  }

  protected range(): Promise<RangeResponse> {
    return this.conn.gateway.range({ key: this.keyBytes });
  }

  protected applyRead(res: RangeResponse, sentAt: number): void {
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
  }

  protected override onWatchOpened(): void {
    this.lease.track(this.keyLease);
  }

  protected override onSessionEnded(): void {
    this.lease.stop();
  }

  protected applyEvents(events: KeyEvent[], receivedAt: number): void {
    const last = events[events.length - 1]!;
    this.emitValue({ value: last.value, revision: last.modRevision, at: receivedAt, lease: last.lease, forceEmit: false });
    // A new lease or a new value: query at once (NO_LEASE stops the tracker).
    this.lease.track(last.lease);
  }

  private onLeaseDeadline(leaseId: string, deadline: number): void {
    const last = this.lastValue;
    if (!this.watching || !last || leaseId !== this.keyLease) return;
    const known = this.deadlineQueried ? last.leaseDeadline : null;
    if (known !== null && Math.abs(deadline - known) < LEASE_DEADLINE_MIN_STEP_MS) return;
    this.deadlineQueried = true;
    this.publishValue({ ...last, leaseDeadline: deadline });
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
    if (!this.endOutage({ value: view.value, revision: v.revision })
      && !v.forceEmit && this.lastValue && this.lastValue.revision === v.revision && sameBytes(this.lastValue.bytes, v.value)) {
      return;
    }
    this.publishValue(view);
  }

  private publishValue(view: LeaderValue): void {
    this.log.debug({ key: this.opts.triggerKey, value: view.value, revision: view.revision, leaseDeadlineInMs: view.leaseDeadline === null ? null : Math.round(view.leaseDeadline - performance.now()) }, 'etcd: leader key');
    this.publish(view);
  }
}
