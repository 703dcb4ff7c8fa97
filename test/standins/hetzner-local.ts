// In-memory LocalAddresses for the Hetzner manager tests: a set of "ip/len" strings on one
// pretend interface, with a primary IPv4 address per interface name.
import { type LocalAddresses } from '../../src/vip/hetzner/local.js';

export class FakeLocalAddresses implements LocalAddresses {
  readonly addresses = new Set<string>();
  readonly calls: string[] = [];
  primary = new Map<string, string | null>();

  constructor(primary: Record<string, string | null> = {}) {
    for (const [k, v] of Object.entries(primary)) this.primary.set(k, v);
  }

  async primaryIPv4(ifname: string): Promise<string | null> {
    this.calls.push(`primary ${ifname}`);
    return this.primary.get(ifname) ?? null;
  }

  async add(ip: string, prefixLen: number): Promise<void> {
    this.calls.push(`add ${ip}/${prefixLen}`);
    this.addresses.add(`${ip}/${prefixLen}`);
  }

  async remove(ip: string, prefixLen: number): Promise<void> {
    this.calls.push(`remove ${ip}/${prefixLen}`);
    this.addresses.delete(`${ip}/${prefixLen}`);
  }

  async has(ip: string, prefixLen: number): Promise<boolean> {
    return this.addresses.has(`${ip}/${prefixLen}`);
  }
}
