// No secret leaves the daemon through its operations surface: against an etcd with
// authentication, the etcd password (given as a flag to one daemon, as VIP_ETCD_PASSWORD to
// another, and a wrong one to a third) appears in no HTTP response, no systemd notification
// and no log line (verbose), in every state: standing by, holding, during an outage, after
// recovery, and while authentication fails.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bindDatagramReceiver, type DatagramReceiver } from '../../src/net/unix-datagram.js';
import { Daemon, hasVip } from '../harness/daemon.js';
import { createBed, KEY, VIP4, type Bed } from '../daemon/bed.js';
import { get, getJson, HTTP_PORT, isHttpListening, spawnOn, statusUntil, type StatusJson } from './scrape.js';

const USER = 'vipreader';
/** Distinctive enough that a hit cannot be a coincidence. */
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
const WRONG_PASSWORD = `wrong-${randomBytes(12).toString('hex')}`;
const PATHS = ['/metrics', '/healthz', '/readyz', '/status', '/nope'];

describe('daemon: no secret in any response, notification or log line', { concurrency: false }, () => {
  let bed: Bed;
  let dir: string;
  let notify: DatagramReceiver | undefined;
  before(async () => {
    bed = await createBed({ auth: { user: USER, password: PASSWORD } });
    dir = mkdtempSync(join(tmpdir(), 'vmt-secrets-'));
  });
  after(async () => {
    notify?.close();
    await bed?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('etcd password via flag and via VIP_ETCD_PASSWORD; a wrong one on a third node', async () => {
    await bed.kv.delete().key(KEY);
    const socketPath = join(dir, 'notify.sock');
    notify = bindDatagramReceiver(socketPath);
    const hosts = [bed.nodes[0].ipv4, bed.nodes[1].ipv4, bed.peer.ipv4];
    const flag = await spawnOn(bed, 0, {
      extra: ['--etcd-user', USER, '--etcd-password', PASSWORD, '--verbose', '--http-listen', `${hosts[0]}:${HTTP_PORT}`],
      env: { NOTIFY_SOCKET: socketPath },
    });
    const env = await spawnOn(bed, 1, {
      extra: ['--verbose', '--http-listen', `${hosts[1]}:${HTTP_PORT}`],
      env: { VIP_ETCD_USER: USER, VIP_ETCD_PASSWORD: PASSWORD },
    });
    // The third daemon cannot authenticate: it never becomes ready.
    const wrong = new Daemon({
      ns: bed.peer.ns,
      args: ['--ip', VIP4, '--netmask', '24', '--interface', 'eth0', '--trigger-key', KEY, '--trigger-value', 'peer',
        '--dcs-endpoints', bed.etcd.clientUrl, '--retry-after', '100', '--etcd-user', USER, '--etcd-password', WRONG_PASSWORD,
        '--verbose', '--http-listen', `${hosts[2]}:${HTTP_PORT}`],
    });
    bed.daemons.push(wrong);
    const daemons = [flag, env, wrong];

    const bodies: string[] = [];
    const scrapeAll = async (what: string) => {
      for (const h of hosts) {
        for (const p of PATHS) {
          const r = await get(h, p);
          bodies.push(`${what} ${h}${p} ${r.status} ${JSON.stringify(r.headers)}\n${r.body}`);
        }
      }
    };

    // Standing by (key absent); the wrong password is refused.
    await wrong.waitForLog(isHttpListening, 10_000, 'the HTTP endpoint of the third daemon');
    await wrong.waitForLog((r) => r.msg === 'etcd: leader key unreachable', 10_000, 'the refused authentication');
    const refused = await statusUntil(hosts[2]!, 'the third daemon reporting the DCS unreachable', (s) => s.dcs.lastError !== null);
    assert.equal(refused.leader, null);
    assert.equal((await get(hosts[2]!, '/readyz')).status, 503, 'wrong credentials: never ready');
    await scrapeAll('standby');

    // Holding on n1 (the flag daemon); both authenticated daemons follow the key.
    await bed.kv.put(KEY).value('n1');
    await flag.waitForTransition('acquire', 0, 3000);
    assert.ok(hasVip(bed.nodes[0].ns, `${VIP4}/24`));
    const s = (await getJson<StatusJson>(hosts[1]!, '/status')).json;
    assert.equal(s.leader?.value, 'n1', 'the VIP_ETCD_PASSWORD daemon reads the key too');
    await scrapeAll('holding');

    // An outage (errors from the etcd client end up in /status and the log), then recovery,
    // which needs a fresh authentication.
    await bed.etcd.kill();
    for (const h of hosts.slice(0, 2)) await statusUntil(h, `${h}: DCS unreachable`, (j) => j.dcs.reachable === false, 10_000);
    await scrapeAll('outage');
    await bed.etcd.restart();
    for (const h of hosts.slice(0, 2)) await statusUntil(h, `${h}: DCS reachable again`, (j) => j.dcs.reachable === true, 15_000);
    await scrapeAll('recovered');

    flag.signal('SIGTERM');
    assert.equal((await flag.waitExit(5000)).code, 0);
    const datagrams: string[] = [];
    for (let g = notify.recv(); g !== null; g = notify.recv()) datagrams.push(g.toString('utf8'));
    assert.ok(datagrams.some((g) => g.includes('READY=1')) && datagrams.some((g) => g.includes('STOPPING=1')), `notifications: ${JSON.stringify(datagrams)}`);

    // The checks are not vacuous: every endpoint answered, and the configuration the daemons
    // logged at start shows the password set, masked.
    assert.equal(bodies.length, 4 * hosts.length * PATHS.length);
    for (const [name, d] of [['flag', flag], ['env', env], ['wrong', wrong]] as const) {
      const start = d.logs.find((r) => r.msg.includes('starting'));
      assert.equal((start?.config as Record<string, unknown> | undefined)?.['etcd-password'], '*****', `${name}: the start line shows the password masked`);
    }
    // --verbose: the debug lines (every view the etcd source delivers) are covered too.
    for (const [name, d] of [['flag', flag], ['env', env]] as const) {
      assert.ok(d.logs.some((r) => r.level === 20 && r.msg === 'etcd: leader key'), `${name}: debug lines were logged:\n${d.transcript()}`);
    }

    for (const secret of [PASSWORD, WRONG_PASSWORD]) {
      const inBodies = bodies.filter((b) => b.includes(secret));
      assert.deepEqual(inBodies, [], 'no HTTP response holds the password');
      assert.deepEqual(datagrams.filter((g) => g.includes(secret)), [], 'no systemd notification holds the password');
      for (const d of daemons) {
        const leaked = [...d.logs.map((r) => JSON.stringify(r)), ...d.rawLines].filter((l) => l.includes(secret));
        assert.deepEqual(leaked, [], 'no log line holds the password');
      }
    }
  });
});
