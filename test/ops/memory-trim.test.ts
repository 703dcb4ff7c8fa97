import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { parseSmaps, trimRefusal, trimMemory } from '../../src/ops/memory-trim.js';

// Shaped after a real daemon's /proc/PID/smaps (Linux 6.18), one mapping of each kind; counters
// a test does not need are left out, as smaps itself leaves out some on older kernels.
function mapping(header: string, kb: Record<string, number>, flags: string): string {
  return [header, ...Object.entries(kb).map(([k, v]) => `${`${k}:`.padEnd(16)}${String(v).padStart(8)} kB`), `VmFlags: ${flags} `].join('\n');
}
const NODE = '/usr/lib/vip-manager/node';
const K = (rss: number, anon = 0, swap = 0) => ({ Size: 4096, Rss: rss, Pss: rss, Anonymous: anon, Swap: swap });
const SAMPLE = [
  // Trimmable: the binary's ELF headers + read-only data, and its code.
  mapping(`00400000-0074d000 r--p 00000000 fe:00 2187712                            ${NODE}`, K(3372), 'rd mr mw me sd'),
  mapping(`0074d000-03081000 r-xp 0034d000 fe:00 2187712                            ${NODE}`, K(23060), 'rd ex mr mw me sd'),
  // RELRO: read-only now, but the dynamic linker wrote relocations into it (copy-on-write pages).
  mapping(`06b83000-06b87000 r--p 06782000 fe:00 2187712                            ${NODE}`, K(16, 8), 'rd mr mw me ac sd'),
  // .data/.bss: writable.
  mapping(`06b87000-06bae000 rw-p 06786000 fe:00 2187712                            ${NODE}`, K(156, 140), 'rd wr mr mw me ac sd'),
  mapping('3698d000-36e86000 rw-p 00000000 00:00 0                                  [heap]', K(4828, 4828), 'rd wr mr mw me ac sd'),
  mapping('83df900000-83df940000 rw-p 00000000 00:00 0 ', K(256, 256), 'rd wr mr mw me ac sd'),
  mapping('7f7c4b800000-7f7c6b580000 rwxp 00000000 00:00 0 ', K(892, 892), 'rd wr ex mr mw me ac sd'),
  // V8's embedded builtins, remapped from the binary next to its code range: trimmable.
  mapping(`7f1471d80000-7f1471f85000 r-xp 01653000 fe:00 2187712                    ${NODE}`, K(2048), 'rd ex mr mw me sd'),
  // A clean-looking text page whose copy-on-write copy went to swap: Anonymous says 0, Swap does not.
  mapping('7f1491022000-7f1491178000 r-xp 00026000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6', K(1144, 0, 4), 'rd ex mr mw me sd'),
  mapping('7f1491200000-7f1491300000 r--s 00000000 fe:00 339999                     /var/lib/some/shared.db', K(64), 'rd mr me ms sd'),
  mapping('7f1491300000-7f1491400000 r--p 00000000 fe:00 340000                     /usr/lib/locked.so', K(64), 'rd mr mw me lo sd'),
  mapping('7f1491400000-7f1491500000 r--p 00000000 00:01 4242                       /memfd:jit (deleted)', K(64), 'rd mr mw me sd'),
  mapping('7f1491500000-7f1491600000 r-xp 00000000 fe:00 340001                     /usr/lib/old/libfoo.so (deleted)', K(64), 'rd ex mr mw me sd'),
  mapping('7f1491600000-7f1491700000 r--p 00000000 fe:00 340002                     /usr/lib/cold.so', K(0), 'rd mr mw me sd'),
  mapping('7f1491700000-7f1491800000 r--p 00000000 00:05 4                          /dev/some-device', K(64), 'rd mr mw me io pf sd'),
  // No Anonymous counter: an unfamiliar format is never guessed at.
  mapping('7f1491800000-7f1491900000 r--p 00000000 fe:00 340003                     /usr/lib/odd.so', { Rss: 64, Swap: 0 }, 'rd mr mw me sd'),
  mapping('7ffebb590000-7ffebb592000 r-xp 00000000 00:00 0                          [vdso]', K(8), 'rd ex mr mw me de sd'),
].join('\n') + '\n';

