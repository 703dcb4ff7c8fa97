// The shared timer: jobs whose windows overlap share one wake-up; none runs before its window.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { SharedTimer } from '../src/wakeups.js';

function recorder() {
  const runs: Array<{ name: string; at: number }> = [];
  let done: () => void = () => {};
  const all = new Promise<void>((r) => { done = r; });
  return { runs, all, mark: (name: string, expected: number) => () => { runs.push({ name, at: performance.now() }); if (runs.length === expected) done(); } };
}

test('a loose job rides on a tight one whose moment falls inside its window: one wake-up for both', async () => {
  const t = new SharedTimer();
  const r = recorder();
  const start = performance.now();
  t.schedule('loose', 50, 400, r.mark('loose', 2));
  t.schedule('tight', 100, 100, r.mark('tight', 2));
  await r.all;
  assert.deepEqual(r.runs.map((x) => x.name).sort(), ['loose', 'tight']);
  // Same wake-up: run back to back, far before the loose job's own latest moment.
  assert.ok(Math.abs(r.runs[0]!.at - r.runs[1]!.at) < 5, JSON.stringify(r.runs));
  assert.ok(r.runs[0]!.at - start >= 99, `ran ${r.runs[0]!.at - start} ms after scheduling`);
});

test('a job is never run before its window opens, even on another job\'s wake-up', async () => {
  const t = new SharedTimer();
  const r = recorder();
  const start = performance.now();
  t.schedule('early', 20, 20, r.mark('early', 2));
  t.schedule('later', 150, 200, r.mark('later', 2));
  await r.all;
  const later = r.runs.find((x) => x.name === 'later')!;
  assert.equal(r.runs[0]!.name, 'early');
  assert.ok(later.at - start >= 150, `ran ${later.at - start} ms after scheduling`);
});

test('scheduling a key again replaces its job; a cancelled job never runs', async () => {
  const t = new SharedTimer();
  const r = recorder();
  const ran: string[] = [];
  t.schedule('a', 10, 10, () => ran.push('a-first'));
  t.schedule('a', 30, 30, () => ran.push('a-second'));
  t.schedule('b', 20, 20, () => ran.push('b'));
  t.cancel('b');
  t.schedule('end', 80, 80, r.mark('end', 1));
  await r.all;
  assert.deepEqual(ran, ['a-second']);
});
