// /status stays small and secret-free whatever the DCS holds or a server answers: the status
// board bounds every value and message, and the HTTP endpoint refuses to serve a document past
// its cap (a short 500 instead of megabytes), while /healthz keeps answering.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { StatusBoard } from '../../src/daemon/status.js';
import { leaderValue } from '../../src/dcs/leader-value.js';
import { createOpsHttp, MAX_STATUS_BYTES } from '../../src/ops/http.js';
import { Metrics } from '../../src/ops/metrics.js';
import { clearSecrets, registerConfigSecrets } from '../../src/ops/redact.js';

const TOKEN = 'consul-tok-5d1c2e';
const MIB = 1_048_576;

after(() => clearSecrets());

function config() {
  return loadConfig(['--ip', '198.51.100.10', '--netmask', '24', '--interface', 'eth0', '--trigger-key', '/k', '--trigger-value', 'n1',
    '--dcs-type', 'consul', '--dcs-endpoints', 'http://127.0.0.1:8500', '--consul-token', TOKEN], { env: {}, hostname: 'h' }).config;
}

test('status board: 1 MiB values, huge reasons and an echoing error body give a small document without the token', () => {
  const cfg = config();
  registerConfigSecrets(cfg);
  const board = new StatusBoard(cfg.ip, cfg);
  for (let i = 0; i < 30; i++) {
    const bytes = Buffer.alloc(MIB, 0x61 + (i % 26));
    board.view(leaderValue(bytes, String(i), performance.now(), null));
    board.transition({
      direction: i % 2 ? 'release' : 'acquire', cause: 'key-other', reason: `the trigger key names ${'x'.repeat(MIB)}`,
      value: 'y'.repeat(MIB), revision: String(i), at: new Date(), reactionMs: 1, tookMs: 1,
    });
  }
  board.view(leaderValue(Buffer.from('n1'), '31', performance.now(), null));
  assert.equal((board.snapshot().leader as { isThisNode: boolean }).isThisNode, true);
  board.view(leaderValue(Buffer.from('n1\0'), '32', performance.now(), null));
  assert.equal((board.snapshot().leader as { isThisNode: boolean }).isThisNode, false, 'a trailing NUL is another value');
  const echoed = `HTTP 500: {"headers":{"x-consul-token":"${TOKEN}"}} ${'z'.repeat(MIB)}`;
  board.view({ kind: 'unreachable', since: performance.now(), error: new Error(echoed), failures: 1, last: null });
  const text = JSON.stringify(board.snapshot(), null, 2);
  assert.ok(Buffer.byteLength(text) < 48 * 1024, `${Buffer.byteLength(text)} bytes`);
  assert.equal(text.includes(TOKEN), false, 'no token in /status');
  const lastError = (board.snapshot().dcs as { lastError: string }).lastError;
  assert.match(lastError, /"x-consul-token":"\*{5}"/);
  assert.match(lastError, /… \(\d+ characters in all\)$/);
  assert.ok(board.line().length < 400, board.line());
});

test('ops HTTP: a /status past its cap is a short 500; /healthz still answers', async () => {
  let status: unknown = { small: true };
  const server = createOpsHttp({
    enabled: true, listen: '127.0.0.1:0', status: () => status, health: () => ({ ok: true }),
    metrics: new Metrics({ version: '0', dcsType: 'etcd', managerType: 'basic', defaultMetrics: false }),
  });
  await server.start();
  try {
    const port = server.address()!.port;
    const get = (path: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal((await get('/status')).status, 200);
    status = { big: 'q'.repeat(MAX_STATUS_BYTES) };
    const big = await get('/status');
    assert.equal(big.status, 500);
    assert.ok(big.body.length < 300, big.body);
    assert.match(big.body, /status document too large/);
    assert.equal((await get('/healthz')).status, 200);
  } finally {
    await server.close();
  }
});
