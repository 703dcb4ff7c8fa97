// Role VIPs' choice of member (dcs/patroni/roles.ts): a pure function of one revision of
// Patroni's cluster keys. The fixtures are what Patroni 3.0.2 wrote on the real bed
// (test/harness/patroni.ts, synchronous_mode: true, etcd3), captured with a prefix watch on
// /service/pg/ through a switchover and a primary crash; the other cases vary them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { byName, clusterKeys, designate, type RoleSpec } from '../../src/dcs/patroni/roles.js';
import { mulberry32 } from '../harness/prng.js';

const enc = (s: string) => Buffer.from(s, 'utf8');
const keys = (entries: Iterable<readonly [string, string | Uint8Array]>) => new Map([...entries].map(([k, v]) => [k, typeof v === 'string' ? enc(v) : v] as const));
const REPLICA: RoleSpec = { role: 'replica', fallback: 'none', maxLag: undefined };
const SYNC: RoleSpec = { role: 'sync-standby', fallback: 'none', maxLag: undefined };
const withFallback = (s: RoleSpec): RoleSpec => ({ ...s, fallback: 'leader' });
const lag = (maxLag: number): RoleSpec => ({ ...REPLICA, maxLag });

/** A member entry shaped exactly like Patroni 3.0.2's (ha.py touch_member), with overrides. */
function m(name: string, over: Record<string, unknown> = {}): readonly [string, string] {
  const i = name.replace(/\D/g, '') || '9';
  const data: Record<string, unknown> = {
    conn_url: `postgres://203.0.113.1${i}:5432/postgres`, api_url: `http://203.0.113.1${i}:8008/patroni`,
    state: 'running', role: 'replica', version: '3.0.2', xlog_location: 67109616, timeline: 2, ...over,
  };
  for (const [k, v] of Object.entries(over)) if (v === undefined) delete data[k];
  return [`members/${name}`, JSON.stringify(data)];
}

