// Sends announcement rounds (gratuitous ARP / unsolicited NA) on one interface through an
// AF_PACKET socket. Protocol 0 makes it send-only: the kernel delivers no received frames to
// it, so nothing queues up while the daemon is not reading. Needs CAP_NET_RAW only.
import * as libc from './libc.js';
import { SyscallError } from './errors.js';
import { announcementFrames, ETH_P_ARP, ETH_P_IPV6 } from './frames.js';
import { parseMac } from './links.js';

export interface AnnounceTarget {
  index: number;
  name: string;
  /** The interface's MAC, the address neighbours should use for the VIP. */
  mac: string;
}

export function sockaddrLl(ifindex: number, protocol: number, dst: Buffer): Buffer {
  const sa = Buffer.alloc(20); // struct sockaddr_ll
  sa.writeUInt16LE(libc.AF_PACKET, 0);
  sa.writeUInt16BE(protocol, 2);
  sa.writeInt32LE(ifindex, 4);
  sa.writeUInt8(6, 11); // sll_halen: the kernel checks the address fits the given length
  dst.copy(sa, 12, 0, 6);
  return sa;
}

function rethrow(e: unknown, context: string): never {
  if (e instanceof SyscallError) {
    const cap = e.code === 'EPERM' || e.code === 'EACCES' ? 'CAP_NET_RAW' : undefined;
    throw new SyscallError(e.syscall, e.errno, e.code, context, cap);
  }
  throw e;
}

/**
 * The one AF_PACKET socket announcements go through. It stays open: closing a packet socket
 * costs the kernel an RCU grace period (synchronize_net in packet_release, 8-16 ms measured
 * here), which would otherwise sit in every takeover. Send-only, so holding it costs nothing.
 */
let packetFd: number | null = null;

function packetSocket(context: string): number {
  if (packetFd === null) {
    try {
      packetFd = libc.socket(libc.AF_PACKET, libc.SOCK_RAW | libc.SOCK_CLOEXEC, 0);
    } catch (e) {
      rethrow(e, context);
    }
  }
  return packetFd;
}

/** Closes the announcement socket (at shutdown; the next announce() opens a new one). */
export function closeAnnouncer(): void {
  if (packetFd === null) return;
  const fd = packetFd;
  packetFd = null;
  libc.close(fd);
}

/**
 * One announcement round for `ip` on the interface: ARP request + ARP reply (IPv4) or one
 * unsolicited NA (IPv6). Returns the number of frames sent. Throws SyscallError: EPERM/EACCES
 * (missingCapability 'CAP_NET_RAW'), ENETDOWN when the interface is down, ENXIO/ENODEV when
 * it is gone.
 */
export function announce(target: AnnounceTarget, ip: string): number {
  const context = `announcing ${ip} on ${target.name}`;
  const frames = announcementFrames(parseMac(target.mac), ip);
  const fd = packetSocket(context);
  try {
    for (const f of frames) {
      const sa = sockaddrLl(target.index, f.readUInt16BE(12) === ETH_P_ARP ? ETH_P_ARP : ETH_P_IPV6, f.subarray(0, 6));
      libc.sendto(fd, f, 0, sa);
    }
    return frames.length;
  } catch (e) {
    rethrow(e, context);
  }
}
