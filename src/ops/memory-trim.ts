// Once start-up is over, hand back the memory only start-up needed, so that the RSS an operator
// sees in `top` is the idle daemon's working set rather than the high-water mark of loading it.
//
// Two kinds of memory, two calls:
// - Pages of read-only, non-executable file mappings: the node binary's read-only data (the V8
//   and Node start-up snapshots, the sources of Node's built-in modules, tables) that start-up
//   read once to build the heap, and the same kind in libc, libstdc++ and koffi's .node: about
//   16 MB in an idle daemon. madvise(MADV_DONTNEED) removes them from this process's page
//   tables only: they stay in the page cache, and a page needed later comes back by a minor
//   fault, without I/O. Code (r-x mappings) stays mapped by default: dropping it too would take
//   RSS some 11 MB lower, but the first leader change afterwards would fault the code it runs
//   back in (measured: +2-4 ms on that transition), and that transition is what the daemon is for.
//   MADV_PAGEOUT/MADV_COLD are not used: the first would evict the pages from the page cache (a
//   later fault reads the disk), the second lowers nothing.
// - malloc's free pages: malloc_trim(0) returns what start-up (or a burst of leader changes)
//   freed in every arena. That is anonymous memory: really given back. A full garbage collection
//   runs first where the runtime offers one (the package's launcher passes --expose-gc): V8 frees
//   the buffers and external memory a burst left behind, and compacts its old generation, only
//   in a major collection, which an idle daemon may not run for a long time; what it frees then
//   is what malloc_trim can hand back. The whole trim, this collection included, takes about
//   25 ms (the package's daemon right after start-up; about 9 ms without the collection), once
//   per start, burst or reload; nothing at idle.
//
// Why this is safe (madvise(2)): for a private file mapping, MADV_DONTNEED drops the process's
// private (copy-on-write) copies, and a later access reads the file again. A mapping that has no
// private pages and cannot be written holds nothing but clean page-cache pages, which the kernel's
// own reclaim unmaps the same way under memory pressure; the only change is that it happens now.
// So only such mappings are touched: not writable, private, backed by a regular file still on
// disk, no anonymous (COW'd) page and nothing swapped out; never anonymous memory, the heap,
// stacks, shared or special mappings. The smaps read and the madvise calls run on the main
// thread without yielding; what could unmap a file mapping meanwhile is a dlclose(), and
// neither Node (addons stay loaded) nor glibc (NSS modules stay loaded) unloads one.
//
// What it means: file pages are page cache, reclaimable by the kernel anyway; the daemon does
// not use less memory than the kernel could reclaim before, but the figure an operator sees
// (VmRSS, RssFile) falls to what it actually uses.
import { readFileSync } from 'node:fs';
import { MADV_DONTNEED, madvise as libcMadvise, mallocTrim as libcMallocTrim } from '../net/libc.js';

/** One entry of /proc/PID/smaps: the header line's fields, the kB counters, and VmFlags. */
export interface SmapsMapping {
  start: bigint;
  end: bigint;
  /** 'r-xp' and the like. */
  perms: string;
  /** Major:minor of the backing device; '00:00' when there is none. */
  dev: string;
  inode: number;
  /** Pathname, pseudo-name ('[heap]', '[vdso]') or '' for anonymous memory. */
  path: string;
  /** The kB counters (Rss, Anonymous, Swap, ...), by name. */
  kb: Map<string, number>;
  /** The two-letter VmFlags (rd, wr, ex, sh, lo, io, ...). */
  flags: Set<string>;
}

// One pass of one regular expression over the whole text (some 100 KB, 4,000 lines): a regex
// per line costs tens of milliseconds on the first, unoptimised run, which is the only run.
const LINE = /^(?:([0-9a-f]+)-([0-9a-f]+) ([-r][-w][-x][ps]) [0-9a-f]+ ([0-9a-f]+:[0-9a-f]+) (\d+) *(.*)|([A-Za-z_]+): +(\d+) kB|VmFlags:(.*))$/gm;

/** Parses the text of /proc/PID/smaps. Lines it does not know are ignored. */
export function parseSmaps(text: string): SmapsMapping[] {
  const out: SmapsMapping[] = [];
  let cur: SmapsMapping | undefined;
  for (const l of text.matchAll(LINE)) {
    if (l[1] !== undefined) {
      cur = {
        start: BigInt(`0x${l[1]}`), end: BigInt(`0x${l[2]!}`), perms: l[3]!, dev: l[4]!, inode: Number(l[5]),
        path: l[6]!, kb: new Map(), flags: new Set(),
      };
      out.push(cur);
    } else if (cur === undefined) {
      continue;
    } else if (l[7] !== undefined) {
      cur.kb.set(l[7], Number(l[8]));
    } else {
      for (const f of l[9]!.trim().split(' ')) if (f !== '') cur.flags.add(f);
    }
  }
  return out;
}

/**
 * VmFlags that rule a mapping out: shared, locked (madvise fails on it), I/O or PFN mappings
 * (device memory, not page cache), hugetlb, userfaultfd-managed, and may-share.
 */
