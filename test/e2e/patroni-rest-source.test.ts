// dcs-type patroni end to end: the real Patroni 3.0 + PostgreSQL 15 bed (etcd members beside the
// database nodes), but every vip-manager follows its own node's Patroni REST API (GET
// http://<node>:8008/leader, 200 = leader; polled every `interval`, 1000 ms by default) instead of
// the leader key. Two faults: a patronictl switchover, and a crash (SIGKILL) of Patroni and
// PostgreSQL on the primary. Checked for each:
//   - the VIP follows the REST answer: it ends on the node whose /leader says 200, and leaves the
//     old one once that one stops saying 200 (the test polls every node's /leader itself, every
//     REST_POLL_MS, and prints both timelines);
//   - the VIP is never on two nodes for longer than one interval (kernel address events, `ip -ts
//     monitor` in every node's namespace, swept over the whole scenario).
// Times are compared across namespaces on one clock (epoch ms): kernel events, the daemons' JSON
// log times, and the test's own REST polls.
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { PatroniBed, waitUntil, type DbNode } from '../harness/patroni.js';
import { Scene, TTL_MS } from '../patroni/scenarios.js';

/** The daemons' poll period (the default interval). */
const INTERVAL_MS = 1000;
const REST_POLL_MS = 100;

interface RestSample { t: number; node: string; status: number; error?: string }

