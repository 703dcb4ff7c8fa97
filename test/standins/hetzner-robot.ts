// Stand-in for the Hetzner Robot webservice's failover endpoints, following the Robot webservice
// documentation (https://robot.hetzner.com/doc/webservice/en.html), sections:
//   "General/Errors": HTTP Basic auth; errors {"error": {"status", "code", "message"}};
//     401 on bad credentials, and "the IP from which you attempt to access will be blocked for
//     10 minutes after 3 failed login attempts"; 403 RATE_LIMIT_EXCEEDED with max_request and
//     interval (seconds) when a request limit is reached; 503 during maintenance.
//   "Failover": GET /failover/{failover-ip} (100 requests per hour),
//     POST /failover/{failover-ip} with form field active_server_ip (50 per hour),
//     DELETE /failover/{failover-ip} (50 per hour); reply {"failover": {ip, netmask, server_ip,
//     server_ipv6_net, server_number, active_server_ip}}; errors 400 INVALID_INPUT, 404 NOT_FOUND,
//     404 FAILOVER_NEW_SERVER_NOT_FOUND, 409 FAILOVER_ALREADY_ROUTED, 409 FAILOVER_LOCKED,
//     500 FAILOVER_FAILED, 500 FAILOVER_NOT_COMPLETE.
//   POST and DELETE answer once the switch is done: docs.hetzner.com "Failover" says "Switching
//     a failover IP/subnet takes between 40 and 60 seconds", and Ansible's community.hrobot
//     failover_ip module documents "the API call returns when the failover IP has been
//     successfully routed to the new address, respectively successfully unrouted" (its timeout
//     defaults to 180 s). So a switch answers only after `switchMs` (default 40-60 s, below).
//   409 FAILOVER_ALREADY_ROUTED carries the failover object beside the error object, as in the
//     reply recorded in community.hrobot's tests (tests/unit/plugins/modules/test_failover_ip.py,
//     test_rerouting_already_routed): {"error": {...}, "failover": {..., "active_server_ip"}}.
// Where the documentation is silent the stand-in picks one behaviour and says so:
//   - limits are counted per method over a sliding hour, every received request counting;
//   - while locked out after three failed logins it keeps answering 401;
//   - each switch takes a duration drawn from `switchMs` by a seeded generator (reproducible
//     runs, yet switches of different lengths); routing changes when the switch ends, GET shows
//     the old routing until then, and another POST/DELETE meanwhile gets 409 FAILOVER_LOCKED;
//   - a switch runs to its end even if the client gives up waiting (the request only waits for
//     a job Robot runs); `switches` records each one and whether its client was still there;
//   - after a switch the IP stays locked for `switchLockMs` more (default 0);
//   - DELETE of an unrouted IP answers FAILOVER_ALREADY_ROUTED with the failover object too
//     (active_server_ip null), by analogy with POST.
import { type IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { type Clock } from '../../src/vip/hetzner/clock.js';
import { type Deferred, type Fault, faultReply, type LoggedRequest, type Reply, StandinServer, type StandinTls } from './hetzner-standin-http.js';
// A seeded generator gives the same switch durations on every run.
import { mulberry32 } from '../harness/prng.js';

export const ROBOT_DOC_LIMITS = { GET: 100, POST: 50, DELETE: 50 } as const;
const HOUR = 3_600_000;
const LOCKOUT_MS = 10 * 60_000;
const LOCKOUT_AFTER = 3;
/** How long a failover switch takes on Hetzner's side (docs.hetzner.com, "Failover"). */
export const ROBOT_SWITCH_MS = { min: 40_000, max: 60_000 } as const;

export interface RobotFailoverIp {
  ip: string;
  /** Main IP of the server the failover IP belongs to (not where it is routed). */
  serverIp: string;
  serverNumber: number;
  active: string | null;
}

export interface RobotStandinOptions {
  /** A FakeClock for unit tests; realClock (src/vip/hetzner/clock.ts) for end-to-end tests. */
  clock: Clock;
  /** Address to listen on (default 127.0.0.1), e.g. a test LAN's switch address. */
  host?: string;
  /** Serve HTTPS with this certificate (needed off loopback: the daemon refuses http:// there). */
  tls?: StandinTls;
  user: string;
  pass: string;
  failoverIps: RobotFailoverIp[];
  /** Main IPs of the account's servers (valid targets). */
  servers: string[];
  limits?: Partial<Record<'GET' | 'POST' | 'DELETE', number>>;
  switchLockMs?: number;
  /**
   * How long each switch (an accepted POST or DELETE) takes before it answers: a fixed time, or
   * a range each switch draws from. Default ROBOT_SWITCH_MS, Robot's real 40-60 s; tests that
   * need speed shorten it explicitly (0: routed at once).
   */
  switchMs?: number | { readonly min: number; readonly max: number };
  /** Seed of the switch durations (default 1). */
  seed?: number;
}

export interface RobotSwitch {
  readonly ip: string;
  readonly method: 'POST' | 'DELETE';
  readonly target: string | null;
  readonly startedAt: number;
  readonly ms: number;
  doneAt?: number;
  /** The client gave up waiting before the switch ended (it still ended). */
  abandoned?: boolean;
}

type M = 'GET' | 'POST' | 'DELETE';

export class RobotStandin {
  readonly server: StandinServer;
  readonly failovers = new Map<string, RobotFailoverIp>();
  readonly faults: Record<M, Fault[]> = { GET: [], POST: [], DELETE: [] };
  failedLogins: number[] = [];
  lockedOutUntil = 0;
  /** Every request that arrived while the client was locked out. */
  lockedOutRequests = 0;
  rateLimited = 0;
  readonly switches: RobotSwitch[] = [];
  #lockedUntil = new Map<string, number>();
  /** Switches under way, by failover IP, with their timer (cleared on close). */
  #switching = new Map<string, { sw: RobotSwitch; timer: unknown }>();
  #rand: () => number;

  private constructor(private readonly opts: RobotStandinOptions) {
    for (const f of opts.failoverIps) this.failovers.set(f.ip, { ...f });
    this.#rand = mulberry32(opts.seed ?? 1);
    this.server = new StandinServer(opts.clock, (req, headers) => this.#handle(req, headers), opts.tls);
  }

  static async start(opts: RobotStandinOptions): Promise<RobotStandin> {
    const s = new RobotStandin(opts);
    await s.server.listen(opts.host);
    return s;
  }

  get url(): string {
    return this.server.url;
  }

  get parked(): number {
    return this.server.parked;
  }

  close(): Promise<void> {
    for (const { timer } of this.#switching.values()) this.opts.clock.clearTimeout(timer);
    this.#switching.clear();
    return this.server.close();
  }

  /** Whether a switch of `ip` is under way. */
  switching(ip: string): boolean {
    return this.#switching.has(ip);
  }

  /** Scripts the next answers to `method` (after auth and rate limiting pass). */
  inject(method: M, ...faults: Fault[]): void {
    this.faults[method].push(...faults);
  }

  /**
   * Routes a failover IP out of band (another node, or an operator in the Robot panel). With
   * `asSwitch`, it behaves like another client's successful POST: the IP is then locked for
   * `switchLockMs`, and that request counts against the account's hourly POST budget.
   */
  routeTo(ip: string, active: string | null, asSwitch = false): void {
    const f = this.failovers.get(ip);
    if (!f) throw new Error(`no failover ${ip}`);
    f.active = active;
    if (asSwitch) this.#lock(ip);
  }

  active(ip: string): string | null | undefined {
    return this.failovers.get(ip)?.active;
  }

  count(method: M, from?: number, to?: number): number {
    return this.server.count(method, from, to);
  }

  maxPerHour(method: M): number {
    return this.server.maxInWindow(HOUR, method);
  }

  #limit(m: M): number {
    return this.opts.limits?.[m] ?? ROBOT_DOC_LIMITS[m];
  }

  #handle(req: LoggedRequest, headers: IncomingMessage['headers']): Reply | 'hang' | Deferred {
    const now = this.opts.clock.now();
    const method = req.method as M;
    if (now < this.lockedOutUntil) {
      this.lockedOutRequests++;
      return err(401, 'UNAUTHORIZED', 'Unauthorized');
    }
    if (!this.#authorised(headers.authorization)) {
      this.failedLogins = this.failedLogins.filter((t) => now - t < LOCKOUT_MS);
      this.failedLogins.push(now);
      if (this.failedLogins.length >= LOCKOUT_AFTER) this.lockedOutUntil = now + LOCKOUT_MS;
      return err(401, 'UNAUTHORIZED', 'Unauthorized');
    }
    if (method !== 'GET' && method !== 'POST' && method !== 'DELETE') return err(405, 'METHOD_NOT_ALLOWED', 'method not allowed');
    const limit = this.#limit(method);
    const inWindow = this.server.log.filter((r) => r.method === method && r.at > now - HOUR).length; // includes this one
    if (inWindow > limit) {
      this.rateLimited++;
      return { status: 403, body: { error: { status: 403, code: 'RATE_LIMIT_EXCEEDED', max_request: limit, interval: 3600, message: 'rate limit exceeded' } } };
    }
    const fault = this.faults[method].shift();
    if (fault) return faultReply(fault);

    const m = /^\/failover\/([^/?]+)$/.exec(req.path);
    const ip = m ? decodeURIComponent(m[1] as string) : undefined;
    const f = ip !== undefined ? this.failovers.get(ip) : undefined;
    if (!f) return err(404, 'NOT_FOUND', 'Failover IP not found');
    if (method === 'GET') return { status: 200, body: failoverBody(f) };

    if (this.#switching.has(f.ip) || now < (this.#lockedUntil.get(f.ip) ?? 0)) {
      return err(409, 'FAILOVER_LOCKED', 'The failover IP is currently locked');
    }
    if (method === 'DELETE') {
      if (f.active === null) return alreadyRouted(f, 'The failover IP is not routed');
      return this.#switch(f, 'DELETE', null, req);
    }
    // POST
    if (!/^application\/x-www-form-urlencoded/.test(headers['content-type'] ?? '')) {
      return { status: 400, body: { error: { status: 400, code: 'INVALID_INPUT', message: 'invalid input', missing: ['active_server_ip'], invalid: null } } };
    }
    const target = new URLSearchParams(req.body).get('active_server_ip');
    if (target === null || target === '') {
      return { status: 400, body: { error: { status: 400, code: 'INVALID_INPUT', message: 'invalid input', missing: ['active_server_ip'], invalid: null } } };
    }
    if (isIP(target) === 0) {
      return { status: 400, body: { error: { status: 400, code: 'INVALID_INPUT', message: 'invalid input', missing: null, invalid: ['active_server_ip'] } } };
    }
    if (!this.opts.servers.includes(target)) return err(404, 'FAILOVER_NEW_SERVER_NOT_FOUND', 'Failover IP destination server not found');
    if (f.active === target) return alreadyRouted(f, 'The failover IP is already routed to the selected server');
    return this.#switch(f, 'POST', target, req);
  }

  /** Starts a switch; it answers (200, the new routing) when it ends, on the stand-in's clock. */
  #switch(f: RobotFailoverIp, method: 'POST' | 'DELETE', target: string | null, req: LoggedRequest): Reply | Deferred {
    const ms = this.#nextSwitchMs();
    const sw: RobotSwitch = { ip: f.ip, method, target, startedAt: this.opts.clock.now(), ms };
    this.switches.push(sw);
    const finish = (): Reply => {
      f.active = target;
      sw.doneAt = this.opts.clock.now();
      sw.abandoned = req.abandoned === true;
      this.#lock(f.ip);
      return { status: 200, body: failoverBody(f) };
    };
    if (ms <= 0) return finish();
    return {
      deferred: new Promise<Reply>((resolve) => {
        const timer = this.opts.clock.setTimeout(() => {
          this.#switching.delete(f.ip);
          resolve(finish());
        }, ms);
        this.#switching.set(f.ip, { sw, timer });
      }),
    };
  }

  #nextSwitchMs(): number {
    const s = this.opts.switchMs ?? ROBOT_SWITCH_MS;
    if (typeof s === 'number') return s;
    return Math.round(s.min + (s.max - s.min) * this.#rand());
  }

  #lock(ip: string): void {
    const ms = this.opts.switchLockMs ?? 0;
    if (ms > 0) this.#lockedUntil.set(ip, this.opts.clock.now() + ms);
  }

  #authorised(header: string | undefined): boolean {
    if (!header?.startsWith('Basic ')) return false;
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    return decoded === `${this.opts.user}:${this.opts.pass}`;
  }
}

function err(status: number, code: string, message: string): Reply {
  return { status, body: { error: { status, code, message } } };
}

/** 409 FAILOVER_ALREADY_ROUTED as Robot sends it: the error and the failover object. */
function alreadyRouted(f: RobotFailoverIp, message: string): Reply {
  return { status: 409, body: { error: { status: 409, code: 'FAILOVER_ALREADY_ROUTED', message }, ...(failoverBody(f) as object) } };
}


function failoverBody(f: RobotFailoverIp): unknown {
  return {
    failover: {
      ip: f.ip,
      netmask: '255.255.255.255',
      server_ip: f.serverIp,
      server_ipv6_net: '2a01:4f8:111:4221::',
      server_number: f.serverNumber,
      active_server_ip: f.active,
    },
  };
}
