// Time as the Hetzner managers see it. Everything time-based (request timeouts, retry backoff,
// rate-budget windows, lockouts, cache refresh) goes through this interface so that tests can
// run an hour of leader flapping against the stand-ins in milliseconds with a fake clock.

/** Whatever the clock's setTimeout returns; only ever handed back to clearTimeout. */
export type TimerHandle = unknown;

export interface Clock {
  /**
   * Monotonic milliseconds: rate windows, deadlines and cache ages are measured with it, so a
   * wall-clock step (NTP) can neither stretch nor shrink a budget window.
   */
  now(): number;
  /** Wall-clock milliseconds since the epoch: only to read UNIX timestamps the APIs send. */
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const realClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Resolves after `ms` on `clock`; rejects with the signal's reason if it is aborted first. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      reject(signal?.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Converts a UNIX timestamp in seconds (as in RateLimit-Reset) to a `clock.now()` instant. */
export function unixSecondsToMonotonic(clock: Clock, unixSeconds: number): number {
  return clock.now() + (unixSeconds * 1000 - clock.wallNow());
}
