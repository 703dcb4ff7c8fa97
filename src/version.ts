// Version, commit and build date, written by scripts/build.mjs next to the compiled tree.
import { readFileSync } from 'node:fs';

export interface BuildInfo {
  version: string;
  commit: string;
  date: string;
}

export function buildInfo(): BuildInfo {
  try {
    return JSON.parse(readFileSync(new URL('../build-info.json', import.meta.url), 'utf8')) as BuildInfo;
  } catch {
    return { version: 'unknown', commit: 'unknown', date: 'unknown' };
  }
}

/** The Go original's --version layout, so scripts that grep it keep working. */
export function versionText(): string {
  const b = buildInfo();
  return `version: ${b.version}\ncommit: ${b.commit}\ndate: ${b.date}\n`;
}
