// The pure decision function, rule by rule: no sockets, no clock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LeaderValue, LeaderView } from '../../src/dcs/source.js';
import { decide, type DecideInput } from '../../src/reconcile/decide.js';

const ME = 'node1';
const value = (v: string | null, leaseDeadline: number | null = null, at = 0): LeaderValue => ({ kind: 'value', value: v, revision: '7', at, leaseDeadline });
const lost = (since: number, last: LeaderValue | null): LeaderView => ({ kind: 'unreachable', since, error: new Error('down'), failures: 1, last });

function input(over: Partial<DecideInput>): DecideInput {
  return {
    view: null, triggerValue: ME, held: { held: false, ready: true }, wasReady: true, policy: 'hold-lease', sourceHasLeases: true,
    retryNum: 3, retryAfter: 250, startedAt: 0, now: 1000, ...over,
  };
}
const HELD = { held: true, ready: true };
const FREE = { held: false, ready: true };

describe('decide: the DCS answers', () => {
  const cases: Array<[string, Partial<DecideInput>, string]> = [
    ['key absent, not held → none', { view: value(null) }, 'none'],
    ['key absent, held → release', { view: value(null), held: HELD }, 'release'],
    ['key = this node, not held → acquire', { view: value(ME) }, 'acquire'],
    ['key = this node, held → none', { view: value(ME), held: HELD }, 'none'],
    ['key = other node, held → release', { view: value('node2'), held: HELD }, 'release'],
    ['key = other node, not held (stray VIP elsewhere is not ours to fix) → none', { view: value('node2') }, 'none'],
    ['key = this node but the interface is missing → none (wait)', { view: value(ME), held: { held: false, ready: false, detail: 'interface eth0 does not exist' } }, 'none'],
    ['key = other, held, interface down → none (cannot act; wait)', { view: value('node2'), held: { held: true, ready: false } }, 'none'],
    ['held, link just came back up → announce', { view: value(ME), held: HELD, wasReady: false }, 'announce'],
    ['key = this node with a live lease → none', { view: value(ME, 5000), held: HELD, now: 4999 }, 'none'],
    ['hold-lease: lease deadline passed without a delete → release', { view: value(ME, 5000), held: HELD, now: 5000 }, 'release'],
    ['release policy ignores the lease while connected', { view: value(ME, 5000), held: HELD, now: 9000, policy: 'release' }, 'none'],
    ['comparison is exact (no prefix or case folding)', { view: value('node10'), held: HELD }, 'release'],
  ];
  for (const [name, over, action] of cases) {
    test(name, () => assert.equal(decide(input(over)).action, action));
  }
  test('hold-lease asks to be re-run at the lease deadline', () => {
    assert.equal(decide(input({ view: value(ME, 5000), held: HELD })).recheckAt, 5000);
  });
  test('the reason names what the key says', () => {
    assert.match(decide(input({ view: value('node2'), held: HELD })).reason, /names "node2"/);
  });
});

describe('decide: the DCS is unreachable', () => {
  const since = 10_000;
  const cases: Array<[string, Partial<DecideInput>, string, number | null]> = [
    // hold-lease
    ['hold-lease: held, lease valid → keep holding until the deadline', { view: lost(since, value(ME, 20_000)), held: HELD, now: 19_999 }, 'none', 20_000],
    ['hold-lease: held, at the deadline → release', { view: lost(since, value(ME, 20_000)), held: HELD, now: 20_000 }, 'release', null],
    ['hold-lease: VIP vanished during the outage, lease valid → acquire again', { view: lost(since, value(ME, 20_000)), held: FREE, now: 15_000 }, 'acquire', 20_000],
    ['hold-lease: key without lease → behaves as release (within retries)', { view: lost(since, value(ME, null)), held: HELD, now: since + 749 }, 'none', since + 750],
    ['hold-lease: key without lease → behaves as release (after retries)', { view: lost(since, value(ME, null)), held: HELD, now: since + 750 }, 'release', null],
    ['hold-lease: source without leases → behaves as release', { view: lost(since, value(ME, 99_999)), held: HELD, sourceHasLeases: false, now: since + 750 }, 'release', null],
    ['hold-lease: last value was another node → release at once', { view: lost(since, value('node2', 99_999)), held: HELD, now: since }, 'release', null],
    // release
    ['release: within retry-num × retry-after → keep', { policy: 'release', view: lost(since, value(ME, 99_999)), held: HELD, now: since + 100 }, 'none', since + 750],
    ['release: after retry-num × retry-after → release', { policy: 'release', view: lost(since, value(ME, 99_999)), held: HELD, now: since + 750 }, 'release', null],
    ['release: retry settings are honoured', { policy: 'release', retryNum: 10, retryAfter: 1000, view: lost(since, value(ME)), held: HELD, now: since + 9_999 }, 'none', since + 10_000],
    // keep
    ['keep: held → keep forever', { policy: 'keep', view: lost(since, value(ME)), held: HELD, now: since + 1e9 }, 'none', null],
    ['keep: not held → stay without', { policy: 'keep', view: lost(since, value(ME)), held: FREE, now: since + 1e9 }, 'none', null],
    ['keep: last value another node, still held → keep (state frozen)', { policy: 'keep', view: lost(since, value('node2')), held: HELD, now: since }, 'none', null],
  ];
  for (const [name, over, action, recheckAt] of cases) {
    test(name, () => {
      const d = decide(input(over));
      assert.equal(d.action, action, d.reason);
      assert.equal(d.recheckAt, recheckAt);
    });
  }
});

describe('decide: startup before the first answer', () => {
  test('VIP already here: kept while waiting (restart on the leader never drops it)', () => {
    const d = decide(input({ held: HELD, startedAt: 0, now: 100 }));
    assert.equal(d.action, 'none');
    assert.equal(d.desired, true);
  });
  test('VIP already here, DCS silent past retry-num × retry-after: released (release / hold-lease)', () => {
    for (const policy of ['release', 'hold-lease'] as const) {
      assert.equal(decide(input({ policy, held: HELD, startedAt: 0, now: 750 })).action, 'release');
    }
  });
  test('VIP already here, DCS silent, keep → kept', () => {
    assert.equal(decide(input({ policy: 'keep', held: HELD, startedAt: 0, now: 1e9 })).action, 'none');
  });
  test('first answer was a failure: a VIP here is presumed ours and gets the grace period', () => {
    assert.equal(decide(input({ view: lost(500, null), held: HELD, now: 1000 })).action, 'none');
    assert.equal(decide(input({ view: lost(500, null), held: HELD, now: 1250 })).action, 'release');
  });
  test('no VIP here: nothing is added before the DCS answers', () => {
    assert.equal(decide(input({ held: FREE })).action, 'none');
    assert.equal(decide(input({ view: lost(0, null), held: FREE, policy: 'keep' })).action, 'none');
  });
});