/** Polls every node's /leader from the client namespace (0 = no answer: refused or timed out within 1 s). */
class RestWatch {
  readonly samples: RestSample[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(bed: PatroniBed) {
    this.done = Promise.all(bed.nodes.map(async (n) => {
      while (!this.stopped) {
        const sent = Date.now();
        let status = 0;
        let error: string | undefined;
        try { status = (await n.rest('/leader', 1000)).status; } catch (e) { error = (e as Error).message; /* down, or slow under load */ }
        this.samples.push({ t: sent, node: n.name, status, ...(error ? { error } : {}) });
        const wait = REST_POLL_MS - (Date.now() - sent);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    })).then(() => undefined);
  }

  /** Resolves once every node has answered once: the baseline before a fault. */
  ready(bed: PatroniBed): Promise<boolean> {
    return waitUntil('every node answering /leader', () => bed.nodes.every((n) => this.samples.some((s) => s.node === n.name && s.status !== 0)), 10_000, 20);
  }

  /** Stops polling; resolves once the last request is in. */
  stop(): Promise<void> {
    this.stopped = true;
    return this.done;
  }

  /**
   * The first sample at or after `after` where `node` answered 200 (leader), or answered
   * something else (not leader; a poll without an answer says neither).
   */
  first(node: string, leader: boolean, after: number): RestSample | undefined {
    return this.samples.find((s) => s.node === node && s.t >= after && s.status !== 0 && (s.status === 200) === leader);
  }

  /** One timeline mark per change of a node's answer since `t0`. */
  changes(t0: number): Array<{ t: number; what: string }> {
    // Each node's answer just before t0 is the baseline (polling started a moment earlier).
    const last = new Map<string, number>();
    const out: Array<{ t: number; what: string }> = [];
    for (const s of this.samples) {
      if (last.get(s.node) === s.status) continue;
      last.set(s.node, s.status);
      if (s.t >= t0) out.push({ t: s.t, what: `${s.node}: REST /leader → ${s.status || `no answer (${s.error ?? '?'})`}` });
    }
    return out;
  }
}

/** Longest time (ms) the VIP was on two or more nodes at once between t0 and t1, from kernel events. */
function longestOverlap(scene: Scene, nodes: DbNode[], held: Map<DbNode, boolean>, t0: number, t1: number): number {
  const events = nodes.flatMap((n) => scene.vipEvents(n, t0).filter((e) => e.t <= t1).map((e) => ({ ...e, n })))
    .sort((a, b) => a.t - b.t || (a.kind === 'del' ? -1 : 1));
  const on = new Map(held);
  const count = () => [...on.values()].filter(Boolean).length;
  let since = count() >= 2 ? t0 : null;
  let longest = 0;
  for (const e of events) {
    on.set(e.n, e.kind === 'add');
    if (count() >= 2 && since === null) since = e.t;
    else if (count() < 2 && since !== null) {
      longest = Math.max(longest, e.t - since);
      since = null;
    }
  }
  if (since !== null) longest = Math.max(longest, t1 - since);
  return longest;
}

describe('Patroni + vip-manager with dcs-type patroni (REST API of the local Patroni)', () => {
  let bed: PatroniBed;
  let scene: Scene;

  before(async () => {
    bed = await PatroniBed.create({ placement: 'colocated', vipDcs: 'patroni' });
    scene = await Scene.watch(bed);
  });
  after(async () => {
    scene?.stop();
    await bed?.dispose();
  });

  /** Runs `fault` with REST polling and returns what a scenario needs to check. */
  async function around(t: TestContext, what: string, fault: (old: DbNode) => Promise<DbNode>) {
    const old = await bed.waitHealthy();
    await bed.waitVipOn(old);
    const held = new Map(bed.nodes.map((n) => [n, n.hasVip()] as const));
    const rest = new RestWatch(bed);
    await rest.ready(bed);
    const t0 = Date.now();
    let leader: DbNode | undefined;
    try {
      leader = await fault(old);
      await bed.waitVipOn(leader, 20_000);
      await waitUntil(`the VIP gone from ${old.name}`, () => !old.hasVip(), 10_000, 20);
    } finally {
      await rest.stop();
      scene.show(t, t0, undefined, [{ t: t0, what }, ...rest.changes(t0)]);
    }
    const t1 = Date.now();
    const { removed, added } = await scene.handover(old, leader, t0);
    return { old, leader, t0, t1, rest, held, removed, added };
  }

  it('switchover: the VIP follows /leader to the new primary, never on two nodes longer than one interval', async (t) => {
    const { old, leader, t0, t1, rest, held, removed, added } = await around(t, 'patronictl switchover', async (o) => {
      const cand = bed.nodes.find((n) => n !== o)!;
      await bed.switchoverAsync(o, cand);
      assert.equal(await bed.waitForLeader(30_000, o), cand);
      return cand;
    });
    assert.deepEqual(bed.vipHolders(), [leader], 'only the new primary holds the VIP');
    const up = rest.first(leader.name, true, t0);
    const down = rest.first(old.name, false, t0);
    assert.ok(up && down, `the REST answers changed (${leader.name} 200 at ${up?.t}, ${old.name} not 200 at ${down?.t})`);
    // Each daemon acts at its next poll after the change: within one interval (plus the poll's
    // own round trip and the kernel call), with the test's poll period as measurement slack.
    const slack = INTERVAL_MS + REST_POLL_MS + 500;
    t.diagnostic(`${old.name} stopped saying 200 → VIP removed: ${removed - down.t} ms; ${leader.name} said 200 → VIP added: ${added - up.t} ms; switchover → VIP on ${leader.name}: ${added - t0} ms`);
    assert.ok(removed - down.t <= slack, `removed within one interval of ${old.name}'s /leader changing (${removed - down.t} ms)`);
    assert.ok(added - up.t <= slack, `added within one interval of ${leader.name}'s /leader saying 200 (${added - up.t} ms)`);
    const overlap = longestOverlap(scene, bed.nodes, held, t0, t1);
    t.diagnostic(`longest time on two nodes: ${overlap} ms (bound: one interval, ${INTERVAL_MS} ms)`);
    assert.ok(overlap <= INTERVAL_MS, `never on two nodes for longer than one interval (${overlap} ms)`);
    assert.equal(bed.psql('select pg_is_in_recovery()'), 'f', 'psql through the VIP reaches a primary');
  });

  it('crash of the primary (SIGKILL of Patroni and PostgreSQL): the VIP leaves at once, follows /leader to the new primary, no overlap', async (t) => {
    const { old, leader, t0, t1, rest, held, removed, added } = await around(t, 'SIGKILL to Patroni and PostgreSQL', async (o) => {
      await o.crash();
      return bed.waitForLeader(TTL_MS + 30_000, o);
    });
    assert.deepEqual(bed.vipHolders(), [leader], 'only the new primary holds the VIP');
    const up = rest.first(leader.name, true, t0);
    assert.ok(up, `${leader.name}'s /leader said 200`);
    // The crashed node's REST API is gone: its daemon counts that as a DCS failure, and
    // dcs-type patroni has no lease, so hold-lease acts as release (retry-num × retry-after).
    const rel = old.transitions(t0).find((r) => r.transition === 'release');
    assert.ok(rel, `${old.name}'s daemon released the VIP`);
    t.diagnostic(`crash → VIP removed on ${old.name}: ${removed - t0} ms (cause ${String(rel.cause)}); ${leader.name} said 200 → VIP added: ${added - up.t} ms; crash → VIP on ${leader.name}: ${added - t0} ms`);
    assert.ok(removed < added, `released on ${old.name} (${removed}) before ${leader.name} acquired (${added})`);
    assert.ok(added - up.t <= INTERVAL_MS + REST_POLL_MS + 500, `added within one interval of ${leader.name}'s /leader saying 200 (${added - up.t} ms)`);
    const overlap = longestOverlap(scene, bed.nodes, held, t0, t1);
    t.diagnostic(`longest time on two nodes: ${overlap} ms`);
    assert.equal(overlap, 0, 'never on two nodes');
    // /leader says 200 once Patroni holds the leader lock, before PostgreSQL has finished its
    // promotion (after a crash the VIP can be there first): the VIP's address reaches the new
    // primary, which stops being in recovery a moment later.
    await waitUntil('psql through the VIP reaching a primary (promotion finished)', () => bed.psql('select pg_is_in_recovery()') === 'f', 10_000, 100);

    old.startPatroni();
    await scene.healed(t);
  });
});
