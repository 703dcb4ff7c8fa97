// LocalAddresses (what the Hetzner managers need of this machine's addresses) over the kernel
// layer: the interface's primary IPv4 and adding/removing the floating IP on the interface.
import { ensureAddress, ensureNoAddress, hasAddress, primaryIPv4 } from '../net/addresses.js';
import { findInterface, lookupInterface } from '../net/links.js';
import type { LocalAddresses } from './hetzner/local.js';

export function kernelAddresses(ifname: string | undefined): LocalAddresses {
  const index = () => {
    if (ifname === undefined) throw new Error('interface is not set; the floating IP cannot be configured locally');
    return lookupInterface(ifname).index;
  };
  return {
    async primaryIPv4(name) {
      const iface = findInterface(name);
      return iface === null ? null : primaryIPv4(iface.index);
    },
    async add(ip, prefixLen) {
      ensureAddress(index(), ip, prefixLen);
    },
    async remove(ip, prefixLen) {
      ensureNoAddress(index(), ip, prefixLen);
    },
    async has(ip, prefixLen) {
      const iface = ifname === undefined ? null : findInterface(ifname);
      return iface !== null && hasAddress(iface.index, ip, prefixLen);
    },
  };
}
