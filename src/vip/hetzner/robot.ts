// manager-type hetzner: a Hetzner Robot failover IP, moved by routing it to this server's main
// IP through the Robot webservice. Nothing is added to the interface: Hetzner routes the
// failover IP, and (as the original's README says) it must be configured on every server.
//
// The Robot API allows 100 GETs and 50 POSTs per hour, so the routing is cached and the API is
// asked only when it matters:
//   - at start (one GET: a restarted leader learns it still holds the IP and sends no POST);
//   - in acquire(), a GET when the cached routing is unknown, then a POST unless it is ours;
//   - once, ROBOT_CONFIRM_AFTER_MS after our own POST (the switch takes 40–60 s);
//   - every ROBOT_REFRESH_MS while we believe we hold it, to notice it being taken away,
//     skipped while the GET budget is low so acquire() keeps its GETs.
// observe() answers from the cache and never waits for the API.
import { isIP } from 'node:net';
import { type Config } from '../../config/schema.js';
import { type Logger } from '../../log.js';
import { type HolderState, type PendingRequest, type VipManager } from '../../reconcile/ports.js';
import { type Clock, realClock } from './clock.js';
import { registerBasicAuth } from '../../ops/redact.js';
import { readRobotCredentials } from './credentials.js';
import { HetznerBudgetError, HetznerConfigError, HetznerNotReadyError, HetznerResponseError } from './errors.js';
import { type FetchLike } from './http.js';
import { sameIp } from './ip.js';
import { type LocalAddresses } from './local.js';
import { HOUR_MS } from './rate-budget.js';
import { HetznerManagerBase } from './manager-base.js';
import { withTimeout } from './retry.js';
import { ROBOT_GET_LIMIT, RobotApi, type RobotMethod } from './robot-api.js';

/** Housekeeping cadence. A tick sends nothing unless a refresh or confirmation is due. */
export const ROBOT_TICK_MS = 10_000;
/** Share of the hourly GET budget spent on periodic refreshes; the rest stays for acquire(). */
export const ROBOT_REFRESH_SHARE = 0.25;
/** Periodic refresh while held: 3 600 000 / (100 × 0.25) = 144 s, i.e. 25 GETs per hour. */
export const ROBOT_REFRESH_MS = HOUR_MS / (ROBOT_GET_LIMIT * ROBOT_REFRESH_SHARE);
/** One confirming GET this long after our own POST, when a 40–60 s switch is surely over. */
export const ROBOT_CONFIRM_AFTER_MS = 60_000;
/** A local query (the interface's address) that takes longer than this is treated as failed. */
export const LOCAL_TIMEOUT_MS = 2_000;

/** Optional collaborators, injectable for tests and for the daemon. */
export interface HetznerDeps {
  fetch?: FetchLike;
  /** Overrides of the documented Robot per-hour limits (e.g. to share an account's budget). */
  robotLimits?: Partial<Record<RobotMethod, number>>;
}

export interface RobotSettings {
  vip: string;
  iface: string | undefined;
  serverIp: string | undefined;
  unrouteOnRelease: boolean;
  retryAfterMs: number;
  retryNum: number;
}

type Routing = { readonly known: false } | { readonly known: true; readonly active: string | null; readonly at: number };
const UNKNOWN: Routing = { known: false };

export class HetznerRobotManager extends HetznerManagerBase implements VipManager {
  readonly kind = 'hetzner' as const;
  #routing: Routing = UNKNOWN;
  #serverIp: string | undefined;
  #serverIpProblem: string | undefined;
  #confirmAt: number | undefined;

  constructor(
    private readonly settings: RobotSettings,
    private readonly local: LocalAddresses,
    log: Logger,
    clock: Clock,
    private readonly api: RobotApi,
    closing: AbortController,
  ) {
    super(log, clock, closing, {
      label: 'Hetzner Robot', tickMs: ROBOT_TICK_MS, retryAfterMs: settings.retryAfterMs, retryNum: settings.retryNum,
      // Robot's deferrals (rate limit intervals, a 40-60 s lock) are long: never wait them out here.
      deferAlways: true,
    });
  }

