// Which addresses can be a VIP. A VIP is a unicast service address that other hosts reach
// through ARP/NDP on the interface's link; anything else, once added, either never works
// (loopback, multicast, broadcast, unspecified: the kernel or the network ignores it, and the
// daemon would retry or re-announce forever) or is ambiguous (a link-local address exists once
// per link, so a zone is needed and it is not a service address; an IPv4-mapped IPv6 address
// is the IPv4 address in disguise and the kernel does not configure it). All are refused with
// the reason, so `--check-config` and the start agree.
import { BlockList, isIP } from 'node:net';

function list(family: 'ipv4' | 'ipv6', ...subnets: Array<[string, number]>): BlockList {
  const b = new BlockList();
  for (const [net, prefix] of subnets) b.addSubnet(net, prefix, family);
  return b;
}

/** Checked in order; the first that matches names the reason. Lists of one family only, see vipAddressProblem. */
type Refused = [BlockList, string, string?];
const IPV4_REFUSED: readonly Refused[] = [
  [list('ipv4', ['0.0.0.0', 32]), 'the unspecified address 0.0.0.0'],
  [list('ipv4', ['255.255.255.255', 32]), 'the limited broadcast address'],
  [list('ipv4', ['127.0.0.0', 8]), 'a loopback address (127.0.0.0/8)'],
  [list('ipv4', ['224.0.0.0', 4]), 'a multicast address (224.0.0.0/4)'],
  [list('ipv4', ['169.254.0.0', 16]), 'a link-local address (169.254.0.0/16), which no other subnet routes to'],
];
const IPV6_REFUSED: readonly Refused[] = [
  // First: a BlockList matches an IPv4-mapped address against IPv4 subnets, too.
  [list('ipv6', ['::ffff:0:0', 96]), 'an IPv4-mapped IPv6 address (::ffff:0:0/96), which the kernel does not configure as such', 'expected the IPv4 address itself'],
  [list('ipv6', ['::', 128]), 'the unspecified address ::'],
  [list('ipv6', ['::1', 128]), 'the loopback address ::1'],
  [list('ipv6', ['ff00::', 8]), 'a multicast address (ff00::/8)'],
  [list('ipv6', ['fe80::', 10]), 'a link-local address (fe80::/10), which exists once per link and is not a service address'],
];

const EXPECTED = 'expected a unicast address for the service';

/** Why `ip` cannot be a VIP on its own (any prefix), or undefined. `ip` passed isIP. */
export function vipAddressProblem(ip: string): string | undefined {
  if (isIP(ip) === 0) return undefined; // refused as not an address at all
  if (ip.includes('%')) {
    return `it has a zone (${ip.slice(ip.indexOf('%'))}), which only link-local addresses take, and a link-local address cannot be a VIP; ${EXPECTED}`;
  }
  const family = isIP(ip);
  const refused = family === 4 ? IPV4_REFUSED : IPV6_REFUSED;
  for (const [block, why, expected] of refused) {
    if (block.check(ip, family === 4 ? 'ipv4' : 'ipv6')) return `it is ${why}; ${expected ?? EXPECTED}`;
  }
  return undefined;
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/**
 * Why `ip` cannot be a VIP in its subnet, or undefined: the subnet's broadcast address, and
 * for prefixes below 31 its network address (RFC 3021: /31 and /32 have neither).
 */
export function vipInSubnetProblem(ip: string, prefix: number): string | undefined {
  if (isIP(ip) !== 4 || prefix >= 31 || prefix < 1) return undefined;
  const size = 2 ** (32 - prefix);
  const n = ipv4ToInt(ip);
  const network = n - (n % size);
  const subnet = `${intToIpv4(network)}/${prefix}`;
  if (n === network + size - 1) return `it is the broadcast address of ${subnet}; ${EXPECTED}`;
  if (n === network) return `it is the network address of ${subnet}; ${EXPECTED}`;
  return undefined;
}
