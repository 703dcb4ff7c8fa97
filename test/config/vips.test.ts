// Issue 14, the configuration side of several VIPs: a `vips:` list whose entries set per-VIP keys
// over top-level defaults, validated by the same rules as the implicit entry of a file without
// it; every bad entry is one line naming the entry and the key (exit 78 through the binary);
// --check-config shows every entry's values with their sources and loads back to the same.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { EXIT_CONFIG } from '../../src/config/errors.js';
import type { LoadedConfig } from '../../src/config/load.js';
import { MASK, maskedEntry, renderEffectiveConfig } from '../../src/config/render.js';
import { KEYS, PROCESS_KEYS, VIP_KEYS } from '../../src/config/schema.js';
import { MAX_ENTRY_PROBLEMS, MAX_VIPS } from '../../src/config/vips.js';
import { BASE, HOSTNAME, load, loaded, problems, yamlFile } from './helpers.js';

const BIN = fileURLToPath(new URL('../../../bin/vip-manager.js', import.meta.url));

/** The issue's example, verbatim. */
const EXAMPLE = `dcs-type: etcd
dcs-endpoints: [http://198.51.100.2:2379]
interface: eth0
netmask: 24
trigger-value: pg1
vips:
  - name: primary
    ip: 198.51.100.100
    trigger-key: /service/pg/leader
  - name: billing
    ip: 198.51.100.101
    trigger-key: /service/billing/leader
`;

/** The top of the example, for entries of one's own. */
const TOP = 'dcs-type: etcd\ninterface: eth0\nnetmask: 24\ntrigger-value: pg1\n';

function run(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VIP_')));
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...clean, ...env }, timeout: 20_000 });
}

/** --check-config on a file through the binary: exit status and the error lines without their prefix. */
function check(yaml: string): { status: number | null; path: string; errors: string[]; stdout: string } {
  const path = yamlFile(yaml);
  const r = run(['--check-config', '--config', path]);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('vip-manager: config error: ')).map((l) => l.slice('vip-manager: config error: '.length));
  return { status: r.status, path, errors, stdout: r.stdout };
}

const where = (l: LoadedConfig, entry: number, key: string) => l.vips[entry]!.sources.get(key)?.where.replace(/file \S+ line/, 'file F line');

