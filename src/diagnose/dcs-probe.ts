// One attempt per DCS endpoint, each on its own client built exactly as the daemon builds it
// (etcd: dcs/etcd/client.ts, with the scheme the daemon would dial every endpoint with;
// Consul and Patroni: dcs/http-client.ts with the daemon's TLS files, token and timeouts), so
// an endpoint fails here for the reason it fails the daemon, described in the daemon's words
// (dcs/etcd/errors.ts, dcs/consul/errors.ts, dcs/http-client.ts). Reads the trigger keys and,
// beside each `…/leader` key, Patroni's member names; for role VIPs every key under the
// cluster prefix, read as the daemon's prefix source reads it (etcd: one bounded Range through
// the same client; Consul: one ?recurse read), so the designation is computed from what the
// daemon would see. Writes nothing.
import type { EtcdGateway, RangeResponse } from '../dcs/etcd/gateway.js';
import type { Config } from '../config/schema.js';
import type { HttpAnswer } from '../dcs/http-client.js';
import { membersPrefix } from './checks.js';

// The DCS client code is loaded for the configured dcs-type only, as the daemon does
// (daemon/factories.ts): a tool run for etcd never loads the HTTP DCS clients and vice versa.
const etcdModules = () => Promise.all([
  import('../dcs/etcd/client.js'), import('../dcs/etcd/errors.js'), import('../dcs/http-client.js'), import('../dcs/etcd/prefix-source.js'), import('../dcs/etcd/gateway.js'),
]);
const httpModules = () => Promise.all([
  import('../dcs/http-client.js'), import('../dcs/consul/errors.js'), import('../dcs/consul/kv.js'), import('../dcs/consul/timing.js'),
  import('../dcs/patroni/rest-source.js'), import('../log.js'),
]);

/** Member names listed at most (a members directory holds one key per cluster member). */
const MAX_MEMBERS = 100;

export interface KeyRead {
  readonly key: string;
  /** The value's bytes as stored (Patroni: the HTTP status as text); null: no such key. */
  readonly bytes: Uint8Array | null;
  /** Patroni's member names beside the key, or null when not listed (no …/leader key, Patroni REST). */
  readonly members: string[] | null;
  readonly membersPrefix: string | null;
  /** Why the members could not be listed (e.g. the user may read the key only); the key read stands. */
  readonly membersError?: string;
}

/** Every key under a Patroni cluster prefix (role VIPs), as one revision. */
export interface PrefixRead {
  /** As configured (Consul: a leading '/' kept, as the daemon's views write it). */
  readonly prefix: string;
  /** Key relative to the prefix → value (`leader`, `members/pg1`, `sync`, …); null when not read. */
  readonly keys: ReadonlyMap<string, Uint8Array> | null;
  /** etcd: the header revision; Consul: the highest ModifyIndex under the prefix (as the daemon's views). */
  readonly revision: string | null;
  /**
   * Why the keys could not be used although the endpoint answered: too many for the daemon's
   * bounds, or the token/user may not read all of them (the daemon sees an outage then).
   */
  readonly error?: string;
}

export interface EndpointProbe {
  /** As shown: without credentials. */
  readonly endpoint: string;
  readonly ok: boolean;
  /** A short cause for a failure: 'refused', 'tls', 'auth', 'timeout', … */
  readonly reason: string | null;
  /** The failure in the daemon's words; empty when ok. */
  readonly message: string;
  /** What it answered, per trigger key (empty when it failed). */
  readonly keys: readonly KeyRead[];
  /** What it answered, per cluster prefix of a role VIP (empty when it failed or none is configured). */
  readonly prefixes: readonly PrefixRead[];
}

/** A TLS file named in the configuration cannot be read or used: exit 78, as the daemon. */
export const CONFIG_ERROR_NAMES: ReadonlySet<string> = new Set(['EtcdConfigFileError', 'DcsTlsConfigError']);

/** Names directly under `prefix` (Patroni: one key per member, `<prefix><name>`). */
function memberNames(keys: Iterable<string>, prefix: string): string[] {
  const names = new Set<string>();
  for (const k of keys) {
    if (!k.startsWith(prefix)) continue;
    const name = k.slice(prefix.length).split('/')[0]!;
    if (name !== '') names.add(name);
  }
  return [...names].sort();
}

// ---- etcd ---------------------------------------------------------------------------------

/**
 * The keys under `prefix` as the daemon's prefix source reads them (etcd/prefix-source.ts): one
 * linearizable Range with its bounds. Too many keys or bytes, or a user who may not read them,
 * is the prefix's own failure (the daemon's outage for that entry); anything else fails the
 * endpoint, as a key read does.
 */
