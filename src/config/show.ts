// How values appear in configuration messages. A value can be anything an operator (or a
// script gone wrong) pasted: it is shown clipped, so one bad value never turns into a
// 100 KB log line, and any password inside a URL is masked, so a refused endpoint does not
// put the secret into the journal.

/** Characters of a value shown before it is clipped. */
export const SHOWN_CHARS = 80;

const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^/@\s:]*:)[^/@\s]*@/gi;

/** `scheme://user:secret@host` → `scheme://user:*****@host`, anywhere in the text. */
export function maskUrlPasswords(text: string): string {
  return text.replace(URL_PASSWORD, '$1*****@');
}

/** Text clipped to SHOWN_CHARS, with the full length in bytes when it was clipped. */
export function clip(text: string): string {
  const chars = [...text];
  if (chars.length <= SHOWN_CHARS) return text;
  return `${chars.slice(0, SHOWN_CHARS).join('')}…(${Buffer.byteLength(text)} bytes)`;
}

/** A string as quoted in messages: JSON-quoted (control characters escaped), URL passwords masked, clipped. */
export function quote(text: string): string {
  const masked = maskUrlPasswords(text);
  const chars = [...masked];
  if (chars.length <= SHOWN_CHARS) return JSON.stringify(masked);
  return `${JSON.stringify(chars.slice(0, SHOWN_CHARS).join(''))}…(${Buffer.byteLength(text)} bytes)`;
}

/** Any raw value (string, number, list, mapping) as shown in messages. */
export function showRaw(raw: unknown): string {
  if (typeof raw === 'string') return quote(raw);
  if (raw !== null && typeof raw === 'object') {
    const json = maskUrlPasswords(JSON.stringify(raw) ?? String(raw));
    return clip(json);
  }
  return String(raw);
}
