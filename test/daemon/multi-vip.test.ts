// Several VIPs in one daemon (issue 14): two nodes, each running one vip-manager with the same
// `vips:` list, a real etcd on the LAN. Every key is flipped on its own and in bursts (seeded, so
// a failing run can be replayed); after each pause every VIP must be exactly where its key says
// (on the named node, nowhere else), a flip must not touch any other entry, and each daemon must
// hold one TCP connection to etcd per watched key (one streaming watch request each, over etcd's
// JSON gateway) plus at most one for its reads, whatever the number of flips.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Daemon } from '../harness/daemon.js';
import { eventually, hasVip } from '../harness/daemon.js';
import { mulberry32 } from '../harness/prng.js';
import { createBed, ETCD_HOST, NAMES, type Bed } from './bed.js';

const SEED = Number(process.env.VIP_TEST_SEED ?? 14);
/** How long no transition line may arrive before the daemons' logs count as caught up. */
const QUIET_MS = 150;

interface Spec { name: string; ip: string; key: string }

function entries(n: number): Spec[] {
  return Array.from({ length: n }, (_, i) => ({ name: `c${i}`, ip: `203.0.113.${110 + i}`, key: `/service/c${i}/leader` }));
}

function configFile(dir: string, specs: Spec[]): string {
  const file = join(dir, `vips-${specs.length}.yml`);
  writeFileSync(file, [
    'vips:',
    ...specs.flatMap((s) => [`  - name: ${s.name}`, `    ip: ${s.ip}`, `    trigger-key: ${s.key}`]),
    '',
  ].join('\n'));
  return file;
}

/** Every entry has applied its first DCS answer (each logs its own "ready:" line, with its name). */
async function allReady(d: Daemon, specs: Spec[]): Promise<void> {
  for (const s of specs) await d.waitForLog((r) => r.msg.startsWith('ready:') && r.vip === s.name, 15_000, `entry ${s.name} ready`);
}

/**
 * ESTABLISHED TCP connections to etcd's client port, by peer address, from the etcd server
 * process's own view of its namespace (/proc/PID/net/tcp).
 */
function etcdConnections(pid: number, port: number): Map<string, number> {
  const byPeer = new Map<string, number>();
  const hexIp = (h: string) => [3, 2, 1, 0].map((i) => parseInt(h.slice(i * 2, i * 2 + 2), 16)).join('.');
  const etcd = ETCD_HOST;
  for (const line of readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 4 || cols[3] !== '01') continue; // 01: ESTABLISHED
    const [localIp, localPort] = cols[1]!.split(':');
    const [peerIp] = cols[2]!.split(':');
    if (parseInt(localPort!, 16) !== port || hexIp(localIp!) !== etcd) continue;
    const peer = hexIp(peerIp!);
    byPeer.set(peer, (byPeer.get(peer) ?? 0) + 1);
  }
  return byPeer;
}

