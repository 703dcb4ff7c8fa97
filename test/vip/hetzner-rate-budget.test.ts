// The sliding-window request budget and the IP comparisons the Hetzner managers rely on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalIp, ipMatchesNetwork, sameIp } from '../../src/vip/hetzner/ip.js';
import { SlidingWindowBudget } from '../../src/vip/hetzner/rate-budget.js';
import { backoffMs, maxAttempts, MAX_BACKOFF_MS } from '../../src/vip/hetzner/retry.js';
import { FakeClock } from '../standins/hetzner-fake-clock.js';
import { captureLog } from '../standins/hetzner-logs.js';

describe('SlidingWindowBudget', () => {
  it('never allows more than `limit` in any window and says when the next one is free', () => {
    const clock = new FakeClock();
    const logs = captureLog();
    const b = new SlidingWindowBudget('test', 5, 60_000, clock, logs.log);
    const t0 = clock.now();
    for (let i = 0; i < 5; i++) {
      assert.equal(b.tryTake(), true);
      clock.jumpTo(clock.now() + 1_000);
    }
    assert.equal(b.tryTake(), false);
    assert.equal(b.remaining(), 0);
    assert.equal(b.nextFreeAt(), t0 + 60_000);
    clock.jumpTo(t0 + 59_999);
    assert.equal(b.tryTake(), false);
    clock.jumpTo(t0 + 60_000);
    assert.equal(b.tryTake(), true);
    assert.equal(b.tryTake(), false);
  });

  it('warns once when less than 20 % is left, and again only after it recovered', () => {
    const clock = new FakeClock();
    const logs = captureLog();
    const b = new SlidingWindowBudget('GET', 10, 1_000, clock, logs.log);
    for (let i = 0; i < 10; i++) b.tryTake();
    const warnings = () => logs.lines.filter((l) => l.includes('running low')).length;
    assert.equal(warnings(), 1);
    assert.equal(b.isLow(), true);
    clock.jumpTo(clock.now() + 1_000);
    assert.equal(b.isLow(), false);
    for (let i = 0; i < 9; i++) b.tryTake();
    assert.equal(warnings(), 2);
  });
});

describe('retry pacing', () => {
  it('doubles retry-after per attempt up to the cap; retry-num counts retries', () => {
    assert.deepEqual([1, 2, 3, 4].map((a) => backoffMs(250, a)), [250, 500, 1000, 2000]);
    assert.equal(backoffMs(250, 30), MAX_BACKOFF_MS);
    assert.equal(maxAttempts(3), 4);
  });
});

describe('IP comparison', () => {
  it('compares IPv6 canonically and matches addresses inside a /64', () => {
    assert.equal(canonicalIp('2001:0DB8:0000::0001'), '2001:db8::1');
    assert.equal(sameIp('2a01:4f8:111:4221::', '2a01:04f8:0111:4221:0:0:0:0'), true);
    assert.equal(sameIp('10.0.0.1', '110.0.0.1'), false);
    assert.equal(ipMatchesNetwork('2001:db8:1:2::10', '2001:db8:1:2::/64'), true);
    assert.equal(ipMatchesNetwork('2001:db8:1:3::10', '2001:db8:1:2::/64'), false);
    assert.equal(ipMatchesNetwork('203.0.113.7', '203.0.113.7'), true);
    assert.equal(ipMatchesNetwork('203.0.113.70', '203.0.113.7'), false);
  });
});
