// Builds the .deb and the .rpm once (scripts/package.mjs, as `npm run package` does after the
// build), then checks what they hold against the layout the README and the units promise,
// and runs the unpacked .deb with the system's node. Needs dpkg-deb and rpmbuild (apt: dpkg,
// rpm) and a completed `npm run build` (the packages are made from dist/).
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };
const BUILD_BUDGET_MS = 60_000;

const APP = '/usr/lib/vip-manager';
/** Everything outside the application directory, per package (the unit directory differs). */
function expectedOutsideApp(unitDir: string): string[] {
  return [
    '/etc/default/vip-manager.yml',
    '/usr/bin/vip-manager',
    `${unitDir}/vip-manager.service`,
    `${unitDir}/vip-manager@.service`,
    '/usr/lib/sysusers.d/vip-manager.conf',
    '/usr/share/doc/vip-manager/README.md',
    '/usr/share/doc/vip-manager/LICENSE',
  ];
}
const APP_REQUIRED = [`${APP}/package.json`, `${APP}/bin/vip-manager.js`, `${APP}/dist/build-info.json`, `${APP}/dist/src/main.js`, `${APP}/dist/src/ops/metrics.js`];

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  assert.equal(r.error, undefined, `cannot run ${cmd}: ${r.error?.message}`);
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

interface Entry {
  path: string;
  mode: string;
  owner: string;
}

/** `dpkg-deb -c`: "drwxr-xr-x root/root 0 2026-01-01 00:00 ./path/". */
function debEntries(deb: string): Entry[] {
  return ok(run('dpkg-deb', ['-c', deb]), 'dpkg-deb -c').trim().split('\n').map((line) => {
    const f = line.split(/\s+/);
    const path = f.slice(5).join(' ').replace(/^\./, '').replace(/\/$/, '').replace(/ -> .*$/, '');
    return { path: path === '' ? '/' : path, mode: f[0]!, owner: f[1]! };
  });
}

/** `rpm -qlvp`: "-rw-r----- 1 root vip-mana 7927 Nov 24 23:21 /etc/default/vip-manager.yml". */
function rpmEntries(rpmFile: string): Entry[] {
  return ok(run('rpm', ['-qlvp', rpmFile]), 'rpm -qlvp').trim().split('\n').map((line) => {
    const f = line.split(/\s+/);
    return { path: f.slice(8).join(' ').replace(/ -> .*$/, ''), mode: f[0]!, owner: `${f[2]}/${f[3]}` };
  });
}

function files(entries: Entry[]): string[] {
  return entries.filter((e) => !e.mode.startsWith('d')).map((e) => e.path).sort();
}

