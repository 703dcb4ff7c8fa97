// The single source of truth for every configuration key: type, default, environment name,
// help text and validation. `--help`, `--check-config`, the loader and the README's
// configuration table are all generated from this table (test/config/readme.test.ts fails
// when the README and this table disagree). New keys are added here and nowhere else.
import { isIP } from 'node:net';
// valibot, not zod: its functions are separate exports, so a bundle carries only the few
// used here (a few KB) where zod 4 brings all of itself (about 750 KB, ~110 ms of start-up).
import * as v from 'valibot';
import { commandProblem } from '../hooks/command.js';
import { dcsEndpoint } from './endpoints.js';
import { vipAddressProblem } from './vip-address.js';

/** 'command': an argument vector, from a YAML list or a string split as systemd's ExecStart= (hooks/command.ts). */
export type KeyKind = 'string' | 'integer' | 'boolean' | 'list' | 'enum' | 'command';

/** What the loader knows while it resolves defaults that depend on other keys. */
export interface DefaultContext {
  get(key: string): unknown;
  hostname: string;
}

export interface KeyDef {
  /** Dashed name: the YAML key and the flag (`--name`). */
  readonly name: string;
  /**
   * 'vip': a property of one VIP, which a `vips:` entry may set (the top-level value is the
   * default of every entry); 'process': one value for the whole daemon, top level only.
   */
  readonly scope: 'process' | 'vip';
  readonly kind: KeyKind;
  /** For kind 'enum': the accepted values (aliases map to canonical ones in `aliases`). */
  readonly values?: readonly string[];
  readonly aliases?: Readonly<Record<string, string>>;
  /** A value, a function of the other keys, or undefined (unset). */
  readonly default?: string | number | boolean | readonly string[] | ((ctx: DefaultContext) => unknown);
  /** How the default reads in --help and in the README. */
  readonly defaultText: string;
  /** Required unless the predicate says otherwise. */
  readonly required?: boolean | ((ctx: DefaultContext) => boolean);
  readonly secret?: boolean;
  /** Where it goes in the README: keys of the Go original first, then ours. */
  readonly origin: 'upstream' | 'new';
  readonly help: string;
  /**
   * Extra validation of the typed value; the message says what is expected. Only a failed
   * validation's message is meant for the user: the type itself is already ensured by coerce.ts.
   */
  readonly check?: v.GenericSchema;
  /** v1.x names still found in the field (YAML keys; `VIP_` + upper-cased for env). */
  readonly legacy?: readonly string[];
  /** Example shown in the README table. */
  readonly example: string;
}

/** `VIP_` + upper-cased name, dashes to underscores (the Go original's viper rule). */
export function envName(key: string): string {
  return 'VIP_' + key.toUpperCase().replace(/[-.]/g, '_');
}

const positiveInt = (unit: string) => {
  const message = `expected a positive whole number of ${unit}`;
  return v.pipe(v.number(), v.safeInteger(message), v.minValue(1, message));
};

/**
 * Bounds of every duration and count. Node clamps a timer above 2^31-1 ms to 1 ms, so an
 * unbounded duration is a fat finger away from flooding the LAN or the DCS, and an unbounded
 * count from unbounded memory. The maxima are far beyond any sensible setting; the minima
 * that are above 1 keep a periodic action from becoming a flood.
 */
export const BOUNDS = {
  interval: { min: 1, max: 600_000 },
  'retry-after': { min: 1, max: 600_000 },
  'retry-num': { min: 1, max: 100 },
  'lease-check-interval': { min: 100, max: 600_000 },
  'announce-count': { min: 0, max: 100 },
  'announce-interval': { min: 1, max: 60_000 },
  'announce-refresh': { min: 1_000, max: 3_600_000 },
  'hook-timeout': { min: 100, max: 600_000 },
} as const satisfies Record<string, { min: number; max: number }>;

function humanMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} hour${ms === 3_600_000 ? '' : 's'}`;
  if (ms % 60_000 === 0) return `${ms / 60_000} minute${ms === 60_000 ? '' : 's'}`;
  return `${ms / 1000} s`;
}

/** The range as said in --help, the README and error lines. */
function rangeText(key: keyof typeof BOUNDS, unit: 'milliseconds' | 'rounds' | 'attempts'): string {
  const { min, max } = BOUNDS[key];
  const off = key === 'announce-refresh' ? '0 (off) or ' : '';
  return `${off}${min}-${max}${unit === 'milliseconds' ? ` (${humanMs(max)})` : ''}`;
}

const bounded = (key: keyof typeof BOUNDS, unit: 'milliseconds' | 'rounds' | 'attempts') => {
  const { min, max } = BOUNDS[key];
  const zeroIsOff = key === 'announce-refresh';
  return v.pipe(
    v.number(),
    v.check((n) => Number.isInteger(n) && ((zeroIsOff && n === 0) || (n >= min && n <= max)), `expected a whole number of ${unit}, ${rangeText(key, unit)}`),
  );
};

/** The kernel's dev_valid_name(): what `ip link` can name an interface. */
function interfaceNameProblem(name: string): string | undefined {
  if (name === '') return 'expected an interface name, not an empty value';
  if (Buffer.byteLength(name) > 15) return `it is ${Buffer.byteLength(name)} bytes long; expected an interface name of at most 15 bytes (IFNAMSIZ - 1)`;
  if (name === '.' || name === '..') return 'expected an interface name, not "." or ".."';
  if (/[/:\s]/.test(name)) return 'an interface name cannot contain "/", ":" or whitespace; expected a name such as eth0';
  return undefined;
}

/**
 * Values from flags and the environment are decoded by Node, which turns invalid UTF-8 into
 * U+FFFD; two different byte strings would then compare equal. A file with invalid UTF-8 is
 * refused when it is read (config/file.ts).
 */
function textProblem(s: string): string | undefined {
  if (s.includes('\uFFFD') || /\p{Cs}/u.test(s)) return 'it is not valid UTF-8 (it has U+FFFD, the mark of undecodable bytes, or a lone surrogate); expected text';
  return undefined;
}

/**
 * The longest trigger-value: a Patroni member name is a PostgreSQL replication slot name (at
 * most 63 bytes) and a host name at most 253; 1 KiB leaves room for any naming scheme while
 * keeping every line that shows the value (logs, --check-config, /status) bounded.
 */
const MAX_TRIGGER_VALUE_BYTES = 1024;

function memberNameProblem(s: string): string | undefined {
  const bytes = Buffer.byteLength(s);
  return bytes > MAX_TRIGGER_VALUE_BYTES ? `expected at most ${MAX_TRIGGER_VALUE_BYTES} bytes (a member or host name)` : undefined;
}

/**
 * A check from a function that returns why a value is refused: the reason is the message, so
 * it is computed once (v.check would need it twice, for the verdict and for the message).
 */
const refusing = <T>(why: (value: T) => string | undefined) =>
  v.rawCheck<T>(({ dataset, addIssue }) => {
    // A raw check runs even after the type failed; there is nothing to judge then.
    if (!dataset.typed) return;
    const problem = why(dataset.value);
    if (problem !== undefined) addIssue({ message: problem });
  });

/** Said in --help and the README for every secret: flags are visible to every local user. */
const secretHelp = (key: string, alternatives: string) =>
  `A flag --${key} shows in \`ps\` to every local user: use ${alternatives} instead.`;

const httpUrl = v.pipe(
  v.string(),
  v.check((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
    } catch {
      return false;
    }
  }, 'expected an http:// or https:// URL'),
);

/** The hosts an API URL may name over plain http: loopback only (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/**
 * Base URL of an API that every request authenticates to (Robot: Basic auth with the webservice
 * password; Cloud: the bearer token): https://, or http:// to this machine only, so the
 * credentials never cross a network in clear. No user or password inside the URL: fetch refuses
 * such URLs, and the credentials have their own keys (and would be shown with the URL).
 */
