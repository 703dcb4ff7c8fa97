// Prometheus metrics of one daemon: a private registry (never prom-client's global one, so a
// test or a second instance in the same process cannot collide) holding the runtime's default
// metrics plus vip-manager's own. The daemon calls the small typed API below; it never touches
// prom-client objects directly, so label names and value sets stay fixed in this one file.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type TransitionDirection = 'acquire' | 'release';
export type ErrorComponent = 'dcs' | 'kernel' | 'manager' | 'http';

export const ERROR_COMPONENTS: readonly ErrorComponent[] = ['dcs', 'kernel', 'manager', 'http'];

/**
 * Reaction-time buckets in seconds: a watch-driven takeover is expected in the sub-millisecond
 * to few-millisecond range, a polled or API-driven one (Patroni REST, Hetzner) in seconds.
 */
export const REACTION_BUCKETS_SECONDS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/**
 * A transition cause becomes a label value. Labels must stay low-cardinality and must never
 * carry data (an error text could hold a URL with credentials), so only short slug-like names
 * pass; anything else is counted as "other".
 */
const CAUSE_PATTERN = /^[a-z][a-z0-9_-]{0,39}$/;
export const OTHER_CAUSE = 'other';

export interface MetricsOptions {
  version: string;
  dcsType: string;
  managerType: string;
  /** Monotonic milliseconds; performance.now() unless a test injects a clock. */
  now?: () => number;
  /** Collect process_* and nodejs_* metrics (default true). */
  defaultMetrics?: boolean;
}

export type HookLabel = 'on-acquire' | 'on-release';
export type HookResultLabel = 'ok' | 'failed' | 'timeout' | 'error' | 'dropped';
const HOOK_RESULT_LABELS: readonly HookResultLabel[] = ['ok', 'failed', 'timeout', 'error', 'dropped'];
/** Hook durations: a notification takes milliseconds, a script calling an API seconds. */
export const HOOK_BUCKETS_SECONDS: readonly number[] = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const MS_PER_SECOND = 1000;
/**
 * Sampling period of the event-loop delay monitor behind the nodejs_eventloop_lag_* metrics.
 * prom-client's default (10 ms) wakes an otherwise idle daemon 100 times a second (about 1 % of
 * a core, measured); at 250 ms it costs little and still catches a stalled loop.
 */
const EVENT_LOOP_SAMPLE_MS = 250;
/**
 * Even at 250 ms the monitor is 4 of an idle daemon's 5-6 wake-ups a second, for numbers only
 * a scrape reads. So it samples only while someone scrapes: the first scrape starts it, and it
 * stops after this long without one (far above any scrape interval, so a scraped daemon's
 * series never has holes).
 */
const EVENT_LOOP_MONITOR_KEEP_MS = 10 * 60_000;
/**
 * prom-client's own monitor cannot be left out of its default metrics nor stopped: given this
 * resolution (the largest Node accepts, about 24.8 days) its timer never fires, and its gauges
 * are replaced by the on-demand ones below, under the same names and help texts.
 */
const NEVER_MS = 2 ** 31 - 1;
const EVENT_LOOP_GAUGES = [
  ['nodejs_eventloop_lag_seconds', 'Lag of event loop in seconds.', 'lag'],
  ['nodejs_eventloop_lag_min_seconds', 'The minimum recorded event loop delay.', 'min'],
  ['nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.', 'max'],
  ['nodejs_eventloop_lag_mean_seconds', 'The mean of the recorded event loop delays.', 'mean'],
  ['nodejs_eventloop_lag_stddev_seconds', 'The standard deviation of the recorded event loop delays.', 'stddev'],
  ['nodejs_eventloop_lag_p50_seconds', 'The 50th percentile of the recorded event loop delays.', 'p50'],
  ['nodejs_eventloop_lag_p90_seconds', 'The 90th percentile of the recorded event loop delays.', 'p90'],
  ['nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the recorded event loop delays.', 'p99'],
] as const;
type LoopDelayStat = typeof EVENT_LOOP_GAUGES[number][2];
const NS_PER_SECOND = 1e9;

/**
 * The event-loop delay seen by scrapes: `lag` is how long a setImmediate queued now takes to
 * run (as prom-client measures it), the rest summarise the monitor's samples since the last
 * scrape. Right after the monitor (re)started it has no samples yet: that scrape reports its
 * one `lag` sample for them all rather than a histogram's empty-state values.
 */
export class OnDemandLoopDelay {
  private histogram: IntervalHistogram | null = null;
  private stopTimer: NodeJS.Timeout | null = null;
  private pending: Promise<Record<LoopDelayStat, number>> | null = null;

