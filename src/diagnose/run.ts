// `vip-manager --diagnose`: with the configuration the daemon would run with, look once at
// everything that decides whether this node is as the DCS asks, print a verdict per VIP with the
// facts behind it (report.ts), and exit 0 (as asked), 1 (not, or cannot tell) or 78 (a
// configuration error the checks meet, e.g. an unusable TLS file). Changes nothing: no address
// is added or removed, no key written, no announcement sent; the only frames sent are one
// duplicate-address probe per VIP (neighbour-probe.ts), which no host learns anything from.
//
// Each VIP entry of the configuration (`vips:`, or the one implicit entry) gets its own report
// (vipEntries), with its own manager type and interface. A role VIP (replica, sync-standby)
// is judged by the member Patroni's cluster keys designate, computed by the daemon's own
// selection (dcs/patroni/roles.ts) from the same keys; everything after that is the leader
// key's logic. The capabilities (once per distinct manager type), the DCS endpoints and the
// running daemon are shared by every entry and printed once, after the entries.
import { EXIT_CONFIG } from '../config/errors.js';
import type { LoadedConfig, VipEntry as ConfigVipEntry } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { displayText, displayValue, leaderValue } from '../dcs/leader-value.js';
import { designate, MEMBERS_DIR } from '../dcs/patroni/roles.js';
import { clusterPrefix } from '../dcs/session.js';
import { namesThisNode } from '../reconcile/decide.js';
import { closeRouteSocket } from '../net/netlink.js';
import { NetError } from '../net/errors.js';
import { parseIp } from '../net/ip.js';
import { registerConfigSecrets, safeText } from '../ops/redact.js';
import { checkAddress, checkCapabilities, checkInterface, checkMembers, type InterfaceCheck } from './checks.js';
import { probeDaemon, type DaemonProbe } from './daemon-probe.js';
import { CONFIG_ERROR_NAMES, prepareDcsProbe, type EndpointProbe, type KeyRead, type PrefixRead } from './dcs-probe.js';
import { describeAnswers, NEIGHBOUR_WAIT_MS, probeNeighbours, type ProbeResult } from './neighbour-probe.js';
import {
  decideVerdict, exitCode, fact, renderReport, type Fact, type ForeignHolder, type LeaderFinding, type VipReport,
} from './report.js';

/** One VIP as the checks see it. */
export interface VipEntry {
  /** Key `name` (default: the ip). */
  readonly name: string;
  readonly ip: string;
  readonly netmask: number;
  readonly iface: string | null;
  readonly managerType: Config['manager-type'];
  readonly triggerKey: string;
  readonly triggerValue: string;
  readonly role: Config['role'];
  readonly fallback: Config['fallback'];
  readonly maxLag: number | undefined;
  /** Role replica / sync-standby: Patroni's cluster prefix (the trigger key without `leader`); else null. */
  readonly prefix: string | null;
}

export function vipEntries(vips: readonly ConfigVipEntry[]): VipEntry[] {
  return vips.map(({ name, config: cfg }) => ({
    name, ip: cfg.ip, netmask: cfg.netmask, iface: cfg.interface ?? null, managerType: cfg['manager-type'],
    triggerKey: cfg['trigger-key'], triggerValue: cfg['trigger-value'],
    role: cfg.role, fallback: cfg.fallback, maxLag: cfg['max-lag'],
    // The configuration refuses a role VIP whose trigger key does not end in /leader.
    prefix: cfg.role === 'leader' ? null : clusterPrefix(cfg['trigger-key']) ?? null,
  }));
}

/** "VIP 198.51.100.100/24 on eth0", or with a name of its own "VIP billing (198.51.100.101/24 on eth0)". */
export function vipLabel(e: Pick<VipEntry, 'name' | 'ip' | 'netmask' | 'iface'>): string {
  const where = `${e.ip}/${e.netmask}${e.iface === null ? '' : ` on ${e.iface}`}`;
  return e.name === e.ip ? `VIP ${where}` : `VIP ${displayText(e.name)} (${where})`;
}

const q = (s: string) => JSON.stringify(s);

export interface DiagnoseIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

