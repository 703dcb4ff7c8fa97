// Loads the effective configuration exactly as the daemon uses it: flag > env > file > default,
// defaults that depend on other keys, legacy names, then validation of every key and of the
// rules between keys. All problems are collected and thrown together as one ConfigError.
import { accessSync, constants, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { hookFileProblem } from '../hooks/command.js';
import { coerce, showValue } from './coerce.js';
import { quote } from './show.js';
import { vipInSubnetProblem } from './vip-address.js';
import { resolveDcsEndpoints } from './endpoints.js';
import { readEnv } from './env.js';
import { ConfigError, type Layer, type Origin } from './errors.js';
import { readConfigFile } from './file.js';
import { instancePaths, resolveInstance, type InstancePaths } from './instance.js';
import { parseCommandLine, type CommandLine } from './flags.js';
import type { RawEntry } from './raw.js';
import { KEYS, envName, isLoopbackHost, type Config, type DefaultContext, type KeyDef } from './schema.js';

export interface LoadedConfig {
  readonly config: Config;
  /** Where each key's value came from; keys left unset have no entry. */
  readonly sources: ReadonlyMap<string, Origin>;
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

function describeEntry(k: KeyDef, e: RawEntry): string {
  return `${showValue(k, e.raw)} from ${e.origin.where}`;
}

const isCurrentName = (k: KeyDef, e: RawEntry) => e.origin.name === k.name || e.origin.name === envName(k.name);

/**
 * Within one layer, a key set under two names (a legacy and a current one, or two legacy ones)
 * must agree; otherwise which one wins would be a guess.
 */
function pickWithinLayer(k: KeyDef, entries: RawEntry[], problems: { push(text: string): void }): RawEntry | undefined {
  if (entries.length <= 1) return entries[0];
  const distinct = new Map(entries.map((e) => [JSON.stringify(coerce(k, e.raw)), e]));
  if (distinct.size > 1) {
    const legacy = entries.filter((e) => !isCurrentName(k, e)).map((e) => e.origin.name);
    problems.push(`${k.name}: conflicting values: ${entries.map((e) => describeEntry(k, e)).join(' and ')}; expected one value (remove the legacy name ${legacy.join(', ') || entries[0]!.origin.name})`);
  }
  return entries.find((e) => isCurrentName(k, e)) ?? entries[0];
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

export function loadFromCommandLine(cli: CommandLine, input: LoadInput): LoadedConfig {
  // Problems of a key are listed in schema order, whichever step found them.
  const general = [...cli.problems];
  const byKey: Array<{ order: number; text: string }> = [];
  const problems = {
    push(text: string) {
      const key = text.slice(0, text.indexOf(':'));
      const order = KEYS.findIndex((k) => k.name === key);
      if (order < 0) general.push(text);
      else byKey.push({ order, text });
    },
  };
  const warnings = [...cli.warnings];
  let configFile = cli.configFile ?? input.env[envName('config')] ?? undefined;
  if (cli.instance !== undefined) {
    if (configFile !== undefined && configFile !== '') {
      general.push(`--instance and ${cli.configFile !== undefined ? '--config' : envName('config')} cannot be combined: --instance ${cli.instance} reads ${instancePaths(cli.instance).yaml}`);
    } else {
      const inst = resolveInstance(cli.instance, input.instancePaths?.(cli.instance));
      general.push(...inst.problems);
      warnings.push(...inst.warnings);
      configFile = inst.configFile;
    }
  }
  const envLayer = readEnv(input.env);
  warnings.push(...envLayer.warnings);
  const fileLayer = configFile !== undefined && configFile !== '' ? readConfigFile(configFile) : { entries: [], problems: [], warnings: [], unreadable: false };
  general.push(...fileLayer.problems);
  warnings.push(...fileLayer.warnings);
  const layers: Record<'flag' | 'env' | 'file', RawEntry[]> = { flag: cli.entries, env: envLayer.entries, file: fileLayer.entries };

  // 1. The explicitly set value of each key: the highest layer that sets it.
  const values = new Map<string, unknown>();
  const sources = new Map<string, Origin>();
  for (const k of KEYS) {
    for (const layer of PRECEDENCE) {
      const entries = layers[layer].filter((e) => e.key === k.name && e.raw !== null && e.raw !== undefined);
      const chosen = pickWithinLayer(k, entries, problems);
      if (chosen === undefined) continue;
      const c = coerce(k, chosen.raw);
      if (c.ok) values.set(k.name, c.value);
      else problems.push(`${k.name}: ${describeEntry(k, chosen)} is not valid; ${c.expected}`);
      sources.set(k.name, chosen.origin);
      break;
    }
  }

  // 2. Defaults. Plain ones first, so that defaults depending on other keys (dcs-endpoints on
  // dcs-type, trigger-value on the hostname) see the final value of what they depend on.
  const ctx: DefaultContext = { get: (key) => values.get(key), hostname: input.hostname };
  for (const pass of ['plain', 'derived'] as const) {
    for (const k of KEYS) {
      if (sources.has(k.name) || k.default === undefined) continue;
      if ((typeof k.default === 'function') !== (pass === 'derived')) continue;
      const v = typeof k.default === 'function' ? (k.default as (c: DefaultContext) => unknown)(ctx) : k.default;
      if (v === undefined) continue;
      values.set(k.name, Array.isArray(v) ? [...v] : v);
      sources.set(k.name, DEFAULT_ORIGIN(k.name));
    }
  }

  // 3. Each key on its own: required, then the key's own check.
  for (const k of KEYS) {
    const required = typeof k.required === 'function' ? k.required(ctx) : k.required === true;
    if (!values.has(k.name)) {
      // A config file that could not be read may well have set the key: "missing" would be false.
      if (required && !sources.has(k.name) && !fileLayer.unreadable) {
        const expected = k.check?.safeParse(undefined).error?.issues[0]?.message;
        problems.push(`${k.name}: missing; set --${k.name}, ${envName(k.name)} or "${k.name}:" in the config file${k.name === 'interface' ? ` (required for manager-type ${String(values.get('manager-type'))})` : ''}${expected && !/received undefined|Invalid input/i.test(expected) ? ` (${expected})` : ''}`);
      }
      continue;
    }
    const v = values.get(k.name);
    const result = k.check?.safeParse(v);
    if (result && !result.success) {
      const issue = result.error.issues[0]!;
      const element = issue.path.length > 0 && Array.isArray(v) ? ` (element ${showValue(k, v[issue.path[0] as number])})` : '';
      problems.push(`${k.name}: ${showValue(k, v)}${element} from ${sources.get(k.name)!.where} is not valid; ${issue.message}`);
      values.delete(k.name);
    }
  }

  // 4. Rules between keys.
  const where = (key: string) => sources.get(key)?.where ?? 'default';
  const ip = values.get('ip') as string | undefined;
  const netmask = values.get('netmask') as number | undefined;
  if (netmask !== undefined) {
    // Without a valid ip the family is unknown: then only the widest range can be checked.
    const family = ip === undefined ? 0 : isIP(ip);
    const max = family === 4 ? 32 : 128;
    if (netmask < 1 || netmask > max) {
      const forWhat = family === 0 ? 'an IP address' : `the IPv${family} address ${ip}`;
      problems.push(`netmask: ${netmask} from ${where('netmask')} is out of range; expected 1-${max} for ${forWhat}`);
    } else if (ip !== undefined) {
      const inSubnet = vipInSubnetProblem(ip, netmask);
      if (inSubnet !== undefined) problems.push(`ip: ${quote(ip)} from ${where('ip')} is not valid with netmask ${netmask} (${where('netmask')}); ${inSubnet}`);
    }
  }
  const requires = (key: string, other: string) => {
    if (values.has(key) && !values.has(other)) {
      problems.push(`${key}: set (${where(key)}) but ${other} is not; expected ${other} as well`);
    }
  };
  requires('etcd-password', 'etcd-user');
  // An empty VIP_ETCD_USER= (an env file with the line left blank) is not a user: with a
  // password set, etcd would be asked to authenticate nobody.
  if (values.get('etcd-user') === '' && values.has('etcd-password')) {
    problems.push(`etcd-user: empty (${where('etcd-user')}) but etcd-password is set; expected the user name that goes with the password`);
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
      problems.push(`patroni-api-url: ${quote(patroniUrl)} from ${where('patroni-api-url')} is http:// to a host that is not loopback while patroni-api-password is set; expected an https:// URL (http:// only to 127.0.0.0/8, ::1, localhost)`);
    }
  }
  const fileKeys = ['etcd-ca-file', 'etcd-cert-file', 'etcd-key-file', 'hcloud-token-file'];
  if (values.get('dcs-loss') === 'patroni') fileKeys.push('patroni-api-ca-file', 'patroni-api-cert-file', 'patroni-api-key-file');
  if (values.get('manager-type') === 'hetzner') fileKeys.push('hetzner-credentials-file');
  for (const key of fileKeys) {
    const path = values.get(key) as string | undefined;
    const why = path === undefined ? undefined : readable(path);
    if (why !== undefined) problems.push(`${key}: ${quote(path!)} from ${where(key)} ${why}; expected a readable file`);
  }
  // The daemon runs the hook with its own uid and checks the file as that uid would see it.
  for (const key of ['on-acquire', 'on-release']) {
    const path = (values.get(key) as string[] | undefined)?.[0];
    const why = path === undefined ? undefined : hookFileProblem(path, { uid: process.geteuid?.() ?? 0 });
    if (why !== undefined) problems.push(`${key}: ${quote(path!)} from ${where(key)} ${why}`);
  }
  if (values.get('manager-type') === 'hetzner-cloud' && !values.has('hcloud-token') && !values.has('hcloud-token-file')) {
    problems.push(`hcloud-token: missing; manager-type hetzner-cloud needs hcloud-token-file, ${envName('hcloud-token')} or hcloud-token`);
  }
  const resolved = resolveDcsEndpoints(values.get('dcs-type'), values.get('dcs-endpoints'), where('dcs-endpoints'));
  if (resolved.problem !== undefined) problems.push(resolved.problem);
  else if (resolved.endpoints !== undefined) values.set('dcs-endpoints', resolved.endpoints);
  const tls = ['etcd-ca-file', 'etcd-cert-file'].filter((key) => values.has(key));
  const endpoints = (values.get('dcs-endpoints') as string[] | undefined) ?? [];
  if (tls.length > 0 && endpoints.some((e) => e.startsWith('http://'))) {
    warnings.push(`${tls.join(' and ')} set but dcs-endpoints has http:// endpoints, which do not use TLS`);
  }

  const all = [...general, ...byKey.sort((a, b) => a.order - b.order).map((p) => p.text)];
  if (all.length > 0) throw new ConfigError(all);
  const config = Object.fromEntries(KEYS.map((k) => [k.name, values.get(k.name)])) as unknown as Config;
  return { config, sources, warnings, configFile };
}

/** The whole pipeline from argv; throws ConfigError. --help/--version are handled by the caller. */
export function loadConfig(argv: readonly string[], input: LoadInput): LoadedConfig & { cli: CommandLine } {
  const cli = parseCommandLine(argv);
  return { ...loadFromCommandLine(cli, input), cli };
}
