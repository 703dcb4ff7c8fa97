import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff, BACKOFF_JITTER, BACKOFF_MAX_DELAY_MS, BACKOFF_MULTIPLIER } from '../src/backoff.js';

describe('Backoff', () => {
  it('retries retry-num times at retry-after, then grows by the multiplier up to the cap', () => {
    const b = new Backoff({ initialMs: 250, flatRetries: 3, random: () => 0 });
    const seq = Array.from({ length: 12 }, () => b.next());
    assert.deepEqual(seq.slice(0, 4), [250, 250, 250, 250]);
    assert.equal(seq[4], Math.round(250 * BACKOFF_MULTIPLIER));
    assert.equal(seq[5], Math.round(250 * BACKOFF_MULTIPLIER ** 2));
    for (let i = 1; i < seq.length; i++) assert.ok(seq[i]! >= seq[i - 1]!, 'never shrinks');
    assert.equal(seq[seq.length - 1], BACKOFF_MAX_DELAY_MS, 'capped');
    assert.equal(b.attempts, 12);
  });

  it('jitter only adds, by at most BACKOFF_JITTER', () => {
    const lo = new Backoff({ initialMs: 1000, random: () => 0 });
    const hi = new Backoff({ initialMs: 1000, random: () => 0.999999 });
    assert.equal(lo.next(), 1000);
    assert.equal(hi.next(), Math.round(1000 * (1 + BACKOFF_JITTER * 0.999999)));
    const r = new Backoff({ initialMs: 100 });
    for (let i = 0; i < 200; i++) {
      r.reset();
      const d = r.next();
      assert.ok(d >= 100 && d <= 100 * (1 + BACKOFF_JITTER), `${d} within [100, 120]`);
    }
  });

  it('reset starts over; the cap is never below the initial delay; a zero delay is refused', () => {
    const b = new Backoff({ initialMs: 300, random: () => 0 });
    b.next();
    b.next();
    b.reset();
    assert.equal(b.attempts, 0);
    assert.equal(b.next(), 300);
    const big = new Backoff({ initialMs: 10_000, maxMs: 1000, random: () => 0 });
    assert.equal(big.next(), 10_000);
    assert.throws(() => new Backoff({ initialMs: 0 }), RangeError);
  });
});
