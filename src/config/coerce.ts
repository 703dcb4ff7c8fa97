// Turns a raw value from any layer (a string from a flag or env, a YAML scalar or list from the
// file) into the key's type. Failures say what was expected, in words a user can act on.
import { splitCommand } from '../hooks/command.js';
import type { KeyDef } from './schema.js';
import { showRaw } from './show.js';

export type Coerced = { ok: true; value: unknown } | { ok: false; expected: string };

/** The spellings the Go original accepts (Go's strconv.ParseBool via viper), plus yes/no/on/off. */
const TRUE_WORDS = new Set(['true', 't', '1', 'yes', 'y', 'on']);
const FALSE_WORDS = new Set(['false', 'f', '0', 'no', 'n', 'off']);

function scalarText(raw: unknown): string | undefined {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  return undefined;
}

export function coerce(k: KeyDef, raw: unknown): Coerced {
  switch (k.kind) {
    case 'string': {
      const s = scalarText(raw);
      return s === undefined ? { ok: false, expected: 'expected a single value, not a list or mapping' } : { ok: true, value: s.trim() };
    }
    case 'integer': {
      if (typeof raw === 'number' && Number.isSafeInteger(raw)) return { ok: true, value: raw };
      const s = scalarText(raw)?.trim();
      if (s !== undefined && /^[+-]?\d+$/.test(s)) {
        // Beyond 2^53 a number is no longer the digits given; no key takes anything near it.
        return Number.isSafeInteger(Number(s)) ? { ok: true, value: Number(s) } : { ok: false, expected: 'expected a whole number (this one is far too large)' };
      }
      return { ok: false, expected: 'expected a whole number' };
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return { ok: true, value: raw };
      const s = scalarText(raw)?.trim().toLowerCase();
      if (s !== undefined && TRUE_WORDS.has(s)) return { ok: true, value: true };
      if (s !== undefined && FALSE_WORDS.has(s)) return { ok: true, value: false };
      return { ok: false, expected: 'expected true or false' };
    }
    case 'list': {
      const parts = Array.isArray(raw) ? raw.map(scalarText) : [scalarText(raw)];
      if (parts.some((p) => p === undefined)) return { ok: false, expected: 'expected a list of values or a comma-separated string' };
      // Every element may itself be comma-separated: "--dcs-endpoints a,b --dcs-endpoints c".
      const items = (parts as string[]).flatMap((p) => p.split(',')).map((p) => p.trim()).filter((p) => p !== '');
      return { ok: true, value: items };
    }
    case 'command': {
      // A list is taken word for word; one string is split as systemd splits ExecStart=.
      if (Array.isArray(raw)) {
        const words = raw.map(scalarText);
        if (words.some((w) => w === undefined)) return { ok: false, expected: 'expected a list of words (the path, then each argument), or one string' };
        return { ok: true, value: words };
      }
      const s = scalarText(raw);
      if (s === undefined) return { ok: false, expected: 'expected a command: a list of words (the path, then each argument), or one string' };
      const split = splitCommand(s);
      return split.ok ? { ok: true, value: split.words } : { ok: false, expected: split.expected };
    }
    case 'enum': {
      const s = scalarText(raw)?.trim().toLowerCase();
      const canonical = s === undefined ? undefined : (k.aliases?.[s] ?? s);
      if (canonical !== undefined && k.values!.includes(canonical)) return { ok: true, value: canonical };
      return { ok: false, expected: `expected one of ${k.values!.join(', ')}` };
    }
  }
}

/** How a value is quoted in messages; secrets are never shown, long values are clipped. */
export function showValue(k: KeyDef, raw: unknown): string {
  if (k.secret) return '*****';
  return showRaw(raw);
}