const TRIMMABLE = [
  { start: 0x00400000n, len: 0x0074d000n - 0x00400000n, rss: 3372 },
  { start: 0x0074d000n, len: 0x03081000n - 0x0074d000n, rss: 23060 },
  { start: 0x7f1471d80000n, len: 0x7f1471f85000n - 0x7f1471d80000n, rss: 2048 },
];

describe('memory trim: which mappings', () => {
  it('parses header fields, kB counters and VmFlags', () => {
    const maps = parseSmaps(SAMPLE);
    assert.equal(maps.length, 17);
    const text = maps[1]!;
    assert.equal(text.start, 0x0074d000n);
    assert.equal(text.end, 0x03081000n);
    assert.equal(text.perms, 'r-xp');
    assert.equal(text.dev, 'fe:00');
    assert.equal(text.inode, 2187712);
    assert.equal(text.path, NODE);
    assert.equal(text.kb.get('Rss'), 23060);
    assert.equal(text.kb.get('Anonymous'), 0);
    assert.deepEqual([...text.flags], ['rd', 'ex', 'mr', 'mw', 'me', 'sd']);
    assert.equal(maps[5]!.path, '', 'an anonymous mapping has no name');
    assert.equal(maps[11]!.path, '/memfd:jit (deleted)');
  });

  it('accepts only clean read-only private file mappings with pages resident, and says why not for the rest', () => {
    const verdicts = parseSmaps(SAMPLE).map((m) => [m.start.toString(16), trimRefusal(m)]);
    assert.deepEqual(verdicts, [
      ['400000', null],
      ['74d000', null],
      ['6b83000', 'has private (copy-on-write) pages'],
      ['6b87000', 'writable, shared or unreadable'],
      ['3698d000', 'not a file mapping'],
      ['83df900000', 'not a file mapping'],
      ['7f7c4b800000', 'not a file mapping'],
      ['7f1471d80000', null],
      ['7f1491022000', 'has private (copy-on-write) pages'],
      ['7f1491200000', 'writable, shared or unreadable'],
      ['7f1491300000', 'excluded by its VmFlags'],
      ['7f1491400000', 'not a regular file on disk'],
      ['7f1491500000', 'not a regular file on disk'],
      ['7f1491600000', 'nothing resident'],
      ['7f1491700000', 'not a regular file on disk'],
      ['7f1491800000', 'smaps fields missing'],
      ['7ffebb590000', 'not a file mapping'],
    ]);
  });

  it('by default advises only the non-executable ones: code a leader change runs stays mapped', () => {
    const advised: bigint[] = [];
    const r = trimMemory({ readSmaps: () => SAMPLE, dontNeed: (start) => { advised.push(start); }, mallocTrim: () => true, readRssKb: () => 1 });
    assert.deepEqual(advised, [0x00400000n]);
    assert.equal(r.fileKb, 3372);
  });

  it('with code: true advises exactly the trimmable ranges, once each, after a garbage collection and malloc_trim', () => {
    const calls: string[] = [];
    const advised: Array<{ start: bigint; len: bigint }> = [];
    const rss = [80_000, 40_000];
    const r = trimMemory({
      code: true,
      collectGarbage: () => { calls.push('gc'); },
      readSmaps: () => { calls.push('smaps'); return SAMPLE; },
      dontNeed: (start, len) => { calls.push('madvise'); advised.push({ start, len }); },
      mallocTrim: () => { calls.push('malloc_trim'); return true; },
      readRssKb: () => rss.shift()!,
    });
    assert.deepEqual(advised, TRIMMABLE.map(({ start, len }) => ({ start, len })));
    assert.deepEqual(calls, ['gc', 'malloc_trim', 'smaps', 'madvise', 'madvise', 'madvise']);
    assert.deepEqual(r, {
      mappings: 3, fileKb: 3372 + 23060 + 2048, collected: true, mallocReleased: true, rssBeforeKb: 80_000, rssAfterKb: 40_000, failures: [],
    });
  });

  it('reports a failing call and still makes the others', () => {
    const advised: bigint[] = [];
    const r = trimMemory({
      code: true,
      readSmaps: () => SAMPLE,
      dontNeed: (start) => {
        if (start === 0x0074d000n) throw new Error('madvise failed: EINVAL (22)');
        advised.push(start);
      },
      mallocTrim: () => { throw new Error('malloc_trim: not in this libc'); },
      collectGarbage: () => { throw new Error('no heap'); },
      readRssKb: () => 1,
    });
    assert.deepEqual(advised, [0x00400000n, 0x7f1471d80000n]);
    assert.equal(r.mappings, 2);
    assert.equal(r.fileKb, 3372 + 2048);
    assert.equal(r.collected, false);
    assert.equal(r.mallocReleased, false);
    assert.deepEqual(r.failures, ['gc: no heap', 'malloc_trim: malloc_trim: not in this libc', `madvise ${NODE}: madvise failed: EINVAL (22)`]);
  });

  it('with filePages: false returns malloc memory only and reads no smaps', () => {
    const calls: string[] = [];
    const r = trimMemory({
      filePages: false,
      readSmaps: () => { calls.push('smaps'); return SAMPLE; },
      dontNeed: () => { calls.push('madvise'); },
      mallocTrim: () => { calls.push('malloc_trim'); return true; },
      readRssKb: () => 1,
    });
    assert.deepEqual(calls, ['malloc_trim']);
    assert.equal(r.mappings, 0);
    assert.equal(r.fileKb, 0);
    assert.equal(r.collected, false, 'no garbage collection where the runtime does not expose one (this test runner)');
    assert.equal(r.mallocReleased, true);
  });

  it('reports an unreadable smaps instead of throwing, and advises nothing', () => {
    let advised = 0;
    const r = trimMemory({
      readSmaps: () => { throw new Error('ENOENT: /proc/self/smaps'); },
      dontNeed: () => { advised++; },
      mallocTrim: () => false,
      readRssKb: () => 1,
    });
    assert.equal(advised, 0);
    assert.equal(r.mappings, 0);
    assert.deepEqual(r.failures, ['reading smaps: ENOENT: /proc/self/smaps']);
  });
});

