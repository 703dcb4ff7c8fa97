// rtnetlink: the message codec (nlmsghdr, rtattr, ifaddrmsg, ifinfomsg, NLMSG_ERROR with
// extended ACK) and a request socket. Requests are synchronous: the kernel answers an address
// change in tens of microseconds, far below what an async round trip through libuv would cost,
// and SO_RCVTIMEO bounds every wait so a request can never hang the daemon.
import * as libc from './libc.js';
import { NetlinkError, SyscallError } from './errors.js';

export const NETLINK_ROUTE = 0;

// nlmsghdr types and flags (linux/netlink.h, linux/rtnetlink.h)
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
/** In an ACK: the echoed request was cut to its header (we asked for that with NETLINK_CAP_ACK). */
export const NLM_F_CAPPED = 0x100;
/** In an ACK: extended-ACK attributes follow the echoed request. */
export const NLM_F_ACK_TLVS = 0x200;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;

export const SOL_NETLINK = 270;
export const NETLINK_ADD_MEMBERSHIP = 1;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;
export const NETLINK_GET_STRICT_CHK = 12;

export const RTNLGRP_LINK = 1;
export const RTNLGRP_IPV4_IFADDR = 5;
export const RTNLGRP_IPV6_IFADDR = 9;

const NLMSGERR_ATTR_MSG = 1;
const NLMSG_HDRLEN = 16;
const RTA_HDRLEN = 4;

/** How long one request may wait for the kernel's answer. Kernel answers take microseconds;
 *  seconds only under extreme rtnl lock contention, which a retry handles better than a hang. */
export const REQUEST_TIMEOUT_MS = 5000;
/** Large enough for any single netlink datagram the kernel sends (dump skbs are ≤ 32 KiB). */
const RECV_BUFFER_BYTES = 64 * 1024;
/** A dump that a concurrent change interrupted (NLM_F_DUMP_INTR) is restarted this often. */
const DUMP_RESTARTS = 3;

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

export const align4 = (n: number): number => (n + 3) & ~3;

export function encodeMessage(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const msg = Buffer.alloc(NLMSG_HDRLEN + align4(payload.length));
  msg.writeUInt32LE(NLMSG_HDRLEN + payload.length, 0);
  msg.writeUInt16LE(type, 4);
  msg.writeUInt16LE(flags, 6);
  msg.writeUInt32LE(seq, 8);
  msg.writeUInt32LE(0, 12);
  payload.copy(msg, NLMSG_HDRLEN);
  return msg;
}

/** Splits one datagram into its messages; a malformed length ends the walk instead of looping. */
export function parseMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

export function encodeAttr(type: number, value: Buffer): Buffer {
  const a = Buffer.alloc(align4(RTA_HDRLEN + value.length));
  a.writeUInt16LE(RTA_HDRLEN + value.length, 0);
  a.writeUInt16LE(type, 2);
  value.copy(a, RTA_HDRLEN);
  return a;
}

export function u32Attr(type: number, value: number): Buffer {
  const v = Buffer.alloc(4);
  v.writeUInt32LE(value, 0);
  return encodeAttr(type, v);
}

/** Attributes by type (the last one wins on repeats, which rtnetlink never sends for ours). */
export function parseAttrs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off + RTA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < RTA_HDRLEN || off + len > buf.length) break;
    // The top bits flag nested/byte-order attributes; the type is the rest.
    out.set(buf.readUInt16LE(off + 2) & 0x3fff, buf.subarray(off + RTA_HDRLEN, off + len));
    off += align4(len);
  }
  return out;
}

/** A NUL-terminated string attribute. */
export function attrString(v: Buffer | undefined): string | undefined {
  if (!v) return undefined;
  const nul = v.indexOf(0);
  return v.toString('utf8', 0, nul < 0 ? v.length : nul);
}

export interface Ifaddrmsg {
  family: number;
  prefixLen: number;
  flags: number;
  scope: number;
  index: number;
}
export const IFADDRMSG_LEN = 8;

export function encodeIfaddrmsg(m: Ifaddrmsg): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeUInt8(m.prefixLen, 1);
  b.writeUInt8(m.flags & 0xff, 2);
  b.writeUInt8(m.scope, 3);
  b.writeUInt32LE(m.index, 4);
  return b;
}

export function decodeIfaddrmsg(b: Buffer): Ifaddrmsg {
  return { family: b.readUInt8(0), prefixLen: b.readUInt8(1), flags: b.readUInt8(2), scope: b.readUInt8(3), index: b.readUInt32LE(4) };
}

export interface Ifinfomsg {
  family: number;
  type: number;
  index: number;
  flags: number;
  change: number;
}
export const IFINFOMSG_LEN = 16;

export function encodeIfinfomsg(m: Ifinfomsg): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeUInt16LE(m.type, 2);
  b.writeInt32LE(m.index, 4);
  b.writeUInt32LE(m.flags, 8);
  b.writeUInt32LE(m.change, 12);
  return b;
}

export function decodeIfinfomsg(b: Buffer): Ifinfomsg {
  return { family: b.readUInt8(0), type: b.readUInt16LE(2), index: b.readInt32LE(4), flags: b.readUInt32LE(8), change: b.readUInt32LE(12) };
}

