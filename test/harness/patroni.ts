// The Patroni test bed, shared by test/patroni (smoke), test/e2e (full suite) and
// bench/patroni.ts: a sandbox LAN (a bridge in a "switch" namespace, documentation addresses
// only) with
//   db1..db3   Debian's Patroni 3.0 + PostgreSQL 15 (run as user postgres) + vip-manager,
//   e1..e3     a real three-member etcd cluster (placement 'separate'), or the members living in
//              the db nodes' namespaces (placement 'colocated', the common all-in-one node),
//   client     where the test talks from: psql, patronictl, the writer, etcd clients.
//
//   LAN 203.0.113.0/24: db1 .11  db2 .12  db3 .13  [e1 .14  e2 .15  e3 .16]  client .next
//   VIP 203.0.113.100/24 (in the LAN's subnet, so the client reaches it through the bridge)
//
// Every vip-manager is configured the way an operator would: a YAML file with
// trigger-key /service/<scope>/leader, trigger-value <member name>, dcs-type etcd, the etcd
// endpoints, interface eth0, ip/netmask. With `vipDcs: 'patroni'` each one asks its own node's
// Patroni REST API instead (dcs-type patroni, GET http://<node>:8008/leader, 200 = leader).
//
// Patroni timings (bootstrap.dcs) are short for test speed; what they bound:
//   ttl 10          the leader key's lease: a crashed or cut-off primary's key expires 10 s
//                   after its last renewal, i.e. 8–10 s after the fault (Patroni renews every
//                   loop_wait), so a failover takes ≤ ttl + one HA cycle; a vip-manager under
//                   hold-lease cut off with the VIP must let go within those 10 s.
//   loop_wait 2     the HA cycle: lease renewals every 2 s, so etcd reports a remaining TTL of
//                   8–10 s; replicas react to a deleted key at once (Patroni watches it).
//   retry_timeout 4 how long Patroni retries DCS calls before giving up: a primary cut off from
//                   etcd demotes itself after ~4 s, well before its key expires (10 s).
//   ttl ≥ loop_wait + 2 × retry_timeout, Patroni's rule for a sound lease.
// PostgreSQL: trust authentication inside the sandbox LAN, per-node unix socket dirs and data
// dirs (on /dev/shm) owned by postgres, wal_sender_timeout 3 s (a cut-off primary shuts down at
// once instead of waiting for unreachable walsenders, which in Patroni 3.0.2 lets the next HA
// cycle start a second, concurrent demote: patroni/patroni#3649), watchdog off.
//
// The test process moves itself (its main thread) into the client namespace when a bed is
// created (enterNetns), so sockets it opens (etcd client, PostgreSQL wire client, Patroni REST)
// are inside the LAN; it leaves on dispose. Processes are started through `ip netns exec`.
// Teardown is complete on success, failure and interrupt: every process in the bed's namespaces
// is killed (ip netns pids), the namespaces deleted, the data dirs removed.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Etcd3 } from 'etcd3';
import { stringify } from 'yaml';
import { Daemon, type LogRecord } from './daemon.js';
import { enterNetns, leaveNetns } from './enter-netns.js';
import { startEtcdCluster, type EtcdCluster } from './etcd.js';
import { createLan, requireNetnsPrivileges, type Lan, type LanHost, type Netns } from './netns.js';
import { pgQuery, PgError } from './pgwire.js';

export const VIP = '203.0.113.100';
export const VIP_NETMASK = 24;
export const VIP_CIDR = `${VIP}/${VIP_NETMASK}`;
/**
 * The PostgreSQL server scripts/setup.sh installed: 15 on Debian 12, the distribution's own
 * major elsewhere (17 on Debian 13); the newest when several are there.
 */
function findPgBin(): string {
  const base = '/usr/lib/postgresql';
  const majors = existsSync(base) ? readdirSync(base).filter((d) => /^\d+$/.test(d) && existsSync(`${base}/${d}/bin/postgres`)).map(Number) : [];
  return `${base}/${majors.length > 0 ? Math.max(...majors) : 15}/bin`;
}
export const PG_BIN = findPgBin();
export const PATRONI = '/usr/bin/patroni';
export const PATRONICTL = '/usr/bin/patronictl';
export const DEBIAN_VIP_MANAGER = '/usr/bin/vip-manager';
/** Patroni's default namespace. */
export const NAMESPACE = '/service';

export interface PatroniTimings {
  ttl: number;
  loopWait: number;
  retryTimeout: number;
}
export const DEFAULT_TIMINGS: PatroniTimings = { ttl: 10, loopWait: 2, retryTimeout: 4 };

export type EtcdPlacement = 'separate' | 'colocated';
export type VipManagerKind = 'ours' | 'debian' | 'none';

