// dcs-loss patroni and the keys of the local Patroni REST API: defaults, and the rules between
// keys (the password only with a user and never in clear across a network, no credentials in
// the URL, certificate and key together, readable files), each one line naming the key.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { registerConfigSecrets, clearSecrets, scrubSecrets } from '../../src/ops/redact.js';
import { BASE, load, loaded, problems } from './helpers.js';

const P = [...BASE, '--dcs-loss', 'patroni'];

describe('config: dcs-loss patroni', () => {
  test('accepted, with the local API at http://127.0.0.1:8008 by default and no credentials', () => {
    const c = loaded(load(P)).config;
    assert.equal(c['dcs-loss'], 'patroni');
    assert.equal(c['patroni-api-url'], 'http://127.0.0.1:8008');
    assert.equal(c['patroni-api-user'], undefined);
    assert.equal(c['patroni-api-password'], undefined);
  });

  test('http:// to the node address without credentials is fine (Patroni often listens there)', () => {
    assert.equal(loaded(load([...P, '--patroni-api-url', 'http://203.0.113.11:8008'])).config['patroni-api-url'], 'http://203.0.113.11:8008');
  });

  test('a password over http:// to another host is refused; over https:// or to loopback it is accepted', () => {
    const env = { VIP_PATRONI_API_USER: 'patroni', VIP_PATRONI_API_PASSWORD: 'pw-Secret-1' };
    const p = problems(load([...P, '--patroni-api-url', 'http://203.0.113.11:8008'], env));
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^patroni-api-url: "http:\/\/203\.0\.113\.11:8008" from flag --patroni-api-url is http:\/\/ to a host that is not loopback while patroni-api-password is set; expected an https:\/\/ URL/);
    assert.doesNotMatch(p[0]!, /pw-Secret-1/);
    assert.equal(loaded(load([...P, '--patroni-api-url', 'https://203.0.113.11:8008'], env)).config['patroni-api-password'], 'pw-Secret-1');
    assert.equal(loaded(load([...P, '--patroni-api-url', 'http://[::1]:8008'], env)).config['patroni-api-user'], 'patroni');
  });

  test('credentials inside the URL are refused: they have their own keys', () => {
    const p = problems(load([...P, '--patroni-api-url', 'https://u:pw@203.0.113.11:8008']));
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^patroni-api-url: .*expected no user or password in the URL/);
  });

  test('a password needs a user; a certificate needs its key and the other way round', () => {
    assert.match(problems(load(P, { VIP_PATRONI_API_PASSWORD: 'pw' }))[0]!, /^patroni-api-password: set .* but patroni-api-user is not/);
    assert.match(problems(load([...P, '--patroni-api-cert-file', '/etc/hostname']))[0]!, /^patroni-api-cert-file: set .* but patroni-api-key-file is not/);
    assert.match(problems(load([...P, '--patroni-api-key-file', '/etc/hostname']))[0]!, /^patroni-api-key-file: set .* but patroni-api-cert-file is not/);
  });

  test('a TLS file that cannot be read is a configuration error', () => {
    const p = problems(load([...P, '--patroni-api-ca-file', '/nonexistent/ca.pem']));
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^patroni-api-ca-file: "\/nonexistent\/ca.pem" .* expected a readable file/);
  });

  test('the password is a registered secret: scrubbed from any text', () => {
    const c = loaded(load([...P, '--patroni-api-url', 'https://203.0.113.11:8008'], { VIP_PATRONI_API_USER: 'patroni', VIP_PATRONI_API_PASSWORD: 'pw-Secret-2' })).config;
    clearSecrets();
    registerConfigSecrets(c);
    assert.doesNotMatch(scrubSecrets('GET failed with pw-Secret-2'), /pw-Secret-2/);
    clearSecrets();
  });

  test('unknown values are still refused', () => {
    assert.match(problems(load([...BASE, '--dcs-loss', 'patron']))[0]!, /^dcs-loss: /);
  });
});
