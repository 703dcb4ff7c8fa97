// The etcd client over etcd's JSON gateway (src/dcs/etcd/gateway.ts): against a real etcd 3.4
// for what etcd decides (ranges with binary keys and values, limits, count-only, lease TTLs,
// one keep-alive connection for many calls, failover from a dead endpoint, require-leader's
// header accepted), and against a stand-in of the gateway for what a real etcd here cannot show
// on demand (an older cluster version choosing /v3beta or /v3alpha, an invalid token, no
// answer, an oversized answer). The stand-in answers as etcd's gateway does (etcd 3.4
// Documentation/dev-guide/api_grpc_gateway.md; shapes as observed from etcd 3.4.23 with curl):
// GET /version {"etcdserver","etcdcluster"}; POST <prefix>/<service>/<method> with a JSON body;
// errors {"error","message","code"} with the HTTP status grpc-gateway maps the gRPC code to.
import assert from 'node:assert/strict';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { buildEtcdClient, REQUEST_TIMEOUT_MS } from '../../src/dcs/etcd/client.js';
import { endpointOf } from '../../src/dcs/etcd/endpoints.js';
import { EtcdDeadlineError, EtcdGatewayError, EtcdResponseTooLargeError, MAX_RESPONSE_BYTES } from '../../src/dcs/etcd/gateway.js';
import { prefixRangeEnd } from '../../src/dcs/etcd/prefix-source.js';
import { freePort, startEtcd, type EtcdServer } from '../harness/etcd.js';

type Handler = (path: string, headers: http.IncomingHttpHeaders, body: Record<string, unknown> | null, res: http.ServerResponse) => void;

const servers: http.Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

async function standin(handle: Handler) {
  const seen: Array<{ path: string; headers: http.IncomingHttpHeaders; body: Record<string, unknown> | null }> = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown> : null;
      seen.push({ path: req.url ?? '', headers: req.headers, body });
      handle(req.url ?? '', req.headers, body, res);
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen, connections: () => connections };
}

const json = (res: http.ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
const version = (res: http.ServerResponse, server: string, cluster: string) => json(res, 200, { etcdserver: server, etcdcluster: cluster });
const header = { cluster_id: '1', member_id: '2', revision: '9', raft_term: '2' };

function client(endpoints: string[], extra: { user?: string; password?: string } = {}) {
  const built = buildEtcdClient({ endpoints, ...extra });
  return { ...built, done: () => { built.liveness.stop(); built.gateway.close(); } };
}

describe('etcd gateway client against etcd 3.4', () => {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.dispose();
  });

  it('reads binary keys and values byte for byte, with limit/more, count-only and serializable', async () => {
    const admin = etcd.client();
    const key = Buffer.from([0x2f, 0x62, 0x00, 0xff, 0xfe]);
    const value = Buffer.from([0, 1, 2, 0xc3, 0x28, 0xff]);
    await admin.put(key).value(value);
    for (const k of ['/p/a', '/p/b', '/p/c']) await admin.put(k).value(k);
    const c = client(etcd.endpoints);
    try {
      const one = await c.gateway.range({ key });
      assert.equal(one.kvs.length, 1);
      assert.deepEqual(one.kvs[0]!.key, key);
      assert.deepEqual(one.kvs[0]!.value, value);
      assert.equal(one.kvs[0]!.lease, '0');
      assert.match(one.header.revision, /^\d+$/);
      const missing = await c.gateway.range({ key: Buffer.from('/nope') });
      assert.deepEqual(missing.kvs, []);
      assert.equal(missing.count, '0');
      const limited = await c.gateway.range({ key: Buffer.from('/p/'), rangeEnd: prefixRangeEnd(Buffer.from('/p/')), limit: 2 });
      assert.deepEqual(limited.kvs.map((kv) => kv.key.toString()), ['/p/a', '/p/b']);
      assert.equal(limited.more, true);
      assert.equal(limited.count, '3');
      const counted = await c.gateway.range({ key: Buffer.from('/p/'), rangeEnd: prefixRangeEnd(Buffer.from('/p/')), countOnly: true, serializable: true });
      assert.deepEqual(counted.kvs, []);
      assert.equal(counted.count, '3');
    } finally {
      c.done();
    }
  });

  it('lease TTL: remaining and granted seconds of a live lease, -1 for an unknown one', async () => {
    const lease = etcd.client().lease(30, { autoKeepAlive: false });
    const id = await lease.grant();
    const c = client(etcd.endpoints);
    try {
      const live = await c.gateway.leaseTimeToLive(id);
      assert.equal(live.grantedTtl, 30);
      assert.ok(live.ttl > 25 && live.ttl <= 30, `ttl ${live.ttl}`);
      const gone = await c.gateway.leaseTimeToLive('12345');
      assert.equal(gone.ttl, -1);
    } finally {
      c.done();
      await lease.revoke();
    }
  });

  it('many calls share one keep-alive connection, tracked by the liveness check until closed', async () => {
    const c = client(etcd.endpoints);
    try {
      for (let i = 0; i < 20; i++) await c.gateway.range({ key: Buffer.from('/k') });
      await Promise.all(Array.from({ length: 3 }, () => c.gateway.range({ key: Buffer.from('/k') })));
      const conns = c.liveness.connections();
      assert.ok(conns.length >= 1 && conns.length <= 3, `${conns.length} connections`);
      for (let i = 0; i < 5; i++) await c.gateway.range({ key: Buffer.from('/k') });
      assert.equal(c.liveness.connections().length >= 1, true);
    } finally {
      c.done();
    }
    for (let i = 0; i < 200 && c.liveness.connections().length > 0; i++) await new Promise<void>((r) => setImmediate(r));
    assert.deepEqual(c.liveness.connections(), [], 'forgotten once closed');
  });

  it('a dead endpoint listed first: the call fails over at once and sticks to the live member', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const c = client([dead, etcd.clientUrl]);
    try {
      for (let i = 0; i < 5; i++) await c.gateway.range({ key: Buffer.from('/k') });
      assert.equal(c.endpoints.current, etcd.clientUrl);
    } finally {
      c.done();
    }
  });
});

