// A Consul stand-in for tests: a real HTTP server on 127.0.0.1 serving the part of Consul's
// HTTP API the Consul leader source uses. Consul cannot be installed here. It follows:
// - api-docs/kv.mdx ("Read Key", "Create/Update Key", "Delete Key"): GET/PUT/DELETE
//   /v1/kv/<key>; GET answers a JSON array of {LockIndex, Key, Flags, Value (base64, null when
//   written with an empty body), Session (only when set), CreateIndex, ModifyIndex}, 404 with an
//   empty body for a missing key; PUT/DELETE answer `true`; ?flags, ?cas, ?acquire, ?release.
// - api-docs/features/blocking.mdx: X-Consul-Index on every KV read answer (200 and 404),
//   ?index=&wait= blocking (wait as a Go duration such as "10s"/"5m"/"1500ms", default 5m,
//   capped at 10m, plus random jitter up to wait/16); an answer returns as soon as the result's
//   index exceeds ?index, or when the wait runs out.
// - Consul's server code for the details the documents leave open: agent/consul/kvs_endpoint.go
//   (a missing key reports the KV table's index, tombstones included, never 0: "Must provide
//   non-zero index to prevent blocking"), agent/blockingquery/blockingquery.go (the index check,
//   a consistent-read leader check on every pass of the loop, and an immediate return when a
//   snapshot restore abandons the state store), agent/http.go (403 for ACL errors with the
//   error's text; 500 with the text otherwise; X-Consul-KnownLeader, X-Consul-LastContact;
//   400 "Invalid wait time"/"Invalid index"; ?stale with ?consistent refused), acl/errors.go
//   ("ACL not found" for an unknown token; "Permission denied: anonymous token lacks permission
//   'key:read' on ..." without one), structs.ErrNoLeader ("No cluster leader").
// - api-docs/features/consistency.mdx: ?consistent and the default mode need a leader; ?stale
//   is served without one (X-Consul-KnownLeader: false).
//
// Differences from a real Consul, on purpose or for simplicity:
// - One node: no servers/clients split, no RPC forwarding, so "No cluster leader" is answered
//   at once (a real client agent first holds the request up to rpc_hold_timeout, 7 s).
// - A blocking query on a key is woken by any KV write and re-checked (Consul's radix-tree
//   watches wake it less often); the returned index follows Consul's rules, so a wake-up that
//   changes nothing for the key does not answer unless the (table) index moved past ?index.
// - Sessions are not modelled: ?acquire always succeeds and nothing invalidates a lock.
// - ACL: one configured token may read and write everything; no policies, no ?token= masking.
// - Error answers carry no X-Consul-Index (as in Consul, which sets the index headers only
//   after a successful read).
// Optionally served over HTTPS (with client-certificate checks), as Consul's https port is.
// Test controls: setNoLeader(), snapshot()/restore() and resetIndex() (the index goes
// backwards), overrideIndexHeader() (the zero-index bug of some older Consul versions),
// stop()/start() on the same port, and a log of every request.
import { randomInt } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

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
  readonly at: number;
  status: number | null;
}

export interface ConsulSnapshot {
  readonly raftIndex: number;
  readonly kvIndex: number;
  readonly entries: ReadonlyMap<string, StandinEntry>;
}

export interface ConsulStandinOptions {
  /** When set, ACLs are on with default deny: only this token may read and write. */
  token?: string;
  /** Raft index to start from (a fresh Consul has done some internal writes already). */
  initialIndex?: number;
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** Address to listen on (default 127.0.0.1), e.g. a test LAN's switch address. */
  host?: string;
  /** Serve HTTPS (Consul's https port) with this certificate; `ca` + requestCert for mTLS. */
  tls?: { key: Buffer; cert: Buffer; ca?: Buffer; requestCert?: boolean };
}

const DEFAULT_WAIT_MS = 5 * 60_000;
const MAX_WAIT_MS = 10 * 60_000;
const JITTER_FRACTION = 16;

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

