// The etcd member a node's vip-manager talks to is cut off from the other members.
// Topology: the common all-in-one database node — each db namespace runs an etcd member,
// Patroni + PostgreSQL, and vip-manager configured with ONE endpoint, its own member over the
// namespace's loopback (http://127.0.0.1:2379). Cutting the primary's cable leaves vip-manager
// perfectly connected to a member that has lost its peers: that member still serves the old
// value (db1) from its stale copy. Patroni on the node loses the DCS too and demotes; the
// majority expires the leader key after ttl and elects another primary.
// vip-manager must stop trusting its lone member (etcd's require-leader) and, under hold-lease,
// release by the lease deadline: before the new primary's vip-manager acquires. No overlap.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { etcdctl } from '../harness/etcd.js';
import { createWritesTable, PatroniBed, waitUntil, Writer, type DbNode } from '../harness/patroni.js';
import { Scene, TTL_MS } from '../patroni/scenarios.js';

/**
 * How soon vip-manager must stop trusting the member: the next lease check (lease-check-interval,
 * default 4 s) either times out (3 s request deadline: the member forwards it to a leader it
 * cannot reach) or is refused (no leader, once the member's 1 s election timeout passed); plus
 * slack.
 */
const NOTICE_BOUND_MS = 4000 + 3000 + 2000;

