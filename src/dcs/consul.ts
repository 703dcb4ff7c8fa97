// The Consul leader source: watches the trigger key with blocking queries on /v1/kv/<key>
// (consistent reads) and reports its value. A change arrives the moment Consul answers; unlike
// the Go original, nothing sleeps `interval` after an answer. The index rules, the rate limit
// and the timeouts follow Consul's blocking-query documentation (see consul-index.ts and
// consul-timing.ts).
//
// No lease deadline: Patroni binds its leader key in Consul to a session with a TTL, but
// neither the key nor the session says when the session was last renewed, and Consul may
// invalidate it anywhere between TTL and 2×TTL after that renewal. Having seen the key at time
// t only proves the session was alive at t, not that it will be a moment later, so there is no
// sound deadline to hold a VIP to (providesLeaseDeadline = false).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { Backoff } from '../backoff.js';
import { ConsulAclError } from './consul-errors.js';
import { CHURN_BURST, CHURN_REFILL_MS, nextIndex, TokenBucket } from './consul-index.js';
import { ERROR_BODY_CHARS, interpretKvAnswer, kvLocation, type KvLocation, type KvRead } from './consul-kv.js';
import {
  ACL_NOT_FOUND_TOLERANCE, ACL_RETRY_MS, ANSWER_MARGIN_MS, blockingTimeoutMs, blockingWaitMs, CONNECT_TIMEOUT_MS, MAX_BODY_BYTES,
} from './consul-timing.js';
import { displayEndpoint, FailoverHttpClient, RequestAbortedError, type HttpAnswer, type Query, type TlsFiles } from './http-client.js';
import { leaderValue } from './leader-value.js';
import type { LeaderSource, LeaderView } from './source.js';
import { ViewTracker } from './view-tracker.js';

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

  /** Throws on a configuration problem (unreadable TLS file, empty key), never later. */
  constructor(private readonly opts: ConsulSourceOptions) {
    this.location = kvLocation(opts.triggerKey);
    this.waitMs = blockingWaitMs(opts.intervalMs);
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
    this.opts.log.info({ key: this.location.key, endpoints: this.opts.endpoints.map(displayEndpoint), waitMs: this.waitMs },
      'watching the leader key in Consul with blocking queries');
    this.loop = this.run(new ViewTracker(onView)).catch((e: unknown) => {
      this.opts.log.error({ err: e }, 'Consul watch loop failed unexpectedly');
    });
  }

  async close(): Promise<void> {
    this.stopping.abort();
    this.client.close();
    await this.loop;
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
      let read: KvRead;
      try {
        read = await this.read();
      } catch (e) {
        if (e instanceof RequestAbortedError || this.stopped) return;
        // Dated when noticed, not when sent: a blocking read may have waited for seconds before
        // it failed, and an outage dated from its start would skip the retries release counts.
        await this.pause(this.onFailure(tracker, e as Error, performance.now()));
        continue;
      }
      this.onAnswer(tracker, read, sentAt);
    }
  }

  private async read(): Promise<KvRead> {
    const blocking = this.index > 0n;
    const query: Query = blocking
      ? [['consistent', null], ['index', this.index.toString()], ['wait', `${this.waitMs}ms`]]
      : [['consistent', null]];
    const answer = await this.client.request({
      path: this.location.path,
      query,
      timeoutMs: blocking ? blockingTimeoutMs(this.waitMs) : ANSWER_MARGIN_MS,
      maxBodyBytes: MAX_BODY_BYTES,
      rejectAnswer,
    });
    return interpretKvAnswer(answer, this.location.key, Boolean(this.opts.token));
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
    const result = tracker.value(
      view,
      // A missing key's index is the KV table's and moves on unrelated writes: not a change.
      read.kind === 'found' ? `found:${read.modifyIndex}:${read.value.toString('base64')}` : 'absent',
    );
    if (result.recovered) this.opts.log.info({ key: this.location.key, endpoint: displayEndpoint(this.client.currentEndpoint) }, 'Consul answered');
    if (result.emitted) this.opts.log.debug({ key: this.location.key, value: view.value, index: read.index.toString() }, 'leader key changed');
  }

  /** Reports a failed attempt and returns how long to wait before the next one. */
  private onFailure(tracker: ViewTracker, error: Error, failedAt: number): number {
    // The next answer must come at once to report recovery; a blocking read on the old index
    // would sit out the whole wait if nothing changed meanwhile. A plain read restarts the loop.
    this.index = 0n;
    const view = tracker.failure(error, failedAt);
    if (error instanceof ConsulAclError) return this.onAclError(error, view.failures);
    const delay = this.backoff.next();
    if (view.failures === 1) this.opts.log.warn({ err: error.message, retryInMs: delay }, 'Consul is unreachable');
    else this.opts.log.debug({ err: error.message, failures: view.failures, retryInMs: delay }, 'Consul still unreachable');
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

export function createConsulSource(cfg: Config, log: Logger): ConsulLeaderSource {
  return new ConsulLeaderSource({
    endpoints: cfg['dcs-endpoints'],
    triggerKey: cfg['trigger-key'],
    token: cfg['consul-token'],
    // The original's Consul client trusts the system roots only; the CA file is added to them.
    tls: { caFile: cfg['etcd-ca-file'], certFile: cfg['etcd-cert-file'], keyFile: cfg['etcd-key-file'], alsoDefaultRoots: true },
    intervalMs: cfg.interval,
    retryAfterMs: cfg['retry-after'],
    retryNum: cfg['retry-num'],
    log: log.child({ dcs: 'consul' }),
  });
}
