// Runs every compiled test file (dist/test/**/*.test.js) with Node's test runner.
// Arguments filter by path substring: `npm test -- net/ config/`.
// The e2e suite (dist/test/e2e) runs only when asked for: `npm run test:e2e`.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const filters = process.argv.slice(2);
const e2e = process.env.VIP_TEST_E2E === '1';

/**
 * The longest files start first (the stock-Debian-root tests install packages in a chroot for
 * minutes): with two files at a time, one of them then no longer runs alone at the end.
 */
const SLOW_FIRST = ['packaging/fresh-setup', 'packaging/upgrade', 'packaging/stock-install', 'ops/packages', 'patroni/'];
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
  .filter((f) => e2e === f.includes(`${join('dist', 'test', 'e2e')}/`))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
  .sort((a, b) => slowRank(a) - slowRank(b));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ') || '(all)'}`);
  process.exit(1);
}
// Two files at a time: most tests wait on etcd or the kernel, not the CPU, and the
// namespace and port names they use are unique per process.
// Node 20 applies --test-timeout to each whole file. The packaging tests install a few hundred
// Debian packages into stock roots; on a cold cache (two debootstraps, ~500 MB of downloads)
// the set-up test alone takes several minutes.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=1200000', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
