// The reconciler's core: one pure function from what the DCS says, what the kernel (or API)
// shows, the DCS-loss policy and the time, to what to do now. No I/O, no clock of its own:
// everything it needs is in its input, so every rule below is tested without sockets.
import type { HolderState, LeaderValue, LeaderView } from './ports.js';

/**
 * Whether the view names this node: its bytes equal trigger-value's UTF-8 bytes exactly. A value
 * that is not valid UTF-8 never does (trigger-value is text, refused by the config when it is not
 * valid UTF-8). Views without `bytes` (Patroni's status code, test fakes) compare their text.
 */
export function namesThisNode(v: LeaderValue, triggerValue: string): boolean {
  if (v.bytes === undefined) return v.value !== null && v.value === triggerValue;
  if (v.bytes === null) return false;
  const want = Buffer.from(triggerValue, 'utf8');
  // A lone surrogate would be encoded as U+FFFD's bytes and match a value holding U+FFFD.
  if (want.toString('utf8') !== triggerValue) return false;
  return want.length === v.bytes.byteLength && want.equals(v.bytes);
}

export type DcsLossPolicy = 'hold-lease' | 'release' | 'keep' | 'patroni';

/**
 * The latest answer of the local Patroni REST API to GET /primary (dcs-loss patroni): ok when
 * it answered 200 with PostgreSQL running as primary (dcs/patroni-local.ts); `at` is when that
 * request was sent (monotonic ms), so the answer is never taken for fresher than it is.
 */
export interface LocalPrimary {
  readonly ok: boolean;
  readonly at: number;
}

export interface DecideInput {
  /**
   * For a role VIP (replica, sync-standby): the view's value is the member the role designates,
   * not a key's value; only the words of the reasons differ.
   */
  readonly role?: 'replica' | 'sync-standby';
  /** The latest view of the leader key; null before the source has reported anything. */
  readonly view: LeaderView | null;
  readonly triggerValue: string;
  readonly held: HolderState;
  /** Whether the holder was ready at the previous pass (a down→up link needs an announcement). */
  readonly wasReady: boolean;
  readonly policy: DcsLossPolicy;
  /** False for sources without a sound lease deadline: hold-lease then acts as release. */
  readonly sourceHasLeases: boolean;
  readonly retryNum: number;
  readonly retryAfter: number;
  /** When the daemon started (monotonic ms): the DCS-loss clock before any answer. */
  readonly startedAt: number;
  readonly now: number;
  /** dcs-loss patroni: the latest local /primary answer; null before the first one. */
  readonly localPrimary?: LocalPrimary | null;
  /**
   * dcs-loss patroni: how long an answer counts. The poller asks every interval, each request
   * at most its timeout long, so a newer answer (200 or not) exists within this.
   */
  readonly localPrimaryMaxAgeMs?: number;
}

export type Action = 'acquire' | 'release' | 'announce' | 'none';

/** Short, stable names of why: metric labels and log fields. */
export type Cause =
  | 'key-ours' | 'key-other' | 'key-absent' | 'lease-expired'
  | 'dcs-keep' | 'dcs-lost-other' | 'dcs-hold-lease' | 'dcs-lease-expired' | 'dcs-retrying' | 'dcs-lost'
  | 'dcs-patroni-primary' | 'dcs-patroni-waiting' | 'dcs-patroni-not-primary'
  | 'startup-wait' | 'startup-keep' | 'startup-lost' | 'link-up';

export interface Decision {
  readonly action: Action;
  /** Whether the VIP should be here, and why: a stable cause and words for the log. */
  readonly desired: boolean;
  readonly cause: Cause;
  readonly reason: string;
  /** The next moment this decision changes by itself (a deadline), if any: re-run then. */
  readonly recheckAt: number | null;
}

interface Desire {
  desired: boolean;
  cause: Cause;
  reason: string;
  recheckAt: number | null;
}

function fromValue(v: LeaderValue, input: DecideInput): Desire {
  if (!namesThisNode(v, input.triggerValue)) {
    const reason = input.role === undefined
      ? v.value === null ? 'the trigger key does not exist' : `the trigger key names ${JSON.stringify(v.value)}`
      : v.value === null ? `role ${input.role} designates no member` : `role ${input.role} designates ${JSON.stringify(v.value)}`;
    return { desired: false, cause: v.value === null ? 'key-absent' : 'key-other', reason, recheckAt: null };
  }
  // Even while connected, never trust a lease past its deadline: if the lease ran out without
  // the delete reaching us, another node may already hold the key.
  if (input.policy === 'hold-lease' && v.leaseDeadline !== null && input.now >= v.leaseDeadline) {
    return { desired: false, cause: 'lease-expired', reason: 'the leader lease has expired as last observed', recheckAt: null };
  }
  const reason = input.role === undefined ? 'the trigger key names this node' : `role ${input.role} designates this node`;
  return { desired: true, cause: 'key-ours', reason, recheckAt: input.policy === 'hold-lease' ? v.leaseDeadline : null };
}

/**
 * What to want while the DCS does not answer. `last` is null when it never answered since
 * startup: then a VIP found here is presumed ours, so a restart during a DCS outage follows the
 * same policy as an outage during operation.
 */
