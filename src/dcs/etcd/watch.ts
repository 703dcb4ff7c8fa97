// One watch on one key (or every key under a prefix) from one revision, used once: the first
// sign of trouble (stream error or end, cancellation by etcd, no confirmation in time) is
// reported exactly once and the watcher is thrown away. The source then re-reads and opens a
// new one, instead of letting etcd3 re-attach it from its last revision, which fails for good
// after a compaction and hides the outage from us. Every watch of a client shares its one gRPC
// stream (etcd3's WatchManager). Traps of etcd3 1.1.2 handled here:
//   - never await cancel() on a watcher etcd already cancelled (it waits for an 'end' that
//     never comes); after a disconnect cancel() only unlinks it, which is immediate;
//   - an 'error' event without a listener would throw, so one stays attached for good;
//   - create() of a watch can stay pending forever (wrong password): we time it out;
//   - a create etcd refuses stalls every later create on the stream (unstickAttachQueue).
import { performance } from 'node:perf_hooks';
import type { Etcd3, IEvent, IWatchResponse, Watcher } from 'etcd3';

/** A watch not confirmed by etcd within this long is given up (same bound as a unary call). */
export const WATCH_CREATE_TIMEOUT_MS = 3000;
/** close(): how long to wait for etcd to confirm the cancel before closing the client anyway. */
export const WATCH_CANCEL_TIMEOUT_MS = 1000;

export interface KeyEvent {
  /** The key as stored. */
  readonly key: Buffer;
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
    ? { key: ev.kv.key, value: null, modRevision: ev.kv.mod_revision, lease: '0' }
    : { key: ev.kv.key, value: ev.kv.value, modRevision: ev.kv.mod_revision, lease: ev.kv.lease || '0' };
}

/** What a watch covers: one key, or every key that starts with `prefix`. */
export type WatchSubject = string | { readonly prefix: string };

export function describeSubject(subject: WatchSubject): string {
  return typeof subject === 'string' ? subject : `the keys under ${subject.prefix}`;
}

/**
 * etcd3 1.1.2 attaches the watchers of one stream one at a time (AttachQueue) and, when etcd
 * answers a create with "created" and "canceled" at once (etcd 3.4: permission denied), drops
 * the watcher without moving its queue on: every later watcher on the same stream then waits
 * forever for its own create. One stream is shared by every source (backend.ts), so one such
 * answer would stall all the others; this moves the queue on. Does nothing if etcd3's
 * internals are not as expected (the affected watch then times out as before).
 */
function unstickAttachQueue(watcher: Watcher): void {
  const queue = (watcher as unknown as { manager?: { queue?: { queue?: unknown[]; state?: number; readQueue?: () => void } } }).manager?.queue;
  if (!queue || !Array.isArray(queue.queue) || typeof queue.readQueue !== 'function') return;
  if (queue.queue[0] !== watcher) return;
  queue.queue.shift();
  queue.readQueue();
}

export class KeyWatch {
  private readonly watcher: Watcher;
  private done = false;
  private connected = false;
  private createTimer: NodeJS.Timeout | undefined;

  constructor(client: Etcd3, subject: WatchSubject, fromRevision: string, private readonly handlers: KeyWatchHandlers) {
    // watcher() attaches at once and hands us the emitter, so no event can slip by before
    // our listeners exist (create() would resolve only after 'connected').
    const builder = typeof subject === 'string' ? client.watch().key(subject) : client.watch().prefix(subject.prefix);
    this.watcher = builder.startRevision(fromRevision).watcher();
    this.watcher.on('error', (e: unknown) => {
      if (!this.connected) unstickAttachQueue(this.watcher);
      this.fail(e, false);
    });
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
      this.fail(new Error(`etcd did not confirm the watch on ${describeSubject(subject)} within ${WATCH_CREATE_TIMEOUT_MS} ms`), true);
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
    // Kept for good: an 'error' without a listener would throw; a refused create that comes
    // after we gave up on it must still move etcd3's queue on.
    this.watcher.on('error', () => {
      if (!this.connected) unstickAttachQueue(this.watcher);
    });
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
