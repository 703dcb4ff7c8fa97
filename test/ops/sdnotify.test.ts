import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../src/log.js';
import { bindDatagramReceiver, type DatagramReceiver } from '../../src/net/unix-datagram.js';
import { Notifier } from '../../src/ops/sdnotify.js';

const WAIT_MS = 2000;

function abstractName(): string {
  return `@vip-manager-test-sdnotify-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Collects warn/info calls; everything else is ignored. */
function recordingLogger() {
  const lines: string[] = [];
  const log = (level: string) => (a: unknown, b?: unknown) => lines.push(`${level}: ${typeof a === 'string' ? a : String(b)}`);
  const logger = { warn: log('warn'), info: log('info'), error: log('error'), debug: () => {} } as unknown as Logger;
  return { logger, lines };
}

async function text(r: DatagramReceiver): Promise<string> {
  return (await r.next(WAIT_MS)).toString('utf8');
}

function drain(r: DatagramReceiver): string[] {
  const got: string[] = [];
  for (let d = r.recv(); d !== null; d = r.recv()) got.push(d.toString('utf8'));
  return got;
}

function refedTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

describe('systemd Notifier', () => {
  const receivers: DatagramReceiver[] = [];
  const notifiers: Notifier[] = [];
  const dirs: string[] = [];
  after(() => {
    for (const n of notifiers) n.close();
    for (const r of receivers) r.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  function receiver(path: string): DatagramReceiver {
    const r = bindDatagramReceiver(path);
    receivers.push(r);
    return r;
  }
  function notifier(...args: ConstructorParameters<typeof Notifier>): Notifier {
    const n = new Notifier(...args);
    notifiers.push(n);
    return n;
  }

  it('does nothing without NOTIFY_SOCKET', async () => {
    const sent: string[] = [];
    const n = notifier({ env: { WATCHDOG_USEC: '1000' }, alive: () => true, send: (_p, d) => void sent.push(d.toString()) });
    assert.equal(n.enabled, false);
    assert.equal(n.watchdogIntervalMs, null);
    n.start();
    assert.equal(await n.ready('x'), false);
    assert.equal(await n.status('x'), false);
    assert.equal(await n.watchdog(), false);
    assert.equal(await n.stopping(), false);
    assert.deepEqual(sent, []);
  });

  it('sends READY=1, STATUS=... and STOPPING=1 to an abstract socket', async () => {
    const name = abstractName();
    const r = receiver(name);
    const n = notifier({ env: { NOTIFY_SOCKET: name }, alive: () => true });
    assert.equal(n.enabled, true);
    assert.equal(await n.ready('watching etcd key /service/pg/leader'), true);
    assert.equal(await text(r), 'READY=1\nSTATUS=watching etcd key /service/pg/leader\n');
    assert.equal(await n.status('holding the VIP\nsince now'), true);
    assert.equal(await text(r), 'STATUS=holding the VIP since now\n', 'a newline must not start a new assignment');
    assert.equal(await n.stopping('releasing the VIP'), true);
    assert.equal(await text(r), 'STOPPING=1\nSTATUS=releasing the VIP\n');
  });

  it('sends to a filesystem socket path too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vip-sdnotify-'));
    dirs.push(dir);
    const path = join(dir, 'notify');
    const r = receiver(path);
    const n = notifier({ env: { NOTIFY_SOCKET: path }, alive: () => true });
    assert.equal(await n.ready(), true);
    assert.equal(await text(r), 'READY=1\n');
  });

  it('pings WATCHDOG=1 every WATCHDOG_USEC/2 while alive, withholds while stuck, without holding the process', async () => {
    const name = abstractName();
    const r = receiver(name);
    let alive = true;
    const { logger, lines } = recordingLogger();
    const n = notifier({ env: { NOTIFY_SOCKET: name, WATCHDOG_USEC: '60000', WATCHDOG_PID: String(process.pid) }, alive: () => alive, logger });
    assert.equal(n.watchdogIntervalMs, 30);
    const before = refedTimers();
    n.start();
    assert.equal(refedTimers(), before, 'the watchdog timer must be unref()ed');

    assert.equal(await text(r), 'WATCHDOG=1\n');
    assert.equal(await text(r), 'WATCHDOG=1\n');

    alive = false;
    // A ping goes out synchronously inside its timer tick: every one sent before this point is
    // already in the socket, and none can follow once the flag is read as false.
    drain(r);
    // The first tick that finds the loops stuck logs the warning: wait for that, not a while.
    const giveUp = performance.now() + 5000;
    while (!lines.some((l) => l.startsWith('warn'))) {
      if (performance.now() > giveUp) assert.fail('no tick withheld a ping within 5 s');
      await sleep(5);
    }
    await sleep(150); // an absence window of five intervals
    assert.deepEqual(drain(r), [], 'no ping while the loops are not alive');
    assert.equal(lines.filter((l) => l.startsWith('warn')).length, 1, 'the stall is logged once');

    alive = true;
    assert.equal(await text(r), 'WATCHDOG=1\n');
    assert.ok(lines.some((l) => l.startsWith('info')), 'the recovery is logged');

    await n.stopping();
    assert.equal(await text(r), 'STOPPING=1\n');
    await sleep(100);
    assert.deepEqual(drain(r), [], 'no ping after STOPPING=1');
  });

  it('expects no watchdog pings when WATCHDOG_PID names another process or WATCHDOG_USEC is invalid', () => {
    const name = abstractName();
    assert.equal(notifier({ env: { NOTIFY_SOCKET: name, WATCHDOG_USEC: '60000', WATCHDOG_PID: String(process.pid + 1) }, alive: () => true }).watchdogIntervalMs, null);
    assert.equal(notifier({ env: { NOTIFY_SOCKET: name, WATCHDOG_USEC: '60000' }, alive: () => true }).watchdogIntervalMs, 30, 'WATCHDOG_PID unset: ours');
    const { logger, lines } = recordingLogger();
    assert.equal(notifier({ env: { NOTIFY_SOCKET: name, WATCHDOG_USEC: 'soon' }, alive: () => true, logger }).watchdogIntervalMs, null);
    assert.match(lines.join('\n'), /WATCHDOG_USEC/);
  });

  it('ignores a NOTIFY_SOCKET it cannot use, with a warning', async () => {
    const { logger, lines } = recordingLogger();
    const n = notifier({ env: { NOTIFY_SOCKET: 'vsock:2:1234' }, alive: () => true, logger });
    assert.equal(n.enabled, false);
    assert.match(lines.join('\n'), /NOTIFY_SOCKET/);
    assert.equal(await n.ready(), false);
  });

  it('never throws when the socket is gone; warns once per failure streak', async () => {
    const { logger, lines } = recordingLogger();
    const n = notifier({ env: { NOTIFY_SOCKET: abstractName() }, alive: () => true, logger });
    assert.equal(await n.ready(), false);
    assert.equal(await n.status('x'), false);
    assert.equal(lines.filter((l) => l.startsWith('warn')).length, 1);
  });
});