  constructor(private readonly resolutionMs = EVENT_LOOP_SAMPLE_MS, private readonly keepMs = EVENT_LOOP_MONITOR_KEEP_MS) {}

  /** Whether the monitor is sampling now (it starts with the first scrape). */
  get sampling(): boolean {
    return this.histogram !== null;
  }

  /** One scrape's figures; the gauges of one scrape share them. */
  sample(): Promise<Record<LoopDelayStat, number>> {
    this.pending ??= this.take().finally(() => { this.pending = null; });
    return this.pending;
  }

  stop(): void {
    this.histogram?.disable();
    this.histogram = null;
    if (this.stopTimer) clearTimeout(this.stopTimer);
    this.stopTimer = null;
  }

  private async take(): Promise<Record<LoopDelayStat, number>> {
    let h = this.histogram;
    if (h === null) {
      h = this.histogram = monitorEventLoopDelay({ resolution: this.resolutionMs });
      h.enable();
    }
    if (this.stopTimer) clearTimeout(this.stopTimer);
    this.stopTimer = setTimeout(() => this.stop(), this.keepMs).unref();
    const start = process.hrtime.bigint();
    await new Promise<void>((resolve) => setImmediate(resolve));
    const lag = Number(process.hrtime.bigint() - start) / NS_PER_SECOND;
    if (h.count === 0) return { lag, min: lag, max: lag, mean: lag, stddev: 0, p50: lag, p90: lag, p99: lag };
    const out = {
      lag, min: h.min / NS_PER_SECOND, max: h.max / NS_PER_SECOND, mean: h.mean / NS_PER_SECOND, stddev: h.stddev / NS_PER_SECOND,
      p50: h.percentile(50) / NS_PER_SECOND, p90: h.percentile(90) / NS_PER_SECOND, p99: h.percentile(99) / NS_PER_SECOND,
    };
    h.reset();
    return out;
  }
}

/** The label every per-VIP series carries: the entry's name (config key `name`, default its ip). */
const VIP_LABEL = 'vip';

/** What one VIP entry knows for its time-based gauges (computed at scrape time). */
interface VipClock {
  lastAnswerAt: number | null;
  connected: boolean;
  leaseDeadline: number | null;
  conflictCount: () => number;
}

/**
 * The series of one VIP entry: every one carries `vip="<name>"`, so a daemon with five entries
 * has five sets (bounded by the configuration; a reload that removes an entry removes its set).
 */
export class VipMetrics {
  constructor(private readonly m: Metrics, readonly name: string, private readonly clock: VipClock) {}

  /** The VIP is (or is no longer) held here, as last observed. */
  setHeld(held: boolean): void {
    this.m.series.held.set({ vip: this.name }, held ? 1 : 0);
  }

  /** One acquire or release was carried out; `cause` is a short slug such as "key-ours". */
  transition(direction: TransitionDirection, cause: string): void {
    this.m.series.transitions.inc({ vip: this.name, direction, cause: CAUSE_PATTERN.test(cause) ? cause : OTHER_CAUSE });
  }

  setDcsConnected(connected: boolean): void {
    this.clock.connected = connected;
    this.m.series.dcsConnected.set({ vip: this.name }, connected ? 1 : 0);
  }

  /** The DCS answered; `monotonicMs` is when (performance.now() time base). */
  dcsAnswered(monotonicMs: number): void {
    if (this.clock.lastAnswerAt === null || monotonicMs > this.clock.lastAnswerAt) this.clock.lastAnswerAt = monotonicMs;
  }

  /** True once the DCS has answered for this entry at least once. */
  hasDcsAnswered(): boolean {
    return this.clock.lastAnswerAt !== null;
  }

  /** The leader key's lease deadline (monotonic ms), or null when there is none. */
  setLeaseDeadline(monotonicMs: number | null): void {
    this.clock.leaseDeadline = monotonicMs;
  }

  /** Key change seen → address applied, in milliseconds. */
  observeReaction(ms: number): void {
    if (Number.isFinite(ms) && ms >= 0) this.m.series.reaction.observe({ vip: this.name }, ms / MS_PER_SECOND);
  }

  /** `packets` announcement packets were sent. */
  announced(packets = 1): void {
    if (packets > 0) this.m.series.announcements.inc({ vip: this.name }, packets);
  }

  /** Another host claimed the VIP while we held it (one counted claim). */
  addressConflict(): void {
    this.m.series.conflicts.inc({ vip: this.name });
  }

