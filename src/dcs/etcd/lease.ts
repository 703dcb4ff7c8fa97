// Tracks the remaining TTL of the leader key's lease: one LeaseTimeToLive call every
// `lease-check-interval` ms while the watch is up, and at once after every (re)read or change.
// etcd answers it from the leader's in-memory lessor (a follower forwards it to the leader),
// so it costs no raft round and no disk write, and it fails on a member without a leader.
//
// deadline = (monotonic time the request was SENT) + TTL × 1000. etcd truncates the remaining
// TTL to whole seconds and counts from when it answered, which is after we sent: the lease
// cannot expire before that deadline, so it is a sound (conservative) bound.
import { performance } from 'node:perf_hooks';
import { wakeups } from '../../wakeups.js';
import { EtcdGatewayError, GrpcCode, type EtcdGateway } from './gateway.js';

/**
 * How much sooner than the interval a periodic query may go, to share a wake-up that comes
 * anyway (wakeups.ts: the connection check, the heartbeat). At idle a daemon's CPU is almost all
 * per wake-up, so a query on its own wake-up costs more than the query; sooner is only more
 * conservative (a fresher deadline). At most a quarter of the interval.
 */
export const LEASE_QUERY_SLACK_MS = 500;

/** The lease id etcd reports for a key without a lease. */
export const NO_LEASE = '0';

/** One query: the earliest moment the lease could expire (ms, performance.now() clock). */
export async function queryLeaseDeadline(gateway: EtcdGateway, leaseId: string): Promise<number> {
  const sentAt = performance.now();
  try {
    // POST /v3/lease/timetolive; TTL and grantedTTL are int64s, so strings in the JSON.
    const res = await gateway.leaseTimeToLive(leaseId);
    return leaseDeadline(sentAt, res.ttl, res.grantedTtl);
  } catch (e) {
    // "requested lease not found" (etcd before 3.3 answered so; later ones answer TTL -1).
    if (e instanceof EtcdGatewayError && e.code === GrpcCode.NotFound) return sentAt;
    throw e;
  }
}

/**
 * The deadline one TimeToLive answer supports. -1: expired or revoked; its key is being
 * deleted, the delete event follows. A remaining TTL above the granted one cannot come from a
 * lessor that counts down: a member that has just stopped being the raft leader has demoted its
 * lessor, which then reports every lease as "forever" (math.MaxInt64 ns, 9223372036 s) until
 * requests reach the new leader. The lease may expire at any moment then, so: now.
 */
export function leaseDeadline(sentAt: number, ttlSeconds: number, grantedSeconds: number): number {
  if (!(ttlSeconds > 0) || !(ttlSeconds <= grantedSeconds)) return sentAt;
  return sentAt + ttlSeconds * 1000;
}

export interface LeaseTrackerHandlers {
  onDeadline(leaseId: string, deadline: number): void;
  onError(error: unknown): void;
}

/**
 * At most one query in flight; a refresh requested meanwhile runs right after it (so a burst
 * of puts costs one or two queries, not one each). Results for a lease no longer tracked are
 * dropped.
 */
export class LeaseTracker {
  private leaseId: string = NO_LEASE;
  private inFlight = false;
  private again = false;
  private generation = 0;

  constructor(
    private readonly query: (leaseId: string) => Promise<number>,
    private readonly intervalMs: number,
    private readonly handlers: LeaseTrackerHandlers,
  ) {}

  /** Starts tracking `leaseId` (or stops for NO_LEASE) and queries at once. */
  track(leaseId: string): void {
    if (leaseId !== this.leaseId) {
      this.stop();
      this.leaseId = leaseId;
    }
    if (leaseId !== NO_LEASE) this.refreshNow();
  }

  /** Queries as soon as no other query is in flight. */
  refreshNow(): void {
    if (this.leaseId === NO_LEASE) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    wakeups.cancel(this);
    void this.run();
  }

  stop(): void {
    this.generation++;
    this.leaseId = NO_LEASE;
    this.again = false;
    this.inFlight = false;
    wakeups.cancel(this);
  }

  private async run(): Promise<void> {
    const gen = this.generation;
    const id = this.leaseId;
    this.inFlight = true;
    let deadline: number;
    try {
      deadline = await this.query(id);
    } catch (e) {
      if (gen !== this.generation) return;
      this.stop();
      this.handlers.onError(e);
      return;
    }
    if (gen !== this.generation) return;
    this.inFlight = false;
    this.handlers.onDeadline(id, deadline);
    if (gen !== this.generation) return; // the handler stopped or re-targeted us
    if (this.again) {
      this.again = false;
      void this.run();
    } else {
      const slack = Math.min(LEASE_QUERY_SLACK_MS, this.intervalMs / 4);
      wakeups.schedule(this, this.intervalMs - slack, this.intervalMs, () => {
        void this.run();
      });
    }
  }
}
