// The Patroni REST leader source (and the shared HTTP client under it) against real HTTP and
// HTTPS servers on loopback.
import { patroniSourceOptions } from '../../src/daemon/factories.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe as suite, test } from 'node:test';
import type { Config } from '../../src/config/schema.js';
import { AllEndpointsFailedError, DcsTlsConfigError, EndpointError, joinUrl } from '../../src/dcs/http-client.js';
import { PatroniLeaderSource, patroniTimeoutMs, type PatroniSourceOptions } from '../../src/dcs/patroni/rest-source.js';
import type { LeaderUnreachable } from '../../src/reconcile/ports.js';
import { silentLogger } from '../../src/log.js';
import { createPki, type TestPki } from '../harness/tls.js';
import { collectViews, isUnreachable, isValue, sleep } from './consul-helpers.js';

/** A Patroni-like REST server: answers every path with `status`, records the paths asked. */
interface FakePatroni {
  url: string;
  port: number;
  status: number;
  /** When true, requests are accepted and never answered. */
  hang: boolean;
  paths: string[];
  close(): Promise<void>;
}

const servers: Array<http.Server | https.Server> = [];
const sources: PatroniLeaderSource[] = [];
after(async () => {
  await Promise.all(sources.map((s) => s.close()));
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

async function fakePatroni(tlsOpts?: https.ServerOptions): Promise<FakePatroni> {
  const fake: FakePatroni = { url: '', port: 0, status: 200, hang: false, paths: [], close: async () => undefined };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    fake.paths.push(req.url ?? '');
    if (fake.hang) return;
    res.writeHead(fake.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ state: 'running', role: fake.status === 200 ? 'primary' : 'replica', padding: 'x'.repeat(4096) }));
  };
  const server = tlsOpts ? https.createServer(tlsOpts, handler) : http.createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.port = (server.address() as AddressInfo).port;
  fake.url = `${tlsOpts ? 'https' : 'http'}://127.0.0.1:${fake.port}`;
  fake.close = async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  return fake;
}

