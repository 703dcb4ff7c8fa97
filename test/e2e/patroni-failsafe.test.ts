// dcs-loss patroni on the real bed (Debian's Patroni 3.0.2 + PostgreSQL + three etcd members in
// their own namespaces) with failsafe_mode: true in bootstrap.dcs.
// Patroni's behaviour, from its source (patroni/ha.py v3.0.2 _handle_dcs_error, api.py do_GET):
// a primary that cannot reach the DCS asks every member listed in the /failsafe key with POST
// /failsafe; if all accept, it stays primary ("continue to run as a leader because failsafe mode
// is enabled and all members are accessible") and renews its own leadership, so GET /primary
// keeps answering 200. If one does not, it demotes ('offline': PostgreSQL is stopped first, then
// is_leader is cleared, and only then does /primary answer 503).
// vip-manager with dcs-loss patroni asks its node's /primary every interval (1 s) and holds the
// VIP exactly while that says 200 with state "running" during the DCS outage.
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { createWritesTable, DEFAULT_TIMINGS, NAMESPACE, PatroniBed, waitUntil, Writer, type DbNode } from '../harness/patroni.js';
import { Scene, sleep, TTL_MS } from '../patroni/scenarios.js';

const INTERVAL_MS = 1000;
/** Longer than Patroni's ttl: the leader key would have expired in etcd by now. */
const OUTAGE_MS = TTL_MS + 5000;

interface ProbeAnswer { t: number; status: number | null; state: string | null; role: string | null }
const runningPrimary = (a: ProbeAnswer) => a.status === 200 && a.state === 'running' && (a.role === 'master' || a.role === 'primary');

/**
 * The test's own view of GET /primary on one node, every 50 ms (t: when the request was sent):
 * when it stopped saying "running primary" (200 + state running) and when it stopped saying 200.
 */
