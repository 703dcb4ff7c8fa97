// dcs-endpoints without a scheme, as the Go original's clients take them: etcd's Go client dials
// `host:port` with TLS (the original always hands it a TLS config), so such an endpoint is
// https:// here and --check-config shows it; the original's Consul and Patroni clients need a
// URL, so there it is refused with one line naming the key (exit 78 from the binary).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { renderEffectiveConfig } from '../../src/config/render.js';
import { BASE, load, loaded, problems } from './helpers.js';

const BIN = fileURLToPath(new URL('../../../bin/vip-manager.js', import.meta.url));

describe('dcs-endpoints without a scheme', () => {
  test('etcd: host:port and [v6]:port become https:// (TLS, as the original dials them); URLs are kept', () => {
    const l = loaded(load([...BASE, '--dcs-endpoints', '127.0.0.1:2379,[2001:db8::11]:2379,etcd-3.example:2379,http://192.0.2.14:2379']));
    assert.deepEqual(l.config['dcs-endpoints'], ['https://127.0.0.1:2379', 'https://[2001:db8::11]:2379', 'https://etcd-3.example:2379', 'http://192.0.2.14:2379']);
    assert.equal(l.sources.get('dcs-endpoints')?.layer, 'flag');
  });

  test('etcd: the same from the environment and the file (the dcs-type alias etcd3 too)', () => {
    assert.deepEqual(loaded(load(BASE, { VIP_DCS_ENDPOINTS: '192.0.2.11:2379' })).config['dcs-endpoints'], ['https://192.0.2.11:2379']);
    assert.deepEqual(loaded(load(BASE, {}, 'dcs-type: etcd3\ndcs-endpoints:\n  - 192.0.2.11:2379\n  - 192.0.2.12:2379\n')).config['dcs-endpoints'],
      ['https://192.0.2.11:2379', 'https://192.0.2.12:2379']);
  });

  test('--check-config shows the scheme that is used', () => {
    const text = renderEffectiveConfig(loaded(load([...BASE, '--dcs-endpoints', '127.0.0.1:2379'])));
    assert.match(text, /^dcs-endpoints: \[ https:\/\/127\.0\.0\.1:2379 \] # flag \(--dcs-endpoints\)$/m);
  });

  for (const type of ['consul', 'patroni']) {
    test(`${type}: refused with one line naming the key and the value`, () => {
      const p = problems(load([...BASE, '--dcs-type', type, '--dcs-endpoints', 'http://192.0.2.11:8500,127.0.0.1:8500']));
      assert.deepEqual(p, ['dcs-endpoints: "127.0.0.1:8500" from flag --dcs-endpoints is not valid; expected an http:// or https:// URL (only etcd endpoints may omit the scheme)']);
    });
  }

  test('what is neither a URL nor host:port is refused for every dcs-type', () => {
    for (const bad of ['127.0.0.1', 'ftp://192.0.2.1:21', '::1:2379', 'etcd:99999']) {
      const p = problems(load([...BASE, '--dcs-endpoints', bad]));
      assert.equal(p.length, 1, p.join('\n'));
      assert.match(p[0]!, /^dcs-endpoints: .* is not valid; expected an http:\/\/ or https:\/\/ URL \(etcd also takes host:port\)$/);
    }
  });

  test('the binary: --check-config prints https:// for etcd (exit 0); consul is exit 78 with one line', () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VIP_')));
    const ok = spawnSync(process.execPath, [BIN, '--check-config', ...BASE, '--dcs-endpoints', '127.0.0.1:2379'], { encoding: 'utf8', env, timeout: 20_000 });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^dcs-endpoints: \[ https:\/\/127\.0\.0\.1:2379 \]/m);
    const bad = spawnSync(process.execPath, [BIN, '--check-config', ...BASE, '--dcs-type', 'consul', '--dcs-endpoints', '127.0.0.1:8500'], { encoding: 'utf8', env, timeout: 20_000 });
    assert.equal(bad.status, 78);
    const lines = bad.stderr.trim().split('\n').filter((l) => l.includes('dcs-endpoints'));
    assert.equal(lines.length, 1, bad.stderr);
    assert.match(lines[0]!, /dcs-endpoints: "127\.0\.0\.1:8500" .*only etcd endpoints may omit the scheme/);
    assert.ok(!/\(node:\d+\) \w*Warning/.test(ok.stderr + bad.stderr), 'no runtime warning');
  });
});
