// Credentials never in clear: hetzner-api-url and hcloud-api-url (every request to them carries
// the Robot password or the Cloud token) must be https://, or http:// to a loopback host only.
// Anything else is a configuration error naming the key, one line, exit 78 — from the loader and
// from the executable, whether it was asked to check the configuration or to start.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EXIT_CONFIG } from '../../src/config/errors.js';
import { BASE, load, loaded, problems } from './helpers.js';

const BIN = fileURLToPath(new URL('../../../bin/vip-manager.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'vmt-api-urls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SECRET_PASS = 'Robot-Pa55-in-file';
const creds = join(dir, 'hetzner');
writeFileSync(creds, `user="ws-user"\npass="${SECRET_PASS}"\n`);
chmodSync(creds, 0o600);
const SECRET_TOKEN = 'hcloud-Tok3n-in-file';
const token = join(dir, 'hcloud-token');
writeFileSync(token, `${SECRET_TOKEN}\n`);
chmodSync(token, 0o600);

/** Each key with the flags that make it the manager's own API URL. */
const KEYS = {
  'hetzner-api-url': ['--manager-type', 'hetzner', '--hetzner-credentials-file', creds],
  'hcloud-api-url': ['--manager-type', 'hetzner-cloud', '--hcloud-token-file', token, '--hcloud-server-id', '42'],
} as const;
type Key = keyof typeof KEYS;

const ACCEPTED = [
  'https://robot-ws.your-server.de',
  'https://api.hetzner.cloud/v1',
  'https://203.0.113.1:8443/v1',
  'https://[2001:db8::1]:8443',
  'http://127.0.0.1:8080',
  'http://127.1.2.3:8080/v1', // all of 127.0.0.0/8 is loopback
  'http://127.1/v1', // WHATWG URL spells it 127.0.0.1
  'http://[::1]:8080/v1',
  'http://localhost:8080',
  'http://LocalHost/v1',
];
const REFUSED_CLEAR = [
  'http://robot-ws.your-server.de',
  'http://api.hetzner.cloud/v1',
  'http://203.0.113.1:8080',
  'http://[2001:db8::1]:8080',
  'http://10.0.0.1',
  'http://128.0.0.1', // just outside 127.0.0.0/8
  'http://localhost.example.net', // a name that merely starts with localhost
  'http://169.254.169.254/hetzner/v1', // link-local is not this machine
  'http://0.0.0.0:8080',
];

function env(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VIP_')));
}

describe('API URLs that carry credentials: https://, or http:// to loopback only', () => {
  for (const key of Object.keys(KEYS) as Key[]) {
    test(`${key}: https:// anywhere and http:// to loopback are accepted`, () => {
      for (const url of ACCEPTED) {
        const c = loaded(load([...BASE, ...KEYS[key], `--${key}`, url])).config;
        assert.equal(c[key], url, `${url} kept as given`);
      }
    });

    test(`${key}: http:// to any other host is one problem naming the key and the rule`, () => {
      for (const url of REFUSED_CLEAR) {
        const p = problems(load([...BASE, ...KEYS[key], `--${key}`, url]));
        assert.equal(p.length, 1, `${url}: ${p.join(' | ')}`);
        assert.ok(p[0]!.startsWith(`${key}: ${JSON.stringify(url)} from flag --${key} is not valid; expected an https:// URL`), `${url}: ${p[0]}`);
        assert.match(p[0]!, /http:\/\/ only to a loopback host: 127\.0\.0\.0\/8, ::1, localhost/);
        assert.ok(!p[0]!.includes('\n'));
      }
    });

    test(`${key}: the rule holds whichever layer sets it (environment, file)`, () => {
      const url = 'http://203.0.113.9:8080';
      const envName = `VIP_${key.toUpperCase().replace(/-/g, '_')}`;
      const fromEnv = problems(load([...BASE, ...KEYS[key]], { [envName]: url }));
      assert.deepEqual(fromEnv.map((x) => x.split(';')[0]), [`${key}: ${JSON.stringify(url)} from env ${envName} is not valid`]);
      const fromFile = problems(load([...BASE, ...KEYS[key]], {}, `${key}: ${url}\n`));
      assert.equal(fromFile.length, 1);
      assert.match(fromFile[0]!, new RegExp(`^${key}: "http://203\\.0\\.113\\.9:8080" from file .* is not valid; expected an https:// URL`));
    });

    test(`${key}: a user or password inside the URL is refused without showing the password`, () => {
      const p = problems(load([...BASE, ...KEYS[key], `--${key}`, 'https://ws-user:Inline-Pa55@203.0.113.1/']));
      assert.equal(p.length, 1);
      assert.match(p[0]!, new RegExp(`^${key}: .* is not valid; expected no user or password in the URL`));
      assert.ok(!p[0]!.includes('Inline-Pa55'), p[0]);
    });
  }

  test('the same rule for a key whose manager is not selected (the value is still checked)', () => {
    const p = problems(load([...BASE, '--hcloud-api-url', 'http://203.0.113.1/v1']));
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^hcloud-api-url: .* expected an https:\/\/ URL/);
  });

  test('hcloud-metadata-url stays plain http: Hetzner serves it on link-local http, and no credential is sent to it', () => {
    const c = loaded(load([...BASE, ...KEYS['hcloud-api-url'], '--hcloud-metadata-url', 'http://169.254.169.254/hetzner/v1/metadata'])).config;
    assert.equal(c['hcloud-metadata-url'], 'http://169.254.169.254/hetzner/v1/metadata');
  });

  for (const mode of ['--check-config', 'start'] as const) {
    test(`the executable (${mode}): exit 78, one stderr line per refused URL naming its key, no secret`, () => {
      const args = [
        ...(mode === '--check-config' ? ['--check-config'] : []),
        ...BASE, ...KEYS['hetzner-api-url'],
        '--hetzner-api-url', 'http://203.0.113.1:8080',
        '--hcloud-api-url', 'http://api.hetzner.cloud/v1',
      ];
      const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: env(), timeout: 20_000 });
      assert.equal(r.status, EXIT_CONFIG, `exit ${r.status}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 2, r.stderr);
      assert.match(lines[0]!, /^vip-manager: config error: hetzner-api-url: "http:\/\/203\.0\.113\.1:8080" from flag --hetzner-api-url is not valid; expected an https:\/\/ URL/);
      assert.match(lines[1]!, /^vip-manager: config error: hcloud-api-url: "http:\/\/api\.hetzner\.cloud\/v1" from flag --hcloud-api-url is not valid; expected an https:\/\/ URL/);
      assert.ok(!r.stderr.includes(SECRET_PASS) && !r.stdout.includes(SECRET_PASS));
      assert.equal(r.stdout, '', 'nothing else happened (no effective configuration, no daemon output)');
    });
  }
});
