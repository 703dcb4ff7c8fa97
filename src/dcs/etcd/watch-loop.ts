// The state machine every etcd source runs, for one key (source.ts) or for every key under a
// prefix (prefix-source.ts), on a connection it may share with others (connection.ts). The
// subclass says what to read and watch and turns answers into views; retries, sessions, the
// outage bookkeeping and the silent-connection hook are here, once.
//
// State machine (one "session" = one read plus the watch that follows it):
//
//   idle ──start()──▶ reading ──get ok──▶ watching ──watch/lease failure──▶ reading (at once,
//                       │  ▲                 │                               if the watch had been
//               get fails  │ timer           │ events → value views          confirmed for
//                       ▼  │                 │ (key: lease TTL → deadline)   STABLE_WATCH_MS)
//                     backoff ◀──────────────┘ (otherwise: create failed, never confirmed, or
//                                                 broke right after confirmation)
//   any ──close()──▶ closed
//
//   reading:  one linearizable, require-leader Range. Success emits a value view (the outage,
//             if any, ends) and opens a watch from header revision + 1, so no change between
//             the read and the watch can be missed.
//   watching: watch events emit value views in order (per watch response only the last state
//             is emitted: consumers keep only the latest view anyway).
//   failure:  any error (stream error/end, cancel by etcd, compaction, no leader, token
//             invalidated, lease query failure, get failure) emits an `unreachable` view
//             (since = first failure after the last success, failures = count) and discards
//             the watch. The first re-read after a stable watch is immediate (a compaction or
//             an expired token is fixed by re-reading at once) and restarts the backoff; every
//             later attempt waits on it: `retry-num` retries `retry-after` apart, then growing
//             ×1.6 to BACKOFF_MAX_DELAY_MS, with jitter. It never gives up.
//   silence:  the connection (connection.ts) checks a silent member for every source at once;
//             while watching, a source offers it a key to probe and a failure bound to its
//             session.
//   Every async callback carries the session number it belongs to; late answers of an
//   abandoned session are dropped, so views are never emitted out of order.
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../log.js';
import { Backoff } from '../../backoff.js';
import type { EtcdConnection, WatchingProbe } from './connection.js';
import { describeEtcdError, EtcdSourceError } from './errors.js';
import type { RangeResponse } from './gateway.js';
import { KeyWatch, type KeyEvent, type WatchSubject } from './watch-stream.js';

/**
 * A watch confirmed at least this long ago counts as a healthy session: when it breaks, the
 * backoff starts over and the key is re-read at once. A watch that breaks sooner keeps the
 * backoff growing, so a member that cancels every watch right away is not hammered.
 */
export const STABLE_WATCH_MS = 1000;

/** Retry pacing (the retry-after and retry-num settings). */
export interface RetryOptions {
  /** ms between the first retries (retry-after). */
  retryAfter: number;
  /** Retries at `retryAfter` before the delay grows (retry-num). */
  retryNum: number;
}

/** The DCS has not answered since `since`; `last` is the last value view (LeaderUnreachable, KeySetUnreachable). */
export interface UnreachableOf<V> {
  readonly kind: 'unreachable';
  readonly since: number;
  readonly error: Error;
  readonly failures: number;
  readonly last: V | null;
}

type State =
  | { readonly name: 'idle' }
  | { readonly name: 'reading'; readonly session: number }
  | { readonly name: 'watching'; readonly session: number; readonly watch: KeyWatch; confirmedAt: number | null }
  | { readonly name: 'backoff'; readonly session: number; readonly timer: NodeJS.Timeout }
  | { readonly name: 'closed' };

/** What a subclass watches, for the log and the error messages. */
export interface SubjectLabel {
  /** The watch subject: a key, or { prefix }. */
  readonly subject: WatchSubject;
  /** "leader key", "prefix": what the log lines say ("etcd: leader key unreachable"). */
  readonly noun: string;
  /** Fields every log line of this source carries ({ key } or { prefix }). */
  readonly fields: Readonly<Record<string, string>>;
  /** A key the silent-connection check may read (count only): the key, or the prefix itself. */
  readonly probeKey: string;
  /** The key named in permission and watch errors. */
  readonly errorKey: string;
}

export abstract class EtcdWatchLoop<V extends { readonly kind: 'value' }> {
  private readonly backoff: Backoff;
  private state: State = { name: 'idle' };
  /** The current session; bumped by every read, failure and close. */
  protected session = 0;
  private onView: (view: V | UnreachableOf<V>) => void = () => undefined;
  /** The last value view emitted (the `last` of unreachable views). */
  protected lastValue: V | null = null;
  private outage: { readonly since: number; failures: number } | null = null;
  private lastFailureReason: string | undefined;
  private readonly unregister: () => void;
  private readonly probeKey: Buffer;

  protected constructor(
    protected readonly conn: EtcdConnection,
    retry: RetryOptions,
    protected readonly log: Logger,
    protected readonly label: SubjectLabel,
    /** Whether close() closes the connection too (a source built alone, not by a backend). */
    private readonly ownsConnection: boolean,
  ) {
    this.backoff = new Backoff({ initialMs: retry.retryAfter, flatRetries: retry.retryNum });
    this.probeKey = Buffer.from(label.probeKey);
    this.unregister = conn.register({ watchingProbe: () => this.watchingProbe() });
  }

  /** The endpoint calls currently go to (the member that last answered), for status and logs. */
  get endpoint(): string | undefined {
    return this.conn.endpoint;
  }

