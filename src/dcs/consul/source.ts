// The Consul leader source: watches the trigger key with blocking queries on /v1/kv/<key>
// (consistent reads) and reports its value. A change arrives the moment Consul answers; unlike
// the Go original, nothing sleeps `interval` after an answer. The index rules, the rate limit
// and the timeouts follow Consul's blocking-query documentation (see consul-index.ts and
// consul-timing.ts).
//
// A parked blocking query learns nothing about leadership: Consul verifies it only when a pass
// of its loop starts, so an agent that lost its servers answers at wait + jitter with the old
// value, and one cut off silently never answers. So while a query is parked, a leader check (a
// non-blocking ?consistent read of the same key) runs every `interval`: if it fails or does not
// answer within its deadline, the outage is reported at once and the parked query abandoned; if
// it sees another value than the parked query waits on, or an index that went backwards
// (a snapshot restore answers parked queries with the pre-restore state), the watch restarts.
//
// No lease deadline: Patroni binds its leader key in Consul to a session with a TTL, but
// neither the key nor the session says when the session was last renewed, and Consul may
// invalidate it anywhere between TTL and 2×TTL after that renewal. Having seen the key at time
// t only proves the session was alive at t, not that it will be a moment later, so there is no
// sound deadline to hold a VIP to (providesLeaseDeadline = false).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../log.js';
import { Backoff } from '../../backoff.js';
import { ConsulAclError, ConsulLeaderCheckError } from './errors.js';
import { CHURN_BURST, CHURN_REFILL_MS, nextIndex, TokenBucket } from './blocking-index.js';
import { ERROR_BODY_CHARS, interpretKvAnswer, kvLocation, type KvLocation, type KvRead } from './kv.js';
import {
  ACL_NOT_FOUND_TOLERANCE, ACL_RETRY_MS, ANSWER_MARGIN_MS, blockingTimeoutMs, blockingWaitMs, CONNECT_TIMEOUT_MS, leaderCheckPeriodMs,
  leaderCheckTimeoutMs, MAX_BODY_BYTES,
} from './timing.js';
import { displayEndpoint, FailoverHttpClient, RequestAbortedError, type HttpAnswer, type Query, type TlsFiles } from '../http-client.js';
import { leaderValue } from '../leader-value.js';
import type { LeaderSource, LeaderUnreachable, LeaderView } from '../../reconcile/ports.js';
import { ViewTracker } from '../view-tracker.js';

interface Parked {
  /** Aborts the parked request; the watch loop then starts over with a plain read. */
  readonly abort: AbortController;
  /** The endpoint it was sent to first (displayEndpoint form, as HttpAnswer.endpoint). */
  readonly endpoint: string;
  /** The index it waits on. */
  readonly index: bigint;
  /** What the answer it follows said (identityOf). */
  readonly identity: string;
}

export interface ConsulSourceOptions {
  endpoints: readonly string[];
  triggerKey: string;
  /** Sent as X-Consul-Token; never logged. */
  token?: string | undefined;
  tls: TlsFiles;
  intervalMs: number;
  retryAfterMs: number;
  retryNum: number;
  log: Logger;
}

/**
 * Consul answers that mean "this agent cannot serve now, ask another": any 5xx (500 "No cluster
 * leader", "No known Consul servers"...), 429 (rate limited), or an answer that admits to not
 * knowing a leader (cannot happen with ?consistent, checked anyway since it would be stale).
 */
function rejectAnswer(answer: HttpAnswer): string | null {
  if (answer.status >= 500 || answer.status === 429) {
    const text = answer.body.toString('utf8').trim().slice(0, ERROR_BODY_CHARS);
    return `HTTP ${answer.status}${text ? `: ${text}` : ''}`;
  }
  if (answer.status === 200 && answer.headers['x-consul-knownleader'] === 'false') return 'answered without a known cluster leader';
  return null;
}

export class ConsulLeaderSource implements LeaderSource {
  readonly kind = 'consul' as const;
  readonly providesLeaseDeadline = false;

  private readonly client: FailoverHttpClient;
  private readonly location: KvLocation;
  private readonly waitMs: number;
  private readonly limiter: TokenBucket;
  /**
   * Pacing after failures (transport errors, 5xx): retry-num retries retry-after apart, then
   * growing to backoff.ts's cap. While Consul is unreachable there is no lease to hold on to,
   * so the cap also bounds the VIP's extra downtime once Consul is back.
   */
  private readonly backoff: Backoff;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;
  /** The index the next request waits on; 0 means a plain (non-blocking) read. */
  private index = 0n;
  private aclErrorLogged: string | null = null;
  private aclNotFoundInARow = 0;
  private readonly checkPeriodMs: number;
  private readonly checkTimeoutMs: number;
  private checks: Promise<void> | null = null;
  /** The blocking query in flight, if any: what the leader check compares with and aborts. */
  private parked: Parked | null = null;
  /** What the last answer said (the tracker's identity string), for the leader check. */
  private lastIdentity = '';

