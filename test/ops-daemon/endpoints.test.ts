// The operations endpoint of a running daemon (real etcd, real interfaces in test
// namespaces): /metrics, /healthz, /readyz and /status scraped before and after a transition,
// during a DCS outage, before the first DCS answer, and absent when turned off. Each daemon
// serves on its node's LAN address, so the test process (in the switch namespace) reaches it.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { eventually, hasVip } from '../harness/daemon.js';
import { createBed, KEY, VIP4, type Bed } from '../daemon/bed.js';
import {
  get, getError, getJson, HTTP_PORT, isHttpListening, isReadyLine, metrics, metricsUntil, spawnOn, statusUntil,
  type StatusJson,
} from './scrape.js';

const V4 = `${VIP4}/24`;
/** Every per-VIP series carries the entry's name, by default its ip. */
const VIPL = { vip: VIP4 };
/** bed.ts starts daemons with --announce-count 2; an IPv4 round is ARP request + ARP reply. */
const ANNOUNCE_ROUNDS = 2;
const FRAMES_PER_IPV4_ROUND = 2;
const LEASE_TTL_S = 10;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('daemon: operations endpoint against a real etcd', { concurrency: false }, () => {
  let bed: Bed;
  let host: string;
  const http = () => ['--http-listen', `${host}:${HTTP_PORT}`];
  before(async () => {
    bed = await createBed();
    host = bed.nodes[0].ipv4;
  });
  after(async () => { await bed?.dispose(); });
  afterEach(async () => {
    if (!bed) return;
    await Promise.all(bed.daemons.splice(0).map((d) => d.kill()));
    // SIGKILL leaves a held VIP behind, and a test that stopped etcd must not leave the next
    // one without it: every test starts from a clean node and a running etcd.
    for (const n of bed.nodes) if (hasVip(n.ns, V4)) n.ns.ip('addr', 'del', V4, 'dev', 'eth0');
    if (bed.etcd.pid === 0) await bed.etcd.restart();
  });

  test('metrics, health, readiness and /status before and after acquire and release', async () => {
    await bed.kv.delete().key(KEY);
    const d = await bed.start(0, http());

    // ---- before: standing by, the key absent -------------------------------------------
    const m0 = await metrics(host);
    assert.equal(m0.value('vip_manager_vip_held', VIPL), 0);
    assert.equal(m0.value('vip_manager_dcs_connected', VIPL), 1);
    assert.equal(m0.counter('vip_manager_transitions_total', { ...VIPL, direction: 'acquire', cause: 'key-ours' }), 0);
    assert.equal(m0.value('vip_manager_reaction_seconds_count', VIPL), 0);
    assert.equal(m0.value('vip_manager_announcements_total', VIPL), 0);
    assert.ok(Number.isNaN(m0.value('vip_manager_leader_lease_deadline_seconds', VIPL)), 'no lease deadline while the key is absent');
    const age0 = m0.value('vip_manager_dcs_last_answer_seconds', VIPL);
    assert.ok(Number.isFinite(age0) && age0 >= 0 && age0 < 60, `last answer ${age0} s ago`);
    assert.equal(m0.value('vip_manager_errors_total', { component: 'dcs' }), 0);
    const info = m0.rows.find((r) => r.name === 'vip_manager_info');
    assert.ok(info, 'vip_manager_info is exported');
    assert.equal(info.value, 1);
    assert.equal(info.labels.dcs_type, 'etcd');
    assert.equal(info.labels.manager_type, 'basic');
    assert.match(info.labels.version ?? '', /^\d+\.\d+\.\d+/);
    assert.ok(m0.rows.some((r) => r.name === 'process_resident_memory_bytes'), 'the runtime default metrics are there too');

    const metricsReply = await get(host, '/metrics');
    assert.match(String(metricsReply.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const healthz = await getJson<{ status: string; detail: { heartbeatAgeMs: number } }>(host, '/healthz');
    assert.equal(healthz.status, 200);
    assert.equal(healthz.json.status, 'ok');
    assert.ok(healthz.json.detail.heartbeatAgeMs >= 0 && healthz.json.detail.heartbeatAgeMs < 5000);
    const readyz = await getJson<{ status: string }>(host, '/readyz');
    assert.equal(readyz.status, 200);
    assert.equal(readyz.json.status, 'ok');

    const s0 = (await getJson<StatusJson>(host, '/status')).json;
    assert.equal(s0.config.ip, VIP4);
    // A checkout runs on the machine's node; the packaged build says embedded (test/ops/packages).
    assert.deepEqual(s0.runtime, { node: process.versions.node, embedded: false });
    assert.equal(s0.config['trigger-value'], 'n1');
    assert.deepEqual(s0.config['dcs-endpoints'], [bed.etcd.clientUrl]);
    assert.equal(s0.leader?.value, null);
    assert.equal(s0.leader?.isThisNode, false);
    assert.equal(s0.leader?.connected, true);
    assert.equal(s0.leader?.leaseSecondsLeft, null);
    assert.match(s0.leader!.lastAnswerAt, ISO);
    assert.deepEqual(s0.dcs, { reachable: true, unreachableSince: null, lastError: null });
    assert.equal(s0.vip.held, false);
    assert.equal(s0.vip.heldSince, null);
    assert.deepEqual(s0.transitions, []);
    // One entry (no `vips:`): named by its ip, listed under vips, its fields also at the top level.
    assert.equal(s0.name, VIP4);
    assert.equal(s0.config.role, 'leader');
    assert.equal(s0.vips.length, 1);
    const { version: _v, commit: _c, runtime: _r, startedAt: _s, vips: _l, ...top } = s0;
    assert.deepEqual(s0.vips[0], top);

    // ---- acquire: the key names this node, with a lease --------------------------------
    const lease = bed.kv.lease(LEASE_TTL_S);
    try {
      const mark = d.logs.length;
      await lease.put(KEY).value('n1');
      const acquired = await d.waitForTransition('acquire', mark, 3000);
      assert.equal(acquired.cause, 'key-ours');
      assert.ok(hasVip(bed.nodes[0].ns, V4));

      const m1 = await metricsUntil(host, 'every announcement frame counted', (s) =>
        s.value('vip_manager_announcements_total', VIPL) >= ANNOUNCE_ROUNDS * FRAMES_PER_IPV4_ROUND);
      assert.equal(m1.value('vip_manager_vip_held', VIPL), 1);
      assert.equal(m1.value('vip_manager_dcs_connected', VIPL), 1);
      assert.equal(m1.value('vip_manager_transitions_total', { ...VIPL, direction: 'acquire', cause: 'key-ours' }), 1);
      assert.equal(m1.value('vip_manager_reaction_seconds_count', VIPL), 1);
      // The histogram holds the very reaction time the log line reports (ms → s; the log rounds to µs).
      assert.ok(Math.abs(m1.value('vip_manager_reaction_seconds_sum', VIPL) - (acquired.reactionMs as number) / 1000) < 1e-5,
        `reaction sum ${m1.value('vip_manager_reaction_seconds_sum', VIPL)} s vs logged ${String(acquired.reactionMs)} ms`);
      assert.equal(m1.value('vip_manager_announcements_total', VIPL), ANNOUNCE_ROUNDS * FRAMES_PER_IPV4_ROUND, 'announce-count 2: two ARP requests and two replies');
      const deadline = m1.value('vip_manager_leader_lease_deadline_seconds', VIPL);
      assert.ok(deadline > 0 && deadline <= LEASE_TTL_S, `lease deadline ${deadline} s ahead (TTL ${LEASE_TTL_S} s)`);

      const s1 = (await getJson<StatusJson>(host, '/status')).json;
      assert.equal(s1.leader?.value, 'n1');
      assert.equal(s1.leader?.isThisNode, true);
      assert.equal(s1.leader?.revision, acquired.revision);
      const left = s1.leader?.leaseSecondsLeft;
      assert.ok(typeof left === 'number' && left > 0 && left <= LEASE_TTL_S, `leaseSecondsLeft ${String(left)}`);
      assert.equal(s1.vip.held, true);
      assert.equal(s1.vip.ready, true);
      assert.match(s1.vip.heldSince!, ISO);
      assert.ok(Math.abs(Date.parse(s1.vip.heldSince!) - Date.now()) < 10_000, `heldSince ${s1.vip.heldSince} is now`);
      assert.equal(s1.transitions.length, 1);
      const t1 = s1.transitions[0]!;
      assert.deepEqual({ direction: t1.direction, cause: t1.cause, value: t1.value, revision: t1.revision },
        { direction: 'acquire', cause: 'key-ours', value: 'n1', revision: acquired.revision });
      assert.equal(t1.at, s1.vip.heldSince);
      assert.ok(typeof t1.reactionMs === 'number' && t1.reactionMs >= 0, `reactionMs ${String(t1.reactionMs)}`);
      assert.ok(t1.tookMs >= 0);
      assert.ok(t1.reason.length > 0);

      // ---- release: the key moves to another node, without a lease ---------------------
      const mark2 = d.logs.length;
      await bed.kv.put(KEY).value('n2');
      const released = await d.waitForTransition('release', mark2, 3000);
      assert.equal(released.cause, 'key-other');
      assert.equal(hasVip(bed.nodes[0].ns, V4), false);
      const m2 = await metricsUntil(host, 'no lease deadline for a key without a lease', (s) =>
        Number.isNaN(s.value('vip_manager_leader_lease_deadline_seconds', VIPL)));
      assert.equal(m2.value('vip_manager_vip_held', VIPL), 0);
      assert.equal(m2.value('vip_manager_transitions_total', { ...VIPL, direction: 'acquire', cause: 'key-ours' }), 1);
      assert.equal(m2.value('vip_manager_transitions_total', { ...VIPL, direction: 'release', cause: 'key-other' }), 1);
      assert.equal(m2.value('vip_manager_reaction_seconds_count', VIPL), 2);
      assert.equal(m2.value('vip_manager_announcements_total', VIPL), ANNOUNCE_ROUNDS * FRAMES_PER_IPV4_ROUND, 'a release announces nothing');

      const s2 = (await getJson<StatusJson>(host, '/status')).json;
      assert.equal(s2.leader?.value, 'n2');
      assert.equal(s2.leader?.isThisNode, false);
      assert.equal(s2.leader?.leaseSecondsLeft, null);
      assert.equal(s2.vip.held, false);
      assert.equal(s2.vip.heldSince, null);
      assert.deepEqual(s2.transitions.map((t) => [t.direction, t.cause, t.value]), [['acquire', 'key-ours', 'n1'], ['release', 'key-other', 'n2']]);
      assert.deepEqual(s2.vips.map((v) => [v.name, v.vip.held, v.transitions.length]), [[VIP4, false, 2]]);
    } finally {
      await lease.revoke().catch(() => {});
    }
  });

  test('etcd killed: dcs_connected 0 and /status unreachable; both recover when etcd is back', async () => {
    await bed.kv.put(KEY).value('n2');
    const d = await bed.start(0, http());
    const before = await metrics(host);
    assert.equal(before.value('vip_manager_dcs_connected', VIPL), 1);
    assert.equal(before.value('vip_manager_errors_total', { component: 'dcs' }), 0);

    await bed.etcd.kill();
    await d.waitForLog((r) => r.msg === 'etcd: leader key unreachable', 10_000, 'the outage noticed');
    const m = await metricsUntil(host, 'dcs_connected 0', (s) => s.value('vip_manager_dcs_connected', VIPL) === 0);
    assert.ok(m.value('vip_manager_errors_total', { component: 'dcs' }) >= 1);
    assert.equal(m.value('vip_manager_vip_held', VIPL), 0);
    const s = await statusUntil(host, 'the DCS unreachable in /status', (j) => j.dcs.reachable === false);
    assert.match(s.dcs.unreachableSince!, ISO);
    assert.ok(Date.parse(s.dcs.unreachableSince!) <= Date.now());
    assert.ok(typeof s.dcs.lastError === 'string' && s.dcs.lastError.length > 0, 'the last error is shown');
    assert.equal(s.leader?.connected, false);
    assert.equal(s.leader?.value, 'n2', 'the last value seen is kept');
    // Alive (200) and still ready: readiness is "the DCS has answered", which stays true.
    assert.equal((await get(host, '/healthz')).status, 200);
    assert.equal((await get(host, '/readyz')).status, 200);

    await bed.etcd.restart();
    await metricsUntil(host, 'dcs_connected 1 again', (x) => x.value('vip_manager_dcs_connected', VIPL) === 1, 15_000);
    const back = await statusUntil(host, 'the DCS reachable again', (j) => j.dcs.reachable === true, 5000);
    assert.equal(back.dcs.unreachableSince, null);
    assert.equal(back.dcs.lastError, null);
    assert.equal(back.leader?.connected, true);
  });

  test('/readyz 503 until the first DCS answer, 200 after; /healthz 200 throughout', async () => {
    await bed.kv.put(KEY).value('n1');
    await bed.etcd.kill();
    const d = await spawnOn(bed, 0, { extra: http(), waitReady: false });
    await d.waitForLog(isHttpListening, 10_000, 'the HTTP endpoint');
    await d.waitForLog((r) => r.msg === 'etcd: leader key unreachable', 10_000, 'a failed first read');

    const notReady = await getJson<{ status: string; detail: string }>(host, '/readyz');
    assert.equal(notReady.status, 503);
    assert.equal(notReady.json.status, 'unavailable');
    assert.match(notReady.json.detail, /waiting for the first DCS answer/);
    assert.equal((await get(host, '/healthz')).status, 200);
    const m = await metrics(host);
    assert.equal(m.value('vip_manager_dcs_connected', VIPL), 0);
    assert.equal(m.value('vip_manager_dcs_last_answer_seconds', VIPL), Infinity);
    assert.equal(m.value('vip_manager_vip_held', VIPL), 0);
    const s = (await getJson<StatusJson>(host, '/status')).json;
    assert.equal(s.leader, null);
    assert.equal(s.dcs.reachable, false);
    assert.match(s.dcs.unreachableSince!, ISO);
    assert.equal(d.logs.some(isReadyLine), false);
    assert.equal(hasVip(bed.nodes[0].ns, V4), false, 'no VIP before the DCS has said anything');

    await bed.etcd.restart();
    await d.waitForLog(isReadyLine, 15_000, 'the first DCS answer');
    const ready = await getJson<{ status: string }>(host, '/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.json.status, 'ok');
    await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 2000);
    const m2 = await metricsUntil(host, 'held 1', (x) => x.value('vip_manager_vip_held', VIPL) === 1);
    assert.equal(m2.value('vip_manager_dcs_connected', VIPL), 1);
    assert.ok(Number.isFinite(m2.value('vip_manager_dcs_last_answer_seconds', VIPL)));
  });

  test('restart on the holder (VIP already here, no acquire): vip_held 1 and /status held with heldSince', async () => {
    await bed.kv.put(KEY).value('n1');
    const first = await bed.start(0, http());
    await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 2000);
    await first.kill(); // SIGKILL: the address stays
    bed.daemons.splice(bed.daemons.indexOf(first), 1);
    assert.ok(hasVip(bed.nodes[0].ns, V4));

    const second = await bed.start(0, http());
    assert.match(second.logs.find(isReadyLine)!.msg, /this node holds the VIP/);
    assert.equal(second.transitions().filter((r) => r.transition === 'acquire').length, 0, 'nothing to acquire: the VIP was already here');
    const m = await metrics(host);
    assert.equal(m.value('vip_manager_vip_held', VIPL), 1, 'the gauge follows what is held, not only transitions');
    assert.equal(m.counter('vip_manager_transitions_total', { ...VIPL, direction: 'acquire', cause: 'key-ours' }), 0);
    const s = (await getJson<StatusJson>(host, '/status')).json;
    assert.equal(s.vip.held, true);
    assert.match(s.vip.heldSince ?? 'null', ISO, 'heldSince is set for a VIP found already held');
  });

  test('/status leaseSecondsLeft counts down between DCS answers, like the lease-deadline gauge', async () => {
    const ttl = 30;
    // No keep-alive: the deadline never moves, so no new view arrives while the clock runs.
    const lease = bed.kv.lease(ttl, { autoKeepAlive: false });
    try {
      await lease.put(KEY).value('n2');
      await bed.start(0, http());
      await metricsUntil(host, 'a lease deadline', (x) => Number.isFinite(x.value('vip_manager_leader_lease_deadline_seconds', VIPL)));
      const first = (await getJson<StatusJson>(host, '/status')).json.leader!.leaseSecondsLeft!;
      await new Promise((r) => setTimeout(r, 1500));
      const gauge = (await metrics(host)).value('vip_manager_leader_lease_deadline_seconds', VIPL);
      const left = (await getJson<StatusJson>(host, '/status')).json.leader!.leaseSecondsLeft!;
      assert.ok(left <= first - 1, `leaseSecondsLeft went from ${first} to ${left} in 1.5 s`);
      assert.ok(Math.abs(left - gauge) < 0.5, `/status says ${left} s left, the gauge ${gauge} s`);
    } finally {
      await lease.revoke().catch(() => {});
    }
  });

  test('--http-enabled false: nothing listens (connection refused), the daemon works as usual', async () => {
    await bed.kv.put(KEY).value('n1');
    const d = await bed.start(0, ['--http-enabled', 'false', ...http()]);
    await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 2000);
    for (const path of ['/metrics', '/healthz', '/readyz', '/status']) {
      assert.equal(await getError(host, path), 'ECONNREFUSED', path);
    }
    assert.equal(d.logs.some(isHttpListening), false);
    // The control: the same address answers as soon as a daemon serves it.
    await d.kill();
    bed.daemons.splice(bed.daemons.indexOf(d), 1);
    await bed.start(0, http());
    assert.equal((await get(host, '/healthz')).status, 200);
  });
});