describe('Patroni + etcd (co-located members) + vip-manager with its local member only', () => {
  let bed: PatroniBed;
  let scene: Scene;

  before(async () => {
    bed = await PatroniBed.create({ placement: 'colocated', vipEndpoints: 'local', vipConfig: { verbose: true } });
    await createWritesTable(bed);
    scene = await Scene.watch(bed);
  });
  after(async () => {
    scene?.stop();
    await bed?.dispose();
  });

  /** See the hand-back below: two members applying one revision at different moments. */
  const HANDBACK_OVERLAP_BOUND_MS = 1500;
  const vipEvent = (n: DbNode, kind: 'add' | 'del', t0: number) => scene.vipEvent(n, kind, t0);

  it('its member cut off from the peers: vip-manager stops trusting it and releases by the lease deadline, before the new primary acquires', async (t) => {
    const old = await bed.waitHealthy();
    await bed.waitVipOn(old);
    assert.deepEqual(old.vipConfig()['dcs-endpoints'], ['http://127.0.0.1:2379'], 'one endpoint: the node\'s own member');
    await scene.leaseKnown(old);
    const writer = new Writer(bed);
    writer.start();
    await writer.waitAcks(3, Date.now());
    const t0 = Date.now();
    bed.lan.setCable(old.host, false);
    let healAt = 0;
    let leader: DbNode | undefined;
    try {
      const newLeader = await bed.waitForLeader(TTL_MS + 30_000, old);
      leader = newLeader;
      await waitUntil(`the VIP on ${newLeader.name}`, () => newLeader.hasVip(), 10_000, 20);
      const removed = await vipEvent(old, 'del', t0);
      const added = await vipEvent(leader, 'add', t0);

      // The member is still reachable and still says the old value (a serializable read is
      // answered from its own, stale copy) — the very data vip-manager must not act on.
      const stale = (await etcdctl(['get', '--consistency=s', '--print-value-only', bed.leaderKey], { ns: old.ns.name, endpoints: 'http://127.0.0.1:2379' })).trim();
      t.diagnostic(`the cut-off member still answers ${bed.leaderKey} = ${JSON.stringify(stale)} (serializable read); the majority says ${JSON.stringify(leader.name)}`);
      assert.equal(stale, old.name, 'the cut-off member serves the stale value');

      const noticed = old.daemon.logs.find((r) => r.time >= t0 && r.msg === 'etcd: leader key unreachable');
      assert.ok(noticed, 'vip-manager stopped trusting its member');
      t.diagnostic(`cut → member not trusted: ${noticed.time - t0} ms (${String(noticed.reason)}: ${String(noticed.err)})`);
      assert.ok(noticed.time - t0 <= NOTICE_BOUND_MS, `noticed within ${NOTICE_BOUND_MS} ms`);
      // require-leader at work: the member, reachable as ever, refuses because it has no leader.
      const refused = old.daemon.logs.find((r) => r.time >= t0 && r.msg === 'etcd: leader key unreachable' && r.reason === 'no-leader');
      assert.ok(refused, 'the member refused with "no leader" (require-leader), it did not serve its stale copy');
      t.diagnostic(`cut → member refuses (no leader): ${refused.time - t0} ms`);

      const rel = old.transitions(t0).find((r) => r.transition === 'release');
      assert.ok(rel, 'vip-manager on the cut-off node released');
      assert.equal(rel.cause, 'dcs-lease-expired', 'released when the lease could have expired (hold-lease)');
      t.diagnostic(`cut → released on ${old.name}: ${removed - t0} ms; cut → acquired on ${leader.name}: ${added - t0} ms; no-overlap margin ${added - removed} ms`);
      // The lease may legitimately outlive the cut by up to a TTL counted from when the member
      // stopped answering: a member that was the raft leader keeps renewing the lease Patroni
      // keeps alive on it (lease renewal is the leader's lessor's, no raft round) and answers the
      // daemon's TTL queries until it notices it lost its quorum. The deadline the daemon holds
      // is the member's last word; what must never happen is the next assertion (both at once).
      assert.ok(removed - noticed.time <= TTL_MS + 500, `released within the lease ttl of the member's last answer (${removed - noticed.time} ms after it stopped answering, ${removed - t0} ms after the cut)`);
      assert.ok(removed <= added, `released on ${old.name} (${removed}) no later than ${leader.name} acquired (${added})`);
      await writer.waitAcks(3, Date.now());
      assert.equal(bed.psql("select split_part(current_setting('data_directory'), '/', -2)"), leader.name);
      assert.equal(bed.psql('select pg_is_in_recovery()'), 'f');
      assert.ok(writer.acknowledged().every((w) => w.inRecovery === false));
      assert.deepEqual(writer.nodeSequence(), [old.name, leader.name]);
    } finally {
      bed.lan.setCable(old.host, true);
      healAt = Date.now();
      await writer.stop();
      scene.show(t, t0, writer, [{ t: t0, what: `cable of ${old.name} (and its etcd member) cut` }, { t: healAt, what: 'cable back' }]);
    }
    // Back together: the old node's member rejoins, its vip-manager trusts it again and stays off.
    await old.daemon.waitForLog((r) => r.time >= healAt && r.msg === 'etcd: reachable again', 30_000, 'the member trusted again');
    const leaderAfter = await bed.heal();
    await bed.waitVipOn(leaderAfter);
    const said = old.daemon.logs.filter((r) => r.time >= healAt && r.level >= 30).map((r) => `${r.time - healAt} ms after the cable came back: ${r.msg}`);
    for (const line of said) t.diagnostic(`${old.name} vip-manager: ${line}`);
    t.diagnostic(bed.reinits.length ? `test bed: rebuilt ${bed.reinits.join(', ')}` : 'the old primary rejoined as a replica by itself');
    if (leaderAfter === old) {
      // Patroni 3.0.2 (Debian bookworm) overwrites the leader key from its stale cache when the old
      // primary reconnects (fixed in 3.0.3, patroni/patroni#2689). vip-manager follows the key.
      t.diagnostic(`Patroni 3.0.2 took the leader key back for ${old.name} on reconnect (patroni#2689); the VIP followed the key`);
    }
    // Whoever Patroni's leader is now, the VIP is there and only there, and the hand-back (if
    // any) had no overlap either.
    if (leaderAfter === old) {
      const removed = await vipEvent(leader!, 'del', healAt);
      const added = await vipEvent(old, 'add', healAt);
      t.diagnostic(`hand-back: removed on ${leader!.name} ${removed - healAt} ms, added on ${old.name} ${added - healAt} ms after the cable came back`);
      // Each vip-manager watches its own member, and each member applies the key's new revision
      // on its own: the old node's member can deliver it before the new leader's does (measured
      // 28 ms after, and 292 ms before, under a full test run's load). The overlap is that gap
      // plus one reaction, never a lease or an interval: bounded at over 5x the worst seen.
      assert.ok(removed - added <= HANDBACK_OVERLAP_BOUND_MS,
        `the VIP was on both ${old.name} and ${leader!.name} for ${removed - added} ms at the hand-back (bound ${HANDBACK_OVERLAP_BOUND_MS} ms)`);
    }
  });
});
