// A Consul stand-in for tests: a real HTTP server on 127.0.0.1 serving the part of Consul's
// HTTP API the Consul leader source uses, as strict as a Consul client agent is where timing
// and errors matter. Consul cannot be installed here. It follows:
// - api-docs/kv.mdx ("Read Key", "Create/Update Key", "Delete Key"): GET/PUT/DELETE
//   /v1/kv/<key>; GET answers a JSON array of {LockIndex, Key, Flags, Value (base64, null when
//   written with an empty body), Session (only when set), CreateIndex, ModifyIndex}, 404 with an
//   empty body for a missing key; PUT/DELETE answer `true`; ?flags, ?cas, ?acquire, ?release.
// - api-docs/features/blocking.mdx ("Blocking Queries"): X-Consul-Index on every KV read answer
//   (200 and 404), ?index=&wait= blocking (wait as a Go duration, default 5m, capped at 10m,
//   plus random jitter below wait/16); the answer returns when the result's index exceeds
//   ?index or when the wait (plus jitter) runs out, and for nothing else. The index may go
//   backwards (snapshot restore) and is never 0 in a KV answer.
// - api-docs/features/consistency.mdx: ?consistent and the default mode need a leader; ?stale
//   is served without one (X-Consul-KnownLeader: false, X-Consul-LastContact growing).
// - Consul's source for what the documents leave open:
//   - agent/blockingquery/blockingquery.go: leadership (?consistent) is verified at the top of
//     each pass of the loop only; a pass runs when the request starts and when the watched data
//     changes, so a leader lost while a query is parked does NOT wake it: it answers at wait +
//     jitter with the result and meta of its last pass. A snapshot restore (abandoned state
//     store) also ends the wait, again with the last pass's (pre-restore) result. A missing key
//     keeps blocking across unrelated KV writes (ErrNotFound raises the min index).
//   - agent/consul/rpc.go ForwardRPC/canRetry + agent/structs HasTimedOut: without a leader a
//     request is held, re-checking every RandomStagger(rpc_hold_timeout/16), for
//     rpc_hold_timeout (7 s) — for a blocking query rpc_hold_timeout + wait + wait/16 — then
//     fails with structs.ErrNoLeader, "No cluster leader" (HTTP 500, agent/http.go).
//   - agent/consul/kvs_endpoint.go Get: a missing key reports the KV table's index (tombstones
//     included, never 0); KeyReadAllowed is checked on every pass (acl.PermissionDeniedError).
//   - agent/kvs_endpoint.go KVSGet, agent/consul/kvs_endpoint.go List, state/kvs.go kvsListTxn
//     (the recursive read, GET /v1/kv/<prefix>?recurse, api-docs/kv.mdx "recurse"): every key
//     under the (string) prefix, the empty prefix included, as a JSON array sorted by key
//     (memdb's radix order); nothing left is a 404 with an empty body and the index headers.
//     The index is the highest ModifyIndex under the prefix or of a tombstone under it (a
//     delete leaves one), else (nothing ever there, or the empty prefix) the KV table's index,
//     never 0. The token is resolved once per request ("ACL not found" is a 403); keys it may
//     not read are filtered out (FilterDirEnt), never refused, and ResultsFilteredByACLs
//     becomes the header X-Consul-Results-Filtered-By-ACLs: true (agent/http.go
//     setResultsFilteredByACLs, omitted when false), except for a request without a token
//     (agent/consul/rpc.go maskResultsFilteredByACLs). A blocking recursive read returns when
//     the prefix's index exceeds ?index; a write elsewhere moves no index under the prefix and
//     so does not end it (List has no ErrNotFound rule).
//   - acl/errors.go: 403 "ACL not found" for an unknown token; "Permission denied: token with
//     AccessorID '<id>' lacks permission 'key:read' on \"<key>\"" for a token whose policy does
//     not grant it; the anonymous variant "...anonymous token lacks permission ... The
//     anonymous token is used implicitly when a request does not specify a token.".
//   - agent/http.go: 403 for ACL errors, 500 for others, both with the error's text as body;
//     setMeta (X-Consul-Index, X-Consul-LastContact in whole ms, X-Consul-KnownLeader);
//     400 "Invalid wait time"/"Invalid index"; ?stale with ?consistent refused; the token from
//     ?token=, else X-Consul-Token, else `Authorization: Bearer <token>`.
//
// Remaining differences from a real Consul (see also the Consul paragraph of the README):
// - One agent: no servers/clients split, no RPC, so no "No known Consul servers", no raft
//   errors ("node is not the leader"), no rpc_client_timeout, no X-Consul-Effective-Consistency
//   or X-Consul-Default-ACL-Policy headers, no ACL token caching on client agents.
// - A parked blocking query is woken by any KV write and re-checked (Consul's radix watches
//   wake it less often); what it answers, and when, follows Consul's rules above.
// - Sessions are not modelled: ?acquire always succeeds and nothing invalidates a lock.
// - ACL rules: key_prefix rules only (longest prefix wins); no key/exact rules, no namespaces,
//   no acl.enable_key_list_policy (off by default in Consul: no key:list check on ?recurse).
// - Tombstones are never reaped (Consul reaps them after tombstone_ttl, which can make a
//   prefix's index go backwards; resetIndex() shows that case).
// - ?keys (key lists) is not served; the Consul source does not use it.
// - A silent partition (setUnreachable) keeps requests and answers until it heals, as TCP
//   retransmission would; a real partition kills the connection after minutes.
// Optionally served over HTTPS (with client-certificate checks), as Consul's https port is.
// Test controls: setNoLeader(), setUnreachable(), setTokenRules(), snapshot()/restore() and
// resetIndex() (the index goes backwards), overrideIndexHeader() (the zero-index bug of some
// older Consul versions), stop()/start() on the same port, a log of every request, and the
// TCP connections clients opened (connectionsAccepted, openConnections).
import { randomInt } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export interface StandinEntry {
  key: string;
  value: Buffer | null;
  flags: bigint;
  createIndex: number;
  modifyIndex: number;
  lockIndex: number;
  session: string | null;
}

