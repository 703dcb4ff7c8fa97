// The address-conflict alarm (issue 15, part 4): while this node holds the VIP, notice another
// host that answers for it or announces it, and say so loudly. It never changes who holds the
// VIP: the DCS decides that, and a second host holding the address is a misconfiguration only
// a human can fix.
//
// One AF_PACKET socket per held VIP, bound to the interface and one EtherType, with a classic
// BPF filter (SO_ATTACH_FILTER) so the kernel hands us only ARP packets whose sender IP is the
// VIP (IPv4) or neighbour advertisements whose target is the VIP (IPv6): an idle LAN costs no
// wake-ups. Read when libuv says it is readable (koffi.node.poll), as net/monitor.ts does.
//
// What counts, and why a normal move between our own nodes raises no alarm:
// - A claim is an ARP packet with the VIP as sender address from a MAC not ours (a gratuitous
//   ARP, an ARP reply, a request from a host using the address) or an NA for the VIP from a MAC
//   not ours (neighbour-probe.ts foreignClaim). ARP probes (sender 0.0.0.0) and DAD
//   solicitations are questions, not claims: `--diagnose` on a standby node sends them.
// - New holder: the old holder releases when it sees the same DCS change we acted on, so for a
//   moment both may hold the VIP and its last announcements may still be on the wire. Claims
//   in the first GRACE_MS after our acquire are only noted (debug log), never counted. At
//   GRACE_MS we probe again (an ARP probe, RFC 5227, or a DAD solicitation): a host answering
//   it (within PROBE_ANSWER_MS; for ARP a reply to 0.0.0.0, which no announcement is) holds
//   the address although the DCS named us: a conflict, reported at once.
//   A probe is also sent right after the acquire (after the first announcement, never before
//   it); its answers are the candidates the second probe confirms or clears, for the log.
// - Old holder: the new holder's announcements may reach us before our own DCS watch tells us
//   to release. So an unsolicited claim (not an answer to our probe) counts only if we still
//   hold the VIP GRACE_MS later; a release in between closes the watch and forgets it.
// Together: a claim counts only when the claimant and we both held the VIP longer than
// GRACE_MS, which a watch-driven move never does (the release lags the acquire by
// milliseconds). A release lagging by more is a real double holding and is reported.
import koffi from 'koffi';
import type { Logger } from 'pino';
import * as libc from '../net/libc.js';
import { SyscallError } from '../net/errors.js';
import { ARPOP_REPLY, ETH_P_ARP, ETH_P_IPV6, IPPROTO_ICMPV6, ND_NEIGHBOR_ADVERT, parseAnnouncement } from '../net/frames.js';
import { sockaddrLl } from '../net/announce.js';
import { parseIp } from '../net/ip.js';
import { parseMac } from '../net/links.js';
import { buildArpProbe, buildDadSolicitation, foreignClaim, type NeighbourAnswer } from '../diagnose/neighbour-probe.js';

/**
 * How long after our acquire a foreign claim is taken for the old holder's release still in
 * progress. A watch-driven release on the other node takes milliseconds (measured on the test
 * bed: see the README); 250 ms keeps the confirmation, and so the alarm, well within 1 s.
 */
export const GRACE_MS = 250;
/** Answers to our own probe arrive within microseconds on a LAN; this is generous. */
export const PROBE_ANSWER_MS = 100;
/** A conflict stays listed (and the gauge at 1) this long after it was last seen. */
export const CONFLICT_WINDOW_MS = 300_000;
/** A MAC still claiming the VIP is logged again at most this often. */
const RELOG_MS = 60_000;
/** Distinct foreign MACs kept: enough for any real LAN mistake, bounded against a flood. */
const MAX_ENTRIES = 16;
const RECV_BYTES = 2048;
const SO_ATTACH_FILTER = 26;

export interface ConflictTarget {
  ifindex: number;
  ifname: string;
  mac: string;
  ip: string;
}

