// etcd leader source benchmark (part of `npm run bench`): against a real etcd 3.4 on loopback,
// how long a put takes to reach the daemon's source as a view (the DCS part of every failover),
// and what one lease query costs (the source makes one per lease-check-interval while a leased
// key is held). Starts its own etcd on a free loopback port and removes it. Takes about 10 s.
import { performance } from 'node:perf_hooks';
import { EtcdLeaderSource } from '../src/dcs/etcd/source.js';
import type { LeaderView } from '../src/reconcile/ports.js';
import { silentLogger } from '../src/log.js';
import { startEtcd } from '../test/harness/etcd.js';
import { statsOf as stats, type Stats } from './stats.js';

const RUNS = 200;
const WARMUP = 20;
const KEY = '/service/bench/leader';

function row(what: string, st: Stats): string {
  return `${what.padEnd(44)} n=${String(st.n).padStart(3)}  median ${st.median.toFixed(2).padStart(6)} ms  p90 ${st.p90.toFixed(2).padStart(6)} ms  max ${st.max.toFixed(2).padStart(7)} ms`;
}

async function main(): Promise<void> {
  const etcd = await startEtcd();
  const c = etcd.client();
  const src = new EtcdLeaderSource({ endpoints: etcd.endpoints, triggerKey: KEY, retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000 }, silentLogger());
  try {
    // Every view's arrival time by revision: a view may arrive before the put's own answer.
    const arrived = new Map<string, number>();
    let wake: (() => void) | null = null;
    let first: (() => void) | null = null;
    const started = new Promise<void>((r) => { first = r; });
    src.start((v: LeaderView) => {
      if (v.kind !== 'value') return;
      arrived.set(v.revision, performance.now());
      first?.();
      first = null;
      wake?.();
    });
    await started;

    // Put → view: from just before the put is sent to the view carrying its revision.
    const putToView: number[] = [];
    for (let i = 0; i < WARMUP + RUNS; i++) {
      const t0 = performance.now();
      const revision = String((await c.put(KEY).value(`n${i % 2}`).exec()).header.revision);
      const giveUp = performance.now() + 5000;
      while (!arrived.has(revision)) {
        if (performance.now() > giveUp) throw new Error(`no view for revision ${revision} within 5 s`);
        await new Promise<void>((r) => { wake = r; setTimeout(r, 100); });
        wake = null;
      }
      if (i >= WARMUP) putToView.push(arrived.get(revision)! - t0);
    }

    // One LeaseTimeToLive on loopback: the cost of each lease check.
    const lease = c.lease(60, { autoKeepAlive: false });
    const id = await lease.grant();
    const ttl: number[] = [];
    for (let i = 0; i < WARMUP + RUNS; i++) {
      const t0 = performance.now();
      await c.leaseClient.leaseTimeToLive({ ID: id });
      if (i >= WARMUP) ttl.push(performance.now() - t0);
    }
    await lease.revoke();

    console.log(`etcd leader source against etcd on loopback (${RUNS} runs each after ${WARMUP} warm-up):`);
    console.log(row('put → view delivered by EtcdLeaderSource', stats(putToView)));
    console.log(row('LeaseTimeToLive (one lease check)', stats(ttl)));
  } finally {
    await src.close();
    c.close();
    await etcd.dispose();
  }
}

await main();
