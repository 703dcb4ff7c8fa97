// Hetzner Robot webservice credentials in the Go original's file format (/etc/hetzner):
//
//   user="myUsername"
//   pass="myPassword"
//
// Parsed tolerantly, because these files are written by hand: spaces around '=', double, single
// or no quotes, '#' comment lines, blank lines, CRLF line ends, a UTF-8 BOM, a leading
// `export ` (the file looks like shell and is sometimes sourced). Parse errors name the line
// number but never echo a line: the line might be the password.
import { HetznerConfigError } from './errors.js';
import { readSecretFile } from './secret-file.js';

export interface RobotCredentials {
  readonly user: string;
  readonly pass: string;
}

/** Group and others must have no access at all: the README asks for `chmod 600`. */
const CREDENTIALS_FORBIDDEN_BITS = 0o077;

/** Key spellings accepted for each field (the original writes user/pass). */
const USER_KEYS = new Set(['user', 'username', 'login']);
const PASS_KEYS = new Set(['pass', 'password']);

export interface ParsedCredentials extends RobotCredentials {
  /** Harmless oddities worth a log line (unknown keys, a key given twice). */
  readonly warnings: string[];
}

export function parseRobotCredentials(text: string, fileName: string): ParsedCredentials {
  const warnings: string[] = [];
  let user: string | undefined;
  let pass: string | undefined;
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (/^export\s+/.test(line)) line = line.replace(/^export\s+/, '');
    const eq = line.indexOf('=');
    if (eq <= 0) {
      throw new HetznerConfigError(`${fileName} line ${lineNo}: expected key="value" (user="..." or pass="...")`);
    }
    const key = line.slice(0, eq).trim().toLowerCase();
    const value = parseValue(line.slice(eq + 1).trim(), fileName, lineNo);
    if (USER_KEYS.has(key)) {
      if (user !== undefined) warnings.push(`${fileName} line ${lineNo}: user given twice; the last one is used`);
      user = value;
    } else if (PASS_KEYS.has(key)) {
      if (pass !== undefined) warnings.push(`${fileName} line ${lineNo}: pass given twice; the last one is used`);
      pass = value;
    } else {
      warnings.push(`${fileName} line ${lineNo}: unknown key ${JSON.stringify(key)} ignored`);
    }
  });
  const missing = [user === undefined || user === '' ? 'user' : null, pass === undefined || pass === '' ? 'pass' : null].filter(
    (m): m is string => m !== null,
  );
  if (missing.length > 0) {
    throw new HetznerConfigError(
      `${fileName} has no ${missing.join(' and no ')}; it needs the lines user="<Robot webservice user>" and pass="<password>"`,
    );
  }
  return { user: user as string, pass: pass as string, warnings };
}

/**
 * A value: "double quoted" (\" and \\ escapes), 'single quoted' (literal), or bare (literal,
 * to the end of the line: a bare password may contain '#', so no inline comments there).
 * After a closing quote only whitespace and a '# comment' may follow.
 */
function parseValue(rest: string, fileName: string, lineNo: number): string {
  const q = rest[0];
  if (q !== '"' && q !== "'") return rest;
  let out = '';
  let i = 1;
  for (; i < rest.length; i++) {
    const c = rest[i] as string;
    if (c === q) break;
    if (q === '"' && c === '\\' && i + 1 < rest.length) {
      const next = rest[i + 1] as string;
      if (next === '"' || next === '\\') {
        out += next;
        i++;
        continue;
      }
    }
    out += c;
  }
  if (i >= rest.length) throw new HetznerConfigError(`${fileName} line ${lineNo}: the opening ${q} has no closing ${q}`);
  const tail = rest.slice(i + 1).trim();
  if (tail !== '' && !tail.startsWith('#')) {
    throw new HetznerConfigError(`${fileName} line ${lineNo}: unexpected text after the closing ${q}`);
  }
  return out;
}

/** Reads, permission-checks and parses the credentials file. */
export function readRobotCredentials(path: string): ParsedCredentials {
  const text = readSecretFile(path, {
    what: 'Hetzner Robot credentials file',
    forbiddenBits: CREDENTIALS_FORBIDDEN_BITS,
    fix: `chmod 600 ${path}`,
    missingHint: `create it with the lines user="<Robot webservice user>" and pass="<password>", then chmod 600 ${path}`,
  });
  return parseRobotCredentials(text, path);
}
