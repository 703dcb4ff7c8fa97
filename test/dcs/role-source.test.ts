// The role VIPs' leader source (dcs/role-source.ts) over a scripted key set: views only when
// the designated member changes or after an outage, outages passed through with `last` mapped,
// the reason logged at info on each change; and inside a DcsSession, two role entries over one
// cluster prefix share one prefix source.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { KeySetSource, KeySetValue, KeySetView, KeyValue } from '../../src/dcs/key-set.js';
import { RoleSource, roleSource } from '../../src/dcs/role-source.js';
import { DcsSession, type DcsBackend, type LeaderSpec } from '../../src/dcs/session.js';
import { silentLogger } from '../../src/log.js';
import { namesThisNode } from '../../src/reconcile/decide.js';
import type { LeaderSource, LeaderView } from '../../src/reconcile/ports.js';

const PREFIX = '/service/pg/';
const spec = (role: LeaderSpec['role'], over: Partial<LeaderSpec> = {}): LeaderSpec => ({ triggerKey: `${PREFIX}leader`, role, fallback: 'none', maxLag: undefined, ...over });

/** A member entry as Patroni 3.0.2 writes it (captured on the bed). */
const member = (name: string, role: string, state = 'running', xlog = 67109616) =>
  JSON.stringify({ conn_url: `postgres://${name}:5432/postgres`, api_url: `http://${name}:8008/patroni`, state, role, version: '3.0.2', xlog_location: xlog, timeline: 2 });

/** A scripted KeySetSource: the test pushes views. */
class ScriptedKeySet implements KeySetSource {
  onView: ((v: KeySetView) => void) | null = null;
  closed = 0;
  private revision = 100;
  start(onView: (view: KeySetView) => void): void {
    this.onView = onView;
  }
  async close(): Promise<void> {
    this.closed++;
  }
  /** Pushes the set `entries` (relative keys) as the next revision; returns the view. */
  set(entries: Record<string, string>, extra: Record<string, string> = {}): KeySetValue {
    const kvs = new Map<string, KeyValue>();
    const rev = String(++this.revision);
    for (const [k, v] of Object.entries(entries)) kvs.set(PREFIX + k, { bytes: Buffer.from(v), modRevision: rev });
    for (const [k, v] of Object.entries(extra)) kvs.set(k, { bytes: Buffer.from(v), modRevision: rev });
    const view: KeySetValue = { kind: 'value', kvs, revision: rev, at: this.revision * 10 };
    this.onView!(view);
    return view;
  }
  down(failures: number, last: KeySetValue | null): void {
    this.onView!({ kind: 'unreachable', since: 5, error: new Error('etcd: no endpoint answered'), failures, last });
  }
}

function capture(): { log: pino.Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const dest = new Writable({ write(chunk: Buffer, _e, cb) { records.push(JSON.parse(chunk.toString()) as Record<string, unknown>); cb(); } });
  return { log: pino({ level: 'debug' }, dest), records };
}

const HEALTHY = {
  leader: 'db1',
  'members/db1': member('db1', 'master'),
  'members/db2': member('db2', 'replica'),
  'members/db3': member('db3', 'replica'),
  status: '{"optime":67109616}',
  sync: '{"leader":"db1","sync_standby":"db3"}',
};

const show = (v: LeaderView) => (v.kind === 'value' ? `value ${v.value} @${v.revision}` : `unreachable ×${v.failures} last ${v.last?.value ?? 'none'}`);

