// The failover bench's rows and how one runs: each row is a pair of daemons (n1, n2) following
// one DCS; leadership moves N times at random moments (a random 300–1500 ms pause after the
// previous move settled), one entry's key at a time, and every move is measured from the
// observers' stamps (bench/failover-move.ts). The DCS rows:
//   etcd      this daemon, dcs-type etcd (v3 watch), default settings; the key carries a lease as
//             Patroni's does; idle RSS, CPU, wake-ups and etcd requests measured first
//   baseline  Debian's vip-manager 1.0.2 (the Go original; etcd v2, polls every 1000 ms, runs
//             `ip addr add|delete`, sends its gratuitous ARP itself: no arping needed); the key
//             is written to both APIs (v3 and v2); idle measured as well
//   consul    this daemon against test/standins/consul.ts (a stand-in, no real Consul here),
//             listening on 203.0.113.1 in the switch namespace
//   patroni   this daemon, dcs-type patroni, interval 1000, against a fake Patroni REST API per
//             node (GET /leader: 200 on the leader, 503 elsewhere); key change = the flip
// (the multi-entry rows are bench/failover-vips.ts's).
// Polling rows (baseline, patroni) run their moves in --phases blocks with freshly started
// daemons, n2 a random 0–1000 ms after n1: overlap and gap of pollers depend on the phase
// between the two nodes' timers, and real nodes do not boot in lockstep.
import http from 'node:http';
import net from 'node:net';
import { ConsulStandin } from '../test/standins/consul.js';
import { GoDaemon } from './baseline.js';
import {
  KEY, NODES, now, PREFIX, removeVips, singleVipArgs, sleep, startOurs, SW_IP, VIP, waitFor, type Bed, type Proc,
} from './failover-bed.js';
import { measureIdle, type IdleResult } from './failover-idle.js';
import { moveMetrics, other, Timeline, type MoveMetrics, type MoveRecord, type Node } from './failover-move.js';
import { ms } from './stats.js';

const CONSUL_KEY = KEY.replace(/^\/+/, '');

export const PAUSE_MIN_MS = 300;
export const PAUSE_MAX_MS = 1500;
/** A move that has not settled by then never will (the pollers need ≤ 1 s). */
const MOVE_TIMEOUT_MS = 10_000;
/** How long after the VIP moved the client's neighbour entry may take to follow. */
export const NEIGH_TIMEOUT_MS = 3000;
/** Our daemons announce for announce-count × announce-interval (5 × 200 ms) after taking the VIP. */
const SETTLE_MS = 1200;
export const LEASE_TTL_S = 600;
/** Idle measurements start this long after the daemons settled (start-up work is over). */
export const IDLE_WARMUP_MS = 5000;
/** n2's daemon starts a random 0–1000 ms after n1's (one poll interval). */
export const START_STAGGER_MAX_MS = 1000;

export interface RunOptions {
  moves: number;
  idleSeconds: number;
  /** The etcd keys carry a lease (as Patroni's leader key does). */
  lease: boolean;
  verbose: boolean;
  phases: number;
  /** The Go original's binary; null when its row is not run. */
  baseline: string | null;
}

export interface RowSpec {
  id: string;
  label: string;
  /** Which part of the report prints it: the DCS rows side by side, or the multi-entry figure. */
  section: 'dcs' | 'vips';
  idle: boolean;
  /** Polls the DCS every interval (its moves then run in `--phases` blocks). */
  polls: boolean;
  /** The VIPs the row's daemons manage, one per entry; a move changes one entry's key. */
  vips: readonly string[];
  /** Starts whatever the DCS side needs (the leader is written per block). */
  setup(): Promise<void>;
  /** Starts n1's daemon, then n2's `staggerMs` later. */
  start(staggerMs: number): Promise<Proc[]>;
  /** Names `n` the leader of entry `entry` (its key, its fake). */
  setLeader(n: Node, entry: number): Promise<void>;
  teardown(): Promise<void>;
}

export interface RowResult {
  spec: RowSpec;
  moves: MoveRecord[];
  metrics: MoveMetrics[];
  /** The client's entry went back to the old holder's MAC after following the new one. */
  flipBacks: { overlap: number; released: number };
  /** n2's start offset after n1's, per block. */
  staggers: number[];
  idle?: IdleResult;
  error?: string;
}

