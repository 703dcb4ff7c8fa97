// Lays out the installed file tree (the same for the .deb, the .rpm and `make install`) under a
// root directory, for one architecture:
//   /usr/bin/vip-manager                       launcher: runs the bundle on the embedded runtime
//   /usr/lib/vip-manager/node                  the pinned Node.js runtime (packaging/runtime.json)
//   /usr/lib/vip-manager/app/vip-manager.mjs   the bundle's entry, which the launcher runs
//   /usr/lib/vip-manager/app/*-<hash>.mjs      the rest of the daemon and its JavaScript
//                                              dependencies, in chunks loaded when a run needs
//                                              them (packaging/lib/bundle.mjs)
//   /usr/lib/vip-manager/node_modules/@koromix/koffi-linux-<arch>/   koffi's native module
//   /usr/share/vip-manager/vip-manager.yml     the sample configuration (postinst / %config copy
//                                              it to /etc/default/vip-manager.yml)
// plus the units, the sysusers file, the man page, the Prometheus rules and Grafana dashboard
// (/usr/share/vip-manager/{prometheus,grafana}/), and the documentation with every
// third-party licence.
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { archByName } from './arch.mjs';
import { bundle, ENTRY_FILE } from './bundle.mjs';
import { koffiPackage } from './koffi.mjs';
import { fetchRuntime, readPin } from './runtime.mjs';

export const APP_DIR = 'usr/lib/vip-manager';
/** The bundle's directory under APP_DIR: the entry and its chunks, nothing else. */
export const BUNDLE_DIR = 'app';
/** What the launcher runs, relative to APP_DIR. */
export const BUNDLE_ENTRY = `${BUNDLE_DIR}/${ENTRY_FILE}`;
export const CONFIG_PATH = 'etc/default/vip-manager.yml';
export const SAMPLE_CONFIG_PATH = 'usr/share/vip-manager/vip-manager.yml';
/** Debian's template for `pg_createconfig_patroni --vip` (postgresql-common), as Debian ships it. */
export const PATRONI_VIP_TEMPLATE = 'etc/patroni/vip.in';
export const DOC_DIR = 'usr/share/doc/vip-manager';
export const MAN_PAGE = 'usr/share/man/man1/vip-manager.1.gz';
export const ALERT_RULES = 'usr/share/vip-manager/prometheus/vip-manager.rules.yml';
export const DASHBOARD = 'usr/share/vip-manager/grafana/vip-manager.json';
export const UNITS = ['vip-manager.service', 'vip-manager@.service'];
/** Where systemd looks for package units: Debian's packaging path, and Fedora/RHEL's. */
export const UNIT_DIR_DEB = 'lib/systemd/system';
export const UNIT_DIR_RPM = 'usr/lib/systemd/system';

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

/**
 * The npm packages whose code the bundle holds, from esbuild's list of inputs: their directories
 * relative to the repository, nested copies (node_modules/a/node_modules/b, another version of
 * b than the top-level one) included.
 */
function bundledPackages(inputs) {
  const dirs = new Set();
  for (const input of inputs) {
    // Modules of a plugin's namespace ("vip-builtin:node:fs for ...") are no files.
    if (/^[a-z-]+:/.test(input)) continue;
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) dirs.add(m[1]);
  }
  const name = (dir) => dir.replace(/^.*node_modules\//, '');
  return [...dirs].sort((a, b) => name(a).localeCompare(name(b)) || a.localeCompare(b));
}

/**
 * One file with the licence of every third-party component the package ships (the bundled npm
 * packages, koffi's native module, the Node.js runtime): their licences require the notices to
 * travel with the code.
 */
function thirdPartyLicenses(repo, packageDirs, koffi, runtimeDir, pin) {
  const parts = [];
  const licenseText = (dir) => {
    const f = readdirSync(dir).find((n) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(n));
    return f ? readFileSync(join(dir, f), 'utf8').trim() : null;
  };
  const seen = new Set();
  for (const rel of packageDirs) {
    const dir = join(repo, rel);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    if (seen.has(`${pkg.name}@${pkg.version}`)) continue;
    seen.add(`${pkg.name}@${pkg.version}`);
    const text = licenseText(dir);
    parts.push(`${pkg.name} ${pkg.version} (${pkg.license ?? 'see package'})\n\n${text ?? `License: ${pkg.license} (the package ships no licence file)`}`);
  }
  parts.push(`${koffi.name} ${koffi.version} (MIT)\n\n${licenseText(join(repo, 'node_modules', 'koffi')) ?? 'License: MIT'}`);
  parts.push(`Node.js ${pin.node} (MIT and the licences of the components it bundles)\n\n${readFileSync(join(runtimeDir, 'LICENSE'), 'utf8').trim()}`);
  return `Third-party software in this package, with its licences.\n\n${parts.map((p) => `${'='.repeat(78)}\n${p}\n`).join('\n')}`;
}

