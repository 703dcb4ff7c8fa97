// Which member a role VIP belongs on, read from Patroni's own keys under <namespace>/<scope>/.
// A pure function of one revision of those keys: every vip-manager of the cluster sees the same
// revision and so names the same member, which is why no lock of our own is needed.
//
// The layout is Patroni's (patroni/dcs/__init__.py, AbstractDCS; checked on the Patroni 3.0.2
// bed, test/dcs/patroni-roles.test.ts holds what it wrote):
//   leader          the leader's member name, plain text
//   members/<name>  JSON per member (ha.py touch_member): {"state": "running", "role": "replica",
//                   "xlog_location": 67109616, "tags": {"noloadbalance": true}, ...}; role is
//                   "master" for the primary up to Patroni 3.x ("primary" later), "promoted" or
//                   "demoted" in between; state "starting", "stopping", "stopped" ... besides
//                   "running" (newer Patroni reports streaming separately, in replication_state)
//   sync            {"leader": "db1", "sync_standby": "db2,db3"} (synchronous_mode; written
//                   sorted and comma-joined, null when there is none)
//   status          {"optime": 67109616, ...}: the leader's WAL position; the legacy
//   optime/leader   key (plain integer) only counts while `status` does not exist, as Patroni
//                   itself reads them (etcd3.py/consul.py _cluster_from_nodes).
// Anything malformed disqualifies only what it describes (one member, the sync key): this never
// throws, so one odd key cannot stop a VIP elsewhere in the cluster.
import type { LeaderSpec } from '../session.js';
import { displayText } from '../leader-value.js';

export const LEADER_KEY = 'leader';
export const MEMBERS_DIR = 'members/';
export const SYNC_KEY = 'sync';
export const STATUS_KEY = 'status';
export const LEADER_OPTIME_KEY = 'optime/leader';

export type RoleSpec = Pick<LeaderSpec, 'role' | 'fallback' | 'maxLag'>;

export interface Designation {
  /** The member whose node should hold the VIP; null: no node. */
  readonly member: string | null;
  /** Why, in a few words, for the log line written when the designation changes. */
  readonly reason: string;
}

/** Member names listed in a reason at most (a cluster has a handful; a log line stays short). */
const REASON_MEMBERS = 8;

/** The keys under `prefix`, relative to it (`/service/pg/members/db1` → `members/db1`). */
export function clusterKeys(kvs: ReadonlyMap<string, { readonly bytes: Uint8Array }>, prefix: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const [key, kv] of kvs) if (key.startsWith(prefix)) out.set(key.slice(prefix.length), kv.bytes);
  return out;
}

/**
 * Name order: by code point (the UTF-8 bytes), the order Patroni's sorted() writes `sync_standby`
 * in and etcd lists keys in; never locale-dependent, so every node sorts alike.
 */
