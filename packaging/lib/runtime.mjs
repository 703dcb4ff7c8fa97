// The pinned Node.js runtime (packaging/runtime.json): the official builds, published on the npm
// registry as node-linux-<arch>, fetched and verified, unpacked once per version and arch.
// Node 18-compatible (see npm-fetch.mjs).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { archByName } from './arch.mjs';
import { unpacked } from './npm-fetch.mjs';

const PIN_FILE = fileURLToPath(new URL('../runtime.json', import.meta.url));

export function readPin() {
  return JSON.parse(readFileSync(PIN_FILE, 'utf8'));
}

export function pinFile() {
  return PIN_FILE;
}

/** The npm package that carries the official build for an architecture. */
export function runtimePackage(arch) {
  return `node-linux-${archByName(arch).node}`;
}

/**
 * A directory holding bin/node and LICENSE of the pinned runtime for `arch` (Debian, rpm or
 * Node name), unpacked from the verified tarball into the cache.
 */
export function fetchRuntime(arch, pin = readPin()) {
  const name = runtimePackage(arch);
  return unpacked(name, pin.node, pin.integrity[name], ['package/bin/node', 'package/LICENSE']);
}

/** The pinned npm's package directory (package/bin/npm-cli.js inside), for scripts/setup.sh. */
export function fetchNpm(pin = readPin()) {
  return unpacked('npm', pin.npm, pin.integrity.npm);
}
