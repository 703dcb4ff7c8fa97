// The Consul side of a DCS session (dcs/session.ts): ONE query loop, on one HTTP client, serves
// every subject the daemon's entries need: leader keys (keySource) and Patroni cluster prefixes
// for the role VIPs (prefixSource). With exactly one leader key and no prefix the loop is the
// single-key blocking query vip-manager always made (/v1/kv/<key>?consistent&index&wait); with
// more it is one recursive blocking query (?recurse) over the longest common prefix of all
// subjects, demultiplexed: a key source reports only when its own key changed (value or
// ModifyIndex) or after an outage, a prefix source only when a key under its prefix did. A
// subject added or removed (a reload) restarts the loop, on the new prefix where it changed.
//
// Consul's rules for a recursive read (agent/consul/kvs_endpoint.go List, state KVSList): the
// answer's index is the highest ModifyIndex under the prefix or of a tombstone there (so a
// delete moves it), else the whole KV table's; a write anywhere under the prefix ends a parked
// query, a write elsewhere does not. Keys the token may not read are left out instead of
// refused: so a key subject missing from an answer is confirmed with a single-key read, which
// tells "absent" (404) from "refused" (403, reported as today's ConsulAclError); a prefix
// subject whose keys were filtered (X-Consul-Results-Filtered-By-ACLs) counts as unreadable.
//
// A parked blocking query learns nothing about leadership: Consul verifies it only when a pass
// of its loop starts, so an agent that lost its servers answers at wait + jitter with the old
// value, and one cut off silently never answers. So while a query is parked, a leader check (a
// non-blocking ?consistent read of the same key or prefix) runs every `interval`: if it fails
// or does not answer within its deadline, the outage is reported to every subject at once and
// the parked query abandoned; if it sees other data than the parked query waits on, or an
// index that went backwards (a snapshot restore answers parked queries with the pre-restore
// state), the watch restarts. The check needs a second connection while the query is parked
// (HTTP/1.1 has one request per connection at a time): two kept-alive connections in all,
// however many subjects.
//
// No lease deadline: Patroni binds its leader key in Consul to a session with a TTL, but
// neither the key nor the session says when the session was last renewed, and Consul may
// invalidate it anywhere between TTL and 2×TTL after that renewal. Having seen the key at time
// t only proves the session was alive at t, not that it will be a moment later, so there is no
// sound deadline to hold a VIP to (providesLeaseDeadline = false).
import type { Logger } from '../../log.js';
import { Backoff } from '../../backoff.js';
import { ConsulAclError, ConsulAclFilteredError, ConsulLeaderCheckError } from './errors.js';
import { CHURN_BURST, CHURN_REFILL_MS, nextIndex, TokenBucket } from './blocking-index.js';
import {
  ERROR_BODY_CHARS, interpretKvAnswer, interpretListAnswer, kvLocation, listLocation, type KvList, type KvLocation, type KvRead, type ListLocation,
} from './kv.js';
import {
  ACL_NOT_FOUND_TOLERANCE, ACL_RETRY_MS, ANSWER_MARGIN_MS, blockingTimeoutMs, blockingWaitMs, CONNECT_TIMEOUT_MS, leaderCheckPeriodMs,
  leaderCheckTimeoutMs, LIST_MAX_BODY_BYTES, MAX_BODY_BYTES,
} from './timing.js';
import { displayEndpoint, FailoverHttpClient, RequestAbortedError, type HttpAnswer, type Query, type TlsFiles } from '../http-client.js';
import { leaderValue } from '../leader-value.js';
import type { LeaderSource, LeaderValue, LeaderView } from '../../reconcile/ports.js';
import type { DcsBackend } from '../session.js';
import type { KeySetSource, KeySetUnreachable, KeySetValue, KeySetView, KeyValue } from '../key-set.js';
import { ViewTracker } from '../view-tracker.js';

/** How to reach Consul: everything of ConsulSourceOptions but the key and the logger. */
export interface ConsulBackendOptions {
  endpoints: readonly string[];
  /** Sent as X-Consul-Token; never logged. */
  token?: string | undefined;
  tls: TlsFiles;
  intervalMs: number;
  retryAfterMs: number;
  retryNum: number;
}