export interface RecordedRequest {
  readonly method: string;
  readonly key: string;
  readonly query: URLSearchParams;
  /** ?index as sent ('' when absent). */
  readonly index: string;
  readonly token: string | null;
  /** Which way the token came: ?token, X-Consul-Token or Authorization: Bearer. */
  readonly tokenVia: 'query' | 'header' | 'bearer' | null;
  readonly at: number;
  status: number | null;
  /** When the answer was written (performance.now()), null while pending. */
  answeredAt: number | null;
  /** The response headers sent. */
  headers: Record<string, string> | null;
  /** The client went away before the answer (closed the connection: an aborted request). */
  abandoned: boolean;
}

export interface ConsulSnapshot {
  readonly raftIndex: number;
  readonly kvIndex: number;
  readonly entries: ReadonlyMap<string, StandinEntry>;
  readonly tombstones?: ReadonlyMap<string, number>;
}

export type KeyPolicy = 'read' | 'write' | 'deny';

export interface AclTokenSpec {
  /** The AccessorID Consul names in "Permission denied" (a made-up UUID when omitted). */
  accessorId?: string;
  /** key_prefix rules, e.g. { 'service/': 'read' }; the longest matching prefix decides. */
  keyPrefix?: Record<string, KeyPolicy>;
}

export interface ConsulStandinOptions {
  /** When set, ACLs are on with default deny and this is a management token (all rights). */
  token?: string;
  /** More tokens (ACLs on, default deny) by SecretID, each with its key_prefix rules. */
  tokens?: Record<string, AclTokenSpec>;
  /** rpc_hold_timeout: how long a request waits for a leader before 500 (default 7000). */
  rpcHoldTimeoutMs?: number;
  /** Raft index to start from (a fresh Consul has done some internal writes already). */
  initialIndex?: number;
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** Address to listen on (default 127.0.0.1), e.g. a test LAN's switch address. */
  host?: string;
  /** Serve HTTPS (Consul's https port) with this certificate; `ca` + requestCert for mTLS. */
  tls?: { key: Buffer; cert: Buffer; ca?: Buffer; requestCert?: boolean };
}

