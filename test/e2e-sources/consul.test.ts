// The daemon with dcs-type consul, end to end: two real daemons in node namespaces watch a
// Consul stand-in (test/standins/consul.ts) listening on the switch address, and the VIP is
// checked on the real interfaces. The same assertions as for etcd (test/daemon/follow.test.ts),
// the reaction time with a long `interval`, the DCS-loss policies for a DCS without a lease
// deadline, the ACL token, and what a holder does when its agent loses the cluster leader or
// is cut off silently (the stand-in does not wake parked queries then, as Consul does not).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { eventually, hasVip, type Daemon } from '../harness/daemon.js';
import { ConsulStandin } from '../standins/consul.js';
import { allOutput, createSourcesBed, NAMES, sleep, SWITCH_IP, V4, VIP4, type SourcesBed } from './bed.js';

const KEY = 'service/test/leader';
const RETRY_AFTER = 100;
const RETRY_NUM = 3;

function consulArgs(i: 0 | 1, consul: ConsulStandin, extra: string[] = []): string[] {
  return [
    '--ip', VIP4, '--netmask', '24', '--interface', 'eth0',
    '--dcs-type', 'consul', '--dcs-endpoints', consul.url, '--trigger-key', KEY, '--trigger-value', NAMES[i],
    '--retry-after', String(RETRY_AFTER), '--retry-num', String(RETRY_NUM), '--announce-count', '2', '--announce-interval', '50',
    ...extra,
  ];
}

/** The daemon's own defaults for everything but the VIP and the source (interval 1000, retry-after 250, retry-num 3). */
function defaultArgs(i: 0 | 1, consul: ConsulStandin): string[] {
  return [
    '--ip', VIP4, '--netmask', '24', '--interface', 'eth0',
    '--dcs-type', 'consul', '--dcs-endpoints', consul.url, '--trigger-key', KEY, '--trigger-value', NAMES[i],
  ];
}

/** Blocking queries on the key that the stand-in holds (sent, not answered). */
const parkedQueries = (c: ConsulStandin) => c.requests.filter((r) => r.method === 'GET' && r.key === KEY && r.index !== '' && r.status === null);

/** A MAC from the documentation range (RFC 7042): frames sent to it reach no one. */
const NOWHERE_MAC = '00:00:5e:00:53:01';