async function readEtcdPrefix(m: Awaited<ReturnType<typeof etcdModules>>, gateway: EtcdGateway, cfg: Config, host: string, prefix: string): Promise<PrefixRead> {
  const [, { describeEtcdError }, , { MAX_PREFIX_BYTES, MAX_PREFIX_KEYS, prefixRangeEnd }, { EtcdResponseTooLargeError }] = m;
  const fail = (error: string): PrefixRead => ({ prefix, keys: null, revision: null, error });
  const tooLarge = (what: string) => fail(`etcd prefix ${prefix} holds ${what}; a Patroni cluster has tens of keys: is the trigger-key (<namespace>/<scope>/leader) right?`);
  const key = Buffer.from(prefix);
  let res: RangeResponse;
  try {
    res = await gateway.range({ key, rangeEnd: prefixRangeEnd(key), limit: MAX_PREFIX_KEYS + 1 });
  } catch (e) {
    if (e instanceof EtcdResponseTooLargeError) return tooLarge(`more than ${MAX_PREFIX_BYTES} bytes (an answer of more than ${e.limit} bytes; the limit is ${MAX_PREFIX_BYTES})`);
    const err = describeEtcdError(e, { endpoints: [host], user: cfg['etcd-user'], key: `the keys under ${prefix}` });
    if (err.reason === 'permission') return fail(err.message);
    throw err;
  }
  if (res.more || res.kvs.length > MAX_PREFIX_KEYS) return tooLarge(`more than ${MAX_PREFIX_KEYS} keys (the limit)`);
  const keys = new Map<string, Uint8Array>();
  let bytes = 0;
  for (const kv of res.kvs) {
    const k = kv.key.toString('utf8');
    if (k.startsWith(prefix)) keys.set(k.slice(prefix.length), kv.value);
    bytes += kv.key.length + kv.value.length;
  }
  if (bytes > MAX_PREFIX_BYTES) return tooLarge(`${bytes} bytes of keys and values (the limit is ${MAX_PREFIX_BYTES})`);
  return { prefix, keys, revision: res.header.revision };
}

async function prepareEtcd(cfg: Config, keys: readonly string[], prefixList: readonly string[]): Promise<() => Promise<EndpointProbe[]>> {
  const m = await etcdModules();
  const [{ buildEtcdClient, effectiveEtcdHosts }, { describeEtcdError }, { displayEndpoint }, { prefixRangeEnd }] = m;
  const { hosts } = effectiveEtcdHosts(cfg['dcs-endpoints']);
  // Built first, all of them: a TLS file that cannot be used is a configuration error (78),
  // whichever endpoint would have met it first.
  const clients = hosts.map((host) => ({
    host,
    built: buildEtcdClient({
      endpoints: [host], user: cfg['etcd-user'], password: cfg['etcd-password'],
      caFile: cfg['etcd-ca-file'], certFile: cfg['etcd-cert-file'], keyFile: cfg['etcd-key-file'],
    }),
  }));
  return () => Promise.all(clients.map(async ({ host, built }): Promise<EndpointProbe> => {
    const endpoint = displayEndpoint(host);
    let current = keys[0] ?? '';
    try {
      const reads: KeyRead[] = [];
      for (const key of keys) {
        current = key;
        // The daemon's read: linearizable, require-leader (etcd-client.ts), with its deadline.
        const res = await built.gateway.range({ key: Buffer.from(key) });
        const kv = res.kvs[0];
        const prefix = membersPrefix(key);
        let members: string[] | null = null;
        let membersError: string | undefined;
        if (prefix !== null) {
          try {
            const listed = await built.gateway.range({ key: Buffer.from(prefix), rangeEnd: prefixRangeEnd(Buffer.from(prefix)), limit: MAX_MEMBERS, keysOnly: true });
            members = memberNames(listed.kvs.map((kv) => kv.key.toString('utf8')), prefix);
          } catch (e) {
            membersError = describeEtcdError(e, { endpoints: [host], user: cfg['etcd-user'], key: prefix }).message;
          }
        }
        reads.push({ key, bytes: kv ? kv.value : null, members, membersPrefix: prefix, ...(membersError ? { membersError } : {}) });
      }
      const prefixes: PrefixRead[] = [];
      for (const prefix of prefixList) {
        current = `the keys under ${prefix}`;
        prefixes.push(await readEtcdPrefix(m, built.gateway, cfg, host, prefix));
      }
      return { endpoint, ok: true, reason: null, message: '', keys: reads, prefixes };
    } catch (e) {
      const err = describeEtcdError(e, { endpoints: [host], user: cfg['etcd-user'], key: current });
      return { endpoint, ok: false, reason: err.reason, message: err.message, keys: [], prefixes: [] };
    } finally {
      built.liveness.stop();
      built.gateway.close();
    }
  }));
}

