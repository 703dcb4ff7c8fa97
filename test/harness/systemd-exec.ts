// What systemd would execute for a unit: its ExecStart= argv and its environment
// (Environment=, EnvironmentFile=), so a test can run exactly that command without systemd
// (e.g. inside a chroot). Follows systemd.service(5), systemd.exec(5) and systemd.unit(5)
// (specifiers); covers what service units use, and throws on what it does not cover instead
// of guessing.

/** [Section] → key → values in order (an empty assignment resets the list, as systemd does). */
export type UnitFile = Map<string, Map<string, string[]>>;

export function parseUnitFile(text: string): UnitFile {
  const sections: UnitFile = new Map();
  let current: Map<string, string[]> | undefined;
  // A trailing backslash continues the line (systemd.syntax(7)).
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      current = sections.get(sec[1]!) ?? new Map();
      sections.set(sec[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq <= 0) throw new Error(`unit file: cannot parse line: ${line}`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    current.set(key, value === '' ? [] : [...(current.get(key) ?? []), value]);
  }
  return sections;
}

/** The unit name parts a specifier can refer to, e.g. vip-manager@15-main.service. */
export interface UnitName {
  prefix: string;
  /** "" for a plain unit (and for a template itself). */
  instance: string;
  suffix: string;
  templated: boolean;
}

export function parseUnitName(name: string): UnitName {
  const t = /^([^@]+)@([^.]*)\.(\w+)$/.exec(name);
  if (t) return { prefix: t[1]!, instance: t[2]!, suffix: t[3]!, templated: true };
  const m = /^([^@]+)\.(\w+)$/.exec(name);
  if (!m) throw new Error(`not a unit name: ${name}`);
  return { prefix: m[1]!, instance: '', suffix: m[2]!, templated: false };
}

/** systemd-escape --unescape: "-" is "/", "\xNN" a byte. */
function unescapeName(s: string): string {
  return s.replace(/-/g, '/').replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** Expands the specifiers a service unit's paths and arguments commonly use. */
export function expandSpecifiers(s: string, unit: UnitName): string {
  return s.replace(/%(.)/g, (all, c: string) => {
    switch (c) {
      case '%': return '%';
      case 'i': return unit.instance;
      case 'I': return unescapeName(unit.instance);
      case 'p': return unit.prefix;
      case 'P': return unescapeName(unit.prefix);
      case 'n': return `${unit.prefix}${unit.templated ? `@${unit.instance}` : ''}.${unit.suffix}`;
      case 'N': return `${unit.prefix}${unit.templated ? `@${unit.instance}` : ''}`;
      default: throw new Error(`specifier ${all} is not supported by this test harness`);
    }
  });
}

/**
 * Splits a command line into words as systemd does: whitespace separates, "…" and '…' quote,
 * a backslash escapes (C escapes \n \t \\ \" \' and "\ ").
 */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\') {
      const n = line[++i];
      if (n === undefined) throw new Error(`trailing backslash in: ${line}`);
      const esc: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'", ' ': ' ' };
      if (!(n in esc)) throw new Error(`escape \\${n} is not supported by this test harness: ${line}`);
      word = (word ?? '') + esc[n]!;
      continue;
    }
    if (quote) {
      if (c === quote) quote = null;
      else word = (word ?? '') + c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
      continue;
    }
    if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
      continue;
    }
    word = (word ?? '') + c;
  }
  if (quote) throw new Error(`unterminated quote in: ${line}`);
  if (word !== null) words.push(word);
  return words;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * An EnvironmentFile's variables, per systemd.exec(5): KEY=VALUE lines; empty lines, lines
 * starting with # or ; and lines without = are ignored; leading and trailing whitespace of a
 * value is dropped; '…' is literal, "…" knows the shell's double-quote escapes, an unquoted
 * backslash keeps the next character; a backslash-newline continues the line.
 */
