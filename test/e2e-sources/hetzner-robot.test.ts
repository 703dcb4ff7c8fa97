// manager-type hetzner end to end: two real daemons in node namespaces, driven by a real etcd
// on the switch address, move a Hetzner Robot failover IP between them through the Robot
// stand-in (test/standins/hetzner-robot.ts on the real clock, listening on the switch address).
// Each server's main IP is its eth0 primary address (n1 203.0.113.11, n2 203.0.113.12), so the
// stand-in's active_server_ip shows who holds the failover IP.
// The stand-in serves HTTPS with a test CA the daemons trust through NODE_EXTRA_CA_CERTS (Node's
// own way to add a CA; nothing in the daemon is test-specific): off loopback the daemon refuses
// http:// API URLs, since the password goes with every request.
// Its switches take Robot's real 40-60 s unless a test shortens them (FAST_SWITCH) to keep the
// file quick; the shutdown test runs them at full length.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { realClock } from '../../src/vip/hetzner/clock.js';
import { eventually, hasVip, isReadyLine as isReady, type Daemon, type LogRecord } from '../harness/daemon.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { createPki, type TestPki } from '../harness/tls.js';
import { ROBOT_SWITCH_MS, RobotStandin, type RobotStandinOptions } from '../standins/hetzner-robot.js';
import { allOutput, createSourcesBed, NAMES, sleep, SWITCH_IP, type SourcesBed, type StartOptions } from './bed.js';

