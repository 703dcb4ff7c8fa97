// The hook keys' values: a command as a list of words (YAML list) or as one string split into
// words the way systemd splits ExecStart= (no shell: nothing is expanded, redirected or piped),
// and the checks that make the file safe to run from a daemon holding network capabilities.
// Everything here is pure or reads file metadata; the process is started in runner.ts only.
import { accessSync, constants, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';

/** A split that failed says why, in words for the key's error line. */
export type SplitResult = { ok: true; words: string[] } | { ok: false; expected: string };

/** Words a shell would treat as operators: here they would reach the hook as arguments. */
const SHELL_OPERATORS = new Set(['|', '||', '&', '&&', ';', ';;', '>', '>>', '<', '<<', '2>', '2>&1', '>&', '&>']);

const NO_SHELL = 'no shell runs the hook; put pipes, redirections and variables in a script and name the script';

/**
 * Splits like systemd's ExecStart=: words at unquoted whitespace; "double" and 'single' quotes
 * group a word (and may be empty); a backslash outside single quotes takes the next character
 * literally. Refused, so that a shell command pasted in does not run as something else: an
 * unterminated quote, a trailing backslash, an unquoted shell operator word, and an unquoted
 * `$` (systemd would expand it, a shell too; the event's facts are in the environment).
 */
export function splitCommand(text: string): SplitResult {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let operatorCandidate = true; // the current word has no quoted or escaped part
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote !== null) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < text.length) word += text[++i];
      else word += ch;
      continue;
    }
    if (/\s/.test(ch)) {
      if (inWord) {
        if (operatorCandidate && SHELL_OPERATORS.has(word)) return { ok: false, expected: `found the shell operator ${JSON.stringify(word)}; ${NO_SHELL}` };
        words.push(word);
      }
      word = '';
      inWord = false;
      operatorCandidate = true;
      continue;
    }
    inWord = true;
    if (ch === '"' || ch === "'") {
      quote = ch;
      operatorCandidate = false;
    } else if (ch === '\\') {
      if (i + 1 >= text.length) return { ok: false, expected: 'it ends with a lone backslash; expected a character after it' };
      word += text[++i];
      operatorCandidate = false;
    } else if (ch === '$') {
      return { ok: false, expected: `found an unquoted "$": ${NO_SHELL} (the hook finds VIP_EVENT, VIP_NAME, VIP_IP, VIP_CAUSE and VIP_VALUE in its environment); quote it ('$') to pass it as is` };
    } else {
      word += ch;
    }
  }
  if (quote !== null) return { ok: false, expected: `a ${quote === '"' ? 'double' : 'single'} quote is not closed; expected words split at spaces, with "..." or '...' around a word that holds spaces` };
  if (inWord) {
    if (operatorCandidate && SHELL_OPERATORS.has(word)) return { ok: false, expected: `found the shell operator ${JSON.stringify(word)}; ${NO_SHELL}` };
    words.push(word);
  }
  return { ok: true, words };
}

/** Why an argument vector cannot be a hook command; undefined when it can. */
export function commandProblem(words: readonly string[]): string | undefined {
  if (words.length === 0) return 'expected an absolute path to an executable, optionally followed by arguments (leave the key unset for no hook)';
  if (words.some((w) => w.includes('\0'))) return 'a word contains a NUL character; expected text';
  const path = words[0]!;
  if (!path.startsWith('/')) return `the first word ${JSON.stringify(path.slice(0, 80))} is not an absolute path; expected /path/to/executable (no PATH lookup, so what runs never depends on the environment)`;
  return undefined;
}

/** What the daemon would run as, for the ownership rule. */
export interface RunAs {
  readonly uid: number;
}

const WRITABLE_BY_OTHERS = 0o022;
const STICKY = 0o1000;

function owner(st: Stats, who: RunAs): boolean {
  return st.uid === 0 || st.uid === who.uid;
}

/**
 * Why the file must not be run by the daemon; undefined when it may. The daemon runs it with
 * its own uid: whoever can replace the file (or a directory on its path) could run code as the
 * daemon's user. So: a regular, executable file owned by root or the daemon's user, writable
 * by no one else, in directories writable by no one else either (a sticky directory, such as
 * /tmp, is allowed: nobody else can rename or delete what root or the daemon's user owns there).
 */
export function hookFileProblem(path: string, who: RunAs): string | undefined {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be reached (permission denied on a directory)' : `cannot be examined (${code})`;
  }
  if (!st.isFile()) return 'is not a regular file; expected an executable file';
  if ((st.mode & 0o111) === 0) return 'is not executable; expected mode 0755 or 0750 (chmod +x)';
  if (!owner(st, who)) return `is owned by uid ${st.uid}; expected a file owned by root or by the daemon's user (uid ${who.uid})`;
  if ((st.mode & WRITABLE_BY_OTHERS) !== 0) {
    return `is ${(st.mode & 0o002) !== 0 ? 'world' : 'group'}-writable (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}); expected it writable only by its owner (chmod go-w)`;
  }
  // An execute bit for someone else is not enough: the kernel asks for this process's.
  try {
    accessSync(path, constants.X_OK);
  } catch {
    return `is not executable by this process (uid ${process.getuid?.() ?? '?'}); expected mode 0755, or 0750 with the daemon's group`;
  }
  let real: string;
  try {
    real = realpathSync(path);
  } catch (e) {
    return `cannot be resolved (${(e as NodeJS.ErrnoException).code})`;
  }
  for (let dir = dirname(real); ; dir = dirname(dir)) {
    let d: Stats;
    try {
      d = statSync(dir);
    } catch (e) {
      return `sits in ${dir}, which cannot be examined (${(e as NodeJS.ErrnoException).code})`;
    }
    if (!owner(d, who)) return `sits in ${dir}, owned by uid ${d.uid}; expected directories owned by root or by the daemon's user (uid ${who.uid})`;
    if ((d.mode & WRITABLE_BY_OTHERS) !== 0 && (d.mode & STICKY) === 0) {
      return `sits in ${dir}, which is ${(d.mode & 0o002) !== 0 ? 'world' : 'group'}-writable (mode ${(d.mode & 0o7777).toString(8).padStart(4, '0')}): others could replace the hook; expected chmod go-w on it`;
    }
    if (dir === '/') break;
  }
  return undefined;
}
