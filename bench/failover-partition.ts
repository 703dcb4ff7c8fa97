// Silent-partition benchmark (issue 12): how long after the network to etcd goes silent (frames
// dropped, no RST, no ICMP, links up) a daemon notices, ours beside the Go original.
//   node dist/bench/failover-partition.js [--partitions N (10)]     (needs root; ~1 min)
//
// A LAN of network namespaces: etcd 3.4 alone on host e (203.0.113.11, v2 API on for the
// baseline), our daemon on n1, Debian's vip-manager 1.0.2 on n2 (found as bench/baseline.ts
// says: VIP_BASELINE_BIN, /usr/bin/vip-manager or build/baseline/; without one its column stays
// empty), both at default settings (interval 1000), both following the same
// key, which names n1. Each round waits a random 0–1.1 s (the moment of the cut must sample every
// phase of a 1 s poll or keepalive cycle), then takes n1's and n2's switch ports out of the bridge
// at once: every frame from and to them is dropped inside the switch. Noticed = ours: its first
// "etcd: leader key unreachable" log record (Date.now() in the daemon); the Go original: its first
// "etcd error" line after the cut (one per failed poll, each after its 1 s header timeout; stamped
// on arrival here; its other lines, e.g. the periodic "IP address … state is …", do not count). Then the ports go back, and the next round starts once both are quiet again.
// Everything is removed on success, failure and Ctrl-C (test/harness/netns.ts and etcd.ts).
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { Daemon } from '../test/harness/daemon.js';
import { startEtcdCluster, type EtcdCluster } from '../test/harness/etcd.js';
import { createLan, requireNetnsPrivileges, type Lan, type LanHost } from '../test/harness/netns.js';
import { GoDaemon, goBaseline } from './baseline.js';
import { ms, stats, table } from './stats.js';

const KEY = '/service/bench/leader';
/** Neither daemon noticing within this long is a failure of the bench, not a figure. */
const NOTICE_TIMEOUT_MS = 20_000;
/** The Go original logs an error per failed poll (one every 1–2 s while cut): no error for this long = recovered. */
const GO_QUIET_MS = 3000;

const GO_ERROR = /error/i;

const sleep = (msec: number): Promise<void> => new Promise((r) => setTimeout(r, msec));

function parseArgs(argv: string[]): { partitions: number } {
  let partitions = 10;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--partitions') partitions = Number(argv[++i]);
    else if (a.startsWith('--partitions=')) partitions = Number(a.slice('--partitions='.length));
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: node dist/bench/failover-partition.js [--partitions N (10)]\n  VIP_BASELINE_BIN=/path/to/vip-manager (default /usr/bin/vip-manager, else build/baseline/)\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(partitions) || partitions < 1) throw new Error('--partitions must be a positive integer');
  return { partitions };
}

