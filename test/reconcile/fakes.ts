// In-memory stand-ins for the reconciler's two edges, so the loop is tested without sockets.
import type { LeaderSource, LeaderView } from '../../src/reconcile/ports.js';
import type { HolderState, VipManager } from '../../src/reconcile/ports.js';

export class FakeSource implements LeaderSource {
  readonly kind = 'etcd' as const;
  providesLeaseDeadline = true;
  private onView: ((v: LeaderView) => void) | null = null;
  closed = false;
  start(onView: (v: LeaderView) => void): void {
    this.onView = onView;
  }
  emit(v: LeaderView): void {
    this.onView!(v);
  }
  value(value: string | null, at = performance.now(), leaseDeadline: number | null = null): void {
    this.emit({ kind: 'value', value, revision: String(Math.round(at)), at, leaseDeadline });
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

export class FakeManager implements VipManager {
  readonly kind = 'basic' as const;
  held = false;
  ready = true;
  /** Every call, in order. */
  readonly calls: string[] = [];
  /** Milliseconds each acquire/release takes, to let events pile up meanwhile. */
  delayMs = 0;
  failNext: Error | null = null;
  private onChange: (() => void) | null = null;
  async start(onChange: () => void): Promise<void> {
    this.onChange = onChange;
  }
  async observe(): Promise<HolderState> {
    return { held: this.held, ready: this.ready, detail: this.ready ? undefined : 'interface eth0 does not exist' };
  }
  private async act(name: string, held: boolean): Promise<void> {
    this.calls.push(name);
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = null;
      throw e;
    }
    this.held = held;
  }
  acquire(): Promise<void> { return this.act('acquire', true); }
  release(): Promise<void> { return this.act('release', false); }
  async announce(): Promise<void> { this.calls.push('announce'); }
  async close(): Promise<void> { this.calls.push('close'); }
  /** Something outside changed the state (e.g. `ip addr del`). */
  external(held: boolean, ready = this.ready): void {
    this.held = held;
    this.ready = ready;
    this.onChange?.();
  }
}

/** Waits `ms` of real time: only for checking that nothing happens within a window. */
export const settle = (ms = 20) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves once the reconciler has no pass running or queued (its own state, not a sleep): a
 * pass over these fakes runs in microtasks and their `delayMs` timers, so it is checked after
 * every turn of the event loop. Timers the loop armed for later (retries, deadlines) are not
 * waited for: use `until` for those.
 */
export async function idle(r: { snapshot(): { busySince: number | null } }, timeoutMs = 5000): Promise<void> {
  const start = performance.now();
  do {
    await new Promise((res) => setImmediate(res));
    if (performance.now() - start > timeoutMs) throw new Error(`the reconciler was still busy after ${timeoutMs} ms`);
  } while (r.snapshot().busySince !== null);
}

/** Resolves once `check()` holds (checked after every turn of the event loop). */
export async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 1));
  }
}
