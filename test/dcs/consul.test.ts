// The Consul leader source against the Consul stand-in (a real HTTP server on loopback that
// follows Consul's HTTP API documentation; see test/standins/consul.ts).
import { consulSourceOptions } from '../../src/daemon/factories.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe as suite, test } from 'node:test';
import type { Config } from '../../src/config/schema.js';
import { CHURN_BURST, CHURN_REFILL_MS } from '../../src/dcs/consul/blocking-index.js';
import { ConsulAclError, ConsulLeaderCheckError } from '../../src/dcs/consul/errors.js';
import { ConsulLeaderSource, type ConsulSourceOptions } from '../../src/dcs/consul/source.js';
import { silentLogger } from '../../src/log.js';
import type { LeaderUnreachable, LeaderValue } from '../../src/reconcile/ports.js';
import { createPki } from '../harness/tls.js';
import { ConsulStandin, type ConsulStandinOptions } from '../standins/consul.js';
import { captureLog, collectViews, isUnreachable, isValue, sleep, httpGet } from './consul-helpers.js';

const KEY = 'service/pgcluster/leader';

const standins: ConsulStandin[] = [];
const sources: ConsulLeaderSource[] = [];
after(async () => {
  await Promise.all(sources.map((s) => s.close()));
  await Promise.all(standins.map((s) => s.close()));
});

async function standin(opts: ConsulStandinOptions = {}): Promise<ConsulStandin> {
  const s = await ConsulStandin.start(opts);
  standins.push(s);
  return s;
}

function source(over: Partial<ConsulSourceOptions> & { endpoints: string[] }): ConsulLeaderSource {
  const s = new ConsulLeaderSource({
    triggerKey: `/${KEY}`,
    tls: {},
    intervalMs: 1000,
    retryAfterMs: 100,
    retryNum: 3,
    log: silentLogger(),
    ...over,
  });
  sources.push(s);
  return s;
}

const kvReads = (c: ConsulStandin) => c.requests.filter((r) => r.method === 'GET' && r.key === KEY);
const blockingReads = (c: ConsulStandin) => kvReads(c).filter((r) => r.index !== '');
const plainReads = (c: ConsulStandin) => kvReads(c).filter((r) => r.index === '');


/** Resolves once `pred` holds (polled; the stand-in's request log has no events). */
async function until(what: string, pred: () => boolean, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (!pred()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(5);
  }
  return performance.now() - t0;
}

/** Resolves once a blocking query on KEY is parked on the stand-in (sent, not answered). */
const parked = (c: ConsulStandin) => until('a parked blocking query', () => blockingReads(c).some((r) => r.status === null), 5000);

