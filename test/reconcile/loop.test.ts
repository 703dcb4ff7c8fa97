// The reconcile loop over fake edges: coalescing, latest-state-wins, drift, deadlines, stop.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LeaderView } from '../../src/reconcile/ports.js';
import { Reconciler, type Transition } from '../../src/reconcile/loop.js';
import { silentLogger } from '../../src/log.js';
import { FakeManager, FakeSource, idle, settle, until } from './fakes.js';

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
    await idle(r);
    assert.equal(manager.held, true);
    source.value('other');
    await idle(r);
    assert.equal(manager.held, false);
    source.value(null);
    await idle(r);
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
    await idle(r);
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
    await until('the acquire in flight', () => manager.calls.length === 1);
    source.value('other');
    await idle(r);
    assert.deepEqual(manager.calls, ['acquire', 'release']);
    assert.equal(manager.held, false);
    await r.stop(true);
  });

  test('drift: VIP removed behind our back → restored; added on a non-leader → removed', async () => {
    const { source, manager, r } = setup();
    await r.start();
    source.value('me');
    await idle(r);
    manager.external(false);
    await idle(r);
    assert.equal(manager.held, true);
    source.value('other');
    await idle(r);
    manager.external(true);
    await idle(r);
    assert.equal(manager.held, false);
    assert.deepEqual(manager.calls, ['acquire', 'acquire', 'release', 'release']);
    await r.stop(true);
  });

  test('interface missing → waits; appears → acquires; link back up while held → announces', async () => {
    const { source, manager, r } = setup();
    manager.ready = false;
    await r.start();
    source.value('me');
    await idle(r);
    assert.deepEqual(manager.calls, []);
    manager.external(false, true);
    await idle(r);
    assert.deepEqual(manager.calls, ['acquire']);
    manager.external(true, false);
    await idle(r);
    manager.external(true, true);
    await idle(r);
    assert.deepEqual(manager.calls, ['acquire', 'announce']);
    await r.stop(true);
  });

  test('hold-lease: DCS lost → held until the lease deadline, released at it (timer, no event)', async () => {
    const { source, manager, r } = setup();
    let releasedAt: number | null = null;
    const release = manager.release.bind(manager);
    manager.release = async () => { releasedAt = performance.now(); await release(); };
    await r.start();
    const now = performance.now();
    // 1 s ahead: the checks before it take about a millisecond (over 100x margin under load).
    const deadline = now + 1000;
    source.value('me', now, deadline);
    await idle(r);
    assert.equal(manager.held, true);
    source.emit({ kind: 'unreachable', since: performance.now(), error: new Error('down'), failures: 1, last: { kind: 'value', value: 'me', revision: '1', at: now, leaseDeadline: deadline } });
    await idle(r);
    assert.ok(performance.now() < deadline, 'checked before the deadline');
    assert.equal(manager.held, true, 'still held before the deadline');
    // No further event: only the loop's own timer can release it.
    await until('the release at the deadline', () => !manager.held, 10_000);
    assert.ok(releasedAt! >= deadline, `released ${(releasedAt! - deadline).toFixed(1)} ms after the deadline, never before`);
    await r.stop(true);
  });

  test('a lease deadline beyond what a timer can hold arms no timer Node would fire early, nor warn about', async () => {
    const { source, manager, r } = setup();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      await r.start();
      const now = performance.now();
      source.value('me', now, now + 9_223_372_036_000);
      await idle(r);
      assert.equal(manager.held, true);
      assert.deepEqual(manager.calls, ['acquire'], 'no early re-check acted');
      assert.deepEqual(warnings.map((w) => w.name), [], 'no TimeoutOverflowWarning');
      await r.stop(true);
    } finally {
      process.off('warning', onWarning);
    }
  });

  test('a failed acquire is retried after retry-after', async () => {
    const { source, manager, r } = setup();
    manager.failNext = new Error('EBUSY');
    await r.start();
    source.value('me');
    await until('the retried acquire', () => manager.calls.length === 2);
    await idle(r);
    assert.deepEqual(manager.calls, ['acquire', 'acquire']);
    assert.equal(manager.held, true);
    await r.stop(true);
  });

  test('a failure naming retryAt is not retried before it, whatever else wakes the loop', async () => {
    // The loop's clock is real time plus an offset the test moves: the window the error names is
    // a minute long, so no amount of scheduling delay can reach its end before the test says so.
    let offset = 0;
    const { source, manager, r } = setup({ now: () => performance.now() + offset });
    const WINDOW_MS = 60_000;
    manager.failNext = Object.assign(new Error('FAILOVER_LOCKED'), { retryAt: performance.now() + WINDOW_MS });
    await r.start();
    source.value('me');
    await idle(r);
    assert.deepEqual(manager.calls, ['acquire']);
    for (let i = 0; i < 10; i++) {
      source.value('me'); // e.g. lease-deadline refreshes: each wakes the loop
      await idle(r);
      manager.external(false);
      await idle(r);
    }
    assert.deepEqual(manager.calls, ['acquire'], 'no second attempt inside the window the error named');
    offset = WINDOW_MS;
    source.value('me');
    await idle(r);
    assert.deepEqual(manager.calls, ['acquire', 'acquire'], 'retried once the window is over');
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
    await until('seven attempts', () => times.length >= 7, 10_000);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    // Timers never fire early, so each gap is at least its base delay (jitter only adds):
    // 40 three times (the first failure and retry-num 2 more), then 40 × 1.6^k. Lower bounds
    // alone show the growth: the sixth gap's floor (164 ms) is above anything the flat phase
    // could give (40 + 20% jitter).
    const floors = [40, 40, 40, 64, 102.4, 163.84];
    gaps.forEach((g, i) => assert.ok(g >= floors[i]! - 1, `gap ${i + 1} is ${g.toFixed(1)} ms, below its floor ${floors[i]} ms: ${gaps.map(Math.round).join(', ')}`));
    assert.ok(gaps[5]! > 2 * 40 * 1.2, `then growing: ${gaps.map(Math.round).join(', ')}`);
    await r.stop(true);
  });

  test('a fatal error (no link-layer address) is reported, not retried', async () => {
    const { source, manager, r, fatal } = setup();
    const e = Object.assign(new Error('interface lo has no link-layer address'), { name: 'NoLinkLayerAddressError' });
    manager.failNext = e;
    await r.start();
    source.value('me');
    await until('the fatal error reported', () => fatal.length === 1);
    // Absence: three retry-after periods in which a retry would have come.
    await settle(3 * 50);
    assert.deepEqual(fatal, [e]);
    assert.deepEqual(manager.calls, ['acquire']);
    await r.stop(false);
  });

  test('stop(true) releases a held VIP and closes both edges; stop(false) keeps it', async () => {
    for (const release of [true, false]) {
      const { source, manager, r } = setup();
      await r.start();
      source.value('me');
      await idle(r);
      assert.equal(await r.stop(release), release);
      assert.equal(manager.held, !release);
      assert.equal(source.closed, true);
      assert.equal(manager.calls.at(-1), 'close');
      source.value('other');
      await idle(r);
      assert.equal(manager.held, !release, 'no action after stop');
    }
  });
});

