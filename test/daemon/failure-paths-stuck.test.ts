// A reconcile pass that hangs inside a running daemon: /healthz must answer 503 and the systemd
// watchdog ping must be withheld once the pass has run longer than src/daemon/run.ts's
// PASS_STUCK_MS (120 s), so that systemd (WatchdogSec=) restarts a daemon stuck on I/O; both
// come back once the pass completes. The daemon runs in a test namespace with a real etcd and
// sends its sd_notify datagrams to a socket this test binds (as test/ops-daemon/notify.test.ts).
//
// The hang is real: the VIP's interface gets a pfifo qdisc with limit 0, so every announcement
// frame is dropped at enqueue and sendto() on the AF_PACKET socket fails with ENOBUFS, which the
// basic manager retries retry-num (100) times retry-after (2 s) apart inside the acquire's pass.
// Removing the qdisc lets the next attempt through, and the pass completes.
//
// This file takes about 2 minutes: the threshold is a constant of the daemon, chosen longer than
// any single bounded call a manager makes, and is waited out, not shortened for the test.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bindDatagramReceiver } from '../../src/net/unix-datagram.js';
import { Inbox, type Datagram } from '../harness/notify-inbox.js';
import { hasVip, type LogRecord } from '../harness/daemon.js';
import { get } from '../ops-daemon/scrape.js';
import { createBed, KEY, VIP4, type Bed } from './bed.js';

const V4 = `${VIP4}/24`;
/** src/daemon/run.ts PASS_STUCK_MS. */
const PASS_STUCK_MS = 120_000;
/** Pings every 500 ms (half of it, sd_watchdog_enabled(3)). */
const WATCHDOG_USEC = 1_000_000;
const PING_MS = WATCHDOG_USEC / 1000 / 2;

const isWatchdog = (d: Datagram): boolean => d.text === 'WATCHDOG=1\n';

interface Health {
  status: number;
  body: { status: string; detail: { heartbeatAgeMs: number; passRunningMs: number | null } };
}