// ---- Consul and Patroni (HTTP) ----------------------------------------------------------------

type HttpModules = Awaited<ReturnType<typeof httpModules>>;

function httpClient(m: HttpModules, cfg: Config, endpoint: string, connectTimeoutMs: number, consul: boolean) {
  const [{ FailoverHttpClient }, , , , , { silentLogger }] = m;
  return new FailoverHttpClient({
    endpoints: [endpoint],
    // As the daemon's sources: Consul trusts the system roots beside the CA file (consul.ts).
    tls: { caFile: cfg['etcd-ca-file'], certFile: cfg['etcd-cert-file'], keyFile: cfg['etcd-key-file'], alsoDefaultRoots: consul },
    headers: consul && cfg['consul-token'] ? { 'X-Consul-Token': cfg['consul-token'] } : {},
    connectTimeoutMs,
    log: silentLogger(),
  });
}

/** Consul answers that mean "cannot serve now", as consul.ts rejects them. */
function consulReject(answer: HttpAnswer): string | null {
  if (answer.status >= 500 || answer.status === 429) {
    const text = answer.body.toString('utf8').trim().slice(0, 200);
    return `HTTP ${answer.status}${text ? `: ${text}` : ''}`;
  }
  if (answer.status === 200 && answer.headers['x-consul-knownleader'] === 'false') return 'answered without a known cluster leader';
  return null;
}

function httpFailure(m: HttpModules, endpoint: string, e: unknown): EndpointProbe {
  const [{ AllEndpointsFailedError, EndpointError }, { ConsulAclError, ConsulResponseError }] = m;
  const first = e instanceof AllEndpointsFailedError ? e.failures[0] : e;
  const reason = first instanceof EndpointError ? first.kind
    : first instanceof ConsulAclError ? 'acl'
      : first instanceof ConsulResponseError ? 'answer' : 'error';
  return { endpoint, ok: false, reason, message: (first as Error).message, keys: [], prefixes: [] };
}

/**
 * The keys under `prefix` as the daemon's Consul loop reads them (consul/backend.ts): one
 * ?recurse&consistent read of the prefix alone. A token that may not read every key there
 * (403, or X-Consul-Results-Filtered-By-ACLs) is the prefix's own failure (the daemon's outage
 * for that entry); anything else fails the endpoint, as a key read does.
 */
async function readConsulPrefix(m: HttpModules, client: ReturnType<typeof httpClient>, cfg: Config, endpoint: string, prefix: string, timeoutMs: number): Promise<PrefixRead> {
  const [, { ConsulAclError, ConsulAclFilteredError }, { interpretListAnswer, listLocation }, { LIST_MAX_BODY_BYTES }] = m;
  const tokenSet = Boolean(cfg['consul-token']);
  const loc = listLocation(prefix);
  let list: ReturnType<typeof interpretListAnswer>;
  try {
    const answer = await client.request({ path: loc.path, query: [['recurse', null], ['consistent', null]], timeoutMs, maxBodyBytes: LIST_MAX_BODY_BYTES, rejectAnswer: consulReject });
    list = interpretListAnswer(answer, loc.prefix, tokenSet, LIST_MAX_BODY_BYTES);
  } catch (e) {
    if (e instanceof ConsulAclError) return { prefix, keys: null, revision: null, error: e.message };
    throw e;
  }
  // Consul never says "filtered" to a request without a token (consul/backend.ts checkFiltered).
  if (list.filtered && tokenSet) return { prefix, keys: null, revision: null, error: new ConsulAclFilteredError(endpoint, loc.prefix, tokenSet).message };
  const keys = new Map<string, Uint8Array>();
  let max = -1n;
  for (const [k, e] of list.entries) {
    keys.set(k.slice(loc.prefix.length), e.value);
    if (e.modifyIndex > max) max = e.modifyIndex;
  }
  return { prefix, keys, revision: (max >= 0n ? max : list.index).toString() };
}

