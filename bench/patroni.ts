// Patroni benchmark (npm run bench:patroni): several `patronictl switchover`s on a real
// Patroni 3.0 + PostgreSQL 15 cluster (three nodes, three-member etcd 3.4, the shared test bed
// test/harness/patroni.ts), with a writer inserting through the VIP from the client namespace
// the whole time. Two rows per vip-manager:
//   switchover → first write   `patronictl switchover` started → the first insert through the
//                               VIP acknowledged by the new primary (what a client sees; most of
//                               it is Patroni's: checkpoint, shutdown, leader race, promotion)
//   key written → VIP up       etcd reports the new leader key (a watch from this process) →
//                               the kernel adds the VIP on the new primary (`ip -ts monitor`
//                               in its namespace): vip-manager's own part
// plus the write outage (last write on the old primary → first on the new one) and any overlap
// (both nodes holding the VIP at once).
// Baseline: Debian's vip-manager 1.0.2 (the Go original, /usr/bin/vip-manager; apt-get install
// vip-manager, or scripts/setup.sh --bench). It reads etcd's v2 API only, so its cluster runs
// Patroni's `etcd` (v2) DCS on an etcd with --enable-v2; it polls every `interval` (1000 ms,
// its default) and shells out to `ip`.
// Needs root. Takes about 3–4 minutes (VIP_BENCH_SWITCHOVERS, default 7 per vip-manager).
import {
  AddressMonitor, createWritesTable, LeaderKeyWatch, PatroniBed, summarize, VIP_CIDR, waitUntil, Writer, type DbNode,
} from '../test/harness/patroni.js';

const SWITCHOVERS = Number(process.env.VIP_BENCH_SWITCHOVERS ?? 7);

interface Run {
  from: string;
  to: string;
  /** patronictl switchover started → first write acknowledged by the new primary. */
  toFirstWrite: number;
  /** patronictl switchover started → etcd reports the new leader key (Patroni's part). */
  toKey: number;
  /** VIP added on the new primary → first write acknowledged there (promotion, client reconnect). */
  vipToWrite: number;
  /** Leader key reported by etcd → VIP added on the new primary. */
  keyToVip: number;
  /** Last write acknowledged by the old primary → first by the new one. */
  outage: number;
  /** VIP on both nodes at once (ms; 0 when the old one let go first). */
  overlap: number;
}

interface Variant {
  label: string;
  dcs: string;
  bed: () => Promise<PatroniBed>;
}

const variants: Variant[] = [
  { label: 'vip-manager (this, TypeScript)', dcs: 'Patroni etcd3; etcd v3 watch', bed: () => PatroniBed.create({ placement: 'separate', patroniDcs: 'etcd3', vipManager: 'ours' }) },
  { label: 'vip-manager 1.0.2 (Debian, Go)', dcs: 'Patroni etcd (v2); v2 poll 1 s', bed: () => PatroniBed.create({ placement: 'separate', patroniDcs: 'etcd', vipManager: 'debian' }) },
];

async function oneSwitchover(bed: PatroniBed, monitors: Map<DbNode, AddressMonitor>, keys: LeaderKeyWatch, from: DbNode, to: DbNode): Promise<Run> {
  const writer = new Writer(bed);
  writer.start();
  try {
    await writer.waitAcks(5, Date.now());
    const t0 = Date.now();
    await bed.switchoverAsync(from, to);
    await waitUntil(`the first write on ${to.name}`, () => writer.firstOn(to.name, t0), 30_000, 10);
    await bed.waitVipOn(to, 30_000);
    const put = await waitUntil('etcd reporting the new leader key', () => keys.find(t0, (e) => e.kind === 'put' && e.value === to.name), 10_000, 10);
    const added = await waitUntil(`the VIP added on ${to.name}`, () => monitors.get(to)!.of(VIP_CIDR, t0).find((e) => e.kind === 'add'), 10_000, 10);
    const removed = await waitUntil(`the VIP removed on ${from.name}`, () => monitors.get(from)!.of(VIP_CIDR, t0).find((e) => e.kind === 'del'), 10_000, 10);
    const first = writer.firstOn(to.name, t0)!;
    const lastOld = [...writer.acknowledged()].reverse().find((w) => w.node === from.name && w.t1 <= first.t1);
    return {
      from: from.name,
      to: to.name,
      toFirstWrite: first.t1 - t0,
      toKey: put.t - t0,
      keyToVip: added.t - put.t,
      vipToWrite: first.t1 - added.t,
      outage: lastOld ? first.t1 - lastOld.t1 : NaN,
      overlap: Math.max(0, removed.t - added.t),
    };
  } finally {
    await writer.stop();
  }
}

