// Test helper: records the views a leader source emits (with the monotonic time they arrived)
// and waits for one matching a predicate, failing with the recent history when it never comes.
import { performance } from 'node:perf_hooks';
import type { LeaderView } from '../../src/reconcile/ports.js';

export interface Seen {
  readonly view: LeaderView;
  /** performance.now() when onView was called. */
  readonly t: number;
}

export class ViewLog {
  readonly seen: Seen[] = [];
  private waiters: Array<() => void> = [];

  /** Pass this to source.start(). */
  readonly onView = (view: LeaderView): void => {
    this.seen.push({ view, t: performance.now() });
    for (const w of this.waiters.splice(0)) w();
  };

  get last(): LeaderView | undefined {
    return this.seen[this.seen.length - 1]?.view;
  }

  /** Resolves with the first view after index `from` that matches; rejects after timeoutMs. */
  async waitFor(pred: (v: LeaderView) => boolean, timeoutMs: number, label: string, from = 0): Promise<Seen> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const hit = this.seen.slice(from).find((s) => pred(s.view));
      if (hit) return hit;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}; last views:\n${this.describe(8)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  describe(n = 8): string {
    return this.seen.slice(-n).map((s) => `  ${JSON.stringify(brief(s.view))}`).join('\n');
  }
}

export function brief(v: LeaderView): Record<string, unknown> {
  return v.kind === 'value'
    ? { kind: v.kind, value: v.value, revision: v.revision, leaseDeadline: v.leaseDeadline === null ? null : Math.round(v.leaseDeadline - performance.now()) }
    : { kind: v.kind, failures: v.failures, error: v.error.message, last: v.last?.value ?? null };
}

export const isValue = (value: string | null) => (v: LeaderView) => v.kind === 'value' && v.value === value;
export const isUnreachable = (v: LeaderView) => v.kind === 'unreachable';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
