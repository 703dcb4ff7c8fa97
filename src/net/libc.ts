// The few libc calls the net layer needs, bound through koffi (an FFI with prebuilt binaries:
// nothing to compile, no child processes). Every wrapper reads errno immediately after the
// call, because any later native work on this thread may overwrite it, and throws a
// SyscallError naming the call and the errno so callers never see a bare -1.
import koffi from 'koffi';
import { SyscallError } from './errors.js';

const lib = koffi.load('libc.so.6');

// Buffers are passed to `void *` parameters by reference (no copy), so recv/getsockopt write
// straight into the caller's Buffer.
const c = {
  socket: lib.func('int socket(int domain, int type, int protocol)'),
  bind: lib.func('int bind(int fd, void *addr, uint32_t addrlen)'),
  sendto: lib.func('intptr_t sendto(int fd, void *buf, size_t len, int flags, void *addr, uint32_t addrlen)'),
  recv: lib.func('intptr_t recv(int fd, void *buf, size_t len, int flags)'),
  setsockopt: lib.func('int setsockopt(int fd, int level, int optname, void *optval, uint32_t optlen)'),
  getsockopt: lib.func('int getsockopt(int fd, int level, int optname, void *optval, void *optlen)'),
  close: lib.func('int close(int fd)'),
  if_nametoindex: lib.func('uint32_t if_nametoindex(const char *name)'),
  // The handler is a pointer; only SIG_IGN (1) is ever passed, as an integer of pointer size.
  signal: lib.func('intptr_t signal(int signum, intptr_t handler)'),
  sigrtmin: lib.func('int __libc_current_sigrtmin(void)'),
  sigrtmax: lib.func('int __libc_current_sigrtmax(void)'),
  // Addresses above 2^53 do not fit a JS number: passed as a BigInt of pointer width.
  madvise: lib.func('int madvise(uintptr_t addr, size_t len, int advice)'),
  malloc_trim: lib.func('int malloc_trim(size_t pad)'),
};

export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const AF_PACKET = 17;

export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20; // the 64-bit-time_t value on x86-64 and arm64
export const SO_RCVBUFFORCE = 33;

export const MADV_DONTNEED = 4;

export const MSG_PEEK = 0x2;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;

// errno numbers → names. koffi ships the platform's table; several names share a number
// (EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK, ENOTSUP = EOPNOTSUPP): keep the name users
// see in strerror and in the kernel sources.
const ALIASES = new Set(['EWOULDBLOCK', 'EDEADLOCK', 'ENOTSUP']);
const ERRNO_NAMES = new Map<number, string>();
for (const [name, num] of Object.entries(koffi.os.errno)) {
  const had = ERRNO_NAMES.get(num);
  if (had === undefined || (ALIASES.has(had) && !ALIASES.has(name))) ERRNO_NAMES.set(num, name);
}

export const errno = koffi.os.errno as Readonly<Record<string, number>>;

/** 'EEXIST' for 17; 'E<n>' for numbers libc does not name. */
export function errnoName(num: number): string {
  return ERRNO_NAMES.get(num) ?? `E${num}`;
}

function check(ret: number, syscall: string): number {
  if (ret < 0) {
    const e = koffi.errno();
    throw new SyscallError(syscall, e, errnoName(e));
  }
  return ret;
}

export function socket(domain: number, type: number, protocol: number): number {
  return check(c.socket(domain, type, protocol) as number, 'socket');
}

export function bind(fd: number, addr: Buffer): void {
  check(c.bind(fd, addr, addr.length) as number, 'bind');
}

/** Sends `buf`; `addr` null for a connected socket. Returns the bytes sent. */
export function sendto(fd: number, buf: Buffer, flags: number, addr: Buffer | null): number {
  return check(c.sendto(fd, buf, buf.length, flags, addr, addr ? addr.length : 0) as number, 'sendto');
}

/**
 * Receives into `buf`. Returns the length (with MSG_TRUNC, the datagram's real length, which
 * may exceed buf.length). An expired SO_RCVTIMEO surfaces as a SyscallError with EAGAIN.
 */
export function recv(fd: number, buf: Buffer, flags: number): number {
  return check(c.recv(fd, buf, buf.length, flags) as number, 'recv');
}

/** Like recv, but returns null instead of throwing when nothing is queued (EAGAIN). */
export function recvNonBlocking(fd: number, buf: Buffer, flags: number): number | null {
  const ret = c.recv(fd, buf, buf.length, flags | MSG_DONTWAIT) as number;
  if (ret >= 0) return ret;
  const e = koffi.errno();
  if (e === errno.EAGAIN) return null;
  throw new SyscallError('recv', e, errnoName(e));
}

export function setsockopt(fd: number, level: number, name: number, value: Buffer): void {
  check(c.setsockopt(fd, level, name, value, value.length) as number, 'setsockopt');
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value, 0);
  setsockopt(fd, level, name, b);
}

export function getsockoptInt(fd: number, level: number, name: number): number {
  const v = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4, 0);
  check(c.getsockopt(fd, level, name, v, len) as number, 'getsockopt');
  return v.readInt32LE(0);
}

/** struct timeval for SO_RCVTIMEO: two 64-bit longs (x86-64 and arm64 Linux). */
export function setReceiveTimeout(fd: number, ms: number): void {
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv);
}

/** Closes a descriptor; errors are ignored because there is nothing useful to do about them. */
export function close(fd: number): void {
  c.close(fd);
}

/** 0 when no interface has that name. */
export function ifNameToIndex(name: string): number {
  return c.if_nametoindex(name) as number;
}

const SIG_IGN = 1;

/**
 * Ignores SIGRTMIN…SIGRTMAX (as glibc numbers them: the first few belong to the thread library).
 * Node cannot listen to them by name, and their default action is to terminate.
 */
export function ignoreRealtimeSignals(): void {
  const min = c.sigrtmin() as number;
  const max = c.sigrtmax() as number;
  for (let n = min; n <= max; n++) {
    if ((c.signal(n, SIG_IGN) as number) === -1) {
      const e = koffi.errno();
      throw new SyscallError('signal', e, errnoName(e), `ignoring signal ${n}`);
    }
  }
}

/** madvise(2) on [addr, addr + len); addr must be page-aligned. */
export function madvise(addr: bigint, len: bigint, advice: number): void {
  check(c.madvise(addr, len, advice) as number, 'madvise');
}

/**
 * glibc's malloc_trim(3) with no padding: hands the free pages of every malloc arena back to the
 * kernel. True when some memory was released.
 */
export function mallocTrim(): boolean {
  return (c.malloc_trim(0) as number) === 1;
}