/** Checks shared by both packages: what is inside the application directory. */
function checkAppTree(paths: string[], label: string): void {
  for (const p of APP_REQUIRED) assert.ok(paths.includes(p), `${label}: ${p} missing`);
  const app = paths.filter((p) => p.startsWith(`${APP}/`));
  for (const p of app) {
    assert.ok(!p.endsWith('.map') && !p.endsWith('.ts'), `${label}: ${p} (sources and maps are not shipped)`);
    assert.ok(!/\/dist\/(test|bench|demo)\//.test(p), `${label}: ${p} (tests, benchmarks and demos are not shipped)`);
  }
  for (const dep of Object.keys(PKG.dependencies)) {
    assert.ok(paths.includes(`${APP}/node_modules/${dep}/package.json`), `${label}: production dependency ${dep} missing`);
  }
  for (const dep of Object.keys(PKG.devDependencies)) {
    assert.ok(!paths.includes(`${APP}/node_modules/${dep}/package.json`), `${label}: development dependency ${dep} shipped`);
  }
  assert.ok(paths.includes(`${APP}/node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node`), `${label}: koffi's glibc x86-64 binary missing`);
  assert.ok(!paths.some((p) => p.includes('/musl_x64/')), `${label}: koffi's musl binary is shipped`);
}

describe('packages', () => {
  let out: string;
  let deb: string;
  let rpmFile: string;
  let buildMs: number;
  let unpacked: string;

  before(() => {
    out = mkdtempSync(join(tmpdir(), 'vip-packages-'));
    const t0 = performance.now();
    ok(run(process.execPath, ['scripts/package.mjs', 'all', '--out', out], { cwd: REPO }), 'scripts/package.mjs all');
    buildMs = performance.now() - t0;
    deb = join(out, `vip-manager_${PKG.version}_amd64.deb`);
    rpmFile = join(out, `vip-manager-${PKG.version.replace(/-/g, '~')}-1.x86_64.rpm`);
    unpacked = join(out, 'root');
    ok(run('dpkg-deb', ['-x', deb, unpacked]), 'dpkg-deb -x');
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  it(`are both built, named by version and architecture, within ${BUILD_BUDGET_MS / 1000} s`, () => {
    assert.deepEqual(readdirSync(out).filter((f) => /\.(deb|rpm)$/.test(f)).sort(), [rpmFile, deb].map((f) => relative(out, f)).sort());
    assert.ok(buildMs < BUILD_BUDGET_MS, `packaging took ${Math.round(buildMs)} ms`);
  });

  it('.deb: control fields, conffile and maintainer scripts', () => {
    const field = (name: string) => ok(run('dpkg-deb', ['-f', deb, name]), 'dpkg-deb -f').trim();
    assert.equal(field('Package'), 'vip-manager');
    assert.equal(field('Version'), PKG.version);
    assert.equal(field('Architecture'), 'amd64');
    assert.equal(field('Depends'), 'nodejs (>= 20), adduser');
    const ctrl = join(out, 'control');
    ok(run('dpkg-deb', ['-e', deb, ctrl]), 'dpkg-deb -e');
    assert.equal(readFileSync(join(ctrl, 'conffiles'), 'utf8'), '/etc/default/vip-manager.yml\n');
    for (const s of ['postinst', 'prerm', 'postrm']) {
      assert.equal(readFileSync(join(ctrl, s), 'utf8'), readFileSync(join(REPO, 'packaging/debian', s), 'utf8'), s);
      assert.equal(statSync(join(ctrl, s)).mode & 0o777, 0o755, `${s} mode`);
    }
    const md5 = readFileSync(join(ctrl, 'md5sums'), 'utf8');
    assert.match(md5, /^[0-9a-f]{32} {2}usr\/bin\/vip-manager$/m);
  });

  it('.deb: holds the expected layout, all root-owned, with the right modes', () => {
    const entries = debEntries(deb);
    const paths = files(entries);
    const outside = paths.filter((p) => !p.startsWith(`${APP}/`));
    assert.deepEqual(outside, [...expectedOutsideApp('/lib/systemd/system'), '/usr/share/doc/vip-manager/copyright'].sort());
    checkAppTree(paths, '.deb');
    assert.deepEqual(entries.filter((e) => e.owner !== 'root/root'), [], 'every file belongs to root');
    const mode = (p: string) => entries.find((e) => e.path === p)?.mode;
    assert.equal(mode('/usr/bin/vip-manager'), '-rwxr-xr-x');
    assert.equal(mode('/etc/default/vip-manager.yml'), '-rw-r-----', 'the config may hold credentials');
    assert.equal(mode('/lib/systemd/system/vip-manager.service'), '-rw-r--r--');
  });

  it('.rpm: metadata, dependency, %config(noreplace) and scriptlets', () => {
    const q = (fmt: string) => ok(run('rpm', ['-qp', '--qf', fmt, rpmFile]), 'rpm -qp --qf');
    assert.equal(q('%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}'), `vip-manager ${PKG.version.replace(/-/g, '~')} 1 x86_64 BSD-2-Clause`);
    const requires = ok(run('rpm', ['-qp', '--requires', rpmFile]), 'rpm --requires').split('\n');
    assert.ok(requires.includes('nodejs >= 20'), requires.join(', '));
    assert.ok(!requires.some((r) => /musl|\.so/.test(r)), 'no automatically generated library requirements');
    assert.equal(ok(run('rpm', ['-qcp', rpmFile]), 'rpm -qcp').trim(), '/etc/default/vip-manager.yml');
    // %config(noreplace): file flags (1 = config, 16 = noreplace).
    const flags = ok(run('rpm', ['-qp', '--qf', '[%{FILEFLAGS} %{FILENAMES}\\n]', rpmFile]), 'rpm fileflags')
      .split('\n').find((l) => l.endsWith(' /etc/default/vip-manager.yml'));
    assert.ok(flags && (Number(flags.split(' ')[0]) & 17) === 17, `config flags: ${flags}`);
    const scripts = ok(run('rpm', ['-qp', '--scripts', rpmFile]), 'rpm --scripts');
    assert.match(scripts, /useradd -r -g vip-manager/);
    assert.match(scripts, /disable --now vip-manager\.service/);
    assert.match(scripts, /try-restart vip-manager\.service/);
  });

  it('.rpm: holds the same layout as the .deb (units in /usr/lib/systemd/system)', () => {
    const entries = rpmEntries(rpmFile);
    const paths = files(entries);
    assert.deepEqual(paths.filter((p) => !p.startsWith(`${APP}/`)), expectedOutsideApp('/usr/lib/systemd/system').sort());
    checkAppTree(paths, '.rpm');
    const debApp = files(debEntries(deb)).filter((p) => p.startsWith(`${APP}/`));
    assert.deepEqual(paths.filter((p) => p.startsWith(`${APP}/`)), debApp, 'the application trees differ');
    const conf = entries.find((e) => e.path === '/etc/default/vip-manager.yml');
    assert.equal(conf?.mode, '-rw-r-----');
    assert.match(conf?.owner ?? '', /^root\/vip-mana/, 'group vip-manager can read the config');
  });

  it('unpacked .deb: `vip-manager --version` runs with the system node', () => {
    const r = run(join(unpacked, 'usr/bin/vip-manager'), ['--version'], { cwd: tmpdir() });
    const stdout = ok(r, 'vip-manager --version');
    assert.match(stdout, new RegExp(`^version: ${PKG.version.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(stdout, /^commit: \S+$/m);
    assert.match(stdout, /^date: \S+$/m);
  });

  it('unpacked .deb: the shipped configuration passes --check-config', () => {
    const conf = join(unpacked, 'etc/default/vip-manager.yml');
    const r = run(join(unpacked, 'usr/bin/vip-manager'), ['--check-config', '--config', conf], { cwd: tmpdir(), env: { PATH: process.env.PATH } });
    const stdout = ok(r, 'vip-manager --check-config');
    assert.match(stdout, /^ip: 198\.51\.100\.10\b/m);
    assert.match(stdout, /^trigger-key: \/service\/pgcluster\/leader\b/m);
  });

  it('unpacked .deb: every shipped module loads (dependencies complete, koffi finds its binary)', () => {
    const app = join(unpacked, APP.slice(1));
    const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
    const modules = walk(join(app, 'dist/src')).filter((f) => f.endsWith('.js'));
    const script = `for (const f of ${JSON.stringify(modules)}) await import(f);\n` +
      `const k = (await import(${JSON.stringify(join(app, 'node_modules/koffi/index.js'))})).default;\n` +
      `console.log(typeof k.load);`;
    const r = run(process.execPath, ['--input-type=module', '-e', script], { cwd: tmpdir() });
    assert.equal(ok(r, 'importing the unpacked modules').trim(), 'function');
    assert.ok(modules.length >= 10, `only ${modules.length} modules shipped`);
  });

  it('`make install` layout (scripts/package.mjs install) equals the .deb payload', () => {
    const dest = join(out, 'destdir');
    ok(run(process.execPath, ['scripts/package.mjs', 'install', '--destdir', dest], { cwd: REPO }), 'package.mjs install');
    const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
    const installed = walk(dest).map((p) => '/' + relative(dest, p)).sort();
    const debFiles = files(debEntries(deb)).filter((p) => p !== '/usr/share/doc/vip-manager/copyright');
    assert.deepEqual(installed, debFiles);
    // A second install keeps an edited configuration.
    const conf = join(dest, 'etc/default/vip-manager.yml');
    const edited = 'ip: 192.0.2.99\n';
    ok(run('sh', ['-c', `printf '%s' '${edited}' > '${conf}'`]), 'edit config');
    const again = ok(run(process.execPath, ['scripts/package.mjs', 'install', '--destdir', dest], { cwd: REPO }), 'second install');
    assert.match(again, /kept the existing/);
    assert.equal(readFileSync(conf, 'utf8'), edited);
  });
});
