// HetznerRobotManager against the Robot stand-in (test/standins/hetzner-robot.ts) on a fake
// clock: acquire/release, the error codes Robot documents, timeouts, malformed replies, the
// never-retried 401, and an hour of leader flapping inside the 100 GET / 50 POST budget.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { type Config } from '../../src/config/schema.js';
import {
  HetznerAuthError,
  HetznerBudgetError,
  HetznerConfigError,
  HetznerLockedError,
  HetznerRateLimitError,
  HetznerResponseError,
} from '../../src/vip/hetzner/errors.js';
import { createHetznerRobotManager, type HetznerRobotManager, ROBOT_REFRESH_MS } from '../../src/vip/hetzner/robot.js';
import { hetznerConfig } from '../standins/hetzner-config.js';
import { CountingFetch, Driver, FAKE_HOUR_MS, FakeClock } from '../standins/hetzner-fake-clock.js';
import { FakeLocalAddresses } from '../standins/hetzner-local.js';
import { captureLog, type CapturedLog } from '../standins/hetzner-logs.js';
import { RobotStandin } from '../standins/hetzner-robot.js';

const VIP = '198.51.100.10';
const ME = '192.0.2.5';
const OTHER = '192.0.2.6';
const USER = '#ws+robotuser';
const PASS = 'S3cret-Robot-Pass';

const dir = mkdtempSync(join(tmpdir(), 'vip-hetzner-robot-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Rig {
  clock: FakeClock;
  standin: RobotStandin;
  driver: Driver;
  mgr: HetznerRobotManager;
  local: FakeLocalAddresses;
  logs: CapturedLog;
  changes: { n: number };
}

const rigs: Rig[] = [];

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.mgr.close();
    // Nothing of the manager's may keep running after close(): no timer left on the clock.
    assert.equal(r.clock.nextDue(), undefined, 'a timer survived close()');
    await r.standin.close();
    const text = r.logs.text();
    assert.ok(!text.includes(PASS), 'the password reached the log');
    assert.ok(!text.includes(Buffer.from(`${USER}:${PASS}`).toString('base64')), 'the Authorization header reached the log');
  }
});

