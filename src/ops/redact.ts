// A last line of defence for anything served over HTTP: whatever object a callback hands us,
// values under secret-looking keys are replaced before serialisation. The daemon is expected
// to pass a summary that holds no secrets in the first place; this catches the day it does.
import { KEYS, type Config } from '../config/schema.js';

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

/**
 * JSON.stringify replacer: masks set values under secret keys, keeps unset ones visible, and
 * scrubs registered secret values out of every string (scrubSecrets below). Strings, not the
 * finished text: replacing inside JSON text could break its syntax for a secret such as "24".
 */
export function secretReplacer(this: unknown, key: string, value: unknown): unknown {
  if (key !== '' && isSecretKey(key) && value !== undefined && value !== null && value !== '') return MASK;
  return typeof value === 'string' ? scrubSecrets(value) : value;
}

/** JSON text of `value` with secrets masked. */
export function toSafeJson(value: unknown, space?: number): string {
  return JSON.stringify(value, secretReplacer, space);
}

// ---- secret values ------------------------------------------------------------------------
// Masking by key name cannot catch a secret inside free text: a server's error body that echoes
// our request headers (X-Consul-Token, Authorization) ends up in an error message. Every secret
// value the daemon knows is registered here, and every string bound for the log (log.ts) or an
// HTTP answer (http.ts, status.ts) passes through scrubSecrets().

/** Each registered secret in every spelling it may take in a message, longest first. */
let spellings: string[] = [];

/** The forms a secret takes on its way out: as is, JSON-escaped, percent-encoded. */
function formsOf(secret: string): string[] {
  return [secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)];
}

/** Adds secret values (empty and undefined ones are ignored). */
export function registerSecrets(...values: ReadonlyArray<string | undefined | null>): void {
  const all = new Set(spellings);
  for (const v of values) {
    if (!v) continue;
    for (const f of formsOf(v)) all.add(f);
  }
  spellings = [...all].sort((a, b) => b.length - a.length);
}

/** Adds a user and password sent as HTTP basic authentication (the header's base64 too). */
export function registerBasicAuth(user: string, password: string): void {
  if (!password) return;
  registerSecrets(password, Buffer.from(`${user}:${password}`, 'utf8').toString('base64'));
}

/**
 * Registers every secret of the configuration: the keys the schema marks secret (etcd-password,
 * consul-token, hcloud-token) and passwords written into endpoint URLs (user:password@host),
 * which the HTTP clients send as basic authentication.
 */
export function registerConfigSecrets(cfg: Config): void {
  for (const k of KEYS) {
    const v = (cfg as unknown as Record<string, unknown>)[k.name];
    if (k.secret && typeof v === 'string') registerSecrets(v);
  }
  const endpoints = cfg['dcs-endpoints'];
  for (const e of Array.isArray(endpoints) ? endpoints : []) {
    if (typeof e !== 'string') continue;
    let u: URL;
    try {
      u = new URL(e);
    } catch {
      continue;
    }
    if (u.password === '') continue;
    const decode = (s: string) => { try { return decodeURIComponent(s); } catch { return s; } };
    registerSecrets(u.password);
    registerBasicAuth(decode(u.username), decode(u.password));
  }
}

/** Forgets every registered secret (tests). */
export function clearSecrets(): void {
  spellings = [];
}

/** `text` with every registered secret replaced by MASK. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const s of spellings) if (out.includes(s)) out = out.split(s).join(MASK);
  return out;
}

/**
 * One log line (pino's JSON, with its newline) with registered secrets scrubbed out of its
 * strings. Lines without a secret, nearly all of them, are passed through untouched; a line
 * that is not JSON is scrubbed as text.
 */
export function scrubLogLine(line: string): string {
  if (!spellings.some((s) => line.includes(s))) return line;
  const nl = line.endsWith('\n') ? '\n' : '';
  try {
    return JSON.stringify(JSON.parse(line), (_k, v: unknown) => (typeof v === 'string' ? scrubSecrets(v) : v)) + nl;
  } catch {
    return scrubSecrets(line);
  }
}

/** Characters of an error message kept for the log and /status. */
export const MAX_MESSAGE_CHARS = 1000;

/**
 * Text from outside (an error message, a server's body) made fit to show: secrets scrubbed
 * first, so a cut can never leave half a secret, then cut to `max` characters with the
 * original length said.
 */
export function safeText(text: string, max = MAX_MESSAGE_CHARS): string {
  const clean = scrubSecrets(text);
  if (clean.length <= max) return clean;
  return `${clean.slice(0, max)}… (${clean.length} characters in all)`;
}