/** The errno (positive; 0 = success) and extended-ACK text of an NLMSG_ERROR. */
export function decodeError(msg: NlMessage): { errno: number; extAck: string | undefined } {
  const p = msg.payload;
  const errno = -p.readInt32LE(0);
  let extAck: string | undefined;
  if (msg.flags & NLM_F_ACK_TLVS && p.length >= 4 + NLMSG_HDRLEN) {
    const echoed = msg.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(p.readUInt32LE(4));
    extAck = attrString(parseAttrs(p.subarray(4 + echoed)).get(NLMSGERR_ATTR_MSG));
  }
  return { errno, extAck };
}

export interface OpenOptions {
  nonBlocking?: boolean;
  /** rtnetlink multicast groups to join (RTNLGRP_*). */
  groups?: number[];
}

/** Opens and binds a NETLINK_ROUTE socket; the kernel assigns the port id. */
export function openRouteSocketFd(opts: OpenOptions = {}): number {
  const fd = libc.socket(libc.AF_NETLINK, libc.SOCK_RAW | libc.SOCK_CLOEXEC | (opts.nonBlocking ? libc.SOCK_NONBLOCK : 0), NETLINK_ROUTE);
  try {
    const sa = Buffer.alloc(12); // sockaddr_nl: family, pad, pid, groups
    sa.writeUInt16LE(libc.AF_NETLINK, 0);
    libc.bind(fd, sa);
    for (const g of opts.groups ?? []) libc.setsockoptInt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, g);
    return fd;
  } catch (e) {
    libc.close(fd);
    throw e;
  }
}

/**
 * A request/response NETLINK_ROUTE socket. Replies are matched by sequence number, so a late
 * answer to a request that timed out is discarded instead of being taken for the next one's.
 */
export class RouteSocket {
  private fd: number;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly buf = Buffer.alloc(RECV_BUFFER_BYTES);

  constructor(timeoutMs = REQUEST_TIMEOUT_MS) {
    this.fd = openRouteSocketFd();
    try {
      // Ask for the kernel's explanation text and for ACKs without the echoed request.
      libc.setsockoptInt(this.fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
      libc.setsockoptInt(this.fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
      // Strict checking lets the kernel filter an address dump by interface index.
      libc.setsockoptInt(this.fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
      libc.setReceiveTimeout(this.fd, timeoutMs);
    } catch (e) {
      libc.close(this.fd);
      throw e;
    }
  }

  /** Sends one request and waits for its ACK. Throws NetlinkError on a kernel refusal. */
  request(operation: string, type: number, flags: number, payload: Buffer): void {
    this.exchange(operation, type, NLM_F_REQUEST | NLM_F_ACK | flags, payload, false);
  }

  /** Sends a request that the kernel answers with data (a dump or a single GET). */
  query(operation: string, type: number, flags: number, payload: Buffer): NlMessage[] {
    for (let attempt = 0; ; attempt++) {
      const res = this.exchange(operation, type, NLM_F_REQUEST | flags, payload, (flags & NLM_F_DUMP) === NLM_F_DUMP);
      if (!res.interrupted) return res.messages;
      if (attempt >= DUMP_RESTARTS) throw new NetlinkError(operation, libc.errno.EINTR!, 'EINTR', 'dump kept being interrupted by concurrent changes');
    }
  }

  close(): void {
    if (this.fd >= 0) libc.close(this.fd);
    this.fd = -1;
  }

  private exchange(operation: string, type: number, flags: number, payload: Buffer, dump: boolean): { messages: NlMessage[]; interrupted: boolean } {
    if (this.fd < 0) throw new Error('netlink socket is closed');
    this.seq = (this.seq + 1) >>> 0;
    const seq = this.seq;
    libc.sendto(this.fd, encodeMessage(type, flags, seq, payload), 0, null);
    const messages: NlMessage[] = [];
    let interrupted = false;
    for (;;) {
      let n: number;
      try {
        n = libc.recv(this.fd, this.buf, libc.MSG_TRUNC);
      } catch (e) {
        if (e instanceof SyscallError && e.code === 'EAGAIN') {
          throw new NetlinkError(operation, e.errno, 'EAGAIN', `no answer from the kernel within ${REQUEST_TIMEOUT_MS} ms`);
        }
        throw e;
      }
      if (n > this.buf.length) throw new NetlinkError(operation, libc.errno.EMSGSIZE!, 'EMSGSIZE', `kernel reply of ${n} bytes exceeds the receive buffer`);
      for (const m of parseMessages(this.buf.subarray(0, n))) {
        if (m.seq !== seq) continue; // a late answer to an earlier, timed-out request
        if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
        if (m.type === NLMSG_ERROR || (m.type === NLMSG_DONE && m.payload.length >= 4)) {
          const { errno, extAck } = decodeError(m);
          if (errno !== 0) throw new NetlinkError(operation, errno, libc.errnoName(errno), extAck);
          return { messages, interrupted };
        }
        if (m.type === NLMSG_DONE) return { messages, interrupted };
        if (m.type === NLMSG_NOOP || m.type === NLMSG_OVERRUN) continue;
        // Copy: the receive buffer is reused for the next datagram.
        messages.push({ ...m, payload: Buffer.from(m.payload) });
        if (!dump && !(m.flags & NLM_F_MULTI)) return { messages, interrupted };
      }
    }
  }
}

let shared: RouteSocket | undefined;

/** The process's request socket, opened on first use (in the calling thread's network namespace). */
export function routeSocket(): RouteSocket {
  shared ??= new RouteSocket();
  return shared;
}

/** Closes the shared socket; the next request opens a new one (tests that switch namespaces). */
export function closeRouteSocket(): void {
  shared?.close();
  shared = undefined;
}