async function rig(opts: {
  active?: string | null;
  pass?: string;
  cfg?: Partial<Config>;
  start?: boolean;
  primary?: string | null;
  switchLockMs?: number;
  /** Robot's real 40-60 s unless a test needs otherwise (fake time: no real cost). */
  switchMs?: number;
} = {}): Promise<Rig> {
  const clock = new FakeClock();
  const standin = await RobotStandin.start({
    clock,
    user: USER,
    pass: PASS,
    failoverIps: [{ ip: VIP, serverIp: OTHER, serverNumber: 321, active: opts.active === undefined ? OTHER : opts.active }],
    servers: [ME, OTHER],
    switchLockMs: opts.switchLockMs,
    switchMs: opts.switchMs,
  });
  const counting = new CountingFetch();
  const driver = new Driver(clock, counting, [standin]);
  const credFile = join(dir, `creds-${rigs.length}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(credFile, `user="${USER}"\npass="${opts.pass ?? PASS}"\n`);
  chmodSync(credFile, 0o600);
  const cfg = hetznerConfig({
    ip: VIP,
    'manager-type': 'hetzner',
    'hetzner-api-url': standin.url,
    'hetzner-credentials-file': credFile,
    ...opts.cfg,
  });
  const local = new FakeLocalAddresses({ eth0: opts.primary === undefined ? ME : opts.primary });
  const logs = captureLog();
  const mgr = createHetznerRobotManager(cfg, local, logs.log, clock, { fetch: counting.fetch });
  const changes = { n: 0 };
  const r = { clock, standin, driver, mgr, local, logs, changes };
  rigs.push(r);
  if (opts.start !== false) await driver.run(mgr.start(() => changes.n++));
  return r;
}

describe('HetznerRobotManager', () => {
  it('a restarted holder learns from one GET that it holds the IP and sends no POST', async () => {
    const r = await rig({ active: ME });
    assert.deepEqual(await r.mgr.observe(), { held: true, ready: true });
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.count('GET'), 1);
    assert.equal(r.standin.count('POST'), 0);
  });

  it("uses the interface's primary IPv4 address as this server's IP and adds nothing locally", async () => {
    const r = await rig();
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.active(VIP), ME);
    assert.deepEqual(r.local.calls, ['primary eth0']);
    assert.equal(r.local.addresses.size, 0);
  });

  it('acquire routes to this server with one POST, is idempotent, and confirms once a minute later', async () => {
    const r = await rig();
    assert.deepEqual(await r.mgr.observe(), { held: false, ready: true });
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.active(VIP), ME);
    assert.deepEqual(await r.mgr.observe(), { held: true, ready: true });
    const post = r.standin.server.log.find((q) => q.method === 'POST');
    assert.equal(post?.body, `active_server_ip=${ME}`);
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.count('POST'), 1, 'a second acquire sent another POST');
    assert.equal(r.standin.count('GET'), 1, 'a known foreign routing needs no GET before the POST');
    await r.driver.advance(70_000);
    assert.equal(r.standin.count('GET'), 2, 'no confirming GET after the switch');
  });

  it('release without unroute sends nothing; with unroute it DELETEs only our own routing', async () => {
    const plain = await rig();
    await plain.driver.run(plain.mgr.acquire());
    const before = plain.standin.server.log.length;
    await plain.driver.run(plain.mgr.release());
    await plain.driver.run(plain.mgr.release());
    assert.equal(plain.standin.server.log.length, before);
    assert.equal(plain.standin.active(VIP), ME, 'routing is left for the next leader');
    assert.equal((await plain.mgr.observe()).held, false);

    const un = await rig({ cfg: { 'hetzner-unroute-on-release': true } });
    await un.driver.run(un.mgr.acquire());
    await un.driver.run(un.mgr.release());
    assert.equal(un.standin.active(VIP), null);
    assert.equal(un.standin.count('DELETE'), 1);
    await un.driver.run(un.mgr.release());
    assert.equal(un.standin.count('DELETE'), 1, 'release is not idempotent');

    // Routed elsewhere in the meantime: never unroute another server's IP.
    un.standin.routeTo(VIP, OTHER);
    await un.driver.run(un.mgr.acquire());
    un.standin.routeTo(VIP, OTHER);
    await un.driver.advance(ROBOT_REFRESH_MS + 10_000); // the periodic refresh notices
    assert.equal((await un.mgr.observe()).held, false);
    await un.driver.run(un.mgr.release());
    assert.equal(un.standin.active(VIP), OTHER);
    assert.equal(un.standin.count('DELETE'), 1);
  });

  it('409 FAILOVER_ALREADY_ROUTED counts as success', async () => {
    const r = await rig();
    r.standin.routeTo(VIP, ME); // e.g. an operator in the Robot panel; our cache still says OTHER
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.server.log.at(-1)?.status, 409);
    assert.deepEqual(await r.mgr.observe(), { held: true, ready: true });
  });

  it("409 FAILOVER_ALREADY_ROUTED's failover object is what the manager believes, not what it asked for", async () => {
    // The stand-in's own 409 carries the object, as Robot's does.
    const r = await rig();
    r.standin.routeTo(VIP, ME);
    await r.driver.run(r.mgr.acquire());
    const reply = r.standin.server.log.at(-1);
    assert.equal(reply?.status, 409);
    assert.equal((await r.mgr.observe()).held, true);

    // A 409 whose object names another server (its switch ended meanwhile): not taken for ours.
    const other = await rig({ cfg: { 'retry-num': 1 } });
    const body = (active: string | null) => ({
      error: { status: 409, code: 'FAILOVER_ALREADY_ROUTED', message: 'Failover already routed' },
      failover: { ip: VIP, netmask: '255.255.255.255', server_ip: OTHER, server_number: 321, active_server_ip: active },
    });
    other.standin.inject('POST', { kind: 'reply', status: 409, body: body(OTHER) });
    other.standin.inject('GET', { kind: 'reply', status: 200, body: { failover: body(OTHER).failover } });
    other.standin.inject('POST', { kind: 'reply', status: 409, body: body(OTHER) });
    const err = await other.driver.runRejects(other.mgr.acquire());
    assert.ok(err instanceof HetznerResponseError, String(err));
    assert.match(err.message, new RegExp(`routed to ${OTHER.replace(/\./g, '\\.')}, not ${ME.replace(/\./g, '\\.')}`));
    assert.equal((await other.mgr.observe()).held, false);
    assert.deepEqual(other.standin.server.log.map((q) => `${q.method} ${q.status}`), ['GET 200', 'POST 409', 'GET 200', 'POST 409']);

    // Without the object (the bare error shape), the code alone means "where you asked".
    const bare = await rig();
    bare.standin.inject('POST', { kind: 'reply', status: 409, body: { error: body(ME).error } });
    await bare.driver.run(bare.mgr.acquire());
    assert.equal((await bare.mgr.observe()).held, true);

    // DELETE of an IP someone else already unrouted: the object says null, nothing is retried.
    const un = await rig({ cfg: { 'hetzner-unroute-on-release': true } });
    await un.driver.run(un.mgr.acquire());
    un.standin.inject('DELETE', { kind: 'reply', status: 409, body: body(null) });
    await un.driver.run(un.mgr.release());
    assert.equal(un.standin.count('DELETE'), 1);
    assert.equal((await un.mgr.observe()).held, false);
  });

  it('a switch answers only when Robot has finished it (40-60 s): not held before, the old routing meanwhile, listed as in flight', async () => {
    const r = await rig();
    const t0 = r.clock.now();
    const acquiring = r.mgr.acquire();
    let done = false;
    void acquiring.then(() => (done = true));
    await r.driver.advance(39_000);
    assert.equal(done, false, 'answered before the switch could be over');
    assert.equal(r.standin.active(VIP), OTHER, 'routing changed before the switch ended');
    assert.equal(r.standin.switching(VIP), true);
    assert.deepEqual(r.mgr.inFlight().map((q) => q.what), [`Robot POST /failover/${VIP}`]);
    assert.equal(r.mgr.inFlight()[0]?.ageMs, 39_000);
    await r.driver.run(acquiring);
    const sw = r.standin.switches[0]!;
    assert.ok(sw.ms >= 40_000 && sw.ms <= 60_000, `switch took ${sw.ms} ms`);
    assert.equal(sw.doneAt! - sw.startedAt, sw.ms);
    assert.equal(r.clock.now() - t0, sw.ms, 'acquire returned when the switch ended');
    assert.equal(r.standin.active(VIP), ME);
    assert.deepEqual(await r.mgr.observe(), { held: true, ready: true });
    assert.deepEqual(r.mgr.inFlight(), []);
    // Another POST while a switch runs: FAILOVER_LOCKED (e.g. the other node during ours).
    const other = await rig({ active: OTHER });
    const p = other.mgr.acquire();
    await other.driver.advance(1_000);
    other.standin.inject('GET', { kind: 'reply', status: 200, body: { failover: { ip: VIP, active_server_ip: OTHER } } });
    const res = await fetch(`${other.standin.url}/failover/${VIP}`, {
      method: 'POST',
      headers: { Authorization: `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: `active_server_ip=${OTHER}`,
    });
    assert.equal(res.status, 409);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'FAILOVER_LOCKED');
    await other.driver.run(p);
    assert.equal(other.standin.active(VIP), ME);
  });

  it('FAILOVER_LOCKED is retried later, not hammered, and then succeeds', async () => {
    const r = await rig();
    r.standin.inject('POST', { kind: 'reply', status: 409, body: { error: { status: 409, code: 'FAILOVER_LOCKED', message: 'locked' } } });
    const err = await r.driver.runRejects(r.mgr.acquire());
    assert.ok(err instanceof HetznerLockedError, String(err));
    const failedAt = r.clock.now();
    const changesBefore = r.changes.n;
    await r.driver.advance(19_000);
    assert.equal(r.standin.count('POST'), 1, 'POSTed again while the switch was under way');
    await r.driver.advance(2_000);
    assert.ok(r.changes.n > changesBefore, 'the reconciler was not woken when the lock should be over');
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.active(VIP), ME);
    const posts = r.standin.server.log.filter((q) => q.method === 'POST');
    assert.equal(posts.length, 2);
    assert.ok((posts[1]?.at ?? 0) - failedAt >= 20_000);
    // The lock made the routing uncertain: it was read again before the second POST.
    assert.equal(r.standin.server.log.at(-2)?.method, 'GET');
  });

  it("another node's switch locks the IP for 50 s: deferred every 20 s, then taken", async () => {
    const r = await rig({ switchLockMs: 50_000, active: OTHER });
    r.standin.routeTo(VIP, OTHER, true); // the other node's POST just now
    const t0 = r.clock.now();
    const first = await r.driver.runRejects(r.mgr.acquire());
    assert.ok(first instanceof HetznerLockedError);
    let tries = 1;
    while (r.standin.active(VIP) !== ME && tries < 10) {
      await r.driver.advance(20_000);
      await r.driver.run(r.mgr.acquire()).catch((e: Error) => assert.ok(e instanceof HetznerLockedError, String(e)));
      tries++;
    }
    assert.equal(r.standin.active(VIP), ME);
    const posts = r.standin.server.log.filter((q) => q.method === 'POST');
    assert.deepEqual(posts.map((q) => q.status), [409, 409, 409, 200]);
    for (let i = 1; i < posts.length; i++) assert.ok((posts[i]?.at ?? 0) - (posts[i - 1]?.at ?? 0) >= 20_000);
    assert.ok((posts.at(-1)?.at ?? 0) - t0 >= 50_000);
  });

  it('a 401 is reported once and never retried: exactly one request reaches the API', async () => {
    const r = await rig({ pass: 'wrong-password' });
    assert.equal(r.standin.server.log.length, 1);
    const st = await r.mgr.observe();
    assert.equal(st.ready, false);
    assert.match(st.detail ?? '', /401/);
    assert.match(st.detail ?? '', /ten minutes/);
    const err = await r.driver.runRejects(r.mgr.acquire());
    assert.ok(err instanceof HetznerAuthError);
    assert.ok(!err.message.includes('wrong-password'));
    await r.driver.run(r.mgr.release());
    await r.driver.advance(FAKE_HOUR_MS);
    await r.driver.runRejects(r.mgr.acquire());
    assert.equal(r.standin.server.log.length, 1, 'a second attempt was made after a 401');
    assert.equal(r.standin.lockedOutUntil, 0);
    assert.equal((await r.mgr.observe()).ready, false, 'the manager recovered without a restart');
  });

  it('403 RATE_LIMIT_EXCEEDED blocks the method for the interval the API names, then recovers', async () => {
    const r = await rig();
    r.standin.inject('POST', {
      kind: 'reply',
      status: 403,
      body: { error: { status: 403, code: 'RATE_LIMIT_EXCEEDED', max_request: 50, interval: 300, message: 'rate limit exceeded' } },
    });
    const err = await r.driver.runRejects(r.mgr.acquire());
    assert.ok(err instanceof HetznerRateLimitError);
    const at = r.clock.now();
    // Asking again early is refused locally, without a request.
    const early = await r.driver.runRejects(r.mgr.acquire());
    assert.ok(early instanceof HetznerRateLimitError);
    assert.equal(r.standin.count('POST'), 1);
    const changesBefore = r.changes.n;
    await r.driver.advance(299_000);
    assert.equal(r.standin.count('POST'), 1);
    await r.driver.advance(2_000);
    assert.ok(r.changes.n > changesBefore, 'no wake-up when the interval ended');
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.active(VIP), ME);
    const second = r.standin.server.log.filter((q) => q.method === 'POST')[1];
    assert.ok((second?.at ?? 0) - at >= 300_000);
  });

  it('5xx (FAILOVER_FAILED, maintenance) are retried with backoff, asking before re-posting', async () => {
    const r = await rig();
    r.standin.inject('POST', { kind: 'reply', status: 500, body: { error: { status: 500, code: 'FAILOVER_FAILED', message: 'failed' } } });
    r.standin.inject('GET', { kind: 'reply', status: 503, body: { error: { status: 503, code: 'MAINTENANCE', message: 'maintenance' } } });
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.active(VIP), ME);
    assert.deepEqual(
      r.standin.server.log.map((q) => `${q.method} ${q.status}`),
      ['GET 200', 'POST 500', 'GET 503', 'GET 200', 'POST 200'],
    );
    const times = r.standin.server.log.map((q) => q.at);
    assert.ok((times[2] as number) - (times[1] as number) >= 250, 'no backoff after the 500');
    assert.ok((times[3] as number) - (times[2] as number) >= 500, 'backoff did not grow');
  });

  it('gives up after retry-num retries, wakes the reconciler later, and then succeeds', async () => {
    const r = await rig({ cfg: { 'retry-num': 1 } });
    const fail = { kind: 'reply', status: 500, body: { error: { status: 500, code: 'FAILOVER_NOT_COMPLETE', message: 'x' } } } as const;
    r.standin.inject('POST', fail, fail);
    const err = await r.driver.runRejects(r.mgr.acquire());
    assert.match(err.message, /FAILOVER_NOT_COMPLETE/);
    assert.equal(r.standin.count('POST'), 2);
    const before = r.changes.n;
    await r.driver.advance(5_000);
    assert.ok(r.changes.n > before);
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.active(VIP), ME);
  });

  it('a stand-in that never answers: timeouts, retry, then success', async () => {
    const r = await rig({ start: false });
    r.standin.inject('GET', { kind: 'hang' }, { kind: 'hang' });
    r.standin.inject('POST', { kind: 'hang' });
    await r.driver.run(r.mgr.start(() => r.changes.n++)); // first GET times out (10 s)
    assert.equal(r.clock.now() - 1_000_000 >= 10_000, true);
    assert.deepEqual(await r.mgr.observe(), { held: false, ready: true });
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.active(VIP), ME);
    assert.deepEqual(
      r.standin.server.log.map((q) => `${q.method} ${q.status ?? 'hung'}`),
      ['GET hung', 'GET hung', 'GET 200', 'POST hung', 'GET 200', 'POST 200'],
    );
    const posts = r.standin.server.log.filter((q) => q.method === 'POST');
    assert.ok((posts[1]?.at ?? 0) - (posts[0]?.at ?? 0) >= 90_000, 'the POST timeout was shorter than a switch');
  });

  it('malformed JSON or an unexpected shape is a clear typed error, never a crash', async () => {
    const r = await rig({ start: false });
    r.standin.inject('GET', { kind: 'raw', status: 200, text: '{"failover": {"ip": "198.51.100.10", ' });
    await r.driver.run(r.mgr.start(() => r.changes.n++));
    assert.match(r.logs.text(), /reply is not JSON/);
    assert.deepEqual(await r.mgr.observe(), { held: false, ready: true });
    const bad = { kind: 'raw', status: 200, text: '{"failover": {"ip": 42}}' } as const;
    r.standin.inject('GET', bad, bad, bad, bad);
    const err = await r.driver.runRejects(r.mgr.acquire());
    assert.ok(err instanceof HetznerResponseError);
    assert.match(err.message, /lacks failover\.ip/);
    r.standin.inject('GET', { kind: 'raw', status: 502, text: '<html>Bad Gateway</html>', contentType: 'text/html' });
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.active(VIP), ME);
  });

  it('notices the IP being taken away at the periodic refresh and tells the reconciler', async () => {
    const r = await rig();
    await r.driver.run(r.mgr.acquire());
    r.standin.routeTo(VIP, OTHER);
    const before = r.changes.n;
    await r.driver.advance(ROBOT_REFRESH_MS + 10_000);
    assert.equal((await r.mgr.observe()).held, false);
    assert.ok(r.changes.n > before);
  });

  it('an hour of leader flapping every 30 s stays inside 100 GET / 50 POST per hour and ends held', async () => {
    // Switches answer at once here: this hour is about counting requests against the budget,
    // and 120 leadership phases of 30 s cannot each hold a 40-60 s switch.
    const r = await rig({ start: false, switchMs: 0 });
    let leader = false;
    const errors: Error[] = [];
    let pending: Promise<void> = Promise.resolve();
    // A minimal reconciler: on every pass (and on every onChange), bring "held" in line with
    // leadership, the way the daemon's reconciler drives a VipManager.
    const reconcile = (): Promise<void> =>
      (pending = pending.then(async () => {
        const st = await r.mgr.observe();
        if (!st.ready) return;
        if (leader && !st.held) await r.mgr.acquire().catch((e: Error) => void errors.push(e));
        if (!leader && st.held) await r.mgr.release().catch((e: Error) => void errors.push(e));
      }));
    await r.driver.run(r.mgr.start(() => void reconcile()));
    const start = r.clock.now();
    for (let i = 0; i < 120; i++) {
      leader = i % 2 === 0;
      await r.driver.run(reconcile());
      if (!leader) r.standin.routeTo(VIP, OTHER); // the other node takes over
      await r.driver.advance(30_000);
    }
    assert.equal(r.clock.now() - start, FAKE_HOUR_MS);
    // Leadership settles on us; the manager must get there, still within the budget.
    leader = true;
    await r.driver.run(reconcile());
    for (let k = 0; k < 100 && r.standin.active(VIP) !== ME; k++) await r.driver.advance(60_000);
    assert.equal(r.standin.active(VIP), ME, 'did not end routed to the leader');
    assert.equal((await r.mgr.observe()).held, true);
    assert.ok(r.standin.maxPerHour('POST') <= 50, `POSTs per hour: ${r.standin.maxPerHour('POST')}`);
    assert.ok(r.standin.maxPerHour('GET') <= 100, `GETs per hour: ${r.standin.maxPerHour('GET')}`);
    assert.equal(r.standin.rateLimited, 0, 'the stand-in had to refuse a request');
    assert.ok(r.standin.count('POST', start, start + FAKE_HOUR_MS) >= 45, `only ${r.standin.count('POST')} switches in the hour`);
    assert.ok(errors.some((e) => e instanceof HetznerBudgetError), 'the budget never had to defer anything');
    assert.match(r.logs.text(), /request budget running low/);
  });
});

