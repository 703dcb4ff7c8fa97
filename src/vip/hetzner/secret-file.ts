// Reading a file that holds a secret (Robot credentials, Cloud token) and refusing it when its
// permissions let other users read it: a password others can read is a password others have.
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { HetznerConfigError } from './errors.js';

export interface SecretFileRules {
  /** What the file is, for messages ("Hetzner Robot credentials file"). */
  what: string;
  /** Permission bits that must be clear, e.g. 0o077 (group and others) or 0o007 (others). */
  forbiddenBits: number;
  /** The fix to suggest, e.g. "chmod 600 /etc/hetzner". */
  fix: string;
  /** Appended when the file does not exist: how to create it. */
  missingHint?: string;
}

/**
 * Returns the file's text. Opens first and checks the opened file (fstat), so the file checked
 * is the file read even if the path is swapped in between.
 */
export function readSecretFile(path: string, rules: SecretFileRules): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new HetznerConfigError(`${rules.what} ${path} does not exist${rules.missingHint ? '; ' + rules.missingHint : ''}`);
    if (code === 'ELOOP') throw new HetznerConfigError(`${rules.what} ${path} is a symbolic link; point the setting at the file itself`);
    if (code === 'EACCES') throw new HetznerConfigError(`${rules.what} ${path} cannot be read by this user (permission denied)`);
    throw new HetznerConfigError(`${rules.what} ${path} cannot be opened: ${code ?? String(err)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new HetznerConfigError(`${rules.what} ${path} is not a regular file`);
    const bad = st.mode & rules.forbiddenBits;
    if (bad !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
      throw new HetznerConfigError(
        `${rules.what} ${path} has mode ${mode}, which lets other users read or change it; run: ${rules.fix}`,
      );
    }
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