describe('etcd gateway client against a stand-in', () => {
  it('chooses the API prefix from GET /version as Patroni does: 3.4 → /v3, 3.3 → /v3beta, 3.2 → /v3alpha, not_decided → the member\'s own', async () => {
    for (const [server, cluster, prefix] of [['3.4.23', '3.4.0', '/v3'], ['3.3.11', '3.3.0', '/v3beta'], ['3.2.26', '3.2.0', '/v3alpha'], ['3.5.1', 'not_decided', '/v3']] as const) {
      const s = await standin((path, _h, _b, res) => (path === '/version' ? version(res, server, cluster) : json(res, 200, { header })));
      const c = client([s.endpoint]);
      try {
        await c.gateway.range({ key: Buffer.from('/k') });
        await c.gateway.range({ key: Buffer.from('/k') });
        assert.deepEqual(s.seen.map((r) => r.path), ['/version', `${prefix}/kv/range`, `${prefix}/kv/range`], `${server}/${cluster}: asked once`);
        const h = s.seen[1]!.headers;
        assert.equal(h['grpc-metadata-hasleader'], 'true');
        assert.equal(h['content-type'], 'application/json');
        assert.equal(h.authorization, undefined, 'no token without a user');
      } finally {
        c.done();
      }
    }
  });

  it('authenticates once, sends the token, and on "invalid auth token" authenticates again and repeats the call once', async () => {
    let tokens = 0;
    let valid = '';
    const s = await standin((path, h, body, res) => {
      if (path === '/version') return version(res, '3.4.23', '3.4.0');
      if (path === '/v3/auth/authenticate') {
        assert.deepEqual(body, { name: 'vip', password: 'pw-Secr3t' });
        valid = `tok.${++tokens}`;
        return json(res, 200, { header, token: valid });
      }
      if (h.authorization !== valid) return json(res, 401, { error: 'etcdserver: invalid auth token', message: 'etcdserver: invalid auth token', code: 16 });
      return json(res, 200, { header });
    });
    const c = client([s.endpoint], { user: 'vip', password: 'pw-Secr3t' });
    try {
      await c.gateway.range({ key: Buffer.from('/k') });
      await c.gateway.range({ key: Buffer.from('/k') });
      assert.equal(tokens, 1, 'one authentication for two calls');
      valid = 'forgotten by a restart';
      await c.gateway.range({ key: Buffer.from('/k') });
      assert.equal(tokens, 2, 're-authenticated once');
      assert.deepEqual(s.seen.map((r) => r.path), ['/version', '/v3/auth/authenticate', '/v3/kv/range', '/v3/kv/range', '/v3/kv/range', '/v3/auth/authenticate', '/v3/kv/range']);
      assert.equal(s.seen[6]!.headers.authorization, 'tok.2');
    } finally {
      c.done();
    }
  });

  it('an answer etcd refuses is an EtcdGatewayError with its gRPC code, tagged with the endpoint, not retried elsewhere', async () => {
    const s = await standin((path, _h, _b, res) => (path === '/version' ? version(res, '3.4.23', '3.4.0')
      : json(res, 403, { error: 'etcdserver: permission denied', message: 'etcdserver: permission denied', code: 7 })));
    const c = client([s.endpoint]);
    try {
      const e = await c.gateway.range({ key: Buffer.from('/k') }).catch((x: unknown) => x);
      assert.ok(e instanceof EtcdGatewayError);
      assert.equal(e.code, 7);
      assert.equal(e.status, 403);
      assert.equal(endpointOf(e), s.endpoint);
    } finally {
      c.done();
    }
  });

  it('no answer: the call fails with a deadline error at its deadline', async () => {
    const s = await standin((path, _h, _b, res) => (path === '/version' ? version(res, '3.4.23', '3.4.0') : undefined));
    const c = client([s.endpoint]);
    try {
      const t0 = performance.now();
      const e = await c.gateway.range({ key: Buffer.from('/k') }, { deadlineMs: 300 }).catch((x: unknown) => x);
      const took = performance.now() - t0;
      assert.ok(e instanceof EtcdDeadlineError, String(e));
      assert.ok(took >= 299 && took < 300 + 2000, `${took.toFixed(0)} ms`);
      assert.ok(REQUEST_TIMEOUT_MS === 3000);
    } finally {
      c.done();
    }
  });

  it(`an answer above ${MAX_RESPONSE_BYTES} bytes is refused unread`, async () => {
    const big = Buffer.alloc(MAX_RESPONSE_BYTES + 1024, 0x20);
    const s = await standin((path, _h, _b, res) => (path === '/version' ? version(res, '3.4.23', '3.4.0') : res.writeHead(200, { 'Content-Type': 'application/json' }).end(big)));
    const c = client([s.endpoint]);
    try {
      const e = await c.gateway.range({ key: Buffer.from('/k') }).catch((x: unknown) => x);
      assert.ok(e instanceof EtcdResponseTooLargeError, String(e));
    } finally {
      c.done();
    }
  });
});
