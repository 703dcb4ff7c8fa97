// Environment variables: `VIP_` + the key upper-cased with dashes as underscores, and the same
// for every legacy v1 name. Unknown VIP_* variables are almost always typos, so they warn.
import { KEYS, envName } from './schema.js';
import type { LayerResult, RawEntry } from './raw.js';
import { clip } from './show.js';
import { didYouMean } from './suggest.js';

/** Variables with the VIP_ prefix that are not configuration keys. */
const NON_KEY_VARIABLES = new Set([envName('config')]);

export function readEnv(env: NodeJS.ProcessEnv): LayerResult {
  const known = new Map<string, { key: string; legacy: boolean }>();
  for (const k of KEYS) known.set(envName(k.name), { key: k.name, legacy: false });
  for (const k of KEYS) {
    for (const old of k.legacy ?? []) {
      const name = envName(old);
      // etcd_user → VIP_ETCD_USER is the current name already: not a legacy spelling.
      if (!known.has(name)) known.set(name, { key: k.name, legacy: true });
    }
  }
  const entries: RawEntry[] = [];
  const warnings: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('VIP_') || value === undefined || NON_KEY_VARIABLES.has(name)) continue;
    const hit = known.get(name);
    if (hit === undefined) {
      warnings.push(`env ${clip(name)} is not a configuration key and is ignored${didYouMean(name, [...known.keys()].filter((n) => !known.get(n)!.legacy))}`);
      continue;
    }
    if (hit.legacy) warnings.push(`env ${name} is a legacy name; use ${envName(hit.key)}`);
    entries.push({ key: hit.key, raw: value, origin: { layer: 'env', name, where: `env ${name}` } });
  }
  return { entries, problems: [], warnings };
}
