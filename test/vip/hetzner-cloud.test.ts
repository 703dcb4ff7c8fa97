// HetznerCloudManager against the Cloud API and metadata stand-in (test/standins/hetzner-cloud.ts)
// on a fake clock: identity resolution, assign/unassign with action polling, the local address,
// every documented error code class, 429 with RateLimit-* headers, timeouts, malformed replies,
// token files, and an hour of two nodes flapping inside the project's 3600 requests per hour.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { type Config } from '../../src/config/schema.js';
import { CLOUD_REFRESH_MS, createHetznerCloudManager, type HetznerCloudManager, readCloudToken } from '../../src/vip/hetzner/cloud.js';
import {
  HetznerActionError,
  HetznerAuthError,
  HetznerConfigError,
  HetznerForbiddenError,
  HetznerNotFoundError,
  HetznerResponseError,
} from '../../src/vip/hetzner/errors.js';
import { type CloudFloatingIp, cloudError, CloudStandin } from '../standins/hetzner-cloud.js';
import { hetznerConfig } from '../standins/hetzner-config.js';
import { CountingFetch, Driver, FAKE_HOUR_MS, FakeClock } from '../standins/hetzner-fake-clock.js';
import { FakeLocalAddresses } from '../standins/hetzner-local.js';
import { captureLog, type CapturedLog } from '../standins/hetzner-logs.js';

const VIP = '203.0.113.7';
const FIP_ID = 4711;
const ME = 42;
const OTHER = 43;
const TOKEN = 'hcloudTOKEN0123456789abcdefSECRET';
const ASSIGN = `POST /v1/floating_ips/${FIP_ID}/actions/assign`;

