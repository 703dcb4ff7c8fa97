// Loads the effective configuration exactly as the daemon uses it: flag > env > file > default,
// defaults that depend on other keys, legacy names, then validation of every key and of the
// rules between keys. All problems are collected and thrown together as one ConfigError.
//
// Several VIPs (`vips:` in the file, config/vips.ts): every top-level value, from any layer, is
// the default of each entry, and an entry's own value wins over it. The per-VIP part of the
// configuration is validated by the same code for the one implicit entry (no `vips:`) and for
// each listed entry; a problem an entry's own keys take part in begins with the entry's label,
// one that only top-level values make is reported once, as without `vips:`.
import { accessSync, constants, statSync } from 'node:fs';
import { isIP } from 'node:net';
import * as v from 'valibot';
import { hookFileProblem } from '../hooks/command.js';
import { coerce, showValue } from './coerce.js';
import { quote } from './show.js';
import { vipInSubnetProblem } from './vip-address.js';
import { resolveDcsEndpoints } from './endpoints.js';
import { readEnv } from './env.js';
import { ConfigError, type Layer, type Origin } from './errors.js';
import { readConfigFile, type FileVipEntry } from './file.js';
import { instancePaths, resolveInstance, type InstancePaths } from './instance.js';
import { parseCommandLine, type CommandLine } from './flags.js';
import type { RawEntry } from './raw.js';
import { KEYS, PROCESS_KEYS, VIP_KEYS, envName, isLoopbackHost, type Config, type DefaultContext, type KeyDef } from './schema.js';
import { MAX_ENTRY_PROBLEMS, VIPS_KEY, normalisedIp } from './vips.js';

export interface VipEntry {
  /** Key `name`; default: the entry's ip. */
  readonly name: string;
  /** Position in `vips:` (0-based); null for the implicit single entry of a file without `vips:`. */
  readonly index: number | null;
  /** The complete effective configuration of this entry: top-level values as defaults, the entry's own keys over them. */
  readonly config: Config;
  /** Where each value of this entry came from; keys left unset have no entry. */
  readonly sources: ReadonlyMap<string, Origin>;
}

export interface LoadedConfig {
  /** The process-wide view: vips[0].config, so process-wide keys read the same from any entry. */
  readonly config: Config;
  /** Where each key's value came from (vips[0]'s); keys left unset have no entry. */
  readonly sources: ReadonlyMap<string, Origin>;
  /** Every VIP, at least one: the implicit entry (index null) or one per `vips:` entry, in file order. */
  readonly vips: readonly VipEntry[];
  readonly warnings: readonly string[];
  readonly configFile: string | undefined;
}

export interface LoadInput {
  readonly env: NodeJS.ProcessEnv;
  readonly hostname: string;
  /** Where --instance looks (tests); the real paths by default. */
  readonly instancePaths?: (name: string) => InstancePaths;
}

const PRECEDENCE = ['flag', 'env', 'file'] as const satisfies readonly Layer[];
const DEFAULT_ORIGIN = (key: string): Origin => ({ layer: 'default', name: key, where: 'default' });

/** Where a problem line goes. The text starts with the key it is about ("netmask: ..."), which orders it. */
interface Sink {
  push(text: string): void;
}

/** Problem lines ordered by the schema order of the key they start with; others first. */
class OrderedLines implements Sink {
  private readonly general: string[] = [];
  private readonly byKey: Array<{ order: number; text: string }> = [];
  private readonly seen = new Set<string>();
  constructor(private readonly dedupe = false) {}
  /** A line about no key in particular (the command line, the file as a whole): first, as given. */
  pushGeneral(text: string): void {
    this.general.push(text);
  }
  push(text: string): void {
    if (this.dedupe) {
      if (this.seen.has(text)) return;
      this.seen.add(text);
    }
    const key = text.slice(0, text.indexOf(':'));
    const order = KEYS.findIndex((k) => k.name === key);
    if (order < 0) this.general.push(text);
    else this.byKey.push({ order, text });
  }
  lines(): string[] {
    return [...this.general, ...[...this.byKey].sort((a, b) => a.order - b.order).map((p) => p.text)];
  }
}

