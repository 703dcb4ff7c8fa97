// Package dependencies derived from what the ELF files in the package need (elf.mjs): for the
// .deb, Debian package names with minimum versions; for the .rpm, the capabilities rpm's own
// ELF dependency generator would write. A library not listed here fails the build, so a new
// runtime that needs something new cannot slip into a package that does not declare it.
import { compareDotted, highest } from './elf.mjs';

/** The GCC release that introduced each libstdc++ symbol version (libstdc++ ABI docs). */
const GLIBCXX_GCC = new Map([
  ['3.4.20', '4.9'], ['3.4.21', '5'], ['3.4.22', '6'], ['3.4.23', '7'], ['3.4.24', '7'], ['3.4.25', '8'],
  ['3.4.26', '9'], ['3.4.27', '9'], ['3.4.28', '10'], ['3.4.29', '11'], ['3.4.30', '12'], ['3.4.31', '13'],
  ['3.4.32', '14'], ['3.4.33', '15'],
]);
const CXXABI_GCC = new Map([
  ['1.3.8', '4.9'], ['1.3.9', '5'], ['1.3.10', '6'], ['1.3.11', '7'], ['1.3.12', '9'], ['1.3.13', '11'],
  ['1.3.14', '12'], ['1.3.15', '13'], ['1.3.16', '14'],
]);

const GLIBC_LIBS = /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|ld-linux-(x86-64\.so\.2|aarch64\.so\.1))$/;

function gccFloor(versions) {
  const floors = [];
  const cxx = highest(versions, 'GLIBCXX');
  if (cxx !== null) {
    if (!GLIBCXX_GCC.has(cxx) && compareDotted(cxx, '3.4.20') > 0) throw new Error(`libstdc++ symbol version GLIBCXX_${cxx} is not in packaging/lib/depends.mjs: add the GCC release that introduced it`);
    floors.push(GLIBCXX_GCC.get(cxx) ?? '4.9');
  }
  const abi = highest(versions, 'CXXABI');
  if (abi !== null) {
    if (!CXXABI_GCC.has(abi) && compareDotted(abi, '1.3.8') > 0) throw new Error(`libstdc++ symbol version CXXABI_${abi} is not in packaging/lib/depends.mjs: add the GCC release that introduced it`);
    floors.push(CXXABI_GCC.get(abi) ?? '4.9');
  }
  return floors.sort((a, b) => compareDotted(b, a))[0] ?? null;
}

/** Debian "Depends" entries (without ca-certificates etc., which the caller adds). */
export function debianDepends(needs) {
  const out = [];
  const glibc = [];
  for (const [lib, versions] of needs) {
    if (GLIBC_LIBS.test(lib)) {
      glibc.push(...versions);
    } else if (lib === 'libstdc++.so.6') {
      const gcc = gccFloor(versions);
      out.push(gcc ? `libstdc++6 (>= ${gcc})` : 'libstdc++6');
    } else if (lib === 'libgcc_s.so.1') {
      // libgcc1 before Debian 11 / Ubuntu 20.04, libgcc-s1 since.
      out.push('libgcc-s1 | libgcc1');
    } else if (lib === 'libatomic.so.1') {
      out.push('libatomic1');
    } else {
      throw new Error(`no Debian package known for ${lib}: add it to packaging/lib/depends.mjs`);
    }
  }
  const g = highest(glibc, 'GLIBC');
  out.unshift(g ? `libc6 (>= ${g})` : 'libc6');
  return [...new Set(out)];
}

/** rpm "Requires" capabilities, as rpm's elfdeps writes them for a 64-bit ELF file. */
export function rpmRequires(needs) {
  const out = [];
  for (const [lib, versions] of [...needs].sort(([a], [b]) => a.localeCompare(b))) {
    out.push(`${lib}()(64bit)`);
    for (const v of [...versions].sort()) out.push(`${lib}(${v})(64bit)`);
  }
  return out;
}