const BED_INITIAL: ReadonlyArray<readonly [string, string]> = [
  ["leader", "db1"],
  ["members/db1", "{\"conn_url\":\"postgres://203.0.113.11:5432/postgres\",\"api_url\":\"http://203.0.113.11:8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\",\"xlog_location\":67108944,\"timeline\":1}"],
  ["members/db2", "{\"conn_url\":\"postgres://203.0.113.12:5432/postgres\",\"api_url\":\"http://203.0.113.12:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67108944,\"timeline\":1}"],
  ["members/db3", "{\"conn_url\":\"postgres://203.0.113.13:5432/postgres\",\"api_url\":\"http://203.0.113.13:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":50331648,\"timeline\":1}"],
  ["status", "{\"optime\":67108944}"],
  ["sync", "{\"leader\":\"db1\",\"sync_standby\":\"db2\"}"],
];
/** [ms since the bed started, key, value (null: deleted)] or a mark. */
const BED_EVENTS: ReadonlyArray<readonly [number, string, string | null] | readonly [number, 'mark', string]> = [
  [21345, "status", "{\"optime\":67108944}"],
  [21432, "members/db3", "{\"conn_url\":\"postgres://203.0.113.13:5432/postgres\",\"api_url\":\"http://203.0.113.13:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67108944,\"timeline\":1}"],
  [23224, 'mark', "switchover db1 -> db2"],
  [24180, "status", "{\"optime\":67108944}"],
  [24991, "failover", "{\"leader\":\"db1\",\"member\":\"db2\"}"],
  [25086, "status", "{\"optime\":67109000}"],
  [25260, "members/db3", "{\"conn_url\":\"postgres://203.0.113.13:5432/postgres\",\"api_url\":\"http://203.0.113.13:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109000,\"timeline\":1}"],
  [25274, "members/db1", "{\"conn_url\":\"postgres://203.0.113.11:5432/postgres\",\"api_url\":\"http://203.0.113.11:8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\"}"],
  [25275, "members/db2", "{\"conn_url\":\"postgres://203.0.113.12:5432/postgres\",\"api_url\":\"http://203.0.113.12:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109000,\"timeline\":1}"],
  [26480, "status", "{\"optime\":67109176}"],
  [26532, "leader", null],
  [26595, "members/db1", "{\"conn_url\":\"postgres://203.0.113.11:5432/postgres\",\"api_url\":\"http://203.0.113.11:8008/patroni\",\"state\":\"stopping\",\"role\":\"demoted\",\"version\":\"3.0.2\"}"],
  [26598, "members/db3", "{\"conn_url\":\"postgres://203.0.113.13:5432/postgres\",\"api_url\":\"http://203.0.113.13:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109296,\"timeline\":1}"],
  [26599, "members/db2", "{\"conn_url\":\"postgres://203.0.113.12:5432/postgres\",\"api_url\":\"http://203.0.113.12:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109296,\"timeline\":1}"],
  [26661, "leader", "db2"],
  [26704, "failover", "{}"],
  [26754, "sync", "{\"leader\":\"db2\",\"sync_standby\":null}"],
  [26808, "members/db2", "{\"conn_url\":\"postgres://203.0.113.12:5432/postgres\",\"api_url\":\"http://203.0.113.12:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"checkpoint_after_promote\":false,\"xlog_location\":67109296,\"timeline\":1}"],
  [26910, "members/db2", "{\"conn_url\":\"postgres://203.0.113.12:5432/postgres\",\"api_url\":\"http://203.0.113.12:8008/patroni\",\"state\":\"running\",\"role\":\"promoted\",\"version\":\"3.0.2\",\"checkpoint_after_promote\":false,\"xlog_location\":67109520,\"timeline\":2}"],
  [27951, "status", "{\"optime\":67109520}"],
  [28050, "members/db1", "{\"conn_url\":\"postgres://203.0.113.11:5432/postgres\",\"api_url\":\"http://203.0.113.11:8008/patroni\",\"state\":\"stopped\",\"role\":\"demoted\",\"version\":\"3.0.2\"}"],
  [28061, "members/db2", "{\"conn_url\":\"postgres://203.0.113.12:5432/postgres\",\"api_url\":\"http://203.0.113.12:8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\",\"xlog_location\":67109520,\"timeline\":2}"],
  [29405, "members/db3", "{\"conn_url\":\"postgres://203.0.113.13:5432/postgres\",\"api_url\":\"http://203.0.113.13:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109296,\"timeline\":2}"],
  [29460, "members/db3", "{\"conn_url\":\"postgres://203.0.113.13:5432/postgres\",\"api_url\":\"http://203.0.113.13:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109520,\"timeline\":2}"],
  [29934, "status", "{\"optime\":67109520}"],
  [30003, "members/db1", "{\"conn_url\":\"postgres://203.0.113.11:5432/postgres\",\"api_url\":\"http://203.0.113.11:8008/patroni\",\"state\":\"starting\",\"role\":\"replica\",\"version\":\"3.0.2\"}"],
  [31504, "members/db3", "{\"conn_url\":\"postgres://203.0.113.13:5432/postgres\",\"api_url\":\"http://203.0.113.13:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109616,\"timeline\":2}"],
  [32093, "sync", "{\"leader\":\"db2\",\"sync_standby\":\"db3\"}"],
  [32152, "members/db1", "{\"conn_url\":\"postgres://203.0.113.11:5432/postgres\",\"api_url\":\"http://203.0.113.11:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109616,\"timeline\":2}"],
  [32198, "members/db2", "{\"conn_url\":\"postgres://203.0.113.12:5432/postgres\",\"api_url\":\"http://203.0.113.12:8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\",\"xlog_location\":67109616,\"timeline\":2}"],
  [32313, "status", "{\"optime\":67109616}"],
  [34307, "status", "{\"optime\":67109616}"],
  [36318, "status", "{\"optime\":67109616}"],
  [36442, 'mark', "crash of db2"],
  [46766, "leader", null],
  [46766, "members/db2", null],
  [46844, "leader", "db3"],
  [46903, "sync", "{\"leader\":\"db3\",\"sync_standby\":null}"],
  [46954, "members/db3", "{\"conn_url\":\"postgres://203.0.113.13:5432/postgres\",\"api_url\":\"http://203.0.113.13:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"checkpoint_after_promote\":false,\"xlog_location\":67109616,\"timeline\":2}"],
  [47057, 'mark', "new leader db3"],
  [48105, "status", "{\"optime\":67109896}"],
  [48209, "members/db3", "{\"conn_url\":\"postgres://203.0.113.13:5432/postgres\",\"api_url\":\"http://203.0.113.13:8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\",\"xlog_location\":67109896,\"timeline\":3}"],
  [50113, "status", "{\"optime\":67109896}"],
  [50545, "members/db1", "{\"conn_url\":\"postgres://203.0.113.11:5432/postgres\",\"api_url\":\"http://203.0.113.11:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109616,\"timeline\":2}"],
  [51233, "members/db2", "{\"conn_url\":\"postgres://203.0.113.12:5432/postgres\",\"api_url\":\"http://203.0.113.12:8008/patroni\",\"state\":\"stopped\",\"role\":\"demoted\",\"version\":\"3.0.2\"}"],
  [51414, "members/db2", "{\"conn_url\":\"postgres://203.0.113.12:5432/postgres\",\"api_url\":\"http://203.0.113.12:8008/patroni\",\"state\":\"stopped\",\"role\":\"demoted\",\"version\":\"3.0.2\"}"],
  [52094, "status", "{\"optime\":67109896}"],
  [54091, "status", "{\"optime\":67109896}"],
  [54216, "members/db1", "{\"conn_url\":\"postgres://203.0.113.11:5432/postgres\",\"api_url\":\"http://203.0.113.11:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109896,\"timeline\":3}"],
  [56156, "members/db1", "{\"conn_url\":\"postgres://203.0.113.11:5432/postgres\",\"api_url\":\"http://203.0.113.11:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109936,\"timeline\":3}"],
  [56274, "sync", "{\"leader\":\"db3\",\"sync_standby\":\"db1\"}"],
  [56379, "members/db3", "{\"conn_url\":\"postgres://203.0.113.13:5432/postgres\",\"api_url\":\"http://203.0.113.13:8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\",\"xlog_location\":67109936,\"timeline\":3}"],
  [56485, "status", "{\"optime\":67109936}"],
  [56589, "members/db2", "{\"conn_url\":\"postgres://203.0.113.12:5432/postgres\",\"api_url\":\"http://203.0.113.12:8008/patroni\",\"state\":\"starting\",\"role\":\"replica\",\"version\":\"3.0.2\"}"],
  [57326, "members/db2", "{\"conn_url\":\"postgres://203.0.113.12:5432/postgres\",\"api_url\":\"http://203.0.113.12:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":67109936,\"timeline\":3}"],
  [58496, "status", "{\"optime\":67109936}"],
  [60487, "status", "{\"optime\":67109936}"],
  [61739, 'mark', "healed"],
];

