// Several VIPs in one daemon: the `vips:` list of the config file. Each entry sets per-VIP keys
// (schema scope 'vip') under their usual names; every top-level value is the default of every
// entry. Lines about an entry begin with its label, so that with twenty entries the operator
// knows which one is meant without counting.
import { isIP } from 'node:net';
import { clip } from './show.js';

/** The YAML key of the list. Not a flag or an environment variable: a list of mappings has no such form. */
export const VIPS_KEY = 'vips';

/**
 * At most this many entries. Each is a reconciler, a watched key and a set of metric series
 * (the `vip` label); 256 is far beyond any cluster and keeps a generated or pasted file from
 * turning into thousands of watches and series.
 */
export const MAX_VIPS = 256;

/** Problems inside `vips:` entries shown one by one; the rest are counted in one line (a pasted blob). */
export const MAX_ENTRY_PROBLEMS = 50;

/** How a line about entry `index` begins: `vips[1] (billing)`, or `vips[1] (198.51.100.101)` without a name. */
export function entryLabel(index: number, name: unknown, ip: unknown): string {
  const shown = typeof name === 'string' && /^[A-Za-z0-9._:-]{1,63}$/.test(name.trim())
    ? name.trim()
    : typeof ip === 'string' && isIP(ip.trim()) !== 0 ? clip(ip.trim()) : undefined;
  return `${VIPS_KEY}[${index}]${shown === undefined ? '' : ` (${shown})`}`;
}

/**
 * The address as one text per address: "2001:DB8:0::1" and "2001:db8::1" are the same VIP.
 * IPv4 text is already unique (Node's isIP refuses leading zeros).
 */
export function normalisedIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const [addr, zone] = ip.split('%');
  try {
    return new URL(`http://[${addr}]/`).hostname.slice(1, -1) + (zone === undefined ? '' : `%${zone}`);
  } catch {
    return ip;
  }
}

/**
 * The `vips:` list of the README's example (issue 14), as YAML lines: what the man page and the
 * sample configuration show, so the three never drift apart.
 */
export const VIPS_EXAMPLE_LIST: readonly string[] = [
  'vips:',
  '  - name: primary',
  '    ip: 198.51.100.100',
  '    trigger-key: /service/pg/leader',
  '  - name: billing',
  '    ip: 198.51.100.101',
  '    trigger-key: /service/billing/leader',
];
