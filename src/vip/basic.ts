// The basic VIP holder: the VIP as an address on a local Ethernet interface, announced to the
// LAN with gratuitous ARP (IPv4) or unsolicited neighbour advertisements (IPv6). It talks to
// the kernel directly (rtnetlink, an AF_PACKET socket), so it needs CAP_NET_ADMIN and
// CAP_NET_RAW, not root, and it learns of changes made behind its back (`ip addr del`, ifdown)
// from kernel events within milliseconds instead of at the next poll.
import type { Logger } from 'pino';
import type { HolderState, VipManager } from '../reconcile/ports.js';
import { ensureAddress, ensureNoAddress, hasAddress, listAddresses } from '../net/addresses.js';
import { announce as sendRound, closeAnnouncer } from '../net/announce.js';
import { NetError, NoLinkLayerAddressError } from '../net/errors.js';
import { maxPrefixLen, parseIp, formatIp, type Family } from '../net/ip.js';
import { findInterface, hwTypeName, lookupInterface, type InterfaceInfo } from '../net/links.js';
import { NetMonitor } from '../net/monitor.js';
import { retryTransient, type RetryPolicy } from '../net/retry.js';
import type { NeighbourAnswer } from '../diagnose/neighbour-probe.js';
import { ConflictWatch, type AddressConflict } from './conflict-watch.js';

/** Announcement rounds that answer another host's claim of the VIP are at least this far apart. */
const CONFLICT_REANNOUNCE_MS = 1000;

export interface BasicManagerOptions {
  ip: string;
  prefixLen: number;
  interfaceName: string;
  /** Announcement rounds per series (the first at once). */
  announceCount: number;
  /** Milliseconds between rounds of a series. */
  announceInterval: number;
  /** Milliseconds between repeated series while held; 0 = off. */
  announceRefresh: number;
  retryNum: number;
  retryAfter: number;
  /** Called after each round that went out, with the number of frames sent (for metrics). */
  onAnnounce?: (packets: number) => void;
  /** Called for every counted address-conflict claim (conflict-watch.ts), for metrics. */
  onConflict?: (c: NeighbourAnswer) => void;
}

export class InvalidVipError extends Error {
  readonly code = 'EINVALIDVIP';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidVipError';
  }
}

export class BasicManager implements VipManager {
  readonly kind = 'basic' as const;
  private readonly ip: string;
  private readonly family: Family;
  private readonly prefixLen: number;
  private readonly ifname: string;
  private readonly retry: RetryPolicy;
  private monitor: NetMonitor | null = null;
  /** Index of our interface as last resolved, to match address events (which carry only it). */
  private ifindex: number | null = null;
  /** Timers of the running announcement series and refresh; replaced by each new series. */
  private timers: NodeJS.Timeout[] = [];
  private seriesId = 0;
  /** The announcement round answering the latest address-conflict claim, while one is pending. */
  private conflictTimer: NodeJS.Timeout | null = null;
  private lastConflictRound = -Infinity;
  /** The address-conflict watch; open exactly while we hold the VIP. */
  private watch: { key: string; w: ConflictWatch } | null = null;
  /**
   * What observe() last read from the kernel, kept until the monitor reports a change to our
   * interface or its addresses (or lost events: 'resync'), or we change them ourselves. Every
   * reconcile pass observes, so a leader change would otherwise cost three netlink round trips
   * (the link, an address dump, the link again for acquire) before the address goes in: here
   * they are one, the add itself. A change made behind our back still reaches us as an event,
   * which drops this and starts a pass that reads afresh.
   */
  private observed: { state: HolderState; info: InterfaceInfo | null } | null = null;
  /** Bumped by every invalidation: a read that raced one is not kept. */
  private observedGen = 0;

  constructor(private readonly opts: BasicManagerOptions, private readonly log: Logger) {
    const parsed = parseIp(opts.ip);
    this.family = parsed.family;
    this.ip = formatIp(parsed.bytes);
    if (!Number.isInteger(opts.prefixLen) || opts.prefixLen < 1 || opts.prefixLen > maxPrefixLen(this.family)) {
      throw new InvalidVipError(`netmask ${opts.prefixLen} is not a prefix length for ${this.ip} (1–${maxPrefixLen(this.family)})`);
    }
    this.prefixLen = opts.prefixLen;
    this.ifname = opts.interfaceName;
    this.retry = { retryNum: opts.retryNum, retryAfter: opts.retryAfter };
  }

  private get fields(): Record<string, unknown> {
    return { vip: `${this.ip}/${this.prefixLen}`, interface: this.ifname };
  }