  async start(onChange: () => void): Promise<void> {
    this.listen(onChange);
    await this.queue.run(async () => {
      await this.#resolveServerIp();
      if (this.#serverIp !== undefined) await this.#read('start');
    }).catch((err: unknown) => this.absorb(err, 'initial read of the failover routing'));
    this.markReported();
    this.log.info(
      { vip: this.settings.vip, serverIp: this.#serverIp, held: this.#held() },
      'Hetzner Robot failover manager started',
    );
    this.armTick('refreshing the failover routing');
  }

  async observe(): Promise<HolderState> {
    // What the reconciler has now seen; onChange fires only for changes after this.
    this.markReported();
    const held = this.#held();
    if (this.fatal) return { held, ready: false, detail: this.fatal.message };
    if (this.#serverIp === undefined) {
      return { held: false, ready: false, detail: this.#serverIpProblem ?? "this server's main IP is not known yet" };
    }
    return { held, ready: true };
  }

  acquire(): Promise<void> {
    return this.acted(async () => {
      if (this.fatal) throw this.fatal;
      const me = await this.#requireServerIp();
      if (this.#held()) return;
      for (let attempt = 1; ; attempt++) {
        try {
          // Ask first only when we do not know: a GET is cheaper than a POST (100 vs 50 an
          // hour), and with no GET left the POST's FAILOVER_ALREADY_ROUTED answers it too.
          if (!this.#routing.known && this.api.canSend('GET')) await this.#read('acquire');
          if (this.#held()) return;
          const { routing, alreadyRouted } = await this.api.routeFailover(this.settings.vip, me);
          this.#setRouting(routing.activeServerIp);
          if (!this.#held()) {
            throw new HetznerResponseError(
              `Robot POST /failover/${this.settings.vip} succeeded but the failover IP is routed to ${routing.activeServerIp ?? 'nothing'}, not ${me}`,
            );
          }
          if (!alreadyRouted) this.#confirmAt = this.clock.now() + ROBOT_CONFIRM_AFTER_MS;
          this.log.info({ vip: this.settings.vip, serverIp: me, alreadyRouted }, 'Hetzner failover IP routed to this server');
          return;
        } catch (err) {
          await this.afterFailure(err, attempt, 'acquire');
        }
      }
    });
  }

  release(): Promise<void> {
    return this.acted(async () => {
      const me = this.#serverIp;
      if (!this.settings.unrouteOnRelease) {
        // Nothing to send: the next leader routes the IP to itself. What we knew ("ours") is
        // about to become wrong, so forget it; acquire() will ask again before any POST.
        if (this.#held()) this.#routing = UNKNOWN;
        this.#confirmAt = undefined;
        return;
      }
      if (this.fatal) throw this.fatal;
      if (me === undefined) return; // we cannot have routed it here
      for (let attempt = 1; ; attempt++) {
        try {
          if (!this.#routing.known) {
            if (!this.api.canSend('GET')) {
              // Never DELETE blind: the IP may already be routed to the new leader.
              throw new HetznerBudgetError(`not unrouting ${this.settings.vip} yet: its routing is unknown and no GET is available`, {
                retryAt: this.api.budgets.GET.nextFreeAt(),
              });
            }
            await this.#read('release');
          }
          if (!this.#held()) return;
          const routing = await this.api.unrouteFailover(this.settings.vip);
          this.#setRouting(routing.activeServerIp);
          this.log.info({ vip: this.settings.vip }, 'Hetzner failover IP unrouted');
          return;
        } catch (err) {
          await this.afterFailure(err, attempt, 'release');
        }
      }
    });
  }

  inFlight(): readonly PendingRequest[] {
    return this.api.inFlight.list();
  }

  // ---- internals ----

  #held(): boolean {
    return this.#routing.known && this.#serverIp !== undefined && sameIp(this.#routing.active, this.#serverIp);
  }

  #setRouting(active: string | null): void {
    this.#routing = { known: true, active, at: this.clock.now() };
  }

  async #read(reason: string): Promise<void> {
    const r = await this.api.getFailover(this.settings.vip);
    this.#setRouting(r.activeServerIp);
    this.#confirmAt = undefined;
    this.log.debug({ vip: this.settings.vip, active: r.activeServerIp, reason }, 'Hetzner failover routing read');
  }

  async #requireServerIp(): Promise<string> {
    if (this.#serverIp === undefined) await this.#resolveServerIp();
    if (this.#serverIp === undefined) {
      throw new HetznerNotReadyError(this.#serverIpProblem ?? "this server's main IP is not known");
    }
    return this.#serverIp;
  }

  async #resolveServerIp(): Promise<void> {
    const { serverIp, iface, vip } = this.settings;
    if (serverIp !== undefined) {
      this.#serverIp = serverIp;
      return;
    }
    if (iface === undefined) {
      this.#serverIpProblem = 'set hetzner-server-ip (or interface, whose primary IPv4 address is then used)';
      return;
    }
    let ip: string | null;
    try {
      ip = await withTimeout(this.clock, this.local.primaryIPv4(iface), LOCAL_TIMEOUT_MS, `primary IPv4 address of ${iface}`);
    } catch (err) {
      this.#serverIpProblem = `cannot read the primary IPv4 address of ${iface}: ${(err as Error).message}`;
      return;
    }
    if (ip === null) {
      this.#serverIpProblem = `interface ${iface} has no IPv4 address (yet); set hetzner-server-ip to route the failover IP elsewhere`;
      return;
    }
    if (sameIp(ip, vip)) {
      this.#serverIpProblem = `the primary address of ${iface} is the failover IP ${vip} itself; set hetzner-server-ip to this server's main IP`;
      return;
    }
    this.#serverIp = ip;
    this.#serverIpProblem = undefined;
    this.log.info({ serverIp: ip, iface }, "Hetzner Robot: routing the failover IP to this interface's primary address");
  }

  protected async housekeeping(): Promise<void> {
    if (this.#serverIp === undefined) await this.#resolveServerIp();
    const now = this.clock.now();
    const confirmDue = this.#confirmAt !== undefined && now >= this.#confirmAt;
    const refreshDue = this.#held() && this.#routing.known && now - this.#routing.at >= ROBOT_REFRESH_MS;
    if ((confirmDue || refreshDue) && this.api.canSend('GET') && !this.api.budgets.GET.isLow()) {
      await this.#read(confirmDue ? 'confirm' : 'refresh');
    }
  }

  /** A failed or uncertain POST may have been applied: the next attempt asks (GET) before it posts again. */
  protected forgetApiState(): void {
    this.#routing = UNKNOWN;
  }

  protected stateKey(): string {
    return `${this.#held()}/${this.fatal === undefined}/${this.#serverIp ?? ''}`;
  }
}

/** Builds the Robot manager; throws HetznerConfigError for a bad configuration or credentials file. */
export function createHetznerRobotManager(
  cfg: Config,
  local: LocalAddresses,
  log: Logger,
  clock: Clock = realClock,
  deps: HetznerDeps = {},
): HetznerRobotManager {
  const serverIp = cfg['hetzner-server-ip'];
  if (serverIp === undefined && isIP(cfg.ip) === 6) {
    throw new HetznerConfigError(
      "an IPv6 failover address needs hetzner-server-ip: set it to this server's IPv6 net (server_ipv6_net in Robot)",
    );
  }
  if (serverIp === undefined && cfg.interface === undefined) {
    throw new HetznerConfigError("manager-type hetzner needs hetzner-server-ip or interface (whose primary IPv4 address is this server's main IP)");
  }
  const file = cfg['hetzner-credentials-file'];
  const creds = readRobotCredentials(file);
  registerBasicAuth(creds.user, creds.pass);
  const mlog = log.child({ manager: 'hetzner' });
  for (const w of creds.warnings) mlog.warn(w);
  const closing = new AbortController();
  const api = new RobotApi({
    baseUrl: cfg['hetzner-api-url'],
    user: creds.user,
    pass: creds.pass,
    credentialsSource: file,
    fetch: deps.fetch ?? ((url, init) => fetch(url, init)),
    clock,
    log: mlog,
    limits: deps.robotLimits,
    signal: closing.signal,
  });
  return new HetznerRobotManager(
    {
      vip: cfg.ip,
      iface: cfg.interface,
      serverIp,
      unrouteOnRelease: cfg['hetzner-unroute-on-release'],
      retryAfterMs: cfg['retry-after'],
      retryNum: cfg['retry-num'],
    },
    local,
    mlog,
    clock,
    api,
    closing,
  );
}