/** The relative key set after the captured events up to (and including) `until` ms. */
function bedAt(until: number): Map<string, Uint8Array> {
  const set = keys(BED_INITIAL);
  for (const e of BED_EVENTS) {
    if (e[0] > until) break;
    if (e[1] === 'mark') continue;
    if (e[2] === null) set.delete(e[1]);
    else set.set(e[1], enc(e[2]));
  }
  return set;
}
const markAt = (what: string) => BED_EVENTS.find((e) => e[1] === 'mark' && e[2] !== null && e[2].startsWith(what))![0];

describe('Patroni 3.0.2 as captured on the bed', () => {
  it('a healthy synchronous cluster: the sync standby named in sync, the replica first in name order', () => {
    const set = keys(BED_INITIAL);
    assert.equal(designate(set, SYNC).member, 'db2');
    assert.equal(designate(set, REPLICA).member, 'db2');
    // db3 had not caught up yet in that revision: 16 MiB behind status.optime.
    const d = designate(set, lag(1 << 20));
    assert.equal(d.member, 'db2');
    assert.equal(designate(keys([...BED_INITIAL].filter(([k]) => k !== 'members/db2')), lag(1 << 20)).member, null);
    assert.match(designate(keys([...BED_INITIAL].filter(([k]) => k !== 'members/db2')), lag(1 << 20)).reason, /db3: lag 16777296 bytes > max-lag 1048576/);
  });

  it('through the switchover db1 → db2: nothing stale is believed, each step has the right member', () => {
    const sw = markAt('switchover');
    // Leader key deleted, the old sync key still up: no leader → no sync standby; the replica stays.
    assert.equal(designate(bedAt(26532), SYNC).member, null);
    assert.equal(designate(bedAt(26532), REPLICA).member, 'db2');
    // db2 took the key while its member entry still says "replica" (it promotes 250 ms later):
    // the leader is never the replica; the sync key still names the old leader: stale, none.
    const taken = bedAt(26661);
    assert.equal(JSON.parse(taken.get('members/db2')!.toString()).role, 'replica');
    assert.equal(designate(taken, REPLICA).member, 'db3');
    assert.equal(designate(taken, SYNC).member, null);
    assert.match(designate(taken, SYNC).reason, /for leader "db1", the leader is db2/);
    assert.equal(designate(taken, withFallback(SYNC)).member, 'db2');
    // The new leader's sync key without a standby yet ({"sync_standby": null}).
    assert.equal(designate(bedAt(26754), SYNC).member, null);
    assert.equal(designate(bedAt(26754), withFallback(SYNC)).member, 'db2');
    // db1 demoted/stopping while no one holds the key yet: db2 is still a plain replica.
    assert.equal(designate(bedAt(26595), REPLICA).member, 'db2');
    // db1 on its way back: stopped, starting: not a replica yet.
    for (const t of [28050, 30003]) assert.equal(designate(bedAt(t), REPLICA).member, 'db3', `at ${t} ms`);
    // Then a running replica again: first in name order takes the replica VIP back.
    assert.equal(designate(bedAt(32152), REPLICA).member, 'db1');
    assert.equal(designate(bedAt(32093), SYNC).member, 'db3');
    assert.ok(sw < 26532);
  });

  it('through the crash of the primary db2: the sync standby keeps the VIP until the lock expires, then the new leader\'s', () => {
    const crash = markAt('crash');
    // Until etcd expires db2's leader key, its keys still describe the old cluster.
    assert.equal(designate(bedAt(crash + 10_000), SYNC).member, 'db3');
    assert.equal(designate(bedAt(crash + 10_000), REPLICA).member, 'db1');
    // Leader key and db2's member key expired (one revision): no leader → no sync standby.
    assert.equal(designate(bedAt(46766), SYNC).member, null);
    assert.equal(designate(bedAt(46766), REPLICA).member, 'db1');
    // db3 leads, the sync key still names db2 as leader and db3 as its standby: stale.
    assert.equal(designate(bedAt(46844), SYNC).member, null);
    assert.equal(designate(bedAt(46844), withFallback(SYNC)).member, 'db3');
    assert.equal(designate(bedAt(46844), REPLICA).member, 'db1');
    // db2 comes back demoted/stopped, then starting: not a replica.
    assert.equal(designate(bedAt(56589), REPLICA).member, 'db1');
    assert.equal(designate(bedAt(56274), SYNC).member, 'db1');
    const healed = bedAt(Number.MAX_SAFE_INTEGER);
    assert.equal(designate(healed, SYNC).member, 'db1');
    assert.equal(designate(healed, REPLICA).member, 'db1');
  });

  it('every revision of the capture: never the leader, never a member that is not a running replica, sync only for the current leader', () => {
    let set = keys(BED_INITIAL);
    const seen = { replica: new Set<string | null>(), sync: new Set<string | null>() };
    for (const e of [[0, 'mark', 'initial'] as const, ...BED_EVENTS]) {
      if (e[1] !== 'mark') {
        set = new Map(set);
        if (e[2] === null) set.delete(e[1]);
        else set.set(e[1], enc(e[2]));
      }
      const leader = set.get('leader')?.toString() ?? null;
      const r = designate(set, REPLICA);
      seen.replica.add(r.member);
      if (r.member !== null) {
        assert.notEqual(r.member, leader, `at ${e[0]} ms`);
        const data = JSON.parse(set.get(`members/${r.member}`)!.toString()) as { role: string; state: string };
        assert.deepEqual([data.role, data.state], ['replica', 'running'], `at ${e[0]} ms`);
      }
      const s = designate(set, SYNC);
      seen.sync.add(s.member);
      if (s.member !== null) {
        const sync = JSON.parse(set.get('sync')!.toString()) as { leader: string; sync_standby: string };
        assert.equal(sync.leader, leader, `at ${e[0]} ms`);
        assert.ok(sync.sync_standby.split(',').includes(s.member), `at ${e[0]} ms`);
      }
    }
    assert.deepEqual([...seen.replica].sort(), ['db1', 'db2', 'db3'], 'the replica VIP had a home on every node at some point');
    assert.deepEqual([...seen.sync].sort(), ['db1', 'db2', 'db3', null]);
  });

  it('captured on the bed: the noloadbalance tag, a stopped replica, two sync standbys', () => {
    // patroni.yml tags: {noloadbalance: true} on db2, reloaded with SIGHUP.
    const tagged = keys([
      ['leader', 'db1'],
      ['members/db1', '{"conn_url":"postgres://203.0.113.11:5432/postgres","api_url":"http://203.0.113.11:8008/patroni","state":"running","role":"master","version":"3.0.2","xlog_location":67109080,"timeline":1}'],
      ['members/db2', '{"conn_url":"postgres://203.0.113.12:5432/postgres","api_url":"http://203.0.113.12:8008/patroni","state":"running","role":"replica","version":"3.0.2","tags":{"noloadbalance":true},"xlog_location":67109080,"timeline":1}'],
      ['members/db3', '{"conn_url":"postgres://203.0.113.13:5432/postgres","api_url":"http://203.0.113.13:8008/patroni","state":"running","role":"replica","version":"3.0.2","xlog_location":67109080,"timeline":1}'],
      ['status', '{"optime":67109080}'],
      ['sync', '{"leader":"db1","sync_standby":"db3"}'],
    ]);
    assert.equal(designate(tagged, REPLICA).member, 'db3');
    assert.match(designate(tagged, REPLICA).reason, /db2: noloadbalance/);
    assert.equal(designate(tagged, SYNC).member, 'db3', 'noloadbalance does not concern the sync standby');
    // Patroni on db3 stopped with SIGTERM: its entry stays (until its TTL) with state "stopped".
    const stopped = new Map(tagged);
    stopped.set('members/db3', enc('{"conn_url":"postgres://203.0.113.13:5432/postgres","api_url":"http://203.0.113.13:8008/patroni","state":"stopped","role":"replica","version":"3.0.2"}'));
    assert.equal(designate(stopped, REPLICA).member, null);
    assert.equal(designate(stopped, withFallback(REPLICA)).member, 'db1');
    assert.match(designate(stopped, REPLICA).reason, /db3: state "stopped"/);
    // ... before the leader rewrote the sync key, the stopped standby does not get the VIP.
    assert.equal(designate(stopped, SYNC).member, null);
    assert.match(designate(stopped, SYNC).reason, /db3: state "stopped"/);
    stopped.set('sync', enc('{"leader":"db1","sync_standby":"db2"}'));
    assert.equal(designate(stopped, SYNC).member, 'db2');
    // synchronous_node_count: 2
    const two = new Map(tagged);
    two.set('sync', enc('{"leader":"db1","sync_standby":"db2,db3"}'));
    assert.equal(designate(two, SYNC).member, 'db2');
  });
});

