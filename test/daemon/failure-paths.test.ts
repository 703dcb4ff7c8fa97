// The daemon's failure paths, each against a running vip-manager in a test namespace with a
// real etcd: configuration errors found only when the daemon opens its resources (exit 78, so
// systemd's RestartPreventExitStatus=78 does not restart into them), an interface without a
// link-layer address (exit 1 from the reconciler's onFatal), a VIP the kernel refuses while
// running, and a stop signal that meets a reconcile pass stuck in retries (the late shutdown).
//
// A pass is made to hang for real: the VIP's interface gets a pfifo qdisc with limit 0, so every
// announcement frame is dropped at enqueue and sendto() on the AF_PACKET socket fails with
// ENOBUFS (net_xmit_errno(NET_XMIT_DROP)), which the basic manager retries retry-num times,
// retry-after apart, inside the pass.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { hasVip, type Daemon, type LogRecord } from '../harness/daemon.js';
import { createPki } from '../harness/tls.js';
import { createBed, KEY, VIP4, VIP6, type Bed } from './bed.js';

const V4 = `${VIP4}/24`;
const EXIT_CONFIG = 78;
/** src/daemon/run.ts SHUTDOWN_DEADLINE_MS: how long SIGTERM waits for the basic manager. */
const SHUTDOWN_DEADLINE_MS = 900;

const errorsOf = (d: Daemon): LogRecord[] => d.logs.filter((r) => r.level >= 50);
const started = (d: Daemon): boolean => d.logs.some((r) => r.msg.includes(' starting: '));

