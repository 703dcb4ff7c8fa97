// Failover benchmark: npm run bench:failover [-- options], or node dist/bench/failover.js
//   --moves N (20)  --only etcd,baseline,consul,patroni,vips  --idle-seconds S (10)  --phases K (4)
//   --entries 1,5  --no-lease  --verbose  --our-args "..."   (see --help)
// Needs root; about 3.5 minutes with the defaults on a 2-core machine.
//
// Two nodes and a client in network namespaces around one etcd (bench/failover-bed.ts); per row
// two daemons for the same VIP, leadership moved N times at random moments (the rows and how one
// runs: bench/failover-rows.ts; the multi-entry rows: bench/failover-vips.ts). Observer
// processes inside n1, n2 and the client (bench/failover-observer.ts) stamp every VIP add/del
// and every neighbour-table change of the client for the VIP with performance.timeOrigin +
// performance.now(), the same clock the bench uses for "key change" (taken just before the put
// is sent); each move's figures come from those stamps (bench/failover-move.ts) and are printed
// by bench/failover-report.ts. The client sends a UDP probe to the VIP every 10 ms, so it always
// has a neighbour entry for it. The baseline is Debian's vip-manager 1.0.2 (bench/baseline.ts).
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { requireNetnsPrivileges } from '../test/harness/netns.js';
import { goBaseline } from './baseline.js';
import { now, openBed, PROBE_MS, vipAddresses, type Bed } from './failover-bed.js';
import { report } from './failover-report.js';
import {
  dcsRows, emptyResult, PAUSE_MAX_MS, PAUSE_MIN_MS, runRow, START_STAGGER_MAX_MS, type RowResult, type RunOptions,
} from './failover-rows.js';
import { entriesRows } from './failover-vips.js';

const ROWS = ['etcd', 'baseline', 'consul', 'patroni', 'vips'];

interface Options extends Omit<RunOptions, 'baseline'> { only: Set<string>; ourArgs: string[]; entries: number[] }

function parseArgs(argv: string[]): Options {
  const o: Options = { moves: 20, only: new Set(ROWS), idleSeconds: 10, lease: true, verbose: false, phases: 4, ourArgs: [], entries: [1, 5] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--moves') o.moves = Number(value());
    else if (flag === '--only') o.only = new Set(value().split(',').map((s) => s.trim()).filter(Boolean));
    else if (flag === '--idle-seconds') o.idleSeconds = Number(value());
    else if (flag === '--no-lease') o.lease = false;
    else if (flag === '--phases') o.phases = Number(value());
    else if (flag === '--entries') o.entries = value().split(',').map((s) => Number(s.trim()));
    else if (flag === '--our-args') o.ourArgs = value().split(/\s+/).filter(Boolean);
    else if (flag === '--verbose' || flag === '-v') o.verbose = true;
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write('usage: node dist/bench/failover.js [--moves N (20)] [--only etcd,baseline,consul,patroni,vips] [--idle-seconds S (10)]\n'
        + '         [--phases K (4: poller rows restart their daemons K times, each with a new random start offset)]\n'
        + '         [--entries 1,5 (vips rows: one VIP moved while each daemon holds that many entries)]\n'
        + '         [--no-lease (etcd and vips rows: the keys without a lease)] [--verbose (one line per move)]\n'
        + '         [--our-args "--flag value ..." (appended to this daemon\'s command line, for experiments)]\n'
        + '  VIP_BASELINE_BIN=/path/to/vip-manager (the Go original; default /usr/bin/vip-manager, else build/baseline/)\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(o.moves) || o.moves < 1) throw new Error('--moves must be a positive integer');
  if (!(o.idleSeconds > 0)) throw new Error('--idle-seconds must be positive');
  if (!Number.isInteger(o.phases) || o.phases < 1) throw new Error('--phases must be a positive integer');
  for (const n of o.entries) vipAddresses(n); // throws on a count that is not 1–100
  for (const r of o.only) if (!ROWS.includes(r)) throw new Error(`unknown row ${r}`);
  return o;
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!.trim();
  } catch (e) {
    return `unknown (${(e as Error).message.split('\n')[0]})`;
  }
}

const loadavg = (): string => os.loadavg().map((x) => x.toFixed(2)).join(' ');

async function main(): Promise<number> {
  const opt = parseArgs(process.argv.slice(2));
  requireNetnsPrivileges();
  const started = now();
  const log = (s: string): void => { process.stderr.write(`[${((now() - started) / 1000).toFixed(1).padStart(5)} s] ${s}\n`); };
  const baseline = opt.only.has('baseline') ? goBaseline({ fetch: true, log })! : null;
  const run: RunOptions = { ...opt, baseline };
  const loadAtStart = loadavg();

  const env = [
    `kernel ${os.release()}, node ${process.version}, ${firstLine('etcd', ['--version']).replace('etcd Version: ', 'etcd ')}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? '?'})`,
    ...(opt.ourArgs.length ? [`this daemon's extra flags: ${opt.ourArgs.join(' ')}`] : []),
    `baseline: ${baseline ? `${baseline} ${firstLine(baseline, ['--version'])}` : 'not run'}`,
    `N = ${opt.moves} moves per row, n1 ↔ n2, each after a random ${PAUSE_MIN_MS}–${PAUSE_MAX_MS} ms pause once the previous move settled; client probes the VIP every ${PROBE_MS} ms (UDP)`,
    `polling rows run their moves in ${opt.phases} blocks, each with freshly started daemons, n2 started a random 0–${START_STAGGER_MAX_MS} ms after n1 (independent poll phases)`,
    ...(opt.only.has('vips') ? [`entries rows: ${opt.entries.join(' and ')} entries per daemon (etcd, 203.0.113.100 upwards, a key each); each move changes one entry's key at random`] : []),
    `times: epoch ms (performance.timeOrigin + performance.now()) stamped by observer processes inside each namespace; key change = just before the put is sent`,
  ];

  const maxEntries = opt.only.has('vips') ? Math.max(1, ...opt.entries) : 1;
  let bed: Bed | undefined;
  const results: RowResult[] = [];
  try {
    bed = await openBed({ vips: vipAddresses(maxEntries), ourArgs: opt.ourArgs });
    env.push(bed.clockCheck);
    const observers = bed.observers();
    const rows = [...dcsRows(bed, run), ...entriesRows(bed, run, opt.entries)];
    for (const spec of rows) {
      if (!opt.only.has(spec.id)) continue;
      let r: RowResult;
      try {
        r = await runRow(bed, spec, run, log);
      } catch (e) {
        r = emptyResult(spec, (e as Error).message);
      }
      results.push(r);
      const dead = observers.map((o) => o.failed()).filter(Boolean);
      if (dead.length) throw new Error(`an observer died: ${dead.join('; ')}`);
    }
    env.push(`load average (1/5/15 min): ${loadAtStart} at the start, ${loadavg()} at the end`);
    const warnings = observers.flatMap((o) => o.warnings);
    process.stdout.write(`${report(results, opt, env)}\n`);
    for (const w of warnings) process.stdout.write(`warning: ${w}\n`);
  } finally {
    await bed?.dispose();
  }
  const failed = results.filter((r) => r.error);
  for (const r of failed) process.stderr.write(`\nFAILED: ${r.spec.label}: ${r.error}\n`);
  log(`done in ${((now() - started) / 1000).toFixed(0)} s`);
  return failed.length ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => {
  process.stderr.write(`bench:failover failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
