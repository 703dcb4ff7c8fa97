// Scenarios on the Patroni test bed, shared by the smoke subset (test/patroni/smoke.test.ts,
// run by `npm test` in CI) and the full suite (test/e2e/patroni-faults.test.ts): what each one
// does and asserts is written once.
// Times are compared across namespaces on one clock: kernel address events (`ip -ts monitor`
// in each namespace, epoch ms), the daemons' JSON log times (Date.now()), the writer's and the
// leader-key watch's arrival times — all of the same machine.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { LogRecord } from '../harness/daemon.js';
import {
  AddressMonitor, DEFAULT_TIMINGS, LeaderKeyWatch, timeline, VIP_CIDR, waitUntil, Writer, writtenIds,
  type DbNode, type PatroniBed,
} from '../harness/patroni.js';

export const TTL_MS = DEFAULT_TIMINGS.ttl * 1000;
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A bed plus what watches it: an address monitor per database node and the leader key. */
export class Scene {
  readonly monitors = new Map<DbNode, AddressMonitor>();
  keys!: LeaderKeyWatch;

  private constructor(readonly bed: PatroniBed) {}

  static async watch(bed: PatroniBed): Promise<Scene> {
    const s = new Scene(bed);
    for (const n of bed.nodes) s.monitors.set(n, await AddressMonitor.start(n.ns));
    s.keys = await LeaderKeyWatch.start(bed);
    return s;
  }

  stop(): void {
    this.keys?.stop();
    for (const m of this.monitors.values()) m.stop();
  }

  /** Prints the scenario's timeline as test diagnostics. */
  show(t: TestContext, t0: number, writer?: Writer, marks: Array<{ t: number; what: string }> = []): void {
    for (const line of timeline(t0, { bed: this.bed, monitors: this.monitors, keys: this.keys, ...(writer ? { writer } : {}), marks })) t.diagnostic(line);
  }

  /** The first kernel event of `kind` for the VIP on `n` after `t0` (waits for the monitor's line). */
  async vipEvent(n: DbNode, kind: 'add' | 'del', t0: number, timeoutMs = 3000): Promise<number> {
    const e = await waitUntil(`the kernel ${kind === 'add' ? 'adding' : 'removing'} the VIP on ${n.name}`, () => this.monitors.get(n)!.of(VIP_CIDR, t0).find((x) => x.kind === kind), timeoutMs, 10);
    return e.t;
  }

  /** Both kernel events of a handover: the VIP removed on `from` and added on `to` after `t0`. */
  async handover(from: DbNode, to: DbNode, t0: number): Promise<{ removed: number; added: number }> {
    return { removed: await this.vipEvent(from, 'del', t0), added: await this.vipEvent(to, 'add', t0) };
  }

  /** Kernel events for the VIP on `n` since `t0` (none = never removed nor re-added). */
  vipEvents(n: DbNode, t0: number) {
    return this.monitors.get(n)!.of(VIP_CIDR, t0);
  }

  /** The cluster healthy again after a fault (nodes that could not rejoin are rebuilt, and said so). */
  async healed(t: TestContext, expectedLeader?: DbNode): Promise<DbNode> {
    const before = this.bed.reinits.length;
    const leader = await this.bed.heal();
    if (this.bed.reinits.length > before) t.diagnostic(`test bed: rebuilt ${this.bed.reinits.slice(before).join(', ')} from the leader (could not rejoin by itself; Patroni's, not vip-manager's)`);
    if (expectedLeader && leader !== expectedLeader) {
      // Patroni 3.0.2 (Debian bookworm) may overwrite the leader key from a stale cache when the
      // old primary reconnects (fixed upstream in 3.0.3, patroni/patroni#2689). vip-manager
      // follows the key wherever it goes; that is all these tests hold it to.
      t.diagnostic(`after healing Patroni's leader is ${leader.name}, not ${expectedLeader.name}: Patroni 3.0.2 took the leader key back on reconnect (patroni#2689)`);
    }
    await this.bed.waitVipOn(leader);
    return leader;
  }

  /** Waits until `n`'s daemon (verbose) has logged the leader key naming it with a known lease deadline. */
  leaseKnown(n: DbNode, after = 0): Promise<LogRecord> {
    return n.daemon.waitForLog((r) => r.time >= after && r.msg === 'etcd: leader key' && r.value === n.name && typeof r.leaseDeadlineInMs === 'number' && r.leaseDeadlineInMs > 0,
      15_000, `${n.name} knowing its lease deadline`);
  }

  /** Asserts `holder` kept the VIP throughout: no kernel removal, no release or acquire, nobody else. */
  assertNoFlap(holder: DbNode, t0: number): void {
    assert.deepEqual(this.vipEvents(holder, t0), [], `the kernel never removed (or re-added) the VIP on ${holder.name}`);
    assert.deepEqual(holder.transitions(t0).filter((r) => r.transition !== 'announce'), [], 'no release and no acquire');
    assert.deepEqual(this.bed.vipHolders(), [holder]);
  }

  // ---- scenarios ----------------------------------------------------------------------------