async function prepareConsul(cfg: Config, keys: readonly string[], prefixList: readonly string[]): Promise<() => Promise<EndpointProbe[]>> {
  const m = await httpModules();
  const [{ displayEndpoint }, , { interpretKvAnswer, kvLocation }, { CONNECT_TIMEOUT_MS, MAX_BODY_BYTES, leaderCheckTimeoutMs }] = m;
  const timeoutMs = leaderCheckTimeoutMs(cfg.interval);
  const clients = cfg['dcs-endpoints'].map((ep) => ({ ep, client: httpClient(m, cfg, ep, CONNECT_TIMEOUT_MS, true) }));
  return () => Promise.all(clients.map(async ({ ep, client }): Promise<EndpointProbe> => {
    const endpoint = displayEndpoint(ep);
    try {
      const reads: KeyRead[] = [];
      for (const key of keys) {
        const loc = kvLocation(key);
        const answer = await client.request({ path: loc.path, query: [['consistent', null]], timeoutMs, maxBodyBytes: MAX_BODY_BYTES, rejectAnswer: consulReject });
        const read = interpretKvAnswer(answer, loc.key, Boolean(cfg['consul-token']));
        const prefix = membersPrefix(loc.key);
        let members: string[] | null = null;
        let membersError: string | undefined;
        if (prefix !== null) try {
          const list = await client.request({
            path: `v1/kv/${prefix.split('/').map(encodeURIComponent).join('/')}`, query: [['keys', null], ['separator', '/']],
            timeoutMs, maxBodyBytes: MAX_BODY_BYTES, rejectAnswer: consulReject,
          });
          // 404: nothing under the prefix. Keys come back in full, a directory with a trailing '/'.
          const parsed: unknown = list.status === 200 ? JSON.parse(list.body.toString('utf8')) : [];
          members = memberNames(Array.isArray(parsed) ? parsed.filter((k): k is string => typeof k === 'string').map((k) => k.replace(/\/$/, '')) : [], prefix)
            .slice(0, MAX_MEMBERS);
        } catch (e) {
          membersError = httpFailure(m, endpoint, e).message;
        }
        reads.push({ key, bytes: read.kind === 'found' ? read.value : null, members, membersPrefix: prefix, ...(membersError ? { membersError } : {}) });
      }
      const prefixes: PrefixRead[] = [];
      for (const prefix of prefixList) prefixes.push(await readConsulPrefix(m, client, cfg, endpoint, prefix, timeoutMs));
      return { endpoint, ok: true, reason: null, message: '', keys: reads, prefixes };
    } catch (e) {
      return httpFailure(m, endpoint, e);
    } finally {
      client.close();
    }
  }));
}

async function preparePatroni(cfg: Config, keys: readonly string[]): Promise<() => Promise<EndpointProbe[]>> {
  const m = await httpModules();
  const [{ displayEndpoint }, , , , { patroniTimeoutMs }] = m;
  const timeoutMs = patroniTimeoutMs(cfg.interval);
  const clients = cfg['dcs-endpoints'].map((ep) => ({ ep, client: httpClient(m, cfg, ep, timeoutMs, false) }));
  return () => Promise.all(clients.map(async ({ ep, client }): Promise<EndpointProbe> => {
    const endpoint = displayEndpoint(ep);
    try {
      const reads: KeyRead[] = [];
      for (const key of keys) {
        // The daemon's poll: any HTTP answer is a value, its status code as text.
        const answer = await client.request({ path: key, timeoutMs, maxBodyBytes: 0 });
        reads.push({ key, bytes: Buffer.from(String(answer.status)), members: null, membersPrefix: null });
      }
      // The configuration refuses role VIPs with dcs-type patroni: no prefix is ever asked for.
      return { endpoint, ok: true, reason: null, message: '', keys: reads, prefixes: [] };
    } catch (e) {
      return httpFailure(m, endpoint, e);
    } finally {
      client.close();
    }
  }));
}

/**
 * Loads the client code and builds one client per endpoint; the returned function asks every
 * endpoint once, concurrently, with results in the configured order: each trigger key, then
 * each cluster prefix (role VIPs; distinct, one read each). Rejects (see
 * CONFIG_ERROR_NAMES) when a TLS file cannot be read or used, before anything is sent.
 */
export async function prepareDcsProbe(cfg: Config, keys: readonly string[], prefixes: readonly string[] = []): Promise<() => Promise<EndpointProbe[]>> {
  switch (cfg['dcs-type']) {
    case 'etcd': return prepareEtcd(cfg, keys, prefixes);
    case 'consul': return prepareConsul(cfg, keys, prefixes);
    case 'patroni': return preparePatroni(cfg, keys);
  }
}
