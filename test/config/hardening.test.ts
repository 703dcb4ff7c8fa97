// Issue 18, the configuration layer: bounds of every duration and count, addresses that can
// never be a VIP, hostile config files (FIFO, device, huge, aliases, invalid UTF-8), values that
// YAML or Node would silently change, impossible interface names, clipped long values, and
// credentials inside endpoint URLs. Exact lines, through the loader and through the binary.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EXIT_CONFIG } from '../../src/config/errors.js';
import { MAX_CONFIG_BYTES } from '../../src/config/file.js';
import { flagHelp } from './help-text.js';
import { BOUNDS, KEYS } from '../../src/config/schema.js';
import { load, loaded, problems, yamlFile } from './helpers.js';

const BIN = fileURLToPath(new URL('../../../bin/vip-manager.js', import.meta.url));
const MIN = ['--ip', '198.51.100.10', '--netmask', '24', '--interface', 'eth0', '--trigger-key', '/k', '--trigger-value', 'node1'];
const dir = mkdtempSync(join(tmpdir(), 'vmt-hardening-'));

function run(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VIP_')));
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...clean, ...env }, timeout: 30_000 });
}

/** MIN with one flag's value replaced (or added). */
function withFlag(flag: string, value: string): string[] {
  const i = MIN.indexOf(flag);
  return i < 0 ? [...MIN, flag, value] : [...MIN.slice(0, i + 1), value, ...MIN.slice(i + 2)];
}

describe('bounds of every duration and count', () => {
  const cases: Array<[keyof typeof BOUNDS, string]> = [
    ['interval', 'expected a whole number of milliseconds, 1-600000 (10 minutes)'],
    ['retry-after', 'expected a whole number of milliseconds, 1-600000 (10 minutes)'],
    ['retry-num', 'expected a whole number of attempts, 1-100'],
    ['lease-check-interval', 'expected a whole number of milliseconds, 100-600000 (10 minutes)'],
    ['announce-count', 'expected a whole number of rounds, 0-100'],
    ['announce-interval', 'expected a whole number of milliseconds, 1-60000 (1 minute)'],
    ['announce-refresh', 'expected a whole number of milliseconds, 0 (off) or 1000-3600000 (1 hour)'],
    ['hook-timeout', 'expected a whole number of milliseconds, 100-600000 (10 minutes)'],
  ];
  test('every integer key of the schema is bounded here (or is an id, the netmask or max-lag, bounded in vips.test.ts)', () => {
    const integers = KEYS.filter((k) => k.kind === 'integer').map((k) => k.name).sort();
    assert.deepEqual(integers, [...cases.map(([k]) => k), 'hcloud-server-id', 'max-lag', 'netmask'].sort());
  });
  for (const [key, expected] of cases) {
    const { min, max } = BOUNDS[key];
    test(`${key}: ${min} and ${max} pass, ${max + 1}, 2^31 and ${min - 1} are refused with the bound`, () => {
      assert.equal(loaded(load(withFlag(`--${key}`, String(min)))).config[key], min);
      assert.equal(loaded(load([...MIN], { [`VIP_${key.toUpperCase().replace(/-/g, '_')}`]: String(max) })).config[key], max);
      assert.deepEqual(problems(load(withFlag(`--${key}`, String(max + 1)))), [`${key}: ${max + 1} from flag --${key} is not valid; ${expected}`]);
      assert.deepEqual(problems(load(MIN, {}, `${key}: 2147483648\n`)).map((p) => p.replace(/file \S+ line 1/, 'file F line 1')), [`${key}: 2147483648 from file F line 1 is not valid; ${expected}`]);
      if (key !== 'announce-refresh' || min - 1 !== 0) {
        assert.deepEqual(problems(load(withFlag(`--${key}`, String(min - 1)))), [`${key}: ${min - 1} from flag --${key} is not valid; ${expected}`]);
      }
    });
    test(`${key}: the range is in --help`, () => {
      assert.ok(flagHelp(key).includes(expected.replace(/^expected a whole number of \w+, /, '')), flagHelp(key));
    });
  }
  test('announce-refresh 0 still turns it off', () => {
    assert.equal(loaded(load(withFlag('--announce-refresh', '0'))).config['announce-refresh'], 0);
  });
  test('a number beyond 2^53 is refused as written, not as a rounded float', () => {
    assert.deepEqual(problems(load(withFlag('--announce-count', '99999999999999999999'))), ['announce-count: "99999999999999999999" from flag --announce-count is not valid; expected a whole number (this one is far too large)']);
  });
  test('the binary: announce-count 1000000000 is exit 78 with one line', () => {
    const r = run(['--check-config', ...withFlag('--announce-count', '1000000000')]);
    assert.equal(r.status, EXIT_CONFIG);
    assert.equal(r.stderr, 'vip-manager: config error: announce-count: 1000000000 from flag --announce-count is not valid; expected a whole number of rounds, 0-100\n');
  });
});

