// The capabilities the daemon needs, checked once at start from the effective set the kernel
// reports in /proc/self/status (CapEff). Without this check a daemon lacking CAP_NET_ADMIN ran,
// answered /healthz and /readyz with 200, and failed only at its first takeover, i.e. exactly
// when the VIP was needed. Capabilities are counted in the process's own user namespace, which
// owns the network namespace it manages in every supported setup (host, container, test netns).

/** Bit numbers from linux/capability.h. */
const CAP_BITS = { CAP_NET_ADMIN: 12, CAP_NET_RAW: 13 } as const;

export type NetCapability = keyof typeof CAP_BITS;

/** Why each capability is needed, for the one line that names a missing one. */
const PURPOSE: Record<NetCapability, string> = {
  CAP_NET_ADMIN: 'adding and removing the VIP on the interface (rtnetlink)',
  CAP_NET_RAW: 'announcing the VIP with gratuitous ARP / unsolicited neighbour advertisements (AF_PACKET)',
};

/**
 * What each manager-type touches on this machine: basic adds the address and announces it;
 * hetzner-cloud adds the floating IP locally but Hetzner's network does the announcing; hetzner
 * (Robot) only routes through the API and merely reads the interface.
 */
export function requiredCapabilities(managerType: string): NetCapability[] {
  switch (managerType) {
    case 'basic': return ['CAP_NET_ADMIN', 'CAP_NET_RAW'];
    case 'hetzner-cloud': return ['CAP_NET_ADMIN'];
    default: return [];
  }
}

/** The effective set from the text of /proc/<pid>/status; null when the line is absent. */
export function parseEffectiveCapabilities(statusText: string): bigint | null {
  const m = /^CapEff:\s*([0-9a-f]+)\s*$/im.exec(statusText);
  return m ? BigInt(`0x${m[1]}`) : null;
}

export function missingCapabilities(effective: bigint, required: readonly NetCapability[]): NetCapability[] {
  return required.filter((cap) => (effective & (1n << BigInt(CAP_BITS[cap]))) === 0n);
}

/** The daemon cannot do its job without these: it stops at start (exit 1), naming them. */
export class MissingCapabilityError extends Error {
  constructor(readonly missing: readonly NetCapability[], managerType: string) {
    super(`this process lacks ${missing.join(' and ')}, which manager-type ${managerType} needs for ${missing.map((c) => PURPOSE[c]).join(' and ')}; `
      + `grant ${missing.length > 1 ? 'them' : 'it'} with AmbientCapabilities=${missing.join(' ')} in the systemd unit, or run as root`);
    this.name = 'MissingCapabilityError';
  }
}

/**
 * Throws MissingCapabilityError when the effective set lacks what `managerType` needs. Returns
 * false (and checks nothing) when the set cannot be read, e.g. without /proc: the kernel's EPERM
 * then still names the capability at the first change.
 */
export function assertCapabilities(managerType: string, readStatus: () => string): boolean {
  let effective: bigint | null;
  try {
    effective = parseEffectiveCapabilities(readStatus());
  } catch {
    return false;
  }
  if (effective === null) return false;
  const missing = missingCapabilities(effective, requiredCapabilities(managerType));
  if (missing.length > 0) throw new MissingCapabilityError(missing, managerType);
  return true;
}