describe('createHetznerRobotManager', () => {
  it('refuses an IPv6 failover address without hetzner-server-ip, and no server IP source at all', () => {
    const log = captureLog().log;
    const local = new FakeLocalAddresses();
    assert.throws(
      () => createHetznerRobotManager(hetznerConfig({ ip: '2001:db8::10', netmask: 64 }), local, log),
      (e: Error) => e instanceof HetznerConfigError && /hetzner-server-ip/.test(e.message),
    );
    assert.throws(
      () => createHetznerRobotManager(hetznerConfig({ interface: undefined }), local, log),
      (e: Error) => e instanceof HetznerConfigError && /hetzner-server-ip or interface/.test(e.message),
    );
    assert.throws(
      () => createHetznerRobotManager(hetznerConfig({ 'hetzner-server-ip': ME, 'hetzner-credentials-file': join(dir, 'nope') }), local, log),
      (e: Error) => e instanceof HetznerConfigError && /does not exist/.test(e.message),
    );
  });

  it('is not ready while the interface has no address, or when its primary address is the VIP', async () => {
    const none = await rig({ primary: null });
    const st = await none.mgr.observe();
    assert.equal(st.ready, false);
    assert.match(st.detail ?? '', /eth0 has no IPv4 address/);
    assert.equal(none.standin.server.log.length, 0);
    none.local.primary.set('eth0', ME);
    const before = none.changes.n;
    await none.driver.advance(11_000);
    assert.ok(none.changes.n > before, 'not told when the address appeared');
    assert.equal((await none.mgr.observe()).ready, true);

    const vip = await rig({ primary: VIP });
    assert.match((await vip.mgr.observe()).detail ?? '', /is the failover IP .* itself/);
  });

  it('hetzner-server-ip wins over the interface', async () => {
    const r = await rig({ cfg: { 'hetzner-server-ip': ME, interface: undefined } });
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.active(VIP), ME);
    assert.deepEqual(r.local.calls, []);
  });
});