  async start(onChange: () => void): Promise<void> {
    if (this.monitor) throw new Error('BasicManager already started');
    const monitor = new NetMonitor({ log: this.log });
    this.monitor = monitor;
    this.resolveIndex();
    monitor.on('address', (e) => {
      if (e.ifindex === this.ifindex) {
        this.forgetObserved();
        onChange();
      }
    });
    monitor.on('link', (e) => {
      // Our name appearing, vanishing or being given to another index, or our index being
      // renamed away: all change what "our interface" is.
      if (e.name === this.ifname || e.ifindex === this.ifindex) {
        this.forgetObserved();
        this.resolveIndex();
        onChange();
      }
    });
    monitor.on('resync', () => {
      this.forgetObserved();
      this.resolveIndex();
      onChange();
    });
  }

  private forgetObserved(): void {
    this.observed = null;
    this.observedGen++;
  }

  /** The interface as observe() last found it, while nothing has changed since; else read now. */
  private async currentInterface(): Promise<InterfaceInfo | null> {
    if (this.observed) return this.observed.info;
    return retryTransient('looking up the interface', this.retry, this.log, () => findInterface(this.ifname));
  }

  private resolveIndex(): void {
    try {
      this.ifindex = findInterface(this.ifname)?.index ?? null;
    } catch (e) {
      // Keep the old index; the caller's onChange leads to an observe() that reports the error.
      this.log.warn({ ...this.fields, err: e }, 'cannot look up the interface');
    }
  }

  async observe(): Promise<HolderState> {
    const cached = this.observed;
    if (cached) {
      if (cached.info) this.requireLinkLayer(cached.info);
      return cached.state;
    }
    const gen = this.observedGen;
    const info = await retryTransient('looking up the interface', this.retry, this.log, () => findInterface(this.ifname));
    const state = await this.stateOf(info);
    // Only with the monitor running (events invalidate it), and only if no event came meanwhile.
    if (this.monitor && gen === this.observedGen) this.observed = { state, info };
    return state;
  }

  private async stateOf(info: InterfaceInfo | null): Promise<HolderState> {
    if (!info) return { held: false, ready: false, detail: `interface ${this.ifname} does not exist` };
    this.requireLinkLayer(info);
    const held = await retryTransient('listing addresses', this.retry, this.log, () => hasAddress(info.index, this.ip, this.prefixLen));
    if (!info.up) return { held, ready: false, detail: `interface ${this.ifname} is down` };
    return { held, ready: true };
  }

  async acquire(): Promise<void> {
    this.cancelAnnouncements();
    const known = this.observed?.info;
    this.forgetObserved();
    const info = known ?? await retryTransient('looking up the interface', this.retry, this.log, () => lookupInterface(this.ifname));
    this.requireLinkLayer(info);
    const added = await retryTransient('adding the VIP', this.retry, this.log, () => ensureAddress(info.index, this.ip, this.prefixLen));
    if (!added) this.checkExistingIsOurs(info);
    this.log.info({ ...this.fields, ifindex: info.index, added }, added ? 'VIP added to the interface' : 'VIP already on the interface');
    await this.startSeries(info);
    // After the first announcement round, never before it: the watch only reports.
    this.startWatch(info);
  }

  async release(): Promise<void> {
    this.cancelAnnouncements();
    this.stopWatch();
    const info = await this.currentInterface();
    this.forgetObserved();
    if (!info) {
      this.log.debug(this.fields, 'interface gone, so is the VIP');
      return;
    }
    const removed = await retryTransient('removing the VIP', this.retry, this.log, () => ensureNoAddress(info.index, this.ip, this.prefixLen));
    this.log.info({ ...this.fields, ifindex: info.index, removed }, removed ? 'VIP removed from the interface' : 'VIP was not on the interface');
  }

  async announce(): Promise<void> {
    const info = await this.currentInterface();
    // Announcing an address we do not hold would steal it from its holder.
    if (!info || !hasAddress(info.index, this.ip, this.prefixLen)) {
      this.log.debug(this.fields, 'not announcing: the VIP is not on the interface');
      return;
    }
    this.requireLinkLayer(info);
    this.cancelAnnouncements();
    await this.startSeries(info);
    this.startWatch(info);
  }

  /** Hosts other than this one seen claiming the VIP while we hold it (empty when none). */
  conflicts(): AddressConflict[] {
    return this.watch?.w.list() ?? [];
  }

  async close(): Promise<void> {
    this.cancelAnnouncements();
    this.stopWatch();
    this.monitor?.close();
    this.monitor = null;
    this.forgetObserved();
    closeAnnouncer();
  }

  private requireLinkLayer(info: InterfaceInfo): asserts info is InterfaceInfo & { mac: string } {
    if (!info.mac) throw new NoLinkLayerAddressError(this.ifname, info.hwType, hwTypeName(info.hwType));
  }

