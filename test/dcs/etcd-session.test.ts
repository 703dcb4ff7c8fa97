// The etcd backend of a DCS session (src/dcs/etcd/backend.ts) against a real etcd 3.4: several
// key sources and a prefix source on one client: one watch request (so one TCP connection and
// one watch stream on etcd) per subject, and the reads, lease queries and authentication on one
// keep-alive connection beside them; keys flipped one at a time and in bursts end on the right value with no view on any
// other source; a prefix source sees puts and deletes under its prefix and nothing outside it;
// closing one source leaves the others watching; an etcd outage makes every source report
// unreachable, and every one recovers.
//
// The backend runs in a child process (etcd-child.ts) so that its connections can be counted
// from outside without the test's own clients in the count: the child's sockets
// (/proc/<pid>/fd → socket:[inode]) matched against /proc/net/tcp, ESTABLISHED, to etcd's
// client port. etcd's own gauges count the watch streams (gRPC Watch calls started and not
// finished: etcd's JSON gateway opens one per watch request) and the watchers on them.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { createEtcdBackend } from '../../src/dcs/etcd/backend.js';
import { EtcdConnection } from '../../src/dcs/etcd/connection.js';
import { KeyWatch, WATCH_CREATE_TIMEOUT_MS } from '../../src/dcs/etcd/watch-stream.js';
import { MAX_PREFIX_BYTES, prefixRangeEnd } from '../../src/dcs/etcd/prefix-source.js';
import type { EtcdSourceError } from '../../src/dcs/etcd/errors.js';
import type { KeySetView } from '../../src/dcs/key-set.js';
import { silentLogger } from '../../src/log.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { ChildSource } from './etcd-child-driver.js';
import type { ChildLine } from './etcd-child.js';
import { sleep } from './etcd-views.js';

/** Socket inodes process `pid` holds (readlink /proc/<pid>/fd/N = "socket:[inode]"). */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

/** ESTABLISHED TCP connections of process `pid` to `port` (/proc/net/tcp: hex addresses, state 01, inode in column 10). */
function connectionsTo(pid: number, port: number): string[] {
  const own = socketInodes(pid);
  const found: string[] = [];
  for (const file of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.split('\n').slice(1)) {
      const cols = row.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const [local, remote, state, inode] = [cols[1]!, cols[2]!, cols[3]!, cols[9]!];
      if (state !== '01' || !own.has(inode)) continue;
      if (parseInt(remote.split(':')[1]!, 16) === port) found.push(`${local}->${remote} inode ${inode}`);
    }
  }
  return found;
}

/** The sum of a metric's series from etcd's /metrics whose labels contain `labelFilter`. */
function metricSum(metrics: string, name: string, labelFilter = ''): number {
  let sum = 0;
  let found = false;
  for (const m of metrics.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
    if (labelFilter && !(m[1] ?? '').includes(labelFilter)) continue;
    found = true;
    sum += Number(m[2]);
  }
  if (!found && !labelFilter) throw new Error(`metric ${name} not found`);
  return sum;
}

interface WatchState {
  /** Watch streams open on etcd (gRPC Watch calls started and not finished). */
  streams: number;
  /** Watchers registered on etcd (the test's own clients have none). */
  watchers: number;
}

async function watchState(etcd: EtcdServer): Promise<WatchState> {
  const m = await etcd.metrics();
  const started = metricSum(m, 'grpc_server_started_total', 'grpc_method="Watch"');
  const handled = metricSum(m, 'grpc_server_handled_total', 'grpc_method="Watch"');
  return { streams: started - handled, watchers: metricSum(m, 'etcd_debugging_mvcc_watcher_total') };
}

/** Polls etcd's gauges until they match (they move once etcd processed a create or cancel). */
async function waitWatchState(etcd: EtcdServer, want: WatchState, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let got = await watchState(etcd);
  while (got.streams !== want.streams || got.watchers !== want.watchers) {
    if (performance.now() > deadline) assert.deepEqual(got, want, 'watch streams and watchers on etcd');
    await sleep(50);
    got = await watchState(etcd);
  }
}

/**
 * The child's connections to etcd: one per watched subject, plus the keep-alive connection of
 * the unary calls (reads, lease queries, authentication), which may be closed while idle.
 */
