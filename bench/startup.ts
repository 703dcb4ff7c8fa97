// Start-up benchmark (npm run bench:startup): wall time and peak RSS of `vip-manager --version`
// run as an operator runs it, from the amd64 package (the launcher, the embedded runtime and the
// bundle, unpacked from the .deb) beside the checkout run by the machine's node
// (`node bin/vip-manager.js`), and `--check-config` on the shipped sample, which loads the
// configuration layer as every start does. Builds the .deb if needed (about a minute).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { builtPackage } from '../test/harness/packages.js';
import { statsOf as stats, type Stats } from './stats.js';

const RUNS = 10;
const WARMUP = 2;
const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** Wall ms and peak RSS (MiB, from GNU time's %M) of one run. */
function once(cmd: string[]): { ms: number; rssMiB: number } {
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', ...cmd], { encoding: 'utf8', cwd: tmpdir() });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr}`);
  const kb = Number(/(\d+)\s*$/.exec(r.stderr)?.[1]);
  return { ms, rssMiB: kb / 1024 };
}

function measure(cmd: string[]): { wall: Stats; rss: Stats } {
  for (let i = 0; i < WARMUP; i++) once(cmd);
  const runs = Array.from({ length: RUNS }, () => once(cmd));
  return { wall: stats(runs.map((r) => r.ms)), rss: stats(runs.map((r) => r.rssMiB)) };
}

const deb = await builtPackage('deb', 'amd64');
const root = mkdtempSync(join(tmpdir(), 'vip-bench-startup-'));
try {
  execFileSync('dpkg-deb', ['-x', deb, root]);
  const packaged = join(root, 'usr/bin/vip-manager');
  const sample = join(root, 'usr/share/vip-manager/vip-manager.yml');
  const checkout = [process.execPath, join(REPO, 'bin/vip-manager.js')];
  const rows: Array<[string, string[]]> = [
    ['--version      package (embedded runtime, bundle)', [packaged, '--version']],
    [`--version      checkout (node ${process.versions.node}, dist/)`, [...checkout, '--version']],
    ['--check-config package', [packaged, '--check-config', '--config', sample]],
    ['--check-config checkout', [...checkout, '--check-config', '--config', sample]],
  ];
  const f = (n: number) => n.toFixed(n < 10 ? 1 : 0).padStart(6);
  console.log(`${RUNS} runs each after ${WARMUP} warm-up runs; wall ms and peak RSS MiB`);
  console.log(`${''.padEnd(54)}  median    p90    max   RSS median`);
  for (const [label, cmd] of rows) {
    const m = measure(cmd);
    console.log(`${label.padEnd(54)}  ${f(m.wall.median)} ${f(m.wall.p90)} ${f(m.wall.max)}   ${f(m.rss.median)}`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