async function until<T>(what: string, f: () => T | undefined, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

async function main(): Promise<number> {
  const { partitions } = parseArgs(process.argv.slice(2));
  requireNetnsPrivileges();
  const log = (s: string): void => { process.stderr.write(`${s}\n`); };
  const baseline = goBaseline({ fetch: false, log });
  const withGo = baseline !== null;
  if (!withGo) log('the Go original is missing: its column stays empty (apt-get install vip-manager, or VIP_BASELINE_BIN=<extracted binary>)');

  const lan: Lan = createLan(3, ['e', 'n1', 'n2']);
  let cluster: EtcdCluster | undefined;
  let ours: Daemon | undefined;
  let go: GoDaemon | undefined;
  const cut = new Set<LanHost>();
  const setCut = (hosts: LanHost[], down: boolean): void => {
    for (const h of hosts) {
      lan.sw.ip('link', 'set', h.port, ...(down ? ['nomaster'] : ['master', 'br0']));
      if (down) cut.add(h); else cut.delete(h);
    }
  };
  const took: { ours: number[]; go: number[] } = { ours: [], go: [] };
  const oursErrors = new Set<string>();
  const goErrors = new Set<string>();
  try {
    const [e, n1, n2] = lan.hosts as [LanHost, LanHost, LanHost];
    cluster = await startEtcdCluster([e], { enableV2: true });
    const m = cluster.members[0]!;
    await m.etcdctl(['put', KEY, 'n1']);
    execFileSync('ip', ['netns', 'exec', e.ns.name, 'etcdctl', '--endpoints', 'http://127.0.0.1:2379', 'set', KEY, 'n1'], { env: { ...process.env, ETCDCTL_API: '2' }, stdio: 'ignore' });
    const url = `http://${e.ipv4}:2379`;
    ours = new Daemon({ ns: n1.ns, args: ['--ip', '203.0.113.100', '--netmask', '24', '--interface', 'eth0', '--trigger-key', KEY, '--trigger-value', 'n1', '--dcs-endpoints', url] });
    await ours.waitReady();
    if (baseline) go = new GoDaemon({ bin: baseline, ns: n2.ns, ip: '203.0.113.101', prefix: 24, key: KEY, node: 'n2', etcdUrl: url });
    await sleep(3000); // both past start-up (the Go original logs nothing once it runs)
    const targets = withGo ? [n1, n2] : [n1];
    for (let i = 0; i < partitions; i++) {
      await sleep(Math.random() * 1100);
      const goFrom = go?.lines.length ?? 0;
      const oursFrom = ours.logs.length;
      const t0 = Date.now();
      setCut(targets, true);
      const o = await ours.waitForLog((r) => ours!.logs.indexOf(r) >= oursFrom && r.msg === 'etcd: leader key unreachable', NOTICE_TIMEOUT_MS, 'ours noticing');
      took.ours.push(o.time - t0);
      oursErrors.add(String(o.err ?? '').replace(/\d+ ms/g, 'N ms'));
      if (go) {
        const g = await until('the Go original noticing', () => go!.lines.slice(goFrom).find((l) => l.t >= t0 && GO_ERROR.test(l.line)), NOTICE_TIMEOUT_MS);
        took.go.push(g.t - t0);
        goErrors.add(g.line.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, ''));
      }
      log(`partition ${i + 1}/${partitions}: ours ${ms(took.ours.at(-1)!)} ms${go ? `, Go ${ms(took.go.at(-1)!)} ms` : ''}`);
      const healAt = Date.now();
      setCut(targets, false);
      await ours.waitForLog((r) => r.time >= healAt && r.msg === 'etcd: reachable again', NOTICE_TIMEOUT_MS, 'ours reachable again');
      if (go) {
        const lastError = (): number => go!.lines.filter((l) => GO_ERROR.test(l.line)).at(-1)?.t ?? 0;
        await until('the Go original quiet again', () => (Date.now() - Math.max(healAt, lastError()) > GO_QUIET_MS ? true : undefined), NOTICE_TIMEOUT_MS);
      }
    }
  } finally {
    if (cut.size) setCut([...cut], false);
    await go?.kill();
    await ours?.kill();
    await cluster?.dispose();
    lan.dispose();
  }
  const row = (label: string, xs: number[]): string[] => {
    const s = stats(xs);
    return [label, String(xs.length), s ? ms(s.median) : '-', s ? ms(s.p90) : '-', s ? ms(s.max) : '-'];
  };
  const out = [
    'silent partition → noticed (ms)',
    `  kernel ${os.release()}, node ${process.version}, etcd 3.4 on its own host; ${partitions} partitions at random phases; default settings (interval 1000)`,
    table(['', 'n', 'median', 'p90', 'max'], [
      row('vip-manager (this, etcd v3 watch + TCP keepalive check)', took.ours),
      baseline ? row(`vip-manager 1.0.2 (${baseline}, etcd v2 poll)`, took.go) : ['vip-manager 1.0.2', '0', '-', '-', 'not run: not found (bench/baseline.ts)'],
    ], 1).replace(/^/gm, '  '),
    `  ours said: ${[...oursErrors].join(' | ')}`,
    ...(withGo ? [`  Go said: ${[...goErrors].join(' | ')}`] : []),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => {
  process.stderr.write(`bench:failover-partition failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
