// How long the Consul source waits, and why. All values in milliseconds.

/** Consul caps a blocking query's wait at 10 minutes (MaxQueryTime); longer is pointless. */
export const CONSUL_MAX_WAIT_MS = 600_000;

/**
 * A blocking query waits this many `interval`s (10 s with the default 1000 ms). Changes arrive
 * the moment they happen whatever the wait; the wait only bounds how long a connection that
 * died silently (no FIN/RST: a frozen agent, a partition) can go unnoticed, and costs one
 * request per wait at idle. Consul's default of 5 minutes would leave a silently dead
 * connection undetected, and the VIP held on stale knowledge, for over 5 minutes.
 */
export const WAIT_INTERVALS = 10;

/** Below 1 s a blocking query is little more than polling (and its jitter, wait/16, vanishes). */
export const MIN_WAIT_MS = 1_000;

/** Consul adds up to wait/16 of random jitter to a blocking query (blocking.mdx). */
export const CONSUL_JITTER_FRACTION = 16;

/**
 * Slack on top of wait + jitter before an answer counts as lost. A Consul client agent holds a
 * request up to 7 s (rpc_hold_timeout) while the servers elect a leader before answering 500
 * "No cluster leader"; this lets that clear answer arrive instead of a timeout, and also bounds
 * a non-blocking read (index 0), which includes a consistent-read leader check.
 */
export const ANSWER_MARGIN_MS = 8_000;

/**
 * TCP connect plus TLS handshake. Linux retransmits a lost SYN after 1 s, so 1.5 s survives one
 * lost SYN on a LAN yet leaves a dead endpoint (no RST: a powered-off host) quickly for the next.
 */
export const CONNECT_TIMEOUT_MS = 1_500;

/** A KV value is at most 512 KiB, base64 makes it 4/3 larger; plus the JSON around it. */
export const MAX_BODY_BYTES = 1_048_576;

/**
 * A 403 is a configuration problem (token unknown or without key:read): nothing gets better by
 * asking often. Asking every 30 s notices a fixed token soon enough and is invisible load.
 */
export const ACL_RETRY_MS = 30_000;

/**
 * "ACL not found" can be transient while a server catches up on Raft replication; Consul's own
 * watches tolerate 3 in a row (acl.MaxConsecutiveNotFoundTolerance) before believing it. Up to
 * this many are retried with the normal backoff before switching to ACL_RETRY_MS.
 */
export const ACL_NOT_FOUND_TOLERANCE = 3;

export function blockingWaitMs(intervalMs: number): number {
  return Math.min(CONSUL_MAX_WAIT_MS, Math.max(MIN_WAIT_MS, intervalMs * WAIT_INTERVALS));
}

/** The client-side deadline of a blocking query that waits `waitMs`. */
export function blockingTimeoutMs(waitMs: number): number {
  return waitMs + Math.ceil(waitMs / CONSUL_JITTER_FRACTION) + ANSWER_MARGIN_MS;
}
