// manager-type hetzner-cloud end to end: two real daemons in node namespaces, driven by a real
// etcd on the switch address, move a Hetzner Cloud floating IP between them through the Cloud
// stand-in (test/standins/hetzner-cloud.ts on the real clock: actions are created `running` and
// end `success` a second later, polled with GET /actions/{id}), and add the floating IP to the
// holder's eth0 and remove it from the node that gives it up, as Hetzner requires ("you must
// configure them inside your operating system"). n1 is server 1001, n2 server 1002, so the
// stand-in's floating_ip.server shows who holds it and each node's eth0 shows who answers for it.
// The stand-in serves HTTPS with a test CA the daemons trust through NODE_EXTRA_CA_CERTS: off
// loopback the daemon refuses http:// API URLs, since the token goes with every request.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { realClock } from '../../src/vip/hetzner/clock.js';
import { eventually, hasVip, type Daemon, type LogRecord } from '../harness/daemon.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { createPki, type TestPki } from '../harness/tls.js';
import { CloudStandin } from '../standins/hetzner-cloud.js';
import { allOutput, createSourcesBed, NAMES, SWITCH_IP, type SourcesBed, type StartOptions } from './bed.js';

const KEY = '/service/test/leader';
/** The floating IP: a documentation address outside the LAN, added as /32 to the holder's eth0. */
const FIP = '198.51.100.20';
const FIP_CIDR = `${FIP}/32`;
const FIP_ID = 4711;
const SERVER_IDS = [1001, 1002] as const;
const TOKEN = 'hcloud-T0ken-for-the-e2e-bed-0123456789abcdefghijklmnopqrstuvwxyz';
/** How long an action runs on the stand-in (the API reference gives no figure; seconds in practice). */
const ACTION_MS = 1000;
/** The daemon's shutdown deadline with a provider's API (src/daemon/run.ts). */
const API_SHUTDOWN_DEADLINE_MS = 20_000;

const added = (r: LogRecord) => r.msg === 'floating IP added to the interface';
const removed = (r: LogRecord) => r.msg === 'floating IP removed from the interface';

