// Idle benchmark (npm run bench:idle): what an idle vip-manager costs the node it runs on, side
// by side with Debian's vip-manager 1.0.2 (the Go original) and a bare `node` with one 1 s timer
// (the floor any Node.js daemon stands on). Needs root (network namespaces); about 11 minutes with
// the defaults on a 2-core machine (plus a minute to build the .deb when dist/ changed).
//
// The bed is bench/failover.ts's: a bridge in a switch namespace (203.0.113.1) with one etcd 3.4
// (v2 API on, for the baseline) and two hosts n1, n2 (203.0.113.11/.12), one daemon each, VIP
// 203.0.113.100/24 on n1, interval 1000, default log format (text). Rows, each run alone:
//   ours, leased key   the key attached to a lease as Patroni's is (TTL 30 s, kept alive every
//                      10 s as Patroni's loop_wait does): the daemons query the lease's TTL
//   ours, no lease     a plain key: a watch, nothing else
//   for the package (the .deb's launcher, embedded runtime and bundle: what users run; built
//   from dist/ like the tests build it, about a minute when stale) and for the checkout
//   (`node bin/vip-manager.js` on this machine's node)
//   Go 1.0.2           polls etcd's v2 API every interval
//   floor              `node -e 'setInterval(() => {}, 1000)'` on each runtime
// Per process over the window: CPU (time on CPU of all its threads from /proc/PID/task/*/schedstat,
// % of one core), RSS at the
// end (VmRSS), wake-ups per second (voluntary context switches of all its threads from
// /proc/PID/task/*/status: each is a sleep that ended), and per daemon etcd requests per second
// from etcd's own /metrics (gRPC calls completed, v2 HTTP requests; keepalive pings are HTTP/2
// frames, not requests, and are not counted). Then, for our leased rows, the RSS after
// VIP_BENCH_IDLE_SOAK (10,000) leader changes that move the VIP back and forth.
// Start-up, median of VIP_BENCH_IDLE_STARTUP_RUNS (10): exec → the first byte a daemon sends to
// the DCS (a TCP relay in front of etcd stamps it; the clock starts just before spawn()), and
// the wall time of `--version`; the package once more as systemd runs it with
// CacheDirectory=vip-manager (the launcher keeps V8's code cache there), after one start that
// fills the cache.
//
// Environment: VIP_BENCH_IDLE_SECONDS (60) window per row; VIP_BENCH_IDLE_WARMUP_SECONDS (5)
// after the daemons are ready; VIP_BENCH_IDLE_ROWS (all: ours-lease,ours-nolease,go,floor);
// VIP_BENCH_IDLE_BUILDS (package,checkout); VIP_BENCH_IDLE_SOAK (10000; 0: none);
// VIP_BENCH_IDLE_STARTUP_RUNS (10; 0: none); VIP_BENCH_IDLE_OUR_ARGS (extra daemon flags, for
// experiments); VIP_BENCH_IDLE_PACKAGE (a .deb, or a directory it was unpacked into, instead of
// building one). The Go original is found as bench/baseline.ts says (VIP_BASELINE_BIN,
// /usr/bin/vip-manager when `setup.sh --bench` installed it, else Debian's package fetched with
// `apt-get download` and unpacked under build/baseline/).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Etcd3 } from 'etcd3';
import { BIN } from '../test/harness/daemon.js';
import { enterNetns, leaveNetns } from '../test/harness/enter-netns.js';
import { startEtcd, type EtcdServer } from '../test/harness/etcd.js';
import { createLan, requireNetnsPrivileges, type Netns } from '../test/harness/netns.js';
import { builtPackage } from '../test/harness/packages.js';
import { goBaseline } from './baseline.js';
import { deltas, promSums } from './stats.js';

const SW_IP = '203.0.113.1';
const VIP = '203.0.113.100';
const PREFIX = 24;
const KEY = '/service/bench/leader';
const NODES = ['n1', 'n2'] as const;
type Node = typeof NODES[number];
/** Patroni's defaults: ttl 30, loop_wait 10 (the leader renews its lease every loop). */
const LEASE_TTL_S = 30;
const LEASE_RENEW_MS = 10_000;
const READY_TIMEOUT_MS = 30_000;
const FIRST_BYTE_TIMEOUT_MS = 10_000;
const SOAK_SETTLE_MS = 5000;
/** Calls the bench itself makes during a window (renewing the lease as Patroni would): not the daemons'. */
const BENCH_OWN = new Set(['LeaseKeepAlive']);
const FLOOR_SCRIPT = 'setInterval(() => {}, 1000)';

