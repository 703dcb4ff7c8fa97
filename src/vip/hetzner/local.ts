// The narrow view of the machine's own addresses that the Hetzner managers need. The daemon wires
// it to the kernel layer (src/net/*); tests use an in-memory fake. Kept here, not imported from
// src/net, so the managers depend on what they use and nothing else.

export interface LocalAddresses {
  /**
   * The interface's primary (first, non-secondary) IPv4 address, or null when it has none or
   * does not exist yet. Robot routes the failover IP to this address unless hetzner-server-ip
   * is set; it is read locally, never learned by dialling out.
   */
  primaryIPv4(ifname: string): Promise<string | null>;
  /** Adds ip/prefixLen to the managed interface. Idempotent: present already is not an error. */
  add(ip: string, prefixLen: number): Promise<void>;
  /** Removes ip/prefixLen from the managed interface. Idempotent: absent is not an error. */
  remove(ip: string, prefixLen: number): Promise<void>;
  /** Whether exactly ip/prefixLen is on the managed interface (an exact match, not a substring). */
  has(ip: string, prefixLen: number): Promise<boolean>;
}
