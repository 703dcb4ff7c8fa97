// A last line of defence for anything served over HTTP: whatever object a callback hands us,
// values under secret-looking keys are replaced before serialisation. The daemon is expected
// to pass a summary that holds no secrets in the first place; this catches the day it does.
import { KEYS } from '../config/schema.js';

export const MASK = '*****';

/** Configuration keys the schema marks secret, plus generic credential names. */
const SECRET_KEYS: ReadonlySet<string> = new Set([
  ...KEYS.filter((k) => k.secret).map((k) => k.name),
  'password',
  'pass',
  'token',
  'secret',
  'authorization',
  'x-consul-token',
]);
const SECRET_SUBSTRINGS = ['password', 'token', 'secret'];

function isSecretKey(key: string): boolean {
  const k = key.toLowerCase();
  // A path to a secret (hcloud-token-file) is not itself secret and helps debugging.
  if (k.endsWith('-file')) return false;
  return SECRET_KEYS.has(k) || SECRET_SUBSTRINGS.some((s) => k.includes(s));
}

/** JSON.stringify replacer: masks set values under secret keys, keeps unset ones visible. */
export function secretReplacer(this: unknown, key: string, value: unknown): unknown {
  if (key !== '' && isSecretKey(key) && value !== undefined && value !== null && value !== '') return MASK;
  return value;
}

/** JSON text of `value` with secrets masked. */
export function toSafeJson(value: unknown, space?: number): string {
  return JSON.stringify(value, secretReplacer, space);
}