const EXCLUDED_FLAGS = ['sh', 'ms', 'lo', 'io', 'pf', 'ht', 'um', 'uw'];

/**
 * Why `m` must not be trimmed, or null when it may: a private, non-writable mapping of a
 * regular file, with resident pages, no copy-on-write page, nothing in swap, and smaps
 * counters and flags present (an unfamiliar smaps format is never guessed at).
 */
export function trimRefusal(m: SmapsMapping): string | null {
  if (m.inode === 0 || m.dev === '00:00' || !m.path.startsWith('/')) return 'not a file mapping';
  if (m.path.endsWith(' (deleted)') || m.path.startsWith('/memfd:') || m.path.startsWith('/dev/')) return 'not a regular file on disk';
  if (m.perms[0] !== 'r' || m.perms[1] !== '-' || m.perms[3] !== 'p') return 'writable, shared or unreadable';
  const anon = m.kb.get('Anonymous');
  const swap = m.kb.get('Swap');
  const rss = m.kb.get('Rss');
  if (anon === undefined || swap === undefined || rss === undefined || m.flags.size === 0) return 'smaps fields missing';
  if (anon !== 0 || swap !== 0) return 'has private (copy-on-write) pages';
  if (m.flags.has('wr') || EXCLUDED_FLAGS.some((f) => m.flags.has(f))) return 'excluded by its VmFlags';
  if (rss === 0) return 'nothing resident';
  return null;
}

export interface TrimResult {
  /** File mappings advised, and their resident kB just before. */
  mappings: number;
  fileKb: number;
  /** Whether a full garbage collection ran first. */
  collected: boolean;
  /** Whether malloc_trim released anything. */
  mallocReleased: boolean;
  /** VmRSS before and after, kB. */
  rssBeforeKb: number;
  rssAfterKb: number;
  /** Calls that failed ('madvise /usr/lib/...: EINVAL'); the rest were still made. */
  failures: string[];
}

export interface TrimOptions {
  /**
   * Whether to drop the clean file pages too (default true). False returns malloc's free pages
   * only: for a trim after a burst of leader changes, which leaves the code a failover runs
   * mapped (see the header).
   */
  filePages?: boolean;
  /**
   * Whether executable file mappings (code) are dropped too (default false: the code a leader
   * change runs stays mapped; see the header).
   */
  code?: boolean;
  /** The text of this process's smaps; defaults to reading /proc/self/smaps. */
  readSmaps?: () => string;
  /** Defaults to libc's madvise(MADV_DONTNEED); throws on failure. */
  dontNeed?: (addr: bigint, len: bigint) => void;
  /** Defaults to libc's malloc_trim(0). */
  mallocTrim?: () => boolean;
  /** A full garbage collection; defaults to the runtime's `gc` when exposed (--expose-gc), else none. */
  collectGarbage?: (() => void) | null;
  /** VmRSS in kB; defaults to reading /proc/self/status. */
  readRssKb?: () => number;
}

function vmRssKb(): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/**
 * Collects garbage (where the runtime offers it), returns malloc's free pages, then (unless
 * `filePages: false`) drops this process's page-table entries for clean pages of read-only,
 * non-executable (with `code: true`, also executable) file mappings (see the header).
 * Synchronous on purpose (see the header). A failing call is reported in the result, never
 * thrown: the daemon works the same without the trim.
 */
export function trimMemory(deps: TrimOptions = {}): TrimResult {
  const readSmaps = deps.readSmaps ?? (() => readFileSync('/proc/self/smaps', 'utf8'));
  const dontNeed = deps.dontNeed ?? ((addr, len) => libcMadvise(addr, len, MADV_DONTNEED));
  const readRssKb = deps.readRssKb ?? vmRssKb;
  const failures: string[] = [];
  const rssBeforeKb = readRssKb();
  const gc = deps.collectGarbage === undefined ? (globalThis as { gc?: () => void }).gc : deps.collectGarbage;
  let collected = false;
  try {
    if (gc) {
      gc();
      collected = true;
    }
  } catch (e) {
    failures.push(`gc: ${(e as Error).message}`);
  }
  let mallocReleased = false;
  try {
    mallocReleased = (deps.mallocTrim ?? libcMallocTrim)();
  } catch (e) {
    failures.push(`malloc_trim: ${(e as Error).message}`);
  }
  // Read after malloc_trim: it may unmap a whole arena heap, never a file mapping.
  let maps: SmapsMapping[] = [];
  try {
    if (deps.filePages !== false) maps = parseSmaps(readSmaps());
  } catch (e) {
    failures.push(`reading smaps: ${(e as Error).message}`);
  }
  let mappings = 0;
  let fileKb = 0;
  for (const m of maps) {
    if (trimRefusal(m) !== null || (m.perms[2] === 'x' && deps.code !== true)) continue;
    try {
      dontNeed(m.start, m.end - m.start);
      mappings++;
      fileKb += m.kb.get('Rss')!;
    } catch (e) {
      failures.push(`madvise ${m.path}: ${(e as Error).message}`);
    }
  }
  return { mappings, fileKb, collected, mallocReleased, rssBeforeKb, rssAfterKb: readRssKb(), failures };
}