describe('reconcile loop: dcs-loss patroni', () => {
  const unreachable = (since: number, value: string): LeaderView => ({
    kind: 'unreachable', since, error: new Error('down'), failures: 1,
    last: { kind: 'value', value, revision: '1', at: since - 1, leaseDeadline: since + 10 },
  });

  test('holds past the lease while the local answer is primary, releases at once when it is not, and ignores it while the DCS answers', async () => {
    let now = 1000;
    const { source, manager, r, transitions } = setup({ policy: 'patroni', localPrimaryMaxAgeMs: 1800, now: () => now });
    await r.start();
    r.setLocalPrimary({ ok: false, at: now });
    source.value('me', now, now + 10);
    await idle(r);
    assert.equal(manager.held, true, 'the key decides while the DCS answers, whatever /primary says');
    now = 2000;
    r.setLocalPrimary({ ok: true, at: now });
    source.emit(unreachable(now, 'me'));
    await idle(r);
    assert.equal(manager.held, true, 'kept: the local Patroni says primary (the lease deadline has passed)');
    now = 2500;
    r.setLocalPrimary({ ok: false, at: now });
    await idle(r);
    assert.equal(manager.held, false, 'released on the first answer that is not primary, without waiting for a timer');
    assert.equal(transitions.at(-1)!.cause, 'dcs-patroni-not-primary');
    await r.stop(true);
  });

  test('an answer that is not renewed stops counting after its age: the armed recheck releases', async () => {
    const { source, manager, r, transitions } = setup({ policy: 'patroni', localPrimaryMaxAgeMs: 80 });
    await r.start();
    source.value('me');
    await idle(r);
    r.setLocalPrimary({ ok: true, at: performance.now() });
    source.emit(unreachable(performance.now(), 'me'));
    await idle(r);
    assert.equal(manager.held, true);
    await until('the release after 80 ms without a new answer', () => !manager.held, 2000);
    assert.equal(transitions.at(-1)!.cause, 'dcs-patroni-not-primary');
    await r.stop(true);
  });
});
