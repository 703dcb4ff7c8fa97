// Failover benchmark: npm run bench:failover [-- options], or node dist/bench/failover.js
//   --moves N (20)  --only etcd,baseline,consul,patroni  --idle-seconds S (10)  --phases K (4)
//   --no-lease  --verbose  --our-args "..."   (see --help)
// Needs root; about 2.5 minutes with the defaults on a 2-core machine.
//
// A LAN of network namespaces (bridge br0 in a switch namespace with 203.0.113.1; n1, n2 and a
// client on 203.0.113.11–13; documentation addresses only), one etcd 3.4 in the switch
// namespace with the v2 API on, and per row two vip-managers (n1, n2) for VIP 203.0.113.100/24.
// Leadership moves N times at random moments (a random 300–1500 ms pause after the previous
// move settled). Observer processes inside n1, n2 and the client (bench/failover-observer.ts)
// stamp every VIP add/del and every neighbour-table change of the client for the VIP with
// performance.timeOrigin + performance.now(), the same clock the bench uses for "key change"
// (taken just before the put is sent). The client sends a UDP probe to the VIP every 10 ms, so
// it always has a neighbour entry for it. Rows:
//   etcd      this daemon, dcs-type etcd (v3 watch), default settings; the key carries a lease as
//             Patroni's does; idle RSS, CPU, wake-ups and etcd requests measured first
//   baseline  Debian's vip-manager 1.0.2 (the Go original; etcd v2, polls every 1000 ms, runs
//             `ip addr add|delete`, sends its gratuitous ARP itself: no arping needed); the key
//             is written to both APIs (v3 and v2); idle measured as well
//   consul    this daemon against test/standins/consul.ts (a stand-in, no real Consul here),
//             listening on 203.0.113.1 in the switch namespace
//   patroni   this daemon, dcs-type patroni, interval 1000, against a fake Patroni REST API per
//             node (GET /leader: 200 on the leader, 503 elsewhere); key change = the flip
// Polling rows (baseline, patroni) run their moves in --phases blocks with freshly started
// daemons, n2 a random 0–1000 ms after n1: overlap and gap of pollers depend on the phase
// between the two nodes' timers, and real nodes do not boot in lockstep.
// Everything (namespaces, etcd, daemons, observers) is removed on success, failure and Ctrl-C
// (test/harness/netns.ts and etcd.ts handle SIGINT/SIGTERM and exit; see the prependListener
// calls below for why this process first leaves the switch namespace).
import { execFileSync, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Daemon } from '../test/harness/daemon.js';
import { enterNetns, leaveNetns } from '../test/harness/enter-netns.js';
import { startEtcd, type EtcdServer } from '../test/harness/etcd.js';
import { createLan, requireNetnsPrivileges, type Lan, type Netns } from '../test/harness/netns.js';
import { ConsulStandin } from '../test/standins/consul.js';
import {
  deltas, moveMetrics, ms, other, promSums, stats, table, Timeline,
  type Change, type MoveMetrics, type MoveRecord, type NeighChange, type Node,
} from './failover-report.js';

const SW_IP = '203.0.113.1';
const VIP = '203.0.113.100';
const PREFIX = 24;
const KEY = '/service/bench/leader';
const CONSUL_KEY = KEY.replace(/^\/+/, '');
const BASELINE = '/usr/bin/vip-manager';
const OBSERVER = fileURLToPath(new URL('./failover-observer.js', import.meta.url));
const NODES: Node[] = ['n1', 'n2'];

const PAUSE_MIN_MS = 300;
const PAUSE_MAX_MS = 1500;
const PROBE_MS = 10;
/** A move that has not settled by then never will (the pollers need ≤ 1 s). */
const MOVE_TIMEOUT_MS = 10_000;
/** How long after the VIP moved the client's neighbour entry may take to follow. */
const NEIGH_TIMEOUT_MS = 3000;
/** Our daemons announce for announce-count × announce-interval (5 × 200 ms) after taking the VIP. */
const SETTLE_MS = 1200;
const LEASE_TTL_S = 600;
/** Idle measurements start this long after the daemons settled (start-up work is over). */
const IDLE_WARMUP_MS = 5000;
/** n2's daemon starts a random 0–1000 ms after n1's (one poll interval). */
const START_STAGGER_MAX_MS = 1000;