/** One foreign host seen claiming the VIP while we held it, as /status shows it. */
export interface AddressConflict {
  mac: string;
  /** 'ARP reply', 'ARP request', 'neighbour advertisement'. */
  how: string;
  firstSeenAt: string;
  lastSeenAt: string;
  claims: number;
}

export interface ConflictWatchOptions {
  log: Logger;
  /** Called for every counted claim (for the counter metric). */
  onConflict?: (c: NeighbourAnswer) => void;
  graceMs?: number;
}

interface Entry { mac: string; how: string; first: Date; last: Date; lastMono: number; claims: number; loggedMono: number }

/** A classic BPF program: struct sock_filter is { u16 code; u8 jt; u8 jf; u32 k }. */
function bpf(insns: Array<[code: number, jt: number, jf: number, k: number]>): Buffer {
  const b = Buffer.alloc(insns.length * 8);
  insns.forEach(([code, jt, jf, k], i) => {
    b.writeUInt16LE(code, i * 8);
    b.writeUInt8(jt, i * 8 + 2);
    b.writeUInt8(jf, i * 8 + 3);
    b.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return b;
}

const LD_W_ABS = 0x20;
const LD_B_ABS = 0x30;
const JEQ_K = 0x15;
const RET_K = 0x06;

/** Accepts only frames that can claim `ip`; everything else is dropped in the kernel. */
export function claimFilter(ip: string): Buffer {
  const p = parseIp(ip);
  if (p.family === 4) {
    // ARP sender protocol address: Ethernet header 14 + 14.
    return bpf([[LD_W_ABS, 0, 0, 28], [JEQ_K, 0, 1, p.bytes.readUInt32BE(0)], [RET_K, 0, 0, 0xffff], [RET_K, 0, 0, 0]]);
  }
  // IPv6 next header (14 + 6) ICMPv6, type (14 + 40) NA, target (14 + 40 + 8) the VIP.
  const words = [0, 4, 8, 12].map((o) => p.bytes.readUInt32BE(o));
  const insns: Array<[number, number, number, number]> = [
    [LD_B_ABS, 0, 0, 20], [JEQ_K, 0, 0, IPPROTO_ICMPV6],
    [LD_B_ABS, 0, 0, 54], [JEQ_K, 0, 0, ND_NEIGHBOR_ADVERT],
    [LD_W_ABS, 0, 0, 62], [JEQ_K, 0, 0, words[0]!],
    [LD_W_ABS, 0, 0, 66], [JEQ_K, 0, 0, words[1]!],
    [LD_W_ABS, 0, 0, 70], [JEQ_K, 0, 0, words[2]!],
    [LD_W_ABS, 0, 0, 74], [JEQ_K, 0, 0, words[3]!],
    [RET_K, 0, 0, 0xffff], [RET_K, 0, 0, 0],
  ];
  // Every mismatch jumps to the last instruction (drop); offsets count from the next one.
  const drop = insns.length - 1;
  return bpf(insns.map(([c, jt, jf, k], i) => [c, jt, c === JEQ_K ? drop - (i + 1) : jf, k]));
}

export class ConflictWatch {
  private fd: number;
  private poll: ReturnType<typeof koffi.node.poll> | null = null;
  private readonly type: number;
  private readonly started = performance.now();
  private readonly grace: number;
  private confirmTimer: NodeJS.Timeout | null = null;
  /** Set once the grace after the acquire is over: from then on claims can count. */
  private armed = false;
  /** When our last probe after the grace went out (monotonic ms). */
  private lastProbe = -Infinity;
  private readonly pending = new Map<string, NeighbourAnswer>();
  private pendingTimer: NodeJS.Timeout | null = null;
  private readonly entries = new Map<string, Entry>();
  private readonly candidates = new Set<string>();
  private readonly buf = Buffer.alloc(RECV_BYTES);
  private closed = false;

  /** Opens the socket and sends the first probe. Throws SyscallError (CAP_NET_RAW on EPERM). */
  constructor(private readonly t: ConflictTarget, private readonly opts: ConflictWatchOptions) {
    this.grace = opts.graceMs ?? GRACE_MS;
    this.type = parseIp(t.ip).family === 4 ? ETH_P_ARP : ETH_P_IPV6;
    const context = `watching for address conflicts on ${t.ip} (${t.ifname})`;
    try {
      // Protocol 0 until the filter is attached: no frame is queued unfiltered before bind.
      this.fd = libc.socket(libc.AF_PACKET, libc.SOCK_RAW | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0);
    } catch (e) {
      throw withContext(e, context);
    }
    try {
      const prog = claimFilter(t.ip);
      const fprog = Buffer.alloc(16); // struct sock_fprog on 64-bit: u16 len, pad, pointer
      fprog.writeUInt16LE(prog.length / 8, 0);
      fprog.writeBigUInt64LE(BigInt(koffi.address(prog) as unknown as bigint), 8);
      libc.setsockopt(this.fd, libc.SOL_SOCKET, SO_ATTACH_FILTER, fprog);
      libc.bind(this.fd, sockaddrLl(t.ifindex, this.type, Buffer.alloc(6)));
      this.poll = koffi.node.poll(this.fd, { readable: true }, (() => this.drain()) as unknown as Parameters<typeof koffi.node.poll>[1]);
    } catch (e) {
      this.poll?.close();
      libc.close(this.fd);
      throw withContext(e, context);
    }
    this.probe();
    this.confirmTimer = setTimeout(() => this.confirm(), this.grace);
    this.confirmTimer.unref();
  }

  /** Asks once who answers for the VIP (a probe changes no neighbour's cache). */
  probe(): void {
    if (this.closed) return;
    try {
      const mac = parseMac(this.t.mac);
      const f = this.type === ETH_P_ARP ? buildArpProbe(mac, this.t.ip) : buildDadSolicitation(mac, this.t.ip);
      libc.sendto(this.fd, f, 0, sockaddrLl(this.t.ifindex, this.type, f.subarray(0, 6)));
      if (this.armed) this.lastProbe = performance.now();
    } catch (e) {
      this.opts.log.warn({ vip: this.t.ip, interface: this.t.ifname, err: e }, 'address-conflict probe not sent');
    }
  }

  private confirm(): void {
    this.confirmTimer = null;
    if (this.closed) return;
    this.armed = true;
    this.probe();
    const seen = [...this.candidates];
    this.opts.log.debug({ vip: this.t.ip, interface: this.t.ifname, graceMs: this.grace, candidates: seen },
      seen.length > 0 ? 'address-conflict watch armed: asking again whether the hosts seen during the handover still answer' : 'address-conflict watch armed');
  }

  /** Conflicts seen within the last CONFLICT_WINDOW_MS, first seen first. */
  list(): AddressConflict[] {
    const now = performance.now();
    return [...this.entries.values()]
      .filter((e) => now - e.lastMono < CONFLICT_WINDOW_MS)
      .map((e) => ({ mac: e.mac, how: e.how, firstSeenAt: e.first.toISOString(), lastSeenAt: e.last.toISOString(), claims: e.claims }));
  }

  /**
   * Stops watching. The descriptor is closed on the next turn of the event loop: closing a
   * packet socket waits for an RCU grace period (8-16 ms here), which must not sit in a release.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.confirmTimer) clearTimeout(this.confirmTimer);
    if (this.pendingTimer) clearTimeout(this.pendingTimer);
    if (this.pending.size > 0) {
      this.opts.log.debug({ vip: this.t.ip, macs: [...this.pending.keys()] },
        'address-conflict watch closed with claims not counted: released within the grace period (the new holder announcing, presumably)');
    }
    this.pending.clear();
    this.poll?.close();
    this.poll = null;
    const fd = this.fd;
    setImmediate(() => libc.close(fd));
  }

  private drain(): void {
    while (!this.closed) {
      let n: number | null;
      try {
        n = libc.recvNonBlocking(this.fd, this.buf, 0);
      } catch (e) {
        // A poll callback must not throw; the next readable event tries again.
        this.opts.log.debug({ err: e }, 'address-conflict watch: receive failed');
        return;
      }
      if (n === null) return;
      const frame = this.buf.subarray(0, Math.min(n, this.buf.length));
      const claim = foreignClaim(frame, this.t.ip, this.t.mac);
      if (claim) this.claimed(claim, answersProbe(frame));
    }
  }

  /** `answer`: the frame may be an answer to our probe (see answersProbe). */
  private claimed(c: NeighbourAnswer, answer: boolean): void {
    const mono = performance.now();
    if (!this.armed) {
      if (!this.candidates.has(c.mac) && this.candidates.size < MAX_ENTRIES) {
        this.candidates.add(c.mac);
        this.opts.log.debug({ vip: this.t.ip, mac: c.mac, how: c.how, afterMs: Math.round(mono - this.started) },
          'another host answered for the VIP right after the acquire (the old holder releasing?); asking again after the grace period');
      }
      return;
    }
    if (answer && mono - this.lastProbe <= PROBE_ANSWER_MS) {
      this.count(c);
      return;
    }
    // Unsolicited: count it only if we still hold the VIP a grace period later.
    if (this.pending.size < MAX_ENTRIES || this.pending.has(c.mac)) this.pending.set(c.mac, c);
    this.pendingTimer ??= setTimeout(() => {
      this.pendingTimer = null;
      if (this.closed) return;
      const claims = [...this.pending.values()];
      this.pending.clear();
      for (const p of claims) this.count(p);
    }, this.grace);
    this.pendingTimer.unref();
  }

  private count(c: NeighbourAnswer): void {
    const mono = performance.now();
    let e = this.entries.get(c.mac);
    if (!e) {
      if (this.entries.size >= MAX_ENTRIES) this.evictOldest();
      e = { mac: c.mac, how: c.how, first: new Date(), last: new Date(), lastMono: mono, claims: 0, loggedMono: -Infinity };
      this.entries.set(c.mac, e);
    }
    const fresh = mono - e.lastMono >= CONFLICT_WINDOW_MS;
    e.how = c.how;
    e.last = new Date();
    e.lastMono = mono;
    e.claims++;
    if (fresh) e.first = e.last;
    this.opts.onConflict?.(c);
    if (mono - e.loggedMono >= RELOG_MS || fresh) {
      e.loggedMono = mono;
      this.opts.log.error({ vip: this.t.ip, interface: this.t.ifname, conflictMac: c.mac, how: c.how, ourMac: this.t.mac, heldForMs: Math.round(mono - this.started) },
        `address conflict: ${c.mac} claims ${this.t.ip} (${c.how}) while this node holds it on ${this.t.ifname}; the VIP stays here as the DCS says, remove the address from that host`);
    }
  }

  private evictOldest(): void {
    let oldest: Entry | null = null;
    for (const e of this.entries.values()) if (!oldest || e.lastMono < oldest.lastMono) oldest = e;
    if (oldest) this.entries.delete(oldest.mac);
  }
}

/**
 * Whether a claim can be the answer to our probe rather than an announcement. An ARP probe is
 * answered by a reply to sender IP 0.0.0.0 (Linux's arp_process replies to `sip`), which no
 * gratuitous ARP has; an NA answering a DAD solicitation looks like an unsolicited one (both go
 * to all-nodes with Solicited clear), so for IPv6 only the timing tells.
 */
function answersProbe(frame: Buffer): boolean {
  const p = parseAnnouncement(frame);
  if (p?.kind === 'arp') return p.op === ARPOP_REPLY && p.targetIp === '0.0.0.0';
  return p?.kind === 'na';
}

function withContext(e: unknown, context: string): unknown {
  if (e instanceof SyscallError) {
    const cap = e.code === 'EPERM' || e.code === 'EACCES' ? 'CAP_NET_RAW' : undefined;
    return new SyscallError(e.syscall, e.errno, e.code, context, cap);
  }
  return e;
}