/**
 * The values of one VIP (or of the top level) while they are resolved and validated. `report`
 * takes the keys a problem is about: in an entry, a problem none of whose keys the entry sets
 * itself comes from top-level values alone and is reported once, without the entry's label.
 */
interface Scope {
  readonly values: Map<string, unknown>;
  readonly sources: Map<string, Origin>;
  report(keys: readonly string[], text: string): void;
}

function describeEntry(k: KeyDef, e: RawEntry): string {
  return `${showValue(k, e.raw)} from ${e.origin.where}`;
}

const isCurrentName = (k: KeyDef, e: RawEntry) => e.origin.name === k.name || e.origin.name === envName(k.name);

/**
 * Within one layer, a key set under two names (a legacy and a current one, or two legacy ones)
 * must agree; otherwise which one wins would be a guess.
 */
function pickWithinLayer(k: KeyDef, entries: RawEntry[], problems: Sink): RawEntry | undefined {
  if (entries.length <= 1) return entries[0];
  const distinct = new Map(entries.map((e) => [JSON.stringify(coerce(k, e.raw)), e]));
  if (distinct.size > 1) {
    const legacy = entries.filter((e) => !isCurrentName(k, e)).map((e) => e.origin.name);
    problems.push(`${k.name}: conflicting values: ${entries.map((e) => describeEntry(k, e)).join(' and ')}; expected one value (remove the legacy name ${legacy.join(', ') || entries[0]!.origin.name})`);
  }
  return entries.find((e) => isCurrentName(k, e)) ?? entries[0];
}

/** Each key's value from the highest layer (or the one list of raw entries) that sets it. */
function resolveExplicit(keys: readonly KeyDef[], layers: ReadonlyArray<readonly RawEntry[]>, problems: Sink): { values: Map<string, unknown>; sources: Map<string, Origin> } {
  const values = new Map<string, unknown>();
  const sources = new Map<string, Origin>();
  for (const k of keys) {
    for (const layer of layers) {
      const entries = layer.filter((e) => e.key === k.name && e.raw !== null && e.raw !== undefined);
      const chosen = pickWithinLayer(k, entries, problems);
      if (chosen === undefined) continue;
      const c = coerce(k, chosen.raw);
      if (c.ok) values.set(k.name, c.value);
      else problems.push(`${k.name}: ${describeEntry(k, chosen)} is not valid; ${c.expected}`);
      sources.set(k.name, chosen.origin);
      break;
    }
  }
  return { values, sources };
}

/**
 * Defaults of the keys not set. Plain ones first, so that defaults depending on other keys
 * (dcs-endpoints on dcs-type, trigger-value on the hostname, name on ip) see the final value
 * of what they depend on.
 */
function applyDefaults(scope: Scope, keys: readonly KeyDef[], ctx: DefaultContext): void {
  for (const pass of ['plain', 'derived'] as const) {
    for (const k of keys) {
      if (scope.sources.has(k.name) || k.default === undefined) continue;
      if ((typeof k.default === 'function') !== (pass === 'derived')) continue;
      const v = typeof k.default === 'function' ? (k.default as (c: DefaultContext) => unknown)(ctx) : k.default;
      if (v === undefined) continue;
      scope.values.set(k.name, Array.isArray(v) ? [...v] : v);
      scope.sources.set(k.name, DEFAULT_ORIGIN(k.name));
    }
  }
}

