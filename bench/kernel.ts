// Kernel-layer benchmark (npm run bench:kernel): adding and removing the VIP through this
// project's rtnetlink layer vs spawning `ip addr add|del` (what the Go original does), and how
// soon the monitor reports an `ip addr del` made by another process. Runs in a network
// namespace it creates and removes; needs root. Takes about 10–20 s.
import { execFileSync, spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { Netns, requireNetnsPrivileges } from '../test/harness/netns.js';
import { enterNetns, leaveNetns } from '../test/harness/enter-netns.js';
import { addAddress, deleteAddress } from '../src/net/addresses.js';
import { lookupInterface } from '../src/net/links.js';
import { NetMonitor } from '../src/net/monitor.js';
import { statsOf as stats, type Stats } from './stats.js';

/** Iterations per cell: enough for a stable p99 of the in-process calls. */
const NETLINK_RUNS = 500;
/** Spawning `ip` costs milliseconds; a few hundred runs keep the bench well under a minute. */
const SPAWN_RUNS = 200;
const EVENT_RUNS = 200;
const WARMUP = 20;
const VIP4 = '198.51.100.10';
const VIP6 = '2001:db8:2::10';

function timeMs(f: () => void): number {
  const t = performance.now();
  f();
  return performance.now() - t;
}

function measurePair(runs: number, add: () => void, del: () => void): { add: number[]; del: number[] } {
  const out = { add: [] as number[], del: [] as number[] };
  for (let i = 0; i < WARMUP + runs; i++) {
    const a = timeMs(add);
    const d = timeMs(del);
    if (i >= WARMUP) {
      out.add.push(a);
      out.del.push(d);
    }
  }
  return out;
}

async function eventLatency(ifname: string, ifindex: number, monitor: NetMonitor): Promise<{ fromStart: number[]; fromExit: number[] }> {
  const fromStart: number[] = [];
  const fromExit: number[] = [];
  for (let i = 0; i < WARMUP + EVENT_RUNS; i++) {
    addAddress(ifindex, VIP4, 32);
    await new Promise((r) => setImmediate(r)); // let the monitor consume the 'add'
    let event = 0;
    let exited = 0;
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        if (event && exited) {
          monitor.off('address', onAddr);
          resolve();
        }
      };
      const onAddr = (e: { op: string; address: string }): void => {
        if (e.op === 'del' && e.address === VIP4 && !event) {
          event = performance.now();
          done();
        }
      };
      monitor.on('address', onAddr);
      // Inherits this thread's namespace (checked in main), like the Go daemon's `ip` would.
      const child = spawn('ip', ['addr', 'del', `${VIP4}/32`, 'dev', ifname], { stdio: 'ignore' });
      child.once('error', reject);
      child.once('exit', (code) => {
        if (code !== 0) reject(new Error(`ip addr del exited ${code}`));
        exited = performance.now();
        done();
      });
    });
    if (i >= WARMUP) {
      fromStart.push(event - t0);
      fromExit.push(event - exited);
    }
  }
  return { fromStart, fromExit };
}

const fmt = (x: number): string => (Math.abs(x) < 1 ? x.toFixed(3) : x.toFixed(2)).padStart(8);
const row = (label: string, s: Stats): string => `${label.padEnd(44)}${fmt(s.median)}${fmt(s.p90)}${fmt(s.p99)}${fmt(s.max)}${String(s.n).padStart(6)}`;

async function main(): Promise<void> {
  requireNetnsPrivileges();
  const ns = new Netns('bench');
  // A name that cannot exist in the root namespace, so a spawned `ip` that were not in the
  // bench namespace would fail instead of touching a real interface.
  const ifname = `vmb${process.pid % 100000}`;
  try {
    ns.ip('link', 'add', ifname, 'type', 'veth', 'peer', 'name', `${ifname}p`);
    ns.ip('link', 'set', ifname, 'up');
    ns.ip('link', 'set', `${ifname}p`, 'up');
    enterNetns(ns);
    execFileSync('ip', ['link', 'show', 'dev', ifname], { stdio: 'ignore' }); // children inherit the namespace
    const ifindex = lookupInterface(ifname).index;

    const nl4 = measurePair(NETLINK_RUNS, () => addAddress(ifindex, VIP4, 24), () => deleteAddress(ifindex, VIP4, 24));
    const nl6 = measurePair(NETLINK_RUNS, () => addAddress(ifindex, VIP6, 64), () => deleteAddress(ifindex, VIP6, 64));
    const ipRun = (...args: string[]) => (): void => { execFileSync('ip', args, { stdio: 'ignore' }); };
    const sp4 = measurePair(SPAWN_RUNS, ipRun('addr', 'add', `${VIP4}/24`, 'dev', ifname), ipRun('addr', 'del', `${VIP4}/24`, 'dev', ifname));
    const sp6 = measurePair(SPAWN_RUNS, ipRun('addr', 'add', `${VIP6}/64`, 'dev', ifname, 'nodad'), ipRun('addr', 'del', `${VIP6}/64`, 'dev', ifname));

    const monitor = new NetMonitor();
    const ev = await eventLatency(ifname, ifindex, monitor);
    monitor.close();

    const head = `${''.padEnd(44)}${'median'.padStart(8)}${'p90'.padStart(8)}${'p99'.padStart(8)}${'max'.padStart(8)}${'n'.padStart(6)}`;
    const lines = [
      `vip-manager kernel layer, milliseconds (kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}, node ${process.version})`,
      head,
      row('add IPv4    netlink (this layer)', stats(nl4.add)),
      row('add IPv4    spawn `ip addr add`', stats(sp4.add)),
      row('remove IPv4 netlink (this layer)', stats(nl4.del)),
      row('remove IPv4 spawn `ip addr del`', stats(sp4.del)),
      row('add IPv6    netlink (this layer)', stats(nl6.add)),
      row('add IPv6    spawn `ip addr add`', stats(sp6.add)),
      row('remove IPv6 netlink (this layer)', stats(nl6.del)),
      row('remove IPv6 spawn `ip addr del`', stats(sp6.del)),
      row('external `ip addr del` → event (from spawn)', stats(ev.fromStart)),
      row('external `ip addr del` → event (from exit)', stats(ev.fromExit)),
      '',
      'speed-up of the median (spawn / netlink): ' + [
        ['add IPv4', sp4.add, nl4.add], ['remove IPv4', sp4.del, nl4.del], ['add IPv6', sp6.add, nl6.add], ['remove IPv6', sp6.del, nl6.del],
      ].map(([l, s, n]) => `${l as string} ×${(stats(s as number[]).median / stats(n as number[]).median).toFixed(0)}`).join(', '),
      '"from exit" is negative when the event arrived before Node saw `ip` exit.',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    leaveNetns();
    ns.dispose();
  }
}

await main();
