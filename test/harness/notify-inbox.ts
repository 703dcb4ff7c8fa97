// sd_notify datagrams as a daemon sends them to $NOTIFY_SOCKET: every one kept with the time it
// arrived, and a wait for the first that matches.
import type { DatagramReceiver } from '../../src/net/unix-datagram.js';

export interface Datagram {
  text: string;
  /** Date.now() when it was taken off the socket: comparable with the daemon's log `time`. */
  at: number;
}

/** Receives every datagram on the socket as it arrives and lets a test wait for one. */
export class Inbox {
  readonly got: Datagram[] = [];
  private open = true;
  private readonly loop: Promise<void>;
  private waiters: Array<{ pred: (d: Datagram) => boolean; from: number; resolve: (d: Datagram) => void }> = [];

  constructor(private readonly r: DatagramReceiver) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.open) {
      let buf: Buffer;
      try {
        buf = await this.r.next(250);
      } catch {
        continue; // a quiet quarter second, or close()
      }
      const d = { text: buf.toString('utf8'), at: Date.now() };
      this.got.push(d);
      const index = this.got.length - 1;
      this.waiters = this.waiters.filter((w) => {
        if (index < w.from || !w.pred(d)) return true;
        w.resolve(d);
        return false;
      });
    }
  }

  /** The first datagram at index >= `from` (already received or future) matching `pred`. */
  waitFor(pred: (d: Datagram) => boolean, timeoutMs: number, what: string, from = 0): Promise<Datagram> {
    const seen = this.got.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms; received:\n${this.got.map((g) => JSON.stringify(g.text)).join('\n')}`)), timeoutMs);
      this.waiters.push({ pred, from, resolve: (d) => { clearTimeout(timer); resolve(d); } });
    });
  }

  texts(): string[] {
    return this.got.map((d) => d.text);
  }

  async close(): Promise<void> {
    this.open = false;
    this.r.close();
    await this.loop;
  }
}