describe('VIP addresses that cannot be a service address', () => {
  const U = 'expected a unicast address for the service';
  const cases: Array<[string, string, string]> = [
    ['224.0.0.1', '24', `it is a multicast address (224.0.0.0/4); ${U}`],
    ['239.255.255.250', '32', `it is a multicast address (224.0.0.0/4); ${U}`],
    ['255.255.255.255', '32', `it is the limited broadcast address; ${U}`],
    ['127.0.0.1', '8', `it is a loopback address (127.0.0.0/8); ${U}`],
    ['0.0.0.0', '24', `it is the unspecified address 0.0.0.0; ${U}`],
    ['169.254.10.1', '16', `it is a link-local address (169.254.0.0/16), which no other subnet routes to; ${U}`],
    ['ff02::1', '64', `it is a multicast address (ff00::/8); ${U}`],
    ['::1', '128', `it is the loopback address ::1; ${U}`],
    ['::', '64', `it is the unspecified address ::; ${U}`],
    ['fe80::1', '64', `it is a link-local address (fe80::/10), which exists once per link and is not a service address; ${U}`],
    ['fe80::1%eth0', '64', `it has a zone (%eth0), which only link-local addresses take, and a link-local address cannot be a VIP; ${U}`],
    ['::ffff:198.51.100.10', '120', `it is an IPv4-mapped IPv6 address (::ffff:0:0/96), which the kernel does not configure as such; expected the IPv4 address itself`],
  ];
  for (const [ip, mask, why] of cases) {
    test(`${ip}/${mask}`, () => {
      assert.deepEqual(problems(load(withFlag('--netmask', mask).map((a, i, all) => (all[i - 1] === '--ip' ? ip : a)))), [`ip: ${JSON.stringify(ip)} from flag --ip is not valid; ${why}`]);
    });
  }
  test("the subnet's broadcast and network address are refused, with the subnet", () => {
    assert.deepEqual(problems(load(withFlag('--ip', '198.51.100.255'))), [`ip: "198.51.100.255" from flag --ip is not valid with netmask 24 (flag --netmask); it is the broadcast address of 198.51.100.0/24; ${U}`]);
    assert.deepEqual(problems(load(withFlag('--ip', '198.51.100.0'))), [`ip: "198.51.100.0" from flag --ip is not valid with netmask 24 (flag --netmask); it is the network address of 198.51.100.0/24; ${U}`]);
    const noMask = withFlag('--ip', '203.0.113.63').filter((_, i) => i !== 2 && i !== 3);
    assert.deepEqual(problems(load(noMask, { VIP_NETMASK: '26' })), [`ip: "203.0.113.63" from flag --ip is not valid with netmask 26 (env VIP_NETMASK); it is the broadcast address of 203.0.113.0/26; ${U}`]);
  });
  test('/31 and /32 have no broadcast or network address (RFC 3021); ordinary hosts pass', () => {
    for (const [ip, mask] of [['198.51.100.0', '31'], ['198.51.100.1', '31'], ['198.51.100.255', '32'], ['198.51.100.254', '24'], ['198.51.100.1', '24'], ['2001:db8::', '64'], ['2001:db8::ffff', '112']]) {
      const l = loaded(load(withFlag('--netmask', mask!).map((a, i, all) => (all[i - 1] === '--ip' ? ip! : a))));
      assert.equal(l.config.ip, ip);
    }
  });
  test('the binary: fe80::1%eth0 is exit 78 at --check-config and at start, one line, no stack', () => {
    const args = withFlag('--netmask', '64').map((a, i, all) => (all[i - 1] === '--ip' ? 'fe80::1%eth0' : a));
    for (const extra of [['--check-config'], []]) {
      const r = run([...extra, ...args]);
      assert.equal(r.status, EXIT_CONFIG, r.stderr);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1);
      assert.match(r.stderr, /^vip-manager: config error: ip: "fe80::1%eth0" from flag --ip is not valid; it has a zone/);
    }
  });
});