  /** `patronictl switchover` with a writer through the VIP: nothing acknowledged is lost, no overlap. */
  async switchover(t: TestContext): Promise<void> {
    const { bed } = this;
    const old = await bed.waitHealthy();
    const cand = bed.nodes.find((n) => n !== old)!;
    await bed.waitVipOn(old);
    const writer = new Writer(bed);
    writer.start();
    await writer.waitAcks(5, Date.now());
    const t0 = Date.now();
    try {
      await bed.switchoverAsync(old, cand);
      assert.equal(await bed.waitForLeader(30_000, old), cand);
      await bed.waitVipOn(cand);
      await writer.waitAcks(5, Date.now());
    } finally {
      await writer.stop();
      this.show(t, t0, writer, [{ t: t0, what: `patronictl switchover ${old.name} → ${cand.name}` }]);
    }
    // A client's psql through the VIP reaches the new primary.
    assert.equal(bed.psql('select pg_is_in_recovery()'), 'f');
    assert.equal(bed.psql("select split_part(current_setting('data_directory'), '/', -2)"), cand.name);
    const acked = writer.acknowledged();
    assert.ok(acked.every((w) => w.inRecovery === false), 'no write was acknowledged by a replica');
    assert.deepEqual(writer.nodeSequence(), [old.name, cand.name], 'writes went to the old primary, then only to the new one');
    const ids = await writtenIds();
    assert.deepEqual(acked.filter((w) => !ids.has(String(w.id))).map((w) => w.id), [], 'every acknowledged write is on the new primary');
    const { removed, added } = await this.handover(old, cand, t0);
    assert.ok(removed <= added, `no overlap: removed on ${old.name} at ${removed}, added on ${cand.name} at ${added}`);
    const put = this.keys.find(t0, (e) => e.kind === 'put' && e.value === cand.name);
    assert.ok(put, 'etcd reported the new leader key');
    t.diagnostic(`leader key written → VIP on ${cand.name}: ${added - put.t} ms; switchover → first write on ${cand.name}: ${writer.firstOn(cand.name, t0)!.t1 - t0} ms; ${acked.length} writes acknowledged, none lost`);
  }

  /**
   * SIGKILL of Patroni and PostgreSQL on the primary (its vip-manager keeps running) with a
   * writer through the VIP; then the crashed node is started again and rejoins.
   */
  async crash(t: TestContext): Promise<void> {
    const { bed } = this;
    const old = await bed.waitHealthy();
    await bed.waitVipOn(old);
    const writer = new Writer(bed);
    writer.start();
    await writer.waitAcks(5, Date.now());
    const t0 = Date.now();
    let leader: DbNode;
    try {
      await old.crash();
      leader = await bed.waitForLeader(TTL_MS + 30_000, old);
      await bed.waitVipOn(leader);
      await writer.waitAcks(5, Date.now());
    } finally {
      await writer.stop();
      this.show(t, t0, writer, [{ t: t0, what: `SIGKILL to Patroni and PostgreSQL on ${old.name}` }]);
    }
    assert.equal(bed.psql('select pg_is_in_recovery()'), 'f');
    assert.equal(bed.psql("select split_part(current_setting('data_directory'), '/', -2)"), leader.name);
    const acked = writer.acknowledged();
    assert.ok(acked.every((w) => w.inRecovery === false), 'no write was acknowledged by a replica');
    assert.deepEqual(writer.nodeSequence(), [old.name, leader.name], 'writes went to the old primary, then only to the new one');
    assert.ok(acked.filter((w) => w.node === old.name).every((w) => w.t0 < t0), `${old.name} acknowledged nothing after its crash`);
    const promoted = leader.patroniLog.find(/promoted self to leader/, t0);
    assert.ok(promoted, `${leader.name} logged its promotion`);
    const firstNew = acked.find((w) => w.node === leader.name)!;
    const { removed, added } = await this.handover(old, leader, t0);
    assert.ok(removed <= added, `no overlap: removed on ${old.name} at ${removed}, added on ${leader.name} at ${added}`);
    assert.ok(firstNew.t1 >= added, `${leader.name} acknowledged writes only once it held the VIP`);
    // The old node's vip-manager (still running) let go by its lease deadline at the latest.
    assert.ok(removed - t0 <= TTL_MS + 1000, `released ${removed - t0} ms after the crash (lease ttl ${TTL_MS} ms)`);
    const ids = await writtenIds();
    const lost = acked.filter((w) => !ids.has(String(w.id)));
    t.diagnostic(`crash → VIP released on ${old.name}: ${removed - t0} ms, → VIP on ${leader.name}: ${added - t0} ms, → first write there: ${firstNew.t1 - t0} ms`);
    t.diagnostic(`${acked.length} writes acknowledged, ${lost.length} lost by the crash (asynchronous replication allows it)`);
    assert.ok(lost.every((w) => w.node === old.name), 'only writes acknowledged by the crashed primary may be lost');

    old.startPatroni();
    await this.healed(t);
  }

  /** The VIP deleted by hand on the holder: restored from the kernel event at once. */
  async addressRemovedByHand(t: TestContext): Promise<void> {
    const { bed } = this;
    const holder = await bed.waitHealthy();
    await bed.waitVipOn(holder);
    const t0 = Date.now();
    holder.ns.ip('addr', 'del', VIP_CIDR, 'dev', 'eth0');
    const del = await this.vipEvent(holder, 'del', t0);
    const add = await this.vipEvent(holder, 'add', del);
    t.diagnostic(`removed by hand → restored: ${add - del} ms`);
    // No time bound: here the leased key's checks (every 2 s, Patroni renewing every 2 s) would
    // also restore it, so a bound cannot tell the kernel event from them, and one below 2 s only
    // fails under load. That the kernel event alone restores it is asserted where it is the only
    // path (test/daemon/follow.test.ts, drift, a key without lease).
    assert.deepEqual(bed.vipHolders(), [holder]);
  }
}
