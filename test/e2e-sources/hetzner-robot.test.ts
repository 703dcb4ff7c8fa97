// manager-type hetzner end to end: two real daemons in node namespaces, driven by a real etcd
// on the switch address, move a Hetzner Robot failover IP between them through the Robot
// stand-in (test/standins/hetzner-robot.ts on the real clock, listening on the switch address).
// Each server's main IP is its eth0 primary address (n1 203.0.113.11, n2 203.0.113.12), so the
// stand-in's active_server_ip shows who holds the failover IP.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { realClock } from '../../src/vip/hetzner-clock.js';
import { eventually, hasVip, type Daemon } from '../harness/daemon.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { RobotStandin, type RobotStandinOptions } from '../standins/hetzner-robot.js';
import { allOutput, createSourcesBed, NAMES, sleep, SWITCH_IP, type SourcesBed } from './bed.js';

const KEY = '/service/test/leader';
/** The failover IP (a documentation address outside the LAN: Robot routes it, nothing is added). */
const FIP = '198.51.100.10';
const SERVER_IPS = ['203.0.113.11', '203.0.113.12'] as const;
const USER = 'robot-ws-user';
const PASS = 'Rob0t-s3cret-Pa55word';
const WRONG_PASS = 'n0t-the-Rob0t-Pa55word';

function secretsIn(d: Daemon, ...secrets: string[]): string[] {
  const out = allOutput(d);
  const forms = secrets.flatMap((s) => [s, Buffer.from(`${USER}:${s}`).toString('base64')]);
  return forms.filter((f) => out.includes(f));
}

