// Hooks run with no capabilities, although the daemon holds CAP_NET_ADMIN and CAP_NET_RAW (as
// ambient capabilities from systemd, or as root). Node's spawn cannot run code between fork and
// exec, so the daemon prepares what a child inherits once, before the first hook, by changing
// only sets that matter at execve(2) (capabilities(7), "Transformation of capabilities during
// execve()"): P'(permitted) = (P(inheritable) & F(inheritable)) | (F(permitted) & P(bounding))
// | P'(ambient), where root gets F = all unless SECBIT_NOROOT is set.
//  - inheritable := 0 (capset, keeping effective and permitted): no inheritable caps pass, and
//    the kernel drops every ambient cap that is no longer inheritable;
//  - the ambient set cleared (PR_CAP_AMBIENT_CLEAR_ALL), in case the kernel kept any;
//  - as root: SECBIT_NOROOT (+ its lock), so root's exec no longer grants the bounding set.
// None of this drops the daemon's own effective or permitted capabilities: it keeps managing
// addresses. Capabilities are per thread; Node spawns children from the main thread, which is
// where these calls run (synchronous FFI calls run on the calling thread).
// Rejected: running hooks through `setpriv --inh-caps=-all --ambient-caps=-all`: a second
// program on every hook's path, which as root would also need --bounding-set=-all (and so
// CAP_SETPCAP) for the same effect, while the calls below are three system calls once.
import { readFileSync } from 'node:fs';
import koffi from 'koffi';

const lib = koffi.load('libc.so.6');
const c = {
  prctl: lib.func('int prctl(int option, ...)'),
  capget: lib.func('int capget(void *header, void *data)'),
  capset: lib.func('int capset(void *header, void *data)'),
};

const PR_GET_SECUREBITS = 27;
const PR_SET_SECUREBITS = 28;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;
const SECBIT_NOROOT = 1 << 0;
const SECBIT_NOROOT_LOCKED = 1 << 1;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** The daemon cannot make sure hooks run without capabilities: it does not start hooks. */
export class HookCapabilityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HookCapabilityError';
  }
}

function errnoText(call: string): string {
  const e = koffi.errno();
  return `${call} failed (errno ${e})`;
}

const ul = (v: number) => ['unsigned long', v] as const;

/** The capability sets of this thread, as /proc/thread-self/status shows them. */
export function threadCapabilities(): Record<'CapInh' | 'CapPrm' | 'CapEff' | 'CapBnd' | 'CapAmb', bigint> {
  const text = readFileSync('/proc/thread-self/status', 'utf8');
  const get = (name: string) => {
    const m = new RegExp(`^${name}:\\s*([0-9a-f]+)\\s*$`, 'im').exec(text);
    return m ? BigInt(`0x${m[1]}`) : 0n;
  };
  return { CapInh: get('CapInh'), CapPrm: get('CapPrm'), CapEff: get('CapEff'), CapBnd: get('CapBnd'), CapAmb: get('CapAmb') };
}

let prepared = false;

/**
 * Makes every child of this thread start with no capabilities (see the file's header). Throws
 * HookCapabilityError when that cannot be ensured: as root without CAP_SETPCAP (a unit with
 * User=root and a reduced CapabilityBoundingSet=), where a hook would get the bounding set.
 */
export function withholdCapabilitiesFromChildren(): void {
  if (prepared) return;
  const header = Buffer.alloc(8);
  header.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  header.writeInt32LE(0, 4);
  const data = Buffer.alloc(24); // two struct __user_cap_data_struct { effective, permitted, inheritable }
  if ((c.capget(header, data) as number) !== 0) throw new HookCapabilityError(`cannot read this process's capabilities: ${errnoText('capget')}`);
  data.writeUInt32LE(0, 8);
  data.writeUInt32LE(0, 20);
  if ((c.capset(header, data) as number) !== 0) throw new HookCapabilityError(`cannot clear the inheritable capabilities: ${errnoText('capset')}`);
  // EINVAL on kernels before 4.3, which have no ambient set to clear.
  if ((c.prctl(PR_CAP_AMBIENT, ...ul(PR_CAP_AMBIENT_CLEAR_ALL), ...ul(0), ...ul(0), ...ul(0)) as number) !== 0 && koffi.errno() !== koffi.os.errno.EINVAL) {
    throw new HookCapabilityError(`cannot clear the ambient capabilities: ${errnoText('prctl(PR_CAP_AMBIENT_CLEAR_ALL)')}`);
  }
  if (process.getuid!() === 0 || process.geteuid!() === 0) {
    const bits = c.prctl(PR_GET_SECUREBITS) as number;
    if (bits < 0) throw new HookCapabilityError(`cannot read the securebits: ${errnoText('prctl(PR_GET_SECUREBITS)')}`);
    if ((bits & SECBIT_NOROOT) === 0
      && (c.prctl(PR_SET_SECUREBITS, ...ul(bits | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED)) as number) !== 0
      && threadCapabilities().CapBnd !== 0n) {
      throw new HookCapabilityError('hooks would run as root with the capabilities of the bounding set: running as root, this process may not set SECBIT_NOROOT (it lacks CAP_SETPCAP); run vip-manager as its own user (User=vip-manager, as the packaged unit does) or give it CAP_SETPCAP');
    }
  }
  const after = threadCapabilities();
  if (after.CapInh !== 0n || after.CapAmb !== 0n) {
    throw new HookCapabilityError(`the inheritable or ambient capabilities are still set (CapInh ${after.CapInh.toString(16)}, CapAmb ${after.CapAmb.toString(16)}): hooks would inherit them`);
  }
  prepared = true;
}
