// The packages, built once per `npm test` run for all the test files that need them (they run
// in separate processes, two at a time): the first asker builds a package under a lock
// directory, the others wait for it. Keyed by the build (dist/build-info.json changes with
// every `npm run build`), so a stale package from an earlier build is never used. A process keeps
// the key it first saw, and packages of another key are removed only when no live process uses
// them: a rebuild of dist/ while a test file runs must not delete the packages it is checking.
// Built with xz level 1: the same contents as `npm run package` (level 6), in a fifth of the time.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pidAlive } from './pid.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const BUILD_TIMEOUT_MS = 10 * 60_000;

export type PackageKind = 'deb' | 'rpm';
export type PackageArch = 'amd64' | 'arm64';

function buildKey(): string {
  const info = readFileSync(join(REPO, 'dist', 'build-info.json'), 'utf8');
  const pin = readFileSync(join(REPO, 'packaging', 'runtime.json'), 'utf8');
  return createHash('sha256').update(info).update(pin).digest('hex').slice(0, 12);
}

const memo = new Map<string, Promise<string>>();
let processKey: string | undefined;

/** The path of the package of `kind` for `arch`, built from the current dist/ if needed. */
export function builtPackage(kind: PackageKind, arch: PackageArch): Promise<string> {
  const id = `${kind}-${arch}`;
  let p = memo.get(id);
  if (!p) {
    p = build(kind, arch);
    memo.set(id, p);
  }
  return p;
}

async function build(kind: PackageKind, arch: PackageArch): Promise<string> {
  const top = join(REPO, 'build', 'test-packages');
  const key = processKey ??= buildKey();
  const dir = join(top, key, `${kind}-${arch}`);
  const done = join(dir, 'done');
  const lock = join(top, key, `${kind}-${arch}.lock`);
  mkdirSync(join(top, key), { recursive: true });
  writeFileSync(join(top, key, `user-${process.pid}`), '');
  // Older builds' packages are 30 MB each: keep only this build's, and those a live process uses.
  for (const old of readdirSync(top)) {
    if (old === key) continue;
    let users: string[] = [];
    try { users = readdirSync(join(top, old)).filter((n) => /^user-\d+$/.test(n)); } catch { continue; }
    if (!users.some((u) => pidAlive(Number(u.slice('user-'.length))))) rmSync(join(top, old), { recursive: true, force: true });
  }
  const deadline = Date.now() + BUILD_TIMEOUT_MS;
  for (;;) {
    if (existsSync(done)) return readFileSync(done, 'utf8').trim();
    try {
      mkdirSync(lock);
    } catch {
      let owner = 0;
      try { owner = Number(readFileSync(join(lock, 'pid'), 'utf8').trim()); } catch { /* just taken: its pid follows */ }
      if (owner && !pidAlive(owner)) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`waited ${BUILD_TIMEOUT_MS / 1000} s for another test process to build the ${arch} ${kind}`);
      await sleep(500);
      continue;
    }
    try {
      writeFileSync(join(lock, 'pid'), String(process.pid));
      rmSync(dir, { recursive: true, force: true });
      const { stdout } = await promisify(execFile)(process.execPath, [join(REPO, 'scripts', 'package.mjs'), kind, '--arch', arch, '--out', dir, '--xz-level', '1'], { cwd: REPO, maxBuffer: 16 * 1024 * 1024 });
      const file = /^built (.+)$/m.exec(stdout)?.[1];
      if (!file || !existsSync(file)) throw new Error(`scripts/package.mjs built no ${kind} for ${arch}:\n${stdout}`);
      writeFileSync(done, file);
      return file;
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}
