// The one place the daemon starts a child process: the on-acquire / on-release hooks. A hook
// runs after the change is applied and never holds up the reconciler: transitions are queued
// here and run one at a time, in order, per VIP; a slow hook delays only the hooks after it.
// Each hook gets a minimal environment built from an allow-list (never the daemon's secrets),
// no capabilities (capabilities.ts), its own process group (so a timeout kills what it
// started, too), a time limit, and its output in the daemon's log line by line.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import { displayText } from '../dcs/leader-value.js';
import type { Logger } from '../log.js';
import { withholdCapabilitiesFromChildren } from './capabilities.js';

export type HookName = 'on-acquire' | 'on-release';
export type HookEventName = 'acquire' | 'release';
/** How a run ended; the label values of the runs metric (a fixed set). */
export type HookResult = 'ok' | 'failed' | 'timeout' | 'error' | 'dropped';

export interface HookEvent {
  readonly event: HookEventName;
  /** The VIP entry's name (today: its address). */
  readonly name: string;
  readonly ip: string;
  readonly cause: string;
  /** The DCS value behind the transition (null: the key is absent; undefined: not known). */
  readonly value: string | null | undefined;
}

export interface HookQueueOptions {
  readonly commands: Partial<Record<HookEventName, readonly string[]>>;
  readonly timeoutMs: number;
  readonly log: Logger;
  /** Every run's end, for metrics: seconds is null for a run that never started. */
  readonly onResult?: (hook: HookName, result: HookResult, seconds: number | null) => void;
  /** Where PATH and LANG come from (process.env). */
  readonly parentEnv?: NodeJS.ProcessEnv;
  readonly killGraceMs?: number;
  readonly maxQueued?: number;
}

/** After SIGTERM at the timeout, the hook's process group gets this long before SIGKILL. */
export const KILL_GRACE_MS = 1000;
/**
 * Events waiting behind a running hook. A flapping leader key with a hook stuck until its
 * timeout would otherwise grow the queue without bound; beyond this the oldest waiting event
 * is dropped (logged and counted), so the newest, which says the current state, always runs.
 */
export const MAX_QUEUED = 32;
/** Characters of one output line kept in the log; the rest of the line is dropped (said so). */
export const MAX_LINE_CHARS = 1000;
/** Lines per stream and run that reach the log; a chatty hook cannot flood the journal. */
export const MAX_LINES_PER_RUN = 200;
/** After the hook exits, how long its output pipes may stay open (a background child holding them). */
const DRAIN_MS = 250;
/** PATH when the daemon has none: the usual system directories, no current directory. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const hookOf = (event: HookEventName): HookName => (event === 'acquire' ? 'on-acquire' : 'on-release');

/**
 * The hook's whole environment: an allow-list (PATH, LANG) from the daemon's own, plus the
 * event. Nothing else passes: the daemon's environment may hold VIP_ETCD_PASSWORD,
 * VIP_CONSUL_TOKEN, VIP_HCLOUD_TOKEN, credentials from an EnvironmentFile=, NOTIFY_SOCKET.
 */
export function hookEnvironment(ev: HookEvent, parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = { PATH: parent.PATH || DEFAULT_PATH };
  if (parent.LANG) env.LANG = parent.LANG;
  // NUL cannot be in an environment string (execve ends the string there).
  const value = ev.value == null ? '' : displayText(ev.value).replace(/\0/g, '\uFFFD');
  Object.assign(env, { VIP_EVENT: ev.event, VIP_NAME: ev.name, VIP_IP: ev.ip, VIP_CAUSE: ev.cause, VIP_VALUE: value });
  return env;
}

/**
 * Splits a stream into bounded log lines. Control characters other than tab become U+FFFD, so
 * a hook cannot forge what looks like another log line in the text format.
 */
export class LineSplitter {
  private decoder = new StringDecoder('utf8');
  private partial = '';
  private skipping = false;
  private lines = 0;
  dropped = 0;

  constructor(private readonly emit: (line: string, truncated: boolean) => void, private readonly maxChars = MAX_LINE_CHARS, private readonly maxLines = MAX_LINES_PER_RUN) {}

  write(chunk: Buffer): void {
    this.take(this.decoder.write(chunk));
  }

  end(): void {
    this.take(this.decoder.end());
    if (this.partial !== '' && !this.skipping) this.line(this.partial, false);
    this.partial = '';
  }

