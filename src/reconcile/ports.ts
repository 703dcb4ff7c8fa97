// The reconciler's contract with the edges: what a leader source (etcd, Consul, Patroni REST)
// reports and what a VIP holder (an address on an interface, a provider's API) does. The core
// owns these types; sources and holders implement them, and import them from here. Times are
// monotonic milliseconds (performance.now()), never wall-clock, so a clock step cannot stretch
// or shorten a lease deadline.


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

// ---- The VIP holder: what the reconciler drives to take and give up the VIP ----------------

export interface HolderState {
  /** The VIP is held here as far as the holder can observe. */
  readonly held: boolean;
  /**
   * Whether the holder can act at all (basic: the interface exists and is up). While false the
   * reconciler waits for the next change instead of failing.
   */
  readonly ready: boolean;
  /** Why it is not ready, for the log (e.g. "interface eth0 does not exist"). */
  readonly detail?: string;
}

/** A request to a provider's API that was sent and has not been answered yet. */
export interface PendingRequest {
  /** "Robot DELETE /failover/198.51.100.10": method and path, never a secret. */
  readonly what: string;
  readonly ageMs: number;
}

export interface VipManager {
  readonly kind: 'basic' | 'hetzner' | 'hetzner-cloud';
  /**
   * Starts observing. `onChange` is called whenever the held state may have changed behind the
   * reconciler's back (a kernel address/link event, a cached API state that expired).
   */
  start(onChange: () => void): Promise<void>;
  /** The current state; cheap enough to call on every reconcile pass. */
  observe(): Promise<HolderState>;
  /**
   * Takes the VIP (and announces it where that applies). Idempotent. A failure may carry
   * `retryAt` (monotonic ms, like performance.now()): the reconciler will not try the same
   * action again before it (a provider's lock or rate-limit window), nor before its backoff.
   */
  acquire(): Promise<void>;
  /** Gives the VIP up. Idempotent. */
  release(): Promise<void>;
  /** Re-announces a held VIP (after a link came back up); a no-op where it means nothing. */
  announce(): Promise<void>;
  close(): Promise<void>;
  /** Provider requests sent and not answered yet, for the shutdown log; absent where none are made. */
  inFlight?(): readonly PendingRequest[];
  /** Other hosts seen claiming the VIP while held (basic: vip/conflict-watch.ts); absent elsewhere. */
  conflicts?(): ReadonlyArray<{ readonly mac: string }>;
}