describe('config file input', () => {
  test('a FIFO is refused at once (no hang), naming the file', () => {
    const fifo = join(dir, 'fifo.yml');
    execFileSync('mkfifo', [fifo]);
    const r = run(['--check-config', ...MIN, '--config', fifo]);
    assert.equal(r.status, EXIT_CONFIG);
    assert.equal(r.stderr, `vip-manager: config error: config file ${fifo} is a FIFO, not a regular file; expected a readable YAML file\n`);
  });
  test('/dev/zero is refused at once, naming the file', () => {
    assert.deepEqual(problems(load([...MIN, '--config', '/dev/zero'])), ['config file /dev/zero is a character device, not a regular file; expected a readable YAML file']);
  });
  test(`a file over ${MAX_CONFIG_BYTES} bytes is refused before it is read; exactly ${MAX_CONFIG_BYTES} is read`, () => {
    const big = join(dir, 'big.yml');
    writeFileSync(big, Buffer.alloc(MAX_CONFIG_BYTES + 1, 0x20));
    assert.deepEqual(problems(load([...MIN, '--config', big])), [`config file ${big} is ${MAX_CONFIG_BYTES + 1} bytes; a configuration file may have at most 1048576 bytes (1 MiB); expected a readable YAML file`]);
    const edge = join(dir, 'edge.yml');
    writeFileSync(edge, 'retry-num: 4\n' + '#'.repeat(MAX_CONFIG_BYTES - 14) + '\n');
    assert.equal(loaded(load([...MIN, '--config', edge])).config['retry-num'], 4);
  });
  test('1 MB of distinct keys loads in linear time (the YAML duplicate check was quadratic: 83 s)', () => {
    const lines: string[] = [];
    let size = 0;
    for (let i = 0; size < 1_000_000; i++) {
      const l = `k${i}: v\n`;
      lines.push(l);
      size += l.length;
    }
    const path = yamlFile(lines.join(''));
    const t0 = performance.now();
    const l = loaded(load([...MIN, '--config', path]));
    const ms = performance.now() - t0;
    // Measured 2.5 s of CPU on the 2-core CI machine under load; quadratic took 83 s.
    assert.ok(ms < 30_000, `took ${Math.round(ms)} ms`);
    assert.equal(l.warnings.length, 21, 'unknown keys: 20 named, the rest counted in one line');
    assert.equal(l.warnings[20], `config file ${path}: ${lines.length - 20} more unknown keys are ignored`);
  });
  test('YAML aliases resolve; an alias bomb is refused with the limit', () => {
    const l = loaded(load(MIN.slice(0, 8), {}, 'member: &me pgcluster_member_1\ntrigger-value: *me\nendpoints: &eps [http://198.51.100.1:2379, http://198.51.100.2:2379]\ndcs-endpoints: *eps\n'));
    assert.equal(l.config['trigger-value'], 'pgcluster_member_1');
    assert.deepEqual(l.config['dcs-endpoints'], ['http://198.51.100.1:2379', 'http://198.51.100.2:2379']);
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefghi'.split('').map((c, i) => `${c}: &${c} [${Array(10).fill(`*${'abcdefghi'[i]}`).join(', ')}]`), 'trigger-value: *i', ''].join('\n');
    const p = problems(load(MIN.slice(0, 8), {}, bomb));
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^config file \S+: Excessive alias count indicates a resource exhaustion attack; expected at most 100 alias expansions$/);
  });
  test('several documents: one line without the YAML library\'s advice to programmers, and no false "missing" lines', () => {
    const path = yamlFile('ip: 198.51.100.10\n---\nnetmask: 24\n');
    assert.deepEqual(problems(load(['--config', path])), [`config file ${path} line 2 column 1: YAML syntax error: more than one YAML document (a second "---" line); expected one mapping of keys`]);
  });
  test('a syntax error is not followed by "missing" lines for keys the file gives', () => {
    const path = yamlFile('ip: 198.51.100.10\nnetmask: 24\ninterface: [eth0\ntrigger-key: /k\n');
    const p = problems(load(['--config', path]));
    assert.ok(p.length >= 1 && p.every((l) => l.startsWith(`config file ${path} line `) && l.includes(': YAML syntax error: ')), p.join('\n'));
    assert.ok(!p.some((l) => /missing/.test(l)));
  });
  test('a list as a key is refused with its line; no Node runtime warning reaches stderr', () => {
    const path = yamlFile('retry-num: 4\n? [a]\n: 1\n');
    assert.deepEqual(problems(load(['--config', path])), [`config file ${path} line 2 column 3: a key is a list or mapping; expected "key: value" lines with plain key names`]);
    const r = run(['--check-config', ...MIN, '--config', path]);
    assert.equal(r.status, EXIT_CONFIG);
    assert.equal(r.stderr, `vip-manager: config error: config file ${path} line 2 column 3: a key is a list or mapping; expected "key: value" lines with plain key names\n`);
  });
  test('invalid UTF-8 in the file is refused with its line', () => {
    const path = join(dir, 'latin1.yml');
    writeFileSync(path, Buffer.concat([Buffer.from('netmask: 24\ntrigger-value: "node'), Buffer.from([0xff]), Buffer.from('1"\n')]));
    assert.deepEqual(problems(load([...MIN.slice(0, 8), '--config', path])), [`config file ${path} line 2: not valid UTF-8; expected a UTF-8 text file`]);
  });
});

