// Bad input: one exact line per problem, all reported at once, naming the key, the layer, the
// value (never a secret) and what is expected.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BASE, load, loaded, problems, yamlFile } from './helpers.js';

const MIN = ['--ip', '198.51.100.10', '--netmask', '24', '--interface', 'eth0', '--trigger-key', '/k'];

describe('bad input: exact error lines', () => {
  const cases: Array<[string, string[], Record<string, string>, string[]]> = [
    ['all required keys missing', [], {}, [
      'ip: missing; set --ip, VIP_IP or "ip:" in the config file',
      'netmask: missing; set --netmask, VIP_NETMASK or "netmask:" in the config file',
      'interface: missing; set --interface, VIP_INTERFACE or "interface:" in the config file (required for manager-type basic)',
      'trigger-key: missing; set --trigger-key, VIP_TRIGGER_KEY or "trigger-key:" in the config file',
    ]],
    ['an IP that does not parse', ['--ip', '198.51.100.300', ...MIN.slice(2)], {}, ['ip: "198.51.100.300" from flag --ip is not valid; expected an IPv4 or IPv6 address']],
    ['IPv4 netmask 0', [...MIN.slice(0, 2), '--netmask', '0', ...MIN.slice(4)], {}, ['netmask: 0 from flag --netmask is out of range; expected 1-32 for the IPv4 address 198.51.100.10']],
    ['IPv4 netmask 33', [...MIN.slice(0, 2), ...MIN.slice(4)], { VIP_NETMASK: '33' }, ['netmask: 33 from env VIP_NETMASK is out of range; expected 1-32 for the IPv4 address 198.51.100.10']],
    ['IPv6 netmask 129', ['--ip', '2001:db8::10', '--netmask', '129', ...MIN.slice(4)], {}, ['netmask: 129 from flag --netmask is out of range; expected 1-128 for the IPv6 address 2001:db8::10']],
    ['IPv6 netmask 64 is fine but negative is not', ['--ip', '2001:db8::10', '--netmask', '-64', ...MIN.slice(4)], {}, ['netmask: -64 from flag --netmask is out of range; expected 1-128 for the IPv6 address 2001:db8::10']],
    ['unknown dcs-type', [...MIN, '--dcs-type', 'zookeeper'], {}, ['dcs-type: "zookeeper" from flag --dcs-type is not valid; expected one of etcd, consul, patroni']],
    ['unknown manager-type (the original falls back to basic; we refuse)', [...MIN], { VIP_MANAGER_TYPE: 'aws' }, ['manager-type: "aws" from env VIP_MANAGER_TYPE is not valid; expected one of basic, hetzner, hetzner-cloud']],
    ['endpoint that is not an http(s) URL', [...MIN, '--dcs-endpoints', 'http://ok:2379,ftp://etcd1:2379'], {}, ['dcs-endpoints: ["http://ok:2379","ftp://etcd1:2379"] (element "ftp://etcd1:2379") from flag --dcs-endpoints is not valid; expected an http:// or https:// URL (etcd also takes host:port)']],
    ['non-numeric duration', [...MIN, '--interval', 'soon'], {}, ['interval: "soon" from flag --interval is not valid; expected a whole number']],
    ['zero duration', [...MIN, '--retry-after', '0'], {}, ['retry-after: 0 from flag --retry-after is not valid; expected a whole number of milliseconds, 1-600000 (10 minutes)']],
    ['negative count', [...MIN], { VIP_RETRY_NUM: '-1' }, ['retry-num: -1 from env VIP_RETRY_NUM is not valid; expected a whole number of attempts, 1-100']],
    ['fractional count', [...MIN, '--retry-num', '1.5'], {}, ['retry-num: "1.5" from flag --retry-num is not valid; expected a whole number']],
    ['password without user (value never shown)', [...MIN, '--etcd-password', 's3cret-pw'], {}, ['etcd-password: set (flag --etcd-password) but etcd-user is not; expected etcd-user as well']],
    ['cert without key', [...MIN, '--etcd-cert-file', '/dev/null'], {}, [
      'etcd-cert-file: set (flag --etcd-cert-file) but etcd-key-file is not; expected etcd-key-file as well',
      'etcd-cert-file: "/dev/null" from flag --etcd-cert-file is not a regular file; expected a readable file',
    ]],
    ['TLS file missing', [...MIN, '--etcd-ca-file', '/nonexistent/ca.pem'], {}, ['etcd-ca-file: "/nonexistent/ca.pem" from flag --etcd-ca-file does not exist; expected a readable file']],
    ['unknown flag, with a suggestion', [...MIN, '--netmaks', '24'], {}, ['unknown flag --netmaks (did you mean --netmask?); see --help for the keys']],
    ['several problems at once', ['--ip', 'x', '--netmask', 'y', '--interface', 'eth0', '--trigger-key', '/k', '--dcs-type', 'zk'], {}, [
      'ip: "x" from flag --ip is not valid; expected an IPv4 or IPv6 address',
      'netmask: "y" from flag --netmask is not valid; expected a whole number',
      'dcs-type: "zk" from flag --dcs-type is not valid; expected one of etcd, consul, patroni',
    ]],
  ];
  for (const [name, argv, env, expected] of cases) {
    test(name, () => {
      const p = problems(load(argv, env));
      assert.deepEqual(p, expected);
      for (const line of p) assert.ok(!line.includes('\n'), 'one line per problem');
      assert.ok(!p.join('\n').includes('s3cret-pw'), 'a secret never appears in an error');
    });
  }

  test('a secret with a bad type is shown masked', () => {
    const p = problems(load([...MIN, '--etcd-user', 'u'], {}, 'etcd-password: [s3cret-pw]\n'));
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^etcd-password: \*\*\*\*\* from file \S+ line 1 is not valid; expected a single value, not a list or mapping$/);
  });
});