  /** Where vip_manager_address_conflict reads the number of conflicting hosts at scrape time. */
  setConflictSource(count: () => number): void {
    this.clock.conflictCount = count;
  }

  /**
   * The hooks configured for this entry (hooks/runner.ts): their series exist from then on, at 0
   * for every result, so rate() and alerts work before the first run.
   */
  enableHooks(hooks: readonly HookLabel[]): void {
    const { hookRuns, hookDuration } = this.m.hookSeries();
    for (const hook of hooks) {
      for (const result of HOOK_RESULT_LABELS) hookRuns.inc({ vip: this.name, hook, result }, 0);
      hookDuration.zero({ vip: this.name, hook });
    }
  }

  /** One hook run ended; `seconds` is null for one that never ran. */
  hookRun(hook: HookLabel, result: HookResultLabel, seconds: number | null): void {
    const { hookRuns, hookDuration } = this.m.hookSeries();
    hookRuns.inc({ vip: this.name, hook, result });
    if (seconds !== null && Number.isFinite(seconds) && seconds >= 0) hookDuration.observe({ vip: this.name, hook }, seconds);
  }
}

type VipSeries = {
  held: Gauge<'vip'>;
  transitions: Counter<'vip' | 'direction' | 'cause'>;
  dcsConnected: Gauge<'vip'>;
  reaction: Histogram<'vip'>;
  announcements: Counter<'vip'>;
  conflicts: Counter<'vip'>;
};

export class Metrics {
  readonly registry: Registry;
  private readonly now: () => number;
  /** @internal the per-VIP series, written through VipMetrics only. */
  readonly series: VipSeries;
  private readonly vips = new Map<string, { handle: VipMetrics; clock: VipClock }>();
  private readonly errors: Counter<'component'>;
  private hookRuns: Counter<'vip' | 'hook' | 'result'> | null = null;
  private hookDuration: Histogram<'vip' | 'hook'> | null = null;
  /** The monitor behind nodejs_eventloop_lag_*; null without default metrics. */
  readonly loopDelay: OnDemandLoopDelay | null = null;

