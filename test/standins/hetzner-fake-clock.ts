// Fake time for the Hetzner manager tests, plus the glue that lets fake time and real loopback
// HTTP coexist: time only moves when every request in flight is one a stand-in is holding on
// purpose (hanging, or delaying on this same fake clock), so a request that is merely slow in
// real time is never timed out by a fake jump.
import { type Clock, type TimerHandle } from '../../src/vip/hetzner/clock.js';
import { type FetchLike } from '../../src/vip/hetzner/http.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

export const FAKE_HOUR_MS = 3_600_000;

export class FakeClock implements Clock {
  #now = 1_000_000;
  #wallOffset: number;
  #seq = 0;
  #timers = new Map<number, Timer>();

  constructor(startWallMs = Date.UTC(2026, 0, 1, 12, 0, 0)) {
    this.#wallOffset = startWallMs - this.#now;
  }

  now(): number {
    return this.#now;
  }

  wallNow(): number {
    return this.#now + this.#wallOffset;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const seq = ++this.#seq;
    this.#timers.set(seq, { at: this.#now + Math.max(0, ms), seq, fn });
    return seq;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** When the earliest pending timer is due, if any. */
  nextDue(): number | undefined {
    let best: Timer | undefined;
    for (const t of this.#timers.values()) if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    return best?.at;
  }

  /** Moves time to the earliest timer and fires it (one timer only). */
  fireNext(): boolean {
    let best: Timer | undefined;
    for (const t of this.#timers.values()) if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    if (!best) return false;
    this.#timers.delete(best.seq);
    if (best.at > this.#now) this.#now = best.at;
    best.fn();
    return true;
  }

  /** Moves time forward without firing anything (only up to the next timer). */
  jumpTo(t: number): void {
    const next = this.nextDue();
    if (next !== undefined && next < t) throw new Error('jumpTo would skip a timer');
    if (t > this.#now) this.#now = t;
  }
}

/** fetch that counts requests in flight and buffers bodies, so "in flight" ends with the body. */
export class CountingFetch {
  inflight = 0;
  total = 0;

  readonly fetch: FetchLike = async (url, init) => {
    this.inflight++;
    this.total++;
    try {
      const res = await fetch(url, init);
      const body = await res.arrayBuffer();
      const nullBody = res.status === 204 || res.status === 304;
      return new Response(nullBody ? null : body, { status: res.status, statusText: res.statusText, headers: res.headers });
    } finally {
      this.inflight--;
    }
  };
}

/** Something that holds requests on purpose (a stand-in): how many it holds right now. */
export interface Holder {
  readonly parked: number;
}

export class Driver {
  constructor(
    readonly clock: FakeClock,
    private readonly counting: CountingFetch,
    private readonly holders: Holder[],
  ) {}

  #quiet(): boolean {
    return this.counting.inflight === this.holders.reduce((n, h) => n + h.parked, 0);
  }

  /** Waits (real time) until all promise chains have run and only held requests are open. */
  async settle(): Promise<void> {
    const deadline = Date.now() + 10_000;
    let calm = 0;
    while (calm < 4) {
      await new Promise((r) => setImmediate(r));
      if (this.#quiet()) {
        calm++;
      } else {
        calm = 0;
        await new Promise((r) => setTimeout(r, 1));
      }
      if (Date.now() > deadline) throw new Error('settle: requests still in flight after 10 s of real time');
    }
  }

  /** Runs fake time forward, timer by timer, until `p` settles; returns its outcome. */
  async run<T>(p: Promise<T>, maxFakeMs = 4 * FAKE_HOUR_MS): Promise<T> {
    let done = false;
    p.then(
      () => (done = true),
      () => (done = true),
    );
    const limit = this.clock.now() + maxFakeMs;
    for (;;) {
      await this.settle();
      if (done) return p;
      const next = this.clock.nextDue();
      if (next === undefined) throw new Error('run: the promise is pending and no timer is left (deadlock)');
      if (next > limit) throw new Error(`run: still pending after ${maxFakeMs} ms of fake time`);
      this.clock.fireNext();
    }
  }

  /** Like run(), but expects a rejection and returns the error. */
  async runRejects(p: Promise<unknown>, maxFakeMs?: number): Promise<Error> {
    try {
      await this.run(p, maxFakeMs);
    } catch (err) {
      return err as Error;
    }
    throw new Error('expected a rejection');
  }

  /** Advances fake time by `ms`, firing every timer due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.clock.now() + ms;
    for (;;) {
      await this.settle();
      const next = this.clock.nextDue();
      if (next === undefined || next > target) {
        this.clock.jumpTo(target);
        await this.settle();
        return;
      }
      this.clock.fireNext();
    }
  }
}
