// The command line, parsed with commander: `--key=value` and `--key value` for every key in the
// schema, booleans as bare flags or with true/false, lists repeated or comma-separated, legacy
// v1 names as hidden flags. Commander never exits the process here: errors become problems.
import { Command, CommanderError, Option } from 'commander';
import { KEYS, LEGACY_NAMES, envName, type KeyDef } from './schema.js';
import type { LayerResult, RawEntry } from './raw.js';
import { clip, quote } from './show.js';
import { didYouMean } from './suggest.js';

export interface CommandLine extends LayerResult {
  readonly help: boolean;
  readonly version: boolean;
  readonly checkConfig: boolean;
  /** --diagnose: check this node against the DCS once, print a verdict, change nothing (diagnose/). */
  readonly diagnose: boolean;
  /** --config, when given on the command line. */
  readonly configFile: string | undefined;
  /** --instance: the template unit's instance name (config/instance.ts). */
  readonly instance: string | undefined;
}

function describe(k: KeyDef): string {
  const dflt = k.required === true ? 'required' : `default: ${k.defaultText}`;
  return `${k.help} [env ${envName(k.name)}] (${dflt})`;
}

function optionFor(flag: string, k: KeyDef, hidden: boolean): Option {
  const placeholder = k.kind === 'list' ? '<list>' : k.kind === 'boolean' ? '[bool]' : k.kind === 'command' ? '<command>' : '<value>';
  const o = new Option(`--${flag} ${placeholder}`, hidden ? '' : describe(k));
  if (k.kind === 'list') {
    // Collect every occurrence; each may itself be comma-separated (split later, with the env's).
    o.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
  }
  if (k.kind === 'enum' && !hidden) o.description += ` One of: ${k.values!.join(', ')}.`;
  return hidden ? o.hideHelp() : o;
}

export function buildCommand(): Command {
  const program = new Command('vip-manager')
    .description('Keeps a virtual IP on the node named by a leader key in etcd, Consul or Patroni.')
    .helpOption(false)
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
  program.addOption(new Option('--config <file>', `YAML configuration file [env ${envName('config')}]`));
  program.addOption(new Option('--instance <name>', 'Instance of the unit vip-manager@NAME: read /etc/default/vip-manager-NAME.yml if it exists; /etc/patroni/NAME.vip (Debian\'s pg_createconfig_patroni) is loaded by the unit as environment'));
  program.addOption(new Option('--check-config', 'Validate the configuration, print it with each value\'s source, and exit'));
  program.addOption(new Option('--diagnose', 'Check this node against the DCS once and print a verdict with the facts behind it (leader key, interface, capabilities, VIP, other hosts answering for it, each DCS endpoint, a running daemon); changes nothing. Exits 0 when this node is as the DCS asks, 1 when not, 78 on a configuration error'));
  program.addOption(new Option('--version', 'Print version, commit and build date, and exit'));
  program.addOption(new Option('--help', 'Print this help and exit'));
  for (const k of KEYS) program.addOption(optionFor(k.name, k, false));
  for (const [old, current] of LEGACY_NAMES) program.addOption(optionFor(old, KEYS.find((k) => k.name === current)!, true));
  return program;
}

export function parseCommandLine(argv: readonly string[]): CommandLine {
  const program = buildCommand();
  const problems: string[] = [];
  let parsed: { operands: string[]; unknown: string[] };
  try {
    // parseOptions (not parse) keeps going past unknown flags, so every problem is reported at once.
    parsed = program.parseOptions([...argv]);
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    // e.g. "error: option '--ip <value>' argument missing": one line, without commander's prefix.
    problems.push(e.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim());
    return { entries: [], problems, warnings: [], help: false, version: false, checkConfig: false, diagnose: false, configFile: undefined, instance: undefined };
  }
  const flags = program.options.map((o) => o.long!).filter((f) => !LEGACY_NAMES.has(f.slice(2)));
  for (let i = 0; i < parsed.unknown.length; i++) {
    const arg = parsed.unknown[i]!;
    if (!arg.startsWith('-')) continue; // the value of the unknown flag before it
    const flag = arg.split('=')[0]!;
    problems.push(`unknown flag ${clip(flag)}${didYouMean(flag, flags)}; see --help for the keys`);
  }
  for (const operand of parsed.operands) problems.push(`unexpected argument ${quote(operand)}; every setting is a --key=value flag`);
  const opts = program.opts<Record<string, unknown>>();
  const entries: RawEntry[] = [];
  const warnings: string[] = [];
  for (const option of program.options) {
    const flag = option.long!.slice(2);
    const current = KEYS.some((k) => k.name === flag) ? flag : LEGACY_NAMES.get(flag);
    const value = opts[option.attributeName()];
    if (current === undefined || value === undefined) continue;
    if (current !== flag) warnings.push(`flag --${flag} is a legacy name; use --${current}`);
    entries.push({ key: current, raw: value, origin: { layer: 'flag', name: flag, where: `flag --${flag}` } });
  }
  return {
    entries,
    problems,
    warnings,
    help: opts.help === true,
    version: opts.version === true,
    checkConfig: opts.checkConfig === true,
    diagnose: opts.diagnose === true,
    configFile: typeof opts.config === 'string' ? opts.config : undefined,
    instance: typeof opts.instance === 'string' ? opts.instance : undefined,
  };
}

export function helpText(): string {
  return buildCommand().helpInformation();
}