describe('RoleSource', () => {
  it('emits the designated member as the value, only when it changes; the reason logged at info each time', () => {
    const ks = new ScriptedKeySet();
    const { log, records } = capture();
    const src = new RoleSource(ks, spec('replica'), log);
    assert.equal(src.providesLeaseDeadline, false);
    const views: LeaderView[] = [];
    src.start((v) => views.push(v));
    const first = ks.set(HEALTHY);
    assert.equal(views.length, 1);
    const v0 = views[0]!;
    assert.ok(v0.kind === 'value');
    assert.equal(v0.value, 'db2');
    assert.deepEqual(Buffer.from(v0.bytes!), Buffer.from('db2'));
    assert.equal(v0.revision, first.revision);
    assert.equal(v0.at, first.at);
    assert.equal(v0.leaseDeadline, null);
    assert.ok(namesThisNode(v0, 'db2') && !namesThisNode(v0, 'db3'));
    // Patroni's routine writes (status, a member's xlog_location): same member, no view.
    ks.set({ ...HEALTHY, status: '{"optime":67109700}' });
    ks.set({ ...HEALTHY, 'members/db2': member('db2', 'replica', 'running', 67109700) });
    assert.equal(views.length, 1, views.map(show).join(', '));
    // db2 stops: db3.
    const stopped = ks.set({ ...HEALTHY, 'members/db2': member('db2', 'replica', 'stopped') });
    assert.deepEqual(views.map(show), ['value db2 @101', `value db3 @${stopped.revision}`]);
    // Nothing qualifies: null (key-absent for the reconciler).
    ks.set({ ...HEALTHY, 'members/db2': member('db2', 'replica', 'stopped'), 'members/db3': member('db3', 'replica', 'starting') });
    const none = views.at(-1)!;
    assert.ok(none.kind === 'value' && none.value === null && none.bytes === null);
    const infos = records.filter((r) => r.level === 30);
    assert.deepEqual(infos.map((r) => r.member ?? null), ['db2', 'db3', null]);
    assert.deepEqual(infos.map((r) => r.previous ?? null), [null, 'db2', 'db3']);
    assert.match(String(infos[1]!.msg), /^role replica: member db3 \(db3 is the first running replica in name order; passed over: db2: state "stopped"\)$/);
    assert.match(String(infos[2]!.reason), /no qualifying replica \(db2: state "stopped"; db3: state "starting"\)/);
    assert.equal(infos[2]!.revision, String(105));
  });

  it('an outage passes through view by view with `last` the designation of the last set; the first set after it is emitted even if unchanged', () => {
    const ks = new ScriptedKeySet();
    const { log, records } = capture();
    const src = new RoleSource(ks, spec('sync-standby', { fallback: 'leader' }), log);
    const views: LeaderView[] = [];
    src.start((v) => views.push(v));
    ks.down(1, null);
    const a = ks.set(HEALTHY);
    ks.down(1, a);
    ks.down(2, a);
    ks.set(HEALTHY);
    ks.set(HEALTHY);
    assert.deepEqual(views.map(show), ['unreachable ×1 last none', 'value db3 @101', 'unreachable ×1 last db3', 'unreachable ×2 last db3', 'value db3 @102']);
    const u = views[3]!;
    assert.ok(u.kind === 'unreachable');
    assert.equal(u.since, 5);
    assert.equal(u.error.message, 'etcd: no endpoint answered');
    assert.deepEqual(Buffer.from(u.last!.bytes!), Buffer.from('db3'));
    // `last` from a set the source never saw as a value (it arrived only inside the outage view).
    const stale = { ...HEALTHY, leader: 'db2' };
    const unseen: KeySetValue = { kind: 'value', kvs: new Map(Object.entries(stale).map(([k, v]) => [PREFIX + k, { bytes: Buffer.from(v), modRevision: '7' }])), revision: '7', at: 1 };
    ks.down(1, unseen);
    const w = views.at(-1)!;
    assert.ok(w.kind === 'unreachable' && w.last?.value === 'db2', 'stale sync key: fallback to the leader db2');
    // One info line for the one designation; the outage does not log a change.
    assert.equal(records.filter((r) => r.level === 30).length, 1);
  });

  it('reads only its own cluster prefix and strips it', () => {
    const ks = new ScriptedKeySet();
    const src = new RoleSource(ks, spec('replica'), silentLogger());
    const views: LeaderView[] = [];
    src.start((v) => views.push(v));
    // Another cluster's replica sharing the beginning of the prefix must not count.
    ks.set({ leader: 'db1', 'members/db1': member('db1', 'master') }, { '/service/pg2/members/aa': member('aa', 'replica'), '/service/pgmembers/ab': member('ab', 'replica') });
    assert.deepEqual(views.map(show), ['value null @101']);
  });

  it('fallback leader names the leader key\'s member; close() closes the key set once', async () => {
    const ks = new ScriptedKeySet();
    const src = roleSource(ks, spec('replica', { fallback: 'leader', maxLag: 0 }), silentLogger());
    const views: LeaderView[] = [];
    src.start((v) => views.push(v));
    ks.set({ ...HEALTHY, status: '{"optime":67109617}' });
    assert.deepEqual(views.map(show), ['value db1 @101']);
    assert.throws(() => src.start(() => undefined), /started twice/);
    await src.close();
    assert.equal(ks.closed, 1);
  });

  it('refuses a trigger-key that is not Patroni\'s <namespace>/<scope>/leader', () => {
    assert.throws(() => new RoleSource(new ScriptedKeySet(), spec('replica', { triggerKey: '/service/pg/primary' }), silentLogger()), /role replica needs a trigger-key ending in \/leader.*\/service\/pg\/primary/);
  });
});

