// The Hetzner Cloud API calls the floating-IP manager needs, per the Hetzner Cloud API reference
// (https://docs.hetzner.cloud/, sections "Errors", "Rate Limiting", "Server Metadata",
// "Actions", "Floating IPs", "Floating IP Actions"):
//   GET  /floating_ips/{id}                  → {"floating_ip": {id, ip, type, server|null, …}}
//   GET  /floating_ips?page=&per_page=       → {"floating_ips": [...], "meta": {"pagination"}}
//        (there is no filter by address: resolving an address means listing)
//   POST /floating_ips/{id}/actions/assign   {"server": id}  → 201 {"action": {…}}
//   POST /floating_ips/{id}/actions/unassign                 → 201 {"action": {…}}
//   GET  /actions/{id}                       → {"action": {id, status: running|success|error, error}}
//   GET  <metadata>/instance-id              → "42" (text)
// Bearer token auth. Errors are {"error": {"code", "message", "details"}}; the manager acts on
// the documented `code`, and on the HTTP status only when a reply has no readable code.
// Rate limiting: 3600 requests per hour per project by default, refilled gradually (one per
// second at that limit); every reply carries RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset (UNIX time at which the budget is full again). The project's budget is shared
// by every node, so the headers, not a local count, say what is left.
import * as v from 'valibot';
import { type Logger } from '../../log.js';
import { type Clock, sleep, unixSecondsToMonotonic } from './clock.js';
import {
  excerpt,
  HetznerActionError,
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
  HetznerTimeoutError,
  asHetznerError,
} from './errors.js';
import { exchange, type FetchLike, type HttpReply, InFlight, tryParseJson } from './http.js';
import { ipMatchesNetwork } from './ip.js';
import { HOUR_MS, LOW_BUDGET_SHARE, SlidingWindowBudget } from './rate-budget.js';

/** The documented default limit per project and hour. */
export const CLOUD_HOURLY_LIMIT = 3600;
export const CLOUD_REQUEST_TIMEOUT_MS = 10_000;
/** The metadata service is link-local and answers at once, or not at all. */
export const METADATA_TIMEOUT_MS = 2_000;
/**
 * After a 429, wait until this many requests have refilled (an assign, its polls and a read),
 * or until RateLimit-Reset if that comes sooner. Waiting for the full reset could mean an hour
 * without failover; asking as soon as one request is back would just meet the next 429.
 */
export const CLOUD_429_RECOVERY_REQUESTS = 10;
/** When a 429 carries no usable headers: wait a minute. */
export const CLOUD_429_DEFAULT_WAIT_MS = 60_000;
/** Assign/unassign actions finish in seconds; a minute means something is wrong. */
export const CLOUD_ACTION_TIMEOUT_MS = 60_000;
/** Action polling: 500 ms like the hcloud CLI, growing ×1.5 to 2 s to spare the budget. */
export const CLOUD_ACTION_POLL_FIRST_MS = 500;
export const CLOUD_ACTION_POLL_MAX_MS = 2_000;
/** The documented maximum page size: fewest requests when resolving an address. */
export const CLOUD_LIST_PER_PAGE = 50;
/** A list longer than this many pages is not a floating-IP list we understand. */
const CLOUD_LIST_MAX_PAGES = 100;

export interface FloatingIp {
  readonly id: number;
  /** IPv4 address, or for type ipv6 the /64 network ("2001:db8::/64"). */
  readonly ip: string;
  readonly type: 'ipv4' | 'ipv6';
  /** The server it is assigned to, or null. */
  readonly server: number | null;
}

export interface CloudAction {
  readonly id: number;
  readonly command: string;
  readonly status: 'running' | 'success' | 'error';
  readonly error: { readonly code: string; readonly message: string } | null;
}

