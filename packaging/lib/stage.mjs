// Lays out the installed file tree (the same for the .deb, the .rpm and `make install`) under
// a root directory. Only production files: the compiled daemon (dist/src, no tests, no source
// maps), the launcher, the production dependencies listed in package-lock.json, the units,
// the sample configuration, the sysusers file and the documentation.
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

export const APP_DIR = 'usr/lib/vip-manager';
export const CONFIG_PATH = 'etc/default/vip-manager.yml';
export const DOC_DIR = 'usr/share/doc/vip-manager';
export const UNITS = ['vip-manager.service', 'vip-manager@.service'];
/** Where systemd looks for package units: Debian's packaging path, and Fedora/RHEL's. */
export const UNIT_DIR_DEB = 'lib/systemd/system';
export const UNIT_DIR_RPM = 'usr/lib/systemd/system';

/**
 * Files inside dependencies that are never loaded at run time on a glibc x86-64 system:
 * koffi's musl build (koffi picks linux_x64 when the node binary's interpreter is glibc's),
 * its C headers and its documentation, and type-only packages (protobufjs lists @types/node
 * as a dependency). Removing them keeps the package smaller.
 */
const PRUNE = [
  'node_modules/@types',
  'node_modules/@koromix/koffi-linux-x64/musl_x64',
  'node_modules/koffi/vendor',
  'node_modules/koffi/doc',
];

/**
 * TypeScript sources, declarations and source maps inside dependencies: Node 20 never loads
 * them at run time, and they are about half the size of node_modules.
 */
const PRUNE_FILES = /\.(?:[mc]?ts|map)$/;

export class StageError extends Error {
  constructor(message) {
    super(message);
    this.name = 'StageError';
  }
}

function mustExist(path, hint) {
  if (!existsSync(path)) throw new StageError(`${path} is missing: ${hint}`);
}

function copyFile(from, to, mode) {
  mkdirSync(dirname(to), { recursive: true });
  cpSync(from, to);
  chmodSync(to, mode);
}

/** Production packages per package-lock.json: every entry not marked dev, present on disk. */
export function productionPackages(repo) {
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8'));
  const found = [];
  for (const [path, entry] of Object.entries(lock.packages ?? {})) {
    if (path === '' || entry.dev || entry.link) continue;
    if (existsSync(join(repo, path))) found.push(path);
    // Optional dependencies for other platforms (koffi's other prebuilt binaries) are absent.
    else if (!entry.optional) throw new StageError(`${path} is in package-lock.json but not installed: run \`npm ci\``);
  }
  return found.sort();
}

/** Copies one package without its nested node_modules (those are separate lockfile entries). */
function copyPackage(repo, pkgPath, appRoot) {
  cpSync(join(repo, pkgPath), join(appRoot, pkgPath), {
    recursive: true,
    filter: (src) => relative(join(repo, pkgPath), src).split('/')[0] !== 'node_modules',
  });
}

function pruneFiles(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) pruneFiles(p);
    else if (st.isFile() && PRUNE_FILES.test(name)) rmSync(p);
  }
}

/** Normalises modes: directories 0755, files 0644, or 0755 when any execute bit was set. */
function normaliseModes(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isSymbolicLink()) continue;
    if (st.isDirectory()) {
      chmodSync(p, 0o755);
      normaliseModes(p);
    } else {
      chmodSync(p, st.mode & 0o111 ? 0o755 : 0o644);
    }
  }
}

function writeAppPackageJson(repo, appRoot) {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  // "type": "module" makes Node load dist/*.js as ES modules; the rest is for people.
  const slim = {
    name: pkg.name,
    version: pkg.version,
    description: pkg.description,
    license: pkg.license,
    private: true,
    type: pkg.type,
    engines: pkg.engines,
    dependencies: pkg.dependencies,
  };
  writeFileSync(join(appRoot, 'package.json'), JSON.stringify(slim, null, 2) + '\n');
}

/**
 * Fills `root` with the installed layout. `unitDir` is where the units go (UNIT_DIR_DEB or
 * UNIT_DIR_RPM); `sampleConfig` is the rendered sample configuration, checked against the
 * copy in packaging/ so a stale file cannot be shipped.
 */
export function stage({ repo, root, unitDir, sampleConfig, withConfig = true }) {
  const dist = join(repo, 'dist');
  mustExist(join(dist, 'src', 'main.js'), 'build first (`npm run build`)');
  mustExist(join(dist, 'build-info.json'), 'build with `npm run build` (it records version and commit)');
  mustExist(join(repo, 'README.md'), 'the package documentation needs it');
  mustExist(join(repo, 'LICENSE'), 'the package documentation needs it');
  const shipped = readFileSync(join(repo, 'packaging', 'vip-manager.yml'), 'utf8');
  if (shipped !== sampleConfig) {
    throw new StageError('packaging/vip-manager.yml differs from the configuration schema: run `node scripts/package.mjs sample-config` and commit the result');
  }

  const app = join(root, APP_DIR);
  mkdirSync(app, { recursive: true });
  cpSync(join(dist, 'src'), join(app, 'dist', 'src'), { recursive: true, filter: (src) => !src.endsWith('.map') });
  cpSync(join(dist, 'build-info.json'), join(app, 'dist', 'build-info.json'));
  copyFile(join(repo, 'bin', 'vip-manager.js'), join(app, 'bin', 'vip-manager.js'), 0o755);
  writeAppPackageJson(repo, app);
  for (const p of productionPackages(repo)) copyPackage(repo, p, app);
  for (const p of PRUNE) rmSync(join(app, p), { recursive: true, force: true });
  pruneFiles(join(app, 'node_modules'));
  normaliseModes(app);

  copyFile(join(repo, 'packaging', 'vip-manager.launcher'), join(root, 'usr/bin/vip-manager'), 0o755);
  for (const u of UNITS) copyFile(join(repo, 'packaging', u), join(root, unitDir, u), 0o644);
  copyFile(join(repo, 'packaging', 'vip-manager.sysusers'), join(root, 'usr/lib/sysusers.d/vip-manager.conf'), 0o644);
  // 0640: the file may hold DCS credentials; the package scripts give group vip-manager read access.
  if (withConfig) copyFile(join(repo, 'packaging', 'vip-manager.yml'), join(root, CONFIG_PATH), 0o640);
  copyFile(join(repo, 'README.md'), join(root, DOC_DIR, 'README.md'), 0o644);
  copyFile(join(repo, 'LICENSE'), join(root, DOC_DIR, 'LICENSE'), 0o644);
}

/** Total size in bytes of the files under `dir`. */
export function treeSize(dir) {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const st = lstatSync(join(dir, name));
    total += st.isDirectory() ? treeSize(join(dir, name)) : st.size;
  }
  return total;
}
