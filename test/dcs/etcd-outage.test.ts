// EtcdLeaderSource through etcd outages: killed and restarted, frozen (a peer that vanishes
// without a RST), and history compacted while the source was cut off.
import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import { EtcdLeaderSource, type EtcdSourceOptions } from '../../src/dcs/etcd/source.js';
import { KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from '../../src/dcs/etcd/client.js';
import { silentLogger } from '../../src/log.js';
import type { LeaderUnreachable, LeaderValue } from '../../src/reconcile/ports.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { startEtcdProxy, type EtcdProxy } from '../harness/etcd-proxy.js';
import { isUnreachable, isValue, sleep, ViewLog } from './etcd-views.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function open(endpoints: string[], key: string, extra: Partial<EtcdSourceOptions> = {}): ViewLog {
  const src = new EtcdLeaderSource({ endpoints, triggerKey: key, retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000, ...extra }, silentLogger());
  const views = new ViewLog();
  cleanups.push(() => src.close());
  src.start(views.onView);
  return views;
}

async function etcdFor(): Promise<EtcdServer> {
  const e = await startEtcd();
  cleanups.push(() => e.dispose());
  return e;
}

describe('etcd leader source outages', () => {
  it('etcd killed: unreachable at once with the last value, retries with backoff, recovers when etcd returns', async (t) => {
    const etcd = await etcdFor();
    const key = '/service/kill/leader';
    await etcd.client().put(key).value('node-a');
    const views = open(etcd.endpoints, key);
    await views.waitFor(isValue('node-a'), 3000, 'value before the kill');

    const killedAt = performance.now();
    await etcd.kill();
    const down = await views.waitFor(isUnreachable, 3000, 'unreachable after SIGKILL');
    const u = down.view as LeaderUnreachable;
    assert.ok(down.t - killedAt < 3000, `noticed ${Math.round(down.t - killedAt)} ms after SIGKILL`);
    assert.equal(u.last?.value, 'node-a', 'the unreachable view carries the last value');
    assert.ok(u.since >= killedAt - 50 && u.since <= down.t, 'since = the first failure');
    assert.match(u.error.message, /unreachable at http:\/\/127\.0\.0\.1:\d+/);

    await sleep(2000);
    const fails = views.seen.filter((s) => s.view.kind === 'unreachable').map((s) => s.view as LeaderUnreachable);
    const lastFail = fails[fails.length - 1]!;
    assert.ok(lastFail.failures >= 3 && lastFail.failures <= 15, `keeps retrying with backoff, no hot loop (${lastFail.failures} failures in ~2 s)`);
    assert.ok(fails.every((f) => f.since === u.since), 'since stays at the first failure');
    assert.deepEqual(fails.map((f) => f.failures), fails.map((_, i) => i + 1), 'failures count up by one');

    const idx = views.seen.length;
    await etcd.restart();
    const back = performance.now();
    // Recovery is the behaviour, not its speed (the backoff, capped at 4 s + 20%, decides that):
    // the wait is only a give-up bound.
    const up = await views.waitFor(isValue('node-a'), 30_000, 'value after restart', idx);
    t.diagnostic(`killed: noticed after ${Math.round(down.t - killedAt)} ms; ${lastFail.failures} failures in 2 s; value again ${Math.round(up.t - back)} ms after etcd was healthy`);
    await etcd.client().put(key).value('node-b');
    await views.waitFor(isValue('node-b'), 3000, 'a later put through the new watch', idx);
  });

  it('etcd frozen (no RST, no answer): the frozen-member check notices the dead peer within its bound', async (t) => {
    const etcd = await etcdFor();
    const key = '/service/frozen/leader';
    await etcd.client().put(key).value('node-a'); // no lease: only the frozen-member check can notice
    const views = open(etcd.endpoints, key);
    await views.waitFor(isValue('node-a'), 3000, 'value');
    // A second source on a leased key: its lease query (deadline REQUEST_TIMEOUT_MS) notices first.
    const leasedKey = '/service/frozen-leased/leader';
    const lease = etcd.client().lease(60, { autoKeepAlive: false });
    await lease.grant();
    await lease.put(leasedKey).value('node-a');
    const leased = open(etcd.endpoints, leasedKey, { leaseCheckInterval: 1000 });
    await leased.waitFor((v) => v.kind === 'value' && v.leaseDeadline !== null && v.leaseDeadline > v.at, 3000, 'leased value');
    await sleep(200);

    const frozenAt = performance.now();
    etcd.pause();
    cleanups.push(() => etcd.resume()); // before dispose (cleanups run in reverse)
    const bound = KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS + 2000;
    const down = await views.waitFor(isUnreachable, bound, 'unreachable while etcd is frozen');
    const took = down.t - frozenAt;
    t.diagnostic(`frozen etcd noticed after ${Math.round(took)} ms: ${(down.view as LeaderUnreachable).error.message}`);
    assert.ok(took < bound, `noticed after ${Math.round(took)} ms (bound ${bound})`);
    assert.equal((down.view as LeaderUnreachable).last?.value, 'node-a');
    const leasedDown = await leased.waitFor(isUnreachable, 1, 'leased source unreachable too');
    const leasedBound = 1000 + REQUEST_TIMEOUT_MS + 1500;
    t.diagnostic(`with a leased key noticed after ${Math.round(leasedDown.t - frozenAt)} ms: ${(leasedDown.view as LeaderUnreachable).error.message}`);
    assert.ok(leasedDown.t - frozenAt < leasedBound, `leased key: noticed within lease-check-interval + request timeout (${Math.round(leasedDown.t - frozenAt)} ms)`);

    const idx = views.seen.length;
    etcd.resume();
    const resumedAt = performance.now();
    await etcd.client().put(key).value('node-b');
    const up = await views.waitFor(isValue('node-b'), 30_000, 'value after resume', idx);
    t.diagnostic(`value again ${Math.round(up.t - resumedAt)} ms after etcd resumed`);
  });

  it('history compacted during the outage: recovers with the current value and watches on', async () => {
    const etcd = await etcdFor();
    const proxy: EtcdProxy = await startEtcdProxy(etcd.clientUrl);
    cleanups.push(() => proxy.close());
    const key = '/service/compact/leader';
    const c = etcd.client();
    await c.put(key).value('node-a');
    const views = open([proxy.url], key);
    await views.waitFor(isValue('node-a'), 3000, 'value before the cut');

    proxy.cut();
    await views.waitFor(isUnreachable, 3000, 'unreachable after the cut');
    await c.put(key).value('node-b');
    await c.delete().key(key);
    await c.put(key).value('node-c');
    for (let i = 0; i < 5; i++) await c.put('/service/compact/other').value(String(i));
    const final = await c.put(key).value('node-d').exec();
    const compactedTo = await etcd.compact();
    assert.equal(compactedTo, final.header.revision, 'everything before the current revision is compacted');

    const idx = views.seen.length;
    proxy.restore();
    const up = await views.waitFor((v) => v.kind === 'value', 6000, 'value after restore', idx);
    assert.equal((up.view as LeaderValue).value, 'node-d', 'the current value, not a replay');
    assert.equal((up.view as LeaderValue).revision, final.header.revision, 'its mod revision');
    await c.put(key).value('node-e');
    await views.waitFor(isValue('node-e'), 3000, 'watch works after the compaction', idx);
    const after = views.seen.slice(idx).map((s) => s.view);
    assert.ok(after.every((v) => v.kind === 'value' && (v.value === 'node-d' || v.value === 'node-e')), 'no stale values replayed');
  });
});
