// Hooks in the real daemon: vip-manager in a test namespace with a real etcd (test/daemon/bed.ts),
// a shell-script hook that records what it was given (its environment as the kernel passed it,
// its arguments, its capabilities) and then behaves as told (succeed, fail, hang, ignore
// SIGTERM). Synchronised on the daemon's log lines; the kernel's /proc is the judge of what
// runs and with which capabilities.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { BIN, eventually, hasVip, type Daemon, type LogRecord } from '../harness/daemon.js';
import { createBed, KEY, VIP4, type Bed } from '../daemon/bed.js';
import { HTTP_PORT, metrics } from '../ops-daemon/scrape.js';

const V4 = `${VIP4}/24`;
/** Every per-VIP series carries the entry's name, by default its ip. */
const VIPL = { vip: VIP4 };
const SECRET = 'hook-must-not-see-Tok-7f3a';
const OTHER_SECRET = 'hook-must-not-see-Env-91c2';
const ALLOWED = ['LANG', 'PATH', 'VIP_CAUSE', 'VIP_EVENT', 'VIP_IP', 'VIP_NAME', 'VIP_VALUE'];

const HOOK = `#!/bin/sh
# Test hook: records this run, then does what its first argument says.
out="$1"; shift
mode="$1"
f="$out/$(date +%s%N).$$"
tr '\\0' '\\n' < /proc/$$/environ > "$f.env"
printf '%s\\n' "$@" > "$f.args"
grep '^Cap' /proc/$$/status > "$f.caps"
echo "$VIP_EVENT $VIP_CAUSE $VIP_VALUE" >> "$out/events"
echo "hook says $VIP_EVENT"
case "$mode" in
  fail) echo "failing on purpose" >&2; exit 3 ;;
  slow) echo "running $$"; sleep 60 & echo "child $!"; wait ;;
  stubborn) trap '' TERM; echo "running $$"; sleep 60 & echo "child $!"; wait; wait ;;
esac
exit 0
`;