/** A loopback port nothing listens on (bound, then released). */
async function refusedUrl(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

function source(over: Partial<PatroniSourceOptions> & { endpoints: string[] }): PatroniLeaderSource {
  const s = new PatroniLeaderSource({ triggerKey: '/leader', tls: {}, intervalMs: 200, retryAfterMs: 50, retryNum: 3, log: silentLogger(), ...over });
  sources.push(s);
  return s;
}

suite('Patroni REST leader source', () => {
  test('200 → value "200", 503 → value "503"; a view only when the status changes', async () => {
    const p = await fakePatroni();
    const src = source({ endpoints: [p.url], intervalMs: 100 });
    assert.equal(src.providesLeaseDeadline, false);
    const v = collectViews(src);
    const first = await v.waitFor(isValue('200'), 2000);
    assert.equal(first.kind === 'value' && first.revision, '200');
    // Five more polls, each answering the same status: still the one view.
    const polled = p.paths.length;
    const giveUp = performance.now() + 10_000;
    while (p.paths.length < polled + 5) {
      if (performance.now() > giveUp) assert.fail(`only ${p.paths.length - polled} polls in 10 s at a 100 ms interval`);
      await sleep(20);
    }
    assert.equal(v.views.length, 1, 'the same status is not reported again');
    p.status = 503;
    await v.waitFor(isValue('503'), 1000);
    assert.deepEqual(new Set(p.paths), new Set(['/leader']));
  });

  test('URL join: endpoint with a trailing slash + "/leader" → "/leader", never "//"', async () => {
    const p = await fakePatroni();
    const v = collectViews(source({ endpoints: [`${p.url}/`] }));
    await v.waitFor(isValue('200'), 2000);
    assert.equal(p.paths[0], '/leader');
    assert.equal(joinUrl('http://h:8008/', '/leader').href, 'http://h:8008/leader');
    assert.equal(joinUrl('http://h:8008', 'leader').href, 'http://h:8008/leader');
    assert.equal(joinUrl('https://h/base//', '//v1/kv/k', [['consistent', null], ['index', '5']]).href, 'https://h/base/v1/kv/k?consistent&index=5');
    assert.equal(joinUrl('http://h:8008/', '/replica?lag=16MB').href, 'http://h:8008/replica?lag=16MB');
  });

  test('a server that never answers → unreachable within the interval', async () => {
    const p = await fakePatroni();
    p.hang = true;
    const interval = 500;
    assert.equal(patroniTimeoutMs(interval), 400);
    assert.equal(patroniTimeoutMs(10_000), 1000, 'never more than the original 1 s');
    const t0 = performance.now();
    const v = collectViews(source({ endpoints: [p.url], intervalMs: interval }));
    const view = (await v.waitFor(isUnreachable, 3000)) as LeaderUnreachable;
    const took = performance.now() - t0;
    assert.ok(took < interval + 300, `unreachable after ${took.toFixed(0)} ms`);
    assert.ok(view.error instanceof AllEndpointsFailedError);
    assert.equal((view.error.failures[0] as EndpointError).kind, 'response-timeout');
    assert.equal(v.views.filter((x) => x.kind === 'value').length, 0, 'a timeout is never a value');
    p.hang = false;
    const n = v.views.length;
    await v.waitFor(isValue('200'), 3000, n);
  });

  test('connection refused → unreachable (not a value); failures count up from one since', async () => {
    const url = await refusedUrl();
    const t0 = performance.now();
    const v = collectViews(source({ endpoints: [url], intervalMs: 1000, retryAfterMs: 50 }));
    const first = (await v.waitFor(isUnreachable, 2000)) as LeaderUnreachable;
    assert.match(first.error.message, /connection refused/);
    assert.equal(first.failures, 1);
    assert.equal(first.last, null);
    const third = (await v.waitFor((x) => x.kind === 'unreachable' && x.failures === 3, 2000)) as LeaderUnreachable;
    assert.equal(third.since, first.since);
    // Retries go retry-after (50 ms) apart, not `interval` (1000 ms) apart.
    const took = performance.now() - t0;
    assert.ok(took < 1000, `three failed attempts within ${took.toFixed(0)} ms`);
  });

  test('endpoint failover: a refused endpoint is skipped; the next one answers', async () => {
    const dead = await refusedUrl();
    const p = await fakePatroni();
    p.status = 503;
    const v = collectViews(source({ endpoints: [dead, p.url] }));
    await v.waitFor(isValue('503'), 2000);
    assert.equal(v.views.filter(isUnreachable).length, 0);
    // and when the second goes away too while the first is still dead: unreachable, naming both
    await p.close();
    const view = (await v.waitFor(isUnreachable, 2000)) as LeaderUnreachable;
    assert.equal((view.error as AllEndpointsFailedError).failures.length, 2);
    assert.equal(view.last?.value, '503');
  });

  suite('TLS with the etcd-* files', () => {
    let pki: TestPki;
    let p: FakePatroni;
    before(async () => {
      pki = createPki(['127.0.0.1']);
      p = await fakePatroni({
        key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert),
        ca: readFileSync(pki.ca), requestCert: true, rejectUnauthorized: true,
      });
    });
    after(() => pki.dispose());

    test('CA + client certificate → value', async () => {
      const v = collectViews(source({ endpoints: [p.url], tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey } }));
      await v.waitFor(isValue('200'), 3000);
    });

    test('wrong CA → unreachable with a clear TLS error naming etcd-ca-file', async () => {
      const v = collectViews(source({ endpoints: [p.url], tls: { caFile: pki.wrongCa, certFile: pki.clientCert, keyFile: pki.clientKey } }));
      const view = (await v.waitFor(isUnreachable, 3000)) as LeaderUnreachable;
      assert.match(view.error.message, /TLS verification failed/);
      assert.match(view.error.message, /etcd-ca-file/);
      assert.equal(((view.error as AllEndpointsFailedError).failures[0] as EndpointError).kind, 'tls');
    });

    test('no client certificate where the server requires one → unreachable', async () => {
      const v = collectViews(source({ endpoints: [p.url], tls: { caFile: pki.ca } }));
      await v.waitFor(isUnreachable, 3000);
      assert.equal(v.views.filter((x) => x.kind === 'value').length, 0);
    });

    test('an unreadable TLS file is a startup error', () => {
      assert.throws(() => source({ endpoints: [p.url], tls: { caFile: `${pki.dir}/missing.crt` } }),
        (e: unknown) => e instanceof DcsTlsConfigError && /etcd-ca-file/.test(e.message));
    });
  });

  test('patroniSourceOptions reads the configuration keys; close() is prompt', async () => {
    const p = await fakePatroni();
    const cfg = {
      'dcs-type': 'patroni', 'dcs-endpoints': [p.url], 'trigger-key': '/leader', 'trigger-value': '200',
      interval: 1000, 'retry-after': 250, 'retry-num': 3,
      'etcd-ca-file': undefined, 'etcd-cert-file': undefined, 'etcd-key-file': undefined,
    } as unknown as Config;
    const src = new PatroniLeaderSource(patroniSourceOptions(cfg, silentLogger()));
    assert.equal(src.kind, 'patroni');
    const v = collectViews(src);
    await v.waitFor(isValue('200'), 2000);
    const t0 = performance.now();
    await src.close();
    assert.ok(performance.now() - t0 < 200, 'close does not wait for the next poll');
  });
});
