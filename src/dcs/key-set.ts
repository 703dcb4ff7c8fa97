// Every key under a prefix, as one DCS revision shows it: what the role VIPs read (Patroni's
// whole cluster state: leader, members/, sync, status) to find the member a role belongs on.
// Same outage semantics as a LeaderView (reconcile/ports.ts): `since` is the first failure
// after the last success, `last` the last value seen.

export interface KeyValue {
  /** The value exactly as stored. */
  readonly bytes: Uint8Array;
  /** etcd mod revision or Consul ModifyIndex of this key. */
  readonly modRevision: string;
}

export interface KeySetValue {
  readonly kind: 'value';
  /** Full key (as configured: etcd keys as stored, Consul keys with the configured leading "/" kept) → value. */
  readonly kvs: ReadonlyMap<string, KeyValue>;
  /** The revision (etcd) or index (Consul) the whole set was read or watched at. */
  readonly revision: string;
  /** When this was known to be true (monotonic ms: the moment the request that learned it was sent). */
  readonly at: number;
}

export interface KeySetUnreachable {
  readonly kind: 'unreachable';
  readonly since: number;
  readonly error: Error;
  readonly failures: number;
  readonly last: KeySetValue | null;
}

export type KeySetView = KeySetValue | KeySetUnreachable;

export interface KeySetSource {
  /** Starts reading and watching; never throws (failures arrive as unreachable views). */
  start(onView: (view: KeySetView) => void): void;
  close(): Promise<void>;
}