interface CheckOptions {
  /** Whether a missing value is a problem here (not at the top level of a file with `vips:`). */
  readonly requireKeys: boolean;
  /** A file that could not be read may well have set the key: "missing" would be false. */
  readonly fileUnreadable: boolean;
  /** Values checked elsewhere already (an entry's inherited top-level values). */
  readonly checked?: (key: string) => boolean;
  /** Keys not to report missing (an unknown key in the entry was probably meant to be one). */
  readonly notMissing?: ReadonlySet<string>;
  /** "set --ip, VIP_IP or "ip:" in the config file" or, in an entry, "set "ip:" in this entry or at the top level". */
  readonly whereToSet: (k: KeyDef) => string;
}

/** Each key on its own: required, then the key's own check. */
function checkKeys(scope: Scope, keys: readonly KeyDef[], ctx: DefaultContext, opts: CheckOptions): void {
  const { values, sources } = scope;
  for (const k of keys) {
    const required = typeof k.required === 'function' ? k.required(ctx) : k.required === true;
    if (!values.has(k.name)) {
      if (opts.requireKeys && required && !sources.has(k.name) && !opts.fileUnreadable && !opts.notMissing?.has(k.name)) {
        // What the key's check says of no value, if that is one of its own messages (a failed
        // validation); a failed type ("expected string, received undefined") says nothing here.
        const issue = k.check === undefined ? undefined : v.safeParse(k.check, undefined).issues?.[0];
        const expected = issue?.kind === 'validation' ? issue.message : undefined;
        // No keys: "missing" is the entry's own problem even where the top level could set the key.
        scope.report([], `${k.name}: missing; ${opts.whereToSet(k)}${k.name === 'interface' ? ` (required for manager-type ${String(values.get('manager-type'))})` : ''}${expected ? ` (${expected})` : ''}`);
      }
      continue;
    }
    if (opts.checked?.(k.name)) continue;
    const value = values.get(k.name);
    const result = k.check === undefined ? undefined : v.safeParse(k.check, value);
    if (result && !result.success) {
      const issue = result.issues[0];
      // An issue inside a list (one of dcs-endpoints) names the element it is about.
      const index = issue.path?.[0]?.key;
      const element = typeof index === 'number' && Array.isArray(value) ? ` (element ${showValue(k, value[index])})` : '';
      scope.report([k.name], `${k.name}: ${showValue(k, value)}${element} from ${sources.get(k.name)!.where} is not valid; ${issue.message}`);
      values.delete(k.name);
    }
  }
}

