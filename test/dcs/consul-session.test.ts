// The Consul backend of a DCS session: one query loop for every key and prefix, against the
// Consul stand-in (test/standins/consul.ts, which follows Consul's documents and source for
// ?recurse as well). Counts TCP connections at the stand-in, flips keys independently and in
// bursts, and checks the demultiplexing, the restart on a new prefix, the leader check and ACLs.
import assert from 'node:assert/strict';
import { after, describe as suite, test } from 'node:test';
import { ConsulBackend, commonPrefix, createConsulBackend, type ConsulBackendOptions } from '../../src/dcs/consul/backend.js';
import { ConsulAclError, ConsulAclFilteredError, ConsulLeaderCheckError } from '../../src/dcs/consul/errors.js';
import { ConsulLeaderSource } from '../../src/dcs/consul/source.js';
import type { KeySetSource, KeySetView } from '../../src/dcs/key-set.js';
import { DcsSession, type LeaderSpec } from '../../src/dcs/session.js';
import { silentLogger } from '../../src/log.js';
import type { LeaderSource, LeaderUnreachable, LeaderValue, LeaderView } from '../../src/reconcile/ports.js';
import { ConsulStandin, type ConsulStandinOptions, type RecordedRequest } from '../standins/consul.js';
import { captureLog, collect, collectViews, describe, isUnreachable, isValue, sleep, type Collected, type ViewLog, httpGet } from './consul-helpers.js';

const standins: ConsulStandin[] = [];
const closers: Array<() => Promise<void>> = [];
after(async () => {
  await Promise.allSettled(closers.map((c) => c()));
  await Promise.all(standins.map((s) => s.close()));
});

async function standin(opts: ConsulStandinOptions = {}): Promise<ConsulStandin> {
  const s = await ConsulStandin.start(opts);
  standins.push(s);
  return s;
}

function backend(c: ConsulStandin, over: Partial<ConsulBackendOptions> = {}, log = silentLogger()): ConsulBackend {
  const b = createConsulBackend({ endpoints: [c.url], tls: {}, intervalMs: 1000, retryAfterMs: 100, retryNum: 3, ...over }, log);
  closers.push(() => b.close());
  return b;
}

const leaderKey = (i: number) => `service/pg${i}/leader`;

type SetLog = Collected<KeySetView>;

const collectSets = (source: KeySetSource): SetLog => collect(source, describeSet);

function describeSet(v: KeySetView): string {
  return v.kind === 'value' ? `set@${v.revision}:${[...v.kvs].map(([k, e]) => `${k}=${Buffer.from(e.bytes).toString()}`).join(',')}` : `unreachable#${v.failures}:${v.error.message}`;
}

const setHas = (entries: Record<string, string>) => (v: KeySetView) => v.kind === 'value'
  && Object.entries(entries).every(([k, val]) => v.kvs.has(k) && Buffer.from(v.kvs.get(k)!.bytes).toString() === val)
  && v.kvs.size === Object.keys(entries).length;

/** Resolves once `pred` holds (polled; the stand-in's request log has no events). */
async function until(what: string, pred: () => boolean, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (!pred()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(5);
  }
  return performance.now() - t0;
}

const recursive = (r: RecordedRequest) => r.method === 'GET' && r.query.has('recurse');
const blockingPending = (c: ConsulStandin, pred: (r: RecordedRequest) => boolean = () => true) =>
  c.requests.some((r) => r.method === 'GET' && r.index !== '' && r.status === null && !r.abandoned && pred(r));
/** The loop has handled every answer up to `index`: a blocking query waits on `index` or later. */
const parkedAt = (c: ConsulStandin, index: number) => until(`a blocking query parked at ${index}`,
  () => blockingPending(c, (r) => Number(r.index) >= index), 5000);


const lastValue = (v: ViewLog): string | null | undefined => {
  const last = v.views.at(-1);
  return last?.kind === 'value' ? last.value : undefined;
};

