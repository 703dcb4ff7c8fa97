// What an ELF file needs from the system, read from its dynamic section with binutils' readelf
// (which reads any architecture's files): the NEEDED libraries and the symbol versions used
// from each. The package dependencies are derived from these, not written by hand.
import { execFileSync } from 'node:child_process';

export class ElfError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ElfError';
  }
}

function readelf(args, file) {
  try {
    return execFileSync('readelf', [...args, file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new ElfError(`readelf ${args.join(' ')} ${file} failed (is binutils installed?): ${e.message}`);
  }
}

/** e_machine, as readelf names it ("Advanced Micro Devices X86-64", "AArch64"). */
export function elfMachine(file) {
  const m = /^\s*Machine:\s*(.+)$/m.exec(readelf(['-h', '--wide'], file));
  if (!m) throw new ElfError(`${file}: not an ELF file`);
  return m[1].trim();
}

/** The file's interpreter (PT_INTERP), or null for a shared object. */
export function elfInterpreter(file) {
  const m = /\[Requesting program interpreter: ([^\]]+)\]/.exec(readelf(['-l', '--wide'], file));
  return m ? m[1] : null;
}

/**
 * Map soname -> Set of version names used from it (GLIBC_2.28, GLIBCXX_3.4.21, ...). Every
 * NEEDED library appears, with an empty set when no versioned symbol comes from it.
 */
export function elfNeeds(file) {
  const needs = new Map();
  for (const m of readelf(['-d', '--wide'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)) needs.set(m[1], new Set());
  // .gnu.version_r: "  0x0010: Version: 1  File: libc.so.6  Cnt: 12" then "  0x0020:   Name: GLIBC_2.28  Flags: none  Version: 5"
  let current = null;
  for (const line of readelf(['-V', '--wide'], file).split('\n')) {
    const f = /\bFile: (\S+)\s+Cnt:/.exec(line);
    if (f) {
      current = f[1];
      if (!needs.has(current)) needs.set(current, new Set());
      continue;
    }
    const n = /^\s*0x[0-9a-f]+:\s+Name: (\S+)\s+Flags:/.exec(line);
    if (n && current) needs.get(current).add(n[1]);
  }
  return needs;
}

/** Merges the needs of several files. */
export function mergeNeeds(all) {
  const merged = new Map();
  for (const needs of all) {
    for (const [lib, versions] of needs) {
      if (!merged.has(lib)) merged.set(lib, new Set());
      for (const v of versions) merged.get(lib).add(v);
    }
  }
  return merged;
}

/** Compares dotted version tails numerically: "2.28" > "2.3". */
export function compareDotted(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The highest "PREFIX_x.y.z" version among `versions`, as "x.y.z", or null. */
export function highest(versions, prefix) {
  let best = null;
  for (const v of versions) {
    if (!v.startsWith(`${prefix}_`)) continue;
    const n = v.slice(prefix.length + 1);
    if (/^\d+(\.\d+)*$/.test(n) && (best === null || compareDotted(n, best) > 0)) best = n;
  }
  return best;
}
