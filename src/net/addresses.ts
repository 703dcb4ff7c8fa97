// Adding, removing and listing interface addresses through rtnetlink: what `ip addr add|del`
// does, without a child process, with the kernel's errno and explanation in the error.
import { AF_INET, AF_INET6 } from './libc.js';
import { NetlinkError } from './errors.js';
import { formatIp, maxPrefixLen, parseIp, type Family } from './ip.js';
import {
  NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR,
  decodeIfaddrmsg, encodeIfaddrmsg, parseAttrs, routeSocket, u32Attr, encodeAttr, IFADDRMSG_LEN,
  type NlMessage,
} from './netlink.js';

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_FLAGS = 8;
/** Skip duplicate address detection: without it an IPv6 VIP is "tentative" (unusable) for 1–2 s. */
export const IFA_F_NODAD = 0x02;
export const IFA_F_SECONDARY = 0x01;
export const IFA_F_TENTATIVE = 0x40;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;

export interface InterfaceAddress {
  /** Canonical text (RFC 5952 for IPv6), so equal addresses compare equal as strings. */
  address: string;
  prefixLen: number;
  family: Family;
  ifindex: number;
  /** IFA_F_* flags (32-bit, from IFA_FLAGS when present). */
  flags: number;
  /** RT_SCOPE_*: 0 global, 253 link, 254 host. */
  scope: number;
  /** IPv4: not the interface's primary address in its subnet. */
  secondary: boolean;
}

function request(verb: string, ifindex: number, ip: string, prefixLen: number): { body: Buffer; op: string } {
  const { family, bytes } = parseIp(ip);
  const text = `${formatIp(bytes)}/${prefixLen}`;
  const op = `${verb} ${text} ${verb === 'adding' ? 'to' : 'from'} interface #${ifindex}`;
  checkPrefix(ip, prefixLen, family, op);
  const v6 = family === 6;
  const flags = v6 ? IFA_F_NODAD : 0;
  const head = encodeIfaddrmsg({ family: v6 ? AF_INET6 : AF_INET, prefixLen, flags, scope: RT_SCOPE_UNIVERSE, index: ifindex });
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on point-to-point
  // links and the same as IFA_LOCAL otherwise — `ip addr add` sends both.
  const attrs = [encodeAttr(IFA_LOCAL, bytes), encodeAttr(IFA_ADDRESS, bytes)];
  if (flags) attrs.push(u32Attr(IFA_FLAGS, flags));
  return { body: Buffer.concat([head, ...attrs]), op };
}

function checkPrefix(ip: string, prefixLen: number, family: Family, op: string): void {
  // The wire field is a u8: a value it cannot carry would be silently truncated (33.5 → 33,
  // 256 → 0). Refuse those here with the errno the kernel itself uses for a bad prefix
  // (it checks 33–255 for IPv4 and 129–255 for IPv6 itself, with an extended-ACK text).
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > 255) {
    throw new NetlinkError(op, 22, 'EINVAL', `prefix length ${prefixLen} is out of range for ${ip} (0–${maxPrefixLen(family)})`);
  }
}

/**
 * Adds `ip/prefixLen` to the interface. Fails with NetlinkError code 'EEXIST' if it is
 * already there (callers that want idempotence catch that), 'ENODEV' for a missing
 * interface, 'EINVAL' for a bad prefix, 'EPERM' without CAP_NET_ADMIN.
 */
export function addAddress(ifindex: number, ip: string, prefixLen: number): void {
  const { body, op } = request('adding', ifindex, ip, prefixLen);
  routeSocket().request(op, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body);
}

/** Removes `ip/prefixLen`; 'EADDRNOTAVAIL' when no such address (with that prefix) is there. */
export function deleteAddress(ifindex: number, ip: string, prefixLen: number): void {
  const { body, op } = request('removing', ifindex, ip, prefixLen);
  routeSocket().request(op, RTM_DELADDR, 0, body);
}

/** Adds `ip/prefixLen` unless it is there already; returns whether it was added. */
export function ensureAddress(ifindex: number, ip: string, prefixLen: number): boolean {
  try {
    addAddress(ifindex, ip, prefixLen);
    return true;
  } catch (e) {
    if (e instanceof NetlinkError && e.code === 'EEXIST') return false;
    throw e;
  }
}

/**
 * Removes `ip/prefixLen` if it is there; returns whether it was removed. A missing address
 * (EADDRNOTAVAIL) or interface (ENODEV: gone since it was looked up) means there is nothing to do.
 */
export function ensureNoAddress(ifindex: number, ip: string, prefixLen: number): boolean {
  try {
    deleteAddress(ifindex, ip, prefixLen);
    return true;
  } catch (e) {
    if (e instanceof NetlinkError && (e.code === 'EADDRNOTAVAIL' || e.code === 'ENODEV')) return false;
    throw e;
  }
}

/** Decodes an RTM_NEWADDR/RTM_DELADDR message; null for families other than IPv4/IPv6. */
export function decodeAddressMessage(m: NlMessage): InterfaceAddress | null {
  const h = decodeIfaddrmsg(m.payload);
  if (h.family !== AF_INET && h.family !== AF_INET6) return null;
  const attrs = parseAttrs(m.payload.subarray(IFADDRMSG_LEN));
  const raw = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
  if (!raw) return null;
  const flagsAttr = attrs.get(IFA_FLAGS);
  const flags = flagsAttr && flagsAttr.length >= 4 ? flagsAttr.readUInt32LE(0) : h.flags;
  return {
    address: formatIp(raw),
    prefixLen: h.prefixLen,
    family: h.family === AF_INET ? 4 : 6,
    ifindex: h.index,
    flags,
    scope: h.scope,
    secondary: (flags & IFA_F_SECONDARY) !== 0,
  };
}

/** Addresses on one interface (or on all, when ifindex is 0), IPv4 first in kernel order. */
export function listAddresses(ifindex = 0, family?: Family): InterfaceAddress[] {
  const af = family === 4 ? AF_INET : family === 6 ? AF_INET6 : 0;
  const head = encodeIfaddrmsg({ family: af, prefixLen: 0, flags: 0, scope: 0, index: ifindex });
  const msgs = routeSocket().query(`listing addresses of interface #${ifindex}`, RTM_GETADDR, NLM_F_DUMP, head);
  const out: InterfaceAddress[] = [];
  for (const m of msgs) {
    if (m.type !== RTM_NEWADDR) continue;
    const a = decodeAddressMessage(m);
    // Filtered here too: kernels before 5.3 (no strict checking) ignore the index in a dump.
    if (a && (ifindex === 0 || a.ifindex === ifindex) && (!family || a.family === family)) out.push(a);
  }
  return out;
}

/**
 * Whether exactly `ip/prefixLen` is on the interface: the address compared by value and the
 * prefix length equal. 198.51.100.1/24 is not "present" on an interface with 198.51.100.11/24,
 * nor is 198.51.100.1/24 when 198.51.100.1/32 is there.
 */
export function hasAddress(ifindex: number, ip: string, prefixLen: number): boolean {
  const { family, bytes } = parseIp(ip);
  const want = formatIp(bytes);
  return listAddresses(ifindex, family).some((a) => a.address === want && a.prefixLen === prefixLen);
}

/**
 * The interface's primary IPv4 address: the first global-scope, non-secondary one, as the
 * kernel orders them (the address a host is normally known by). Null when it has none.
 */
export function primaryIPv4(ifindex: number): string | null {
  return listAddresses(ifindex, 4).find((a) => a.scope === RT_SCOPE_UNIVERSE && !a.secondary)?.address ?? null;
}
