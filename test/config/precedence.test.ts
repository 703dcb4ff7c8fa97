// Precedence flag > env > file > default for every kind of key, the spellings each layer
// accepts, defaults that depend on other keys, and the legacy v1 names.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KEYS, envName } from '../../src/config/schema.js';
import { BASE, HOSTNAME, load, loaded, problems, yamlFile } from './helpers.js';

interface Kind {
  kind: string;
  key: string;
  /** The same setting written for the file, the env and a flag, with distinct values. */
  file: string;
  env: string;
  flag: string;
  expect: { file: unknown; env: unknown; flag: unknown; default: unknown };
}

const KINDS: Kind[] = [
  { kind: 'string', key: 'trigger-value', file: 'from-file', env: 'from-env', flag: 'from-flag', expect: { file: 'from-file', env: 'from-env', flag: 'from-flag', default: HOSTNAME } },
  { kind: 'integer', key: 'retry-num', file: '7', env: '8', flag: '9', expect: { file: 7, env: 8, flag: 9, default: 3 } },
  { kind: 'boolean', key: 'verbose', file: 'true', env: 'false', flag: 'true', expect: { file: true, env: false, flag: true, default: false } },
  { kind: 'list', key: 'dcs-endpoints', file: '[http://f1:2379, http://f2:2379]', env: 'http://e1:2379,http://e2:2379', flag: 'http://c1:2379,http://c2:2379',
    expect: { file: ['http://f1:2379', 'http://f2:2379'], env: ['http://e1:2379', 'http://e2:2379'], flag: ['http://c1:2379', 'http://c2:2379'], default: ['http://127.0.0.1:2379'] } },
  { kind: 'enum', key: 'dcs-loss', file: 'keep', env: 'release', flag: 'hold-lease', expect: { file: 'keep', env: 'release', flag: 'hold-lease', default: 'hold-lease' } },
];

describe('precedence flag > env > file > default', () => {
  for (const k of KINDS) {
    const cases: Array<{ layers: Array<'file' | 'env' | 'flag'>; wins: 'file' | 'env' | 'flag' | 'default' }> = [
      { layers: [], wins: 'default' },
      { layers: ['file'], wins: 'file' },
      { layers: ['env'], wins: 'env' },
      { layers: ['flag'], wins: 'flag' },
      { layers: ['file', 'env'], wins: 'env' },
      { layers: ['file', 'flag'], wins: 'flag' },
      { layers: ['env', 'flag'], wins: 'flag' },
      { layers: ['file', 'env', 'flag'], wins: 'flag' },
    ];
    for (const c of cases) {
      test(`${k.kind} ${k.key}: set in [${c.layers.join(', ')}] → ${c.wins}`, () => {
        const argv = [...BASE, ...(c.layers.includes('flag') ? [`--${k.key}`, k.flag] : [])];
        const env = c.layers.includes('env') ? { [envName(k.key)]: k.env } : {};
        const file = c.layers.includes('file') ? `${k.key}: ${k.file}\n` : undefined;
        const l = loaded(load(argv, env, file));
        assert.deepEqual(l.config[k.key as keyof typeof l.config], k.expect[c.wins]);
        assert.equal(l.sources.get(k.key)!.layer, c.wins);
      });
    }
  }
});