process.prependListener('SIGINT', () => leaveNetns());
process.prependListener('SIGTERM', () => leaveNetns());
process.prependListener('exit', () => leaveNetns());

const sleep = (msec: number): Promise<void> => new Promise((r) => setTimeout(r, msec));
const log = (s: string): void => { process.stderr.write(`[${(performance.now() / 1000).toFixed(1).padStart(6)} s] ${s}\n`); };

function envNumber(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${raw}: expected a number ≥ 0`);
  return n;
}
function envList(name: string, all: readonly string[]): Set<string> {
  const raw = process.env[name];
  const got = new Set((raw === undefined || raw === '' ? all : raw.split(',')).map((s) => s.trim()).filter(Boolean));
  for (const g of got) if (!all.includes(g)) throw new Error(`${name}: unknown entry ${g} (known: ${all.join(', ')})`);
  return got;
}

const SECONDS = envNumber('VIP_BENCH_IDLE_SECONDS', 60);
const WARMUP_S = envNumber('VIP_BENCH_IDLE_WARMUP_SECONDS', 5);
const SOAK = envNumber('VIP_BENCH_IDLE_SOAK', 10_000);
const STARTUP_RUNS = envNumber('VIP_BENCH_IDLE_STARTUP_RUNS', 10);
const ROWS = envList('VIP_BENCH_IDLE_ROWS', ['ours-lease', 'ours-nolease', 'go', 'floor']);
const BUILDS = envList('VIP_BENCH_IDLE_BUILDS', ['package', 'checkout']);
const OUR_ARGS = (process.env.VIP_BENCH_IDLE_OUR_ARGS ?? '').split(/\s+/).filter(Boolean);
if (!(SECONDS > 0)) throw new Error('VIP_BENCH_IDLE_SECONDS must be > 0');

// ---------------------------------------------------------------------------------------------
// /proc

const CLK_TCK = ((): number => {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { return 100; }
})();

/**
 * CPU seconds of all the process's threads: the scheduler's own nanosecond account
 * (/proc/PID/task/TID/schedstat, first field), where utime+stime in /proc/PID/stat counts
 * 1/CLK_TCK s ticks, too coarse for a tenth of a percent over a short window. Falls back to
 * the ticks without schedstats.
 */
function cpuSeconds(pid: number): number {
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try { ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]); } catch { /* the thread ended */ }
    }
    if (ns > 0) return ns / 1e9;
  } catch { /* no schedstat */ }
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK; // utime, stime (fields 14 and 15)
}

/** Voluntary context switches of all threads: each one is a sleep that ended (a wake-up). */
function wakeups(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
      n += m ? Number(m[1]) : 0;
    } catch { /* the thread ended */ }
  }
  return n;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Proc { node: Node; pid: number; child: ChildProcess; lines: string[]; kill(): Promise<void> }

/** Starts `cmd` in `ns`; keeps its last output lines; resolves `ready` on a line matching `readyLine`. */
function startProc(ns: Netns, node: Node, cmd: string[], readyLine: RegExp | null, env?: Record<string, string>): { proc: Proc; ready: Promise<void> } {
  const child = ns.spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const lines: string[] = [];
  let resolveReady!: () => void;
  let timer: NodeJS.Timeout | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    timer = setTimeout(() => reject(new Error(`${cmd.join(' ')} on ${node}: not ready after ${READY_TIMEOUT_MS} ms:\n${lines.join('\n')}`)), READY_TIMEOUT_MS);
    child.once('exit', (code, sig) => reject(new Error(`${cmd.join(' ')} on ${node} exited (${code ?? sig}):\n${lines.join('\n')}`)));
  });
  ready.then(() => clearTimeout(timer), () => clearTimeout(timer));
  if (readyLine === null) resolveReady();
  for (const s of [child.stdout!, child.stderr!]) {
    createInterface({ input: s }).on('line', (l) => {
      lines.push(l);
      if (lines.length > 60) lines.shift();
      if (readyLine?.test(l)) resolveReady();
    });
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    proc: {
      node, pid: child.pid!, child, lines,
      async kill() {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      },
    },
    ready,
  };
}

/** `ip netns exec` execs the command in place: the pid we measure must be the daemon's own. */
function checkPid(p: Proc, expect: string): void {
  const exe = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  if (!exe.some((a) => a.includes(expect))) throw new Error(`pid ${p.pid} is not ${expect}: ${exe.join(' ')}`);
}

// ---------------------------------------------------------------------------------------------
// Builds of ours

interface Build { id: 'package' | 'checkout'; label: string; cmd: string[]; node: string; nodeVersion: string; env?: Record<string, string>; startupOnly?: boolean }

async function ourBuilds(tmp: string): Promise<Build[]> {
  const builds: Build[] = [];
  if (BUILDS.has('package')) {
    const given = process.env.VIP_BENCH_IDLE_PACKAGE;
    let root = join(tmp, 'pkg');
    if (given && statSync(given).isDirectory()) {
      root = given;
    } else {
      if (!given) log('package: building the amd64 .deb from dist/ if it is stale (about a minute)');
      execFileSync('dpkg-deb', ['-x', given || await builtPackage('deb', 'amd64'), root]);
    }
    const node = join(root, 'usr/lib/vip-manager/node');
    const nodeVersion = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    const cmd = [join(root, 'usr/bin/vip-manager')];
    builds.push({ id: 'package', label: 'package', cmd, node, nodeVersion });
    // As systemd runs it with CacheDirectory=vip-manager: the launcher keeps V8's code cache there.
    const cache = join(tmp, 'cache');
    mkdirSync(cache, { mode: 0o700 });
    builds.push({ id: 'package', label: 'package, CacheDirectory=', cmd, node, nodeVersion, env: { CACHE_DIRECTORY: cache }, startupOnly: true });
  }
  if (BUILDS.has('checkout')) {
    builds.push({ id: 'checkout', label: 'checkout', cmd: [process.execPath, BIN], node: process.execPath, nodeVersion: process.version });
  }
  return builds;
}

// ---------------------------------------------------------------------------------------------
// Idle rows

interface IdleRow {
  label: string;
  runtime: string;
  cpuPct: number[];
  rssMiB: number[];
  wakeups: number[];
  threads: number[];
  /** Per daemon per second, by method. */
  etcd: Map<string, number>;
  etcdTotal: number;
  soakRssMiB?: number[];
  soakSeconds?: number;
}

async function measure(etcd: EtcdServer, procs: Proc[], seconds: number): Promise<Omit<IdleRow, 'label' | 'runtime'>> {
  const m0 = await etcd.metrics();
  const c0 = procs.map((p) => cpuSeconds(p.pid));
  const w0 = procs.map((p) => wakeups(p.pid));
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const m1 = await etcd.metrics();
  const c1 = procs.map((p) => cpuSeconds(p.pid));
  const w1 = procs.map((p) => wakeups(p.pid));
  const wall = (performance.now() - t0) / 1000;
  const per = new Map<string, number>();
  const add = (prefix: string, d: Map<string, number>): void => { for (const [k, v] of d) if (!BENCH_OWN.has(k)) per.set(`${prefix}${k}`, v / wall / procs.length); };
  add('', deltas(promSums(m0, 'grpc_server_handled_total', 'grpc_method'), promSums(m1, 'grpc_server_handled_total', 'grpc_method')));
  add('v2 ', deltas(promSums(m0, 'etcd_http_received_total', 'method'), promSums(m1, 'etcd_http_received_total', 'method')));
  return {
    cpuPct: procs.map((_, i) => ((c1[i]! - c0[i]!) / wall) * 100),
    rssMiB: procs.map((p) => rssMiB(p.pid)),
    wakeups: procs.map((_, i) => (w1[i]! - w0[i]!) / wall),
    threads: procs.map((p) => readdirSync(`/proc/${p.pid}/task`).length),
    etcd: per,
    etcdTotal: [...per.values()].reduce((a, b) => a + b, 0),
  };
}

interface Bed { ns: Record<Node, Netns>; etcd: EtcdServer; kv: Etcd3 }

class LeaderKey {
  private lease: ReturnType<Etcd3['lease']> | null = null;
  private renew: NodeJS.Timeout | null = null;
  constructor(private readonly kv: Etcd3) {}

  async set(value: string, leased: boolean): Promise<void> {
    await this.clear();
    if (leased) {
      this.lease = this.kv.lease(LEASE_TTL_S, { autoKeepAlive: false });
      await this.lease.grant();
      await this.lease.put(KEY).value(value);
      this.renew = setInterval(() => { void this.lease?.keepaliveOnce().catch((e: unknown) => log(`lease keepalive failed: ${(e as Error).message}`)); }, LEASE_RENEW_MS);
    } else {
      await this.kv.put(KEY).value(value);
    }
    await putV2(this.kv, value);
  }

  /** The next value under the same lease (or none): a leader change as Patroni writes it. */
  async put(value: string): Promise<void> {
    if (this.lease) await this.lease.put(KEY).value(value);
    else await this.kv.put(KEY).value(value);
  }

  async clear(): Promise<void> {
    if (this.renew) clearInterval(this.renew);
    this.renew = null;
    const l = this.lease;
    this.lease = null;
    if (l) await l.revoke().catch(() => {});
  }
}

let v2Url = '';
const v2Agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function putV2(_kv: Etcd3, value: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const body = `value=${value}`;
    const req = http.request(v2Url, { method: 'PUT', agent: v2Agent, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode && res.statusCode < 300 ? resolve() : reject(new Error(`PUT ${v2Url}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const READY_LINE = /ready: first answer from the DCS applied/;

function ourArgs(bed: Bed, node: Node): string[] {
  return ['--ip', VIP, '--netmask', String(PREFIX), '--interface', 'eth0', '--trigger-key', KEY, '--trigger-value', node,
    '--dcs-type', 'etcd', '--dcs-endpoints', bed.etcd.clientUrl, '--interval', '1000', ...OUR_ARGS];
}

async function runRow(bed: Bed, label: string, runtime: string, start: (n: Node) => { proc: Proc; ready: Promise<void> }, expect: string,
  after?: (procs: Proc[]) => Promise<Partial<IdleRow>>): Promise<IdleRow> {
  const started = NODES.map(start);
  const procs = started.map((s) => s.proc);
  try {
    await Promise.all(started.map((s) => s.ready));
    for (const p of procs) checkPid(p, expect);
    log(`${label}: ready; idle ${WARMUP_S} + ${SECONDS} s`);
    await sleep(WARMUP_S * 1000);
    const m = await measure(bed.etcd, procs, SECONDS);
    const extra = after ? await after(procs) : {};
    return { label, runtime, ...m, ...extra };
  } finally {
    await Promise.allSettled(procs.map((p) => p.kill()));
    for (const n of NODES) {
      try { bed.ns[n].ip('addr', 'del', `${VIP}/${PREFIX}`, 'dev', 'eth0'); } catch { /* not there */ }
    }
  }
}

/** `count` leader changes n1 → n2 → n1 …, each awaited, then the daemons' RSS once they settled. */
async function soak(key: LeaderKey, procs: Proc[], count: number): Promise<Partial<IdleRow>> {
  log(`soak: ${count} leader changes`);
  const t0 = performance.now();
  for (let i = 1; i <= count; i++) await key.put(NODES[i % 2]!);
  await key.put('n1');
  const soakSeconds = (performance.now() - t0) / 1000;
  await sleep(SOAK_SETTLE_MS);
  for (const p of procs) if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`a daemon died during the soak:\n${p.lines.join('\n')}`);
  return { soakRssMiB: procs.map((p) => rssMiB(p.pid)), soakSeconds };
}