describe('role sync-standby', () => {
  const base = [['leader', 'db1'] as const, m('db1', { role: 'master' }), m('db2'), m('db3'), m('db10')];
  const sync = (v: string) => keys([...base, ['sync', v]]);

  it('first in name order (by code point, not as Patroni wrote it), spaces and empty items ignored', () => {
    assert.equal(designate(sync('{"leader":"db1","sync_standby":"db3, db2"}'), SYNC).member, 'db2');
    assert.equal(designate(sync('{"leader":"db1","sync_standby":" ,db3,,db10"}'), SYNC).member, 'db10');
  });

  it('the leader itself is never its own sync standby', () => {
    assert.equal(designate(sync('{"leader":"db1","sync_standby":"db1,db3"}'), SYNC).member, 'db3');
    assert.equal(designate(sync('{"leader":"db1","sync_standby":"db1"}'), SYNC).member, null);
  });

  it('a listed standby without a member key or not running is passed over', () => {
    assert.equal(designate(sync('{"leader":"db1","sync_standby":"db0,db3"}'), SYNC).member, 'db3');
    const set = keys([...base, m('db2', { state: 'starting', xlog_location: undefined }), ['sync', '{"leader":"db1","sync_standby":"db2,db3"}']]);
    assert.equal(designate(set, SYNC).member, 'db3');
    set.set('members/db3', enc('{'));
    assert.equal(designate(set, SYNC).member, null);
    assert.match(designate(set, SYNC).reason, /db2: state "starting"; db3: member data is not a JSON object/);
  });

  it('none: no leader, no sync key, another leader\'s key, malformed — null, or the leader with fallback leader', () => {
    const cases: Array<[string, Map<string, Uint8Array>, string | null, RegExp]> = [
      ['no sync key', keys(base), 'db1', /no sync key/],
      ['stale', sync('{"leader":"db9","sync_standby":"db2"}'), 'db1', /for leader "db9", the leader is db1/],
      ['no leader field', sync('{"sync_standby":"db2"}'), 'db1', /for leader unset/],
      ['null standby', sync('{"leader":"db1","sync_standby":null}'), 'db1', /has none/],
      ['empty standby', sync('{"leader":"db1","sync_standby":""}'), 'db1', /has none/],
      ['not JSON', sync('{"leader":'), 'db1', /not a JSON object/],
      ['a list', sync('["db2"]'), 'db1', /not a JSON object/],
      ['a number', sync('7'), 'db1', /not a JSON object/],
      ['standby not a string', sync('{"leader":"db1","sync_standby":["db2"]}'), 'db1', /not a string/],
      ['invalid UTF-8', keys([...base, ['sync', Buffer.from([0x7b, 0xff, 0x7d])]]), 'db1', /not a JSON object/],
      ['no leader key', keys([...base.slice(1), ['sync', '{"leader":"db1","sync_standby":"db2"}']]), null, /no leader key/],
    ];
    for (const [what, set, fallback, reason] of cases) {
      const d = designate(set, SYNC);
      assert.equal(d.member, null, what);
      assert.match(d.reason, reason, what);
      assert.equal(designate(set, withFallback(SYNC)).member, fallback, `${what}, fallback leader`);
      if (fallback !== null) assert.match(designate(set, withFallback(SYNC)).reason, /fallback: the leader db1/);
    }
  });
});

