// Runs the real vip-manager executable inside a test namespace, with JSON logs parsed as they
// arrive, so tests can wait for what the daemon says it did and check the kernel for what it
// really did. Optionally unprivileged: user nobody with only CAP_NET_ADMIN and CAP_NET_RAW.
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, afterEach } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Netns } from './netns.js';

export const BIN = fileURLToPath(new URL('../../../bin/vip-manager.js', import.meta.url));

/** A Node runtime warning on stderr, e.g. "(node:4711) [DEP0123] DeprecationWarning: …". */
export const isRuntimeWarning = (line: string): boolean => /^\(node:\d+\) (\[\w+\] )?\w*Warning: /.test(line);

/**
 * Runtime warnings any daemon printed since the last check. Operators see them in the journal,
 * so none may creep in: the test during which one appears fails (one after the last test fails
 * the file). Registered only under the test runner: the bench imports this file too.
 */
const runtimeWarnings: string[] = [];
export function failOnRuntimeWarnings(): void {
  if (runtimeWarnings.length > 0) throw new Error(`vip-manager printed a Node runtime warning on stderr:\n${runtimeWarnings.splice(0).join('\n')}`);
}
if (process.env.NODE_TEST_CONTEXT !== undefined) {
  afterEach(failOnRuntimeWarnings);
  after(failOnRuntimeWarnings);
}

export interface LogRecord {
  level: number;
  time: number;
  msg: string;
  transition?: 'acquire' | 'release' | 'announce';
  cause?: string;
  [k: string]: unknown;
}

/** The line the daemon logs once its first DCS answer is applied (READY=1 follows it). */
export const isReadyLine = (r: LogRecord): boolean => r.msg.startsWith('ready:');

export interface DaemonOptions {
  ns: Netns;
  /** Flags for vip-manager; `--log-format json` is added. */
  args: string[];
  env?: Record<string, string>;
  /** Run as user nobody holding only CAP_NET_ADMIN and CAP_NET_RAW (ambient). */
  unprivileged?: boolean;
  /**
   * With `unprivileged`: the capabilities kept (setpriv names, e.g. 'net_admin'), instead of
   * net_admin and net_raw; [] for none.
   */
  caps?: readonly string[];
  /**
   * The executable and its leading arguments, instead of `node bin/vip-manager.js` (e.g. an
   * installed package: `StockRoot.command(['/usr/bin/vip-manager'])`).
   */
  command?: string[];
}

export class Daemon {
  readonly child: ChildProcess;
  readonly logs: LogRecord[] = [];
  /** Lines that were not JSON (e.g. config errors on stderr), kept for failure messages. */
  readonly rawLines: string[] = [];
  private waiters: Array<{ pred: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }> = [];
  private exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly opts: DaemonOptions) {
    const [node, ...pre] = opts.command ?? [process.execPath, BIN];
    const args = [...pre, ...opts.args, '--log-format', 'json'];
    const env = { ...cleanEnv(), ...opts.env };
    this.child = opts.unprivileged
      ? opts.ns.spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', ...setprivCaps(opts.caps ?? ['net_admin', 'net_raw']), node!, ...args], { env })
      : opts.ns.spawn(node!, args, { env });
    createInterface({ input: this.child.stderr! }).on('line', (line) => this.onLine(line));
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.rawLines.push(line));
    this.exit = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  private onLine(line: string): void {
    let rec: LogRecord;
    try {
      rec = JSON.parse(line) as LogRecord;
    } catch {
      this.rawLines.push(line);
      if (isRuntimeWarning(line)) runtimeWarnings.push(line);
      return;
    }
    this.logs.push(rec);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(rec)) return true;
      w.resolve(rec);
      return false;
    });
  }

  /** Resolves with the first log record (already seen or future) matching `pred`. */
  waitForLog(pred: (r: LogRecord) => boolean, timeoutMs = 10_000, what = 'a log line'): Promise<LogRecord> {
    const seen = this.logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; daemon said:\n${this.transcript()}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (r) => { clearTimeout(timer); resolve(r); } });
    });
  }

  /**
   * Waits for the daemon's "ready:" line (its first DCS answer applied); fails at once, with
   * what it said, if it exits before.
   */
  async waitReady(timeoutMs = 15_000): Promise<LogRecord> {
    let onExit: (() => void) | undefined;
    const exited = new Promise<never>((_, reject) => {
      onExit = () => reject(new Error(`vip-manager exited (${this.child.exitCode ?? this.child.signalCode}) before it was ready:\n${this.transcript()}`));
      this.child.once('exit', onExit);
    });
    try {
      return await Promise.race([this.waitForLog(isReadyLine, timeoutMs, 'the first DCS answer'), exited]);
    } finally {
      this.child.off('exit', onExit!);
    }
  }

  /** Waits for the next transition of `direction` after `after` (a log count). */
  waitForTransition(direction: 'acquire' | 'release' | 'announce', after = 0, timeoutMs = 10_000): Promise<LogRecord> {
    return this.waitForLog((r) => r.transition === direction && this.logs.indexOf(r) >= after, timeoutMs, `transition ${direction}`);
  }

  transitions(): LogRecord[] {
    return this.logs.filter((r) => r.transition !== undefined);
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  async waitExit(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`daemon did not exit within ${timeoutMs} ms; it said:\n${this.transcript()}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exit, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops it for good (SIGKILL) unless it already exited. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exit;
  }

  transcript(): string {
    return [...this.logs.map((r) => `${r.level} ${r.msg}`), ...this.rawLines].slice(-40).join('\n');
  }
}

/** setpriv flags that hand exactly `caps` across the change to user nobody (ambient). */
function setprivCaps(caps: readonly string[]): string[] {
  if (caps.length === 0) return ['--inh-caps=-all'];
  const list = caps.map((c) => `+${c}`).join(',');
  return [`--inh-caps=${list}`, `--ambient-caps=${list}`];
}

/** The test's own VIP_* variables must not leak into the daemon. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VIP_')));
}

/** Polls until `check` is true; the failure message says what was awaited. */
export async function eventually(what: string, check: () => boolean, timeoutMs = 5000, everyMs = 10): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return performance.now() - start;
}

/** Whether `cidr` (exactly) is on `dev` in `ns`. */
export function hasVip(ns: Netns, cidr: string, dev = 'eth0'): boolean {
  return ns.addresses(dev).includes(cidr);
}