describe('values', () => {
  test('a plain numeric trigger-value keeps its spelling (0123, 1.10, 1e3, 0x1F)', () => {
    for (const v of ['0123', '1.10', '1e3', '0x1F', '007']) {
      const l = loaded(load(MIN.slice(0, 8), {}, `trigger-value: ${v}\n`));
      assert.equal(l.config['trigger-value'], v);
    }
    const aliased = loaded(load(MIN.slice(0, 8), {}, 'm: &m 0123\ntrigger-value: *m\n'));
    assert.equal(aliased.config['trigger-value'], '0123');
  });
  test('an empty VIP_ETCD_USER with a password set is an error; empty with no password is not', () => {
    assert.deepEqual(problems(load(MIN, { VIP_ETCD_USER: '', VIP_ETCD_PASSWORD: 's3cret-pw' })), ['etcd-user: empty (env VIP_ETCD_USER) but etcd-password is set; expected the user name that goes with the password']);
    assert.equal(loaded(load(MIN, { VIP_ETCD_USER: '' })).config['etcd-user'], '');
  });
  const interfaces: Array<[string, string]> = [
    ['eth/0', 'an interface name cannot contain "/", ":" or whitespace; expected a name such as eth0'],
    ['eth0:1', 'an interface name cannot contain "/", ":" or whitespace; expected a name such as eth0'],
    ['my eth', 'an interface name cannot contain "/", ":" or whitespace; expected a name such as eth0'],
    ['.', 'expected an interface name, not "." or ".."'],
    ['..', 'expected an interface name, not "." or ".."'],
    ['ééééééééé', 'it is 18 bytes long; expected an interface name of at most 15 bytes (IFNAMSIZ - 1)'],
    ['abcdefghijklmnop', 'it is 16 bytes long; expected an interface name of at most 15 bytes (IFNAMSIZ - 1)'],
  ];
  for (const [name, why] of interfaces) {
    test(`interface ${JSON.stringify(name)} is refused`, () => {
      assert.deepEqual(problems(load(withFlag('--interface', name))), [`interface: ${JSON.stringify(name)} from flag --interface is not valid; ${why}`]);
    });
  }
  test('interface names the kernel takes pass (15 bytes, dots, dashes, @-less VLAN names)', () => {
    for (const name of ['abcdefghijklmno', 'eth0.100', 'br-lan', 'enp0s31f6', 'é']) assert.equal(loaded(load(withFlag('--interface', name))).config.interface, name);
  });
  test('a trigger-value that is not valid UTF-8 (arrives as U+FFFD from argv/env) or has a lone surrogate is refused', () => {
    const why = 'it is not valid UTF-8 (it has U+FFFD, the mark of undecodable bytes, or a lone surrogate); expected text';
    assert.deepEqual(problems(load(withFlag('--trigger-value', 'node\uFFFD1'))), [`trigger-value: "node\uFFFD1" from flag --trigger-value is not valid; ${why}`]);
    assert.deepEqual(problems(load(MIN.slice(0, 8), {}, 'trigger-value: "node\\uD8001"\n')).map((p) => p.replace(/file \S+ line 1/, 'F')), [`trigger-value: "node\\ud8001" from F is not valid; ${why}`]);
  });
  test('a trigger-value above 1 KiB (no member or host name is) is refused, so no line that shows it grows without bound', () => {
    assert.equal(loaded(load(withFlag('--trigger-value', 'é'.repeat(512)))).config['trigger-value'], 'é'.repeat(512));
    assert.deepEqual(problems(load(withFlag('--trigger-value', `${'é'.repeat(512)}x`))),
      [`trigger-value: "${'é'.repeat(80)}"…(1025 bytes) from flag --trigger-value is not valid; expected at most 1024 bytes (a member or host name)`]);
  });
  test('the binary: invalid bytes in a flag are refused, exit 78', () => {
    const r = spawnSync(process.execPath, [BIN, '--check-config', ...MIN.slice(0, 8), Buffer.from('--trigger-value=node\xff1', 'latin1') as unknown as string], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, EXIT_CONFIG, r.stderr);
    assert.match(r.stderr, /^vip-manager: config error: trigger-value: "node\uFFFD1" from flag --trigger-value is not valid; it is not valid UTF-8/);
  });
  test('a 120 KB value is clipped to 80 characters plus its size in every error line', () => {
    const huge = 'x'.repeat(120_000);
    const p = problems(load([...withFlag('--ip', huge), '--dcs-type', huge, '--etcd-ca-file', `/nonexistent/${huge}`]));
    assert.deepEqual(p, [
      `ip: "${'x'.repeat(80)}"…(120000 bytes) from flag --ip is not valid; expected an IPv4 or IPv6 address`,
      `dcs-type: "${'x'.repeat(80)}"…(120000 bytes) from flag --dcs-type is not valid; expected one of etcd, consul, patroni`,
      `etcd-ca-file: "/nonexistent/${'x'.repeat(67)}"…(120013 bytes) from flag --etcd-ca-file cannot be read (ENAMETOOLONG); expected a readable file`,
    ]);
    const unknown = loaded(load(MIN, {}, `? ${huge}\n: 1\n`)).warnings;
    assert.match(unknown[0]!, new RegExp(`^file \\S+ line 1: unknown key ${'x'.repeat(80)}…\\(120000 bytes\\) is ignored$`));
  });
});

