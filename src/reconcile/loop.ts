// Drives the pure decision function: every event (a new leader view, a kernel/API change, a
// deadline) schedules a pass; passes never overlap, and a burst of events collapses into one
// more pass that sees only the latest state, so a stale transition is never applied.
import { performance } from 'node:perf_hooks';
import { Backoff } from '../backoff.js';
import type { LeaderView, LeaderSource } from './ports.js';
import type { Logger } from '../log.js';
import type { HolderState, VipManager } from './ports.js';
import { decide, type Action, type Cause, type Decision, type DcsLossPolicy, type LocalPrimary } from './decide.js';

/** The longest delay setTimeout honours (a signed 32-bit ms count, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Transition {
  readonly direction: 'acquire' | 'release' | 'announce';
  readonly cause: Cause | 'shutdown';
  readonly reason: string;
  /** The leader key's value and revision that caused it, when the DCS said so. */
  readonly value: string | null | undefined;
  readonly revision: string | undefined;
  /** Wall-clock time it completed, for /status. */
  readonly at: Date;
  /** Milliseconds from learning the cause (the view's time) to the change being applied. */
  readonly reactionMs: number | null;
  /** Milliseconds the manager call itself took. */
  readonly tookMs: number;
}

export interface ReconcilerOptions {
  readonly source: LeaderSource;
  readonly manager: VipManager;
  readonly policy: DcsLossPolicy;
  readonly triggerValue: string;
  /** A role VIP's role (decide.ts words its reasons by it). */
  readonly role?: 'replica' | 'sync-standby';
  readonly retryNum: number;
  readonly retryAfter: number;
  /** dcs-loss patroni: how long a local /primary answer counts (see decide.ts). */
  readonly localPrimaryMaxAgeMs?: number;
  readonly log: Logger;
  /** Monotonic milliseconds; injectable for tests. */
  readonly now?: () => number;
  readonly onTransition?: (t: Transition) => void;
  readonly onView?: (v: LeaderView) => void;
  readonly onError?: (component: 'kernel' | 'manager', err: Error) => void;
  /** An error the daemon cannot recover from by retrying (e.g. a loopback interface). */
  readonly onFatal?: (err: Error) => void;
  /** After every pass, with the view it acted on (readiness: the first DCS answer applied). */
  readonly onPassed?: (view: LeaderView | null, decision: Decision) => void;
}

/** Errors that retrying cannot fix: the daemon stops with a clear message instead. */
function isFatal(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return err.name === 'NoLinkLayerAddressError' || code === 'EPERM' || code === 'EACCES' || (err as { fatal?: boolean }).fatal === true;
}

export class Reconciler {
  private readonly now: () => number;
  /** When the DCS was first asked: the DCS-loss clock before any answer starts here. */
  private startedAt: number;
  private view: LeaderView | null = null;
  private localPrimary: LocalPrimary | null = null;
  private wasReady = true;
  private lastObserved: HolderState | null = null;
  private dirty = false;
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** stop() was called, or a fatal error was reported: no pass runs any more. */
  private stopped = false;
  private passes = 0;
  private lastPassAt = 0;
  /** When the pass now running began; null while idle. A pass stuck on I/O shows here. */
  private busySince: number | null = null;
  /** Pacing of retries after failed manager calls; reset by the next success. */
  private readonly backoff: Backoff;
  /**
   * A failed action is not tried again before `until`, whatever else wakes the loop (a lease
   * refresh, a kernel event): a manager's API may have said when (a lock, a rate limit), and
   * retrying sooner would only spend its budget.
   */
  private retryBlock: { action: Action; until: number } | null = null;

  constructor(private readonly o: ReconcilerOptions) {
    this.now = o.now ?? (() => performance.now());
    this.startedAt = this.now();
    this.backoff = new Backoff({ initialMs: o.retryAfter, flatRetries: o.retryNum });
  }

  async start(): Promise<void> {
    await this.o.manager.start(() => this.schedule());
    // The manager's start (a provider API read, up to seconds) is not DCS silence: count the
    // startup window from the moment the source is asked, or a slow API read alone would make
    // a restarted holder release the VIP before the DCS was even queried.
    this.startedAt = this.now();
    this.schedule();
    this.o.source.start((v) => {
      this.view = v;
      this.o.onView?.(v);
      this.schedule();
    });
  }

  /**
   * dcs-loss patroni: the local Patroni's latest GET /primary answer. It only matters while the
   * DCS is unreachable (or not heard yet); then a changed answer is acted on at once, and a
   * repeated one only moves the deadline that the armed recheck re-reads.
   */
  setLocalPrimary(a: LocalPrimary): void {
    const prev = this.localPrimary;
    this.localPrimary = { ok: a.ok, at: a.at };
    if (this.view?.kind === 'value') return;
    if (prev === null || prev.ok !== a.ok) this.schedule();
  }

  /** The latest view and observation, for /status and logs. */
  snapshot(): { view: LeaderView | null; held: HolderState | null; passes: number; lastPassAt: number; busySince: number | null } {
    return { view: this.view, held: this.lastObserved, passes: this.passes, lastPassAt: this.lastPassAt, busySince: this.busySince };
  }