export function byName(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Where the role's VIP belongs in this revision of the cluster's keys (relative key → value). */
export function designate(keys: ReadonlyMap<string, Uint8Array>, spec: RoleSpec): Designation {
  const leader = text(keys.get(LEADER_KEY));
  const found = spec.role === 'sync-standby' ? syncStandby(keys, leader) : spec.role === 'replica' ? replica(keys, leader, spec.maxLag) : null;
  if (found === null) return { member: leader ?? null, reason: leader === undefined ? 'no leader key' : `the leader ${show(leader)}` };
  if ('member' in found) return found;
  if (spec.fallback === 'leader' && leader !== undefined && leader !== '') return { member: leader, reason: `${found.none}; fallback: the leader ${show(leader)}` };
  return { member: null, reason: found.none };
}

type Found = Designation | { readonly none: string };

function syncStandby(keys: ReadonlyMap<string, Uint8Array>, leader: string | undefined): Found {
  if (leader === undefined) return { none: 'no synchronous standby: no leader key' };
  const raw = keys.get(SYNC_KEY);
  if (raw === undefined) return { none: `no synchronous standby: no ${SYNC_KEY} key (is synchronous_mode on?)` };
  const sync = json(raw);
  if (!isObject(sync)) return { none: `no synchronous standby: the ${SYNC_KEY} key is not a JSON object` };
  // Patroni rewrites the key after a leader change; until then it describes the old leader's
  // standbys, which replicate from nobody now.
  if (sync.leader !== leader) return { none: `no synchronous standby: the ${SYNC_KEY} key is for leader ${showValue(sync.leader)}, the leader is ${show(leader)}` };
  const listed = sync.sync_standby;
  if (listed !== null && listed !== undefined && typeof listed !== 'string') return { none: `no synchronous standby: sync_standby in the ${SYNC_KEY} key is not a string` };
  const names = [...new Set((listed ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== leader))].sort(byName);
  if (names.length === 0) return { none: `no synchronous standby: leader ${show(leader)} has none` };
  const skipped: string[] = [];
  for (const name of names) {
    // A standby whose PostgreSQL stopped is still listed until the leader's next cycle rewrites
    // the key; its member entry says so at once.
    const m = member(keys, name);
    const why = m.kind === 'absent' ? 'no member key' : m.kind === 'malformed' ? 'member data is not a JSON object' : m.data.state !== 'running' ? `state ${showValue(m.data.state)}` : null;
    if (why === null) return { member: name, reason: `${show(name)} is the synchronous standby of leader ${show(leader)}${skipped.length > 0 ? ` (passed over: ${list(skipped)})` : ''}` };
    skipped.push(`${show(name)}: ${why}`);
  }
  return { none: `no running synchronous standby (${list(skipped)})` };
}

function replica(keys: ReadonlyMap<string, Uint8Array>, leader: string | undefined, maxLag: number | undefined): Found {
  let leaderLsn: number | undefined;
  let lsnWhy = '';
  if (maxLag !== undefined) {
    const status = keys.get(STATUS_KEY);
    if (status !== undefined) {
      const s = json(status);
      leaderLsn = isObject(s) ? lsn(s.optime) : undefined;
      lsnWhy = `no leader optime in the ${STATUS_KEY} key`;
    } else {
      leaderLsn = lsn(text(keys.get(LEADER_OPTIME_KEY)));
      lsnWhy = `no ${STATUS_KEY} or ${LEADER_OPTIME_KEY} key`;
    }
  }
  const names: string[] = [];
  for (const k of keys.keys()) {
    if (!k.startsWith(MEMBERS_DIR)) continue;
    const name = k.slice(MEMBERS_DIR.length);
    // Patroni reads members/<name> only, nothing deeper (k.count('/') == 1).
    if (name !== '' && !name.includes('/')) names.push(name);
  }
  names.sort(byName);
  const skipped: string[] = [];
  for (const name of names) {
    // The leader's own entry may still say replica for a moment after it took the key.
    if (name === leader) continue;
    const m = member(keys, name);
    let why: string | null = null;
    let lag: number | undefined;
    if (m.kind !== 'ok') why = 'member data is not a JSON object';
    else if (m.data.role !== 'replica') why = `role ${showValue(m.data.role)}`;
    else if (m.data.state !== 'running') why = `state ${showValue(m.data.state)}`;
    // Python truthiness, as Patroni's own /replica health check reads the tag.
    else if (isObject(m.data.tags) && truthy(m.data.tags.noloadbalance)) why = 'noloadbalance';
    else if (maxLag !== undefined) {
      const at = lsn(m.data.xlog_location);
      if (leaderLsn === undefined) why = `lag unknown (${lsnWhy})`;
      else if (at === undefined) why = 'lag unknown (no xlog_location)';
      else {
        // The two positions are written at different moments: a replica may report more than
        // the leader's last status; it is then not behind at all.
        lag = Math.max(0, leaderLsn - at);
        if (lag > maxLag) why = `lag ${lag} bytes > max-lag ${maxLag}`;
      }
    }
    if (why === null) return { member: name, reason: `${show(name)} is the first running replica in name order${lag !== undefined ? ` (lag ${lag} bytes)` : ''}${skipped.length > 0 ? `; passed over: ${list(skipped)}` : ''}` };
    skipped.push(`${show(name)}: ${why}`);
  }
  return { none: `no qualifying replica${skipped.length > 0 ? ` (${list(skipped)})` : ' (no other member keys)'}` };
}

type MemberEntry = { kind: 'absent' } | { kind: 'malformed' } | { kind: 'ok'; data: Record<string, unknown> };

function member(keys: ReadonlyMap<string, Uint8Array>, name: string): MemberEntry {
  const raw = keys.get(MEMBERS_DIR + name);
  if (raw === undefined) return { kind: 'absent' };
  const data = json(raw);
  return isObject(data) ? { kind: 'ok', data } : { kind: 'malformed' };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A key's value as text; undefined when absent or not valid UTF-8 (Patroni writes text only). */
function text(bytes: Uint8Array | undefined): string | undefined {
  if (bytes === undefined) return undefined;
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

function json(bytes: Uint8Array): unknown {
  const s = text(bytes);
  if (s === undefined) return undefined;
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A WAL position in bytes: a non-negative integer, or its decimal text (the legacy optime key). */
function lsn(v: unknown): number | undefined {
  if (typeof v === 'string' && /^\d{1,20}$/.test(v.trim())) v = Number(v.trim());
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (isObject(v)) return Object.keys(v).length > 0;
  return Boolean(v);
}

function show(name: string): string {
  return displayText(name);
}

function showValue(v: unknown): string {
  if (v === undefined) return 'unset';
  return displayText(JSON.stringify(v) ?? String(v));
}

function list(items: string[]): string {
  return items.length <= REASON_MEMBERS ? items.join('; ') : `${items.slice(0, REASON_MEMBERS).join('; ')}; and ${items.length - REASON_MEMBERS} more`;
}