function readable(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return 'is not a regular file';
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be read (${code})`;
  }
}

const whereOf = (scope: Scope) => (key: string) => scope.sources.get(key)?.where ?? 'default';

function fileProblems(scope: Scope, keys: readonly string[]): void {
  const where = whereOf(scope);
  for (const key of keys) {
    const path = scope.values.get(key) as string | undefined;
    const why = path === undefined ? undefined : readable(path);
    if (why !== undefined) scope.report([key], `${key}: ${quote(path!)} from ${where(key)} ${why}; expected a readable file`);
  }
}

/**
 * Rules between process-wide keys. `anyVip` asks whether some VIP has a property (dcs-loss
 * patroni makes the Patroni API's files needed).
 */
function processRules(scope: Scope, warnings: string[], anyVip: (test: (values: ReadonlyMap<string, unknown>) => boolean) => boolean): void {
  const { values } = scope;
  const where = whereOf(scope);
  const requires = (key: string, other: string) => {
    if (values.has(key) && !values.has(other)) {
      scope.report([key, other], `${key}: set (${where(key)}) but ${other} is not; expected ${other} as well`);
    }
  };
  requires('etcd-password', 'etcd-user');
  // An empty VIP_ETCD_USER= (an env file with the line left blank) is not a user: with a
  // password set, etcd would be asked to authenticate nobody.
  if (values.get('etcd-user') === '' && values.has('etcd-password')) {
    scope.report(['etcd-user', 'etcd-password'], `etcd-user: empty (${where('etcd-user')}) but etcd-password is set; expected the user name that goes with the password`);
  }
  requires('etcd-cert-file', 'etcd-key-file');
  requires('etcd-key-file', 'etcd-cert-file');
  requires('patroni-api-password', 'patroni-api-user');
  requires('patroni-api-cert-file', 'patroni-api-key-file');
  requires('patroni-api-key-file', 'patroni-api-cert-file');
  // The password goes with every request: never in clear across a network (as hetzner-api-url).
  const patroniUrl = values.get('patroni-api-url');
  if (values.has('patroni-api-password') && typeof patroniUrl === 'string' && URL.canParse(patroniUrl)) {
    const u = new URL(patroniUrl);
    if (u.protocol === 'http:' && !isLoopbackHost(u.hostname)) {
      scope.report(['patroni-api-url', 'patroni-api-password'], `patroni-api-url: ${quote(patroniUrl)} from ${where('patroni-api-url')} is http:// to a host that is not loopback while patroni-api-password is set; expected an https:// URL (http:// only to 127.0.0.0/8, ::1, localhost)`);
    }
  }
  const fileKeys = ['etcd-ca-file', 'etcd-cert-file', 'etcd-key-file'];
  if (anyVip((v) => v.get('dcs-loss') === 'patroni')) fileKeys.push('patroni-api-ca-file', 'patroni-api-cert-file', 'patroni-api-key-file');
  fileProblems(scope, fileKeys);
  const resolved = resolveDcsEndpoints(values.get('dcs-type'), values.get('dcs-endpoints'), where('dcs-endpoints'));
  if (resolved.problem !== undefined) scope.report(['dcs-endpoints'], resolved.problem);
  else if (resolved.endpoints !== undefined) values.set('dcs-endpoints', resolved.endpoints);
  const tls = ['etcd-ca-file', 'etcd-cert-file'].filter((key) => values.has(key));
  const endpoints = (values.get('dcs-endpoints') as string[] | undefined) ?? [];
  if (tls.length > 0 && endpoints.some((e) => e.startsWith('http://'))) {
    warnings.push(`${tls.join(' and ')} set but dcs-endpoints has http:// endpoints, which do not use TLS`);
  }
}

/** The value of a key with its source, for lines about rules between keys. */
const shownFrom = (scope: Scope, key: string) => {
  const v = scope.values.get(key);
  return `${typeof v === 'string' && !['role', 'fallback', 'dcs-type', 'manager-type'].includes(key) ? quote(v) : String(v)} (${whereOf(scope)(key)})`;
};

/** Rules between the keys of one VIP (which may involve process-wide ones, such as dcs-type). */
function vipRules(scope: Scope): void {
  const { values } = scope;
  const where = whereOf(scope);
  const ip = values.get('ip') as string | undefined;
  const netmask = values.get('netmask') as number | undefined;
  if (netmask !== undefined) {
    // Without a valid ip the family is unknown: then only the widest range can be checked.
    const family = ip === undefined ? 0 : isIP(ip);
    const max = family === 4 ? 32 : 128;
    if (netmask < 1 || netmask > max) {
      const forWhat = family === 0 ? 'an IP address' : `the IPv${family} address ${ip}`;
      scope.report(['netmask', 'ip'], `netmask: ${netmask} from ${where('netmask')} is out of range; expected 1-${max} for ${forWhat}`);
    } else if (ip !== undefined) {
      const inSubnet = vipInSubnetProblem(ip, netmask);
      if (inSubnet !== undefined) scope.report(['ip', 'netmask'], `ip: ${quote(ip)} from ${where('ip')} is not valid with netmask ${netmask} (${where('netmask')}); ${inSubnet}`);
    }
  }
  const fileKeys = ['hcloud-token-file'];
  if (values.get('manager-type') === 'hetzner') fileKeys.push('hetzner-credentials-file');
  fileProblems({ ...scope, report: (keys, text) => scope.report([...keys, 'manager-type'], text) }, fileKeys);
  // The daemon runs the hook with its own uid and checks the file as that uid would see it.
  for (const key of ['on-acquire', 'on-release']) {
    const path = (values.get(key) as string[] | undefined)?.[0];
    const why = path === undefined ? undefined : hookFileProblem(path, { uid: process.geteuid?.() ?? 0 });
    if (why !== undefined) scope.report([key], `${key}: ${quote(path!)} from ${where(key)} ${why}`);
  }
  if (values.get('manager-type') === 'hetzner-cloud' && !values.has('hcloud-token') && !values.has('hcloud-token-file')) {
    scope.report(['manager-type', 'hcloud-token', 'hcloud-token-file'], `hcloud-token: missing; manager-type hetzner-cloud needs hcloud-token-file, ${envName('hcloud-token')} or hcloud-token`);
  }
  roleRules(scope);
}