export interface BedOptions {
  /** etcd members in their own namespaces (default) or inside the db nodes' namespaces. */
  placement?: EtcdPlacement;
  /** Patroni's DCS: etcd3 (v3 API, default) or etcd (v2 API, for Debian's vip-manager 1.0.2). */
  patroniDcs?: 'etcd3' | 'etcd';
  /** Start Patroni and PostgreSQL (default true); false leaves the key to the test (soak). */
  patroni?: boolean;
  vipManager?: VipManagerKind;
  /**
   * Which etcd endpoints each vip-manager gets: all three members (default for 'separate'), or
   * only its nearby member over the namespace's loopback (default for 'colocated').
   */
  vipEndpoints?: 'all' | 'local';
  /** Extra or overriding keys for our vip-manager's YAML file (e.g. dcs-loss). */
  vipConfig?: Record<string, unknown>;
  /**
   * What our vip-managers follow: the leader key in etcd (default), or their own node's
   * Patroni REST API (dcs-type patroni: GET /leader on <node>:8008, trigger-value 200).
   */
  vipDcs?: 'etcd' | 'patroni';
  /** Extra environment for our vip-manager processes (e.g. NODE_OPTIONS for diagnostics). */
  vipEnv?: Record<string, string>;
  timings?: PatroniTimings;
  /** Patroni scope (cluster name); the trigger key is /service/<scope>/leader. */
  scope?: string;
  /** Number of database nodes (default 3). */
  dbNodes?: number;
  /**
   * Patroni's failsafe_mode (bootstrap.dcs; Patroni >= 3.0): a primary that loses the DCS keeps
   * running while every member answers its POST /failsafe. Default off.
   */
  failsafe?: boolean;
  /** Patroni's synchronous_mode (bootstrap.dcs): the leader names its synchronous standby in <scope>/sync. Default off. */
  synchronousMode?: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls an async check until it returns a truthy value; the error says what was awaited. */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
    }
    await sleep(everyMs);
  }
}

/** Keeps every line a child wrote (with arrival time) and hands out the tail for failure messages. */
export class LineLog {
  readonly lines: Array<{ t: number; line: string }> = [];
  attach(child: ChildProcess): void {
    for (const s of [child.stdout, child.stderr]) {
      if (s) createInterface({ input: s }).on('line', (line) => this.lines.push({ t: Date.now(), line }));
    }
  }
  tail(n = 30): string {
    return this.lines.slice(-n).map((l) => l.line).join('\n');
  }
  find(re: RegExp, after = 0): { t: number; line: string } | undefined {
    return this.lines.find((l) => l.t >= after && re.test(l.line));
  }
}

// ---------------------------------------------------------------------------------------------
// Address events, as the kernel reports them: `ip -ts -o monitor address` inside a namespace.

export interface AddressEvent {
  /** Epoch ms (the kernel event as `ip` printed it: the same clock as Date.now()). */
  t: number;
  kind: 'add' | 'del';
  dev: string;
  cidr: string;
}

const MONITOR_LINE = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\]\s+(Deleted\s+)?\d+:\s+(\S+)\s+inet6?\s+(\S+)/;
/** A marker the monitor sees once it is listening (documentation range, on lo). */
const MARKER = '2001:db8:ffff::1/128';

/** Records address adds and deletes in one namespace with the kernel event's timestamp. */
export class AddressMonitor {
  readonly events: AddressEvent[] = [];
  private readonly child: ChildProcess;

  private constructor(readonly ns: Netns) {
    this.child = ns.spawn('ip', ['-ts', '-o', 'monitor', 'address']);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const m = MONITOR_LINE.exec(line);
      if (!m) return;
      // `ip` prints local time without a zone; Date parses such a string as local time too.
      const t = new Date(m[1]!.slice(0, 23)).getTime();
      this.events.push({ t, kind: m[2] ? 'del' : 'add', dev: m[3]!, cidr: m[4]! });
    });
  }

  /** Starts a monitor and returns once it demonstrably receives events. */
  static async start(ns: Netns): Promise<AddressMonitor> {
    const m = new AddressMonitor(ns);
    await waitUntil(`address monitor in ${ns.name}`, () => {
      if (m.events.some((e) => e.cidr === MARKER)) return true;
      try { ns.ip('addr', 'del', MARKER, 'dev', 'lo'); } catch { /* not there yet */ }
      ns.ip('addr', 'add', MARKER, 'dev', 'lo');
      return false;
    }, 5000, 50);
    ns.ip('addr', 'del', MARKER, 'dev', 'lo');
    return m;
  }

  /** Events for `cidr` (default the VIP) at or after `after` (epoch ms). */
  of(cidr = VIP_CIDR, after = 0): AddressEvent[] {
    return this.events.filter((e) => e.cidr === cidr && e.t >= after);
  }

  stop(): void {
    try { this.child.kill('SIGKILL'); } catch { /* gone */ }
  }
}

// ---------------------------------------------------------------------------------------------
// Debian's vip-manager 1.0.2 (the Go original) as a baseline.

export class DebianVipManager {
  readonly child: ChildProcess;
  readonly log = new LineLog();
  constructor(ns: Netns, args: string[]) {
    this.child = ns.spawn(DEBIAN_VIP_MANAGER, args);
    this.log.attach(this.child);
  }
  get pid(): number {
    return this.child.pid!;
  }
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }
  transcript(): string {
    return this.log.tail();
  }
}

// ---------------------------------------------------------------------------------------------

let postgresIds: { uid: number; gid: number } | undefined;
function postgresUser(): { uid: number; gid: number } {
  if (!postgresIds) {
    try {
      postgresIds = {
        uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
        gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
      };
    } catch {
      throw new Error('this test needs the postgres user (apt-get install postgresql-15)');
    }
  }
  return postgresIds;
}

export function requirePatroni(): void {
  requireNetnsPrivileges();
  for (const [f, pkg] of [[PATRONI, 'patroni'], [PATRONICTL, 'patroni'], [`${PG_BIN}/postgres`, 'postgresql'], ['/usr/bin/psql', 'postgresql-client']] as const) {
    if (!existsSync(f)) throw new Error(`this test needs ${f}: apt-get install ${pkg} (scripts/setup.sh installs it)`);
  }
  postgresUser();
}