/** An id: a whole number up to 2^53-1, as zod's int() took (beyond it, two ids could read as one). */
const Id = v.pipe(v.number(), v.safeInteger());
const FloatingIpShape = v.object({
  id: Id,
  ip: v.string(),
  type: v.picklist(['ipv4', 'ipv6']),
  server: v.nullable(Id),
});
const FloatingIpReply = v.object({ floating_ip: FloatingIpShape });
const FloatingIpList = v.object({
  floating_ips: v.array(FloatingIpShape),
  meta: v.optional(v.object({ pagination: v.object({ next_page: v.nullable(Id) }) })),
});
const ActionShape = v.object({
  id: Id,
  command: v.string(),
  status: v.picklist(['running', 'success', 'error']),
  error: v.optional(v.nullable(v.object({ code: v.string(), message: v.string() }))),
});
const ActionReply = v.object({ action: ActionShape });
const ErrorReply = v.object({ error: v.object({ code: v.string(), message: v.optional(v.string()) }) });

export interface CloudApiOptions {
  baseUrl: string;
  token: string;
  fetch: FetchLike;
  clock: Clock;
  log: Logger;
  /** Local guard in addition to the headers (default CLOUD_HOURLY_LIMIT per hour). */
  hourlyLimit?: number;
  signal?: AbortSignal;
}

type Method = 'GET' | 'POST';

export class CloudApi {
  readonly budget: SlidingWindowBudget;
  /** Requests waiting for their reply, for the shutdown log. */
  readonly inFlight: InFlight;
  #authFailure: HetznerAuthError | undefined;
  #blockedUntil = 0;
  #limit: number | undefined;
  #remaining: number | undefined;
  #warnedLow = false;
  readonly #base: string;

  constructor(private readonly opts: CloudApiOptions) {
    this.budget = new SlidingWindowBudget('Cloud API', opts.hourlyLimit ?? CLOUD_HOURLY_LIMIT, HOUR_MS, opts.clock, opts.log);
    this.inFlight = new InFlight(opts.clock);
    this.#base = opts.baseUrl.replace(/\/+$/, '');
  }

  get authFailure(): HetznerAuthError | undefined {
    return this.#authFailure;
  }

  /** Whether the project's budget (as the last reply told) or ours is below LOW_BUDGET_SHARE. */
  isLow(): boolean {
    const server = this.#limit !== undefined && this.#remaining !== undefined && this.#remaining < this.#limit * LOW_BUDGET_SHARE;
    return server || this.budget.isLow() || this.opts.clock.now() < this.#blockedUntil;
  }

  async getFloatingIp(id: number): Promise<FloatingIp> {
    const what = `GET /floating_ips/${id}`;
    const reply = await this.#send('GET', `/floating_ips/${id}`, undefined, what);
    if (reply.status !== 200) throw this.#errorFor(what, reply, `floating IP ${id} does not exist in this project (check hcloud-floating-ip)`);
    return this.#parse(FloatingIpReply, reply, what, 'floating_ip {id, ip, type, server}').floating_ip;
  }

  /** Finds the floating IP whose address is `address` (or whose IPv6 /64 contains it). */
  async findFloatingIp(address: string): Promise<FloatingIp> {
    for (let page = 1; page <= CLOUD_LIST_MAX_PAGES; page++) {
      const what = `GET /floating_ips?page=${page}`;
      const reply = await this.#send('GET', `/floating_ips?page=${page}&per_page=${CLOUD_LIST_PER_PAGE}`, undefined, what);
      if (reply.status !== 200) throw this.#errorFor(what, reply, 'the floating IP list is not available');
      const list = this.#parse(FloatingIpList, reply, what, 'floating_ips [...]');
      const hit = list.floating_ips.find((f) => ipMatchesNetwork(address, networkOf(f)));
      if (hit) return hit;
      const next = list.meta?.pagination.next_page ?? null;
      if (next === null) break;
    }
    throw new HetznerNotFoundError(`no floating IP with address ${address} in this project (check ip / hcloud-floating-ip and the token's project)`);
  }

