// Asks the LAN once who answers for an address: one ARP probe (IPv4) or one neighbour
// solicitation (IPv6), then listens for a while for answers that do not come from our own MAC.
//
// Both are the duplicate-address-detection forms, so asking changes nothing anywhere: the ARP
// probe has sender IP 0.0.0.0 (RFC 5227 §2.1.1), the solicitation has source :: and no
// source link-layer option (RFC 4862 §5.4.2), and neither lets a receiver learn or update a
// neighbour entry. Linux answers both for an address it holds: the ARP probe with a unicast
// reply to our MAC (arp_process, `sip == 0`), the solicitation with a neighbour advertisement
// to all-nodes (ndisc_recv_ns, `dad`), and so does any RFC-conforming host.
//
// Besides the answers, any ARP packet that uses the address as its sender (a gratuitous ARP or
// an ordinary request from a host using it) and any unsolicited NA for it count: they, too,
// say that the host they come from holds it. Not part of the diagnose output format, so the
// address-conflict alarm (issue 15, part 4) can use the same probe right after an acquire.
//
// The socket is an AF_PACKET socket bound to the interface and to one EtherType (needs
// CAP_NET_RAW, as the announcer's), read without blocking the event loop (koffi.node.poll,
// as net/monitor.ts), and closed when the wait is over.
import koffi from 'koffi';
import * as libc from '../net/libc.js';
import { SyscallError } from '../net/errors.js';
import {
  ALL_NODES_IP, ETH_P_ARP, ETH_P_IPV6, ethernet, IPPROTO_ICMPV6, ND_HOP_LIMIT, icmpv6Checksum, parseAnnouncement,
} from '../net/frames.js';
import { sockaddrLl } from '../net/announce.js';
import { formatIp, parseIp } from '../net/ip.js';
import { parseMac } from '../net/links.js';

export const ND_NEIGHBOR_SOLICIT = 135;
/** How long answers are waited for: a LAN host answers in well under a millisecond to a few ms. */
export const NEIGHBOUR_WAIT_MS = 1000;

const BROADCAST_MAC = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const RECV_BYTES = 2048;

export interface ProbeTarget {
  ifindex: number;
  ifname: string;
  /** Our interface's MAC: frames from it are ours, never another host's answer. */
  mac: string;
  ip: string;
}

/** Another host answering for (or announcing) the address. */
export interface NeighbourAnswer {
  /** The MAC the host says the address is at. */
  mac: string;
  /** What showed it: 'ARP reply', 'ARP request', 'neighbour advertisement'. */
  how: string;
}

export interface ProbeResult {
  /** 'ARP' or 'NDP', for messages. */
  protocol: 'ARP' | 'NDP';
  /** One entry per distinct MAC, in the order first seen. */
  answers: NeighbourAnswer[];
  waitedMs: number;
}

/** An ARP probe for `ip` (RFC 5227): a broadcast request with sender IP 0.0.0.0. */
export function buildArpProbe(mac: Buffer, ip: string): Buffer {
  const target = parseIp(ip);
  if (target.family !== 4) throw new RangeError('an ARP probe needs an IPv4 address');
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0); // Ethernet
  arp.writeUInt16BE(0x0800, 2); // IPv4
  arp.writeUInt8(6, 4);
  arp.writeUInt8(4, 5);
  arp.writeUInt16BE(1, 6); // request
  mac.copy(arp, 8);
  // sender IP (14..17) and target MAC (18..23) stay zero
  target.bytes.copy(arp, 24);
  return ethernet(BROADCAST_MAC, mac, ETH_P_ARP, arp);
}

/** ff02::1:ffXX:XXXX, the solicited-node group of `ip` (RFC 4291 §2.7.1), and its MAC (RFC 2464 §7). */
function solicitedNode(ip: Buffer): { ip: Buffer; mac: Buffer } {
  const group = Buffer.from(parseIp('ff02::1:ff00:0').bytes);
  ip.copy(group, 13, 13, 16);
  return { ip: group, mac: Buffer.concat([Buffer.from([0x33, 0x33]), group.subarray(12, 16)]) };
}

/** A duplicate-address-detection neighbour solicitation for `ip`: source ::, no source link-layer option. */
export function buildDadSolicitation(mac: Buffer, ip: string): Buffer {
  const target = parseIp(ip);
  if (target.family !== 6) throw new RangeError('a neighbour solicitation needs an IPv6 address');
  const dst = solicitedNode(target.bytes);
  const src = Buffer.alloc(16); // ::
  const icmp = Buffer.alloc(24);
  icmp.writeUInt8(ND_NEIGHBOR_SOLICIT, 0);
  target.bytes.copy(icmp, 8);
  icmp.writeUInt16BE(icmpv6Checksum(src, dst.ip, icmp), 2);
  const ip6 = Buffer.alloc(40);
  ip6.writeUInt32BE(0x60000000, 0);
  ip6.writeUInt16BE(icmp.length, 4);
  ip6.writeUInt8(IPPROTO_ICMPV6, 6);
  ip6.writeUInt8(ND_HOP_LIMIT, 7);
  src.copy(ip6, 8);
  dst.ip.copy(ip6, 24);
  return ethernet(dst.mac, mac, ETH_P_IPV6, Buffer.concat([ip6, icmp]));
}

