// The daemon against a real etcd, on real interfaces in test namespaces: following the key,
// restarts on the holder, signals, drift, a burst of changes, and running unprivileged.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, afterEach, before, describe, test } from 'node:test';
import { BIN, eventually, hasVip, type Daemon, type LogRecord } from '../harness/daemon.js';
import { createBed, KEY, VIP4, VIP6, type Bed } from './bed.js';

const V4 = `${VIP4}/24`;
const V6 = `${VIP6}/64`;

/**
 * `ip -o monitor address` in a namespace: every address add/remove there, as text lines. The
 * monitor prints nothing when it starts listening, and the kernel delivers events in order, so
 * `sync()` adds and removes a throwaway marker address on lo and waits until the monitor has
 * printed both: every change made before the call has then been reported too.
 */
interface AddressMonitor {
  lines: string[];
  child: ChildProcess;
  sync(): Promise<void>;
}
let markers = 0;
async function addressMonitor(bed: Bed, i: 0 | 1): Promise<AddressMonitor> {
  const ns = bed.nodes[i].ns;
  const child = ns.spawn('ip', ['-o', 'monitor', 'address']);
  const lines: string[] = [];
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    lines.push(...parts.filter(Boolean));
  });
  const sync = async (): Promise<void> => {
    // 198.51.100.200-249/32 on lo: never the VIP, never on eth0.
    const marker = `198.51.100.${200 + (markers++ % 50)}/32`;
    const from = lines.length;
    // Until the monitor has subscribed, an add is not reported: repeat it until one is.
    const seen = (deleted: boolean) => lines.slice(from).some((l) => l.includes(` ${marker} `) && l.startsWith('Deleted') === deleted);
    const until = performance.now() + 10_000;
    while (!seen(false)) {
      if (performance.now() > until) throw new Error(`ip monitor did not report ${marker} on lo; it printed:\n${lines.join('\n')}`);
      ns.ip('addr', 'replace', marker, 'dev', 'lo');
      await eventually(`ip monitor reporting ${marker}`, () => seen(false), 1000).catch(() => undefined);
    }
    ns.ip('addr', 'del', marker, 'dev', 'lo');
    await eventually(`ip monitor reporting the removal of ${marker}`, () => seen(true), 10_000);
  };
  await sync();
  return { lines, child, sync };
}