class PrimaryProbe {
  readonly answers: ProbeAnswer[] = [];
  private running = true;
  private readonly loop: Promise<void>;
  constructor(node: DbNode) {
    this.loop = (async () => {
      while (this.running) {
        const t = Date.now();
        const a = await node.rest('/primary', 800).then((r) => {
          let doc: { state?: string; role?: string } = {};
          try { doc = JSON.parse(r.body) as typeof doc; } catch { /* not a status document */ }
          return { t, status: r.status, state: doc.state ?? null, role: doc.role ?? null };
        }, () => ({ t, status: null, state: null, role: null }));
        this.answers.push(a);
        await sleep(50);
      }
    })();
  }
  /** The first answer after `after` that fails `pred`, and the last one before it that passed. */
  private change(after: number, pred: (a: ProbeAnswer) => boolean): { last: number; first: number; what: string } | undefined {
    const xs = this.answers.filter((a) => a.t >= after);
    const i = xs.findIndex((a) => !pred(a));
    if (i <= 0) return undefined;
    const a = xs[i]!;
    return { last: xs[i - 1]!.t, first: a.t, what: a.status === null ? 'no answer' : `${a.status}, state ${a.state}` };
  }
  notRunningPrimary(after: number) {
    return this.change(after, runningPrimary);
  }
  not200(after: number) {
    return this.change(after, (a) => a.status === 200);
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
  between(after: number, until: number): ProbeAnswer[] {
    return this.answers.filter((a) => a.t >= after && a.t <= until);
  }
}

describe('Patroni failsafe_mode + vip-manager dcs-loss patroni', () => {
  let bed: PatroniBed;
  let scene: Scene;

  before(async () => {
    bed = await PatroniBed.create({ placement: 'separate', failsafe: true, vipConfig: { 'dcs-loss': 'patroni', interval: INTERVAL_MS, verbose: true } });
    await createWritesTable(bed);
    scene = await Scene.watch(bed);
  });
  after(async () => {
    scene?.stop();
    await bed?.dispose();
  });

  const killEtcd = () => Promise.all(bed.etcd.members.map((m) => m.kill()));
  async function startEtcd(): Promise<void> {
    for (const m of bed.etcd.members) m.start();
    await bed.etcd.waitHealthy();
  }

  /** A healthy cluster whose primary has published the failsafe topology (all members) in etcd. */
  async function ready(): Promise<DbNode> {
    const holder = await bed.waitHealthy();
    await bed.waitVipOn(holder);
    const key = `${NAMESPACE}/${bed.scope}/failsafe`;
    await waitUntil(`${key} naming every member`, async () => {
      const v = await bed.kv().get(key).string();
      if (v === null) return false;
      const names = Object.keys(JSON.parse(v) as Record<string, string>);
      return bed.nodes.every((n) => names.includes(n.name));
    }, 30_000, 200);
    await waitUntil(`${holder.name} vip-manager hearing /primary 200`, () => holder.daemon.logs.some((r) => /is the running primary \(GET \/primary 200/.test(r.msg)), 10_000, 50);
    return holder;
  }

  async function restore(t: TestContext): Promise<void> {
    const leader = await scene.healed(t);
    await bed.waitVipOn(leader);
  }

  it('all etcd members stopped longer than ttl: the primary stays primary, keeps the VIP throughout, no other node takes it, writes through the VIP go on', async (t) => {
    const holder = await ready();
    const probe = new PrimaryProbe(holder);
    const writer = new Writer(bed);
    writer.start();
    await writer.waitAcks(3, Date.now());
    const t0 = Date.now();
    let backAt = 0;
    try {
      await killEtcd();
      const unreachable = await holder.daemon.waitForLog((r) => r.time >= t0 && r.msg === 'etcd: leader key unreachable', 15_000, 'vip-manager losing etcd');
      const kept = await waitUntil(`${holder.name} Patroni keeping the primary in failsafe mode`, () => holder.patroniLog.find(/continue to run as a leader because failsafe/, t0), 30_000, 50);
      t.diagnostic(`etcd killed → vip-manager saw it unreachable ${unreachable.time - t0} ms; Patroni first said failsafe keeps the leader ${kept.t - t0} ms`);
      // Hold the outage past ttl, checking all along: the holder keeps the VIP, nobody else has it.
      while (Date.now() - t0 < OUTAGE_MS) {
        assert.ok(holder.hasVip(), `${holder.name} holds the VIP at ${Date.now() - t0} ms into the outage`);
        for (const n of bed.nodes) if (n !== holder) assert.ok(!n.hasVip(), `${n.name} does not hold the VIP`);
        await sleep(200);
      }
      const end = Date.now();
      await startEtcd();
      backAt = Date.now();
      await holder.daemon.waitForLog((r) => r.time >= backAt - 1000 && r.msg === 'etcd: reachable again', 20_000, 'etcd reachable again');
      await writer.waitAcks(3, Date.now());
      await writer.stop();
      await probe.stop();

      // Every answer said running primary. A probe request that got no answer at all (the machine
      // is shared; starting three etcd members at the end costs CPU) is not a contrary answer.
      const seen = probe.between(t0, end);
      const contrary = seen.filter((a) => a.status !== null && !runningPrimary(a));
      assert.deepEqual(contrary, [], `${holder.name} answered GET /primary 200, state running, throughout the outage`);
      assert.ok(seen.filter(runningPrimary).length >= (end - t0) / 1000, `${holder.name} said running primary all along (${seen.filter(runningPrimary).length} answers, ${seen.filter((a) => a.status === null).length} without answer)`);
      assert.deepEqual(scene.vipEvents(holder, t0), [], `the kernel never removed the VIP on ${holder.name}`);
      for (const n of bed.nodes) if (n !== holder) assert.deepEqual(scene.vipEvents(n, t0), [], `the VIP never appeared on ${n.name}`);
      assert.deepEqual(holder.transitions(t0), [], 'vip-manager made no transition');
      const during = writer.records.filter((r) => r.t0 >= t0 && r.t0 <= end);
      // The only failure tolerated is the writer's own 300 ms connect deadline passing (seen once
      // in four runs here, with the VIP untouched: the machine is shared with CI). A refusal,
      // a reset, "read-only" or "shutting down" would be the primary going away, and fails.
      const failed = during.filter((r) => !r.ok);
      const timeouts = failed.filter((r) => /^ETIMEDOUT no TCP connection/.test(r.error ?? ''));
      assert.deepEqual(failed.filter((r) => !timeouts.includes(r)).map((r) => r.error), [], 'no write refused or broken during the outage');
      const acked = during.filter((r) => r.ok);
      assert.ok(acked.every((r) => r.node === holder.name && r.inRecovery === false), `every write during the outage on ${holder.name} as primary`);
      const gaps = acked.slice(1).map((r, i) => r.t1 - acked[i]!.t1);
      const maxGap = Math.max(...gaps);
      // A write every ~20 ms plus its round trip (about 150 ms measured on this shared machine).
      assert.ok(acked.length >= 10 && maxGap <= 2000, `writes went on without a pause: ${acked.length} acknowledged, longest gap ${maxGap} ms`);
      assert.ok(writer.acknowledged().some((r) => r.t0 >= t0 + TTL_MS && r.t0 <= end), 'a write was acknowledged after the leader key\'s ttl had run out');
      assert.equal(await bed.waitForLeader(), holder, 'Patroni kept its leader');
      t.diagnostic(`outage ${end - t0} ms (ttl ${TTL_MS} ms): ${acked.length} writes acknowledged through the VIP on ${holder.name}, ${timeouts.length} connect timeouts (300 ms), none refused; longest gap between acknowledged writes ${maxGap} ms; VIP never moved`);
    } finally {
      await writer.stop();
      await probe.stop();
      if (!backAt) await startEtcd().catch(() => undefined);
      scene.show(t, t0, writer, [{ t: t0, what: 'all etcd members killed' }, ...(backAt ? [{ t: backAt, what: 'etcd serving again' }] : [])]);
    }
  });

  it('failsafe on, all etcd members stopped and one replica cut off from the primary: Patroni demotes, the VIP is gone no later than one interval after /primary stops answering 200', async (t) => {
    const holder = await ready();
    const replica = bed.nodes.find((n) => n !== holder)!;
    const probe = new PrimaryProbe(holder);
    const t0 = Date.now();
    let healAt = 0;
    try {
      bed.lan.setCable(replica.host, false);
      await killEtcd();
      const removed = await scene.vipEvent(holder, 'del', t0, 60_000);
      // etcd stays away until Patroni has finished demoting (/primary 503), or it takes its lock back.
      const n200 = await waitUntil(`GET /primary on ${holder.name} leaving 200`, () => probe.not200(t0), 30_000, 50);
      const stop = probe.notRunningPrimary(t0);
      assert.ok(stop, `GET /primary on ${holder.name} stopped saying running primary`);
      const demote = holder.patroniLog.find(/demoting self because DCS is not accessible|Demoting self \(offline\)/, t0);
      assert.ok(demote, 'Patroni demoted the primary');
      // The address is gone before the daemon's log line about it reaches us over its pipe.
      const rel = await waitUntil(`${holder.name}: vip-manager's release logged`, () => holder.transitions(t0).find((r) => r.transition === 'release'), 5000, 20);
      assert.equal(rel.cause, 'dcs-patroni-not-primary');
      t.diagnostic(`cut + etcd killed → Patroni demoting ${demote.t - t0} ms; /primary last "200, running" ${stop.last - t0} ms, first not (${stop.what}) ${stop.first - t0} ms; first not 200 ${n200.first - t0} ms; VIP removed ${removed - t0} ms`);
      t.diagnostic(`VIP removed ${removed - n200.first} ms after /primary stopped answering 200; ${removed - stop.first} ms after it stopped saying state running; interval ${INTERVAL_MS} ms`);
      assert.ok(removed - n200.first <= INTERVAL_MS, `VIP gone no later than one interval after /primary stopped answering 200 (${removed - n200.first} ms)`);
      // Against the earlier "running" flip: one poll period plus the answer's round trip and the
      // address change (tens of ms here; 250 ms allowed).
      assert.ok(removed - stop.first <= INTERVAL_MS + 250, `VIP gone within one poll of /primary leaving "200, running" (${removed - stop.first} ms)`);
      for (const n of bed.nodes) if (n !== holder) assert.deepEqual(scene.vipEvents(n, t0).filter((e) => e.kind === 'add' && e.t < removed), [], `the VIP did not appear on ${n.name} while ${holder.name} held it`);
    } finally {
      await probe.stop();
      bed.lan.setCable(replica.host, true);
      await startEtcd().catch(() => undefined);
      healAt = Date.now();
      scene.show(t, t0, undefined, [{ t: t0, what: `cable of ${replica.name} cut, all etcd members killed` }, { t: healAt, what: 'cable back, etcd serving again' }]);
    }
    await restore(t);
  });

  it('failsafe off: dcs-loss patroni releases once Patroni starts demoting, before Patroni has finished demoting (/primary 503)', async (t) => {
    bed.patronictl(['edit-config', '--set', 'failsafe_mode=false', '--force']);
    const holder = await bed.waitHealthy();
    await bed.waitVipOn(holder);
    await waitUntil('Patroni on every node seeing failsafe_mode off', async () => {
      for (const n of bed.nodes) {
        const c = JSON.parse((await n.rest('/config')).body) as { failsafe_mode?: boolean };
        if (c.failsafe_mode !== false) return false;
      }
      return true;
    }, 20_000, 200);
    const probe = new PrimaryProbe(holder);
    const writer = new Writer(bed);
    writer.start();
    await writer.waitAcks(3, Date.now());
    const t0 = Date.now();
    try {
      await killEtcd();
      const removed = await scene.vipEvent(holder, 'del', t0, 60_000);
      // Patroni has finished demoting when it clears its leadership and /primary says 503 (after
      // PostgreSQL is down): etcd stays away until then, or Patroni would take its lock back.
      const n200 = await waitUntil(`GET /primary on ${holder.name} leaving 200`, () => probe.not200(t0), 30_000, 50);
      const stop = probe.notRunningPrimary(t0);
      assert.ok(stop, `GET /primary on ${holder.name} stopped saying running primary`);
      const demote = holder.patroniLog.find(/demoting self because DCS is not accessible|Demoting self \(offline\)/, t0);
      assert.ok(demote, 'Patroni demoted the primary (failsafe off)');
      const lastOk = writer.acknowledged().filter((r) => r.t0 >= t0).at(-1);
      const rel = holder.transitions(t0).find((r) => r.transition === 'release');
      assert.equal(rel?.cause, 'dcs-patroni-not-primary');
      t.diagnostic(`etcd killed → Patroni demoting ${demote.t - t0} ms; last write acknowledged ${lastOk ? lastOk.t1 - t0 : '-'} ms; /primary first not running (${stop.what}) ${stop.first - t0} ms, first not 200 ${n200.first - t0} ms (Patroni done demoting); VIP removed ${removed - t0} ms`);
      t.diagnostic(`for comparison: hold-lease would hold until the lease deadline, up to ttl ${TTL_MS} ms after the last renewal (loop_wait ${DEFAULT_TIMINGS.loopWait} s)`);
      assert.ok(demote.t <= removed, 'the VIP was held until Patroni demoted, not dropped on the DCS loss alone');
      assert.ok(removed - stop.first <= INTERVAL_MS + 250, `VIP gone within one poll of /primary leaving "200, running" (${removed - stop.first} ms)`);
      // The daemon learns of the demotion only from /primary, asked once per interval: the VIP is
      // gone before Patroni has finished demoting whenever its "stopping" phase lasts longer than
      // one poll (1.4-2.3 s in most runs). Seen once in CI: PostgreSQL kept acknowledging writes
      // for 4 s after Patroni logged "demoting", and "stopping" then lasted 59 ms; the release
      // came 768 ms after it began, inside the one-poll bound above.
      if (n200.first - stop.first > INTERVAL_MS + 250) {
        assert.ok(removed <= n200.first, `VIP gone (${removed - t0} ms) no later than Patroni finished demoting (/primary 503 at ${n200.first - t0} ms)`);
      }
      assert.ok(removed - t0 < TTL_MS, `released before the leader key could expire (${removed - t0} ms < ttl ${TTL_MS} ms): no other node can have taken over before`);
    } finally {
      await writer.stop();
      await probe.stop();
      await startEtcd().catch(() => undefined);
      scene.show(t, t0, writer, [{ t: t0, what: 'all etcd members killed (failsafe off)' }, { t: Date.now(), what: 'etcd serving again' }]);
    }
  });
});
