// Announcement frames, built byte by byte (pure functions, no I/O) and parsed back for tests
// and diagnostics.
//
// IPv4: each round sends a gratuitous ARP request and a gratuitous ARP reply, both to the
// Ethernet broadcast address with sender = target protocol address = VIP, as MetalLB does:
// some hosts and switches act on only one of the two. The request's target hardware address
// is zero (RFC 5227 §2.3, and what Linux's own gratuitous ARP sends); the reply's equals the
// sender's, because Linux treats a reply as gratuitous only then (arp_is_garp in
// net/ipv4/arp.c) and otherwise may ignore it within the neighbour's locktime.
//
// IPv6: an unsolicited neighbour advertisement (RFC 4861 §7.2.6) to all-nodes, Override set,
// Solicited and Router clear, hop limit 255 (receivers drop anything else), with the target
// link-layer address option. Its IPv6 source is the VIP itself: that is what Linux uses for
// its own unsolicited NAs (ndisc_send_na picks the target when it is a local address), the
// VIP was just added with NODAD so it is always usable, whereas a link-local address may be
// missing (addrgenmode none) or still tentative.
import { formatIp, parseIp, type ParsedIp } from './ip.js';

export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_HLEN = 14;
/** Ethernet's minimum frame without FCS; a raw socket does not pad for us on every driver. */
export const ETH_ZLEN = 60;
export const ARPOP_REQUEST = 1;
export const ARPOP_REPLY = 2;
export const IPPROTO_ICMPV6 = 58;
export const ND_NEIGHBOR_ADVERT = 136;
export const ND_OPT_TARGET_LL_ADDR = 2;
/** RFC 4861 §7.1.2: neighbour discovery messages must arrive with the hop limit they left with. */
export const ND_HOP_LIMIT = 255;
export const NA_FLAG_ROUTER = 0x80000000;
export const NA_FLAG_SOLICITED = 0x40000000;
export const NA_FLAG_OVERRIDE = 0x20000000;

const BROADCAST_MAC = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const ZERO_MAC = Buffer.alloc(6);
/** IPv6 multicast to ff02::1 maps to this Ethernet group (RFC 2464 §7). */
export const ALL_NODES_MAC = Buffer.from([0x33, 0x33, 0x00, 0x00, 0x00, 0x01]);
export const ALL_NODES_IP = parseIp('ff02::1').bytes;

/** An Ethernet frame, padded to the minimum frame size. */
export function ethernet(dst: Buffer, src: Buffer, type: number, payload: Buffer): Buffer {
  const f = Buffer.alloc(Math.max(ETH_ZLEN, ETH_HLEN + payload.length));
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(type, 12);
  payload.copy(f, ETH_HLEN);
  return f;
}

function requireMac(mac: Buffer): void {
  if (mac.length !== 6) throw new RangeError(`a MAC address has 6 bytes, not ${mac.length}`);
}

function requireFamily(ip: ParsedIp, family: 4 | 6, what: string): void {
  if (ip.family !== family) throw new RangeError(`${what} needs an IPv${family} address`);
}

/** A gratuitous ARP (request or reply) announcing that `ip` is at `mac`. */
export function buildGratuitousArp(op: typeof ARPOP_REQUEST | typeof ARPOP_REPLY, mac: Buffer, ip: string): Buffer {
  requireMac(mac);
  const addr = parseIp(ip);
  requireFamily(addr, 4, 'gratuitous ARP');
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0); // hardware type: Ethernet
  arp.writeUInt16BE(0x0800, 2); // protocol type: IPv4
  arp.writeUInt8(6, 4);
  arp.writeUInt8(4, 5);
  arp.writeUInt16BE(op, 6);
  mac.copy(arp, 8);
  addr.bytes.copy(arp, 14);
  (op === ARPOP_REPLY ? mac : ZERO_MAC).copy(arp, 18);
  addr.bytes.copy(arp, 24);
  return ethernet(BROADCAST_MAC, mac, ETH_P_ARP, arp);
}