  constructor(opts: MetricsOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.registry = new Registry();
    const registers = [this.registry];
    if (opts.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: NEVER_MS });
      const loopDelay = this.loopDelay = new OnDemandLoopDelay();
      for (const [name, help, stat] of EVENT_LOOP_GAUGES) {
        this.registry.removeSingleMetric(name);
        new Gauge({ name, help, registers, async collect() { this.set((await loopDelay.sample())[stat]); } });
      }
    }
    const labelNames = [VIP_LABEL] as const;
    const self = this;
    // Gauges computed at scrape time from stored monotonic instants: a scrape always sees the
    // current age, not the age at the last event.
    const perVip = (set: (g: Gauge<'vip'>, vip: string, c: VipClock) => void) => function collect(this: Gauge<'vip'>) {
      // Rebuilt at each scrape: an entry dropped by a reload must not keep its last value.
      this.reset();
      for (const [vip, { clock }] of self.vips) set(this, vip, clock);
    };
    this.series = {
      held: new Gauge({ name: 'vip_manager_vip_held', help: '1 while this node holds the VIP, else 0; one series per VIP entry (label vip: its name).', labelNames, registers }),
      transitions: new Counter({
        name: 'vip_manager_transitions_total',
        help: 'VIP acquisitions and releases, by VIP entry and cause.',
        labelNames: [VIP_LABEL, 'direction', 'cause'] as const,
        registers,
      }),
      dcsConnected: new Gauge({ name: 'vip_manager_dcs_connected', help: "1 while the DCS answers for the VIP entry's key, else 0.", labelNames, registers }),
      reaction: new Histogram({
        name: 'vip_manager_reaction_seconds',
        help: 'Time from a trigger-key change being seen to the VIP state being applied.',
        buckets: [...REACTION_BUCKETS_SECONDS],
        labelNames,
        registers,
      }),
      announcements: new Counter({
        name: 'vip_manager_announcements_total',
        help: 'Gratuitous ARP / unsolicited neighbour advertisement packets sent.',
        labelNames,
        registers,
      }),
      conflicts: new Counter({
        name: 'vip_manager_address_conflicts_total',
        help: 'Claims of the VIP by another host (gratuitous ARP, ARP reply, neighbour advertisement from a foreign MAC) seen while this node held it.',
        labelNames,
        registers,
      }),
    };
    new Gauge({
      name: 'vip_manager_dcs_last_answer_seconds',
      help: 'Seconds since the DCS last answered: 0 while connected (a watch delivers only changes, so silence then means nothing changed), the age of the last answer while unreachable, +Inf before the first answer.',
      labelNames,
      registers,
      collect: perVip((g, vip, c) => g.set({ vip }, c.lastAnswerAt === null ? Infinity : c.connected ? 0 : (self.now() - c.lastAnswerAt) / MS_PER_SECOND)),
    });
    new Gauge({
      name: 'vip_manager_leader_lease_deadline_seconds',
      help: "Seconds until the leader key's lease could expire as last observed (NaN when the key has no lease).",
      labelNames,
      registers,
      collect: perVip((g, vip, c) => g.set({ vip }, c.leaseDeadline === null ? NaN : (c.leaseDeadline - self.now()) / MS_PER_SECOND)),
    });
    new Gauge({
      name: 'vip_manager_address_conflict',
      help: 'Number of other hosts seen claiming the VIP within the last 5 minutes while this node holds it (0 = none).',
      labelNames,
      registers,
      collect: perVip((g, vip, c) => g.set({ vip }, c.conflictCount())),
    });
    this.errors = new Counter({
      name: 'vip_manager_errors_total',
      help: 'Failed interactions, by component.',
      labelNames: ['component'] as const,
      registers,
    });
    // Zero series exist from the start so rate() and alerts work before the first error.
    for (const component of ERROR_COMPONENTS) this.errors.inc({ component }, 0);

    const info = new Gauge({
      name: 'vip_manager_info',
      help: 'Build and configuration facts; always 1.',
      labelNames: ['version', 'dcs_type', 'manager_type'] as const,
      registers,
    });
    info.set({ version: opts.version, dcs_type: opts.dcsType, manager_type: opts.managerType }, 1);
  }

  /** The series of one VIP entry, created (at 0) on first use. */
  vip(name: string): VipMetrics {
    let v = this.vips.get(name);
    if (v === undefined) {
      const clock: VipClock = { lastAnswerAt: null, connected: false, leaseDeadline: null, conflictCount: () => 0 };
      v = { handle: new VipMetrics(this, name, clock), clock };
      this.vips.set(name, v);
      this.series.held.set({ vip: name }, 0);
      this.series.dcsConnected.set({ vip: name }, 0);
      this.series.announcements.inc({ vip: name }, 0);
      this.series.conflicts.inc({ vip: name }, 0);
      this.series.reaction.zero({ vip: name });
    }
    return v.handle;
  }

  /** An entry removed by a reload: its series go with it (a scrape no longer shows them). */
  async dropVip(name: string): Promise<void> {
    if (!this.vips.delete(name)) return;
    // remove() takes a series' exact label set, so each metric is asked which series it has.
    const metrics: Array<Gauge<string> | Counter<string> | Histogram<string> | null> = [...Object.values(this.series), this.hookRuns, this.hookDuration];
    for (const m of metrics) {
      if (m === null) continue;
      const { values } = await m.get();
      for (const { labels } of values) {
        if (labels.vip !== name) continue;
        const { le: _bucket, ...series } = labels as Record<string, string | number>;
        m.remove(series as Record<string, string>);
      }
    }
  }

  /** True once the DCS has answered for every VIP entry: what /readyz reports. */
  hasDcsAnswered(): boolean {
    return this.vips.size > 0 && [...this.vips.values()].every((v) => v.clock.lastAnswerAt !== null);
  }

  error(component: ErrorComponent): void {
    this.errors.inc({ component });
  }

  /** @internal the hook series, registered when the first entry with hooks asks. */
  hookSeries(): { hookRuns: Counter<'vip' | 'hook' | 'result'>; hookDuration: Histogram<'vip' | 'hook'> } {
    this.hookRuns ??= new Counter({
      name: 'vip_manager_hook_runs_total',
      help: 'Hook runs by VIP entry, hook (on-acquire, on-release) and result: ok (exit 0), failed (other exit or a signal), timeout (killed after hook-timeout), error (could not be started), dropped (never run: queue full or stopping).',
      labelNames: [VIP_LABEL, 'hook', 'result'] as const,
      registers: [this.registry],
    });
    this.hookDuration ??= new Histogram({
      name: 'vip_manager_hook_duration_seconds',
      help: 'How long hooks ran, from start to exit, by VIP entry and hook.',
      labelNames: [VIP_LABEL, 'hook'] as const,
      buckets: [...HOOK_BUCKETS_SECONDS],
      registers: [this.registry],
    });
    return { hookRuns: this.hookRuns, hookDuration: this.hookDuration };
  }

  /** The text exposition of every metric. */
  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
