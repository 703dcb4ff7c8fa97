// Builds the .deb for one architecture with dpkg-deb from a staged tree plus the DEBIAN/ area.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { debianDepends } from './depends.mjs';
import { elfNeeds, mergeNeeds } from './elf.mjs';
import { DOC_DIR, PATRONI_VIP_TEMPLATE, UNIT_DIR_DEB, stage, treeSize } from './stage.mjs';
import { debFileName, debVersion } from './version.mjs';

const MAINTAINER = process.env.DEB_MAINTAINER ?? 'vip-manager maintainers <vip-manager@localhost>';
/**
 * Besides the libraries the runtime links: ca-certificates (the launcher trusts the system's CA
 * store, as the Go original does), adduser (postinst creates the system user) and procps (the
 * units' ExecReload= sends SIGHUP with its /bin/kill; a minimal root lacks it).
 */
const EXTRA_DEPENDS = ['ca-certificates', 'adduser', 'procps'];

function control({ pkg, version, arch, installedKiB, depends }) {
  return [
    `Package: ${pkg.name}`,
    `Version: ${version}`,
    `Architecture: ${arch}`,
    `Maintainer: ${MAINTAINER}`,
    `Installed-Size: ${installedKiB}`,
    `Depends: ${depends.join(', ')}`,
    'Enhances: patroni',
    'Section: net',
    'Priority: optional',
    `Description: ${pkg.description}`,
    ' vip-manager watches a leader key in etcd, Consul or the Patroni REST API and keeps a',
    " virtual IP address on the machine whose name is the key's value: added over netlink",
    ' with gratuitous ARP and unsolicited neighbour advertisements, or moved through the',
    ' Hetzner APIs. A drop-in replacement for the Go vip-manager (same command line,',
    ' configuration keys and units, including the vip-manager@ instances configured by',
    " Debian's pg_createconfig_patroni), running unprivileged with CAP_NET_ADMIN and",
    ' CAP_NET_RAW, with Prometheus metrics, health endpoints and systemd readiness and',
    ' watchdog. Self-contained: it embeds the Node.js runtime it runs on.',
    '',
  ].join('\n');
}

/** Debian policy's machine-readable copyright file. */
function copyright(licenseText) {
  const bsd = licenseText.trimEnd().split('\n').map((l) => (l.trim() === '' ? ' .' : ` ${l}`));
  return [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    'Upstream-Name: vip-manager',
    '',
    'Files: *',
    'Copyright: the vip-manager contributors',
    'License: BSD-2-Clause',
    ...bsd,
    '',
    'Files: etc/patroni/vip.in',
    "Copyright: 2019 Michael Banck (Debian's vip-manager packaging, kept identical)",
    'License: BSD-2-Clause',
    '',
    'Files: usr/lib/vip-manager/node usr/lib/vip-manager/app/* usr/lib/vip-manager/node_modules/*',
    'Copyright: the Node.js contributors and the authors of the bundled packages',
    'License: various (MIT, ISC, Apache-2.0, BSD)',
    ' The full texts are in /usr/share/doc/vip-manager/THIRD-PARTY-LICENSES.',
    '',
  ].join('\n');
}

function md5sums(root) {
  const lines = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) lines.push(`${createHash('md5').update(readFileSync(p)).digest('hex')}  ${relative(root, p)}`);
    }
  };
  for (const top of readdirSync(root).filter((n) => n !== 'DEBIAN')) walk(join(root, top));
  return lines.join('\n') + '\n';
}

export async function buildDeb({ repo, work, out, sampleConfig, arch, xzLevel = 6 }) {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  const root = join(work, `deb-root-${arch}`);
  const staged = await stage({ repo, root, arch, unitDir: UNIT_DIR_DEB, sampleConfig, withPatroniTemplate: true });
  writeFileSync(join(root, DOC_DIR, 'copyright'), copyright(readFileSync(join(repo, 'LICENSE'), 'utf8')));
  chmodSync(join(root, DOC_DIR, 'copyright'), 0o644);

  const depends = [...debianDepends(mergeNeeds(staged.elfFiles.map(elfNeeds))), ...EXTRA_DEPENDS];
  const debian = join(root, 'DEBIAN');
  mkdirSync(debian, { mode: 0o755 });
  writeFileSync(join(debian, 'control'), control({ pkg, version: debVersion(pkg.version), arch: staged.arch.deb, installedKiB: Math.ceil(treeSize(root) / 1024), depends }));
  // /etc/default/vip-manager.yml is not a conffile: Debian's 1.0.2 never shipped it and
  // upstream's packages did, so on an upgrade it may be a file dpkg has never seen, and a
  // conffile that differs from such a file stops a non-interactive install at a prompt.
  // postinst installs the sample only where none exists. vip.in is Debian's, byte for byte,
  // so taking it over from Debian's package never prompts either.
  writeFileSync(join(debian, 'conffiles'), `/${PATRONI_VIP_TEMPLATE}\n`);
  writeFileSync(join(debian, 'md5sums'), md5sums(root));
  for (const script of ['postinst', 'prerm', 'postrm']) {
    copyFileSync(join(repo, 'packaging', 'debian', script), join(debian, script));
    chmodSync(join(debian, script), 0o755);
  }
  for (const f of ['control', 'conffiles', 'md5sums']) chmodSync(join(debian, f), 0o644);

  mkdirSync(out, { recursive: true });
  const file = join(out, debFileName(pkg.name, pkg.version, staged.arch.deb));
  // --root-owner-group: every file root:root without fakeroot. xz, dpkg's default, which every
  // dpkg reads; the runtime is most of the package.
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', `-z${xzLevel}`, '--build', root, file], { stdio: ['ignore', 'ignore', 'inherit'] });
  return file;
}