// ---------------------------------------------------------------------------------------------
// Start-up

/** A TCP relay to etcd that reports when the first byte of each new connection arrives. */
class FirstByteRelay {
  private readonly server: net.Server;
  private waiter: ((t: number) => void) | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(target: { host: string; port: number }) {
    this.server = net.createServer((c) => {
      this.sockets.add(c);
      c.once('data', () => { const w = this.waiter; this.waiter = null; w?.(performance.now()); });
      const up = net.connect(target);
      this.sockets.add(up);
      c.pipe(up).pipe(c);
      const drop = (): void => { c.destroy(); up.destroy(); this.sockets.delete(c); this.sockets.delete(up); };
      c.on('error', drop).on('close', drop);
      up.on('error', drop).on('close', drop);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, SW_IP, () => { this.port = (this.server.address() as net.AddressInfo).port; resolve(); });
    });
  }

  firstByte(): Promise<number> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.waiter = null; reject(new Error(`no byte within ${FIRST_BYTE_TIMEOUT_MS} ms`)); }, FIRST_BYTE_TIMEOUT_MS);
      this.waiter = (x) => { clearTimeout(t); resolve(x); };
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/**
 * exec → first byte at the relay, `runs` times. Spawned directly from this process, whose main
 * thread is in the switch namespace, so no `ip netns exec` sits in the path; standing by on br0
 * (the trigger value names no one), so it never touches an address.
 */
