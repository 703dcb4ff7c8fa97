// The YAML file given by --config (or VIP_CONFIG). Problems name the file and, for syntax
// errors, the line and column; unknown keys warn with a suggestion instead of failing, as a
// newer config on an older daemon should still start.
//
// The file is checked before it is parsed: only a regular file of at most MAX_CONFIG_BYTES is
// read (a FIFO would hang, /dev/zero never ends, a huge file costs memory and time), and it
// must be valid UTF-8 (decoding invalid bytes to U+FFFD would make different values equal).
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode, type Pair } from 'yaml';
import { KEY_BY_NAME, LEGACY_NAMES, VIP_KEYS } from './schema.js';
import type { LayerResult, RawEntry } from './raw.js';
import { clip } from './show.js';
import { didYouMean } from './suggest.js';
import { MAX_VIPS, VIPS_KEY, entryLabel } from './vips.js';

/** A configuration file is a few KB; this is hundreds of times that. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Alias expansions allowed (YAML's &anchor/*alias): plenty for a config, none for a "billion laughs". */
export const MAX_ALIAS_COUNT = 100;

/** Unknown keys warned about one by one; the rest are counted in one line. */
const MAX_UNKNOWN_KEY_WARNINGS = 20;

/** One entry of `vips:` as the file gives it: its own keys only. */
export interface FileVipEntry {
  /** Position in the list, 0-based. */
  readonly index: number;
  /** How lines about it begin: `vips[1] (billing)`. */
  readonly label: string;
  readonly entries: RawEntry[];
  /** Keys an unknown key in the entry was probably meant to be: not reported missing as well. */
  readonly misspelt: ReadonlySet<string>;
  /** What is wrong with the entry as written (unknown or process-wide keys, a key twice), one line each. */
  readonly problems: string[];
  /**
   * The entry is not fully known (not a mapping, a key twice, a key that is a list): it is not
   * validated further, as "missing" or "duplicate ip" could then be false.
   */
  readonly broken: boolean;
}

export interface FileLayer extends LayerResult {
  /** The file could not be read or parsed: it may have set keys nobody can see. */
  readonly unreadable: boolean;
  /** The `vips:` list, when the file has one, valid or not; undefined: one implicit VIP. */
  readonly vips?: readonly FileVipEntry[];
}