function assertConnections(pid: number, subjects: number, label: string, p = port): string[] {
  const conns = connectionsTo(pid, p);
  assert.ok(conns.length === subjects || conns.length === subjects + 1, `${label}: ${subjects} watch connections + at most one for the reads, got ${conns.length}: ${conns.join('; ')}`);
  return conns;
}

const brief = (l: ChildLine) => JSON.stringify(l.kind === 'value' ? { subject: l.subject, value: l.value, kvs: l.kvs, revision: l.revision } : { subject: l.subject, kind: l.kind, error: l.error });

let etcd: EtcdServer;
/** etcd's client port (connections of the child to it are counted). */
let port: number;
const children: ChildSource[] = [];

function startChild(keys: string[], prefixes: string[]): ChildSource {
  const child = new ChildSource({ endpoints: etcd.endpoints, retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000, keys, prefixes });
  children.push(child);
  return child;
}

/** Lines about `subject` from index `from` on. */
const about = (child: ChildSource, subject: string, from = 0) => child.lines.slice(from).filter((l) => l.subject === subject);

function waitOn(child: ChildSource, subject: string, pred: (l: ChildLine) => boolean, timeoutMs: number, label: string, from = 0) {
  return child.waitFor((l) => l.subject === subject && pred(l), timeoutMs, `${subject}: ${label}`, from);
}

const isVal = (v: string | null) => (l: ChildLine) => l.kind === 'value' && l.value === v;

/** The first view of each source after start; a child on a busy machine needs a moment to load. */
const FIRST_VIEW_MS = 15_000;
/** A put's watch event reaches its source in a few ms here; 5 s is only the give-up bound. */
const EVENT_MS = 5000;
/**
 * After the marker put (a later revision on a watched key) arrived, any view for an earlier
 * put would have arrived too (one stream, in revision order); this only lets the child's
 * stdout drain.
 */
const DRAIN_MS = 200;

/** Puts a marker on `key` and waits until the child reports it: every earlier event was delivered by then. */
async function marker(child: ChildSource, key: string, value: string): Promise<void> {
  const from = child.lines.length;
  await etcd.client().put(key).value(value);
  await waitOn(child, key, isVal(value), EVENT_MS, `marker ${value}`, from);
  await sleep(DRAIN_MS);
}