  /** Throws on a configuration problem (unreadable TLS file, empty key), never later. */
  constructor(private readonly opts: ConsulSourceOptions) {
    this.location = kvLocation(opts.triggerKey);
    this.waitMs = blockingWaitMs(opts.intervalMs);
    this.checkPeriodMs = leaderCheckPeriodMs(opts.intervalMs);
    this.checkTimeoutMs = leaderCheckTimeoutMs(opts.intervalMs);
    // Under churn (a key rewritten many times a second) degrade to a bounded read rate rather
    // than a busy loop; ordinary leader changes never wait (see consul-index.ts).
    this.limiter = new TokenBucket(CHURN_BURST, CHURN_REFILL_MS);
    this.backoff = new Backoff({ initialMs: opts.retryAfterMs, flatRetries: opts.retryNum });
    this.client = new FailoverHttpClient({
      endpoints: opts.endpoints,
      tls: opts.tls,
      headers: opts.token ? { 'X-Consul-Token': opts.token } : {},
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      log: opts.log,
    });
  }

  start(onView: (view: LeaderView) => void): void {
    if (this.loop) throw new Error('ConsulLeaderSource already started');
    this.opts.log.info({
      key: this.location.key, endpoints: this.opts.endpoints.map(displayEndpoint), waitMs: this.waitMs,
      leaderCheckEveryMs: this.checkPeriodMs, leaderCheckTimeoutMs: this.checkTimeoutMs,
    }, 'watching the leader key in Consul with blocking queries');
    const tracker = new ViewTracker(onView);
    this.loop = this.run(tracker).catch((e: unknown) => {
      this.opts.log.error({ err: e }, 'Consul watch loop failed unexpectedly');
    });
    this.checks = this.checkLoop(tracker).catch((e: unknown) => {
      this.opts.log.error({ err: e }, 'Consul leader check failed unexpectedly');
    });
  }

