// The daemon with dcs-type consul, against the Consul stand-in on the test LAN: Consul's base64
// value is compared as bytes with trigger-value (another normalisation, a trailing NUL, Latin-1
// or invalid UTF-8 bytes are not this node), and a Consul whose error bodies echo the request
// headers (500 and 403) never gets the X-Consul-Token into a log line or an HTTP answer.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { hasVip } from '../harness/daemon.js';
import { get, getJson, HTTP_PORT, type StatusJson } from '../ops-daemon/scrape.js';
import { ConsulStandin } from '../standins/consul.js';
import { createBed, ETCD_HOST, KEY, VIP4, type Bed } from './bed.js';
import { settledAt } from './values-settle.js';

/** Non-ASCII, so that normalisation and encoding differences are part of the test. */
const TRIGGER = 'nœud-é1';
const EXACT = Buffer.from(TRIGGER, 'utf8');
const CONSUL_KEY = KEY.replace(/^\/+/, '');
const V4 = `${VIP4}/24`;
/** Distinctive enough that a hit cannot be a coincidence. */
const TOKEN = `tok-${randomBytes(12).toString('hex')}`;

describe('daemon on Consul: values compared as bytes; echoed tokens scrubbed', { concurrency: false }, () => {
  let bed: Bed;
  before(async () => { bed = await createBed(); });
  after(async () => { await bed?.dispose(); });
  afterEach(async () => { await Promise.all(bed.daemons.splice(0).map((d) => d.kill())); });

  test('Consul value bytes: only the exact UTF-8 bytes of trigger-value are this node', async () => {
    const consul = await ConsulStandin.start({ host: ETCD_HOST });
    try {
      consul.put(CONSUL_KEY, 'nobody');
      const host = bed.nodes[0].ipv4;
      await bed.start(0, ['--dcs-type', 'consul', '--trigger-value', TRIGGER, '--http-listen', `${host}:${HTTP_PORT}`], { endpoint: consul.url });
      const invalid = Buffer.from(EXACT);
      invalid[invalid.length - 2] = 0xff; // the second byte of é: invalid UTF-8
      const cases: Array<[string, Buffer, boolean]> = [
        ['other normalisation (NFD)', Buffer.from(TRIGGER.normalize('NFD'), 'utf8'), false],
        ['exact', EXACT, true],
        ['Latin-1 bytes', Buffer.from(TRIGGER.replace('œ', 'oe'), 'latin1'), false],
        ['trailing NUL', Buffer.concat([EXACT, Buffer.from([0])]), false],
        ['exact again', EXACT, true],
        ['invalid UTF-8 in place of é', invalid, false],
        ['trailing newline', Buffer.concat([EXACT, Buffer.from('\n')]), false],
      ];
      for (const [what, bytes, ours] of cases) {
        const index = consul.put(CONSUL_KEY, bytes);
        const { status } = await settledAt(host, String(index));
        assert.equal(hasVip(bed.nodes[0].ns, V4), ours, `${what} (${bytes.toString('hex')}): VIP ${ours ? 'missing' : 'taken'}`);
        assert.equal(status.leader?.isThisNode, ours, `${what}: /status isThisNode`);
        if (what.startsWith('invalid')) assert.match(status.leader!.value!, /not valid UTF-8, sha256 [0-9a-f]{12}\)$/);
      }
    } finally {
      await consul.close();
    }
  });

  test('a Consul whose error bodies echo the request headers: the token is in no log line and no answer', async () => {
    let status = 500;
    let echoed = 0;
    const echo = http.createServer((req, res) => {
      echoed++;
      // What a misconfigured proxy or debugging server does: the request headers in the body.
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ headers: req.headers, error: status === 403 ? 'ACL not found' : 'No cluster leader', url: req.url }));
    });
    await new Promise<void>((r) => echo.listen(0, ETCD_HOST, r));
    try {
      const url = `http://${ETCD_HOST}:${(echo.address() as AddressInfo).port}`;
      const host = bed.nodes[1].ipv4;
      const d = await bed.start(1, ['--dcs-type', 'consul', '--consul-token', TOKEN, '--verbose', '--http-listen', `${host}:${HTTP_PORT}`],
        { endpoint: url, waitReady: false });
      const bodies: string[] = [];
      const lastError = async (what: RegExp): Promise<string> => {
        const start = performance.now();
        for (;;) {
          const { json, body } = await getJson<StatusJson>(host, '/status').catch(() => ({ json: null, body: '' }));
          if (body) bodies.push(body);
          const e = json?.dcs.lastError;
          if (e && what.test(e)) return e;
          if (performance.now() - start > 10_000) throw new Error(`no lastError matching ${what}; last /status: ${body}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      const e500 = await lastError(/HTTP 500/);
      assert.match(e500, /"x-consul-token":"\*{5}"/, 'the echoed header is there, masked');
      await d.waitForLog((r) => r.msg === 'Consul is unreachable', 10_000, 'the unreachable warning');

      status = 403;
      const e403 = await lastError(/403/);
      assert.match(e403, /\*{5}/, e403);
      await d.waitForLog((r) => r.msg === 'Consul ACL error', 10_000, 'the ACL error');
      for (const path of ['/healthz', '/readyz', '/metrics', '/status']) bodies.push((await get(host, path)).body);

      assert.ok(echoed >= 2, 'the echo server was asked');
      const everything = [...bodies, ...d.logs.map((r) => JSON.stringify(r)), ...d.rawLines];
      const leaks = everything.filter((s) => s.includes(TOKEN));
      assert.deepEqual(leaks, [], 'the token shows nowhere');
      assert.ok(d.logs.some((r) => JSON.stringify(r).includes('x-consul-token') && JSON.stringify(r).includes('*****')), 'a log line carried the scrubbed echo');
      assert.ok(e500.length < 1200 && e403.length < 1200, 'error texts are bounded');
    } finally {
      echo.closeAllConnections();
      await new Promise((r) => echo.close(r));
    }
  });
});