  /** IPv6 refuses a second copy of an address whatever its prefix; say so instead of looping. */
  private checkExistingIsOurs(info: InterfaceInfo): void {
    const same = listAddresses(info.index, this.family).filter((a) => a.address === this.ip);
    if (same.length > 0 && !same.some((a) => a.prefixLen === this.prefixLen)) {
      const have = same.map((a) => `/${a.prefixLen}`).join(', ');
      throw new InvalidVipError(`${this.ip} is already on ${this.ifname} with prefix length ${have}, not /${this.prefixLen}: remove it or change netmask`);
    }
  }

  /** Opens the watch for this interface and MAC, unless it is open for them already. */
  private startWatch(info: InterfaceInfo & { mac: string }): void {
    const key = `${info.index}/${info.mac}`;
    if (this.watch?.key === key) return;
    this.stopWatch();
    try {
      this.watch = { key, w: new ConflictWatch({ ifindex: info.index, ifname: this.ifname, mac: info.mac, ip: this.ip }, { log: this.log, onConflict: (c) => this.conflictClaimed(info, c) }) };
    } catch (e) {
      // The VIP is in place and announced; only the alarm is missing, so say so and go on.
      this.log.warn({ ...this.fields, err: e }, 'cannot watch for address conflicts');
    }
  }

  /**
   * Another host claimed the VIP we hold: the LAN's neighbour caches may now point at it, and
   * would stay so after it gives the address up (a holder cut off from the DCS under dcs-loss
   * keep, until it hears etcd again). One announcement round takes them back, since the DCS says
   * the VIP is ours; at most one per CONFLICT_REANNOUNCE_MS however fast claims come, so two
   * claimants never make an ARP storm, and the last claim of a burst is always answered.
   */
  private conflictClaimed(info: InterfaceInfo & { mac: string }, c: NeighbourAnswer): void {
    this.opts.onConflict?.(c);
    if (this.conflictTimer !== null) return;
    const id = this.seriesId;
    const wait = Math.max(0, this.lastConflictRound + CONFLICT_REANNOUNCE_MS - performance.now());
    this.conflictTimer = unref(setTimeout(() => {
      this.conflictTimer = null;
      this.lastConflictRound = performance.now();
      this.round(id, info);
    }, wait));
  }

  private stopWatch(): void {
    this.watch?.w.close();
    this.watch = null;
  }

  private cancelAnnouncements(): void {
    this.seriesId++;
    if (this.conflictTimer !== null) clearTimeout(this.conflictTimer);
    this.conflictTimer = null;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  /**
   * Round 1 now, rounds 2..announce-count announce-interval apart, then (announce-refresh > 0)
   * one more round every announce-refresh ms while held. Only a missing capability fails the
   * caller: the address itself is in place, and a down link is reported by observe().
   */
  private async startSeries(info: InterfaceInfo & { mac: string }): Promise<void> {
    const id = this.seriesId;
    const { announceCount, announceInterval, announceRefresh } = this.opts;
    this.log.debug({ ...this.fields, rounds: announceCount, intervalMs: announceInterval, mac: info.mac }, 'announcing the VIP');
    try {
      const sent = await retryTransient('announcing the VIP', this.retry, this.log, () => sendRound(info, this.ip));
      this.opts.onAnnounce?.(sent);
    } catch (e) {
      if (e instanceof NetError && e.missingCapability) throw e;
      this.log.warn({ ...this.fields, err: e }, 'announcement not sent');
    }
    if (id !== this.seriesId) return;
    for (let i = 1; i < announceCount; i++) {
      this.timers.push(unref(setTimeout(() => this.round(id, info), i * announceInterval)));
    }
    if (announceRefresh > 0) {
      this.timers.push(unref(setInterval(() => this.round(id, info, true), announceRefresh)));
    }
  }

  private round(id: number, info: InterfaceInfo & { mac: string }, refresh = false): void {
    if (id !== this.seriesId) return;
    try {
      if (!hasAddress(info.index, this.ip, this.prefixLen)) {
        this.log.debug(this.fields, 'VIP no longer on the interface; announcements stopped');
        this.cancelAnnouncements();
        this.stopWatch();
        return;
      }
      const sent = sendRound(info, this.ip); // not inside `onAnnounce?.(...)`: that would skip the send without a listener
      this.opts.onAnnounce?.(sent);
      if (refresh) {
        this.log.debug(this.fields, 'VIP announced again (refresh)');
        // A host given the address by hand after our acquire says nothing by itself: ask.
        this.watch?.w.probe();
      }
    } catch (e) {
      this.log.warn({ ...this.fields, err: e }, 'announcement round not sent');
    }
  }
}

function unref(t: NodeJS.Timeout): NodeJS.Timeout {
  t.unref();
  return t;
}
