// Stand-in for the Hetzner Cloud API (floating IPs, actions) and the server metadata service,
// following the Hetzner Cloud API reference (https://docs.hetzner.cloud/), sections:
//   "Authentication": Authorization: Bearer <token>.
//   "Errors": {"error": {"code", "message", "details"}} with the documented codes (forbidden,
//     unauthorized, invalid_input, json_error, locked, not_found, rate_limit_exceeded,
//     server_error, service_error, maintenance, conflict, unavailable, timeout, ...).
//   "Rate Limiting": 3600 requests per hour per project, refilled gradually (one per second);
//     every reply has RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (UNIX timestamp at
//     which the budget is full again); over the limit → 429 rate_limit_exceeded.
//   "Pagination": page / per_page (default 25, max 50), meta.pagination.next_page.
//   "Floating IPs": GET /floating_ips, GET /floating_ips/{id} → {"floating_ip": {id, name,
//     description, ip, type, server, dns_ptr, home_location, blocked, protection, labels,
//     created}}; ipv6 floating IPs carry a /64 network as `ip`.
//   "Floating IP Actions": POST /floating_ips/{id}/actions/assign {"server": id} and
//     .../unassign → 201 {"action": {id, command, status, progress, started, finished,
//     resources, error}}; GET /floating_ips/actions/{id} and /floating_ips/{id}/actions/{id}.
//   "Actions": GET /actions/{id}; status running | success | error.
//   "Server Metadata": GET http://169.254.169.254/hetzner/v1/metadata/instance-id → "42".
// Where the documentation is silent the stand-in picks one behaviour and says so:
//   - HTTP statuses per error code (the reference lists codes, not statuses): unauthorized 401,
//     forbidden/token_readonly 403, not_found 404, conflict 409, locked 423,
//     rate_limit_exceeded 429, invalid_input/json_error 400, server_error 500,
//     maintenance/service_error/unavailable 503, timeout 504;
//   - an action runs for `actionMs` on the stand-in's clock (default 1000; 0 = finished at once):
//     it is created `running` (progress 0), and on that clock it ends `success` (progress 100,
//     `finished` set) and the assignment changes then, or `error`; a second assign/unassign
//     meanwhile gets `locked`. The clock is a FakeClock in unit tests and the real clock
//     (realClock) inside daemon tests, where it can serve HTTPS on any address (`host`, `tls`);
//   - assigning to the server that already has it starts a (successful) no-op action;
//   - every received request, authorised or not, spends one unit of the rate budget.
import { type IncomingMessage } from 'node:http';
import { type Clock } from '../../src/vip/hetzner/clock.js';
import { type Fault, faultReply, type LoggedRequest, type Reply, StandinServer, type StandinTls } from './hetzner-standin-http.js';

const HOUR = 3_600_000;

export const CLOUD_ERROR_STATUS: Record<string, number> = {
  unauthorized: 401,
  forbidden: 403,
  token_readonly: 403,
  not_found: 404,
  conflict: 409,
  locked: 423,
  rate_limit_exceeded: 429,
  invalid_input: 400,
  json_error: 400,
  server_error: 500,
  maintenance: 503,
  service_error: 503,
  unavailable: 503,
  timeout: 504,
};

export interface CloudFloatingIp {
  id: number;
  ip: string;
  type: 'ipv4' | 'ipv6';
  server: number | null;
}

interface Action {
  id: number;
  command: string;
  status: 'running' | 'success' | 'error';
  progress: number;
  started: string;
  finished: string | null;
  resources: { id: number; type: string }[];
  error: { code: string; message: string } | null;
  fip: number;
}

export interface CloudStandinOptions {
  /** A FakeClock for unit tests; realClock (src/vip/hetzner/clock.ts) for daemon tests. */
  clock: Clock;
  /** Address both servers listen on (default 127.0.0.1), e.g. a test LAN's switch address. */
  host?: string;
  /** Serve the API over HTTPS with this certificate (needed off loopback: the token goes with every request). */
  tls?: StandinTls;
  token: string;
  floatingIps: CloudFloatingIp[];
  servers: number[];
  /** What the metadata service says this server is. */
  instanceId: number | string;
  limit?: number;
  actionMs?: number;
}

/** A fault for requests whose "METHOD path" starts with `match`. */
interface RouteFault {
  match: string;
  fault: Fault;
}

export class CloudStandin {
  readonly api: StandinServer;
  readonly metadata: StandinServer;
  readonly floating = new Map<number, CloudFloatingIp>();
  readonly actions = new Map<number, Action>();
  readonly faults: RouteFault[] = [];
  readonly metadataFaults: Fault[] = [];
  readonly actionFailures: { code: string; message: string }[] = [];
  /** Token bucket: fractional requests left. */
  #tokens: number;
  #lastRefill: number;
  #actionSeq = 100;
  /** Timers of actions still running, cleared on close (a real-clock timer would outlive the test). */
  #actionTimers = new Set<unknown>();
  rateLimited = 0;
  unauthorized = 0;