/** Consul's defaults: DefaultQueryTime, MaxQueryTime, structs.JitterFraction, RPCHoldTimeout. */
export const DEFAULT_WAIT_MS = 5 * 60_000;
export const MAX_WAIT_MS = 10 * 60_000;
export const JITTER_FRACTION = 16;
export const RPC_HOLD_TIMEOUT_MS = 7_000;

const GO_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration for the forms a client sends ("10s", "5m", "1500ms", "1m30s"). */
export function parseGoDuration(s: string): number | null {
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * GO_UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === s.length && pos > 0 ? total : null;
}

/** lib.RandomStagger: uniform in [0, ms). */
const randomStagger = (ms: number): number => (ms >= 1 ? randomInt(Math.floor(ms)) : 0);

/** The effective wait of a blocking query (RPCQueryTimeout without the jitter). */
export function effectiveWaitMs(waitMs: number): number {
  return waitMs <= 0 ? DEFAULT_WAIT_MS : Math.min(waitMs, MAX_WAIT_MS);
}

interface PassResult {
  readonly index: number;
  readonly entry: StandinEntry | null;
  /** A recursive read: every entry under the prefix the token may read, sorted by key. */
  readonly list?: readonly StandinEntry[];
  /** Entries were left out by ACLs (and the request carried a token). */
  readonly filtered?: boolean;
  readonly knownLeader: boolean;
  readonly lastContactMs: number;
}

/** An entry as Consul's KV read answers it (api-docs/kv.mdx, structs.DirEntry's JSON). */
function dirEntry(e: StandinEntry): Record<string, unknown> {
  const body: Record<string, unknown> = {
    LockIndex: e.lockIndex,
    Key: e.key,
    Flags: Number(e.flags),
    Value: e.value === null ? null : e.value.toString('base64'),
  };
  if (e.session) body.Session = e.session;
  body.CreateIndex = e.createIndex;
  body.ModifyIndex = e.modifyIndex;
  return body;
}

const ANONYMOUS = 'anonymous';

export class ConsulStandin {
  readonly requests: RecordedRequest[] = [];
  private server: http.Server;
  private portNumber = 0;
  private raftIndex: number;
  /** Highest index of any KV write or delete (Consul's kvsMaxIndex: table plus tombstones). */
  private kvIndex: number;
  private entries = new Map<string, StandinEntry>();
  /** Consul's KV graveyard: the index of each key's last delete. */
  private tombstones = new Map<string, number>();
  private accepted = 0;
  private readonly sockets = new Set<Socket>();
  private waiters = new Set<(abandoned: boolean) => void>();
  private leaderLostAt: number | null = null;
  private leaderWaiters = new Set<() => void>();
  private silent: { healed: Promise<void>; heal: () => void } | null = null;
  private indexOverride: number | null = null;
  private readonly tokens = new Map<string, AclTokenSpec>();

  private constructor(private readonly opts: ConsulStandinOptions) {
    this.raftIndex = opts.initialIndex ?? 10;
    this.kvIndex = 0;
    for (const [secret, spec] of Object.entries(opts.tokens ?? {})) this.tokens.set(secret, { ...spec });
    this.server = this.makeServer();
  }

  static async start(opts: ConsulStandinOptions = {}): Promise<ConsulStandin> {
    const s = new ConsulStandin(opts);
    await s.listen(opts.port ?? 0);
    return s;
  }

  get port(): number {
    return this.portNumber;
  }

  get url(): string {
    return `${this.opts.tls ? 'https' : 'http'}://${this.opts.host ?? '127.0.0.1'}:${this.portNumber}`;
  }

  get rpcHoldTimeoutMs(): number {
    return this.opts.rpcHoldTimeoutMs ?? RPC_HOLD_TIMEOUT_MS;
  }