function pidsIn(ns: Netns): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function uidOf(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^Uid:\s+(\d+)/m.exec(status);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

const liveBaseDirs = new Set<string>();
// Leave the client namespace before anything else runs on exit or interrupt: the namespace
// harness kills every process in a namespace it removes (`ip netns pids`), and a process whose
// main thread sits in the client namespace counts as one of them.
process.prependListener('exit', () => {
  leaveNetns();
  for (const d of liveBaseDirs) rmSync(d, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.prependOnceListener(sig, () => leaveNetns());

export class DbNode {
  patroni: ChildProcess | null = null;
  readonly patroniLog = new LineLog();
  vip: Daemon | DebianVipManager | null = null;
  /** Every vip-manager this node ran (the current one last), for transcripts and checks. */
  readonly vipHistory: Array<Daemon | DebianVipManager> = [];
  readonly dir: string;
  readonly dataDir: string;
  private vipOverrides: Record<string, unknown> = {};
  /** Patroni tags over the bed's defaults (e.g. noloadbalance); applied at the next start or reloadPatroni(). */
  tags: Record<string, unknown> = {};

  constructor(readonly bed: PatroniBed, readonly name: string, readonly host: LanHost) {
    this.dir = join(bed.baseDir, name);
    this.dataDir = join(this.dir, 'data');
    const { uid, gid } = postgresUser();
    mkdirSync(join(this.dir, 'sock'), { recursive: true });
    chownSync(this.dir, uid, gid);
    chownSync(join(this.dir, 'sock'), uid, gid);
  }

  get ns(): Netns {
    return this.host.ns;
  }
  get ip(): string {
    return this.host.ipv4;
  }

  // ---- Patroni ------------------------------------------------------------------------------

  patroniConfig(): Record<string, unknown> {
    const b = this.bed;
    const t = b.timings;
    const hosts = b.etcdHosts.map((h) => `${h.ipv4}:2379`);
    return {
      scope: b.scope,
      namespace: `${NAMESPACE}/`,
      name: this.name,
      log: { level: 'INFO', format: '%(asctime)s %(levelname)s: %(message)s' },
      restapi: { listen: `${this.ip}:8008`, connect_address: `${this.ip}:8008` },
      [b.patroniDcs]: { hosts },
      bootstrap: {
        dcs: {
          ttl: t.ttl,
          loop_wait: t.loopWait,
          retry_timeout: t.retryTimeout,
          ...(b.opts.failsafe ? { failsafe_mode: true } : {}),
          ...(b.opts.synchronousMode ? { synchronous_mode: true } : {}),
          maximum_lag_on_failover: 1048576,
          postgresql: {
            use_pg_rewind: true,
            use_slots: true,
            remove_data_directory_on_rewind_failure: true,
            remove_data_directory_on_diverged_timelines: true,
            parameters: {
              wal_level: 'replica',
              hot_standby: 'on',
              wal_log_hints: 'on',
              max_connections: 50,
              max_wal_senders: 10,
              max_replication_slots: 10,
              wal_keep_size: '64MB',
              // A primary cut off from its replicas shuts down (demotes) quickly instead of
              // waiting up to 60 s for the walsenders: that slow shutdown is what lets Patroni
              // 3.0's next HA cycle start a second demote concurrently (patroni/patroni#3649).
              wal_sender_timeout: '3s',
              wal_receiver_status_interval: '1s',
            },
          },
        },
        initdb: [{ encoding: 'UTF8' }, { locale: 'C' }],
      },
      postgresql: {
        listen: '*:5432',
        connect_address: `${this.ip}:5432`,
        data_dir: this.dataDir,
        bin_dir: PG_BIN,
        pgpass: join(this.dir, 'pgpass'),
        use_unix_socket: true,
        authentication: {
          superuser: { username: 'postgres', password: 'vmt-superuser' },
          replication: { username: 'replicator', password: 'vmt-replicator' },
        },
        // Trust inside the sandbox LAN: the test bed is about the VIP, not about auth.
        pg_hba: [
          'local all all trust',
          'host all all 127.0.0.1/32 trust',
          'host all all 203.0.113.0/24 trust',
          'host replication all 127.0.0.1/32 trust',
          'host replication all 203.0.113.0/24 trust',
        ],
        parameters: {
          unix_socket_directories: join(this.dir, 'sock'),
          shared_buffers: '16MB',
          // Dynamic shared memory as files in the data dir, not /dev/shm/PostgreSQL.*: a
          // SIGKILLed postmaster (the crash test, teardown) leaves its segments behind.
          dynamic_shared_memory_type: 'mmap',
        },
      },
      watchdog: { mode: 'off' },
      tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false, ...this.tags },
    };
  }

  /** Rewrites patroni.yml and sends SIGHUP: Patroni re-reads it (tags included) without a restart. */
  reloadPatroni(): void {
    if (!this.patroni || this.patroni.exitCode !== null || this.patroni.signalCode !== null) throw new Error(`patroni on ${this.name} is not running`);
    this.writePatroniConfig();
    this.patroni.kill('SIGHUP');
  }

  private writePatroniConfig(): string {
    const cfg = join(this.dir, 'patroni.yml');
    writeFileSync(cfg, stringify(this.patroniConfig()));
    const { uid, gid } = postgresUser();
    chownSync(cfg, uid, gid);
    return cfg;
  }

  startPatroni(): void {
    if (this.patroni && this.patroni.exitCode === null && this.patroni.signalCode === null) throw new Error(`patroni on ${this.name} is already running`);
    const cfg = this.writePatroniConfig();
    this.patroni = this.ns.spawn('setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', PATRONI, cfg], {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: this.dir, LANG: 'C.UTF-8', PYTHONUNBUFFERED: '1' },
    });
    this.patroniLog.attach(this.patroni);
  }

  /** Every process of user postgres in this node's namespace: Patroni and all of PostgreSQL. */
  postgresPids(): number[] {
    const { uid } = postgresUser();
    return pidsIn(this.ns).filter((p) => uidOf(p) === uid);
  }

  /** A crash: SIGKILL to Patroni and every PostgreSQL process at once. Returns when they are gone. */
  async crash(): Promise<number> {
    const at = Date.now();
    for (let round = 0; round < 20; round++) {
      const pids = this.postgresPids();
      if (pids.length === 0) return at;
      for (const p of pids) {
        try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
      }
      await sleep(50);
    }
    throw new Error(`postgres processes on ${this.name} survived SIGKILL: ${this.postgresPids().join(' ')}`);
  }

  /**
   * Rebuilds this node as a fresh replica: stops Patroni and PostgreSQL, removes the data dir,
   * starts Patroni, which clones from the leader. The test bed's last resort when a node cannot
   * rejoin by itself (pg_rewind refused, or the Patroni 3.0 double-demote race).
   */
  async reinit(): Promise<void> {
    await this.crash();
    rmSync(this.dataDir, { recursive: true, force: true });
    this.startPatroni();
  }

  // ---- vip-manager --------------------------------------------------------------------------

  /** Our vip-manager's YAML configuration, as an operator would write it. */
  vipConfig(): Record<string, unknown> {
    const b = this.bed;
    const endpoints = b.vipEndpoints === 'local'
      ? ['http://127.0.0.1:2379']
      : b.etcdHosts.map((h) => `http://${h.ipv4}:2379`);
    const source = b.vipDcs === 'patroni'
      // The node's own Patroni: 200 on /leader only while it holds the leader lock.
      ? { 'trigger-key': '/leader', 'trigger-value': 200, 'dcs-type': 'patroni', 'dcs-endpoints': [`http://${this.ip}:8008`] }
      : { 'trigger-key': b.leaderKey, 'trigger-value': this.name, 'dcs-type': 'etcd', 'dcs-endpoints': endpoints };
    const cfg: Record<string, unknown> = {
      ip: VIP,
      netmask: VIP_NETMASK,
      interface: 'eth0',
      ...source,
      ...b.vipConfigBase,
      ...this.vipOverrides,
    };
    // dcs-loss patroni asks the node's own Patroni, which listens on the node's address only.
    if (cfg['dcs-loss'] === 'patroni' && cfg['patroni-api-url'] === undefined) cfg['patroni-api-url'] = `http://${this.ip}:8008`;
    return cfg;
  }

  /** Starts vip-manager (ours or Debian's, as the bed says); `overrides` stick for later restarts. */
  async startVipManager(overrides?: Record<string, unknown>): Promise<Daemon | DebianVipManager> {
    if (this.vip) throw new Error(`vip-manager on ${this.name} is already running`);
    if (overrides) this.vipOverrides = { ...overrides };
    let d: Daemon | DebianVipManager;
    if (this.bed.vipManagerKind === 'debian') {
      const eps = this.bed.etcdHosts.map((h) => `http://${h.ipv4}:2379`).join(',');
      d = new DebianVipManager(this.ns, [
        `--ip=${VIP}`, `--netmask=${VIP_NETMASK}`, '--interface=eth0',
        `--trigger-key=${this.bed.leaderKey}`, `--trigger-value=${this.name}`,
        '--dcs-type=etcd', `--dcs-endpoints=${eps}`,
      ]);
    } else {
      const file = join(this.dir, 'vip-manager.yml');
      writeFileSync(file, stringify(this.vipConfig()));
      const daemon = new Daemon({ ns: this.ns, args: ['--config', file], ...(this.bed.opts.vipEnv ? { env: this.bed.opts.vipEnv } : {}) });
      await daemon.waitForLog((r) => /starting/.test(r.msg), 15_000, `vip-manager on ${this.name} starting`);
      d = daemon;
    }
    this.vip = d;
    this.vipHistory.push(d);
    return d;
  }

  /** Stops vip-manager: SIGKILL (a crash), or SIGTERM and wait for its exit. */
  async stopVipManager(signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const d = this.vip;
    if (!d) return;
    this.vip = null;
    if (signal === 'SIGKILL' || d instanceof DebianVipManager) {
      await d.kill();
    } else {
      d.signal('SIGTERM');
      await d.waitExit(10_000);
    }
  }

  /** Our daemon (throws for the Debian one). */
  get daemon(): Daemon {
    if (!(this.vip instanceof Daemon)) throw new Error(`${this.name} does not run our vip-manager`);
    return this.vip;
  }

  hasVip(): boolean {
    return this.ns.addresses('eth0').includes(VIP_CIDR);
  }

  /** The VIP transitions our daemons on this node logged (all runs), with epoch ms times. */
  transitions(after = 0): LogRecord[] {
    return this.vipHistory.flatMap((d) => (d instanceof Daemon ? d.transitions() : [])).filter((r) => r.time >= after);
  }

  // ---- Patroni REST -------------------------------------------------------------------------

  rest(path: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
    return httpGet(`http://${this.ip}:8008${path}`, timeoutMs);
  }

  transcript(): string {
    const vip = this.vip ?? this.vipHistory.at(-1);
    return `--- ${this.name} patroni:\n${this.patroniLog.tail(25)}\n--- ${this.name} vip-manager:\n${vip?.transcript() ?? '(none)'}`;
  }
}

function httpGet(url: string, timeoutMs: number): Promise<{ status: number; body: string; headers: import('node:http').IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** An etcd3 client whose unary calls carry a 3 s deadline (a cut-off member must not hang a test). */
export function etcdClientFor(hosts: LanHost[]): Etcd3 {
  return new Etcd3({
    hosts: hosts.map((h) => `http://${h.ipv4}:2379`),
    dialTimeout: 2000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 3000 }),
  });
}

