// manager-type hetzner-cloud: a Hetzner Cloud floating IP, moved by assigning it to this server
// through the Cloud API. Unlike Robot, the floating IP must also be configured on the holder's
// interface (Hetzner: "you must configure them inside your operating system"), so the manager
// adds it locally after a successful assign and removes it before an unassign or on release.
// held = assigned to this server AND present on the interface; a missing local address while
// the API says ours is put back by acquire() without another API call.
//
// The API budget (3600 requests per hour per project) is shared by all nodes; the assignment
// is cached and refreshed every CLOUD_REFRESH_MS only on a node that holds it (or still has the
// address locally), and not at all while the project's budget is low.
import { isIP } from 'node:net';
import { type Config } from '../../config/schema.js';
import { type Logger } from '../../log.js';
import { registerSecrets } from '../../ops/redact.js';
import { type HolderState, type PendingRequest, type VipManager } from '../../reconcile/ports.js';
import { type Clock, realClock } from './clock.js';
import { type CloudAction, CloudApi, fetchInstanceId, type FloatingIp, networkOf } from './cloud-api.js';
import { asHetznerError, HetznerConfigError, HetznerNotReadyError, HetznerTimeoutError } from './errors.js';
import { type FetchLike } from './http.js';
import { ipMatchesNetwork } from './ip.js';
import { type LocalAddresses } from './local.js';
import { HetznerManagerBase } from './manager-base.js';
import { backoffMs, withTimeout } from './retry.js';
import { readSecretFile } from './secret-file.js';

/** Housekeeping cadence: checks the local address (cheap) and whether a refresh is due. */
export const CLOUD_TICK_MS = 5_000;
/** Refresh of the assignment while held: 240 requests per hour per holder, 7 % of the budget. */
export const CLOUD_REFRESH_MS = 15_000;
/** A local address query that takes longer than this counts as failed. */
export const LOCAL_TIMEOUT_MS = 2_000;
/** Others must not read the token file; a group may (root:vip-manager 0640 is a sound setup). */
const TOKEN_FORBIDDEN_BITS = 0o007;

export interface HetznerCloudDeps {
  fetch?: FetchLike;
  /** Local guard on requests per hour (default: the documented 3600). */
  cloudHourlyLimit?: number;
}

export interface CloudSettings {
  vip: string;
  prefixLen: number;
  /** Floating IP by numeric id or by address. */
  floatingIp: string;
  serverId: number | undefined;
  metadataUrl: string;
  unassignOnRelease: boolean;
  retryAfterMs: number;
  retryNum: number;
}

type Assignment = { readonly known: false } | { readonly known: true; readonly server: number | null; readonly at: number };
const UNKNOWN: Assignment = { known: false };

export class HetznerCloudManager extends HetznerManagerBase implements VipManager {
  readonly kind = 'hetzner-cloud' as const;
  #serverId: number | undefined;
  #fip: FloatingIp | undefined;
  #identityProblem: string | undefined = 'not started';
  #assigned: Assignment = UNKNOWN;
  #localPresent = false;
  /** An action we started whose outcome we have not seen yet (its polling timed out). */
  #pending: { action: CloudAction; server: number | null } | undefined;
  #identityRetryAt = 0;
  #identityAttempt = 0;

  constructor(
    private readonly settings: CloudSettings,
    private readonly local: LocalAddresses,
    log: Logger,
    clock: Clock,
    private readonly api: CloudApi,
    private readonly fetchImpl: FetchLike,
    closing: AbortController,
  ) {
    super(log, clock, closing, {
      label: 'Hetzner Cloud', tickMs: CLOUD_TICK_MS, retryAfterMs: settings.retryAfterMs, retryNum: settings.retryNum,
      // Short deferrals (a 429 that refills in seconds, a brief lock) are waited out in the call.
      deferAlways: false,
    });
    this.#serverId = settings.serverId;
  }