  /** The linearizable Range of this subject (the first read of each session). */
  protected abstract range(): Promise<RangeResponse>;
  /** Turns the read into a value view (and emits it: always, it starts a session). May throw: a failure. */
  protected abstract applyRead(res: RangeResponse, sentAt: number): void;
  /** Turns one watch response into a value view (emitted if it changed anything). May throw: a failure. */
  protected abstract applyEvents(events: KeyEvent[], receivedAt: number): void;
  /** The log line at start(). */
  protected abstract startLog(): void;
  /** The watch is open (lease tracking starts here). */
  protected onWatchOpened(): void {}
  /** The session ended by failure or close (lease tracking stops here). */
  protected onSessionEnded(): void {}

  start(onView: (view: V | UnreachableOf<V>) => void): void {
    if (this.state.name !== 'idle') throw new Error(`etcd source for ${this.label.errorKey}: start() called in state ${this.state.name}`);
    this.onView = onView;
    this.startLog();
    this.read();
  }

  async close(): Promise<void> {
    const prev = this.state;
    if (prev.name === 'closed') return;
    this.state = { name: 'closed' };
    this.session++;
    this.onSessionEnded();
    this.unregister();
    if (prev.name === 'backoff') clearTimeout(prev.timer);
    if (prev.name === 'watching') await prev.watch.close();
    if (this.ownsConnection) this.conn.close();
    this.log.debug(this.label.fields, 'etcd: closed');
  }

  // ---- reading ----------------------------------------------------------------------------

  private read(): void {
    const session = ++this.session;
    this.state = { name: 'reading', session };
    const sentAt = performance.now();
    this.range()
      .then((res) => {
        if (session !== this.session) return;
        this.applyRead(res, sentAt);
        if (session !== this.session) return; // the consumer closed us
        this.startWatch(session, (BigInt(res.header.revision) + 1n).toString());
      })
      .catch((e: unknown) => this.fail(session, e));
  }

  // ---- watching ---------------------------------------------------------------------------

  private startWatch(session: number, fromRevision: string): void {
    const watch = new KeyWatch(this.conn.gateway, this.label.subject, fromRevision, {
      onConnected: () => {
        if (session !== this.session || this.state.name !== 'watching') return;
        this.state.confirmedAt = performance.now();
        this.log.debug({ ...this.label.fields, fromRevision, endpoint: this.conn.endpoint }, `etcd: watching ${this.label.noun}`);
      },
      onEvents: (events, receivedAt) => {
        if (session !== this.session) return;
        try {
          this.applyEvents(events, receivedAt);
        } catch (e) {
          this.fail(session, e);
        }
      },
      onFailure: (e) => this.fail(session, e),
    });
    this.state = { name: 'watching', session, watch, confirmedAt: null };
    this.onWatchOpened();
  }

  private watchingProbe(): WatchingProbe | null {
    const state = this.state;
    if (state.name !== 'watching') return null;
    const session = state.session;
    return { key: this.probeKey, fail: (e) => this.fail(session, e) };
  }

  // ---- views --------------------------------------------------------------------------------

  /**
   * Ends the outage, if any, with a log line; true if there was one (the caller then emits
   * even an unchanged value: the consumer must learn the DCS answers again).
   */
  protected endOutage(detail: Record<string, unknown>): boolean {
    const outage = this.outage;
    if (!outage) return false;
    this.log.info({ ...this.label.fields, ...detail, outageMs: Math.round(performance.now() - outage.since), failures: outage.failures }, 'etcd: reachable again');
    this.outage = null;
    return true;
  }

  /** Records and hands a value view to the consumer. */
  protected publish(view: V): void {
    this.lastValue = view;
    this.deliver(view);
  }

  /** A throwing consumer is a bug there, not an etcd failure: log it, never let it reach fail(). */
  private deliver(view: V | UnreachableOf<V>): void {
    try {
      this.onView(view);
    } catch (e) {
      this.log.error({ ...this.label.fields, err: e }, 'etcd: the view consumer threw');
    }
  }

  /** Whether `session` is the current one and still reading or watching. */
  protected isCurrent(session: number): boolean {
    return session === this.session && (this.state.name === 'reading' || this.state.name === 'watching');
  }

  /** Whether the current session is watching. */
  protected get watching(): boolean {
    return this.state.name === 'watching';
  }

  // ---- failure ------------------------------------------------------------------------------

  protected fail(session: number, e: unknown): void {
    if (session !== this.session) return;
    const state = this.state;
    if (state.name === 'closed' || state.name === 'idle' || state.name === 'backoff') return;
    const error: EtcdSourceError = describeEtcdError(e, { endpoints: this.conn.opts.endpoints, user: this.conn.opts.user, key: this.label.errorKey });
    const now = performance.now();
    const outage = (this.outage ??= { since: now, failures: 0 });
    outage.failures++;
    this.onSessionEnded();
    const wasStableWatch = state.name === 'watching' && state.confirmedAt !== null && now - state.confirmedAt >= STABLE_WATCH_MS;
    if (state.name === 'watching') void state.watch.close();
    // Bump the session: late callbacks of the failed one are ignored from here on.
    const next = ++this.session;
    // Warn on the first failure and whenever the cause changes; repeats go to debug.
    const fresh = outage.failures === 1 || error.reason !== this.lastFailureReason;
    this.lastFailureReason = error.reason;
    (fresh ? this.log.warn : this.log.debug).call(this.log, { ...this.label.fields, reason: error.reason, failures: outage.failures, err: error.message }, `etcd: ${this.label.noun} unreachable`);
    this.deliver({ kind: 'unreachable', since: outage.since, error, failures: outage.failures, last: this.lastValue });
    if ((this.state as State).name === 'closed') return; // closed by the consumer
    if (wasStableWatch) {
      this.backoff.reset();
      this.read();
      return;
    }
    const delay = this.backoff.next();
    const timer = setTimeout(() => {
      if (this.state.name === 'backoff' && this.state.session === next) this.read();
    }, delay);
    this.state = { name: 'backoff', session: next, timer };
  }
}
