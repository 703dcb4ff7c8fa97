// Comparing IP addresses as the APIs write them. Robot and Cloud may spell an IPv6 address
// differently from our configuration (leading zeros, :: placement), so comparisons go through a
// canonical form instead of string equality.
import { isIP } from 'node:net';

/** Canonical text of an IPv4 or IPv6 address (IPv6 compressed, lower case); null if not an IP. */
export function canonicalIp(ip: string): string | null {
  const s = ip.trim();
  const family = isIP(s);
  if (family === 4) return s.split('.').map((o) => String(Number(o))).join('.');
  if (family === 6) {
    try {
      // The WHATWG URL parser canonicalises IPv6 hosts (RFC 5952) and is always available.
      return new URL(`http://[${s}]/`).hostname.slice(1, -1);
    } catch {
      return null;
    }
  }
  return null;
}

export function sameIp(a: string | null | undefined, b: string | null | undefined): boolean {
  if (a === null || a === undefined || b === null || b === undefined) return false;
  const ca = canonicalIp(a);
  return ca !== null && ca === canonicalIp(b);
}

/** The 16 bytes of an IPv6 address, or null. */
function ipv6Bytes(ip: string): number[] | null {
  const c = canonicalIp(ip);
  if (c === null || !c.includes(':')) return null;
  const [head, tail] = c.includes('::') ? c.split('::') : [c, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) return null;
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

/**
 * Whether `addr` is `network` (IPv4: the same address) or lies inside it when `network` is an
 * IPv6 prefix such as "2001:db8::/64" (how Hetzner Cloud writes IPv6 floating IPs).
 */
export function ipMatchesNetwork(addr: string, network: string): boolean {
  const slash = network.indexOf('/');
  if (slash < 0) return sameIp(addr, network);
  const prefix = Number(network.slice(slash + 1));
  const a = ipv6Bytes(addr);
  const n = ipv6Bytes(network.slice(0, slash));
  if (a === null || n === null || !Number.isInteger(prefix) || prefix < 0 || prefix > 128) {
    return sameIp(addr, network.slice(0, slash));
  }
  for (let bit = 0; bit < prefix; bit++) {
    const byte = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    if (((a[byte] as number) & mask) !== ((n[byte] as number) & mask)) return false;
  }
  return true;
}