suite('Consul leader source', () => {
  test('absent key, ours, another, deleted', async () => {
    const c = await standin();
    const src = source({ endpoints: [c.url] });
    const v = collectViews(src);
    const first = await v.waitFor(() => true, 2000);
    assert.equal(first.kind, 'value');
    assert.equal((first as LeaderValue).value, null, 'a missing key means no leader');
    assert.equal((first as LeaderValue).leaseDeadline, null);
    assert.equal(src.providesLeaseDeadline, false);

    const idx = c.put(KEY, 'node1');
    const ours = (await v.waitFor(isValue('node1'), 2000)) as LeaderValue;
    assert.equal(ours.revision, String(idx), 'revision is the ModifyIndex');
    c.put(KEY, 'node2');
    await v.waitFor(isValue('node2'), 2000);
    c.delete(KEY);
    const n = v.views.length;
    await v.waitFor(isValue(null), 2000, n);
    assert.ok(v.views.every((x) => x.kind === 'value'), 'no unreachable views while Consul is fine');
  });

  test('a key written with an empty body is the empty string, not "no key"', async () => {
    const c = await standin();
    c.put(KEY, '');
    assert.equal(c.get(KEY)!.value, null, 'stand-in stores Value null like Consul');
    const v = collectViews(source({ endpoints: [c.url] }));
    await v.waitFor(isValue(''), 2000);
  });

  test('blocking query parameters: consistent, index, wait; a change arrives without waiting for interval', async () => {
    const c = await standin();
    const idx = c.put(KEY, 'node1');
    const src = source({ endpoints: [c.url], intervalMs: 10_000 });
    const v = collectViews(src);
    await v.waitFor(isValue('node1'), 2000);
    await parked(c);
    const reads = kvReads(c);
    assert.equal(reads[0]!.index, '', 'the first read is a plain read');
    assert.ok(reads[0]!.query.has('consistent'));
    const blocking = reads[1]!;
    assert.equal(blocking.index, String(idx));
    assert.ok(blocking.query.has('consistent'), 'consistent reads');
    assert.equal(blocking.query.get('wait'), '100000ms', 'wait = 10 intervals');

    const t0 = performance.now();
    c.put(KEY, 'node2');
    await v.waitFor(isValue('node2'), 2000);
    const took = performance.now() - t0;
    assert.ok(took < 500, `change seen after ${took.toFixed(0)} ms (interval is 10000)`);
  });

  test('at idle: one blocking query per wait, plus one leader check per interval', async () => {
    const c = await standin();
    c.put(KEY, 'node1');
    // interval 100 ms → wait 1 s (the minimum; Consul adds up to wait/16 jitter), leader check
    // every 250 ms (its minimum period).
    const v = collectViews(source({ endpoints: [c.url], intervalMs: 100 }));
    await v.waitFor(isValue('node1'), 2000);
    c.clearLog();
    await sleep(3_300);
    const n = blockingReads(c).length;
    assert.ok(n >= 3 && n <= 4, `${n} blocking reads in 3.3 s with a 1 s wait`);
    assert.ok(blockingReads(c).every((r) => r.query.get('wait') === '1000ms'), 'all with the wait');
    const checks = plainReads(c);
    assert.ok(checks.length >= 10 && checks.length <= 14, `${checks.length} leader checks in 3.3 s, one per 250 ms`);
    assert.ok(checks.every((r) => r.query.has('consistent') && !r.query.has('wait')), 'checks are non-blocking consistent reads');
    assert.equal(v.views.length, 1, 'an unchanged answer is not reported again');
  });

  test('idle cost at the default interval: the parked query stays parked, one leader check per second', async () => {
    const c = await standin();
    c.put(KEY, 'node1');
    const v = collectViews(source({ endpoints: [c.url] }));
    await v.waitFor(isValue('node1'), 2000);
    await parked(c);
    c.clearLog();
    await sleep(3_500);
    assert.equal(blockingReads(c).length, 0, 'no new blocking query (wait 10 s)');
    const checks = plainReads(c).length;
    assert.ok(checks >= 3 && checks <= 4, `${checks} leader checks in 3.5 s`);
  });

  test('index going backwards (resetIndex): the parked query answers the old state; the leader check restarts the watch', async () => {
    const c = await standin({ initialIndex: 1000 });
    c.put(KEY, 'node1');
    // Default interval: the wait is 10 s, so only the leader check (every 1 s) can notice soon.
    const v = collectViews(source({ endpoints: [c.url] }));
    await v.waitFor(isValue('node1'), 2000);
    await parked(c);
    c.clearLog();
    c.resetIndex(5);
    const took = await until('blocking on the new, lower index', () => blockingReads(c).some((r) => r.index === '5'), 10_000);
    const idx = kvReads(c).map((r) => r.index);
    // As in Consul, the parked query returned at once with its last pass (index 1001), so the
    // client parked on 1001 again; the check read index 5 and restarted with a plain read.
    assert.equal(idx[0], '1001', `re-parked on the old index first: ${idx.join(',')}`);
    assert.ok(idx.includes(''), `a plain read restarted the watch: ${idx.join(',')}`);
    assert.ok(took < 10_000, `restarted ${took.toFixed(0)} ms after the reset (the wait is 10 s)`);
    c.put(KEY, 'node2'); // index 6: only seen at once if the client waits on the new, lower index
    await v.waitFor(isValue('node2'), 1000);
  });

  test('snapshot restore to an older state: the older value is reported within a leader-check period, not after the wait', async () => {
    const c = await standin();
    c.put(KEY, 'node1');
    const snap = c.snapshot();
    c.put(KEY, 'node2');
    const v = collectViews(source({ endpoints: [c.url] }));
    await v.waitFor(isValue('node2'), 2000);
    await parked(c);
    const t0 = performance.now();
    c.restore(snap);
    await v.waitFor(isValue('node1'), 9_000); // the wait is 10 s: only the leader check can be this quick
    const took = performance.now() - t0;
    c.put(KEY, 'node3');
    await v.waitFor(isValue('node3'), 1000);
    assert.ok(took < 9_000, `older value after ${took.toFixed(0)} ms`);
  });

  test('X-Consul-Index 0 (a Consul bug): the client waits on 1, never busy-loops on 0', async () => {
    const c = await standin();
    c.put(KEY, 'node1');
    c.overrideIndexHeader(0);
    const v = collectViews(source({ endpoints: [c.url], intervalMs: 100 }));
    await v.waitFor(isValue('node1'), 2000);
    await sleep(1_500);
    const reads = blockingReads(c);
    assert.equal(kvReads(c)[0]!.index, '');
    assert.ok(reads.length > 0 && reads.every((r) => r.index === '1'), `indexes sent: ${reads.map((r) => r.index).join(',')}`);
    // The key's ModifyIndex is above 1, so each blocking read returns at once: the churn limiter
    // (a burst, then one read per CHURN_REFILL_MS) bounds the rate.
    assert.ok(reads.length <= CHURN_BURST + Math.ceil(1_500 / CHURN_REFILL_MS) + 2, `${reads.length} blocking reads in 1.5 s`);
    // The leader check takes a 0 index as 1 too, so it never sees "backwards" and restarts nothing.
    assert.ok(plainReads(c).length <= 1 + Math.ceil(1_500 / 250) + 1, `${plainReads(c).length} plain reads in 1.5 s`);
  });

  test('ACL: the token is sent; a wrong token is a ConsulAclError, logged once, not hot-looped', async () => {
    const c = await standin({ token: 'secret-token' });
    c.put(KEY, 'node1');
    const good = collectViews(source({ endpoints: [c.url], token: 'secret-token' }));
    await good.waitFor(isValue('node1'), 2000);
    assert.equal(kvReads(c)[0]!.token, 'secret-token', 'sent as X-Consul-Token');

    const c2 = await standin({ token: 'secret-token' });
    const cap = captureLog();
    const v = collectViews(source({ endpoints: [c2.url], token: 'wrong-token', log: cap.log }));
    const view = (await v.waitFor(isUnreachable, 2000)) as LeaderUnreachable;
    assert.ok(view.error instanceof ConsulAclError, `got ${view.error.name}: ${view.error.message}`);
    assert.match(view.error.message, /403 ACL not found/);
    assert.match(view.error.message, /consul-token/);
    await sleep(2_500);
    const n = kvReads(c2).length;
    // "ACL not found" may be transient (replication lag): 3 quick retries, then every 30 s.
    assert.ok(n <= 5, `${n} requests in 2.5 s with a rejected token`);
    const errors = cap.lines.filter((l) => l.msg === 'Consul ACL error');
    assert.equal(errors.length, 1, 'reported once');
    assert.ok(!JSON.stringify(cap.lines).includes('wrong-token'), 'the token never reaches the log');
  });

  test('ACL: no token with default deny → "Permission denied", retried only slowly', async () => {
    const c = await standin({ token: 'secret-token' });
    const v = collectViews(source({ endpoints: [c.url] }));
    const view = (await v.waitFor(isUnreachable, 2000)) as LeaderUnreachable;
    assert.ok(view.error instanceof ConsulAclError);
    assert.match(view.error.message, /Permission denied: anonymous token/);
    assert.match(view.error.message, /no token was sent/);
    await sleep(1_500);
    assert.equal(kvReads(c).length, 1, 'a permission error is not retried within 30 s');
  });

  test('stand-in: the token is read from ?token=, X-Consul-Token or Authorization: Bearer; unknown → 403 "ACL not found"', async () => {
    const c = await standin({ tokens: { reader: { accessorId: 'a-1', keyPrefix: { 'service/': 'read' } } } });
    c.put(KEY, 'node1');
    const url = `${c.url}/v1/kv/${KEY}`;
    assert.equal((await httpGet(url, { 'X-Consul-Token': 'reader' })).status, 200);
    assert.equal((await httpGet(url, { Authorization: 'Bearer reader' })).status, 200);
    assert.equal((await httpGet(`${url}?token=reader`)).status, 200);
    assert.deepEqual(c.requests.map((r) => r.tokenVia), ['header', 'bearer', 'query']);
    const unknown = await httpGet(url, { 'X-Consul-Token': 'nope' });
    assert.deepEqual([unknown.status, unknown.body], [403, 'ACL not found']);
    const other = await httpGet(`${c.url}/v1/kv/elsewhere/leader`, { 'X-Consul-Token': 'reader' });
    assert.deepEqual([other.status, other.body], [403, `Permission denied: token with AccessorID 'a-1' lacks permission 'key:read' on "elsewhere/leader"`]);
  });

  test('ACL: a valid token without key:read on the key → 403 "Permission denied"; a clear error naming the key, reported as unreachable, never as a value, retried every 30 s', async () => {
    const c = await standin({ tokens: { 'no-read': { accessorId: 'acc-42', keyPrefix: { 'service/other/': 'read' } } } });
    c.put(KEY, 'node1');
    const cap = captureLog();
    const v = collectViews(source({ endpoints: [c.url], token: 'no-read', log: cap.log }));
    const view = (await v.waitFor(isUnreachable, 2000)) as LeaderUnreachable;
    assert.ok(view.error instanceof ConsulAclError, `${view.error.name}: ${view.error.message}`);
    assert.equal(view.error.tokenNotFound, false);
    assert.match(view.error.message, /refused to read "service\/pgcluster\/leader" \(403 Permission denied: token with AccessorID 'acc-42' lacks permission 'key:read'/);
    assert.match(view.error.message, /the token is valid but may not read "service\/pgcluster\/leader"; grant its policy key:read there/);
    await sleep(1_500);
    assert.equal(kvReads(c).length, 1, 'not retried within 30 s');
    assert.ok(v.views.every((x) => x.kind === 'unreachable'), 'no value is made up from a refusal');
    const errors = cap.lines.filter((l) => l.msg === 'Consul ACL error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.level, 50, 'logged as an error');
    assert.ok(!JSON.stringify(cap.lines).includes('no-read'), 'the token never reaches the log');
  });

  test('ACL: key:read revoked while a query is parked: the leader check notices within an interval, the watch reports the 403', async (t) => {
    const c = await standin({ tokens: { reader: { keyPrefix: { 'service/': 'read' } } } });
    c.put(KEY, 'node1');
    const v = collectViews(source({ endpoints: [c.url], token: 'reader' }));
    await v.waitFor(isValue('node1'), 2000);
    await parked(c);
    const t0 = performance.now();
    c.setTokenRules('reader', { keyPrefix: { 'service/': 'deny' } });
    const down = (await v.waitFor(isUnreachable, 10_000)) as LeaderUnreachable;
    t.diagnostic(`noticed after ${(performance.now() - t0).toFixed(0)} ms`);
    assert.ok(performance.now() - t0 < 10_000);
    assert.ok(down.error instanceof ConsulAclError, `${down.error.name}: ${down.error.message}`);
    assert.match(down.error.message, /Permission denied/);
    assert.equal(down.last?.value, 'node1');
    c.setTokenRules('reader', { keyPrefix: { 'service/': 'read' } });
  });

  test('the agent loses its leader while a query is parked: the query is not woken (as in Consul), the leader check reports it within interval + its timeout', async (t) => {
    const c = await standin({ rpcHoldTimeoutMs: 1500 });
    c.put(KEY, 'node1');
    const v = collectViews(source({ endpoints: [c.url], retryAfterMs: 50 }));
    await v.waitFor(isValue('node1'), 2000);
    await parked(c);
    const parkedQuery = blockingReads(c).find((r) => r.status === null)!;
    const t0 = performance.now();
    c.setNoLeader(true);
    const down = (await v.waitFor(isUnreachable, 10_000)) as LeaderUnreachable;
    const took = performance.now() - t0;
    t.diagnostic(`noticed ${took.toFixed(0)} ms after the leader was lost (interval 1000, check timeout 1000)`);
    // Bound: one check period (1 s) + the check's deadline (1 s); asserted with a 5× margin.
    assert.ok(took < 10_000, `noticed after ${took.toFixed(0)} ms`);
    assert.equal(parkedQuery.status, null, 'the parked blocking query was never answered: no early wake-up');
    assert.ok(down.error instanceof ConsulLeaderCheckError, `${down.error.name}: ${down.error.message}`);
    assert.match(down.error.message, /no answer within 1000 ms.*cannot reach a cluster leader/);
    assert.equal(down.failures, 1);
    assert.equal(down.last?.value, 'node1', 'the last value travels with the outage');
    // The watch restarts with a plain read, which the agent holds for rpc_hold_timeout and then
    // answers with the clear reason.
    const second = (await v.waitFor((x) => x.kind === 'unreachable' && x.failures === 2, 10_000)) as LeaderUnreachable;
    assert.match(second.error.message, /HTTP 500: No cluster leader/);
    assert.equal(second.since, down.since, 'since stays at the first failure');
    c.setNoLeader(false);
    const n = v.views.length;
    await v.waitFor(isValue('node1'), 10_000, n);
  });

  test('a silent partition (no answers, no RST): the leader check reports it within interval + its timeout; back after the heal', async (t) => {
    const c = await standin();
    c.put(KEY, 'node1');
    const v = collectViews(source({ endpoints: [c.url], retryAfterMs: 50 }));
    await v.waitFor(isValue('node1'), 2000);
    await parked(c);
    const t0 = performance.now();
    c.setUnreachable(true);
    const down = (await v.waitFor(isUnreachable, 10_000)) as LeaderUnreachable;
    const took = performance.now() - t0;
    t.diagnostic(`noticed ${took.toFixed(0)} ms after the partition`);
    assert.ok(took < 10_000, `noticed after ${took.toFixed(0)} ms`);
    assert.ok(down.error instanceof ConsulLeaderCheckError);
    c.setUnreachable(false);
    const n = v.views.length;
    await v.waitFor(isValue('node1'), 15_000, n);
  });

  test('rpc_hold_timeout: a plain read on an agent without a leader is held 7 s, then 500 "No cluster leader" is the reported cause', async (t) => {
    const c = await standin();
    c.put(KEY, 'node1');
    c.setNoLeader(true);
    const t0 = performance.now();
    const v = collectViews(source({ endpoints: [c.url] }));
    const down = (await v.waitFor(isUnreachable, 12_000)) as LeaderUnreachable;
    const took = performance.now() - t0;
    t.diagnostic(`500 after ${took.toFixed(0)} ms`);
    assert.ok(took >= 6_900, `answered after ${took.toFixed(0)} ms, before rpc_hold_timeout`);
    // The read's deadline (8 s) lets the agent's own answer arrive instead of a timeout.
    assert.match(down.error.message, /HTTP 500: No cluster leader/);
    assert.equal(c.count((r) => r.status === 500), 1);
    c.setNoLeader(false);
  });

  test('stand-in: a blocking query without a leader is held rpc_hold_timeout + wait + wait/16, then 500', async () => {
    const c = await standin({ rpcHoldTimeoutMs: 300 });
    c.put(KEY, 'node1');
    c.setNoLeader(true);
    const r = await httpGet(`${c.url}/v1/kv/${KEY}?consistent&index=${c.indexFor(KEY)}&wait=1s`);
    assert.equal(r.status, 500);
    assert.equal(r.body, 'No cluster leader');
    // 300 + 1000 + 1000/16 ms exactly; the slack is for a loaded machine, far from a 7 s hold.
    assert.ok(r.ms >= 300 + 1000 + 62 - 5 && r.ms < 300 + 1062 + 1500, `held ${r.ms.toFixed(0)} ms`);
    const stale = await httpGet(`${c.url}/v1/kv/${KEY}?stale`);
    assert.equal(stale.status, 200, 'stale reads need no leader');
    assert.equal(stale.headers['x-consul-knownleader'], 'false');
    assert.ok(Number(stale.headers['x-consul-lastcontact']) >= 1300, `LastContact ${stale.headers['x-consul-lastcontact']} ms`);
  });

  test('stand-in: a query parked across a leader loss answers at wait + jitter with its last pass (200, KnownLeader true)', async () => {
    const c = await standin();
    const idx = c.put(KEY, 'node1');
    const pending = httpGet(`${c.url}/v1/kv/${KEY}?consistent&index=${idx}&wait=800ms`);
    await parked(c);
    c.setNoLeader(true);
    const r = await pending;
    assert.ok(r.ms >= 795 && r.ms < 800 + 50 + 1500, `answered after ${r.ms.toFixed(0)} ms (not held for rpc_hold_timeout)`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-consul-index'], String(idx));
    assert.equal(r.headers['x-consul-knownleader'], 'true', 'meta of the last pass, taken while there was a leader');
    assert.equal(r.headers['x-consul-lastcontact'], '0');
    assert.equal(JSON.parse(r.body)[0].Key, KEY);
  });

  test('stand-in: blocking answers come at wait + [0, wait/16) jitter, and the jitter varies', async () => {
    const c = await standin();
    const idx = c.put(KEY, 'node1');
    // wait 8 s: jitter below 500 ms, large against scheduling noise, so a jitter of wait/8
    // would almost surely show among 16 queries.
    const rs = await Promise.all(Array.from({ length: 16 }, () => httpGet(`${c.url}/v1/kv/${KEY}?index=${idx}&wait=8s`)));
    const ms = rs.map((r) => r.ms).sort((a, b) => a - b);
    assert.ok(rs.every((r) => r.status === 200 && r.headers['x-consul-index'] === String(idx)));
    assert.ok(ms[0]! >= 7_995, `earliest ${ms[0]!.toFixed(0)} ms`);
    assert.ok(ms.at(-1)! < 8_000 + 500 + 300, `latest ${ms.at(-1)!.toFixed(0)} ms (jitter < 500 ms, plus scheduling)`);
    assert.ok(ms.at(-1)! - ms[0]! >= 20, `jitter spread ${(ms.at(-1)! - ms[0]!).toFixed(0)} ms over 16 queries`);
  });

  test('stand-in: index headers as documented: 200 and 404 carry X-Consul-Index (never 0), KnownLeader, LastContact; a missing key keeps blocking across unrelated writes', async () => {
    const c = await standin();
    const miss = await httpGet(`${c.url}/v1/kv/${KEY}`);
    assert.equal(miss.status, 404);
    assert.equal(miss.body, '');
    assert.equal(miss.headers['x-consul-index'], '1', 'an empty KV table reports 1, not 0');
    assert.equal(miss.headers['x-consul-knownleader'], 'true');
    assert.equal(miss.headers['x-consul-lastcontact'], '0');
    const other = c.put('unrelated/key', 'x');
    const pending = httpGet(`${c.url}/v1/kv/${KEY}?index=${other}&wait=600ms`);
    await parked(c);
    c.put('unrelated/key', 'y');
    const r = await pending;
    assert.ok(r.ms >= 595, `a missing key's query returned after ${r.ms.toFixed(0)} ms on an unrelated write`);
    assert.equal(r.status, 404);
    const bad = await httpGet(`${c.url}/v1/kv/${KEY}?index=x`);
    assert.deepEqual([bad.status, bad.body], [400, 'Invalid index']);
    const badWait = await httpGet(`${c.url}/v1/kv/${KEY}?index=1&wait=soon`);
    assert.deepEqual([badWait.status, badWait.body], [400, 'Invalid wait time']);
  });

  test('endpoint failover: first endpoint down → second used; and back', async () => {
    const a = await standin();
    const b = await standin();
    a.put(KEY, 'node1');
    b.put(KEY, 'node1');
    await a.stop();
    const v = collectViews(source({ endpoints: [a.url, b.url], retryAfterMs: 50 }));
    await v.waitFor(isValue('node1'), 3000);
    assert.equal(v.views.filter(isUnreachable).length, 0, 'a refused endpoint is skipped within the same attempt');
    assert.ok(kvReads(b).length >= 1);

    await a.start();
    a.clearLog();
    await b.stop(); // cuts the blocking query in flight
    await sleep(300);
    a.put(KEY, 'node2');
    await v.waitFor(isValue('node2'), 3000);
    assert.ok(kvReads(a).length >= 1, 'back on the first endpoint');
  });

  test('a 5xx endpoint ("No cluster leader" on this agent) is failed over to the next', async () => {
    const a = await standin({ rpcHoldTimeoutMs: 300 });
    const b = await standin();
    a.setNoLeader(true);
    b.put(KEY, 'node1');
    const v = collectViews(source({ endpoints: [a.url, b.url] }));
    await v.waitFor(isValue('node1'), 2000);
    assert.equal(v.views.filter(isUnreachable).length, 0);
    assert.equal(a.count((r) => r.status === 500), 1, 'asked once, then the answering endpoint is preferred');
  });

  test('https endpoint verified with etcd-ca-file (added to the system CAs) and a client certificate', async () => {
    const pki = createPki(['127.0.0.1']);
    try {
      const c = await standin({ tls: {
        key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert), ca: readFileSync(pki.ca), requestCert: true,
      } });
      c.put(KEY, 'node1');
      assert.match(c.url, /^https:/);
      const v = collectViews(source({ endpoints: [c.url], tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey } }));
      await v.waitFor(isValue('node1'), 3000);
      c.put(KEY, 'node2');
      await v.waitFor(isValue('node2'), 1000);
      const bad = collectViews(source({ endpoints: [c.url], tls: { caFile: pki.wrongCa, certFile: pki.clientCert, keyFile: pki.clientKey } }));
      const view = (await bad.waitFor(isUnreachable, 3000)) as LeaderUnreachable;
      assert.match(view.error.message, /TLS verification failed.*etcd-ca-file/);
    } finally {
      pki.dispose();
    }
  });

  test('credentials in an endpoint URL never appear in errors', async () => {
    const a = await standin();
    await a.stop();
    const v = collectViews(source({ endpoints: [`http://user:hunter2@127.0.0.1:${a.port}`] }));
    const view = (await v.waitFor(isUnreachable, 2000)) as LeaderUnreachable;
    assert.doesNotMatch(view.error.message, /hunter2/);
    assert.match(view.error.message, new RegExp(`127\\.0\\.0\\.1:${a.port}: connection refused`));
  });

  test('all endpoints down → unreachable with every endpoint named; since/failures semantics', async () => {
    const a = await standin();
    const b = await standin();
    await a.stop();
    await b.stop();
    const v = collectViews(source({ endpoints: [a.url, b.url], retryAfterMs: 50 }));
    const first = (await v.waitFor(isUnreachable, 3000)) as LeaderUnreachable;
    assert.match(first.error.message, new RegExp(`${a.port}.*connection refused.*${b.port}.*connection refused`));
    assert.equal(first.last, null);
    const third = (await v.waitFor((x) => x.kind === 'unreachable' && x.failures === 3, 3000)) as LeaderUnreachable;
    assert.equal(third.since, first.since);
  });

  test('close() ends a parked blocking query promptly', async () => {
    const c = await standin();
    c.put(KEY, 'node1');
    const src = new ConsulLeaderSource({ endpoints: [c.url], triggerKey: KEY, tls: {}, intervalMs: 10_000, retryAfterMs: 100, retryNum: 3, log: silentLogger() });
    const v = collectViews(src);
    await v.waitFor(isValue('node1'), 2000);
    await sleep(100);
    const t0 = performance.now();
    await src.close();
    assert.ok(performance.now() - t0 < 500);
  });

  test('consulSourceOptions reads the configuration keys', async () => {
    const c = await standin({ token: 't' });
    c.put(KEY, 'node9');
    const cfg = {
      'dcs-type': 'consul', 'dcs-endpoints': [c.url], 'trigger-key': `/${KEY}`, 'consul-token': 't',
      interval: 1000, 'retry-after': 250, 'retry-num': 3,
      'etcd-ca-file': undefined, 'etcd-cert-file': undefined, 'etcd-key-file': undefined,
    } as unknown as Config;
    const src = new ConsulLeaderSource(consulSourceOptions(cfg, silentLogger()));
    sources.push(src);
    assert.equal(src.kind, 'consul');
    const v = collectViews(src);
    await v.waitFor(isValue('node9'), 2000);
  });
});