  private get aclsOn(): boolean {
    return this.opts.token !== undefined || this.tokens.size > 0;
  }

  private get hasLeader(): boolean {
    return this.leaderLostAt === null;
  }

  // ---- data, bypassing HTTP and ACLs (as a write through the leader would) ----

  put(key: string, value: string | Buffer | null, opts: { session?: string; flags?: bigint } = {}): number {
    this.requireLeader('put');
    const index = ++this.raftIndex;
    const prev = this.entries.get(key);
    const buf = value === null ? null : Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
    this.entries.set(key, {
      key,
      value: buf === null || buf.length === 0 ? null : buf,
      flags: opts.flags ?? prev?.flags ?? 0n,
      createIndex: prev?.createIndex ?? index,
      modifyIndex: index,
      lockIndex: (prev?.lockIndex ?? 0) + (opts.session && prev?.session !== opts.session ? 1 : 0),
      session: opts.session ?? prev?.session ?? null,
    });
    this.kvIndex = index;
    this.wake(false);
    return index;
  }

  delete(key: string): number {
    this.requireLeader('delete');
    const index = ++this.raftIndex;
    if (this.entries.delete(key)) this.tombstones.set(key, index);
    this.kvIndex = index; // the tombstone carries the delete's index
    this.wake(false);
    return index;
  }

  get(key: string): StandinEntry | undefined {
    return this.entries.get(key);
  }

  /** The index a read of `key` reports now (Consul's rules). */
  indexFor(key: string): number {
    const e = this.entries.get(key);
    return e ? e.modifyIndex : Math.max(1, this.kvIndex);
  }

  /** The index a recursive read of `prefix` reports now (state/kvs.go kvsListTxn). */
  listIndexFor(prefix: string): number {
    let lindex = 0;
    for (const e of this.entries.values()) if (e.key.startsWith(prefix)) lindex = Math.max(lindex, e.modifyIndex);
    if (prefix !== '') {
      for (const [k, i] of this.tombstones) if (k.startsWith(prefix)) lindex = Math.max(lindex, i);
    } else {
      lindex = this.kvIndex;
    }
    return Math.max(1, lindex !== 0 ? lindex : this.kvIndex);
  }

  /** TCP connections accepted since start (every listener incarnation). */
  get connectionsAccepted(): number {
    return this.accepted;
  }

  /** TCP connections open now. */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** A write needs a leader (raft apply); a test that writes without one has a bug. */
  private requireLeader(what: string): void {
    if (!this.hasLeader) throw new Error(`ConsulStandin.${what}() while the cluster has no leader: a real write would fail`);
  }

  // ---- fault controls ----

  /**
   * The agent loses (or regains) its cluster leader. Parked blocking queries are not woken
   * (Consul checks leadership only at the top of a pass); new ?consistent/default requests are
   * held up to rpc_hold_timeout (+ wait + wait/16 when blocking), then 500 "No cluster leader";
   * ?stale reads are served with X-Consul-KnownLeader: false.
   */
  setNoLeader(on: boolean): void {
    if (on && this.leaderLostAt === null) this.leaderLostAt = performance.now();
    if (!on && this.leaderLostAt !== null) {
      this.leaderLostAt = null;
      const ws = [...this.leaderWaiters];
      this.leaderWaiters.clear();
      for (const w of ws) w();
    }
  }

  /**
   * A silent partition between clients and this agent (no RST, no FIN): requests are not
   * answered and answers due are not delivered until it heals, as TCP would retransmit them.
   */
  setUnreachable(on: boolean): void {
    if (on && this.silent === null) {
      let heal!: () => void;
      const healed = new Promise<void>((r) => { heal = r; });
      this.silent = { healed, heal };
    }
    if (!on && this.silent !== null) {
      const s = this.silent;
      this.silent = null;
      s.heal();
    }
  }

  /** Adds or replaces a token's key_prefix rules (a policy edit); null deletes the token. */
  setTokenRules(secret: string, spec: AclTokenSpec | null): void {
    if (spec === null) this.tokens.delete(secret);
    else this.tokens.set(secret, { ...spec });
  }