  async start(onChange: () => void): Promise<void> {
    this.listen(onChange);
    await this.queue
      .run(async () => {
        await this.#resolveIdentity();
        await this.#checkLocal();
      })
      .catch((err: unknown) => this.absorb(err, 'resolving the floating IP and this server'));
    this.markReported();
    this.log.info(
      { vip: this.settings.vip, floatingIpId: this.#fip?.id, serverId: this.#serverId, held: this.#held() },
      'Hetzner Cloud floating IP manager started',
    );
    this.armTick('refreshing the floating IP');
  }

  async observe(): Promise<HolderState> {
    await this.#checkLocal().catch(() => undefined);
    // What the reconciler has now seen; onChange fires only for changes after this.
    this.markReported();
    const held = this.#held();
    if (this.fatal) return { held, ready: false, detail: this.fatal.message };
    if (this.#identityProblem !== undefined) return { held, ready: false, detail: this.#identityProblem };
    return { held, ready: true };
  }

  acquire(): Promise<void> {
    return this.acted(async () => {
      if (this.fatal) throw this.fatal;
      for (let attempt = 1; ; attempt++) {
        try {
          const { me, fip } = await this.#requireIdentity();
          await this.#followPending();
          if (!this.#assignedTo(me, true)) {
            // Only a cached "ours" can make the assign unnecessary; any other cache is moot.
            if (!this.#assigned.known || this.#assigned.server === me) await this.#read();
            if (!this.#assignedTo(me, false)) {
              await this.#complete(await this.api.assign(fip.id, me), me);
              this.log.info({ vip: this.settings.vip, floatingIpId: fip.id, serverId: me }, 'Hetzner Cloud floating IP assigned to this server');
            }
          }
          if (!(await this.#checkLocal())) {
            await withTimeout(this.clock, this.local.add(this.settings.vip, this.settings.prefixLen), LOCAL_TIMEOUT_MS, 'adding the floating IP locally');
            this.#localPresent = true;
            this.log.info({ vip: this.settings.vip, prefixLen: this.settings.prefixLen }, 'floating IP added to the interface');
          }
          return;
        } catch (err) {
          await this.afterFailure(err, attempt, 'acquire');
        }
      }
    });
  }

  release(): Promise<void> {
    return this.acted(async () => {
      // The local address goes first: once unassigned, traffic for it must not be answered here.
      let localError: unknown;
      try {
        if (await this.#checkLocal()) {
          await withTimeout(this.clock, this.local.remove(this.settings.vip, this.settings.prefixLen), LOCAL_TIMEOUT_MS, 'removing the floating IP locally');
          this.#localPresent = false;
          this.log.info({ vip: this.settings.vip }, 'floating IP removed from the interface');
        }
      } catch (err) {
        localError = err;
      }
      const me = this.#serverId;
      const fip = this.#fip;
      if (!this.settings.unassignOnRelease || me === undefined || fip === undefined) {
        // The next holder assigns it to itself; our "ours" is about to become wrong.
        if (me !== undefined && this.#assignedTo(me, false)) this.#assigned = UNKNOWN;
      } else if (this.fatal) {
        this.log.warn({ err: this.fatal.message }, 'not unassigning the floating IP: the API is not usable');
      } else {
        for (let attempt = 1; ; attempt++) {
          try {
            await this.#followPending();
            await this.#read();
            if (!this.#assignedTo(me, false)) break;
            await this.#complete(await this.api.unassign(fip.id), null);
            this.log.info({ vip: this.settings.vip, floatingIpId: fip.id }, 'Hetzner Cloud floating IP unassigned');
            break;
          } catch (err) {
            await this.afterFailure(err, attempt, 'release');
          }
        }
      }
      if (localError !== undefined) throw asHetznerError(localError);
    });
  }

  inFlight(): readonly PendingRequest[] {
    return this.api.inFlight.list();
  }

  // ---- internals ----

  #held(): boolean {
    return this.#serverId !== undefined && this.#assignedTo(this.#serverId, false) && this.#localPresent;
  }

  /** Whether the cache says assigned to `me` (and, if `fresh`, learned within CLOUD_REFRESH_MS). */
  #assignedTo(me: number, fresh: boolean): boolean {
    const a = this.#assigned;
    if (!a.known || a.server !== me) return false;
    return !fresh || this.clock.now() - a.at <= CLOUD_REFRESH_MS;
  }

  #setAssigned(server: number | null): void {
    this.#assigned = { known: true, server, at: this.clock.now() };
  }

  /**
   * Waits for our action to finish and records its outcome. If polling times out, the action is
   * remembered and followed up first next time, instead of starting a second one (which would
   * only meet `locked` while the first is still running).
   */
  async #complete(action: CloudAction, server: number | null): Promise<void> {
    try {
      await this.api.waitForAction(action, this.closing.signal);
    } catch (err) {
      if (err instanceof HetznerTimeoutError) this.#pending = { action, server };
      throw err;
    }
    this.#setAssigned(server);
  }

  async #followPending(): Promise<void> {
    const p = this.#pending;
    if (p === undefined) return;
    this.#pending = undefined;
    await this.#complete(p.action, p.server);
  }

  async #read(): Promise<void> {
    const fip = this.#fip;
    if (fip === undefined) return;
    const fresh = await this.api.getFloatingIp(fip.id);
    this.#fip = fresh;
    this.#setAssigned(fresh.server);
  }