describe('spellings', () => {
  test('--key=value and --key value are the same', () => {
    const a = loaded(load([...BASE, '--retry-after=900'])).config;
    const b = loaded(load([...BASE, '--retry-after', '900'])).config;
    assert.equal(a['retry-after'], 900);
    assert.deepEqual(a, b);
  });

  const booleans: Array<[string[], Record<string, string>, string | undefined, boolean]> = [
    [['--verbose'], {}, undefined, true],
    [['--verbose=true'], {}, undefined, true],
    [['--verbose=false'], {}, undefined, false],
    [['--verbose', 'false'], {}, undefined, false],
    [['--release-on-stop', 'false', '--verbose'], {}, undefined, true],
    [[], { VIP_VERBOSE: 'true' }, undefined, true],
    [[], { VIP_VERBOSE: 'FALSE' }, undefined, false],
    [[], { VIP_VERBOSE: '1' }, undefined, true],
    [[], {}, 'verbose: true\n', true],
    [[], {}, 'verbose: "false"\n', false],
    [['--verbose=false'], { VIP_VERBOSE: 'true' }, 'verbose: true\n', false],
  ];
  for (const [flags, env, file, expected] of booleans) {
    test(`boolean: flags ${JSON.stringify(flags)} env ${JSON.stringify(env)} file ${JSON.stringify(file)} → ${expected}`, () => {
      assert.equal(loaded(load([...BASE, ...flags], env, file)).config.verbose, expected);
    });
  }

  test('bare boolean flag followed by another flag', () => {
    const c = loaded(load(['--verbose', ...BASE])).config;
    assert.equal(c.verbose, true);
    assert.equal(c.ip, '198.51.100.10');
  });

  const lists: Array<[string, string[], Record<string, string>, string | undefined, string[]]> = [
    ['YAML list', [], {}, 'dcs-endpoints:\n  - http://a:2379\n  - http://b:2379\n', ['http://a:2379', 'http://b:2379']],
    ['comma string in the file', [], {}, 'dcs-endpoints: "http://a:2379, http://b:2379"\n', ['http://a:2379', 'http://b:2379']],
    ['single string in the file', [], {}, 'dcs-endpoints: http://a:2379\n', ['http://a:2379']],
    ['comma string in env', [], { VIP_DCS_ENDPOINTS: 'http://a:2379,http://b:2379' }, undefined, ['http://a:2379', 'http://b:2379']],
    ['repeated flag', ['--dcs-endpoints', 'http://a:2379', '--dcs-endpoints=http://b:2379,http://c:2379'], {}, undefined, ['http://a:2379', 'http://b:2379', 'http://c:2379']],
  ];
  for (const [name, flags, env, file, expected] of lists) {
    test(`list: ${name}`, () => {
      assert.deepEqual(loaded(load([...BASE, ...flags], env, file)).config['dcs-endpoints'], expected);
    });
  }

  test('a YAML number where a string is expected is taken as its text', () => {
    assert.equal(loaded(load(BASE, {}, 'trigger-value: 200\n')).config['trigger-value'], '200');
  });

  test('etcd3 is an alias of etcd', () => {
    assert.equal(loaded(load([...BASE, '--dcs-type', 'etcd3'])).config['dcs-type'], 'etcd');
  });

  test('VIP_CONFIG names the file when --config is absent', () => {
    const withFile = load(BASE, {}, 'retry-num: 5\n');
    const path = loaded(withFile).configFile!;
    assert.equal(loaded(load(BASE, { VIP_CONFIG: path })).config['retry-num'], 5);
  });
});

describe('defaults that depend on other keys', () => {
  const endpointDefaults: Array<[string, string]> = [
    ['etcd', 'http://127.0.0.1:2379'],
    ['etcd3', 'http://127.0.0.1:2379'],
    ['consul', 'http://127.0.0.1:8500'],
    ['patroni', 'http://127.0.0.1:8008'],
  ];
  for (const [type, endpoint] of endpointDefaults) {
    test(`dcs-endpoints for dcs-type ${type}`, () => {
      const l = loaded(load([...BASE, '--dcs-type', type]));
      assert.deepEqual(l.config['dcs-endpoints'], [endpoint]);
      assert.equal(l.sources.get('dcs-endpoints')!.layer, 'default');
    });
  }
  test('dcs-type from the file decides the endpoint default', () => {
    assert.deepEqual(loaded(load(BASE, {}, 'dcs-type: consul\n')).config['dcs-endpoints'], ['http://127.0.0.1:8500']);
  });
  test('trigger-value defaults to the hostname', () => {
    assert.equal(loaded(load(BASE)).config['trigger-value'], HOSTNAME);
  });
  test('patroni: trigger-key /leader and trigger-value 200', () => {
    const c = loaded(load(['--ip', '198.51.100.10', '--netmask', '24', '--interface', 'eth0', '--dcs-type', 'patroni'])).config;
    assert.equal(c['trigger-key'], '/leader');
    assert.equal(c['trigger-value'], '200');
  });
  test('patroni: an explicit trigger-key wins over its default', () => {
    assert.equal(loaded(load([...BASE, '--dcs-type', 'patroni'])).config['trigger-key'], '/service/pg/leader');
  });
  test('interface is not required for manager-type hetzner', () => {
    const credentials = yamlFile('user="u"\npass="p"\n');
    const c = loaded(load(['--ip', '198.51.100.10', '--netmask', '24', '--trigger-key', '/k', '--manager-type', 'hetzner', '--hetzner-server-ip', '192.0.2.5', '--hetzner-credentials-file', credentials])).config;
    assert.equal(c.interface, undefined);
  });
});

