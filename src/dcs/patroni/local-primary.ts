// dcs-loss patroni: asks the local Patroni REST API every `interval` whether this node is the
// running primary. GET /primary answers 200 exactly while Patroni holds leadership in its own
// view (ha.is_leader(), renewed each HA cycle in failsafe mode while the DCS is gone) and 503
// otherwise (patroni/api.py do_GET). That alone lags a demotion: demote('offline') stops
// PostgreSQL first and clears is_leader only after the postmaster is gone, which on the test bed
// took 2.3 s during which /primary still said 200 with PostgreSQL refusing connections. The body
// (get_postgresql_status) says `"state": "stopping"` from the first moment, so an answer counts
// as "running primary" only with 200, state "running" and role "master" (Patroni < 4) or
// "primary". The reconciler uses the latest answer only while the DCS is unreachable.
//
// It asks all the time, not only during an outage: one loopback request per interval costs
// nothing, and an answer at most one interval old exists at the moment the DCS is lost, so a
// primary that Patroni demotes together with the loss (failsafe off) loses the VIP within one
// interval instead of after a cold start of this poller.
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../log.js';
import { displayEndpoint, FailoverHttpClient, RequestAbortedError, type TlsFiles } from '../http-client.js';
import { patroniTimeoutMs } from './rest-source.js';
import type { LocalPrimary } from '../../reconcile/decide.js';

export interface LocalPrimaryOptions {
  /** Base URL of this node's Patroni REST API (patroni-api-url). */
  url: string;
  tls: TlsFiles;
  /** Basic authentication (Patroni's restapi.authentication), when set. */
  user?: string | undefined;
  password?: string | undefined;
  intervalMs: number;
  log: Logger;
  now?: () => number;
}

export interface LocalPrimaryAnswer extends LocalPrimary {
  /** The HTTP status, or null when no answer came (refused, timeout, TLS). */
  readonly status: number | null;
  /** PostgreSQL's state and role as the body says (null when absent or unreadable). */
  readonly state: string | null;
  readonly role: string | null;
  readonly error: string | null;
}

/** /primary's body is a few hundred bytes; more than this is not Patroni's status document. */
const MAX_BODY_BYTES = 64 * 1024;

/** The state and role fields of Patroni's status document, or nulls when it is not one. */
export function statusFields(body: Buffer, truncated: boolean): { state: string | null; role: string | null } {
  if (truncated) return { state: null, role: null };
  try {
    const doc = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof doc !== 'object' || doc === null) return { state: null, role: null };
    const { state, role } = doc as { state?: unknown; role?: unknown };
    return { state: typeof state === 'string' ? state : null, role: typeof role === 'string' ? role : null };
  } catch {
    return { state: null, role: null };
  }
}

/** 200 from /primary with PostgreSQL running as primary: the only answer that holds the VIP. */
export function isRunningPrimary(status: number, state: string | null, role: string | null): boolean {
  return status === 200 && state === 'running' && (role === 'master' || role === 'primary');
}

export class PatroniLocalPrimary {
  private readonly client: FailoverHttpClient;
  /** Below the interval (patroni.ts: 80 %, at most 1 s), so one request never overlaps the next. */
  readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;
  private last: LocalPrimaryAnswer | null = null;

  /** Throws DcsTlsConfigError when a configured TLS file cannot be read. */
  constructor(private readonly opts: LocalPrimaryOptions) {
    this.timeoutMs = patroniTimeoutMs(opts.intervalMs);
    this.now = opts.now ?? (() => performance.now());
    const headers: Record<string, string> = {};
    if (opts.user !== undefined && opts.user !== '') {
      headers.authorization = `Basic ${Buffer.from(`${opts.user}:${opts.password ?? ''}`, 'utf8').toString('base64')}`;
    }
    this.client = new FailoverHttpClient({ endpoints: [opts.url], tls: opts.tls, headers, connectTimeoutMs: this.timeoutMs, log: opts.log });
  }

  /** The latest answer, or null before the first. */
  latest(): LocalPrimaryAnswer | null {
    return this.last;
  }

  start(onAnswer: (a: LocalPrimaryAnswer) => void): void {
    if (this.loop) throw new Error('PatroniLocalPrimary already started');
    this.opts.log.info({ url: displayEndpoint(this.opts.url), intervalMs: this.opts.intervalMs, timeoutMs: this.timeoutMs },
      'dcs-loss patroni: asking the local Patroni REST API GET /primary every interval');
    this.loop = this.run(onAnswer).catch((e: unknown) => {
      this.opts.log.error({ err: e }, 'local Patroni poll loop failed unexpectedly');
    });
  }

  async close(): Promise<void> {
    this.stopping.abort();
    this.client.close();
    await this.loop;
  }

  private async ask(): Promise<LocalPrimaryAnswer | null> {
    const at = this.now();
    try {
      const answer = await this.client.request({ path: '/primary', timeoutMs: this.timeoutMs, maxBodyBytes: MAX_BODY_BYTES });
      const { state, role } = statusFields(answer.body, answer.truncated);
      return { ok: isRunningPrimary(answer.status, state, role), at, status: answer.status, state, role, error: null };
    } catch (e) {
      if (e instanceof RequestAbortedError || this.stopping.signal.aborted) return null;
      return { ok: false, at, status: null, state: null, role: null, error: (e as Error).message };
    }
  }

  private async run(onAnswer: (a: LocalPrimaryAnswer) => void): Promise<void> {
    while (!this.stopping.signal.aborted) {
      const a = await this.ask();
      if (a === null) return;
      const prev = this.last;
      this.last = a;
      if (prev === null || prev.ok !== a.ok || prev.status !== a.status || prev.state !== a.state) {
        const fields = { url: displayEndpoint(this.opts.url), status: a.status, state: a.state ?? undefined, role: a.role ?? undefined, err: a.error ?? undefined };
        const said = `GET /primary ${a.status}, state ${a.state ?? '(none)'}, role ${a.role ?? '(none)'}`;
        if (a.ok) this.opts.log.info(fields, `local Patroni says this node is the running primary (${said})`);
        else if (a.status !== null) this.opts.log.info(fields, `local Patroni says this node is not the running primary (${said})`);
        else this.opts.log.warn(fields, `local Patroni REST API did not answer GET /primary: ${a.error ?? 'no answer'}`);
      }
      onAnswer(a);
      // Every interval from the moment of asking, so answers are at most interval + timeout apart.
      const wait = a.at + this.opts.intervalMs - this.now();
      if (wait > 0) await sleep(wait, undefined, { signal: this.stopping.signal }).catch(() => undefined);
    }
  }
}
