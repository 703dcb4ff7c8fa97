// What /status and systemd's STATUS= line say: the leader as last seen, whether we hold the
// VIP and since when, and the last transitions with their causes and timings. No secrets:
// the configuration appears only as a summary of non-secret keys, and text from outside (error
// messages) is scrubbed of every registered secret. Bounded: a DCS value is shown as its
// bounded display (leader-value.ts), every other free text is cut (safeText), and the history
// keeps HISTORY transitions, so the document stays a few tens of KB whatever the DCS holds.
import type { Config } from '../config/schema.js';
import { displayText } from '../dcs/leader-value.js';
import { namesThisNode } from '../reconcile/decide.js';
import type { HolderState, LeaderView } from '../reconcile/ports.js';
import { safeText } from '../ops/redact.js';
import type { Transition } from '../reconcile/loop.js';
import { runtimeInfo, type BuildInfo } from '../version.js';

/** Transitions kept for /status: enough to see a flapping leader, small enough to read. */
const HISTORY = 20;
/** Characters kept of a reason or a holder's detail (they quote a DCS value, already bounded). */
const REASON_CHARS = 500;
/** Conflicting hosts listed; the watch keeps no more than this anyway. */
const MAX_CONFLICTS = 16;

export class StatusBoard {
  /** `leaseDeadline` is monotonic (performance.now()): /status counts it down at read time. */
  private leader: { value: string | null; isThisNode: boolean; revision: string; connected: boolean; lastAnswer: Date; leaseDeadline: number | null } | null = null;
  private unreachableSince: Date | null = null;
  private lastError: string | null = null;
  private heldSince: Date | null = null;
  private readonly history: Transition[] = [];

  /** `name`: the VIP entry's name (config key `name`, default its ip). */
  constructor(readonly name: string, private readonly cfg: Config) {}

  view(v: LeaderView): void {
    if (v.kind === 'value') {
      // Sources hand a bounded display already; bounded again for any other producer.
      this.leader = {
        value: v.value === null ? null : displayText(v.value), isThisNode: namesThisNode(v, this.cfg['trigger-value']),
        revision: safeText(v.revision, 40), connected: true, lastAnswer: new Date(),
        leaseDeadline: v.leaseDeadline,
      };
      this.unreachableSince = null;
      this.lastError = null;
    } else {
      if (this.leader) this.leader.connected = false;
      this.unreachableSince ??= new Date(Date.now() - (performance.now() - v.since));
      this.lastError = safeText(v.error.message);
    }
  }

  transition(t: Transition): void {
    this.history.push(t);
    if (this.history.length > HISTORY) this.history.shift();
    if (t.direction === 'acquire') this.heldSince = t.at;
    if (t.direction === 'release') this.heldSince = null;
  }

  /**
   * The VIP state a pass observed without changing it. A VIP already here at startup (a
   * restart on the holder) has no acquire transition; it counts as held since first seen.
   * Returns whether that changed what line() says.
   */
  observed(held: boolean): boolean {
    if (held === (this.heldSince !== null)) return false;
    this.heldSince = held ? new Date() : null;
    return true;
  }

  /** One line for `systemctl status`. */
  line(): string {
    const vip = `${this.cfg.ip}/${this.cfg.netmask}`;
    const leader = this.leader?.value === undefined ? 'unknown' : JSON.stringify(this.leader.value);
    const dcs = this.unreachableSince ? `; DCS unreachable since ${this.unreachableSince.toISOString()}` : '';
    return this.heldSince ? `holding ${vip} (leader ${leader})${dcs}` : `standby for ${vip} (leader ${leader})${dcs}`;
  }

  /**
   * `conflicts`: other hosts seen claiming the VIP while held (vip/conflict-watch.ts), shown as
   * `vip.conflict`, a list of `{ mac, how, firstSeenAt, lastSeenAt, claims }` or null when none
   * (what diagnose/daemon-probe.ts reads). Bounded by the watch (at most 16 entries).
   */
  snapshot(r?: { view: LeaderView | null; held: HolderState | null }, conflicts?: ReadonlyArray<object>): {
    leader: unknown; [k: string]: unknown;
  } {
    return {
      name: this.name,
      config: {
        ip: this.cfg.ip, netmask: this.cfg.netmask, interface: this.cfg.interface ?? null,
        'trigger-key': displayText(this.cfg['trigger-key']), 'trigger-value': displayText(this.cfg['trigger-value']),
        'dcs-type': this.cfg['dcs-type'], 'dcs-endpoints': this.cfg['dcs-endpoints'].map(stripCredentials),
        'manager-type': this.cfg['manager-type'], 'dcs-loss': this.cfg['dcs-loss'], 'release-on-stop': this.cfg['release-on-stop'],
        role: this.cfg.role,
      },
      leader: this.leader && {
        value: this.leader.value, revision: this.leader.revision, isThisNode: this.leader.isThisNode,
        connected: this.leader.connected, lastAnswerAt: this.leader.lastAnswer.toISOString(),
        leaseSecondsLeft: this.leader.leaseDeadline === null ? null : Math.max(0, (this.leader.leaseDeadline - performance.now()) / 1000),
      },
      dcs: { reachable: this.unreachableSince === null && this.leader !== null, unreachableSince: this.unreachableSince?.toISOString() ?? null, lastError: this.lastError },
      vip: {
        held: r?.held?.held ?? this.heldSince !== null, heldSince: this.heldSince?.toISOString() ?? null,
        ready: r?.held?.ready ?? null, detail: r?.held?.detail == null ? null : safeText(r.held.detail, REASON_CHARS),
        conflict: conflicts && conflicts.length > 0 ? conflicts.slice(0, MAX_CONFLICTS) : null,
      },
      transitions: this.history.map((t) => ({
        direction: t.direction, cause: t.cause, reason: safeText(t.reason, REASON_CHARS), value: t.value == null ? null : displayText(t.value),
        revision: t.revision ?? null,
        at: t.at.toISOString(), reactionMs: t.reactionMs, tookMs: t.tookMs,
      })),
    };
  }
}

/** Every entry's board, in configuration order: what /status and STATUS= show. */
export interface EntryStatus {
  readonly board: StatusBoard;
  readonly reconciler: { snapshot(): { view: LeaderView | null; held: HolderState | null } };
  readonly conflicts?: () => ReadonlyArray<object> | undefined;
}

/** One line for `systemctl status`: the entry's line, prefixed with its name when there are several. */
export function statusLine(entries: readonly EntryStatus[]): string {
  if (entries.length === 0) return 'no VIP configured';
  if (entries.length === 1) return entries[0]!.board.line();
  return entries.map((e) => `${e.board.name}: ${e.board.line()}`).join('; ');
}

/**
 * The /status document: build facts, then every entry under `vips` (in configuration order).
 * The first entry's fields also stand at the top level, as they did before several VIPs existed,
 * so a client written for one VIP keeps working.
 */
export function statusDocument(entries: readonly EntryStatus[], info: BuildInfo, startedAt: Date): Record<string, unknown> {
  const vips = entries.map((e) => e.board.snapshot(e.reconciler.snapshot(), e.conflicts?.()));
  return {
    version: info.version,
    commit: info.commit,
    runtime: runtimeInfo(info),
    startedAt: startedAt.toISOString(),
    ...(vips[0] ?? {}),
    vips,
  };
}

/** An endpoint URL may carry user:password@: never show it. */
function stripCredentials(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}
