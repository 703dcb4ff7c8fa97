// The signal matrix: every catchable signal sent to a real daemon holding the VIP (real etcd,
// real interfaces in test namespaces). Each one either leaves it running, holding the VIP,
// answering /healthz and logging what src/daemon/signals.ts says (SIGHUP: a reload that leaves
// the unchanged entry alone), or stops it with the release and the exit code the table names. No signal ever opens Node's inspector.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { constants } from 'node:os';
import { after, afterEach, before, describe, test } from 'node:test';
import { SIGNAL_TABLE } from '../../src/daemon/signals.js';
import { eventually, hasVip, type Daemon } from '../harness/daemon.js';
import type { Netns } from '../harness/netns.js';
import { createBed, KEY, VIP4, type Bed } from './bed.js';

const V4 = `${VIP4}/24`;
const HTTP_PORT = 9466;
const INSPECTOR_PORT = 9229;
/** Left at their default on purpose (a real fault or abort must crash), or uncatchable. */
const NOT_SENT = new Set(['SIGABRT', 'SIGIOT', 'SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL', 'SIGKILL', 'SIGSTOP']);
/** glibc's SIGRTMIN…SIGRTMAX on Linux (32 and 33 belong to the thread library). */
const REALTIME = [34, 35, 40, 50, 64];

/** Listening TCP sockets in a namespace, as `ss` prints them (local address:port). */
function listeners(ns: Netns): string[] {
  return ns.exec('ss', ['-Hltn']).split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3]!).sort();
}

/** Whether a TCP connection to 127.0.0.1:port inside the namespace is accepted. */
function canConnect(ns: Netns, port: number): boolean {
  const script = `require('net').connect(${port}, '127.0.0.1').on('connect', () => { console.log('open'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`;
  return ns.exec(process.execPath, ['-e', script]).trim() === 'open';
}

/** Signal numbers the process catches (SigCgt) or ignores (SigIgn), from /proc. */
function handledSignals(pid: number): Set<number> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mask = (key: string) => BigInt(`0x${new RegExp(`^${key}:\\s*([0-9a-f]+)`, 'm').exec(status)![1]}`);
  const bits = mask('SigCgt') | mask('SigIgn');
  const out = new Set<number>();
  for (let n = 1; n <= 64; n++) if ((bits >> BigInt(n - 1)) & 1n) out.add(n);
  return out;
}

async function healthz(host: string): Promise<number> {
  return (await fetch(`http://${host}:${HTTP_PORT}/healthz`, { signal: AbortSignal.timeout(5000) })).status;
}

