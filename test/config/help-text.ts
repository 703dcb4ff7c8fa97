// One flag's entry in --help, as one line (commander wraps the description).
import { helpText } from '../../src/config/flags.js';

export function flagHelp(key: string): string {
  const entry = helpText()
    .split(/\n(?=  --)/)
    .find((e) => e.trimStart().startsWith(`--${key} `));
  if (entry === undefined) throw new Error(`--${key} is not in --help`);
  return entry.replace(/\s+/g, ' ').trim();
}
