// End to end with Patroni 3.0 + PostgreSQL 15 + a three-member etcd cluster (members in their
// own namespaces), our vip-manager on every database node with all three etcd endpoints, and a
// client namespace that writes through the VIP. Every fault an operator meets, one after the
// other on the same cluster (each test heals what it broke and waits for a healthy cluster):
//   switchover, crash of the primary, the holder cut off from all of etcd under each dcs-loss
//   policy (hold-lease, keep, release), etcd members restarted (rolling, and all at once),
//   vip-manager SIGKILLed and restarted, Patroni restarted on the primary, link down/up, the
//   VIP removed by hand. (The member-cut-off case needs another topology:
//   patroni-member-cutoff.test.ts; the soak: soak.test.ts.)
// Times are compared across namespaces on one clock: kernel address events (`ip -ts monitor`,
// epoch ms) and the daemons' JSON log times (Date.now()) of the same machine.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createWritesTable, PatroniBed, VIP_CIDR, waitUntil, Writer } from '../harness/patroni.js';
import { Scene, sleep, TTL_MS } from '../patroni/scenarios.js';

describe('Patroni + etcd + vip-manager: faults', () => {
  let bed: PatroniBed;
  let scene: Scene;

  before(async () => {
    // verbose: the daemons log the leader key's lease deadline (a debug line), so a test can
    // wait until the holder knows it before cutting a cable.
    bed = await PatroniBed.create({ placement: 'separate', vipConfig: { verbose: true } });
    await createWritesTable(bed);
    scene = await Scene.watch(bed);
  });
  after(async () => {
    scene?.stop();
    await bed?.dispose();
  });

  async function restartVipManagers(overrides: Record<string, unknown>): Promise<void> {
    for (const n of bed.nodes) {
      await n.stopVipManager('SIGKILL');
      await n.startVipManager(overrides);
    }
  }

  it('patronictl switchover: the VIP moves with the leader, psql through it reaches the new primary, no acknowledged write is lost', (t) => scene.switchover(t));

  it('crash of the primary (SIGKILL of Patroni and PostgreSQL): the VIP ends on the new primary, writes only ever on the primary of the moment', (t) => scene.crash(t));

  /**
   * Cuts the VIP holder's cable (it then reaches no etcd member, and Patroni there loses the
   * DCS too) with a writer running, and waits until another node is primary and holds the VIP.
   */
  async function cutHolder() {
    const old = await bed.waitHealthy();
    await bed.waitVipOn(old);
    await scene.leaseKnown(old);
    const writer = new Writer(bed);
    writer.start();
    await writer.waitAcks(3, Date.now());
    const t0 = Date.now();
    bed.lan.setCable(old.host, false);
    const heal = () => {
      bed.lan.setCable(old.host, true);
      return Date.now();
    };
    try {
      const leader = await bed.waitForLeader(TTL_MS + 30_000, old);
      await waitUntil(`the VIP on ${leader.name}`, () => leader.hasVip(), 10_000, 20);
      return { old, leader, t0, writer, heal };
    } catch (e) {
      heal();
      await writer.stop();
      throw e;
    }
  }

  it('the holder cut off from all of etcd, dcs-loss hold-lease: it releases by the lease deadline, before the new primary acquires', async (t) => {
    const { old, leader, t0, writer, heal } = await cutHolder();
    let healAt = 0;
    try {
      await waitUntil(`${old.name} releasing`, () => !old.hasVip(), 5000, 20);
      const { removed, added } = await scene.handover(old, leader, t0);
      const rel = old.transitions(t0).find((r) => r.transition === 'release')!;
      t.diagnostic(`cut → released on ${old.name}: ${removed - t0} ms (cause ${rel.cause}); cut → acquired on ${leader.name}: ${added - t0} ms; margin ${added - removed} ms`);
      assert.ok(removed < added, `released on ${old.name} (${removed}) before ${leader.name} acquired (${added})`);
      assert.ok(['dcs-lease-expired', 'lease-expired'].includes(String(rel.cause)), `released because the lease could have expired (${rel.cause})`);
      assert.ok(removed - t0 <= TTL_MS + 500, `released within the lease ttl (${removed - t0} ms)`);
      // Not stale: it did not hold on until the key changed; it let go on its own deadline. The
      // new leader could only create its key once etcd had expired the old one, so that delete
      // must be in the key log: a comparison with a delete never seen would prove nothing.
      const del = await waitUntil('etcd expiring the old leader key (a delete in the key log)', () => scene.keys.find(t0, (e) => e.kind === 'del'), 10_000, 20);
      assert.ok(removed <= del.t + 50, `released (${removed}) no later than etcd expired the key (${del.t})`);
    } finally {
      healAt = heal();
      await writer.stop();
      scene.show(t, t0, writer, [{ t: t0, what: `cable of ${old.name} cut` }, { t: healAt, what: `cable of ${old.name} back` }]);
    }
    await scene.healed(t, leader);
  });

  it('the holder cut off from all of etcd, dcs-loss keep: it keeps the VIP until etcd answers again (overlap expected), then releases', async (t) => {
    await restartVipManagers({ 'dcs-loss': 'keep' });
    const { old, leader, t0, writer, heal } = await cutHolder();
    let healAt = 0;
    try {
      assert.ok(old.hasVip(), `${old.name} still holds the VIP while ${leader.name} has it too: keep holds until etcd answers`);
      await sleep(3000);
      assert.ok(old.hasVip(), `${old.name} keeps holding while cut off`);
      assert.deepEqual(old.transitions(t0).filter((r) => r.transition === 'release'), [], 'no release while cut off');
      assert.deepEqual(scene.vipEvents(old, t0), [], `the kernel never removed the VIP on ${old.name} while cut off`);
      healAt = heal();
      const rel = await old.daemon.waitForLog((r) => r.transition === 'release' && r.time >= healAt, 30_000, `${old.name} releasing once etcd answers`);
      assert.equal(rel.cause, 'key-other', 'released because etcd names another node');
      assert.equal(rel.value, leader.name);
      t.diagnostic(`overlap lasted until etcd answered again: released ${rel.time - healAt} ms after the cable came back`);
    } finally {
      if (!healAt) healAt = heal();
      await writer.stop();
      scene.show(t, t0, writer, [{ t: t0, what: `cable of ${old.name} cut` }, { t: healAt, what: `cable of ${old.name} back` }]);
    }
    await scene.healed(t, leader);
  });

  it('the holder cut off from all of etcd, dcs-loss release: it releases retry-num × retry-after after the first failure', async (t) => {
    const retryNum = 3;
    const retryAfter = 250;
    await restartVipManagers({ 'dcs-loss': 'release', 'retry-num': retryNum, 'retry-after': retryAfter });
    // The default policy comes back however this test ends: the tests after it expect hold-lease.
    try {
      const { old, leader, t0, writer, heal } = await cutHolder();
      let healAt = 0;
      try {
        await waitUntil(`${old.name} releasing`, () => !old.hasVip(), 5000, 20);
        const rel = old.transitions(t0).find((r) => r.transition === 'release')!;
        const firstFailure = old.daemon.logs.find((r) => r.time >= t0 && r.msg === 'etcd: leader key unreachable')!;
        assert.ok(firstFailure, 'the daemon noticed etcd was unreachable');
        const after = rel.time - firstFailure.time;
        const { removed, added } = await scene.handover(old, leader, t0);
        t.diagnostic(`cut → first failure noticed: ${firstFailure.time - t0} ms (${String(firstFailure.reason)}); first failure → release: ${after} ms (policy: ${retryNum} × ${retryAfter} = ${retryNum * retryAfter} ms); released ${added - removed} ms before ${leader.name} acquired`);
        assert.equal(rel.cause, 'dcs-lost');
        assert.ok(after >= retryNum * retryAfter - 20 && after <= retryNum * retryAfter + 500, `released ${after} ms after the first failure (expected ≈ ${retryNum * retryAfter})`);
        assert.ok(removed < added, 'released before the new primary acquired');
      } finally {
        healAt = heal();
        await writer.stop();
        scene.show(t, t0, writer, [{ t: t0, what: `cable of ${old.name} cut` }, { t: healAt, what: `cable of ${old.name} back` }]);
      }
      await scene.healed(t, leader);
    } finally {
      await restartVipManagers({});
    }
    await bed.waitVipOn(await bed.waitForLeader());
  });

  it('etcd members restarted one by one (rolling, SIGTERM): the VIP stays where it is, never removed', async (t) => {
    const holder = await bed.waitHealthy();
    await bed.waitVipOn(holder);
    await scene.leaseKnown(holder);
    const t0 = Date.now();
    const marks: Array<{ t: number; what: string }> = [];
    try {
      for (const m of bed.etcd.members) {
        marks.push({ t: Date.now(), what: `etcd ${m.name} stopped (SIGTERM)` });
        await m.stop('SIGTERM');
        m.start();
        await bed.etcd.waitHealthy();
        marks.push({ t: Date.now(), what: `etcd ${m.name} back, cluster healthy` });
      }
      await scene.leaseKnown(holder, Date.now());
      await sleep(2000);
    } finally {
      scene.show(t, t0, undefined, marks);
    }
    scene.assertNoFlap(holder, t0);
    assert.equal(await bed.waitForLeader(), holder, 'Patroni kept its leader');
  });

  it('all etcd members restarted at once: the VIP stays where it is, never removed', async (t) => {
    const holder = await bed.waitHealthy();
    await bed.waitVipOn(holder);
    await scene.leaseKnown(holder);
    // Maintenance mode, as an operator sets it for etcd work: Patroni keeps its leader (and the
    // leader key) instead of demoting when etcd is away longer than retry_timeout.
    bed.patronictl(['pause', '--wait']);
    const t0 = Date.now();
    let restartedAt = 0;
    try {
      // SIGKILL: all members gone at the same instant (a SIGTERM of all three takes ~7 s here,
      // the leader waiting to hand over to peers that are stopping too, which eats most of
      // the 10 s lease; hold-lease would then rightly let go).
      await bed.etcd.restartAll('SIGKILL');
      restartedAt = Date.now();
      await holder.daemon.waitForLog((r) => r.time >= t0 && r.msg === 'etcd: reachable again', 20_000, 'etcd reachable again');
      await scene.leaseKnown(holder, restartedAt);
      await sleep(2000);
    } finally {
      scene.show(t, t0, undefined, [{ t: t0, what: 'all etcd members killed' }, { t: restartedAt, what: 'all etcd members serving again' }]);
      bed.patronictl(['resume', '--wait']);
    }
    t.diagnostic(`etcd cluster down and back in ${restartedAt - t0} ms`);
    assert.ok(holder.daemon.logs.some((r) => r.time >= t0 && r.msg === 'etcd: leader key unreachable'), 'the daemon did see etcd go away');
    scene.assertNoFlap(holder, t0);
  });

  it('vip-manager SIGKILLed on the holder and started again: the VIP never leaves', async (t) => {
    const holder = await bed.waitHealthy();
    await bed.waitVipOn(holder);
    const t0 = Date.now();
    await holder.stopVipManager('SIGKILL');
    assert.ok(holder.hasVip(), 'a killed daemon leaves the VIP in place');
    await sleep(500);
    await holder.startVipManager();
    const d = holder.daemon;
    await scene.leaseKnown(holder, t0);
    await sleep(1500);
    scene.show(t, t0, undefined, [{ t: t0, what: `SIGKILL to vip-manager on ${holder.name}, started again` }]);
    assert.deepEqual(scene.vipEvents(holder, t0), [], 'the kernel never removed the VIP');
    assert.deepEqual(d.transitions().filter((r) => r.transition === 'release'), [], 'the new daemon did not release');
    assert.deepEqual(bed.vipHolders(), [holder]);
  });

  it('Patroni restarted on the primary (its process killed, PostgreSQL keeps running): the VIP stays', async (t) => {
    const holder = await bed.waitHealthy();
    await bed.waitVipOn(holder);
    await scene.leaseKnown(holder);
    const t0 = Date.now();
    // Patroni on restart finds its PostgreSQL running and its leader key, and renews the key
    // under a new lease (same value): vip-manager must keep the VIP through that.
    process.kill(holder.patroni!.pid!, 'SIGKILL');
    await sleep(500);
    holder.startPatroni();
    const put = await waitUntil('Patroni rewriting its leader key', () => scene.keys.find(t0, (e) => e.kind === 'put' && e.value === holder.name), 30_000, 50);
    await scene.leaseKnown(holder, put.t);
    await sleep(1000);
    scene.show(t, t0, undefined, [{ t: t0, what: `Patroni on ${holder.name} killed, then started again` }]);
    assert.equal(await bed.waitForLeader(), holder, 'Patroni kept its leader');
    scene.assertNoFlap(holder, t0);
  });

  it('link down and up on the holder: the VIP is announced again, and restored if it was lost while down', async (t) => {
    const holder = await bed.waitHealthy();
    await bed.waitVipOn(holder);
    const d = holder.daemon;
    // 1. down/up with the address kept (IPv4 addresses survive a link down).
    let t0 = Date.now();
    holder.ns.ip('link', 'set', 'eth0', 'down');
    await d.waitForLog((r) => r.time >= t0 && /waiting/.test(r.msg), 5000, 'the daemon noticing the link went down');
    await sleep(300);
    let upAt = Date.now();
    holder.ns.ip('link', 'set', 'eth0', 'up');
    const ann = await d.waitForLog((r) => r.time >= upAt && r.transition === 'announce', 5000, 'an announcement after link up');
    assert.equal(ann.cause, 'link-up');
    assert.ok(holder.hasVip());
    t.diagnostic(`link up → announced: ${ann.time - upAt} ms`);
    // 2. down, the VIP deleted while down (what ifdown does), up: restored.
    t0 = Date.now();
    holder.ns.ip('link', 'set', 'eth0', 'down');
    await d.waitForLog((r) => r.time >= t0 && /waiting/.test(r.msg), 5000, 'the daemon noticing the link went down');
    holder.ns.ip('addr', 'del', VIP_CIDR, 'dev', 'eth0');
    await sleep(300);
    assert.ok(!holder.hasVip(), 'not re-added while the link is down');
    upAt = Date.now();
    holder.ns.ip('link', 'set', 'eth0', 'up');
    const added = await scene.vipEvent(holder, 'add', upAt);
    t.diagnostic(`link up → VIP restored: ${added - upAt} ms`);
    assert.ok(added - upAt < 1000, 'restored within a second of the link coming back');
    assert.deepEqual(bed.vipHolders(), [holder]);
    await bed.waitHealthy(60_000);
  });

  it('the VIP removed by hand on the holder: restored at once', (t) => scene.addressRemovedByHand(t));
});