describe('credentials inside an endpoint URL', () => {
  const why = 'expected no user or password in the URL: put the user in etcd-user and the password in etcd-password or VIP_ETCD_PASSWORD (consul: consul-token)';
  test('refused naming dcs-endpoints, the password masked', () => {
    assert.deepEqual(problems(load([...MIN, '--dcs-endpoints', 'http://127.0.0.1:2379,http://patroni:S3cret@127.0.0.1:2379'])), [
      `dcs-endpoints: ["http://127.0.0.1:2379","http://patroni:*****@127.0.0.1:2379"] (element "http://patroni:*****@127.0.0.1:2379") from flag --dcs-endpoints is not valid; ${why}`,
    ]);
    assert.deepEqual(problems(load(MIN, { VIP_DCS_ENDPOINTS: 'https://patroni@127.0.0.1:2379' })), [
      `dcs-endpoints: ["https://patroni@127.0.0.1:2379"] (element "https://patroni@127.0.0.1:2379") from env VIP_DCS_ENDPOINTS is not valid; ${why}`,
    ]);
  });
  test('the binary: --check-config and the start print neither the password nor the URL with it', () => {
    for (const extra of [['--check-config'], []]) {
      for (const [args, env] of [
        [[...MIN, '--dcs-endpoints', 'http://patroni:S3cret@127.0.0.1:2379'], {}],
        [MIN, { VIP_DCS_ENDPOINTS: 'http://patroni:S3cret@127.0.0.1:2379' }],
        [MIN, { VIP_CONFIG: yamlFile('dcs-endpoints:\n  - http://patroni:S3cret@127.0.0.1:2379\n') }],
        // Conflicting legacy and current names show both values: still masked.
        [MIN, { VIP_CONFIG: yamlFile('dcs-endpoints: http://a:S3cret@127.0.0.1:2379\nendpoints: http://b:S3cret@127.0.0.1:2379\n') }],
      ] as Array<[string[], Record<string, string>]>) {
        const r = run([...extra, ...args], env);
        assert.equal(r.status, EXIT_CONFIG, r.stderr);
        assert.ok(!`${r.stdout}${r.stderr}`.includes('S3cret'), r.stderr);
        assert.match(r.stderr, /config error: dcs-endpoints: .*:\*\*\*\*\*@127\.0\.0\.1:2379/);
      }
    }
  });
});

describe('--help for secret keys', () => {
  for (const k of KEYS.filter((d) => d.secret)) {
    test(`${k.name}: says a flag shows in ps and names the alternatives`, () => {
      const text = flagHelp(k.name);
      assert.ok(text.includes(`A flag --${k.name} shows in \`ps\` to every local user: use `), text);
      assert.ok(text.includes(`VIP_${k.name.toUpperCase().replace(/-/g, '_')} (`), text);
      assert.ok(text.includes('the config file (mode 0640)'), text);
    });
  }
});
