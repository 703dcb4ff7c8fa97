// The Consul leader source against the Consul stand-in (a real HTTP server on loopback that
// follows Consul's HTTP API documentation; see test/standins/consul.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe as suite, test } from 'node:test';
import type { Config } from '../../src/config/schema.js';
import { CHURN_BURST, CHURN_REFILL_MS } from '../../src/dcs/consul-index.js';
import { ConsulAclError } from '../../src/dcs/consul-errors.js';
import { ConsulLeaderSource, createConsulSource, type ConsulSourceOptions } from '../../src/dcs/consul.js';
import { silentLogger } from '../../src/log.js';
import type { LeaderUnreachable, LeaderValue } from '../../src/dcs/source.js';
import { createPki } from '../harness/tls.js';
import { ConsulStandin, type ConsulStandinOptions } from '../standins/consul.js';
import { captureLog, collectViews, isUnreachable, isValue, sleep } from './consul-helpers.js';

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
    await sleep(150); // the blocking query is now parked on the server
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

  test('at idle: one blocking query per wait period, no polling', async () => {
    const c = await standin();
    c.put(KEY, 'node1');
    // interval 100 ms → wait 1 s (the minimum); Consul adds up to wait/16 jitter.
    const v = collectViews(source({ endpoints: [c.url], intervalMs: 100 }));
    await v.waitFor(isValue('node1'), 2000);
    c.clearLog();
    await sleep(3_300);
    const n = kvReads(c).length;
    assert.ok(n >= 3 && n <= 4, `${n} reads in 3.3 s with a 1 s wait`);
    assert.ok(kvReads(c).every((r) => r.query.get('wait') === '1000ms' && r.index !== ''), 'all of them blocking');
    assert.equal(v.views.length, 1, 'an unchanged answer is not reported again');
  });

  test('index going backwards (resetIndex): reset to 0 once, right value, then blocking again', async () => {
    const c = await standin({ initialIndex: 1000 });
    c.put(KEY, 'node1');
    const v = collectViews(source({ endpoints: [c.url], intervalMs: 100 }));
    await v.waitFor(isValue('node1'), 2000);
    await sleep(100);
    c.clearLog();
    c.resetIndex(5);
    await sleep(400);
    c.put(KEY, 'node2'); // index 6: only seen if the client waits on the new, lower index
    await v.waitFor(isValue('node2'), 1000);
    // The parked query returned at once with index 5 (< 1001): the client resets (0, raised to
    // 1 by the sanity check: never 0 after an answer), which returns the current state at once,
    // and then blocks on the new, lower index.
    const idx = kvReads(c).map((r) => r.index);
    assert.equal(idx[0], '1', `restart right after the reset: ${idx.join(',')}`);
    assert.equal(idx[1], '5', `then blocking on the new, lower index: ${idx.join(',')}`);
    assert.ok(idx.every((i) => i !== '' && i !== '0'), `no plain read after the first answer: ${idx.join(',')}`);
  });

  test('snapshot restore to an older state: the older value is reported', async () => {
    const c = await standin();
    c.put(KEY, 'node1');
    const snap = c.snapshot();
    c.put(KEY, 'node2');
    const v = collectViews(source({ endpoints: [c.url] }));
    await v.waitFor(isValue('node2'), 2000);
    await sleep(100);
    c.restore(snap);
    await v.waitFor(isValue('node1'), 1000);
    c.put(KEY, 'node3');
    await v.waitFor(isValue('node3'), 1000);
  });

  test('X-Consul-Index 0 (a Consul bug): the client waits on 1, never busy-loops on 0', async () => {
    const c = await standin();
    c.put(KEY, 'node1');
    c.overrideIndexHeader(0);
    const v = collectViews(source({ endpoints: [c.url], intervalMs: 100 }));
    await v.waitFor(isValue('node1'), 2000);
    await sleep(1_500);
    const reads = kvReads(c);
    assert.equal(reads[0]!.index, '');
    assert.ok(reads.slice(1).every((r) => r.index === '1'), `indexes sent: ${reads.map((r) => r.index).join(',')}`);
    // The key's ModifyIndex is above 1, so each blocking read returns at once: the churn limiter
    // (a burst, then one read per CHURN_REFILL_MS) bounds the rate.
    assert.ok(reads.length <= 1 + CHURN_BURST + Math.ceil(1_500 / CHURN_REFILL_MS) + 2, `${reads.length} reads in 1.5 s`);
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

  test('500 "No cluster leader" → unreachable; back to a value when a leader is elected', async () => {
    const c = await standin();
    c.put(KEY, 'node1');
    const v = collectViews(source({ endpoints: [c.url], retryAfterMs: 50 }));
    await v.waitFor(isValue('node1'), 2000);
    await sleep(100);
    c.setNoLeader(true); // the parked blocking query re-checks leadership, as Consul's loop does
    const down = (await v.waitFor(isUnreachable, 1000)) as LeaderUnreachable;
    assert.match(down.error.message, /No cluster leader/);
    assert.equal(down.failures, 1);
    assert.equal(down.last?.value, 'node1', 'the last value travels with the outage');
    const second = (await v.waitFor((x) => x.kind === 'unreachable' && x.failures === 2, 1000)) as LeaderUnreachable;
    assert.equal(second.since, down.since, 'since stays at the first failure');
    c.setNoLeader(false);
    const n = v.views.length;
    await v.waitFor(isValue('node1'), 2000, n);
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
    const a = await standin();
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

  test('createConsulSource reads the configuration keys', async () => {
    const c = await standin({ token: 't' });
    c.put(KEY, 'node9');
    const cfg = {
      'dcs-type': 'consul', 'dcs-endpoints': [c.url], 'trigger-key': `/${KEY}`, 'consul-token': 't',
      interval: 1000, 'retry-after': 250, 'retry-num': 3,
      'etcd-ca-file': undefined, 'etcd-cert-file': undefined, 'etcd-key-file': undefined,
    } as unknown as Config;
    const src = createConsulSource(cfg, silentLogger());
    sources.push(src);
    assert.equal(src.kind, 'consul');
    const v = collectViews(src);
    await v.waitFor(isValue('node9'), 2000);
  });
});