  async assign(id: number, serverId: number): Promise<CloudAction> {
    const what = `POST /floating_ips/${id}/actions/assign`;
    const reply = await this.#send('POST', `/floating_ips/${id}/actions/assign`, JSON.stringify({ server: serverId }), what);
    if (reply.status !== 201 && reply.status !== 200) {
      throw this.#errorFor(what, reply, `floating IP ${id} or server ${serverId} does not exist in this project`);
    }
    return toAction(this.#parse(ActionReply, reply, what, 'action {id, status}').action);
  }

  async unassign(id: number): Promise<CloudAction> {
    const what = `POST /floating_ips/${id}/actions/unassign`;
    const reply = await this.#send('POST', `/floating_ips/${id}/actions/unassign`, '{}', what);
    if (reply.status !== 201 && reply.status !== 200) throw this.#errorFor(what, reply, `floating IP ${id} does not exist in this project`);
    return toAction(this.#parse(ActionReply, reply, what, 'action {id, status}').action);
  }

  async getAction(id: number): Promise<CloudAction> {
    const what = `GET /actions/${id}`;
    const reply = await this.#send('GET', `/actions/${id}`, undefined, what);
    if (reply.status !== 200) {
      const err = this.#errorFor(what, reply, `action ${id} does not exist`);
      // A vanished action is odd but not a configuration problem: keep polling/retrying.
      if (err instanceof HetznerNotFoundError) throw new HetznerResponseError(err.message, { status: err.status, code: err.code });
      throw err;
    }
    return toAction(this.#parse(ActionReply, reply, what, 'action {id, status}').action);
  }

  /**
   * Polls the action until it succeeds (resolves), fails (HetznerActionError) or the deadline
   * passes (HetznerTimeoutError). Transient polling errors are ridden out until the deadline.
   */
  async waitForAction(action: CloudAction, signal?: AbortSignal): Promise<void> {
    const { clock } = this.opts;
    const deadline = clock.now() + CLOUD_ACTION_TIMEOUT_MS;
    let current = action;
    let delay = CLOUD_ACTION_POLL_FIRST_MS;
    for (;;) {
      if (current.status === 'success') return;
      if (current.status === 'error') {
        const e = current.error;
        throw new HetznerActionError(`action ${current.id} (${current.command}) failed: ${e ? `${e.code}: ${e.message}` : 'no error given'}`, {
          code: e?.code,
        });
      }
      const now = clock.now();
      if (now >= deadline) {
        throw new HetznerTimeoutError(`action ${current.id} (${current.command}) still running after ${CLOUD_ACTION_TIMEOUT_MS} ms`);
      }
      await sleep(clock, Math.min(delay, deadline - now), signal);
      delay = Math.min(CLOUD_ACTION_POLL_MAX_MS, delay * 1.5);
      try {
        current = await this.getAction(current.id);
      } catch (err) {
        const e = asHetznerError(err);
        if (e.disposition === 'fatal') throw e;
        if (e.retryAt !== undefined) {
          if (e.retryAt >= deadline) throw e;
          await sleep(clock, e.retryAt - clock.now(), signal);
        }
        this.opts.log.debug({ err: e.message, action: current.id }, 'Hetzner Cloud action poll failed; polling on');
      }
    }
  }

  async #send(method: Method, path: string, body: string | undefined, what: string): Promise<HttpReply> {
    const { clock, log } = this.opts;
    if (this.#authFailure) throw this.#authFailure;
    if (clock.now() < this.#blockedUntil) {
      throw new HetznerRateLimitError(`Cloud ${what}: not sent; the project's rate limit has not recovered yet`, {
        code: 'rate_limit_exceeded',
        retryAt: this.#blockedUntil,
      });
    }
    if (!this.budget.tryTake()) {
      throw new HetznerBudgetError(`Cloud ${what}: not sent; ${this.budget.limit} requests already sent in the last hour`, {
        retryAt: this.budget.nextFreeAt(),
      });
    }
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.opts.token}`,
      Accept: 'application/json',
      'User-Agent': 'vip-manager',
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const started = clock.now();
    const reply = await exchange(this.opts.fetch, clock, {
      method,
      url: this.#base + path,
      headers,
      body,
      timeoutMs: CLOUD_REQUEST_TIMEOUT_MS,
      what: `Cloud ${what}`,
      signal: this.opts.signal,
      inFlight: this.inFlight,
    });
    this.#readRateHeaders(reply);
    log.debug(
      { method, path, status: reply.status, ms: Math.round(clock.now() - started), rateRemaining: this.#remaining },
      'Hetzner Cloud request',
    );
    return reply;
  }

  #readRateHeaders(reply: HttpReply): void {
    const limit = intHeader(reply.headers, 'ratelimit-limit');
    const remaining = intHeader(reply.headers, 'ratelimit-remaining');
    if (limit !== undefined && limit > 0) this.#limit = limit;
    if (remaining !== undefined) this.#remaining = remaining;
    if (this.#limit !== undefined && this.#remaining !== undefined) {
      const low = this.#remaining < this.#limit * LOW_BUDGET_SHARE;
      if (low && !this.#warnedLow) {
        this.opts.log.warn(
          { remaining: this.#remaining, limit: this.#limit },
          `Hetzner Cloud project rate limit running low: ${this.#remaining} of ${this.#limit} requests left; periodic refreshes are paused`,
        );
      }
      this.#warnedLow = low;
      // Nothing left: the next request would meet a 429; wait for one to refill.
      if (this.#remaining === 0 && reply.status !== 429) this.#blockedUntil = this.opts.clock.now() + HOUR_MS / this.#limit;
    }
  }

  /** When to ask again after a 429, from the headers (see CLOUD_429_RECOVERY_REQUESTS). */
  #recoveryAt(reply: HttpReply): number {
    const { clock } = this.opts;
    const now = clock.now();
    const limit = intHeader(reply.headers, 'ratelimit-limit') ?? this.#limit;
    const reset = intHeader(reply.headers, 'ratelimit-reset');
    const resetAt = reset !== undefined ? unixSecondsToMonotonic(clock, reset) : undefined;
    if (limit === undefined || limit <= 0) return resetAt !== undefined && resetAt > now ? resetAt : now + CLOUD_429_DEFAULT_WAIT_MS;
    const perRequestMs = HOUR_MS / limit;
    const refilled = now + CLOUD_429_RECOVERY_REQUESTS * perRequestMs;
    const at = resetAt !== undefined ? Math.min(resetAt, refilled) : refilled;
    return Math.max(at, now + perRequestMs);
  }