  async #checkLocal(): Promise<boolean> {
    try {
      this.#localPresent = await withTimeout(
        this.clock,
        this.local.has(this.settings.vip, this.settings.prefixLen),
        LOCAL_TIMEOUT_MS,
        'checking the floating IP on the interface',
      );
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot check the floating IP on the interface');
      throw err;
    }
    return this.#localPresent;
  }

  async #requireIdentity(): Promise<{ me: number; fip: FloatingIp }> {
    if (this.#serverId === undefined || this.#fip === undefined) await this.#resolveIdentity();
    if (this.#serverId === undefined || this.#fip === undefined) {
      throw new HetznerNotReadyError(this.#identityProblem ?? 'the floating IP or this server is not known yet');
    }
    return { me: this.#serverId, fip: this.#fip };
  }

  /** Learns this server's id and the floating IP (id and current assignment). */
  async #resolveIdentity(): Promise<void> {
    const s = this.settings;
    if (this.#serverId === undefined) {
      try {
        this.#serverId = await fetchInstanceId(this.fetchImpl, this.clock, s.metadataUrl, this.closing.signal);
        this.log.info({ serverId: this.#serverId }, 'Hetzner Cloud: this server id from the metadata service');
      } catch (err) {
        this.#identityProblem = `cannot learn this server's id from the metadata service (${asHetznerError(err).message}); set hcloud-server-id`;
        throw err;
      }
    }
    if (this.#fip === undefined) {
      try {
        const fip = /^\d+$/.test(s.floatingIp) ? await this.api.getFloatingIp(Number(s.floatingIp)) : await this.api.findFloatingIp(s.floatingIp);
        if (!ipMatchesNetwork(s.vip, networkOf(fip))) {
          throw new HetznerConfigError(
            `floating IP ${fip.id} is ${fip.ip}, which does not match ip ${s.vip}; the address added to the interface must belong to the floating IP`,
          );
        }
        this.#fip = fip;
        this.#setAssigned(fip.server);
      } catch (err) {
        this.#identityProblem = `cannot resolve floating IP ${s.floatingIp}: ${asHetznerError(err).message}`;
        throw err;
      }
    }
    this.#identityProblem = undefined;
  }

  protected async housekeeping(): Promise<void> {
    const now = this.clock.now();
    if (this.#serverId === undefined || this.#fip === undefined) {
      if (now < this.#identityRetryAt) return;
      try {
        await this.#resolveIdentity();
        this.#identityAttempt = 0;
      } catch (err) {
        this.#identityAttempt++;
        this.#identityRetryAt = now + backoffMs(this.settings.retryAfterMs, this.#identityAttempt);
        throw err;
      }
    }
    const local = await this.#checkLocal();
    const me = this.#serverId as number;
    // Only a node with the address on its interface needs to know whether the floating IP
    // is (still) assigned to it; everyone else stays quiet and spares the project budget.
    const stale = !this.#assigned.known || now - this.#assigned.at >= CLOUD_REFRESH_MS;
    if (local && stale && !this.api.isLow()) await this.#read();
    if (local && this.#assigned.known && this.#assigned.server !== me && now - this.#assigned.at < CLOUD_REFRESH_MS) {
      // The API, just asked, says the floating IP is not ours, yet the address is here: a
      // leftover (crash, restart while another node took over). Answering for it locally
      // would send this machine's own connections to the wrong place.
      await withTimeout(this.clock, this.local.remove(this.settings.vip, this.settings.prefixLen), LOCAL_TIMEOUT_MS, 'removing a stale floating IP');
      this.#localPresent = false;
      this.log.warn(
        { vip: this.settings.vip, assignedTo: this.#assigned.server },
        'removed the floating IP from the interface: the API says it is assigned elsewhere',
      );
    }
  }

  /** An assign or unassign that failed or timed out may still have happened: ask next time. */
  protected forgetApiState(): void {
    this.#assigned = UNKNOWN;
  }

  protected stateKey(): string {
    return `${this.#held()}/${this.fatal === undefined}/${this.#identityProblem === undefined}`;
  }
}

/** The API token: from hcloud-token-file, else hcloud-token (or VIP_HCLOUD_TOKEN). */
export function readCloudToken(cfg: Config): string {
  const file = cfg['hcloud-token-file'];
  const value = cfg['hcloud-token'];
  if (file !== undefined && value !== undefined) {
    throw new HetznerConfigError('both hcloud-token-file and hcloud-token (or VIP_HCLOUD_TOKEN) are set; keep one');
  }
  if (file !== undefined) {
    const text = readSecretFile(file, {
      what: 'Hetzner Cloud token file',
      forbiddenBits: TOKEN_FORBIDDEN_BITS,
      fix: `chmod 600 ${file} (or 640 with a group only vip-manager's user is in)`,
      missingHint: 'write the API token (Cloud Console > Security > API tokens, read/write) into it',
    }).trim();
    if (text === '') throw new HetznerConfigError(`Hetzner Cloud token file ${file} is empty`);
    if (/\s/.test(text)) throw new HetznerConfigError(`Hetzner Cloud token file ${file} must hold the token alone (found whitespace inside)`);
    registerSecrets(text);
    return text;
  }
  if (value !== undefined && value.trim() !== '') return value.trim();
  throw new HetznerConfigError('manager-type hetzner-cloud needs an API token: set hcloud-token-file, or hcloud-token / VIP_HCLOUD_TOKEN');
}

/** Builds the Cloud manager; throws HetznerConfigError for a bad configuration or token file. */
export function createHetznerCloudManager(
  cfg: Config,
  local: LocalAddresses,
  log: Logger,
  clock: Clock = realClock,
  deps: HetznerCloudDeps = {},
): HetznerCloudManager {
  if (cfg.interface === undefined) {
    throw new HetznerConfigError('manager-type hetzner-cloud needs interface: the floating IP is added to it on the holder');
  }
  const floatingIp = (cfg['hcloud-floating-ip'] ?? cfg.ip).trim();
  if (!/^\d+$/.test(floatingIp) && isIP(floatingIp) === 0) {
    throw new HetznerConfigError(`hcloud-floating-ip ${JSON.stringify(floatingIp)} is neither a numeric id nor an IP address`);
  }
  const token = readCloudToken(cfg);
  const mlog = log.child({ manager: 'hetzner-cloud' });
  const fetchImpl = deps.fetch ?? ((url: string, init: RequestInit) => fetch(url, init));
  const closing = new AbortController();
  const api = new CloudApi({
    baseUrl: cfg['hcloud-api-url'],
    token,
    fetch: fetchImpl,
    clock,
    log: mlog,
    hourlyLimit: deps.cloudHourlyLimit,
    signal: closing.signal,
  });
  return new HetznerCloudManager(
    {
      vip: cfg.ip,
      prefixLen: cfg.netmask,
      floatingIp,
      serverId: cfg['hcloud-server-id'],
      metadataUrl: cfg['hcloud-metadata-url'],
      unassignOnRelease: cfg['hcloud-unassign-on-release'],
      retryAfterMs: cfg['retry-after'],
      retryNum: cfg['retry-num'],
    },
    local,
    mlog,
    clock,
    api,
    fetchImpl,
    closing,
  );
}
