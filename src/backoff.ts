// Retry pacing for every outside interaction (the DCS sources, and the reconciler retrying a
// failed acquire or release): a flat phase of `retry-num` retries `retry-after` apart (what the
// release policy counts on), then exponential growth to a cap, with jitter. Same shape as grpc-js's connection backoff, smaller numbers:
// a DCS outage on a database cluster is short and every second of it matters.
//
//   delay(k) = min(initial × MULTIPLIER^max(0, k − flat), cap) × (1 + JITTER × random())
//
// Jitter only ever adds, so `retry-after` stays a floor between two attempts.

/** Growth per retry after the flat phase (grpc-js uses 1.6 too). */
export const BACKOFF_MULTIPLIER = 1.6;
/**
 * Up to +20% random delay, so a fleet of vip-managers that lost etcd together does not hammer
 * it in lockstep when it returns.
 */
export const BACKOFF_JITTER = 0.2;
/**
 * Cap on the base delay: twice etcd's default 1 s election timeout plus margin, so a cluster
 * busy electing is not hammered, yet a DCS that comes back is noticed within ~5 s (including
 * jitter). Far below Patroni's 30 s leader TTL.
 */
export const BACKOFF_MAX_DELAY_MS = 4000;

export interface BackoffOptions {
  /** First delay and the delay of the flat phase (the `retry-after` setting). */
  initialMs: number;
  /** Retries at `initialMs` before growth starts (the `retry-num` setting); default 0. */
  flatRetries?: number;
  /** Defaults to BACKOFF_MAX_DELAY_MS (never below initialMs). */
  maxMs?: number;
  multiplier?: number;
  jitter?: number;
  /** Injectable for deterministic tests; defaults to Math.random. */
  random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly flatRetries: number;
  private readonly maxMs: number;
  private readonly multiplier: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private count = 0;

  constructor(opts: BackoffOptions) {
    if (!(opts.initialMs > 0)) throw new RangeError(`backoff initialMs must be > 0, got ${opts.initialMs}`);
    this.initialMs = opts.initialMs;
    this.flatRetries = Math.max(0, opts.flatRetries ?? 0);
    this.maxMs = Math.max(opts.maxMs ?? BACKOFF_MAX_DELAY_MS, opts.initialMs);
    this.multiplier = opts.multiplier ?? BACKOFF_MULTIPLIER;
    this.jitter = opts.jitter ?? BACKOFF_JITTER;
    this.random = opts.random ?? Math.random;
  }

  /** Retries handed out since the last reset. */
  get attempts(): number {
    return this.count;
  }

  /** The delay before the next retry (ms); advances the sequence. */
  next(): number {
    const grown = Math.max(0, this.count - this.flatRetries);
    this.count++;
    const base = Math.min(this.initialMs * this.multiplier ** grown, this.maxMs);
    return Math.round(base * (1 + this.jitter * this.random()));
  }

  /** After a success: the next failure starts again at `initialMs`. */
  reset(): void {
    this.count = 0;
  }
}