describe('daemon with manager-type hetzner-cloud (Cloud stand-in on the real clock, real etcd, real daemons)', { concurrency: false }, () => {
  let bed: SourcesBed;
  let etcd: EtcdServer;
  let kv: Etcd3;
  let cloud: CloudStandin;
  let pki: TestPki;
  let dir: string;
  let tokenFile: string;

  function args(i: 0 | 1, extra: string[] = []): string[] {
    return [
      '--ip', FIP, '--netmask', '32', '--interface', 'eth0',
      '--trigger-key', KEY, '--trigger-value', NAMES[i], '--dcs-endpoints', etcd.clientUrl,
      '--manager-type', 'hetzner-cloud', '--hcloud-api-url', cloud.url, '--hcloud-token-file', tokenFile,
      // No metadata service on the bed's LAN: each node is told its server id.
      '--hcloud-server-id', String(SERVER_IDS[i]),
      ...extra,
    ];
  }

  function start(i: 0 | 1, a: string[], opts: StartOptions = {}): Promise<Daemon> {
    return bed.start(i, a, { ...opts, env: { NODE_EXTRA_CA_CERTS: pki.ca, ...opts.env } });
  }

  const assignedTo = () => cloud.floating.get(FIP_ID)?.server ?? null;
  const actions = () => [...cloud.actions.values()];
  const onNode = (i: 0 | 1) => hasVip(bed.nodes[i].ns, FIP_CIDR);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmt-hcloud-'));
    // Also on an early exit: the directory holds a token file.
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    tokenFile = join(dir, 'hcloud-token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    chmodSync(tokenFile, 0o600);
    pki = createPki([SWITCH_IP]);
    process.once('exit', () => pki.dispose());
    bed = await createSourcesBed();
    etcd = await startEtcd({ host: SWITCH_IP });
    kv = etcd.client();
    cloud = await CloudStandin.start({
      clock: realClock, host: SWITCH_IP,
      tls: { cert: readFileSync(pki.serverCert, 'utf8'), key: readFileSync(pki.serverKey, 'utf8') },
      token: TOKEN,
      floatingIps: [{ id: FIP_ID, ip: FIP, type: 'ipv4', server: null }],
      servers: [...SERVER_IDS],
      instanceId: SERVER_IDS[0],
      actionMs: ACTION_MS,
    });
  });
  after(async () => {
    await bed?.stopAll();
    await cloud?.close();
    await etcd?.dispose(); // closes kv too
    await bed?.dispose();
    pki?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await bed.stopAll();
    await kv.delete().key(KEY);
    cloud.assign(FIP_ID, null);
    for (const i of [0, 1] as const) if (onNode(i)) bed.nodes[i].ns.ip('addr', 'del', FIP_CIDR, 'dev', 'eth0');
  });

  test('the floating IP follows the leader key: assigned to the leader\'s server and on its eth0 only, moved back and forth; one assign per move', async () => {
    const from = cloud.api.log.length;
    const d1 = await start(0, args(0, ['--verbose']));
    const d2 = await start(1, args(1, ['--verbose']));
    assert.equal(assignedTo(), null, 'not assigned while the key is absent');
    assert.deepEqual([onNode(0), onNode(1)], [false, false]);

    // Each step waits for what the daemon says it did, then checks the API's and the kernel's
    // state; the bounds only stop a hung test (each move is an action of ACTION_MS).
    await kv.put(KEY).value('n1');
    await d1.waitForLog((r) => r.transition === 'acquire', 15_000, 'n1 acquire');
    assert.equal(assignedTo(), SERVER_IDS[0], 'assigned to n1 (server 1001)');
    assert.deepEqual([onNode(0), onNode(1)], [true, false], 'the floating IP on n1\'s eth0 only');
    assert.ok(d1.logs.some(added));

    let n1Logs = d1.logs.length;
    await kv.put(KEY).value('n2');
    await d2.waitForLog((r) => r.transition === 'acquire', 15_000, 'n2 acquire');
    await d1.waitForLog((r) => r.transition === 'release' && r.cause === 'key-other' && d1.logs.indexOf(r) >= n1Logs, 15_000, 'n1 release');
    assert.equal(assignedTo(), SERVER_IDS[1], 'assigned to n2 (server 1002)');
    assert.deepEqual([onNode(0), onNode(1)], [false, true], 'the floating IP moved from n1\'s eth0 to n2\'s');
    assert.ok(d1.logs.some(removed), 'n1 said it removed the address');

    n1Logs = d1.logs.length;
    const n2Logs = d2.logs.length;
    await kv.put(KEY).value('n1');
    await d1.waitForLog((r) => r.transition === 'acquire' && d1.logs.indexOf(r) >= n1Logs, 15_000, 'n1 acquire again');
    await d2.waitForLog((r) => r.transition === 'release' && d2.logs.indexOf(r) >= n2Logs, 15_000, 'n2 release');
    assert.equal(assignedTo(), SERVER_IDS[0]);
    assert.deepEqual([onNode(0), onNode(1)], [true, false]);

    // Deleting the key: the holder takes the address off its interface; without
    // hcloud-unassign-on-release the assignment stays for the next leader to change.
    n1Logs = d1.logs.length;
    await kv.delete().key(KEY);
    await d1.waitForLog((r) => r.transition === 'release' && r.cause === 'key-absent' && d1.logs.indexOf(r) >= n1Logs, 15_000, 'n1 release (key-absent)');
    assert.deepEqual([onNode(0), onNode(1)], [false, false], 'on no interface without a leader');
    assert.equal(assignedTo(), SERVER_IDS[0], 'the assignment is left for the next leader');

    const reqs = cloud.api.log.slice(from);
    const assigns = reqs.filter((r) => r.method === 'POST');
    assert.deepEqual(assigns.map((r) => `${r.path} ${r.body}`), [
      `/v1/floating_ips/${FIP_ID}/actions/assign {"server":${SERVER_IDS[0]}}`,
      `/v1/floating_ips/${FIP_ID}/actions/assign {"server":${SERVER_IDS[1]}}`,
      `/v1/floating_ips/${FIP_ID}/actions/assign {"server":${SERVER_IDS[0]}}`,
    ], 'exactly one assign per move, each to the new leader');
    assert.ok(assigns.every((r) => r.status === 201));
    assert.ok(actions().every((a) => a.status === 'success'), 'every action ended in success');
    // Each assign was followed to its end: GET /actions/{id} (or the floating-IP-scoped form)
    // until it said success, never more than a few polls for a 1 s action.
    const polls = reqs.filter((r) => r.method === 'GET' && /\/actions\/\d+$/.test(r.path)).length;
    assert.ok(polls >= 3 && polls <= 3 * 6, `action polls: ${polls}`);
    assert.equal(cloud.rateLimited, 0);
    assert.equal(cloud.unauthorized, 0);
    for (const d of [d1, d2]) {
      assert.ok(!allOutput(d).includes(TOKEN), 'the token is never logged, not even at debug level');
      assert.ok(!d.logs.some((r) => r.level >= 50), `no errors:\n${d.transcript()}`);
    }
  });

  test('hcloud-unassign-on-release with SIGTERM: the holder removes the address, unassigns (action followed to success), exits 0 within the deadline', async () => {
    await kv.put(KEY).value('n1');
    const d1 = await start(0, args(0, ['--hcloud-unassign-on-release', 'true']));
    await d1.waitForLog((r) => r.transition === 'acquire', 15_000, 'n1 acquire');
    assert.equal(assignedTo(), SERVER_IDS[0]);
    assert.equal(onNode(0), true);
    const t0 = performance.now();
    d1.signal('SIGTERM');
    const exit = await d1.waitExit(API_SHUTDOWN_DEADLINE_MS + 10_000);
    assert.equal(exit.code, 0);
    assert.ok(performance.now() - t0 < API_SHUTDOWN_DEADLINE_MS, 'an unassign (one action) ends well inside the shutdown deadline');
    assert.equal(onNode(0), false, 'the address left the interface');
    assert.equal(assignedTo(), null, 'unassigned');
    const unassign = actions().find((a) => a.command === 'unassign_floating_ip');
    assert.equal(unassign?.status, 'success');
    assert.ok(d1.logs.some((r) => r.msg === 'Hetzner Cloud floating IP unassigned'));
    assert.ok(d1.logs.some((r) => r.transition === 'release' && r.cause === 'shutdown'));
    // The address goes first: nothing may answer for it here once it is unassigned.
    const order = d1.logs.filter((r) => removed(r) || r.msg === 'Hetzner Cloud floating IP unassigned').map((r) => r.msg);
    assert.deepEqual(order, ['floating IP removed from the interface', 'Hetzner Cloud floating IP unassigned']);
  });

  test('a leftover address on a node the floating IP is not assigned to is removed (the API asked first); the holder keeps its own', async () => {
    await kv.put(KEY).value('n1');
    const from = cloud.api.log.length;
    const d1 = await start(0, args(0));
    await d1.waitForLog((r) => r.transition === 'acquire', 15_000, 'n1 acquire');
    // n2 crashed while it held the IP, say, and comes back after n1 took over.
    bed.nodes[1].ns.ip('addr', 'add', FIP_CIDR, 'dev', 'eth0');
    const d2 = await start(1, args(1));
    const gone = await d2.waitForLog((r) => r.msg === 'removed the floating IP from the interface: the API says it is assigned elsewhere', 30_000, 'the leftover removed');
    assert.equal(gone.assignedTo, SERVER_IDS[0]);
    assert.deepEqual([onNode(0), onNode(1)], [true, false]);
    assert.equal(assignedTo(), SERVER_IDS[0], 'n2 did not touch the assignment');
    assert.deepEqual(cloud.api.log.slice(from).filter((r) => r.method === 'POST').map((r) => r.body), [`{"server":${SERVER_IDS[0]}}`], 'only n1 assigned');
  });
});
