// The three Hetzner Robot webservice calls the failover manager needs, per the Robot webservice
// documentation (https://robot.hetzner.com/doc/webservice/en.html, sections "Errors" and
// "Failover"):
//   GET    /failover/{failover-ip}                      100 requests per hour
//   POST   /failover/{failover-ip}  active_server_ip=…   50 requests per hour
//   DELETE /failover/{failover-ip}                       50 requests per hour
// HTTP Basic auth; form-encoded POST bodies; JSON replies {"failover": {...}} or
// {"error": {"status", "code", "message", ...}}.
//
// The client itself enforces the rules that must hold whatever the caller does: after a 401 it
// never sends again (three failed logins block the client's IP for ten minutes), it never sends
// over a method's hourly budget, and after 403 RATE_LIMIT_EXCEEDED it sends nothing on that
// method until the interval the API named has passed.
import * as v from 'valibot';
import { type Logger } from '../../log.js';
import { type Clock } from './clock.js';
import {
  excerpt,
  HetznerAuthError,
  HetznerBudgetError,
  type HetznerError,
  HetznerForbiddenError,
  HetznerLockedError,
  HetznerNotFoundError,
  HetznerRateLimitError,
  HetznerRejectedError,
  HetznerResponseError,
  HetznerServerError,
} from './errors.js';
import { exchange, type FetchLike, type HttpReply, InFlight, tryParseJson } from './http.js';
import { HOUR_MS, SlidingWindowBudget } from './rate-budget.js';

/** Documented per-endpoint limits (requests per hour). */
export const ROBOT_GET_LIMIT = 100;
export const ROBOT_POST_LIMIT = 50;
export const ROBOT_DELETE_LIMIT = 50;

/** A GET answers from a database: ten seconds is generous. */
export const ROBOT_READ_TIMEOUT_MS = 10_000;
/**
 * POST and DELETE return only once the routing has changed, and a switch takes 40–60 s on
 * Hetzner's side; 90 s leaves room without waiting forever on a lost reply.
 */
export const ROBOT_WRITE_TIMEOUT_MS = 90_000;
/**
 * After FAILOVER_LOCKED (a switch is under way, 40–60 s) asking again sooner than this only
 * spends POST budget on the same answer.
 */
export const ROBOT_LOCKED_RETRY_MS = 20_000;
/** If a RATE_LIMIT_EXCEEDED reply lacks its documented `interval`, assume the full hour. */
export const ROBOT_DEFAULT_RATE_INTERVAL_S = 3600;

export type RobotMethod = 'GET' | 'POST' | 'DELETE';

export interface FailoverRouting {
  /** The failover IP as the API writes it. */
  readonly ip: string;
  /** Main IP of the server the failover IP is routed to; null when unrouted. */
  readonly activeServerIp: string | null;
}

export interface RouteResult {
  readonly routing: FailoverRouting;
  /** The API said FAILOVER_ALREADY_ROUTED: nothing changed, the IP was already ours. */
  readonly alreadyRouted: boolean;
}

const FailoverReply = v.object({
  failover: v.object({
    ip: v.string(),
    active_server_ip: v.nullable(v.string()),
  }),
});

/**
 * JSON.parse reads 1e999 as Infinity, which v.number() takes: a RATE_LIMIT_EXCEEDED interval
 * of Infinity would block the method for good. Such a reply counts as one without a readable
 * error, as it did under zod (whose number() refuses Infinity).
 */
const FiniteNumber = v.pipe(v.number(), v.finite());

const ErrorReply = v.object({
  error: v.object({
    status: v.optional(FiniteNumber),
    code: v.string(),
    message: v.optional(v.string()),
    interval: v.optional(FiniteNumber),
    max_request: v.optional(FiniteNumber),
  }),
});

export interface RobotApiOptions {
  baseUrl: string;
  user: string;
  pass: string;
  /** Where the credentials came from, for the 401 message. */
  credentialsSource: string;
  fetch: FetchLike;
  clock: Clock;
  log: Logger;
  limits?: Partial<Record<RobotMethod, number>>;
  /** Aborted when the manager closes, so no request outlives it. */
  signal?: AbortSignal;
}

/**
 * The routing a 409 FAILOVER_ALREADY_ROUTED reports. Robot sends the failover object beside the
 * error; that object is the truth (it may name another server than asked, e.g. when a switch by
 * someone else ended meanwhile). Without it, the code alone says the IP is where we asked.
 */
function alreadyRoutedState(reply: HttpReply, ip: string, asked: string | null): FailoverRouting {
  const withState = v.safeParse(FailoverReply, tryParseJson(reply.body));
  return withState.success
    ? { ip: withState.output.failover.ip, activeServerIp: withState.output.failover.active_server_ip }
    : { ip, activeServerIp: asked };
}

