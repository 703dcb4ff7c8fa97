// `npm run demo`: a self-contained sandbox that shows the VIP following the leader key.
// It builds a LAN of network namespaces (a bridge, node1, node2, a client; documentation
// addresses only), starts a throwaway etcd and a vip-manager on each node, moves leadership a
// few times from the client, prints a timeline, and removes everything — also on Ctrl-C or
// failure. Nothing outside the namespaces it creates is touched.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createLan, type Lan } from '../test/harness/netns.js';

const VIP = '203.0.113.100';
const KEY = '/service/demo/leader';
const ETCD = '203.0.113.1';
const DB_PORT = 5432;
const MOVES = ['node1', 'node2', 'node1', 'node2'];
const BIN = fileURLToPath(new URL('../../bin/vip-manager.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('./client.js', import.meta.url));

interface Line { t: number; text: string }
const timeline: Line[] = [];
const note = (t: number, text: string) => timeline.push({ t, text });

function fail(message: string): never {
  console.error(`demo: ${message}`);
  process.exit(1);
}

if (process.getuid?.() !== 0) fail('needs root: it creates network namespaces (run `sudo npm run demo`, or as root)');
try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); } catch { fail('etcd is not installed: run `bash scripts/setup.sh` first (it installs Debian\'s etcd-server)'); }

function lines(child: ChildProcess, stream: 'stdout' | 'stderr', onLine: (l: string) => void): void {
  createInterface({ input: child[stream]! }).on('line', onLine);
}

async function waitFor(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main(): Promise<void> {
  console.log(`vip-manager demo: VIP ${VIP}/24 follows the etcd key ${KEY} between node1 and node2\n`);
  let lan: Lan | undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'vmt-demo-etcd-'));
  try {
    lan = createLan(3, ['node1', 'node2', 'client']);
    const [node1, node2, client] = lan.hosts as [typeof lan.hosts[0], typeof lan.hosts[0], typeof lan.hosts[0]];
    lan.sw.ip('addr', 'add', `${ETCD}/24`, 'dev', 'br0');
    console.log(`sandbox: bridge with etcd at ${ETCD}; node1 ${node1.ipv4}, node2 ${node2.ipv4}, client ${client.ipv4}`);

    const etcd = lan.sw.spawn('etcd', [
      '--name', 'demo', '--data-dir', dataDir,
      '--listen-client-urls', `http://${ETCD}:2379`, '--advertise-client-urls', `http://${ETCD}:2379`,
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', 'demo=http://127.0.0.1:2380', '--log-level', 'error',
    ]);
    let etcdUp = false;
    const pollEtcd = setInterval(() => {
      try {
        lan!.sw.exec('etcdctl', [`--endpoints=http://${ETCD}:2379`, 'endpoint', 'health']);
        etcdUp = true;
      } catch { /* not yet */ }
    }, 200);
    await waitFor('etcd', () => etcdUp || etcd.exitCode !== null);
    clearInterval(pollEtcd);
    if (!etcdUp) throw new Error('etcd exited during startup');

    const managers: ChildProcess[] = [];
    for (const node of [node1, node2]) {
      const name = node.ns.name.split('-').pop()!;
      // The node's "database": answers every connection with the node's name.
      node.ns.spawn(process.execPath, ['-e', `require('net').createServer((s) => s.end(${JSON.stringify(name)})).listen(${DB_PORT})`]);
      const vm = node.ns.spawn(process.execPath, [BIN,
        '--ip', VIP, '--netmask', '24', '--interface', 'eth0', '--trigger-key', KEY, '--trigger-value', name,
        '--dcs-endpoints', `http://${ETCD}:2379`, '--log-format', 'json', '--announce-count', '3']);
      lines(vm, 'stderr', (l) => {
        try {
          const rec = JSON.parse(l) as { time: number; msg: string; transition?: string; level: number };
          if (rec.transition || rec.level >= 40) note(rec.time, `${name}: ${rec.msg}`);
        } catch {
          note(Date.now(), `${name}: ${l}`);
        }
      });
      managers.push(vm);
    }
    await new Promise((r) => setTimeout(r, 500));

    console.log(`moving leadership: ${MOVES.join(' → ')}\n`);
    const probe = client.ns.spawn(process.execPath, [CLIENT, `http://${ETCD}:2379`, KEY, VIP, String(DB_PORT), ...MOVES]);
    const results: Array<{ value: string; ms: number | null }> = [];
    let done = false;
    lines(probe, 'stdout', (l) => {
      const e = JSON.parse(l) as { event: string; value?: string; at?: number | null; ms?: number | null; message?: string };
      if (e.event === 'key') note(e.at!, `client: leader key set to ${e.value}`);
      if (e.event === 'reached') {
        results.push({ value: e.value!, ms: e.ms ?? null });
        note(e.at ?? Date.now(), e.at ? `client: reaches ${e.value} through the VIP (${e.ms!.toFixed(1)} ms after the key changed)` : `client: did NOT reach ${e.value}`);
      }
      if (e.event === 'error') note(Date.now(), `client: error ${e.message}`);
      if (e.event === 'done' || e.event === 'error') done = true;
    });
    await waitFor('the moves', () => done || probe.exitCode !== null, 60_000);

    console.log('stopping the vip-managers (SIGTERM releases the VIP)');
    for (const vm of managers) vm.kill('SIGTERM');
    await Promise.all(managers.map((vm) => new Promise((r) => (vm.exitCode !== null ? r(null) : vm.once('exit', r)))));
    await new Promise((r) => setTimeout(r, 100));

    const t0 = timeline.reduce((m, l) => Math.min(m, l.t), Infinity);
    console.log('\ntimeline (seconds since the first event):');
    for (const l of timeline.sort((a, b) => a.t - b.t)) console.log(`  +${((l.t - t0) / 1000).toFixed(3)} s  ${l.text}`);
    console.log('\nleader key change → client reaches the new holder through the VIP:');
    for (const r of results) console.log(`  ${r.value.padEnd(6)} ${r.ms === null ? 'not reached' : `${r.ms.toFixed(1)} ms`}`);
    const left = [node1, node2].filter((n) => n.ns.addresses('eth0').some((a) => a.startsWith(`${VIP}/`)));
    console.log(`\nafter shutdown the VIP is on: ${left.length === 0 ? 'no node (released)' : left.map((n) => n.ns.name).join(', ')}`);
    if (results.some((r) => r.ms === null) || results.length !== MOVES.length) throw new Error('the client did not reach every new leader');
  } finally {
    lan?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
    console.log('sandbox removed');
  }
}

main().catch((e) => {
  console.error(`demo failed: ${(e as Error).message}`);
  process.exitCode = 1;
});
