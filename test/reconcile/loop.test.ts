// The reconcile loop over fake edges: coalescing, latest-state-wins, drift, deadlines, stop.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Reconciler, type Transition } from '../../src/reconcile/loop.js';
import { silentLogger } from '../../src/log.js';
import { FakeManager, FakeSource, settle } from './fakes.js';

function setup(over: Partial<ConstructorParameters<typeof Reconciler>[0]> = {}) {
  const source = new FakeSource();
  const manager = new FakeManager();
  const transitions: Transition[] = [];
  const fatal: Error[] = [];
  const r = new Reconciler({
    source, manager, policy: 'hold-lease', triggerValue: 'me', retryNum: 3, retryAfter: 50, log: silentLogger(),
    onTransition: (t) => transitions.push(t), onFatal: (e) => fatal.push(e), ...over,
  });
  return { source, manager, r, transitions, fatal };
}

describe('reconcile loop', () => {
  test('follows the key: ours → acquire, other → release, absent → nothing', async () => {
    const { source, manager, r, transitions } = setup();
    await r.start();
    source.value('me');
    await settle();
    assert.equal(manager.held, true);
    source.value('other');
    await settle();
    assert.equal(manager.held, false);
    source.value(null);
    await settle();
    assert.deepEqual(manager.calls, ['acquire', 'release']);
    assert.deepEqual(transitions.map((t) => t.direction), ['acquire', 'release']);
    assert.equal(transitions[0]!.value, 'me');
    assert.ok(transitions[0]!.reactionMs! >= 0);
    await r.stop(true);
  });

  test('a burst of 1000 changes collapses; the final state wins and no stale transition is applied', async () => {
    const { source, manager, r } = setup();
    manager.delayMs = 5;
    await r.start();
    for (let i = 0; i < 1000; i++) source.value(i % 2 === 0 ? 'me' : 'other');
    source.value('other');
    await settle(100);
    assert.equal(manager.held, false);
    // At most the first pass acted on an intermediate state; everything else collapsed.
    assert.ok(manager.calls.length <= 2, `calls: ${manager.calls.join(',')}`);
    await r.stop(true);
  });

  test('the key changes while an acquire is in flight → released right after', async () => {
    const { source, manager, r } = setup();
    manager.delayMs = 30;
    await r.start();
    source.value('me');
    await settle(5);
    source.value('other');
    await settle(100);
    assert.deepEqual(manager.calls, ['acquire', 'release']);
    assert.equal(manager.held, false);
    await r.stop(true);
  });

  test('drift: VIP removed behind our back → restored; added on a non-leader → removed', async () => {
    const { source, manager, r } = setup();
    await r.start();
    source.value('me');
    await settle();
    manager.external(false);
    await settle();
    assert.equal(manager.held, true);
    source.value('other');
    await settle();
    manager.external(true);
    await settle();
    assert.equal(manager.held, false);
    assert.deepEqual(manager.calls, ['acquire', 'acquire', 'release', 'release']);
    await r.stop(true);
  });

  test('interface missing → waits; appears → acquires; link back up while held → announces', async () => {
    const { source, manager, r } = setup();
    manager.ready = false;
    await r.start();
    source.value('me');
    await settle();
    assert.deepEqual(manager.calls, []);
    manager.external(false, true);
    await settle();
    assert.deepEqual(manager.calls, ['acquire']);
    manager.external(true, false);
    await settle();
    manager.external(true, true);
    await settle();
    assert.deepEqual(manager.calls, ['acquire', 'announce']);
    await r.stop(true);
  });

  test('hold-lease: DCS lost → held until the lease deadline, released at it (timer, no event)', async () => {
    const { source, manager, r } = setup();
    await r.start();
    const now = performance.now();
    source.value('me', now, now + 150);
    await settle();
    assert.equal(manager.held, true);
    source.emit({ kind: 'unreachable', since: performance.now(), error: new Error('down'), failures: 1, last: { kind: 'value', value: 'me', revision: '1', at: now, leaseDeadline: now + 150 } });
    await settle(60);
    assert.equal(manager.held, true, 'still held before the deadline');
    await settle(150);
    assert.equal(manager.held, false, 'released at the deadline');
    await r.stop(true);
  });

  test('a failed acquire is retried after retry-after', async () => {
    const { source, manager, r } = setup();
    manager.failNext = new Error('EBUSY');
    await r.start();
    source.value('me');
    await settle(150);
    assert.deepEqual(manager.calls, ['acquire', 'acquire']);
    assert.equal(manager.held, true);
    await r.stop(true);
  });

  test('a failure naming retryAt is not retried before it, whatever else wakes the loop', async () => {
    const { source, manager, r } = setup();
    manager.failNext = Object.assign(new Error('FAILOVER_LOCKED'), { retryAt: performance.now() + 250 });
    await r.start();
    source.value('me');
    for (let i = 0; i < 10; i++) {
      await settle(15);
      source.value('me'); // e.g. lease-deadline refreshes: each wakes the loop
      manager.external(false);
    }
    assert.deepEqual(manager.calls, ['acquire'], 'no second attempt inside the window the error named');
    await settle(250);
    assert.deepEqual(manager.calls, ['acquire', 'acquire']);
    assert.equal(manager.held, true);
    await r.stop(true);
  });

  test('repeated failures back off: retry-num attempts retry-after apart, then slower', async () => {
    const { source, manager, r } = setup({ retryNum: 2, retryAfter: 40 });
    const failing = new Error('EBUSY');
    const times: number[] = [];
    const acquire = manager.acquire.bind(manager);
    manager.acquire = async () => {
      times.push(performance.now());
      await acquire();
      if (times.length <= 6) { manager.held = false; throw failing; }
    };
    await r.start();
    source.value('me');
    await settle(1500);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    assert.ok(gaps.length >= 4, `attempts: ${times.length}`);
    assert.ok(gaps[0]! >= 38 && gaps[1]! >= 38 && gaps[0]! < 120, `flat phase: ${gaps.map(Math.round).join(', ')}`);
    assert.ok(gaps.at(-1)! > gaps[0]! * 2, `then growing: ${gaps.map(Math.round).join(', ')}`);
    await r.stop(true);
  });

  test('a fatal error (no link-layer address) is reported, not retried', async () => {
    const { source, manager, r, fatal } = setup();
    const e = Object.assign(new Error('interface lo has no link-layer address'), { name: 'NoLinkLayerAddressError' });
    manager.failNext = e;
    await r.start();
    source.value('me');
    await settle(150);
    assert.deepEqual(fatal, [e]);
    assert.deepEqual(manager.calls, ['acquire']);
    await r.stop(false);
  });

  test('stop(true) releases a held VIP and closes both edges; stop(false) keeps it', async () => {
    for (const release of [true, false]) {
      const { source, manager, r } = setup();
      await r.start();
      source.value('me');
      await settle();
      assert.equal(await r.stop(release), release);
      assert.equal(manager.held, !release);
      assert.equal(source.closed, true);
      assert.equal(manager.calls.at(-1), 'close');
      source.value('other');
      await settle();
      assert.equal(manager.held, !release, 'no action after stop');
    }
  });
});