/** What the DCS said about a key, in the daemon's words; `describe` is quoted in the verdict. */
function leaderFinding(cfg: Config, read: KeyRead | undefined, triggerValue: string): LeaderFinding {
  if (read === undefined) return { kind: 'unreachable' };
  const view = leaderValue(read.bytes, '', 0, null);
  const display = read.bytes === null ? null : displayValue(read.bytes);
  const key = displayText(read.key);
  const describe = cfg['dcs-type'] === 'patroni'
    ? `GET ${key} answered ${display}`
    : display === null ? `${key} does not exist` : `${key} = ${q(display)}`;
  return { kind: 'value', namesThisNode: namesThisNode(view, triggerValue), display, describe };
}

function leaderFact(l: LeaderFinding, triggerValue: string, cfg: Config): Fact {
  const subject = 'leader key';
  if (l.kind === 'unreachable') return fact('FAIL', subject, 'not read: no DCS endpoint answered (see the endpoints below)');
  const tv = `trigger-value ${q(triggerValue)}`;
  if (l.namesThisNode) return fact('OK', subject, `${l.describe}: names this node (${tv})`);
  if (l.display === null) return fact('INFO', subject, `${l.describe}: no node is leader now`);
  if (cfg['dcs-type'] === 'patroni') return fact('INFO', subject, `${l.describe}, not ${tv}: this node is not the leader`);
  return fact('INFO', subject, `${l.describe}: names another node, not this one (${tv})`);
}

/** Patroni's member names under a cluster's keys (relative): `members/<name>`, nothing deeper, as roles.ts reads them. */
function clusterMembers(keys: ReadonlyMap<string, Uint8Array>): string[] {
  const names: string[] = [];
  for (const k of keys.keys()) {
    if (!k.startsWith(MEMBERS_DIR)) continue;
    const name = k.slice(MEMBERS_DIR.length);
    if (name !== '' && !name.includes('/')) names.push(name);
  }
  return names.sort();
}

/**
 * A role VIP's finding: the member the cluster's keys designate, computed as the daemon's role
 * source computes it (dcs/role-source.ts: designate() over the prefix's keys, the member's name
 * as the view's value, compared with trigger-value by namesThisNode), and the fact saying so.
 */
function roleFinding(e: VipEntry, prefix: string, read: PrefixRead | undefined): { finding: LeaderFinding; fact: Fact; members: string[] | null; display: string | null } {
  const subject = `role ${e.role} of ${displayText(prefix)}`;
  if (read === undefined) {
    return { finding: { kind: 'unreachable' }, fact: fact('FAIL', subject, 'not read: no DCS endpoint answered (see the endpoints below)'), members: null, display: null };
  }
  if (read.keys === null) {
    const why = safeText(read.error ?? 'not read', 500);
    return { finding: { kind: 'unreachable', why: `the keys under ${displayText(prefix)} cannot be used: ${why}` }, fact: fact('FAIL', subject, `not read: ${why}`), members: null, display: null };
  }
  const d = designate(read.keys, { role: e.role, fallback: e.fallback, maxLag: e.maxLag });
  const bytes = d.member === null ? null : Buffer.from(d.member, 'utf8');
  const names = namesThisNode(leaderValue(bytes, read.revision ?? '', 0, null), e.triggerValue);
  const display = bytes === null ? null : displayValue(bytes);
  const members = clusterMembers(read.keys);
  const tv = `trigger-value ${q(e.triggerValue)}`;
  if (display === null) {
    const describe = `${subject} designates nobody (${d.reason})`;
    return { finding: { kind: 'value', namesThisNode: names, display, describe, role: true }, fact: fact('INFO', subject, `designates nobody (${d.reason})`), members, display };
  }
  const finding: LeaderFinding = { kind: 'value', namesThisNode: names, display, describe: `${subject} designates ${q(display)}`, role: true };
  const said = `designates ${q(display)} (${d.reason})`;
  return {
    finding, members, display,
    fact: names ? fact('OK', subject, `${said}: names this node (${tv})`) : fact('INFO', subject, `${said}: names another node, not this one (${tv})`),
  };
}