/**
 * A role VIP (replica, sync-standby) is placed from Patroni's member and sync keys, which live
 * beside the leader key (<namespace>/<scope>/leader) in etcd or Consul; Patroni's REST API
 * (dcs-type patroni) shows one member only.
 */
function roleRules(scope: Scope): void {
  const { values } = scope;
  const role = values.get('role') as Config['role'] | undefined;
  if (role === undefined) return; // invalid, reported under role
  if (role !== 'leader') {
    const dcsType = values.get('dcs-type');
    if (dcsType !== undefined && dcsType !== 'etcd' && dcsType !== 'consul') {
      scope.report(['role', 'dcs-type'], `role: ${shownFrom(scope, 'role')} needs dcs-type etcd or consul, where Patroni's member keys are; dcs-type is ${shownFrom(scope, 'dcs-type')}`);
    } else {
      const key = values.get('trigger-key') as string | undefined;
      if (key !== undefined && !/^.*[^/]\/leader$/.test(key)) {
        scope.report(['trigger-key', 'role'], `trigger-key: ${quote(key)} from ${whereOf(scope)('trigger-key')} is not Patroni's leader key; role ${role} reads Patroni's other keys beside it (members/, sync): expected <namespace>/<scope>/leader, e.g. /service/pgcluster/leader`);
      }
    }
  }
  if (values.has('max-lag') && role !== 'replica') {
    scope.report(['max-lag', 'role'], `max-lag: set (${whereOf(scope)('max-lag')}) but role is ${shownFrom(scope, 'role')}; expected max-lag only with role replica, the one that reads replication lag`);
  }
  // fallback none is no fallback at all: --check-config shows it (the default) for every entry.
  if (values.get('fallback') === 'leader' && role === 'leader') {
    scope.report(['fallback', 'role'], `fallback: ${shownFrom(scope, 'fallback')} but role is ${shownFrom(scope, 'role')}; expected fallback only with role replica or sync-standby`);
  }
}

/** The effective configuration of one scope, every key in schema order. */
function configOf(values: ReadonlyMap<string, unknown>): Config {
  return Object.fromEntries(KEYS.map((k) => [k.name, values.get(k.name)])) as unknown as Config;
}

