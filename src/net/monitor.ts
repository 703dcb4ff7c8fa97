// Kernel change notifications: a non-blocking NETLINK_ROUTE socket joined to the link and
// address multicast groups, read when libuv says it is readable (koffi.node.poll), so events
// arrive within milliseconds without blocking the event loop or a libuv worker thread.
//
// Events can be lost only by a receive-buffer overrun; the kernel then reports ENOBUFS (and
// libuv stops the poll handle with an error status). The monitor never hides that: it opens a
// fresh socket first and then emits 'resync', so a consumer that re-reads the state on
// 'resync' cannot miss a change that happened in between.
import { EventEmitter } from 'node:events';
import koffi from 'koffi';
import type { Logger } from 'pino';
import * as libc from './libc.js';
import { NetError } from './errors.js';
import { decodeAddressMessage } from './addresses.js';
import { decodeLinkMessage } from './links.js';
import {
  RTM_DELADDR, RTM_DELLINK, RTM_NEWADDR, RTM_NEWLINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_LINK,
  openRouteSocketFd, parseMessages, type NlMessage,
} from './netlink.js';
import type { Family } from './ip.js';

export interface AddressEvent {
  op: 'add' | 'del';
  ifindex: number;
  address: string;
  prefixLen: number;
  family: Family;
}

export interface LinkEvent {
  /** 'new' covers creation and every change (flags, rename); 'del' is removal. */
  op: 'new' | 'del';
  ifindex: number;
  name: string;
  up: boolean;
  running: boolean;
}

export interface NetMonitorEvents {
  address: [AddressEvent];
  link: [LinkEvent];
  /** Events may have been lost; re-read whatever state you derive from them. */
  resync: [reason: string];
}

export interface NetMonitorOptions {
  /**
   * SO_RCVBUF to ask for. Large by default so that a burst (an interface with many addresses
   * going down) fits; tests set it tiny to force an overrun.
   */
  receiveBufferBytes?: number;
  log?: Logger;
}

/** 4 MiB holds thousands of notifications; SO_RCVBUFFORCE (CAP_NET_ADMIN) lifts rmem_max. */
export const DEFAULT_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;
/** One netlink notification datagram is far smaller; MSG_TRUNC tells if one ever is not. */
const DATAGRAM_BYTES = 64 * 1024;
/** After a failed reopen (e.g. out of descriptors), try again this much later. */
const REOPEN_DELAY_MS = 1000;

type PollCallback = (status: number, events: { readable: boolean }) => void;
type PollHandle = ReturnType<typeof koffi.node.poll>;
type DeclaredPollCallback = Parameters<typeof koffi.node.poll>[1];

export class NetMonitor extends EventEmitter<NetMonitorEvents> {
  private fd = -1;
  private poll: PollHandle | null = null;
  private reopenTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly buf = Buffer.alloc(DATAGRAM_BYTES);
  private readonly receiveBufferBytes: number;
  private readonly log: Logger | undefined;

  /** Opens the watch at once; throws if the socket cannot be opened. */
  constructor(opts: NetMonitorOptions = {}) {
    super();
    this.receiveBufferBytes = opts.receiveBufferBytes ?? DEFAULT_RECEIVE_BUFFER_BYTES;
    this.log = opts.log;
    this.open();
  }

  /** Stops watching and releases the socket, so the process can exit. */
  close(): void {
    this.closed = true;
    clearTimeout(this.reopenTimer);
    this.shut();
  }

  private open(): void {
    const fd = openRouteSocketFd({ nonBlocking: true, groups: [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR] });
    try {
      try {
        libc.setsockoptInt(fd, libc.SOL_SOCKET, libc.SO_RCVBUFFORCE, this.receiveBufferBytes);
      } catch {
        // Without CAP_NET_ADMIN the kernel caps this at net.core.rmem_max.
        libc.setsockoptInt(fd, libc.SOL_SOCKET, libc.SO_RCVBUF, this.receiveBufferBytes);
      }
      const cb: PollCallback = (status) => this.onPoll(status);
      // koffi 3.3.4 calls back with (status, events); its typings only declare (events).
      this.poll = koffi.node.poll(fd, { readable: true }, cb as unknown as DeclaredPollCallback);
    } catch (e) {
      libc.close(fd);
      throw e;
    }
    this.fd = fd;
  }

  private shut(): void {
    // Close the poll handle first: libuv drops the descriptor from epoll synchronously, so the
    // number can be reused safely once it is closed.
    this.poll?.close();
    this.poll = null;
    if (this.fd >= 0) libc.close(this.fd);
    this.fd = -1;
  }

  private onPoll(status: number): void {
    if (this.closed) return;
    // A negative status is libuv's: it saw EPOLLERR (the overrun) and has stopped the handle.
    if (status < 0) this.restart(`poll reported ${status} (receive buffer overrun)`);
    else this.drain();
  }

  private drain(): void {
    while (!this.closed && this.fd >= 0) {
      let n: number | null;
      try {
        n = libc.recvNonBlocking(this.fd, this.buf, libc.MSG_TRUNC);
      } catch (e) {
        const code = e instanceof NetError ? e.code : String(e);
        this.restart(code === 'ENOBUFS' ? 'receive buffer overrun (ENOBUFS)' : `receive failed (${code})`);
        return;
      }
      if (n === null) return;
      if (n > this.buf.length) {
        this.restart(`notification of ${n} bytes truncated`);
        return;
      }
      for (const m of parseMessages(this.buf.subarray(0, n))) {
        if (this.closed) return;
        this.dispatch(m);
      }
    }
  }

  private dispatch(m: NlMessage): void {
    const type = m.type;
    if (type === RTM_NEWADDR || type === RTM_DELADDR) {
      const a = decodeAddressMessage(m);
      if (a) {
        this.emit('address', { op: type === RTM_NEWADDR ? 'add' : 'del', ifindex: a.ifindex, address: a.address, prefixLen: a.prefixLen, family: a.family });
      }
    } else if (type === RTM_NEWLINK || type === RTM_DELLINK) {
      const l = decodeLinkMessage(m);
      this.emit('link', { op: type === RTM_NEWLINK ? 'new' : 'del', ifindex: l.index, name: l.name, up: l.up, running: l.running });
    }
  }

  private restart(reason: string): void {
    this.shut();
    if (this.closed) return;
    try {
      this.open();
    } catch (e) {
      this.log?.warn({ err: e, reason }, 'cannot reopen the kernel event socket; retrying');
      this.reopenTimer = setTimeout(() => this.restart(reason), REOPEN_DELAY_MS);
      return;
    }
    this.log?.warn({ reason }, 'kernel events may have been lost; watching again and re-reading state');
    this.emit('resync', reason);
  }
}