/** A switch long enough to be "under way" for a moment, short enough for a quick file. */
const FAST_SWITCH = 1000;
/** The daemon's shutdown deadline with a provider's API (src/daemon/run.ts). */
const API_SHUTDOWN_DEADLINE_MS = 20_000;
/** systemd's TimeoutStopSec from the packaged unit: the outer bound of any stop. */
const TIMEOUT_STOP_MS = (() => {
  const unit = readFileSync(new URL('../../../packaging/vip-manager.service', import.meta.url), 'utf8');
  const m = /^TimeoutStopSec=(\d+)s$/m.exec(unit);
  if (!m) throw new Error('packaging/vip-manager.service has no TimeoutStopSec=<n>s');
  return Number(m[1]) * 1000;
})();
const KEY = '/service/test/leader';
const KEY2 = '/service/other/leader';
/** The failover IP (a documentation address outside the LAN: Robot routes it, nothing is added). */
const FIP = '198.51.100.10';
const FIP2 = '198.51.100.11';
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
  let pki: TestPki;
  const extraRobots: RobotStandin[] = [];

  /** Switches of FAST_SWITCH unless a test asks for Robot's real time (switchMs undefined). */
  function robotOpts(over: Partial<RobotStandinOptions> = {}): RobotStandinOptions {
    return {
      clock: realClock, host: SWITCH_IP, user: USER, pass: PASS,
      tls: { cert: readFileSync(pki.serverCert, 'utf8'), key: readFileSync(pki.serverKey, 'utf8') },
      failoverIps: [{ ip: FIP, serverIp: SERVER_IPS[0], serverNumber: 4711, active: null }],
      servers: [...SERVER_IPS],
      switchMs: FAST_SWITCH,
      ...over,
    };
  }

  function args(i: 0 | 1, r: RobotStandin, extra: string[] = [], credentials = creds): string[] {
    return [
      '--ip', FIP, '--netmask', '32', '--interface', 'eth0',
      '--trigger-key', KEY, '--trigger-value', NAMES[i], '--dcs-endpoints', etcd.clientUrl,
      '--manager-type', 'hetzner', '--hetzner-api-url', r.url, '--hetzner-credentials-file', credentials,
      ...(extra.includes('--retry-after') ? [] : ['--retry-after', '100', '--retry-num', '3']),
      ...extra,
    ];
  }

  /** Starts a daemon that trusts the stand-in's CA. */
  function start(i: 0 | 1, a: string[], opts: StartOptions = {}): Promise<Daemon> {
    return bed.start(i, a, { ...opts, env: { NODE_EXTRA_CA_CERTS: pki.ca, ...opts.env } });
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
    pki = createPki([SWITCH_IP]);
    process.once('exit', () => pki.dispose());
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
    pki?.dispose();
  });
  afterEach(async () => {
    await bed.stopAll();
    await kv.delete().key(KEY);
    robot.routeTo(FIP, null);
  });

  test('the failover IP follows the leader key: n1 → 203.0.113.11, n2 → 203.0.113.12, one POST per move; nothing on the interfaces', async () => {
    const from = robot.server.log.length;
    // --verbose: the debug lines (every Robot request) must not carry the password either.
    const d1 = await start(0, args(0, robot, ['--verbose']));
    const d2 = await start(1, args(1, robot, ['--verbose']));
    await sleep(300);
    assert.equal(robot.active(FIP), null, 'not routed while the key is absent');
    const reqs = () => robot.server.log.slice(from);
    assert.equal(reqs().filter((r) => r.method === 'POST').length, 0, 'no POST without a leader');
    for (const d of [d1, d2]) {
      assert.ok(d.logs.some((r) => r.msg.startsWith("Hetzner Robot: routing the failover IP to this interface's primary address")));
    }

    await kv.put(KEY).value('n1');
    // Each move includes a FAST_SWITCH switch; the bounds only stop a hung test.
    await eventually('routed to n1 (203.0.113.11)', () => robot.active(FIP) === SERVER_IPS[0], 15_000);
    await d1.waitForLog((r) => r.transition === 'acquire', 10_000, 'n1 acquire');
    await sleep(300);
    assert.equal(robot.active(FIP), SERVER_IPS[0], 'stays on n1');

    await kv.put(KEY).value('n2');
    await eventually('routed to n2 (203.0.113.12)', () => robot.active(FIP) === SERVER_IPS[1], 15_000);
    await d1.waitForLog((r) => r.transition === 'release' && r.cause === 'key-other', 10_000, 'n1 release');

    await kv.put(KEY).value('n1');
    await eventually('routed back to n1', () => robot.active(FIP) === SERVER_IPS[0], 15_000);

    // Deleting the key releases, but without hetzner-unroute-on-release nothing is sent: the
    // next leader routes the IP to itself.
    await kv.delete().key(KEY);
    await d1.waitForLog((r) => r.transition === 'release' && r.cause === 'key-absent', 10_000, 'n1 release (key-absent)');
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

  test('a restarted leader learns it holds the failover IP from one GET and sends no POST', async (t) => {
    await kv.put(KEY).value('n1');
    const first = await start(0, args(0, robot));
    await eventually('routed to n1', () => robot.active(FIP) === SERVER_IPS[0], 15_000);
    await first.kill();
    const from = robot.server.log.length;
    // A restarted holder keeps the VIP only while the DCS has not been silent for the startup
    // window (retry-num × retry-after, as dcs-loss says). The other tests' 3 × 100 ms was too
    // short here under load: the first etcd answer came later, the daemon released
    // (startup-lost) and read the routing again to re-acquire — the 2-GET flake. (It was worse
    // before: the window also ran during the manager's own GET, before etcd was even asked.)
    // This test is not about that window: give it 5 × 2000 ms, over 5× the whole start-up
    // measured under load (daemon start to first answer applied: up to 1.6 s).
    const second = await start(0, args(0, robot, ['--retry-after', '2000', '--retry-num', '5']));
    const ready = await second.waitForLog(isReady, 10_000, 'ready');
    assert.match(ready.msg, /this node holds the VIP/);
    const starting = second.logs.find((x) => x.msg.startsWith('vip-manager ') && x.msg.includes(' starting: '))!;
    t.diagnostic(`daemon start → first DCS answer applied: ${ready.time - starting.time} ms (startup window 10000 ms)`);
    assert.deepEqual(second.transitions().map((r) => `${r.transition} ${r.cause}`), [], 'neither released nor re-acquired');
    // Nothing more may follow; one housekeeping tick (10 s) would send nothing either.
    await sleep(1000);
    assert.deepEqual(robot.server.log.slice(from).map((r) => r.method), ['GET'], 'one GET at start, no POST');
    assert.deepEqual(second.transitions(), []);
  });

  test('hetzner-unroute-on-release: a release (key deleted, SIGTERM) unroutes the failover IP with a DELETE', async () => {
    const extra = ['--hetzner-unroute-on-release', 'true'];
    await kv.put(KEY).value('n1');
    const d1 = await start(0, args(0, robot, extra));
    await eventually('routed to n1', () => robot.active(FIP) === SERVER_IPS[0], 15_000);
    await kv.delete().key(KEY);
    await eventually('unrouted after the key was deleted', () => robot.active(FIP) === null, 15_000);
    await d1.waitForLog((r) => r.msg === 'Hetzner failover IP unrouted', 10_000, 'the unroute log line');

    await kv.put(KEY).value('n1');
    await eventually('routed to n1 again', () => robot.active(FIP) === SERVER_IPS[0], 15_000);
    d1.signal('SIGTERM');
    // A FAST_SWITCH unroute ends well inside the shutdown deadline: answered, logged, exit 0.
    assert.equal((await d1.waitExit(TIMEOUT_STOP_MS)).code, 0);
    assert.equal(robot.active(FIP), null, 'unrouted on SIGTERM (release-on-stop)');
    assert.ok(d1.logs.some((r) => r.transition === 'release' && r.cause === 'shutdown'), 'the release completed before the exit');
    assert.ok(!d1.logs.some((r) => /shutdown deadline/.test(r.msg)));
  });

  test(`SIGTERM during Robot's real ${ROBOT_SWITCH_MS.min / 1000}-${ROBOT_SWITCH_MS.max / 1000} s switch (an unroute, a route): the daemon waits for the answer until its ${API_SHUTDOWN_DEADLINE_MS / 1000} s deadline, names the unanswered request, exits 0 inside TimeoutStopSec; Robot finishes both switches`, async (t) => {
    const r = await RobotStandin.start(robotOpts({
      switchMs: undefined, // Robot's real switch time
      failoverIps: [
        // n1 holds FIP (its restart learns so from one GET) and unroutes it on release.
        { ip: FIP, serverIp: SERVER_IPS[0], serverNumber: 4711, active: SERVER_IPS[0] },
        // n2 is routing FIP2 to itself when the stop comes.
        { ip: FIP2, serverIp: SERVER_IPS[1], serverNumber: 4712, active: null },
      ],
    }));
    extraRobots.push(r);
    await kv.put(KEY).value('n1');
    await kv.put(KEY2).value('n2');
    const d1 = await start(0, args(0, r, ['--hetzner-unroute-on-release', 'true']));
    const d2 = await start(1, ['--ip', FIP2, '--netmask', '32', '--interface', 'eth0', '--trigger-key', KEY2, '--trigger-value', 'n2',
      '--dcs-endpoints', etcd.clientUrl, '--manager-type', 'hetzner', '--hetzner-api-url', r.url, '--hetzner-credentials-file', creds],
    { waitReady: false });
    await eventually('n2 routing FIP2 to itself (POST under way)', () => r.switching(FIP2), 15_000);
    const from = r.server.log.length;
    const t0 = performance.now();
    d1.signal('SIGTERM');
    d2.signal('SIGTERM');
    await eventually('n1 unrouting FIP (DELETE under way)', () => r.switching(FIP), 10_000);

    const exits = await Promise.all([d1, d2].map(async (d) => {
      const e = await d.waitExit(TIMEOUT_STOP_MS + 10_000);
      return { ...e, afterMs: performance.now() - t0 };
    }));
    const late = (d: Daemon): LogRecord | undefined => d.logs.find((x) => x.level === 40 && /^shutdown deadline of \d+ ms reached/.test(x.msg));
    for (const [i, d] of [d1, d2].entries()) {
      const e = exits[i]!;
      t.diagnostic(`n${i + 1}: exit ${e.code} ${Math.round(e.afterMs)} ms after SIGTERM; ${late(d)?.msg ?? '(no deadline line)'}`);
      assert.equal(e.code, 0, `n${i + 1}: the stop signal's exit code (a switch in flight is no failure)`);
      // The deadline itself is the behaviour under test: not before it (the answer was waited
      // for), and before systemd's TimeoutStopSec would SIGKILL.
      assert.ok(e.afterMs >= API_SHUTDOWN_DEADLINE_MS, `n${i + 1} exited ${Math.round(e.afterMs)} ms after SIGTERM, before the deadline`);
      assert.ok(e.afterMs < TIMEOUT_STOP_MS, `n${i + 1} exited ${Math.round(e.afterMs)} ms after SIGTERM, past TimeoutStopSec`);
      assert.ok(d.logs.at(-1)?.msg === 'vip-manager stopped', `n${i + 1} ended with its stop line:\n${d.transcript()}`);
      assert.ok(!d.logs.some((x) => x.transition === 'release' && x.cause === 'shutdown'), 'no release claimed: its answer never came');
    }
    const inFlight = (d: Daemon) => (late(d)?.inFlight as { what: string; ageMs: number }[] | undefined)?.map((q) => q.what);
    assert.deepEqual(inFlight(d1), [`Robot DELETE /failover/${FIP}`], 'n1 names the unanswered unroute');
    assert.deepEqual(inFlight(d2), [`Robot POST /failover/${FIP2}`], 'n2 names the unanswered route');
    assert.match(late(d1)!.msg, /exiting without the answer: the provider carries out the change it accepted/);

    // What Robot saw: one DELETE after the stop and nothing else; both requests kept open
    // until the daemon's deadline, then left; both switches still running at that moment.
    assert.deepEqual(r.server.log.slice(from).map((q) => `${q.method} ${q.path}`), [`DELETE /failover/${FIP}`]);
    const writes = r.server.log.filter((x) => x.method !== 'GET');
    await eventually('Robot saw both clients leave unanswered', () => writes.every((q) => q.abandoned === true), 10_000);
    for (const q of writes) {
      assert.ok(q.goneAt! - t0 >= API_SHUTDOWN_DEADLINE_MS, `${q.method} given up ${Math.round(q.goneAt! - t0)} ms after SIGTERM`);
    }
    await eventually('Robot finished both switches', () => !r.switching(FIP) && !r.switching(FIP2), ROBOT_SWITCH_MS.max + 30_000, 100);
    assert.equal(r.active(FIP), null, 'FIP unrouted: the DELETE the daemon left was carried out');
    assert.equal(r.active(FIP2), SERVER_IPS[1], 'FIP2 routed to n2: the POST the daemon left was carried out');
    for (const sw of r.switches) {
      assert.ok(sw.ms >= ROBOT_SWITCH_MS.min && sw.ms <= ROBOT_SWITCH_MS.max, `a ${sw.ms} ms switch`);
      assert.equal(sw.abandoned, true);
    }
  });

  test('a credentials file readable by others: the daemon refuses to start (exit 78, EX_CONFIG) with a clear error; no request is sent', async (t) => {
    const loose = credentialsFile('hetzner-644', PASS, 0o644);
    const from = robot.server.log.length;
    const d = await start(0, args(0, robot, [], loose), { waitReady: false });
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
    const d = await start(0, args(0, r, ['--verbose'], wrong), { waitReady: false });
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
    // Both running before the first move, so n2 reacts to the second one at once, inside the
    // lock that follows n1's switch (a daemon started only then could miss the lock under load).
    await start(0, args(0, r));
    await start(1, args(1, r));
    await kv.put(KEY).value('n1');
    await eventually('routed to n1', () => r.active(FIP) === SERVER_IPS[0], 15_000);
    const lockedFrom = r.server.log.length;
    await kv.put(KEY).value('n2'); // within the lock of n1's switch
    await sleep(LOCK_MS);
    const locked = r.server.log.slice(lockedFrom).filter((x) => x.method === 'POST' && x.status === 409);
    const seen = () => r.server.log.map((x) => `${Math.round(x.at - r.switches[0]!.startedAt)} ms ${x.method} ${x.status ?? '…'} ${x.body}`).join('\n');
    assert.ok(locked.length >= 1, `n2 tried and was told FAILOVER_LOCKED; Robot saw (from n1's switch):\n${seen()}`);
    assert.ok(locked.length <= 3, `${locked.length} POSTs answered FAILOVER_LOCKED during a ${LOCK_MS} ms lock (the account has 50 POSTs an hour)`);
    await eventually('routed to n2 once the lock is over', () => r.active(FIP) === SERVER_IPS[1], 30_000, 100);
    assert.equal(r.rateLimited, 0, 'never rate limited');
  });
});
