// Builds the .deb with dpkg-deb from a staged tree plus the DEBIAN/ control area.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CONFIG_PATH, DOC_DIR, UNIT_DIR_DEB, stage, treeSize } from './stage.mjs';

/**
 * amd64, not all: koffi's native module inside is an x86-64 binary.
 * nodejs (>= 20): the code targets Node 20 (package.json engines). Debian 12 ships 18, so on
 * bookworm this needs NodeSource's or a backported nodejs; Debian 13 and Ubuntu 24.04 ship 20+.
 */
export const DEB_ARCH = 'amd64';
export const DEB_DEPENDS = 'nodejs (>= 20), adduser';
const MAINTAINER = process.env.DEB_MAINTAINER ?? 'vip-manager maintainers <vip-manager@localhost>';

function control(pkg, installedKiB) {
  return [
    `Package: ${pkg.name}`,
    `Version: ${pkg.version}`,
    `Architecture: ${DEB_ARCH}`,
    `Maintainer: ${MAINTAINER}`,
    `Installed-Size: ${installedKiB}`,
    `Depends: ${DEB_DEPENDS}`,
    'Section: net',
    'Priority: optional',
    `Description: ${pkg.description}`,
    ' vip-manager watches a leader key in etcd, Consul or the Patroni REST API and keeps a',
    " virtual IP address on the machine whose name is the key's value: added over netlink",
    ' with gratuitous ARP and unsolicited neighbour advertisements, or moved through the',
    ' Hetzner APIs. A drop-in replacement for the Go vip-manager (same command line,',
    ' configuration keys and unit), running unprivileged with CAP_NET_ADMIN and CAP_NET_RAW,',
    ' with Prometheus metrics, health endpoints and systemd readiness and watchdog.',
    '',
  ].join('\n');
}

/** Debian policy's machine-readable copyright file, holding the licence text. */
function copyright(licenseText) {
  return [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    'Upstream-Name: vip-manager',
    '',
    'Files: *',
    'Copyright: the vip-manager contributors',
    'License: BSD-2-Clause',
    ...licenseText.trimEnd().split('\n').map((l) => (l.trim() === '' ? ' .' : ` ${l}`)),
    '',
    'Files: usr/lib/vip-manager/node_modules/*',
    'Copyright: the respective authors; see each package\'s own licence file',
    'License: various (MIT, ISC, Apache-2.0, BSD); see each package directory',
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

export function buildDeb({ repo, work, out, sampleConfig }) {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  const root = join(work, 'deb-root');
  stage({ repo, root, unitDir: UNIT_DIR_DEB, sampleConfig });
  writeFileSync(join(root, DOC_DIR, 'copyright'), copyright(readFileSync(join(repo, 'LICENSE'), 'utf8')));
  chmodSync(join(root, DOC_DIR, 'copyright'), 0o644);

  const debian = join(root, 'DEBIAN');
  mkdirSync(debian, { mode: 0o755 });
  const installedKiB = Math.ceil(treeSize(root) / 1024);
  writeFileSync(join(debian, 'control'), control(pkg, installedKiB));
  writeFileSync(join(debian, 'conffiles'), `/${CONFIG_PATH}\n`);
  writeFileSync(join(debian, 'md5sums'), md5sums(root));
  for (const script of ['postinst', 'prerm', 'postrm']) {
    copyFileSync(join(repo, 'packaging', 'debian', script), join(debian, script));
    chmodSync(join(debian, script), 0o755);
  }
  for (const f of ['control', 'conffiles', 'md5sums']) chmodSync(join(debian, f), 0o644);

  mkdirSync(out, { recursive: true });
  const file = join(out, `${pkg.name}_${pkg.version}_${DEB_ARCH}.deb`);
  // --root-owner-group: every file root:root without needing fakeroot. xz level 6 is dpkg's default.
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', root, file], { stdio: ['ignore', 'ignore', 'inherit'] });
  return file;
}