// The harness's SIGINT/SIGTERM/exit handlers SIGKILL every process inside each namespace before
// deleting it; this process's main thread sits in the switch namespace (enterNetns), so it would
// kill itself first and leave the namespaces behind. Step out before they run.
process.prependListener('SIGINT', () => leaveNetns());
process.prependListener('SIGTERM', () => leaveNetns());
process.prependListener('exit', () => leaveNetns());

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (msec: number): Promise<void> => new Promise((r) => setTimeout(r, msec));

// ---------------------------------------------------------------------------------------------
// Command line

interface Options { moves: number; only: Set<string>; idleSeconds: number; lease: boolean; verbose: boolean; phases: number; ourArgs: string[] }

function parseArgs(argv: string[]): Options {
  const o: Options = { moves: 20, only: new Set(['etcd', 'baseline', 'consul', 'patroni']), idleSeconds: 10, lease: true, verbose: false, phases: 4, ourArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--moves') o.moves = Number(value());
    else if (flag === '--only') o.only = new Set(value().split(',').map((s) => s.trim()).filter(Boolean));
    else if (flag === '--idle-seconds') o.idleSeconds = Number(value());
    else if (flag === '--no-lease') o.lease = false;
    else if (flag === '--phases') o.phases = Number(value());
    else if (flag === '--our-args') o.ourArgs = value().split(/\s+/).filter(Boolean);
    else if (flag === '--verbose' || flag === '-v') o.verbose = true;
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write('usage: node dist/bench/failover.js [--moves N (20)] [--only etcd,baseline,consul,patroni] [--idle-seconds S (10)]\n'
        + '         [--phases K (4: poller rows restart their daemons K times, each with a new random start offset)]\n'
        + '         [--no-lease (etcd row: the key without a lease)] [--verbose (one line per move)]\n'
        + '         [--our-args "--flag value ..." (appended to this daemon\'s command line, for experiments)]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(o.moves) || o.moves < 1) throw new Error('--moves must be a positive integer');
  if (!(o.idleSeconds > 0)) throw new Error('--idle-seconds must be positive');
  if (!Number.isInteger(o.phases) || o.phases < 1) throw new Error('--phases must be a positive integer');
  for (const r of o.only) if (!['etcd', 'baseline', 'consul', 'patroni'].includes(r)) throw new Error(`unknown row ${r}`);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Observers

const bus = new EventEmitter();
bus.setMaxListeners(100);

interface ObserverLine { k: string; t: number; op?: string; present?: boolean; lladdr?: string; state?: string; why?: string }

class Observer {
  readonly child: ChildProcess;
  present = false;
  lladdr = '';
  readonly changes: Change[] = [];
  readonly neigh: NeighChange[] = [];
  readonly warnings: string[] = [];
  private stderr = '';
  private readyResolve!: () => void;
  readonly ready = new Promise<void>((r) => { this.readyResolve = r; });
  private syncWaiters: Array<(t: number) => void> = [];

  constructor(readonly label: string, ns: Netns, args: string[]) {
    this.child = ns.spawn(process.execPath, [OBSERVER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => this.onLine(l));
    this.child.stderr!.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-2000); });
    this.child.once('exit', (code, sig) => {
      this.warnings.push(`observer ${label} exited (${code ?? sig}) ${this.stderr.trim()}`);
      bus.emit('change');
    });
  }

  private setPresent(t: number, p: boolean): void {
    if (p !== this.present) this.changes.push({ t, present: p });
    this.present = p;
  }

  private onLine(line: string): void {
    let o: ObserverLine;
    try { o = JSON.parse(line) as ObserverLine; } catch { return; }
    switch (o.k) {
      case 'state':
      case 'resync':
        if (o.k === 'resync') this.warnings.push(`${this.label}: address monitor resync at ${o.t}`);
        if (o.present !== undefined) this.setPresent(o.t, o.present);
        this.readyResolve();
        break;
      case 'addr':
        this.setPresent(o.t, o.op === 'add');
        break;
      case 'neigh': {
        const ll = o.op === 'del' ? '' : o.lladdr ?? '';
        this.lladdr = ll;
        this.neigh.push({ t: o.t, lladdr: ll, state: o.state ?? '' });
        break;
      }
      case 'lost':
        this.warnings.push(`${this.label}: neighbour events lost (${o.why})`);
        break;
      case 'sync':
        this.syncWaiters.shift()?.(o.t);
        break;
    }
    bus.emit('change');
  }

  /** One clock round trip: the observer's stamp must fall between send and receive. */
  async sync(): Promise<{ send: number; obs: number; recv: number }> {
    const p = new Promise<number>((r) => this.syncWaiters.push(r));
    const send = now();
    this.child.stdin!.write('sync\n');
    const obs = await p;
    return { send, obs, recv: now() };
  }

  failed(): string | null {
    return this.child.exitCode !== null || this.child.signalCode !== null ? this.warnings.join('; ') : null;
  }
}

/** Resolves true as soon as `pred` holds (checked on every observer line), false after `timeoutMs`. */
function waitFor(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  if (pred()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onChange = (): void => {
      if (!pred()) return;
      finish(true);
    };
    const finish = (v: boolean): void => {
      clearTimeout(timer);
      bus.off('change', onChange);
      resolve(v);
    };
    const timer = setTimeout(() => finish(pred()), timeoutMs);
    bus.on('change', onChange);
  });
}

