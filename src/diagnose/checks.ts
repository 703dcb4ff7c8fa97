// The checks of this machine that need no network: the interface, the process's capabilities,
// whether the VIP is on the interface, and whether trigger-value looks like a misspelt member
// name. Each returns the fact line(s) and what the verdict needs; none changes anything.
import { readFileSync } from 'node:fs';
import { didYouMean } from '../config/suggest.js';
import { displayText } from '../dcs/leader-value.js';
import { listAddresses } from '../net/addresses.js';
import {
  MissingCapabilityError, missingCapabilities, parseEffectiveCapabilities, requiredCapabilities, type NetCapability,
} from '../net/capabilities.js';
import { formatIp, parseIp } from '../net/ip.js';
import { hwTypeName, listInterfaces, type InterfaceInfo } from '../net/links.js';
import { fact, type Fact } from './report.js';

const q = (s: string) => JSON.stringify(s);

export interface InterfaceCheck {
  readonly fact: Fact;
  /** The interface when it exists. */
  readonly info: InterfaceInfo | null;
  /** Why the VIP could not be taken over through it (basic: also announced), else null. */
  readonly problem: string | null;
}

/** Whether `name` exists, is up, has carrier and (for announcing) an Ethernet address. */
export function checkInterface(name: string, managerType: string): InterfaceCheck {
  const subject = `interface ${name}`;
  const all = listInterfaces();
  const info = all.find((i) => i.name === name) ?? null;
  if (info === null) {
    const names = all.map((i) => i.name);
    const problem = `interface ${name} does not exist`;
    return { info, problem, fact: fact('FAIL', subject, `does not exist${didYouMean(name, names)} (interfaces here: ${names.join(', ') || 'none'})`) };
  }
  const parts = [`exists (index ${info.index})`];
  let problem: string | null = null;
  if (!info.up) {
    problem = `interface ${name} is down`;
    parts.push('DOWN (administratively; ip link set dev ' + name + ' up)');
  } else {
    parts.push('up');
    parts.push(info.running ? 'carrier' : 'NO CARRIER (cable or peer down?)');
  }
  const needsMac = managerType === 'basic';
  if (info.mac !== null) parts.push(`link-layer address ${info.mac}`);
  else {
    parts.push(`no Ethernet link-layer address (type ${hwTypeName(info.hwType)})`);
    if (needsMac) problem ??= `interface ${name} has no Ethernet link-layer address to announce the VIP from`;
  }
  const mark = problem !== null ? 'FAIL' : info.running ? 'OK' : 'WARN';
  return { info, problem, fact: fact(mark, subject, parts.join(', ')) };
}

/** The process's effective capabilities against what the manager-type needs. */
export function checkCapabilities(managerType: string, readStatus: () => string = () => readFileSync('/proc/self/status', 'utf8')): { fact: Fact; has: (c: NetCapability) => boolean | null } {
  let effective: bigint | null = null;
  try {
    effective = parseEffectiveCapabilities(readStatus());
  } catch {
    effective = null;
  }
  if (effective === null) {
    return { fact: fact('WARN', 'capabilities', 'not checked: cannot read CapEff from /proc/self/status'), has: () => null };
  }
  const eff = effective;
  const has = (c: NetCapability) => missingCapabilities(eff, [c]).length === 0;
  const missing = missingCapabilities(eff, requiredCapabilities(managerType));
  if (missing.length > 0) {
    // The daemon's own words at start (it would stop with exit 1, run like this).
    return { fact: fact('WARN', 'capabilities', `${new MissingCapabilityError(missing, managerType).message}; a daemon run like this would not start`), has };
  }
  const held = (['CAP_NET_ADMIN', 'CAP_NET_RAW'] as const).filter(has);
  const text = held.length === 2 ? 'CAP_NET_ADMIN and CAP_NET_RAW effective'
    : `${held.length ? `${held.join(' and ')} effective, ` : ''}${(['CAP_NET_ADMIN', 'CAP_NET_RAW'] as const).filter((c) => !has(c)).join(' and ')} not (manager-type ${managerType} does not need ${held.length === 1 ? 'it' : 'them'})`;
  return { fact: fact('OK', 'capabilities', text), has };
}

