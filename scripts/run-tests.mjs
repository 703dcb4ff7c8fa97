// Runs every compiled test file (dist/test/**/*.test.js) with Node's test runner: the
// packaging, Patroni and end-to-end fault suites included, as CI does.
// Arguments filter by path substring: `npm test -- net/ config/`.
// `--quick` (npm run test:quick) leaves out the slow suites (packaging, Patroni, test/e2e) for
// the edit loop; neither the README's test command nor CI uses it.
//
// Two phases. First the packaging files (dist/test/packaging, ops/packages): they build the
// packages (xz on both cores) and install hundreds of Debian packages into stock roots, load
// that would otherwise sit beside tests that bound how fast a daemon reacts. Then the rest,
// longest first. Each phase runs three files at a time: most of the long files wait (for
// downloads, for a Robot switch, for a stuck-pass threshold, for etcd), so a third slot keeps
// the whole run under 20 minutes on two cores. The closing line adds both phases up.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const quick = process.argv.includes('--quick');
const filters = process.argv.slice(2).filter((a) => a !== '--quick');
/** What --quick leaves out: minutes each, and nothing an edit to one module usually needs. */
const SLOW = ['/packaging/', '/ops/packages.test.js', '/e2e/', '/patroni/'];

const HEAVY = ['/packaging/', '/ops/packages.test.js'];
/** Within a phase the longest files start first, so that none runs alone at the end. */
const SLOW_FIRST = ['packaging/fresh-setup', 'ops/packages', 'packaging/upgrade', 'packaging/stock-install',
  'e2e/soak', 'e2e/patroni-faults', 'daemon/failure-paths-stuck', 'e2e-sources/hetzner-robot', 'config/fuzz', 'e2e/', 'patroni/'];
const slowRank = (f) => {
  const i = SLOW_FIRST.findIndex((s) => f.includes(`/${s}`));
  return i < 0 ? SLOW_FIRST.length : i;
};

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const files = walk('dist/test')
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => !quick || !SLOW.some((x) => f.includes(x)))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
  .sort((a, b) => slowRank(a) - slowRank(b));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ') || '(all)'}`);
  process.exit(1);
}
const heavy = files.filter((f) => HEAVY.some((h) => f.includes(h)));
const rest = files.filter((f) => !heavy.includes(f));

/** Runs one phase, passing its TAP through, and returns its counts from the runner's summary. */
function phase(list) {
  return new Promise((resolve) => {
    // Three files at a time: most tests wait on etcd, the kernel or a stand-in's clock, not the
    // CPU, and the namespace and port names they use are unique per process. Node 20 applies
    // --test-timeout to each whole file: the set-up test alone takes minutes on a cold cache
    // (two debootstraps, ~500 MB of downloads).
    const child = spawn(process.execPath, ['--test', '--test-reporter=tap', '--test-concurrency=3', '--test-timeout=1200000', ...list], { stdio: ['ignore', 'pipe', 'inherit'] });
    const counts = { pass: 0, fail: 0, skipped: 0, todo: 0, cancelled: 0 };
    createInterface({ input: child.stdout }).on('line', (line) => {
      process.stdout.write(`${line}\n`);
      const m = /^# (pass|fail|skipped|todo|cancelled) (\d+)$/.exec(line);
      if (m) counts[m[1]] = Number(m[2]);
    });
    child.on('close', (code, signal) => resolve({ ...counts, ok: code === 0, how: code ?? signal }));
  });
}

const results = [];
for (const list of [heavy, rest]) if (list.length > 0) results.push(await phase(list));
const sum = (k) => results.reduce((a, r) => a + r[k], 0);
const failed = sum('fail') + sum('cancelled');
const ok = results.every((r) => r.ok) && failed === 0 && sum('pass') > 0;
if (!results.every((r) => r.ok) && failed === 0) console.error(`the test runner exited with ${results.map((r) => r.how).join(', ')}`);
console.log(`tests: ${sum('pass')} passed, ${failed} failed${sum('skipped') + sum('todo') > 0 ? `, ${sum('skipped') + sum('todo')} skipped` : ''}`);
process.exit(ok ? 0 : 1);