describe('legacy v1 names', () => {
  const samples: Record<string, [string, unknown]> = {
    netmask: ['25', 25], interface: ['eth9', 'eth9'], 'trigger-key': ['/legacy/leader', '/legacy/leader'], 'trigger-value': ['legacy-node', 'legacy-node'],
    'dcs-type': ['consul', 'consul'], 'dcs-endpoints': ['http://legacy:2379', ['http://legacy:2379']], 'manager-type': ['hetzner-cloud', 'hetzner-cloud'],
    'etcd-user': ['legacyuser', 'legacyuser'], 'etcd-password': ['legacypass', 'legacypass'], 'consul-token': ['legacytoken', 'legacytoken'],
    'retry-num': ['6', 6], 'retry-after': ['600', 600],
  };
  // manager-type hetzner-cloud needs a token; give it one so the legacy name is the only subject.
  const extra = ['--hcloud-token', 'x'];
  for (const k of KEYS) {
    for (const old of k.legacy ?? []) {
      const [text, value] = samples[k.name]!;
      const needsUser = k.name === 'etcd-password' ? ['--etcd-user', 'u'] : [];
      test(`file: ${old} → ${k.name}, with a deprecation warning`, () => {
        const l = loaded(load([...BASE.filter((_, i) => !(BASE[i - 1] === `--${k.name}` || BASE[i] === `--${k.name}`)), ...needsUser, ...extra], {}, `${old}: "${text}"\n`));
        assert.deepEqual(l.config[k.name as keyof typeof l.config], value);
        assert.ok(l.warnings.some((w) => w.includes(`${old} is a legacy name; use ${k.name}`)), l.warnings.join('\n'));
      });
      test(`env: ${envName(old)} → ${k.name}`, () => {
        const l = loaded(load([...BASE.filter((_, i) => !(BASE[i - 1] === `--${k.name}` || BASE[i] === `--${k.name}`)), ...needsUser, ...extra], { [envName(old)]: text }));
        assert.deepEqual(l.config[k.name as keyof typeof l.config], value);
        if (envName(old) !== envName(k.name)) assert.ok(l.warnings.some((w) => w.includes(`env ${envName(old)} is a legacy name; use ${envName(k.name)}`)), l.warnings.join('\n'));
      });
      test(`flag: --${old} → ${k.name}`, () => {
        const l = loaded(load([...BASE.filter((_, i) => !(BASE[i - 1] === `--${k.name}` || BASE[i] === `--${k.name}`)), ...needsUser, ...extra, `--${old}`, text]));
        assert.deepEqual(l.config[k.name as keyof typeof l.config], value);
        assert.ok(l.warnings.some((w) => w.includes(`--${old} is a legacy name; use --${k.name}`)));
      });
    }
  }

  test('old and new name with the same value in one file: accepted', () => {
    assert.equal(loaded(load(BASE, {}, 'mask: 24\nnetmask: 24\n')).config.netmask, 24);
  });

  test('old and new name with different values in one file: refused', () => {
    const p = problems(load(BASE.slice(0, 2), {}, 'mask: 24\nnetmask: 25\ninterface: eth0\nkey: /k\n'));
    const path = p[0]!.match(/file (\S+) line/)![1];
    assert.deepEqual(p, [`netmask: conflicting values: 24 from file ${path} line 1 and 25 from file ${path} line 2; expected one value (remove the legacy name mask)`]);
  });

  test('two legacy names with different values in env: refused', () => {
    const p = problems(load(BASE, { VIP_NODENAME: 'a', VIP_HOST: 'b' }));
    assert.deepEqual(p, ['trigger-value: conflicting values: "a" from env VIP_NODENAME and "b" from env VIP_HOST; expected one value (remove the legacy name VIP_NODENAME, VIP_HOST)']);
  });

  test('a legacy name in a lower layer is overridden by the new name in a higher one', () => {
    assert.equal(loaded(load([...BASE, '--netmask', '26'], { VIP_MASK: '22' })).config.netmask, 26);
  });
});