describe('bad input: the config file', () => {
  test('missing file', () => {
    assert.deepEqual(problems(load([...MIN, '--config', '/nonexistent/vip.yml'])), ['config file /nonexistent/vip.yml does not exist; expected a readable YAML file']);
  });
  test('a directory instead of a file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmt-dir-'));
    assert.deepEqual(problems(load([...MIN, '--config', dir])), [`config file ${dir} is a directory, not a regular file; expected a readable YAML file`]);
  });
  test('YAML syntax error, with line and column', () => {
    const path = yamlFile('ip: 198.51.100.10\nnetmask: [24\ninterface: eth0\n');
    const p = problems(load(['--trigger-key', '/k', '--config', path]));
    assert.equal(p.length >= 1, true);
    assert.match(p[0]!, new RegExp(`^config file ${path} line \\d+ column \\d+: YAML syntax error: .+`));
  });
  test('duplicate keys are refused, naming both lines, and no key is reported missing', () => {
    const path = yamlFile('ip: 198.51.100.10\nip: 198.51.100.11\n');
    assert.deepEqual(problems(load(['--config', path])), [`config file ${path} line 2 column 1: duplicate key ip (first on line 1); expected each key once`]);
  });
  test('top level is not a mapping', () => {
    const path = yamlFile('- ip: 198.51.100.10\n');
    assert.deepEqual(problems(load([...MIN, '--config', path])), [`config file ${path}: the top level is not a mapping; expected "key: value" lines`]);
  });
  test('unknown keys warn with a suggestion and do not fail', () => {
    const l = loaded(load(BASE, {}, 'retry_nmu: 4\ninterfase: eth1\ncompletely-unrelated: 1\n'));
    const path = l.configFile!;
    assert.deepEqual(l.warnings, [
      `file ${path} line 1: unknown key retry_nmu is ignored (did you mean retry_num?)`.replace('retry_num', 'retry-num'),
      `file ${path} line 2: unknown key interfase is ignored (did you mean interface?)`,
      `file ${path} line 3: unknown key completely-unrelated is ignored`,
    ]);
    assert.equal(l.config.interface, 'eth0');
  });
  test('unknown VIP_ variables warn with a suggestion', () => {
    const l = loaded(load(BASE, { VIP_NETMAKS: '24', VIP_SOMETHING_ELSE: 'x' }));
    assert.deepEqual(l.warnings, [
      'env VIP_NETMAKS is not a configuration key and is ignored (did you mean VIP_NETMASK?)',
      'env VIP_SOMETHING_ELSE is not a configuration key and is ignored',
    ]);
  });
  test('an empty file is accepted with a warning', () => {
    const l = loaded(load(BASE, {}, ''));
    assert.match(l.warnings[0]!, /is empty$/);
  });
  test('file errors and key errors are reported together', () => {
    const p = problems(load(['--ip', 'nope', '--config', '/nonexistent.yml']));
    assert.equal(p[0], 'config file /nonexistent.yml does not exist; expected a readable YAML file');
    assert.ok(p.includes('ip: "nope" from flag --ip is not valid; expected an IPv4 or IPv6 address'));
  });
});
