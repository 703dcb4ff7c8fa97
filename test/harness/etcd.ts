// Real etcd servers for tests: Debian's /usr/bin/etcd (3.4) on free loopback ports with a temp
// data dir, or a 3-member cluster inside network namespaces (one member per LAN host). Every
// process started here is killed by PID and every data dir removed on dispose, on process exit
// and on SIGINT/SIGTERM. Tests that need etcd FAIL (never skip) when it cannot run.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { LanHost } from './netns.js';
import type { TestPki } from './tls.js';

const ETCD = '/usr/bin/etcd';
const ETCDCTL = '/usr/bin/etcdctl';
/** etcd 3.4 is ready in well under a second on loopback; a loaded 2-core CI box needs more. */
const READY_TIMEOUT_MS = 20_000;
const READY_POLL_MS = 100;
const STDERR_TAIL_LINES = 15;

const liveProcs = new Set<ChildProcess>();
const liveDirs = new Set<string>();

function cleanupAllSync(): void {
  for (const p of liveProcs) {
    try { if (p.pid) process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  liveProcs.clear();
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  liveDirs.clear();
}
process.once('exit', cleanupAllSync);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    cleanupAllSync();
    process.exit(130);
  });
}

export function requireEtcd(): void {
  if (!existsSync(ETCD) || !existsSync(ETCDCTL)) {
    throw new Error(`this test needs ${ETCD} and ${ETCDCTL}: apt-get install etcd-server etcd-client`);
  }
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, release it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Data dirs on tmpfs when available: etcd fsyncs every write, and disks make bursts slow. */
function makeDataDir(): string {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, 'vmt-etcd-'));
  liveDirs.add(dir);
  return dir;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Keeps the last lines of a child's stderr for error messages. */