  private take(text: string): void {
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      const piece = text.slice(start, nl < 0 ? text.length : nl);
      if (!this.skipping) {
        this.partial += piece;
        if (this.partial.length > this.maxChars) {
          this.line(this.partial.slice(0, this.maxChars), true);
          this.partial = '';
          this.skipping = true;
        }
      }
      if (nl < 0) return;
      if (!this.skipping) this.line(this.partial, false);
      this.partial = '';
      this.skipping = false;
      start = nl + 1;
    }
  }

  private line(text: string, truncated: boolean): void {
    const clean = text.replace(/\r$/, '').replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '\uFFFD');
    if (this.lines++ >= this.maxLines) this.dropped++;
    else this.emit(clean, truncated);
  }
}

interface Running {
  readonly hook: HookName;
  readonly pid: number;
  readonly done: Promise<void>;
  kill(signal: NodeJS.Signals): void;
}

/** The hooks of one VIP: a queue run one at a time, in order. */
export class HookQueue {
  private readonly waiting: HookEvent[] = [];
  private running: Running | null = null;
  /** A drain is scheduled or runs: it takes every event pushed meanwhile. */
  private draining = false;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private readonly parentEnv: NodeJS.ProcessEnv;
  private readonly grace: number;
  private readonly max: number;

  constructor(private readonly o: HookQueueOptions) {
    this.parentEnv = o.parentEnv ?? process.env;
    this.grace = o.killGraceMs ?? KILL_GRACE_MS;
    this.max = o.maxQueued ?? MAX_QUEUED;
    // Before the first hook can start, and at start-up, where a failure is seen at once.
    if (this.configured()) withholdCapabilitiesFromChildren();
  }

  configured(): boolean {
    return Object.values(this.o.commands).some((c) => c !== undefined && c.length > 0);
  }