/**
 * Who, other than us, a received frame says holds `ip`: an ARP packet with `ip` as its sender
 * address, or a neighbour advertisement for `ip`. Null for anything else (our own frames too).
 */
export function foreignClaim(received: Buffer, ip: string, ownMac: string): NeighbourAnswer | null {
  const p = parseAnnouncement(received);
  if (p === null) return null;
  const own = ownMac.toLowerCase();
  const want = formatIp(parseIp(ip).bytes);
  if (p.kind === 'arp') {
    if (p.senderIp !== want || p.senderMac === own || p.ethSrc === own) return null;
    return { mac: p.senderMac, how: p.op === 2 ? 'ARP reply' : 'ARP request' };
  }
  if (p.target !== want || p.ethSrc === own || !p.checksumValid || p.hopLimit !== ND_HOP_LIMIT) return null;
  const mac = p.targetMac ?? p.ethSrc;
  return mac === own ? null : { mac, how: 'neighbour advertisement' };
}

/**
 * Sends one probe for `t.ip` on the interface and collects foreign answers for `waitMs`.
 * Throws SyscallError (missingCapability 'CAP_NET_RAW' on EPERM/EACCES; ENETDOWN when the
 * interface is down; ENXIO/ENODEV when it is gone).
 */
export async function probeNeighbours(t: ProbeTarget, waitMs = NEIGHBOUR_WAIT_MS): Promise<ProbeResult> {
  const family = parseIp(t.ip).family;
  const type = family === 4 ? ETH_P_ARP : ETH_P_IPV6;
  const protocol = family === 4 ? 'ARP' : 'NDP';
  const context = `asking who answers for ${t.ip} on ${t.ifname}`;
  const wrap = (e: unknown): never => {
    if (e instanceof SyscallError) {
      const cap = e.code === 'EPERM' || e.code === 'EACCES' ? 'CAP_NET_RAW' : undefined;
      throw new SyscallError(e.syscall, e.errno, e.code, context, cap);
    }
    throw e;
  };
  let fd: number;
  try {
    // The protocol in network byte order: the kernel then hands us only this EtherType.
    fd = libc.socket(libc.AF_PACKET, libc.SOCK_RAW | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, ((type & 0xff) << 8) | (type >> 8));
  } catch (e) {
    return wrap(e);
  }
  const answers = new Map<string, NeighbourAnswer>();
  const buf = Buffer.alloc(RECV_BYTES);
  let poll: ReturnType<typeof koffi.node.poll> | null = null;
  let failure: unknown = null;
  const drain = (): void => {
    for (;;) {
      let n: number | null;
      try {
        n = libc.recvNonBlocking(fd, buf, 0);
      } catch (e) {
        failure ??= e; // reported after the wait; a poll callback must not throw
        return;
      }
      if (n === null) return;
      const claim = foreignClaim(buf.subarray(0, Math.min(n, buf.length)), t.ip, t.mac);
      if (claim && !answers.has(claim.mac)) answers.set(claim.mac, claim);
    }
  };
  const started = performance.now();
  try {
    try {
      libc.bind(fd, sockaddrLl(t.ifindex, type, Buffer.alloc(6)));
      poll = koffi.node.poll(fd, { readable: true }, (() => drain()) as unknown as Parameters<typeof koffi.node.poll>[1]);
      const mac = parseMac(t.mac);
      const probe = family === 4 ? buildArpProbe(mac, t.ip) : buildDadSolicitation(mac, t.ip);
      libc.sendto(fd, probe, 0, sockaddrLl(t.ifindex, type, probe.subarray(0, 6)));
    } catch (e) {
      wrap(e);
    }
    await new Promise((r) => setTimeout(r, waitMs));
    drain();
    if (failure !== null) wrap(failure);
  } finally {
    poll?.close();
    libc.close(fd);
  }
  return { protocol, answers: [...answers.values()], waitedMs: Math.round(performance.now() - started) };
}

/** For messages: "02:00:00:00:00:01 (ARP reply)". */
export function describeAnswers(answers: readonly NeighbourAnswer[]): string {
  return answers.map((a) => `${a.mac} (${a.how})`).join(', ');
}