/** What the loop reads: one key, or every key under a prefix. */
type Target =
  | { readonly mode: 'key'; readonly location: KvLocation }
  | { readonly mode: 'list'; readonly location: ListLocation };

type Read = KvRead | KvList;

interface Parked {
  /** Aborts the parked request; the watch loop then starts over with a plain read. */
  readonly abort: AbortController;
  readonly target: Target;
  /** The endpoint it was sent to first (displayEndpoint form, as HttpAnswer.endpoint). */
  readonly endpoint: string;
  /** The index it waits on. */
  readonly index: bigint;
  /** What the answer it follows said about the subjects (identity). */
  readonly identity: string;
}

interface KeySubject {
  readonly kind: 'key';
  readonly location: KvLocation;
  readonly tracker: ViewTracker;
  /** Refused by a single-key read after a recursive answer left it out (list mode only). */
  denied: { error: ConsulAclError; at: number; logged: string } | null;
  /** When a single-key read last confirmed it absent (list mode): a 404, not a refusal. */
  absentConfirmedAt: number | null;
}

interface PrefixSubject {
  readonly kind: 'prefix';
  readonly location: ListLocation;
  /** The prefix as configured (a leading '/' kept): the keys of its views are written alike. */
  readonly configured: string;
  readonly tracker: KeySetTracker;
  denied: { error: ConsulAclError; at: number; logged: string } | null;
  /** When a recursive read of this prefix alone last showed nothing filtered. */
  cleanAt: number | null;
}

type Subject = KeySubject | PrefixSubject;

/**
 * Consul answers that mean "this agent cannot serve now, ask another": any 5xx (500 "No cluster
 * leader", "No known Consul servers"...), 429 (rate limited), or an answer that admits to not
 * knowing a leader (cannot happen with ?consistent, checked anyway since it would be stale).
 */
function rejectAnswer(answer: HttpAnswer): string | null {
  if (answer.status >= 500 || answer.status === 429) {
    const text = answer.body.toString('utf8').trim().slice(0, ERROR_BODY_CHARS);
    return `HTTP ${answer.status}${text ? `: ${text}` : ''}`;
  }
  if (answer.status === 200 && answer.headers['x-consul-knownleader'] === 'false') return 'answered without a known cluster leader';
  return null;
}

/** The longest common (string) prefix: Consul's ?recurse matches by string prefix, not by path. */
export function commonPrefix(keys: readonly string[]): string {
  if (keys.length === 0) return '';
  let p = keys[0]!;
  for (const k of keys.slice(1)) {
    let i = 0;
    while (i < p.length && i < k.length && p[i] === k[i]) i++;
    p = p.slice(0, i);
  }
  return p;
}

/** What the loop must read for these subjects (null: nothing). */
function targetFor(subjects: Iterable<Subject>): Target | null {
  const keys = new Map<string, KvLocation>();
  const prefixes: string[] = [];
  for (const s of subjects) {
    if (s.kind === 'key') keys.set(s.location.key, s.location);
    else prefixes.push(s.location.prefix);
  }
  if (keys.size === 0 && prefixes.length === 0) return null;
  if (prefixes.length === 0 && keys.size === 1) return { mode: 'key', location: [...keys.values()][0]! };
  return { mode: 'list', location: listLocation(commonPrefix([...keys.keys(), ...prefixes])) };
}

function sameTarget(a: Target | null, b: Target | null): boolean {
  return a === b || (a !== null && b !== null && a.mode === b.mode && a.location.path === b.location.path);
}

/** What matters for "changed": value and ModifyIndex, or absence (whose index moves on unrelated writes). */
function identityOf(read: KvRead): string {
  return read.kind === 'found' ? `found:${read.modifyIndex}:${read.value.toString('base64')}` : 'absent';
}

function entryIdentity(key: string, e: { value: Buffer; modifyIndex: bigint }): string {
  return `${key}\u0000${e.modifyIndex}\u0000${e.value.toString('base64')}`;
}