  /** Requests a pass; several requests while one runs make exactly one more. */
  schedule(): void {
    if (this.stopped) return;
    this.dirty = true;
    if (this.running === null) this.running = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        this.busySince = this.now();
        await this.pass();
      }
    } finally {
      this.busySince = null;
      this.running = null;
    }
  }

  private async pass(): Promise<void> {
    this.passes++;
    this.lastPassAt = this.now();
    let held: HolderState;
    try {
      held = await this.o.manager.observe();
    } catch (e) {
      this.fail('kernel', e as Error);
      return;
    }
    this.lastObserved = held;
    const view = this.view;
    const d = decide({
      view, held, wasReady: this.wasReady, triggerValue: this.o.triggerValue, role: this.o.role, policy: this.o.policy,
      sourceHasLeases: this.o.source.providesLeaseDeadline, retryNum: this.o.retryNum, retryAfter: this.o.retryAfter,
      startedAt: this.startedAt, now: this.now(),
      localPrimary: this.localPrimary, localPrimaryMaxAgeMs: this.o.localPrimaryMaxAgeMs,
    });
    if (held.ready !== this.wasReady) {
      if (held.ready) this.o.log.info({ detail: held.detail }, 'VIP holder ready');
      else this.o.log.warn({ detail: held.detail }, `waiting: ${held.detail ?? 'VIP holder not ready'}`);
    }
    this.wasReady = held.ready;
    this.armRecheck(d);
    const block = this.retryBlock;
    if (block !== null && block.action === d.action && this.now() < block.until) {
      this.armAt(block.until);
    } else if (d.action !== 'none' && !this.stopped) {
      await this.apply(d, view);
    }
    this.o.onPassed?.(view, d);
  }

  private async apply(d: Decision, view: LeaderView | null): Promise<void> {
    const direction = d.action as Transition['direction'];
    const started = this.now();
    try {
      if (direction === 'acquire') await this.o.manager.acquire();
      else if (direction === 'release') await this.o.manager.release();
      else await this.o.manager.announce();
    } catch (e) {
      this.fail('manager', e as Error, direction);
      return;
    }
    this.backoff.reset();
    this.retryBlock = null;
    const done = this.now();
    const known = view?.kind === 'value' ? view : view?.kind === 'unreachable' ? view.last : null;
    const t: Transition = {
      direction,
      cause: d.cause,
      reason: d.reason,
      value: known?.value,
      revision: known?.revision,
      at: new Date(),
      reactionMs: view?.kind === 'value' ? done - view.at : null,
      tookMs: done - started,
    };
    const verb = direction === 'acquire' ? 'acquired the VIP' : direction === 'release' ? 'released the VIP' : 'announced the VIP again';
    this.o.log.info(
      { transition: direction, cause: t.cause, reason: t.reason, value: t.value, revision: t.revision, reactionMs: round(t.reactionMs), tookMs: round(t.tookMs) },
      `${verb}: ${t.reason}${t.value !== undefined ? ` (value ${JSON.stringify(t.value)}, revision ${t.revision})` : ''}; took ${round(t.tookMs)} ms`,
    );
    this.o.onTransition?.(t);
    // The world may have moved while the manager worked: look again.
    this.dirty = true;
  }

  private fail(component: 'kernel' | 'manager', err: Error, action?: Action): void {
    if (isFatal(err)) {
      // The daemon stops after this: a view arriving meanwhile must not meet, and report, the
      // same error again. stop() still releases if asked.
      this.stopped = true;
      this.o.log.error({ err, component }, `cannot continue: ${err.message}`);
      this.o.onFatal?.(err);
      return;
    }
    this.o.onError?.(component, err);
    // Not before the backoff allows, nor before the time the error itself names (retryAt,
    // monotonic ms: e.g. a provider's lock or rate-limit window).
    const retryAt = (err as { retryAt?: unknown }).retryAt;
    const until = Math.max(this.now() + this.backoff.next(), typeof retryAt === 'number' ? retryAt : 0);
    if (action !== undefined) this.retryBlock = { action, until };
    this.o.log.error({ err, component, action, retryInMs: Math.round(until - this.now()) },
      `${action ?? 'observing the VIP'} failed: ${err.message}; retrying in ${Math.round(until - this.now())} ms`);
    this.armAt(until);
  }

  private armRecheck(d: Decision): void {
    if (d.recheckAt !== null) this.armAt(d.recheckAt);
  }

  private armAt(at: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    // +1 ms so the pass runs at or after the deadline, never a hair before it. Node fires a
    // timer beyond 2^31-1 ms after 1 ms (with a warning): a deadline that far away is re-armed
    // from an early pass instead, which decides nothing new.
    this.timer = setTimeout(() => {
      this.timer = null;
      this.schedule();
    }, Math.min(MAX_TIMER_MS, Math.max(0, at - this.now()) + 1));
  }

  /**
   * Stops reacting, then releases a held VIP when asked (a stop signal with release-on-stop).
   * Returns whether the VIP was released. `keepReason` says why it is not released, for the log.
   */
  async stop(release: boolean, keepReason = 'release-on-stop is false'): Promise<boolean> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    let released = false;
    try {
      if (release) {
        // If the state cannot be read, try to release anyway: releasing is idempotent.
        const held = await this.o.manager.observe().catch(() => ({ held: true, ready: true }));
        if (held.held) {
          const started = this.now();
          await this.o.manager.release();
          released = true;
          const tookMs = this.now() - started;
          this.o.log.info({ transition: 'release', cause: 'shutdown', tookMs: round(tookMs) }, `released the VIP: shutting down (release-on-stop); took ${round(tookMs)} ms`);
          this.o.onTransition?.({ direction: 'release', cause: 'shutdown', reason: 'shutting down', value: undefined, revision: undefined, at: new Date(), reactionMs: null, tookMs });
        }
      } else {
        this.o.log.info({ keepReason }, `leaving the VIP as it is: ${keepReason}`);
      }
    } catch (e) {
      this.o.log.error({ err: e }, `releasing the VIP on shutdown failed: ${(e as Error).message}`);
    } finally {
      await Promise.allSettled([this.o.source.close(), this.o.manager.close()]);
    }
    return released;
  }
}

function round(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms * 1000) / 1000;
}