async function runVariant(v: Variant): Promise<Run[]> {
  process.stderr.write(`${v.label}: building the cluster…\n`);
  const bed = await v.bed();
  const monitors = new Map<DbNode, AddressMonitor>();
  let keys: LeaderKeyWatch | undefined;
  try {
    await bed.waitVipOn(await bed.waitForLeader());
    await createWritesTable(bed);
    for (const n of bed.nodes) monitors.set(n, await AddressMonitor.start(n.ns));
    keys = await LeaderKeyWatch.start(bed);
    const runs: Run[] = [];
    for (let i = 0; i < SWITCHOVERS; i++) {
      const from = await bed.heal();
      await bed.waitVipOn(from);
      const to = bed.nodes[(bed.nodes.indexOf(from) + 1) % bed.nodes.length]!;
      const r = await oneSwitchover(bed, monitors, keys, from, to);
      process.stderr.write(`  ${i + 1}/${SWITCHOVERS} ${r.from} → ${r.to}: first write ${r.toFirstWrite} ms (key written at ${r.toKey}, key → VIP ${r.keyToVip}, VIP → write ${r.vipToWrite}), outage ${r.outage} ms, overlap ${r.overlap} ms\n`);
      runs.push(r);
    }
    return runs;
  } finally {
    keys?.stop();
    for (const m of monitors.values()) m.stop();
    await bed.dispose();
  }
}

function row(label: string, dcs: string, metric: string, xs: number[]): string {
  const s = summarize(xs.filter((x) => Number.isFinite(x)));
  return `| ${label} | ${dcs} | ${metric} | ${s.median.toFixed(0)} | ${s.p90.toFixed(0)} | ${s.max.toFixed(0)} |`;
}

async function main(): Promise<void> {
  const results: Array<{ v: Variant; runs: Run[] }> = [];
  for (const v of variants) results.push({ v, runs: await runVariant(v) });
  const lines = [
    '',
    `Patroni 3.0.2 + PostgreSQL 15, three nodes, etcd 3.4 (three members), ${SWITCHOVERS} switchovers per row; ms`,
    '',
    '| vip-manager | DCS | metric | median | p90 | max |',
    '| --- | --- | --- | ---: | ---: | ---: |',
  ];
  for (const { v, runs } of results) {
    lines.push(row(v.label, v.dcs, '`patronictl switchover` → first write through the VIP', runs.map((r) => r.toFirstWrite)));
    lines.push(row(v.label, v.dcs, '  of which: switchover → leader key written (Patroni)', runs.map((r) => r.toKey)));
    lines.push(row(v.label, v.dcs, '  of which: **leader key written → VIP up on the new primary (vip-manager)**', runs.map((r) => r.keyToVip)));
    lines.push(row(v.label, v.dcs, '  of which: VIP up → first write (promotion, reconnect)', runs.map((r) => r.vipToWrite)));
    lines.push(row(v.label, v.dcs, 'write outage (last write on old → first on new)', runs.map((r) => r.outage)));
    lines.push(row(v.label, v.dcs, 'VIP on both nodes at once', runs.map((r) => r.overlap)));
  }
  lines.push('', 'The "of which" rows are medians of their own; they need not add up to the total\'s median. Patroni\'s part differs between its etcd3 and etcd (v2) DCS code, so compare the vip-manager row, not the totals.');
  lines.push('Writes: one insert per fresh connection through the VIP, every 20 ms, 300 ms connect deadline (a SYN lost to the old primary is retried at once, not after TCP\'s 1 s).');
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`bench:patroni failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