const refused = (problem: string): FileLayer => ({ entries: [], problems: [problem], warnings: [], unreadable: true });

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** The file's bytes, or why it is refused. */
function readBounded(path: string): Buffer | string {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return err.code === 'ENOENT' ? 'does not exist' : err.code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be read (${err.code ?? err.message})`;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const what = kindOf(st);
      return what === 'not a regular file' ? what : `is ${what}, not a regular file`;
    }
    if (st.size > MAX_CONFIG_BYTES) return `is ${st.size} bytes; a configuration file may have at most ${MAX_CONFIG_BYTES} bytes (1 MiB)`;
    // Read one byte more than allowed: a file that grew after fstat is caught as well.
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
    if (n > MAX_CONFIG_BYTES) return `has more than ${MAX_CONFIG_BYTES} bytes; a configuration file may have at most ${MAX_CONFIG_BYTES} bytes (1 MiB)`;
    return buf.subarray(0, n);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return err.code === 'EISDIR' ? 'is a directory, not a regular file' : `cannot be read (${err.code ?? err.message})`;
  } finally {
    closeSync(fd);
  }
}

/** Line (1-based) of the first byte sequence that is not UTF-8. A newline byte is never inside a sequence. */
function firstBadLine(bytes: Buffer): number {
  let line = 1;
  let start = 0;
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    if (!isUtf8(bytes.subarray(start, end))) return line;
    line++;
    start = end + 1;
  }
  return line;
}

/** The YAML library's message, without its position (ours is in front) and its advice to programmers. */
function yamlMessage(code: string, message: string): string {
  if (code === 'MULTIPLE_DOCS') return 'more than one YAML document (a second "---" line); expected one mapping of keys';
  return message
    .split('\n')[0]!
    .replace(/ at line \d+, column \d+:?$/, '')
    .replace(/;? ?please use .*$/i, '')
    .trim();
}

export function readConfigFile(path: string): FileLayer {
  const shown = clip(path);
  const bytes = readBounded(path);
  if (typeof bytes === 'string') return refused(`config file ${shown} ${bytes}; expected a readable YAML file`);
  if (!isUtf8(bytes)) return refused(`config file ${shown} line ${firstBadLine(bytes)}: not valid UTF-8; expected a UTF-8 text file`);
  const text = bytes.toString('utf8');
  const lines = new LineCounter();
  // uniqueKeys compares every key with every other (quadratic: 83 s for 1 MB of keys); the top
  // level is checked below with a Set instead. Nested mappings are refused as values anyway.
  // logLevel 'error': the library's warnings would go to process.emitWarning, i.e. to stderr as
  // Node runtime warnings; they are shown as configuration warnings instead.
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: true, logLevel: 'error' });
  if (doc.errors.length > 0) {
    return {
      entries: [],
      problems: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const at = pos ? ` line ${pos.line} column ${pos.col}` : '';
        return `config file ${shown}${at}: YAML syntax error: ${yamlMessage(e.code, e.message)}`;
      }),
      warnings: [],
      unreadable: true,
    };
  }
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) {
    return { entries: [], problems: [], warnings: [`config file ${shown} is empty`], unreadable: false };
  }
  if (!isMap(root)) {
    return refused(`config file ${shown}: the top level is not a mapping; expected "key: value" lines`);
  }
  const complexKey = root.items.find((pair) => !isScalar(pair.key) && !(isAlias(pair.key) && isScalar(pair.key.resolve(doc))));
  if (complexKey !== undefined) {
    const range = (complexKey.key as { range?: [number, number, number] } | null)?.range;
    const pos = range ? lines.linePos(range[0]) : undefined;
    return refused(`config file ${shown}${pos ? ` line ${pos.line} column ${pos.col}` : ''}: a key is a list or mapping; expected "key: value" lines with plain key names`);
  }
  let js: Record<string, unknown>;
  try {
    js = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as Record<string, unknown>;
  } catch (e) {
    return refused(`config file ${shown}: ${clip((e as Error).message)}; expected at most ${MAX_ALIAS_COUNT} alias expansions`);
  }
  const entries: RawEntry[] = [];
  const warnings: string[] = doc.warnings.map((w) => {
    const pos = w.linePos?.[0];
    return `config file ${shown}${pos ? ` line ${pos.line} column ${pos.col}` : ''}: ${yamlMessage(w.code, w.message)}`;
  });
  const problems: string[] = [];
  const seen = new Map<string, number | undefined>();
  let vips: FileVipEntry[] | undefined;
  const vipsProblems: string[] = [];
  let unknown = 0;
  for (const pair of root.items) {
    const keyNode = isAlias(pair.key) ? pair.key.resolve(doc) : pair.key;
    const name = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
    const pos = isScalar(pair.key) && pair.key.range ? lines.linePos(pair.key.range[0]) : undefined;
    const where = `file ${shown}${pos ? ` line ${pos.line}` : ''}`;
    if (seen.has(name)) {
      const first = seen.get(name);
      problems.push(`config file ${shown}${pos ? ` line ${pos.line} column ${pos.col}` : ''}: duplicate key ${clip(name)}${first ? ` (first on line ${first})` : ''}; expected each key once`);
      continue;
    }
    seen.set(name, pos?.line);
    if (name === VIPS_KEY) {
      vips = readVips(pair, js[name], { doc, lines, shown, where, problems: vipsProblems, warnings });
      continue;
    }
    const current = KEY_BY_NAME.has(name) ? name : LEGACY_NAMES.get(name);
    if (current === undefined) {
      if (++unknown <= MAX_UNKNOWN_KEY_WARNINGS) warnings.push(`${where}: unknown key ${clip(name)} is ignored${didYouMean(name, KEY_BY_NAME.keys())}`);
      continue;
    }
    if (current !== name) warnings.push(`${where}: ${name} is a legacy name; use ${current}`);
    entries.push({ key: current, raw: valueOf(pair.value as YamlNode | null, js[name], ['string', 'command'].includes(KEY_BY_NAME.get(current)!.kind), doc), origin: { layer: 'file', name, where } });
  }
  if (unknown > MAX_UNKNOWN_KEY_WARNINGS) warnings.push(`config file ${shown}: ${unknown - MAX_UNKNOWN_KEY_WARNINGS} more unknown keys are ignored`);
  // A bad vips: list does not hide the rest of the file: its problems are reported with the
  // others, and its entries that can be read are validated as usual.
  if (problems.length > 0) return { entries: [], problems: [...problems, ...vipsProblems], warnings, unreadable: true };
  return { entries, problems: vipsProblems, warnings, unreadable: false, vips };
}

interface ReadContext {
  readonly doc: Document;
  readonly lines: LineCounter;
  /** The file's name as shown. */
  readonly shown: string;
  /** Where the `vips:` key is: `file F line 6`. */
  readonly where: string;
  /** Problems of the list as a whole. */
  readonly problems: string[];
  readonly warnings: string[];
}

/** The line and column where a node starts, as said in messages. */
function position(node: unknown, lines: LineCounter): { line: number; col: number } | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? lines.linePos(range[0]) : undefined;
}

function kindOfNode(node: unknown, resolved: unknown): string {
  if (isSeq(node)) return 'a list';
  if (isMap(node)) return 'a mapping';
  if (resolved === null || resolved === undefined) return 'empty';
  return typeof resolved === 'string' ? `the text ${clip(JSON.stringify(resolved))}` : `the value ${clip(String(resolved))}`;
}

/**
 * The `vips:` list: a sequence of mappings, each with per-VIP keys once. The entries' problems are
 * errors, not warnings as unknown top-level keys are: an entry is new, so no older daemon reads
 * it, and a misspelt key in it would leave that VIP without a setting the operator meant.
 * Duplicate keys are found with a Set, like the top level's (the library's check is quadratic).
 */
function readVips(pair: Pair, resolved: unknown, rc: ReadContext): FileVipEntry[] {
  const { doc, lines, shown, where } = rc;
  const node = isAlias(pair.value) ? pair.value.resolve(doc) : pair.value;
  if (!isSeq(node)) {
    rc.problems.push(`${VIPS_KEY}: ${kindOfNode(node, resolved)} (${where}); expected a list of entries ("- ip: ..." lines, one mapping per VIP)`);
    return [];
  }
  if (node.items.length === 0) {
    rc.problems.push(`${VIPS_KEY}: an empty list (${where}); expected at least one entry, or no ${VIPS_KEY}: key for one VIP set at the top level`);
    return [];
  }
  if (node.items.length > MAX_VIPS) {
    rc.problems.push(`${VIPS_KEY}: ${node.items.length} entries (${where}); expected at most ${MAX_VIPS}`);
    return [];
  }
  const jsItems = Array.isArray(resolved) ? resolved : [];
  const result = node.items.map((item, index): FileVipEntry => {
    const entry = isAlias(item) ? item.resolve(doc) : item;
    const js = jsItems[index] as Record<string, unknown> | undefined;
    const at = position(item, lines);
    const itemWhere = `file ${shown}${at ? ` line ${at.line}` : ''}`;
    if (!isMap(entry)) {
      const label = `${VIPS_KEY}[${index}]`;
      return { index, label, entries: [], broken: true, misspelt: new Set(), problems: [`${label}: ${kindOfNode(entry, js)} (${itemWhere}); expected a mapping of per-VIP keys ("ip: ...", "trigger-key: ...")`] };
    }
    const label = entryLabel(index, js?.name, js?.ip);
    const complex = entry.items.find((p) => !isScalar(p.key) && !(isAlias(p.key) && isScalar(p.key.resolve(doc))));
    if (complex !== undefined) {
      const kp = position(complex.key, lines);
      return { index, label, entries: [], broken: true, misspelt: new Set(), problems: [`${label}: a key is a list or mapping (file ${shown}${kp ? ` line ${kp.line} column ${kp.col}` : ''}); expected "key: value" lines with plain key names`] };
    }
    const entries: RawEntry[] = [];
    const entryProblems: string[] = [];
    const misspelt = new Set<string>();
    const seenInEntry = new Map<string, number | undefined>();
    let broken = false;
    for (const p of entry.items) {
      const keyNode = isAlias(p.key) ? p.key.resolve(doc) : p.key;
      const name = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
      const kp = position(p.key, lines);
      const keyWhere = `file ${shown}${kp ? ` line ${kp.line}` : ''}`;
      if (seenInEntry.has(name)) {
        const first = seenInEntry.get(name);
        entryProblems.push(`${label}: duplicate key ${clip(name)} (file ${shown}${kp ? ` line ${kp.line} column ${kp.col}` : ''}${first ? `, first on line ${first}` : ''}); expected each key once in an entry`);
        broken = true;
        continue;
      }
      seenInEntry.set(name, kp?.line);
      const current = KEY_BY_NAME.has(name) ? name : LEGACY_NAMES.get(name);
      if (current === undefined) {
        const guess = didYouMean(name, VIP_KEYS.map((k) => k.name));
        const meant = / \(did you mean (.+)\?\)$/.exec(guess)?.[1];
        if (meant !== undefined) misspelt.add(meant);
        entryProblems.push(`${label}: unknown key ${clip(name)} (${keyWhere})${guess}; expected a per-VIP key such as ip, netmask, trigger-key or name`);
        continue;
      }
      const k = KEY_BY_NAME.get(current)!;
      if (k.scope !== 'vip') {
        entryProblems.push(`${label}: ${current}: a process-wide key (${keyWhere}); set it at the top level, where it holds for every entry`);
        continue;
      }
      if (current !== name) rc.warnings.push(`${keyWhere}: ${name} is a legacy name; use ${current}`);
      entries.push({ key: current, raw: valueOf(p.value as YamlNode | null, js?.[name], ['string', 'command'].includes(k.kind), doc), origin: { layer: 'file', name, where: keyWhere } });
    }
    return { index, label, entries, broken, misspelt, problems: entryProblems };
  });
  return result;
}

/**
 * The value as the key reads it. A text key takes a plain scalar as written: YAML would turn
 * `trigger-value: 0123` into 123 and `1.10` into 1.1, a different member name.
 */
function valueOf(node: YamlNode | null, resolved: unknown, text: boolean, doc: Document): unknown {
  const target = node !== null && isAlias(node) ? node.resolve(doc) : node;
  if (text && target && isScalar(target) && target.value !== null && typeof target.value !== 'string' && typeof target.source === 'string') {
    return target.source;
  }
  // A command's words likewise: `[/usr/local/bin/notify, 010]` passes "010", not "8" or "10".
  if (text && target && isSeq(target) && Array.isArray(resolved)) {
    return target.items.map((item, i) => valueOf(item as YamlNode | null, resolved[i], true, doc));
  }
  return resolved;
}
