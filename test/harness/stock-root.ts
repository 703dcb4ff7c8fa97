// Stock Debian roots for package tests: what a user gets from `debootstrap --variant=minbase`,
// so an install test proves the package brings everything it needs.
//
// Base roots are built once per machine and cached outside the repository
// (/var/cache/vip-manager-tests/debootstrap/<suite>, a `.complete` file marks a finished one);
// concurrent test processes build each suite once, under a lock. Every test gets its own
// overlayfs over the cached root (upper and work dirs in /var/tmp/vmt-root-<pid>-*), so it
// starts stock and leaves the cache untouched, plus /proc, /sys, /dev and /dev/pts, the host's
// resolv.conf and site CAs (the network as the host reaches it), a policy-rc.d that forbids
// starting services, and a persistent apt archive cache so repeated runs do not download the
// same packages again.
//
// Every mount is private (never propagated back to the host's /dev or elsewhere). close(),
// process exit and SIGINT/SIGTERM kill what still runs chrooted in the root, unmount, and remove
// the temp dir only after /proc/self/mounts shows nothing mounted under it. Temp dirs of dead
// test processes are swept the same way at the next start. The mirror is the Debian archive
// named in the host's apt sources.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Netns } from './netns.js';
import { pidAlive } from './pid.js';

export type Suite = 'bookworm' | 'trixie';

/** Base roots and apt downloads, kept between runs (VIP_MANAGER_TEST_CACHE moves them). */
export const CACHE = process.env.VIP_MANAGER_TEST_CACHE ?? '/var/cache/vip-manager-tests';
const TMP_BASE = '/var/tmp';
const TMP_PREFIX = 'vmt-root-';
/** debootstrap --variant=minbase takes about a minute on a fast mirror; a slow CI link more. */
const BUILD_WAIT_MS = 30 * 60_000;
const LOCK_POLL_MS = 1000;

/** The environment of every command in a root: nothing of the test process leaks in. */
export const ROOT_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  DEBIAN_FRONTEND: 'noninteractive',
};

export interface RunOptions {
  /** Added to `baseEnv`. */
  env?: Record<string, string>;
  /** The environment `env` is added to; default ROOT_ENV. */
  baseEnv?: Record<string, string>;
  input?: string | Buffer;
  /** Killed (SIGKILL) after this long; default 10 minutes. */
  timeoutMs?: number;
  /** Run inside this test namespace (`ip netns exec NS chroot DIR …`). */
  netns?: Netns | string;
  /** Working directory inside the root. */
  cwd?: string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The host's settings for reaching the network through its site's proxy (if any), for commands
 * in a root that download (npm): the proxy variables and NODE_EXTRA_CA_CERTS, as set here.
 */
export function hostNetworkEnv(): Record<string, string> {
  const names = ['NODE_EXTRA_CA_CERTS', 'http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY'];
  return Object.fromEntries(names.filter((n) => process.env[n]).map((n) => [n, process.env[n]!]));
}

/** Fails (never skips) when stock roots cannot be made here. */
export function requireStockRootTools(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('this test needs root to build and mount Debian roots (debootstrap, overlayfs, chroot): run the suite as root, as CI does');
  }
  for (const [tool, pkg] of [['/usr/sbin/debootstrap', 'debootstrap'], ['/usr/sbin/chroot', 'coreutils'], ['/usr/bin/flock', 'util-linux'], ['/usr/bin/mount', 'mount']] as const) {
    if (!existsSync(tool)) throw new Error(`this test needs ${tool}: apt-get install ${pkg}`);
  }
}

function sh(cmd: string, args: string[], opts: { input?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input: opts.input, maxBuffer: 256 * 1024 * 1024 });
}