function whileUnreachable(since: number, last: LeaderValue | null, input: DecideInput): Desire {
  if (input.policy === 'keep') {
    return { desired: input.held.held, cause: 'dcs-keep', reason: 'the DCS is unreachable; dcs-loss keep holds the current state', recheckAt: null };
  }
  const lastOurs = last === null ? input.held.held : namesThisNode(last, input.triggerValue);
  if (!lastOurs) {
    return { desired: false, cause: 'dcs-lost-other', reason: 'the DCS is unreachable and did not name this node before', recheckAt: null };
  }
  if (input.policy === 'patroni') return followLocalPatroni(since, input);
  if (input.policy === 'hold-lease' && input.sourceHasLeases && last !== null && last.leaseDeadline !== null) {
    return input.now < last.leaseDeadline
      ? { desired: true, cause: 'dcs-hold-lease', reason: 'the DCS is unreachable; holding until the leader lease could expire', recheckAt: last.leaseDeadline }
      : { desired: false, cause: 'dcs-lease-expired', reason: 'the DCS is unreachable and the leader lease could have expired', recheckAt: null };
  }
  // release, or hold-lease without a known lease: retry-num attempts retry-after apart, then give up.
  const giveUpAt = since + input.retryNum * input.retryAfter;
  return input.now < giveUpAt
    ? { desired: true, cause: 'dcs-retrying', reason: 'the DCS is unreachable; retrying before releasing', recheckAt: giveUpAt }
    : { desired: false, cause: 'dcs-lost', reason: `the DCS has been unreachable for ${input.retryNum} attempts ${input.retryAfter} ms apart`, recheckAt: null };
}

/**
 * dcs-loss patroni. Patroni with failsafe_mode keeps a primary that lost the DCS running only
 * while every member it knows agrees (ha.py _handle_dcs_error → check_failsafe_topology), and
 * answers GET /primary with 200 exactly while it holds leadership in its own view
 * (api.py do_GET → ha.is_leader(), which it renews each HA cycle in failsafe and clears on
 * demotion; dcs/patroni-local.ts also requires the body's state "running", which turns at the
 * start of a demotion). So the VIP follows that answer: held while the latest one says
 * running primary and is fresh, released on anything else. Before the first answer (a daemon
 * started during an outage), the VIP already here is kept for at most one answer's age,
 * counted from the loss.
 */
function followLocalPatroni(since: number, input: DecideInput): Desire {
  const maxAge = input.localPrimaryMaxAgeMs ?? 0;
  const a = input.localPrimary ?? null;
  if (a === null) {
    const until = since + maxAge;
    return input.now < until
      ? { desired: true, cause: 'dcs-patroni-waiting', reason: 'the DCS is unreachable; waiting for the first answer of the local Patroni REST API (GET /primary)', recheckAt: until }
      : { desired: false, cause: 'dcs-patroni-not-primary', reason: 'the DCS is unreachable and the local Patroni REST API has not answered GET /primary', recheckAt: null };
  }
  if (!a.ok) {
    return { desired: false, cause: 'dcs-patroni-not-primary', reason: 'the DCS is unreachable and the local Patroni does not say it is the running primary (GET /primary not 200 with state running)', recheckAt: null };
  }
  const until = a.at + maxAge;
  return input.now < until
    ? { desired: true, cause: 'dcs-patroni-primary', reason: 'the DCS is unreachable; the local Patroni says it is the running primary (GET /primary 200; failsafe mode)', recheckAt: until }
    : { desired: false, cause: 'dcs-patroni-not-primary', reason: `the DCS is unreachable and the local Patroni REST API has not confirmed it is primary for ${Math.round(input.now - a.at)} ms`, recheckAt: null };
}

function desire(input: DecideInput): Desire {
  const v = input.view;
  if (v === null) {
    // No answer yet. A VIP already here stays (a restart on the leader must not drop it),
    // under the DCS-loss policy counted from the daemon's start.
    if (!input.held.held) return { desired: false, cause: 'startup-wait', reason: 'waiting for the first answer from the DCS', recheckAt: null };
    const d = whileUnreachable(input.startedAt, null, input);
    return d.desired
      ? { ...d, cause: 'startup-keep', reason: 'waiting for the first answer from the DCS; keeping the VIP already here' }
      : { ...d, cause: 'startup-lost', reason: 'no answer from the DCS since startup' };
  }
  return v.kind === 'value' ? fromValue(v, input) : whileUnreachable(v.since, v.last, input);
}

export function decide(input: DecideInput): Decision {
  const d = desire(input);
  const { held, ready } = input.held;
  if (!ready) return { action: 'none', desired: d.desired, cause: d.cause, reason: `${d.reason}; waiting: ${input.held.detail ?? 'not ready'}`, recheckAt: d.recheckAt };
  if (d.desired && !held) return { action: 'acquire', ...d };
  if (!d.desired && held) return { action: 'release', ...d };
  if (d.desired && held && !input.wasReady) return { action: 'announce', desired: true, cause: 'link-up', reason: `${d.reason}; the interface came back`, recheckAt: d.recheckAt };
  return { action: 'none', ...d };
}
