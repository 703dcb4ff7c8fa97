// Stock-distribution install: the amd64 .deb goes through `apt-get install ./….deb` into a fresh
// `debootstrap --variant=minbase` root of Debian 12 (bookworm) and of Debian 13 (trixie), i.e.
// with nothing installed but what every Debian system has, Node.js included only if the
// package brought it. Then, inside the root: --version and --check-config on the shipped sample
// run clean, no nodejs package came along, and the daemon started from that root (chroot
// inside a test namespace, real etcd) acquires and releases a VIP, running the embedded runtime.
// Needs root, debootstrap, a Debian mirror in the host's apt sources (roots and downloads are
// cached under /var/cache/vip-manager-tests), etcd-server and iproute2.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createBed, KEY, VIP4 } from '../daemon/bed.js';
import { eventually, hasVip } from '../harness/daemon.js';
import { builtPackage } from '../harness/packages.js';
import { getJson, HTTP_PORT, type StatusJson } from '../ops-daemon/scrape.js';
import { assertRan, openStockRoot, type StockRoot, type Suite } from '../harness/stock-root.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const VIP = `${VIP4}/24`;
const RUNTIME_BIN = '/usr/lib/vip-manager/node';

/** The Node.js version the packages embed (packaging/runtime.json, field `node`). */
function pinnedRuntime(): string {
  const pin = (JSON.parse(readFileSync(join(REPO, 'packaging/runtime.json'), 'utf8')) as { node?: unknown }).node;
  assert.ok(typeof pin === 'string' && /^\d+\.\d+\.\d+$/.test(pin), `packaging/runtime.json: "node" is ${JSON.stringify(pin)}, expected a version like 24.1.0`);
  return pin;
}

function debField(deb: string, field: string): string {
  const r = spawnSync('dpkg-deb', ['-f', deb, field], { encoding: 'utf8' });
  assert.equal(r.status, 0, `dpkg-deb -f ${deb} ${field}: ${r.stderr}`);
  return r.stdout.trim();
}

for (const suite of ['bookworm', 'trixie'] as const satisfies readonly Suite[]) {
  describe(`the amd64 .deb in a stock Debian ${suite} root (debootstrap --variant=minbase)`, () => {
    let root: StockRoot | undefined;
    let deb: string;

    // One root for the block: every test below reads the state one install left.
    before(async () => {
      deb = await builtPackage('deb', 'amd64');
      root = await openStockRoot(suite);
      const inRoot = `/root/${basename(deb)}`;
      root.copyIn(deb, inRoot);
      assertRan(await root.apt(['update']), `apt-get update in the ${suite} root`);
      assertRan(await root.apt(['install', '-y', inRoot]), `apt-get install -y ./${basename(deb)} in the ${suite} root`);
    });
    after(() => root?.close());

    it('dpkg reports it installed, at the version in the .deb', async () => {
      const r = assertRan(await root!.run(['dpkg-query', '-W', '-f', '${Status} ${Version}', 'vip-manager']), 'dpkg-query');
      assert.equal(r.stdout, `install ok installed ${debField(deb, 'Version')}`);
    });

    it('--version and --check-config on the shipped sample exit 0 with nothing on stderr; --version names the embedded runtime', async () => {
      const version = await root!.run(['vip-manager', '--version']);
      assert.deepEqual({ code: version.code, stderr: version.stderr }, { code: 0, stderr: '' }, `vip-manager --version said:\n${version.stdout}`);
      assert.ok(version.stdout.includes(pinnedRuntime()), `--version does not name the embedded runtime ${pinnedRuntime()}:\n${version.stdout}`);
      const check = await root!.run(['vip-manager', '--config=/etc/default/vip-manager.yml', '--check-config']);
      assert.deepEqual({ code: check.code, stderr: check.stderr }, { code: 0, stderr: '' }, `--check-config said:\n${check.stdout}`);
      assert.match(check.stdout, /^ip: \S+ # file/m, 'the printed configuration does not come from the sample file');
    });

    it('brings no nodejs package and puts no node in PATH', async () => {
      const nodejs = await root!.run(['dpkg', '-s', 'nodejs']);
      assert.notEqual(nodejs.code, 0, `the nodejs package got installed:\n${nodejs.stdout}`);
      const node = await root!.run(['sh', '-c', 'command -v node nodejs']);
      assert.equal(node.stdout, '', 'a node command is in PATH');
      assert.ok(root!.exists(RUNTIME_BIN), `${RUNTIME_BIN} is missing`);
    });

    it('the daemon from the root, in a test namespace with a real etcd, runs the embedded runtime and acquires and releases the VIP', async () => {
      const bed = await createBed();
      try {
        const [n1] = bed.nodes;
        const d = await bed.start(0, ['--http-listen', `${n1.ipv4}:${HTTP_PORT}`], { command: root!.command(['/usr/bin/vip-manager']) });
        // The launcher must exec the runtime (Type=notify accepts messages from the main PID only).
        const exe = statSync(`/proc/${d.pid}/exe`);
        const embedded = statSync(root!.hostPath(RUNTIME_BIN));
        assert.deepEqual([exe.dev, exe.ino], [embedded.dev, embedded.ino], `the daemon's process does not run ${RUNTIME_BIN}`);

        // /status names the runtime it runs on, and that it is the one the package embeds.
        const status = await getJson<StatusJson>(n1.ipv4, '/status');
        assert.deepEqual(status.json.runtime, { node: pinnedRuntime(), embedded: true });

        assert.equal(hasVip(n1.ns, VIP), false);
        await bed.kv.put(KEY).value('n1');
        await d.waitForTransition('acquire');
        await eventually(`${VIP} on n1's eth0`, () => hasVip(n1.ns, VIP));

        let mark = d.logs.length;
        await bed.kv.put(KEY).value('n2');
        await d.waitForTransition('release', mark);
        await eventually(`${VIP} gone from n1's eth0`, () => !hasVip(n1.ns, VIP));

        mark = d.logs.length;
        await bed.kv.put(KEY).value('n1');
        await d.waitForTransition('acquire', mark);
        await eventually(`${VIP} back on n1's eth0`, () => hasVip(n1.ns, VIP));

        mark = d.logs.length;
        d.signal('SIGTERM');
        const exit = await d.waitExit();
        assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM; it said:\n${d.transcript()}`);
        assert.equal(hasVip(n1.ns, VIP), false, 'the VIP is still on eth0 after SIGTERM');
        assert.ok(d.logs.slice(mark).some((r) => r.transition === 'release' && r.cause === 'shutdown'), `no release on shutdown logged:\n${d.transcript()}`);
      } finally {
        await bed.dispose();
      }
    });
  });
}
