// KeyWatch (watch-stream.ts) over etcd's JSON gateway, against a scripted stand-in of the
// gateway's streaming POST /v3/watch (etcd 3.4 Documentation/dev-guide/api_grpc_gateway.md and
// grpc-gateway's streaming mapping, as observed from etcd 3.4.23 with curl: one JSON object per
// line, {"result":{...}} for each WatchResponse, {"error":{grpc_code,http_code,message,
// http_status}} for a stream error; int64 as strings, bytes base64, zero values omitted; the
// stream stays open after a cancel). Lines are split across chunks at arbitrary bytes, as TCP
// may deliver them. Real-etcd behaviour is in the other etcd tests.
import assert from 'node:assert/strict';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { buildEtcdClient } from '../../src/dcs/etcd/client.js';
import { KeyWatch, WATCH_CREATE_TIMEOUT_MS, type KeyEvent } from '../../src/dcs/etcd/watch-stream.js';
import { describeEtcdError } from '../../src/dcs/etcd/errors.js';
import { sleep } from './etcd-views.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const header = (rev: string) => ({ cluster_id: '1', member_id: '2', revision: rev, raft_term: '2' });

interface Script {
  /** What the server writes once the watch request arrived, in order; a number waits that long. */
  send: Array<string | number>;
  /** Keep the stream open afterwards (etcd does, even after a cancel). */
  keepOpen?: boolean;
}

