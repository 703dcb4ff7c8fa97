// One watch on one key from one revision, used once: the first sign of trouble (stream error or
// end, cancellation by etcd, no confirmation in time) is reported exactly once and the watcher
// is thrown away. The source then re-reads and opens a new one, instead of letting etcd3
// re-attach it from its last revision, which fails for good after a compaction and hides the
// outage from us. Traps of etcd3 1.1.2 handled here:
//   - never await cancel() on a watcher etcd already cancelled (it waits for an 'end' that
//     never comes); after a disconnect cancel() only unlinks it, which is immediate;
//   - an 'error' event without a listener would throw, so one stays attached for good;
//   - create() of a watch can stay pending forever (wrong password): we time it out.
import { performance } from 'node:perf_hooks';
import type { Etcd3, IEvent, IWatchResponse, Watcher } from 'etcd3';

/** A watch not confirmed by etcd within this long is given up (same bound as a unary call). */
export const WATCH_CREATE_TIMEOUT_MS = 3000;
/** close(): how long to wait for etcd to confirm the cancel before closing the client anyway. */
export const WATCH_CANCEL_TIMEOUT_MS = 1000;

export interface KeyEvent {
  /** The value's bytes as stored; null for a delete. */
  readonly value: Buffer | null;
  readonly modRevision: string;
  /** Lease id ('0' without lease, and for deletes). */
  readonly lease: string;
}

export interface KeyWatchHandlers {
  /** etcd confirmed the watch (it now delivers every change after `fromRevision` − 1). */
  onConnected(): void;
  /** The events of one watch response, in revision order; `receivedAt` is performance.now(). */
  onEvents(events: KeyEvent[], receivedAt: number): void;
  /** Called at most once; the watch is dead afterwards. */
  onFailure(error: unknown): void;
}

function toKeyEvent(ev: IEvent): KeyEvent {
  return ev.type === 'Delete'
    ? { value: null, modRevision: ev.kv.mod_revision, lease: '0' }
    : { value: ev.kv.value, modRevision: ev.kv.mod_revision, lease: ev.kv.lease || '0' };
}

export class KeyWatch {
  private readonly watcher: Watcher;
  private done = false;
  private connected = false;
  private createTimer: NodeJS.Timeout | undefined;

  constructor(client: Etcd3, key: string, fromRevision: string, private readonly handlers: KeyWatchHandlers) {
    // watcher() attaches at once and hands us the emitter, so no event can slip by before
    // our listeners exist (create() would resolve only after 'connected').
    this.watcher = client.watch().key(key).startRevision(fromRevision).watcher();
    this.watcher.on('error', (e: unknown) => this.fail(e, false));
    this.watcher.on('disconnected', (e: unknown) => this.fail(e, true));
    this.watcher.on('connected', () => {
      if (this.done) return;
      this.connected = true;
      clearTimeout(this.createTimer);
      this.handlers.onConnected();
    });
    this.watcher.on('data', (res: IWatchResponse) => {
      if (this.done || res.events.length === 0) return; // progress notifications carry no events
      this.handlers.onEvents(res.events.map(toKeyEvent), performance.now());
    });
    this.createTimer = setTimeout(() => {
      this.fail(new Error(`etcd did not confirm the watch on ${key} within ${WATCH_CREATE_TIMEOUT_MS} ms`), true);
    }, WATCH_CREATE_TIMEOUT_MS);
  }

  private fail(error: unknown, unlink: boolean): void {
    if (this.done) return;
    this.stopListening();
    // After 'disconnected' (etcd3 state Idle) cancel() only unlinks; on a create timeout it
    // detaches once etcd answers. Never awaited: after 'error' etcd already forgot the watch.
    if (unlink) void this.watcher.cancel().catch(() => undefined);
    this.handlers.onFailure(error);
  }

  private stopListening(): void {
    this.done = true;
    clearTimeout(this.createTimer);
    this.watcher.removeAllListeners();
    this.watcher.on('error', () => undefined);
  }

  /** Cancels a healthy watch (bounded wait); a failed one is already gone. */
  async close(): Promise<void> {
    if (this.done) return;
    const wasConnected = this.connected;
    this.stopListening();
    const cancel = this.watcher.cancel().catch(() => undefined);
    if (!wasConnected) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([cancel, new Promise<void>((r) => { t = setTimeout(r, WATCH_CANCEL_TIMEOUT_MS); })]);
    clearTimeout(t);
  }
}