describe('daemon: several VIPs in one daemon (vips:)', { concurrency: false }, () => {
  let bed: Bed;
  let dir: string;
  const used: Spec[] = [];
  before(async () => {
    bed = await createBed();
    dir = mkdtempSync(join(tmpdir(), 'vmt-vips-'));
  });
  after(async () => {
    await bed?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await bed.reset();
    for (const h of [...bed.nodes, bed.peer]) {
      for (const s of used) if (hasVip(h.ns, `${s.ip}/24`)) h.ns.ip('addr', 'del', `${s.ip}/24`, 'dev', 'eth0');
    }
    for (const s of used) await bed.kv.delete().key(s.key);
  });

  /** Where each VIP is now: the node names holding it. */
  const holders = (s: Spec) => bed.nodes.filter((n) => hasVip(n.ns, `${s.ip}/24`)).map((_, i, all) => NAMES[bed.nodes.indexOf(all[i]!)]);

  /**
   * Settled: every VIP where `want` says in the kernel, and the daemons' transition log lines
   * caught up (a line reaches us over a pipe after the address is already there): no new one
   * for QUIET_MS.
   */
  async function settle(specs: Spec[], want: Map<string, string | null>, what: string, daemons: Daemon[]): Promise<void> {
    await inKernel(specs, want, what);
    let counts = '';
    let since = performance.now();
    await eventually(`${what}: transition log lines caught up`, () => {
      const now = daemons.map((d) => d.transitions().length).join();
      if (now !== counts) { counts = now; since = performance.now(); }
      return performance.now() - since >= QUIET_MS;
    }, 5000);
  }

  async function inKernel(specs: Spec[], want: Map<string, string | null>, what: string): Promise<void> {
    await eventually(`${what}: every VIP where its key says (${[...want].map(([k, v]) => `${k}=${v}`).join(' ')})`, () =>
      specs.every((s) => {
        const h = holders(s);
        const w = want.get(s.name) ?? null;
        return w === null ? h.length === 0 : h.length === 1 && h[0] === w;
      }), 5000);
  }

  for (const n of [2, 5]) {
    test(`${n} entries: each key flipped on its own and in bursts; each VIP follows only its own key; one etcd connection per key (+ one for reads) per daemon`, async (t) => {
      const specs = entries(n);
      used.push(...specs);
      const file = configFile(dir, specs);
      const rand = mulberry32(SEED + n);
      const want = new Map<string, string | null>(specs.map((s) => [s.name, null]));
      const daemons = [await bed.start(0, ['--config', file], { waitReady: false }), await bed.start(1, ['--config', file], { waitReady: false })];
      for (const d of daemons) await allReady(d, specs);

      // Connections: one per watched key, plus the keep-alive one of the reads (idle, it may be
      // gone). Reads that overlap (every entry's first read at start) open a second one for a
      // moment, closed as soon as the agent has more than one idle: waited for, up to 5 s.
      const perDaemon = async (when: string) => {
        const port = Number(new URL(bed.etcd.clientUrl).port);
        const settled = (conns: Map<string, number>) => bed.nodes.every((node) => {
          const c = conns.get(node.ipv4) ?? 0;
          return c === n || c === n + 1;
        });
        let conns = etcdConnections(bed.etcd.pid, port);
        await eventually(`${when}: ${n} watches + at most 1 for reads per daemon`, () => settled(conns = etcdConnections(bed.etcd.pid, port)), 5000, 50).catch(() => undefined);
        for (const node of bed.nodes) {
          const c = conns.get(node.ipv4) ?? 0;
          assert.ok(c === n || c === n + 1, `${when}: TCP connections from ${node.ipv4} (a daemon with ${n} entries) to etcd: ${n} watches + at most 1 for reads, got ${c}: ${JSON.stringify([...conns])}`);
        }
      };
      await perDaemon('at start');

      // One key at a time: the others' entries see no transition at all.
      for (let step = 0; step < 4 * n; step++) {
        const s = specs[Math.floor(rand() * n)]!;
        const choice = Math.floor(rand() * 3);
        const value = choice === 2 ? null : NAMES[choice]!;
        const before = daemons.map((d) => d.transitions().filter((r) => r.vip !== s.name).length);
        if (value === null) await bed.kv.delete().key(s.key);
        else await bed.kv.put(s.key).value(value);
        want.set(s.name, value);
        await settle(specs, want, `step ${step} (${s.name} → ${value})`, daemons);
        const afterFlip = daemons.map((d) => d.transitions().filter((r) => r.vip !== s.name).length);
        const acted = daemons.flatMap((d, i) => d.transitions().filter((r) => r.vip !== s.name).slice(before[i]).map((r) => `${NAMES[i]} ${String(r.vip)} ${r.msg}`));
        assert.deepEqual(afterFlip, before, `a flip of ${s.key} made another entry act:\n${acted.join('\n')}`);
      }

      // Bursts: many writes to several keys back to back (each acknowledged before the next, so
      // their order is known; about a millisecond apart); only the last value of each counts.
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 10 * n; i++) {
          const s = specs[Math.floor(rand() * n)]!;
          const value = rand() < 0.15 ? null : NAMES[Math.floor(rand() * 2)]!;
          want.set(s.name, value);
          if (value === null) await bed.kv.delete().key(s.key);
          else await bed.kv.put(s.key).value(value);
        }
        await settle(specs, want, `burst ${round}`, daemons);
      }
      await perDaemon('after the flips');
      t.diagnostic(`seed ${SEED + n}: ${daemons.map((d) => d.transitions().length).join(' + ')} transitions`);
    });
  }

  test('a file without vips: is the one implicit entry, named by its ip', async () => {
    const d = await bed.start(0);
    const ready = d.logs.find((r) => r.msg.startsWith('ready:'))!;
    assert.equal(ready.vip, '203.0.113.100');
    assert.equal(d.logs.filter((r) => r.msg.startsWith('ready:')).length, 1);
  });
});