const credentialUrl = (carries: string) =>
  v.pipe(
    httpUrl,
    refusing<string>((s) => {
      let u: URL;
      try {
        u = new URL(s);
      } catch {
        return undefined; // httpUrl said so already
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined; // likewise
      if (u.username !== '' || u.password !== '') return `expected no user or password in the URL: ${carries} come from their own keys`;
      if (u.protocol !== 'https:' && !isLoopbackHost(u.hostname)) return `expected an https:// URL: ${carries} go with every request and must not cross the network in clear (http:// only to a loopback host: 127.0.0.0/8, ::1, localhost)`;
      return undefined;
    }),
  );

/** A hook's argument vector; the file itself is checked when the configuration is loaded. */
const hookCommand = v.pipe(v.array(v.string()), refusing<string[]>(commandProblem));

/** Said in the help of both hooks. */
const HOOK_HELP = 'an absolute path and arguments, as a YAML list or as one string split at spaces like systemd\'s ExecStart= ("..." or \'...\' around a word with spaces, \\ before a character taken as is). No shell: no $VARIABLES, pipes or redirections (refused). It runs after the change is applied and never delays it: hooks run one at a time, in order, each with at most hook-timeout; stdout and stderr go to the log line by line; exit status and duration are logged and counted. Its environment holds only PATH, LANG, VIP_EVENT, VIP_NAME (the entry\'s name), VIP_IP, VIP_CAUSE and VIP_VALUE (the DCS value, shown bounded as in /status); no secrets, no capabilities. The file must be an executable regular file owned by root or the daemon\'s user, writable by nobody else, in directories writable by nobody else (sticky ones excepted), or the daemon does not start (exit 78).';

/**
 * A VIP's name is a metrics label value, a key of /status and a word in every log line of its
 * entry: short, and made of characters that need no quoting anywhere (an IPv6 address, the
 * default, is one).
 */
const MAX_VIP_NAME_CHARS = 63;
const VIP_NAME_RULE = `1-${MAX_VIP_NAME_CHARS} characters: letters, digits, ".", "_", ":" and "-"`;

function vipNameProblem(s: string): string | undefined {
  if (s.length > MAX_VIP_NAME_CHARS || !/^[A-Za-z0-9._:-]+$/.test(s)) return `expected a name of ${VIP_NAME_RULE}`;
  return undefined;
}

/**
 * max-lag is compared with the difference of two WAL positions. Any whole number up to 2^53-1
 * (8 PiB) is read exactly, and larger ones are not numbers a lag limit could mean, so that is
 * the bound; 0 would let only a replica with no lag at all hold the VIP, which under any write
 * load is none for most of the time.
 */
const MAX_LAG_RANGE = `1-${Number.MAX_SAFE_INTEGER} (2^53-1)`;

const ipAddress = v.pipe(v.string(), v.check((s) => isIP(s) !== 0, 'expected an IPv4 or IPv6 address'));
const vipAddress = v.pipe(ipAddress, refusing(vipAddressProblem));

const DCS_ENDPOINT_DEFAULTS: Record<string, string> = {
  etcd: 'http://127.0.0.1:2379',
  consul: 'http://127.0.0.1:8500',
  patroni: 'http://127.0.0.1:8008',
};

const isPatroni = (ctx: DefaultContext) => ctx.get('dcs-type') === 'patroni';

const TABLE = [
  // ---- The Go original's keys (README table of cybertec-postgresql/vip-manager v5) ----
  {
    name: 'ip', scope: 'vip', kind: 'string', origin: 'upstream', required: true, defaultText: '(required)', example: '198.51.100.10',
    help: 'The virtual IP address (IPv4 or IPv6) to manage: a unicast address. Refused: loopback, multicast, unspecified, limited broadcast, the subnet\'s broadcast and (prefix below 31) network address, link-local (169.254/16, fe80::/10, any %zone) and IPv4-mapped IPv6 (::ffff:a.b.c.d).',
    check: vipAddress,
  },
  {
    name: 'netmask', scope: 'vip', kind: 'integer', origin: 'upstream', required: true, defaultText: '(required)', example: '24',
    legacy: ['mask'],
    // The range depends on the address family, so it is checked with ip in config/load.ts.
    help: 'Prefix length of the subnet the VIP belongs to: 1-32 for IPv4, 1-128 for IPv6.',
  },
  {
    name: 'interface', scope: 'vip', kind: 'string', origin: 'upstream', defaultText: '(required for basic and hetzner-cloud)', example: 'eth0',
    legacy: ['iface'],
    // hetzner-cloud also configures the floating IP on the interface; Robot only routes it.
    required: (ctx) => ctx.get('manager-type') === 'basic' || ctx.get('manager-type') === 'hetzner-cloud',
    help: 'Network interface the VIP is added to and removed from (basic, hetzner-cloud). Waited for if it does not exist yet or is down. A Linux interface name: 1-15 bytes, not "." or "..", no "/", ":" or whitespace.',
    check: v.pipe(v.string(), refusing(interfaceNameProblem)),
  },
  {
    name: 'trigger-key', scope: 'vip', kind: 'string', origin: 'upstream', defaultText: '(required; /leader for dcs-type patroni)', example: '/service/pgcluster/leader',
    legacy: ['key'],
    default: (ctx) => (isPatroni(ctx) ? '/leader' : undefined),
    required: true,
    help: "Key in the DCS to watch: Patroni's <namespace>/<scope>/leader (for dcs-type patroni, the REST API path).",
    check: v.pipe(v.string(), v.minLength(1, 'expected a non-empty key')),
  },
  {
    name: 'trigger-value', scope: 'vip', kind: 'string', origin: 'upstream', defaultText: "the machine's hostname (200 for dcs-type patroni)", example: 'pgcluster_member_1',
    legacy: ['nodename', 'host'],
    default: (ctx) => (isPatroni(ctx) ? '200' : ctx.hostname),
    help: "The VIP is held here while the trigger key's value equals this (Patroni's member name; for dcs-type patroni, the HTTP status code). Compared as text: a plain YAML number keeps its spelling (0123 stays 0123); invalid UTF-8 is refused.",
    check: v.pipe(v.string(), v.minLength(1, 'expected a non-empty value'), refusing((s: string) => textProblem(s) ?? memberNameProblem(s))),
  },
  {
    name: 'manager-type', scope: 'vip', kind: 'enum', origin: 'upstream', values: ['basic', 'hetzner', 'hetzner-cloud'], default: 'basic', defaultText: 'basic', example: 'basic',
    legacy: ['hostingtype', 'hosting_type', 'hosting-type'],
    help: 'How the VIP is moved: basic (address on the interface plus ARP/NA announcements), hetzner (Hetzner Robot failover IP), hetzner-cloud (Hetzner Cloud floating IP).',
  },
  {
    name: 'dcs-type', scope: 'process', kind: 'enum', origin: 'upstream', values: ['etcd', 'consul', 'patroni'], aliases: { etcd3: 'etcd' }, default: 'etcd', defaultText: 'etcd', example: 'etcd',
    legacy: ['type', 'endpoint_type'],
    help: 'Where the trigger key lives: etcd (v3 API; alias etcd3), consul, or patroni (REST API).',
  },
  {
    name: 'dcs-endpoints', scope: 'process', kind: 'list', origin: 'upstream', example: 'http://192.0.2.11:2379,http://192.0.2.12:2379',
    legacy: ['endpoint', 'endpoints'],
    default: (ctx) => [DCS_ENDPOINT_DEFAULTS[String(ctx.get('dcs-type'))] ?? DCS_ENDPOINT_DEFAULTS.etcd],
    defaultText: 'http://127.0.0.1:2379 (etcd), http://127.0.0.1:8500 (consul), http://127.0.0.1:8008 (patroni)',
    help: 'DCS URLs, a YAML list or a comma-separated string; every one is used. etcd also takes host:port, dialled with TLS as by the original.',
    check: v.pipe(v.array(dcsEndpoint), v.minLength(1, 'expected at least one endpoint')),
  },
  {
    name: 'etcd-user', scope: 'process', kind: 'string', origin: 'upstream', defaultText: '(none)', example: 'patroni',
    legacy: ['etcd_user'],
    help: 'User name for etcd authentication.',
  },
  {
    name: 'etcd-password', scope: 'process', kind: 'string', origin: 'upstream', secret: true, defaultText: '(none)', example: 'snakeoil',
    legacy: ['etcd_password'],
    help: `Password for etcd-user (requires etcd-user). ${secretHelp('etcd-password', 'VIP_ETCD_PASSWORD (e.g. in a systemd EnvironmentFile= readable only by root) or the config file (mode 0640)')}`,
  },
  {
    name: 'consul-token', scope: 'process', kind: 'string', origin: 'upstream', secret: true, defaultText: '(none)', example: 'snakeoil',
    legacy: ['consul_token'],
    help: `ACL token sent to Consul as X-Consul-Token. ${secretHelp('consul-token', 'VIP_CONSUL_TOKEN (e.g. in a systemd EnvironmentFile= readable only by root) or the config file (mode 0640)')}`,
  },
  {
    name: 'interval', scope: 'process', kind: 'integer', origin: 'upstream', default: 1000, defaultText: '1000', example: '1000',
    help: `Milliseconds between polls where the DCS cannot be watched (dcs-type patroni); also the blocking-query wait unit for Consul. etcd is watched, never polled. Range: ${rangeText('interval', 'milliseconds')}.`,
    check: bounded('interval', 'milliseconds'),
  },
  {
    name: 'retry-after', scope: 'process', kind: 'integer', origin: 'upstream', default: 250, defaultText: '250', example: '250',
    legacy: ['retry_after'],
    help: `Milliseconds between retries of any outside interaction (DCS calls, kernel requests, cloud APIs): ${rangeText('retry-after', 'milliseconds')}.`,
    check: bounded('retry-after', 'milliseconds'),
  },
  {
    name: 'retry-num', scope: 'process', kind: 'integer', origin: 'upstream', default: 3, defaultText: '3', example: '3',
    legacy: ['retry_num'],
    help: `How many times an outside interaction is retried before it counts as failed: ${rangeText('retry-num', 'attempts')}.`,
    check: bounded('retry-num', 'attempts'),
  },
  {
    name: 'etcd-ca-file', scope: 'process', kind: 'string', origin: 'upstream', defaultText: '(system CAs)', example: '/etc/etcd/ca.cert.pem',
    help: 'CA file that verifies https DCS endpoints: its certificates (the issuing intermediate, the root, or both) are the trust anchors, as in the original. Also used for the patroni REST API, and for consul in addition to the system CAs.',
  },
  {
    name: 'etcd-cert-file', scope: 'process', kind: 'string', origin: 'upstream', defaultText: '(none)', example: '/etc/etcd/client.cert.pem',
    help: 'Client certificate for TLS client authentication (requires etcd-key-file; also used for the patroni REST API).',
  },
  {
    name: 'etcd-key-file', scope: 'process', kind: 'string', origin: 'upstream', defaultText: '(none)', example: '/etc/etcd/client.key.pem',
    help: 'Private key of etcd-cert-file (requires etcd-cert-file).',
  },
  {
    name: 'verbose', scope: 'process', kind: 'boolean', origin: 'upstream', default: false, defaultText: 'false', example: 'true',
    help: 'Log at debug level.',
  },

  // ---- Keys this implementation adds ----
  {
    name: 'name', scope: 'vip', kind: 'string', origin: 'new', defaultText: 'the value of ip', example: 'primary',
    // Only a valid address: an invalid ip is reported once, under ip, not again as a name.
    default: (ctx) => { const ip = ctx.get('ip'); return typeof ip === 'string' && isIP(ip) !== 0 && !ip.includes('%') ? ip : undefined; },
    help: `The VIP's name: the vip label of its metrics, its /status entry and log lines, and VIP_NAME for its hooks; each entry of vips: needs its own. ${VIP_NAME_RULE}.`,
    check: v.pipe(v.string(), refusing(vipNameProblem)),
  },
  {
    name: 'role', scope: 'vip', kind: 'enum', origin: 'new', values: ['leader', 'replica', 'sync-standby'], aliases: { sync_standby: 'sync-standby' }, default: 'leader', defaultText: 'leader', example: 'replica',
    help: "Which member holds the VIP. leader: the one trigger-key names. replica: exactly one running replica, chosen alike on every node from Patroni's members/ keys in the same DCS revision (role replica, state running, no noloadbalance tag, lag within max-lag, first in name order). sync-standby: the synchronous standby in Patroni's sync key (the first in name order if there are several). replica and sync-standby need dcs-type etcd or consul and trigger-key Patroni's <namespace>/<scope>/leader, beside which the other keys are read; trigger-value stays this node's member name.",
  },
  {
    name: 'fallback', scope: 'vip', kind: 'enum', origin: 'new', values: ['none', 'leader'], default: 'none', defaultText: 'none', example: 'leader',
    help: 'Where a role VIP goes while no member qualifies for its role: none (nowhere) or leader (the primary). Only with role replica or sync-standby.',
  },
  {
    name: 'max-lag', scope: 'vip', kind: 'integer', origin: 'new', defaultText: '(no limit)', example: '16777216',
    help: `Bytes of WAL a replica may be behind the leader and still hold a role replica VIP (its position in members/ against the leader's in status or optime/leader); e.g. 16777216 for 16 MiB. Only with role replica. Range: ${MAX_LAG_RANGE}.`,
    check: v.pipe(v.number(), v.check((n) => Number.isSafeInteger(n) && n >= 1, `expected a whole number of bytes, ${MAX_LAG_RANGE}`)),
  },
  {
    name: 'dcs-loss', scope: 'vip', kind: 'enum', origin: 'new', values: ['hold-lease', 'release', 'keep', 'patroni'], default: 'hold-lease', defaultText: 'hold-lease', example: 'hold-lease',
    help: "What to do with a held VIP while the DCS is unreachable: hold-lease keeps it until the leader key's lease could have expired (then as release where the DCS has no lease); release drops it after retry-num attempts retry-after apart; keep holds it until the DCS answers; patroni holds it exactly while the local Patroni REST API (patroni-api-url) answers GET /primary with 200, asked every interval (for Patroni's failsafe_mode, which keeps a primary that lost the DCS running while all members agree).",
  },
  {
    name: 'patroni-api-url', scope: 'process', kind: 'string', origin: 'new', default: 'http://127.0.0.1:8008', defaultText: 'http://127.0.0.1:8008', example: 'https://192.0.2.11:8008',
    help: "Base URL of this node's Patroni REST API, asked GET /primary every interval for dcs-loss patroni (timeout 80 % of interval, at most 1 s). With patroni-api-password: https://, or http:// to a loopback host only (127.0.0.0/8, ::1, localhost).",
    check: v.pipe(httpUrl, v.check((s) => { try { const u = new URL(s); return u.username === '' && u.password === ''; } catch { return true; } }, 'expected no user or password in the URL: they come from patroni-api-user and patroni-api-password')),
  },
  {
    name: 'patroni-api-ca-file', scope: 'process', kind: 'string', origin: 'new', defaultText: '(system CAs)', example: '/etc/patroni/ca.pem',
    help: 'CA file that verifies an https patroni-api-url: its certificates are the only trust anchors.',
  },
  {
    name: 'patroni-api-cert-file', scope: 'process', kind: 'string', origin: 'new', defaultText: '(none)', example: '/etc/patroni/client.pem',
    help: "Client certificate for Patroni's REST API (restapi.verify_client; requires patroni-api-key-file).",
  },
  {
    name: 'patroni-api-key-file', scope: 'process', kind: 'string', origin: 'new', defaultText: '(none)', example: '/etc/patroni/client.key',
    help: 'Private key of patroni-api-cert-file (requires patroni-api-cert-file).',
  },
  {
    name: 'patroni-api-user', scope: 'process', kind: 'string', origin: 'new', defaultText: '(none)', example: 'patroni',
    help: "User for basic authentication to Patroni's REST API (restapi.authentication).",
  },
  {
    name: 'patroni-api-password', scope: 'process', kind: 'string', origin: 'new', secret: true, defaultText: '(none)', example: 'snakeoil',
    help: `Password of patroni-api-user (requires patroni-api-user). ${secretHelp('patroni-api-password', 'VIP_PATRONI_API_PASSWORD (e.g. in a systemd EnvironmentFile= readable only by root) or the config file (mode 0640)')}`,
  },
  {
    name: 'release-on-stop', scope: 'vip', kind: 'boolean', origin: 'new', default: true, defaultText: 'true', example: 'false',
    help: 'Release a held VIP on a stop signal (SIGTERM, SIGINT, SIGQUIT, SIGXCPU). Set false to keep it across a restart (upgrades).',
  },
  {
    name: 'lease-check-interval', scope: 'process', kind: 'integer', origin: 'new', default: 4000, defaultText: '4000', example: '2000',
    help: `Milliseconds between reads of the leader key lease's remaining TTL (etcd), which keep the hold-lease deadline fresh. One cheap read per interval, no raft write (it may go up to a quarter of the interval, at most 0.5 s, sooner to share a wake-up the daemon has anyway): ${rangeText('lease-check-interval', 'milliseconds')}.`,
    check: bounded('lease-check-interval', 'milliseconds'),
  },
  {
    name: 'announce-count', scope: 'vip', kind: 'integer', origin: 'new', default: 5, defaultText: '5', example: '5',
    help: `Announcement rounds (gratuitous ARP request + reply, or unsolicited NA) after taking the VIP: ${rangeText('announce-count', 'rounds')}.`,
    check: bounded('announce-count', 'rounds'),
  },
  {
    name: 'announce-interval', scope: 'vip', kind: 'integer', origin: 'new', default: 200, defaultText: '200', example: '200',
    help: `Milliseconds between announcement rounds: ${rangeText('announce-interval', 'milliseconds')}.`,
    check: bounded('announce-interval', 'milliseconds'),
  },
  {
    name: 'announce-refresh', scope: 'vip', kind: 'integer', origin: 'new', default: 0, defaultText: '0 (off)', example: '60000',
    help: `Milliseconds between repeated announcements while the VIP is held: ${rangeText('announce-refresh', 'milliseconds')}.`,
    check: bounded('announce-refresh', 'milliseconds'),
  },
  {
    name: 'on-acquire', scope: 'vip', kind: 'command', origin: 'new', defaultText: '(none)', example: '/etc/vip-manager/notify acquired',
    help: `Command run after this node acquired the VIP (VIP_EVENT=acquire): ${HOOK_HELP}`,
    check: hookCommand,
  },
  {
    name: 'on-release', scope: 'vip', kind: 'command', origin: 'new', defaultText: '(none)', example: '/etc/vip-manager/notify released',
    help: 'Command run after this node released the VIP (VIP_EVENT=release), also after the release on a stop signal (VIP_CAUSE=shutdown); otherwise as on-acquire.',
    check: hookCommand,
  },
  {
    name: 'hook-timeout', scope: 'vip', kind: 'integer', origin: 'new', default: 10_000, defaultText: '10000', example: '10000',
    help: `Milliseconds a hook may run; then its process group gets SIGTERM, and SIGKILL 1 s later: ${rangeText('hook-timeout', 'milliseconds')}. On a stop, hooks still running or waiting get at most 5 s more.`,
    check: bounded('hook-timeout', 'milliseconds'),
  },
  {
    name: 'log-format', scope: 'process', kind: 'enum', origin: 'new', values: ['text', 'json'], default: 'text', defaultText: 'text', example: 'json',
    help: 'Log lines as readable text (for journald) or as JSON.',
  },
  {
    name: 'http-enabled', scope: 'process', kind: 'boolean', origin: 'new', default: true, defaultText: 'true', example: 'false',
    help: 'Serve /metrics, /healthz, /readyz and /status.',
  },
  {
    name: 'http-listen', scope: 'process', kind: 'string', origin: 'new', default: '127.0.0.1:9466', defaultText: '127.0.0.1:9466', example: '127.0.0.1:9466',
    help: 'Address and port of the HTTP endpoint (host:port, [v6]:port).',
    check: v.pipe(v.string(), v.regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'expected host:port')),
  },
  {
    name: 'hetzner-credentials-file', scope: 'vip', kind: 'string', origin: 'new', default: '/etc/hetzner', defaultText: '/etc/hetzner', example: '/etc/hetzner',
    help: 'Hetzner Robot credentials (user="..." and pass="..." lines); must not be readable by others.',
  },
  {
    name: 'hetzner-server-ip', scope: 'vip', kind: 'string', origin: 'new', defaultText: "the interface's primary address", example: '192.0.2.5',
    help: "This server's main IP, which the failover IP is routed to (manager-type hetzner).",
    check: ipAddress,
  },
  {
    name: 'hetzner-unroute-on-release', scope: 'vip', kind: 'boolean', origin: 'new', default: false, defaultText: 'false', example: 'true',
    help: 'On release, unroute the failover IP (DELETE) instead of leaving it to the next leader.',
  },
  {
    name: 'hetzner-api-url', scope: 'vip', kind: 'string', origin: 'new', default: 'https://robot-ws.your-server.de', defaultText: 'https://robot-ws.your-server.de', example: 'https://robot-ws.your-server.de',
    help: 'Base URL of the Hetzner Robot API: https://, or http:// to a loopback host only (127.0.0.0/8, ::1, localhost), because the webservice password goes with every request.',
    check: credentialUrl('the Robot user and password (hetzner-credentials-file)'),
  },
  {
    name: 'hcloud-token', scope: 'vip', kind: 'string', origin: 'new', secret: true, defaultText: '(none)', example: 'snakeoil',
    help: `Hetzner Cloud API token. ${secretHelp('hcloud-token', 'hcloud-token-file, VIP_HCLOUD_TOKEN (e.g. in a systemd EnvironmentFile= readable only by root) or the config file (mode 0640)')}`,
  },
  {
    name: 'hcloud-token-file', scope: 'vip', kind: 'string', origin: 'new', defaultText: '(none)', example: '/etc/vip-manager/hcloud-token',
    help: 'File holding the Hetzner Cloud API token; must not be readable by others.',
  },
  {
    name: 'hcloud-floating-ip', scope: 'vip', kind: 'string', origin: 'new', defaultText: 'the value of ip', example: '4711',
    help: 'The floating IP, by numeric id or by address.',
  },
  {
    name: 'hcloud-server-id', scope: 'vip', kind: 'integer', origin: 'new', defaultText: 'from the metadata service', example: '42',
    help: "This server's Hetzner Cloud id.",
    check: positiveInt('(server id)'),
  },
  {
    name: 'hcloud-unassign-on-release', scope: 'vip', kind: 'boolean', origin: 'new', default: false, defaultText: 'false', example: 'true',
    help: 'On release, unassign the floating IP instead of leaving it to the next leader.',
  },
  {
    name: 'hcloud-api-url', scope: 'vip', kind: 'string', origin: 'new', default: 'https://api.hetzner.cloud/v1', defaultText: 'https://api.hetzner.cloud/v1', example: 'https://api.hetzner.cloud/v1',
    help: 'Base URL of the Hetzner Cloud API: https://, or http:// to a loopback host only (127.0.0.0/8, ::1, localhost), because the API token goes with every request.',
    check: credentialUrl('the API token (hcloud-token-file or hcloud-token)'),
  },
  {
    name: 'hcloud-metadata-url', scope: 'vip', kind: 'string', origin: 'new', default: 'http://169.254.169.254/hetzner/v1/metadata', defaultText: 'http://169.254.169.254/hetzner/v1/metadata', example: 'http://169.254.169.254/hetzner/v1/metadata',
    help: "Base URL of the Hetzner Cloud metadata service (asked for this server's id when hcloud-server-id is unset).",
    check: httpUrl,
  },
] as const satisfies readonly KeyDef[];

