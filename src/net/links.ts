// Interface lookup through rtnetlink: index, link-layer address and hardware type (to refuse
// interfaces that cannot be announced on), and the up/running flags the manager reports.
import { InterfaceNotFoundError, NetlinkError } from './errors.js';
import {
  NLM_F_DUMP, RTM_GETLINK, RTM_NEWLINK, attrString, decodeIfinfomsg, encodeAttr, encodeIfinfomsg,
  parseAttrs, routeSocket, IFINFOMSG_LEN, type NlMessage,
} from './netlink.js';

/** Links are not per address family: requests use AF_UNSPEC, as `ip link` does. */
const AF_UNSPEC = 0;
export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;

/** Hardware types (ARPHRD_*, linux/if_arp.h) that matter here. */
export const ARPHRD_ETHER = 1;
export const ARPHRD_LOOPBACK = 772;
export const ARPHRD_NONE = 0xfffe;
const HW_TYPE_NAMES: Record<number, string> = {
  1: 'ether', 24: 'ieee1394', 32: 'infiniband', 65534: 'none', 772: 'loopback', 768: 'ipip', 769: 'ip6ip6',
  776: 'sit', 778: 'gre', 823: 'ip6gre', 65535: 'void',
};

export function hwTypeName(type: number): string {
  return HW_TYPE_NAMES[type] ?? `ARPHRD ${type}`;
}

export interface InterfaceInfo {
  index: number;
  name: string;
  /** "aa:bb:cc:dd:ee:ff" for an Ethernet-like interface; null when there is none to announce. */
  mac: string | null;
  /** ARPHRD_* (1 = Ethernet, 772 = loopback, 65534 = none, e.g. tun/wireguard). */
  hwType: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Operationally up: carrier present (IFF_RUNNING). */
  running: boolean;
}

export function decodeLinkMessage(m: NlMessage): InterfaceInfo {
  const h = decodeIfinfomsg(m.payload);
  const attrs = parseAttrs(m.payload.subarray(IFINFOMSG_LEN));
  const hw = attrs.get(IFLA_ADDRESS);
  // Only a 6-byte, non-zero address on an Ethernet-type link can be announced with ARP/NA
  // frames; loopback reports 00:00:00:00:00:00 and tun/wireguard report none.
  const mac = h.type === ARPHRD_ETHER && hw && hw.length === 6 && hw.some((b) => b !== 0) ? formatMac(hw) : null;
  return {
    index: h.index,
    name: attrString(attrs.get(IFLA_IFNAME)) ?? '',
    mac,
    hwType: h.type,
    up: (h.flags & IFF_UP) !== 0,
    running: (h.flags & IFF_RUNNING) !== 0,
  };
}

export function formatMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

export function parseMac(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new RangeError(`"${mac}" is not a MAC address`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** The interface of that name, or null if there is none in this network namespace. */
export function findInterface(name: string): InterfaceInfo | null {
  const body = Buffer.concat([
    encodeIfinfomsg({ family: AF_UNSPEC, type: 0, index: 0, flags: 0, change: 0 }),
    encodeAttr(IFLA_IFNAME, Buffer.from(`${name}\0`)),
  ]);
  try {
    const [m] = routeSocket().query(`looking up interface ${name}`, RTM_GETLINK, 0, body);
    return m ? decodeLinkMessage(m) : null;
  } catch (e) {
    if (e instanceof NetlinkError && e.code === 'ENODEV') return null;
    throw e;
  }
}

/** Like findInterface, but a missing interface is an InterfaceNotFoundError. */
export function lookupInterface(name: string): InterfaceInfo {
  const info = findInterface(name);
  if (!info) throw new InterfaceNotFoundError(name);
  return info;
}

/** The interface with that index, or null. */
export function findInterfaceByIndex(index: number): InterfaceInfo | null {
  const body = encodeIfinfomsg({ family: AF_UNSPEC, type: 0, index, flags: 0, change: 0 });
  try {
    const [m] = routeSocket().query(`looking up interface #${index}`, RTM_GETLINK, 0, body);
    return m ? decodeLinkMessage(m) : null;
  } catch (e) {
    if (e instanceof NetlinkError && e.code === 'ENODEV') return null;
    throw e;
  }
}

/** Every interface in this network namespace. */
export function listInterfaces(): InterfaceInfo[] {
  const body = encodeIfinfomsg({ family: AF_UNSPEC, type: 0, index: 0, flags: 0, change: 0 });
  return routeSocket()
    .query('listing interfaces', RTM_GETLINK, NLM_F_DUMP, body)
    .filter((m) => m.type === RTM_NEWLINK)
    .map(decodeLinkMessage);
}