  #parse<T extends v.GenericSchema>(shape: T, reply: HttpReply, what: string, expected: string): v.InferOutput<T> {
    const json = tryParseJson(reply.body);
    if (json === undefined) {
      throw new HetznerResponseError(`Cloud ${what}: reply is not JSON: ${excerpt(reply.body, [this.opts.token])}`, { status: reply.status });
    }
    const parsed = v.safeParse(shape, json);
    if (!parsed.success) {
      throw new HetznerResponseError(`Cloud ${what}: reply lacks ${expected}: ${excerpt(reply.body, [this.opts.token])}`, {
        status: reply.status,
      });
    }
    return parsed.output;
  }

  #errorFor(what: string, reply: HttpReply, notFound: string): HetznerError {
    const parsed = v.safeParse(ErrorReply, tryParseJson(reply.body));
    const status = reply.status;
    const code = parsed.success ? parsed.output.error.code : undefined;
    const apiMsg = parsed.success && parsed.output.error.message ? ` (${excerpt(parsed.output.error.message, [this.opts.token])})` : '';
    const tag = `Cloud ${what}: ${status}${code ? ' ' + code : ''}`;
    const opts = { status, code };
    switch (code ?? statusToCode(status)) {
      case 'unauthorized':
        this.#authFailure = new HetznerAuthError(
          `${tag}; the API token was rejected. Not retrying; put a valid read/write token of the floating IP's project in hcloud-token-file (or VIP_HCLOUD_TOKEN) and restart${apiMsg}`,
          opts,
        );
        return this.#authFailure;
      case 'forbidden':
      case 'token_readonly':
        return new HetznerForbiddenError(`${tag}; the token may not do this (a read/write token is needed)${apiMsg}`, opts);
      case 'not_found':
        return new HetznerNotFoundError(`${tag}; ${notFound}${apiMsg}`, opts);
      case 'locked':
        return new HetznerLockedError(`${tag}; another action is running on the floating IP${apiMsg}`, opts);
      case 'rate_limit_exceeded': {
        const retryAt = this.#recoveryAt(reply);
        this.#blockedUntil = retryAt;
        return new HetznerRateLimitError(
          `${tag}; the project's request budget is used up; next request in ${Math.ceil((retryAt - this.opts.clock.now()) / 1000)} s${apiMsg}`,
          { ...opts, retryAt },
        );
      }
      case 'conflict':
        return new HetznerServerError(`${tag}; the resource changed during the request${apiMsg}`, opts);
      case 'maintenance':
      case 'server_error':
      case 'service_error':
      case 'unavailable':
      case 'timeout':
        return new HetznerServerError(`${tag}${apiMsg}`, opts);
      case 'invalid_input':
      case 'json_error':
      case 'protected':
      case 'unsupported_error':
      case 'deprecated_api_endpoint':
        return new HetznerRejectedError(`${tag}; refused${apiMsg}`, opts);
      default:
        if (status >= 500) return new HetznerServerError(`${tag}${apiMsg}`, opts);
        return new HetznerResponseError(`${tag}: unexpected reply ${excerpt(reply.body, [this.opts.token])}`, opts);
    }
  }
}

