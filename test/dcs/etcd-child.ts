// Runs an EtcdLeaderSource — or an etcd backend with several key and prefix sources on its one
// connection (src/dcs/etcd/backend.ts) — in its own process and prints every view as one JSON
// line on stdout. Used where the sources must live elsewhere than the test: inside a network
// namespace (`ip netns exec … node etcd-child.js '<options json>'`), to prove that close()
// lets the process exit, or to count the process's connections to etcd from outside while the
// test writes with clients of its own. A line "close" on stdin (or SIGTERM) closes everything;
// "close <subject>" closes that one source. Nothing else keeps the process alive, so after
// "close" it must exit by itself.
import { performance } from 'node:perf_hooks';
import { createEtcdBackend } from '../../src/dcs/etcd/backend.js';
import { EtcdLeaderSource, type EtcdSessionOptions, type EtcdSourceOptions } from '../../src/dcs/etcd/source.js';
import type { KeySetView } from '../../src/dcs/key-set.js';
import { silentLogger } from '../../src/log.js';
import type { LeaderView } from '../../src/reconcile/ports.js';

/** Backend mode: one source per key and per prefix, all on one connection. */
export interface ChildBackendOptions extends EtcdSessionOptions {
  keys: string[];
  prefixes: string[];
}

export interface ChildLine {
  t: number;
  kind: 'value' | 'unreachable' | 'closed';
  /** Backend mode: the key or prefix the view is about ("closed" lines too, for one source). */
  subject?: string;
  value?: string | null;
  /** Prefix sources: every key under the prefix → its value (UTF-8). */
  kvs?: Record<string, string>;
  revision?: string;
  leaseDeadline?: number | null;
  failures?: number;
  error?: string;
  reason?: string;
  last?: string | null;
  /** The member the source talks to after this view. */
  endpoint?: string | undefined;
}

function line(v: LeaderView | KeySetView): ChildLine {
  const t = performance.now();
  if (v.kind === 'unreachable') {
    const last = v.last === null ? null : 'kvs' in v.last ? JSON.stringify(Object.fromEntries([...v.last.kvs].map(([k, x]) => [k, Buffer.from(x.bytes).toString('utf8')]))) : v.last.value;
    return { t, kind: 'unreachable', failures: v.failures, error: v.error.message, reason: (v.error as { reason?: string }).reason, last };
  }
  if ('kvs' in v) return { t, kind: 'value', kvs: Object.fromEntries([...v.kvs].map(([k, x]) => [k, Buffer.from(x.bytes).toString('utf8')])), revision: v.revision };
  return { t, kind: 'value', value: v.value, revision: v.revision, leaseDeadline: v.leaseDeadline === null ? null : v.leaseDeadline - t };
}

const print = (l: ChildLine) => process.stdout.write(JSON.stringify(l) + '\n');
const opts = JSON.parse(process.argv[2] ?? '{}') as EtcdSourceOptions | ChildBackendOptions;

let closeAll: () => Promise<void>;
let closeOne: (subject: string) => Promise<void> = () => Promise.resolve();
if ('keys' in opts) {
  const backend = createEtcdBackend(opts, silentLogger());
  const sources = new Map<string, { close(): Promise<void> }>();
  for (const key of opts.keys) {
    const s = backend.keySource(key);
    sources.set(key, s);
    s.start((v) => print({ ...line(v), subject: key, endpoint: backend.endpoint }));
  }
  for (const prefix of opts.prefixes) {
    const s = backend.prefixSource(prefix);
    sources.set(prefix, s);
    s.start((v) => print({ ...line(v), subject: prefix, endpoint: backend.endpoint }));
  }
  closeOne = async (subject) => {
    const s = sources.get(subject);
    if (!s) return;
    sources.delete(subject);
    await s.close();
    print({ t: performance.now(), kind: 'closed', subject });
  };
  closeAll = async () => {
    await Promise.all([...sources.values()].map((s) => s.close()));
    await backend.close();
  };
} else {
  const source = new EtcdLeaderSource(opts, silentLogger());
  source.start((v) => print({ ...line(v), endpoint: source.endpoint }));
  closeAll = () => source.close();
}

let closing = false;
async function close(): Promise<void> {
  if (closing) return;
  closing = true;
  await closeAll();
  print({ t: performance.now(), kind: 'closed' });
  process.stdin.destroy();
}

process.stdin.setEncoding('utf8');
let input = '';
process.stdin.on('data', (d: string) => {
  input += d;
  let i: number;
  while ((i = input.indexOf('\n')) >= 0) {
    const cmd = input.slice(0, i).trim();
    input = input.slice(i + 1);
    if (cmd === 'close') void close();
    else if (cmd.startsWith('close ')) void closeOne(cmd.slice('close '.length));
  }
});
process.once('SIGTERM', () => void close());
