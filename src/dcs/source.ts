// The leader-source interface: what every DCS adapter (etcd, Consul, Patroni REST) reports to
// the reconciler. Times are monotonic milliseconds (performance.now()), never wall-clock, so a
// clock step cannot stretch or shorten a lease deadline.

/** The DCS answered: the trigger key's value (null when the key does not exist). */
export interface LeaderValue {
  readonly kind: 'value';
  /**
   * The value as bounded text for logs and /status (see leader-value.ts: a long or not valid
   * UTF-8 value is summarised); null when the key does not exist. Never compare it with
   * trigger-value: namesThisNode() compares `bytes`.
   */
  readonly value: string | null;
  /**
   * The value exactly as the DCS stores it (null when the key does not exist). Set by every
   * source that reads bytes (etcd, Consul); absent only where the value is text by construction.
   */
  readonly bytes?: Uint8Array | null;
  /** etcd mod revision, Consul ModifyIndex, or the HTTP status for Patroni; for logs. */
  readonly revision: string;
  /** When this was known to be true (the moment the request that learned it was sent). */
  readonly at: number;
  /**
   * The earliest moment the key's lease could expire as last observed: after it, another node
   * could become leader. Null when the key has no lease (or the DCS has no such notion).
   */
  readonly leaseDeadline: number | null;
}

/** The DCS has not answered since `since` (first failed interaction after the last success). */
export interface LeaderUnreachable {
  readonly kind: 'unreachable';
  readonly since: number;
  readonly error: Error;
  /** Failed attempts since `since`. */
  readonly failures: number;
  /** The last value seen before the loss, if any (the reconciler's policy works from it). */
  readonly last: LeaderValue | null;
}

export type LeaderView = LeaderValue | LeaderUnreachable;

export interface LeaderSource {
  readonly kind: 'etcd' | 'consul' | 'patroni';
  /**
   * True when `leaseDeadline` is a sound bound for hold-lease. Sources without one make the
   * reconciler treat hold-lease as release (and say so at startup).
   */
  readonly providesLeaseDeadline: boolean;
  /**
   * Starts reading and watching. `onView` is called whenever what is known changes; only the
   * latest view matters (the reconciler keeps just that one). Never throws: failures arrive as
   * `unreachable` views while the source keeps retrying with backoff until it succeeds.
   */
  start(onView: (view: LeaderView) => void): void;
  /** Stops watching and releases connections; resolves once nothing is pending. */
  close(): Promise<void>;
}