function neighbourFact(e: VipEntry, probe: ProbeResult | string, leader: LeaderFinding, held: boolean | null): { fact: Fact; foreign: ForeignHolder[] | null } {
  const protocol = parseIp(e.ip).family === 4 ? 'ARP' : 'NDP';
  const subject = `${protocol} for ${e.ip}`;
  if (typeof probe === 'string') return { fact: fact('SKIP', subject, `not checked: ${probe}`), foreign: null };
  const foreign = probe.answers.map((a) => ({ mac: a.mac, source: 'probe' as const, how: a.how }));
  const names = leader.kind === 'value' && leader.namesThisNode;
  if (foreign.length === 0) {
    const waited = `one probe, ${NEIGHBOUR_WAIT_MS} ms of listening`;
    if (leader.kind === 'value' && !names && leader.display !== null && held === false) {
      return { fact: fact('WARN', subject, `no host answers (${waited}), although the DCS names another node: does it hold the VIP?`), foreign };
    }
    return { fact: fact('OK', subject, `no other host answers (${waited})`), foreign };
  }
  const who = describeAnswers(probe.answers);
  if (leader.kind === 'value' && leader.display === null && held === false) {
    return { fact: fact('WARN', subject, `answered by ${who}, although ${leader.role === true ? 'the DCS names no node' : 'no node is leader'}`), foreign };
  }
  if (leader.kind === 'value' && !names && held === false) {
    return { fact: fact('INFO', subject, `answered by ${who}: the node the DCS names, presumably`), foreign };
  }
  return { fact: fact('FAIL', subject, `answered by another host: ${who}`), foreign };
}

function endpointFact(cfg: Config, p: EndpointProbe): Fact {
  const subject = `${cfg['dcs-type']} endpoint ${p.endpoint}`;
  if (p.ok) return fact('OK', subject, 'reachable, answered');
  return fact('FAIL', subject, `${p.reason ?? 'error'}: ${safeText(p.message, 500)}`);
}

