// The leader key's value twice over: the bytes the DCS stores, which alone decide whether the
// key names this node, and a bounded text for logs and /status. Decoding first and comparing
// text would make distinct byte strings equal (every invalid UTF-8 sequence decodes to U+FFFD),
// and a value may be up to etcd's request limit (1.5 MiB) while it is copied into every log
// line and /status document that mentions it.
import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import type { LeaderValue } from '../reconcile/ports.js';

/** Characters of a value shown as is; a longer (or not valid UTF-8) value is summarised. */
export const DISPLAY_CHARS = 64;
/** Hex digits of the SHA-256 shown for a summarised value: enough to tell two values apart. */
const HASH_HEX = 12;

/**
 * The value as text for logs and /status, at most DISPLAY_MAX_CHARS characters. A valid UTF-8 value of
 * up to DISPLAY_CHARS characters is itself; anything else is its beginning (invalid bytes shown
 * as U+FFFD), then its length in bytes and a short SHA-256, so two values that display alike
 * can still be told apart: `node�1 (6 bytes, not valid UTF-8, sha256 3f2a…)`.
 */
export function displayValue(bytes: Uint8Array): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const valid = isUtf8(buf);
  // A code point takes at most 4 bytes: this slice holds the first DISPLAY_CHARS of them whole.
  const head = Array.from(buf.subarray(0, DISPLAY_CHARS * 4).toString('utf8'));
  const cut = head.length > DISPLAY_CHARS || buf.length > DISPLAY_CHARS * 4;
  if (valid && !cut) return head.join('');
  const sha = createHash('sha256').update(buf).digest('hex').slice(0, HASH_HEX);
  const shown = head.slice(0, DISPLAY_CHARS).join('');
  return `${shown}${cut ? '…' : ''} (${buf.length} bytes${valid ? '' : ', not valid UTF-8'}, sha256 ${sha})`;
}

/**
 * The longest text displayValue() returns, in UTF-16 units (String.length): DISPLAY_CHARS
 * characters of up to two units each, then the length and hash.
 */
export const DISPLAY_MAX_CHARS = 200;

/**
 * Text that may be long (a configured trigger-value, a value from a test fake) bounded alike.
 * Text within DISPLAY_MAX_CHARS is kept, so an existing display is never summarised again.
 */
export function displayText(text: string): string {
  return text.length <= DISPLAY_MAX_CHARS ? text : displayValue(Buffer.from(text, 'utf8'));
}

/** A value view for what the DCS answered: `bytes` as stored (null: the key does not exist). */
export function leaderValue(bytes: Uint8Array | null, revision: string, at: number, leaseDeadline: number | null): LeaderValue {
  return { kind: 'value', value: bytes === null ? null : displayValue(bytes), bytes, revision, at, leaseDeadline };
}


/** Same bytes (both absent counts as same). */
export function sameBytes(a: Uint8Array | null | undefined, b: Uint8Array | null | undefined): boolean {
  if (a === null || a === undefined || b === null || b === undefined) return (a ?? null) === (b ?? null);
  return Buffer.compare(a, b) === 0;
}