describe('role entries in a DcsSession', () => {
  it('a leader, a replica and a sync-standby entry of one cluster: one prefix source, each its own member, the backend kind carried', async () => {
    const ks = new ScriptedKeySet();
    const prefixes: string[] = [];
    const keyViews: Array<(v: LeaderView) => void> = [];
    const backend: DcsBackend = {
      kind: 'consul',
      providesLeaseDeadline: false,
      keySource(): LeaderSource {
        return { kind: 'consul', providesLeaseDeadline: false, start: (cb) => { keyViews.push(cb); }, close: async () => undefined };
      },
      prefixSource(prefix: string): KeySetSource {
        prefixes.push(prefix);
        return ks;
      },
      close: async () => undefined,
    };
    const session = new DcsSession(backend, roleSource, silentLogger());
    const sources = [session.leaderSource(spec('leader')), session.leaderSource(spec('replica')), session.leaderSource(spec('sync-standby'))];
    const seen = sources.map(() => [] as LeaderView[]);
    sources.forEach((s, i) => s.start((v) => seen[i]!.push(v)));
    assert.deepEqual(prefixes, [PREFIX], 'one prefix source for both role entries');
    assert.deepEqual(sources.map((s) => s.kind), ['consul', 'consul', 'consul']);
    assert.deepEqual(sources.map((s) => s.providesLeaseDeadline), [false, false, false]);
    ks.set(HEALTHY);
    assert.deepEqual(seen.slice(1).map((vs) => vs.map(show)), [['value db2 @101'], ['value db3 @101']]);
    // A switchover to db3: the sync key is stale until the new leader rewrites it.
    ks.set({ ...HEALTHY, leader: 'db3', 'members/db1': member('db1', 'demoted', 'stopping') });
    ks.set({ ...HEALTHY, leader: 'db3', 'members/db1': member('db1', 'replica'), 'members/db3': member('db3', 'master'), sync: '{"leader":"db3","sync_standby":"db2"}' });
    assert.deepEqual(seen[1]!.map(show), ['value db2 @101', 'value db1 @103'], 'db1 back as a running replica: first in name order');
    assert.deepEqual(seen[2]!.map(show), ['value db3 @101', 'value null @102', 'value db2 @103']);
    await session.close();
    assert.equal(ks.closed, 1, 'the shared prefix source closed once, after its last entry');
  });
});

