// systemd notifications from a running daemon: the test binds the $NOTIFY_SOCKET datagram
// socket itself (a path in a temp dir: the filesystem is shared across network namespaces, so
// the daemon in its node namespace can send to it) and checks READY=1 (only once the first
// DCS answer has been applied), STATUS= on transitions, WATCHDOG=1 at half of WATCHDOG_USEC,
// and STOPPING=1 on SIGTERM with no watchdog ping after it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { bindDatagramReceiver } from '../../src/net/unix-datagram.js';
import { Inbox, type Datagram } from '../harness/notify-inbox.js';
import { hasVip } from '../harness/daemon.js';
import { createBed, KEY, VIP4, type Bed } from '../daemon/bed.js';
import { isReadyLine, spawnOn } from './scrape.js';

const V4 = `${VIP4}/24`;
/** 200 ms: the daemon pings every 100 ms (half the timeout, as sd_watchdog_enabled(3) says). */
const WATCHDOG_USEC = 200_000;

const lines = (d: Datagram): string[] => d.text.split('\n').filter(Boolean);
const isReady = (d: Datagram): boolean => lines(d).includes('READY=1');
const isWatchdog = (d: Datagram): boolean => d.text === 'WATCHDOG=1\n';
const isStopping = (d: Datagram): boolean => lines(d).includes('STOPPING=1');
const statusOf = (d: Datagram): string | undefined => lines(d).find((l) => l.startsWith('STATUS='))?.slice('STATUS='.length);

