// `vip-manager --diagnose`: with the configuration the daemon would run with, look once at
// everything that decides whether this node is as the DCS asks, print a verdict per VIP with the
// facts behind it (report.ts), and exit 0 (as asked), 1 (not, or cannot tell) or 78 (a
// configuration error the checks meet, e.g. an unusable TLS file). Changes nothing: no address
// is added or removed, no key written, no announcement sent; the only frames sent are one
// duplicate-address probe per VIP (neighbour-probe.ts), which no host learns anything from.
//
// Each VIP is one entry (vipEntries): today the configuration holds exactly one; a `vips:` list
// would add entries without changing the checks. The DCS endpoints, the capabilities and the
// running daemon are shared by every entry and printed once, after the entries.
import { EXIT_CONFIG } from '../config/errors.js';
import type { LoadedConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { displayText, displayValue, leaderValue } from '../dcs/leader-value.js';
import { namesThisNode } from '../reconcile/decide.js';
import { closeRouteSocket } from '../net/netlink.js';
import { NetError } from '../net/errors.js';
import { parseIp } from '../net/ip.js';
import { registerConfigSecrets, safeText } from '../ops/redact.js';
import { checkAddress, checkCapabilities, checkInterface, checkMembers, type InterfaceCheck } from './checks.js';
import { probeDaemon, type DaemonProbe } from './daemon-probe.js';
import { CONFIG_ERROR_NAMES, prepareDcsProbe, type EndpointProbe, type KeyRead } from './dcs-probe.js';
import { describeAnswers, NEIGHBOUR_WAIT_MS, probeNeighbours, type ProbeResult } from './neighbour-probe.js';
import {
  decideVerdict, exitCode, fact, renderReport, type Fact, type ForeignHolder, type LeaderFinding, type VipReport,
} from './report.js';

/** One VIP as the checks see it. */
export interface VipEntry {
  readonly ip: string;
  readonly netmask: number;
  readonly iface: string | null;
  readonly triggerKey: string;
  readonly triggerValue: string;
}

export function vipEntries(cfg: Config): VipEntry[] {
  return [{ ip: cfg.ip, netmask: cfg.netmask, iface: cfg.interface ?? null, triggerKey: cfg['trigger-key'], triggerValue: cfg['trigger-value'] }];
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
    return { fact: fact('WARN', subject, `answered by ${who}, although no node is leader`), foreign };
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
  const cfg = loaded.config;
  // Before anything could print a server's answer: no secret value ever reaches the output.
  registerConfigSecrets(cfg);
  const entries = vipEntries(cfg);
  const managerType = cfg['manager-type'];

  // Local facts first: synchronous netlink requests, microseconds each.
  const caps = checkCapabilities(managerType);
  const local = entries.map((e) => {
    const iface: InterfaceCheck | null = e.iface === null ? null : checkInterface(e.iface, managerType);
    const address = checkAddress(e.ip, e.netmask, iface?.info ?? null);
    return { e, iface, address };
  });

  const daemon: Promise<DaemonProbe> = probeDaemon(cfg);
  const neighbours = local.map(async ({ e, iface }): Promise<ProbeResult | string> => {
    const info = iface?.info ?? null;
    if (e.iface === null) return 'no interface configured';
    if (info === null) return `interface ${e.iface} does not exist`;
    if (info.mac === null) return `interface ${e.iface} has no Ethernet link-layer address`;
    if (!info.up) return `interface ${e.iface} is down`;
    if (caps.has('CAP_NET_RAW') === false) return 'no CAP_NET_RAW';
    try {
      return await probeNeighbours({ ifindex: info.index, ifname: info.name, mac: info.mac, ip: e.ip });
    } catch (err) {
      if (err instanceof NetError && err.missingCapability === 'CAP_NET_RAW') return 'no CAP_NET_RAW';
      return safeText((err as Error).message, 300);
    }
  });
  // After the probes have started: loading the DCS client (etcd3 and gRPC: about a second on a
  // busy machine) overlaps the second the neighbour probe listens.
  let dcs: Promise<EndpointProbe[]>;
  try {
    dcs = (await prepareDcsProbe(cfg, [...new Set(entries.map((e) => e.triggerKey))]))();
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
    const read = answered?.keys.find((k) => k.key === e.triggerKey);
    const leader = leaderFinding(cfg, read, e.triggerValue);
    const facts: Fact[] = [leaderFact(leader, e.triggerValue, cfg)];
    let misspelt: string | null = null;
    if (read !== undefined && cfg['dcs-type'] !== 'patroni') {
      const members = checkMembers(e.triggerValue, read.membersPrefix, read.members, leader.kind === 'value' ? leader.display : null);
      if (members.fact) facts.push(members.fact);
      if (read.membersError !== undefined) facts.push(fact('INFO', 'members', `not listed: ${safeText(read.membersError, 300)}`));
      misspelt = members.misspelt;
    }
    if (iface) facts.push(iface.fact);
    else facts.push(fact('INFO', 'interface', `none configured (manager-type ${managerType})`));
    const cidr = `${e.ip}/${e.netmask}`;
    const held = address.held;
    const on = e.iface === null ? 'this host' : e.iface;
    const should = leader.kind === 'value' ? leader.namesThisNode : null;
    const mark = should === null ? 'INFO' : should === held ? 'OK' : 'FAIL';
    const elsewhere = address.elsewhere.length > 0 ? `; the address is on ${address.elsewhere.join(', ')}` : '';
    facts.push(fact(mark, `address ${cidr}`, `${held ? 'on' : 'not on'} ${on}${elsewhere}`));
    const n = neighbourFact(e, probes[i]!, leader, held);
    facts.push(n.fact);
    const foreign = [...(n.foreign ?? []), ...running.foreign.filter((f) => !(n.foreign ?? []).some((p) => p.mac === f.mac))];
    if (running.foreign.length > 0) facts.push(fact('FAIL', 'daemon', `reports another host answering for the VIP: ${running.foreign.map((f) => f.mac).join(', ')}`));
    const verdict = decideVerdict({
      iface: e.iface, triggerValue: e.triggerValue, leader, held,
      foreign: n.foreign === null && running.foreign.length === 0 ? null : foreign,
      misspelt, cannotTake: iface?.problem ?? null,
    });
    const label = `VIP ${cidr}${e.iface === null ? '' : ` on ${e.iface}`}`;
    return { label, verdict, facts };
  });

  const shared: Fact[] = [caps.fact, ...endpoints.map((p) => endpointFact(cfg, p)), running.fact];
  const report = { vips, shared };
  io.out.write(renderReport(report));
  return exitCode(report);
}