class Tail {
  private lines: string[] = [];
  feed(chunk: Buffer): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (this.lines.length > STDERR_TAIL_LINES) this.lines = this.lines.slice(-STDERR_TAIL_LINES);
  }
  text(): string {
    return this.lines.join('\n');
  }
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      try { if (child.pid) process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

function httpGet(url: string, tls: TlsFiles | undefined, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const opts = { method: 'GET', timeout: timeoutMs };
    const done = (res: import('node:http').IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const req = u.protocol === 'https:'
      ? httpsRequest(u, { ...opts, ...(tls ? readTls(tls) : {}) }, done)
      : httpRequest(u, opts, done);
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function readTls(t: TlsFiles): { ca: Buffer; cert: Buffer; key: Buffer } {
  return { ca: readFileSync(t.ca), cert: readFileSync(t.cert), key: readFileSync(t.key) };
}

/** Runs etcdctl (optionally inside a namespace) and returns stdout; errors carry stderr. */
export function etcdctl(args: string[], opts: { ns?: string; endpoints: string; user?: string; tls?: TlsFiles; timeoutMs?: number }): Promise<string> {
  const full = ['--endpoints', opts.endpoints, '--dial-timeout', '2s', '--command-timeout', '5s'];
  if (opts.user) full.push('--user', opts.user);
  if (opts.tls) full.push('--cacert', opts.tls.ca, '--cert', opts.tls.cert, '--key', opts.tls.key);
  full.push(...args);
  const [cmd, argv] = opts.ns ? ['ip', ['netns', 'exec', opts.ns, ETCDCTL, ...full]] : [ETCDCTL, full];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { encoding: 'utf8', timeout: opts.timeoutMs ?? 15_000, env: { ...process.env, ETCDCTL_API: '3' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`etcdctl ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

export interface EtcdAuth {
  user: string;
  password: string;
  /** The key prefix the user's role may read (default `/`). */
  prefix?: string;
}

export interface StartEtcdOptions {
  /** Enables auth: a root user (random password, used by the admin client) and `user` with read access to `prefix`. */
  auth?: EtcdAuth;
  /** Serves clients over TLS with the PKI's server certificate. */
  tls?: TestPki;
  /** With tls: require a client certificate signed by the PKI's CA. */
  clientCertAuth?: boolean;
  enableV2?: boolean;
  /** Reuse a data dir (it is then not removed on dispose). */
  dataDir?: string;
  /** Extra etcd flags. */
  extraArgs?: string[];
  /**
   * Address clients reach etcd at (default 127.0.0.1). Anything else must exist in the
   * namespace the test process is in (see enter-netns.ts), e.g. a bridge address on a test LAN.
   */
  host?: string;
}

export interface EtcdServer {
  /** Client URLs for the code under test. */
  readonly endpoints: string[];
  readonly clientUrl: string;
  readonly dataDir: string;
  /** PID of the running etcd (changes on restart); 0 while stopped. */
  readonly pid: number;
  /** The root (admin) password when auth is on. */
  readonly rootPassword: string | undefined;
  /** Stops etcd with `signal` (SIGTERM) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>;
  /** Starts etcd again (same ports, same data dir) and waits until it serves. */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: etcd stays connected but answers nothing (a silent peer). */
  pause(): void;
  resume(): void;
  /** Compacts history up to the current revision; returns that revision. */
  compact(): Promise<string>;
  /** An admin client (root when auth is on; client cert when TLS); closed on dispose. */
  client(): Etcd3;
  /** etcd's Prometheus metrics text (GET /metrics). */
  metrics(): Promise<string>;
  /** The last lines etcd wrote to stderr. */
  stderrTail(): string;
  dispose(): Promise<void>;
}

async function waitReady(url: string, tls: TlsFiles | undefined, child: ChildProcess, tail: Tail): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}) before serving ${url}; stderr tail:\n${tail.text()}`);
    }
    try {
      const r = await httpGet(`${url}/health`, tls);
      if (r.status === 200 && r.body.includes('"true"')) return;
      last = `HTTP ${r.status} ${r.body}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(READY_POLL_MS);
  }
  throw new Error(`etcd at ${url} not healthy within ${READY_TIMEOUT_MS} ms (last: ${last}); stderr tail:\n${tail.text()}`);
}

/** Starts a single-member etcd on free loopback ports and waits until it is healthy. */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  requireEtcd();
  const host = opts.host ?? '127.0.0.1';
  const [clientPort, peerPort] = [await freePort(host), await freePort()];
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? makeDataDir();
  const scheme = opts.tls ? 'https' : 'http';
  const clientUrl = `${scheme}://${host}:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const tlsFiles: TlsFiles | undefined = opts.tls
    ? { ca: opts.tls.ca, cert: opts.tls.clientCert, key: opts.tls.clientKey }
    : undefined;
  const name = `vmt${clientPort}`;
  const args = [
    '--name', name, '--data-dir', join(dataDir, 'member'),
    '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `${name}=${peerUrl}`,
    '--log-level', 'warn', '--logger', 'zap',
  ];
  if (opts.enableV2) args.push('--enable-v2=true');
  if (opts.tls) {
    args.push('--cert-file', opts.tls.serverCert, '--key-file', opts.tls.serverKey);
    // etcd 3.4 refuses clients without a certificate once --trusted-ca-file is set, so server
    // TLS alone (the original's cacert test) leaves it out.
    if (opts.clientCertAuth) args.push('--trusted-ca-file', opts.tls.ca, '--client-cert-auth');
  }
  args.push(...(opts.extraArgs ?? []));

  let child: ChildProcess | undefined;
  let tail = new Tail();
  let admin: Etcd3 | undefined;
  const rootPassword = opts.auth ? `root-${Math.random().toString(36).slice(2)}` : undefined;

  const launch = async () => {
    tail = new Tail();
    const c = spawn(ETCD, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    liveProcs.add(c);
    c.once('exit', () => liveProcs.delete(c));
    c.stderr?.on('data', (d: Buffer) => tail.feed(d));
    child = c;
    await waitReady(clientUrl, tlsFiles, c, tail);
  };

  const server: EtcdServer = {
    endpoints: [clientUrl],
    clientUrl,
    dataDir,
    get pid() {
      return child && child.exitCode === null && child.signalCode === null ? child.pid ?? 0 : 0;
    },
    rootPassword,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!child) return;
      const c = child;
      try { if (c.pid) process.kill(c.pid, signal); } catch { /* gone */ }
      await waitExit(c, 10_000);
    },
    async kill() {
      await server.stop('SIGKILL');
    },
    async restart() {
      await server.stop();
      await launch();
    },
    pause() {
      if (child?.pid) process.kill(child.pid, 'SIGSTOP');
    },
    resume() {
      if (child?.pid) process.kill(child.pid, 'SIGCONT');
    },
    async compact() {
      const c = server.client();
      const res = await c.kv.range({ key: Buffer.from('\0') });
      await c.kv.compact({ revision: res.header.revision, physical: true });
      return res.header.revision;
    },
    client() {
      admin ??= new Etcd3({
        hosts: [clientUrl],
        ...(tlsFiles ? { credentials: { rootCertificate: readFileSync(tlsFiles.ca), certChain: readFileSync(tlsFiles.cert), privateKey: readFileSync(tlsFiles.key) } } : {}),
        ...(rootPassword ? { auth: { username: 'root', password: rootPassword } } : {}),
      });
      return admin;
    },
    async metrics() {
      const r = await httpGet(`${clientUrl}/metrics`, tlsFiles);
      if (r.status !== 200) throw new Error(`GET ${clientUrl}/metrics: HTTP ${r.status}`);
      return r.body;
    },
    stderrTail: () => tail.text(),
    async dispose() {
      admin?.close();
      admin = undefined;
      await server.kill();
      if (ownDir) {
        rmSync(dataDir, { recursive: true, force: true });
        liveDirs.delete(dataDir);
      }
    },
  };

  try {
    await launch();
    if (opts.auth) await enableAuth(clientUrl, tlsFiles, rootPassword!, opts.auth);
  } catch (e) {
    await server.dispose();
    throw e;
  }
  return server;
}

async function enableAuth(endpoints: string, tls: TlsFiles | undefined, rootPassword: string, auth: EtcdAuth): Promise<void> {
  const ctl = (args: string[]) => etcdctl(args, { endpoints, ...(tls ? { tls } : {}) });
  await ctl(['user', 'add', `root:${rootPassword}`]);
  await ctl(['role', 'add', 'vip-reader']);
  await ctl(['role', 'grant-permission', '--prefix=true', 'vip-reader', 'read', auth.prefix ?? '/']);
  await ctl(['user', 'add', `${auth.user}:${auth.password}`]);
  await ctl(['user', 'grant-role', auth.user, 'vip-reader']);
  // etcdctl grants root the root role itself when `auth enable` first refuses.
  await ctl(['auth', 'enable']);
}

// ---------------------------------------------------------------------------------------------
// A 3-member cluster inside network namespaces.

export interface ClusterMember {
  readonly host: LanHost;
  readonly name: string;
  /** http://<host ipv4>:2379, reachable from inside the LAN namespaces only. */
  readonly clientUrl: string;
  readonly pid: number;
  /** SIGKILL this member and wait for it to exit. */
  kill(): Promise<void>;
  /** Stops this member with `signal` (SIGTERM) and waits for it to exit; its data dir stays. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Starts this (stopped) member again on its data dir. Does not wait: a lone member of a
   * three-member cluster serves only once a peer is back (use EtcdCluster.waitHealthy).
   */
  start(): void;
  /** etcdctl run inside this member's namespace against `endpoints` (default: this member). */
  etcdctl(args: string[], endpoints?: string): Promise<string>;
  stderrTail(): string;
}

export interface EtcdCluster {
  readonly members: ClusterMember[];
  /** All members' client URLs, comma-separated (etcdctl's --endpoints form). */
  readonly endpoints: string;
  /** The name of the current leader as seen from `from` (via etcdctl endpoint status). */
  leaderName(from?: ClusterMember): Promise<string>;
  /** Waits until every member reports healthy (it has a leader and serves a quorum read). */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Stops every member (`signal`, default SIGTERM), then starts them all again and waits until healthy. */
  restartAll(signal?: NodeJS.Signals): Promise<void>;
  dispose(): Promise<void>;
}

export interface EtcdClusterOptions {
  /** Also serve etcd's v2 API (`--enable-v2=true`), e.g. for Patroni's `etcd` DCS or Debian's vip-manager 1.0.2. */
  enableV2?: boolean;
  /** Extra etcd flags for every member. */
  extraArgs?: string[];
}

const CLUSTER_CLIENT_PORT = 2379;
const CLUSTER_PEER_PORT = 2380;

/**
 * One etcd member per LAN host, each listening on its host's 203.0.113.x address (and on the
 * namespace's own 127.0.0.1 for clients), forming one cluster over the LAN bridge.
 */
export async function startEtcdCluster(hosts: LanHost[], opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  requireEtcd();
  const names = hosts.map((_, i) => `m${i + 1}`);
  const initialCluster = hosts.map((h, i) => `${names[i]}=http://${h.ipv4}:${CLUSTER_PEER_PORT}`).join(',');
  const procs: { child: ChildProcess; tail: Tail; dir: string }[] = [];
  const members: ClusterMember[] = [];
  const endpoints = hosts.map((h) => `http://${h.ipv4}:${CLUSTER_CLIENT_PORT}`).join(',');

  const dispose = async () => {
    for (const p of procs) {
      try { if (p.child.pid) process.kill(p.child.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await Promise.all(procs.map((p) => waitExit(p.child, 5000)));
    for (const p of procs) {
      rmSync(p.dir, { recursive: true, force: true });
      liveDirs.delete(p.dir);
    }
  };

  /** Starts member i (on its existing data dir when restarted: etcd then ignores the initial-cluster flags). */
  const launch = (i: number, dir: string, tail: Tail): ChildProcess => {
    const h = hosts[i]!;
    const clientUrl = `http://${h.ipv4}:${CLUSTER_CLIENT_PORT}`;
    const peerUrl = `http://${h.ipv4}:${CLUSTER_PEER_PORT}`;
    const child = spawn('ip', ['netns', 'exec', h.ns.name, ETCD,
      '--name', names[i]!, '--data-dir', join(dir, 'member'),
      '--listen-client-urls', `${clientUrl},http://127.0.0.1:${CLUSTER_CLIENT_PORT}`,
      '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', initialCluster, '--initial-cluster-state', 'new',
      '--initial-cluster-token', `vmt-${process.pid}`,
      '--log-level', 'warn', '--logger', 'zap',
      ...(opts.enableV2 ? ['--enable-v2=true'] : []),
      ...(opts.extraArgs ?? []),
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    // `ip netns exec` execs etcd in place, so this PID is etcd's.
    liveProcs.add(child);
    child.once('exit', () => liveProcs.delete(child));
    child.stderr?.on('data', (d: Buffer) => tail.feed(d));
    return child;
  };

  const waitHealthy = async (timeoutMs = READY_TIMEOUT_MS) => {
    const deadline = Date.now() + timeoutMs;
    for (const m of members) {
      let last = '';
      for (;;) {
        const p = procs[members.indexOf(m)]!;
        if (p.child.exitCode !== null) throw new Error(`etcd member ${m.name} exited; stderr tail:\n${p.tail.text()}`);
        try {
          await m.etcdctl(['endpoint', 'health']);
          break;
        } catch (e) {
          last = (e as Error).message;
        }
        if (Date.now() > deadline) throw new Error(`etcd member ${m.name} not healthy within ${timeoutMs} ms (${last}); stderr tail:\n${p.tail.text()}`);
        await sleep(200);
      }
    }
  };

  try {
    hosts.forEach((h, i) => {
      const name = names[i]!;
      const dir = makeDataDir();
      const clientUrl = `http://${h.ipv4}:${CLUSTER_CLIENT_PORT}`;
      const tail = new Tail();
      const p = { child: launch(i, dir, tail), tail, dir };
      procs.push(p);
      members.push({
        host: h,
        name,
        clientUrl,
        get pid() { return p.child.exitCode === null && p.child.signalCode === null ? p.child.pid ?? 0 : 0; },
        async kill() {
          try { if (p.child.pid) process.kill(p.child.pid, 'SIGKILL'); } catch { /* gone */ }
          await waitExit(p.child, 5000);
        },
        async stop(signal: NodeJS.Signals = 'SIGTERM') {
          try { if (p.child.pid) process.kill(p.child.pid, signal); } catch { /* gone */ }
          await waitExit(p.child, 10_000);
        },
        start() {
          if (p.child.exitCode === null && p.child.signalCode === null) throw new Error(`etcd member ${name} is still running`);
          p.child = launch(i, dir, tail);
        },
        etcdctl: (args, eps) => etcdctl(args, { ns: h.ns.name, endpoints: eps ?? clientUrl }),
        stderrTail: () => tail.text(),
      });
    });
    await waitHealthy();
  } catch (e) {
    await dispose();
    throw e;
  }

  return {
    members,
    endpoints,
    async leaderName(from = members[0]!) {
      const out = await from.etcdctl(['endpoint', 'status', '-w', 'json'], endpoints);
      const st = JSON.parse(out) as Array<{ Endpoint: string; Status: { header: { member_id: number }; leader: number } }>;
      const leaderId = st[0]?.Status.leader;
      const idx = st.findIndex((s) => s.Status.header.member_id === leaderId);
      return idx >= 0 ? names[hosts.findIndex((h) => st[idx]!.Endpoint.includes(h.ipv4))] ?? '?' : '?';
    },
    waitHealthy,
    async restartAll(signal: NodeJS.Signals = 'SIGTERM') {
      await Promise.all(members.map((m) => m.stop(signal)));
      for (const m of members) m.start();
      await waitHealthy();
    },
    dispose,
  };
}