export class ConsulStandin {
  readonly requests: RecordedRequest[] = [];
  private server: http.Server;
  private portNumber = 0;
  private raftIndex: number;
  /** Highest index of any KV write or delete (Consul's kvsMaxIndex: table plus tombstones). */
  private kvIndex: number;
  private entries = new Map<string, StandinEntry>();
  private waiters = new Set<(abandoned: boolean) => void>();
  private noLeader = false;
  private indexOverride: number | null = null;

  private constructor(private readonly opts: ConsulStandinOptions) {
    this.raftIndex = opts.initialIndex ?? 10;
    this.kvIndex = 0;
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

  // ---- data, bypassing HTTP and ACLs ----

  put(key: string, value: string | Buffer | null, opts: { session?: string; flags?: bigint } = {}): number {
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
    const index = ++this.raftIndex;
    this.entries.delete(key);
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

  // ---- fault controls ----

  /** While on, ?consistent and default reads fail with 500 "No cluster leader"; ?stale is served. */
  setNoLeader(on: boolean): void {
    this.noLeader = on;
    this.wake(false); // blocking queries re-check leadership on their next pass, as Consul's do
  }

  snapshot(): ConsulSnapshot {
    return { raftIndex: this.raftIndex, kvIndex: this.kvIndex, entries: new Map([...this.entries].map(([k, e]) => [k, { ...e }])) };
  }

  /** A snapshot restore: the state (and with it the index) goes back; blocking queries return. */
  restore(snap: ConsulSnapshot): void {
    this.raftIndex = snap.raftIndex;
    this.kvIndex = snap.kvIndex;
    this.entries = new Map([...snap.entries].map(([k, e]) => [k, { ...e }]));
    this.wake(true);
  }

  /** Keeps the data but renumbers it from `to` downwards: every index goes backwards. */
  resetIndex(to = 2): void {
    this.raftIndex = to;
    this.kvIndex = Math.min(this.kvIndex, to);
    for (const e of this.entries.values()) {
      e.createIndex = Math.min(e.createIndex, to);
      e.modifyIndex = Math.min(e.modifyIndex, to);
    }
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
    this.wake(true);
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
        if (!res.headersSent) this.reply(res, 500, String(e));
      });
    };
    const t = this.opts.tls;
    const server = t
      ? https.createServer({ key: t.key, cert: t.cert, ca: t.ca, requestCert: t.requestCert ?? false, rejectUnauthorized: t.requestCert ?? false }, handler)
      : http.createServer(handler);
    server.keepAliveTimeout = 5_000; // Go's net/http keeps idle connections too
    return server;
  }

  private wake(abandoned: boolean): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w(abandoned);
  }

  private reply(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
    res.end(body);
  }

  private aclError(token: string | null, key: string): string | null {
    if (this.opts.token === undefined) return null;
    if (token === null || token === '') {
      return `Permission denied: anonymous token lacks permission 'key:read' on "${key}". The anonymous token is used implicitly when a request does not specify a token.`;
    }
    return token === this.opts.token ? null : 'ACL not found';
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://standin');
    const token = url.searchParams.get('token') ?? (req.headers['x-consul-token'] as string | undefined) ?? null;
    const rec: RecordedRequest = {
      method: req.method ?? 'GET',
      key: url.pathname.startsWith('/v1/kv/') ? decodeURIComponent(url.pathname.slice('/v1/kv/'.length)) : url.pathname,
      query: url.searchParams,
      index: url.searchParams.get('index') ?? '',
      token,
      at: performance.now(),
      status: null,
    };
    this.requests.push(rec);
    res.on('finish', () => { rec.status = res.statusCode; });
    if (!url.pathname.startsWith('/v1/kv/')) return this.reply(res, 404, '');
    const key = rec.key;
    if (key === '') return this.reply(res, 400, 'Missing key name');
    const acl = this.aclError(token, key);
    if (acl !== null) return this.reply(res, 403, acl);
    switch (req.method) {
      case 'GET': return this.handleGet(res, url, key);
      case 'PUT': return this.handlePut(req, res, url, key);
      case 'DELETE': return this.handleDelete(res, key);
      default: return this.reply(res, 405, `method ${req.method} not allowed`);
    }
  }

  private async handleGet(res: http.ServerResponse, url: URL, key: string): Promise<void> {
    const q = url.searchParams;
    let waitMs = DEFAULT_WAIT_MS;
    if (q.get('wait')) {
      const d = parseGoDuration(q.get('wait')!);
      if (d === null) return this.reply(res, 400, 'Invalid wait time');
      waitMs = Math.min(d, MAX_WAIT_MS);
    }
    let minIndex = 0;
    if (q.get('index')) {
      if (!/^\d+$/.test(q.get('index')!)) return this.reply(res, 400, 'Invalid index');
      minIndex = Number(q.get('index'));
    }
    const stale = q.has('stale');
    if (stale && q.has('consistent')) return this.reply(res, 400, 'Cannot specify ?stale with ?consistent, conflicting semantics.');

    if (minIndex > 0) {
      // res 'close' fires when the client goes away (or the answer is done): stop waiting then.
      let gone = false;
      let stopWaiting: (() => void) | null = null;
      res.once('close', () => { gone = true; stopWaiting?.(); });
      const deadline = performance.now() + (waitMs > 0 ? waitMs : DEFAULT_WAIT_MS) + randomInt(Math.floor(waitMs / JITTER_FRACTION) + 1);
      for (;;) {
        if (this.noLeader && !stale) return this.reply(res, 500, 'No cluster leader');
        if (this.indexFor(key) > minIndex) break;
        const left = deadline - performance.now();
        if (left <= 0) break;
        const abandoned = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => { this.waiters.delete(w); resolve(false); }, left);
          const w = (ab: boolean) => { clearTimeout(timer); resolve(ab); };
          this.waiters.add(w);
          stopWaiting = () => { clearTimeout(timer); this.waiters.delete(w); resolve(false); };
        });
        stopWaiting = null;
        if (gone || res.destroyed) return;
        if (abandoned) break;
      }
    }
    if (this.noLeader && !stale) return this.reply(res, 500, 'No cluster leader');
    this.answerRead(res, key);
  }

  private answerRead(res: http.ServerResponse, key: string): void {
    const e = this.entries.get(key);
    const index = this.indexOverride ?? this.indexFor(key);
    const headers = {
      'X-Consul-Index': String(index),
      'X-Consul-KnownLeader': String(!this.noLeader),
      'X-Consul-LastContact': '0',
    };
    if (!e) {
      res.writeHead(404, headers);
      res.end();
      return;
    }
    const body: Record<string, unknown> = {
      LockIndex: e.lockIndex,
      Key: e.key,
      Flags: Number(e.flags),
      Value: e.value === null ? null : e.value.toString('base64'),
    };
    if (e.session) body.Session = e.session;
    body.CreateIndex = e.createIndex;
    body.ModifyIndex = e.modifyIndex;
    res.writeHead(200, { ...headers, 'content-type': 'application/json' });
    res.end(JSON.stringify([body]));
  }

  private async handlePut(req: http.IncomingMessage, res: http.ServerResponse, url: URL, key: string): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (this.noLeader) return this.reply(res, 500, 'No cluster leader');
    const q = url.searchParams;
    const exclusive = ['cas', 'acquire', 'release'].filter((f) => q.has(f));
    if (exclusive.length > 1) return this.reply(res, 400, `Conflicting flags: ${q.toString()}\n`);
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
    this.json(res, true);
  }

  private handleDelete(res: http.ServerResponse, key: string): void {
    if (this.noLeader) return this.reply(res, 500, 'No cluster leader');
    this.delete(key);
    this.json(res, true);
  }

  private json(res: http.ServerResponse, v: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(v));
  }
}