// A real process, trimmed with the real madvise: another node process, so that this test runner
// is never the one whose pages are dropped.
const CHILD = `
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import zlib from 'node:zlib';
import { parseSmaps, trimRefusal, trimMemory } from ${JSON.stringify(new URL('../../src/ops/memory-trim.js', import.meta.url).href)};
import { ifNameToIndex } from ${JSON.stringify(new URL('../../src/net/libc.js', import.meta.url).href)};

const exe = realpathSync(process.execPath);
function snapshot() {
  return parseSmaps(readFileSync('/proc/self/smaps', 'utf8')).map((m) => ({
    key: m.start.toString(16), path: m.path, perms: m.perms, trimmable: trimRefusal(m) === null,
    rss: m.kb.get('Rss') ?? 0, anon: m.kb.get('Anonymous') ?? 0,
  }));
}
function work() {
  const big = Buffer.alloc(1 << 20, 'vip-manager ');
  return {
    sha: createHash('sha256').update(big).digest('hex'),
    zlib: zlib.inflateSync(zlib.deflateSync(big)).equals(big),
    json: JSON.parse(JSON.stringify({ a: [1, 2n.toString(), 'x'.repeat(3)] })),
    re: /(\\d+)-(\\d+)/.exec('at 12-34')?.slice(1),
    big: (2n ** 100n).toString(),
    lo: ifNameToIndex('lo'),
  };
}
const first = work();
const beforeMallocOnly = snapshot();
const mallocOnly = trimMemory({ filePages: false });
const beforeData = snapshot();
const dataOnly = trimMemory();
const before = snapshot();
const result = trimMemory({ code: true });
const justAfter = snapshot();
const second = work();
console.log(JSON.stringify({ exe, beforeMallocOnly, mallocOnly, beforeData, dataOnly, before, justAfter, after: snapshot(), result, first, second }));
`;