export const emptyResult = (spec: RowSpec, error?: string): RowResult => ({
  spec, moves: [], metrics: [], flipBacks: { overlap: 0, released: 0 }, staggers: [], ...(error === undefined ? {} : { error }),
});

function httpPut(url: string, body: string, agent: http.Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', agent, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode && res.statusCode < 300 ? resolve() : reject(new Error(`PUT ${url}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, SW_IP, () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closeServer(server: net.Server | http.Server): Promise<void> {
  if ('closeAllConnections' in server) server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

function goProc(bed: Bed, bin: string, node: Node): Proc {
  const d = new GoDaemon({ bin, ns: bed.ns[node], ip: VIP, prefix: PREFIX, key: KEY, node, etcdUrl: bed.etcd.clientUrl });
  return { node, pid: d.pid, kill: () => d.kill(), transcript: () => d.transcript() };
}

/** The four single-VIP rows, one per DCS, in the order they run. */
export function dcsRows(bed: Bed, opt: RunOptions): RowSpec[] {
  const kv = bed.etcd.client();
  let leaseId = '';
  const putV3 = async (v: string): Promise<void> => {
    await (leaseId ? kv.put(KEY).value(v).lease(leaseId) : kv.put(KEY).value(v));
  };
  const single = { section: 'dcs' as const, vips: [VIP] };

  const etcdRow: RowSpec = {
    ...single,
    id: 'etcd',
    label: 'vip-manager (this, etcd v3 watch)',
    idle: true,
    polls: false,
    async setup() {
      // Patroni's leader key carries a lease; our daemon then also reads the lease's TTL.
      leaseId = opt.lease ? String(await kv.lease(LEASE_TTL_S, { autoKeepAlive: false }).grant()) : '';
      await putV3('n1');
    },
    start: (st) => startOurs(bed, st, (n) => [...singleVipArgs(), '--trigger-key', KEY, '--trigger-value', n, '--dcs-endpoints', bed.etcd.clientUrl]),
    async setLeader(n) { await putV3(n); },
    async teardown() { /* nothing: etcd stays for the next row */ },
  };

  const v2Agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const v2Url = `${bed.etcd.clientUrl}/v2/keys${KEY}`;
  const baselineRow: RowSpec = {
    ...single,
    id: 'baseline',
    label: 'vip-manager 1.0.2 (Debian, etcd v2, interval 1000)',
    idle: true,
    polls: true,
    async setup() {
      await Promise.all([kv.put(KEY).value('n1'), httpPut(v2Url, 'value=n1', v2Agent)]);
    },
    async start(st) {
      const bin = opt.baseline;
      if (!bin) throw new Error('the baseline row needs the Go original (bench/baseline.ts found none)');
      const p1 = goProc(bed, bin, 'n1');
      await sleep(st);
      return [p1, goProc(bed, bin, 'n2')];
    },
    async setLeader(n) { await Promise.all([kv.put(KEY).value(n), httpPut(v2Url, `value=${n}`, v2Agent)]); },
    async teardown() { v2Agent.destroy(); },
  };

  let standin: ConsulStandin | undefined;
  const consulRow: RowSpec = {
    ...single,
    id: 'consul',
    label: 'vip-manager (this, Consul stand-in)',
    idle: false,
    polls: false,
    async setup() {
      standin = await ConsulStandin.start({ host: SW_IP });
      standin.put(CONSUL_KEY, 'n1');
    },
    start: (st) => startOurs(bed, st, (n) => [...singleVipArgs(), '--trigger-key', KEY, '--trigger-value', n, '--dcs-type', 'consul', '--dcs-endpoints', standin!.url]),
    async setLeader(n) { standin!.put(CONSUL_KEY, n); },
    async teardown() {
      await standin?.close();
    },
  };

  let leader: Node = 'n1';
  const servers: Partial<Record<Node, { server: http.Server; port: number }>> = {};
  const patroniRow: RowSpec = {
    ...single,
    id: 'patroni',
    label: 'vip-manager (this, Patroni REST, interval 1000)',
    idle: false,
    polls: true,
    async setup() {
      leader = 'n1';
      for (const n of NODES) {
        const server = http.createServer((req, res) => {
          const lead = leader === n;
          const code = req.url === '/leader' && lead ? 200 : 503;
          res.writeHead(code, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ state: 'running', role: lead ? 'primary' : 'replica' }));
        });
        servers[n] = { server, port: await listen(server) };
      }
    },
    // trigger-key /leader and trigger-value 200 are the defaults for dcs-type patroni.
    start: (st) => startOurs(bed, st, (n) => [...singleVipArgs(), '--dcs-type', 'patroni', '--dcs-endpoints', `http://${SW_IP}:${servers[n]!.port}`, '--interval', '1000']),
    async setLeader(n) { leader = n; },
    async teardown() {
      for (const s of Object.values(servers)) await closeServer(s.server);
    },
  };

  return [etcdRow, baselineRow, consulRow, patroniRow];
}