export function loadFromCommandLine(cli: CommandLine, input: LoadInput): LoadedConfig {
  // Problems of a key are listed in schema order, whichever step found them.
  const top = new OrderedLines(true);
  for (const p of cli.problems) top.pushGeneral(p);
  const warnings = [...cli.warnings];
  let configFile = cli.configFile ?? input.env[envName('config')] ?? undefined;
  if (cli.instance !== undefined) {
    if (configFile !== undefined && configFile !== '') {
      top.pushGeneral(`--instance and ${cli.configFile !== undefined ? '--config' : envName('config')} cannot be combined: --instance ${cli.instance} reads ${instancePaths(cli.instance).yaml}`);
    } else {
      const inst = resolveInstance(cli.instance, input.instancePaths?.(cli.instance));
      for (const p of inst.problems) top.pushGeneral(p);
      warnings.push(...inst.warnings);
      configFile = inst.configFile;
    }
  }
  const envLayer = readEnv(input.env);
  warnings.push(...envLayer.warnings);
  const fileLayer = configFile !== undefined && configFile !== '' ? readConfigFile(configFile) : { entries: [], problems: [], warnings: [], unreadable: false, vips: undefined };
  for (const p of fileLayer.problems) top.pushGeneral(p);
  warnings.push(...fileLayer.warnings);
  const layers: Record<'flag' | 'env' | 'file', RawEntry[]> = { flag: cli.entries, env: envLayer.entries, file: fileLayer.entries };

  // 1. The explicitly set value of each key: the highest layer that sets it.
  const explicit = resolveExplicit(KEYS, PRECEDENCE.map((l) => layers[l]), top);
  const topScope: Scope = { ...explicit, report: (_keys, text) => top.push(text) };
  const ctxOf = (values: ReadonlyMap<string, unknown>): DefaultContext => ({ get: (key) => values.get(key), hostname: input.hostname });
  const fileUnreadable = fileLayer.unreadable;
  const topLevelToSet = (k: KeyDef) => `set --${k.name}, ${envName(k.name)} or "${k.name}:" in the config file`;

  let vips: EntryState[];
  if (fileLayer.vips === undefined) {
    // One implicit VIP: the top level is its configuration, validated as a whole.
    const ctx = ctxOf(topScope.values);
    applyDefaults(topScope, KEYS, ctx);
    checkKeys(topScope, KEYS, ctx, { requireKeys: true, fileUnreadable, whereToSet: topLevelToSet });
    vipRules(topScope);
    processRules(topScope, warnings, (test) => test(topScope.values));
    vips = [{ index: null, label: '', broken: false, values: topScope.values, sources: topScope.sources, lines: new OrderedLines() }];
  } else {
    // The top level: process-wide keys complete, per-VIP keys as set (each entry's defaults).
    // A per-VIP value set at the top level is checked once here; entries inherit it checked.
    const ctx = ctxOf(topScope.values);
    applyDefaults(topScope, PROCESS_KEYS, ctx);
    checkKeys(topScope, KEYS, ctx, { requireKeys: true, fileUnreadable, whereToSet: topLevelToSet, notMissing: new Set(VIP_KEYS.map((k) => k.name)) });
    vips = fileLayer.vips.map((e) => loadEntry(e, topScope, ctxOf, top, fileUnreadable));
    processRules(topScope, warnings, (test) => vips.some((v) => !v.broken && test(v.values)));
    // The process-wide values as the rules left them (dcs-endpoints resolved), the same in every entry.
    for (const v of vips) {
      for (const k of PROCESS_KEYS) {
        if (topScope.values.has(k.name)) v.values.set(k.name, topScope.values.get(k.name));
        else v.values.delete(k.name);
        if (topScope.sources.has(k.name)) v.sources.set(k.name, topScope.sources.get(k.name)!);
        else v.sources.delete(k.name);
      }
    }
    duplicates(vips.filter((v) => !v.broken));
  }

  // Lines about entries: the file's own about each entry first, then its values; bounded, as
  // a pasted blob could otherwise make thousands.
  const entryLines = vips.flatMap((v) => v.lines.lines().map((text) => `${v.label}: ${text}`));
  const all = [...top.lines(), ...entryLines.slice(0, MAX_ENTRY_PROBLEMS)];
  if (entryLines.length > MAX_ENTRY_PROBLEMS) all.push(`${VIPS_KEY}: ${entryLines.length - MAX_ENTRY_PROBLEMS} more problems in entries are not shown`);
  if (all.length > 0) throw new ConfigError(all);
  const entries: VipEntry[] = vips.map((v) => {
    const config = configOf(v.values);
    return { name: config.name, index: v.index, config, sources: v.sources };
  });
  return { config: entries[0]!.config, sources: entries[0]!.sources, vips: entries, warnings, configFile };
}

