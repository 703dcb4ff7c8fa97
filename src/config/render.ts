// Everything the configuration shows to people, generated from the schema: the effective
// configuration for --check-config (YAML that can be fed back as --config, each value's source
// as a trailing comment, secrets masked) and the README's configuration table.
import { Document, isMap, isNode } from 'yaml';
import type { Origin } from './errors.js';
import type { LoadedConfig } from './load.js';
import { KEYS, envName, type Config, type KeyDef } from './schema.js';

export const MASK = '*****';

/** Configuration with secrets masked: the only form in which config is logged or served. */
export function maskedConfig(config: Config): Record<string, unknown> {
  return Object.fromEntries(
    KEYS.filter((k) => config[k.name as keyof Config] !== undefined).map((k) => [k.name, k.secret ? MASK : config[k.name as keyof Config]]),
  );
}

function sourceComment(o: Origin): string {
  return o.layer === 'default' ? ' default' : ` ${o.layer} (${o.where.replace(/^(flag|env|file) /, '')})`;
}

export function renderEffectiveConfig(loaded: LoadedConfig): string {
  const masked = maskedConfig(loaded.config);
  const doc = new Document(masked);
  if (isMap(doc.contents)) {
    for (const pair of doc.contents.items) {
      const key = String((pair.key as { value: unknown }).value);
      if (isNode(pair.value)) {
        pair.value.comment = sourceComment(loaded.sources.get(key)!);
        if (Array.isArray(masked[key])) (pair.value as { flow?: boolean }).flow = true;
      }
    }
  }
  const unset = KEYS.filter((k) => !(k.name in masked)).map((k) => `# ${k.name}: (not set)`);
  return [
    '# vip-manager effective configuration; each value is followed by its source (flag, env, file, default).',
    doc.toString({ lineWidth: 0 }).trimEnd(),
    ...unset,
    '',
  ].join('\n');
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

function tableRow(k: KeyDef): string {
  const required = typeof k.required === 'function' ? 'see description' : k.required ? 'yes' : 'no';
  const legacy = k.legacy?.length ? ` Legacy names: ${k.legacy.map((l) => `\`${l}\``).join(', ')}.` : '';
  const values = k.kind === 'enum' ? ` One of: ${k.values!.map((v) => `\`${v}\``).join(', ')}.` : '';
  return `| \`${k.name}\` | \`${envName(k.name)}\` | ${required} | ${cell(k.defaultText)} | \`${cell(k.example)}\` | ${cell(k.help)}${values}${legacy} |`;
}

/** The README's configuration table (between the config-table markers). */
export function renderReadmeTable(): string {
  const header = ['| flag / yaml key | env notation | required | default | example | description |', '| --- | --- | --- | --- | --- | --- |'];
  const section = (title: string, origin: KeyDef['origin']) => [`**${title}**`, '', ...header, ...KEYS.filter((k) => k.origin === origin).map(tableRow), ''];
  return [...section('Keys of the Go original', 'upstream'), ...section('Keys added by this implementation', 'new')].join('\n');
}
