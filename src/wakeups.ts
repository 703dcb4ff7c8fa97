// One timer for the daemon's periodic work that can share a wake-up. At idle the daemon's CPU
// cost is almost all per wake-up (V8 and libuv work around each timer), not per job, so two 1 s
// jobs in different phases cost twice what they cost on one wake-up. Each job gives a window:
// not before `earliest`, not after `latest` (monotonic ms); the timer is armed at the earliest
// `latest` of all jobs, and every job whose window has opened runs on that wake-up. A job with
// a loose window (the heartbeat: any time in the next 0.5–1.5 s) then rides on one with a tight
// window (the etcd connection check: at a given moment) instead of waking the process itself.
import { performance } from 'node:perf_hooks';

interface Job {
  earliest: number;
  latest: number;
  run: () => void;
  /** Whether this job keeps the process alive, like a ref'd setTimeout. */
  ref: boolean;
}

export class SharedTimer {
  private readonly jobs = new Map<unknown, Job>();
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;
  /** While the due jobs run: their re-scheduling arms the timer once, after the last of them. */
  private firing = false;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /**
   * Runs `run` once, within [now + earliestMs, now + latestMs]. Scheduling the same `key` again
   * replaces its job. `ref: false` jobs alone do not keep the process alive.
   */
  schedule(key: unknown, earliestMs: number, latestMs: number, run: () => void, ref = true): void {
    const now = this.now();
    this.jobs.set(key, { earliest: now + earliestMs, latest: now + Math.max(earliestMs, latestMs), run, ref });
    this.arm();
  }

  cancel(key: unknown): void {
    if (this.jobs.delete(key)) this.arm();
  }

  private arm(): void {
    if (this.firing) return;
    let at = Infinity;
    let ref = false;
    for (const j of this.jobs.values()) {
      at = Math.min(at, j.latest);
      ref ||= j.ref;
    }
    if (at === Infinity) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.armedFor = Infinity;
      return;
    }
    if (this.timer && at === this.armedFor) {
      if (ref) this.timer.ref(); else this.timer.unref();
      return;
    }
    clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - this.now()));
    if (!ref) this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = this.now();
    const due: Job[] = [];
    for (const [key, j] of this.jobs) {
      if (j.earliest <= now) {
        due.push(j);
        this.jobs.delete(key);
      }
    }
    // Each timer armed costs an allocation and a timer-list insert, and most jobs re-schedule
    // themselves as they run: arming once after all of them is a measurable share of an idle
    // wake-up's work.
    this.firing = true;
    try {
      for (const j of due) {
        try {
          j.run();
        } catch (e) {
          // A job's failure is its own; the others on this wake-up still run.
          queueMicrotask(() => { throw e; });
        }
      }
    } finally {
      this.firing = false;
    }
    this.arm();
  }
}

/** The process's shared timer. */
export const wakeups = new SharedTimer();
