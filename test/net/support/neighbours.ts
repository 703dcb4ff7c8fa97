// Reading a namespace's neighbour table (`ip -j neigh`), the peer-side proof that an
// announcement worked.
import type { Netns } from '../../harness/netns.js';

export function neighbourMac(ns: Netns, dev: string, ip: string): string | null {
  const entries = JSON.parse(ns.ip('-j', 'neigh', 'show', 'dev', dev)) as Array<{ dst: string; lladdr?: string }>;
  return entries.find((e) => e.dst === ip)?.lladdr ?? null;
}

/** Polls until the peer's entry for `ip` is `mac`; returns the milliseconds it took, or throws. */
export async function waitForNeighbour(ns: Netns, dev: string, ip: string, mac: string, timeoutMs: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    const now = neighbourMac(ns, dev, ip);
    if (now === mac) return performance.now() - start;
    if (performance.now() - start > timeoutMs) throw new Error(`${ns.name}: neighbour ${ip} is ${now ?? 'absent'}, not ${mac}, after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