/** Same outage semantics as ViewTracker (view-tracker.ts), for key sets. */
export class KeySetTracker {
  private lastValue: KeySetValue | null = null;
  private lastKey: string | null = null;
  private outage: { since: number; failures: number } | null = null;
  private everAnswered = false;

  constructor(private readonly emit: (view: KeySetView) => void) {}

  /** Returns whether the view was emitted (the set changed, or it is the first after an outage). */
  value(view: KeySetValue, sameKey: string): boolean {
    const changed = this.outage !== null || !this.everAnswered || sameKey !== this.lastKey;
    this.outage = null;
    this.everAnswered = true;
    this.lastKey = sameKey;
    this.lastValue = view;
    if (changed) this.emit(view);
    return changed;
  }

  failure(error: Error, at: number): KeySetUnreachable {
    if (this.outage === null) this.outage = { since: at, failures: 0 };
    this.outage.failures += 1;
    const view: KeySetUnreachable = { kind: 'unreachable', since: this.outage.since, error, failures: this.outage.failures, last: this.lastValue };
    this.emit(view);
    return view;
  }
}

/** A key source or prefix source: started and closed by the session, served by the backend's loop. */
class SubjectHandle<V> {
  private subject: Subject | null = null;

  constructor(private readonly backend: ConsulBackend, private readonly make: (onView: (v: V) => void) => Subject) {}

  start(onView: (view: V) => void): void {
    if (this.subject !== null) throw new Error('a Consul source was started twice');
    this.subject = this.make(onView);
    this.backend.add(this.subject);
  }

  close(): Promise<void> {
    if (this.subject !== null) this.backend.remove(this.subject);
    this.subject = null;
    return Promise.resolve();
  }
}

export class ConsulBackend implements DcsBackend {
  readonly kind = 'consul' as const;
  readonly providesLeaseDeadline = false;

  private readonly client: FailoverHttpClient;
  private readonly waitMs: number;
  private readonly limiter: TokenBucket;
  /**
   * Pacing after failures (transport errors, 5xx): retry-num retries retry-after apart, then
   * growing to backoff.ts's cap. While Consul is unreachable there is no lease to hold on to,
   * so the cap also bounds the VIP's extra downtime once Consul is back.
   */
  private readonly backoff: Backoff;
  private readonly checkPeriodMs: number;
  private readonly checkTimeoutMs: number;
  private readonly tokenSet: boolean;
  private readonly stopping = new AbortController();
  private readonly subjects = new Set<Subject>();
  private target: Target | null = null;
  private loop: Promise<void> | null = null;
  private checks: Promise<void> | null = null;
  /** Ends a pause of the watch loop early (a subject was added or removed, or closing). */
  private readonly wakers = new Set<() => void>();
  /** The request (and answer handling) of the watch loop in progress: a new target aborts it. */
  private inFlight: AbortController | null = null;
  /** The index the next request waits on; 0 means a plain (non-blocking) read. */
  private index = 0n;
  private aclErrorLogged: string | null = null;
  private aclNotFoundInARow = 0;
  /** The blocking query in flight, if any: what the leader check compares with and aborts. */
  private parked: Parked | null = null;
  /** What the last answer said about the subjects, for the leader check. */
  private lastIdentity = '';
  /** Failed attempts since the last answer; null before the first answer. */
  private failuresInARow: number | null = null;

  /** Throws on a configuration problem (unreadable TLS file), never later. */
  constructor(private readonly opts: ConsulBackendOptions, private readonly log: Logger) {
    this.waitMs = blockingWaitMs(opts.intervalMs);
    this.checkPeriodMs = leaderCheckPeriodMs(opts.intervalMs);
    this.checkTimeoutMs = leaderCheckTimeoutMs(opts.intervalMs);
    this.tokenSet = Boolean(opts.token);
    // Under churn (a key rewritten many times a second) degrade to a bounded read rate rather
    // than a busy loop; ordinary leader changes never wait (see blocking-index.ts).
    this.limiter = new TokenBucket(CHURN_BURST, CHURN_REFILL_MS);
    this.backoff = new Backoff({ initialMs: opts.retryAfterMs, flatRetries: opts.retryNum });
    this.client = new FailoverHttpClient({
      endpoints: opts.endpoints,
      tls: opts.tls,
      headers: opts.token ? { 'X-Consul-Token': opts.token } : {},
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      log,
    });
  }

