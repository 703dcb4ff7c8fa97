// Every key under a prefix (a Patroni cluster: leader, members/, sync, status, ...), read with
// one linearizable Range [prefix, prefix+1) and then watched with one prefix watch from the
// revision after it: what the role VIPs read. Same state machine, retries and outage semantics
// as the leader key's source (watch-loop.ts); no lease tracking (a role VIP's member is chosen
// from the keys' contents, never held on a lease deadline).
//
// Bounded: a Patroni cluster has tens of keys of a few hundred bytes each. A prefix holding
// more than MAX_PREFIX_KEYS keys or MAX_PREFIX_BYTES bytes is almost certainly a wrong
// trigger-key (a prefix that covers many clusters, or "/"), and reading it on every change would
// cost the daemon and etcd dearly: it is reported as a failure ("too-large") with the numbers,
// like an outage, and retried with the backoff (the keys may be cleaned up).
import type { KeySetSource, KeySetValue, KeySetView, KeyValue } from '../key-set.js';
import type { Logger } from '../../log.js';
import type { EtcdConnection } from './connection.js';
import { EtcdSourceError } from './errors.js';
import { EtcdResponseTooLargeError, MAX_RESPONSE_BYTES, type RangeResponse } from './gateway.js';
import { prefixRangeEnd, type KeyEvent } from './watch-stream.js';
import { EtcdWatchLoop, type RetryOptions } from './watch-loop.js';

/** Most keys a watched prefix may hold (Patroni: tens per cluster). */
export const MAX_PREFIX_KEYS = 10_000;
/**
 * Most bytes (keys and values) a watched prefix may hold. Its JSON answer (base64, framing) is
 * then ~5.3 MB, below the largest answer the client accepts (gateway.ts MAX_RESPONSE_BYTES), so
 * a prefix that large is refused by us, with the numbers, rather than cut off unread.
 */
export const MAX_PREFIX_BYTES = 3 * 1024 * 1024;

export { prefixRangeEnd } from './watch-stream.js';

function tooLarge(prefix: string, what: string): EtcdSourceError {
  return new EtcdSourceError('too-large', `etcd prefix ${prefix} holds ${what}; a Patroni cluster has tens of keys: is the trigger-key (<namespace>/<scope>/leader) right?`, undefined);
}

export class EtcdPrefixSource extends EtcdWatchLoop<KeySetValue> implements KeySetSource {
  private readonly keyBytes: Buffer;
  private readonly rangeEnd: Buffer;
  /** The current set (as of lastValue.revision); changed in place by watch events, copied into each view. */
  private kvs = new Map<string, KeyValue>();
  private bytes = 0;

  constructor(private readonly prefix: string, retry: RetryOptions, log: Logger, conn: EtcdConnection) {
    super(conn, retry, log, { subject: { prefix }, noun: 'prefix', fields: { prefix }, probeKey: prefix, errorKey: `the keys under ${prefix}` }, false);
    this.keyBytes = Buffer.from(prefix);
    this.rangeEnd = prefixRangeEnd(this.keyBytes);
  }

  override start(onView: (view: KeySetView) => void): void {
    super.start(onView);
  }

  protected startLog(): void {
    this.log.info({ endpoints: this.conn.opts.endpoints, prefix: this.prefix, user: this.conn.opts.user }, 'etcd: reading keys under prefix');
  }

  protected range(): Promise<RangeResponse> {
    // One more than allowed: `more` (or that extra key) says the prefix is too large.
    return this.conn.gateway.range({ key: this.keyBytes, rangeEnd: this.rangeEnd, limit: MAX_PREFIX_KEYS + 1 }).catch((e: unknown) => {
      // Beyond the largest answer the client takes: refused before we could count it.
      if (e instanceof EtcdResponseTooLargeError) throw tooLarge(this.prefix, `more than ${MAX_PREFIX_BYTES} bytes (an answer of more than ${MAX_RESPONSE_BYTES} bytes; the limit is ${MAX_PREFIX_BYTES})`);
      throw e;
    });
  }

  protected applyRead(res: RangeResponse, sentAt: number): void {
    if (res.more || res.kvs.length > MAX_PREFIX_KEYS) throw tooLarge(this.prefix, `more than ${MAX_PREFIX_KEYS} keys (the limit)`);
    const kvs = new Map<string, KeyValue>();
    let bytes = 0;
    for (const kv of res.kvs) {
      kvs.set(kv.key.toString('utf8'), { bytes: kv.value, modRevision: kv.mod_revision });
      bytes += kv.key.length + kv.value.length;
    }
    this.checkBytes(bytes);
    this.kvs = kvs;
    this.bytes = bytes;
    this.endOutage({ keys: kvs.size, revision: res.header.revision });
    this.emit(res.header.revision, sentAt);
  }

  protected applyEvents(events: KeyEvent[], receivedAt: number): void {
    for (const ev of events) {
      const key = ev.key.toString('utf8');
      const old = this.kvs.get(key);
      if (old) this.bytes -= ev.key.length + old.bytes.length;
      if (ev.value === null) {
        this.kvs.delete(key);
      } else {
        this.kvs.set(key, { bytes: ev.value, modRevision: ev.modRevision });
        this.bytes += ev.key.length + ev.value.length;
      }
    }
    if (this.kvs.size > MAX_PREFIX_KEYS) throw tooLarge(this.prefix, `${this.kvs.size} keys (the limit is ${MAX_PREFIX_KEYS})`);
    this.checkBytes(this.bytes);
    // The set as of the last event's revision: etcd delivers every event of the range up to
    // it, and never splits one revision's events over two responses. (The response header's
    // revision may run ahead of what this response carries while a watch catches up.)
    this.emit(events[events.length - 1]!.modRevision, receivedAt);
  }

  private checkBytes(bytes: number): void {
    if (bytes > MAX_PREFIX_BYTES) throw tooLarge(this.prefix, `${bytes} bytes of keys and values (the limit is ${MAX_PREFIX_BYTES})`);
  }

  private emit(revision: string, at: number): void {
    const view: KeySetValue = { kind: 'value', kvs: new Map(this.kvs), revision, at };
    this.log.debug({ prefix: this.prefix, keys: view.kvs.size, revision }, 'etcd: keys under prefix');
    this.publish(view);
  }
}