/** One stand-in gateway per script: GET /version answers 3.4, POST /v3/watch runs the script. */
async function standin(script: Script) {
  const requests: Array<{ path: string; headers: http.IncomingHttpHeaders; body: unknown }> = [];
  const closed: Promise<void>[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) as unknown : null;
      requests.push({ path: req.url ?? '', headers: req.headers, body });
      if (req.url === '/version') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}');
        return;
      }
      closed.push(new Promise((r) => res.once('close', () => r())));
      res.writeHead(200, { 'Content-Type': 'application/json' });
      void (async () => {
        for (const step of script.send) {
          if (typeof step === 'number') await sleep(step);
          else res.write(step);
        }
        if (!script.keepOpen) res.end();
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { endpoint: `http://127.0.0.1:${port}`, requests, closed, server };
}

const servers: http.Server[] = [];
after(() => {
  for (const s of servers) s.closeAllConnections();
  for (const s of servers) s.close();
});

async function watch(script: Script, subject: string | { prefix: string } = '/k', from = '42') {
  const s = await standin(script);
  servers.push(s.server);
  const built = buildEtcdClient({ endpoints: [s.endpoint] });
  const got = { connected: 0, events: [] as KeyEvent[][], failures: [] as unknown[] };
  const kw = new KeyWatch(built.gateway, subject, from, {
    onConnected: () => got.connected++,
    onEvents: (e) => got.events.push(e),
    onFailure: (e) => got.failures.push(e),
  });
  const until = async (pred: () => boolean, ms = 3000) => {
    const end = performance.now() + ms;
    while (!pred()) {
      if (performance.now() > end) assert.fail(`condition not met within ${ms} ms: ${JSON.stringify(got)}`);
      await sleep(5);
    }
  };
  const done = () => {
    built.liveness.stop();
    built.gateway.close();
  };
  return { ...s, built, kw, got, until, done };
}

/** Splits `text` into pieces of `n` bytes (lines cut anywhere, as TCP may deliver them). */
const pieces = (text: string, n: number) => Array.from({ length: Math.ceil(text.length / n) }, (_, i) => text.slice(i * n, (i + 1) * n));

describe('KeyWatch over the JSON gateway', () => {
  it('sends one create_request for the key from the revision with require-leader; passes events in order, split lines joined; progress ignored', async () => {
    const lines = [
      { result: { header: header('41'), created: true } },
      { result: { header: header('44'), events: [
        { kv: { key: b64('/k'), create_revision: '40', mod_revision: '42', version: '2', value: b64('a') } },
        { type: 'DELETE', kv: { key: b64('/k'), mod_revision: '43' } },
        { kv: { key: b64('/k'), create_revision: '44', mod_revision: '44', version: '1', value: b64('b'), lease: '7' } },
      ] } },
      { result: { header: header('44') } },
      { result: { header: header('45'), events: [{ kv: { key: b64('/k'), mod_revision: '45', version: '2' } }] } },
    ].map((l) => JSON.stringify(l) + '\n').join('');
    const w = await watch({ send: pieces(lines, 7), keepOpen: true });
    await w.until(() => w.got.events.length === 2);
    const req = w.requests.find((r) => r.path === '/v3/watch')!;
    assert.deepEqual(req.body, { create_request: { key: b64('/k'), start_revision: '42' } }, 'exactly the key, no range_end');
    assert.equal(req.headers['grpc-metadata-hasleader'], 'true');
    assert.equal(w.got.connected, 1);
    assert.deepEqual(w.got.events, [[
      { key: Buffer.from('/k'), value: Buffer.from('a'), modRevision: '42', lease: '0' },
      { key: Buffer.from('/k'), value: null, modRevision: '43', lease: '0' },
      { key: Buffer.from('/k'), value: Buffer.from('b'), modRevision: '44', lease: '7' },
    ], [
      { key: Buffer.from('/k'), value: Buffer.alloc(0), modRevision: '45', lease: '0' },
    ]], 'an omitted value is the empty value');
    assert.deepEqual(w.got.failures, []);
    await w.kw.close();
    await w.closed[0];
    w.done();
  });

  it('a prefix watch carries etcd\'s range end', async () => {
    const w = await watch({ send: [JSON.stringify({ result: { header: header('1'), created: true } }) + '\n'], keepOpen: true }, { prefix: '/service/pg/' }, '7');
    await w.until(() => w.got.connected === 1);
    assert.deepEqual(w.requests.find((r) => r.path === '/v3/watch')!.body, { create_request: { key: b64('/service/pg/'), range_end: b64('/service/pg0'), start_revision: '7' } });
    await w.kw.close();
    w.done();
  });

  it('a cancel after compaction is reported once as a lost watch, and the request is aborted (etcd keeps the stream open)', async () => {
    const w = await watch({ send: [
      JSON.stringify({ result: { header: header('50'), created: true } }) + '\n',
      JSON.stringify({ result: { header: { cluster_id: '1' }, canceled: true, compact_revision: '48' } }) + '\n',
      JSON.stringify({ result: { header: header('51'), events: [{ kv: { key: b64('/k'), mod_revision: '51', value: b64('late') } }] } }) + '\n',
    ], keepOpen: true });
    await w.until(() => w.got.failures.length === 1);
    await w.closed[0]; // the stand-in sees the connection go
    assert.equal(w.got.failures.length, 1);
    const e = describeEtcdError(w.got.failures[0], { endpoints: [w.endpoint], key: '/k' });
    assert.equal(e.reason, 'watch');
    assert.match(e.message, /required revision 42 has been compacted \(compact revision 48\)/);
    assert.equal(w.got.events.length, 0, 'nothing after the failure');
    w.done();
  });

  it('a create refused with created+canceled (permission denied) is the named gRPC error', async () => {
    const w = await watch({ send: [JSON.stringify({ result: { header: header('4'), watch_id: '-1', created: true, canceled: true, cancel_reason: 'rpc error: code = PermissionDenied desc = etcdserver: permission denied' } }) + '\n'], keepOpen: true });
    await w.until(() => w.got.failures.length === 1);
    assert.equal(w.got.connected, 0, 'never confirmed');
    const e = describeEtcdError(w.got.failures[0], { endpoints: [w.endpoint], user: 'vip', key: '/k' });
    assert.equal(e.reason, 'permission');
    w.done();
  });

  it('a stream error line ({"error":{...}}) fails the watch with its code', async () => {
    const w = await watch({ send: [
      JSON.stringify({ result: { header: header('4'), created: true } }) + '\n', 20,
      JSON.stringify({ error: { grpc_code: 14, http_code: 503, message: 'etcdserver: no leader', http_status: 'Service Unavailable' } }) + '\n',
    ] });
    await w.until(() => w.got.failures.length === 1);
    assert.equal(w.got.connected, 1);
    assert.equal(describeEtcdError(w.got.failures[0], { endpoints: [w.endpoint], key: '/k' }).reason, 'no-leader');
    w.done();
  });

  it('an error object left unterminated at the end of the stream (as grpc-gateway writes it) is the failure\'s cause', async () => {
    const w = await watch({ send: [
      JSON.stringify({ result: { header: header('4'), created: true } }) + '\n', 20,
      ...pieces(JSON.stringify({ error: { grpc_code: 14, http_code: 503, message: 'etcdserver: no leader', http_status: 'Service Unavailable' } }), 9),
    ] });
    await w.until(() => w.got.failures.length === 1);
    await sleep(50);
    assert.equal(w.got.failures.length, 1);
    assert.equal(describeEtcdError(w.got.failures[0], { endpoints: [w.endpoint], key: '/k' }).reason, 'no-leader');
    w.done();
  });

  it('the stream ending is a lost watch, reported once', async () => {
    const w = await watch({ send: [JSON.stringify({ result: { header: header('4'), created: true } }) + '\n'] });
    await w.until(() => w.got.failures.length === 1);
    await sleep(50);
    assert.equal(w.got.failures.length, 1);
    assert.equal(describeEtcdError(w.got.failures[0], { endpoints: [w.endpoint], key: '/k' }).reason, 'watch');
    w.done();
  });

  it('a watch etcd never confirms fails after WATCH_CREATE_TIMEOUT_MS and its request is aborted', async () => {
    const started = performance.now();
    const w = await watch({ send: [], keepOpen: true });
    await w.until(() => w.got.failures.length === 1, WATCH_CREATE_TIMEOUT_MS + 10_000);
    // Not before the timeout (timers never fire early; 1 ms for their rounding).
    assert.ok(performance.now() - started >= WATCH_CREATE_TIMEOUT_MS - 1, `failed after ${(performance.now() - started).toFixed(0)} ms`);
    assert.match(String(w.got.failures[0]), /did not confirm the watch/);
    await w.closed[0];
    w.done();
  });
});