/** The ICMPv6 checksum: one's complement sum over the pseudo-header and the message. */
export function icmpv6Checksum(src: Uint8Array, dst: Uint8Array, icmp: Uint8Array): number {
  const pseudo = Buffer.alloc(40);
  Buffer.from(src).copy(pseudo, 0);
  Buffer.from(dst).copy(pseudo, 16);
  pseudo.writeUInt32BE(icmp.length, 32);
  pseudo.writeUInt8(IPPROTO_ICMPV6, 39);
  let sum = 0;
  const add = (b: Uint8Array): void => {
    for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  };
  add(pseudo);
  add(icmp);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An unsolicited neighbour advertisement announcing that `ip` is at `mac`. */
export function buildUnsolicitedNa(mac: Buffer, ip: string): Buffer {
  requireMac(mac);
  const target = parseIp(ip);
  requireFamily(target, 6, 'neighbour advertisement');
  const icmp = Buffer.alloc(32); // 24 bytes of NA + an 8-byte target link-layer address option
  icmp.writeUInt8(ND_NEIGHBOR_ADVERT, 0);
  icmp.writeUInt8(0, 1); // code
  icmp.writeUInt32BE(NA_FLAG_OVERRIDE, 4);
  target.bytes.copy(icmp, 8);
  icmp.writeUInt8(ND_OPT_TARGET_LL_ADDR, 24);
  icmp.writeUInt8(1, 25); // option length in units of 8 bytes
  mac.copy(icmp, 26);
  icmp.writeUInt16BE(icmpv6Checksum(target.bytes, ALL_NODES_IP, icmp), 2);

  const ip6 = Buffer.alloc(40);
  ip6.writeUInt32BE(0x60000000, 0); // version 6, traffic class 0, flow label 0
  ip6.writeUInt16BE(icmp.length, 4);
  ip6.writeUInt8(IPPROTO_ICMPV6, 6);
  ip6.writeUInt8(ND_HOP_LIMIT, 7);
  target.bytes.copy(ip6, 8);
  ALL_NODES_IP.copy(ip6, 24);
  return ethernet(ALL_NODES_MAC, mac, ETH_P_IPV6, Buffer.concat([ip6, icmp]));
}

/** The frames of one announcement round for `ip`. */
export function announcementFrames(mac: Buffer, ip: string): Buffer[] {
  return parseIp(ip).family === 4
    ? [buildGratuitousArp(ARPOP_REQUEST, mac, ip), buildGratuitousArp(ARPOP_REPLY, mac, ip)]
    : [buildUnsolicitedNa(mac, ip)];
}

export interface ArpAnnouncement {
  kind: 'arp';
  ethDst: string;
  ethSrc: string;
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export interface NaAnnouncement {
  kind: 'na';
  ethDst: string;
  ethSrc: string;
  hopLimit: number;
  src: string;
  dst: string;
  code: number;
  router: boolean;
  solicited: boolean;
  override: boolean;
  target: string;
  /** From the target link-layer address option; null if the option is absent. */
  targetMac: string | null;
  checksumValid: boolean;
}

const mac = (b: Buffer): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');

/** Decodes an ARP or neighbour-advertisement frame; null for anything else. */
export function parseAnnouncement(frame: Buffer): ArpAnnouncement | NaAnnouncement | null {
  if (frame.length < ETH_HLEN) return null;
  const type = frame.readUInt16BE(12);
  const ethDst = mac(frame.subarray(0, 6));
  const ethSrc = mac(frame.subarray(6, 12));
  if (type === ETH_P_ARP && frame.length >= ETH_HLEN + 28) {
    const a = frame.subarray(ETH_HLEN);
    if (a.readUInt16BE(0) !== 1 || a.readUInt16BE(2) !== 0x0800 || a[4] !== 6 || a[5] !== 4) return null;
    return {
      kind: 'arp', ethDst, ethSrc, op: a.readUInt16BE(6),
      senderMac: mac(a.subarray(8, 14)), senderIp: formatIp(a.subarray(14, 18)),
      targetMac: mac(a.subarray(18, 24)), targetIp: formatIp(a.subarray(24, 28)),
    };
  }
  if (type === ETH_P_IPV6 && frame.length >= ETH_HLEN + 40 + 24) {
    const ip6 = frame.subarray(ETH_HLEN);
    const plen = ip6.readUInt16BE(4);
    if (ip6[6] !== IPPROTO_ICMPV6 || ip6.length < 40 + plen) return null;
    const icmp = ip6.subarray(40, 40 + plen);
    if (icmp[0] !== ND_NEIGHBOR_ADVERT) return null;
    const flags = icmp.readUInt32BE(4);
    let targetMac: string | null = null;
    for (let off = 24; off + 8 <= icmp.length; ) {
      const len = icmp[off + 1]! * 8;
      if (len === 0) break;
      if (icmp[off] === ND_OPT_TARGET_LL_ADDR && len >= 8) targetMac = mac(icmp.subarray(off + 2, off + 8));
      off += len;
    }
    return {
      kind: 'na', ethDst, ethSrc, hopLimit: ip6[7]!,
      src: formatIp(ip6.subarray(8, 24)), dst: formatIp(ip6.subarray(24, 40)),
      code: icmp[1]!,
      router: (flags & NA_FLAG_ROUTER) !== 0, solicited: (flags & NA_FLAG_SOLICITED) !== 0, override: (flags & NA_FLAG_OVERRIDE) !== 0,
      target: formatIp(icmp.subarray(8, 24)), targetMac,
      // Summing a message together with its correct checksum gives 0 after complementing.
      checksumValid: icmpv6Checksum(ip6.subarray(8, 24), ip6.subarray(24, 40), icmp) === 0,
    };
  }
  return null;
}
