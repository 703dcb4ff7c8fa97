// One watch on one key (or every key under a prefix) from one revision, as one streaming
// POST /v3/watch through etcd's JSON gateway (gateway.ts): the request body is the one
// create_request, the answer is one JSON object per line, {"result":{header, created | events |
// canceled + cancel_reason / compact_revision}} or {"error":{grpc_code, message, ...}}.
// Used once: the first sign of trouble (stream error or end, cancellation by etcd, no
// confirmation in time) is reported exactly once and the request is aborted. The source then
// re-reads and opens a new one from the read's revision + 1, so a compaction or an outage is
// never hidden behind a silent re-attach.
import { performance } from 'node:perf_hooks';
import { cancelReasonError, decodeKv, gatewayError, GrpcCode, MAX_RESPONSE_BYTES, EtcdResponseTooLargeError, type EtcdGateway, type StreamHandle } from './gateway.js';

/** A watch not confirmed by etcd within this long is given up (same bound as a unary call). */
export const WATCH_CREATE_TIMEOUT_MS = 3000;

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

/** What a watch covers: one key, or every key that starts with `prefix`. */
export type WatchSubject = string | { readonly prefix: string };

export function describeSubject(subject: WatchSubject): string {
  return typeof subject === 'string' ? subject : `the keys under ${subject.prefix}`;
}

/** etcd ended or cancelled a watch (compaction, or the stream closed). */
export class EtcdWatchLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EtcdWatchLostError';
  }
}

/**
 * The end of etcd's range for every key starting with `prefix`: the prefix with its last byte
 * that is not 0xff incremented and what follows it dropped (etcd's clientv3.GetPrefixRangeEnd);
 * "\0" (no end) when every byte is 0xff.
 */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i]! += 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

/** The create_request of a watch on `subject` from `fromRevision`. */
export function createRequest(subject: WatchSubject, fromRevision: string): { create_request: Record<string, unknown> } {
  const key = Buffer.from(typeof subject === 'string' ? subject : subject.prefix);
  const req: Record<string, unknown> = { key: key.toString('base64'), start_revision: fromRevision };
  if (typeof subject !== 'string') req.range_end = prefixRangeEnd(key).toString('base64');
  return { create_request: req };
}

function toKeyEvent(ev: Record<string, unknown>): KeyEvent {
  const kv = decodeKv((ev.kv ?? {}) as Record<string, unknown>);
  return ev.type === 'DELETE'
    ? { key: kv.key, value: null, modRevision: kv.mod_revision, lease: '0' }
    : { key: kv.key, value: kv.value, modRevision: kv.mod_revision, lease: kv.lease };
}

export class KeyWatch {
  private readonly handle: StreamHandle;
  private done = false;
  private connected = false;
  private readonly createTimer: NodeJS.Timeout;
  /** The start of an unfinished line (chunks do not follow line boundaries). */
  private partial: Buffer[] = [];
  private partialBytes = 0;

  constructor(private readonly gateway: EtcdGateway, private readonly subject: WatchSubject, private readonly fromRevision: string, private readonly handlers: KeyWatchHandlers) {
    this.createTimer = setTimeout(() => {
      this.fail(new Error(`etcd did not confirm the watch on ${describeSubject(subject)} within ${WATCH_CREATE_TIMEOUT_MS} ms`));
    }, WATCH_CREATE_TIMEOUT_MS);
    this.handle = gateway.openStream('/watch', createRequest(subject, fromRevision), {
      open: () => undefined,
      data: (chunk) => this.data(chunk),
      error: (e) => this.fail(e),
      end: () => this.end(),
    });
  }

  private data(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1 && !this.done; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      const line = this.partialBytes > 0 ? Buffer.concat([...this.partial, piece]) : piece;
      this.partial = [];
      this.partialBytes = 0;
      if (line.length > 0) this.line(line);
    }
    if (this.done || start >= chunk.length) return;
    this.partialBytes += chunk.length - start;
    if (this.partialBytes > MAX_RESPONSE_BYTES) {
      this.fail(new EtcdResponseTooLargeError(MAX_RESPONSE_BYTES));
      return;
    }
    this.partial.push(chunk.subarray(start));
  }

  /**
   * The stream ended. grpc-gateway writes a stream's error object without the newline it puts
   * after every result (runtime.handleForwardResponseStreamError), so an unfinished last line is
   * that error (e.g. "no leader" when the member lost its leader): it is the failure's cause.
   */
  private end(): void {
    if (this.partialBytes > 0) {
      const last = Buffer.concat(this.partial);
      this.partial = [];
      this.partialBytes = 0;
      this.line(last);
    }
    this.fail(new EtcdWatchLostError(`etcd ended the watch stream on ${describeSubject(this.subject)}`));
  }

  private line(line: Buffer): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line.toString('utf8')) as Record<string, unknown>;
    } catch {
      this.fail(new Error(`etcd sent a watch line that is not JSON: ${line.subarray(0, 120).toString('utf8')}`));
      return;
    }
    if (msg.error !== undefined) {
      this.fail(gatewayError(msg));
      return;
    }
    const r = (msg.result ?? {}) as Record<string, unknown>;
    if (r.canceled === true) {
      this.fail(this.cancelError(r));
      return;
    }
    if (r.created === true && !this.connected) {
      this.connected = true;
      clearTimeout(this.createTimer);
      this.handlers.onConnected();
    }
    // Progress notifications carry no events.
    if (Array.isArray(r.events) && r.events.length > 0 && !this.done) {
      this.handlers.onEvents((r.events as Record<string, unknown>[]).map(toKeyEvent), performance.now());
    }
  }

  private cancelError(r: Record<string, unknown>): Error {
    const what = describeSubject(this.subject);
    if (r.compact_revision !== undefined && r.compact_revision !== '0') {
      return new EtcdWatchLostError(`etcd canceled the watch on ${what}: required revision ${this.fromRevision} has been compacted (compact revision ${String(r.compact_revision)})`);
    }
    const reason = typeof r.cancel_reason === 'string' ? r.cancel_reason : '';
    const named = cancelReasonError(reason);
    if (named) {
      if (named.code === GrpcCode.Unauthenticated) this.gateway.tokenRejected(this.handle.token);
      return named;
    }
    return new EtcdWatchLostError(`etcd canceled the watch on ${what}${reason ? `: ${reason}` : ''}`);
  }

  private fail(error: unknown): void {
    if (this.done) return;
    this.stop();
    this.handlers.onFailure(error);
  }

  private stop(): void {
    this.done = true;
    clearTimeout(this.createTimer);
    this.partial = [];
    // Aborting the request closes its connection; etcd cancels the watch with it.
    this.handle?.close();
  }

  /** Ends the watch (its connection closes at once; nothing to wait for). */
  close(): Promise<void> {
    if (!this.done) this.stop();
    return Promise.resolve();
  }
}
