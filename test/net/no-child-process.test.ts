// The daemon must never start processes (no `ip`, no shell): it needs only two capabilities,
// and a shell-out is where root creeps back in. This scans every source file under src/.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const SRC = join(ROOT, 'src');

const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bchild_process\b/, 'child_process'],
  [/\bexeca\b/, 'execa'],
  [/\bspawn(Sync)?\s*\(/, 'spawn('],
  // execFile/execSync are child_process names; a bare exec( is too (RegExp's .exec( is not).
  [/\b(execFile|execFileSync|execSync)\s*\(|(?<![.\w])exec\s*\(/, 'exec('],
  [/\bfork\s*\(/, 'fork('],
  [/\b(shelljs|zx|cross-spawn)\b/, 'a process-spawning package'],
];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return /\.(ts|mts|cts|js|mjs|cjs)$/.test(name) ? [p] : [];
  });
}

/** Drops comments so prose like "no child_process here" does not count. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

describe('no child processes in the daemon', () => {
  it('finds the sources it scans', () => {
    const files = sources(SRC);
    assert.ok(files.length >= 10, `expected the daemon's sources under ${SRC}, found ${files.length}`);
    assert.ok(files.some((f) => f.endsWith(join('net', 'addresses.ts'))));
  });

  it('no file under src/ spawns or imports a process API', () => {
    const offences: string[] = [];
    for (const file of sources(SRC)) {
      const text = code(readFileSync(file, 'utf8'));
      for (const [re, what] of FORBIDDEN) {
        if (re.test(text)) offences.push(`${relative(ROOT, file)}: ${what}`);
      }
    }
    assert.deepEqual(offences, []);
  });

  it('the scanner catches what it is meant to', () => {
    const samples = [
      "import { spawn } from 'node:child_process';",
      "const cp = await import('child_process');",
      "import { execa } from 'execa';",
      "spawn ('ip', ['addr'])",
      "execFileSync('ip', [])",
      "exec('ip addr add')",
    ];
    for (const s of samples) assert.ok(FORBIDDEN.some(([re]) => re.test(code(s))), s);
    assert.ok(!FORBIDDEN.some(([re]) => re.test(code('// uses no child_process'))));
    assert.ok(!FORBIDDEN.some(([re]) => re.test(code('const m = /x/.exec(text);'))));
  });
});