  /** A source of one key's value. Throws when the key names no Consul key (empty after the leading '/'). */
  keySource(key: string): LeaderSource {
    const location = kvLocation(key);
    const handle = new SubjectHandle<LeaderView>(this, (onView) => ({
      kind: 'key', location, tracker: new ViewTracker(onView), denied: null, absentConfirmedAt: null,
    }));
    return {
      kind: 'consul',
      providesLeaseDeadline: false,
      start: (onView) => handle.start(onView),
      close: () => handle.close(),
    };
  }

  /** A source of every key under `prefix` (as configured: a leading '/' is kept in the views' keys). */
  prefixSource(prefix: string): KeySetSource {
    const location = listLocation(prefix);
    if (location.prefix === '') throw new Error(`prefix "${prefix}" names no Consul prefix (it would read every key in Consul)`);
    const configured = prefix;
    const handle = new SubjectHandle<KeySetView>(this, (onView) => ({
      kind: 'prefix', location, configured, tracker: new KeySetTracker(onView), denied: null, cleanAt: null,
    }));
    return { start: (onView) => handle.start(onView), close: () => handle.close() };
  }

  async close(): Promise<void> {
    this.stopping.abort();
    this.wake();
    this.client.close();
    await Promise.all([this.loop, this.checks]);
  }

  /** The keys and prefixes served now, as Consul stores them (for tests and the status page). */
  get watching(): { readonly mode: 'key' | 'list' | null; readonly path: string | null } {
    return { mode: this.target?.mode ?? null, path: this.target?.location.path ?? null };
  }

  /** @internal called by a started source. */
  add(subject: Subject): void {
    if (this.stopped) throw new Error('the Consul backend is closed');
    this.subjects.add(subject);
    if (this.loop === null) {
      this.loop = this.run().catch((e: unknown) => {
        this.log.error({ err: e }, 'Consul watch loop failed unexpectedly');
      });
      this.checks = this.checkLoop().catch((e: unknown) => {
        this.log.error({ err: e }, 'Consul leader check failed unexpectedly');
      });
    }
    // Even on the same target: the new subject needs an answer now, not when the parked query ends.
    this.retarget(true);
  }

  /** @internal called by a closed source. */
  remove(subject: Subject): void {
    if (!this.subjects.delete(subject)) return;
    this.retarget(false);
  }

  private retarget(added: boolean): void {
    const next = targetFor(this.subjects);
    const changed = !sameTarget(next, this.target);
    if (changed) {
      this.target = next;
      this.logTarget();
    }
    if (changed || added) {
      this.index = 0n;
      this.inFlight?.abort();
      this.wake();
    }
  }

