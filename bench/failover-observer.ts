// Observer process for the failover bench, started by bench/failover-bed.ts inside one namespace
// (`ip netns exec <ns> node failover-observer.js ...`). It prints one JSON object per line on
// stdout, every one stamped with `t` = performance.timeOrigin + performance.now() (epoch ms,
// µs resolution) so that stamps from different processes on this machine compare directly.
// <vips> is one address or several, comma-separated; every line about one names it in `vip`.
//
//   addr <dev> <vips> <prefixLen>  address add/del of each VIP on <dev> (src/net/monitor.ts), plus
//                                  {k:'state'} per VIP with its presence right after it started
//                                  watching (and {k:'resync'} again after a monitor resync)
//   client <dev> <vips> <probeMs>  a UDP probe to each VIP being probed every probeMs (so the
//                                  client has, and keeps using, a neighbour entry for it) and
//                                  every neighbour-table change for any of <vips>
//                                  (bench/failover-neigh.ts); at first only the first VIP is
//                                  probed, a line "probe <vips>" on stdin sets which are (a row
//                                  probes only its own VIPs, so idle addresses add no ARP traffic)
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

const [mode, dev, vipList, arg] = process.argv.slice(2);
if (!mode || !dev || !vipList || !arg) {
  process.stderr.write('usage: failover-observer (addr <dev> <vips> <prefixLen> | client <dev> <vips> <probeMs>)\n');
  process.exit(2);
}
const vips = new Set(vipList.split(','));
let probed = [...vips].slice(0, 1);

const closers: Array<() => void> = [];
createInterface({ input: process.stdin })
  .on('line', (l) => {
    const [cmd, list] = l.trim().split(/\s+/);
    if (cmd === 'sync') out({ k: 'sync', t: now() });
    else if (cmd === 'probe') probed = (list ?? '').split(',').filter((v) => vips.has(v));
  })
  .on('close', () => { for (const c of closers) c(); process.exit(0); });

if (mode === 'addr') {
  const prefixLen = Number(arg);
  const ifindex = lookupInterface(dev).index;
  const mon = new NetMonitor();
  closers.push(() => mon.close());
  mon.on('address', (e) => {
    if (e.ifindex !== ifindex || !vips.has(e.address)) return;
    out({ k: 'addr', t: now(), vip: e.address, op: e.op, prefixLen: e.prefixLen });
  });
  const state = (k: string): void => { for (const vip of vips) out({ k, t: now(), vip, present: hasAddress(ifindex, vip, prefixLen) }); };
  mon.on('resync', () => state('resync'));
  state('state');
} else if (mode === 'client') {
  const probeMs = Number(arg);
  const ifindex = lookupInterface(dev).index;
  const mon = new NeighMonitor();
  closers.push(() => mon.close());
  mon.on('neigh', (e) => {
    if (!vips.has(e.dst) || e.ifindex !== ifindex) return;
    out({ k: 'neigh', t: e.t, vip: e.dst, op: e.op, lladdr: e.lladdr, state: e.state });
  });
  mon.on('lost', (why) => out({ k: 'lost', t: now(), why }));
  const sock = createSocket('udp4');
  sock.on('error', () => { /* ICMP errors and sends while unresolved are expected */ });
  const payload = Buffer.from('vip-manager failover bench probe');
  const timer = setInterval(() => { for (const vip of probed) sock.send(payload, 9, vip); }, probeMs);
  closers.push(() => { clearInterval(timer); sock.close(); });
  out({ k: 'state', t: now() });
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