export async function runDiagnose(loaded: LoadedConfig, io: DiagnoseIo = { out: process.stdout, err: process.stderr }): Promise<number> {
  // Process-wide keys (DCS, HTTP) read the same from every entry.
  const cfg = loaded.config;
  // Before anything could print a server's answer: no secret value ever reaches the output
  // (an entry may carry its own, e.g. a Hetzner token).
  for (const v of loaded.vips) registerConfigSecrets(v.config);
  const entries = vipEntries(loaded.vips);

  // Local facts first: synchronous netlink requests, microseconds each.
  const managerTypes = [...new Set(entries.map((e) => e.managerType))];
  const caps = new Map(managerTypes.map((t) => [t, checkCapabilities(t)] as const));
  const local = entries.map((e) => {
    const iface: InterfaceCheck | null = e.iface === null ? null : checkInterface(e.iface, e.managerType);
    const address = checkAddress(e.ip, e.netmask, iface?.info ?? null);
    return { e, iface, address };
  });

  const daemon: Promise<DaemonProbe> = probeDaemon(cfg, entries.map((e) => ({ name: e.name, ip: e.ip, netmask: e.netmask })));
  const neighbours = local.map(async ({ e, iface }): Promise<ProbeResult | string> => {
    const info = iface?.info ?? null;
    if (e.iface === null) return 'no interface configured';
    if (info === null) return `interface ${e.iface} does not exist`;
    if (info.mac === null) return `interface ${e.iface} has no Ethernet link-layer address`;
    if (!info.up) return `interface ${e.iface} is down`;
    if (caps.get(e.managerType)!.has('CAP_NET_RAW') === false) return 'no CAP_NET_RAW';
    try {
      return await probeNeighbours({ ifindex: info.index, ifname: info.name, mac: info.mac, ip: e.ip });
    } catch (err) {
      if (err instanceof NetError && err.missingCapability === 'CAP_NET_RAW') return 'no CAP_NET_RAW';
      return safeText((err as Error).message, 300);
    }
  });
  // After the probes have started: loading the DCS client overlaps the second the neighbour
  // probe listens.
  const keys = [...new Set(entries.filter((e) => e.prefix === null).map((e) => e.triggerKey))];
  const prefixes = [...new Set(entries.flatMap((e) => (e.prefix === null ? [] : [e.prefix])))];
  let dcs: Promise<EndpointProbe[]>;
  try {
    dcs = (await prepareDcsProbe(cfg, keys, prefixes))();
  } catch (e) {
    if (!CONFIG_ERROR_NAMES.has((e as Error).name)) throw e;
    io.err.write(`vip-manager: config error: ${safeText((e as Error).message)}\n`);
    return EXIT_CONFIG;
  }
  const [endpoints, running, probes] = await Promise.all([dcs, daemon, Promise.all(neighbours)]);
  closeRouteSocket();

  // The daemon reads through the first endpoint that answers: so does the verdict.
  const answered = endpoints.find((p) => p.ok);
  const vips: VipReport[] = local.map(({ e, iface, address }, i) => {
    let leader: LeaderFinding;
    const facts: Fact[] = [];
    let misspelt: string | null = null;
    if (e.prefix !== null) {
      const role = roleFinding(e, e.prefix, answered?.prefixes.find((p) => p.prefix === e.prefix));
      leader = role.finding;
      facts.push(role.fact);
      if (role.members !== null) {
        const members = checkMembers(e.triggerValue, `${e.prefix}${MEMBERS_DIR}`, role.members, role.display);
        if (members.fact) facts.push(members.fact);
        misspelt = members.misspelt;
      }
    } else {
      const read = answered?.keys.find((k) => k.key === e.triggerKey);
      leader = leaderFinding(cfg, read, e.triggerValue);
      facts.push(leaderFact(leader, e.triggerValue, cfg));
      if (read !== undefined && cfg['dcs-type'] !== 'patroni') {
        const members = checkMembers(e.triggerValue, read.membersPrefix, read.members, leader.kind === 'value' ? leader.display : null);
        if (members.fact) facts.push(members.fact);
        if (read.membersError !== undefined) facts.push(fact('INFO', 'members', `not listed: ${safeText(read.membersError, 300)}`));
        misspelt = members.misspelt;
      }
    }
    if (iface) facts.push(iface.fact);
    else facts.push(fact('INFO', 'interface', `none configured (manager-type ${e.managerType})`));
    const cidr = `${e.ip}/${e.netmask}`;
    const held = address.held;
    const on = e.iface === null ? 'this host' : e.iface;
    const should = leader.kind === 'value' ? leader.namesThisNode : null;
    const mark = should === null ? 'INFO' : should === held ? 'OK' : 'FAIL';
    const elsewhere = address.elsewhere.length > 0 ? `; the address is on ${address.elsewhere.join(', ')}` : '';
    facts.push(fact(mark, `address ${cidr}`, `${held ? 'on' : 'not on'} ${on}${elsewhere}`));
    const n = neighbourFact(e, probes[i]!, leader, held);
    facts.push(n.fact);
    const reported = running.foreign.get(e.name) ?? [];
    const foreign = [...(n.foreign ?? []), ...reported.filter((f) => !(n.foreign ?? []).some((p) => p.mac === f.mac))];
    if (reported.length > 0) facts.push(fact('FAIL', 'daemon', `reports another host answering for the VIP: ${reported.map((f) => f.mac).join(', ')}`));
    const verdict = decideVerdict({
      iface: e.iface, triggerValue: e.triggerValue, leader, held,
      foreign: n.foreign === null && reported.length === 0 ? null : foreign,
      misspelt, cannotTake: iface?.problem ?? null,
    });
    return { label: vipLabel(e), verdict, facts };
  });

  // One capabilities line per manager type in use, named by it when there are several.
  const capFacts = managerTypes.map((t) => {
    const f = caps.get(t)!.fact;
    return managerTypes.length === 1 ? f : fact(f.mark, `${f.subject} (manager-type ${t})`, f.text);
  });
  const shared: Fact[] = [...capFacts, ...endpoints.map((p) => endpointFact(cfg, p)), running.fact];
  const report = { vips, shared };
  io.out.write(renderReport(report));
  return exitCode(report);
}
