// What two idle daemons cost over a window, for the failover bench's idle table: RSS, CPU and
// context switches from /proc, and the etcd requests they caused from etcd's own /metrics.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { EtcdServer } from '../test/harness/etcd.js';
import { now, sleep } from './failover-bed.js';
import { deltas, promSums } from './stats.js';

const CLK_TCK = ((): number => {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { return 100; }
})();

function cpuTicks(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]); // utime, stime (fields 14 and 15)
}

/** Context switches of all the process's threads: each is a wake-up (or a preemption). */
function ctxSwitches(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      for (const m of st.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) n += Number(m[1]);
    } catch { /* thread ended */ }
  }
  return n;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export interface IdleResult {
  seconds: number;
  rssMiB: number[];
  cpuPct: number[];
  /** Context switches per second, all threads. */
  wakeups: number[];
  /** grpc_server_handled_total deltas by method (unary calls; streams count when they end). */
  grpcHandled: Map<string, number>;
  /** grpc_server_msg_received_total deltas by method (includes messages on open streams). */
  grpcMsgs: Map<string, number>;
  /** etcd_http_received_total deltas by method: v2 API requests (QGET = quorum GET). */
  v2: Map<string, number>;
  proposals: number;
  walBytes: number;
}

export async function measureIdle(etcd: EtcdServer, pids: number[], seconds: number): Promise<IdleResult> {
  const m0 = await etcd.metrics();
  const c0 = pids.map(cpuTicks);
  const x0 = pids.map(ctxSwitches);
  const w0 = now();
  await sleep(seconds * 1000);
  const m1 = await etcd.metrics();
  const c1 = pids.map(cpuTicks);
  const x1 = pids.map(ctxSwitches);
  const w1 = now();
  const wall = (w1 - w0) / 1000;
  const d = (name: string, label?: string): Map<string, number> => deltas(promSums(m0, name, label), promSums(m1, name, label));
  return {
    seconds: wall,
    rssMiB: pids.map((p) => rssKiB(p) / 1024),
    cpuPct: pids.map((p, i) => ((c1[i]! - c0[i]!) / CLK_TCK / wall) * 100),
    wakeups: pids.map((p, i) => (x1[i]! - x0[i]!) / wall),
    grpcHandled: d('grpc_server_handled_total', 'grpc_method'),
    grpcMsgs: d('grpc_server_msg_received_total', 'grpc_method'),
    v2: d('etcd_http_received_total', 'method'),
    proposals: d('etcd_server_proposals_committed_total').get('') ?? 0,
    walBytes: d('etcd_disk_wal_write_bytes_total').get('') ?? 0,
  };
}