  snapshot(): ConsulSnapshot {
    return {
      raftIndex: this.raftIndex, kvIndex: this.kvIndex, entries: new Map([...this.entries].map(([k, e]) => [k, { ...e }])), tombstones: new Map(this.tombstones),
    };
  }

  /**
   * A snapshot restore: the state (and with it the index) goes back. Parked blocking queries
   * return at once, with the result of their last pass (the pre-restore state), as Consul's do.
   */
  restore(snap: ConsulSnapshot): void {
    this.requireLeader('restore');
    this.raftIndex = snap.raftIndex;
    this.kvIndex = snap.kvIndex;
    this.entries = new Map([...snap.entries].map(([k, e]) => [k, { ...e }]));
    this.tombstones = new Map(snap.tombstones ?? []);
    this.wake(true);
  }

  /** Keeps the data but renumbers it from `to` downwards: every index goes backwards. */
  resetIndex(to = 2): void {
    this.requireLeader('resetIndex');
    this.raftIndex = to;
    this.kvIndex = Math.min(this.kvIndex, to);
    for (const e of this.entries.values()) {
      e.createIndex = Math.min(e.createIndex, to);
      e.modifyIndex = Math.min(e.modifyIndex, to);
    }
    for (const [k, i] of this.tombstones) this.tombstones.set(k, Math.min(i, to));
    this.wake(true);
  }

  /** Sends this X-Consul-Index on every read (null: the real one), e.g. 0 as buggy versions did. */
  overrideIndexHeader(index: number | null): void {
    this.indexOverride = index;
  }

  // ---- request log ----

  count(filter: (r: RecordedRequest) => boolean = () => true): number {
    return this.requests.filter(filter).length;
  }

  clearLog(): void {
    this.requests.length = 0;
  }

  // ---- lifecycle ----

  /** Closes the listener and every connection (blocking queries in flight are cut). */
  async stop(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    // Handlers still waiting must end; their sockets are gone, so nothing reaches a client.
    this.wake(true);
    this.setUnreachable(false);
    await closed;
  }

  /** Listens again on the same port (after stop()). */
  async start(): Promise<void> {
    if (this.server.listening) return;
    this.server = this.makeServer();
    await this.listen(this.portNumber);
  }

  async close(): Promise<void> {
    await this.stop();
    this.setNoLeader(false);
  }

  // ---- HTTP ----

