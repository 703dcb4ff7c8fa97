// `make install DESTDIR=...`: the packages' layout, installed straight into a directory.
// An existing configuration file is left alone (as the packages do).
import { chmodSync, copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { APP_DIR, CONFIG_PATH, UNIT_DIR_DEB, stage } from './stage.mjs';

export async function install({ repo, destdir, unitDir = UNIT_DIR_DEB, sampleConfig, arch }) {
  // Files of an older version must not linger next to the new ones.
  rmSync(join(destdir, APP_DIR), { recursive: true, force: true });
  await stage({ repo, root: destdir, arch, unitDir: unitDir.replace(/^\/+/, ''), sampleConfig });
  const config = join(destdir, CONFIG_PATH);
  if (existsSync(config)) return { configInstalled: false, config };
  mkdirSync(dirname(config), { recursive: true });
  copyFileSync(join(repo, 'packaging', 'vip-manager.yml'), config);
  chmodSync(config, 0o640);
  return { configInstalled: true, config };
}