describe('etcd backend: one watch request per subject, one connection for the reads', () => {
  before(async () => {
    etcd = await startEtcd();
    port = Number(new URL(etcd.clientUrl).port);
  });
  after(async () => {
    for (const c of children) c.kill();
    await etcd?.dispose();
  });

  it('2 key sources and a prefix source: a watch stream (and connection) each, plus one for the reads; flips reach only their own source', async (t) => {
    const admin = etcd.client();
    const [ka, kb] = ['/s2/a/leader', '/s2/b/leader'];
    const pfx = '/s2/cluster/';
    await admin.put(ka).value('a0');
    await admin.put(`${pfx}leader`).value('m1');
    const child = startChild([ka, kb], [pfx]);
    await waitOn(child, ka, isVal('a0'), FIRST_VIEW_MS, 'a0');
    await waitOn(child, kb, isVal(null), FIRST_VIEW_MS, 'absent');
    const first = await waitOn(child, pfx, (l) => l.kind === 'value', FIRST_VIEW_MS, 'first set');
    assert.deepEqual(first.kvs, { [`${pfx}leader`]: 'm1' });
    await waitWatchState(etcd, { streams: 3, watchers: 3 }, 5000);
    const conns = assertConnections(child.proc.pid!, 3, '3 sources');
    t.diagnostic(`the child's connections to etcd: ${conns.join('; ')}`);

    // One key flips: its source sees it, the other two see nothing.
    let from = child.lines.length;
    await admin.put(kb).value('b1');
    await waitOn(child, kb, isVal('b1'), EVENT_MS, 'b1', from);
    await marker(child, ka, 'a-marker-1');
    assert.deepEqual(about(child, pfx, from).map(brief), [], 'prefix: nothing for keys outside it');
    assert.deepEqual(about(child, ka, from).map((l) => l.value), ['a-marker-1'], 'key a: only its own marker');

    // Puts and deletes under the prefix reach only the prefix source, in order.
    from = child.lines.length;
    await admin.put(`${pfx}members/m1`).value('{"role":"master"}');
    await admin.put(`${pfx}members/m2`).value('{"role":"replica"}');
    await admin.delete().key(`${pfx}members/m1`);
    const last = await waitOn(child, pfx, (l) => l.kind === 'value' && l.kvs !== undefined && !(`${pfx}members/m1` in l.kvs) && `${pfx}members/m2` in l.kvs, EVENT_MS, 'm1 deleted, m2 there', from);
    assert.deepEqual(last.kvs, { [`${pfx}leader`]: 'm1', [`${pfx}members/m2`]: '{"role":"replica"}' });
    const sets = about(child, pfx, from);
    assert.deepEqual(sets.map((l) => Object.keys(l.kvs ?? {}).length), [2, 3, 2], 'one view per change, in order');
    const revs = sets.map((l) => BigInt(l.revision!));
    for (let i = 1; i < revs.length; i++) assert.ok(revs[i]! > revs[i - 1]!, `set revisions increase: ${revs.join(',')}`);
    const del = await admin.getAll().prefix(pfx).exec();
    assert.equal(last.revision, del.header.revision, 'the set\'s revision is the last change\'s (the delete)');
    await marker(child, ka, 'a-marker-2');
    assert.deepEqual(about(child, kb, from).map(brief), [], 'key b: nothing for changes under the prefix');

    // Next to the prefix but outside it: "/s2/cluster0" is the range end itself; "/s2/cluster"
    // and "/s2/clusterX/…" share the prefix's text but not its trailing "/".
    from = child.lines.length;
    await admin.put('/s2/cluster0').value('outside');
    await admin.put('/s2/clusterX/leader').value('outside');
    await admin.put('/s2/cluster').value('outside');
    await marker(child, ka, 'a-marker-3');
    assert.deepEqual(about(child, pfx, from).map(brief), [], 'prefix: nothing for keys next to it');

    assertConnections(child.proc.pid!, 3, 'still');
    assert.ok(child.lines.every((l) => l.kind === 'value'), 'never unreachable');
    const { code } = await child.close(10_000);
    assert.equal(code, 0, `the child exits by itself after close (stderr: ${child.stderrText})`);
    await waitWatchState(etcd, { streams: 0, watchers: 0 }, 5000);
  });

  it('5 key sources and a prefix source: keys flipped independently and in bursts end on their values, nothing reaches the others; closing one leaves the rest', async (t) => {
    const admin = etcd.client();
    const keys = Array.from({ length: 5 }, (_, i) => `/s5/c${i}/leader`);
    const pfx = '/s5/shared/';
    const child = startChild(keys, [pfx]);
    for (const k of keys) await waitOn(child, k, isVal(null), FIRST_VIEW_MS, 'absent');
    await waitOn(child, pfx, (l) => l.kind === 'value' && Object.keys(l.kvs ?? {}).length === 0, FIRST_VIEW_MS, 'empty set');
    await waitWatchState(etcd, { streams: 6, watchers: 6 }, 5000);
    assertConnections(child.proc.pid!, 6, '6 sources');

    // Deterministic pseudo-random rounds: each flips a subset of keys, some with one put, some
    // with a burst of concurrent puts, and every third round the prefix gets a burst too.
    let seed = 14;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const ROUNDS = 12;
    let slowest = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const chosen = keys.map((_, i) => i).filter(() => rnd(2) === 0);
      if (chosen.length === 0) chosen.push(rnd(keys.length));
      const prefixToo = r % 3 === 0;
      const from = child.lines.length;
      const puts: Array<Promise<unknown>> = [];
      for (const i of chosen) {
        const n = rnd(2) === 0 ? 1 : 10 + rnd(40);
        for (let j = 0; j < n; j++) puts.push(admin.put(keys[i]!).value(`r${r}-k${i}-${j}`).exec());
      }
      if (prefixToo) {
        for (let j = 0; j < 20; j++) puts.push(admin.put(`${pfx}m${rnd(8)}`).value(`r${r}-${j}`).exec());
        puts.push(admin.delete().key(`${pfx}m${rnd(8)}`).exec());
      }
      const t0 = performance.now();
      await Promise.all(puts);
      // Concurrent puts of one key commit in any order: the final value is read back.
      const finals = new Map<number, string>();
      for (const i of chosen) finals.set(i, (await admin.get(keys[i]!).string())!);
      for (const i of chosen) await waitOn(child, keys[i]!, isVal(finals.get(i)!), EVENT_MS, `round ${r}: final value`, from);
      let wantSet: Record<string, string> | undefined;
      if (prefixToo) {
        const res = await admin.getAll().prefix(pfx).exec();
        wantSet = Object.fromEntries(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
        await waitOn(child, pfx, (l) => l.kind === 'value' && JSON.stringify(l.kvs) === JSON.stringify(wantSet), EVENT_MS, `round ${r}: final set`, from);
      }
      slowest = Math.max(slowest, performance.now() - t0);
      // A marker on a key flipped this round (or the first): once it arrived, all of this
      // round's events did.
      const mk = chosen[0]!;
      await marker(child, keys[mk]!, `r${r}-marker`);
      finals.set(mk, `r${r}-marker`);
      for (const [i, k] of keys.entries()) {
        const seen = about(child, k, from);
        if (chosen.includes(i)) {
          assert.equal(seen.at(-1)?.value, finals.get(i), `round ${r}: ${k} ends on its value`);
          const revs = seen.map((l) => BigInt(l.revision!));
          for (let j = 1; j < revs.length; j++) assert.ok(revs[j]! > revs[j - 1]!, `round ${r}: ${k}: revisions increase`);
        } else {
          assert.deepEqual(seen.map(brief), [], `round ${r}: ${k} (not flipped) emitted nothing`);
        }
      }
      const sets = about(child, pfx, from);
      if (prefixToo) assert.deepEqual(sets.at(-1)?.kvs, wantSet, `round ${r}: the prefix's latest view is etcd's set`);
      else assert.deepEqual(sets.map(brief), [], `round ${r}: prefix emitted nothing`);
    }
    t.diagnostic(`${ROUNDS} rounds; slowest: every source on its final value ${Math.round(slowest)} ms after the round's puts started`);
    assertConnections(child.proc.pid!, 6, 'after the rounds');
    await waitWatchState(etcd, { streams: 6, watchers: 6 }, 5000);
    assert.ok(child.lines.every((l) => l.kind === 'value'), 'never unreachable');

    // Closing one source ends its watch alone; the others keep watching.
    child.send(`close ${keys[2]}`);
    await child.waitFor((l) => l.kind === 'closed' && l.subject === keys[2], 5000, 'one source closed');
    await waitWatchState(etcd, { streams: 5, watchers: 5 }, 5000);
    const from = child.lines.length;
    await admin.put(keys[2]!).value('after-close');
    await admin.put(`${pfx}after-close`).value('x');
    await waitOn(child, pfx, (l) => l.kind === 'value' && `${pfx}after-close` in (l.kvs ?? {}), EVENT_MS, 'prefix after a source closed', from);
    for (const i of [0, 1, 3, 4]) await marker(child, keys[i]!, `after-close-${i}`);
    assert.deepEqual(about(child, keys[2]!, from).map(brief), [], 'the closed source emits nothing');
    assertConnections(child.proc.pid!, 5, 'after one closed');

    const { code } = await child.close(10_000);
    assert.equal(code, 0, `the child exits by itself after close (stderr: ${child.stderrText})`);
    await waitWatchState(etcd, { streams: 0, watchers: 0 }, 5000);
  });

  it('an etcd outage makes every source report unreachable with its last value, and every one recovers', async (t) => {
    const admin = etcd.client();
    const keys = Array.from({ length: 3 }, (_, i) => `/so/c${i}/leader`);
    const pfx = '/so/cluster/';
    for (const [i, k] of keys.entries()) await admin.put(k).value(`v${i}`);
    await admin.put(`${pfx}leader`).value('m1');
    const child = startChild(keys, [pfx]);
    for (const [i, k] of keys.entries()) await waitOn(child, k, isVal(`v${i}`), FIRST_VIEW_MS, `v${i}`);
    await waitOn(child, pfx, (l) => l.kind === 'value', FIRST_VIEW_MS, 'set');
    await waitWatchState(etcd, { streams: 4, watchers: 4 }, 5000);

    const from = child.lines.length;
    const killedAt = performance.now();
    await etcd.kill();
    for (const [i, k] of keys.entries()) {
      const down = await waitOn(child, k, (l) => l.kind === 'unreachable', 5000, 'unreachable', from);
      assert.equal(down.last, `v${i}`, `${k}: the last value is carried along`);
    }
    const pDown = await waitOn(child, pfx, (l) => l.kind === 'unreachable', 5000, 'unreachable', from);
    assert.deepEqual(JSON.parse(pDown.last!), { [`${pfx}leader`]: 'm1' }, 'prefix: the last set is carried along');
    t.diagnostic(`every source unreachable within ${Math.round(Math.max(...[...keys, pfx].map((k) => about(child, k, from)[0]!.received)) - killedAt)} ms of the kill; e.g. ${pDown.error}`);

    await etcd.restart();
    const upAt = performance.now();
    const upFrom = child.lines.length;
    for (const [i, k] of keys.entries()) await waitOn(child, k, isVal(`v${i}`), 15_000, 'value after the restart', from);
    await waitOn(child, pfx, (l) => l.kind === 'value', 15_000, 'set after the restart', from);
    t.diagnostic(`every source answered again within ${Math.round(performance.now() - upAt)} ms of etcd serving (${child.lines.length - upFrom} lines since)`);
    await waitWatchState(etcd, { streams: 4, watchers: 4 }, 10_000);
    assertConnections(child.proc.pid!, 4, 'after the outage');
    const after = child.lines.length;
    await admin.put(keys[0]!).value('after');
    await waitOn(child, keys[0]!, isVal('after'), EVENT_MS, 'watching again', after);
    await marker(child, keys[1]!, 'marker');
    assert.deepEqual(about(child, keys[2]!, after).map(brief), [], `${keys[2]}: nothing for the other keys' flips after recovery`);
    const { code } = await child.close(10_000);
    assert.equal(code, 0, `the child exits by itself after close (stderr: ${child.stderrText})`);
  });

  for (const [label, count, size, shape] of [
    ['by the count of its bytes', 3, 1100 * 1024, /^etcd prefix \/big\/ holds \d+ bytes of keys and values \(the limit is \d+\); a Patroni cluster has tens of keys/],
    ['by the client\'s limit on one answer', 7, 1024 * 1024, /^etcd prefix \/big\/ holds more than \d+ bytes \(an answer of more than 8388608 bytes; the limit is \d+\); a Patroni cluster has tens of keys/],
  ] as const) {
    it(`a prefix holding more than ${MAX_PREFIX_BYTES} bytes is refused as too large (${label}), naming the prefix, and read once it shrinks`, async () => {
      const admin = etcd.client();
      const pfx = '/big/';
      const value = Buffer.alloc(size, 0x61);
      for (let i = 0; i < count; i++) await admin.put(`${pfx}k${i}`).value(value);
      const backend = createEtcdBackend({ endpoints: etcd.endpoints, retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000 }, silentLogger());
      try {
        const prefix = backend.prefixSource(pfx);
        const views: KeySetView[] = [];
        let wake = (): void => undefined;
        prefix.start((v) => {
          views.push(v);
          wake();
        });
        const until = async (pred: (v: KeySetView) => boolean, ms: number, what: string): Promise<KeySetView> => {
          const end = performance.now() + ms;
          for (;;) {
            const hit = views.find(pred);
            if (hit) return hit;
            if (performance.now() > end) throw new Error(`timed out waiting for ${what}; views: ${views.map((v) => v.kind === 'value' ? `value ${v.kvs.size} keys` : v.error.message).join(' | ')}`);
            await new Promise<void>((r) => { wake = r; setTimeout(r, 100); });
          }
        };
        const down = await until((v) => v.kind === 'unreachable', 5000, 'too large');
        assert.ok(down.kind === 'unreachable');
        assert.equal((down.error as EtcdSourceError).reason, 'too-large', down.error.message);
        assert.match(down.error.message, shape);
        for (let i = 0; i < count - 2; i++) await admin.delete().key(`${pfx}k${i}`);
        const up = await until((v) => v.kind === 'value', 15_000, 'read after shrinking');
        assert.deepEqual(up.kind === 'value' && [...up.kvs.keys()].sort(), [`${pfx}k${count - 2}`, `${pfx}k${count - 1}`]);
        await prefix.close();
      } finally {
        await backend.close();
        await admin.delete().prefix(pfx);
      }
    });
  }

  it('the range end of a prefix is etcd\'s (last byte below 0xff incremented, trailing 0xff dropped)', () => {
    assert.deepEqual(prefixRangeEnd(Buffer.from('/service/pg/')), Buffer.from('/service/pg0'));
    assert.deepEqual(prefixRangeEnd(Buffer.from([0x61, 0xff, 0xff])), Buffer.from([0x62]));
    assert.deepEqual(prefixRangeEnd(Buffer.from([0xff])), Buffer.from([0]));
  });
});

