// A sliding-window request budget: at most `limit` requests in any `windowMs`. Robot documents
// per-endpoint limits (GET /failover 100 per hour, POST 50 per hour) and locks a client out of
// the endpoint when it exceeds them; a sliding window is at least as strict as whatever window
// Hetzner counts in, so staying inside it never trips theirs. The budget is consulted before a
// request is sent; when it is used up the request is deferred, never sent.
import { type Logger } from '../../log.js';
import { type Clock } from './clock.js';

/** Below this share of the budget left, a warning is logged (once per dip). */
export const LOW_BUDGET_SHARE = 0.2;

export const HOUR_MS = 3_600_000;

export class SlidingWindowBudget {
  #stamps: number[] = [];
  #warned = false;

  constructor(
    readonly name: string,
    readonly limit: number,
    readonly windowMs: number,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  #prune(): void {
    const cutoff = this.clock.now() - this.windowMs;
    let drop = 0;
    while (drop < this.#stamps.length && (this.#stamps[drop] as number) <= cutoff) drop++;
    if (drop > 0) this.#stamps.splice(0, drop);
  }

  remaining(): number {
    this.#prune();
    return this.limit - this.#stamps.length;
  }

  /** Whether less than LOW_BUDGET_SHARE of the budget is left: optional requests should wait. */
  isLow(): boolean {
    return this.remaining() < this.limit * LOW_BUDGET_SHARE;
  }

  /** Records a request about to be sent; false (and nothing recorded) when none is left. */
  tryTake(): boolean {
    this.#prune();
    if (this.#stamps.length >= this.limit) return false;
    this.#stamps.push(this.clock.now());
    const left = this.limit - this.#stamps.length;
    if (left < this.limit * LOW_BUDGET_SHARE) {
      if (!this.#warned) {
        this.#warned = true;
        this.log.warn(
          { budget: this.name, remaining: left, limit: this.limit, windowMs: this.windowMs },
          `Hetzner ${this.name} request budget running low: ${left} of ${this.limit} left in the current window; optional requests are deferred`,
        );
      }
    } else {
      this.#warned = false;
    }
    return true;
  }

  /** When the next request may be sent (now if one is left). */
  nextFreeAt(): number {
    this.#prune();
    if (this.#stamps.length < this.limit) return this.clock.now();
    return (this.#stamps[this.#stamps.length - this.limit] as number) + this.windowMs;
  }
}
