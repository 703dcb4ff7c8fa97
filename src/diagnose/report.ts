// What `--diagnose` prints and the exit code it returns: per VIP a verdict line first, then one
// line per fact behind it; then the facts about this host and the DCS that every VIP shares.
// Pure functions of what the checks found, so the wording is tested without a network.
//
// Exit code: 0 when every VIP is as the DCS asks, 1 when one is not (or cannot be told). WARN
// lines never change it: they point at something that will matter later (a missing capability,
// no daemon running), not at this node's state now.
import { scrubSecrets } from '../ops/redact.js';

export type Mark = 'OK' | 'FAIL' | 'WARN' | 'INFO' | 'SKIP';

export interface Fact {
  readonly mark: Mark;
  /** What the line is about: "leader key", "interface eth0", "etcd endpoint http://…". */
  readonly subject: string;
  readonly text: string;
}

export const fact = (mark: Mark, subject: string, text: string): Fact => ({ mark, subject, text });

/**
 * What the DCS said about one VIP: its trigger key's value, or for a role VIP (replica,
 * sync-standby) the member Patroni's cluster keys designate (dcs/patroni/roles.ts), which the
 * verdict treats exactly like a leader key's value: "names this node" is the same comparison.
 */
export type LeaderFinding =
  /**
   * `display` is the bounded value text (null: the key does not exist; role: nobody designated).
   * `role`: the finding is a role's designation, so "no node" is the role's, not a missing key.
   */
  | { readonly kind: 'value'; readonly namesThisNode: boolean; readonly display: string | null; readonly describe: string; readonly role?: boolean }
  /** `why`: what kept it from being read (default: no endpoint answered). */
  | { readonly kind: 'unreachable'; readonly why?: string };

/**
 * Another host holding the VIP. `source` says how we know: 'probe' (the ARP/NDP probe here),
 * or, for the address-conflict alarm (issue 15 part 4), 'daemon' (the running daemon's /status
 * reports a conflict). Every source feeds the same verdict: "another host answers for the VIP".
 */
export interface ForeignHolder {
  readonly mac: string;
  readonly source: 'probe' | 'daemon';
  readonly how: string;
}

export interface VerdictInput {
  /** "eth0", or null (no interface configured). */
  readonly iface: string | null;
  readonly triggerValue: string;
  readonly leader: LeaderFinding;
  /** Whether the VIP is on the interface now; null when that could not be checked. */
  readonly held: boolean | null;
  /** Other hosts answering for the VIP; null when not checked. */
  readonly foreign: readonly ForeignHolder[] | null;
  /** A did-you-mean when trigger-value looks like a misspelt member name, else null. */
  readonly misspelt: string | null;
  /** Why this node could not take the VIP over (interface missing/down/…), else null. */
  readonly cannotTake: string | null;
}

export type VerdictKind = 'holds' | 'standby' | 'should-hold' | 'should-release' | 'conflict' | 'dcs-unknown' | 'misspelt' | 'cannot-take' | 'unchecked';

export interface Verdict {
  readonly kind: VerdictKind;
  /** False makes the exit code 1. */
  readonly ok: boolean;
  readonly mark: Mark;
  readonly text: string;
}

const q = (s: string) => JSON.stringify(s);

/** The verdict for one VIP: the first of these that applies. */
export function decideVerdict(v: VerdictInput): Verdict {
  const on = v.iface === null ? 'on this host' : `on ${v.iface}`;
  const bad = (kind: VerdictKind, text: string): Verdict => ({ kind, ok: false, mark: 'FAIL', text });
  if (v.leader.kind === 'unreachable') {
    const state = v.held === null ? '' : v.held ? ` (the VIP is ${on})` : ` (the VIP is not ${on})`;
    return bad('dcs-unknown', `cannot tell what the DCS asks: ${v.leader.why ?? 'no DCS endpoint answered'}${state}`);
  }
  const l = v.leader;
  const foreign = v.foreign ?? [];
  const others = foreign.map((f) => f.mac).join(', ');
  if (l.namesThisNode && v.held === true && foreign.length > 0) {
    return bad('conflict', `another host answers for the VIP (${others}) while it is ${on} as the DCS asks (${l.describe})`);
  }
  if (l.namesThisNode && v.held === false) {
    const why = v.cannotTake !== null ? `; it cannot be: ${v.cannotTake}` : foreign.length > 0 ? `; another host answers for it (${others})` : '';
    return bad('should-hold', `the DCS names this node (${l.describe}) but the VIP is not ${on}${why}`);
  }
  if (!l.namesThisNode && v.held === true) {
    const who = l.display !== null ? `another node (${l.describe}; trigger-value ${q(v.triggerValue)})`
      : l.role === true ? `no node (${l.describe})` : 'no node (the key does not exist)';
    return bad('should-release', `the VIP is ${on} but the DCS names ${who}`);
  }
  if (v.misspelt !== null) return bad('misspelt', `trigger-value ${q(v.triggerValue)} names no member the DCS knows${v.misspelt}`);
  if (v.held === null) {
    const names = l.namesThisNode ? 'names this node' : l.display === null && l.role === true ? 'names no node' : 'names another node';
    return { kind: 'unchecked', ok: true, mark: 'WARN', text: `the DCS ${names} (${l.describe}); whether the VIP is here was not checked` };
  }
  if (v.cannotTake !== null) {
    return bad('cannot-take', `not here, as the DCS asks (${l.describe}), but this node could not take the VIP over: ${v.cannotTake}`);
  }
  if (l.namesThisNode) return { kind: 'holds', ok: true, mark: 'OK', text: `held here, as the DCS asks (${l.describe})` };
  const leader = l.display !== null ? `${l.describe}, not this node's ${q(v.triggerValue)}` : l.role === true ? l.describe : `${l.describe}: no node is leader`;
  return { kind: 'standby', ok: true, mark: 'OK', text: `not here, as the DCS asks (${leader})` };
}

export interface VipReport {
  readonly label: string;
  readonly verdict: Verdict;
  readonly facts: readonly Fact[];
}

export interface DiagnoseReport {
  readonly vips: readonly VipReport[];
  /** Facts every VIP shares: capabilities, DCS endpoints, the running daemon. */
  readonly shared: readonly Fact[];
}

function line(indent: string, f: { mark: Mark; subject: string; text: string }): string {
  return `${indent}${f.mark.padEnd(4)} ${f.subject}: ${f.text}`;
}

/** The report as text. Every line is scrubbed of registered secrets (ops/redact.ts). */
export function renderReport(r: DiagnoseReport): string {
  const lines: string[] = [];
  for (const v of r.vips) {
    lines.push(line('', { mark: v.verdict.mark, subject: v.label, text: v.verdict.text }));
    for (const f of v.facts) lines.push(line('  ', f));
  }
  for (const f of r.shared) lines.push(line('  ', f));
  return lines.map((l) => scrubSecrets(l.replace(/[\r\n]+/g, ' '))).join('\n') + '\n';
}

export function exitCode(r: DiagnoseReport): 0 | 1 {
  return r.vips.every((v) => v.verdict.ok) ? 0 : 1;
}