describe('DcsSession.prefetch: the first reads go out before the entries exist', () => {
  /** A key source the test drives: started (once), its views pushed by hand, closed (count). */
  class ScriptedKey implements LeaderSource {
    readonly kind = 'etcd' as const;
    readonly providesLeaseDeadline = true;
    onView: ((v: LeaderView) => void) | null = null;
    starts = 0;
    closed = 0;
    start(onView: (v: LeaderView) => void): void {
      this.starts++;
      this.onView = onView;
    }
    async close(): Promise<void> {
      this.closed++;
    }
  }
  const value = (v: string, revision: string): LeaderView => ({ kind: 'value', value: v, revision, at: 1, leaseDeadline: null });

  function scriptedSession(): { session: DcsSession; keys: Map<string, ScriptedKey>; ks: ScriptedKeySet } {
    const keys = new Map<string, ScriptedKey>();
    const ks = new ScriptedKeySet();
    const backend: DcsBackend = {
      kind: 'etcd', providesLeaseDeadline: true,
      keySource(key) {
        const k = new ScriptedKey();
        keys.set(key, k);
        return k;
      },
      prefixSource: () => ks,
      close: async () => undefined,
    };
    return { session: new DcsSession(backend, roleSource, silentLogger()), keys, ks };
  }

  it('reads each subject once, at once; an entry subscribing later gets the latest view at once; dropping the prefetch then closes nothing', async () => {
    const { session, keys, ks } = scriptedSession();
    const drop = session.prefetch([spec('leader', { triggerKey: '/a/leader' }), spec('leader', { triggerKey: '/a/leader' }), spec('replica')]);
    assert.deepEqual([...keys.keys()], ['/a/leader'], 'one key source for two entries of one key');
    assert.equal(keys.get('/a/leader')!.starts, 1, 'started by the prefetch, before any entry');
    assert.ok(ks.onView, 'the role entries\' prefix source started too');
    keys.get('/a/leader')!.onView!(value('db1', '7'));
    ks.set(HEALTHY);

    const seen: LeaderView[] = [];
    const leader = session.leaderSource(spec('leader', { triggerKey: '/a/leader' }));
    leader.start((v) => seen.push(v));
    assert.deepEqual(seen.map(show), ['value db1 @7'], 'handed the prefetched view when it subscribed');
    const replicaSeen: LeaderView[] = [];
    const replica = session.leaderSource(spec('replica'));
    replica.start((v) => replicaSeen.push(v));
    assert.deepEqual(replicaSeen.map(show), ['value db2 @101'], 'the role entry too, from the prefetched key set');
    assert.equal(keys.get('/a/leader')!.starts, 1, 'not started again');

    await drop();
    assert.equal(keys.get('/a/leader')!.closed, 0, 'still read for its entry');
    assert.equal(ks.closed, 0);
    keys.get('/a/leader')!.onView!(value('db2', '8'));
    assert.deepEqual(seen.map(show), ['value db1 @7', 'value db2 @8'], 'views keep reaching the entry after the drop');
    await Promise.all([leader.close(), replica.close()]);
    assert.equal(keys.get('/a/leader')!.closed, 1, 'closed with its last entry');
    assert.equal(ks.closed, 1);
    await session.close();
  });

  it('a start that fails before any entry subscribed: dropping the prefetch, or closing the session, closes what it opened', async () => {
    const a = scriptedSession();
    await a.session.prefetch([spec('leader', { triggerKey: '/a/leader' })])();
    assert.equal(a.keys.get('/a/leader')!.closed, 1, 'dropped: closed');
    await a.session.close();
    assert.equal(a.keys.get('/a/leader')!.closed, 1, 'not closed twice');

    const b = scriptedSession();
    const drop = b.session.prefetch([spec('leader', { triggerKey: '/a/leader' }), spec('sync-standby')]);
    await b.session.close();
    assert.equal(b.keys.get('/a/leader')!.closed, 1, 'closed with the session');
    assert.equal(b.ks.closed, 1);
    await drop();
    assert.equal(b.keys.get('/a/leader')!.closed, 1, 'a drop after the session closed closes nothing again');
  });
});