export interface ClusterMemberState {
  name: string;
  role: string;
  state: string;
  host: string;
  timeline?: number;
  lag?: number | string;
}

export class PatroniBed {
  readonly lan: Lan;
  readonly nodes: DbNode[] = [];
  readonly client: LanHost;
  readonly etcdHosts: LanHost[];
  etcd!: EtcdCluster;
  readonly baseDir: string;
  readonly timings: PatroniTimings;
  readonly scope: string;
  readonly leaderKey: string;
  readonly patroniDcs: 'etcd3' | 'etcd';
  readonly vipManagerKind: VipManagerKind;
  readonly vipEndpoints: 'all' | 'local';
  readonly vipConfigBase: Record<string, unknown>;
  readonly vipDcs: 'etcd' | 'patroni';
  readonly placement: EtcdPlacement;
  private etcdClient: Etcd3 | undefined;
  private readonly memberClients: Array<Etcd3 | undefined> = [];
  private disposed = false;

  private constructor(readonly opts: BedOptions) {
    requirePatroni();
    this.placement = opts.placement ?? 'separate';
    this.patroniDcs = opts.patroniDcs ?? 'etcd3';
    this.vipManagerKind = opts.vipManager ?? 'ours';
    this.vipEndpoints = opts.vipEndpoints ?? (this.placement === 'colocated' ? 'local' : 'all');
    this.vipConfigBase = opts.vipConfig ?? {};
    this.vipDcs = opts.vipDcs ?? 'etcd';
    this.timings = opts.timings ?? DEFAULT_TIMINGS;
    this.scope = opts.scope ?? 'pg';
    this.leaderKey = `${NAMESPACE}/${this.scope}/leader`;
    if (this.vipManagerKind === 'debian' && !existsSync(DEBIAN_VIP_MANAGER)) {
      throw new Error(`the baseline needs ${DEBIAN_VIP_MANAGER}: apt-get install vip-manager (scripts/setup.sh --bench)`);
    }
    const n = opts.dbNodes ?? 3;
    const dbLabels = Array.from({ length: n }, (_, i) => `db${i + 1}`);
    const labels = this.placement === 'separate' ? [...dbLabels, 'e1', 'e2', 'e3', 'client'] : [...dbLabels, 'client'];
    this.baseDir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'vmt-pg-'));
    liveBaseDirs.add(this.baseDir);
    const { uid, gid } = postgresUser();
    chownSync(this.baseDir, uid, gid);
    this.lan = createLan(labels.length, labels);
    const hosts = this.lan.hosts;
    this.client = hosts[hosts.length - 1]!;
    this.etcdHosts = this.placement === 'separate' ? hosts.slice(n, n + 3) : hosts.slice(0, Math.min(3, n));
    for (let i = 0; i < n; i++) this.nodes.push(new DbNode(this, dbLabels[i]!, hosts[i]!));
  }

  /** Builds the LAN, the etcd cluster, Patroni (bootstrapped, replicas streaming) and the vip-managers. */
  static async create(opts: BedOptions = {}): Promise<PatroniBed> {
    const bed = new PatroniBed(opts);
    try {
      enterNetns(bed.client.ns);
      bed.etcd = await startEtcdCluster(bed.etcdHosts, { enableV2: bed.patroniDcs === 'etcd' });
      if (opts.patroni !== false) {
        // The first node bootstraps alone (no race for the initialize key), the others clone.
        bed.nodes[0]!.startPatroni();
        await bed.waitForLeader(60_000);
        for (const n of bed.nodes.slice(1)) n.startPatroni();
      }
      if (bed.vipManagerKind !== 'none') await Promise.all(bed.nodes.map((n) => n.startVipManager()));
      if (opts.patroni !== false) await bed.waitHealthy(90_000);
    } catch (e) {
      const transcript = bed.transcript();
      await bed.dispose();
      throw new Error(`${(e as Error).message}\n${transcript}`);
    }
    return bed;
  }

  node(name: string): DbNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** An etcd v3 client living in the client namespace (all members; unary calls time out after 3 s). */
  kv(): Etcd3 {
    this.etcdClient ??= etcdClientFor(this.etcdHosts);
    return this.etcdClient;
  }

  /**
   * The leader key's value (v3 or v2 keyspace, as Patroni writes it); null when absent. Asks
   * the members one by one with a linearizable read, so a member cut off from its peers (which
   * cannot serve one) is skipped, never believed.
   */
  async leaderValue(): Promise<string | null> {
    let last: unknown;
    for (const [i, h] of this.etcdHosts.entries()) {
      try {
        if (this.patroniDcs === 'etcd3') {
          this.memberClients[i] ??= etcdClientFor([h]);
          return await this.memberClients[i]!.get(this.leaderKey).string();
        }
        const r = await httpGet(`http://${h.ipv4}:2379/v2/keys${this.leaderKey}?quorum=true`, 2000);
        if (r.status === 404) return null;
        if (r.status !== 200) throw new Error(`etcd v2 GET ${this.leaderKey}: HTTP ${r.status}`);
        return (JSON.parse(r.body) as { node: { value: string } }).node.value;
      } catch (e) {
        last = e;
      }
    }
    throw new Error(`no etcd member answered for ${this.leaderKey}: ${(last as Error | undefined)?.message}`);
  }

  /** Waits until Patroni has a leader that answers 200 on /primary; returns its node. */
  async waitForLeader(timeoutMs = 60_000, not?: DbNode): Promise<DbNode> {
    return waitUntil('a Patroni leader', async () => {
      const v = await this.leaderValue();
      const n = this.nodes.find((x) => x.name === v);
      if (!n || n === not) return undefined;
      const r = await n.rest('/primary');
      return r.status === 200 ? n : undefined;
    }, timeoutMs, 200).catch((e: Error) => { throw new Error(`${e.message}\n${this.transcript()}`); });
  }

  /** Patroni's view of the cluster (GET /cluster on any member that answers). */
  async cluster(): Promise<ClusterMemberState[]> {
    let last: unknown;
    for (const n of this.nodes) {
      try {
        const r = await n.rest('/cluster');
        if (r.status === 200) return (JSON.parse(r.body) as { members: ClusterMemberState[] }).members;
      } catch (e) {
        last = e;
      }
    }
    throw new Error(`no Patroni REST API answered /cluster: ${(last as Error | undefined)?.message}`);
  }

  /** Waits until every node runs: one leader, all others replicas (or, in synchronous mode, sync standbys) that stream from it. */
  async waitHealthy(timeoutMs = 60_000): Promise<DbNode> {
    let last: ClusterMemberState[] = [];
    await waitUntil('a healthy Patroni cluster (one leader, all replicas streaming)', async () => {
      last = await this.cluster();
      if (last.length !== this.nodes.length) return false;
      const leaders = last.filter((m) => m.role === 'leader' && m.state === 'running');
      const replicas = last.filter((m) => (m.role === 'replica' || m.role === 'sync_standby') && (m.state === 'running' || m.state === 'streaming') && typeof m.lag === 'number');
      if (leaders.length !== 1 || replicas.length !== this.nodes.length - 1) return false;
      // Replicas stream (the primary's pg_stat_replication lists them all).
      const res = await pgQuery("select count(*) from pg_stat_replication where state = 'streaming'", { host: this.node(leaders[0]!.name).ip, timeoutMs: 2000 });
      return Number(res.rows[0]?.[0]) === this.nodes.length - 1;
    }, timeoutMs, 300).catch((e: Error) => { throw new Error(`${e.message}; last /cluster: ${JSON.stringify(last)}\n${this.transcript()}`); });
    return this.waitForLeader(10_000);
  }

  /** Nodes rebuilt by heal() so far (for diagnostics). */
  readonly reinits: string[] = [];

  /**
   * After a fault: waits for the cluster to be healthy again; a node that does not rejoin within
   * `graceMs` is rebuilt from the leader (reinit). Returns the leader.
   */
  async heal(graceMs = 30_000): Promise<DbNode> {
    try {
      return await this.waitHealthy(graceMs);
    } catch { /* rebuild whoever does not stream */ }
    const leader = await this.waitForLeader(60_000);
    const res = await pgQuery('select application_name from pg_stat_replication where state = \'streaming\'', { host: leader.ip, timeoutMs: 3000 });
    const streaming = new Set(res.rows.map((r) => r[0]));
    for (const n of this.nodes) {
      if (n === leader || streaming.has(n.name)) continue;
      this.reinits.push(n.name);
      await n.reinit();
    }
    return this.waitHealthy(120_000);
  }

  /** patronictl run in the client namespace with a configuration naming the DCS. */
  patronictl(args: string[], timeoutMs = 60_000): string {
    const cfg = join(this.baseDir, 'patronictl.yml');
    if (!existsSync(cfg)) {
      writeFileSync(cfg, stringify({ scope: this.scope, namespace: `${NAMESPACE}/`, [this.patroniDcs]: { hosts: this.etcdHosts.map((h) => `${h.ipv4}:2379`) } }));
    }
    try {
      return execFileSync('ip', ['netns', 'exec', this.client.ns.name, PATRONICTL, '-c', cfg, ...args], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LANG: 'C.UTF-8' } });
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`patronictl ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
  }

  /** `patronictl switchover` (asynchronous: resolves when patronictl exits). */
  switchoverAsync(from: DbNode, to: DbNode): Promise<string> {
    const cfg = join(this.baseDir, 'patronictl.yml');
    this.patronictl(['list']); // writes the config once, proves the DCS answers
    return new Promise((resolve, reject) => {
      const child = this.client.ns.spawn(PATRONICTL, ['-c', cfg, 'switchover', this.scope, '--leader', from.name, '--candidate', to.name, '--force'], { env: { ...process.env, LANG: 'C.UTF-8' } });
      const out: string[] = [];
      child.stdout?.on('data', (d: Buffer) => out.push(d.toString()));
      child.stderr?.on('data', (d: Buffer) => out.push(d.toString()));
      child.once('exit', (code) => (code === 0 ? resolve(out.join('')) : reject(new Error(`patronictl switchover exited ${code}: ${out.join('')}`))));
    });
  }

  /** `psql -h <host>` from the client namespace (the real client), returning unaligned output. */
  psql(sql: string, host = VIP): string {
    return execFileSync('ip', ['netns', 'exec', this.client.ns.name, 'psql', '-h', host, '-U', 'postgres', '-d', 'postgres', '-XAtqc', sql], {
      encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGCONNECT_TIMEOUT: '3' },
    }).trim();
  }

  /** Nodes whose eth0 carries the VIP right now. */
  vipHolders(): DbNode[] {
    return this.nodes.filter((n) => n.hasVip());
  }

  /** Waits until the VIP is on `node` and nowhere else. */
  async waitVipOn(node: DbNode, timeoutMs = 20_000): Promise<void> {
    await waitUntil(`the VIP on ${node.name} only`, () => {
      const h = this.vipHolders();
      return h.length === 1 && h[0] === node;
    }, timeoutMs, 20).catch((e: Error) => { throw new Error(`${e.message}; holders: ${this.vipHolders().map((n) => n.name).join(',') || 'none'}\n${this.transcript()}`); });
  }

  /** Maps a data_directory reported by PostgreSQL to the node's name. */
  nodeOfDataDir(dataDir: string): string {
    return basename(dirname(dataDir));
  }

  transcript(): string {
    return this.nodes.map((n) => n.transcript()).join('\n');
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.etcdClient?.close();
    for (const c of this.memberClients) c?.close();
    for (const n of this.nodes) {
      for (const d of n.vipHistory) await d.kill().catch(() => undefined);
      n.vip = null;
    }
    // Patroni and PostgreSQL: every process of the namespaces goes (postgres double-forks away
    // from Patroni, so a process group would miss it).
    for (const n of this.nodes) {
      for (const p of pidsIn(n.ns)) {
        try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    await this.etcd?.dispose().catch(() => undefined);
    leaveNetns();
    this.lan.dispose();
    rmSync(this.baseDir, { recursive: true, force: true });
    liveBaseDirs.delete(this.baseDir);
  }
}

// ---------------------------------------------------------------------------------------------
// A writer through the VIP: one fresh connection per insert, one insert at a time.

export interface WriteRecord {
  id: number;
  /** Epoch ms when the attempt started and when it was acknowledged (or failed). */
  t0: number;
  t1: number;
  ok: boolean;
  /** The node that acknowledged the write (from its data_directory). */
  node?: string;
  inRecovery?: boolean;
  error?: string;
}

export const WRITES_TABLE = 'vmt_writes';

export async function createWritesTable(bed: PatroniBed): Promise<void> {
  await pgQuery(`create table if not exists ${WRITES_TABLE} (id bigint primary key, node text not null, at timestamptz not null default clock_timestamp())`, { host: VIP, timeoutMs: 5000 });
}

export class Writer {
  readonly records: WriteRecord[] = [];
  private running = false;
  private loop: Promise<void> | undefined;
  private nextId: number;

  constructor(private readonly bed: PatroniBed, private readonly intervalMs = 20, firstId = Date.now() * 10) {
    this.nextId = firstId;
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const id = this.nextId++;
        const t0 = Date.now();
        try {
          const r = await pgQuery(`insert into ${WRITES_TABLE} (id, node) values (${id}, current_setting('data_directory')) returning node, pg_is_in_recovery()`, { host: VIP, timeoutMs: 2000, connectTimeoutMs: 300 });
          const row = r.rows[0]!;
          this.records.push({ id, t0, t1: Date.now(), ok: true, node: this.bed.nodeOfDataDir(row[0]!), inRecovery: row[1] === 't' });
        } catch (e) {
          this.records.push({ id, t0, t1: Date.now(), ok: false, error: e instanceof PgError ? `${e.code} ${e.message}` : String(e) });
        }
        await sleep(this.intervalMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  acknowledged(): WriteRecord[] {
    return this.records.filter((r) => r.ok);
  }

  /** First acknowledged write on `node` that started at or after `after`. */
  firstOn(node: string, after = 0): WriteRecord | undefined {
    return this.records.find((r) => r.ok && r.node === node && r.t0 >= after);
  }

  /** The sequence of nodes that acknowledged writes, with consecutive repeats collapsed. */
  nodeSequence(): string[] {
    const seq: string[] = [];
    for (const r of this.acknowledged()) if (seq.at(-1) !== r.node) seq.push(r.node!);
    return seq;
  }

  /** Waits until at least `n` writes were acknowledged after `after`. */
  async waitAcks(n: number, after: number, timeoutMs = 20_000): Promise<void> {
    await waitUntil(`${n} acknowledged writes`, () => this.records.filter((r) => r.ok && r.t0 >= after).length >= n, timeoutMs, 20);
  }
}

/** Ids present in the writes table of the primary reachable through the VIP. */
export async function writtenIds(): Promise<Set<string>> {
  const r = await pgQuery(`select id from ${WRITES_TABLE}`, { host: VIP, timeoutMs: 5000 });
  return new Set(r.rows.map((row) => row[0]!));
}

/** median / p90 / max of a list of numbers. */
export function summarize(xs: number[]): { n: number; median: number; p90: number; max: number; min: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
  return { n: s.length, median: s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2, p90: q(0.9), max: s.at(-1)!, min: s[0]! };
}

// ---------------------------------------------------------------------------------------------
// The leader key as etcd reports it: a watch from the test process (v3), or a v2 long poll.

export interface KeyEvent {
  /** Epoch ms the event reached the test process. */
  t: number;
  kind: 'put' | 'del';
  value: string | null;
}

export class LeaderKeyWatch {
  readonly events: KeyEvent[] = [];
  private stopFn: () => void = () => undefined;

  private constructor(readonly bed: PatroniBed) {}

  static async start(bed: PatroniBed): Promise<LeaderKeyWatch> {
    const w = new LeaderKeyWatch(bed);
    if (bed.patroniDcs === 'etcd3') {
      const watcher = await bed.kv().watch().key(bed.leaderKey).create();
      watcher.on('put', (kv) => w.events.push({ t: Date.now(), kind: 'put', value: kv.value.toString('utf8') }));
      watcher.on('delete', () => w.events.push({ t: Date.now(), kind: 'del', value: null }));
      w.stopFn = () => void watcher.cancel().catch(() => undefined);
    } else {
      w.pollV2();
    }
    return w;
  }

  /** v2: GET ?wait=true&waitIndex=N, one event per answer, from every member in turn on errors. */
  private pollV2(): void {
    let running = true;
    this.stopFn = () => { running = false; };
    const hosts = this.bed.etcdHosts;
    void (async () => {
      let index: number | undefined;
      let h = 0;
      while (running) {
        const base = `http://${hosts[h % hosts.length]!.ipv4}:2379/v2/keys${this.bed.leaderKey}`;
        try {
          if (index === undefined) {
            // Watch from the store's current index + 1 (X-Etcd-Index), whether the key exists or not.
            const r = await httpGet(base, 2000);
            index = Number(r.headers['x-etcd-index']) + 1;
            if (!Number.isFinite(index)) throw new Error('no X-Etcd-Index');
            continue;
          }
          const r = await httpGet(`${base}?wait=true&waitIndex=${index}`, 60_000);
          if (!running) break;
          const t = Date.now();
          const body = JSON.parse(r.body) as { action: string; node: { value?: string; modifiedIndex: number }; errorCode?: number; index?: number };
          if (body.errorCode !== undefined) { index = undefined; continue; } // 401: index cleared from history
          const del = ['delete', 'expire', 'compareAndDelete'].includes(body.action);
          this.events.push({ t, kind: del ? 'del' : 'put', value: del ? null : body.node.value ?? null });
          index = body.node.modifiedIndex + 1;
        } catch {
          h++;
          await sleep(100);
        }
      }
    })();
  }

  /** The first event after `after` matching `pred`. */
  find(after: number, pred: (e: KeyEvent) => boolean): KeyEvent | undefined {
    return this.events.find((e) => e.t >= after && pred(e));
  }

  stop(): void {
    this.stopFn();
  }
}

