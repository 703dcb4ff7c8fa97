// A packet capture for tests: an AF_PACKET socket receiving every frame (ETH_P_ALL) on one
// interface, opened inside the namespace that should see the frames, read without blocking via
// koffi.node.poll. Independent of the code under test except for the libc bindings.
import koffi from 'koffi';
import { performance } from 'node:perf_hooks';
import * as libc from '../../../src/net/libc.js';
import { ifNameToIndex } from '../../../src/net/libc.js';
import { inNetns } from '../../harness/enter-netns.js';
import type { Netns } from '../../harness/netns.js';

const ETH_P_ALL = 0x0003;

export interface Captured {
  /** performance.now() when read. */
  at: number;
  frame: Buffer;
}

export class Capture {
  readonly frames: Captured[] = [];
  private readonly fd: number;
  private readonly poll: ReturnType<typeof koffi.node.poll>;
  private readonly buf = Buffer.alloc(65536);
  private closed = false;

  /** Starts capturing on `dev` inside `ns`. */
  constructor(ns: Netns, dev: string) {
    this.fd = inNetns(ns, () => {
      const fd = libc.socket(libc.AF_PACKET, libc.SOCK_RAW | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, ((ETH_P_ALL & 0xff) << 8) | (ETH_P_ALL >> 8));
      const sa = Buffer.alloc(20);
      sa.writeUInt16LE(libc.AF_PACKET, 0);
      sa.writeUInt16BE(ETH_P_ALL, 2);
      const index = ifNameToIndex(dev);
      if (!index) throw new Error(`capture: no ${dev} in ${ns.name}`);
      sa.writeInt32LE(index, 4);
      libc.bind(fd, sa);
      return fd;
    });
    this.poll = koffi.node.poll(this.fd, { readable: true }, (() => this.drain()) as unknown as Parameters<typeof koffi.node.poll>[1]);
  }

  /** Reads everything queued now (also called by the poll callback). */
  drain(): void {
    if (this.closed) return;
    for (;;) {
      const n = libc.recvNonBlocking(this.fd, this.buf, 0);
      if (n === null) return;
      this.frames.push({ at: performance.now(), frame: Buffer.from(this.buf.subarray(0, n)) });
    }
  }

  /** Waits until `pred` holds for the frames captured so far, or fails after `timeoutMs`. */
  async waitFor(pred: (frames: Captured[]) => boolean, timeoutMs: number, what: string): Promise<void> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      this.drain();
      if (pred(this.frames)) return;
      if (performance.now() > end) throw new Error(`capture: ${what} not seen within ${timeoutMs} ms (${this.frames.length} frames captured)`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poll.close();
    libc.close(this.fd);
  }
}