/** For a reply without a readable error code: the code its status usually carries. */
function statusToCode(status: number): string | undefined {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 423) return 'locked';
  if (status === 429) return 'rate_limit_exceeded';
  return undefined;
}

function toAction(a: v.InferOutput<typeof ActionShape>): CloudAction {
  return { id: a.id, command: a.command, status: a.status, error: a.error ?? null };
}

/** IPv6 floating IPs are /64 networks; the API writes them with the prefix, but be lenient. */
export function networkOf(f: FloatingIp): string {
  return f.type === 'ipv6' && !f.ip.includes('/') ? `${f.ip}/64` : f.ip;
}

function intHeader(h: Headers, name: string): number | undefined {
  const v = h.get(name);
  if (v === null || !/^\s*\d+\s*$/.test(v)) return undefined;
  return Number(v);
}

/** This server's id from the metadata service (GET <base>/instance-id → "42"). */
export async function fetchInstanceId(
  fetchImpl: FetchLike,
  clock: Clock,
  metadataUrl: string,
  signal?: AbortSignal,
): Promise<number> {
  const url = `${metadataUrl.replace(/\/+$/, '')}/instance-id`;
  const what = `metadata GET ${url}`;
  const reply = await exchange(fetchImpl, clock, {
    method: 'GET',
    url,
    headers: { Accept: 'text/plain', 'User-Agent': 'vip-manager' },
    timeoutMs: METADATA_TIMEOUT_MS,
    what,
    signal,
  });
  if (reply.status >= 500) throw new HetznerServerError(`${what}: ${reply.status}`, { status: reply.status });
  const text = reply.body.trim();
  if (reply.status !== 200 || !/^\d+$/.test(text) || Number(text) <= 0) {
    throw new HetznerResponseError(`${what}: expected a server id, got ${reply.status} ${excerpt(reply.body, [])}; set hcloud-server-id`, {
      status: reply.status,
    });
  }
  return Number(text);
}
