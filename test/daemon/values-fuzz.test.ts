// Fuzz test of DCS values against the running daemon and a real etcd: random byte strings
// (empty, ~1 MiB, invalid UTF-8, control characters, and values near the trigger-value: a byte
// changed, a trailing NUL/space/newline, another Unicode normalisation, a BOM) are written to
// the leader key one at a time. After each has settled, the VIP is on the node exactly when the
// value is byte for byte the trigger-value, and every log line and the /status document stay
// under fixed bounds. Then ten 1 MiB values in a row must leave /status small and /healthz and
// /status answering 100 concurrent callers at once.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { DISPLAY_MAX_CHARS } from '../../src/dcs/leader-value.js';
import { hasVip, type Daemon } from '../harness/daemon.js';
import { get, HTTP_PORT, spawnOn, type StatusJson } from '../ops-daemon/scrape.js';
import { createBed, KEY, VIP4, type Bed } from './bed.js';
import { settledAt } from './values-settle.js';

/** Non-ASCII on purpose: normalisation and multi-byte characters are part of what is fuzzed. */
const TRIGGER = 'nœud-é1';
const EXACT = Buffer.from(TRIGGER, 'utf8');
const V4 = `${VIP4}/24`;
/** Every log line (JSON) stays under this; the value alone used to be copied whole (1 MiB). */
const LOG_LINE_MAX = 4096;
/** The whole /status document stays under this (it used to grow by the value's size per change). */
const STATUS_MAX = 48 * 1024;
/** Settled values per run: bounded count, so the file's time is bounded too. */
const RUNS = 60;
const MIB = 1_048_576;

const cat = (...parts: Array<Buffer | string | number[]>) =>
  Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

/** A value that fast-check reports as short hex, not as a million numbers. */
interface Sample {
  readonly bytes: Buffer;
  readonly [fc.toStringMethod]: () => string;
}
const sample = (bytes: Buffer): Sample => ({ bytes, [fc.toStringMethod]: () => `Buffer ${hex(bytes)}` });

/** Values an operator's typo, a buggy writer or a hostile one might leave in the key. */
function values(): fc.Arbitrary<Sample> {
  const near = fc.oneof(
    // one byte changed (to anything, invalid UTF-8 included)
    fc.record({ i: fc.nat({ max: EXACT.length - 1 }), x: fc.integer({ min: 1, max: 255 }) })
      .map(({ i, x }) => Buffer.from(EXACT.map((c, j) => (j === i ? c ^ x : c)))),
    fc.constantFrom<number[] | string>([0], ' ', '\n', '\r\n', '\t', [0xff], [0xc3]).map((s) => cat(EXACT, s)),
    fc.constantFrom<number[] | string>([0xef, 0xbb, 0xbf], ' ', [0]).map((p) => cat(p, EXACT)),
    fc.constant(cat(TRIGGER.normalize('NFD'))),
    fc.constant(cat(TRIGGER.toUpperCase())),
    fc.constant(EXACT.subarray(0, EXACT.length - 1)),
  );
  return fc.oneof(
    { arbitrary: fc.constant(EXACT), weight: 3 },
    { arbitrary: near, weight: 4 },
    { arbitrary: fc.constant(Buffer.alloc(0)), weight: 1 },
    { arbitrary: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)), weight: 2 },
    { arbitrary: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a.map((x) => x % 32))), weight: 1 }, // control characters
    // ~1 MiB: the trigger-value as prefix, then filler (some fillers are invalid UTF-8)
    { arbitrary: fc.integer({ min: 0, max: 255 }).map((fill) => cat(EXACT, Buffer.alloc(MIB - EXACT.length - (fill % 7), fill))), weight: 1 },
  ).map(sample);
}

const hex = (b: Buffer) => (b.length > 40 ? `${b.subarray(0, 40).toString('hex')}… (${b.length} bytes)` : b.toString('hex'));

