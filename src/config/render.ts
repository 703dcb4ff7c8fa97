// Everything the configuration shows to people, generated from the schema: the effective
// configuration for --check-config (YAML that can be fed back as --config, each value's source
// as a trailing comment, secrets masked) and the README's configuration table.
import { Document, isMap, isNode, isScalar, type YAMLMap } from 'yaml';
import type { Origin } from './errors.js';
import type { LoadedConfig, VipEntry } from './load.js';
import { KEYS, PROCESS_KEYS, VIP_KEYS, envName, type Config, type KeyDef } from './schema.js';
import { VIPS_KEY } from './vips.js';

export const MASK = '*****';

/**
 * Configuration with secrets masked: the only form in which config is logged or served. With a
 * scope, only its keys: 'process' for the daemon as a whole, 'vip' for one entry.
 */
export function maskedConfig(config: Config, scope?: KeyDef['scope']): Record<string, unknown> {
  const keys = scope === undefined ? KEYS : scope === 'vip' ? VIP_KEYS : PROCESS_KEYS;
  return Object.fromEntries(
    keys.filter((k) => config[k.name as keyof Config] !== undefined).map((k) => [k.name, k.secret ? MASK : config[k.name as keyof Config]]),
  );
}

/** One VIP's own keys (name first), secrets masked: how an entry is logged or served. */
export function maskedEntry(entry: VipEntry): Record<string, unknown> {
  // The name first: it is what an entry is looked for by.
  return { name: entry.name, ...maskedConfig(entry.config, 'vip') };
}

function sourceComment(o: Origin): string {
  return o.layer === 'default' ? ' default' : ` ${o.layer} (${o.where.replace(/^(flag|env|file) /, '')})`;
}

/** Each value of a mapping gets its source as a trailing comment; lists are shown in flow style. */
function annotate(map: unknown, masked: Record<string, unknown>, sources: ReadonlyMap<string, Origin>): void {
  if (!isMap(map)) return;
  for (const pair of map.items) {
    const key = String((pair.key as { value: unknown }).value);
    const origin = sources.get(key);
    if (origin !== undefined && isNode(pair.value)) {
      pair.value.comment = sourceComment(origin);
      if (Array.isArray(masked[key])) (pair.value as { flow?: boolean }).flow = true;
    }
  }
}

const unsetLines = (keys: readonly KeyDef[], masked: Record<string, unknown>) => keys.filter((k) => !(k.name in masked)).map((k) => ` ${k.name}: (not set)`);

const HEADER = '# vip-manager effective configuration; each value is followed by its source (flag, env, file, default).';

/**
 * The effective configuration as YAML that loads back to the same configuration. Without
 * `vips:` exactly as before; with it, the process-wide keys, then each entry with every
 * per-VIP key it ends up with (its own, inherited from the top level, or defaults).
 */
export function renderEffectiveConfig(loaded: LoadedConfig): string {
  if (loaded.vips.length === 1 && loaded.vips[0]!.index === null) {
    const masked = maskedConfig(loaded.config);
    const doc = new Document(masked);
    annotate(doc.contents, masked, loaded.sources);
    const unset = unsetLines(KEYS, masked).map((l) => `#${l}`);
    return [HEADER, doc.toString({ lineWidth: 0 }).trimEnd(), ...unset, ''].join('\n');
  }
  const top = maskedConfig(loaded.config, 'process');
  const entries = loaded.vips.map(maskedEntry);
  const doc = new Document({ ...top, [VIPS_KEY]: entries });
  const root = doc.contents as YAMLMap;
  annotate(root, top, loaded.sources);
  const vipsPair = root.items.find((p) => isScalar(p.key) && p.key.value === VIPS_KEY)!;
  const unsetTop = unsetLines(PROCESS_KEYS, top);
  if (unsetTop.length > 0) (vipsPair.key as { commentBefore?: string }).commentBefore = unsetTop.join('\n');
  const seq = vipsPair.value as { items: unknown[] };
  loaded.vips.forEach((entry, i) => {
    const map = seq.items[i];
    annotate(map, entries[i]!, entry.sources);
    const unset = unsetLines(VIP_KEYS, entries[i]!);
    if (unset.length > 0) (map as { comment?: string }).comment = unset.join('\n');
  });
  return [HEADER, doc.toString({ lineWidth: 0 }).trimEnd(), ''].join('\n');
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

function tableRow(k: KeyDef): string {
  const required = typeof k.required === 'function' ? 'see description' : k.required ? 'yes' : 'no';
  const legacy = k.legacy?.length ? ` Legacy names: ${k.legacy.map((l) => `\`${l}\``).join(', ')}.` : '';
  const values = k.kind === 'enum' ? ` One of: ${k.values!.map((v) => `\`${v}\``).join(', ')}.` : '';
  return `| \`${k.name}\` | \`${envName(k.name)}\` | ${k.scope === 'vip' ? 'yes' : 'no'} | ${required} | ${cell(k.defaultText)} | \`${cell(k.example)}\` | ${cell(k.help)}${values}${legacy} |`;
}

/** The README's configuration table (between the config-table markers). */
export function renderReadmeTable(): string {
  const header = [`| flag / yaml key | env notation | per VIP (in \`${VIPS_KEY}:\`) | required | default | example | description |`, '| --- | --- | --- | --- | --- | --- | --- |'];
  const section = (title: string, origin: KeyDef['origin']) => [`**${title}**`, '', ...header, ...KEYS.filter((k) => k.origin === origin).map(tableRow), ''];
  return [...section('Keys of the Go original', 'upstream'), ...section('Keys added by this implementation', 'new')].join('\n');
}