suite('Consul stand-in: recursive reads as Consul answers them', () => {
  test('sorted by key, only under the (string) prefix, index = highest ModifyIndex under it; a delete (tombstone) moves it; empty → 404 with an index', async () => {
    const c = await standin();
    c.put('service/pg2/leader', 'b');
    c.put('service/pg1/leader', 'a');
    const i10 = c.put('service/pg10/x', 'c');
    const other = c.put('elsewhere/k', 'z');
    const r = await httpGet(`${c.url}/v1/kv/service/pg1?recurse`);
    assert.equal(r.status, 200);
    const body = JSON.parse(r.body) as Array<{ Key: string; Value: string; ModifyIndex: number }>;
    assert.deepEqual(body.map((e) => e.Key), ['service/pg1/leader', 'service/pg10/x'], 'string prefix, key order');
    assert.equal(r.headers['x-consul-index'], String(i10), 'the highest ModifyIndex under the prefix (pg10/x), not the table index');
    assert.equal(Buffer.from(body[0]!.Value, 'base64').toString(), 'a');
    const del = c.delete('service/pg10/x');
    const afterDelete = await httpGet(`${c.url}/v1/kv/service/pg1?recurse`);
    assert.equal(afterDelete.headers['x-consul-index'], String(del), 'the tombstone carries the index');
    const empty = await httpGet(`${c.url}/v1/kv/nothing/here/?recurse`);
    assert.equal(empty.status, 404);
    assert.equal(empty.body, '');
    assert.equal(empty.headers['x-consul-index'], String(del), 'nothing ever there: the KV table index');
    const root = await httpGet(`${c.url}/v1/kv/?recurse`);
    assert.equal(root.status, 200, 'the empty prefix lists every key');
    assert.equal((JSON.parse(root.body) as unknown[]).length, 3);
    assert.ok(other < del);
    assert.equal((await httpGet(`${c.url}/v1/kv/`)).status, 400, 'no key and no ?recurse: "Missing key name"');
  });

  test('a blocking recursive read ends on a write under the prefix, not on one elsewhere', async () => {
    const c = await standin();
    const idx = c.put('service/pg1/leader', 'a');
    const pending = httpGet(`${c.url}/v1/kv/service/?recurse&index=${idx}&wait=2s`);
    await until('parked', () => c.requests.some((r) => r.status === null), 2000);
    c.put('elsewhere/k', 'z');
    await sleep(200);
    assert.ok(c.requests.some((r) => r.status === null), 'a write outside the prefix does not end it');
    const w = c.put('service/pg2/leader', 'b');
    const r = await pending;
    assert.ok(r.ms < 1500, `answered after ${r.ms.toFixed(0)} ms`);
    assert.equal(r.headers['x-consul-index'], String(w));
  });

  test('ACLs: keys the token may not read are filtered out (header set); no token → filtered, no header; unknown token → 403', async () => {
    const c = await standin({ tokens: { pg1: { keyPrefix: { 'service/pg1/': 'read' } } } });
    c.put('service/pg1/leader', 'a');
    c.put('service/pg2/leader', 'b');
    const r = await httpGet(`${c.url}/v1/kv/service/?recurse`, { 'X-Consul-Token': 'pg1' });
    assert.equal(r.status, 200);
    assert.deepEqual((JSON.parse(r.body) as Array<{ Key: string }>).map((e) => e.Key), ['service/pg1/leader']);
    assert.equal(r.headers['x-consul-results-filtered-by-acls'], 'true');
    const anon = await httpGet(`${c.url}/v1/kv/service/?recurse`);
    assert.equal(anon.status, 404, 'everything filtered: nothing left');
    assert.equal(anon.headers['x-consul-results-filtered-by-acls'], undefined, 'masked for a request without a token');
    const own = await httpGet(`${c.url}/v1/kv/service/pg1/?recurse`, { 'X-Consul-Token': 'pg1' });
    assert.equal(own.headers['x-consul-results-filtered-by-acls'], undefined, 'omitted when nothing was filtered');
    const unknown = await httpGet(`${c.url}/v1/kv/service/?recurse`, { 'X-Consul-Token': 'nope' });
    assert.deepEqual([unknown.status, unknown.body], [403, 'ACL not found']);
  });
});