  private logTarget(): void {
    const t = this.target;
    if (t === null) {
      this.log.debug('no Consul key to watch; the query loop idles');
      return;
    }
    const common = {
      endpoints: this.opts.endpoints.map(displayEndpoint), waitMs: this.waitMs, leaderCheckEveryMs: this.checkPeriodMs, leaderCheckTimeoutMs: this.checkTimeoutMs,
    };
    if (t.mode === 'key') {
      this.log.info({ key: t.location.key, ...common }, 'watching the leader key in Consul with blocking queries');
      return;
    }
    const subjects = [...this.subjects].map((s) => (s.kind === 'key' ? s.location.key : `${s.location.prefix}*`));
    this.log.info({ prefix: t.location.prefix, subjects: [...new Set(subjects)].sort(), ...common },
      'watching the Consul keys with one recursive blocking query on their common prefix');
    if (t.location.prefix === '') {
      this.log.warn({ subjects }, 'the watched Consul keys share no prefix: every key in Consul is read on each change; keep them under a shared prefix');
    }
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  /** Waits `ms` (Infinity: until woken); `wakeable`: a subject change or close ends it early. */
  private pause(ms: number, wakeable = true): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (timer !== undefined) clearTimeout(timer);
        this.wakers.delete(done);
        this.stopping.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      if (wakeable) this.wakers.add(done);
      this.stopping.signal.addEventListener('abort', done);
    });
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }

  private async run(): Promise<void> {
    // Sources are started one after another in the same tick (the daemon's entries, a reload):
    // let them all register before the first request, so it is made for all of them.
    await new Promise((resolve) => setImmediate(resolve));
    while (!this.stopped) {
      const target = this.target;
      if (target === null) {
        this.parked = null;
        await this.pause(Infinity);
        continue;
      }
      const delay = this.limiter.delayMs();
      if (delay > 0) {
        await this.pause(delay);
        continue;
      }
      this.limiter.take();
      const sentAt = performance.now();
      const abort = new AbortController();
      this.inFlight = abort;
      try {
        let read: Read;
        try {
          read = await this.read(target, abort);
        } finally {
          this.parked = null;
        }
        // Abandoned by the leader check or a new target just as it answered: the check may have
        // reported an outage this answer (an old pass, taken before the loss) must not cancel.
        if (!abort.signal.aborted) await this.onAnswer(target, read, sentAt, abort);
      } catch (e) {
        if (this.stopped) return;
        // Abandoned by the leader check (which has reported whatever it found) or by a new
        // target: start over with a plain read, which answers at once instead of waiting.
        if (!(e instanceof RequestAbortedError && abort.signal.aborted)) {
          if (e instanceof RequestAbortedError) return;
          // Dated when noticed, not when sent: a blocking read may have waited for seconds before
          // it failed, and an outage dated from its start would skip the retries release counts.
          await this.pause(this.onFailure(e as Error));
        }
      } finally {
        if (this.inFlight === abort) this.inFlight = null;
      }
      if (abort.signal.aborted) this.index = 0n;
    }
  }

  private query(target: Target, blocking: boolean): Query {
    const base: Query = target.mode === 'list' ? [['recurse', null], ['consistent', null]] : [['consistent', null]];
    return blocking ? [...base, ['index', this.index.toString()], ['wait', `${this.waitMs}ms`]] : base;
  }

  private interpret(target: Target, answer: HttpAnswer): Read {
    return target.mode === 'key'
      ? interpretKvAnswer(answer, target.location.key, this.tokenSet)
      : interpretListAnswer(answer, target.location.prefix, this.tokenSet, LIST_MAX_BODY_BYTES);
  }

  private async read(target: Target, abort: AbortController): Promise<Read> {
    const blocking = this.index > 0n;
    if (blocking) {
      this.parked = { abort, target, endpoint: displayEndpoint(this.client.currentEndpoint), index: this.index, identity: this.lastIdentity };
    }
    const answer = await this.client.request({
      path: target.location.path,
      query: this.query(target, blocking),
      timeoutMs: blocking ? blockingTimeoutMs(this.waitMs) : ANSWER_MARGIN_MS,
      maxBodyBytes: target.mode === 'list' ? LIST_MAX_BODY_BYTES : MAX_BODY_BYTES,
      rejectAnswer,
      signal: abort.signal,
    });
    return this.interpret(target, answer);
  }

  /** What an answer says about the subjects: a change of it is what the leader check restarts on. */
  private identityFor(target: Target, read: Read): string {
    if (read.kind !== 'list') return identityOf(read);
    const keys = new Set<string>();
    const prefixes: string[] = [];
    for (const s of this.subjects) {
      if (s.kind === 'key') keys.add(s.location.key);
      else prefixes.push(s.location.prefix);
    }
    const parts: string[] = [target.location.path];
    for (const [k, e] of read.entries) if (keys.has(k) || prefixes.some((p) => k.startsWith(p))) parts.push(entryIdentity(k, e));
    return parts.join('\u0001');
  }

  /**
   * Every checkPeriodMs while a blocking query is parked: one non-blocking consistent read of
   * what it watches (see the file header). Nothing runs while the watch loop itself is reading
   * plainly or backing off: then the loop's own requests are the probe.
   */
  private async checkLoop(): Promise<void> {
    let next = performance.now() + this.checkPeriodMs;
    while (!this.stopped) {
      await this.pause(next - performance.now(), false);
      if (this.stopped) return;
      next = performance.now() + this.checkPeriodMs;
      const parked = this.parked;
      if (parked === null) continue;
      let read: Read;
      let endpoint: string;
      try {
        const answer = await this.client.request({
          path: parked.target.location.path,
          query: this.query(parked.target, false),
          timeoutMs: this.checkTimeoutMs,
          maxBodyBytes: parked.target.mode === 'list' ? LIST_MAX_BODY_BYTES : MAX_BODY_BYTES,
          rejectAnswer,
          signal: parked.abort.signal,
        });
        endpoint = answer.endpoint;
        read = this.interpret(parked.target, answer);
      } catch (e) {
        // Aborted: closing, or the watch answered and was restarted meanwhile.
        if (this.stopped || e instanceof RequestAbortedError || this.parked !== parked) continue;
        // A 403 is for the watch loop to classify and report (its ACL pacing and logging).
        if (!(e instanceof ConsulAclError)) {
          const what = parked.target.mode === 'key' ? parked.target.location.key : parked.target.location.prefix;
          this.noteFailure(new ConsulLeaderCheckError(what, this.checkTimeoutMs, e as Error), 'leader check');
        }
        parked.abort.abort();
        continue;
      }
      if (this.parked !== parked) continue;
      const identity = this.identityFor(parked.target, read);
      const why = identity !== parked.identity ? 'the leader check read another value than the blocking query waits on'
        : nextIndex(0n, read.index).index < parked.index ? 'the Consul index went backwards (snapshot restore?)'
          : endpoint !== parked.endpoint ? 'the leader check was answered by another endpoint'
            : null;
      if (why !== null) {
        this.log.debug({ path: parked.target.location.path, waitedOn: parked.index.toString(), checked: read.index.toString() }, `restarting the blocking query: ${why}`);
        parked.abort.abort();
      }
    }
  }

  private async onAnswer(target: Target, read: Read, sentAt: number, abort: AbortController): Promise<void> {
    const next = nextIndex(this.index, read.index);
    if (next.wentBackwards) {
      this.log.warn({ waitedOn: this.index.toString(), returned: read.index.toString() },
        'Consul index went backwards (snapshot restore?); restarting the blocking loop');
    }
    this.index = next.index;
    this.backoff.reset();
    this.aclNotFoundInARow = 0;
    if (this.aclErrorLogged !== null) {
      this.log.info({ path: target.location.path }, 'Consul accepts the token again');
      this.aclErrorLogged = null;
    }
    const recovered = this.failuresInARow !== 0;
    this.failuresInARow = 0;
    this.lastIdentity = this.identityFor(target, read);
    if (recovered) this.log.info({ path: target.location.path, endpoint: displayEndpoint(this.client.currentEndpoint) }, 'Consul answered');
    if (read.kind !== 'list') {
      // `at` is when the request was sent, as ports.ts asks: the answer became true somewhere
      // between sending and receiving (a blocking read may have waited up to `wait`), and with
      // ?consistent the leader verified itself at the start; the earlier time is the safe one.
      const view = leaderValue(read.kind === 'found' ? read.value : null,
        (read.kind === 'found' ? read.modifyIndex : read.index).toString(), sentAt, null);
      for (const s of this.subjects) if (s.kind === 'key') this.deliverKey(s, view, identityOf(read), read.index);
      return;
    }
    const confirm: KeySubject[] = [];
    const filteredPrefixes: PrefixSubject[] = [];
    for (const s of [...this.subjects]) {
      if (s.kind === 'key') {
        const e = read.entries.get(s.location.key);
        if (e === undefined) {
          confirm.push(s);
          continue;
        }
        s.absentConfirmedAt = null;
        this.deliverKey(s, leaderValue(e.value, e.modifyIndex.toString(), sentAt, null), identityOf({ kind: 'found', value: e.value, modifyIndex: e.modifyIndex, index: read.index, session: null }), read.index);
      } else if (read.filtered) {
        filteredPrefixes.push(s);
      } else {
        this.deliverSet(s, read, sentAt);
      }
    }
    // Then the subjects the answer cannot settle alone, one small read each (rare: a missing
    // leader key, or a token that may not read everything under the common prefix).
    for (const s of confirm) {
      if (abort.signal.aborted || !this.subjects.has(s)) return;
      await this.confirmAbsent(s, read, sentAt, abort);
    }
    for (const s of filteredPrefixes) {
      if (abort.signal.aborted || !this.subjects.has(s)) return;
      await this.checkFiltered(s, target, read, sentAt, abort);
    }
  }

  private deliverKey(s: KeySubject, view: LeaderValue, identity: string, index: bigint): void {
    if (s.denied !== null) {
      this.log.info({ key: s.location.key }, 'Consul lets the token read the key again');
      s.denied = null;
    }
    const result = s.tracker.value(view, identity);
    if (result.emitted) this.log.debug({ key: s.location.key, value: view.value, index: index.toString() }, 'leader key changed');
  }

  private deliverSet(s: PrefixSubject, read: KvList, sentAt: number): void {
    if (s.denied !== null) {
      this.log.info({ prefix: s.location.prefix }, 'Consul lets the token read every key under the prefix again');
      s.denied = null;
    }
    // Keys as configured: Consul's key with the configured leading '/' (if any) put back.
    const lead = s.configured.slice(0, s.configured.length - s.location.prefix.length);
    const kvs = new Map<string, KeyValue>();
    const parts: string[] = [];
    let max = -1n;
    for (const [k, e] of read.entries) {
      if (!k.startsWith(s.location.prefix)) continue;
      kvs.set(lead + k, { bytes: e.value, modRevision: e.modifyIndex.toString() });
      parts.push(entryIdentity(k, e));
      if (e.modifyIndex > max) max = e.modifyIndex;
    }
    // The set's own highest ModifyIndex, not the answer's index: every node reads the same number
    // for the same cluster state whatever else it watches (the common prefix differs with that).
    const revision = (max >= 0n ? max : read.index).toString();
    if (s.tracker.value({ kind: 'value', kvs, revision, at: sentAt }, parts.join('\u0001'))) {
      this.log.debug({ prefix: s.location.prefix, keys: kvs.size, revision }, 'keys under the prefix changed');
    }
  }

  /** A key the recursive answer left out: absent (404) or refused (403)? A single-key read tells. */
  private async confirmAbsent(s: KeySubject, list: KvList, sentAt: number, abort: AbortController): Promise<void> {
    const now = performance.now();
    const absent = leaderValue(null, list.index.toString(), sentAt, null);
    // Confirmed absent recently, or refused recently: the answer to a new read would not differ
    // unless the token's policy changed, which is looked at again every ACL_RETRY_MS.
    if (s.denied === null && s.absentConfirmedAt !== null && now - s.absentConfirmedAt < ACL_RETRY_MS) {
      this.deliverKey(s, absent, 'absent', list.index);
      return;
    }
    if (s.denied !== null && now - s.denied.at < ACL_RETRY_MS) return;
    const probeAt = performance.now();
    let read: KvRead;
    try {
      const answer = await this.client.request({
        path: s.location.path, query: [['consistent', null]], timeoutMs: ANSWER_MARGIN_MS, maxBodyBytes: MAX_BODY_BYTES, rejectAnswer, signal: abort.signal,
      });
      read = interpretKvAnswer(answer, s.location.key, this.tokenSet);
    } catch (e) {
      if (!(e instanceof ConsulAclError)) throw e;
      this.deny(s, e, s.location.key);
      return;
    }
    s.absentConfirmedAt = read.kind === 'absent' ? performance.now() : null;
    this.deliverKey(s, leaderValue(read.kind === 'found' ? read.value : null,
      (read.kind === 'found' ? read.modifyIndex : read.index).toString(), probeAt, null), identityOf(read), read.index);
  }

  /** The answer was filtered by ACLs: were keys under this prefix among those left out? */
  private async checkFiltered(s: PrefixSubject, target: Target, list: KvList, sentAt: number, abort: AbortController): Promise<void> {
    const now = performance.now();
    if (!this.tokenSet) {
      // Consul never says "filtered" to a request without a token; nothing to tell apart.
      this.deliverSet(s, list, sentAt);
      return;
    }
    if (s.denied !== null && now - s.denied.at < ACL_RETRY_MS) return;
    if (s.denied === null && s.cleanAt !== null && now - s.cleanAt < ACL_RETRY_MS) {
      this.deliverSet(s, list, sentAt);
      return;
    }
    let own = list;
    let endpoint = displayEndpoint(this.client.currentEndpoint);
    if (target.mode !== 'list' || target.location.prefix !== s.location.prefix) {
      const probeAt = performance.now();
      const answer = await this.client.request({
        path: s.location.path, query: [['recurse', null], ['consistent', null]], timeoutMs: ANSWER_MARGIN_MS, maxBodyBytes: LIST_MAX_BODY_BYTES, rejectAnswer, signal: abort.signal,
      });
      own = interpretListAnswer(answer, s.location.prefix, this.tokenSet, LIST_MAX_BODY_BYTES);
      endpoint = answer.endpoint;
      sentAt = probeAt;
    }
    if (own.filtered) {
      s.cleanAt = null;
      this.deny(s, new ConsulAclFilteredError(endpoint, s.location.prefix, this.tokenSet), s.location.prefix);
      return;
    }
    s.cleanAt = performance.now();
    this.deliverSet(s, own, sentAt);
  }

  /** One subject refused while the others are read: its own outage, logged once per message. */
  private deny(s: Subject, error: ConsulAclError, what: string): void {
    const logged = s.denied?.logged ?? null;
    s.denied = { error, at: performance.now(), logged: error.message };
    if (s.kind === 'key') s.absentConfirmedAt = null;
    const view = s.tracker.failure(error, performance.now());
    if (logged !== error.message) this.log.error({ err: error.message, subject: what, retryInMs: ACL_RETRY_MS }, 'Consul ACL error');
    else this.log.debug({ subject: what, failures: view.failures }, 'Consul ACL error persists');
  }

  /** Reports a failed attempt to every subject (and logs an outage's first failure). */
  private noteFailure(error: Error, by: string, retryInMs?: number): number {
    // The next answer must come at once to report recovery; a blocking read on the old index
    // would sit out the whole wait if nothing changed meanwhile. A plain read restarts the loop.
    this.index = 0n;
    const failures = (this.failuresInARow ?? 0) + 1;
    this.failuresInARow = failures;
    const at = performance.now();
    for (const s of [...this.subjects]) s.tracker.failure(error, at);
    if (error instanceof ConsulAclError) return failures;
    if (failures === 1) this.log.warn({ err: error.message, by, retryInMs }, 'Consul is unreachable');
    else this.log.debug({ err: error.message, by, failures, retryInMs }, 'Consul still unreachable');
    return failures;
  }

  /** Reports a failed read of the watch loop and returns how long to wait before the next one. */
  private onFailure(error: Error): number {
    if (error instanceof ConsulAclError) return this.onAclError(error, this.noteFailure(error, 'watch'));
    const delay = this.backoff.next();
    this.noteFailure(error, 'watch', delay);
    return delay;
  }

  private onAclError(error: ConsulAclError, failures: number): number {
    this.aclNotFoundInARow = error.tokenNotFound ? this.aclNotFoundInARow + 1 : 0;
    const transient = error.tokenNotFound && this.aclNotFoundInARow <= ACL_NOT_FOUND_TOLERANCE;
    const delay = transient ? this.backoff.next() : ACL_RETRY_MS;
    // Logged once per distinct message: a wrong token would otherwise fill the journal.
    if (this.aclErrorLogged !== error.message) {
      this.log.error({ err: error.message, retryInMs: delay }, 'Consul ACL error');
      this.aclErrorLogged = error.message;
    } else {
      this.log.debug({ failures, retryInMs: delay }, 'Consul ACL error persists');
    }
    return delay;
  }
}

/** The Consul backend of a DCS session: one query loop (one HTTP client) for every key and prefix. */
export function createConsulBackend(opts: ConsulBackendOptions, log: Logger): ConsulBackend {
  return new ConsulBackend(opts, log);
}
