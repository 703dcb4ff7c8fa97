// EtcdLeaderSource with etcd authentication and TLS: re-authentication across an etcd restart,
// clear errors (not hangs) for a wrong password, a wrong CA, a missing client certificate, and
// unreadable certificate files.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EtcdLeaderSource, type EtcdSourceOptions } from '../../src/dcs/etcd/source.js';
import { EtcdConfigFileError } from '../../src/dcs/etcd/client.js';
import { EtcdSourceError } from '../../src/dcs/etcd/errors.js';
import { silentLogger } from '../../src/log.js';
import type { LeaderUnreachable } from '../../src/reconcile/ports.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { createPki, type TestPki } from '../harness/tls.js';
import { isUnreachable, isValue, ViewLog } from './etcd-views.js';

const USER = 'vip';
const PASSWORD = 'vip-Secr3t-pw';
const sources: EtcdLeaderSource[] = [];

function open(opts: Partial<EtcdSourceOptions> & Pick<EtcdSourceOptions, 'endpoints' | 'triggerKey'>): ViewLog {
  const src = new EtcdLeaderSource({ retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000, ...opts }, silentLogger());
  const views = new ViewLog();
  sources.push(src);
  src.start(views.onView);
  return views;
}

function assertNoSecret(views: ViewLog, secret: string): void {
  for (const s of views.seen) {
    if (s.view.kind === 'unreachable') assert.ok(!s.view.error.message.includes(secret), 'error messages never contain the password');
  }
}

after(async () => {
  await Promise.all(sources.map((s) => s.close()));
});

describe('etcd leader source with authentication', () => {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd({ auth: { user: USER, password: PASSWORD, prefix: '/service/' } });
  });
  after(async () => {
    await etcd?.dispose();
  });

  it('keeps working across an etcd restart (auth token invalidated → re-authenticates)', async (t) => {
    const key = '/service/auth/leader';
    const c = etcd.client();
    await c.put(key).value('node-a');
    const views = open({ endpoints: etcd.endpoints, triggerKey: key, user: USER, password: PASSWORD });
    await views.waitFor(isValue('node-a'), 3000, 'value with auth');
    await c.put(key).value('node-b'); // a watcher that has received events (the etcd3 trap)
    await views.waitFor(isValue('node-b'), 3000, 'event with auth');

    const idx = views.seen.length;
    await etcd.restart();
    await views.waitFor(isUnreachable, 3000, 'unreachable during the restart', idx);
    await views.waitFor(isValue('node-b'), 8000, 'value after the restart', idx);
    // The restarted etcd forgot every token: the source must have authenticated again (the
    // admin client has made no call since the restart).
    const auths = /^grpc_server_started_total\{grpc_method="Authenticate",[^}]*\} (\d+)$/m.exec(await etcd.metrics());
    assert.ok(Number(auths?.[1]) >= 1, `the source re-authenticated after the restart (${auths?.[1]} Authenticate calls)`);
    await etcd.client().put(key).value('node-c');
    await views.waitFor(isValue('node-c'), 3000, 'a put after the restart arrives', idx);
    t.diagnostic(`errors seen: ${[...new Set(views.seen.filter((s) => s.view.kind === 'unreachable').map((s) => (s.view as LeaderUnreachable).error.message))].join(' | ')}`);
    assertNoSecret(views, PASSWORD);
  });

  it('a wrong password gives a clear auth error in the unreachable view, not a hang', async () => {
    const key = '/service/auth/leader';
    const views = open({ endpoints: etcd.endpoints, triggerKey: key, user: USER, password: 'not-the-password' });
    const seen = await views.waitFor(isUnreachable, 3000, 'auth failure');
    const u = seen.view as LeaderUnreachable;
    assert.ok(u.error instanceof EtcdSourceError);
    assert.equal((u.error as EtcdSourceError).reason, 'auth');
    assert.match(u.error.message, /authentication failed for user "vip" at http:\/\/127\.0\.0\.1:\d+: invalid user name or password/);
    assert.equal(u.last, null);
    // Keeps retrying (the password may be fixed on the server): wait for the third failure.
    await views.waitFor((v) => v.kind === 'unreachable' && v.failures >= 3, 10_000, 'two retries');
    assert.ok(views.seen.every((s) => s.view.kind === 'unreachable'), 'never a value view');
    assertNoSecret(views, 'not-the-password');
  });

  it('a key outside the user\'s permissions gives a permission error', async () => {
    const views = open({ endpoints: etcd.endpoints, triggerKey: '/elsewhere/leader', user: USER, password: PASSWORD });
    const seen = await views.waitFor(isUnreachable, 3000, 'permission failure');
    assert.equal(((seen.view as LeaderUnreachable).error as EtcdSourceError).reason, 'permission');
    assert.match((seen.view as LeaderUnreachable).error.message, /user "vip" may not read \/elsewhere\/leader/);
  });
});

describe('etcd leader source over TLS', () => {
  let etcd: EtcdServer;
  let pki: TestPki;
  before(async () => {
    pki = createPki(['127.0.0.1', 'localhost']);
    etcd = await startEtcd({ tls: pki, clientCertAuth: true });
  });
  after(async () => {
    await etcd?.dispose();
    pki?.dispose();
  });

  it('works with the generated CA and client certificate', async () => {
    const key = '/service/tls/leader';
    await etcd.client().put(key).value('node-a');
    assert.match(etcd.endpoints[0]!, /^https:\/\//);
    const views = open({ endpoints: etcd.endpoints, triggerKey: key, caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey });
    await views.waitFor(isValue('node-a'), 3000, 'value over TLS');
    await etcd.client().put(key).value('node-b');
    await views.waitFor(isValue('node-b'), 3000, 'watch over TLS');
  });

  it('a wrong CA gives "certificate verify failed for https://…", not a hang', async () => {
    const views = open({ endpoints: etcd.endpoints, triggerKey: '/service/tls/leader', caFile: pki.wrongCa, certFile: pki.clientCert, keyFile: pki.clientKey });
    const seen = await views.waitFor(isUnreachable, 3000, 'TLS failure');
    const e = (seen.view as LeaderUnreachable).error;
    assert.equal((e as EtcdSourceError).reason, 'tls');
    assert.match(e.message, /^certificate verify failed for https:\/\/127\.0\.0\.1:\d+: .*(verify|certificate)/);
  });

  it('no client certificate: the server refusing it is reported as such', async () => {
    const views = open({ endpoints: etcd.endpoints, triggerKey: '/service/tls/leader', caFile: pki.ca });
    const seen = await views.waitFor(isUnreachable, 3000, 'client cert refused');
    const e = (seen.view as LeaderUnreachable).error;
    assert.equal((e as EtcdSourceError).reason, 'tls');
    assert.match(e.message, /TLS handshake with https:\/\/127\.0\.0\.1:\d+ failed: the server refused our client certificate/);
  });

  it('an unreadable certificate file fails construction with the setting and the path', () => {
    assert.throws(
      () => new EtcdLeaderSource({ endpoints: etcd.endpoints, triggerKey: '/k', caFile: '/nonexistent/ca.pem', retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000 }, silentLogger()),
      (e: unknown) => e instanceof EtcdConfigFileError && /cannot read etcd-ca-file \/nonexistent\/ca\.pem: ENOENT/.test(e.message),
    );
    assert.throws(
      () => new EtcdLeaderSource({ endpoints: etcd.endpoints, triggerKey: '/k', caFile: pki.ca, certFile: pki.clientCert, keyFile: `${pki.dir}/missing.key`, retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000 }, silentLogger()),
      /cannot read etcd-key-file .*missing\.key/,
    );
  });
});
