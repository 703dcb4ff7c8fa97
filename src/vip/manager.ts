// The VIP-holder interface: what the reconciler drives to take and give up the VIP, whether
// that means an address on a local interface (basic) or a provider's API (Hetzner).

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