export interface AddressCheck {
  /** Exactly ip/netmask on the interface (as the daemon compares: net/addresses.ts hasAddress). */
  readonly held: boolean;
  /** Where else the address is, e.g. "eth1 as /24", "eth0 as /32". */
  readonly elsewhere: string[];
}

/** Whether ip/netmask is on the interface now, and where else the address shows up. */
export function checkAddress(ip: string, netmask: number, iface: InterfaceInfo | null): AddressCheck {
  const want = formatIp(parseIp(ip).bytes);
  const names = new Map(listInterfaces().map((i) => [i.index, i.name]));
  let held = false;
  const elsewhere: string[] = [];
  for (const a of listAddresses(0, parseIp(ip).family)) {
    if (a.address !== want) continue;
    if (iface !== null && a.ifindex === iface.index && a.prefixLen === netmask) held = true;
    else elsewhere.push(`${names.get(a.ifindex) ?? `#${a.ifindex}`} as /${a.prefixLen}`);
  }
  return { held, elsewhere };
}

/** Letters and digits only, lower case: "pg-1", "PG_1" and "pg1 " all become "pg1". */
const skeleton = (s: string) => s.toLowerCase().replace(/[^\p{L}\p{N}]/gu, '');

export interface MemberCheck {
  readonly fact: Fact | null;
  /** The did-you-mean text (" (did you mean pg1?)") when trigger-value looks misspelt. */
  readonly misspelt: string | null;
}

/**
 * trigger-value against the member names the DCS lists (Patroni's <namespace>/<scope>/members/)
 * and the leader key's value. A name that differs only in case, punctuation or white space
 * ("pg-1" for "pg1", "pg1 " from an env file) is misspelt: FAIL, and the verdict says so. A
 * merely similar one is a WARN with a did-you-mean: "pg3" next to "pg1" may well be a third
 * node whose Patroni is not running.
 */
export function checkMembers(triggerValue: string, prefix: string | null, members: readonly string[] | null, leaderValue: string | null): MemberCheck {
  const listed = members ?? [];
  const candidates = [...new Set([...listed, ...(leaderValue === null ? [] : [leaderValue])])];
  const where = prefix === null ? '' : ` under ${prefix}`;
  const shown = listed.length > 0 ? ` (members${where}: ${listed.map((m) => displayText(m)).join(', ')})` : '';
  const subject = 'trigger-value';
  if (candidates.includes(triggerValue)) {
    return { misspelt: null, fact: listed.includes(triggerValue) ? fact('OK', subject, `${q(triggerValue)} is a member the DCS knows${shown}`) : null };
  }
  const same = candidates.find((c) => skeleton(c) !== '' && skeleton(c) === skeleton(triggerValue));
  if (same !== undefined) {
    const suggestion = ` (did you mean ${same}?)`;
    return { misspelt: suggestion, fact: fact('FAIL', subject, `${q(triggerValue)} is no member name the DCS knows${shown}${suggestion}`) };
  }
  // Without a member list the leader's name alone is no evidence: "n1" next to a leader "n2"
  // is simply another node.
  if (listed.length === 0) return { misspelt: null, fact: null };
  const suggestion = didYouMean(triggerValue, listed);
  return {
    misspelt: null,
    fact: fact('WARN', subject, `${q(triggerValue)} is no member name the DCS knows${shown}${suggestion || '; is Patroni running on this node under that name?'}`),
  };
}

/** Patroni's member directory beside a leader key: /service/pg/leader → /service/pg/members/. */
export function membersPrefix(triggerKey: string): string | null {
  const m = /^(.*\/|)leader$/.exec(triggerKey);
  return m ? `${m[1]}members/` : null;
}