  private constructor(private readonly opts: CloudStandinOptions) {
    for (const f of opts.floatingIps) this.floating.set(f.id, { ...f });
    this.#tokens = this.#limit();
    this.#lastRefill = opts.clock.now();
    this.api = new StandinServer(opts.clock, (req, headers) => this.#withRate(req, headers), opts.tls);
    // The real metadata service is plain http on a link-local address, and no token goes to it.
    this.metadata = new StandinServer(opts.clock, (req) => this.#metadata(req));
  }

  static async start(opts: CloudStandinOptions): Promise<CloudStandin> {
    const s = new CloudStandin(opts);
    await s.api.listen(opts.host);
    await s.metadata.listen(opts.host);
    return s;
  }

  get url(): string {
    return `${this.api.url}/v1`;
  }

  get metadataUrl(): string {
    return `${this.metadata.url}/hetzner/v1/metadata`;
  }

  get parked(): number {
    return this.api.parked + this.metadata.parked;
  }

  async close(): Promise<void> {
    for (const t of this.#actionTimers) this.opts.clock.clearTimeout(t);
    this.#actionTimers.clear();
    await this.api.close();
    await this.metadata.close();
  }

  /** Scripts the next answer for requests whose "METHOD /path" starts with `match`. */
  inject(match: string, ...faults: Fault[]): void {
    for (const fault of faults) this.faults.push({ match, fault });
  }

  /** The next action created ends in status "error" with this error. */
  failNextAction(code = 'action_failed', message = 'Action failed'): void {
    this.actionFailures.push({ code, message });
  }

  /** Assigns out of band (another node, the console). */
  assign(id: number, server: number | null): void {
    const f = this.floating.get(id);
    if (!f) throw new Error(`no floating IP ${id}`);
    f.server = server;
  }

  /** Sets the bucket (e.g. empty it to provoke a 429). */
  setRemaining(n: number): void {
    this.#refill();
    this.#tokens = n;
  }

  maxPerHour(): number {
    return this.api.maxInWindow(HOUR);
  }

  #limit(): number {
    return this.opts.limit ?? 3600;
  }

  #refill(): void {
    const now = this.opts.clock.now();
    const perMs = this.#limit() / HOUR;
    this.#tokens = Math.min(this.#limit(), this.#tokens + (now - this.#lastRefill) * perMs);
    this.#lastRefill = now;
  }

  #rateHeaders(): Record<string, string> {
    const limit = this.#limit();
    const remaining = Math.max(0, Math.floor(this.#tokens));
    const msToFull = ((limit - this.#tokens) / limit) * HOUR;
    const reset = Math.ceil((this.opts.clock.wallNow() + msToFull) / 1000);
    return { 'RateLimit-Limit': String(limit), 'RateLimit-Remaining': String(remaining), 'RateLimit-Reset': String(reset) };
  }

  #withRate(req: LoggedRequest, headers: IncomingMessage['headers']): Reply | 'hang' {
    this.#refill();
    if (this.#tokens < 1) {
      this.rateLimited++;
      return { status: 429, body: errBody('rate_limit_exceeded', 'limit of 3600 requests per hour reached'), headers: this.#rateHeaders() };
    }
    this.#tokens -= 1;
    const reply = this.#handle(req, headers);
    if (reply === 'hang') return reply;
    return { ...reply, headers: { ...this.#rateHeaders(), ...(reply.headers ?? {}) } };
  }

  #handle(req: LoggedRequest, headers: IncomingMessage['headers']): Reply | 'hang' {
    if (headers.authorization !== `Bearer ${this.opts.token}`) {
      this.unauthorized++;
      return error('unauthorized', 'unable to authenticate');
    }
    const key = `${req.method} ${req.path}`;
    const i = this.faults.findIndex((f) => key.startsWith(f.match));
    if (i >= 0) {
      const [{ fault }] = this.faults.splice(i, 1) as [RouteFault];
      return faultReply(fault);
    }
    const url = new URL(req.path, 'http://x');
    const p = url.pathname.replace(/^\/v1/, '');
    let m: RegExpExecArray | null;
    if (req.method === 'GET' && p === '/floating_ips') return this.#list(url);
    if (req.method === 'GET' && (m = /^\/floating_ips\/(\d+)$/.exec(p))) {
      const f = this.floating.get(Number(m[1]));
      return f ? { status: 200, body: { floating_ip: fipBody(f) } } : error('not_found', 'Floating IP not found');
    }
    if (req.method === 'POST' && (m = /^\/floating_ips\/(\d+)\/actions\/(assign|unassign)$/.exec(p))) {
      return this.#action(Number(m[1]), m[2] as 'assign' | 'unassign', req.body, headers);
    }
    if (req.method === 'GET' && (m = /^\/(?:floating_ips\/(?:\d+\/)?)?actions\/(\d+)$/.exec(p))) {
      const a = this.actions.get(Number(m[1]));
      return a ? { status: 200, body: { action: actionBody(a) } } : error('not_found', 'Action not found');
    }
    return error('not_found', 'no such endpoint');
  }

  #list(url: URL): Reply {
    const page = Math.max(1, Number(url.searchParams.get('page') ?? '1'));
    const perPage = Math.min(50, Math.max(1, Number(url.searchParams.get('per_page') ?? '25')));
    const all = [...this.floating.values()].sort((a, b) => a.id - b.id);
    const last = Math.max(1, Math.ceil(all.length / perPage));
    const items = all.slice((page - 1) * perPage, page * perPage).map(fipBody);
    return {
      status: 200,
      body: {
        floating_ips: items,
        meta: {
          pagination: {
            page,
            per_page: perPage,
            previous_page: page > 1 ? page - 1 : null,
            next_page: page < last ? page + 1 : null,
            last_page: last,
            total_entries: all.length,
          },
        },
      },
    };
  }

  #action(id: number, kind: 'assign' | 'unassign', body: string, headers: IncomingMessage['headers']): Reply {
    const f = this.floating.get(id);
    if (!f) return error('not_found', 'Floating IP not found');
    let server: number | null = null;
    if (kind === 'assign') {
      if (!/^application\/json/.test(headers['content-type'] ?? '')) return error('json_error', 'expected application/json');
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        return error('json_error', 'invalid JSON');
      }
      const s = (parsed as { server?: unknown }).server;
      if (typeof s !== 'number' || !Number.isInteger(s)) return error('invalid_input', "invalid input in field 'server'");
      if (!this.opts.servers.includes(s)) return error('not_found', 'server not found');
      server = s;
    }
    const running = [...this.actions.values()].some((a) => a.fip === id && a.status === 'running');
    if (running) return error('locked', 'floating IP is locked by a running action');
    const now = this.opts.clock;
    const failure = this.actionFailures.shift() ?? null;
    const a: Action = {
      id: ++this.#actionSeq,
      command: kind === 'assign' ? 'assign_floating_ip' : 'unassign_floating_ip',
      status: 'running',
      progress: 0,
      started: new Date(now.wallNow()).toISOString(),
      finished: null,
      resources: [
        ...(server !== null ? [{ id: server, type: 'server' }] : []),
        { id, type: 'floating_ip' },
      ],
      error: null,
      fip: id,
    };
    this.actions.set(a.id, a);
    const finish = (): void => {
      a.progress = 100;
      a.finished = new Date(now.wallNow()).toISOString();
      if (failure) {
        a.status = 'error';
        a.error = failure;
      } else {
        a.status = 'success';
        f.server = server;
      }
    };
    const ms = this.opts.actionMs ?? 1000;
    if (ms <= 0) finish();
    else {
      const timer = now.setTimeout(() => {
        this.#actionTimers.delete(timer);
        finish();
      }, ms);
      this.#actionTimers.add(timer);
    }
    return { status: 201, body: { action: actionBody(a) } };
  }

  #metadata(req: LoggedRequest): Reply | 'hang' {
    const fault = this.metadataFaults.shift();
    if (fault) return faultReply(fault);
    if (req.method === 'GET' && req.path === '/hetzner/v1/metadata/instance-id') {
      return { status: 200, text: String(this.opts.instanceId) };
    }
    if (req.method === 'GET' && req.path === '/hetzner/v1/metadata') {
      return { status: 200, text: `availability-zone: fsn1-dc14\nhostname: node\ninstance-id: ${this.opts.instanceId}\nregion: eu-central\n` };
    }
    return { status: 404, text: 'not found' };
  }
}

function errBody(code: string, message: string): unknown {
  return { error: { code, message, details: {} } };
}

function error(code: string, message: string): Reply {
  return { status: CLOUD_ERROR_STATUS[code] ?? 500, body: errBody(code, message) };
}

/** Fault helper: an error reply in the documented shape with the assumed status. */
export function cloudError(code: string, message = code): Fault {
  return { kind: 'reply', status: CLOUD_ERROR_STATUS[code] ?? 500, body: errBody(code, message) };
}

function fipBody(f: CloudFloatingIp): unknown {
  return {
    id: f.id,
    name: `fip-${f.id}`,
    description: null,
    ip: f.ip,
    type: f.type,
    server: f.server,
    dns_ptr: [],
    home_location: { id: 1, name: 'fsn1', description: 'Falkenstein DC Park 1', country: 'DE', city: 'Falkenstein', latitude: 50.47612, longitude: 12.370071, network_zone: 'eu-central' },
    blocked: false,
    protection: { delete: false },
    labels: {},
    created: '2026-01-01T00:00:00+00:00',
  };
}

function actionBody(a: Action): unknown {
  const { fip: _fip, ...rest } = a;
  return rest;
}
