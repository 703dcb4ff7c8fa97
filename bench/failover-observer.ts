// Observer process for the failover bench, started by bench/failover.ts inside one namespace
// (`ip netns exec <ns> node failover-observer.js ...`). It prints one JSON object per line on
// stdout, every one stamped with `t` = performance.timeOrigin + performance.now() (epoch ms,
// µs resolution) so that stamps from different processes on this machine compare directly.
//
//   addr <dev> <vip> <prefixLen>   address add/del of the VIP on <dev> (src/net/monitor.ts), plus
//                                  {k:'state'} with the current presence right after it started
//                                  watching (and again after a monitor resync)
//   client <dev> <vip> <probeMs>   a UDP probe to <vip>:9 every probeMs (so the client has, and
//                                  keeps using, a neighbour entry for the VIP) and every
//                                  neighbour-table change for <vip> (bench/failover-neigh.ts)
//
// A line "sync" on stdin is answered with {k:'sync', t} (the bench checks the clocks agree).
// The process exits when stdin closes, i.e. when the bench goes away.
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { hasAddress } from '../src/net/addresses.js';
import { lookupInterface } from '../src/net/links.js';
import { NetMonitor } from '../src/net/monitor.js';
import { NeighMonitor } from './failover-neigh.js';

const now = (): number => performance.timeOrigin + performance.now();
const out = (o: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify(o)}\n`); };

const [mode, dev, vip, arg] = process.argv.slice(2);
if (!mode || !dev || !vip || !arg) {
  process.stderr.write('usage: failover-observer (addr <dev> <vip> <prefixLen> | client <dev> <vip> <probeMs>)\n');
  process.exit(2);
}

const closers: Array<() => void> = [];
createInterface({ input: process.stdin })
  .on('line', (l) => { if (l.trim() === 'sync') out({ k: 'sync', t: now() }); })
  .on('close', () => { for (const c of closers) c(); process.exit(0); });

if (mode === 'addr') {
  const prefixLen = Number(arg);
  const ifindex = lookupInterface(dev).index;
  const mon = new NetMonitor();
  closers.push(() => mon.close());
  mon.on('address', (e) => {
    if (e.ifindex !== ifindex || e.address !== vip) return;
    out({ k: 'addr', t: now(), op: e.op, prefixLen: e.prefixLen });
  });
  const state = (k: string): void => out({ k, t: now(), present: hasAddress(ifindex, vip, prefixLen) });
  mon.on('resync', () => state('resync'));
  state('state');
} else if (mode === 'client') {
  const probeMs = Number(arg);
  const ifindex = lookupInterface(dev).index;
  const mon = new NeighMonitor();
  closers.push(() => mon.close());
  mon.on('neigh', (e) => {
    if (e.dst !== vip || e.ifindex !== ifindex) return;
    out({ k: 'neigh', t: e.t, op: e.op, lladdr: e.lladdr, state: e.state });
  });
  mon.on('lost', (why) => out({ k: 'lost', t: now(), why }));
  const sock = createSocket('udp4');
  sock.on('error', () => { /* ICMP errors and sends while unresolved are expected */ });
  const payload = Buffer.from('vip-manager failover bench probe');
  const timer = setInterval(() => sock.send(payload, 9, vip), probeMs);
  closers.push(() => { clearInterval(timer); sock.close(); });
  out({ k: 'state', t: now() });
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