describe('daemon: a stuck reconcile pass', { concurrency: false }, () => {
  let bed: Bed;
  let dir: string;
  let inbox: Inbox | undefined;
  before(async () => {
    bed = await createBed();
    dir = mkdtempSync(join(tmpdir(), 'vmt-stuck-'));
  });
  after(async () => {
    await inbox?.close();
    await bed?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('/healthz answers 503 and WATCHDOG=1 is withheld once a pass runs past 120 s; both recover when it completes', async () => {
    const ns = bed.nodes[0].ns;
    const host = bed.nodes[0].ipv4;
    ns.ip('link', 'add', 'vip0', 'type', 'veth', 'peer', 'name', 'vip0p');
    ns.ip('link', 'set', 'vip0p', 'up');
    ns.ip('link', 'set', 'vip0', 'up');
    ns.exec('tc', ['qdisc', 'add', 'dev', 'vip0', 'root', 'pfifo', 'limit', '0']);
    const socket = join(dir, 'notify.sock');
    inbox = new Inbox(bindDatagramReceiver(socket));
    const box = inbox;
    const health = async (): Promise<Health> => {
      const r = await get(host, '/healthz');
      return { status: r.status, body: JSON.parse(r.body) as Health['body'] };
    };

    await bed.kv.put(KEY).value('n1');
    const d = await bed.start(0, ['--interface', 'vip0', '--retry-num', '100', '--retry-after', '2000', '--verbose', '--http-listen', `${host}:9466`], {
      env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: String(WATCHDOG_USEC) }, waitReady: false,
    });
    const retrying = (r: LogRecord): boolean => r.msg === 'transient kernel error; retrying' && r.what === 'announcing the VIP' && r.code === 'ENOBUFS';
    const firstRetry = await d.waitForLog(retrying, 30_000, 'the announcement failing with ENOBUFS and being retried');
    assert.ok(ns.addresses('vip0').includes(V4), 'the address went on before the announcement');

    // Busy but not yet stuck: healthy, the running pass visible in the detail, pings going out.
    const early = await health();
    assert.equal(early.status, 200, JSON.stringify(early.body));
    assert.equal(early.body.status, 'ok');
    assert.ok(early.body.detail.passRunningMs !== null && early.body.detail.passRunningMs > 0, JSON.stringify(early.body));

    // Wait for the 503; the pass began at most a few ms before the first retry line.
    let unhealthy: Health | undefined;
    let lastHealthy: Health = early;
    const giveUpAt = Date.now() + PASS_STUCK_MS + 60_000;
    while (Date.now() < giveUpAt) {
      const h = await health();
      if (h.status !== 200) {
        unhealthy = h;
        break;
      }
      lastHealthy = h;
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.ok(unhealthy, `still healthy ${PASS_STUCK_MS + 60_000} ms on: ${JSON.stringify(lastHealthy.body)}\n${d.transcript()}`);
    const stuckAt = Date.now();
    assert.equal(unhealthy.status, 503);
    assert.equal(unhealthy.body.status, 'unavailable');
    // Unhealthy because of the pass (not the event loop): it has run for at least PASS_STUCK_MS.
    assert.ok(unhealthy.body.detail.passRunningMs !== null && unhealthy.body.detail.passRunningMs >= PASS_STUCK_MS, JSON.stringify(unhealthy.body));
    assert.ok(unhealthy.body.detail.heartbeatAgeMs < 5000, JSON.stringify(unhealthy.body));
    assert.ok(lastHealthy.body.detail.passRunningMs! < PASS_STUCK_MS, `healthy until the threshold: ${JSON.stringify(lastHealthy.body)}`);
    assert.ok(stuckAt - firstRetry.time >= PASS_STUCK_MS - 1000, `503 came ${stuckAt - firstRetry.time} ms after the first retry`);

    // The watchdog: pinged while busy, then withheld with one warning.
    const withheld = await d.waitForLog((r) => r.msg === 'daemon loops look stuck: withholding the systemd watchdog ping so systemd can restart the service', 2 * PING_MS + 5000, 'the watchdog being withheld');
    assert.equal(withheld.level, 40);
    const before = box.got.filter((g) => isWatchdog(g) && g.at <= withheld.time).length;
    // About one ping per PING_MS over the 120 s before; at least a quarter of them arrived.
    assert.ok(before >= PASS_STUCK_MS / PING_MS / 4, `${before} WATCHDOG=1 while the pass was busy but not stuck`);
    // Watch ten ping intervals of silence: nothing may arrive after the warning.
    const silenceUntil = Date.now() + 10 * PING_MS;
    while (Date.now() < silenceUntil) {
      assert.equal((await health()).status, 503, 'stays unhealthy while the pass is stuck');
      await new Promise((r) => setTimeout(r, PING_MS));
    }
    const late = box.got.filter((g) => isWatchdog(g) && g.at > withheld.time);
    assert.deepEqual(late.map((g) => g.text), [], 'no WATCHDOG=1 while the pass is stuck');
    assert.equal(d.logs.filter((r) => r.msg.startsWith('daemon loops look stuck')).length, 1, 'warned once');

    // The kernel lets frames through again: the next retry succeeds, the pass completes.
    const mark = d.logs.length;
    const pingsBefore = box.got.length;
    ns.exec('tc', ['qdisc', 'del', 'dev', 'vip0', 'root']);
    const acquired = await d.waitForTransition('acquire', mark, 10_000);
    assert.match(acquired.msg, /^acquired the VIP: the trigger key names this node/);
    assert.ok((acquired.tookMs as number) >= PASS_STUCK_MS, `the acquire took ${String(acquired.tookMs)} ms`);
    const resumed = await d.waitForLog((r) => r.msg === 'daemon loops alive again: systemd watchdog pings resumed', 2 * PING_MS + 5000, 'the watchdog resuming');
    assert.ok(d.logs.indexOf(resumed) > d.logs.indexOf(acquired));
    const pingAgain = await new Promise<Datagram>((resolve, reject) => {
      const deadline = Date.now() + 2 * PING_MS + 5000;
      const poll = (): void => {
        const g = box.got.slice(pingsBefore).find(isWatchdog);
        if (g) return resolve(g);
        if (Date.now() > deadline) return reject(new Error('no WATCHDOG=1 after the pass completed'));
        setTimeout(poll, 50);
      };
      poll();
    });
    assert.ok(pingAgain.at >= resumed.time - 5, 'the first ping after recovery follows the "resumed" line');
    const healthy = await health();
    assert.equal(healthy.status, 200, JSON.stringify(healthy.body));
    assert.equal(healthy.body.status, 'ok');
    assert.ok(hasVip(ns, V4, 'vip0'));

    d.signal('SIGTERM');
    assert.equal((await d.waitExit()).code, 0);
  });
});