describe('daemon: systemd notifications on $NOTIFY_SOCKET', { concurrency: false }, () => {
  let bed: Bed;
  let dir: string;
  let inbox: Inbox | undefined;
  let n = 0;
  before(async () => {
    bed = await createBed();
    dir = mkdtempSync(join(tmpdir(), 'vmt-notify-'));
  });
  after(async () => {
    await bed?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await inbox?.close();
    inbox = undefined;
    if (!bed) return;
    await Promise.all(bed.daemons.splice(0).map((d) => d.kill()));
    for (const node of bed.nodes) if (hasVip(node.ns, V4)) node.ns.ip('addr', 'del', V4, 'dev', 'eth0');
    if (bed.etcd.pid === 0) await bed.etcd.restart();
  });

  function socket(): string {
    const path = join(dir, `notify-${++n}.sock`);
    inbox = new Inbox(bindDatagramReceiver(path));
    return path;
  }

  test('READY=1 only after the first DCS answer is applied; STATUS= on transitions; WATCHDOG=1; STOPPING=1 on SIGTERM', async () => {
    const path = socket();
    const box = inbox!;
    await bed.kv.put(KEY).value('n1');
    // The DCS is down at start: the daemon runs, pings the watchdog, but is not ready.
    await bed.etcd.kill();
    const d = await spawnOn(bed, 0, { env: { NOTIFY_SOCKET: path, WATCHDOG_USEC: String(WATCHDOG_USEC) }, waitReady: false });
    await d.waitForLog((r) => r.msg === 'etcd: leader key unreachable', 10_000, 'a failed first read');
    await box.waitFor(isWatchdog, 3000, 'a first WATCHDOG=1');
    const early = box.got.length;
    await box.waitFor(isWatchdog, 3000, 'a later WATCHDOG=1', early);
    assert.equal(box.got.some(isReady), false, `no READY=1 while etcd is down: ${JSON.stringify(box.texts())}`);
    assert.equal(d.logs.some(isReadyLine), false);
    assert.equal(hasVip(bed.nodes[0].ns, V4), false);

    // etcd answers: the key names this node; READY=1 follows the acquisition.
    await bed.etcd.restart();
    const ready = await box.waitFor(isReady, 15_000, 'READY=1');
    // Checked the moment READY=1 arrived: the answer has been applied, the VIP is already here.
    assert.ok(hasVip(bed.nodes[0].ns, V4), 'the VIP is on the interface when READY=1 arrives');
    assert.equal(statusOf(ready), `holding ${V4} (leader "n1")`);
    const readyLine = await d.waitForLog(isReadyLine, 2000, 'the "ready:" log line');
    assert.ok(readyLine.time <= ready.at, `"ready:" logged at ${readyLine.time}, READY=1 received at ${ready.at}`);
    assert.match(readyLine.msg, /this node holds the VIP/);
    const acquire = await d.waitForTransition('acquire', 0, 2000);
    assert.ok(acquire.time <= readyLine.time, 'the acquisition was logged before readiness');
    // The acquisition itself was reported before READY=1, as a STATUS= line.
    const readyIndex = box.got.indexOf(ready);
    const holding = box.got.slice(0, readyIndex).find((g) => statusOf(g)?.startsWith('holding ') && !isReady(g));
    assert.ok(holding, `a STATUS=holding datagram before READY=1: ${JSON.stringify(box.texts())}`);
    assert.equal(box.got.filter(isReady).length, 1);

    // Transitions after readiness: STATUS= says standby, then holding again.
    let mark = box.got.length;
    await bed.kv.put(KEY).value('n2');
    const standby = await box.waitFor((g) => statusOf(g)?.startsWith('standby') === true, 3000, 'STATUS=standby', mark);
    assert.equal(statusOf(standby), `standby for ${V4} (leader "n2")`);
    mark = box.got.length;
    await bed.kv.put(KEY).value('n1');
    const held = await box.waitFor((g) => statusOf(g)?.startsWith('holding') === true, 3000, 'STATUS=holding', mark);
    assert.equal(statusOf(held), `holding ${V4} (leader "n1")`);
    assert.ok(hasVip(bed.nodes[0].ns, V4));

    // Watchdog pings every WATCHDOG_USEC / 2 while alive: count them over a second.
    const windowStart = box.got.length;
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    const pings = box.got.slice(windowStart).filter(isWatchdog).length;
    const elapsed = Date.now() - t0;
    const expected = elapsed / (WATCHDOG_USEC / 1000 / 2);
    assert.ok(pings >= expected / 2 && pings <= expected * 1.5 + 1, `${pings} WATCHDOG=1 in ${elapsed} ms (about ${expected.toFixed(1)} expected)`);

    // SIGTERM: STOPPING=1, then the release (STATUS=standby), and no watchdog ping after STOPPING=1.
    const beforeStop = box.got.length;
    d.signal('SIGTERM');
    assert.equal((await d.waitExit(5000)).code, 0);
    const stopping = await box.waitFor(isStopping, 2000, 'STOPPING=1', beforeStop);
    assert.equal(statusOf(stopping), 'stopping');
    const afterStopping = box.got.slice(box.got.indexOf(stopping) + 1);
    assert.deepEqual(afterStopping.filter(isWatchdog).map((g) => g.text), [], 'no WATCHDOG=1 after STOPPING=1');
    assert.ok(afterStopping.some((g) => statusOf(g)?.startsWith('standby') === true),
      `the release on shutdown is reported after STOPPING=1: ${JSON.stringify(afterStopping.map((g) => g.text))}`);
    assert.equal(hasVip(bed.nodes[0].ns, V4), false);
    assert.equal(box.got.filter(isStopping).length, 1);
  });

  test('restart on the holder (VIP already here): READY=1 says holding', async () => {
    await bed.kv.put(KEY).value('n1');
    const first = await spawnOn(bed, 0); // ready: the VIP has been acquired
    assert.ok(hasVip(bed.nodes[0].ns, V4));
    await first.kill(); // SIGKILL: the address stays
    bed.daemons.splice(bed.daemons.indexOf(first), 1);
    assert.ok(hasVip(bed.nodes[0].ns, V4));

    const path = socket();
    const box = inbox!;
    const d = await spawnOn(bed, 0, { env: { NOTIFY_SOCKET: path } });
    const ready = await box.waitFor(isReady, 3000, 'READY=1');
    assert.equal(statusOf(ready), `holding ${V4} (leader "n1")`);
    assert.equal(d.transitions().filter((r) => r.transition === 'acquire').length, 0, d.transcript());
  });

  test('without WATCHDOG_USEC: READY=1 (standing by) and STOPPING=1, but no watchdog pings', async () => {
    const path = socket();
    const box = inbox!;
    await bed.kv.put(KEY).value('n2');
    const d = await spawnOn(bed, 0, { env: { NOTIFY_SOCKET: path } });
    const ready = await box.waitFor(isReady, 3000, 'READY=1');
    assert.equal(statusOf(ready), `standby for ${V4} (leader "n2")`);
    await new Promise((r) => setTimeout(r, 500));
    d.signal('SIGTERM');
    assert.equal((await d.waitExit(5000)).code, 0);
    await box.waitFor(isStopping, 2000, 'STOPPING=1');
    assert.deepEqual(box.got.filter(isWatchdog), [], 'no WATCHDOG=1 when systemd asked for none');
    assert.deepEqual(box.texts(), ['READY=1\nSTATUS=standby for 203.0.113.100/24 (leader "n2")\n', 'STOPPING=1\nSTATUS=stopping\n']);
  });
});
