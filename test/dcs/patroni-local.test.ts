// The local Patroni poller (dcs-loss patroni) against a real HTTP server on loopback that
// answers as Patroni's REST API does: GET /primary → 200 or 503 with the status document of
// patroni/api.py get_postgresql_status ({"state": ..., "role": ...}, role "master" before
// Patroni 4, "primary" from 4 on).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { isRunningPrimary, PatroniLocalPrimary, statusFields, type LocalPrimaryAnswer } from '../../src/dcs/patroni/local-primary.js';
import { silentLogger } from '../../src/log.js';

interface Fake { url: string; status: number; body: string; hang: boolean; requests: Array<{ path: string; auth: string | undefined; t: number }> }
const servers: http.Server[] = [];
const pollers: PatroniLocalPrimary[] = [];
after(async () => {
  await Promise.all(pollers.map((p) => p.close()));
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

async function fake(): Promise<Fake> {
  const f: Fake = { url: '', status: 200, body: JSON.stringify({ state: 'running', role: 'master' }), hang: false, requests: [] };
  const server = http.createServer((req, res) => {
    f.requests.push({ path: req.url ?? '', auth: req.headers.authorization, t: performance.now() });
    if (f.hang) return;
    res.writeHead(f.status, { 'content-type': 'application/json' }).end(f.body);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  f.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return f;
}

function poll(f: Fake, over: { intervalMs?: number; user?: string; password?: string } = {}) {
  const answers: LocalPrimaryAnswer[] = [];
  const p = new PatroniLocalPrimary({ url: f.url, tls: {}, intervalMs: over.intervalMs ?? 100, log: silentLogger(), user: over.user, password: over.password });
  pollers.push(p);
  p.start((a) => answers.push(a));
  return { p, answers };
}

async function until<T>(what: string, f: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('Patroni local /primary: what counts as the running primary', () => {
  const cases: Array<[number, string, boolean]> = [
    [200, '{"state":"running","role":"master"}', true],
    [200, '{"state":"running","role":"primary"}', true],
    [200, '{"state":"stopping","role":"master"}', false], // demote('offline') under way
    [200, '{"state":"running","role":"replica"}', false],
    [200, 'not json', false],
    [503, '{"state":"running","role":"replica"}', false],
    [503, '{"state":"running","role":"master"}', false],
  ];
  for (const [status, body, ok] of cases) {
    test(`${status} ${body} → ${ok ? 'primary' : 'not primary'}`, () => {
      const { state, role } = statusFields(Buffer.from(body), false);
      assert.equal(isRunningPrimary(status, state, role), ok);
    });
  }
  test('a truncated body is not a status document', () => {
    assert.deepEqual(statusFields(Buffer.from('{"state":"running","role":"master"}'), true), { state: null, role: null });
  });
});

describe('Patroni local /primary poller', () => {
  test('asks GET /primary every interval (500 ms) and reports each answer with the time it asked', async () => {
    const f = await fake();
    // 500 ms: the 400 ms timeout leaves room for a loaded machine (an 80 ms one timed out here).
    const { answers } = poll(f, { intervalMs: 500 });
    await until('4 answers', () => (answers.length >= 4 ? true : undefined));
    assert.ok(f.requests.every((r) => r.path === '/primary'));
    assert.deepEqual(answers.filter((a) => !(a.ok && a.status === 200 && a.state === 'running')), []);
    // From one request's start to the next (the server sees the first one later: it connects).
    const gaps = answers.slice(1, 4).map((a, i) => a.at - answers[i]!.at);
    assert.ok(gaps.every((g) => g >= 498 && g < 2500), `asked every 500 ms (timers may fire up to 1 ms early): ${gaps.map(Math.round).join(', ')}`);
  });

  test('503, a demotion in progress, and a hang each turn the answer to not primary; a hang within the timeout', async () => {
    const f = await fake();
    const { p, answers } = poll(f, { intervalMs: 400 });
    await until('a first answer', () => answers[0]);
    assert.equal(answers[0]!.ok, true);
    f.status = 503;
    const a503 = await until('503', () => answers.find((a) => a.status === 503));
    assert.equal(a503.ok, false);
    f.status = 200;
    f.body = JSON.stringify({ state: 'stopping', role: 'master' });
    const stopping = await until('stopping', () => answers.find((a) => a.state === 'stopping'));
    assert.equal(stopping.ok, false);
    f.body = JSON.stringify({ state: 'running', role: 'master' });
    const n = answers.length;
    await until('ok again', () => answers.slice(n).find((a) => a.ok));
    f.hang = true;
    const hung = await until('a timed-out request', () => answers.find((a) => a.status === null));
    assert.equal(hung.ok, false);
    assert.equal(p.timeoutMs, 320, 'timeout 80 % of interval');
    const asked = f.requests.at(-1)!.t;
    assert.ok(performance.now() - asked < 2000, 'the hang was reported within the interval plus timeout (and slack)');
  });

  test('sends basic authentication when a user is set, and none otherwise', async () => {
    const f = await fake();
    poll(f, { user: 'patroni', password: 's3cret' });
    await until('a request', () => f.requests[0]);
    assert.equal(f.requests[0]!.auth, `Basic ${Buffer.from('patroni:s3cret').toString('base64')}`);
    const g = await fake();
    poll(g);
    await until('a request', () => g.requests[0]);
    assert.equal(g.requests[0]!.auth, undefined);
  });

  test('connection refused is an answer too: not primary', async () => {
    const f = await fake();
    const s = servers.at(-1)!;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
    const { answers } = poll(f);
    const a = await until('an answer', () => answers[0]);
    assert.equal(a.ok, false);
    assert.equal(a.status, null);
    assert.match(a.error ?? '', /refused/);
  });
});