interface EntryState {
  readonly index: number | null;
  /** `vips[1] (billing)`; empty for the implicit entry, whose lines are the top level's. */
  readonly label: string;
  /** Not validated (config/file.ts said why): takes part in no rule between entries. */
  readonly broken: boolean;
  readonly values: Map<string, unknown>;
  readonly sources: Map<string, Origin>;
  readonly lines: OrderedLines;
}

/** One `vips:` entry over the top level: its own values, then inherited, then defaults; validated. */
function loadEntry(
  entry: FileVipEntry,
  top: Scope,
  ctxOf: (values: ReadonlyMap<string, unknown>) => DefaultContext,
  topLines: Sink,
  fileUnreadable: boolean,
): EntryState {
  const lines = new OrderedLines(true);
  // The file's lines about the entry already carry its label.
  const fileLines = entry.problems.map((p) => p.slice(entry.label.length + 2));
  const own = resolveExplicit(VIP_KEYS, [entry.entries], lines);
  const values = new Map(top.values);
  const sources = new Map(top.sources);
  // A process-wide key is never the entry's; a per-VIP one set in the entry replaces the top level's.
  for (const k of VIP_KEYS) {
    if (!own.sources.has(k.name)) continue;
    sources.set(k.name, own.sources.get(k.name)!);
    if (own.values.has(k.name)) values.set(k.name, own.values.get(k.name));
    else values.delete(k.name);
  }
  const isOwn = (key: string) => own.sources.has(key);
  const inherited = new Set(VIP_KEYS.filter((k) => !isOwn(k.name) && top.sources.has(k.name)).map((k) => k.name));
  const scope: Scope = {
    values,
    sources,
    report: (keys, text) => (keys.length === 0 || keys.some(isOwn) ? lines.push(text) : topLines.push(text)),
  };
  const ctx = ctxOf(values);
  applyDefaults(scope, VIP_KEYS, ctx);
  if (!entry.broken) {
    checkKeys(scope, VIP_KEYS, ctx, {
      requireKeys: true,
      fileUnreadable,
      checked: (key) => inherited.has(key),
      notMissing: entry.misspelt,
      whereToSet: (k) => `set "${k.name}:" in this entry or at the top level`,
    });
    vipRules(scope);
  }
  const combined = new OrderedLines();
  for (const l of fileLines) combined.push(l);
  for (const l of lines.lines()) combined.push(l);
  return { index: entry.index, label: entry.label, broken: entry.broken, values, sources, lines: combined };
}

/** Two entries with one address (after normalising its text) or one name. */
function duplicates(vips: readonly EntryState[]): void {
  const byIp = new Map<string, string>();
  const byName = new Map<string, string>();
  for (const v of vips) {
    const where = (key: string) => v.sources.get(key)?.where ?? 'default';
    const ip = v.values.get('ip');
    let ipTaken = false;
    if (typeof ip === 'string') {
      const key = normalisedIp(ip);
      const first = byIp.get(key);
      if (first !== undefined) {
        v.lines.push(`ip: ${quote(ip)} from ${where('ip')} is also the ip of ${first}; expected a different address in each entry`);
        ipTaken = true;
      } else byIp.set(key, v.label);
    }
    const name = v.values.get('name');
    if (typeof name === 'string') {
      const first = byName.get(name);
      // A name that defaults to a duplicate ip is that one problem, said under ip.
      if (first !== undefined && !(ipTaken && v.sources.get('name')?.layer === 'default')) {
        v.lines.push(`name: ${quote(name)} from ${where('name')} is also the name of ${first}; expected a different name in each entry`);
      } else if (first === undefined) byName.set(name, v.label);
    }
  }
}

/** The whole pipeline from argv; throws ConfigError. --help/--version are handled by the caller. */
export function loadConfig(argv: readonly string[], input: LoadInput): LoadedConfig & { cli: CommandLine } {
  const cli = parseCommandLine(argv);
  return { ...loadFromCommandLine(cli, input), cli };
}
