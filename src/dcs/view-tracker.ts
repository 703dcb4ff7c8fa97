// Turns a source's raw outcomes (an answer, a failed attempt) into LeaderViews with the
// semantics source.ts defines: `since` is the first failure after the last success, `failures`
// counts failed attempts since then, `last` is the last value seen. Values are reported only
// when they change (or after an outage), so a poll or a blocking query that returns the same
// thing does not wake the reconciler; every failed attempt is reported, because the
// reconciler's release policy counts them.
import type { LeaderUnreachable, LeaderValue, LeaderView } from '../reconcile/ports.js';

export interface TrackResult {
  /** Whether a view was emitted. */
  emitted: boolean;
  /** The DCS answered again after an outage (or for the first time). */
  recovered: boolean;
}

export class ViewTracker {
  private lastValue: LeaderValue | null = null;
  private lastKey: string | null = null;
  private outage: { since: number; failures: number } | null = null;
  private everAnswered = false;

  constructor(private readonly emit: (view: LeaderView) => void) {}

  /**
   * An answer. `sameKey` identifies what matters for "changed" (e.g. value and ModifyIndex,
   * but not a header index that moves on unrelated writes).
   */
  value(view: LeaderValue, sameKey: string): TrackResult {
    const recovered = this.outage !== null || !this.everAnswered;
    const changed = recovered || sameKey !== this.lastKey;
    this.outage = null;
    this.everAnswered = true;
    this.lastKey = sameKey;
    this.lastValue = view;
    if (changed) this.emit(view);
    return { emitted: changed, recovered };
  }

  /** A failed attempt that started at `at`. Returns the emitted view. */
  failure(error: Error, at: number): LeaderUnreachable {
    if (this.outage === null) this.outage = { since: at, failures: 0 };
    this.outage.failures += 1;
    const view: LeaderUnreachable = {
      kind: 'unreachable',
      since: this.outage.since,
      error,
      failures: this.outage.failures,
      last: this.lastValue,
    };
    this.emit(view);
    return view;
  }

  /** Failed attempts since the last answer (0 while reachable). */
  get failures(): number {
    return this.outage?.failures ?? 0;
  }
}