describe('role replica', () => {
  const leader = ['leader', 'db1'] as const;
  const status = (optime: unknown) => ['status', JSON.stringify({ optime })] as const;

  it('only running replicas: other roles and states are passed over', () => {
    for (const role of ['master', 'primary', 'promoted', 'demoted', 'standby_leader', 'uninitialized', 'sync_standby', 'Replica', 7, null]) {
      assert.equal(designate(keys([leader, m('db1', { role: 'master' }), m('db2', { role }), m('db3')]), REPLICA).member, 'db3', String(role));
    }
    for (const state of ['starting', 'stopping', 'stopped', 'crashed', 'restarting', 'creating replica', 'streaming', 'Running', undefined]) {
      assert.equal(designate(keys([leader, m('db2', { state }), m('db3')]), REPLICA).member, 'db3', String(state));
    }
  });

  it('noloadbalance as Patroni reads it (Python truthiness)', () => {
    for (const v of [true, 1, 'yes', 'false', ['x'], { a: 1 }]) {
      assert.equal(designate(keys([leader, m('db2', { tags: { noloadbalance: v } }), m('db3')]), REPLICA).member, 'db3', JSON.stringify(v));
    }
    for (const v of [false, 0, '', null, [], {}]) {
      assert.equal(designate(keys([leader, m('db2', { tags: { noloadbalance: v } }), m('db3')]), REPLICA).member, 'db2', JSON.stringify(v));
    }
    // Other tags and odd tag containers do not matter.
    assert.equal(designate(keys([leader, m('db2', { tags: { nofailover: true, nosync: true } })]), REPLICA).member, 'db2');
    assert.equal(designate(keys([leader, m('db2', { tags: 'noloadbalance' })]), REPLICA).member, 'db2');
  });

  it('max-lag: leader optime from status, else the legacy optime/leader; within is ≤; unknown lag does not qualify', () => {
    const two = [leader, m('db2', { xlog_location: 1000 }), m('db3', { xlog_location: 900 })] as const;
    assert.equal(designate(keys([...two, status(1500)]), lag(500)).member, 'db2');
    assert.match(designate(keys([...two, status(1500)]), lag(500)).reason, /lag 500 bytes/);
    assert.equal(designate(keys([...two, status(1501)]), lag(500)).member, null);
    assert.match(designate(keys([...two, status(1501)]), lag(500)).reason, /db2: lag 501 bytes > max-lag 500; db3: lag 601 bytes > max-lag 500/);
    assert.equal(designate(keys([...two, status(1501)]), withFallback(lag(500))).member, 'db1');
    assert.equal(designate(keys([...two, status(1501)]), lag(601)).member, 'db2', 'db2 within 601');
    assert.equal(designate(keys([...two.filter((e) => e[0] !== 'members/db2'), status(1501)]), lag(601)).member, 'db3');
    // Legacy key, plain integer text.
    assert.equal(designate(keys([...two, ['optime/leader', '1400']]), lag(450)).member, 'db2');
    assert.equal(designate(keys([...two, ['optime/leader', '1400']]), lag(450)).reason.includes('lag 400 bytes'), true);
    // status wins over the legacy key even when it is unreadable (Patroni: last_lsn 0).
    assert.equal(designate(keys([...two, ['status', '{'], ['optime/leader', '1400']]), lag(450)).member, null);
    assert.equal(designate(keys([...two, ['status', '{"optime":"1400"}']]), lag(450)).member, 'db2', 'a decimal string counts');
    for (const bad of [null, -1, 1.5, 'x', 2 ** 60, true]) {
      const d = designate(keys([...two, status(bad)]), lag(450));
      assert.equal(d.member, null, JSON.stringify(bad));
      assert.match(d.reason, /lag unknown \(no leader optime in the status key\)/);
    }
    assert.match(designate(keys(two), lag(450)).reason, /lag unknown \(no status or optime\/leader key\)/);
    // A member without xlog_location (Patroni leaves it out unless PostgreSQL runs) is unknown.
    assert.equal(designate(keys([leader, m('db2', { xlog_location: undefined }), m('db3', { xlog_location: 1400 }), status(1400)]), lag(0)).member, 'db3');
    // A replica reporting more than the leader's last status is not behind.
    assert.equal(designate(keys([leader, m('db2', { xlog_location: 2000 }), status(1400)]), lag(0)).member, 'db2');
    // Without max-lag, lag is not looked at at all.
    assert.equal(designate(keys([leader, m('db2', { xlog_location: undefined }), status('garbage')]), REPLICA).member, 'db2');
    assert.equal(designate(keys([leader, m('db2', { xlog_location: 1 }), status(2 ** 40)]), REPLICA).member, 'db2');
  });

  it('the leader is excluded by name even while its entry still says replica; without a leader key replicas still count', () => {
    assert.equal(designate(keys([['leader', 'db2'], m('db2'), m('db3')]), REPLICA).member, 'db3');
    assert.equal(designate(keys([m('db1', { role: 'master' }), m('db2'), m('db3')]), REPLICA).member, 'db2');
    assert.equal(designate(keys([m('db2', { state: 'stopped' })]), withFallback(REPLICA)).member, null, 'no leader to fall back to');
  });

  it('name order is by code point: db10 before db2, upper case before lower, é after z', () => {
    assert.equal(designate(keys([leader, m('db2'), m('db10')]), REPLICA).member, 'db10');
    assert.equal(designate(keys([leader, m('b'), m('Z')]), REPLICA).member, 'Z');
    assert.equal(designate(keys([leader, m('é'), m('z')]), REPLICA).member, 'z');
    assert.deepEqual(['db2', 'é', 'db10', 'Z', '😀', '\uffff'].sort(byName), ['Z', 'db10', 'db2', 'é', '\uffff', '😀']);
  });

  it('only members/<name>: deeper keys and other keys are not members', () => {
    assert.equal(designate(keys([leader, ['members/db0/x', JSON.stringify({ role: 'replica', state: 'running' })], ['members/', '{"role":"replica","state":"running"}'], ['db0', '{"role":"replica","state":"running"}'], m('db5')]), REPLICA).member, 'db5');
  });

  it('a malformed member disqualifies only itself and never throws', () => {
    const bad: Array<string | Uint8Array> = ['{', '', 'null', '[]', '"running"', '42', 'postgres://u@203.0.113.12:5432/postgres', Buffer.from([0xff, 0xfe]), '{"role":["replica"],"state":"running"}'];
    for (const v of bad) {
      const d = designate(keys([leader, ['members/db2', v], m('db3')]), REPLICA);
      assert.equal(d.member, 'db3', String(v));
      if (typeof v === 'string' && v.startsWith('{"role"')) assert.match(d.reason, /db2: role \["replica"\]/);
    }
    assert.match(designate(keys([leader, ['members/db2', '{']]), REPLICA).reason, /no qualifying replica \(db2: member data is not a JSON object\)/);
    assert.match(designate(keys([leader]), REPLICA).reason, /no other member keys/);
  });
});

