// What the two Hetzner managers share: one queue so API calls never overlap, a housekeeping
// tick, retry decisions for a failed attempt, the "stay failed until restarted" state after a
// fatal answer (a 401 must never be repeated), and telling the reconciler when what observe()
// reports changed behind its back. Each manager supplies its state, its tick and its label.
import type { Logger } from '../../log.js';
import { type Clock, sleep, type TimerHandle } from './clock.js';
import { asHetznerError, type HetznerError } from './errors.js';
import { backoffMs, INLINE_WAIT_MAX_MS, maxAttempts, SerialQueue, waitAfter, WakeUp } from './retry.js';

export interface ManagerBaseOptions {
  /** "Hetzner Robot" / "Hetzner Cloud", for log lines. */
  readonly label: string;
  readonly tickMs: number;
  readonly retryAfterMs: number;
  readonly retryNum: number;
  /**
   * Whether a deferred answer (rate limit, budget, lock) always ends the call and wakes the
   * reconciler later (Robot: its waits are long), or is waited out here when short (Cloud).
   */
  readonly deferAlways: boolean;
}

export abstract class HetznerManagerBase {
  protected fatal: HetznerError | undefined;
  protected closed = false;
  protected readonly queue = new SerialQueue();
  protected readonly wake: WakeUp;
  private onChange: () => void = () => {};
  private lastReported: string | undefined;
  private tick: TimerHandle | undefined;

  protected constructor(
    protected readonly log: Logger,
    protected readonly clock: Clock,
    protected readonly closing: AbortController,
    private readonly base: ManagerBaseOptions,
  ) {
    this.wake = new WakeUp(clock, () => this.onChange());
  }

  /** What observe() would report, as a comparable string. */
  protected abstract stateKey(): string;
  /** Housekeeping, run in the queue every tick unless failed or closed. */
  protected abstract housekeeping(): Promise<void>;
  /** A failed or uncertain call may have been applied: forget the cached API state. */
  protected abstract forgetApiState(e: HetznerError): void;

  protected listen(onChange: () => void): void {
    this.onChange = onChange;
  }

  /** Records what the reconciler has now seen; onChange fires only for changes after it. */
  protected markReported(): void {
    this.lastReported = this.stateKey();
  }

  /** Hetzner routes the address to the server; there is nothing to announce from here. */
  async announce(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
    if (this.tick !== undefined) this.clock.clearTimeout(this.tick);
    this.tick = undefined;
    this.wake.cancel();
    this.closing.abort();
  }

  /** Runs a reconciler-requested action in the queue; its outcome is known to the caller. */
  protected acted(task: () => Promise<void>): Promise<void> {
    return this.queue.run(async () => {
      try {
        await task();
      } finally {
        this.markReported();
      }
    });
  }

  /**
   * Decides what a failed attempt means: fatal → stay failed; deferred (where that always
   * defers), a long wait or out of attempts → wake the reconciler when a retry makes sense and
   * give up this call; otherwise back off here and let the caller's loop try again.
   */
  protected async afterFailure(err: unknown, attempt: number, op: string): Promise<void> {
    const e = asHetznerError(err);
    if (e.disposition === 'fatal') {
      this.fail(e);
      throw e;
    }
    if (e.name !== 'HetznerRateLimitError' && e.name !== 'HetznerBudgetError') this.forgetApiState(e);
    const wait = waitAfter(e, this.clock, this.base.retryAfterMs, attempt);
    const giveUp = (this.base.deferAlways && e.disposition === 'deferred') || wait > INLINE_WAIT_MAX_MS
      || attempt >= maxAttempts(this.base.retryNum) || this.closed;
    if (giveUp) {
      this.wake.at(this.clock.now() + Math.max(wait, backoffMs(this.base.retryAfterMs, attempt)));
      this.log.warn({ err: e.message, op, attempt, retryInMs: Math.round(wait) }, `${this.base.label} ${op} failed; will retry later`);
      throw e;
    }
    this.log.warn({ err: e.message, op, attempt, retryInMs: Math.round(wait) }, `${this.base.label} ${op} attempt failed; retrying`);
    await sleep(this.clock, wait, this.closing.signal).catch(() => {
      throw e;
    });
  }

  protected fail(e: HetznerError): void {
    if (this.fatal) return;
    this.fatal = e;
    this.log.error({ err: e.message }, `${this.base.label} manager stopped talking to the API until restarted`);
    this.notifyIfChanged();
  }

  /** Errors outside acquire/release (start, ticks): remembered when fatal, otherwise logged. */
  protected absorb(err: unknown, what: string): void {
    const e = asHetznerError(err);
    if (e.disposition === 'fatal') this.fail(e);
    else this.log.warn({ err: e.message }, `${this.base.label}: ${what} failed`);
    if (e.retryAt !== undefined) this.wake.at(e.retryAt);
  }

  protected armTick(what: string): void {
    if (this.closed) return;
    this.tick = this.clock.setTimeout(() => {
      this.tick = undefined;
      void this.queue
        .run(async () => {
          if (this.fatal || this.closed) return;
          await this.housekeeping();
        })
        .catch((err: unknown) => this.absorb(err, what))
        .then(() => {
          this.notifyIfChanged();
          this.armTick(what);
        });
    }, this.base.tickMs);
  }

  /** Tells the reconciler when what observe() reports has changed behind its back. */
  protected notifyIfChanged(): void {
    const key = this.stateKey();
    if (key === this.lastReported) return;
    this.lastReported = key;
    if (!this.closed) this.onChange();
  }
}
