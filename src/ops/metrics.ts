// Prometheus metrics of one daemon: a private registry (never prom-client's global one, so a
// test or a second instance in the same process cannot collide) holding the runtime's default
// metrics plus vip-manager's own. The daemon calls the small typed API below; it never touches
// prom-client objects directly, so label names and value sets stay fixed in this one file.
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

const MS_PER_SECOND = 1000;
/**
 * Sampling period of the event-loop delay monitor behind the nodejs_eventloop_lag_* metrics.
 * prom-client's default (10 ms) wakes an otherwise idle daemon 100 times a second (about 1 % of
 * a core, measured); at 250 ms it costs nothing visible and still catches a stalled loop.
 */
const EVENT_LOOP_SAMPLE_MS = 250;

export class Metrics {
  readonly registry: Registry;
  private readonly now: () => number;
  private lastAnswerAt: number | null = null;
  private connected = false;
  private leaseDeadline: number | null = null;

  private readonly held: Gauge;
  private readonly transitions: Counter<'direction' | 'cause'>;
  private readonly dcsConnected: Gauge;
  private readonly reaction: Histogram;
  private readonly announcements: Counter;
  private readonly errors: Counter<'component'>;

  constructor(opts: MetricsOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.registry = new Registry();
    const registers = [this.registry];
    if (opts.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    }

    this.held = new Gauge({ name: 'vip_manager_vip_held', help: '1 while this node holds the VIP, else 0.', registers });
    this.transitions = new Counter({
      name: 'vip_manager_transitions_total',
      help: 'VIP acquisitions and releases, by cause.',
      labelNames: ['direction', 'cause'] as const,
      registers,
    });
    this.dcsConnected = new Gauge({ name: 'vip_manager_dcs_connected', help: '1 while the DCS answers, else 0.', registers });

    // Both time-based gauges are computed at scrape time from stored monotonic instants, so a
    // scrape always sees the current age, not the age at the last event.
    const self = this;
    new Gauge({
      name: 'vip_manager_dcs_last_answer_seconds',
      help: 'Seconds since the DCS last answered: 0 while connected (a watch delivers only changes, so silence then means nothing changed), the age of the last answer while unreachable, +Inf before the first answer.',
      registers,
      collect() {
        if (self.lastAnswerAt === null) this.set(Infinity);
        else this.set(self.connected ? 0 : (self.now() - self.lastAnswerAt) / MS_PER_SECOND);
      },
    });
    new Gauge({
      name: 'vip_manager_leader_lease_deadline_seconds',
      help: "Seconds until the leader key's lease could expire as last observed (NaN when the key has no lease).",
      registers,
      collect() {
        this.set(self.leaseDeadline === null ? NaN : (self.leaseDeadline - self.now()) / MS_PER_SECOND);
      },
    });

    this.reaction = new Histogram({
      name: 'vip_manager_reaction_seconds',
      help: 'Time from a trigger-key change being seen to the VIP state being applied.',
      buckets: [...REACTION_BUCKETS_SECONDS],
      registers,
    });
    this.announcements = new Counter({
      name: 'vip_manager_announcements_total',
      help: 'Gratuitous ARP / unsolicited neighbour advertisement packets sent.',
      registers,
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
    this.held.set(0);
    this.dcsConnected.set(0);
  }

  /** The VIP is (or is no longer) held here, as last observed. */
  setHeld(held: boolean): void {
    this.held.set(held ? 1 : 0);
  }

  /** One acquire or release was carried out; `cause` is a short slug such as "leader-changed". */
  transition(direction: TransitionDirection, cause: string): void {
    this.transitions.inc({ direction, cause: CAUSE_PATTERN.test(cause) ? cause : OTHER_CAUSE });
  }

  setDcsConnected(connected: boolean): void {
    this.connected = connected;
    this.dcsConnected.set(connected ? 1 : 0);
  }

  /** The DCS answered; `monotonicMs` is when (performance.now() time base). */
  dcsAnswered(monotonicMs: number): void {
    if (this.lastAnswerAt === null || monotonicMs > this.lastAnswerAt) this.lastAnswerAt = monotonicMs;
  }

  /** True once the DCS has answered at least once: what /readyz reports. */
  hasDcsAnswered(): boolean {
    return this.lastAnswerAt !== null;
  }

  /** The leader key's lease deadline (monotonic ms), or null when there is none. */
  setLeaseDeadline(monotonicMs: number | null): void {
    this.leaseDeadline = monotonicMs;
  }

  /** Key change seen → address applied, in milliseconds. */
  observeReaction(ms: number): void {
    if (Number.isFinite(ms) && ms >= 0) this.reaction.observe(ms / MS_PER_SECOND);
  }

  /** `packets` announcement packets were sent. */
  announced(packets = 1): void {
    if (packets > 0) this.announcements.inc(packets);
  }

  error(component: ErrorComponent): void {
    this.errors.inc({ component });
  }

  /** The text exposition of every metric. */
  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
