// Test helper: starts etcd-child.js (optionally inside a network namespace), collects the JSON
// lines it prints and waits for matching ones. Always killed by PID on dispose.
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { EtcdSourceOptions } from '../../src/dcs/etcd/source.js';
import type { Netns } from '../harness/netns.js';
import type { ChildBackendOptions, ChildLine } from './etcd-child.js';

const CHILD = fileURLToPath(new URL('./etcd-child.js', import.meta.url));

export class ChildSource {
  readonly lines: Array<ChildLine & { received: number }> = [];
  readonly proc: ChildProcess;
  private stderr = '';
  private waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;

  constructor(opts: EtcdSourceOptions | ChildBackendOptions, ns?: Netns) {
    const args = [CHILD, JSON.stringify(opts)];
    const stdio: ['pipe', 'pipe', 'pipe'] = ['pipe', 'pipe', 'pipe'];
    this.proc = ns ? ns.spawn(process.execPath, args, { stdio }) : spawn(process.execPath, args, { stdio });
    let buf = '';
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (text.trim()) this.lines.push({ ...(JSON.parse(text) as ChildLine), received: performance.now() });
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    this.exited = new Promise((resolve) => this.proc.once('exit', (code) => {
      for (const w of this.waiters.splice(0)) w();
      resolve(code);
    }));
  }

  async waitFor(pred: (l: ChildLine) => boolean, timeoutMs: number, label: string, from = 0): Promise<ChildLine & { received: number }> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.slice(from).find(pred);
      if (hit) return hit;
      const left = deadline - performance.now();
      if (left <= 0 || this.proc.exitCode !== null) {
        throw new Error(`waiting for ${label}: ${left <= 0 ? `timed out after ${timeoutMs} ms` : `child exited (${this.proc.exitCode})`}; last lines:\n${this.lines.slice(-8).map((l) => '  ' + JSON.stringify(l)).join('\n')}\nstderr:\n${this.stderr}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends one command line ("close <subject>") to the child. */
  send(cmd: string): void {
    this.proc.stdin!.write(`${cmd}\n`);
  }

  /** Asks the child to close its source; resolves with the exit code (null on timeout → killed). */
  async close(timeoutMs: number): Promise<{ code: number | null; ms: number }> {
    const start = performance.now();
    this.proc.stdin!.write('close\n');
    let t: NodeJS.Timeout | undefined;
    const code = await Promise.race([this.exited, new Promise<'timeout'>((r) => { t = setTimeout(() => r('timeout'), timeoutMs); })]);
    clearTimeout(t);
    if (code === 'timeout') {
      this.kill();
      return { code: null, ms: performance.now() - start };
    }
    return { code, ms: performance.now() - start };
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.pid) {
      try { process.kill(this.proc.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }

  get stderrText(): string {
    return this.stderr;
  }
}