describe('daemon: DCS values are compared byte for byte, and shown bounded', { concurrency: false }, () => {
  let bed: Bed;
  let d: Daemon;
  let host: string;
  before(async () => {
    bed = await createBed();
    host = bed.nodes[0].ipv4;
    await bed.kv.put(KEY).value('nobody');
    d = await spawnOn(bed, 0, { extra: ['--trigger-value', TRIGGER, '--http-listen', `${host}:${HTTP_PORT}`, '--verbose'] });
  });
  after(async () => { await bed?.dispose(); });

  /** Writes `value`, waits until the daemon has acted on it; /status must be small. */
  async function settle(value: Buffer): Promise<StatusJson> {
    const put = await bed.kv.put(KEY).value(value).exec();
    const { status, body } = await settledAt(host, put.header.revision);
    assert.ok(Buffer.byteLength(body) < STATUS_MAX, `/status is ${Buffer.byteLength(body)} bytes`);
    return status;
  }

  test(`${RUNS} random values: VIP held iff the value is byte for byte the trigger-value; logs and /status bounded`, async (t) => {
    let matches = 0;
    await fc.assert(fc.asyncProperty(values(), async ({ bytes: value }) => {
      const ours = value.equals(EXACT);
      if (ours) matches++;
      const s = await settle(value);
      const what = `value ${hex(value)}`;
      assert.equal(hasVip(bed.nodes[0].ns, V4), ours, `${what}: VIP ${ours ? 'missing' : 'taken'}`);
      assert.equal(s.leader?.isThisNode, ours, `${what}: /status isThisNode`);
      assert.equal(s.vip.held, ours, `${what}: /status vip.held`);
      assert.ok((s.leader?.value ?? '').length <= DISPLAY_MAX_CHARS, `${what}: /status shows ${s.leader?.value?.length} characters`);
      if (value.length > 64) assert.match(s.leader!.value!, new RegExp(`\\(${value.length} bytes(, not valid UTF-8)?, sha256 [0-9a-f]{12}\\)$`));
    }), { numRuns: RUNS, endOnFailure: true, includeErrorInReport: true });
    assert.ok(matches > 0, 'the generator produced the exact value at least once');
    const released = d.transitions().filter((t) => t.transition === 'release').length;
    assert.ok(released > 0 && d.transitions().some((t) => t.transition === 'acquire'), 'the VIP moved both ways');

    const lines = d.logs.map((r) => Buffer.byteLength(JSON.stringify(r)));
    const longest = Math.max(...lines, ...d.rawLines.map((l) => Buffer.byteLength(l)));
    t.diagnostic(`${d.logs.length} log lines, longest ${longest} bytes; ${matches} of ${RUNS} values were the trigger-value`);
    assert.ok(longest < LOG_LINE_MAX, `longest log line ${longest} bytes:\n${d.logs.find((r) => Buffer.byteLength(JSON.stringify(r)) === longest)?.msg}`);
    // Debug lines quote the value: summarised, never whole.
    assert.ok(d.logs.some((r) => typeof r.value === 'string' && /\(\d+ bytes, (not valid UTF-8, )?sha256 /.test(r.value)), 'some summarised value was logged');
  });

  test('ten 1 MiB values: /status stays small; 100 concurrent /status and /healthz all answer', async (t) => {
    for (let i = 0; i < 10; i++) {
      const s = await settle(cat(EXACT, Buffer.alloc(MIB, 0x61 + i)));
      assert.equal(s.vip.held, false);
    }
    const started = performance.now();
    const replies = await Promise.all([
      ...Array.from({ length: 100 }, () => get(host, '/status', 10_000)),
      ...Array.from({ length: 20 }, () => get(host, '/healthz', 10_000)),
    ]);
    const tookMs = performance.now() - started;
    t.diagnostic(`120 concurrent requests answered in ${Math.round(tookMs)} ms`);
    for (const r of replies) assert.equal(r.status, 200, r.body.slice(0, 200));
    const biggest = Math.max(...replies.map((r) => Buffer.byteLength(r.body)));
    assert.ok(biggest < STATUS_MAX, `biggest body ${biggest} bytes`);
    // Measured about 0.3 s on 2 cores (it was over 15 s with the value copied whole).
    assert.ok(tookMs < 5000, `120 concurrent requests took ${Math.round(tookMs)} ms`);
    const status = JSON.parse(replies[0]!.body) as StatusJson;
    assert.ok(status.transitions.every((t) => t.value === null || t.value.length <= DISPLAY_MAX_CHARS), 'transition values bounded');
  });
});
