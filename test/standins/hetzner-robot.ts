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
// Where the documentation is silent the stand-in picks one behaviour and says so:
//   - limits are counted per method over a sliding hour, every received request counting;
//   - while locked out after three failed logins it keeps answering 401;
//   - a switch holds the failover IP locked for `switchLockMs` (default 0) after it completes;
//     the POST itself can be made to take `switchDelayMs` of fake time (the real one returns
//     once routed, 40-60 s);
//   - FAILOVER_ALREADY_ROUTED carries only the error object.
import { type IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { type Clock } from '../../src/vip/hetzner-clock.js';
import { type Fault, faultReply, type LoggedRequest, type Reply, StandinServer } from './hetzner-standin-http.js';

export const ROBOT_DOC_LIMITS = { GET: 100, POST: 50, DELETE: 50 } as const;
const HOUR = 3_600_000;
const LOCKOUT_MS = 10 * 60_000;
const LOCKOUT_AFTER = 3;

export interface RobotFailoverIp {
  ip: string;
  /** Main IP of the server the failover IP belongs to (not where it is routed). */
  serverIp: string;
  serverNumber: number;
  active: string | null;
}

export interface RobotStandinOptions {
  /** A FakeClock for unit tests; realClock (src/vip/hetzner-clock.ts) for end-to-end tests. */
  clock: Clock;
  /** Address to listen on (default 127.0.0.1), e.g. a test LAN's switch address. */
  host?: string;
  user: string;
  pass: string;
  failoverIps: RobotFailoverIp[];
  /** Main IPs of the account's servers (valid targets). */
  servers: string[];
  limits?: Partial<Record<'GET' | 'POST' | 'DELETE', number>>;
  switchLockMs?: number;
  switchDelayMs?: number;
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
  #lockedUntil = new Map<string, number>();

  private constructor(private readonly opts: RobotStandinOptions) {
    for (const f of opts.failoverIps) this.failovers.set(f.ip, { ...f });
    this.server = new StandinServer(opts.clock, (req, headers) => this.#handle(req, headers));
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
    return this.server.close();
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

  #handle(req: LoggedRequest, headers: IncomingMessage['headers']): Reply | 'hang' {
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

    if (now < (this.#lockedUntil.get(f.ip) ?? 0)) return err(409, 'FAILOVER_LOCKED', 'The failover IP is currently locked');
    if (method === 'DELETE') {
      if (f.active === null) return err(409, 'FAILOVER_ALREADY_ROUTED', 'The failover IP is not routed');
      f.active = null;
      this.#lock(f.ip);
      return { status: 200, body: failoverBody(f), delayMs: this.opts.switchDelayMs };
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
    if (f.active === target) return err(409, 'FAILOVER_ALREADY_ROUTED', 'The failover IP is already routed to the selected server');
    f.active = target;
    this.#lock(f.ip);
    return { status: 200, body: failoverBody(f), delayMs: this.opts.switchDelayMs };
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
