// Typed errors of the net layer. Each carries the errno number and its name (`code`, like
// Node's own system errors) so callers branch on `code` instead of parsing messages, and
// each message says what to do about it: which capability is missing, which interface.

/** errno names that mean "try again shortly": the kernel was busy or short of memory. */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set(['EBUSY', 'EAGAIN', 'ENOBUFS', 'EINTR']);

/** What an unprivileged process lacks, by the kind of socket the call was made on. */
export type Capability = 'CAP_NET_ADMIN' | 'CAP_NET_RAW';

function capabilityHint(cap: Capability): string {
  return ` (this process lacks ${cap}; grant it with AmbientCapabilities=${cap} in the systemd unit, or run as root)`;
}

/** Common base: errno and name, and whether a retry may help. */
export class NetError extends Error {
  readonly errno: number;
  readonly code: string;
  /** Set when the failure is a missing privilege, so the message can name it. */
  readonly missingCapability: Capability | undefined;

  constructor(message: string, errno: number, code: string, missingCapability?: Capability) {
    super(message);
    this.name = new.target.name;
    this.errno = errno;
    this.code = code;
    this.missingCapability = missingCapability;
  }

  get transient(): boolean {
    return TRANSIENT_CODES.has(this.code);
  }
}

/** A libc call failed (socket, bind, sendto, recv, setsockopt). */
export class SyscallError extends NetError {
  readonly syscall: string;

  constructor(syscall: string, errno: number, code: string, context?: string, missingCapability?: Capability) {
    const need = missingCapability ? capabilityHint(missingCapability) : '';
    super(`${context ? `${context}: ` : ''}${syscall}() failed with ${code}${need}`, errno, code, missingCapability);
    this.syscall = syscall;
  }
}

/**
 * The kernel refused a netlink request. `extAck` is the kernel's own explanation from the
 * extended ACK (e.g. "ipv4: Address already assigned") when it sent one.
 */
export class NetlinkError extends NetError {
  readonly operation: string;
  readonly extAck: string | undefined;

  constructor(operation: string, errno: number, code: string, extAck?: string) {
    // Changing addresses or links is gated by CAP_NET_ADMIN in the socket's network namespace;
    // an EPERM from rtnetlink has no other cause.
    const cap: Capability | undefined = code === 'EPERM' ? 'CAP_NET_ADMIN' : undefined;
    const why = extAck ? `: ${extAck}` : '';
    const need = cap ? capabilityHint(cap) : '';
    super(`${operation} failed with ${code}${why}${need}`, errno, code, cap);
    this.operation = operation;
    this.extAck = extAck;
  }
}

/** No interface of that name (or index) exists in this network namespace. */
export class InterfaceNotFoundError extends NetError {
  readonly interfaceName: string;

  constructor(interfaceName: string) {
    super(`interface ${interfaceName} does not exist`, 19, 'ENODEV');
    this.interfaceName = interfaceName;
  }
}

/**
 * The interface has no Ethernet address to announce from (loopback, tun, wireguard,
 * ARPHRD_NONE...): neighbours could never learn where the VIP lives.
 */
export class NoLinkLayerAddressError extends Error {
  readonly code = 'ENOLINKLAYER';
  readonly interfaceName: string;
  readonly hwType: number;

  constructor(interfaceName: string, hwType: number, hwTypeName: string) {
    super(
      `interface ${interfaceName} has no Ethernet link-layer address (type ${hwTypeName}), so a VIP on it ` +
        'cannot be announced with ARP or neighbour advertisements; use an Ethernet interface (or a bond, bridge or VLAN on one)',
    );
    this.name = 'NoLinkLayerAddressError';
    this.interfaceName = interfaceName;
    this.hwType = hwType;
  }
}
