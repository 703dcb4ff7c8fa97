// The etcd DcsBackend (dcs/session.ts): one connection (connection.ts) for the whole daemon,
// and on it one source per key (source.ts) and per prefix (prefix-source.ts), each with its own
// read/watch/retry cycle and its own watch request. A flip of one key reaches only its own
// source: etcd sends a watch's events to that watch alone.
//
// One watch request per subject, not one watch on the subjects' common prefix (what the Consul
// backend does): an extra subject costs one idle connection, whose keepalive the kernel answers
// without waking this process, while a common prefix of two keys is usually a whole namespace
// (/service/) where every Patroni member writes its member and status keys every loop_wait
// (10 s): events this daemon would wake up for, parse and drop, forever. A single subject (one
// VIP) watches exactly its key.
import type { Logger } from '../../log.js';
import type { DcsBackend } from '../session.js';
import type { KeySetSource } from '../key-set.js';
import type { LeaderSource } from '../../reconcile/ports.js';
import { EtcdConnection } from './connection.js';
import { EtcdPrefixSource } from './prefix-source.js';
import { EtcdLeaderSource, type EtcdSessionOptions } from './source.js';

export type { EtcdSessionOptions } from './source.js';

export interface EtcdBackend extends DcsBackend {
  readonly kind: 'etcd';
  /** The member calls currently go to, for status and logs. */
  readonly endpoint: string | undefined;
  /** The connection every source shares (tests, status). */
  readonly connection: EtcdConnection;
}

/**
 * Builds the client now: a TLS file that cannot be read throws (EtcdConfigFileError,
 * DcsTlsConfigError), a configuration error. Nothing is dialled before a source starts.
 */
export function createEtcdBackend(opts: EtcdSessionOptions, log: Logger): EtcdBackend {
  const conn = new EtcdConnection(opts, log);
  const open = new Set<{ close(): Promise<void> }>();
  const track = <S extends { close(): Promise<void> }>(source: S): S => {
    const close = source.close.bind(source);
    source.close = async () => {
      open.delete(source);
      await close();
    };
    open.add(source);
    return source;
  };
  return {
    kind: 'etcd',
    providesLeaseDeadline: true,
    connection: conn,
    get endpoint() {
      return conn.endpoint;
    },
    keySource(key: string): LeaderSource {
      return track(new EtcdLeaderSource({ ...opts, triggerKey: key }, log, conn));
    },
    prefixSource(prefix: string): KeySetSource {
      return track(new EtcdPrefixSource(prefix, opts, log, conn));
    },
    async close(): Promise<void> {
      // The session closes its sources first; any left open must not outlive the client.
      await Promise.allSettled([...open].map((s) => s.close()));
      conn.close();
      log.debug('etcd: connection closed');
    },
  };
}