// ---------------------------------------------------------------------------------------------
// /proc and etcd metrics

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

interface IdleResult {
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

async function measureIdle(etcd: EtcdServer, pids: number[], seconds: number): Promise<IdleResult> {
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

// ---------------------------------------------------------------------------------------------
// Rows

interface Proc { node: Node; pid: number; kill(): Promise<void>; transcript(): string }

interface RowSpec {
  id: string;
  label: string;
  idle: boolean;
  /** Polls the DCS every interval (its moves then run in `--phases` blocks). */
  polls: boolean;
  /** Writes the initial leader (n1) and starts whatever the DCS side needs. */
  setup(): Promise<void>;
  /** Starts n1's daemon, then n2's `staggerMs` later. */
  start(staggerMs: number): Promise<Proc[]>;
  setLeader(n: Node): Promise<void>;
  teardown(): Promise<void>;
}

interface RowResult {
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

interface Bed {
  lan: Lan;
  ns: Record<Node | 'client', Netns>;
  mac: Record<Node, string>;
  etcd: EtcdServer;
  obs: Record<Node, Observer>;
  client: Observer;
  /** Extra flags for this daemon (--our-args). */
  ourArgs: string[];
}

function ourDaemon(bed: Bed, node: Node, extra: string[]): { proc: Proc; ready: Promise<unknown> } {
  const d = new Daemon({
    ns: bed.ns[node],
    args: ['--ip', VIP, '--netmask', String(PREFIX), '--interface', 'eth0', ...extra],
  });
  return {
    proc: { node, pid: d.pid, kill: () => d.kill(), transcript: () => d.transcript() },
    ready: d.waitReady(),
  };
}

async function startOurs(bed: Bed, staggerMs: number, extra: (n: Node) => string[]): Promise<Proc[]> {
  const started = [ourDaemon(bed, 'n1', [...extra('n1'), ...bed.ourArgs])];
  await sleep(staggerMs);
  started.push(ourDaemon(bed, 'n2', [...extra('n2'), ...bed.ourArgs]));
  try {
    await Promise.all(started.map((s) => s.ready));
  } catch (e) {
    await Promise.allSettled(started.map((s) => s.proc.kill()));
    throw e;
  }
  return started.map((s) => s.proc);
}

function baselineDaemon(bed: Bed, node: Node): Proc {
  const lines: string[] = [];
  const child = bed.ns[node].spawn(BASELINE, [
    `--ip=${VIP}`, `--netmask=${PREFIX}`, '--interface=eth0', `--trigger-key=${KEY}`, `--trigger-value=${node}`,
    '--dcs-type=etcd', `--dcs-endpoints=${bed.etcd.clientUrl}`, '--interval=1000',
  ]);
  for (const s of [child.stdout!, child.stderr!]) {
    createInterface({ input: s }).on('line', (l) => { lines.push(l); if (lines.length > 40) lines.shift(); });
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    node,
    pid: child.pid!,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    transcript: () => lines.join('\n'),
  };
}

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

function makeRows(bed: Bed, opt: Options): RowSpec[] {
  const kv = bed.etcd.client();
  let leaseId = '';
  const putV3 = async (v: string): Promise<void> => {
    await (leaseId ? kv.put(KEY).value(v).lease(leaseId) : kv.put(KEY).value(v));
  };

  const etcdRow: RowSpec = {
    id: 'etcd',
    label: 'vip-manager (this, etcd v3 watch)',
    idle: true,
    polls: false,
    async setup() {
      // Patroni's leader key carries a lease; our daemon then also reads the lease's TTL.
      leaseId = opt.lease ? String(await kv.lease(LEASE_TTL_S, { autoKeepAlive: false }).grant()) : '';
      await putV3('n1');
    },
    start: (st) => startOurs(bed, st, (n) => ['--trigger-key', KEY, '--trigger-value', n, '--dcs-endpoints', bed.etcd.clientUrl]),
    async setLeader(n) { await putV3(n); },
    async teardown() { /* nothing: etcd stays for the next row */ },
  };

  const v2Agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const v2Url = `${bed.etcd.clientUrl}/v2/keys${KEY}`;
  const baselineRow: RowSpec = {
    id: 'baseline',
    label: 'vip-manager 1.0.2 (Debian, etcd v2, interval 1000)',
    idle: true,
    polls: true,
    async setup() {
      await Promise.all([kv.put(KEY).value('n1'), httpPut(v2Url, 'value=n1', v2Agent)]);
    },
    async start(st) {
      const p1 = baselineDaemon(bed, 'n1');
      await sleep(st);
      return [p1, baselineDaemon(bed, 'n2')];
    },
    async setLeader(n) { await Promise.all([kv.put(KEY).value(n), httpPut(v2Url, `value=${n}`, v2Agent)]); },
    async teardown() { v2Agent.destroy(); },
  };

  let standin: ConsulStandin | undefined;
  const consulRow: RowSpec = {
    id: 'consul',
    label: 'vip-manager (this, Consul stand-in)',
    idle: false,
    polls: false,
    async setup() {
      standin = await ConsulStandin.start({ host: SW_IP });
      standin.put(CONSUL_KEY, 'n1');
    },
    start: (st) => startOurs(bed, st, (n) => ['--trigger-key', KEY, '--trigger-value', n, '--dcs-type', 'consul', '--dcs-endpoints', standin!.url]),
    async setLeader(n) { standin!.put(CONSUL_KEY, n); },
    async teardown() {
      await standin?.close();
    },
  };

  let leader: Node = 'n1';
  const servers: Partial<Record<Node, { server: http.Server; port: number }>> = {};
  const patroniRow: RowSpec = {
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
    start: (st) => startOurs(bed, st, (n) => ['--dcs-type', 'patroni', '--dcs-endpoints', `http://${SW_IP}:${servers[n]!.port}`, '--interval', '1000']),
    async setLeader(n) { leader = n; },
    async teardown() {
      for (const s of Object.values(servers)) await closeServer(s.server);
    },
  };

  return [etcdRow, baselineRow, consulRow, patroniRow];
}

// ---------------------------------------------------------------------------------------------
// Running a row

async function removeVips(bed: Bed): Promise<void> {
  for (const n of NODES) {
    if (bed.obs[n].present) {
      try { bed.ns[n].ip('addr', 'del', `${VIP}/${PREFIX}`, 'dev', 'eth0'); } catch { /* gone meanwhile */ }
    }
  }
  await waitFor(() => !bed.obs.n1.present && !bed.obs.n2.present, 5000);
}

async function runRow(bed: Bed, spec: RowSpec, opt: Options, log: (s: string) => void): Promise<RowResult> {
  const result: RowResult = { spec, moves: [], metrics: [], flipBacks: { overlap: 0, released: 0 }, staggers: [] };
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

async function runBlock(bed: Bed, spec: RowSpec, opt: Options, log: (s: string) => void, result: RowResult, moves: number, idle: boolean): Promise<void> {
  let procs: Proc[] = [];
  try {
    await spec.setLeader('n1');
    // Nodes never boot in lockstep: a random start offset gives pollers independent phases.
    const stagger = Math.random() * START_STAGGER_MAX_MS;
    result.staggers.push(stagger);
    procs = await spec.start(stagger);
    const transcripts = (): string => procs.map((p) => `--- ${p.node}:\n${p.transcript()}`).join('\n');
    if (!await waitFor(() => bed.obs.n1.present && !bed.obs.n2.present, 15_000)) {
      throw new Error(`the VIP never settled on n1 (n1 ${bed.obs.n1.present}, n2 ${bed.obs.n2.present}); daemons said:\n${transcripts()}`);
    }
    if (!await waitFor(() => bed.client.lladdr === bed.mac.n1, 3000)) {
      // A stale entry from the previous block that no announcement corrected: start clean.
      try { bed.ns.client.ip('neigh', 'del', VIP, 'dev', 'eth0'); } catch { /* none */ }
      if (!await waitFor(() => bed.client.lladdr === bed.mac.n1, 5000)) {
        throw new Error(`the client never resolved the VIP to n1's MAC (has ${bed.client.lladdr || 'none'})`);
      }
    }
    await sleep(SETTLE_MS);
    if (idle) {
      log(`${spec.label}: idle for ${IDLE_WARMUP_MS / 1000} + ${opt.idleSeconds} s`);
      await sleep(IDLE_WARMUP_MS);
      result.idle = await measureIdle(bed.etcd, procs.map((p) => p.pid), opt.idleSeconds);
    }

    const blockStart = now();
    const initial = { n1: bed.obs.n1.present, n2: bed.obs.n2.present };
    const blockMoves: MoveRecord[] = [];
    const pauses: number[] = [];
    let holder: Node = 'n1';
    for (let i = 0; i < moves; i++) {
      pauses.push(PAUSE_MIN_MS + Math.random() * (PAUSE_MAX_MS - PAUSE_MIN_MS));
      await sleep(pauses[i]!);
      const from = holder;
      const to = other(from);
      const t0 = now();
      await spec.setLeader(to);
      const t1 = now();
      const move: MoveRecord = { from, to, t0, t1, tEnd: Infinity, completed: false };
      if (blockMoves.length > 0) blockMoves[blockMoves.length - 1]!.tEnd = t0;
      blockMoves.push(move);
      result.moves.push(move);
      move.completed = await waitFor(() => bed.obs[to].present && !bed.obs[from].present, MOVE_TIMEOUT_MS);
      if (!move.completed) {
        result.error = `move ${result.moves.length} (${from} → ${to}) did not complete within ${MOVE_TIMEOUT_MS} ms: VIP on ${to}: ${bed.obs[to].present}, on ${from}: ${bed.obs[from].present}; daemons said:\n${transcripts()}`;
        break;
      }
      await waitFor(() => bed.client.lladdr === bed.mac[to], NEIGH_TIMEOUT_MS);
      holder = to;
    }
    // Late events (a flap, a stray announcement) still belong to the last move's window.
    await sleep(300);
    const blockEnd = now();
    const last = blockMoves[blockMoves.length - 1];
    if (last) last.tEnd = blockEnd;

    const tl = {
      n1: new Timeline(initial.n1, bed.obs.n1.changes.filter((c) => c.t > blockStart && c.t <= blockEnd)),
      n2: new Timeline(initial.n2, bed.obs.n2.changes.filter((c) => c.t > blockStart && c.t <= blockEnd)),
    };
    blockMoves.forEach((m, i) => {
      const mm = moveMetrics(m, tl, bed.client.neigh, bed.mac[m.to]);
      result.metrics.push(mm);
      // The client's entry going back to the old holder after it had followed the new one.
      // While both hold the VIP both may announce, so that is a consequence of the overlap;
      // after the old holder released it, nothing should point the client back there.
      if (mm.neigh !== null) {
        const back = bed.client.neigh.find((x) => x.t > m.t0 + mm.neigh! && x.t < m.tEnd && x.lladdr === bed.mac[m.from]);
        if (back && tl[m.from].at(back.t)) result.flipBacks.overlap++;
        else if (back) result.flipBacks.released++;
        if (back && opt.verbose) log(`  move ${result.metrics.length}: client back to ${m.from}'s MAC at +${ms(back.t - m.t0)} ms (${back.state}); ${m.from} ${tl[m.from].at(back.t) ? 'still held' : 'had released'} the VIP`);
      }
      if (opt.verbose) {
        const f = (x: number | null): string => (x === null ? '-' : ms(x)).padStart(6);
        log(`  move ${String(result.metrics.length).padStart(2)} ${m.from}→${m.to} after ${ms(pauses[i]!).padStart(4)} ms pause: present ${f(mm.present)} gone ${f(mm.gone)} overlap ${f(mm.overlap)} gap ${f(mm.gap)} neigh ${f(mm.neigh)} put ${f(mm.put)}`);
      }
    });
  } finally {
    await Promise.allSettled(procs.map((p) => p.kill()));
    await removeVips(bed);
  }
}

// ---------------------------------------------------------------------------------------------
// Environment and output

function ensureBaseline(log: (s: string) => void): void {
  if (existsSync(BASELINE)) return;
  log(`${BASELINE} is missing: installing Debian's vip-manager (apt-get install -y vip-manager)`);
  // Like scripts/setup.sh: its unit must not start on its own (policy-rc.d exit 101).
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'vip-manager'], {
      stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch {
    throw new Error('could not install vip-manager (the baseline); run `bash scripts/setup.sh --bench`, or skip it with --only etcd,consul,patroni');
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!.trim();
  } catch (e) {
    return `unknown (${(e as Error).message.split('\n')[0]})`;
  }
}

function report(results: RowResult[], opt: Options, env: string[]): string {
  const out: string[] = [];
  out.push('vip-manager failover benchmark', ...env.map((e) => `  ${e}`), '');
  const metric = (title: string, pick: (m: MoveMetrics) => number | null, note?: (r: RowResult) => string): void => {
    const rows = results.map((r) => {
      const vals = r.metrics.map(pick);
      const got = vals.filter((v): v is number => v !== null);
      const s = stats(got);
      const missing = vals.length - got.length;
      const extra = [missing > 0 ? `${missing} not seen` : '', note?.(r) ?? ''].filter(Boolean).join('; ');
      return [r.spec.label, String(got.length), s ? ms(s.median) : '-', s ? ms(s.p90) : '-', s ? ms(s.max) : '-', extra];
    });
    out.push(title, table(['', 'n', 'median', 'p90', 'max', ''], rows, 1).replace(/^/gm, '  '), '');
  };
  metric('1. key change → VIP present on the new holder (ms)', (m) => m.present);
  metric('2. key change → VIP gone from the old holder (ms)', (m) => m.gone);
  metric('3. both held the VIP (overlap, ms; 0 when none)', (m) => m.overlap, (r) => {
    const k = r.metrics.filter((m) => m.overlap > 0).length;
    return `${k}/${r.metrics.length} moves overlapped`;
  });
  metric('4. neither held the VIP (gap, ms)', (m) => m.gap, (r) => {
    const k = r.metrics.filter((m) => m.gap > 0).length;
    return `${k}/${r.metrics.length} moves had a gap`;
  });
  metric(`5. key change → client's neighbour entry for the VIP has the new holder's MAC (ms; "not seen" = not within ${NEIGH_TIMEOUT_MS} ms of the move)`,
    (m) => m.neigh, (r) => [
      r.flipBacks.overlap ? `${r.flipBacks.overlap}× back to the old MAC while both held the VIP` : '',
      r.flipBacks.released ? `${r.flipBacks.released}× back to the old MAC AFTER it released the VIP` : '',
    ].filter(Boolean).join('; '));
  metric('   (for reference) key change → put returned / flip done (ms)', (m) => m.put);

  const oddities = results.filter((r) => r.metrics.some((m) => m.extra > 0));
  for (const r of oddities) {
    out.push(`note: ${r.spec.label}: ${r.metrics.filter((m) => m.extra > 0).length} moves had extra VIP add/del events (a flap)`);
  }
  if (oddities.length) out.push('');

  const idle = results.filter((r) => r.idle);
  if (idle.length) {
    out.push(`idle: ${idle[0]!.idle!.seconds.toFixed(1)} s window after ${IDLE_WARMUP_MS / 1000} s of idle (key unchanged${opt.lease ? ', for this daemon attached to a lease as Patroni\'s is' : ', no lease'}; n1 holds the VIP; both daemons running;`,
      '  RSS at the end, CPU = utime+stime over the window in % of one core; etcd counters over the window ÷ seconds ÷ 2 daemons)');
    const per = (v: number, r: IdleResult): string => (v / r.seconds / 2).toFixed(2);
    const rows = idle.map((r) => {
      const i = r.idle!;
      const unary = [...i.grpcHandled].map(([k, v]) => `${k} ${per(v, i)}`);
      const msgs = [...i.grpcMsgs].filter(([k]) => !i.grpcHandled.has(k)).map(([k, v]) => `${k} msgs ${per(v, i)}`);
      const v2 = [...i.v2].map(([k, v]) => `v2 ${k} ${per(v, i)}`);
      const total = [...i.grpcHandled.values(), ...i.v2.values()].reduce((a, b) => a + b, 0);
      const detail = [...unary, ...msgs, ...v2].join(', ') || 'none';
      return [
        r.spec.label,
        i.rssMiB.map((x) => x.toFixed(1)).join(' / '),
        i.cpuPct.map((x) => x.toFixed(2)).join(' / '),
        i.wakeups.map((x) => x.toFixed(0)).join(' / '),
        per(total, i),
        detail,
        (i.proposals / i.seconds).toFixed(2),
        (i.walBytes / i.seconds).toFixed(0),
      ];
    });
    out.push(table(['', 'RSS MiB n1/n2', 'CPU % n1/n2', 'ctx switches/s n1/n2', 'etcd req/s/daemon', 'by method (/s/daemon)', 'raft proposals/s', 'WAL bytes/s'], rows, 1).replace(/^/gm, '  '), '');
  }
  out.push(
    'notes:',
    '  - pollers (interval 1000): "present"/"gone" fall anywhere in [0, interval]; overlap and gap depend on the phase between',
    '    the two nodes\' timers (one phase per block). Watchers react to the same event on both nodes: overlap/gap are sub-ms..ms.',
    '  - the fake Patroni API flips both nodes at the same instant; a real switchover demotes first (503) and promotes later (200),',
    '    so real overlaps are shorter and real gaps longer.',
    '  - Consul row: against a stand-in that follows Consul\'s HTTP API documentation (no Consul binary can be installed here).',
    '  - v2 QGET = quorum GET: every read of the baseline goes through raft (a proposal and a WAL write on each member).',
  );
  out.push(`start offsets (n2's daemon after n1's, per block): ${results.map((r) => `${r.spec.id} ${r.staggers.map((x) => ms(x)).join('/')} ms`).join('; ')}`);
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const opt = parseArgs(process.argv.slice(2));
  requireNetnsPrivileges();
  const started = now();
  const log = (s: string): void => { process.stderr.write(`[${((now() - started) / 1000).toFixed(1).padStart(5)} s] ${s}\n`); };
  if (opt.only.has('baseline')) ensureBaseline(log);

  const env = [
    `kernel ${os.release()}, node ${process.version}, ${firstLine('etcd', ['--version']).replace('etcd Version: ', 'etcd ')}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? '?'})`,
    ...(opt.ourArgs.length ? [`this daemon's extra flags: ${opt.ourArgs.join(' ')}`] : []),
    `baseline: ${opt.only.has('baseline') ? `${BASELINE} ${firstLine(BASELINE, ['--version'])}` : 'not run'}`,
    `N = ${opt.moves} moves per row, n1 ↔ n2, each after a random ${PAUSE_MIN_MS}–${PAUSE_MAX_MS} ms pause once the previous move settled; client probes the VIP every ${PROBE_MS} ms (UDP)`,
    `polling rows run their moves in ${opt.phases} blocks, each with freshly started daemons, n2 started a random 0–${START_STAGGER_MAX_MS} ms after n1 (independent poll phases)`,
    `times: epoch ms (performance.timeOrigin + performance.now()) stamped by observer processes inside each namespace; key change = just before the put is sent`,
  ];

  const lan = createLan(3, ['n1', 'n2', 'client']);
  let etcd: EtcdServer | undefined;
  const results: RowResult[] = [];
  try {
    lan.sw.ip('addr', 'add', `${SW_IP}/24`, 'dev', 'br0');
    enterNetns(lan.sw);
    etcd = await startEtcd({ host: SW_IP, enableV2: true });
    const [h1, h2, hc] = lan.hosts as [typeof lan.hosts[0], typeof lan.hosts[0], typeof lan.hosts[0]];
    const bed: Bed = {
      lan,
      ns: { n1: h1.ns, n2: h2.ns, client: hc.ns },
      mac: { n1: h1.mac, n2: h2.mac },
      etcd,
      obs: {
        n1: new Observer('n1', h1.ns, ['addr', 'eth0', VIP, String(PREFIX)]),
        n2: new Observer('n2', h2.ns, ['addr', 'eth0', VIP, String(PREFIX)]),
      },
      client: new Observer('client', hc.ns, ['client', 'eth0', VIP, String(PROBE_MS)]),
      ourArgs: opt.ourArgs,
    };
    const observers = [bed.obs.n1, bed.obs.n2, bed.client];
    let readyTimer: NodeJS.Timeout | undefined;
    const readyOrTimeout = await Promise.race([
      Promise.all(observers.map((o) => o.ready)).then(() => true),
      new Promise<boolean>((r) => { readyTimer = setTimeout(() => r(false), 15_000); }),
    ]);
    clearTimeout(readyTimer);
    if (!readyOrTimeout) {
      throw new Error(`observers did not start: ${observers.map((o) => o.warnings.join('; ')).join(' | ')}`);
    }
    // Clock check: each observer's stamp must lie between the bench's send and receive.
    const syncs: Array<{ send: number; obs: number; recv: number }> = [];
    for (let i = 0; i < 5; i++) for (const o of observers) syncs.push(await o.sync());
    const outside = Math.max(0, ...syncs.map((s) => Math.max(s.send - s.obs, s.obs - s.recv)));
    const rtt = stats(syncs.map((s) => s.recv - s.send))!;
    env.push(`clock check: ${syncs.filter((s) => s.obs >= s.send && s.obs <= s.recv).length}/${syncs.length} observer stamps fell inside the bench's send→receive window (round trip median ${ms(rtt.median)} ms${outside > 0 ? `, worst ${outside.toFixed(3)} ms outside` : ''})`);

    for (const spec of makeRows(bed, opt)) {
      if (!opt.only.has(spec.id)) continue;
      let r: RowResult;
      try {
        r = await runRow(bed, spec, opt, log);
      } catch (e) {
        r = { spec, moves: [], metrics: [], flipBacks: { overlap: 0, released: 0 }, staggers: [], error: (e as Error).message };
      }
      results.push(r);
      const dead = observers.map((o) => o.failed()).filter(Boolean);
      if (dead.length) throw new Error(`an observer died: ${dead.join('; ')}`);
    }
    const warnings = observers.flatMap((o) => o.warnings);
    process.stdout.write(`${report(results, opt, env)}\n`);
    for (const w of warnings) process.stdout.write(`warning: ${w}\n`);
  } finally {
    await etcd?.dispose();
    leaveNetns();
    lan.dispose();
  }
  const failed = results.filter((r) => r.error);
  for (const r of failed) process.stderr.write(`\nFAILED: ${r.spec.label}: ${r.error}\n`);
  log(`done in ${((now() - started) / 1000).toFixed(0)} s`);
  return failed.length ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => {
  process.stderr.write(`bench:failover failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