export class RobotApi {
  readonly budgets: Record<RobotMethod, SlidingWindowBudget>;
  /** Requests waiting for their reply (a switch keeps POST/DELETE open for 40-60 s). */
  readonly inFlight: InFlight;
  #blockedUntil: Record<RobotMethod, number> = { GET: 0, POST: 0, DELETE: 0 };
  #authFailure: HetznerAuthError | undefined;
  readonly #auth: string;
  readonly #base: string;

  constructor(private readonly opts: RobotApiOptions) {
    const lim = opts.limits ?? {};
    this.budgets = {
      GET: new SlidingWindowBudget('Robot GET /failover', lim.GET ?? ROBOT_GET_LIMIT, HOUR_MS, opts.clock, opts.log),
      POST: new SlidingWindowBudget('Robot POST /failover', lim.POST ?? ROBOT_POST_LIMIT, HOUR_MS, opts.clock, opts.log),
      DELETE: new SlidingWindowBudget('Robot DELETE /failover', lim.DELETE ?? ROBOT_DELETE_LIMIT, HOUR_MS, opts.clock, opts.log),
    };
    this.inFlight = new InFlight(opts.clock);
    this.#auth = 'Basic ' + Buffer.from(`${opts.user}:${opts.pass}`, 'utf8').toString('base64');
    this.#base = opts.baseUrl.replace(/\/+$/, '');
  }

  /** The 401 that stopped this client, if any. */
  get authFailure(): HetznerAuthError | undefined {
    return this.#authFailure;
  }

  /** Whether a request on `method` could be sent now (no lockout, block or empty budget). */
  canSend(method: RobotMethod): boolean {
    return this.#authFailure === undefined && this.opts.clock.now() >= this.#blockedUntil[method] && this.budgets[method].remaining() > 0;
  }

  async getFailover(ip: string): Promise<FailoverRouting> {
    const reply = await this.#send('GET', ip);
    if (reply.status === 200) return this.#parseFailover(reply, `GET /failover/${ip}`);
    throw this.#errorFor('GET', ip, reply);
  }