/**
 * Fills `root` with the installed layout for `arch` (amd64 or arm64). `unitDir` is where the
 * units go (UNIT_DIR_DEB or UNIT_DIR_RPM); `sampleConfig` is the rendered sample configuration,
 * checked against the copy in packaging/ so a stale file cannot be shipped. Returns what the
 * package builders need to know: the ELF files inside (for dependencies) and the runtime pin.
 */
export async function stage({ repo, root, arch, unitDir, sampleConfig, withPatroniTemplate = false }) {
  const a = archByName(arch);
  const dist = join(repo, 'dist');
  mustExist(join(dist, 'src', 'main.js'), 'build first (`npm run build`)');
  mustExist(join(dist, 'build-info.json'), 'build with `npm run build` (it records version and commit)');
  const shipped = readFileSync(join(repo, 'packaging', 'vip-manager.yml'), 'utf8');
  if (shipped !== sampleConfig) {
    throw new StageError('packaging/vip-manager.yml differs from the configuration schema: run `node scripts/package.mjs sample-config` and commit the result');
  }
  const pin = readPin();
  const info = { ...JSON.parse(readFileSync(join(dist, 'build-info.json'), 'utf8')), runtime: pin.node };

  const app = join(root, APP_DIR);
  mkdirSync(app, { recursive: true });
  const runtimeDir = fetchRuntime(a.key, pin);
  copyFile(join(runtimeDir, 'bin', 'node'), join(app, 'node'), 0o755);
  const { inputs } = await bundle({ repo, outdir: join(app, BUNDLE_DIR), buildInfo: info });
  const launcher = readFileSync(join(repo, 'packaging', 'vip-manager.launcher'), 'utf8');
  if (!launcher.includes(`"$lib/${BUNDLE_ENTRY}"`)) throw new StageError(`packaging/vip-manager.launcher does not run "$lib/${BUNDLE_ENTRY}"`);
  const koffi = koffiPackage(repo, a.key);
  const koffiDest = join(app, 'node_modules', koffi.name);
  for (const f of ['package.json', 'index.js', 'README.md']) {
    if (existsSync(join(koffi.dir, f))) copyFile(join(koffi.dir, f), join(koffiDest, f), 0o644);
  }
  // Only the glibc build: koffi picks linux_<arch> when the runtime's interpreter is glibc's,
  // and the embedded runtime is a glibc build.
  copyFile(koffi.native, join(koffiDest, `linux_${a.node}`, 'koffi.node'), 0o644);
  normaliseModes(app);

  copyFile(join(repo, 'packaging', 'vip-manager.launcher'), join(root, 'usr/bin/vip-manager'), 0o755);
  for (const u of UNITS) copyFile(join(repo, 'packaging', u), join(root, unitDir, u), 0o644);
  copyFile(join(repo, 'packaging', 'vip-manager.sysusers'), join(root, 'usr/lib/sysusers.d/vip-manager.conf'), 0o644);
  copyFile(join(repo, 'packaging', 'vip-manager.yml'), join(root, SAMPLE_CONFIG_PATH), 0o644);
  if (withPatroniTemplate) copyFile(join(repo, 'packaging', 'debian', 'vip.in'), join(root, PATRONI_VIP_TEMPLATE), 0o644);
  copyFile(join(repo, 'packaging', 'prometheus', 'vip-manager.rules.yml'), join(root, ALERT_RULES), 0o644);
  copyFile(join(repo, 'packaging', 'grafana', 'vip-manager.json'), join(root, DASHBOARD), 0o644);
  // Generated from the same schema as --help; gzip -9 as Debian policy asks (Node's gzip
  // header carries no timestamp, so the file is reproducible).
  const { renderManPage } = await import(pathToFileURL(join(dist, 'src', 'ops', 'man-page.js')).href);
  mkdirSync(dirname(join(root, MAN_PAGE)), { recursive: true });
  writeFileSync(join(root, MAN_PAGE), gzipSync(Buffer.from(renderManPage({ version: info.version })), { level: 9 }));
  chmodSync(join(root, MAN_PAGE), 0o644);
  copyFile(join(repo, 'README.md'), join(root, DOC_DIR, 'README.md'), 0o644);
  copyFile(join(repo, 'LICENSE'), join(root, DOC_DIR, 'LICENSE'), 0o644);
  writeFileSync(join(root, DOC_DIR, 'THIRD-PARTY-LICENSES'), thirdPartyLicenses(repo, bundledPackages(inputs), koffi, runtimeDir, pin));
  chmodSync(join(root, DOC_DIR, 'THIRD-PARTY-LICENSES'), 0o644);

  return {
    arch: a,
    pin,
    elfFiles: [join(app, 'node'), join(koffiDest, `linux_${a.node}`, 'koffi.node')],
  };
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
