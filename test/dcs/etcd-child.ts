// Runs an EtcdLeaderSource in its own process and prints every view as one JSON line on stdout.
// Used where the source must live elsewhere than the test: inside a network namespace
// (`ip netns exec … node etcd-child.js '<options json>'`), or to prove that close() lets the
// process exit. A line "close" on stdin (or SIGTERM) closes the source; nothing else keeps the
// process alive, so it must then exit by itself.
import { performance } from 'node:perf_hooks';
import { EtcdLeaderSource, type EtcdSourceOptions } from '../../src/dcs/etcd/source.js';
import { silentLogger } from '../../src/log.js';
import type { LeaderView } from '../../src/reconcile/ports.js';

export interface ChildLine {
  t: number;
  kind: 'value' | 'unreachable' | 'closed';
  value?: string | null;
  revision?: string;
  leaseDeadline?: number | null;
  failures?: number;
  error?: string;
  last?: string | null;
  /** The member the source talks to after this view. */
  endpoint?: string | undefined;
}

function line(v: LeaderView): ChildLine {
  const t = performance.now();
  return v.kind === 'value'
    ? { t, kind: 'value', value: v.value, revision: v.revision, leaseDeadline: v.leaseDeadline === null ? null : v.leaseDeadline - t }
    : { t, kind: 'unreachable', failures: v.failures, error: v.error.message, last: v.last?.value ?? null };
}

const opts = JSON.parse(process.argv[2] ?? '{}') as EtcdSourceOptions;
const source = new EtcdLeaderSource(opts, silentLogger());
source.start((v) => process.stdout.write(JSON.stringify({ ...line(v), endpoint: source.endpoint }) + '\n'));

let closing = false;
async function close(): Promise<void> {
  if (closing) return;
  closing = true;
  await source.close();
  process.stdout.write(JSON.stringify({ t: performance.now(), kind: 'closed' }) + '\n');
  process.stdin.destroy();
}

process.stdin.setEncoding('utf8');
process.stdin.on('data', (d: string) => {
  if (d.split('\n').includes('close')) void close();
});
process.once('SIGTERM', () => void close());
