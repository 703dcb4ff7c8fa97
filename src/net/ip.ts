// IP address text ⇄ bytes, so that addresses compare by value: "2001:DB8::0:1" and
// "2001:db8::1" are the same address, and a presence check must say so.
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export interface ParsedIp {
  family: Family;
  bytes: Buffer;
}

export class InvalidAddressError extends Error {
  readonly code = 'EINVALIDADDRESS';
  constructor(text: string) {
    super(`"${text}" is not an IPv4 or IPv6 address`);
    this.name = 'InvalidAddressError';
  }
}

export function parseIp(text: string): ParsedIp {
  if (isIPv4(text)) return { family: 4, bytes: Buffer.from(text.split('.').map(Number)) };
  // Zone ids ("fe80::1%eth0") name an interface, not an address: the caller gives the interface.
  if (!isIPv6(text) || text.includes('%')) throw new InvalidAddressError(text);
  return { family: 6, bytes: parseIpv6(text) };
}

function parseIpv6(text: string): Buffer {
  let s = text.toLowerCase();
  const groups: number[] = [];
  // A trailing dotted quad ("::ffff:192.0.2.1") stands for the last two groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (quad) {
    const b = quad[1]!.split('.').map(Number);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    s = s.slice(0, -quad[1]!.length);
    if (s.endsWith(':') && !s.endsWith('::')) s = s.slice(0, -1);
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = [...(rest === undefined ? [] : parse(rest)), ...tail];
  if (rest === undefined) groups.push(...left, ...right);
  else groups.push(...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right);
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** Canonical text (RFC 5952 for IPv6: lower case, longest zero run of ≥2 groups as "::"). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  const b = Buffer.from(bytes);
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** The canonical text of an address given in any valid form. */
export function normaliseIp(text: string): string {
  return formatIp(parseIp(text).bytes);
}

/** Largest prefix length for the family. */
export function maxPrefixLen(family: Family): number {
  return family === 4 ? 32 : 128;
}