suite('Consul backend: one query loop for every entry', () => {
  test('pure: the longest common prefix is a string prefix', () => {
    assert.equal(commonPrefix(['service/pg1/leader', 'service/pg2/leader']), 'service/pg');
    assert.equal(commonPrefix(['service/pg/leader', 'service/billing/leader']), 'service/');
    assert.equal(commonPrefix(['a/leader', 'b/leader']), '');
    assert.equal(commonPrefix(['only/one']), 'only/one');
  });

  test('one key subject: today\'s single-key query, no ?recurse', async () => {
    const c = await standin();
    c.put(leaderKey(1), 'node1');
    const b = backend(c);
    const v = collectViews(b.keySource(`/${leaderKey(1)}`));
    await v.waitFor(isValue('node1'), 2000);
    await until('parked', () => blockingPending(c), 2000);
    assert.deepEqual(b.watching, { mode: 'key', path: `v1/kv/${leaderKey(1)}` });
    assert.equal(c.count(recursive), 0, 'no recursive read');
    assert.ok(c.requests.every((r) => r.key === leaderKey(1)));
  });

  for (const n of [2, 5]) {
    test(`${n} key subjects: one recursive query on the common prefix, two connections in all (watch + leader check); independent flips and bursts end right; a flip of one key emits nothing on the others`, async (t) => {
      const c = await standin();
      const keys = Array.from({ length: n }, (_, i) => leaderKey(i + 1));
      for (const k of keys) c.put(k, 'node1');
      // interval 250 ms: the leader check runs every 250 ms beside the parked query.
      const b = backend(c, { intervalMs: 250 });
      const logs = keys.map((k) => collectViews(b.keySource(`/${k}`)));
      for (const v of logs) await v.waitFor(isValue('node1'), 2000);
      assert.deepEqual(b.watching, { mode: 'list', path: 'v1/kv/service/pg' });

      // One flip: only its own source reports.
      await parkedAt(c, c.listIndexFor('service/pg'));
      const before = logs.map((v) => v.views.length);
      const idx = c.put(keys[0]!, 'node2');
      await logs[0]!.waitFor(isValue('node2'), 2000, before[0]);
      await parkedAt(c, idx);
      assert.deepEqual(logs.map((v) => v.views.length), before.map((x, i) => (i === 0 ? x + 1 : x)), 'one view, on the flipped key only');

      // Bursts: several keys flipped back and forth with no pause; after each pause every source
      // says what its key holds.
      let seed = 7;
      const rnd = (m: number) => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % m;
      };
      for (let round = 0; round < 6; round++) {
        let last = 0;
        for (let j = 0; j < 3 * n; j++) last = c.put(keys[rnd(n)]!, `node${rnd(3) + 1}`);
        await parkedAt(c, last);
        for (let i = 0; i < n; i++) {
          const want = c.get(keys[i]!)!.value!.toString();
          await until(`${keys[i]} says ${want}`, () => lastValue(logs[i]!) === want, 2000);
        }
      }
      // Steady state: the leader check has run several times meanwhile; count the connections.
      const checksBefore = c.count((r) => recursive(r) && r.index === '');
      await until('three more leader checks', () => c.count((r) => recursive(r) && r.index === '') >= checksBefore + 3, 5000);
      t.diagnostic(`${n} subjects: ${c.connectionsAccepted} TCP connections accepted, ${c.openConnections} open; ${c.requests.length} requests`);
      assert.equal(c.connectionsAccepted, 2, 'one connection for the parked query, one for the leader check, whatever the number of subjects');
      assert.ok(logs.every((v) => v.views.every((x) => x.kind === 'value')), 'no outage');
      assert.ok(c.requests.every((r) => r.query.has('recurse') && r.key === 'service/pg'), 'every request is the one recursive read');
    });
  }

  test('compared: N single-key sources open 2N connections', async (t) => {
    const c = await standin();
    const n = 3;
    const vs: ViewLog[] = [];
    for (let i = 1; i <= n; i++) {
      c.put(leaderKey(i), 'node1');
      const s = new ConsulLeaderSource({ endpoints: [c.url], triggerKey: leaderKey(i), tls: {}, intervalMs: 250, retryAfterMs: 100, retryNum: 3, log: silentLogger() });
      closers.push(() => s.close());
      vs.push(collectViews(s));
    }
    for (const v of vs) await v.waitFor(isValue('node1'), 2000);
    await until('leader checks on every source', () => c.count((r) => r.index === '') >= 4 * n, 5000);
    t.diagnostic(`${n} separate sources: ${c.connectionsAccepted} connections`);
    assert.equal(c.connectionsAccepted, 2 * n);
  });

  test('a prefix subject: the whole key set, keyed as configured; emitted only when a key under it changes', async () => {
    const c = await standin();
    c.put('service/pg/leader', 'pg1');
    c.put('service/pg/members/pg1', '{"role":"primary"}');
    c.put('service/pg/members/pg2', '{"role":"replica"}');
    c.put('service/billing/leader', 'b1');
    const b = backend(c);
    const sets = collectSets(b.prefixSource('/service/pg/'));
    const leader = collectViews(b.keySource('/service/billing/leader'));
    const first = await sets.waitFor(setHas({
      '/service/pg/leader': 'pg1', '/service/pg/members/pg1': '{"role":"primary"}', '/service/pg/members/pg2': '{"role":"replica"}',
    }), 2000);
    await leader.waitFor(isValue('b1'), 2000);
    assert.equal(b.watching.path, 'v1/kv/service/');
    assert.equal(first.kind === 'value' && first.revision, String(c.get('service/pg/members/pg2')!.modifyIndex), 'the set\'s own highest ModifyIndex');
    assert.equal(first.kind === 'value' && first.kvs.get('/service/pg/leader')!.modRevision, String(c.get('service/pg/leader')!.modifyIndex));

    const nSets = sets.views.length;
    const idx = c.put('service/billing/leader', 'b2');
    await leader.waitFor(isValue('b2'), 2000);
    await parkedAt(c, idx);
    assert.equal(sets.views.length, nSets, 'a change elsewhere under the common prefix is not a new key set');
    const nLeader = leader.views.length;
    const d = c.delete('service/pg/members/pg2');
    await sets.waitFor(setHas({ '/service/pg/leader': 'pg1', '/service/pg/members/pg1': '{"role":"primary"}' }), 2000, nSets);
    await parkedAt(c, d);
    assert.equal(leader.views.length, nLeader, 'nor is a key set change a leader change');
  });

  test('subjects added and removed (a reload): the loop restarts on the new common prefix, down to the single-key query', async () => {
    const c = await standin();
    for (const k of ['service/pg1/leader', 'service/pg2/leader', 'service/billing/leader']) c.put(k, 'node1');
    const b = backend(c, { intervalMs: 10_000 });
    const s1 = b.keySource('/service/pg1/leader');
    const s2 = b.keySource('/service/pg2/leader');
    const v1 = collectViews(s1);
    await v1.waitFor(isValue('node1'), 2000);
    assert.deepEqual(b.watching, { mode: 'key', path: 'v1/kv/service/pg1/leader' });
    const v2 = collectViews(s2);
    await v2.waitFor(isValue('node1'), 2000);
    assert.deepEqual(b.watching, { mode: 'list', path: 'v1/kv/service/pg' });
    await until('parked on service/pg', () => blockingPending(c, (r) => r.key === 'service/pg'), 2000);

    const s3 = b.keySource('/service/billing/leader');
    const t0 = performance.now();
    const v3 = collectViews(s3);
    await v3.waitFor(isValue('node1'), 2000);
    const took = performance.now() - t0;
    assert.ok(took < 1000, `the new subject's first view after ${took.toFixed(0)} ms (the wait is 100 s)`);
    assert.equal(b.watching.path, 'v1/kv/service/');
    await until('parked on service/', () => blockingPending(c, (r) => r.key === 'service/'), 2000);
    assert.ok(!blockingPending(c, (r) => r.key === 'service/pg'), 'the old query was abandoned');
    assert.equal(v1.views.length, 1, 'a restart is no change for the others');

    await s3.close();
    assert.equal(b.watching.path, 'v1/kv/service/pg');
    await until('parked on service/pg again', () => blockingPending(c, (r) => r.key === 'service/pg'), 2000);
    await s2.close();
    assert.deepEqual(b.watching, { mode: 'key', path: 'v1/kv/service/pg1/leader' });
    await until('the single-key query again', () => blockingPending(c, (r) => r.key === 'service/pg1/leader' && !r.query.has('recurse')), 2000);
    const n1 = v1.views.length;
    c.put('service/pg2/leader', 'node3');
    c.put('service/pg1/leader', 'node2');
    await v1.waitFor(isValue('node2'), 2000, n1);
    assert.equal(v2.views.at(-1)!.kind === 'value' && (v2.views.at(-1) as LeaderValue).value, 'node1', 'a closed source hears nothing more');
    await s1.close();
    assert.deepEqual(b.watching, { mode: null, path: null });
    await until('no query in flight', () => !blockingPending(c), 2000);
    const n = c.requests.length;
    await sleep(300);
    assert.equal(c.requests.length, n, 'no subject: no request');
  });

  test('the agent loses its leader while the recursive query is parked: every subject unreachable within interval + check timeout', async (t) => {
    const c = await standin({ rpcHoldTimeoutMs: 1500 });
    const keys = [1, 2, 3].map(leaderKey);
    for (const k of keys) c.put(k, 'node1');
    const b = backend(c, { retryAfterMs: 50 });
    const logs = keys.map((k) => collectViews(b.keySource(k)));
    const sets = collectSets(b.prefixSource('service/pg1/'));
    for (const v of logs) await v.waitFor(isValue('node1'), 2000);
    await sets.waitFor((v) => v.kind === 'value', 2000);
    await until('parked', () => blockingPending(c, recursive), 2000);
    const parkedQuery = c.requests.find((r) => r.index !== '' && r.status === null)!;
    const t0 = performance.now();
    c.setNoLeader(true);
    const downs = (await Promise.all(logs.map((v) => v.waitFor(isUnreachable, 10_000)))) as LeaderUnreachable[];
    const setDown = await sets.waitFor((v) => v.kind === 'unreachable', 10_000);
    const took = performance.now() - t0;
    t.diagnostic(`all ${keys.length + 1} subjects unreachable ${took.toFixed(0)} ms after the leader was lost (interval 1000, check timeout 1000)`);
    // Bound: one check period (1 s) + the check's deadline (1 s); asserted with a 5× margin.
    assert.ok(took < 10_000, `noticed after ${took.toFixed(0)} ms`);
    assert.equal(parkedQuery.status, null, 'the parked query was not woken');
    for (const d of downs) {
      assert.ok(d.error instanceof ConsulLeaderCheckError, `${d.error.name}: ${d.error.message}`);
      assert.equal(d.last?.value, 'node1');
    }
    assert.ok(setDown.kind === 'unreachable' && setDown.last !== null && setDown.last.kvs.size === 1);
    c.setNoLeader(false);
    for (const v of logs) await v.waitFor(isValue('node1'), 10_000, v.views.length - 1);
  });

  test('a silent partition: every subject unreachable within interval + check timeout; back after the heal', async () => {
    const c = await standin();
    for (const k of [1, 2].map(leaderKey)) c.put(k, 'node1');
    const b = backend(c);
    const logs = [1, 2].map((i) => collectViews(b.keySource(leaderKey(i))));
    for (const v of logs) await v.waitFor(isValue('node1'), 2000);
    await until('parked', () => blockingPending(c, recursive), 2000);
    const t0 = performance.now();
    c.setUnreachable(true);
    for (const v of logs) await v.waitFor(isUnreachable, 10_000);
    assert.ok(performance.now() - t0 < 10_000);
    c.setUnreachable(false);
    for (const v of logs) await v.waitFor(isValue('node1'), 10_000, v.views.length - 1);
  });

  test('ACL: a key the token may not read is its own ConsulAclError (confirmed by a single-key read), the others keep their values; granted later, it is read', async () => {
    const c = await standin({ tokens: { reader: { accessorId: 'acc-7', keyPrefix: { 'service/pg1/': 'read', 'service/pg3/': 'read' } } } });
    for (const k of [1, 2, 3].map(leaderKey)) c.put(k, 'node1');
    const cap = captureLog();
    const b = backend(c, { token: 'reader' }, cap.log);
    const logs = [1, 2, 3].map((i) => collectViews(b.keySource(`/${leaderKey(i)}`)));
    await logs[0]!.waitFor(isValue('node1'), 2000);
    await logs[2]!.waitFor(isValue('node1'), 2000);
    const denied = (await logs[1]!.waitFor(isUnreachable, 2000)) as LeaderUnreachable;
    assert.ok(denied.error instanceof ConsulAclError, `${denied.error.name}: ${denied.error.message}`);
    assert.match(denied.error.message, /refused to read "service\/pg2\/leader" \(403 Permission denied: token with AccessorID 'acc-7' lacks permission 'key:read'/);
    assert.ok(logs[1]!.views.every((v) => v.kind === 'unreachable'), 'no value is made up from a filtered answer');
    assert.equal(cap.lines.filter((l) => l.msg === 'Consul ACL error').length, 1);
    assert.ok(!JSON.stringify(cap.lines).includes('reader'), 'the token never reaches the log');
    // The others go on: a flip is seen at once, the refused key is not asked again within 30 s.
    const probes = () => c.count((r) => r.key === leaderKey(2));
    const p = probes();
    c.put(leaderKey(3), 'node2');
    await logs[2]!.waitFor(isValue('node2'), 2000);
    assert.equal(probes(), p, 'the refused key is confirmed again only every 30 s');
    // Granted: the next answer carries it.
    c.setTokenRules('reader', { accessorId: 'acc-7', keyPrefix: { 'service/': 'read' } });
    c.put(leaderKey(2), 'node2');
    await logs[1]!.waitFor(isValue('node2'), 2000);
  });

  test('ACL: key:read revoked while the recursive query is parked: the leader check sees the key gone, the single-key read reports the 403; the other key is untouched', async (t) => {
    const c = await standin({ tokens: { reader: { keyPrefix: { 'service/': 'read' } } } });
    c.put(leaderKey(1), 'node1');
    c.put(leaderKey(2), 'node1');
    const b = backend(c, { token: 'reader' });
    const v1 = collectViews(b.keySource(leaderKey(1)));
    const v2 = collectViews(b.keySource(leaderKey(2)));
    await v1.waitFor(isValue('node1'), 2000);
    await v2.waitFor(isValue('node1'), 2000);
    await until('parked', () => blockingPending(c, recursive), 2000);
    const t0 = performance.now();
    c.setTokenRules('reader', { keyPrefix: { 'service/': 'read', 'service/pg2/': 'deny' } });
    const down = (await v2.waitFor(isUnreachable, 10_000)) as LeaderUnreachable;
    t.diagnostic(`noticed after ${(performance.now() - t0).toFixed(0)} ms`);
    assert.ok(down.error instanceof ConsulAclError, `${down.error.name}: ${down.error.message}`);
    assert.match(down.error.message, /Permission denied.*service\/pg2\/leader/);
    assert.equal(down.last?.value, 'node1');
    assert.deepEqual(v1.views.map(describe), [`value:node1@${c.get(leaderKey(1))!.modifyIndex}`], 'the readable key saw nothing');
  });

  test('ACL: an unknown token on the recursive read: every subject a ConsulAclError, logged once, retried slowly', async () => {
    const c = await standin({ tokens: { reader: { keyPrefix: { 'service/': 'read' } } } });
    c.put(leaderKey(1), 'node1');
    const cap = captureLog();
    const b = backend(c, { token: 'wrong-token' }, cap.log);
    const logs = [1, 2].map((i) => collectViews(b.keySource(leaderKey(i))));
    for (const v of logs) {
      const d = (await v.waitFor(isUnreachable, 2000)) as LeaderUnreachable;
      assert.ok(d.error instanceof ConsulAclError);
      assert.match(d.error.message, /403 ACL not found/);
    }
    // "ACL not found" is retried with the backoff ACL_NOT_FOUND_TOLERANCE times, then every 30 s.
    await until('four refusals', () => c.count((r) => r.status === 403) >= 4, 5000);
    const n = c.requests.length;
    await sleep(1500);
    assert.equal(c.requests.length, n, 'then not retried within 30 s');
    assert.equal(cap.lines.filter((l) => l.msg === 'Consul ACL error').length, 1, 'logged once');
    assert.ok(!JSON.stringify(cap.lines).includes('wrong-token'));
  });

  test('ACL: a missing key is confirmed absent (404), not mistaken for a refusal', async () => {
    const c = await standin({ tokens: { reader: { keyPrefix: { 'service/': 'read' } } } });
    c.put(leaderKey(1), 'node1');
    const b = backend(c, { token: 'reader' });
    const v1 = collectViews(b.keySource(leaderKey(1)));
    const v2 = collectViews(b.keySource(leaderKey(2)));
    await v1.waitFor(isValue('node1'), 2000);
    await v2.waitFor(isValue(null), 2000);
    assert.ok(v2.views.every((v) => v.kind === 'value'));
    c.put(leaderKey(2), 'node2');
    await v2.waitFor(isValue('node2'), 2000);
    const n = v2.views.length;
    c.delete(leaderKey(2));
    await v2.waitFor(isValue(null), 2000, n);
  });

  test('ACL: a prefix subject whose keys are partly hidden is unreadable (ConsulAclFilteredError), not a partial cluster', async () => {
    const c = await standin({ tokens: { partial: { keyPrefix: { 'service/pg/': 'read', 'service/pg/members/pg2': 'deny' } } } });
    c.put('service/pg/leader', 'pg1');
    c.put('service/pg/members/pg1', 'a');
    c.put('service/pg/members/pg2', 'b');
    const b = backend(c, { token: 'partial' });
    const sets = collectSets(b.prefixSource('/service/pg/'));
    const down = await sets.waitFor((v) => v.kind === 'unreachable', 2000);
    assert.ok(down.kind === 'unreachable' && down.error instanceof ConsulAclFilteredError, down.kind === 'unreachable' ? down.error.message : '');
    assert.match((down as { error: Error }).error.message, /hides some keys under "service\/pg\/".*key_prefix "service\/pg\/" \{ policy = "read" \}/);
    assert.ok(sets.views.every((v) => v.kind === 'unreachable'));
  });

  test('a session over the backend: two entries on the same key share one subject; each gets its views', async () => {
    const c = await standin();
    c.put(leaderKey(1), 'node1');
    c.put(leaderKey(2), 'node1');
    const b = backend(c);
    const roles = () => { throw new Error('no role VIPs here'); };
    const session = new DcsSession(b, roles, silentLogger());
    closers.push(() => session.close());
    const spec = (k: string): LeaderSpec => ({ triggerKey: `/${k}`, role: 'leader', fallback: 'none', maxLag: undefined });
    const sources: LeaderSource[] = [session.leaderSource(spec(leaderKey(1))), session.leaderSource(spec(leaderKey(1))), session.leaderSource(spec(leaderKey(2)))];
    const logs = sources.map((s) => collectViews(s));
    for (const v of logs) await v.waitFor(isValue('node1'), 2000);
    assert.equal(b.watching.path, 'v1/kv/service/pg', 'two distinct keys: one recursive query');
    c.put(leaderKey(1), 'node2');
    await logs[0]!.waitFor(isValue('node2'), 2000);
    await logs[1]!.waitFor(isValue('node2'), 2000);
    assert.ok(logs[2]!.views.every((v: LeaderView) => v.kind === 'value' && v.value === 'node1'), JSON.stringify(logs[2]!.views.map(describe)));
    await sources[2]!.close();
    assert.equal(b.watching.mode, 'key', 'the last entry on key 2 gone: back to the single-key query');
  });
});