// ---------------------------------------------------------------------------------------------
// Running a row

export async function runRow(bed: Bed, spec: RowSpec, opt: RunOptions, log: (s: string) => void): Promise<RowResult> {
  const result = emptyResult(spec);
  log(`${spec.label}: starting`);
  await spec.setup();
  try {
    // Pollers' results depend on the phase between the two nodes' timers, so their moves run
    // in several blocks, each with freshly started daemons and a new random start offset.
    const blocks = spec.polls ? Math.min(opt.phases, opt.moves) : 1;
    for (let b = 0; b < blocks && !result.error; b++) {
      const count = Math.floor(opt.moves / blocks) + (b < opt.moves % blocks ? 1 : 0);
      await runBlock(bed, spec, opt, log, result, count, b === 0 && spec.idle);
    }
  } finally {
    await spec.teardown();
  }
  log(`${spec.label}: ${result.moves.filter((m) => m.completed).length}/${opt.moves} moves completed (n2 started ${result.staggers.map((x) => ms(x)).join(', ')} ms after n1)`);
  return result;
}

async function runBlock(bed: Bed, spec: RowSpec, opt: RunOptions, log: (s: string) => void, result: RowResult, moves: number, idle: boolean): Promise<void> {
  let procs: Proc[] = [];
  const vips = spec.vips;
  const on = (n: Node, v: string): boolean => bed.obs[n].has(v) && !bed.obs[other(n)].has(v);
  try {
    for (let e = 0; e < vips.length; e++) await spec.setLeader('n1', e);
    bed.client.probe(vips);
    // Nodes never boot in lockstep: a random start offset gives pollers independent phases.
    const stagger = Math.random() * START_STAGGER_MAX_MS;
    result.staggers.push(stagger);
    procs = await spec.start(stagger);
    const transcripts = (): string => procs.map((p) => `--- ${p.node}:\n${p.transcript()}`).join('\n');
    if (!await waitFor(() => vips.every((v) => on('n1', v)), 15_000)) {
      const where = vips.map((v) => `${v}: n1 ${bed.obs.n1.has(v)}, n2 ${bed.obs.n2.has(v)}`).join('; ');
      throw new Error(`the VIP${vips.length > 1 ? 's' : ''} never settled on n1 (${where}); daemons said:\n${transcripts()}`);
    }
    const resolved = (): boolean => vips.every((v) => bed.client.lladdr(v) === bed.mac.n1);
    if (!await waitFor(resolved, 3000)) {
      // A stale entry from the previous block that no announcement corrected: start clean.
      for (const v of vips) {
        if (bed.client.lladdr(v) === bed.mac.n1) continue;
        try { bed.ns.client.ip('neigh', 'del', v, 'dev', 'eth0'); } catch { /* none */ }
      }
      if (!await waitFor(resolved, 5000)) {
        const has = vips.map((v) => bed.client.lladdr(v) || 'none').join(', ');
        throw new Error(`the client never resolved the VIP${vips.length > 1 ? 's' : ''} to n1's MAC (has ${has})`);
      }
    }
    await sleep(SETTLE_MS);
    if (idle) {
      log(`${spec.label}: idle for ${IDLE_WARMUP_MS / 1000} + ${opt.idleSeconds} s`);
      await sleep(IDLE_WARMUP_MS);
      result.idle = await measureIdle(bed.etcd, procs.map((p) => p.pid), opt.idleSeconds);
    }

    const blockStart = now();
    const initial = new Map(vips.map((v) => [v, { n1: bed.obs.n1.has(v), n2: bed.obs.n2.has(v) }]));
    const blockMoves: MoveRecord[] = [];
    const pauses: number[] = [];
    const holder: Node[] = vips.map(() => 'n1');
    for (let i = 0; i < moves; i++) {
      pauses.push(PAUSE_MIN_MS + Math.random() * (PAUSE_MAX_MS - PAUSE_MIN_MS));
      await sleep(pauses[i]!);
      // One entry's key at a time; the others stay where they are.
      const e = vips.length > 1 ? Math.floor(Math.random() * vips.length) : 0;
      const vip = vips[e]!;
      const from = holder[e]!;
      const to = other(from);
      const t0 = now();
      await spec.setLeader(to, e);
      const t1 = now();
      const move: MoveRecord = { vip, from, to, t0, t1, tEnd: Infinity, completed: false };
      if (blockMoves.length > 0) blockMoves[blockMoves.length - 1]!.tEnd = t0;
      blockMoves.push(move);
      result.moves.push(move);
      move.completed = await waitFor(() => on(to, vip), MOVE_TIMEOUT_MS);
      if (!move.completed) {
        result.error = `move ${result.moves.length} (${vips.length > 1 ? `${vip} ` : ''}${from} → ${to}) did not complete within ${MOVE_TIMEOUT_MS} ms: VIP on ${to}: ${bed.obs[to].has(vip)}, on ${from}: ${bed.obs[from].has(vip)}; daemons said:\n${transcripts()}`;
        break;
      }
      await waitFor(() => bed.client.lladdr(vip) === bed.mac[to], NEIGH_TIMEOUT_MS);
      holder[e] = to;
    }
    // Late events (a flap, a stray announcement) still belong to the last move's window.
    await sleep(300);
    const blockEnd = now();
    const last = blockMoves[blockMoves.length - 1];
    if (last) last.tEnd = blockEnd;

    const inBlock = (n: Node, v: string): Timeline => new Timeline(initial.get(v)![n], bed.obs[n].changes(v).filter((c) => c.t > blockStart && c.t <= blockEnd));
    const tls = new Map(vips.map((v) => [v, { n1: inBlock('n1', v), n2: inBlock('n2', v) }]));
    blockMoves.forEach((m, i) => {
      const tl = tls.get(m.vip)!;
      const neigh = bed.client.neigh(m.vip);
      const others = vips.filter((v) => v !== m.vip).map((v) => tls.get(v)!);
      const mm = moveMetrics(m, tl, neigh, bed.mac[m.to], others);
      result.metrics.push(mm);
      // The client's entry going back to the old holder after it had followed the new one.
      // While both hold the VIP both may announce, so that is a consequence of the overlap;
      // after the old holder released it, nothing should point the client back there.
      if (mm.neigh !== null) {
        const back = neigh.find((x) => x.t > m.t0 + mm.neigh! && x.t < m.tEnd && x.lladdr === bed.mac[m.from]);
        if (back && tl[m.from].at(back.t)) result.flipBacks.overlap++;
        else if (back) result.flipBacks.released++;
        if (back && opt.verbose) log(`  move ${result.metrics.length}: client back to ${m.from}'s MAC at +${ms(back.t - m.t0)} ms (${back.state}); ${m.from} ${tl[m.from].at(back.t) ? 'still held' : 'had released'} the VIP`);
      }
      if (opt.verbose) {
        const f = (x: number | null): string => (x === null ? '-' : ms(x)).padStart(6);
        const which = vips.length > 1 ? ` ${m.vip}` : '';
        const touched = vips.length > 1 ? ` other VIPs' events ${mm.others}` : '';
        log(`  move ${String(result.metrics.length).padStart(2)}${which} ${m.from}→${m.to} after ${ms(pauses[i]!).padStart(4)} ms pause: present ${f(mm.present)} gone ${f(mm.gone)} overlap ${f(mm.overlap)} gap ${f(mm.gap)} neigh ${f(mm.neigh)} put ${f(mm.put)}${touched}`);
      }
    });
  } finally {
    await Promise.allSettled(procs.map((p) => p.kill()));
    await removeVips(bed, vips);
  }
}