describe('daemon: follows the etcd leader key', { concurrency: false }, () => {
  let bed: Bed;
  before(async () => { bed = await createBed(); });
  after(async () => { await bed?.dispose(); });
  // Every test starts from no daemons, whatever the previous one left behind.
  afterEach(async () => { if (bed) await bed.reset(); });

  test('absent → none; ours → VIP here only; other → moved; deleted → removed (IPv4)', async () => {
    await bed.kv.delete().key(KEY);
    const [d1, d2] = [await bed.start(0), await bed.start(1)];
    assert.equal(hasVip(bed.nodes[0].ns, V4) || hasVip(bed.nodes[1].ns, V4), false, 'no VIP while the key is absent');

    await bed.kv.put(KEY).value('n1');
    await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 2000);
    assert.equal(hasVip(bed.nodes[1].ns, V4), false);

    await bed.kv.put(KEY).value('n2');
    await eventually('VIP moved to n2', () => hasVip(bed.nodes[1].ns, V4) && !hasVip(bed.nodes[0].ns, V4), 2000);

    await bed.kv.delete().key(KEY);
    await eventually('VIP removed', () => !hasVip(bed.nodes[1].ns, V4), 2000);
    const acquire = await d2.waitForTransition('acquire', 0, 2000);
    assert.equal(acquire.value, 'n2');
    assert.equal(typeof acquire.reactionMs, 'number');
    // The log line follows the kernel change by a moment: wait for it rather than race it.
    await d1.waitForLog((t) => t.transition === 'release' && t.cause === 'key-other', 2000, 'n1 release (key-other)');
    await d2.waitForLog((t) => t.transition === 'release' && t.cause === 'key-absent', 2000, 'n2 release (key-absent)');
    await bed.reset();
  });

  test('IPv6 VIP follows the key', async () => {
    await bed.kv.put(KEY).value('n1');
    await bed.start(0, [], { ip: VIP6, netmask: '64' });
    await bed.start(1, [], { ip: VIP6, netmask: '64' });
    await eventually('IPv6 VIP on n1', () => hasVip(bed.nodes[0].ns, V6), 2000);
    await bed.kv.put(KEY).value('n2');
    await eventually('IPv6 VIP moved to n2', () => hasVip(bed.nodes[1].ns, V6) && !hasVip(bed.nodes[0].ns, V6), 2000);
    await bed.kv.delete().key(KEY);
    await eventually('IPv6 VIP removed', () => !hasVip(bed.nodes[1].ns, V6), 2000);
    await bed.reset();
  });

  test('restart on the holder: the address is never removed (SIGKILL, and SIGTERM with release-on-stop false)', async () => {
    await bed.kv.put(KEY).value('n1');
    const first = await bed.start(0);
    await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 2000);
    const mon = await addressMonitor(bed, 0);

    await first.kill();
    const second = await bed.start(0);
    assert.ok(second.logs.some((r) => r.msg.includes('this node holds the VIP')));
    second.signal('SIGTERM');
    await second.waitExit();
    // That one released (release-on-stop defaults to true): put it back, then the real check.
    const third = await bed.start(0, ['--release-on-stop', 'false']);
    await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 2000);
    await mon.sync();
    const mark = mon.lines.length;
    third.signal('SIGTERM');
    assert.equal((await third.waitExit()).code, 0);
    assert.ok(hasVip(bed.nodes[0].ns, V4), 'release-on-stop false keeps the VIP');
    // Ready: its first DCS answer is applied, which is when a restart would remove the address.
    await bed.start(0);
    await mon.sync();
    mon.child.kill();
    const removals = mon.lines.slice(mark).filter((l) => l.startsWith('Deleted') && l.includes(VIP4));
    assert.deepEqual(removals, [], 'restart with release-on-stop false then start: no removal');
    // And across the SIGKILL restart before: exactly one removal, the one from SIGTERM.
    assert.equal(mon.lines.slice(0, mark).filter((l) => l.startsWith('Deleted') && l.includes(VIP4)).length, 1);
    await bed.reset();
  });

  test('restart on the holder with a leased key (as Patroni\'s is): never removed, even before the lease is queried', async () => {
    const lease = bed.kv.lease(30);
    await lease.put(KEY).value('n1');
    // --verbose: the daemon logs each view of the key, and the one after its lease query carries
    // the deadline, which is what a restart on the holder must wait for without dropping the VIP.
    const leaseKnown = (revision?: string) => (r: LogRecord): boolean => r.msg === 'etcd: leader key' && r.value === 'n1'
      && typeof r.leaseDeadlineInMs === 'number' && (revision === undefined || r.revision === revision);
    const first = await bed.start(0, ['--verbose']);
    await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 2000);
    const mon = await addressMonitor(bed, 0);
    for (let i = 0; i < 3; i++) {
      await (i === 0 ? first : bed.daemons.at(-1)!).kill();
      const d = await bed.start(0, ['--verbose']);
      await d.waitForLog(leaseKnown(), 10_000, 'the lease queried after the restart');
    }
    // Patroni re-puts its key under a new lease after its own restart: same value, new lease.
    const lease2 = bed.kv.lease(30);
    const put = await lease2.put(KEY).value('n1');
    await bed.daemons.at(-1)!.waitForLog(leaseKnown(String(put.header.revision)), 10_000, 'the re-put key with its new lease');
    await mon.sync();
    mon.child.kill();
    assert.deepEqual(mon.lines.filter((l) => l.startsWith('Deleted') && l.includes(VIP4)), []);
    assert.ok(hasVip(bed.nodes[0].ns, V4));
    assert.deepEqual(bed.daemons.flatMap((d) => d.transitions()).filter((t) => t.transition === 'release'), []);
    await lease.revoke();
    await lease2.revoke();
  });

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    test(`${sig} releases the VIP within the shutdown deadline and exits 0`, async (tc) => {
      await bed.kv.put(KEY).value('n1');
      const d = await bed.start(0);
      await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 2000);
      const t = performance.now();
      d.signal(sig);
      const exit = await d.waitExit(3000);
      const took = performance.now() - t;
      assert.equal(exit.code, 0);
      tc.diagnostic(`exited ${took.toFixed(0)} ms after ${sig}`);
      // The daemon's own bound: the release finished inside its 900 ms deadline.
      assert.ok(!d.logs.some((r) => r.msg.startsWith('shutdown took longer than')), d.transcript());
      // The whole exit, Node's teardown included: measured 150-225 ms under load, bound over 5x.
      assert.ok(took < 1500, `exited in ${took.toFixed(0)} ms`);
      assert.equal(hasVip(bed.nodes[0].ns, V4), false);
      assert.ok(d.transitions().some((r) => r.transition === 'release' && r.cause === 'shutdown'));
    });
  }

  test('drift: external `ip addr del` and link down/up are restored from kernel events; a stray VIP on a non-leader is removed', async () => {
    await bed.kv.put(KEY).value('n1');
    const d1 = await bed.start(0);
    await bed.start(1);
    await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 2000);

    // Nothing polls the interface: only the kernel's address event can bring the VIP back, so
    // being restored at all shows the event was acted on; no time bound needed for that.
    let mark = d1.logs.length;
    bed.nodes[0].ns.ip('addr', 'del', V4, 'dev', 'eth0');
    await d1.waitForTransition('acquire', mark, 5000);
    assert.ok(hasVip(bed.nodes[0].ns, V4), 'VIP restored after ip addr del');

    mark = d1.logs.length;
    bed.nodes[0].ns.ip('link', 'set', 'eth0', 'down');
    await d1.waitForLog((r) => r.msg === 'waiting: interface eth0 is down' && d1.logs.indexOf(r) >= mark, 5000, 'the link going down noticed');
    bed.nodes[0].ns.ip('link', 'set', 'eth0', 'up');
    await eventually('VIP present after link down/up', () => hasVip(bed.nodes[0].ns, V4), 1000, 2);
    await d1.waitForLog((r) => r.transition === 'announce' || r.transition === 'acquire', 2000, 'a re-announcement after the link came back');

    bed.nodes[1].ns.ip('addr', 'add', V4, 'dev', 'eth0');
    await eventually('stray VIP on n2 removed', () => !hasVip(bed.nodes[1].ns, V4), 1000, 2);
    await bed.reset();
  });

  test('IPv6 VIP lost with the link (keep_addr_on_down=0) is restored when it comes back', async () => {
    await bed.kv.put(KEY).value('n1');
    await bed.start(0, [], { ip: VIP6, netmask: '64' });
    await eventually('IPv6 VIP on n1', () => hasVip(bed.nodes[0].ns, V6), 2000);
    bed.nodes[0].ns.ip('link', 'set', 'eth0', 'down');
    await eventually('IPv6 VIP gone with the link', () => !hasVip(bed.nodes[0].ns, V6), 1000, 2);
    bed.nodes[0].ns.ip('link', 'set', 'eth0', 'up');
    await eventually('IPv6 VIP restored', () => hasVip(bed.nodes[0].ns, V6), 1000, 2);
    await bed.reset();
  });

  test('1,000 changes of the key in a burst: the final state is right and reached promptly', async (t) => {
    await bed.kv.put(KEY).value('n2');
    // --verbose: each daemon logs the views it acts on, so the test knows when both have seen
    // the last revision.
    const d1 = await bed.start(0, ['--verbose']);
    const d2 = await bed.start(1, ['--verbose']);
    await eventually('VIP on n2', () => hasVip(bed.nodes[1].ns, V4), 2000);
    const values = ['n1', 'n2', 'garbage', 'n1'];
    const start = performance.now();
    await Promise.all(Array.from({ length: 1000 }, (_, i) => bed.kv.put(KEY).value(values[i % values.length]!)));
    const putsDone = performance.now();
    // The test's own load, not the daemon's behaviour: diagnostic only.
    t.diagnostic(`1000 puts took ${(putsDone - start).toFixed(0)} ms`);
    const last = (await bed.kv.get(KEY).exec()).kvs[0]!;
    const final = last.value.toString();
    const holder = final === 'n1' ? 0 : final === 'n2' ? 1 : null;
    const sawLast = (r: LogRecord): boolean => r.msg === 'etcd: leader key' && r.revision === String(last.mod_revision);
    await Promise.all([d1, d2].map((d) => d.waitForLog(sawLast, 10_000, `the last revision ${String(last.mod_revision)}`)));
    const settled = await eventually(`final state (${final})`, () =>
      (holder === 0) === hasVip(bed.nodes[0].ns, V4) && (holder === 1) === hasVip(bed.nodes[1].ns, V4), 10_000, 5);
    t.diagnostic(`final state reached ${(performance.now() - putsDone).toFixed(0)} ms after the last put, ${settled.toFixed(0)} ms after both daemons logged its revision`);
    // "Promptly" is the daemon's part: no backlog of passes once it has seen the last revision
    // (how soon etcd delivers it under load is not; 0.1-2.6 s measured). Measured 45-310 ms on
    // this machine with two other test files running; the bound is over 5x that.
    assert.ok(settled < 2000, `final state reached ${settled.toFixed(0)} ms after both daemons saw the last revision`);
    await bed.reset();
  });

  test('unprivileged (user nobody, only CAP_NET_ADMIN + CAP_NET_RAW): follows the key, restores drift, releases on SIGTERM', async () => {
    await bed.kv.put(KEY).value('n1');
    const d1: Daemon = await bed.start(0, [], { unprivileged: true });
    const d2 = await bed.start(1, [], { unprivileged: true });
    await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 2000);
    bed.nodes[0].ns.ip('addr', 'del', V4, 'dev', 'eth0');
    await eventually('restored', () => hasVip(bed.nodes[0].ns, V4), 1000, 2);
    await bed.kv.put(KEY).value('n2');
    await eventually('moved to n2', () => hasVip(bed.nodes[1].ns, V4) && !hasVip(bed.nodes[0].ns, V4), 2000);
    await d2.waitForTransition('acquire', 0, 2000);
    d2.signal('SIGTERM');
    assert.equal((await d2.waitExit()).code, 0);
    assert.equal(hasVip(bed.nodes[1].ns, V4), false);
    assert.ok(!d1.logs.some((r) => r.level >= 50), `no errors: ${d1.transcript()}`);
    await bed.reset();
  });

  test('without capabilities the daemon stops with exit 1 and an error naming CAP_NET_ADMIN', async () => {
    await bed.kv.put(KEY).value('n1');
    const child = bed.nodes[0].ns.spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', process.execPath, BIN,
      '--ip', VIP4, '--netmask', '24', '--interface', 'eth0', '--trigger-key', KEY, '--trigger-value', 'n1', '--dcs-endpoints', bed.etcd.clientUrl, '--log-format', 'json']);
    let err = '';
    child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    assert.equal(code, 1);
    assert.match(err, /CAP_NET_ADMIN/);
    assert.equal(hasVip(bed.nodes[0].ns, V4), false);
  });
});
