// Runs Debian's promtool (package `prometheus`), the reference parser and rule evaluator.
// A missing promtool fails the calling test with what to install: these tests never skip.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

export interface PromtoolResult { status: number | null; output: string }

export function promtool(args: string[], cwd?: string): PromtoolResult {
  const r = spawnSync('promtool', args, { encoding: 'utf8', cwd, timeout: 60_000 });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    assert.fail('promtool not found: install Debian\'s prometheus package (apt-get install --no-install-recommends prometheus; scripts/setup.sh does)');
  }
  assert.equal(r.error, undefined, `promtool ${args.join(' ')}: ${r.error?.message}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}