describe('memory trim: a live process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vip-manager-test-memory-trim-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("drops the node binary's resident file pages, leaves copy-on-write and writable mappings alone, and the process keeps working", () => {
    const script = join(dir, 'child.mjs');
    writeFileSync(script, CHILD);
    // --expose-gc as the package's launcher runs the daemon: the trim collects garbage first.
    const r = spawnSync(process.execPath, ['--expose-gc', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)) });
    assert.equal(r.status, 0, r.stderr);
    type Row = { key: string; path: string; perms: string; trimmable: boolean; rss: number; anon: number };
    const out = JSON.parse(r.stdout) as {
      exe: string; beforeMallocOnly: Row[]; mallocOnly: { mappings: number; failures: string[] }; beforeData: Row[]; dataOnly: { mappings: number; failures: string[] };
      before: Row[]; justAfter: Row[]; after: Row[];
      result: { mappings: number; fileKb: number; collected: boolean; rssBeforeKb: number; rssAfterKb: number; failures: string[] };
      first: unknown; second: unknown;
    };
    assert.deepEqual(out.result.failures, []);
    assert.equal(out.result.collected, true, 'a full garbage collection ran first');
    assert.ok(out.result.mappings > 0);

    const binaryRss = (rows: Row[]) => rows.filter((m) => m.path === out.exe && m.trimmable).reduce((s, m) => s + m.rss, 0);
    assert.deepEqual(out.mallocOnly.failures, []);
    assert.equal(out.mallocOnly.mappings, 0);
    assert.ok(binaryRss(out.beforeData) >= binaryRss(out.beforeMallocOnly) * 0.9,
      `filePages: false left the binary's pages mapped: ${binaryRss(out.beforeMallocOnly)} kB before, ${binaryRss(out.beforeData)} kB after`);
    // The default trim: the binary's read-only data goes, its code stays.
    assert.deepEqual(out.dataOnly.failures, []);
    const part = (rows: Row[], exec: boolean) => rows.filter((m) => m.path === out.exe && m.trimmable && (m.perms[2] === 'x') === exec).reduce((s, m) => s + m.rss, 0);
    assert.ok(part(out.beforeData, false) > 1024, `the node binary had only ${part(out.beforeData, false)} kB of read-only data resident`);
    assert.ok(part(out.before, false) < part(out.beforeData, false) / 2, `read-only data: ${part(out.beforeData, false)} kB before the default trim, ${part(out.before, false)} kB after`);
    assert.ok(part(out.before, true) >= part(out.beforeData, true) * 0.9, `code: ${part(out.beforeData, true)} kB before the default trim, ${part(out.before, true)} kB after (must stay)`);

    const was = binaryRss(out.before);
    const now = binaryRss(out.justAfter);
    assert.ok(was > 4096, `the node binary had only ${was} kB resident in clean read-only mappings before the trim`);
    assert.ok(now < was / 2, `the node binary's clean read-only mappings: ${was} kB resident before the trim, ${now} kB after`);
    assert.ok(out.result.rssAfterKb < out.result.rssBeforeKb, `VmRSS ${out.result.rssBeforeKb} kB before, ${out.result.rssAfterKb} kB after`);

    // MADV_DONTNEED on a mapping with copy-on-write pages would have thrown them away: its
    // Anonymous count would have fallen (to 0). Every such file mapping kept them.
    const cow = out.before.filter((m) => m.path.startsWith('/') && m.anon > 0);
    assert.ok(cow.some((m) => m.path === out.exe), 'the node binary has copy-on-write pages (RELRO, .data) to check');
    for (const m of cow) {
      const later = out.justAfter.find((x) => x.key === m.key);
      assert.ok(later, `mapping ${m.key} ${m.path} is gone`);
      assert.ok(later.anon >= m.anon, `mapping ${m.key} ${m.path}: ${m.anon} kB private before, ${later.anon} kB after`);
    }

    // The same work gives the same answers with the pages faulted back in (and koffi's libc
    // calls, whose .node was trimmed too, still work).
    const expectedSha = createHash('sha256').update(Buffer.alloc(1 << 20, 'vip-manager ')).digest('hex');
    assert.deepEqual(out.first, { sha: expectedSha, zlib: true, json: { a: [1, '2', 'xxx'] }, re: ['12', '34'], big: (2n ** 100n).toString(), lo: 1 });
    assert.deepEqual(out.second, out.first);
    assert.ok(binaryRss(out.after) > now, 'the work after the trim faulted pages of the binary back in');
  });
});
