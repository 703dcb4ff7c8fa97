// The manual page vip-manager(1), in roff, generated from the configuration schema and the
// command line that --help prints, so the three cannot drift apart. The packages install it
// gzipped as /usr/share/man/man1/vip-manager.1.gz; test/ops/man-page.test.ts renders it with
// man-db and fails on any groff warning or on a schema key the page does not document.
import { buildCommand } from '../config/flags.js';
import { EXIT_CONFIG } from '../config/errors.js';
import { CLI_ONLY, KEYS, envName, type KeyDef } from '../config/schema.js';
import { VIPS_EXAMPLE_LIST } from '../config/vips.js';
import { buildInfo } from '../version.js';

export interface ManPageOptions {
  /** Shown in the page footer; the build's version unless given. */
  version?: string;
  /** YYYY-MM-DD in the footer; the build's date unless given. */
  date?: string;
}

/**
 * Text for a roff text line: backslashes escaped, every hyphen a real minus (so flags, paths
 * and key names copied from the rendered page work in a shell), and a leading dot or
 * apostrophe neutralised so a sentence can never be read as a request.
 */
function esc(text: string): string {
  const body = text.replace(/\\/g, '\\e').replace(/-/g, '\\-');
  return /^[.']/.test(body) ? `\\&${body}` : body;
}

const bold = (s: string) => `\\fB${esc(s)}\\fR`;
const italic = (s: string) => `\\fI${esc(s)}\\fR`;

/** The option's argument as the command line takes it (commander's placeholder for keys). */
function argument(k: KeyDef): string {
  switch (k.kind) {
    case 'boolean':
      return ` [${italic('true')}|${italic('false')}]`;
    case 'list':
      return ` ${italic('list')}`;
    case 'command':
      return ` ${italic('command')}`;
    case 'enum':
      return ` ${k.values!.map(italic).join('|')}`;
    default:
      return ` ${italic('value')}`;
  }
}

/** The example of issue 14, as in the README. */
const VIPS_EXAMPLE = [
  'dcs-type: etcd',
  'dcs-endpoints: [http://198.51.100.2:2379]',
  'interface: eth0',
  'netmask: 24',
  'trigger-value: pg1',
  ...VIPS_EXAMPLE_LIST,
];
function keyEntry(k: KeyDef): string[] {
  // defaultText is written for the README's default column: "(required; …)", "(none)", "5".
  const inner = /^\((.*)\)$/.exec(k.defaultText)?.[1];
  const required = inner === 'required' ? 'Required.'
    : inner?.startsWith('required') ? `R${inner.slice(1)}.`
    : `Default: ${inner ?? k.defaultText}.`;
  const facts = [
    required,
    k.kind === 'enum' ? `One of: ${k.values!.join(', ')}${k.aliases ? ` (aliases: ${Object.entries(k.aliases).map(([a, v]) => `${a} for ${v}`).join(', ')})` : ''}.` : '',
    k.kind === 'list' ? 'Repeat the flag or separate values with commas.' : '',
    k.secret ? 'A secret: never logged or served, shown as ***** by --check-config.' : '',
    k.scope === 'vip' ? 'Per VIP: may also be set in an entry of vips:.' : '',
  ].filter((s) => s !== '');
  return [
    '.TP',
    `${bold(`--${k.name}`)}${argument(k)}`,
    esc(k.help),
    esc(facts.join(' ')),
    '.br',
    `YAML key ${bold(k.name)}, environment ${bold(envName(k.name))}, example ${italic(k.example)}.`,
    ...(k.legacy?.length ? ['.br', `Old names (still read, with a warning): ${k.legacy.map(bold).join(', ')}.`] : []),
  ];
}

/** --config, --check-config, --version, --help: their words are the ones --help prints. */
function commandLineOnly(): string[] {
  const options = buildCommand().options.filter((o) => (CLI_ONLY as readonly string[]).includes(o.long!.slice(2)));
  return options.flatMap((o) => {
    const arg = /<(\w+)>/.exec(o.flags)?.[1];
    return ['.TP', `${bold(o.long!)}${arg ? ` ${italic(arg)}` : ''}`, esc(o.description)];
  });
}

function section(title: string): string {
  return `.SH ${title}`;
}

function paragraphs(...texts: string[]): string[] {
  return texts.flatMap((t, i) => (i === 0 ? [esc(t)] : ['.PP', esc(t)]));
}

export function renderManPage(opts: ManPageOptions = {}): string {
  const info = buildInfo();
  const version = opts.version ?? info.version;
  const date = opts.date ?? (/^\d{4}-\d\d-\d\d/.exec(info.date)?.[0] ?? '');
  const keysOf = (origin: KeyDef['origin']) => KEYS.filter((k) => k.origin === origin).flatMap(keyEntry);
  const lines = [
    `.\\" Generated from the configuration schema of vip-manager (src/ops/man-page.ts): edit the schema, not this page.`,
    `.TH VIP\\-MANAGER 1 "${esc(date)}" "vip\\-manager ${esc(version)}" "User Commands"`,
    // Key names, paths and URLs must not be hyphenated or spread out: copied, they must work.
    '.nh',
    '.ad l',
    section('NAME'),
    'vip\\-manager \\- keep a virtual IP on the node named by a leader key in etcd, Consul or Patroni',
    section('SYNOPSIS'),
    `${bold('vip-manager')} [${bold('--config')} ${italic('file')}] [${bold('--')}${italic('key')}${bold('=')}${italic('value')} ...]`,
    '.br',
    `${bold('vip-manager --check-config')} [${bold('--config')} ${italic('file')}] [${bold('--')}${italic('key')}${bold('=')}${italic('value')} ...]`,
    '.br',
    `${bold('vip-manager --diagnose')} [${bold('--config')} ${italic('file')}] [${bold('--')}${italic('key')}${bold('=')}${italic('value')} ...]`,
    '.br',
    `${bold('vip-manager')} ${bold('--version')} | ${bold('--help')}`,
    section('DESCRIPTION'),
    ...paragraphs(
      'vip-manager keeps a virtual IP address (VIP) on exactly one machine of a database cluster: the one whose name is the value of a leader key in a distributed configuration store (DCS): etcd, Consul, or the REST API of Patroni. Run beside Patroni on every member, it makes the VIP follow the leader, so clients always reach the primary at one address.',
      'It watches the key (etcd watch, Consul blocking queries; the Patroni REST API is polled every interval milliseconds), adds and removes the address on the interface over netlink and announces it with gratuitous ARP or unsolicited neighbour advertisements (manager-type basic), or moves a Hetzner failover or floating IP through the provider\'s API. While the DCS is unreachable, dcs-loss decides how long a held VIP is kept.',
      'Every setting can be given as a flag, as an environment variable or as a key of the YAML file named by --config; a flag beats the environment, which beats the file. The daemon needs the capabilities CAP_NET_ADMIN and CAP_NET_RAW; the systemd units grant exactly these to the user vip-manager.',
      'With --diagnose, vip-manager reads the same configuration, asks every DCS endpoint once and prints, per VIP, a verdict line (OK or FAIL) and then one line per fact behind it (OK, FAIL, WARN, INFO or SKIP): the leader key and whether it names this node, trigger-value against the member names Patroni lists beside the key, the interface, whether the VIP is on it, other hosts answering ARP or neighbour solicitations for it, the capabilities, each DCS endpoint (and why it failed), and a daemon already answering on http-listen. It changes nothing: it adds or removes no address, writes no key, and sends only one duplicate-address probe per VIP, which no host learns anything from.',
    ),
    section('OPTIONS'),
    ...commandLineOnly(),
    section('CONFIGURATION KEYS'),
    ...paragraphs(`Each key below is a flag (--key=value or --key value), a YAML key, and an environment variable (VIP_ and the key upper-cased, dashes as underscores).`),
    '.SS "Keys of the Go original"',
    ...keysOf('upstream'),
    '.SS "Keys added by this implementation"',
    ...keysOf('new'),
    '.SS "Several VIPs"',
    ...paragraphs(
      'The YAML file (not flags or the environment) may list several VIPs under vips:, each a mapping of the keys marked "Per VIP" above. Every top-level value, from a flag, the environment or the file, is the default of every entry, and an entry\'s own value wins over it. Each entry needs its own ip and name (the name defaults to the ip); process-wide keys (the DCS, the HTTP endpoint, logging) are set at the top level only. Without vips:, the top level is the one VIP. For example:',
    ),
    '.PP',
    '.RS',
    '.nf',
    ...VIPS_EXAMPLE.map(esc),
    '.fi',
    '.RE',
    section('ENVIRONMENT'),
    ...paragraphs(`${envName('config')} names the configuration file like --config. Every configuration key above is also read from its environment variable:`),
    '.PP',
    KEYS.map((k) => bold(envName(k.name))).join(', ') + '.',
    section('FILES'),
    '.TP',
    bold('/etc/default/vip-manager.yml'),
    esc('The configuration of vip-manager.service; the package installs a commented sample (mode 0640, group vip-manager: it may hold secrets).'),
    '.TP',
    `${bold('/etc/default/vip-manager-')}${italic('NAME')}${bold('.yml')}`,
    esc('The configuration of the template unit instance vip-manager@NAME.service, one per further VIP.'),
    '.TP',
    bold('/usr/share/vip-manager/prometheus/vip-manager.rules.yml'),
    esc('Prometheus alerting rules for the metrics below.'),
    '.TP',
    bold('/usr/share/vip-manager/grafana/vip-manager.json'),
    esc('A Grafana dashboard for the same metrics.'),
    section('HTTP ENDPOINT'),
    ...paragraphs('Unless http-enabled is false, vip-manager serves read-only GET requests on http-listen, without authentication: keep it on loopback or a management network.'),
    '.TP', bold('/metrics'), esc('Prometheus metrics (vip_manager_* and the Node.js runtime\'s process_* and nodejs_*).'),
    '.TP', bold('/healthz'), esc('200 while the daemon\'s loops are alive, 503 when they are stuck.'),
    '.TP', bold('/readyz'), esc('503 until the DCS has answered once since start, then 200.'),
    '.TP', bold('/status'), esc('JSON: the leader as last seen, whether this node holds the VIP, the DCS\'s reachability and the last transitions with their causes.'),
    // The table and the reasons: src/daemon/signals.ts.
    section('SIGNALS'),
    '.TP',
    `${bold('SIGTERM')}, ${bold('SIGINT')}, ${bold('SIGQUIT')}`,
    esc('Stop: release a held VIP (unless release-on-stop is false) and exit 0.'),
    '.TP',
    bold('SIGXCPU'),
    esc('The CPU time limit was reached: stop the same way, exit 1.'),
    '.TP',
    bold('SIGHUP'),
    esc('Reload: re-read the configuration and apply what changed, entry by entry; unchanged VIPs are left untouched, an invalid file is refused with one error line and the running configuration continues (systemctl reload sends it).'),
    '.TP',
    `${bold('SIGUSR1')}, ${bold('SIGUSR2')}`,
    esc('Log the status line and keep running. No signal ever opens the Node.js inspector.'),
    '.TP',
    esc('Others'),
    esc('SIGALRM, SIGVTALRM, SIGPROF, SIGTRAP, SIGSYS, SIGXFSZ, SIGPWR, SIGSTKFLT, SIGIO, SIGTSTP, SIGTTIN, SIGTTOU and the real-time signals are ignored; SIGPIPE, SIGCHLD, SIGURG and SIGWINCH keep their harmless defaults. SIGABRT (the systemd watchdog\'s signal) and SIGSEGV, SIGBUS, SIGFPE, SIGILL end the process with a core dump, and SIGKILL ends it at once: the VIP then stays until the next start removes it, or keeps it where the leader key names this node.'),
    section('EXIT STATUS'),
    '.TP', bold('0'), esc('Stopped by a signal (SIGTERM, SIGINT or SIGQUIT), or --check-config, --help or --version succeeded; with --diagnose: every VIP is as the DCS asks.'),
    '.TP', bold('1'), esc('A runtime failure, e.g. a missing capability (checked at start) or an address the HTTP endpoint cannot bind; or stopped by SIGXCPU. With --diagnose: a VIP is not as the DCS asks (or no DCS endpoint answered, another host answers for it, trigger-value looks misspelt, or its interface is unusable).'),
    '.TP', bold(String(EXIT_CONFIG)), esc('A configuration error (EX_CONFIG), including an unreadable credentials, key or certificate file: every problem is printed, one line each. The systemd units do not restart on it.'),
    section('EXAMPLES'),
    ...paragraphs('Check a configuration, then run the service:'),
    '.PP',
    '.RS',
    '.nf',
    esc('vip-manager --check-config --config /etc/default/vip-manager.yml'),
    esc('vip-manager --diagnose --config /etc/default/vip-manager.yml'),
    esc('systemctl enable --now vip-manager'),
    '.fi',
    '.RE',
    '.PP',
    esc('Run in the foreground with flags only:'),
    '.PP',
    '.RS',
    '.nf',
    esc('vip-manager --ip=198.51.100.10 --netmask=24 --interface=eth0 \\'),
    esc('  --trigger-key=/service/pgcluster/leader \\'),
    esc('  --trigger-value=pgcluster_member_1 \\'),
    esc('  --dcs-endpoints=http://192.0.2.11:2379,http://192.0.2.12:2379'),
    '.fi',
    '.RE',
    section('SEE ALSO'),
    `${bold('systemctl')}(1), ${bold('journalctl')}(1), ${bold('capabilities')}(7), ${bold('/usr/share/doc/vip-manager/README.md')}`,
  ];
  return lines.join('\n') + '\n';
}