describe('daemon: failure paths against a real etcd', { concurrency: false }, () => {
  let bed: Bed;
  let dir: string;
  before(async () => {
    bed = await createBed();
    dir = mkdtempSync(join(tmpdir(), 'vmt-failure-'));
    // User nobody must be able to reach the files it is meant to read (or to be refused).
    chmodSync(dir, 0o755);
  });
  after(async () => {
    await bed?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    if (!bed) return;
    await bed.reset();
    const ns = bed.nodes[0].ns;
    if (hasVip(ns, `${VIP6}/128`)) ns.ip('addr', 'del', `${VIP6}/128`, 'dev', 'eth0');
    try { ns.ip('link', 'del', 'vip0'); } catch { /* not made by this test */ }
  });

  function file(name: string, text: string, mode: number): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    chmodSync(path, mode);
    return path;
  }

  /** A daemon that must stop at start with `code`; returns its one error line. */
  async function refusedAtStart(d: Daemon, code: number): Promise<LogRecord> {
    // The bound is Node's start-up on a loaded 2-core machine (0.5-5 s), not the behaviour.
    const exit = await d.waitExit(30_000);
    assert.deepEqual(exit, { code, signal: null }, d.transcript());
    const errors = errorsOf(d);
    assert.equal(errors.length, 1, d.transcript());
    // Nothing was opened to the outside: no HTTP endpoint, no DCS answer, no transition.
    assert.ok(!d.logs.some((r) => r.msg === 'HTTP endpoint listening'), d.transcript());
    assert.ok(!d.logs.some((r) => r.msg.startsWith('ready:') || r.transition !== undefined), d.transcript());
    assert.equal(hasVip(bed.nodes[0].ns, V4), false);
    return errors[0]!;
  }

  test('exit 78 at start: an etcd client certificate and key that are not PEM (DcsTlsConfigError)', async () => {
    await bed.kv.put(KEY).value('n1');
    // Readable regular files: the configuration check passes them, OpenSSL refuses them when the
    // daemon builds its TLS context.
    const cert = file('client.crt', 'not a certificate\n', 0o644);
    const key = file('client.key', 'not a key\n', 0o600);
    const https = bed.etcd.clientUrl.replace(/^http:/, 'https:');
    // https://: with http:// endpoints the files are not used (a warning says so), hence not checked.
    const d = await bed.start(0, ['--etcd-cert-file', cert, '--etcd-key-file', key, '--http-listen', `${bed.nodes[0].ipv4}:9466`], { endpoint: https, waitReady: false });
    const line = await refusedAtStart(d, EXIT_CONFIG);
    assert.ok(started(d), 'the configuration was accepted: the refusal comes from the running daemon');
    assert.match(line.msg, /^cannot start: cannot use etcd-ca-file \/ etcd-cert-file \/ etcd-key-file: .*PEM routines::no start line/);
    assert.equal((line.err as { type?: string } | undefined)?.type, 'DcsTlsConfigError');
  });

  test('exit 78 at start: an etcd client key that does not belong to the certificate (DcsTlsConfigError)', async () => {
    await bed.kv.put(KEY).value('n1');
    const pki = createPki(['203.0.113.1']);
    try {
      const https = bed.etcd.clientUrl.replace(/^http:/, 'https:');
      // Both are valid PEM; the server's key does not match the client's certificate.
      const d = await bed.start(0, ['--etcd-ca-file', pki.ca, '--etcd-cert-file', pki.clientCert, '--etcd-key-file', pki.serverKey], { endpoint: https, waitReady: false });
      const line = await refusedAtStart(d, EXIT_CONFIG);
      assert.ok(started(d), 'the configuration was accepted: the refusal comes from the running daemon');
      assert.match(line.msg, /^cannot start: cannot use etcd-ca-file \/ etcd-cert-file \/ etcd-key-file: .*key values mismatch/);
      assert.equal((line.err as { type?: string } | undefined)?.type, 'DcsTlsConfigError');
    } finally {
      pki.dispose();
    }
  });

  test('exit 78 before start: an etcd CA file user nobody cannot read is refused by the configuration check', async () => {
    await bed.kv.put(KEY).value('n1');
    const ca = file('ca-root-only.pem', '-----BEGIN CERTIFICATE-----\n', 0o600);
    const d = await bed.start(0, ['--etcd-ca-file', ca], { unprivileged: true, waitReady: false });
    const exit = await d.waitExit(30_000);
    assert.deepEqual(exit, { code: EXIT_CONFIG, signal: null }, d.transcript());
    assert.equal(started(d), false, d.transcript());
    assert.deepEqual(d.rawLines, [`vip-manager: config error: etcd-ca-file: "${ca}" from flag --etcd-ca-file is not readable (permission denied); expected a readable file`]);
  });

  for (const { name, text, mode, why } of [
    { name: 'readable by others', text: 'tok3n\n', mode: 0o644, why: (p: string) => `Hetzner Cloud token file ${p} has mode 644, which lets other users read or change it; run: chmod 600 ${p} (or 640 with a group only vip-manager's user is in)` },
    { name: 'empty', text: '\n', mode: 0o600, why: (p: string) => `Hetzner Cloud token file ${p} is empty` },
    { name: 'not one token', text: 'tok en\n', mode: 0o600, why: (p: string) => `Hetzner Cloud token file ${p} must hold the token alone (found whitespace inside)` },
  ]) {
    test(`exit 78 at start: a Hetzner Cloud token file that is ${name} (HetznerConfigError); the token is never logged`, async () => {
      await bed.kv.put(KEY).value('n1');
      const token = file(`token-${name.replace(/\W+/g, '-')}`, text, mode);
      const d = await bed.start(0, ['--manager-type', 'hetzner-cloud', '--hcloud-token-file', token], { waitReady: false });
      const line = await refusedAtStart(d, EXIT_CONFIG);
      assert.ok(started(d), 'the configuration was accepted: the refusal comes from the running daemon');
      assert.equal(line.msg, `cannot start: ${why(token)}`);
      assert.equal((line.err as { type?: string } | undefined)?.type, 'HetznerConfigError');
      const secret = text.trim();
      if (secret !== '') assert.ok(!JSON.stringify(d.logs).includes(secret), 'the token does not appear in the log');
    });
  }

  test('exit 78 before start: a Hetzner Cloud token file user nobody cannot read is refused by the configuration check', async () => {
    await bed.kv.put(KEY).value('n1');
    const token = file('token-root-only', 'tok3n\n', 0o600);
    const d = await bed.start(0, ['--manager-type', 'hetzner-cloud', '--hcloud-token-file', token], { unprivileged: true, waitReady: false });
    const exit = await d.waitExit(30_000);
    assert.deepEqual(exit, { code: EXIT_CONFIG, signal: null }, d.transcript());
    assert.equal(started(d), false, d.transcript());
    assert.deepEqual(d.rawLines, [`vip-manager: config error: hcloud-token-file: "${token}" from flag --hcloud-token-file is not readable (permission denied); expected a readable file`]);
  });

  test('a bad VIP: the subnet\'s broadcast address is exit 78 before start (one line, nothing opened)', async () => {
    const d = await bed.start(0, ['--ip', '203.0.113.255'], { waitReady: false });
    const exit = await d.waitExit(30_000);
    assert.deepEqual(exit, { code: EXIT_CONFIG, signal: null }, d.transcript());
    assert.equal(started(d), false, d.transcript());
    assert.deepEqual(d.rawLines, ['vip-manager: config error: ip: "203.0.113.255" from flag --ip is not valid with netmask 24 (flag --netmask); it is the broadcast address of 203.0.113.0/24; expected a unicast address for the service']);
  });

  test('a VIP the kernel refuses while running (IPv6, already there with another prefix): the reason is logged, retried, taken once the other copy goes', async () => {
    const ns = bed.nodes[0].ns;
    // Someone configured the address by hand as a /128: IPv6 refuses a second copy whatever
    // its prefix, so the daemon cannot add it as the configured /64.
    ns.ip('addr', 'add', `${VIP6}/128`, 'dev', 'eth0', 'nodad');
    await bed.kv.put(KEY).value('n1');
    const d = await bed.start(0, ['--ip', VIP6, '--netmask', '64'], { waitReady: false });
    const refusal = `${VIP6} is already on eth0 with prefix length /128, not /64: remove it or change netmask`;
    const first = await d.waitForLog((r) => r.msg.startsWith('acquire failed: '), 15_000, 'the refused acquire');
    assert.match(first.msg, new RegExp(`^acquire failed: ${refusal.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}; retrying in \\d+ ms$`));
    // Retried, not fatal: a second attempt follows, and the daemon keeps running.
    await d.waitForLog((r) => r.msg.startsWith('acquire failed: ') && r !== first, 15_000, 'a retried acquire');
    assert.equal(d.child.exitCode, null, 'still running');
    assert.equal(hasVip(ns, `${VIP6}/64`), false);

    const mark = d.logs.length;
    ns.ip('addr', 'del', `${VIP6}/128`, 'dev', 'eth0');
    await d.waitForTransition('acquire', mark, 15_000);
    assert.ok(hasVip(ns, `${VIP6}/64`), 'the configured /64 is on the interface');
    d.signal('SIGTERM');
    assert.equal((await d.waitExit()).code, 0);
    assert.equal(hasVip(ns, `${VIP6}/64`), false, 'released on stop');
  });

  test('exit 1 (onFatal) at start: the VIP interface has no link-layer address (tun, ARPHRD_NONE)', async () => {
    const ns = bed.nodes[0].ns;
    ns.ip('tuntap', 'add', 'dev', 'vip0', 'mode', 'tun');
    ns.ip('link', 'set', 'vip0', 'up');
    // The key names another node: the check is in every pass's observation, not only in acquire.
    await bed.kv.put(KEY).value('n2');
    const d = await bed.start(0, ['--interface', 'vip0'], { waitReady: false });
    const exit = await d.waitExit(30_000);
    assert.deepEqual(exit, { code: 1, signal: null }, d.transcript());
    const errors = errorsOf(d);
    assert.deepEqual(errors.map((r) => r.msg), [
      'cannot continue: interface vip0 has no Ethernet link-layer address (type none), so a VIP on it cannot be announced with ARP or neighbour advertisements; use an Ethernet interface (or a bond, bridge or VLAN on one)',
    ], d.transcript());
    assert.ok(d.logs.some((r) => r.msg === 'leaving the VIP as it is: stopping after a fatal error'), d.transcript());
    assert.ok(d.logs.some((r) => r.msg === 'vip-manager stopped' && r.code === 1), d.transcript());
    assert.ok(!d.logs.some((r) => r.transition !== undefined), d.transcript());
    assert.deepEqual(ns.addresses('vip0'), []);
  });

  test('exit 1 (onFatal) while running: the interface holding the VIP is replaced by one without a link-layer address', async () => {
    const ns = bed.nodes[0].ns;
    ns.ip('link', 'add', 'vip0', 'type', 'veth', 'peer', 'name', 'vip0p');
    ns.ip('link', 'set', 'vip0p', 'up');
    ns.ip('link', 'set', 'vip0', 'up');
    await bed.kv.put(KEY).value('n1');
    const d = await bed.start(0, ['--interface', 'vip0']);
    await d.waitForTransition('acquire', 0, 10_000);
    assert.ok(ns.addresses('vip0').includes(V4));

    const mark = d.logs.length;
    // Same name, new device: the kernel's link events wake the daemon, whose next observation
    // finds a tunnel device it can never announce from.
    ns.ip('link', 'del', 'vip0');
    ns.ip('tuntap', 'add', 'dev', 'vip0', 'mode', 'tun');
    ns.ip('link', 'set', 'vip0', 'up');
    const exit = await d.waitExit(10_000);
    assert.deepEqual(exit, { code: 1, signal: null }, d.transcript());
    const after = d.logs.slice(mark);
    assert.ok(after.some((r) => r.level === 50 && r.msg.startsWith('cannot continue: interface vip0 has no Ethernet link-layer address (type none)')), d.transcript());
    assert.ok(after.some((r) => r.msg === 'leaving the VIP as it is: stopping after a fatal error'), d.transcript());
    assert.ok(!after.some((r) => r.transition !== undefined), 'no release was attempted');
    assert.ok(after.some((r) => r.msg === 'vip-manager stopped' && r.code === 1), d.transcript());
  });

  test('late shutdown: SIGTERM while a pass is stuck retrying a kernel call releases the VIP directly and exits 0 at the deadline, saying so', async () => {
    const ns = bed.nodes[0].ns;
    ns.ip('link', 'add', 'vip0', 'type', 'veth', 'peer', 'name', 'vip0p');
    ns.ip('link', 'set', 'vip0p', 'up');
    ns.ip('link', 'set', 'vip0', 'up');
    ns.exec('tc', ['qdisc', 'add', 'dev', 'vip0', 'root', 'pfifo', 'limit', '0']);
    await bed.kv.put(KEY).value('n1');
    // 100 attempts 2 s apart: the acquire's announcement keeps the pass busy for 200 s.
    const d = await bed.start(0, ['--interface', 'vip0', '--retry-num', '100', '--retry-after', '2000', '--verbose'], { waitReady: false });
    const retrying = (r: LogRecord): boolean => r.msg === 'transient kernel error; retrying' && r.what === 'announcing the VIP' && r.code === 'ENOBUFS';
    await d.waitForLog(retrying, 30_000, 'the announcement failing with ENOBUFS and being retried');
    // The address went on before the announcement: the pass is stuck after the takeover.
    assert.ok(ns.addresses('vip0').includes(V4));
    assert.ok(!d.logs.some((r) => r.transition !== undefined), 'the acquire has not completed');

    d.signal('SIGTERM');
    const exit = await d.waitExit(10_000);
    assert.deepEqual(exit, { code: 0, signal: null }, d.transcript());
    const sigterm = d.logs.find((r) => r.msg === 'SIGTERM received: stopping')!;
    const late = d.logs.find((r) => r.msg === `shutdown took longer than ${SHUTDOWN_DEADLINE_MS} ms; exiting anyway`);
    assert.ok(sigterm && late, d.transcript());
    assert.equal(late.level, 40);
    const waited = late.time - sigterm.time;
    // The deadline itself is the behaviour: not before it. Measured 901-902 ms on this machine
    // with other test files beside it; the upper bound leaves far more than 5x that excess.
    assert.ok(waited >= SHUTDOWN_DEADLINE_MS - 1, `gave up after ${waited} ms`);
    assert.ok(waited < SHUTDOWN_DEADLINE_MS + 1000, `gave up after ${waited} ms`);
    const stopped = d.logs.find((r) => r.msg === 'vip-manager stopped');
    assert.equal(stopped?.code, 0);
    assert.ok(d.logs.indexOf(stopped!) > d.logs.indexOf(late));
    // The stuck pass never finished, so the loop could not release; the deadline path released
    // directly, so no VIP is left on a node whose daemon is gone while the next leader adds it.
    assert.ok(!d.logs.some((r) => r.transition !== undefined || r.msg.startsWith('leaving the VIP as it is')), d.transcript());
    const direct = d.logs.find((r) => r.msg === 'released the VIP directly: the stuck pass never finished');
    assert.ok(direct && d.logs.indexOf(direct) > d.logs.indexOf(late) && d.logs.indexOf(direct) < d.logs.indexOf(stopped!), d.transcript());
    assert.ok(!ns.addresses('vip0').includes(V4), 'the VIP is not left on the interface');
  });
});
