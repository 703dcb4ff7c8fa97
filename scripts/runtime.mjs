// The embedded Node.js runtime, from the command line (runs on Debian 12's Node 18 too):
//   node scripts/runtime.mjs fetch --arch amd64|arm64     print the directory holding bin/node
//   node scripts/runtime.mjs install --prefix DIR         install the pinned node + npm for this
//                                                          machine under DIR/<version> (setup.sh)
//   node scripts/runtime.mjs bump VERSION [--npm VERSION]  move the pin to a new release
//                                                          (`npm run bump-runtime VERSION`)
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ARCHES, hostArch } from '../packaging/lib/arch.mjs';
import { fetchNpm, fetchRuntime, pinFile, readPin, runtimePackage } from '../packaging/lib/runtime.mjs';

function npmView(spec, field) {
  return execFileSync('npm', ['view', spec, field], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/** Re-pins to VERSION: the integrity hashes come from the registry and are checked by fetching. */
function bump(version, npmVersion) {
  if (!/^\d+\.\d+\.\d+$/.test(version ?? '')) throw new Error(`bump needs a Node.js version like 24.22.3, got "${version ?? ''}"`);
  const pin = readPin();
  const major = Number(version.split('.')[0]);
  if (major % 2 !== 0) throw new Error(`${version} is not a long-term-support line (odd major); the packages embed an LTS release`);
  const next = { ...pin, node: version, integrity: { ...pin.integrity } };
  if (npmVersion) next.npm = npmVersion;
  for (const a of Object.values(ARCHES)) {
    const name = runtimePackage(a.node);
    const integrity = npmView(`${name}@${version}`, 'dist.integrity');
    if (!integrity) throw new Error(`${name}@${version} is not on the registry`);
    next.integrity[name] = integrity;
  }
  next.integrity.npm = npmView(`npm@${next.npm}`, 'dist.integrity');
  // Download both builds now, so a bad pin fails here and not in the next package build.
  for (const a of Object.keys(ARCHES)) fetchRuntime(a, next);
  fetchNpm(next);
  writeFileSync(pinFile(), JSON.stringify(next, null, 2) + '\n');
  console.log(`pinned Node.js ${version} (was ${pin.node}) and npm ${next.npm}; rebuild the packages (npm run package) and run the tests`);
}

/**
 * Installs node and npm for this machine as the official tarballs lay them out
 * (PREFIX/<version>/bin/node, lib/node_modules/npm, bin/npm -> npm-cli.js), and prints the bin
 * directory. scripts/setup.sh links it into /usr/local/bin.
 */
function install(prefix) {
  const pin = readPin();
  const root = join(prefix, `v${pin.node}`);
  const bin = join(root, 'bin');
  if (!existsSync(join(bin, 'node')) || !existsSync(join(bin, 'npm'))) {
    const tmp = `${root}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(join(tmp, 'bin'), { recursive: true });
    mkdirSync(join(tmp, 'lib', 'node_modules'), { recursive: true });
    const rt = fetchRuntime(hostArch().key, pin);
    cpSync(join(rt, 'bin', 'node'), join(tmp, 'bin', 'node'));
    cpSync(join(rt, 'LICENSE'), join(tmp, 'LICENSE'));
    cpSync(fetchNpm(pin), join(tmp, 'lib', 'node_modules', 'npm'), { recursive: true });
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(tmp, 'bin', 'npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(tmp, 'bin', 'npx'));
    rmSync(root, { recursive: true, force: true });
    renameSync(tmp, root);
  }
  console.log(bin);
}

function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { arch: { type: 'string' }, prefix: { type: 'string' }, npm: { type: 'string' } },
  });
  switch (positionals[0]) {
    case 'fetch':
      console.log(fetchRuntime(values.arch ?? hostArch().key));
      return;
    case 'install':
      if (!values.prefix) throw new Error('install needs --prefix DIR');
      install(values.prefix);
      return;
    case 'bump':
      bump(positionals[1], values.npm);
      return;
    default:
      throw new Error(`unknown command "${positionals[0] ?? ''}": expected fetch, install or bump`);
  }
}

try {
  main();
} catch (e) {
  console.error(`runtime: ${e.message}`);
  process.exitCode = 1;
}
