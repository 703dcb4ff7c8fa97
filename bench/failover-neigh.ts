// A tiny rtnetlink neighbour monitor for the failover bench: a non-blocking NETLINK_ROUTE socket
// joined to RTNLGRP_NEIGH, read when libuv says it is readable (the same technique as
// src/net/monitor.ts), decoding RTM_NEWNEIGH / RTM_DELNEIGH into (destination, link-layer
// address, NUD state). IPv4 only (that is all the bench needs). Runs in whatever network
// namespace the process is in.
import { EventEmitter } from 'node:events';
import koffi from 'koffi';
import * as libc from '../src/net/libc.js';
import { openRouteSocketFd, parseAttrs, parseMessages } from '../src/net/netlink.js';

const RTNLGRP_NEIGH = 3;
const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NDMSG_LEN = 12;

/** linux/neighbour.h NUD_* bits, for readable output. */
const NUD: Array<[number, string]> = [
  [0x01, 'INCOMPLETE'], [0x02, 'REACHABLE'], [0x04, 'STALE'], [0x08, 'DELAY'],
  [0x10, 'PROBE'], [0x20, 'FAILED'], [0x40, 'NOARP'], [0x80, 'PERMANENT'],
];

export interface NeighEvent {
  /** Epoch ms (performance.timeOrigin + performance.now()) when the notification was read. */
  t: number;
  op: 'new' | 'del';
  ifindex: number;
  dst: string;
  /** aa:bb:cc:dd:ee:ff, or '' when the entry has none (INCOMPLETE/FAILED). */
  lladdr: string;
  state: string;
}

type PollCallback = (status: number, events: { readable: boolean }) => void;
type DeclaredPollCallback = Parameters<typeof koffi.node.poll>[1];

export class NeighMonitor extends EventEmitter<{ neigh: [NeighEvent]; lost: [string] }> {
  private fd: number;
  private poll: ReturnType<typeof koffi.node.poll> | null;
  private readonly buf = Buffer.alloc(64 * 1024);

  constructor() {
    super();
    this.fd = openRouteSocketFd({ nonBlocking: true, groups: [RTNLGRP_NEIGH] });
    try {
      libc.setsockoptInt(this.fd, libc.SOL_SOCKET, libc.SO_RCVBUFFORCE, 1024 * 1024);
    } catch { /* default buffer: a handful of events per move fits easily */ }
    const cb: PollCallback = (status) => {
      if (status < 0) this.emit('lost', `poll status ${status}`);
      else this.drain();
    };
    // koffi 3.3.4 calls back with (status, events); its typings only declare (events).
    this.poll = koffi.node.poll(this.fd, { readable: true }, cb as unknown as DeclaredPollCallback);
  }

  close(): void {
    this.poll?.close();
    this.poll = null;
    if (this.fd >= 0) libc.close(this.fd);
    this.fd = -1;
  }

  private drain(): void {
    while (this.fd >= 0) {
      let n: number | null;
      try {
        n = libc.recvNonBlocking(this.fd, this.buf, libc.MSG_TRUNC);
      } catch (e) {
        this.emit('lost', String(e));
        return;
      }
      if (n === null) return;
      const t = performance.timeOrigin + performance.now();
      for (const m of parseMessages(this.buf.subarray(0, Math.min(n, this.buf.length)))) {
        if ((m.type !== RTM_NEWNEIGH && m.type !== RTM_DELNEIGH) || m.payload.length < NDMSG_LEN) continue;
        const family = m.payload.readUInt8(0);
        if (family !== libc.AF_INET) continue;
        const ifindex = m.payload.readInt32LE(4);
        const stateBits = m.payload.readUInt16LE(8);
        const attrs = parseAttrs(m.payload.subarray(NDMSG_LEN));
        const dst = attrs.get(NDA_DST);
        if (!dst || dst.length !== 4) continue;
        const ll = attrs.get(NDA_LLADDR);
        this.emit('neigh', {
          t,
          op: m.type === RTM_NEWNEIGH ? 'new' : 'del',
          ifindex,
          dst: [...dst].join('.'),
          lladdr: ll ? [...ll].map((b) => b.toString(16).padStart(2, '0')).join(':') : '',
          state: NUD.filter(([bit]) => stateBits & bit).map(([, s]) => s).join('|') || 'NONE',
        });
      }
    }
  }
}
