// Builds the .rpm for one architecture with rpmbuild from a staged tree; the spec only copies
// it (nothing compiles). Cross-architecture: `--target` without a BuildArch, so rpmbuild on
// amd64 labels the package aarch64 without wanting to run anything of it.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rpmRequires } from './depends.mjs';
import { elfNeeds, mergeNeeds } from './elf.mjs';
import { UNIT_DIR_RPM, stage } from './stage.mjs';
import { rpmFileName, rpmVersion } from './version.mjs';

export async function buildRpm({ repo, work, out, sampleConfig, arch, xzLevel = 6 }) {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  const root = join(work, `rpm-root-${arch}`);
  const staged = await stage({ repo, root, arch, unitDir: UNIT_DIR_RPM, sampleConfig });
  const rpmArch = staged.arch.rpm;
  // The sample is also the %config(noreplace) file: rpm installs it where none exists and keeps
  // an edited one (writing ours beside it as .rpmnew), on a first install as on an upgrade.
  mkdirSync(join(root, 'etc', 'default'), { recursive: true });
  copyFileSync(join(repo, 'packaging', 'vip-manager.yml'), join(root, 'etc', 'default', 'vip-manager.yml'));

  const top = join(work, `rpmbuild-${arch}`);
  for (const d of ['BUILD', 'RPMS', 'SOURCES', 'SPECS', 'SRPMS', 'BUILDROOT']) mkdirSync(join(top, d), { recursive: true });
  const spec = join(top, 'SPECS', 'vip-manager.spec');
  const v = rpmVersion(pkg.version);
  const requires = rpmRequires(mergeNeeds(staged.elfFiles.map(elfNeeds))).map((r) => `Requires:       ${r}`).join('\n');
  writeFileSync(spec, readFileSync(join(repo, 'packaging', 'rpm', 'vip-manager.spec.in'), 'utf8')
    .replaceAll('@EPOCH@', String(v.epoch))
    .replaceAll('@VERSION@', v.version)
    .replaceAll('@RELEASE@', v.release)
    .replaceAll('@REQUIRES@', requires));
  execFileSync('rpmbuild', [
    '-bb', '--quiet', '--nodeps',
    '--target', `${rpmArch}-linux`,
    '--define', `_topdir ${top}`,
    '--define', `stagedir ${root}`,
    // xz as the .deb, with a thread per core ("T" without a number).
    '--define', `_binary_payload w${xzLevel}T.xzdio`,
    spec,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });

  const built = readdirSync(join(top, 'RPMS', rpmArch)).filter((f) => f.endsWith('.rpm'));
  if (built.length !== 1) throw new Error(`rpmbuild produced ${built.length} packages, expected 1: ${built.join(', ')}`);
  mkdirSync(out, { recursive: true });
  const file = join(out, rpmFileName(pkg.name, pkg.version, rpmArch));
  copyFileSync(join(top, 'RPMS', rpmArch, built[0]), file);
  return file;
}
