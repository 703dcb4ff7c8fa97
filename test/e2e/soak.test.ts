// Soak: 10,000 leader-key changes against the real three-member etcd cluster, with our
// vip-manager running on the three database nodes exactly as in the Patroni suite (YAML file,
// all three endpoints, trigger-value = its node name).
//
// Why not through Patroni: Patroni owns its leader key (it renews, deletes and re-creates it on
// its own schedule), and 10,000 Patroni failovers would take hours. The soak drives a key of
// its own instead — scope `soak`, i.e. /service/soak/leader — in the same kind of cluster, with
// no Patroni running, so every change is one the test made and knows.
//
// Changes: this node's name, the other nodes' names, names that are almost right ("DB1",
// "db1 "), garbage (random bytes, empty, 1 KB), deletions, rewrites of the same value, and some
// values attached to a lease (as Patroni writes them). They come in bursts of random length,
// each followed by a pause in which the VIP must settle exactly where the key says: on the one
// node it names, or on none. The daemons' RSS (VmRSS) is sampled after the first 1,000 changes
// and at the end.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Lease } from 'etcd3';
import { PatroniBed, summarize, waitUntil, type DbNode } from '../harness/patroni.js';
// Seeded, so a failing run can be replayed with VIP_SOAK_SEED.
import { mulberry32 as prng } from '../harness/prng.js';

const CHANGES = Number(process.env.VIP_SOAK_CHANGES ?? 10_000);
const SEED = Number(process.env.VIP_SOAK_SEED ?? Date.now() % 2 ** 31);
/**
 * RSS bounds (VmRSS, every pause): absolute, and growth from after the first 1,000 changes to
 * the end. Measured here: ~89 MB idle after start, 110–120 MB once warm, and up to ~170 MB
 * while V8 defers a major GC of short-lived garbage (the live heap stays ~20 MB, see below):
 * RSS alone cannot tell a leak from a lazy GC, so the leak check proper is the live heap.
 */
const RSS_MAX_MB = 200;
const RSS_GROWTH_MAX_MB = 80;
/**
 * The leak check: live JS heap (the sum of all objects' sizes in a heap snapshot, which V8
 * takes after a full GC) after the soak and after HEAP_CHECK_CHANGES more changes. A leak of
 * 400 bytes per change would add 1 MB.
 */
const HEAP_CHECK_CHANGES = 2500;
const LIVE_HEAP_GROWTH_MAX_MB = 1;
/** How long the VIP may take to settle after a burst (it takes milliseconds; this is slack for a loaded box). */
const SETTLE_MS = 5000;


function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Sum of self sizes of all nodes in a V8 heap snapshot: the live heap after a full GC. */
function liveHeapMb(file: string): number {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as { snapshot: { meta: { node_fields: string[] } }; nodes: number[] };
  const fields = snap.snapshot.meta.node_fields;
  const width = fields.length;
  const self = fields.indexOf('self_size');
  let sum = 0;
  for (let i = self; i < snap.nodes.length; i += width) sum += snap.nodes[i]!;
  return sum / 1048576;
}

