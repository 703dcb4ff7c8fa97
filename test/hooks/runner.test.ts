// The hook queue with real processes but without a daemon: order, the bound on waiting events
// (the oldest waiting one is dropped, logged and counted), a hook that cannot be started, a
// flood of output cut to bounded lines, and the metrics a run leaves behind.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import pino from 'pino';
import { HookQueue, MAX_LINES_PER_RUN, type HookName, type HookResult } from '../../src/hooks/runner.js';
import { Metrics } from '../../src/ops/metrics.js';

interface Rec { level: number; msg: string; [k: string]: unknown }

function capture(): { log: pino.Logger; records: Rec[] } {
  const records: Rec[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line !== '') records.push(JSON.parse(line) as Rec);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, dest), records };
}

const ev = (event: 'acquire' | 'release', cause: string) => ({ event, name: '198.51.100.10', ip: '198.51.100.10', cause, value: 'n1' });

describe('hook queue', () => {
  test('runs in order, one at a time; beyond the bound the oldest waiting event is dropped, logged and counted', async () => {
    const { log, records } = capture();
    const results: Array<[HookName, HookResult]> = [];
    // Each run prints its cause: /bin/sh -c is the test's choice of hook, not the daemon's.
    const q = new HookQueue({
      commands: { acquire: ['/bin/sh', '-c', 'sleep 0.2; echo "$VIP_CAUSE"'], release: ['/bin/sh', '-c', 'echo "$VIP_CAUSE"'] },
      timeoutMs: 10_000, log, maxQueued: 2, onResult: (h, r) => results.push([h, r]),
    });
    q.push(ev('acquire', 'c1'));
    assert.equal(q.queued, 1, 'nothing starts inside push(): the caller is the reconciler');
    await new Promise((r) => setImmediate(r));
    assert.equal(q.queued, 0, 'c1 runs');
    q.push(ev('release', 'c2'));
    q.push(ev('acquire', 'c3'));
    assert.equal(q.queued, 2, 'c1 runs, c2 and c3 wait');
    q.push(ev('release', 'c4'));
    assert.equal(q.queued, 2);
    await q.close(10_000);
    const printed = records.filter((r) => r.stream === 'stdout').map((r) => r.msg);
    assert.deepEqual(printed, ['on-acquire: c1', 'on-acquire: c3', 'on-release: c4']);
    assert.deepEqual(results, [['on-release', 'dropped'], ['on-acquire', 'ok'], ['on-acquire', 'ok'], ['on-release', 'ok']]);
    const drop = records.find((r) => /dropped/.test(r.msg))!;
    assert.equal(drop.level, 40);
    assert.match(drop.msg, /^hook on-release for release \(c2\) dropped: 2 hooks already wait behind the running one$/);
  });

  test('a hook that cannot be started is an error, counted; the next one still runs', async () => {
    const { log, records } = capture();
    const results: Array<[HookName, HookResult, number | null]> = [];
    const q = new HookQueue({ commands: { acquire: ['/nonexistent/hook'], release: ['/bin/true'] }, timeoutMs: 5000, log, onResult: (h, r, s) => results.push([h, r, s]) });
    q.push(ev('acquire', 'a'));
    q.push(ev('release', 'b'));
    await q.close(5000);
    assert.deepEqual(results.map(([h, r, s]) => [h, r, s === null]), [['on-acquire', 'error', true], ['on-release', 'ok', false]]);
    const err = records.find((r) => r.result === 'error')!;
    assert.equal(err.level, 50);
    assert.match(err.msg, /^hook on-acquire could not be started: spawn \/nonexistent\/hook ENOENT$/);
  });

  test('a flood of output: lines cut at 1000 characters, at most MAX_LINES_PER_RUN per stream, the rest counted', async () => {
    const { log, records } = capture();
    const q = new HookQueue({ commands: { acquire: ['/bin/sh', '-c', 'head -c 5000 /dev/zero | tr "\\0" x; echo; i=0; while [ $i -lt 300 ]; do echo "line $i"; i=$((i+1)); done'] }, timeoutMs: 10_000, log });
    q.push(ev('acquire', 'flood'));
    await q.close(10_000);
    const out = records.filter((r) => r.stream === 'stdout' && r.hook === 'on-acquire' && r.droppedLines === undefined);
    assert.equal(out.length, MAX_LINES_PER_RUN);
    assert.equal(out[0]!.truncated, true);
    assert.equal(out[0]!.msg, `on-acquire: ${'x'.repeat(1000)} …(cut at 1000 characters)`);
    assert.equal(out[1]!.msg, 'on-acquire: line 0');
    const dropped = records.find((r) => r.droppedLines !== undefined)!;
    assert.equal(dropped.droppedLines, 301 - MAX_LINES_PER_RUN);
  });

  test('metrics: series only once hooks are configured, 0 for every result; runs and durations counted', async () => {
    const m = new Metrics({ version: '9.9.9', dcsType: 'etcd', managerType: 'basic', defaultMetrics: false });
    const primary = m.vip('primary');
    m.vip('billing');
    assert.ok(!(await m.render()).includes('vip_manager_hook_'), 'a daemon without hooks has no hook series');
    primary.enableHooks(['on-acquire']);
    primary.hookRun('on-acquire', 'failed', 0.3);
    primary.hookRun('on-acquire', 'dropped', null);
    const text = await m.render();
    for (const r of ['ok', 'timeout', 'error']) assert.match(text, new RegExp(`^vip_manager_hook_runs_total\\{vip="primary",hook="on-acquire",result="${r}"\\} 0$`, 'm'));
    assert.match(text, /^vip_manager_hook_runs_total\{vip="primary",hook="on-acquire",result="failed"\} 1$/m);
    assert.match(text, /^vip_manager_hook_runs_total\{vip="primary",hook="on-acquire",result="dropped"\} 1$/m);
    assert.match(text, /^vip_manager_hook_duration_seconds_count\{vip="primary",hook="on-acquire"\} 1$/m);
    assert.match(text, /^vip_manager_hook_duration_seconds_bucket\{le="0.5",vip="primary",hook="on-acquire"\} 1$/m);
    assert.ok(!text.includes('hook="on-release"'), 'an unconfigured hook has no series');
    assert.ok(!/^vip_manager_hook_\w+\{[^}]*vip="billing"/m.test(text), 'an entry without hooks has no hook series');
  });
});