const dir = mkdtempSync(join(tmpdir(), 'vip-hetzner-cloud-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Node {
  mgr: HetznerCloudManager;
  local: FakeLocalAddresses;
  logs: CapturedLog;
  changes: { n: number };
}

interface Rig extends Node {
  clock: FakeClock;
  standin: CloudStandin;
  driver: Driver;
  counting: CountingFetch;
  node(cfg: Partial<Config>, opts?: { start?: boolean }): Promise<Node>;
}

const open: { rig: Rig; nodes: Node[] }[] = [];

afterEach(async () => {
  for (const { rig, nodes } of open.splice(0)) {
    for (const n of nodes) await n.mgr.close();
    await rig.standin.close();
    // Only the stand-in's own action timers may remain; the managers' are gone.
    for (const n of nodes) assert.ok(!n.logs.text().includes(TOKEN), 'the token reached the log');
  }
});

async function rig(opts: {
  server?: number | null;
  floatingIps?: CloudFloatingIp[];
  cfg?: Partial<Config>;
  start?: boolean;
  actionMs?: number;
  instanceId?: number | string;
} = {}): Promise<Rig> {
  const clock = new FakeClock();
  const standin = await CloudStandin.start({
    clock,
    token: TOKEN,
    floatingIps: opts.floatingIps ?? [{ id: FIP_ID, ip: VIP, type: 'ipv4', server: opts.server === undefined ? OTHER : opts.server }],
    servers: [ME, OTHER],
    instanceId: opts.instanceId ?? ME,
    actionMs: opts.actionMs,
  });
  const counting = new CountingFetch();
  const driver = new Driver(clock, counting, [standin]);
  const nodes: Node[] = [];
  const node = async (cfg: Partial<Config>, o: { start?: boolean } = {}): Promise<Node> => {
    const local = new FakeLocalAddresses();
    const logs = captureLog();
    const full = hetznerConfig({
      ip: VIP,
      netmask: 32,
      'manager-type': 'hetzner-cloud',
      'hcloud-token': TOKEN,
      'hcloud-api-url': standin.url,
      'hcloud-metadata-url': standin.metadataUrl,
      'hcloud-floating-ip': String(FIP_ID),
      ...cfg,
    });
    const mgr = createHetznerCloudManager(full, local, logs.log, clock, { fetch: counting.fetch });
    const changes = { n: 0 };
    const n = { mgr, local, logs, changes };
    nodes.push(n);
    if (o.start !== false) await driver.run(mgr.start(() => changes.n++));
    return n;
  };
  const first = await node(opts.cfg ?? {}, { start: opts.start });
  const r: Rig = { ...first, clock, standin, driver, counting, node };
  open.push({ rig: r, nodes });
  return r;
}

const held = { held: true, ready: true };
const notHeld = { held: false, ready: true };

describe('HetznerCloudManager', () => {
  it("learns this server's id from the metadata service and the floating IP by id", async () => {
    const r = await rig();
    assert.deepEqual(await r.mgr.observe(), notHeld);
    assert.deepEqual(
      r.standin.metadata.log.map((q) => q.path),
      ['/hetzner/v1/metadata/instance-id'],
    );
    assert.deepEqual(
      r.standin.api.log.map((q) => `${q.method} ${q.path}`),
      [`GET /v1/floating_ips/${FIP_ID}`],
    );
    assert.match(r.logs.text(), /"serverId":42/);
  });

  it('resolves a floating IP by address by listing (paginated), IPv4 and IPv6 /64', async () => {
    const many: CloudFloatingIp[] = Array.from({ length: 70 }, (_, i) => ({ id: 100 + i, ip: `198.18.0.${i + 1}`, type: 'ipv4', server: null }));
    many.push({ id: 9001, ip: '2001:db8:1:2::/64', type: 'ipv6', server: OTHER });
    many.push({ id: FIP_ID, ip: VIP, type: 'ipv4', server: OTHER });
    const r = await rig({ floatingIps: many, cfg: { 'hcloud-floating-ip': undefined } });
    assert.deepEqual(await r.mgr.observe(), notHeld);
    const lists = r.standin.api.log.filter((q) => q.path.startsWith('/v1/floating_ips?'));
    assert.deepEqual(
      lists.map((q) => q.path),
      ['/v1/floating_ips?page=1&per_page=50', '/v1/floating_ips?page=2&per_page=50'],
    );
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.floating.get(FIP_ID)?.server, ME);

    const v6 = await r.node({ ip: '2001:db8:1:2::10', netmask: 64, 'hcloud-floating-ip': '2001:0db8:0001:0002:0000:0000:0000:0010' });
    await r.driver.run(v6.mgr.acquire());
    assert.equal(r.standin.floating.get(9001)?.server, ME);
    assert.ok(v6.local.addresses.has('2001:db8:1:2::10/64'));
  });

  it('acquire assigns, polls the action to success, then adds the address locally; idempotent', async () => {
    const r = await rig({ actionMs: 3_000 });
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.floating.get(FIP_ID)?.server, ME);
    assert.deepEqual(r.local.calls, [`add ${VIP}/32`]);
    assert.deepEqual(await r.mgr.observe(), held);
    const assign = r.standin.api.log.find((q) => q.path.endsWith('/actions/assign'));
    assert.deepEqual(JSON.parse(assign?.body ?? ''), { server: ME });
    const polls = r.standin.api.log.filter((q) => /^\/v1\/actions\/\d+$/.test(q.path));
    assert.ok(polls.length >= 2 && polls.length <= 6, `polled ${polls.length} times`);
    const n = r.standin.api.log.length;
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.api.log.length, n, 'a second acquire talked to the API');
  });

  it('action polling to error: reported as HetznerActionError, retried, and given up after retry-num', async () => {
    const r = await rig({ cfg: { 'retry-num': 1 } });
    r.standin.failNextAction('action_failed', 'assignment failed');
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.floating.get(FIP_ID)?.server, ME, 'not retried after a failed action');
    assert.match(r.logs.text(), /action \d+ \(assign_floating_ip\) failed: action_failed: assignment failed/);

    r.standin.assign(FIP_ID, OTHER);
    await r.driver.run(r.mgr.release());
    r.standin.failNextAction();
    r.standin.failNextAction();
    const err = await r.driver.runRejects(r.mgr.acquire());
    assert.ok(err instanceof HetznerActionError, String(err));
    assert.equal(r.local.addresses.size, 0, 'added locally although the assign failed');
  });

  it('release removes the address first; unassigns only with hcloud-unassign-on-release', async () => {
    const r = await rig();
    await r.driver.run(r.mgr.acquire());
    const before = r.standin.api.log.length;
    await r.driver.run(r.mgr.release());
    assert.equal(r.standin.api.log.length, before, 'release without unassign talked to the API');
    assert.equal(r.local.addresses.size, 0);
    assert.equal(r.standin.floating.get(FIP_ID)?.server, ME);
    assert.deepEqual(await r.mgr.observe(), notHeld);

    const u = await r.node({ 'hcloud-unassign-on-release': true });
    await r.driver.run(u.mgr.acquire());
    await r.driver.run(u.mgr.release());
    assert.equal(r.standin.floating.get(FIP_ID)?.server, null);
    assert.deepEqual(u.local.calls, [`add ${VIP}/32`, `remove ${VIP}/32`]);
    await r.driver.run(u.mgr.release());
    assert.equal(r.standin.api.log.filter((q) => q.path.endsWith('/unassign')).length, 1);
    // Assigned to another server meanwhile: never unassign someone else's IP.
    await r.driver.run(u.mgr.acquire());
    r.standin.assign(FIP_ID, OTHER);
    await r.driver.run(u.mgr.release());
    assert.equal(r.standin.floating.get(FIP_ID)?.server, OTHER);
  });

  it('a missing local address while the API says ours is re-added by acquire without an API call', async () => {
    const r = await rig();
    await r.driver.run(r.mgr.acquire());
    r.local.addresses.clear(); // someone ran ip addr del
    const before = r.changes.n;
    await r.driver.advance(6_000);
    assert.ok(r.changes.n > before, 'the reconciler was not told');
    assert.deepEqual(await r.mgr.observe(), notHeld);
    const n = r.standin.api.log.length;
    await r.driver.run(r.mgr.acquire());
    assert.deepEqual(await r.mgr.observe(), held);
    assert.equal(r.standin.api.log.length, n);
  });

  it('removes a leftover local address when the API says the floating IP is elsewhere', async () => {
    const r = await rig({ start: false });
    r.local.addresses.add(`${VIP}/32`);
    await r.driver.run(r.mgr.start(() => r.changes.n++));
    await r.driver.advance(6_000);
    assert.equal(r.local.addresses.size, 0);
    assert.match(r.logs.text(), /assigned elsewhere/);
  });

  it('locked and conflict are retried with backoff, then succeed', async () => {
    const r = await rig();
    r.standin.inject(ASSIGN, cloudError('locked'), cloudError('conflict'));
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.floating.get(FIP_ID)?.server, ME);
    const codes = r.standin.api.log.filter((q) => q.path.endsWith('/assign')).map((q) => q.status);
    assert.deepEqual(codes, [423, 409, 201]);
  });

  it('maintenance, server_error, service_error and unavailable are retried with backoff', async () => {
    const r = await rig({ cfg: { 'retry-num': 5 } });
    r.standin.inject(ASSIGN, cloudError('maintenance'), cloudError('server_error'), cloudError('service_error'), cloudError('unavailable'));
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.floating.get(FIP_ID)?.server, ME);
    const assigns = r.standin.api.log.filter((q) => q.path.endsWith('/assign'));
    assert.deepEqual(assigns.map((q) => q.status), [503, 500, 503, 503, 201]);
    for (let i = 1; i < assigns.length; i++) {
      assert.ok((assigns[i]?.at ?? 0) - (assigns[i - 1]?.at ?? 0) >= 250 * 2 ** (i - 1), 'backoff did not grow');
    }
  });

  it('forbidden is not hammered: acquire fails, and the reconciler is woken a minute later', async () => {
    const r = await rig();
    r.standin.inject(ASSIGN, cloudError('forbidden', 'insufficient permissions'));
    const err = await r.driver.runRejects(r.mgr.acquire());
    assert.ok(err instanceof HetznerForbiddenError, String(err));
    const before = r.changes.n;
    await r.driver.advance(59_000);
    assert.equal(r.standin.api.log.filter((q) => q.path.endsWith('/assign')).length, 1);
    await r.driver.advance(2_000);
    assert.ok(r.changes.n > before);
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.floating.get(FIP_ID)?.server, ME);
  });

  it('429 with RateLimit-* headers: waits until requests have refilled, then succeeds', async () => {
    const r = await rig();
    r.standin.setRemaining(0);
    const t0 = r.clock.now();
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.floating.get(FIP_ID)?.server, ME);
    const log = r.standin.api.log.filter((q) => q.at >= t0 && q.path.endsWith('/assign'));
    assert.equal(log[0]?.status, 429);
    assert.ok((log[1]?.at ?? 0) - (log[0]?.at ?? 0) >= 10_000, 'asked again before the budget refilled');
    assert.ok((log[1]?.at ?? 0) - (log[0]?.at ?? 0) <= 15_000, 'waited for the full reset (an hour)');
    assert.equal(r.standin.rateLimited, 1);
  });

  it('429 whose RateLimit-Reset is sooner: waits exactly until the reset', async () => {
    const r = await rig();
    const reset = Math.ceil(r.clock.wallNow() / 1000) + 3;
    r.standin.inject(ASSIGN, {
      kind: 'reply',
      status: 429,
      body: { error: { code: 'rate_limit_exceeded', message: 'slow down' } },
      headers: { 'RateLimit-Limit': '3600', 'RateLimit-Remaining': '0', 'RateLimit-Reset': String(reset) },
    });
    await r.driver.run(r.mgr.acquire());
    const assigns = r.standin.api.log.filter((q) => q.path.endsWith('/assign'));
    assert.equal(assigns.length, 2);
    const waited = (assigns[1]?.at ?? 0) - (assigns[0]?.at ?? 0);
    assert.ok(waited >= 2_000 && waited <= 3_500, `waited ${waited} ms`);
  });

  it('a long rate-limit block is deferred to a wake-up instead of blocking acquire', async () => {
    const r = await rig();
    r.standin.inject(ASSIGN, {
      kind: 'reply',
      status: 429,
      body: { error: { code: 'rate_limit_exceeded', message: 'slow down' } },
      headers: { 'RateLimit-Limit': '60', 'RateLimit-Remaining': '0', 'RateLimit-Reset': String(Math.ceil(r.clock.wallNow() / 1000) + 3600) },
    });
    const err = await r.driver.runRejects(r.mgr.acquire());
    assert.match(err.message, /rate_limit_exceeded/);
    const n = r.standin.api.log.length;
    await r.driver.runRejects(r.mgr.acquire()); // refused locally
    assert.equal(r.standin.api.log.length, n);
    const before = r.changes.n;
    await r.driver.advance(10 * 60_000 + 1_000); // 10 requests at 60/hour
    assert.ok(r.changes.n > before);
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.floating.get(FIP_ID)?.server, ME);
  });

  it('unauthorized: one request, never repeated, and the manager stays failed', async () => {
    const r = await rig({ cfg: { 'hcloud-token': 'wrong-token-value' } });
    assert.equal(r.standin.api.log.length, 1);
    assert.equal(r.standin.unauthorized, 1);
    const st = await r.mgr.observe();
    assert.equal(st.ready, false);
    assert.match(st.detail ?? '', /unauthorized.*token was rejected/);
    const err = await r.driver.runRejects(r.mgr.acquire());
    assert.ok(err instanceof HetznerAuthError);
    assert.ok(!err.message.includes('wrong-token-value'));
    await r.driver.advance(FAKE_HOUR_MS);
    await r.driver.run(r.mgr.release());
    assert.equal(r.standin.api.log.length, 1, 'the API was asked again after unauthorized');
    assert.equal((await r.mgr.observe()).ready, false);
  });

  it('not_found: a clear error naming the floating IP, not retried', async () => {
    const r = await rig({ cfg: { 'hcloud-floating-ip': '999' } });
    const st = await r.mgr.observe();
    assert.equal(st.ready, false);
    assert.match(st.detail ?? '', /floating IP 999 does not exist in this project/);
    const err = await r.driver.runRejects(r.mgr.acquire());
    assert.ok(err instanceof HetznerNotFoundError);
    await r.driver.advance(60_000);
    assert.equal(r.standin.api.log.length, 1);

    const byAddr = await r.node({ ip: '203.0.113.99', 'hcloud-floating-ip': undefined });
    assert.match((await byAddr.mgr.observe()).detail ?? '', /no floating IP with address 203\.0\.113\.99/);
  });

  it('refuses a floating IP whose address is not ip', async () => {
    const r = await rig({ cfg: { ip: '203.0.113.8' } });
    const st = await r.mgr.observe();
    assert.equal(st.ready, false);
    assert.match(st.detail ?? '', /4711 is 203\.0\.113\.7, which does not match ip 203\.0\.113\.8/);
  });

  it('timeouts: a hanging API or metadata service is retried until it answers', async () => {
    const r = await rig({ start: false });
    r.standin.metadataFaults.push({ kind: 'hang' });
    await r.driver.run(r.mgr.start(() => r.changes.n++));
    const st = await r.mgr.observe();
    assert.equal(st.ready, false);
    assert.match(st.detail ?? '', /metadata service.*no reply within 2000 ms.*set hcloud-server-id/);
    await r.driver.advance(6_000); // the next tick asks again
    assert.deepEqual(await r.mgr.observe(), notHeld);

    r.standin.inject(ASSIGN, { kind: 'hang' });
    await r.driver.run(r.mgr.acquire());
    assert.equal(r.standin.floating.get(FIP_ID)?.server, ME);
    const assigns = r.standin.api.log.filter((q) => q.path.endsWith('/assign'));
    assert.equal(assigns.length, 2);
    assert.ok((assigns[1]?.at ?? 0) - (assigns[0]?.at ?? 0) >= 10_000);
  });

  it('an action that outlasts the poll timeout is followed up, not started again', async () => {
    const r = await rig({ actionMs: 90_000 });
    await r.driver.run(r.mgr.acquire()); // the retry picks the same action up again; it ends at 90 s
    assert.match(r.logs.text(), /still running after 60000 ms/);
    assert.equal(r.standin.floating.get(FIP_ID)?.server, ME);
    assert.equal(r.standin.api.log.filter((q) => q.path.endsWith('/assign')).length, 1, 'a second assign was started');
    assert.deepEqual(await r.mgr.observe(), held);
  });

  it('malformed JSON and unexpected shapes are typed errors, never a crash', async () => {
    const r = await rig({ cfg: { 'retry-num': 1 } });
    await r.driver.run(r.mgr.acquire());
    const garbage = { kind: 'raw', status: 200, text: '{"floating_ip": {"id": 4711, "server": "nope"}}' } as const;
    r.standin.inject(`GET /v1/floating_ips/${FIP_ID}`, { kind: 'raw', status: 200, text: 'not json at all' }, garbage, garbage);
    await r.driver.advance(CLOUD_REFRESH_MS + 5_000); // the periodic refresh meets the first one
    assert.match(r.logs.text(), /reply is not JSON: \\"not json at all\\"/);
    assert.deepEqual(await r.mgr.observe(), held, 'a bad refresh changed what is known');
    await r.driver.run(r.mgr.release());
    const err = await r.driver.runRejects(r.mgr.acquire());
    assert.ok(err instanceof HetznerResponseError, String(err));
    assert.match(err.message, /reply lacks floating_ip/);
    await r.driver.run(r.mgr.acquire());
    assert.deepEqual(await r.mgr.observe(), held);
    r.standin.metadataFaults.push({ kind: 'raw', status: 200, text: 'forty-two' });
    const n = await r.node({});
    assert.match((await n.mgr.observe()).detail ?? '', /expected a server id/);
  });

  it('an hour of two nodes flapping every 30 s stays within 3600 requests per hour and ends right', async () => {
    const r = await rig({ cfg: { 'hcloud-server-id': ME, 'hcloud-unassign-on-release': true } });
    const b = await r.node({ 'hcloud-server-id': OTHER });
    let leaderIsA = true;
    const errors: Error[] = [];
    const reconcile = async (n: Node, leader: boolean): Promise<void> => {
      const st = await n.mgr.observe();
      if (!st.ready) return;
      if (leader && !st.held) await n.mgr.acquire().catch((e: Error) => void errors.push(e));
      if (!leader && st.held) await n.mgr.release().catch((e: Error) => void errors.push(e));
    };
    const start = r.clock.now();
    for (let i = 0; i < 120; i++) {
      leaderIsA = i % 2 === 0;
      // The old leader lets go first, then the new one takes over (as two reconcilers would).
      await r.driver.run(reconcile(leaderIsA ? b : r, false));
      await r.driver.run(reconcile(leaderIsA ? r : b, true));
      await r.driver.advance(start + (i + 1) * 30_000 - r.clock.now());
    }
    assert.equal(r.clock.now() - start, FAKE_HOUR_MS);
    // Final state: B led last.
    assert.equal(leaderIsA, false);
    assert.equal(r.standin.floating.get(FIP_ID)?.server, OTHER);
    assert.deepEqual(await b.mgr.observe(), held);
    assert.deepEqual(await r.mgr.observe(), notHeld);
    assert.equal(r.local.addresses.size, 0);
    assert.ok(b.local.addresses.has(`${VIP}/32`));
    assert.ok(r.standin.maxPerHour() <= 3600, `requests per hour: ${r.standin.maxPerHour()}`);
    assert.equal(r.standin.rateLimited, 0);
    assert.deepEqual(errors, []);
  });
});