  /** Queues the hook for `ev` (if one is configured) and returns at once. */
  push(ev: HookEvent): void {
    const command = this.o.commands[ev.event];
    if (this.closed || command === undefined || command.length === 0) return;
    if (this.waiting.length >= this.max) {
      const old = this.waiting.shift()!;
      this.o.log.warn({ hook: hookOf(old.event), event: old.event, cause: old.cause, queued: this.max },
        `hook ${hookOf(old.event)} for ${old.event} (${old.cause}) dropped: ${this.max} hooks already wait behind the running one`);
      this.o.onResult?.(hookOf(old.event), 'dropped', null);
    }
    this.waiting.push(ev);
    if (!this.draining) {
      this.draining = true;
      // spawn() holds the event loop until the child has exec'd (about 10 ms measured on a
      // busy 2-core machine): not inside the transition's callback, but after the pass.
      this.idle = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.drain());
    }
  }

  /** Hooks waiting (not counting one that runs). */
  get queued(): number {
    return this.waiting.length;
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.length > 0 && !this.closed) {
        const ev = this.waiting.shift()!;
        const run = this.start(ev, this.o.commands[ev.event]!);
        if (run === null) continue;
        this.running = run;
        await run.done;
        this.running = null;
      }
    } finally {
      this.draining = false;
    }
  }

  private start(ev: HookEvent, command: readonly string[]): Running | null {
    const hook = hookOf(ev.event);
    const log = this.o.log;
    const started = performance.now();
    const [file, ...args] = command;
    let child;
    try {
      child = spawn(file!, args, {
        env: hookEnvironment(ev, this.parentEnv),
        cwd: '/',
        stdio: ['ignore', 'pipe', 'pipe'],
        // setsid(): the hook leads a new process group, which a timeout kills as a whole.
        detached: true,
      });
    } catch (e) {
      log.error({ hook, event: ev.event, err: e }, `hook ${hook} could not be started: ${(e as Error).message}`);
      this.o.onResult?.(hook, 'error', null);
      return null;
    }
    const pid = child.pid;
    let timedOut = false;
    let spawnError: Error | null = null;
    const killGroup = (signal: NodeJS.Signals) => {
      if (pid === undefined) return;
      try {
        process.kill(-pid, signal);
      } catch {
        // ESRCH: the group is gone already.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      log.warn({ hook, event: ev.event, hookPid: pid, timeoutMs: this.o.timeoutMs }, `hook ${hook} (pid ${pid}) still runs after hook-timeout ${this.o.timeoutMs} ms: sending SIGTERM to its process group, SIGKILL in ${this.grace} ms`);
      killGroup('SIGTERM');
      // The whole group, even once the hook itself is gone: what it started dies with it.
      setTimeout(() => killGroup('SIGKILL'), this.grace);
    }, this.o.timeoutMs);
    if (pid !== undefined) {
      log.info({ hook, event: ev.event, cause: ev.cause, hookPid: pid }, `hook ${hook} started (pid ${pid}) for ${ev.event} (${ev.cause})`);
    }
    const outputs = (['stdout', 'stderr'] as const).map((stream) => {
      const splitter = new LineSplitter((line, truncated) => {
        log.info({ hook, stream, hookPid: pid, ...(truncated ? { truncated: true } : {}) }, `${hook}: ${line}${truncated ? ` …(cut at ${MAX_LINE_CHARS} characters)` : ''}`);
      });
      const s = child[stream] as Readable;
      s.on('data', (b: Buffer) => splitter.write(b));
      const closed = new Promise<void>((resolve) => s.once('close', resolve));
      return { stream, splitter, s, closed };
    });
    const done = new Promise<void>((resolve) => {
      let finished = false;
      const finish = async (code: number | null, signal: NodeJS.Signals | null) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        const seconds = (performance.now() - started) / 1000;
        const durationMs = Math.round(seconds * 1000);
        // Output still in the pipes is logged before the exit line; a background process that
        // keeps them open is not waited for.
        await Promise.race([Promise.all(outputs.map((o) => o.closed)), new Promise((r) => setTimeout(r, DRAIN_MS))]);
        for (const o of outputs) {
          o.s.destroy();
          o.splitter.end();
          if (o.splitter.dropped > 0) log.warn({ hook, stream: o.stream, hookPid: pid, droppedLines: o.splitter.dropped }, `hook ${hook}: ${o.splitter.dropped} more ${o.stream} lines not logged (at most ${MAX_LINES_PER_RUN} per run)`);
        }
        // Counted before it is logged: whoever reads the line finds the metric updated.
        if (spawnError !== null) {
          const code = (spawnError as NodeJS.ErrnoException).code;
          this.o.onResult?.(hook, 'error', null);
          log.error({ hook, event: ev.event, result: 'error', errno: code }, `hook ${hook} could not be started: ${spawnError.message}`);
        } else {
          const result: HookResult = timedOut ? 'timeout' : code === 0 ? 'ok' : 'failed';
          const how = signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
          const fields = { hook, event: ev.event, cause: ev.cause, hookPid: pid, status: code, signal, durationMs, result };
          this.o.onResult?.(hook, result, seconds);
          if (result === 'ok') log.info(fields, `hook ${hook} (pid ${pid}) exited with status 0 after ${durationMs} ms`);
          else if (result === 'timeout') log.warn(fields, `hook ${hook} (pid ${pid}) ${how} after ${durationMs} ms: it exceeded hook-timeout ${this.o.timeoutMs} ms`);
          else log.warn(fields, `hook ${hook} (pid ${pid}) ${how} after ${durationMs} ms`);
        }
        resolve();
      };
      // Only a failed spawn (ENOENT, EACCES: the file changed after the config was checked)
      // emits 'error' here: signals go through process.kill, not child.kill.
      child.once('error', (e) => {
        spawnError = e;
        if (pid === undefined) void finish(null, null);
      });
      child.once('exit', (code, signal) => void finish(code, signal));
    });
    return { hook, pid: pid ?? -1, done, kill: killGroup };
  }

  /**
   * Stops taking events and waits up to `waitMs` for the running and waiting hooks (the
   * shutdown release's on-release among them); then kills a hook still running (its group:
   * SIGTERM, SIGKILL after a short grace) and drops those still waiting, saying so.
   */
  async close(waitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => { timer = setTimeout(() => r('late'), waitMs); });
    const settled = await Promise.race([this.allDone(), late]);
    clearTimeout(timer);
    this.closed = true;
    if (settled !== 'late') return;
    const left = this.waiting.splice(0);
    for (const ev of left) this.o.onResult?.(hookOf(ev.event), 'dropped', null);
    const run = this.running;
    if (left.length > 0 || run !== null) {
      this.o.log.warn({ running: run?.hook ?? null, hookPid: run?.pid ?? null, dropped: left.length },
        `stopping: ${run ? `killing hook ${run.hook} (pid ${run.pid})` : 'no hook running'}${left.length > 0 ? `, ${left.length} waiting hook(s) not run` : ''} after waiting ${waitMs} ms`);
    }
    if (run !== null) {
      run.kill('SIGTERM');
      const grace = Math.min(this.grace, 500);
      const killed = await Promise.race([run.done.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), grace))]);
      if (!killed) run.kill('SIGKILL');
      await Promise.race([run.done, new Promise((r) => setTimeout(r, grace))]);
    }
  }

  /** Resolves once nothing runs or waits (events pushed meanwhile included). */
  private async allDone(): Promise<void> {
    while (this.draining) await this.idle;
  }
}
