import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { HttpListenError, createOpsHttp, type Check, type OpsHttp } from '../../src/ops/http.js';
import { ListenAddressError, parseListenAddress } from '../../src/ops/listen-address.js';
import { Metrics } from '../../src/ops/metrics.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(port: number, path: string, method = 'GET', host = '127.0.0.1'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

function portOf(s: OpsHttp): number {
  const a = s.address();
  assert.ok(a, 'server should be listening');
  return a.port;
}

describe('ops HTTP endpoint', () => {
  const metrics = new Metrics({ version: '1.2.3', dcsType: 'etcd', managerType: 'basic', defaultMetrics: false });
  const primary = metrics.vip('primary');
  const billing = metrics.vip('billing');
  let health: Check = { ok: true, detail: { heartbeatAgeMs: 12 } };
  let status: unknown = {
    leader: 'node-a',
    held: true,
    config: { ip: '198.51.100.10', 'etcd-password': 'hunter2', 'consul-token': undefined, 'hcloud-token-file': '/etc/vip/token' },
    transitions: [{ direction: 'acquire', cause: 'leader-changed', ms: 0.8 }],
  };
  const server = createOpsHttp({
    enabled: true,
    listen: '127.0.0.1:0',
    metrics,
    health: () => health,
    status: () => status,
  });
  const closers: OpsHttp[] = [server];
  after(async () => {
    for (const s of closers) await s.close();
  });

  it('starts listening on the configured address', async () => {
    await server.start();
    const a = server.address();
    assert.equal(a?.host, '127.0.0.1');
    assert.ok((a?.port ?? 0) > 0);
  });

  it('serves /metrics in the Prometheus text format', async () => {
    primary.setHeld(true);
    const r = await call(portOf(server), '/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.match(r.body, /^vip_manager_vip_held\{vip="primary"\} 1$/m);
    assert.match(r.body, /^vip_manager_vip_held\{vip="billing"\} 0$/m);
    assert.match(r.body, /^vip_manager_info\{version="1.2.3",dcs_type="etcd",manager_type="basic"\} 1$/m);
    assert.equal(r.headers['cache-control'], 'no-store');
  });

  it('answers /healthz from the health callback: 200 alive, 503 stuck', async () => {
    let r = await call(portOf(server), '/healthz');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    assert.deepEqual(JSON.parse(r.body), { status: 'ok', detail: { heartbeatAgeMs: 12 } });
    health = { ok: false, detail: 'reconcile loop heartbeat is 45 s old' };
    r = await call(portOf(server), '/healthz');
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body), { status: 'unavailable', detail: 'reconcile loop heartbeat is 45 s old' });
    health = { ok: true };
  });

  it('answers /readyz with 503 until the DCS has answered once for every entry, then 200', async () => {
    let r = await call(portOf(server), '/readyz');
    assert.equal(r.status, 503);
    assert.equal(JSON.parse(r.body).status, 'unavailable');
    primary.dcsAnswered(performance.now());
    r = await call(portOf(server), '/readyz');
    assert.equal(r.status, 503, 'one entry of two has an answer');
    billing.dcsAnswered(performance.now());
    r = await call(portOf(server), '/readyz');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).status, 'ok');
  });

  it('serves /status as JSON with secrets masked, and ignores query strings', async () => {
    const r = await call(portOf(server), '/status?pretty=1');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    assert.doesNotMatch(r.body, /hunter2/);
    const body = JSON.parse(r.body);
    assert.equal(body.leader, 'node-a');
    assert.equal(body.held, true);
    assert.equal(body.config['etcd-password'], '*****');
    assert.equal(body.config['hcloud-token-file'], '/etc/vip/token', 'a path to a secret is not itself masked');
    assert.equal(body.config.ip, '198.51.100.10');
    assert.deepEqual(body.transitions, [{ direction: 'acquire', cause: 'leader-changed', ms: 0.8 }]);
  });

  it('answers 500 without details when a callback throws, and counts the error', async () => {
    const saved = status;
    status = { get boom(): never { throw new Error('secret detail'); } };
    const r = await call(portOf(server), '/status');
    status = saved;
    assert.equal(r.status, 500);
    assert.doesNotMatch(r.body, /secret detail/);
    assert.match(await metrics.render(), /^vip_manager_errors_total\{component="http"\} 1$/m);
  });

  it('answers 404 for unknown paths and 405 (with Allow) for other methods', async () => {
    const nf = await call(portOf(server), '/nope');
    assert.equal(nf.status, 404);
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const r = await call(portOf(server), '/metrics', method);
      assert.equal(r.status, 405, method);
      assert.equal(r.headers.allow, 'GET, HEAD');
    }
  });

  it('answers HEAD like GET without a body', async () => {
    const r = await call(portOf(server), '/healthz', 'HEAD');
    assert.equal(r.status, 200);
    assert.equal(r.body, '');
    assert.ok(Number(r.headers['content-length']) > 0);
  });

  it('closes promptly even with an idle keep-alive connection open', async () => {
    const extra = createOpsHttp({ enabled: true, listen: '127.0.0.1:0', metrics, health: () => health, status: () => ({}) });
    await extra.start();
    const port = portOf(extra);
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/healthz', headers: { connection: 'keep-alive' } }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
    const t0 = performance.now();
    await extra.close();
    assert.ok(performance.now() - t0 < 1000, 'close() waited for the idle connection');
    assert.equal(extra.address(), null);
    await assert.rejects(call(port, '/healthz'), /ECONNREFUSED/);
  });

  it('rejects start() with an error naming the address when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const s = createOpsHttp({ enabled: true, listen: `127.0.0.1:${port}`, metrics, health: () => health, status: () => ({}) });
      await assert.rejects(s.start(), (e: unknown) => {
        assert.ok(e instanceof HttpListenError);
        assert.equal(e.code, 'EADDRINUSE');
        assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
        assert.match(e.message, /http-listen/);
        return true;
      });
      await s.close();
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('listens on IPv6 loopback with the [v6]:port form', async () => {
    const s = createOpsHttp({ enabled: true, listen: '[::1]:0', metrics, health: () => health, status: () => ({}) });
    closers.push(s);
    await s.start();
    assert.equal(s.address()?.host, '::1');
    const r = await call(portOf(s), '/healthz', 'GET', '::1');
    assert.equal(r.status, 200);
  });

  it('does not listen at all when disabled', async () => {
    // Find a free port, then configure the disabled endpoint on it: it must stay closed.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const s = createOpsHttp({ enabled: false, listen: `127.0.0.1:${port}`, metrics, health: () => health, status: () => ({}) });
    await s.start();
    assert.equal(s.enabled, false);
    assert.equal(s.address(), null);
    await assert.rejects(call(port, '/metrics'), /ECONNREFUSED/);
    await s.close();
  });
});

describe('parseListenAddress', () => {
  it('accepts host:port and [v6]:port', () => {
    assert.deepEqual(parseListenAddress('127.0.0.1:9466'), { host: '127.0.0.1', port: 9466 });
    assert.deepEqual(parseListenAddress('[::1]:9466'), { host: '::1', port: 9466 });
    assert.deepEqual(parseListenAddress('localhost:80'), { host: 'localhost', port: 80 });
  });
  it('rejects malformed values with an actionable message', () => {
    for (const bad of ['9466', '::1:9466', '127.0.0.1:', '127.0.0.1:99999', '[::1]9466']) {
      assert.throws(() => parseListenAddress(bad), (e: unknown) => e instanceof ListenAddressError && /http-listen/.test(e.message) && /host:port/.test(e.message), bad);
    }
  });
});
