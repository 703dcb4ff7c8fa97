// The daemon must never start processes (no `ip`, no shell): it needs only two capabilities,
// and a shell-out is where root creeps back in. This scans every source file under src/. The
// one exception is the hooks the operator configures (on-acquire, on-release): they start in
// src/hooks/runner.ts and nowhere else, without capabilities, secrets or a shell.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const SRC = join(ROOT, 'src');
/** The only file allowed to start a process, and only with child_process's spawn. */
const HOOK_RUNNER = join('src', 'hooks', 'runner.ts');

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

  it('no file under src/ but the hook runner spawns or imports a process API', () => {
    const offences: string[] = [];
    for (const file of sources(SRC)) {
      if (relative(ROOT, file) === HOOK_RUNNER) continue;
      const text = code(readFileSync(file, 'utf8'));
      for (const [re, what] of FORBIDDEN) {
        if (re.test(text)) offences.push(`${relative(ROOT, file)}: ${what}`);
      }
    }
    assert.deepEqual(offences, []);
  });

  it('the hook runner starts processes with spawn only, never through a shell', () => {
    const text = code(readFileSync(join(ROOT, HOOK_RUNNER), 'utf8'));
    assert.match(text, /import \{ spawn \} from 'node:child_process';/);
    assert.equal(text.match(/\bchild_process\b/g)?.length, 1, 'one import of child_process');
    assert.equal(text.match(/\bspawn\s*\(/g)?.length, 1, 'one spawn call');
    assert.ok(!/\bshell\s*:/.test(text), 'no shell option');
    for (const [re, what] of FORBIDDEN.filter(([, w]) => !['child_process', 'spawn('].includes(w))) assert.ok(!re.test(text), what);
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