describe('vips: the issue\'s example', () => {
  test('loads to two entries with the merged values and their sources', () => {
    const l = loaded(load(['--config', yamlFile(EXAMPLE)]));
    assert.equal(l.vips.length, 2);
    const primary = l.vips[0]!;
    const billing = l.vips[1]!;
    assert.deepEqual([primary.name, primary.index, billing.name, billing.index], ['primary', 0, 'billing', 1]);
    const pick = (c: Record<string, unknown>) => Object.fromEntries(['ip', 'netmask', 'interface', 'trigger-key', 'trigger-value', 'dcs-type', 'dcs-endpoints', 'manager-type', 'role'].map((k) => [k, c[k]]));
    assert.deepEqual(pick({ ...primary.config }), {
      ip: '198.51.100.100', netmask: 24, interface: 'eth0', 'trigger-key': '/service/pg/leader', 'trigger-value': 'pg1',
      'dcs-type': 'etcd', 'dcs-endpoints': ['http://198.51.100.2:2379'], 'manager-type': 'basic', role: 'leader',
    });
    assert.deepEqual(pick({ ...billing.config }), { ...pick({ ...primary.config }), ip: '198.51.100.101', 'trigger-key': '/service/billing/leader' });
    assert.deepEqual(
      ['name', 'ip', 'trigger-key', 'netmask', 'interface', 'trigger-value', 'dcs-type', 'role'].map((k) => [k, where(l, 1, k)]),
      [['name', 'file F line 10'], ['ip', 'file F line 11'], ['trigger-key', 'file F line 12'], ['netmask', 'file F line 4'],
        ['interface', 'file F line 3'], ['trigger-value', 'file F line 5'], ['dcs-type', 'file F line 1'], ['role', 'default']],
    );
    // The process-wide view is the first entry's, and process-wide keys read the same in every entry.
    assert.equal(l.config, primary.config);
    assert.equal(l.sources, primary.sources);
    for (const k of PROCESS_KEYS) assert.deepEqual(billing.config[k.name as keyof typeof billing.config], primary.config[k.name as keyof typeof primary.config], k.name);
  });

  test('through the binary: exit 0, the process keys, then each entry with its sources', () => {
    const r = check(EXAMPLE);
    assert.equal(r.status, 0, r.errors.join('\n'));
    const out = r.stdout.replaceAll(r.path, 'F');
    assert.match(out, /^dcs-endpoints: \[ http:\/\/198\.51\.100\.2:2379 \] # file \(F line 2\)$/m);
    assert.match(out, /^vips:\n {2}- name: primary # file \(F line 7\)\n {4}ip: 198\.51\.100\.100 # file \(F line 8\)\n {4}netmask: 24 # file \(F line 4\)\n {4}interface: eth0 # file \(F line 3\)\n {4}trigger-key: \/service\/pg\/leader # file \(F line 9\)\n {4}trigger-value: pg1 # file \(F line 5\)\n/m);
    assert.match(out, /^ {2}- name: billing # file \(F line 10\)\n {4}ip: 198\.51\.100\.101 # file \(F line 11\)$/m);
    assert.match(out, /^ {4}role: leader # default$/m);
    assert.match(out, /^ {4}# on-acquire: \(not set\)$/m);
    // Per-VIP keys only inside the entries; process-wide ones only at the top.
    const parsed = parse(out) as Record<string, unknown> & { vips: Array<Record<string, unknown>> };
    for (const k of Object.keys(parsed)) if (k !== 'vips') assert.equal(KEYS.find((d) => d.name === k)?.scope, 'process', `${k} at the top`);
    for (const e of parsed.vips) for (const k of Object.keys(e)) assert.equal(KEYS.find((d) => d.name === k)?.scope, 'vip', `${k} in an entry`);
  });
});

describe('vips: top-level values from any layer are defaults, an entry\'s own value wins', () => {
  test('flags and VIP_* env set every entry\'s default; the entry\'s own keys beat them', () => {
    const l = loaded(load(['--netmask', '25', '--announce-count', '2'], { VIP_TRIGGER_VALUE: 'pg2' }, `${TOP}vips:\n  - ip: 198.51.100.100\n    trigger-key: /a/leader\n  - ip: 198.51.100.101\n    trigger-key: /b/leader\n    netmask: 26\n    trigger-value: "0123"\n    announce-count: 7\n`));
    assert.deepEqual(l.vips.map((v) => [v.config.netmask, v.config['trigger-value'], v.config['announce-count']]), [[25, 'pg2', 2], [26, '0123', 7]]);
    assert.deepEqual([where(l, 0, 'netmask'), where(l, 0, 'trigger-value'), where(l, 1, 'netmask'), where(l, 1, 'trigger-value')], ['flag --netmask', 'env VIP_TRIGGER_VALUE', 'file F line 10', 'file F line 11']);
  });

  test('name defaults to the entry\'s ip; top-level ip and netmask are not required with vips:', () => {
    const l = loaded(load(['--config', yamlFile(`dcs-type: etcd\ninterface: eth0\nvips:\n  - ip: 198.51.100.100\n    netmask: 24\n    trigger-key: /a/leader\n  - ip: 2001:db8::5\n    netmask: 64\n    trigger-key: /b/leader\n`)]));
    assert.deepEqual(l.vips.map((v) => [v.name, v.config.name, v.sources.get('name')?.layer]), [['198.51.100.100', '198.51.100.100', 'default'], ['2001:db8::5', '2001:db8::5', 'default']]);
    assert.equal(l.config['trigger-value'], HOSTNAME);
  });

  test('a text key in an entry keeps its spelling, a legacy name in an entry warns and works', () => {
    const l = loaded(load(['--config', yamlFile(`${TOP}vips:\n  - ip: 198.51.100.100\n    trigger-key: /a/leader\n    trigger-value: 0123\n    mask: 25\n`)]));
    assert.equal(l.vips[0]!.config['trigger-value'], '0123');
    assert.equal(l.vips[0]!.config.netmask, 25);
    assert.ok(l.warnings.some((w) => /^file \S+ line 9: mask is a legacy name; use netmask$/.test(w)), l.warnings.join('\n'));
  });

  test('entries may be YAML aliases of one anchored mapping', () => {
    const l = loaded(load(['--config', yamlFile(`${TOP}vips:\n  - &a { ip: 198.51.100.100, trigger-key: /a/leader }\n  - { ip: 198.51.100.101, trigger-key: /b/leader, name: b }\n`)]));
    assert.deepEqual(l.vips.map((v) => v.name), ['198.51.100.100', 'b']);
  });

  test('alias expansions inside vips: count against the same limit (no billion laughs)', () => {
    const laughs = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 5 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)];
    const p = problems(load(['--config', yamlFile(`${TOP}${laughs.join('\n')}\nvips:\n  - ip: 198.51.100.100\n    trigger-key: /a/leader\n    on-acquire: *f\n`)]));
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^config file \S+: .*; expected at most 100 alias expansions$/);
  });
});

describe('vips: without it nothing changes', () => {
  test('one implicit entry, index null, named by its ip, holding the whole configuration', () => {
    const l = loaded(load(BASE));
    assert.equal(l.vips.length, 1);
    const [only] = l.vips;
    assert.deepEqual([only!.index, only!.name], [null, '198.51.100.10']);
    assert.equal(only!.config, l.config);
    assert.equal(only!.sources, l.sources);
    assert.deepEqual([l.config.role, l.config.fallback, l.config['max-lag']], ['leader', 'none', undefined]);
    const text = renderEffectiveConfig(l);
    assert.ok(!/^vips:/m.test(text));
    assert.match(text, /^ip: 198\.51\.100\.10 # flag \(--ip\)$/m);
    assert.match(text, /^name: 198\.51\.100\.10 # default$/m);
  });

  test('the new keys work without vips: as flags and env', () => {
    const l = loaded(load([...BASE, '--name', 'main', '--role', 'replica', '--max-lag', '16777216'], { VIP_FALLBACK: 'leader' }));
    assert.deepEqual([l.vips[0]!.name, l.config.role, l.config['max-lag'], l.config.fallback], ['main', 'replica', 16777216, 'leader']);
  });
});

describe('vips: bad input is one line naming the entry and the key, exit 78', () => {
  const E = (text: string) => `vips:\n${text}`;
  const cases: Array<[string, string, (f: string) => string[]]> = [
    ['an unknown key in an entry, with a suggestion (and not also "ip: missing")', E('  - name: primary\n    ipp: 198.51.100.100\n    trigger-key: /a/leader\n'),
      (f) => [`vips[0] (primary): unknown key ipp (file ${f} line 7) (did you mean ip?); expected a per-VIP key such as ip, netmask, trigger-key or name`]],
    ['a process-wide key in an entry', E('  - ip: 198.51.100.100\n    trigger-key: /a/leader\n    dcs-endpoints: http://198.51.100.2:2379\n'),
      (f) => [`vips[0] (198.51.100.100): dcs-endpoints: a process-wide key (file ${f} line 8); set it at the top level, where it holds for every entry`]],
    ['a required key missing in the entry and at the top level', E('  - name: primary\n    ip: 198.51.100.100\n    trigger-key: /a/leader\n  - name: billing\n    trigger-key: /b/leader\n'),
      () => ['vips[1] (billing): ip: missing; set "ip:" in this entry or at the top level']],
    ['interface missing (required for basic)', 'dcs-type: etcd\nnetmask: 24\nvips:\n  - ip: 198.51.100.100\n    trigger-key: /a/leader\n',
      () => ['vips[0] (198.51.100.100): interface: missing; set "interface:" in this entry or at the top level (required for manager-type basic)']],
    ['an invalid value in an entry', E('  - name: billing\n    ip: 198.51.100.300\n    trigger-key: /a/leader\n'),
      (f) => [`vips[0] (billing): ip: "198.51.100.300" from file ${f} line 7 is not valid; expected an IPv4 or IPv6 address`]],
    ['two entries with the same ip, spelt differently', E('  - ip: 2001:db8::1\n    netmask: 64\n    trigger-key: /a/leader\n  - name: b\n    ip: 2001:DB8:0::1\n    netmask: 64\n    trigger-key: /b/leader\n'),
      (f) => [`vips[1] (b): ip: "2001:DB8:0::1" from file ${f} line 10 is also the ip of vips[0] (2001:db8::1); expected a different address in each entry`]],
    ['two entries with the same name', E('  - name: pg\n    ip: 198.51.100.100\n    trigger-key: /a/leader\n  - name: pg\n    ip: 198.51.100.101\n    trigger-key: /b/leader\n'),
      (f) => [`vips[1] (pg): name: "pg" from file ${f} line 9 is also the name of vips[0] (pg); expected a different name in each entry`]],
    ['a name that is no label', E('  - name: pg billing\n    ip: 198.51.100.100\n    trigger-key: /a/leader\n'),
      (f) => [`vips[0] (198.51.100.100): name: "pg billing" from file ${f} line 6 is not valid; expected a name of 1-63 characters: letters, digits, ".", "_", ":" and "-"`]],
    ['vips: not a list', E('  ip: 198.51.100.100\n'),
      (f) => [`vips: a mapping (file ${f} line 5); expected a list of entries ("- ip: ..." lines, one mapping per VIP)`]],
    ['an empty list', 'interface: eth0\nvips: []\n',
      (f) => [`vips: an empty list (file ${f} line 2); expected at least one entry, or no vips: key for one VIP set at the top level`]],
    ['an entry that is not a mapping', E('  - 198.51.100.100\n  - ip: 198.51.100.101\n    trigger-key: /b/leader\n'),
      (f) => [`vips[0]: the text "198.51.100.100" (file ${f} line 6); expected a mapping of per-VIP keys ("ip: ...", "trigger-key: ...")`]],
    ['a key twice in one entry, both lines named', E('  - ip: 198.51.100.100\n    trigger-key: /a/leader\n    ip: 198.51.100.101\n'),
      (f) => [`vips[0] (198.51.100.101): duplicate key ip (file ${f} line 8 column 5, first on line 6); expected each key once in an entry`]],
    ['a key that is a mapping', E('  - ip: 198.51.100.100\n    ? { a: 1 }\n    : x\n'),
      (f) => [`vips[0] (198.51.100.100): a key is a list or mapping (file ${f} line 7 column 7); expected "key: value" lines with plain key names`]],
    ['netmask against the entry\'s address family', E('  - ip: 198.51.100.100\n    netmask: 64\n    trigger-key: /a/leader\n'),
      (f) => [`vips[0] (198.51.100.100): netmask: 64 from file ${f} line 7 is out of range; expected 1-32 for the IPv4 address 198.51.100.100`]],
    ['the broadcast address of the inherited netmask', E('  - ip: 198.51.100.255\n    trigger-key: /a/leader\n'),
      (f) => [`vips[0] (198.51.100.255): ip: "198.51.100.255" from file ${f} line 6 is not valid with netmask 24 (file ${f} line 3); it is the broadcast address of 198.51.100.0/24; expected a unicast address for the service`]],
    ['hetzner-cloud in an entry without a token', E('  - ip: 198.51.100.100\n    trigger-key: /a/leader\n    manager-type: hetzner-cloud\n'),
      () => ['vips[0] (198.51.100.100): hcloud-token: missing; manager-type hetzner-cloud needs hcloud-token-file, VIP_HCLOUD_TOKEN or hcloud-token']],
    ['an unreadable file of an entry', E('  - ip: 198.51.100.100\n    trigger-key: /a/leader\n    manager-type: hetzner-cloud\n    hcloud-token-file: /nonexistent/token\n'),
      (f) => [`vips[0] (198.51.100.100): hcloud-token-file: "/nonexistent/token" from file ${f} line 9 does not exist; expected a readable file`]],
    ['a hook that does not exist', E('  - ip: 198.51.100.100\n    trigger-key: /a/leader\n    on-acquire: [/nonexistent/hook, "010"]\n'),
      (f) => [`vips[0] (198.51.100.100): on-acquire: "/nonexistent/hook" from file ${f} line 8 does not exist`]],
    ['role replica with dcs-type patroni', 'dcs-type: patroni\ninterface: eth0\nnetmask: 24\nvips:\n  - ip: 198.51.100.100\n    role: replica\n',
      (f) => [`vips[0] (198.51.100.100): role: replica (file ${f} line 6) needs dcs-type etcd or consul, where Patroni's member keys are; dcs-type is patroni (file ${f} line 1)`]],
    ['role sync-standby on a key that is not Patroni\'s leader key', E('  - ip: 198.51.100.100\n    trigger-key: /service/pg/primary\n    role: sync-standby\n'),
      (f) => [`vips[0] (198.51.100.100): trigger-key: "/service/pg/primary" from file ${f} line 7 is not Patroni's leader key; role sync-standby reads Patroni's other keys beside it (members/, sync): expected <namespace>/<scope>/leader, e.g. /service/pgcluster/leader`]],
    ['max-lag with role sync-standby', E('  - ip: 198.51.100.100\n    trigger-key: /a/leader\n    role: sync-standby\n    max-lag: 1024\n'),
      (f) => [`vips[0] (198.51.100.100): max-lag: set (file ${f} line 9) but role is sync-standby (file ${f} line 8); expected max-lag only with role replica, the one that reads replication lag`]],
    ['fallback with role leader', E('  - ip: 198.51.100.100\n    trigger-key: /a/leader\n    fallback: leader\n'),
      (f) => [`vips[0] (198.51.100.100): fallback: leader (file ${f} line 8) but role is leader (default); expected fallback only with role replica or sync-standby`]],
    ['max-lag 0', E('  - ip: 198.51.100.100\n    trigger-key: /a/leader\n    role: replica\n    max-lag: 0\n'),
      (f) => [`vips[0] (198.51.100.100): max-lag: 0 from file ${f} line 9 is not valid; expected a whole number of bytes, 1-9007199254740991 (2^53-1)`]],
    ['max-lag beyond 2^53-1', E('  - ip: 198.51.100.100\n    trigger-key: /a/leader\n    role: replica\n    max-lag: 9007199254740992\n'),
      (f) => [`vips[0] (198.51.100.100): max-lag: 9007199254740992 from file ${f} line 9 is not valid; expected a whole number (this one is far too large)`]],
    ['an invalid top-level value all entries inherit: once, as without vips:', `announce-count: 1000\n${E('  - ip: 198.51.100.100\n    trigger-key: /a/leader\n  - ip: 198.51.100.101\n    trigger-key: /b/leader\n')}`,
      (f) => [`announce-count: 1000 from file ${f} line 5 is not valid; expected a whole number of rounds, 0-100`]],
    ['a top-level role rule all entries break: once', `role: replica\ntrigger-key: /service/pg/primary\n${E('  - ip: 198.51.100.100\n  - ip: 198.51.100.101\n')}`,
      (f) => [`trigger-key: "/service/pg/primary" from file ${f} line 6 is not Patroni's leader key; role replica reads Patroni's other keys beside it (members/, sync): expected <namespace>/<scope>/leader, e.g. /service/pgcluster/leader`]],
    [`more than ${MAX_VIPS} entries`, E(Array.from({ length: MAX_VIPS + 1 }, (_, i) => `  - { ip: 198.51.${100 + Math.floor(i / 200)}.${1 + (i % 200)}, trigger-key: /k${i}/leader }\n`).join('')),
      (f) => [`vips: ${MAX_VIPS + 1} entries (file ${f} line 5); expected at most ${MAX_VIPS}`]],
  ];
  for (const [name, body, expected] of cases) {
    test(name, () => {
      const yaml = body.startsWith('dcs-type') || body.startsWith('interface') ? body : `${TOP}${body}`;
      const r = check(yaml);
      assert.deepEqual(r.errors, expected(r.path));
      assert.equal(r.status, EXIT_CONFIG);
      assert.equal(r.stdout, '');
    });
  }

  test('all problems of all entries at once, each entry\'s in key order', () => {
    const r = check(`${TOP}vips:\n  - name: a\n    ip: 198.51.100.100\n    trigger-key: /a/leader\n    hook-timeout: 1\n    netmaks: 24\n  - name: a\n    ip: 198.51.100.100\n    trigger-key: /b/leader\n`);
    assert.deepEqual(r.errors, [
      `vips[0] (a): unknown key netmaks (file ${r.path} line 10) (did you mean netmask?); expected a per-VIP key such as ip, netmask, trigger-key or name`,
      `vips[0] (a): hook-timeout: 1 from file ${r.path} line 9 is not valid; expected a whole number of milliseconds, 100-600000 (10 minutes)`,
      `vips[1] (a): ip: "198.51.100.100" from file ${r.path} line 12 is also the ip of vips[0] (a); expected a different address in each entry`,
      `vips[1] (a): name: "a" from file ${r.path} line 11 is also the name of vips[0] (a); expected a different name in each entry`,
    ]);
    assert.equal(r.status, EXIT_CONFIG);
  });
});

describe('vips: a pasted blob stays bounded', () => {
  test(`at most ${MAX_ENTRY_PROBLEMS} lines about entries, the rest counted in one`, () => {
    const keys = Array.from({ length: 500 }, (_, i) => `    junk${i}: 1\n`).join('');
    const p = problems(load(['--config', yamlFile(`${TOP}vips:\n  - ip: 198.51.100.100\n    trigger-key: /a/leader\n${keys}`)]));
    assert.equal(p.length, MAX_ENTRY_PROBLEMS + 1);
    assert.match(p[0]!, /^vips\[0\] \(198\.51\.100\.100\): unknown key junk0 \(file \S+ line 8\); expected a per-VIP key/);
    assert.equal(p.at(-1), `vips: ${500 - MAX_ENTRY_PROBLEMS} more problems in entries are not shown`);
  });
});

describe('vips: role rules accept what they should', () => {
  test('replica with max-lag and fallback, sync-standby (alias sync_standby) on consul', () => {
    const l = loaded(load(['--config', yamlFile(`${TOP}vips:\n  - name: rw\n    ip: 198.51.100.100\n    trigger-key: /service/pg/leader\n  - name: ro\n    ip: 198.51.100.101\n    trigger-key: /service/pg/leader\n    role: replica\n    max-lag: 16777216\n    fallback: leader\n  - name: sync\n    ip: 198.51.100.102\n    trigger-key: /service/pg/leader\n    role: sync_standby\n`)]));
    assert.deepEqual(l.vips.map((v) => [v.name, v.config.role, v.config.fallback, v.config['max-lag']]), [['rw', 'leader', 'none', undefined], ['ro', 'replica', 'leader', 16777216], ['sync', 'sync-standby', 'none', undefined]]);
    const c = loaded(load(['--config', yamlFile(`dcs-type: consul\ninterface: eth0\nnetmask: 24\nvips:\n  - ip: 198.51.100.100\n    trigger-key: service/pg/leader\n    role: sync-standby\n    fallback: leader\n`)]));
    assert.equal(c.vips[0]!.config.role, 'sync-standby');
  });

  test('max-lag 2^53-1 is the largest accepted', () => {
    const l = loaded(load([...BASE, '--role', 'replica', '--max-lag', String(Number.MAX_SAFE_INTEGER)]));
    assert.equal(l.config['max-lag'], Number.MAX_SAFE_INTEGER);
  });
});

describe('vips: --check-config round trip and secrets', () => {
  const unmask = (c: Record<string, unknown>) => Object.fromEntries(Object.entries(c).map(([k, v]) => [k, KEYS.find((d) => d.name === k)?.secret && v !== undefined ? 'secret' : v]));

  const settings: Array<[string, string[], Record<string, string>, string]> = [
    ['the issue\'s example', [], {}, EXAMPLE],
    ['flags, env, secrets, roles, hooks as lists, text values', ['--announce-count', '3', '--etcd-user', 'u'], { VIP_ETCD_PASSWORD: 'hunter2', VIP_TRIGGER_VALUE: '0042' },
      `${TOP}hcloud-token: s3cr3t-top\nvips:\n  - name: rw\n    ip: 198.51.100.100\n    trigger-key: /service/pg/leader\n  - name: ro\n    ip: 2001:db8::7\n    netmask: 64\n    trigger-key: /service/pg/leader\n    role: replica\n    max-lag: 1048576\n    fallback: leader\n    trigger-value: 007\n  - name: cloud\n    ip: 198.51.100.102\n    trigger-key: /service/other/leader\n    manager-type: hetzner-cloud\n    hcloud-token: s3cr3t-entry\n    hcloud-server-id: 42\n`],
  ];
  for (const [name, argv, env, file] of settings) {
    test(`round trip: ${name}`, () => {
      const first = loaded(load(argv, env, file));
      const text = renderEffectiveConfig(first);
      assert.ok(!text.includes('hunter2') && !text.includes('s3cr3t'), 'no secret in --check-config');
      const second = loaded(load(['--config', yamlFile(text)], {}));
      assert.equal(second.vips.length, first.vips.length);
      first.vips.forEach((e, i) => {
        const again = second.vips[i]!;
        assert.deepEqual([again.name, again.index], [e.name, e.index]);
        assert.deepEqual(unmask({ ...again.config }), unmask({ ...e.config }), `entry ${i}`);
        for (const [key, origin] of again.sources) assert.equal(origin.layer, 'file', `${key} of entry ${i} came back from the file`);
      });
    });
  }

  test('maskedEntry: one entry\'s per-VIP keys, name first, secrets masked', () => {
    const l = loaded(load(['--config', yamlFile(`${TOP}vips:\n  - name: cloud\n    ip: 198.51.100.102\n    trigger-key: /a/leader\n    manager-type: hetzner-cloud\n    hcloud-token: s3cr3t\n`)]));
    const m = maskedEntry(l.vips[0]!);
    assert.equal(Object.keys(m)[0], 'name');
    assert.equal(m['hcloud-token'], MASK);
    for (const k of Object.keys(m)) assert.ok(VIP_KEYS.some((d) => d.name === k), k);
    assert.ok(!JSON.stringify(m).includes('s3cr3t'));
  });
});
