// The Patroni REST leader source: every `interval`, GET <endpoint><trigger-key> (by default
// /leader, which Patroni answers 200 on the node holding the leader lock and 503 elsewhere).
// The HTTP status code, as a string, is the view's value, compared by the reconciler with
// trigger-value ('200' by default) — the Go original's contract. Any HTTP answer is a value;
// only when no endpoint answers at all (refused, timed out, TLS failure) is Patroni
// unreachable. Patroni's REST API has no lease notion, so there is no lease deadline.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../log.js';
import { Backoff } from '../../backoff.js';
import { displayEndpoint, FailoverHttpClient, RequestAbortedError, type TlsFiles } from '../http-client.js';
import type { LeaderSource, LeaderView } from '../../reconcile/ports.js';
import { ViewTracker } from '../view-tracker.js';

/**
 * A poll must be over before the next is due, so a Patroni that hangs shows as unreachable
 * within one interval: each endpoint gets this fraction of the interval...
 */
export const PATRONI_TIMEOUT_FRACTION = 0.8;
/** ...but never more than the Go original's 1 s client timeout: /leader is answered from memory. */
export const PATRONI_MAX_TIMEOUT_MS = 1_000;

export function patroniTimeoutMs(intervalMs: number): number {
  return Math.max(1, Math.min(PATRONI_MAX_TIMEOUT_MS, Math.floor(intervalMs * PATRONI_TIMEOUT_FRACTION)));
}

export interface PatroniSourceOptions {
  endpoints: readonly string[];
  /** The REST path, e.g. '/leader'. */
  triggerKey: string;
  tls: TlsFiles;
  intervalMs: number;
  retryAfterMs: number;
  retryNum: number;
  log: Logger;
}

export class PatroniLeaderSource implements LeaderSource {
  readonly kind = 'patroni' as const;
  readonly providesLeaseDeadline = false;

  private readonly client: FailoverHttpClient;
  private readonly timeoutMs: number;
  /**
   * After a failed poll, retry sooner than `interval`: retry-num retries retry-after apart (so
   * the reconciler's retry-num count is reached quickly), then growing, but never slower than
   * the normal polling `interval`.
   */
  private readonly backoff: Backoff;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;

  /** Throws on a configuration problem (unreadable TLS file), never later. */
  constructor(private readonly opts: PatroniSourceOptions) {
    this.timeoutMs = patroniTimeoutMs(opts.intervalMs);
    this.backoff = new Backoff({ initialMs: opts.retryAfterMs, flatRetries: opts.retryNum, maxMs: opts.intervalMs });
    this.client = new FailoverHttpClient({
      endpoints: opts.endpoints,
      tls: opts.tls,
      connectTimeoutMs: this.timeoutMs,
      log: opts.log,
    });
  }

  start(onView: (view: LeaderView) => void): void {
    if (this.loop) throw new Error('PatroniLeaderSource already started');
    this.opts.log.info({ path: this.opts.triggerKey, endpoints: this.opts.endpoints.map(displayEndpoint), intervalMs: this.opts.intervalMs, timeoutMs: this.timeoutMs },
      'polling the Patroni REST API');
    this.loop = this.run(new ViewTracker(onView)).catch((e: unknown) => {
      this.opts.log.error({ err: e }, 'Patroni poll loop failed unexpectedly');
    });
  }

  async close(): Promise<void> {
    this.stopping.abort();
    this.client.close();
    await this.loop;
  }

  private async pause(ms: number): Promise<void> {
    if (ms <= 0) return;
    await sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }

  private async run(tracker: ViewTracker): Promise<void> {
    while (!this.stopping.signal.aborted) {
      const sentAt = performance.now();
      let status: number;
      try {
        // The body is not needed, only drained so a kept-alive connection stays usable.
        const answer = await this.client.request({ path: this.opts.triggerKey, timeoutMs: this.timeoutMs, maxBodyBytes: 0 });
        status = answer.status;
      } catch (e) {
        if (e instanceof RequestAbortedError || this.stopping.signal.aborted) return;
        const view = tracker.failure(e as Error, sentAt);
        const delay = this.backoff.next();
        if (view.failures === 1) this.opts.log.warn({ err: (e as Error).message, retryInMs: delay }, 'Patroni REST API is unreachable');
        else this.opts.log.debug({ err: (e as Error).message, failures: view.failures }, 'Patroni REST API still unreachable');
        await this.pause(delay);
        continue;
      }
      this.backoff.reset();
      const value = String(status);
      const result = tracker.value({ kind: 'value', value, revision: value, at: sentAt, leaseDeadline: null }, value);
      if (result.recovered) this.opts.log.info({ endpoint: displayEndpoint(this.client.currentEndpoint), status }, 'Patroni REST API answered');
      else if (result.emitted) this.opts.log.debug({ status }, 'Patroni leader status changed');
      // Fixed cadence: the next poll is due one interval after this one started.
      await this.pause(this.opts.intervalMs - (performance.now() - sentAt));
    }
  }
}
