// --check-config prints the effective configuration as YAML that loads back to the same
// configuration, with each value's source as a trailing comment and secrets masked.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { renderEffectiveConfig } from '../../src/config/render.js';
import { KEYS } from '../../src/config/schema.js';
import { BASE, load, loaded, yamlFile } from './helpers.js';

describe('--check-config output', () => {
  const settings: Array<[string, string[], Record<string, string>, string | undefined]> = [
    ['defaults only', BASE, {}, undefined],
    ['all layers', [...BASE, '--retry-num', '5', '--verbose'], { VIP_DCS_ENDPOINTS: 'http://a:2379,http://b:2379', VIP_ETCD_USER: 'patroni', VIP_ETCD_PASSWORD: 'pw' }, 'dcs-loss: keep\nannounce-count: 0\ntrigger-value: "0042"\n'],
    ['IPv6, consul', ['--ip', '2001:db8::7', '--netmask', '64', '--interface', 'eth0', '--trigger-key', 'service/pg/leader', '--dcs-type', 'consul'], {}, undefined],
    ['patroni', ['--ip', '198.51.100.10', '--netmask', '24', '--interface', 'eth0', '--dcs-type', 'patroni'], {}, undefined],
  ];
  for (const [name, argv, env, file] of settings) {
    test(`round trip: ${name}`, () => {
      const first = loaded(load(argv, env, file));
      const text = renderEffectiveConfig(first);
      const second = loaded(load(['--config', yamlFile(text)], {}));
      const unmask = (c: Record<string, unknown>) => Object.fromEntries(Object.entries(c).map(([k, v]) => [k, KEYS.find((d) => d.name === k)?.secret && v !== undefined ? 'secret' : v]));
      assert.deepEqual(unmask({ ...second.config }), unmask({ ...first.config }));
      for (const [key, origin] of second.sources) assert.equal(origin.layer, 'file', `${key} came back from the file`);
    });
  }

  test('sources as trailing comments, secrets masked, unset keys listed', () => {
    const l = loaded(load([...BASE, '--etcd-user', 'patroni'], { VIP_ETCD_PASSWORD: 'hunter2' }, 'retry-num: 4\n'));
    const text = renderEffectiveConfig(l);
    assert.match(text, /^ip: 198\.51\.100\.10 # flag \(--ip\)$/m);
    assert.match(text, /^etcd-password: "\*\*\*\*\*" # env \(VIP_ETCD_PASSWORD\)$/m);
    assert.match(text, /^retry-num: 4 # file \(\S+ line 1\)$/m);
    assert.match(text, /^retry-after: 250 # default$/m);
    assert.match(text, /^dcs-endpoints: \[ http:\/\/127\.0\.0\.1:2379 \] # default$/m);
    assert.match(text, /^# consul-token: \(not set\)$/m);
    assert.ok(!text.includes('hunter2'));
  });
});