describe('soak: 10,000 leader changes against real etcd, vip-manager on three nodes', () => {
  let bed: PatroniBed;
  // The daemons write a heap snapshot here on SIGUSR2 (Node's --heapsnapshot-signal).
  const snapDir = mkdtempSync('/dev/shm/vmt-soak-heap-');

  /** Asks `n`'s daemon for a heap snapshot and returns its live heap (MB). */
  async function liveHeap(n: DbNode): Promise<number> {
    const pid = n.daemon.pid;
    const mine = () => readdirSync(snapDir).filter((f) => f.includes(`.${pid}.`) && f.endsWith('.heapsnapshot'));
    const before = new Set(mine());
    process.kill(pid, 'SIGUSR2');
    let size = -1;
    const file = await waitUntil(`a heap snapshot from ${n.name}`, () => {
      const f = mine().find((x) => !before.has(x));
      if (!f) return undefined;
      const now = statSync(join(snapDir, f)).size;
      const done = now > 0 && now === size;
      size = now;
      return done ? f : undefined;
    }, 30_000, 250);
    const mb = liveHeapMb(join(snapDir, file));
    rmSync(join(snapDir, file));
    return mb;
  }

  before(async () => {
    bed = await PatroniBed.create({ patroni: false, scope: 'soak', vipEnv: { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapDir}` } });
  });
  after(async () => {
    await bed?.dispose();
    rmSync(snapDir, { recursive: true, force: true });
  });

  it(`${CHANGES} changes, deletions and pauses: after every pause the VIP is exactly where the key says, RSS stays bounded`, async (t) => {
    // Fewer changes would leave the RSS growth check (from change 1,000 to the end) with nothing
    // to compare: a soak that did not soak must fail, not pass.
    assert.ok(Number.isInteger(CHANGES) && CHANGES >= 2000, `VIP_SOAK_CHANGES=${process.env.VIP_SOAK_CHANGES ?? ''} is too small: at least 2000 changes are needed (default 10000)`);
    const rnd = prng(SEED);
    t.diagnostic(`seed ${SEED} (replay with VIP_SOAK_SEED=${SEED})`);
    const kv = bed.kv();
    const key = bed.leaderKey;
    const names = bed.nodes.map((n) => n.name);
    const nearMisses = ['DB1', 'db1 ', ' db2', 'db4', 'db', 'db10', 'postgres', ''];
    let lease: Lease | undefined = kv.lease(600, { autoKeepAlive: false });
    await lease.grant();
    const garbage = (): string => {
      const r = rnd();
      if (r < 0.2) return 'x'.repeat(1024);
      if (r < 0.4) return Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 32) }, () => Math.floor(rnd() * 256))).toString('latin1');
      if (r < 0.6) return `db${1 + Math.floor(rnd() * 3)}\u0000`;
      if (r < 0.8) return '\u00e9t\u00e9 \u{1f418}';
      return String(rnd());
    };

    let current: string | null = null;
    let changes = 0;
    let pauses = 0;
    const counts = { own: 0, near: 0, garbage: 0, deletes: 0, rewrites: 0, leased: 0 };
    const settle: number[] = [];
    const pids = new Map<DbNode, number>(bed.nodes.map((n) => [n, n.daemon.pid]));
    let rssAt1000: Map<DbNode, number> | undefined;
    /** RSS of every daemon at each 1,000-change mark, for the diagnostic trend. */
    const trend: string[] = [];
    let nextMark = 1000;
    let rssPeak = 0;
    const started = Date.now();

    const change = async () => {
      const r = rnd();
      let value: string | null;
      if (r < 0.15) {
        value = null;
        counts.deletes++;
      } else if (r < 0.25 && current !== null) {
        value = current;
        counts.rewrites++;
      } else if (r < 0.7) {
        value = names[Math.floor(rnd() * names.length)]!;
        counts.own++;
      } else if (r < 0.85) {
        value = nearMisses[Math.floor(rnd() * nearMisses.length)]!;
        counts.near++;
      } else {
        value = garbage();
        counts.garbage++;
      }
      if (value === null) {
        await kv.delete().key(key);
      } else if (rnd() < 0.3) {
        counts.leased++;
        await lease!.put(key).value(value);
      } else {
        await kv.put(key).value(value);
      }
      current = value;
      changes++;
    };

    /** Bursts of changes, each followed by a pause that checks where the VIP is, until `target` changes. */
    const runUntil = async (target: number, sampleRss: boolean) => {
      while (changes < target) {
        // A burst: mostly short, sometimes long (a storm of changes the daemons must collapse).
        const len = Math.min(target - changes, 1 + Math.floor(-Math.log(1 - rnd()) * (rnd() < 0.1 ? 150 : 12)));
        for (let i = 0; i < len; i++) await change();
        // The pause: the VIP must settle exactly where the key says, and stay there.
        pauses++;
        const expected = bed.nodes.find((n) => n.name === current) ?? null;
        const t0 = performance.now();
        await waitUntil(`the VIP ${expected ? `on ${expected.name} only` : 'on no node'} after change ${changes} (key = ${JSON.stringify(current)})`, () => {
          const h = bed.vipHolders();
          return expected ? h.length === 1 && h[0] === expected : h.length === 0;
        }, SETTLE_MS, 2).catch((e: Error) => {
          throw new Error(`${e.message}; holders: ${bed.vipHolders().map((n) => n.name).join(',') || 'none'}\n${bed.transcript()}`);
        });
        settle.push(performance.now() - t0);
        if (pauses % 25 === 0) {
          // Now and then a longer pause: still there, no late flap; and etcd agrees with our bookkeeping.
          await new Promise((r) => setTimeout(r, 100 + rnd() * 300));
          const h = bed.vipHolders();
          assert.deepEqual(h, expected ? [expected] : [], `still settled after a longer pause (change ${changes})`);
          assert.equal(await kv.get(key).string(), current, 'etcd holds the value written last');
        }
        for (const n of bed.nodes) assert.equal(n.daemon.child.exitCode, null, `vip-manager on ${n.name} still running`);
        if (!sampleRss) continue;
        for (const pid of pids.values()) rssPeak = Math.max(rssPeak, rssMb(pid));
        if (!rssAt1000 && changes >= 1000) rssAt1000 = new Map([...pids].map(([n, pid]) => [n, rssMb(pid)]));
        if (changes >= nextMark) {
          trend.push(`${nextMark / 1000}k: ${[...pids.values()].map((pid) => rssMb(pid).toFixed(0)).join('/')}`);
          nextMark += 1000;
        }
      }
    };

    // Phase 1, the soak proper: CHANGES changes, RSS sampled at every pause (no heap snapshots
    // here: taking one inflates RSS by tens of MB).
    await runUntil(CHANGES, true);
    const elapsed = Date.now() - started;
    const rssEnd = new Map([...pids].map(([n, pid]) => [n, rssMb(pid)]));
    // Phase 2, the leak check proper: live heap (after V8's full GC) now and after
    // HEAP_CHECK_CHANGES more changes of the same kind.
    const heapAt = new Map<DbNode, number>();
    for (const n of bed.nodes) heapAt.set(n, await liveHeap(n));
    await runUntil(CHANGES + HEAP_CHECK_CHANGES, false);
    const heapEnd = new Map<DbNode, number>();
    for (const n of bed.nodes) heapEnd.set(n, await liveHeap(n));
    lease.revoke().catch(() => undefined);
    lease = undefined;

    const s = summarize(settle);
    t.diagnostic(`${changes} changes (${CHANGES} soak + ${HEAP_CHECK_CHANGES} leak check: ${JSON.stringify(counts)}), ${pauses} pauses; the ${CHANGES} took ${(elapsed / 1000).toFixed(1)} s`);
    t.diagnostic(`settle time after a burst: median ${s.median.toFixed(1)} ms, p90 ${s.p90.toFixed(1)} ms, max ${s.max.toFixed(1)} ms (includes ~3 ms per poll of \`ip -j addr\` on three nodes)`);
    for (const n of bed.nodes) {
      const tr = n.daemon.transitions();
      t.diagnostic(`${n.name}: ${tr.filter((r) => r.transition === 'acquire').length} acquires, ${tr.filter((r) => r.transition === 'release').length} releases; RSS ${rssAt1000!.get(n)!.toFixed(1)} MB after 1,000 changes → ${rssEnd.get(n)!.toFixed(1)} MB after ${CHANGES}; live heap ${heapAt.get(n)!.toFixed(2)} MB after ${CHANGES} → ${heapEnd.get(n)!.toFixed(2)} MB after ${HEAP_CHECK_CHANGES} more`);
    }
    t.diagnostic(`RSS peak over all samples: ${rssPeak.toFixed(1)} MB; trend (MB, ${bed.nodes.map((n) => n.name).join('/')}): ${trend.join(', ')}`);

    for (const n of bed.nodes) {
      const errors = n.daemon.logs.filter((r) => r.level >= 50);
      assert.deepEqual(errors.map((r) => r.msg), [], `no errors logged on ${n.name}`);
      const end = rssEnd.get(n)!;
      const growth = end - rssAt1000!.get(n)!;
      assert.ok(end < RSS_MAX_MB, `${n.name}: RSS ${end.toFixed(1)} MB < ${RSS_MAX_MB} MB`);
      assert.ok(growth < RSS_GROWTH_MAX_MB, `${n.name}: RSS grew ${growth.toFixed(1)} MB from 1,000 changes to the end (< ${RSS_GROWTH_MAX_MB} MB)`);
      const heapGrowth = heapEnd.get(n)! - heapAt.get(n)!;
      assert.ok(heapGrowth < LIVE_HEAP_GROWTH_MAX_MB, `${n.name}: live heap grew ${heapGrowth.toFixed(2)} MB over ${HEAP_CHECK_CHANGES} changes (< ${LIVE_HEAP_GROWTH_MAX_MB} MB)`);
    }
    assert.ok(rssPeak < RSS_MAX_MB, `RSS peak ${rssPeak.toFixed(1)} MB < ${RSS_MAX_MB} MB`);
    assert.equal(changes, CHANGES + HEAP_CHECK_CHANGES);
  });
});
