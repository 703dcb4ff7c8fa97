// The pure decision function, rule by rule: no sockets, no clock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LeaderValue, LeaderView } from '../../src/reconcile/ports.js';
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
  test('a role VIP: same decisions and causes, reasons in terms of the role', () => {
    const other = decide(input({ view: value('node2'), held: HELD, role: 'replica' }));
    assert.deepEqual([other.action, other.cause, other.reason], ['release', 'key-other', 'role replica designates "node2"']);
    const none = decide(input({ view: value(null), held: HELD, role: 'sync-standby' }));
    assert.deepEqual([none.action, none.cause, none.reason], ['release', 'key-absent', 'role sync-standby designates no member']);
    const ours = decide(input({ view: value(ME), role: 'replica' }));
    assert.deepEqual([ours.action, ours.cause, ours.reason], ['acquire', 'key-ours', 'role replica designates this node']);
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

describe('decide: dcs-loss patroni (follow the local Patroni GET /primary while the DCS is unreachable)', () => {
  const since = 10_000;
  const MAX_AGE = 1800; // interval 1000 + timeout 800
  const p = (over: Partial<DecideInput>): DecideInput => input({ policy: 'patroni', localPrimaryMaxAgeMs: MAX_AGE, view: lost(since, value(ME, 12_000)), held: HELD, ...over });
  const cases: Array<[string, Partial<DecideInput>, string, string, number | null]> = [
    ['/primary 200, fresh → hold past the lease deadline (failsafe keeps the primary)', { localPrimary: { ok: true, at: 60_000 }, now: 61_000 }, 'none', 'dcs-patroni-primary', 61_800],
    ['/primary 200, VIP vanished → acquire again', { localPrimary: { ok: true, at: 60_000 }, now: 60_500, held: FREE }, 'acquire', 'dcs-patroni-primary', 61_800],
    ['/primary 503 → release at once (no retry window, no lease)', { localPrimary: { ok: false, at: since + 1 }, now: since + 2 }, 'release', 'dcs-patroni-not-primary', null],
    ['/primary 200 but older than one answer period → release', { localPrimary: { ok: true, at: 60_000 }, now: 61_800 }, 'release', 'dcs-patroni-not-primary', null],
    ['no answer yet, within one answer period of the loss → keep', { localPrimary: null, now: since + 1000 }, 'none', 'dcs-patroni-waiting', since + MAX_AGE],
    ['no answer yet, one answer period after the loss → release', { localPrimary: null, now: since + MAX_AGE }, 'release', 'dcs-patroni-not-primary', null],
    ['last value named another node → release even if /primary is 200', { view: lost(since, value('node2')), localPrimary: { ok: true, at: since }, now: since + 1 }, 'release', 'dcs-lost-other', null],
    ['not held, last value another node, /primary 200 → stay off', { view: lost(since, value('node2')), held: FREE, localPrimary: { ok: true, at: since }, now: since + 1 }, 'none', 'dcs-lost-other', null],
  ];
  for (const [name, over, action, cause, recheckAt] of cases) {
    test(name, () => {
      const d = decide(p(over));
      assert.equal(d.action, action);
      assert.equal(d.cause, cause);
      assert.equal(d.recheckAt, recheckAt);
    });
  }
  test('while the DCS answers, the local answer is ignored: the key decides (as today)', () => {
    assert.equal(decide(p({ view: value('node2'), localPrimary: { ok: true, at: 999 } })).action, 'release');
    assert.equal(decide(p({ view: value(ME), held: FREE, localPrimary: { ok: false, at: 999 } })).action, 'acquire');
  });
  test('while the DCS answers, a lease past its deadline does not release (Patroni, not the lease, decides on loss)', () => {
    assert.equal(decide(p({ view: value(ME, 5000), now: 9000, localPrimary: null })).action, 'none');
  });
  test('restart during an outage: the VIP already here is kept while /primary says 200, dropped when not', () => {
    const base = { view: null, startedAt: since } as const;
    const kept = decide(p({ ...base, localPrimary: { ok: true, at: since + 100 }, now: since + 200 }));
    assert.equal(kept.action, 'none');
    assert.equal(kept.cause, 'startup-keep');
    const dropped = decide(p({ ...base, localPrimary: { ok: false, at: since + 100 }, now: since + 200 }));
    assert.equal(dropped.action, 'release');
    assert.equal(dropped.cause, 'startup-lost');
    assert.equal(decide(p({ ...base, held: FREE, localPrimary: { ok: true, at: since }, now: since + 1 })).action, 'none', 'never acquires before the DCS answered');
  });
});