function must(cmd: string, args: string[], what: string): string {
  const r = sh(cmd, args);
  if (r.error) throw new Error(`${what}: cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what}: \`${cmd} ${args.join(' ')}\` failed (${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------
// Mounts

/** Mount points from /proc/self/mounts (octal escapes such as \040 decoded). */
function mountPoints(): string[] {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').filter(Boolean)
    .map((l) => l.split(' ')[1]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

function mountsUnder(dir: string): string[] {
  return mountPoints().filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Unmounts `target`: a few tries (a process may still be leaving it), then lazily. */
function unmount(target: string): void {
  for (let i = 0; i < 5; i++) {
    if (!mountPoints().includes(target)) return;
    if (sh('umount', [target]).status === 0) continue;
    spawnSync('sleep', ['0.2']);
  }
  if (mountPoints().includes(target)) sh('umount', ['--lazy', target]);
}

/**
 * Unmounts everything under `dir` (deepest first), then removes `dir` only if nothing is
 * mounted there any more. Returns false (and leaves `dir`) otherwise: never rm -rf over a mount.
 */
function unmountAllAndRemove(dir: string): boolean {
  for (let pass = 0; pass < 3; pass++) {
    const ms = mountsUnder(dir).sort((a, b) => b.length - a.length);
    if (ms.length === 0) break;
    for (const m of ms) unmount(m);
  }
  const left = mountsUnder(dir);
  if (left.length > 0) {
    process.stderr.write(`stock-root: NOT removing ${dir}: still mounted: ${left.join(', ')}\n`);
    return false;
  }
  // rm(1), not fs.rmSync: an unpacked root has tens of thousands of files, which rmSync takes
  // seconds for. --one-file-system as a second guard against a mount appearing meanwhile.
  const r = sh('rm', ['-rf', '--one-file-system', '--', dir]);
  if (r.status !== 0) process.stderr.write(`stock-root: cannot remove ${dir}: ${r.stderr.trim()}\n`);
  return r.status === 0;
}

/** Mounts, then makes the new mount private so nothing under it propagates to the host. */
function mountPrivate(args: string[], target: string, what: string): void {
  must('mount', [...args, target], what);
  must('mount', ['--make-private', target], `${what} (make private)`);
}

// ---------------------------------------------------------------------------------------------
// Base roots

/**
 * The Debian archive the host's apt uses (deb822 `.sources` first, then sources.list).
 * VIP_MANAGER_TEST_DEBIAN_MIRROR overrides it on hosts whose apt points elsewhere.
 */
export function debianMirror(): string {
  const override = process.env.VIP_MANAGER_TEST_DEBIAN_MIRROR;
  if (override) return override;
  const candidates: Array<{ uri: string; suites: string[]; components: string[] }> = [];
  const dir = '/etc/apt/sources.list.d';
  const sources = existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.sources')).sort() : [];
  for (const name of sources) {
    for (const stanza of readFileSync(join(dir, name), 'utf8').split(/\n\s*\n/)) {
      const field = (k: string) => new RegExp(`^${k}:[ \\t]*(.*)$`, 'im').exec(stanza)?.[1]?.trim() ?? '';
      if (!field('Types').split(/\s+/).includes('deb') || /^(no|false)$/i.test(field('Enabled'))) continue;
      for (const uri of field('URIs').split(/\s+/).filter(Boolean)) {
        candidates.push({ uri, suites: field('Suites').split(/\s+/), components: field('Components').split(/\s+/) });
      }
    }
  }
  for (const file of ['/etc/apt/sources.list', ...(existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.list')).sort().map((n) => join(dir, n)) : [])]) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line);
      if (m) candidates.push({ uri: m[1]!, suites: [m[2]!], components: m[3]!.trim().split(/\s+/) });
    }
  }
  // The main archive carries the plain release suites (bookworm, trixie, stable); the security
  // archive only <suite>-security, and third-party repositories have other components.
  const archive = candidates.find((c) => /^(https?|ftp|file):/.test(c.uri) && c.components.includes('main') && c.suites.some((s) => /^[a-z]+$/.test(s)));
  if (!archive) {
    throw new Error('cannot find a Debian archive (a `deb` source with a plain suite and component main) in /etc/apt/sources.list(.d); set VIP_MANAGER_TEST_DEBIAN_MIRROR to a Debian mirror URL');
  }
  return archive.uri;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Takes `<lock>` (a directory holding the owner's pid); steals it from a dead owner. */
async function withLock<T>(lock: string, what: string, f: () => Promise<T>): Promise<T> {
  const start = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let owner = NaN;
      try { owner = Number(readFileSync(join(lock, 'pid'), 'utf8')); } catch { /* being written or removed */ }
      if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() - start > BUILD_WAIT_MS) throw new Error(`${what}: gave up after ${BUILD_WAIT_MS / 60_000} min waiting for ${lock} (held by pid ${owner})`);
      await sleep(LOCK_POLL_MS);
    }
  }
  try {
    return await f();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function runAsync(cmd: string, args: string[], logFile: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    child.once('error', reject);
    child.once('close', (code) => {
      writeFileSync(logFile, Buffer.concat(chunks));
      resolve(code);
    });
  });
}

/** The cached base root of `suite`, built (once per machine, under a lock) if missing. */
export async function baseRoot(suite: Suite): Promise<string> {
  const base = join(CACHE, 'debootstrap');
  const dir = join(base, suite);
  if (existsSync(join(dir, '.complete'))) return dir;
  mkdirSync(base, { recursive: true });
  return withLock(`${dir}.lock`, `debootstrap ${suite}`, async () => {
    if (existsSync(join(dir, '.complete'))) return dir; // another process built it meanwhile
    // Leftovers of an interrupted build (debootstrap mounts /proc and /sys inside its target).
    for (const stale of [dir, `${dir}.tmp`]) {
      if (existsSync(stale) && !unmountAllAndRemove(stale)) throw new Error(`cannot clear the unfinished root ${stale}: something is still mounted in it`);
    }
    const mirror = debianMirror();
    const log = join(base, `${suite}.log`);
    const code = await runAsync('debootstrap', ['--variant=minbase', suite, `${dir}.tmp`, mirror], log);
    if (code !== 0) {
      const tail = readFileSync(log, 'utf8').trim().split('\n').slice(-15).join('\n');
      unmountAllAndRemove(`${dir}.tmp`);
      throw new Error(`debootstrap --variant=minbase ${suite} from ${mirror} failed (${code}); log ${log}:\n${tail}`);
    }
    if (mountsUnder(`${dir}.tmp`).length > 0) throw new Error(`debootstrap left mounts in ${dir}.tmp: ${mountsUnder(`${dir}.tmp`).join(', ')}`);
    writeFileSync(join(`${dir}.tmp`, '.complete'), `${new Date().toISOString()} ${mirror}\n`);
    renameSync(`${dir}.tmp`, dir);
    return dir;
  });
}

// ---------------------------------------------------------------------------------------------
// Per-test roots

const live = new Set<StockRoot>();

/** Removes the temp dirs of test processes that are gone (a crash or a SIGKILL). */
export function sweepStaleRoots(): void {
  if (!existsSync(TMP_BASE)) return;
  for (const name of readdirSync(TMP_BASE)) {
    const m = new RegExp(`^${TMP_PREFIX}(\\d+)-`).exec(name);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) {
      killChrootedInto(join(TMP_BASE, name, 'merged'));
      unmountAllAndRemove(join(TMP_BASE, name));
    }
  }
}

export class StockRoot {
  /** The merged root, as the host sees it. */
  readonly dir: string;
  private readonly mounts: string[] = [];
  private closed = false;

  private constructor(readonly suite: Suite, private readonly tmp: string, private readonly archives: string) {
    this.dir = join(tmp, 'merged');
  }

  /** @internal use openStockRoot() */
  static mount(suite: Suite, lower: string, archiveCache: string): StockRoot {
    const tmp = mkdtempSync(join(TMP_BASE, `${TMP_PREFIX}${process.pid}-`));
    const root = new StockRoot(suite, tmp, join(CACHE, 'apt-archives', archiveCache));
    live.add(root);
    try {
      root.setUp(lower);
    } catch (e) {
      root.close();
      throw e;
    }
    return root;
  }

  private setUp(lower: string): void {
    for (const d of ['upper', 'work', 'merged']) mkdirSync(join(this.tmp, d));
    const opts = `lowerdir=${lower},upperdir=${join(this.tmp, 'upper')},workdir=${join(this.tmp, 'work')}`;
    // volatile (Linux 5.10+): no syncs to the upper dir. The root is thrown away, and without it
    // unmounting writes back everything apt unpacked (seconds per test).
    let r = sh('mount', ['-t', 'overlay', 'overlay', '-o', `${opts},volatile`, this.dir]);
    if (r.status !== 0) r = sh('mount', ['-t', 'overlay', 'overlay', '-o', opts, this.dir]);
    if (r.status !== 0) throw new Error(`cannot mount an overlayfs over ${lower} (is the overlay module available? modprobe overlay): ${r.stderr.trim()}`);
    this.mounts.push(this.dir);
    must('mount', ['--make-private', this.dir], 'overlay (make private)');
    for (const fs of ['proc', 'sys', 'dev', 'dev/pts']) {
      const target = join(this.dir, fs);
      mkdirSync(target, { recursive: true });
      // Private right after binding, before anything is mounted below it: a bind of the host's
      // shared /dev would otherwise carry the /dev/pts bind back onto the host's /dev/pts.
      mountPrivate(['--bind', `/${fs}`], target, `bind /${fs}`);
      this.mounts.push(target);
    }
    // Downloads survive the test: the cache is per suite, shared by every run.
    mkdirSync(join(this.archives, 'partial'), { recursive: true });
    const target = join(this.dir, 'var/cache/apt/archives');
    mkdirSync(target, { recursive: true });
    mountPrivate(['--bind', this.archives], target, 'bind the apt archive cache');
    this.mounts.push(target);

    // A symlink here (systemd-resolved) would point outside the root; replace it by a copy.
    const resolv = join(this.dir, 'etc/resolv.conf');
    if (existsSync(resolv) || isSymlink(resolv)) unlinkSync(resolv);
    writeFileSync(resolv, readFileSync('/etc/resolv.conf'));
    // The site's own CAs (Debian's place for them), e.g. of a TLS-intercepting proxy the host
    // reaches the package registries through: update-ca-certificates adds them to the root's
    // store once ca-certificates is installed there, as on any machine of that site.
    const siteCas = '/usr/local/share/ca-certificates';
    if (existsSync(siteCas)) {
      for (const n of readdirSync(siteCas).filter((f) => f.endsWith('.crt'))) this.copyIn(join(siteCas, n), join(siteCas, n));
    }
    this.writeFile('/usr/sbin/policy-rc.d', '#!/bin/sh\n# test root: no service may start\nexit 101\n', 0o755);
  }

  /** argv that runs `argv` in this root with a clean environment (for spawn / Daemon `command`). */
  command(argv: string[], env: Record<string, string> = {}, baseEnv: Record<string, string> = ROOT_ENV): string[] {
    const vars = Object.entries({ ...baseEnv, ...env }).map(([k, v]) => `${k}=${v}`);
    return ['/usr/bin/env', '-i', ...vars, '/usr/sbin/chroot', this.dir, ...argv];
  }

  /** Runs `argv` inside the root (as root), optionally in a test namespace. */
  run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    this.assertOpen();
    const inner = opts.cwd ? ['/usr/bin/env', '-C', opts.cwd, ...argv] : argv;
    let cmd = this.command(inner, opts.env, opts.baseEnv);
    if (opts.netns) cmd = ['ip', 'netns', 'exec', typeof opts.netns === 'string' ? opts.netns : opts.netns.name, ...cmd];
    return spawnCollect(cmd, opts);
  }

  /**
   * apt-get inside the root. Roots of one suite share the archive cache, and apt's lock on it
   * fails at once instead of waiting, so concurrent test processes take turns here (`update`
   * only touches the root's own lists and needs no turn).
   */
  apt(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    this.assertOpen();
    // unsafe-io: no fsync per unpacked file; these roots are thrown away.
    const cmd = this.command(['apt-get', '-o', 'Dpkg::Options::=--force-unsafe-io', ...args], opts.env, opts.baseEnv);
    const lock = `${this.archives}.lock`;
    return spawnCollect(args.includes('update') ? cmd : ['/usr/bin/flock', lock, ...cmd], opts);
  }

  /** The host path of `rootPath`, with symlinks resolved inside the root (never onto the host). */
  hostPath(rootPath: string): string {
    this.assertOpen();
    const out = must('/usr/sbin/chroot', [this.dir, '/usr/bin/realpath', '-m', '--', rootPath], `resolve ${rootPath} in the root`).trim();
    return join(this.dir, out);
  }

  /** Copies a host file or directory to `rootPath`, creating parent directories. */
  copyIn(hostPath: string, rootPath: string): void {
    const dest = this.hostPath(rootPath);
    mkdirSync(dirname(dest), { recursive: true });
    cpSync(hostPath, dest, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  }

  readFile(rootPath: string): Buffer {
    return readFileSync(this.hostPath(rootPath));
  }

  writeFile(rootPath: string, content: string | Buffer, mode = 0o644): void {
    const dest = this.hostPath(rootPath);
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, content);
    chmodSync(dest, mode);
  }

  exists(rootPath: string): boolean {
    return existsSync(this.hostPath(rootPath));
  }

  /**
   * Unmounts everything in reverse order and removes the temp dir once /proc/self/mounts shows
   * nothing left under it. Stop processes running in the root first.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    live.delete(this);
    killChrootedInto(this.dir);
    for (const m of [...this.mounts].reverse()) unmount(m);
    unmountAllAndRemove(this.tmp);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`the ${this.suite} root ${this.dir} is closed`);
  }
}

/**
 * SIGKILLs what still runs chrooted into `dir` (only this test started processes there: an
 * apt-get or daemon left by an interrupted test), and waits briefly for them to go, so the
 * unmounts are not busy.
 */
function killChrootedInto(dir: string): void {
  const inside = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readlinkSync(`/proc/${p}/root`) === dir;
    } catch {
      return false; // gone, or a kernel thread
    }
  });
  for (let i = 0; i < 20; i++) {
    const pids = inside();
    if (pids.length === 0) return;
    for (const p of pids) {
      try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ }
    }
    spawnSync('sleep', ['0.1']);
  }
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function spawnCollect(cmd: string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: { PATH: ROOT_ENV.PATH! } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 10 * 60_000);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    if (child.stdin) {
      // A command that exits without reading all its input is its own failure, reported by its
      // exit status: not an uncaught EPIPE in the test process.
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });
}

/** A fresh overlay root of `suite` for one test (or one describe block); close() it after. */
export interface OpenOptions {
  /**
   * The persistent apt archive cache, a name under /var/cache/vip-manager-tests/apt-archives;
   * default: the suite's. A root whose apt runs outside StockRoot.apt() (e.g. inside a script
   * under test) cannot take turns on a shared cache, so it needs one of its own.
   */
  archiveCache?: string;
}

export async function openStockRoot(suite: Suite, opts: OpenOptions = {}): Promise<StockRoot> {
  requireStockRootTools();
  if (live.size === 0) sweepStaleRoots();
  const lower = await baseRoot(suite);
  return StockRoot.mount(suite, lower, opts.archiveCache ?? suite);
}

/** Fails the test with the command's output unless it exited 0. */
export function assertRan(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code ?? r.signal}):\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`);
  return r;
}

function closeAll(): void {
  for (const r of [...live]) r.close();
}

process.once('exit', closeAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    closeAll();
    process.exit(130);
  });
}
