// The daemon with dcs-type patroni, end to end: each node's daemon polls its own (fake) Patroni
// REST API, a server in the switch namespace with one port per node answering GET /leader with
// 200 on the leader and 503 elsewhere; the VIP is checked on the real interfaces.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, describe, test } from 'node:test';
import { eventually, hasVip } from '../harness/daemon.js';
import { createPki, type TestPki } from '../harness/tls.js';
import { createSourcesBed, NAMES, sleep, SWITCH_IP, V4, VIP4, type SourcesBed } from './bed.js';
import { FakePatroni } from './fake-patroni.js';

const INTERVAL = 200;
const RETRY_AFTER = 100;
const RETRY_NUM = 3;

function patroniArgs(endpoint: string, extra: string[] = []): string[] {
  // trigger-key (/leader) and trigger-value (200) are the dcs-type patroni defaults.
  return [
    '--ip', VIP4, '--netmask', '24', '--interface', 'eth0',
    '--dcs-type', 'patroni', '--dcs-endpoints', endpoint, '--interval', String(INTERVAL),
    '--retry-after', String(RETRY_AFTER), '--retry-num', String(RETRY_NUM), '--announce-count', '2', '--announce-interval', '50',
    ...extra,
  ];
}

describe('daemon with dcs-type patroni (a fake Patroni REST API per node)', { concurrency: false }, () => {
  let bed: SourcesBed;
  let pki: TestPki;
  const servers: FakePatroni[] = [];
  const v = (i: 0 | 1) => hasVip(bed.nodes[i].ns, V4);

  /** One fake Patroni per node (n1, n2), both replicas at first. */
  async function apis(tls?: { key: Buffer; cert: Buffer }): Promise<[FakePatroni, FakePatroni]> {
    const made = [await FakePatroni.start({ host: SWITCH_IP, name: NAMES[0], tls }), await FakePatroni.start({ host: SWITCH_IP, name: NAMES[1], tls })];
    servers.push(...made);
    return made as [FakePatroni, FakePatroni];
  }

  before(async () => {
    bed = await createSourcesBed();
    pki = createPki([SWITCH_IP]);
  });
  after(async () => {
    await bed?.stopAll();
    await Promise.all(servers.map((s) => s.close()));
    pki?.dispose();
    await bed?.dispose();
  });
  afterEach(async () => {
    await bed.stopAll();
    await Promise.all(servers.splice(0).map((s) => s.close()));
    for (const i of [0, 1] as const) if (v(i)) bed.nodes[i].ns.ip('addr', 'del', V4, 'dev', 'eth0');
  });

  test('the VIP follows the node whose /leader answers 200; 503 everywhere → removed', async () => {
    const [p1, p2] = await apis();
    const d1 = await bed.start(0, patroniArgs(p1.url));
    const d2 = await bed.start(1, patroniArgs(p2.url));
    await sleep(3 * INTERVAL);
    assert.equal(v(0) || v(1), false, 'no VIP while both answer 503');

    p1.leader = true;
    await eventually('VIP on n1', () => v(0), 2000);
    assert.equal(v(1), false);
    await sleep(3 * INTERVAL);
    assert.equal(v(0) && !v(1), true, 'it stays on n1 only');

    // A switchover: the old leader answers 503 first, then the new one 200.
    p1.leader = false;
    p2.leader = true;
    await eventually('VIP moved to n2', () => v(1) && !v(0), 2000);
    const rel = await d1.waitForLog((r) => r.transition === 'release', 2000, 'n1 release');
    assert.equal(rel.cause, 'key-other');
    assert.equal(rel.value, '503', 'the view is the HTTP status');
    assert.equal((await d2.waitForTransition('acquire', 0, 2000)).value, '200');

    p2.leader = false;
    await eventually('VIP removed after n2 answers 503', () => !v(0) && !v(1), 2000);
    // Polled, each daemon only its own node's API, at about `interval`.
    assert.ok(p1.requests.length >= 5 && p1.requests.every((r) => r === '/leader'));
    assert.ok(p2.requests.length >= 5 && p2.requests.every((r) => r === '/leader'));
  });

  test('REST API unreachable (closed): hold-lease acts as release after retry-num × retry-after; back when it answers again', async (t) => {
    const [p1] = await apis();
    p1.leader = true;
    const d1 = await bed.start(0, patroniArgs(p1.url));
    await eventually('VIP on n1', () => v(0), 2000);
    const warn = d1.logs.find((r) => r.msg.startsWith('dcs-type patroni gives no lease deadline: dcs-loss hold-lease acts as release'));
    assert.ok(warn, `startup warning missing:\n${d1.transcript()}`);
    assert.match(warn.msg, new RegExp(`retry-num ${RETRY_NUM} × retry-after ${RETRY_AFTER} ms`));

    const mark = d1.logs.length;
    const closedAt = performance.now();
    await p1.close();
    const release = await d1.waitForLog((r) => r.transition === 'release' && d1.logs.indexOf(r) >= mark, 5000, 'n1 release after its REST API went away');
    const after = performance.now() - closedAt;
    t.diagnostic(`released ${after.toFixed(0)} ms after the close`);
    assert.equal(release.cause, 'dcs-lost');
    assert.equal(v(0), false);
    const limit = RETRY_NUM * RETRY_AFTER;
    // Not before retry-num attempts retry-after apart (a little slack for the poll that was in
    // flight when the server closed), and not long after the first failed poll.
    assert.ok(after >= limit - 50, `released ${after.toFixed(0)} ms after the close, before retry-num × retry-after = ${limit} ms`);
    assert.ok(after < limit + INTERVAL + 2000, `released only ${after.toFixed(0)} ms after the close`);
    assert.ok(d1.logs.slice(mark).some((r) => r.msg === 'Patroni REST API is unreachable' && /refused/.test(String(r.err))), 'the outage is logged with its cause');

    await p1.listen();
    await eventually('VIP back on n1 when its REST API answers 200 again', () => v(0), 3000);
  });

  test('dcs-loss keep: the VIP stays while the REST API is unreachable', async () => {
    const [p1] = await apis();
    p1.leader = true;
    const d1 = await bed.start(0, patroniArgs(p1.url, ['--dcs-loss', 'keep']));
    await eventually('VIP on n1', () => v(0), 2000);
    const mark = d1.logs.length;
    await p1.close();
    await d1.waitForLog((r) => r.msg === 'Patroni REST API is unreachable' && d1.logs.indexOf(r) >= mark, 3000, 'n1 noticing the outage');
    await sleep(10 * RETRY_NUM * RETRY_AFTER);
    assert.equal(v(0), true, 'keep holds the VIP');
    await p1.listen();
    p1.leader = false;
    await eventually('released once the API answers 503', () => !v(0), 3000);
  });

  test('TLS: https REST API with a test CA passed as etcd-ca-file; the wrong CA gets no VIP and a clear error', async () => {
    const tls = { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) };
    const [p1, p2] = await apis(tls);
    assert.match(p1.url, /^https:\/\/203\.0\.113\.1:/);
    p1.leader = true;
    p2.leader = true; // n2 would take the VIP too if it could read its API: it must not.
    await bed.start(0, patroniArgs(p1.url, ['--etcd-ca-file', pki.ca]));
    await eventually('VIP on n1 over https', () => v(0), 2000);

    const bad = await bed.start(1, patroniArgs(p2.url, ['--etcd-ca-file', pki.wrongCa]), { waitReady: false });
    const err = await bad.waitForLog((r) => r.msg === 'Patroni REST API is unreachable', 5000, 'the TLS failure');
    assert.match(String(err.err), /certificate|self.signed|verify/i, `the error names the certificate problem: ${String(err.err)}`);
    assert.match(String(err.err), /etcd-ca-file/, 'and points at etcd-ca-file');
    await sleep(5 * INTERVAL);
    assert.equal(v(1), false, 'no VIP without a verified answer');

    p1.leader = false;
    await eventually('VIP removed from n1 when it answers 503 over https', () => !v(0), 2000);
  });
});