describe('every role', () => {
  it('the same key set in any order gives the same answer (no local state)', () => {
    const rand = mulberry32(14);
    const entries = [['leader', 'db4'] as const, m('db4', { role: 'master' }), ['status', '{"optime":5000}'] as const, ['sync', '{"leader":"db4","sync_standby":"db7,db3,db5"}'] as const,
      ...Array.from({ length: 8 }, (_, i) => m(`db${i}`, { xlog_location: 4000 + i * 200, ...(i === 1 ? { tags: { noloadbalance: true } } : {}) })).filter(([k]) => k !== 'members/db4')];
    const specs: RoleSpec[] = [REPLICA, SYNC, lag(700), withFallback(lag(10))];
    const want = specs.map((s) => designate(keys(entries), s));
    // db0 is 1000 behind, db1 has noloadbalance, db2 is 600 behind, db3 400, db5 and up not at all.
    assert.deepEqual(want.map((d) => d.member), ['db0', 'db3', 'db2', 'db5']);
    for (let round = 0; round < 50; round++) {
      const shuffled = [...entries].sort(() => rand() - 0.5);
      specs.forEach((s, i) => assert.deepEqual(designate(keys(shuffled), s), want[i]));
    }
  });

  it('random bytes in every key never throw and name a member key or the leader', () => {
    const rand = mulberry32(1414);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
    const values = ['{', 'null', '{"role":"replica","state":"running","xlog_location":"12"}', '{"leader":"a","sync_standby":"b,a"}', '{"optime":1e400}', 'a', 'b', '', '{"state":"running","role":"replica","tags":null}'];
    for (let i = 0; i < 2000; i++) {
      const set = new Map<string, Uint8Array>();
      for (const k of ['leader', 'sync', 'status', 'optime/leader', 'members/a', 'members/b', 'members/c']) {
        if (rand() < 0.7) set.set(k, rand() < 0.2 ? Buffer.from(Array.from({ length: 8 }, () => Math.floor(rand() * 256))) : enc(pick(values)));
      }
      for (const spec of [REPLICA, SYNC, withFallback(lag(Math.floor(rand() * 20))), withFallback(SYNC)]) {
        const d = designate(set, spec);
        assert.equal(typeof d.reason, 'string');
        if (d.member !== null) assert.ok(set.has(`members/${d.member}`) || d.member === set.get('leader')?.toString(), JSON.stringify([...set].map(([k, v]) => [k, v.toString()])));
      }
    }
  });
});

describe('clusterKeys', () => {
  it('relative keys under the prefix only (another scope sharing the beginning is not ours)', () => {
    const kv = (s: string) => ({ bytes: enc(s), modRevision: '1' });
    const rel = clusterKeys(new Map([['/service/pg/leader', kv('db1')], ['/service/pg/members/db1', kv('{}')], ['/service/pg2/leader', kv('x')], ['/service/pgleader', kv('y')]]), '/service/pg/');
    assert.deepEqual([...rel.keys()], ['leader', 'members/db1']);
    assert.equal(rel.get('leader')!.toString(), 'db1');
  });
});
