// The blocking-query index rules from Consul's documentation (api-docs/features/blocking.mdx,
// "Implementation Details"), kept apart so they can be tested on their own:
// - Reset the index if it goes backwards (a snapshot restore, an upgrade): keeping the higher
//   index would block for the whole wait on every request and could miss updates for an
//   unbounded time.
// - Sanity check that the index is at least 1 after each answer is handled: a 0 (from a buggy
//   Consul, or from the reset above) would turn the next request into a non-blocking read,
//   and a stream of them into a busy loop. 1 is always safe to wait on: it returns at once with
//   the current state whenever anything was ever written. So after an answer the index is
//   never 0; only the very first read, and the first read after a failed one (where a fresh
//   answer is needed at once to report recovery), are plain reads.
// - Rate limit: a token bucket with a burst of 2 lets a couple of quick successive deliveries
//   through and then degrades to one request per refill period, without sleeping in the
//   common case (a sleep after every answer would delay every update).

export interface NextIndex {
  /** The `index` to send with the next request (0 = non-blocking read). */
  readonly index: bigint;
  /** The returned index was lower than the one we waited on. */
  readonly wentBackwards: boolean;
}

export function nextIndex(waitedOn: bigint, returned: bigint): NextIndex {
  const wentBackwards = returned < waitedOn;
  const reset = wentBackwards ? 0n : returned;
  return { index: reset < 1n ? 1n : reset, wentBackwards };
}

/**
 * Consul's blocking-query documentation asks clients to rate-limit so that a key that changes
 * constantly does not become a busy loop. A leader key changes rarely (a switchover, seconds
 * apart), and each of those changes must be read at once: so the bucket allows a burst of
 * CHURN_BURST immediate requests and refills one every CHURN_REFILL_MS, i.e. only a key
 * rewritten more than ~10 times a second for a while is slowed down, to 10 reads a second.
 */
export const CHURN_BURST = 8;
export const CHURN_REFILL_MS = 100;

export class TokenBucket {
  private tokens: number;
  private last: number;

  /** One token is added every `refillMs`, up to `burst`; the bucket starts full. */
  constructor(private readonly burst: number, private readonly refillMs: number, private readonly now: () => number = () => performance.now()) {
    this.tokens = burst;
    this.last = now();
  }

  /** Milliseconds until a token is available (0 = now). */
  delayMs(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) * this.refillMs);
  }

  /** Uses a token; call when the request is sent. */
  take(): void {
    this.refill();
    this.tokens = Math.max(0, this.tokens - 1);
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (t - this.last) / this.refillMs);
    this.last = t;
  }
}