export const KEYS: readonly KeyDef[] = TABLE;


/** The effective configuration, typed. Optional keys are undefined when unset. */
export interface Config {
  ip: string;
  name: string;
  role: 'leader' | 'replica' | 'sync-standby';
  fallback: 'none' | 'leader';
  'max-lag': number | undefined;
  netmask: number;
  interface: string | undefined;
  'trigger-key': string;
  'trigger-value': string;
  'manager-type': 'basic' | 'hetzner' | 'hetzner-cloud';
  'dcs-type': 'etcd' | 'consul' | 'patroni';
  'dcs-endpoints': string[];
  'etcd-user': string | undefined;
  'etcd-password': string | undefined;
  'consul-token': string | undefined;
  interval: number;
  'retry-after': number;
  'retry-num': number;
  'etcd-ca-file': string | undefined;
  'etcd-cert-file': string | undefined;
  'etcd-key-file': string | undefined;
  verbose: boolean;
  'dcs-loss': 'hold-lease' | 'release' | 'keep' | 'patroni';
  'patroni-api-url': string;
  'patroni-api-ca-file': string | undefined;
  'patroni-api-cert-file': string | undefined;
  'patroni-api-key-file': string | undefined;
  'patroni-api-user': string | undefined;
  'patroni-api-password': string | undefined;
  'release-on-stop': boolean;
  'lease-check-interval': number;
  'announce-count': number;
  'announce-interval': number;
  'announce-refresh': number;
  'on-acquire': string[] | undefined;
  'on-release': string[] | undefined;
  'hook-timeout': number;
  'log-format': 'text' | 'json';
  'http-enabled': boolean;
  'http-listen': string;
  'hetzner-credentials-file': string;
  'hetzner-server-ip': string | undefined;
  'hetzner-unroute-on-release': boolean;
  'hetzner-api-url': string;
  'hcloud-token': string | undefined;
  'hcloud-token-file': string | undefined;
  'hcloud-floating-ip': string | undefined;
  'hcloud-server-id': number | undefined;
  'hcloud-unassign-on-release': boolean;
  'hcloud-api-url': string;
  'hcloud-metadata-url': string;
}

/**
 * The Config type is written out for readable types; this fails to compile when it and the
 * table above name different keys, so the table stays the single source of truth.
 */
type KeyName = (typeof TABLE)[number]['name'];
type SameKeys<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const configMatchesSchema: SameKeys<keyof Config, KeyName> = true;
void configMatchesSchema;

export const KEY_BY_NAME: ReadonlyMap<string, KeyDef> = new Map(KEYS.map((k) => [k.name, k]));

/** The keys a `vips:` entry may set, in schema order. */
export const VIP_KEYS: readonly KeyDef[] = KEYS.filter((k) => k.scope === 'vip');
export const PROCESS_KEYS: readonly KeyDef[] = KEYS.filter((k) => k.scope === 'process');

/** Legacy name → current name, for YAML keys and flags. */
export const LEGACY_NAMES: ReadonlyMap<string, string> = new Map(
  KEYS.flatMap((k) => (k.legacy ?? []).map((old) => [old, k.name] as const)),
);

/** Keys only meaningful on the command line (not part of the effective configuration). */
export const CLI_ONLY = ['config', 'check-config', 'diagnose', 'help', 'version'] as const;