describe('daemon: every signal has its documented effect', { concurrency: false }, () => {
  let bed: Bed;
  before(async () => { bed = await createBed(); });
  after(async () => { await bed?.dispose(); });
  afterEach(async () => { if (bed) await Promise.all(bed.daemons.splice(0).map((d) => d.kill())); });

  const startHolder = async (extra: string[] = []): Promise<Daemon> => {
    await bed.kv.put(KEY).value('n1');
    const d = await bed.start(0, ['--http-listen', `${bed.nodes[0].ipv4}:${HTTP_PORT}`, ...extra]);
    await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 3000);
    return d;
  };

  test('control: a plain node process opens its inspector on SIGUSR1, and the probes see it', async () => {
    const ns = bed.nodes[1].ns;
    const child = ns.spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")']);
    try {
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
      const opened = new Promise<void>((resolve) => child.stderr!.on('data', (b: Buffer) => { if (b.toString().includes('Debugger listening')) resolve(); }));
      child.kill('SIGUSR1');
      await opened;
      assert.ok(listeners(ns).includes(`127.0.0.1:${INSPECTOR_PORT}`), `ss shows the inspector: ${listeners(ns).join(' ')}`);
      assert.equal(canConnect(ns, INSPECTOR_PORT), true);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('ignored signals: the daemon keeps the VIP, answers /healthz, logs the table\'s line; no inspector ever opens', async () => {
    const d = await startHolder();
    const ns = bed.nodes[0].ns;
    const baseline = listeners(ns);
    assert.deepEqual(baseline, [`${bed.nodes[0].ipv4}:${HTTP_PORT}`]);

    // Every catchable signal with a default that would kill or stop it is caught or ignored.
    const handled = handledSignals(d.pid);
    for (const [name, effect] of Object.entries(SIGNAL_TABLE)) {
      const num = constants.signals[name as keyof typeof constants.signals];
      if (effect.kind !== 'default' || name === 'SIGPIPE') assert.ok(handled.has(num), `${name} (${num}) is caught or ignored`);
    }
    for (const n of REALTIME) assert.ok(handled.has(n), `real-time signal ${n} is ignored`);

    const alive = async (what: string) => {
      assert.equal(d.child.exitCode, null, `still running after ${what}: ${d.transcript()}`);
      assert.equal(d.child.signalCode, null, `not killed by ${what}`);
      assert.ok(hasVip(ns, V4), `still holds the VIP after ${what}`);
      assert.equal(await healthz(bed.nodes[0].ipv4), 200, `/healthz after ${what}`);
    };
    /** SIGUSR2 logs a line: once it is logged, every signal sent before it has been delivered. */
    const marker = async (from: number) => {
      d.signal('SIGUSR2');
      await d.waitForLog((r) => r.signal === 'SIGUSR2' && d.logs.indexOf(r) >= from, 5000, 'the SIGUSR2 marker line');
    };

    for (const [name, effect] of Object.entries(SIGNAL_TABLE)) {
      if (effect.kind === 'stop' || NOT_SENT.has(name)) continue;
      const from = d.logs.length;
      d.signal(name as NodeJS.Signals);
      if (effect.kind === 'reload') {
        // Nothing changed on the command line: the reload applies, keeps the one entry as it is.
        const line = await d.waitForLog((r) => r.signal === name && d.logs.indexOf(r) >= from, 5000, `the ${name} line`);
        assert.equal(line.msg, `${name} received: reloading the configuration`);
        assert.equal(line.level, 30);
        const applied = await d.waitForLog((r) => r.component === 'reload' && d.logs.indexOf(r) >= from, 5000, 'the reload outcome line');
        assert.equal(applied.msg, 'reload applied: 1 unchanged', d.transcript());
        assert.equal(applied.level, 30);
        assert.ok(!d.logs.slice(from).some((r) => r.transition !== undefined), `an unchanged reload touches no VIP: ${d.transcript()}`);
      } else if (effect.kind === 'ignore' && effect.log !== 'silent') {
        const line = await d.waitForLog((r) => r.signal === name && d.logs.indexOf(r) >= from, 5000, `the ${name} line`);
        assert.ok(line.msg.startsWith(`${name} received: ${effect.note}`), `${name}: ${line.msg}`);
        if (effect.log === 'status') assert.match(line.msg, /holding 203\.0\.113\.100\/24/, `${name} logs the status line`);
        assert.equal(line.level, 30);
      } else {
        await marker(from);
        assert.ok(!d.logs.slice(from).some((r) => r.signal === name), `${name} is not logged`);
      }
      await alive(name);
    }
    for (const n of REALTIME) process.kill(d.pid, n);
    await marker(d.logs.length);
    await alive('the real-time signals');

    assert.equal(d.logs.filter((r) => r.signal === 'SIGHUP').length, 1, 'SIGHUP logged once');
    assert.equal(d.logs.filter((r) => r.component === 'reload').length, 1, 'one reload per SIGHUP');
    assert.deepEqual(listeners(ns), baseline, 'no new listener (no inspector)');
    assert.equal(canConnect(ns, INSPECTOR_PORT), false, 'nothing accepts on 127.0.0.1:9229');
    assert.ok(!d.rawLines.some((l) => l.includes('Debugger')), d.rawLines.join('\n'));
    assert.ok(!d.logs.some((r) => r.level >= 50 || r.transition === 'release'), `no errors, no release: ${d.transcript()}`);
  });

  for (const [name, effect] of Object.entries(SIGNAL_TABLE)) {
    if (effect.kind !== 'stop') continue;
    test(`${name}: releases the VIP and exits ${effect.exitCode}`, async () => {
      const d = await startHolder();
      d.signal(name as NodeJS.Signals);
      const exit = await d.waitExit(5000);
      assert.deepEqual(exit, { code: effect.exitCode, signal: null }, d.transcript());
      assert.equal(hasVip(bed.nodes[0].ns, V4), false);
      assert.ok(d.logs.some((r) => r.msg === `${name} received: stopping`));
      assert.ok(d.transitions().some((r) => r.transition === 'release' && r.cause === 'shutdown'), d.transcript());
    });
  }

  test('SIGQUIT with release-on-stop false: exits 0 and leaves the VIP, saying why', async () => {
    const d = await startHolder(['--release-on-stop', 'false']);
    d.signal('SIGQUIT');
    assert.deepEqual(await d.waitExit(5000), { code: 0, signal: null });
    assert.equal(hasVip(bed.nodes[0].ns, V4), true);
    assert.ok(d.logs.some((r) => r.msg === 'leaving the VIP as it is: release-on-stop is false'), d.transcript());
    bed.nodes[0].ns.ip('addr', 'del', V4, 'dev', 'eth0');
  });

  test('a second stop signal during the stop is only logged; the release still completes', async () => {
    const d = await startHolder();
    d.signal('SIGTERM');
    d.signal('SIGINT');
    assert.deepEqual(await d.waitExit(5000), { code: 0, signal: null });
    // The release takes a few milliseconds: the second signal reaches the daemon while it stops
    // (then it is only logged) or, when the test process is descheduled between its two kill()
    // calls, after it has exited. Either way there is one stop, and it completes.
    const lines = d.logs.filter((r) => r.signal === 'SIGTERM' || r.signal === 'SIGINT').map((r) => r.msg.replace(/^SIG(TERM|INT) /, ''));
    assert.equal(lines[0], 'received: stopping', d.transcript());
    assert.ok(lines.length <= 2 && lines.slice(1).every((l) => l === 'received: already stopping'), d.transcript());
    assert.equal(d.transitions().filter((r) => r.transition === 'release').length, 1, d.transcript());
    assert.equal(hasVip(bed.nodes[0].ns, V4), false);
    assert.ok(d.transitions().some((r) => r.transition === 'release' && r.cause === 'shutdown'), d.transcript());
  });
});
