// The architectures we package, under each naming scheme that meets them. Only the runtime and
// koffi's native module differ between them; the bundled application is architecture-free.
export const ARCHES = {
  amd64: { deb: 'amd64', rpm: 'x86_64', node: 'x64', elfMachine: 62 /* EM_X86_64 */, elfName: 'x86-64' },
  arm64: { deb: 'arm64', rpm: 'aarch64', node: 'arm64', elfMachine: 183 /* EM_AARCH64 */, elfName: 'AArch64' },
};

/** The architecture names accepted on command lines: Debian's, rpm's and Node's all work. */
export function archByName(name) {
  for (const [key, a] of Object.entries(ARCHES)) {
    if (name === key || name === a.rpm || name === a.node) return { key, ...a };
  }
  throw new Error(`unknown architecture "${name}": expected one of ${Object.keys(ARCHES).join(', ')}`);
}

/** The architecture of the machine we run on (process.arch is Node's name). */
export function hostArch() {
  return archByName(process.arch);
}
