// Consul's documented blocking-query rules and KV answer decoding, without a server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConsulAclError, ConsulResponseError } from '../../src/dcs/consul/errors.js';
import { nextIndex, TokenBucket } from '../../src/dcs/consul/blocking-index.js';
import { interpretKvAnswer, kvLocation, parseIndexHeader } from '../../src/dcs/consul/kv.js';
import { blockingTimeoutMs, blockingWaitMs, leaderCheckPeriodMs, leaderCheckTimeoutMs } from '../../src/dcs/consul/timing.js';
import { effectiveWaitMs } from '../standins/consul.js';
import type { HttpAnswer } from '../../src/dcs/http-client.js';

test('index rules: forward, unchanged, backwards (reset), zero (sanity check)', () => {
  assert.deepEqual(nextIndex(0n, 42n), { index: 42n, wentBackwards: false });
  assert.deepEqual(nextIndex(42n, 42n), { index: 42n, wentBackwards: false }, 'a wait that timed out');
  assert.deepEqual(nextIndex(42n, 50n), { index: 50n, wentBackwards: false });
  assert.deepEqual(nextIndex(42n, 7n), { index: 1n, wentBackwards: true }, 'reset to 0, then at least 1');
  assert.deepEqual(nextIndex(0n, 0n), { index: 1n, wentBackwards: false }, 'never wait on 0 after an answer');
  assert.deepEqual(nextIndex(1n, 0n), { index: 1n, wentBackwards: true });
  assert.equal(nextIndex(0n, 18446744073709551615n).index, 18446744073709551615n, 'uint64 indexes are exact');
});

test('token bucket: burst of 2, then one per refill period', () => {
  let now = 0;
  const b = new TokenBucket(2, 1000, () => now);
  assert.equal(b.delayMs(), 0);
  b.take();
  assert.equal(b.delayMs(), 0);
  b.take();
  assert.equal(b.delayMs(), 1000);
  now = 400;
  assert.equal(b.delayMs(), 600);
  now = 1000;
  assert.equal(b.delayMs(), 0);
  b.take();
  now = 100_000;
  b.take();
  b.take();
  assert.ok(b.delayMs() > 0, 'never more than the burst saved up');
});

test('wait and timeouts: 10 intervals, clamped to [1 s, 10 m]; client timeout beyond wait + wait/16', () => {
  assert.equal(blockingWaitMs(1000), 10_000);
  assert.equal(blockingWaitMs(10), 1_000);
  assert.equal(blockingWaitMs(3_600_000), 600_000);
  const w = 10_000;
  assert.ok(blockingTimeoutMs(w) > w + w / 16 + 7_000, 'room for jitter and rpc_hold_timeout');
});

test('leader check: every interval (at least 250 ms apart), deadline = period clamped to [1 s, 5 s]', () => {
  assert.deepEqual([leaderCheckPeriodMs(1000), leaderCheckTimeoutMs(1000)], [1000, 1000], 'defaults');
  assert.deepEqual([leaderCheckPeriodMs(10), leaderCheckTimeoutMs(10)], [250, 1000]);
  assert.deepEqual([leaderCheckPeriodMs(3000), leaderCheckTimeoutMs(3000)], [3000, 3000]);
  assert.deepEqual([leaderCheckPeriodMs(60_000), leaderCheckTimeoutMs(60_000)], [60_000, 5000]);
});

test('stand-in waits as Consul: no wait → 5 min, capped at 10 min', () => {
  assert.equal(effectiveWaitMs(0), 300_000);
  assert.equal(effectiveWaitMs(20 * 60_000), 600_000);
  assert.equal(effectiveWaitMs(1500), 1500);
});

test('key location: leading slash stripped, segments encoded', () => {
  assert.deepEqual(kvLocation('/service/pgcluster/leader'), { key: 'service/pgcluster/leader', path: 'v1/kv/service/pgcluster/leader' });
  assert.equal(kvLocation('a b/c?d').path, 'v1/kv/a%20b/c%3Fd');
  assert.throws(() => kvLocation('/'), /names no Consul key/);
});

const answer = (status: number, body: string, headers: Record<string, string> = {}): HttpAnswer => ({
  endpoint: 'http://127.0.0.1:8500', status, headers, body: Buffer.from(body), truncated: false,
});

test('KV answers: value, null Value, 404, 403, missing index header, wrong key', () => {
  const h = { 'x-consul-index': '77' };
  const entry = (v: unknown) => JSON.stringify([{ LockIndex: 1, Key: 'k', Flags: 0, Value: v, Session: 's1', CreateIndex: 5, ModifyIndex: 77 }]);
  assert.deepEqual(interpretKvAnswer(answer(200, entry(Buffer.from('node1').toString('base64')), h), 'k', false),
    { kind: 'found', value: Buffer.from('node1'), modifyIndex: 77n, index: 77n, session: 's1' });
  assert.throws(() => interpretKvAnswer(answer(200, entry('bm9kZTE'), h), 'k', false), /not valid base64/, 'unpadded: not what Consul writes');
  assert.deepEqual((interpretKvAnswer(answer(200, entry(null), h), 'k', false) as { value: Buffer }).value, Buffer.alloc(0));
  assert.deepEqual(interpretKvAnswer(answer(404, '', h), 'k', false), { kind: 'absent', index: 77n });
  assert.throws(() => interpretKvAnswer(answer(403, 'ACL not found'), 'k', true),
    (e: unknown) => e instanceof ConsulAclError && e.tokenNotFound && /consul-token is not a token this Consul knows/.test(e.message));
  assert.throws(() => interpretKvAnswer(answer(403, "Permission denied: token with AccessorID 'x' lacks permission 'key:read' on \"k\""), 'k', true),
    (e: unknown) => e instanceof ConsulAclError && !e.tokenNotFound && /grant its policy key:read/.test(e.message));
  assert.throws(() => interpretKvAnswer(answer(403, 'Permission denied: anonymous token lacks permission'), 'k', false), /no token was sent/);
  assert.throws(() => interpretKvAnswer(answer(404, ''), 'k', false),
    (e: unknown) => e instanceof ConsulResponseError && /X-Consul-Index/.test(e.message), 'a 404 from something that is not Consul');
  assert.throws(() => interpretKvAnswer(answer(200, entry('eA=='), h), 'other', false), /not "other"/);
  assert.throws(() => interpretKvAnswer(answer(200, 'not json', h), 'k', false), ConsulResponseError);
  assert.throws(() => interpretKvAnswer(answer(400, 'Invalid wait time'), 'k', false), /HTTP 400\): Invalid wait time/);
  assert.equal(parseIndexHeader('abc'), null);
  assert.equal(parseIndexHeader(['12']), 12n);
});