  /** Routes `ip` to `serverIp`. FAILOVER_ALREADY_ROUTED counts as success. */
  async routeFailover(ip: string, serverIp: string): Promise<RouteResult> {
    const reply = await this.#send('POST', ip, new URLSearchParams({ active_server_ip: serverIp }).toString());
    if (reply.status === 200 || reply.status === 201) {
      return { routing: this.#parseFailover(reply, `POST /failover/${ip}`), alreadyRouted: false };
    }
    const err = v.safeParse(ErrorReply, tryParseJson(reply.body));
    if (reply.status === 409 && err.success && err.output.error.code === 'FAILOVER_ALREADY_ROUTED') {
      return { routing: alreadyRoutedState(reply, ip, serverIp), alreadyRouted: true };
    }
    throw this.#errorFor('POST', ip, reply);
  }

  /** Removes the routing (active_server_ip becomes null). */
  async unrouteFailover(ip: string): Promise<FailoverRouting> {
    const reply = await this.#send('DELETE', ip);
    if (reply.status === 200) return this.#parseFailover(reply, `DELETE /failover/${ip}`);
    const err = v.safeParse(ErrorReply, tryParseJson(reply.body));
    if (reply.status === 409 && err.success && err.output.error.code === 'FAILOVER_ALREADY_ROUTED') {
      return alreadyRoutedState(reply, ip, null);
    }
    throw this.#errorFor('DELETE', ip, reply);
  }

  async #send(method: RobotMethod, ip: string, form?: string): Promise<HttpReply> {
    const what = `Robot ${method} /failover/${ip}`;
    const { clock, log } = this.opts;
    if (this.#authFailure) throw this.#authFailure;
    if (clock.now() < this.#blockedUntil[method]) {
      throw new HetznerRateLimitError(`${what}: not sent; Robot's rate limit for ${method} is still in force`, {
        code: 'RATE_LIMIT_EXCEEDED',
        retryAt: this.#blockedUntil[method],
      });
    }
    const budget = this.budgets[method];
    if (!budget.tryTake()) {
      const retryAt = budget.nextFreeAt();
      throw new HetznerBudgetError(
        `${what}: not sent; ${budget.limit} ${method} requests already sent in the last hour (Robot's documented limit); next one possible in ${Math.ceil((retryAt - clock.now()) / 1000)} s`,
        { retryAt },
      );
    }
    const headers: Record<string, string> = { Authorization: this.#auth, Accept: 'application/json', 'User-Agent': 'vip-manager' };
    if (form !== undefined) headers['Content-Type'] = 'application/x-www-form-urlencoded';
    const started = clock.now();
    const reply = await exchange(this.opts.fetch, clock, {
      method,
      url: `${this.#base}/failover/${ip}`,
      headers,
      body: form,
      timeoutMs: method === 'GET' ? ROBOT_READ_TIMEOUT_MS : ROBOT_WRITE_TIMEOUT_MS,
      what,
      signal: this.opts.signal,
      inFlight: this.inFlight,
    });
    log.debug(
      { method, path: `/failover/${ip}`, status: reply.status, ms: Math.round(clock.now() - started), budgetLeft: budget.remaining() },
      'Hetzner Robot request',
    );
    return reply;
  }

  #parseFailover(reply: HttpReply, what: string): FailoverRouting {
    const json = tryParseJson(reply.body);
    if (json === undefined) {
      throw new HetznerResponseError(`Robot ${what}: reply is not JSON: ${excerpt(reply.body, [this.opts.pass])}`, { status: reply.status });
    }
    const parsed = v.safeParse(FailoverReply, json);
    if (!parsed.success) {
      throw new HetznerResponseError(
        `Robot ${what}: reply lacks failover.ip / failover.active_server_ip: ${excerpt(reply.body, [this.opts.pass])}`,
        { status: reply.status },
      );
    }
    return { ip: parsed.output.failover.ip, activeServerIp: parsed.output.failover.active_server_ip };
  }

  #errorFor(method: RobotMethod, ip: string, reply: HttpReply): HetznerError {
    const { clock } = this.opts;
    const what = `Robot ${method} /failover/${ip}`;
    const parsed = v.safeParse(ErrorReply, tryParseJson(reply.body));
    const e = parsed.success ? parsed.output.error : undefined;
    const code = e?.code;
    const apiMsg = e?.message ? `: ${excerpt(e.message, [this.opts.pass])}` : '';
    const status = reply.status;
    const tag = `${status}${code ? ' ' + code : ''}`;

    if (status === 401) {
      this.#authFailure = new HetznerAuthError(
        `${what}: 401 Unauthorized; the Robot webservice rejected the user and password from ${this.opts.credentialsSource}. ` +
          'Not retrying: three failed logins block this IP for ten minutes. Fix the credentials (a Robot *webservice* user, ' +
          'created under Settings > Web service and app settings) and restart vip-manager.',
        { status, code },
      );
      return this.#authFailure;
    }
    if (status === 403 && code === 'RATE_LIMIT_EXCEEDED') {
      const intervalS = e?.interval ?? ROBOT_DEFAULT_RATE_INTERVAL_S;
      const retryAt = clock.now() + intervalS * 1000;
      this.#blockedUntil[method] = retryAt;
      return new HetznerRateLimitError(
        `${what}: 403 RATE_LIMIT_EXCEEDED (max ${e?.max_request ?? '?'} per ${intervalS} s); no ${method} for ${intervalS} s`,
        { status, code, retryAt },
      );
    }
    if (status === 409 && code === 'FAILOVER_LOCKED') {
      return new HetznerLockedError(`${what}: 409 FAILOVER_LOCKED; a switch of this failover IP is under way (they take 40–60 s)${apiMsg}`, {
        status,
        code,
        retryAt: clock.now() + ROBOT_LOCKED_RETRY_MS,
      });
    }
    if (status === 404 && code === 'FAILOVER_NEW_SERVER_NOT_FOUND') {
      return new HetznerNotFoundError(
        `${what}: 404 FAILOVER_NEW_SERVER_NOT_FOUND; the target is not a server of this Robot account. Set hetzner-server-ip to this server's main IP${apiMsg}`,
        { status, code },
      );
    }
    if (status === 404) {
      return new HetznerNotFoundError(`${what}: ${tag}; ${ip} is not a failover IP of this Robot account (check ip)${apiMsg}`, { status, code });
    }
    if (status === 400) {
      return new HetznerRejectedError(`${what}: ${tag}; the request was refused as invalid (check ip and hetzner-server-ip)${apiMsg}`, {
        status,
        code,
      });
    }
    if (status === 403) {
      return new HetznerForbiddenError(`${what}: ${tag}; the webservice user may not manage this failover IP${apiMsg}`, { status, code });
    }
    if (status >= 500) {
      const why =
        code === 'FAILOVER_FAILED'
          ? 'the switch failed'
          : code === 'FAILOVER_NOT_COMPLETE'
            ? 'the switch did not complete'
            : status === 503
              ? 'the webservice is down for maintenance'
              : 'server error';
      return new HetznerServerError(`${what}: ${tag}; ${why}${apiMsg}`, { status, code });
    }
    // Anything else is undocumented for these endpoints: retried with backoff rather than
    // taken as final, because it is as likely a proxy's page as a real answer.
    return new HetznerResponseError(`${what}: unexpected reply ${tag}: ${excerpt(reply.body, [this.opts.pass])}`, { status, code });
  }
}