describe('daemon with manager-type hetzner (Robot stand-in, real etcd, real daemons)', { concurrency: false }, () => {
  let bed: SourcesBed;
  let etcd: EtcdServer;
  let kv: Etcd3;
  let robot: RobotStandin;
  let dir: string;
  let creds: string;
  const extraRobots: RobotStandin[] = [];

  function robotOpts(over: Partial<RobotStandinOptions> = {}): RobotStandinOptions {
    return {
      clock: realClock, host: SWITCH_IP, user: USER, pass: PASS,
      failoverIps: [{ ip: FIP, serverIp: SERVER_IPS[0], serverNumber: 4711, active: null }],
      servers: [...SERVER_IPS],
      ...over,
    };
  }

  function args(i: 0 | 1, r: RobotStandin, extra: string[] = [], credentials = creds): string[] {
    return [
      '--ip', FIP, '--netmask', '32', '--interface', 'eth0',
      '--trigger-key', KEY, '--trigger-value', NAMES[i], '--dcs-endpoints', etcd.clientUrl,
      '--manager-type', 'hetzner', '--hetzner-api-url', r.url, '--hetzner-credentials-file', credentials,
      '--retry-after', '100', '--retry-num', '3',
      ...extra,
    ];
  }

  function credentialsFile(name: string, pass: string, mode: number): string {
    const f = join(dir, name);
    writeFileSync(f, `# Robot webservice user\nuser="${USER}"\npass="${pass}"\n`);
    chmodSync(f, mode);
    return f;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmt-robot-'));
    // Also on an early exit (Ctrl-C, a crash): the directory holds a password file.
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    creds = credentialsFile('hetzner', PASS, 0o600);
    bed = await createSourcesBed();
    etcd = await startEtcd({ host: SWITCH_IP });
    kv = etcd.client();
    robot = await RobotStandin.start(robotOpts());
  });
  after(async () => {
    await bed?.stopAll();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await Promise.allSettled([robot?.close(), ...extraRobots.map((r) => r.close())]);
    await etcd?.dispose(); // closes kv too
    await bed?.dispose();
  });
  afterEach(async () => {
    await bed.stopAll();
    await kv.delete().key(KEY);
    robot.routeTo(FIP, null);
  });

  test('the failover IP follows the leader key: n1 → 203.0.113.11, n2 → 203.0.113.12, one POST per move; nothing on the interfaces', async () => {
    const from = robot.server.log.length;
    // --verbose: the debug lines (every Robot request) must not carry the password either.
    const d1 = await bed.start(0, args(0, robot, ['--verbose']));
    const d2 = await bed.start(1, args(1, robot, ['--verbose']));
    await sleep(300);
    assert.equal(robot.active(FIP), null, 'not routed while the key is absent');
    const reqs = () => robot.server.log.slice(from);
    assert.equal(reqs().filter((r) => r.method === 'POST').length, 0, 'no POST without a leader');
    for (const d of [d1, d2]) {
      assert.ok(d.logs.some((r) => r.msg.startsWith("Hetzner Robot: routing the failover IP to this interface's primary address")));
    }

    await kv.put(KEY).value('n1');
    await eventually('routed to n1 (203.0.113.11)', () => robot.active(FIP) === SERVER_IPS[0], 3000);
    await d1.waitForLog((r) => r.transition === 'acquire', 2000, 'n1 acquire');
    await sleep(300);
    assert.equal(robot.active(FIP), SERVER_IPS[0], 'stays on n1');

    await kv.put(KEY).value('n2');
    await eventually('routed to n2 (203.0.113.12)', () => robot.active(FIP) === SERVER_IPS[1], 3000);
    await d1.waitForLog((r) => r.transition === 'release' && r.cause === 'key-other', 2000, 'n1 release');

    await kv.put(KEY).value('n1');
    await eventually('routed back to n1', () => robot.active(FIP) === SERVER_IPS[0], 3000);

    // Deleting the key releases, but without hetzner-unroute-on-release nothing is sent: the
    // next leader routes the IP to itself.
    await kv.delete().key(KEY);
    await d1.waitForLog((r) => r.transition === 'release' && r.cause === 'key-absent', 2000, 'n1 release (key-absent)');
    await sleep(300);
    assert.equal(robot.active(FIP), SERVER_IPS[0]);

    const posts = reqs().filter((r) => r.method === 'POST');
    assert.deepEqual(posts.map((r) => r.body), [
      `active_server_ip=${SERVER_IPS[0]}`, `active_server_ip=${SERVER_IPS[1]}`, `active_server_ip=${SERVER_IPS[0]}`,
    ], 'exactly one POST per move, each to the new leader');
    assert.ok(posts.every((r) => r.status === 200));
    assert.equal(reqs().filter((r) => r.method === 'DELETE').length, 0);
    const gets = reqs().filter((r) => r.method === 'GET').length;
    assert.ok(gets >= 2 && gets <= 5, `GETs: one per daemon at start, at most one per acquire (${gets})`);
    // Robot routes the failover IP; the daemons add nothing to their interfaces.
    for (const i of [0, 1] as const) assert.equal(hasVip(bed.nodes[i].ns, `${FIP}/32`), false);
    for (const d of [d1, d2]) {
      assert.deepEqual(secretsIn(d, PASS), [], 'the password (or the Basic auth header) is never logged');
      assert.ok(!d.logs.some((r) => r.level >= 50), `no errors:\n${d.transcript()}`);
    }
  });

  test('a restarted leader learns it holds the failover IP from one GET and sends no POST', async () => {
    await kv.put(KEY).value('n1');
    const first = await bed.start(0, args(0, robot));
    await eventually('routed to n1', () => robot.active(FIP) === SERVER_IPS[0], 3000);
    await first.kill();
    const from = robot.server.log.length;
    const second = await bed.start(0, args(0, robot));
    const ready = await second.waitForLog((r) => r.msg.startsWith('ready:'), 1000, 'ready');
    assert.match(ready.msg, /this node holds the VIP/);
    await sleep(500);
    assert.deepEqual(robot.server.log.slice(from).map((r) => r.method), ['GET'], 'one GET at start, no POST');
    assert.ok(!second.logs.some((r) => r.transition === 'acquire'), 'no acquire: it already holds it');
  });

  test('hetzner-unroute-on-release: a release (key deleted, SIGTERM) unroutes the failover IP with a DELETE', async () => {
    const extra = ['--hetzner-unroute-on-release', 'true'];
    await kv.put(KEY).value('n1');
    const d1 = await bed.start(0, args(0, robot, extra));
    await eventually('routed to n1', () => robot.active(FIP) === SERVER_IPS[0], 3000);
    await kv.delete().key(KEY);
    await eventually('unrouted after the key was deleted', () => robot.active(FIP) === null, 3000);
    await d1.waitForLog((r) => r.msg === 'Hetzner failover IP unrouted', 2000, 'the unroute log line');

    await kv.put(KEY).value('n1');
    await eventually('routed to n1 again', () => robot.active(FIP) === SERVER_IPS[0], 3000);
    d1.signal('SIGTERM');
    assert.equal((await d1.waitExit(5000)).code, 0);
    assert.equal(robot.active(FIP), null, 'unrouted on SIGTERM (release-on-stop)');
  });

  test('a credentials file readable by others: the daemon refuses to start (exit 78, EX_CONFIG) with a clear error; no request is sent', async (t) => {
    const loose = credentialsFile('hetzner-644', PASS, 0o644);
    const from = robot.server.log.length;
    const d = await bed.start(0, args(0, robot, [], loose), { waitReady: false });
    const exit = await d.waitExit(10_000);
    assert.equal(exit.code, 78, `exit code ${exit.code} (EX_CONFIG expected: a bad credentials file is a configuration error)`);
    const out = allOutput(d);
    t.diagnostic(`exit ${exit.code}: ${d.logs.find((r) => r.level >= 50)?.msg ?? '(no error record)'}`);
    assert.match(out, new RegExp(`Hetzner Robot credentials file ${loose.replace(/[/.]/g, '\\$&')} has mode 644`));
    assert.match(out, /chmod 600/);
    assert.deepEqual(secretsIn(d, PASS), []);
    assert.equal(robot.server.log.length, from, 'no request reached Robot');
  });

  test('a wrong password: one 401, a clear error naming the file, no retries (no lockout), the failover IP untouched, no secret logged', async () => {
    const r = await RobotStandin.start(robotOpts());
    extraRobots.push(r);
    const wrong = credentialsFile('hetzner-wrong', WRONG_PASS, 0o600);
    await kv.put(KEY).value('n1');
    const d = await bed.start(0, args(0, r, ['--verbose'], wrong), { waitReady: false });
    const fatal = await d.waitForLog((x) => x.msg === 'Hetzner Robot manager stopped talking to the API until restarted', 5000, 'the fatal 401');
    assert.equal(fatal.level, 50);
    assert.match(String(fatal.err), /401 Unauthorized/);
    assert.ok(String(fatal.err).includes(wrong), 'the error names the credentials file');
    await sleep(1000);
    assert.equal(r.active(FIP), null, 'not routed');
    assert.equal(r.failedLogins.length, 1, 'one failed login: Robot blocks the IP after three');
    assert.equal(r.count('POST'), 0);
    assert.equal(d.child.exitCode, null, 'the daemon keeps running (and keeps reading the DCS)');
    assert.deepEqual(secretsIn(d, WRONG_PASS, PASS), []);
  });

  test('a move while Robot still locks the failover IP after the previous switch: the new leader waits for the lock instead of spending its POST budget', async () => {
    const LOCK_MS = 3000;
    const r = await RobotStandin.start(robotOpts({ switchLockMs: LOCK_MS }));
    extraRobots.push(r);
    await kv.put(KEY).value('n1');
    await bed.start(0, args(0, r));
    await bed.start(1, args(1, r));
    await eventually('routed to n1', () => r.active(FIP) === SERVER_IPS[0], 3000);
    const lockedFrom = r.server.log.length;
    await kv.put(KEY).value('n2'); // within the lock of n1's switch
    await sleep(LOCK_MS);
    const locked = r.server.log.slice(lockedFrom).filter((x) => x.method === 'POST' && x.status === 409);
    assert.ok(locked.length >= 1, 'n2 tried and was told FAILOVER_LOCKED');
    assert.ok(locked.length <= 3, `${locked.length} POSTs answered FAILOVER_LOCKED during a ${LOCK_MS} ms lock (the account has 50 POSTs an hour)`);
    await eventually('routed to n2 once the lock is over', () => r.active(FIP) === SERVER_IPS[1], 30_000, 100);
    assert.equal(r.rateLimited, 0, 'never rate limited');
  });
});
