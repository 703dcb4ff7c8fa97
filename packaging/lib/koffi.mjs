// koffi's native module for a target architecture. npm installs only the host's
// (@koromix/koffi-linux-<arch> are optional dependencies limited by "cpu"), so the others are
// fetched from the registry and checked against the integrity package-lock.json records for them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { archByName } from './arch.mjs';
import { unpacked } from './npm-fetch.mjs';

/** The package directory (package.json, index.js, linux_<arch>/koffi.node) for `arch`. */
export function koffiPackage(repo, arch) {
  const a = archByName(arch);
  const name = `@koromix/koffi-linux-${a.node}`;
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8'));
  const entry = lock.packages?.[`node_modules/${name}`];
  if (!entry?.version || !entry.integrity) throw new Error(`package-lock.json has no entry for ${name}: run \`npm install\``);
  const koffi = lock.packages['node_modules/koffi'];
  if (koffi?.version !== entry.version) throw new Error(`${name} ${entry.version} does not match koffi ${koffi?.version} in package-lock.json`);
  const pkgDir = unpacked(name, entry.version, entry.integrity);
  const native = join(pkgDir, `linux_${a.node}`, 'koffi.node');
  if (!existsSync(native)) throw new Error(`${name}: ${native} missing from the package`);
  return { name, dir: pkgDir, native, version: entry.version };
}
