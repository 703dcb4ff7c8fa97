// One DCS session per daemon, however many VIP entries it serves: one etcd client (one
// connection, one watch stream) or one Consul query loop, and per entry a LeaderSource facade
// over it. Each distinct subject (a key, or a cluster's prefix for the role VIPs) is read and
// watched once and fanned out to every entry that needs it; an entry that subscribes late is
// handed the latest view at once, and the subject stops being watched when its last entry goes
// (a reload that removes it).
import type { Logger } from '../log.js';
import type { LeaderSource, LeaderView } from '../reconcile/ports.js';
import type { KeySetSource, KeySetView } from './key-set.js';

/** Which node an entry's VIP belongs on (config keys role, fallback, max-lag, trigger-key). */
export interface LeaderSpec {
  /** The leader key (role leader: the trigger key itself; other roles: Patroni's <namespace>/<scope>/leader). */
  readonly triggerKey: string;
  readonly role: 'leader' | 'replica' | 'sync-standby';
  /** With no qualifying member for the role: nowhere (none) or on the leader. */
  readonly fallback: 'none' | 'leader';
  /** role replica: the most a replica may lag behind the leader, in bytes of WAL; undefined: no limit. */
  readonly maxLag: number | undefined;
}

/** What one DCS offers the session: sources per subject, created once each, closed by the session. */
export interface DcsBackend {
  readonly kind: LeaderSource['kind'];
  /** Whether key sources carry a sound lease deadline (etcd). Role sources never do. */
  readonly providesLeaseDeadline: boolean;
  /** A source of one key's value (role leader). */
  keySource(key: string): LeaderSource;
  /** A source of every key under a prefix (the role VIPs read Patroni's whole cluster state). */
  prefixSource(prefix: string): KeySetSource;
  /** Closes what the sources share (the client); called after every source was closed. */
  close(): Promise<void>;
}

/** Turns a cluster's key set into the member a role's VIP belongs on (dcs/role-source.ts). */
export type RoleSourceFactory = (keySet: KeySetSource, spec: LeaderSpec, log: Logger) => LeaderSource;

/** The cluster prefix of a Patroni leader key: `/service/pg/leader` → `/service/pg/`. */
export function clusterPrefix(leaderKey: string): string | undefined {
  return leaderKey.endsWith('/leader') ? leaderKey.slice(0, -'leader'.length) : undefined;
}

interface Startable<V> {
  start(onView: (v: V) => void): void;
  close(): Promise<void>;
}

/** One underlying source, many listeners: started by the first, closed after the last. */
class Fanout<V> {
  private readonly listeners = new Set<(v: V) => void>();
  private latest: V | undefined;
  private started = false;

  constructor(private readonly inner: Startable<V>, private readonly onEmpty: () => void) {}

  subscribe(listener: (v: V) => void): () => Promise<void> {
    this.listeners.add(listener);
    if (!this.started) {
      this.started = true;
      this.inner.start((v) => {
        this.latest = v;
        for (const l of [...this.listeners]) l(v);
      });
    } else if (this.latest !== undefined) {
      listener(this.latest);
    }
    return async () => {
      if (!this.listeners.delete(listener) || this.listeners.size > 0) return;
      this.onEmpty();
      await this.inner.close();
    };
  }
}

export class DcsSession {
  private readonly keys = new Map<string, Fanout<LeaderView>>();
  private readonly prefixes = new Map<string, Fanout<KeySetView>>();
  private readonly open = new Set<() => Promise<void>>();

  constructor(private readonly backend: DcsBackend, private readonly roles: RoleSourceFactory, private readonly log: Logger) {}

  get kind(): LeaderSource['kind'] {
    return this.backend.kind;
  }

  /**
   * The leader source of one entry. Each call makes a new facade; close() it when the entry goes.
   * `log`: the entry's logger (its lines carry the entry's name); the session's by default.
   */
  leaderSource(spec: LeaderSpec, log: Logger = this.log): LeaderSource {
    if (spec.role === 'leader') return this.facade(() => this.keyFanout(spec.triggerKey), this.backend.providesLeaseDeadline);
    const prefix = clusterPrefix(spec.triggerKey);
    // The configuration refuses this (config/load.ts); a second guard costs nothing.
    if (prefix === undefined) throw new Error(`role ${spec.role} needs a trigger-key ending in /leader (Patroni's <namespace>/<scope>/leader), not ${spec.triggerKey}`);
    const keySet: KeySetSource = this.facade(() => this.prefixFanout(prefix), false);
    return this.roles(keySet, spec, log);
  }

  /**
   * Starts reading the subjects of these entries now, before the entries exist: the daemon's
   * first request then goes out while it is still setting up its VIP holders and HTTP endpoint,
   * and an entry that subscribes later is handed the latest view at once (Fanout). Reading is
   * all it does; nothing acts on a view until an entry has subscribed. The returned function
   * drops these early subscriptions (once the entries hold their own; close() drops them too).
   */
  prefetch(specs: readonly LeaderSpec[]): () => Promise<void> {
    const closes: Array<() => Promise<void>> = [];
    for (const spec of specs) {
      let close: () => Promise<void>;
      if (spec.role === 'leader') {
        close = this.keyFanout(spec.triggerKey).subscribe(() => undefined);
      } else {
        const prefix = clusterPrefix(spec.triggerKey);
        if (prefix === undefined) continue; // leaderSource() refuses it, with the reason
        close = this.prefixFanout(prefix).subscribe(() => undefined);
      }
      closes.push(close);
      this.open.add(close);
    }
    return async () => {
      for (const close of closes.splice(0)) {
        if (this.open.delete(close)) await close();
      }
    };
  }

  /** Closes every subject still watched, then the backend. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.open].map((close) => close()));
    await this.backend.close();
  }

  private keyFanout(key: string): Fanout<LeaderView> {
    return this.fanout(this.keys, key, () => this.backend.keySource(key));
  }

  private prefixFanout(prefix: string): Fanout<KeySetView> {
    return this.fanout(this.prefixes, prefix, () => this.backend.prefixSource(prefix));
  }

  private fanout<V>(map: Map<string, Fanout<V>>, subject: string, create: () => Startable<V>): Fanout<V> {
    let f = map.get(subject);
    if (f === undefined) {
      f = new Fanout<V>(create(), () => map.delete(subject));
      map.set(subject, f);
    }
    return f;
  }

  private facade<V>(fanout: () => Fanout<V>, providesLeaseDeadline: boolean): LeaderSource & Startable<V> {
    const kind = this.backend.kind;
    let unsubscribe: (() => Promise<void>) | null = null;
    const open = this.open;
    return {
      kind,
      providesLeaseDeadline,
      start(onView: (v: V) => void): void {
        if (unsubscribe !== null) throw new Error('a DCS session source was started twice');
        const close = fanout().subscribe(onView);
        unsubscribe = close;
        open.add(close);
      },
      async close(): Promise<void> {
        const close = unsubscribe;
        if (close === null) return;
        open.delete(close);
        await close();
      },
    } as LeaderSource & Startable<V>;
  }
}
