// `--instance NAME`, as the template unit vip-manager@NAME runs it: our YAML file, Debian's
// /etc/patroni/NAME.vip (which systemd loads as environment: here the test passes that
// environment itself), both, or neither. Paths are redirected into a temporary directory.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/errors.js';
import { parseCommandLine } from '../../src/config/flags.js';
import { instancePaths } from '../../src/config/instance.js';
import { loadFromCommandLine, type LoadedConfig } from '../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'vmt-instance-'));
const paths = (name: string) => ({ yaml: join(dir, `vip-manager-${name}.yml`), vip: join(dir, `${name}.vip`) });

/** What Debian's pg_createconfig_patroni --vip writes (vip.in with its placeholders filled), as systemd hands it over. */
const VIP_ENV = {
  VIP_IP: '203.0.113.100', VIP_MASK: '24', VIP_NETMASK: '24', VIP_IFACE: 'eth0',
  VIP_KEY: '/postgresql-common/15-main/leader', VIP_TRIGGER_KEY: '/postgresql-common/15-main/leader',
  VIP_HOST: 'pg1', VIP_TRIGGER_VALUE: 'pg1', VIP_TYPE: 'etcd',
  VIP_DCS_ENDPOINTS: 'http://127.0.0.1:2379', VIP_ENDPOINT: 'http://127.0.0.1:2379',
};

function load(argv: string[], env: Record<string, string> = {}): LoadedConfig | readonly string[] {
  try {
    return loadFromCommandLine(parseCommandLine(argv), { env, hostname: 'host', instancePaths: paths });
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
}

function ok(r: LoadedConfig | readonly string[]): LoadedConfig {
  assert.ok(!Array.isArray(r), `expected a valid configuration, got ${JSON.stringify(r)}`);
  return r as LoadedConfig;
}

describe('--instance', () => {
  it('names the real files by default', () => {
    assert.deepEqual(instancePaths('15-main'), { yaml: '/etc/default/vip-manager-15-main.yml', vip: '/etc/patroni/15-main.vip' });
  });

  it('Debian\'s .vip only: the values of its environment, legacy names and their duplicates accepted', () => {
    writeFileSync(paths('15-main').vip, '# written by pg_createconfig_patroni\n');
    const l = ok(load(['--instance=15-main'], VIP_ENV));
    assert.equal(l.configFile, undefined);
    assert.equal(l.config.ip, '203.0.113.100');
    assert.equal(l.config.netmask, 24);
    assert.equal(l.config.interface, 'eth0');
    assert.equal(l.config['trigger-key'], '/postgresql-common/15-main/leader');
    assert.equal(l.config['trigger-value'], 'pg1');
    assert.deepEqual(l.config['dcs-endpoints'], ['http://127.0.0.1:2379']);
    assert.equal(l.sources.get('ip')?.layer, 'env');
  });

  it('our YAML only: read as --config would be', () => {
    writeFileSync(paths('billing').yaml, 'ip: 198.51.100.20\nnetmask: 24\ninterface: eth1\ntrigger-key: /service/billing/leader\ntrigger-value: db2\n');
    const l = ok(load(['--instance', 'billing']));
    assert.equal(l.configFile, paths('billing').yaml);
    assert.equal(l.config.ip, '198.51.100.20');
    assert.equal(l.sources.get('ip')?.layer, 'file');
    assert.deepEqual(l.warnings, []);
  });

  it('both: the YAML is read, the .vip environment wins key by key, and a warning says so', () => {
    writeFileSync(paths('both').yaml, 'ip: 198.51.100.30\nnetmask: 24\ninterface: eth1\ntrigger-key: /service/both/leader\nverbose: true\n');
    writeFileSync(paths('both').vip, '');
    const l = ok(load(['--instance=both'], VIP_ENV));
    assert.equal(l.config.ip, '203.0.113.100', 'environment beats the file');
    assert.equal(l.config.verbose, true, 'keys only the YAML sets still apply');
    assert.ok(l.warnings.some((w) => w.includes(`both ${paths('both').yaml} and ${paths('both').vip} exist`)), l.warnings.join('\n'));
  });

  it('neither: one line naming both files, exit code path of a config error', () => {
    const p = load(['--instance=missing'], VIP_ENV);
    assert.ok(Array.isArray(p));
    assert.deepEqual(p, [`instance missing: neither ${paths('missing').yaml} nor ${paths('missing').vip} exists; create one of them`]);
  });

  it('refuses a name that is not one path component, and --config beside it', () => {
    for (const name of ['../etc/x', '.', '..', '']) {
      const p = load([`--instance=${name}`]);
      assert.ok(Array.isArray(p) && p.some((l: string) => l.startsWith(`--instance ${JSON.stringify(name)}: expected a unit instance name`)), `${name}: ${JSON.stringify(p)}`);
    }
    const p = load(['--instance=15-main', '--config=/etc/default/vip-manager.yml'], VIP_ENV);
    assert.ok(Array.isArray(p) && p.includes(`--instance and --config cannot be combined: --instance 15-main reads /etc/default/vip-manager-15-main.yml`), JSON.stringify(p));
  });
});