  private async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, this.opts.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.portNumber = (this.server.address() as AddressInfo).port;
  }

  private makeServer(): http.Server {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent && !res.destroyed) this.write(res, 500, String(e));
      });
    };
    const t = this.opts.tls;
    const server = t
      ? https.createServer({ key: t.key, cert: t.cert, ca: t.ca, requestCert: t.requestCert ?? false, rejectUnauthorized: t.requestCert ?? false }, handler)
      : http.createServer(handler);
    server.keepAliveTimeout = 5_000; // Go's net/http keeps idle connections too
    server.on(t ? 'secureConnection' : 'connection', (sock: Socket) => {
      this.accepted += 1;
      this.sockets.add(sock);
      sock.once('close', () => this.sockets.delete(sock));
    });
    return server;
  }

  private wake(abandoned: boolean): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w(abandoned);
  }

  /** Resolves once the partition (if any) has healed. */
  private async reachable(): Promise<void> {
    while (this.silent !== null) await this.silent.healed;
  }

  private write(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    if (res.destroyed) return;
    res.writeHead(status, headers);
    res.end(body);
  }

  /** Every answer goes through here: a partitioned agent's answer waits for the heal. */
  private async send(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): Promise<void> {
    await this.reachable();
    this.write(res, status, body, status === 200 && body.startsWith('[') ? { ...headers, 'content-type': 'application/json' }
      : body === '' ? headers : { 'content-type': 'text/plain; charset=utf-8', ...headers });
  }

  /** Consul's key_prefix rule matching: the longest prefix that matches decides. */
  private keyPolicy(spec: AclTokenSpec, key: string): KeyPolicy {
    let best: { len: number; policy: KeyPolicy } | null = null;
    for (const [prefix, policy] of Object.entries(spec.keyPrefix ?? {})) {
      if (key.startsWith(prefix) && (best === null || prefix.length > best.len)) best = { len: prefix.length, policy };
    }
    return best?.policy ?? 'deny';
  }

  private aclError(token: string | null, key: string, access: 'read' | 'write'): string | null {
    if (!this.aclsOn) return null;
    if (token === null || token === '' || token === ANONYMOUS) {
      return `Permission denied: anonymous token lacks permission 'key:${access}' on "${key}". The anonymous token is used implicitly when a request does not specify a token.`;
    }
    if (token === this.opts.token) return null;
    const spec = this.tokens.get(token);
    if (spec === undefined) return 'ACL not found';
    const policy = this.keyPolicy(spec, key);
    const allowed = access === 'read' ? policy === 'read' || policy === 'write' : policy === 'write';
    if (allowed) return null;
    const accessor = spec.accessorId ?? '6a1253c2-fa6d-4b1c-8d2f-7e9a0b3c4d5e';
    return `Permission denied: token with AccessorID '${accessor}' lacks permission 'key:${access}' on "${key}"`;
  }

  private parseToken(req: http.IncomingMessage, url: URL): { token: string | null; via: RecordedRequest['tokenVia'] } {
    const q = url.searchParams.get('token');
    if (q) return { token: q, via: 'query' };
    const h = req.headers['x-consul-token'];
    if (typeof h === 'string' && h !== '') return { token: h, via: 'header' };
    const auth = req.headers.authorization;
    if (typeof auth === 'string') {
      const m = /^bearer\s+(\S+)/i.exec(auth.trim());
      if (m) return { token: m[1]!, via: 'bearer' };
    }
    return { token: null, via: null };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://standin');
    const { token, via } = this.parseToken(req, url);
    const rec: RecordedRequest = {
      method: req.method ?? 'GET',
      key: url.pathname.startsWith('/v1/kv/') ? decodeURIComponent(url.pathname.slice('/v1/kv/'.length)) : url.pathname,
      query: url.searchParams,
      index: url.searchParams.get('index') ?? '',
      token,
      tokenVia: via,
      at: performance.now(),
      status: null,
      answeredAt: null,
      headers: null,
      abandoned: false,
    };
    this.requests.push(rec);
    res.once('close', () => {
      if (!res.writableFinished) rec.abandoned = true;
    });
    res.on('finish', () => {
      rec.status = res.statusCode;
      rec.answeredAt = performance.now();
      rec.headers = Object.fromEntries(Object.entries(res.getHeaders()).map(([k, v]) => [k, String(v)]));
    });
    // A request sent into a partition arrives when it heals (TCP retransmits it).
    await this.reachable();
    if (res.destroyed) return;
    if (!url.pathname.startsWith('/v1/kv/')) return this.send(res, 404, '');
    const key = rec.key;
    // A recursive read may name no prefix at all (every key); nothing else may (KVSGet, KVSPut).
    if (key === '' && !(req.method === 'GET' && url.searchParams.has('recurse'))) return this.send(res, 400, 'Missing key name');
    switch (req.method) {
      case 'GET': return this.handleGet(res, url, key, token);
      case 'PUT': return this.handlePut(req, res, url, key, token);
      case 'DELETE': return this.handleDelete(res, key, token);
      default: return this.send(res, 405, `method ${req.method} not allowed`);
    }
  }

  /**
   * ForwardRPC's CHECK_LEADER loop: re-check every RandomStagger(hold/16) until a leader is
   * known or `holdMs` passed. Resolves true when a leader is there, false on timeout or when
   * the client went away.
   */
  private async holdForLeader(res: http.ServerResponse, holdMs: number): Promise<boolean> {
    const until = performance.now() + holdMs;
    while (!this.hasLeader) {
      const left = until - performance.now();
      if (left <= 0 || res.destroyed) return false;
      const step = Math.min(left, Math.max(1, randomStagger(this.rpcHoldTimeoutMs / JITTER_FRACTION)));
      await new Promise((r) => setTimeout(r, step));
    }
    return !res.destroyed;
  }

  private pass(key: string): PassResult {
    const e = this.entries.get(key);
    return {
      index: this.indexFor(key),
      entry: e ? { ...e } : null,
      knownLeader: this.hasLeader,
      lastContactMs: this.leaderLostAt === null ? 0 : Math.floor(performance.now() - this.leaderLostAt),
    };
  }

  /**
   * One pass of KVS.List: the entries under `prefix` the token may read. `spec` is the token as
   * resolved when the request started (Consul resolves it once, before the blocking loop).
   */
  private listPass(prefix: string, token: string | null, spec: AclTokenSpec | undefined): PassResult {
    const all = [...this.entries.values()].filter((e) => e.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const management = !this.aclsOn || (token !== null && token === this.opts.token);
    const readable = all.filter((e) => {
      if (management) return true;
      if (spec === undefined) return false; // anonymous: no policy here grants it anything
      const p = this.keyPolicy(spec, e.key);
      return p === 'read' || p === 'write';
    });
    const tokenSent = token !== null && token !== '';
    return {
      index: this.listIndexFor(prefix),
      entry: null,
      list: readable.map((e) => ({ ...e })),
      filtered: tokenSent && readable.length !== all.length,
      knownLeader: this.hasLeader,
      lastContactMs: this.leaderLostAt === null ? 0 : Math.floor(performance.now() - this.leaderLostAt),
    };
  }

  private async handleGet(res: http.ServerResponse, url: URL, key: string, token: string | null): Promise<void> {
    const q = url.searchParams;
    let waitMs = 0;
    if (q.get('wait')) {
      const d = parseGoDuration(q.get('wait')!);
      if (d === null) return this.send(res, 400, 'Invalid wait time');
      waitMs = d;
    }
    let minIndex = 0;
    if (q.get('index')) {
      if (!/^\d+$/.test(q.get('index')!)) return this.send(res, 400, 'Invalid index');
      minIndex = Number(q.get('index'));
    }
    const stale = q.has('stale');
    const consistent = q.has('consistent');
    if (stale && consistent) return this.send(res, 400, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
    const blocking = minIndex > 0;
    const wait = blocking ? effectiveWaitMs(waitMs) : 0;

    // Forwarding to the leader (every mode but ?stale): held while there is none.
    if (!stale) {
      const hold = this.rpcHoldTimeoutMs + (blocking ? wait + wait / JITTER_FRACTION : 0);
      if (!(await this.holdForLeader(res, hold))) {
        if (res.destroyed) return;
        return this.send(res, 500, 'No cluster leader');
      }
    }
    const recurse = q.has('recurse');
    let spec: AclTokenSpec | undefined;
    if (recurse) {
      // The token is resolved before anything is read; an unknown one is refused outright.
      if (this.aclsOn && token !== null && token !== '' && token !== ANONYMOUS && token !== this.opts.token) {
        spec = this.tokens.get(token);
        if (spec === undefined) return this.send(res, 403, 'ACL not found');
      }
    } else {
      const denied = this.aclError(token, key, 'read');
      if (denied !== null) return this.send(res, 403, denied);
    }
    const pass = (): PassResult => (recurse ? this.listPass(key, token, spec) : this.pass(key));

    if (!blocking) return this.answer(res, pass());

    // res 'close' fires when the client goes away (or the answer is done): stop waiting then.
    let stopWaiting: (() => void) | null = null;
    res.once('close', () => stopWaiting?.());
    const deadline = performance.now() + wait + randomStagger(wait / JITTER_FRACTION);
    let notFound = false;
    for (;;) {
      if (consistent && !this.hasLeader) return this.send(res, 500, 'No cluster leader');
      const result = pass();
      const denial = recurse ? null : this.aclError(token, key, 'read');
      if (denial !== null) return this.send(res, 403, denial);
      // A missing key seen missing again: unrelated writes moved the table index, not this
      // result, so keep blocking (blockingquery's ErrNotFound rule; KVS.List has none).
      if (!recurse && result.entry === null) {
        if (notFound) minIndex = Math.max(minIndex, result.index);
        notFound = true;
      }
      if (result.index > minIndex) return this.answer(res, result);
      const left = deadline - performance.now();
      if (left <= 0) return this.answer(res, result);
      const outcome = await new Promise<'woken' | 'abandoned' | 'timeout' | 'gone'>((resolve) => {
        const timer = setTimeout(() => { this.waiters.delete(w); resolve('timeout'); }, left);
        const w = (ab: boolean) => { clearTimeout(timer); resolve(ab ? 'abandoned' : 'woken'); };
        this.waiters.add(w);
        stopWaiting = () => { clearTimeout(timer); this.waiters.delete(w); resolve('gone'); };
      });
      stopWaiting = null;
      if (outcome === 'gone' || res.destroyed) return;
      // At the deadline, and after a restore, Consul answers with its last pass: no re-check.
      if (outcome !== 'woken') return this.answer(res, result);
    }
  }

  private answer(res: http.ServerResponse, result: PassResult): Promise<void> {
    const headers = {
      'X-Consul-Index': String(this.indexOverride ?? result.index),
      'X-Consul-KnownLeader': String(result.knownLeader),
      'X-Consul-LastContact': String(result.lastContactMs),
    };
    if (result.filtered) Object.assign(headers, { 'X-Consul-Results-Filtered-By-ACLs': 'true' });
    if (result.list !== undefined) {
      if (result.list.length === 0) return this.send(res, 404, '', headers);
      return this.send(res, 200, JSON.stringify(result.list.map(dirEntry)), headers);
    }
    const e = result.entry;
    if (!e) return this.send(res, 404, '', headers);
    return this.send(res, 200, JSON.stringify([dirEntry(e)]), headers);
  }

  private async handlePut(req: http.IncomingMessage, res: http.ServerResponse, url: URL, key: string, token: string | null): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (!(await this.holdForLeader(res, this.rpcHoldTimeoutMs))) return res.destroyed ? undefined : this.send(res, 500, 'No cluster leader');
    const denied = this.aclError(token, key, 'write');
    if (denied !== null) return this.send(res, 403, denied);
    const q = url.searchParams;
    const exclusive = ['cas', 'acquire', 'release'].filter((f) => q.has(f));
    if (exclusive.length > 1) return this.send(res, 400, `Conflicting flags: ${q.toString()}\n`);
    const prev = this.entries.get(key);
    if (q.has('cas')) {
      const cas = Number(q.get('cas'));
      const ok = cas === 0 ? prev === undefined : prev?.modifyIndex === cas;
      if (!ok) return this.json(res, false);
    }
    if (q.has('acquire') && prev?.session && prev.session !== q.get('acquire')) return this.json(res, false);
    if (q.has('release') && prev?.session !== q.get('release')) return this.json(res, false);
    const opts: { session?: string; flags?: bigint } = {};
    if (q.has('flags')) opts.flags = BigInt(q.get('flags')!);
    if (q.has('acquire')) opts.session = q.get('acquire')!;
    this.put(key, Buffer.concat(chunks), opts);
    if (q.has('release')) this.entries.get(key)!.session = null;
    return this.json(res, true);
  }

  private async handleDelete(res: http.ServerResponse, key: string, token: string | null): Promise<void> {
    if (!(await this.holdForLeader(res, this.rpcHoldTimeoutMs))) return res.destroyed ? undefined : this.send(res, 500, 'No cluster leader');
    const denied = this.aclError(token, key, 'write');
    if (denied !== null) return this.send(res, 403, denied);
    this.delete(key);
    return this.json(res, true);
  }

  private json(res: http.ServerResponse, v: unknown): Promise<void> {
    return this.send(res, 200, JSON.stringify(v), { 'content-type': 'application/json' });
  }
}
