// The README's first step on a fresh machine, for one Debian release: a stock root
// (debootstrap --variant=minbase, no Node.js at all) gets this repository's source files, and
// `bash scripts/setup.sh` must leave the pinned runtime (packaging/runtime.json) as `node` on
// PATH and a built daemon whose --version runs on it. One file per release
// (fresh-setup-<suite>.test.ts), so the two run side by side. Needs root, debootstrap, a Debian
// mirror in the host's apt sources, and network access to the package registries (apt and npm)
// from the root.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assertRan, hostNetworkEnv, openStockRoot, type RunResult, type StockRoot, type Suite } from '../harness/stock-root.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CHECKOUT = '/root/vip-manager';
/** apt and npm downloads on a cold cache, a few hundred packages unpacked on 2 cores. */
const SETUP_TIMEOUT_MS = 25 * 60_000;
const PIN = (JSON.parse(readFileSync(join(REPO, 'packaging/runtime.json'), 'utf8')) as { node: string }).node;

/** The repository's source files as a checkout has them: tracked plus untracked-not-ignored. */
function sourceFiles(): string[] {
  const r = spawnSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: REPO, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `git ls-files in ${REPO} failed (this test copies a checkout's files; apt-get install git): ${r.stderr ?? r.error?.message}`);
  // -c also lists tracked files deleted in the working tree: a checkout would not have them.
  return r.stdout.split('\0').filter((f) => f !== '' && !/^(node_modules|dist|build)\//.test(f) && existsSync(join(REPO, f)));
}

export function freshSetupSuite(suite: Suite): void {
  describe(`scripts/setup.sh in a stock Debian ${suite} root without Node.js`, () => {
    let root: StockRoot | undefined;
    let setup: RunResult;

    before(async () => {
      // setup.sh runs apt-get itself, outside StockRoot.apt()'s turn-taking on the shared cache.
      root = await openStockRoot(suite, { archiveCache: `${suite}-setup` });
      const none = await root.run(['sh', '-c', 'command -v node nodejs npm']);
      assert.equal(none.stdout, '', 'the stock root already has Node.js');
      const files = sourceFiles();
      assert.ok(files.includes('scripts/setup.sh') && files.includes('package.json'), 'the file list lacks scripts/setup.sh or package.json');
      // One resolution of the (new) checkout directory; everything below it is ours.
      const dest = root.hostPath(CHECKOUT);
      for (const f of files) cpSync(join(REPO, f), join(dest, f), { preserveTimestamps: true, verbatimSymlinks: true });
      // What a throw-away build machine would set: no fsync per unpacked file, and no man-db
      // index rebuild after every package (minutes for the ~450 packages setup.sh brings).
      // Neither changes what gets installed.
      assertRan(await root.run(['sh', '-c', 'echo "man-db man-db/auto-update boolean false" | debconf-set-selections']), 'debconf-set-selections');
      setup = await root.run(['bash', 'scripts/setup.sh'], { cwd: CHECKOUT, env: { ...hostNetworkEnv(), DPKG_FORCE: 'unsafe-io' }, timeoutMs: SETUP_TIMEOUT_MS });
    });
    after(() => root?.close());

    it('bash scripts/setup.sh succeeds', () => {
      assertRan(setup, `bash scripts/setup.sh in the ${suite} root`);
    });

    it('leaves the pinned runtime as `node` on PATH, and the built daemon\'s --version runs on it', async () => {
      const which = assertRan(await root!.run(['sh', '-c', 'command -v node']), 'command -v node');
      const node = which.stdout.trim();
      const version = assertRan(await root!.run([node, '-p', 'process.versions.node']), `${node} -p process.versions.node`).stdout.trim();
      // No Node.js was there before: setup installs the one the packages embed, even where the
      // distribution's own would do (Debian 13 ships 20).
      assert.equal(version, PIN, `${node} is Node.js ${version}, not the pinned runtime`);
      const r = assertRan(await root!.run(['node', 'bin/vip-manager.js', '--version'], { cwd: CHECKOUT }), 'node bin/vip-manager.js --version');
      assert.match(r.stdout, new RegExp(`Node\\.js v?${version.replace(/\./g, '\\.')}\\b`), `--version does not report the runtime it runs on (${version}):\n${r.stdout}`);
    });
  });
}
