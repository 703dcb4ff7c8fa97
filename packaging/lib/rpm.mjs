// Builds the .rpm with rpmbuild from a staged tree; the spec only copies it (nothing compiles).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UNIT_DIR_RPM, stage } from './stage.mjs';

/** x86_64, not noarch: koffi's native module inside is an x86-64 binary. */
export const RPM_ARCH = 'x86_64';
export const RPM_RELEASE = '1';

export function buildRpm({ repo, work, out, sampleConfig }) {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  const root = join(work, 'rpm-root');
  stage({ repo, root, unitDir: UNIT_DIR_RPM, sampleConfig });

  const top = join(work, 'rpmbuild');
  for (const d of ['BUILD', 'RPMS', 'SOURCES', 'SPECS', 'SRPMS', 'BUILDROOT']) mkdirSync(join(top, d), { recursive: true });
  const spec = join(top, 'SPECS', 'vip-manager.spec');
  // rpm versions may not contain '-': a prerelease like 1.0.0-rc.1 becomes 1.0.0~rc.1.
  const version = pkg.version.replace(/-/g, '~');
  writeFileSync(spec, readFileSync(join(repo, 'packaging', 'rpm', 'vip-manager.spec.in'), 'utf8').replaceAll('@VERSION@', version));
  execFileSync('rpmbuild', [
    '-bb', '--quiet', '--nodeps',
    '--define', `_topdir ${top}`,
    '--define', `stagedir ${root}`,
    // xz at level 6, as the .deb; threads would not help much at this size.
    '--define', '_binary_payload w6.xzdio',
    spec,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });

  const built = readdirSync(join(top, 'RPMS', RPM_ARCH)).filter((f) => f.endsWith('.rpm'));
  if (built.length !== 1) throw new Error(`rpmbuild produced ${built.length} packages, expected 1: ${built.join(', ')}`);
  mkdirSync(out, { recursive: true });
  const file = join(out, `${pkg.name}-${version}-${RPM_RELEASE}.${RPM_ARCH}.rpm`);
  copyFileSync(join(top, 'RPMS', RPM_ARCH, built[0]), file);
  return file;
}
