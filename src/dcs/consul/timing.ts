// How long the Consul source waits, and why. All values in milliseconds.

/** Consul caps a blocking query's wait at 10 minutes (MaxQueryTime); longer is pointless. */
export const CONSUL_MAX_WAIT_MS = 600_000;

/**
 * A blocking query waits this many `interval`s (10 s with the default 1000 ms). Changes arrive
 * the moment they happen whatever the wait, and losing Consul is noticed by the leader check
 * (below), not by the wait; the wait costs one request per wait at idle and bounds how long
 * an answer can take at all.
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

/**
 * The leader check: while a blocking query is parked, a non-blocking ?consistent read of the
 * key every `interval` (at least LEADER_CHECK_MIN_PERIOD_MS apart). A parked query does not
 * notice anything: Consul verifies leadership only when a pass of its loop starts (a change
 * of the key), so an agent that lost its servers answers at wait + jitter with the old value,
 * and its next request is held for rpc_hold_timeout + wait + wait/16 before 500 "No cluster
 * leader"; a silently partitioned agent answers never. Measured with the strict stand-in, the
 * holder kept the VIP ~29 s at default settings that way. A ?consistent read needs a leader
 * that still has its quorum, so a check that fails or does not answer in time means this node
 * can no longer learn who the leader is.
 */
export const LEADER_CHECK_MIN_PERIOD_MS = 250;

/**
 * A check must answer within this (per endpoint tried): its period, clamped. An agent without a
 * leader holds the request for 7 s instead of answering, so only a deadline turns that into a
 * failure; 1 s is far above a consistent read's LAN latency (a few ms, one quorum round trip),
 * yet keeps the release bound near the etcd path's.
 */
export const LEADER_CHECK_MIN_TIMEOUT_MS = 1_000;
export const LEADER_CHECK_MAX_TIMEOUT_MS = 5_000;

export function leaderCheckPeriodMs(intervalMs: number): number {
  return Math.max(LEADER_CHECK_MIN_PERIOD_MS, intervalMs);
}

export function leaderCheckTimeoutMs(intervalMs: number): number {
  return Math.min(LEADER_CHECK_MAX_TIMEOUT_MS, Math.max(LEADER_CHECK_MIN_TIMEOUT_MS, leaderCheckPeriodMs(intervalMs)));
}

/**
 * A recursive read answers every key under the watched keys' longest common prefix: a Patroni
 * cluster's state is a few KiB, several clusters' a few dozen. 16 MiB leaves room for large
 * histories and unrelated keys under a broad prefix, and still bounds the memory one answer takes.
 */
export const LIST_MAX_BODY_BYTES = 16 * 1_048_576;
