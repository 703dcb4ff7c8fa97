// Version, commit and build date, and the Node.js runtime the daemon runs on. A packaged build
// (scripts/package.mjs bundles the code with esbuild) has them compiled in, together with the
// runtime version the package embeds; a checkout reads dist/build-info.json, written by
// scripts/build.mjs next to the compiled tree.
import { readFileSync } from 'node:fs';

export interface BuildInfo {
  version: string;
  commit: string;
  date: string;
  /**
   * The Node.js version the package embeds (packaging/runtime.json), set only in a packaged
   * build: then --version and /status can tell whether the daemon really runs on it.
   */
  runtime?: string;
}

/** Defined by the bundler (packaging/lib/bundle.mjs) in a packaged build; absent in a checkout. */
declare const VIP_MANAGER_BUILD_INFO: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  if (typeof VIP_MANAGER_BUILD_INFO !== 'undefined') return VIP_MANAGER_BUILD_INFO;
  try {
    return JSON.parse(readFileSync(new URL('../build-info.json', import.meta.url), 'utf8')) as BuildInfo;
  } catch {
    return { version: 'unknown', commit: 'unknown', date: 'unknown' };
  }
}

export interface RuntimeInfo {
  /** process.versions.node of the running process, e.g. "24.22.3". */
  node: string;
  /** True when that is the runtime the package embeds (false in a checkout or with another node). */
  embedded: boolean;
}

export function runtimeInfo(info: BuildInfo = buildInfo()): RuntimeInfo {
  return { node: process.versions.node, embedded: info.runtime !== undefined && info.runtime === process.versions.node };
}

/**
 * The Go original's --version layout (version, commit, date), so scripts that grep it keep
 * working, plus the runtime: with an embedded runtime, the version a security advisory names.
 */
export function versionText(): string {
  const b = buildInfo();
  const rt = runtimeInfo(b);
  return `version: ${b.version}\ncommit: ${b.commit}\ndate: ${b.date}\nruntime: Node.js ${rt.node} (${rt.embedded ? 'embedded' : `system: ${process.execPath}`})\n`;
}
