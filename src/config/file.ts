// The YAML file given by --config (or VIP_CONFIG). Problems name the file and, for syntax
// errors, the line and column; unknown keys warn with a suggestion instead of failing, as a
// newer config on an older daemon should still start.
import { readFileSync } from 'node:fs';
import { LineCounter, isMap, isScalar, parseDocument } from 'yaml';
import { KEY_BY_NAME, LEGACY_NAMES } from './schema.js';
import type { LayerResult, RawEntry } from './raw.js';
import { didYouMean } from './suggest.js';

export function readConfigFile(path: string): LayerResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'does not exist' : err.code === 'EACCES' ? 'is not readable (permission denied)' : err.code === 'EISDIR' ? 'is a directory' : `cannot be read (${err.code ?? err.message})`;
    return { entries: [], problems: [`config file ${path} ${why}; expected a readable YAML file`], warnings: [] };
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    return {
      entries: [],
      problems: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const at = pos ? ` line ${pos.line} column ${pos.col}` : '';
        return `config file ${path}${at}: YAML syntax error: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`;
      }),
      warnings: [],
    };
  }
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) {
    return { entries: [], problems: [], warnings: [`config file ${path} is empty`] };
  }
  if (!isMap(root)) {
    return { entries: [], problems: [`config file ${path}: the top level is not a mapping; expected "key: value" lines`], warnings: [] };
  }
  const entries: RawEntry[] = [];
  const warnings: string[] = [];
  for (const pair of root.items) {
    const name = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    const line = isScalar(pair.key) && pair.key.range ? lines.linePos(pair.key.range[0]).line : undefined;
    const where = `file ${path}${line ? ` line ${line}` : ''}`;
    const current = KEY_BY_NAME.has(name) ? name : LEGACY_NAMES.get(name);
    if (current === undefined) {
      warnings.push(`${where}: unknown key ${name} is ignored${didYouMean(name, KEY_BY_NAME.keys())}`);
      continue;
    }
    if (current !== name) warnings.push(`${where}: ${name} is a legacy name; use ${current}`);
    const value = pair.value === null ? null : (pair.value as { toJSON(): unknown }).toJSON();
    entries.push({ key: current, raw: value, origin: { layer: 'file', name, where } });
  }
  return { entries, problems: [], warnings };
}