export function parseEnvironmentFile(text: string): Map<string, string> {
  const env = new Map<string, string>();
  type State = 'preKey' | 'key' | 'preValue' | 'value' | 'valueEscape' | 'single' | 'double' | 'doubleEscape' | 'comment' | 'commentEscape';
  let state: State = 'preKey';
  let key = '';
  let value = '';
  // Length of `value` up to its last non-whitespace character outside quotes: trailing
  // whitespace is dropped, quoted whitespace kept.
  let keep = 0;
  const push = () => {
    const k = key.trim();
    if (ENV_NAME.test(k)) env.set(k, value.slice(0, keep));
    key = '';
    value = '';
    keep = 0;
  };
  for (const c of `${text}\n`) {
    const nl = c === '\n' || c === '\r';
    switch (state) {
      case 'preKey':
        if (c === '#' || c === ';') state = 'comment';
        else if (!/\s/.test(c)) { state = 'key'; key = c; }
        break;
      case 'key':
        if (nl) { state = 'preKey'; key = ''; } // no "=": ignored
        else if (c === '=') state = 'preValue';
        else key += c;
        break;
      case 'preValue':
        if (nl) { push(); state = 'preKey'; }
        else if (c === "'") state = 'single';
        else if (c === '"') state = 'double';
        else if (c === '\\') state = 'valueEscape';
        else if (!/\s/.test(c)) { value += c; keep = value.length; state = 'value'; }
        break;
      case 'value':
        if (nl) { push(); state = 'preKey'; }
        else if (c === '\\') state = 'valueEscape';
        else { value += c; if (!/\s/.test(c)) keep = value.length; }
        break;
      case 'valueEscape':
        state = 'value';
        if (c !== '\n') { value += c; keep = value.length; }
        break;
      case 'single':
        if (c === "'") state = 'preValue';
        else { value += c; keep = value.length; }
        break;
      case 'double':
        if (c === '"') state = 'preValue';
        else if (c === '\\') state = 'doubleEscape';
        else { value += c; keep = value.length; }
        break;
      case 'doubleEscape':
        state = 'double';
        if ('"\\`$'.includes(c)) value += c;
        else if (c !== '\n') value += `\\${c}`;
        keep = value.length;
        break;
      case 'comment':
        if (c === '\\') state = 'commentEscape';
        else if (nl) state = 'preKey';
        break;
      case 'commentEscape':
        state = 'comment';
        break;
    }
  }
  return env;
}

/** Environment= assignments: words of KEY=VALUE. */
export function parseEnvironmentLine(line: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const w of splitWords(line)) {
    const eq = w.indexOf('=');
    if (eq <= 0 || !ENV_NAME.test(w.slice(0, eq))) throw new Error(`Environment=: not an assignment: ${w}`);
    env.set(w.slice(0, eq), w.slice(eq + 1));
  }
  return env;
}

/**
 * ExecStart= at run time: `${VAR}` is replaced inside a word, a word that is exactly `$VAR`
 * becomes the value's whitespace-separated words, `$$` is "$"; unset variables are empty.
 */
export function substituteEnv(words: string[], env: Map<string, string>): string[] {
  const out: string[] = [];
  for (const w of words) {
    const whole = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(w);
    if (whole) {
      out.push(...(env.get(whole[1]!) ?? '').split(/\s+/).filter(Boolean));
      continue;
    }
    out.push(w.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (all, name?: string) => (name === undefined ? '$' : env.get(name) ?? '')));
  }
  return out;
}

export interface ExecPlan {
  /** The command systemd would execute, specifiers and variables substituted. */
  argv: string[];
  /** Environment= then EnvironmentFile= variables (files win), without systemd's own. */
  env: Map<string, string>;
  /** EnvironmentFile= paths, specifiers expanded, and whether each is optional ("-"). */
  environmentFiles: Array<{ path: string; optional: boolean }>;
  user?: string;
  group?: string;
}

/**
 * The ExecStart= command and environment of `unitName` (e.g. vip-manager@15-main.service)
 * from its unit file's text; `readFile` reads an EnvironmentFile (null when it does not exist).
 */
export function execPlan(unitText: string, unitName: string, readFile: (path: string) => string | null): ExecPlan {
  const unit = parseUnitName(unitName);
  const service = parseUnitFile(unitText).get('Service');
  if (!service) throw new Error(`${unitName}: no [Service] section`);
  const one = (k: string) => service.get(k)?.at(-1);
  const env = new Map<string, string>();
  for (const line of service.get('Environment') ?? []) {
    for (const [k, v] of parseEnvironmentLine(expandSpecifiers(line, unit))) env.set(k, v);
  }
  const environmentFiles: ExecPlan['environmentFiles'] = [];
  for (const line of service.get('EnvironmentFile') ?? []) {
    const optional = line.startsWith('-');
    const path = expandSpecifiers(optional ? line.slice(1) : line, unit);
    if (/[*?[]/.test(path)) throw new Error(`${unitName}: EnvironmentFile=${line}: wildcards are not supported by this test harness`);
    environmentFiles.push({ path, optional });
    const text = readFile(path);
    if (text === null) {
      if (optional) continue;
      throw new Error(`${unitName}: EnvironmentFile=${path} does not exist (systemd would refuse to start the unit)`);
    }
    for (const [k, v] of parseEnvironmentFile(text)) env.set(k, v);
  }
  const execStarts = service.get('ExecStart') ?? [];
  if (execStarts.length !== 1) throw new Error(`${unitName}: expected one ExecStart=, found ${execStarts.length}`);
  let words = splitWords(execStarts[0]!).map((w) => expandSpecifiers(w, unit));
  // Prefixes of the executable (systemd.service(5)): "-" ignore failure, "+"/"!"/"!!" privileges,
  // ":" no variable substitution, "@" a separate argv[0].
  const prefix = /^[-+!:@]*/.exec(words[0] ?? '')![0];
  if (prefix.includes('@')) throw new Error(`${unitName}: ExecStart with "@" is not supported by this test harness`);
  words = [words[0]!.slice(prefix.length), ...words.slice(1)];
  const argv = prefix.includes(':') ? words : substituteEnv(words, env);
  return { argv, env, environmentFiles, user: one('User'), group: one('Group') };
}