describe('daemon with dcs-type consul (Consul stand-in on the LAN)', { concurrency: false }, () => {
  let bed: SourcesBed;
  let consul: ConsulStandin;
  const v = (i: 0 | 1) => hasVip(bed.nodes[i].ns, V4);
  /**
   * A silent partition between n1 and the agent: each side's neighbour entry for the other
   * points at a MAC no one has, so frames vanish in both directions (no RST, no ICMP) while
   * both links stay up. Only inside this bed's namespaces.
   */
  const partition = (on: boolean) => {
    const n1 = bed.nodes[0];
    if (on) {
      n1.ns.ip('neigh', 'replace', SWITCH_IP, 'lladdr', NOWHERE_MAC, 'dev', 'eth0', 'nud', 'permanent');
      bed.lan.sw.ip('neigh', 'replace', n1.ipv4, 'lladdr', NOWHERE_MAC, 'dev', 'br0', 'nud', 'permanent');
    } else {
      for (const del of [() => n1.ns.ip('neigh', 'del', SWITCH_IP, 'dev', 'eth0'), () => bed.lan.sw.ip('neigh', 'del', n1.ipv4, 'dev', 'br0')]) {
        try { del(); } catch { /* not partitioned */ }
      }
    }
  };

  before(async () => {
    bed = await createSourcesBed();
    consul = await ConsulStandin.start({ host: SWITCH_IP });
  });
  after(async () => {
    await bed?.stopAll();
    await consul?.close();
    await bed?.dispose();
  });
  afterEach(async () => {
    await bed.stopAll();
    // A test that stopped the stand-in or took its leader away must not leave it so.
    partition(false);
    await consul.start();
    consul.setNoLeader(false);
    consul.setUnreachable(false);
    consul.delete(KEY);
    // A VIP left behind by a SIGKILLed holder would confuse the next test.
    for (const i of [0, 1] as const) if (v(i)) bed.nodes[i].ns.ip('addr', 'del', V4, 'dev', 'eth0');
  });

  test('absent → none; n1 → VIP on n1 only; n2 → moved; deleted → removed', async (t) => {
    const [d1, d2] = [await bed.start(0, consulArgs(0, consul)), await bed.start(1, consulArgs(1, consul))];
    await sleep(300);
    assert.equal(v(0) || v(1), false, 'no VIP while the key is absent');

    consul.put(KEY, 'n1');
    t.diagnostic(`n1 after ${(await eventually('VIP on n1', () => v(0), 3000)).toFixed(0)} ms`);
    assert.equal(v(1), false, 'and not on n2');
    await sleep(300);
    assert.equal(v(0) && !v(1), true, 'it stays on n1 only');

    consul.put(KEY, 'n2');
    t.diagnostic(`moved after ${(await eventually('VIP moved to n2', () => v(1) && !v(0), 3000)).toFixed(0)} ms`);

    consul.delete(KEY);
    t.diagnostic(`removed after ${(await eventually('VIP removed', () => !v(0) && !v(1), 3000)).toFixed(0)} ms`);
    const acquire = await d2.waitForTransition('acquire', 0, 2000);
    assert.equal(acquire.value, 'n2');
    await d1.waitForLog((t) => t.transition === 'release' && t.cause === 'key-other', 2000, 'n1 release (key-other)');
    await d2.waitForLog((t) => t.transition === 'release' && t.cause === 'key-absent', 2000, 'n2 release (key-absent)');
    // Watched with blocking queries (consistent reads on an index), not polled.
    const blocking = consul.requests.filter((r) => r.method === 'GET' && r.key === KEY && r.index !== '');
    assert.ok(blocking.length > 0, 'blocking queries were used');
    assert.ok(blocking.every((r) => r.query.has('consistent') && r.query.get('wait') !== null));
  });

  test('interval 10000: a move completes in well under a second (blocking query, no polling)', async (t) => {
    consul.clearLog();
    consul.put(KEY, 'n1');
    const args = (i: 0 | 1) => consulArgs(i, consul, ['--interval', '10000']);
    await bed.start(0, args(0));
    await bed.start(1, args(1));
    await eventually('VIP on n1', () => v(0), 3000);
    // Let both daemons settle into their blocking queries on the key.
    await sleep(300);
    const waits = new Set(consul.requests.filter((r) => r.index !== '').map((r) => r.query.get('wait')));
    assert.deepEqual([...waits], ['100000ms'], 'blocking queries wait 10 intervals');

    consul.put(KEY, 'n2');
    const moved = await eventually('VIP moved to n2', () => v(1) && !v(0), 5000, 2);
    t.diagnostic(`moved ${moved.toFixed(0)} ms after the write`);
    assert.ok(moved < 1000, `moved ${moved.toFixed(0)} ms after the write (interval is 10 000 ms)`);
  });

  test('interval 10000: every change is acted on at once, not only the first after startup', async (t) => {
    const args = (i: 0 | 1) => consulArgs(i, consul, ['--interval', '10000']);
    await bed.start(0, args(0));
    await bed.start(1, args(1));
    await sleep(300);
    for (const [value, what, check] of [
      ['n1', 'VIP on n1', () => v(0) && !v(1)],
      ['n2', 'VIP moved to n2', () => v(1) && !v(0)],
      [null, 'VIP removed', () => !v(0) && !v(1)],
    ] as Array<[string | null, string, () => boolean]>) {
      if (value === null) consul.delete(KEY);
      else consul.put(KEY, value);
      const took = await eventually(what, check, 1000, 2);
      t.diagnostic(`${what}: ${took.toFixed(0)} ms`);
    }
  });

  test('dcs-loss hold-lease (default): no lease deadline in Consul, so the holder releases when Consul is gone; startup says so', async (t) => {
    consul.put(KEY, 'n1');
    const d1 = await bed.start(0, consulArgs(0, consul));
    const d2 = await bed.start(1, consulArgs(1, consul));
    await eventually('VIP on n1', () => v(0), 3000);
    for (const d of [d1, d2]) {
      const w = d.logs.find((r) => r.msg.startsWith('dcs-type consul gives no lease deadline: dcs-loss hold-lease acts as release'));
      assert.ok(w, `startup warning missing:\n${d.transcript()}`);
      assert.match(w.msg, new RegExp(`retry-num ${RETRY_NUM} × retry-after ${RETRY_AFTER} ms`));
    }
    const mark = d1.logs.length;
    const stoppedAt = performance.now();
    await consul.stop();
    const release = await d1.waitForLog((r) => r.transition === 'release' && d1.logs.indexOf(r) >= mark, 5000, 'n1 release after Consul stopped');
    const releasedAfter = performance.now() - stoppedAt;
    t.diagnostic(`released ${releasedAfter.toFixed(0)} ms after the stop`);
    assert.equal(release.cause, 'dcs-lost');
    assert.equal(v(0), false, 'the VIP is gone from n1');
    assert.equal(v(1), false, 'and n2 (which never held it) did not take it');
    const failure = d1.logs.slice(mark).find((r) => r.msg === 'Consul is unreachable');
    assert.ok(failure && /refused|reset|closed|hang up/i.test(String(failure.err)), `the outage is logged with its cause (${String(failure?.err)}):\n${d1.transcript()}`);
    assert.ok(releasedAfter < 3000, `released ${releasedAfter.toFixed(0)} ms after the stop`);
    // Back: the VIP returns to the key's holder.
    await consul.start();
    await eventually('VIP back on n1 once Consul answers', () => v(0), 5000);
  });

  test('dcs-loss hold-lease: a cut blocking query still gets retry-num attempts retry-after apart before the release', async (t) => {
    consul.put(KEY, 'n1');
    const d1 = await bed.start(0, consulArgs(0, consul));
    await eventually('VIP on n1', () => v(0), 3000);
    await sleep(1500); // the blocking query on the key has been waiting this long
    const mark = d1.logs.length;
    const stoppedAt = performance.now();
    await consul.stop();
    const release = await d1.waitForLog((r) => r.transition === 'release' && d1.logs.indexOf(r) >= mark, 5000, 'n1 release after Consul stopped');
    const after = performance.now() - stoppedAt;
    t.diagnostic(`released ${after.toFixed(0)} ms after the stop`);
    assert.equal(release.cause, 'dcs-lost');
    assert.ok(after >= RETRY_NUM * RETRY_AFTER - 50, `released ${after.toFixed(0)} ms after the stop, before retry-num × retry-after`);
    assert.ok(d1.logs.slice(mark).some((r) => r.msg === 'Consul is unreachable'), 'the outage was logged');
  });

  test('the agent loses its leader (a parked query is not woken, as in Consul): at default settings the holder releases within interval + check deadline + retries; back when a leader is elected', async (t) => {
    consul.put(KEY, 'n1');
    const d1 = await bed.start(0, defaultArgs(0, consul));
    await bed.start(1, defaultArgs(1, consul));
    await eventually('VIP on n1', () => v(0), 3000);
    await eventually('both daemons parked on the key', () => parkedQueries(consul).length >= 2, 5000);
    const pending = parkedQueries(consul);
    const mark = d1.logs.length;
    const lostAt = performance.now();
    consul.setNoLeader(true);
    const release = await d1.waitForLog((r) => r.transition === 'release' && d1.logs.indexOf(r) >= mark, 20_000, 'n1 release without a Consul leader');
    const releasedAfter = performance.now() - lostAt;
    t.diagnostic(`released ${releasedAfter.toFixed(0)} ms after the agent lost its leader`);
    assert.equal(release.cause, 'dcs-lost');
    assert.equal(v(0), false);
    assert.equal(v(1), false, 'and n2, which cannot read the key either, did not take it');
    // Bound: leader check period (1 s) + its deadline (1 s) + retry-num × retry-after (750 ms);
    // asserted with a 5× margin. Without the check it was 18–29 s (wait + jitter, then the
    // next query held for rpc_hold_timeout + wait + jitter).
    assert.ok(releasedAfter < 15_000, `released ${releasedAfter.toFixed(0)} ms after the leader was lost`);
    assert.ok(pending.every((r) => r.status === null), 'no parked query was answered: they were not woken');
    const why = d1.logs.slice(mark).find((r) => r.msg === 'Consul is unreachable');
    assert.ok(why && /leader check .* failed: .*no answer within 1000 ms/.test(String(why.err)), `the log names the cause:\n${d1.transcript()}`);
    consul.setNoLeader(false);
    await eventually('VIP back on n1', () => v(0), 15_000);
  });

  test('a silent partition between the holder and its agent (packets lost, no RST): released within interval + check deadline + retries at default settings', async (t) => {
    consul.put(KEY, 'n1');
    const d1 = await bed.start(0, defaultArgs(0, consul));
    await eventually('VIP on n1', () => v(0), 3000);
    await eventually('n1 parked on the key', () => parkedQueries(consul).length >= 1, 5000);
    const mark = d1.logs.length;
    const cutAt = performance.now();
    partition(true);
    const release = await d1.waitForLog((r) => r.transition === 'release' && d1.logs.indexOf(r) >= mark, 30_000, 'n1 release after the partition');
    const releasedAfter = performance.now() - cutAt;
    t.diagnostic(`released ${releasedAfter.toFixed(0)} ms after the partition`);
    assert.equal(release.cause, 'dcs-lost');
    assert.equal(v(0), false);
    assert.ok(releasedAfter < 15_000, `released ${releasedAfter.toFixed(0)} ms after the partition`);
    partition(false);
    await eventually('VIP back on n1 after the heal', () => v(0), 20_000);
  });

  test('key:read revoked from the token while holding: "Consul ACL error" names the key and the fix, and the holder releases as on DCS loss (no one else is leader)', async (t) => {
    const TOKEN = 'c0ffee00-reader-5ec7e7';
    const acl = await ConsulStandin.start({ host: SWITCH_IP, tokens: { [TOKEN]: { accessorId: 'acc-7', keyPrefix: { 'service/': 'read' } } } });
    try {
      acl.put(KEY, 'n1');
      const d1 = await bed.start(0, consulArgs(0, acl, ['--consul-token', TOKEN]));
      await eventually('VIP on n1', () => v(0), 3000);
      await eventually('n1 parked on the key', () => parkedQueries(acl).length >= 1, 5000);
      const mark = d1.logs.length;
      const revokedAt = performance.now();
      acl.setTokenRules(TOKEN, { accessorId: 'acc-7', keyPrefix: { 'service/': 'deny' } });
      const err = await d1.waitForLog((r) => r.msg === 'Consul ACL error' && d1.logs.indexOf(r) >= mark, 10_000, 'the ACL error');
      t.diagnostic(`ACL error logged ${(performance.now() - revokedAt).toFixed(0)} ms after the revocation`);
      assert.equal(err.level, 50);
      assert.match(String(err.err), /refused to read "service\/test\/leader" \(403 Permission denied: token with AccessorID 'acc-7' lacks permission 'key:read' on "service\/test\/leader"\)/);
      assert.match(String(err.err), /grant its policy key:read there/);
      const release = await d1.waitForLog((r) => r.transition === 'release' && d1.logs.indexOf(r) >= mark, 10_000, 'n1 release');
      assert.equal(release.cause, 'dcs-lost', 'a refusal is loss of knowledge (dcs-loss policy), not "the key names another node"');
      assert.equal(v(0), false);
      assert.ok(!allOutput(d1).includes(TOKEN), 'the token is never logged');
    } finally {
      await bed.stopAll();
      await acl.close();
    }
  });

  test('dcs-loss keep: the holder keeps the VIP while Consul is down, and follows the key once it is back', async () => {
    consul.put(KEY, 'n1');
    const d1 = await bed.start(0, consulArgs(0, consul, ['--dcs-loss', 'keep']));
    await bed.start(1, consulArgs(1, consul, ['--dcs-loss', 'keep']));
    await eventually('VIP on n1', () => v(0), 3000);
    assert.ok(!d1.logs.some((r) => r.msg.includes('gives no lease deadline')), 'no hold-lease warning with keep');
    const mark = d1.logs.length;
    await consul.stop();
    await d1.waitForLog((r) => r.msg === 'Consul is unreachable' && d1.logs.indexOf(r) >= mark, 3000, 'n1 noticing the outage');
    // Well past retry-num × retry-after (300 ms): still held, on n1 only.
    await sleep(10 * RETRY_NUM * RETRY_AFTER);
    assert.equal(v(0), true, 'keep holds the VIP during the outage');
    assert.equal(v(1), false);
    assert.ok(!d1.logs.slice(mark).some((r) => r.transition === 'release'), 'no release logged');
    consul.put(KEY, 'n2'); // written while the daemons cannot see it
    await consul.start();
    await eventually('VIP moved to n2 after Consul came back', () => v(1) && !v(0), 5000);
  });

  test('consul-token: accepted by a Consul that requires it; a wrong token gives no VIP and a clear error; tokens are never logged', async () => {
    const TOKEN = 'c0ffee00-right-token-5ec7e7';
    const WRONG = 'deadbeef-wrong-token-0b5cur3';
    const acl = await ConsulStandin.start({ host: SWITCH_IP, token: TOKEN });
    try {
      acl.put(KEY, 'n1');
      const good = await bed.start(0, consulArgs(0, acl, ['--consul-token', TOKEN, '--verbose']));
      await eventually('VIP on n1 with the right token', () => v(0), 3000);
      assert.ok(acl.requests.length > 0 && acl.requests.every((r) => r.token === TOKEN), 'every request carried the token');

      // n2 with a wrong token: it must not act on a key it cannot read (and the key names n1,
      // so it could only ever be wrong if it did anything).
      acl.put(KEY, 'n2');
      const bad = await bed.start(1, consulArgs(1, acl, ['--consul-token', WRONG, '--verbose']), { waitReady: false });
      const err = await bad.waitForLog((r) => r.msg === 'Consul ACL error', 5000, 'the ACL error');
      assert.equal(err.level, 50, 'logged as an error');
      assert.match(String(err.err), /refused to read "service\/test\/leader" \(403 ACL not found\)/);
      assert.match(String(err.err), /consul-token/);
      await sleep(500);
      assert.equal(v(1), false, 'no VIP with a token Consul does not know');
      assert.ok(!bad.logs.some((r) => r.msg.startsWith('ready:')), 'never ready');
      await eventually('n1 released (the key names n2)', () => !v(0), 3000);

      for (const [d, secret] of [[good, TOKEN], [bad, WRONG]] as Array<[Daemon, string]>) {
        const out = allOutput(d);
        assert.ok(!out.includes(secret), `the token appears in the output:\n${d.transcript()}`);
        assert.ok(out.includes('*****'), 'the startup config shows the token masked');
      }
    } finally {
      await bed.stopAll();
      await acl.close();
    }
  });
});
