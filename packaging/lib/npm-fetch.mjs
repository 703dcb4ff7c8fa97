// Downloads a package's tarball from the npm registry the machine's npm is configured for, and
// checks it against the integrity hash we pinned before anything inside is used. Runs on the
// Node.js 18 that Debian 12 ships too (scripts/setup.sh bootstraps the pinned runtime with it),
// so: no import.meta.dirname, nothing newer than Node 18.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export class IntegrityError extends Error {
  constructor(message) {
    super(message);
    this.name = 'IntegrityError';
  }
}

/** Where verified tarballs are kept between builds: outside the repository, shared by checkouts. */
export function cacheDir() {
  return process.env.VIP_MANAGER_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vip-manager');
}

/** An SRI string as npm records it ("sha512-<base64>") for a file's bytes. */
export function integrityOf(file) {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/**
 * The verified tarball of name@version: from the cache when its hash matches, otherwise fetched
 * with `npm pack` (which honours the machine's registry, proxy and CA settings).
 */
export function fetchTarball(name, version, integrity) {
  if (!/^sha512-[A-Za-z0-9+/]+=*$/.test(integrity ?? '')) throw new IntegrityError(`${name}@${version}: no sha512 integrity pinned`);
  const dir = join(cacheDir(), 'npm');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
  if (existsSync(file) && integrityOf(file) === integrity) return file;
  const tmp = mkdtempSync(join(dir, '.fetch-'));
  try {
    execFileSync('npm', ['pack', `${name}@${version}`, '--pack-destination', tmp, '--silent', '--ignore-scripts'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const got = readdirSync(tmp).filter((f) => f.endsWith('.tgz'));
    if (got.length !== 1) throw new Error(`npm pack ${name}@${version} produced ${got.length} tarballs`);
    const actual = integrityOf(join(tmp, got[0]));
    if (actual !== integrity) {
      throw new IntegrityError(`${name}@${version}: the registry's tarball has integrity ${actual}, but ${integrity} is pinned; refusing to use it`);
    }
    renameSync(join(tmp, got[0]), file);
    return file;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * name@version's verified tarball unpacked into the cache (all of it, or only `members`, paths
 * inside it such as "package/bin/node"); returns its package/ directory. Unpacked beside and
 * renamed into place, so a directory that exists is complete.
 */
export function unpacked(name, version, integrity, members = []) {
  const dir = join(cacheDir(), 'unpacked', `${name.replace(/^@/, '').replace('/', '-')}-${version}`);
  if (!existsSync(dir)) {
    const tgz = fetchTarball(name, version, integrity);
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    execFileSync('tar', ['-xzf', tgz, '-C', tmp, '--no-same-owner', ...members], { stdio: ['ignore', 'ignore', 'inherit'] });
    renameSync(tmp, dir);
  }
  return join(dir, 'package');
}