describe('Cloud configuration', () => {
  it('reads the token from a file only others cannot read', () => {
    const f = join(dir, 'token');
    writeFileSync(f, `${TOKEN}\n`);
    chmodSync(f, 0o640);
    assert.equal(readCloudToken(hetznerConfig({ 'hcloud-token-file': f })), TOKEN);
    chmodSync(f, 0o644);
    assert.throws(
      () => readCloudToken(hetznerConfig({ 'hcloud-token-file': f })),
      (e: Error) => e instanceof HetznerConfigError && e.message.includes(f) && /chmod 600/.test(e.message) && !e.message.includes(TOKEN),
    );
    assert.throws(() => readCloudToken(hetznerConfig({ 'hcloud-token-file': join(dir, 'none') })), /does not exist/);
    assert.throws(() => readCloudToken(hetznerConfig({ 'hcloud-token-file': f, 'hcloud-token': 'x' })), /both/);
    assert.throws(() => readCloudToken(hetznerConfig({})), /needs an API token/);
    assert.equal(readCloudToken(hetznerConfig({ 'hcloud-token': ` ${TOKEN} ` })), TOKEN);
    const two = join(dir, 'two');
    writeFileSync(two, 'a b');
    chmodSync(two, 0o600);
    assert.throws(() => readCloudToken(hetznerConfig({ 'hcloud-token-file': two })), /token alone/);
  });

  it('needs interface and a usable hcloud-floating-ip', () => {
    const log = captureLog().log;
    const local = new FakeLocalAddresses();
    assert.throws(() => createHetznerCloudManager(hetznerConfig({ 'hcloud-token': TOKEN, interface: undefined }), local, log), /needs interface/);
    assert.throws(
      () => createHetznerCloudManager(hetznerConfig({ 'hcloud-token': TOKEN, 'hcloud-floating-ip': 'my-fip' }), local, log),
      /neither a numeric id nor an IP address/,
    );
  });
});