// ---------------------------------------------------------------------------------------------
// A readable timeline of one scenario, for test diagnostics and failure messages.

export interface TimelineSources {
  bed: PatroniBed;
  monitors?: Map<DbNode, AddressMonitor>;
  writer?: Writer;
  keys?: LeaderKeyWatch;
  /** Extra marks, e.g. the fault itself. */
  marks?: Array<{ t: number; what: string }>;
}

const PATRONI_HIGHLIGHTS = /continue to run as a leader because failsafe|promoted self|Demoting self|demoting self|acquired session lock|Leader key released|manual failover: demoting|following new leader|Lock owner: .*; I am .*|DCS is not accessible/;

export function timeline(t0: number, s: TimelineSources, until = Date.now()): string[] {
  const ev: Array<{ t: number; what: string }> = [...(s.marks ?? [])];
  for (const k of s.keys?.events ?? []) if (k.t >= t0) ev.push({ t: k.t, what: `etcd: leader key ${k.kind === 'put' ? `= ${JSON.stringify(k.value)}` : 'deleted'}` });
  for (const [n, m] of s.monitors ?? []) for (const e of m.of(VIP_CIDR, t0)) ev.push({ t: e.t, what: `${n.name}: kernel ${e.kind === 'add' ? 'added' : 'removed'} the VIP` });
  for (const n of s.bed.nodes) {
    for (const r of n.transitions(t0)) ev.push({ t: r.time, what: `${n.name}: vip-manager ${r.transition} (${r.cause})` });
    for (const d of n.vipHistory) {
      if (d instanceof Daemon) for (const r of d.logs) if (r.time >= t0 && r.level >= 40) ev.push({ t: r.time, what: `${n.name}: vip-manager ${r.level >= 50 ? 'ERROR' : 'WARN'} ${r.msg}${r.reason ? ` (${String(r.reason)})` : ''}` });
    }
    let lastLine = '';
    for (const l of n.patroniLog.lines) {
      if (l.t < t0 || !PATRONI_HIGHLIGHTS.test(l.line)) continue;
      const text = l.line.replace(/^\S+ \S+ /, '').slice(0, 110);
      if (text === lastLine) continue;
      lastLine = text;
      ev.push({ t: l.t, what: `${n.name}: patroni ${text}` });
    }
  }
  if (s.writer) {
    let last = '';
    for (const r of s.writer.records) {
      if (r.t0 < t0) continue;
      const st = r.ok ? `ok on ${r.node}` : `failed: ${(r.error ?? '').slice(0, 70)}`;
      if (st !== last) ev.push({ t: r.t0, what: `writer: ${st}` });
      last = st;
    }
  }
  return ev.filter((e) => e.t <= until).sort((a, b) => a.t - b.t).map((e) => `${String(e.t - t0).padStart(7)} ms  ${e.what}`);
}