describe('hooks in the daemon', { concurrency: false }, () => {
  let bed: Bed;
  let dir: string;
  let hook: string;
  let runs = 0;
  before(async () => {
    bed = await createBed();
    dir = mkdtempSync(join(tmpdir(), 'vmt-hooks-'));
    chmodSync(dir, 0o755);
    hook = join(dir, 'record.sh');
    writeFileSync(hook, HOOK);
    chmodSync(hook, 0o755);
  });
  after(async () => {
    await bed?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    if (!bed) return;
    // A killed daemon leaves the VIP behind; the next test must see a real acquire.
    await bed.reset();
  });

  /** A fresh output directory, writable by the hook whatever user it runs as. */
  function outDir(): string {
    const out = join(dir, `out${runs++}`);
    mkdirSync(out);
    chmodSync(out, 0o777);
    return out;
  }
  const events = (out: string) => (existsSync(join(out, 'events')) ? readFileSync(join(out, 'events'), 'utf8').trim().split('\n') : []);
  /** The recorded runs, oldest first: environment, arguments and capability lines. */
  function recorded(out: string): Array<{ env: Record<string, string>; args: string[]; caps: Record<string, bigint> }> {
    const stems = readdirSync(out).filter((f) => f.endsWith('.env')).map((f) => f.slice(0, -4)).sort();
    return stems.map((s) => ({
      env: Object.fromEntries(readFileSync(join(out, `${s}.env`), 'utf8').split('\n').filter((l) => l !== '').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])),
      args: readFileSync(join(out, `${s}.args`), 'utf8').split('\n').slice(0, -1),
      caps: Object.fromEntries(readFileSync(join(out, `${s}.caps`), 'utf8').trim().split('\n').map((l) => l.split(/:\s*/)).map(([k, v]) => [k!, BigInt(`0x${v}`)])),
    }));
  }
  const exitOf = (d: Daemon, name: string, after = 0) => d.waitForLog((r) => r.hook === name && typeof r.result === 'string' && d.logs.indexOf(r) >= after, 15_000, `${name} to end`);
  const lineOf = (d: Daemon, name: string, re: RegExp) => d.waitForLog((r) => r.hook === name && r.stream !== undefined && re.test(r.msg), 15_000, `${name} to print ${re}`);
  const pidIn = (r: LogRecord) => Number(/(\d+)$/.exec(r.msg)![1]);
  /** CapInh, CapPrm, CapEff, CapAmb of a process, from the kernel. */
  function capsOf(pid: number): Record<string, bigint> {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Object.fromEntries(['CapInh', 'CapPrm', 'CapEff', 'CapAmb', 'Uid'].map((k) => {
      const v = new RegExp(`^${k}:\\s*(\\S+)`, 'm').exec(text)![1]!;
      return [k, k === 'Uid' ? BigInt(v) : BigInt(`0x${v}`)];
    }));
  }
  /** Gone, or a zombie about to be reaped: in neither case does it run. */
  const running = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s*Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

  test('acquire then release: each hook runs once, in order, with the event in a minimal environment and no secret', async () => {
    const out = outDir();
    await bed.kv.put(KEY).value('n1');
    const host = bed.nodes[0].ipv4;
    const d = await bed.start(0, ['--on-acquire', `${hook} ${out} ok 'two words'`, '--on-release', `${hook} ${out} ok`, '--http-listen', `${host}:${HTTP_PORT}`], {
      env: { VIP_HCLOUD_TOKEN: SECRET, SOME_API_KEY: OTHER_SECRET, LANG: 'C.UTF-8' },
    });
    const acquired = await exitOf(d, 'on-acquire');
    assert.equal(acquired.result, 'ok', d.transcript());
    assert.equal(acquired.status, 0);
    // Its output, line by line, marked as the hook's.
    const said = await lineOf(d, 'on-acquire', /hook says acquire$/);
    assert.equal(said.stream, 'stdout');
    assert.equal(said.msg, 'on-acquire: hook says acquire');
    const mark = d.logs.length;
    await bed.kv.put(KEY).value('n2');
    const released = await exitOf(d, 'on-release', mark);
    assert.equal(released.result, 'ok', d.transcript());
    assert.equal(hasVip(bed.nodes[0].ns, V4), false);

    assert.deepEqual(events(out), ['acquire key-ours n1', 'release key-other n2']);
    const [a, r] = recorded(out);
    assert.ok(a && r && recorded(out).length === 2);
    assert.deepEqual(a.env, { PATH: a.env.PATH, LANG: 'C.UTF-8', VIP_EVENT: 'acquire', VIP_NAME: VIP4, VIP_IP: VIP4, VIP_CAUSE: 'key-ours', VIP_VALUE: 'n1' });
    assert.deepEqual(r.env, { PATH: a.env.PATH, LANG: 'C.UTF-8', VIP_EVENT: 'release', VIP_NAME: VIP4, VIP_IP: VIP4, VIP_CAUSE: 'key-other', VIP_VALUE: 'n2' });
    assert.ok(a.env.PATH!.length > 0);
    for (const run of [a, r]) {
      assert.deepEqual(Object.keys(run.env).sort(), ALLOWED);
      const all = JSON.stringify({ env: run.env, args: run.args });
      assert.ok(!all.includes(SECRET) && !all.includes(OTHER_SECRET), all);
      // The daemon runs as root here: SECBIT_NOROOT leaves its hooks without capabilities too.
      for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapAmb']) assert.equal(run.caps[set], 0n, `${set} of a root daemon's hook`);
    }
    assert.deepEqual(a.args, ['ok', 'two words'], 'quoted words stay one argument');
    assert.deepEqual(r.args, ['ok']);

    const m = await metrics(host);
    assert.equal(m.value('vip_manager_hook_runs_total', { ...VIPL, hook: 'on-acquire', result: 'ok' }), 1);
    assert.equal(m.value('vip_manager_hook_runs_total', { ...VIPL, hook: 'on-release', result: 'ok' }), 1);
    assert.equal(m.value('vip_manager_hook_runs_total', { ...VIPL, hook: 'on-acquire', result: 'failed' }), 0);
    assert.equal(m.value('vip_manager_hook_duration_seconds_count', { ...VIPL, hook: 'on-acquire' }), 1);
    assert.equal(m.value('vip_manager_hook_duration_seconds_count', { ...VIPL, hook: 'on-release' }), 1);
  });

  test('a failing hook: its exit status 3 is logged with its stderr and counted', async () => {
    const out = outDir();
    await bed.kv.put(KEY).value('n1');
    const host = bed.nodes[0].ipv4;
    const d = await bed.start(0, ['--on-acquire', `${hook} ${out} fail`, '--http-listen', `${host}:${HTTP_PORT}`]);
    const end = await exitOf(d, 'on-acquire');
    assert.equal(end.result, 'failed');
    assert.equal(end.status, 3);
    assert.equal(end.level, 40, 'a warning');
    assert.match(end.msg, /^hook on-acquire \(pid \d+\) exited with status 3 after \d+ ms$/);
    const err = await lineOf(d, 'on-acquire', /failing on purpose/);
    assert.equal(err.stream, 'stderr');
    assert.ok(d.logs.indexOf(err) < d.logs.indexOf(end), 'its output is logged before its end');
    assert.ok(hasVip(bed.nodes[0].ns, V4), 'a failed hook changes nothing about the VIP');
    const m = await metrics(host);
    assert.equal(m.value('vip_manager_hook_runs_total', { ...VIPL, hook: 'on-acquire', result: 'failed' }), 1);
    assert.equal(m.value('vip_manager_hook_runs_total', { ...VIPL, hook: 'on-acquire', result: 'ok' }), 0);
    assert.equal(m.value('vip_manager_hook_duration_seconds_count', { ...VIPL, hook: 'on-acquire' }), 1);
  });

  test('hook-timeout: the hook and what it started are killed (SIGTERM to the group, SIGKILL after the grace when ignored)', async () => {
    const out = outDir();
    await bed.kv.put(KEY).value('n1');
    const host = bed.nodes[0].ipv4;
    const d = await bed.start(0, ['--on-acquire', `${hook} ${out} stubborn`, '--hook-timeout', '500', '--http-listen', `${host}:${HTTP_PORT}`]);
    const pid = pidIn(await lineOf(d, 'on-acquire', /^on-acquire: running \d+$/));
    const child = pidIn(await lineOf(d, 'on-acquire', /^on-acquire: child \d+$/));
    assert.ok(running(pid) && running(child), 'both run before the timeout');
    const end = await exitOf(d, 'on-acquire');
    assert.equal(end.result, 'timeout', d.transcript());
    assert.equal(end.signal, 'SIGKILL', 'it ignored SIGTERM');
    // SIGTERM at 500 ms is ignored; SIGKILL follows after the 1 s grace.
    assert.ok((end.durationMs as number) >= 1450 && (end.durationMs as number) < 10_000, `ran ${end.durationMs} ms`);
    assert.ok(d.logs.some((r) => r.hook === 'on-acquire' && /still runs after hook-timeout 500 ms: sending SIGTERM to its process group/.test(r.msg)));
    assert.equal(running(pid), false, 'the hook is gone');
    await eventually('the hook\'s child to be gone', () => !running(child), 5000);
    const m = await metrics(host);
    assert.equal(m.value('vip_manager_hook_runs_total', { ...VIPL, hook: 'on-acquire', result: 'timeout' }), 1);
  });

  test('a slow hook delays no transition: the VIP is released while the acquire hook still runs; on-release runs after it', async (t) => {
    const out = outDir();
    await bed.kv.put(KEY).value('n1');
    const d = await bed.start(0, ['--on-acquire', `${hook} ${out} slow`, '--on-release', `${hook} ${out} ok`, '--hook-timeout', '4000']);
    const pid = pidIn(await lineOf(d, 'on-acquire', /^on-acquire: running \d+$/));
    const mark = d.logs.length;
    await bed.kv.put(KEY).value('n2');
    const release = await d.waitForTransition('release', mark, 5000);
    assert.equal(hasVip(bed.nodes[0].ns, V4), false, 'released');
    assert.ok(running(pid), 'the acquire hook still runs');
    assert.ok(!d.logs.some((r) => r.hook === 'on-acquire' && r.result !== undefined), 'and has not ended');
    assert.ok((release.reactionMs as number) < 1000, `release took ${release.reactionMs} ms after the change`);
    t.diagnostic(`release applied ${release.reactionMs} ms after the key changed, while the acquire hook ran`);
    assert.ok(!d.logs.some((r) => r.hook === 'on-release'), 'on-release waits for on-acquire');
    // In order: on-acquire ends (its timeout), then on-release starts.
    const acqEnd = await exitOf(d, 'on-acquire');
    const relEnd = await exitOf(d, 'on-release');
    assert.equal(acqEnd.result, 'timeout');
    assert.equal(relEnd.result, 'ok');
    const relStart = d.logs.findIndex((r) => r.hook === 'on-release');
    assert.ok(d.logs.indexOf(acqEnd) < relStart, 'on-release started after on-acquire ended');
    assert.deepEqual(events(out), ['acquire key-ours n1', 'release key-other n2']);
  });

  test('user nobody with CAP_NET_ADMIN and CAP_NET_RAW as ambient capabilities: the hook runs with none', async () => {
    const out = outDir();
    await bed.kv.put(KEY).value('n1');
    const d = await bed.start(0, ['--on-acquire', `${hook} ${out} slow`, '--on-release', `${hook} ${out} ok`], { unprivileged: true });
    const pid = pidIn(await lineOf(d, 'on-acquire', /^on-acquire: running \d+$/));
    const child = pidIn(await lineOf(d, 'on-acquire', /^on-acquire: child \d+$/));
    const daemonCaps = capsOf(d.pid);
    assert.equal(daemonCaps.CapEff! & 0x3000n, 0x3000n, 'the daemon keeps CAP_NET_ADMIN and CAP_NET_RAW');
    for (const p of [pid, child]) {
      const caps = capsOf(p);
      assert.deepEqual(caps, { CapInh: 0n, CapPrm: 0n, CapEff: 0n, CapAmb: 0n, Uid: daemonCaps.Uid }, `process ${p}`);
    }
    assert.notEqual(daemonCaps.Uid, 0n);
    // The daemon can still do its job after preparing its children.
    const mark = d.logs.length;
    await bed.kv.put(KEY).value('n2');
    await d.waitForTransition('release', mark, 5000);
    assert.equal(hasVip(bed.nodes[0].ns, V4), false);
    // A stop kills the hook still running (after at most 5 s for hooks) and the daemon exits.
    d.signal('SIGTERM');
    assert.equal((await d.waitExit(15_000)).code, 0, d.transcript());
    await eventually('the hook and its child to be gone', () => !running(pid) && !running(child), 5000);
    assert.ok(d.logs.some((r) => /^stopping: killing hook on-acquire/.test(r.msg)), d.transcript());
  });

  test('a stop with release-on-stop: on-release runs with VIP_CAUSE=shutdown before the daemon exits', async () => {
    const out = outDir();
    await bed.kv.put(KEY).value('n1');
    const d = await bed.start(0, ['--on-release', `${hook} ${out} ok`]);
    await d.waitForTransition('acquire', 0, 5000);
    d.signal('SIGTERM');
    assert.equal((await d.waitExit(15_000)).code, 0, d.transcript());
    const end = d.logs.find((r) => r.hook === 'on-release' && r.result !== undefined);
    assert.equal(end?.result, 'ok', d.transcript());
    assert.deepEqual(events(out), ['release shutdown']);
  });

  test('as root without CAP_SETPCAP, hooks could not be kept from root\'s capabilities: exit 78, one line saying why', async () => {
    await bed.kv.put(KEY).value('n1');
    const d = await bed.start(0, ['--on-acquire', `${hook} ${outDir()} ok`], { waitReady: false, command: ['setpriv', '--bounding-set=-setpcap', process.execPath, BIN] });
    assert.deepEqual(await d.waitExit(20_000), { code: 78, signal: null }, d.transcript());
    const errors = d.logs.filter((r) => r.level >= 50);
    assert.equal(errors.length, 1, d.transcript());
    assert.match(errors[0]!.msg, /^cannot start: hooks would run as root with the capabilities of the bounding set: .* lacks CAP_SETPCAP\); run vip-manager as its own user \(User=vip-manager/);
    assert.ok(!d.logs.some((r) => r.transition !== undefined), 'it never touched the VIP');
    assert.equal(hasVip(bed.nodes[0].ns, V4), false);
  });

  for (const [what, mode, words] of [['group-writable', 0o775, /is group-writable \(mode 0775\); expected it writable only by its owner \(chmod go-w\)$/], ['world-writable', 0o757, /is world-writable \(mode 0757\)/], ['not executable', 0o644, /is not executable/]] as const) {
    test(`a ${what} hook file is refused at start: exit 78, one line naming the key`, async () => {
      const bad = join(dir, `bad-${mode.toString(8)}.sh`);
      copyFileSync(hook, bad);
      chmodSync(bad, mode);
      const d = await bed.start(0, ['--on-acquire', `${bad} x`], { waitReady: false });
      const exit = await d.waitExit(20_000);
      assert.deepEqual(exit, { code: 78, signal: null }, d.transcript());
      assert.equal(d.logs.length, 0, 'the daemon never started');
      assert.equal(d.rawLines.length, 1, d.rawLines.join('\n'));
      assert.ok(d.rawLines[0]!.startsWith(`vip-manager: config error: on-acquire: ${JSON.stringify(bad)} from flag --on-acquire `), d.rawLines[0]);
      assert.match(d.rawLines[0]!, words);
    });
  }
});
