// The executable itself: --help, --version, --check-config and the exit codes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EXIT_CONFIG } from '../../src/config/errors.js';
import { KEYS, envName } from '../../src/config/schema.js';
import { BASE } from './helpers.js';

const BIN = fileURLToPath(new URL('../../../bin/vip-manager.js', import.meta.url));

function run(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VIP_')));
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...clean, ...env }, timeout: 20000 });
}

describe('vip-manager executable', () => {
  test('--help lists every key with its env name and default, exit 0', () => {
    const r = run(['--help']);
    assert.equal(r.status, 0);
    const flat = r.stdout.replace(/\s+/g, ' ');
    for (const k of KEYS) {
      assert.ok(flat.includes(`--${k.name} `), `--${k.name} in --help`);
      assert.ok(flat.includes(`[env ${envName(k.name)}]`), `${envName(k.name)} in --help`);
      assert.ok(flat.includes(k.required === true ? '(required)' : `(default: ${k.defaultText.replace(/\s+/g, ' ')})`), `default of ${k.name} in --help`);
    }
    for (const k of KEYS) for (const old of k.legacy ?? []) assert.ok(!flat.includes(`--${old} `), `legacy --${old} hidden`);
  });

  test('--version prints version, commit and date', () => {
    const r = run(['--version']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^version: \d+\.\d+\.\d+\ncommit: \S+\ndate: \d{4}-\d\d-\d\dT/);
  });

  test('--check-config: valid → effective YAML on stdout, exit 0, no secret', () => {
    const r = run(['--check-config', ...BASE, '--etcd-user', 'u'], { VIP_ETCD_PASSWORD: 'topsecret' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ip: 198\.51\.100\.10 # flag/m);
    assert.ok(!r.stdout.includes('topsecret') && !r.stderr.includes('topsecret'));
  });

  test('invalid configuration → one line per problem on stderr, exit EX_CONFIG (78)', () => {
    const r = run(['--check-config', '--ip', 'bad', '--netmask', '24', '--trigger-key', '/k', '--interface', 'eth0', '--retry-num', '0']);
    assert.equal(r.status, EXIT_CONFIG);
    assert.equal(EXIT_CONFIG, 78);
    assert.deepEqual(r.stderr.trimEnd().split('\n'), [
      'vip-manager: config error: ip: "bad" from flag --ip is not valid; expected an IPv4 or IPv6 address',
      'vip-manager: config error: retry-num: 0 from flag --retry-num is not valid; expected a whole number of attempts, 1-100',
    ]);
    assert.equal(r.stdout, '');
  });

  test('warnings go to stderr and do not fail --check-config', () => {
    const r = run(['--check-config', ...BASE], { VIP_MASK: '24' });
    assert.equal(r.status, 0);
    assert.match(r.stderr, /^vip-manager: config warning: env VIP_MASK is a legacy name; use VIP_NETMASK$/m);
  });
});