describe('etcd backend with authentication: a watch etcd refuses at creation does not hold up the others', () => {
  let authed: EtcdServer;
  const PASSWORD = 'vip-Secr3t-pw';
  before(async () => {
    authed = await startEtcd({ auth: { user: 'vip', password: PASSWORD, prefix: '/allowed/' } });
  });
  after(async () => {
    await authed?.dispose();
  });

  it('with authentication too: Authenticate rides on the reads\' connection, one more per watch', async () => {
    const keys = ['/allowed/a/leader', '/allowed/b/leader'];
    await authed.client().put(keys[0]!).value('node-a');
    const child = new ChildSource({ endpoints: authed.endpoints, user: 'vip', password: PASSWORD, retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000, keys, prefixes: ['/allowed/a/'] });
    children.push(child);
    for (const s of [...keys, '/allowed/a/']) await waitOn(child, s, (l) => l.kind === 'value', FIRST_VIEW_MS, 'first value');
    const port2 = Number(new URL(authed.clientUrl).port);
    assertConnections(child.proc.pid!, 3, 'with auth', port2);
    const from = child.lines.length;
    await authed.client().put(keys[1]!).value('node-b');
    await waitOn(child, keys[1]!, isVal('node-b'), EVENT_MS, 'a flip with auth', from);
    assertConnections(child.proc.pid!, 3, 'still', port2);
    const { code } = await child.close(10_000);
    assert.equal(code, 0, `the child exits by itself after close (stderr: ${child.stderrText})`);
  });

  it('permission denied on one watch: another one opened at the same time is created at once', async () => {
    const conn = new EtcdConnection({ endpoints: authed.endpoints, user: 'vip', password: PASSWORD }, silentLogger());
    const got: Record<'denied' | 'allowed', string[]> = { denied: [], allowed: [] };
    const handlers = (name: 'denied' | 'allowed') => ({
      onConnected: () => got[name].push('connected'),
      onEvents: (events: Array<{ value: Buffer | null }>) => got[name].push(...events.map((e) => `event ${e.value?.toString() ?? 'deleted'}`)),
      onFailure: (e: unknown) => got[name].push(`failed: ${(e as Error).message}`),
    });
    try {
      const started = performance.now();
      const denied = new KeyWatch(conn.gateway, '/forbidden/leader', '1', handlers('denied'));
      const allowed = new KeyWatch(conn.gateway, '/allowed/leader', '1', handlers('allowed'));
      while (got.denied.length === 0 || got.allowed.length === 0) {
        if (performance.now() - started > WATCH_CREATE_TIMEOUT_MS + 5000) assert.fail(`no outcome: ${JSON.stringify(got)}`);
        await sleep(20);
      }
      assert.equal(got.denied.length, 1);
      assert.match(got.denied[0]!, /^failed: .*permission denied/);
      assert.deepEqual(got.allowed, ['connected'], 'the other watch is created');
      await authed.client().put('/allowed/leader').value('node-a');
      while (got.allowed.length < 2) {
        if (performance.now() - started > 10_000) assert.fail(`no event: ${JSON.stringify(got)}`);
        await sleep(20);
      }
      assert.deepEqual(got.allowed, ['connected', 'event node-a']);
      await denied.close();
      await allowed.close();
    } finally {
      conn.close();
    }
  });
});
