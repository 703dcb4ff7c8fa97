// Retry pacing shared by both managers: growing backoff from retry-after, a serial queue so one
// API conversation runs at a time (two concurrent POSTs would spend the budget twice and race),
// and a single "wake the reconciler at T" timer for deferred work.
import { type Clock, type TimerHandle } from './clock.js';
import { type HetznerError } from './errors.js';

/** No retry waits longer than this: a failover should not stall for minutes on a blip. */
export const MAX_BACKOFF_MS = 30_000;

/** Forbidden errors repeat until someone changes the token's rights: ask again only this often. */
export const FORBIDDEN_BACKOFF_MS = 60_000;

/**
 * Longer waits are not slept inside acquire()/release(): the call fails and the reconciler is
 * woken when the wait is over, so it is never stuck while leadership may change meanwhile.
 */
export const INLINE_WAIT_MAX_MS = 15_000;

/** retry-after, doubled per failed attempt (attempt 1 waits retry-after), capped. */
export function backoffMs(retryAfterMs: number, attempt: number): number {
  return Math.min(MAX_BACKOFF_MS, retryAfterMs * 2 ** Math.max(0, attempt - 1));
}

/** Total tries for one interaction: the first plus `retry-num` retries. */
export function maxAttempts(retryNum: number): number {
  return 1 + Math.max(0, retryNum);
}

/** How long to wait before the next attempt after `err` (the API's moment when it named one). */
export function waitAfter(err: HetznerError, clock: Clock, retryAfterMs: number, attempt: number): number {
  if (err.retryAt !== undefined) return Math.max(0, err.retryAt - clock.now());
  if (err.name === 'HetznerForbiddenError') return Math.max(FORBIDDEN_BACKOFF_MS, backoffMs(retryAfterMs, attempt));
  return backoffMs(retryAfterMs, attempt);
}

/** Runs tasks one after another, in call order; a failure does not stop the queue. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task, task);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

/** One pending wake-up; asking for an earlier one replaces a later one. */
export class WakeUp {
  #handle: TimerHandle | undefined;
  #at = Infinity;

  constructor(
    private readonly clock: Clock,
    private readonly fire: () => void,
  ) {}

  at(when: number): void {
    if (when >= this.#at) return;
    this.cancel();
    this.#at = when;
    this.#handle = this.clock.setTimeout(() => {
      this.#handle = undefined;
      this.#at = Infinity;
      this.fire();
    }, when - this.clock.now());
  }

  cancel(): void {
    if (this.#handle !== undefined) this.clock.clearTimeout(this.#handle);
    this.#handle = undefined;
    this.#at = Infinity;
  }
}

/** Races `promise` against a timeout on `clock`; a local call that hangs must not hang us. */
export function withTimeout<T>(clock: Clock, promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const handle = clock.setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clock.clearTimeout(handle);
        resolve(v);
      },
      (e: unknown) => {
        clock.clearTimeout(handle);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