async function firstRequest(relay: FirstByteRelay, cmd: string[], runs: number, env?: Record<string, string>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const first = relay.firstByte();
    const t0 = performance.now();
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-2000); });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      out.push((await first) - t0);
    } catch (e) {
      throw new Error(`${cmd.join(' ')}: ${(e as Error).message}; stderr:\n${err}`);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  }
  return out;
}

function versionWall(cmd: string[], runs: number, env?: Record<string, string>): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const t0 = performance.now();
    const r = spawnSync(cmd[0]!, [...cmd.slice(1), '--version'], { encoding: 'utf8', cwd: os.tmpdir(), env: { ...process.env, ...env } });
    const ms = performance.now() - t0;
    if (r.status !== 0 && !(r.stdout + r.stderr).includes('1.0.2')) throw new Error(`${cmd.join(' ')} --version failed (${r.status}): ${r.stderr}`);
    if (i > 0) out.push(ms); // the first run warms the page cache
  }
  return out;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

// ---------------------------------------------------------------------------------------------
// Output

const f1 = (x: number): string => x.toFixed(1);
const f2 = (x: number): string => x.toFixed(x < 1 ? 3 : 2);
const pair = (xs: number[], f: (x: number) => string): string => xs.map(f).join(' / ');

function mdTable(headers: string[], rows: string[][]): string {
  return [`| ${headers.join(' | ')} |`, `|${headers.map(() => ' --- ').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  requireNetnsPrivileges();
  const tmp = mkdtempSync(join(os.tmpdir(), 'vip-bench-idle-'));
  const go = ROWS.has('go') || STARTUP_RUNS > 0 ? goBaseline({ fetch: true, log })! : '';
  const builds = await ourBuilds(tmp);
  const load0 = os.loadavg();
  const lan = createLan(2, [...NODES]);
  let etcd: EtcdServer | undefined;
  const rows: IdleRow[] = [];
  const startup: string[][] = [];
  try {
    lan.sw.ip('addr', 'add', `${SW_IP}/24`, 'dev', 'br0');
    enterNetns(lan.sw);
    etcd = await startEtcd({ host: SW_IP, enableV2: true });
    const kv = etcd.client();
    v2Url = `${etcd.clientUrl}/v2/keys${KEY}`;
    const bed: Bed = { ns: { n1: lan.hosts[0]!.ns, n2: lan.hosts[1]!.ns }, etcd, kv };
    const key = new LeaderKey(kv);

    if (ROWS.has('floor')) {
      const runtimes = new Map<string, string>(builds.map((b) => [b.nodeVersion, b.node]));
      if (runtimes.size === 0) runtimes.set(process.version, process.execPath);
      for (const [version, node] of runtimes) {
        rows.push(await runRow(bed, 'floor: node, one 1 s timer', `Node ${version}`, (n) => startProc(bed.ns[n], n, [node, '-e', FLOOR_SCRIPT], null), FLOOR_SCRIPT));
      }
    }
    if (ROWS.has('go')) {
      await key.set('n1', false);
      rows.push(await runRow(bed, 'vip-manager 1.0.2 (Go, etcd v2 poll)', 'Go', (n) => startProc(bed.ns[n], n, [go,
        `--ip=${VIP}`, `--netmask=${PREFIX}`, '--interface=eth0', `--trigger-key=${KEY}`, `--trigger-value=${n}`,
        '--dcs-type=etcd', `--dcs-endpoints=${etcd!.clientUrl}`, '--interval=1000'], null), 'vip-manager'));
    }
    for (const b of builds.filter((x) => !x.startupOnly)) {
      for (const leased of [true, false]) {
        if (!ROWS.has(leased ? 'ours-lease' : 'ours-nolease')) continue;
        await key.set('n1', leased);
        const label = `vip-manager (this, ${b.label}), ${leased ? 'leased key' : 'no lease'}`;
        rows.push(await runRow(bed, label, `Node ${b.nodeVersion}`, (n) => startProc(bed.ns[n], n, [...b.cmd, ...ourArgs(bed, n)], READY_LINE, b.env),
          b.id === 'package' ? 'vip-manager.mjs' : 'vip-manager.js',
          leased && SOAK > 0 ? (procs) => soak(key, procs, SOAK) : undefined));
      }
    }
    await key.clear();

    if (STARTUP_RUNS > 0) {
      await key.set('n1', false);
      const [host, port] = etcd.clientUrl.replace(/^http:\/\//, '').split(':') as [string, string];
      const relay = new FirstByteRelay({ host, port: Number(port) });
      await relay.listen();
      const via = `http://${SW_IP}:${relay.port}`;
      try {
        const standby = ['--ip', VIP, '--netmask', String(PREFIX), '--interface', 'br0', '--trigger-key', KEY, '--trigger-value', 'nobody',
          '--dcs-type', 'etcd', '--dcs-endpoints', via, '--interval', '1000', ...OUR_ARGS];
        for (const b of builds) {
          log(`start-up: ${b.label}`);
          // One start first: with a compile cache, what a restart finds (the first start writes it).
          await firstRequest(relay, [...b.cmd, ...standby], 1, b.env);
          const first = await firstRequest(relay, [...b.cmd, ...standby], STARTUP_RUNS, b.env);
          const version = versionWall(b.cmd, STARTUP_RUNS, b.env);
          startup.push([`vip-manager (this, ${b.label})`, `Node ${b.nodeVersion}`, f1(median(first)), f1(Math.max(...first)), f1(median(version)), f1(Math.max(...version))]);
        }
        if (go) {
          log('start-up: Go 1.0.2');
          const first = await firstRequest(relay, [go, `--ip=${VIP}`, `--netmask=${PREFIX}`, '--interface=br0', `--trigger-key=${KEY}`, '--trigger-value=nobody',
            '--dcs-type=etcd', `--dcs-endpoints=${via}`, '--interval=1000'], STARTUP_RUNS);
          const version = versionWall([go], STARTUP_RUNS);
          startup.push(['vip-manager 1.0.2 (Go)', 'Go', f1(median(first)), f1(Math.max(...first)), f1(median(version)), f1(Math.max(...version))]);
        }
      } finally {
        await relay.close();
      }
    }
    await key.clear();
  } finally {
    v2Agent.destroy();
    await etcd?.dispose();
    leaveNetns();
    lan.dispose();
    rmSync(tmp, { recursive: true, force: true });
  }
  const load1 = os.loadavg();

  const out: string[] = [];
  out.push(`vip-manager idle benchmark: two daemons, one etcd (${execFileSync('etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.replace('etcd Version: ', '')}), interval 1000, text logs;`,
    `${SECONDS} s window per row after ${WARMUP_S} s idle; kernel ${os.release()}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? '?'});`,
    `load average ${load0.map((x) => x.toFixed(2)).join(' ')} before, ${load1.map((x) => x.toFixed(2)).join(' ')} after${OUR_ARGS.length ? `; extra flags: ${OUR_ARGS.join(' ')}` : ''}`, '');
  out.push(mdTable(['', 'runtime', 'CPU % of a core n1 / n2', 'RSS MiB n1 / n2', 'wake-ups/s n1 / n2', 'threads', 'etcd req/s per daemon', `RSS MiB after ${SOAK} changes`],
    rows.map((r) => [
      r.label, r.runtime, pair(r.cpuPct, f2), pair(r.rssMiB, f1), pair(r.wakeups, f1), pair(r.threads, String),
      `${f2(r.etcdTotal)}${r.etcd.size ? ` (${[...r.etcd].map(([k, v]) => `${k} ${f2(v)}`).join(', ')})` : ''}`,
      r.soakRssMiB ? `${pair(r.soakRssMiB, f1)} (${r.soakSeconds!.toFixed(0)} s)` : '',
    ])));
  out.push('', 'CPU: time on CPU of all threads over the window (schedstat); RSS: VmRSS at its end; wake-ups: voluntary context switches of all threads; etcd: gRPC calls completed',
    '(grpc_server_handled_total) and v2 HTTP requests (etcd_http_received_total) over the window ÷ 2 daemons (keepalive pings are not requests).');
  if (startup.length) {
    out.push('', `start-up, median / max of ${STARTUP_RUNS} (ms): exec → first byte sent to the DCS (a relay in front of etcd stamps it); \`--version\` wall time`, '');
    out.push(mdTable(['', 'runtime', 'exec → first DCS request', 'max', '`--version` wall', 'max'], startup));
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => {
  process.stderr.write(`bench:idle failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