  async close(): Promise<void> {
    this.stopping.abort();
    this.client.close();
    await Promise.all([this.loop, this.checks]);
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async pause(ms: number): Promise<void> {
    if (ms <= 0) return;
    await sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }

  private async run(tracker: ViewTracker): Promise<void> {
    while (!this.stopped) {
      await this.pause(this.limiter.delayMs());
      if (this.stopped) return;
      this.limiter.take();
      const sentAt = performance.now();
      const abort = new AbortController();
      let read: KvRead;
      try {
        read = await this.read(abort);
      } catch (e) {
        this.parked = null;
        if (this.stopped) return;
        // Abandoned by the leader check, which has reported whatever it found: start over
        // with a plain read, which answers at once (or fails) instead of waiting on the index.
        if (e instanceof RequestAbortedError && abort.signal.aborted) {
          this.index = 0n;
          continue;
        }
        if (e instanceof RequestAbortedError) return;
        // Dated when noticed, not when sent: a blocking read may have waited for seconds before
        // it failed, and an outage dated from its start would skip the retries release counts.
        await this.pause(this.onFailure(tracker, e as Error));
        continue;
      }
      this.parked = null;
      // Abandoned by the leader check just as it answered: the check may have reported an
      // outage this answer (an old pass, taken before the loss) must not cancel. Read again.
      if (abort.signal.aborted) {
        this.index = 0n;
        continue;
      }
      this.onAnswer(tracker, read, sentAt);
    }
  }

  private async read(abort: AbortController): Promise<KvRead> {
    const blocking = this.index > 0n;
    const query: Query = blocking
      ? [['consistent', null], ['index', this.index.toString()], ['wait', `${this.waitMs}ms`]]
      : [['consistent', null]];
    if (blocking) this.parked = { abort, endpoint: displayEndpoint(this.client.currentEndpoint), index: this.index, identity: this.lastIdentity };
    const answer = await this.client.request({
      path: this.location.path,
      query,
      timeoutMs: blocking ? blockingTimeoutMs(this.waitMs) : ANSWER_MARGIN_MS,
      maxBodyBytes: MAX_BODY_BYTES,
      rejectAnswer,
      signal: abort.signal,
    });
    return interpretKvAnswer(answer, this.location.key, Boolean(this.opts.token));
  }

  /**
   * Every checkPeriodMs while a blocking query is parked: one non-blocking consistent read of
   * the key (see the file header). Nothing runs while the watch loop itself is reading plainly
   * or backing off: then the loop's own requests are the probe.
   */
  private async checkLoop(tracker: ViewTracker): Promise<void> {
    let next = performance.now() + this.checkPeriodMs;
    while (!this.stopped) {
      await this.pause(next - performance.now());
      if (this.stopped) return;
      next = performance.now() + this.checkPeriodMs;
      const parked = this.parked;
      if (parked === null) continue;
      let read: KvRead;
      let endpoint: string;
      try {
        const answer = await this.client.request({
          path: this.location.path,
          query: [['consistent', null]],
          timeoutMs: this.checkTimeoutMs,
          maxBodyBytes: MAX_BODY_BYTES,
          rejectAnswer,
          signal: parked.abort.signal,
        });
        endpoint = answer.endpoint;
        read = interpretKvAnswer(answer, this.location.key, Boolean(this.opts.token));
      } catch (e) {
        // Aborted: closing, or the watch answered and was restarted meanwhile.
        if (this.stopped || e instanceof RequestAbortedError || this.parked !== parked) continue;
        // A 403 is for the watch loop to classify and report (its ACL pacing and logging).
        if (!(e instanceof ConsulAclError)) this.noteFailure(tracker, new ConsulLeaderCheckError(this.location.key, this.checkTimeoutMs, e as Error), 'leader check');
        parked.abort.abort();
        continue;
      }
      if (this.parked !== parked) continue;
      const identity = identityOf(read);
      const why = identity !== parked.identity ? 'the leader check read another value than the blocking query waits on'
        : nextIndex(0n, read.index).index < parked.index ? 'the Consul index went backwards (snapshot restore?)'
          : endpoint !== parked.endpoint ? 'the leader check was answered by another endpoint'
            : null;
      if (why !== null) {
        this.opts.log.debug({ key: this.location.key, waitedOn: parked.index.toString(), checked: read.index.toString() }, `restarting the blocking query: ${why}`);
        parked.abort.abort();
      }
    }
  }

  private onAnswer(tracker: ViewTracker, read: KvRead, sentAt: number): void {
    const next = nextIndex(this.index, read.index);
    if (next.wentBackwards) {
      this.opts.log.warn({ waitedOn: this.index.toString(), returned: read.index.toString() },
        'Consul index went backwards (snapshot restore?); restarting the blocking loop');
    }
    this.index = next.index;
    this.backoff.reset();
    this.aclNotFoundInARow = 0;
    if (this.aclErrorLogged !== null) {
      this.opts.log.info({ key: this.location.key }, 'Consul accepts the token again');
      this.aclErrorLogged = null;
    }
    // `at` is when the request was sent, as source.ts asks: the answer became true somewhere
    // between sending and receiving (a blocking read may have waited up to `wait`), and with
    // ?consistent the leader verified itself at the start; the earlier time is the safe one.
    const view = leaderValue(read.kind === 'found' ? read.value : null,
      (read.kind === 'found' ? read.modifyIndex : read.index).toString(), sentAt, null);
    this.lastIdentity = identityOf(read);
    const result = tracker.value(view, this.lastIdentity);
    if (result.recovered) this.opts.log.info({ key: this.location.key, endpoint: displayEndpoint(this.client.currentEndpoint) }, 'Consul answered');
    if (result.emitted) this.opts.log.debug({ key: this.location.key, value: view.value, index: read.index.toString() }, 'leader key changed');
  }

  /** Reports a failed attempt (the view, and the log line of an outage's first failure). */
  private noteFailure(tracker: ViewTracker, error: Error, by: string, retryInMs?: number): LeaderUnreachable {
    // The next answer must come at once to report recovery; a blocking read on the old index
    // would sit out the whole wait if nothing changed meanwhile. A plain read restarts the loop.
    this.index = 0n;
    const view = tracker.failure(error, performance.now());
    if (error instanceof ConsulAclError) return view;
    if (view.failures === 1) this.opts.log.warn({ err: error.message, by, retryInMs }, 'Consul is unreachable');
    else this.opts.log.debug({ err: error.message, by, failures: view.failures, retryInMs }, 'Consul still unreachable');
    return view;
  }

  /** Reports a failed read of the watch loop and returns how long to wait before the next one. */
  private onFailure(tracker: ViewTracker, error: Error): number {
    if (error instanceof ConsulAclError) return this.onAclError(error, this.noteFailure(tracker, error, 'watch').failures);
    const delay = this.backoff.next();
    this.noteFailure(tracker, error, 'watch', delay);
    return delay;
  }

  private onAclError(error: ConsulAclError, failures: number): number {
    this.aclNotFoundInARow = error.tokenNotFound ? this.aclNotFoundInARow + 1 : 0;
    const transient = error.tokenNotFound && this.aclNotFoundInARow <= ACL_NOT_FOUND_TOLERANCE;
    const delay = transient ? this.backoff.next() : ACL_RETRY_MS;
    // Logged once per distinct message: a wrong token would otherwise fill the journal.
    if (this.aclErrorLogged !== error.message) {
      this.opts.log.error({ err: error.message, retryInMs: delay }, 'Consul ACL error');
      this.aclErrorLogged = error.message;
    } else {
      this.opts.log.debug({ failures, retryInMs: delay }, 'Consul ACL error persists');
    }
    return delay;
  }
}

/** What matters for "changed": value and ModifyIndex, or absence (whose index moves on unrelated writes). */
function identityOf(read: KvRead): string {
  return read.kind === 'found' ? `found:${read.modifyIndex}:${read.value.toString('base64')}` : 'absent';
}
