// AF_UNIX datagram sockets, which Node's `net` module cannot create: the daemon sends systemd
// its readiness messages ($NOTIFY_SOCKET) this way, and tests receive them the same way.
// A path starting with '@' names a Linux abstract socket (a leading NUL byte, no file), the
// form systemd uses for $NOTIFY_SOCKET in some setups.
import koffi from 'koffi';
import * as libc from './libc.js';
import { SyscallError } from './errors.js';

/** sun_path's size in struct sockaddr_un. */
const SUN_PATH_BYTES = 108;
const MAX_DATAGRAM_BYTES = 64 * 1024;

export class UnixPathError extends Error {
  readonly code = 'ENAMETOOLONG';
  constructor(path: string) {
    super(`unix socket path "${path}" is longer than ${SUN_PATH_BYTES - 1} bytes`);
    this.name = 'UnixPathError';
  }
}

function sockaddrUn(path: string): Buffer {
  const abstract = path.startsWith('@');
  const name = abstract ? Buffer.concat([Buffer.from([0]), Buffer.from(path.slice(1))]) : Buffer.from(path);
  if (name.length === 0 || name.length > SUN_PATH_BYTES - (abstract ? 0 : 1)) throw new UnixPathError(path);
  // An abstract name is exactly its bytes (a trailing NUL would be part of the name); a
  // filesystem path is NUL-terminated.
  const sa = Buffer.alloc(2 + name.length + (abstract ? 0 : 1));
  sa.writeUInt16LE(libc.AF_UNIX, 0);
  name.copy(sa, 2);
  return sa;
}

function withContext<T>(context: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof SyscallError) throw new SyscallError(e.syscall, e.errno, e.code, context);
    throw e;
  }
}

/** Sends one datagram to the socket at `path` ('@name' = abstract). Throws SyscallError. */
export function sendDatagram(path: string, data: Buffer | string): void {
  const addr = sockaddrUn(path);
  const payload = typeof data === 'string' ? Buffer.from(data) : data;
  withContext(`sending a datagram to ${path}`, () => {
    const fd = libc.socket(libc.AF_UNIX, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC, 0);
    try {
      libc.sendto(fd, payload, 0, addr);
    } finally {
      libc.close(fd);
    }
  });
}

export interface DatagramReceiver {
  readonly path: string;
  /** The next queued datagram, or null when none is waiting (never blocks). */
  recv(): Buffer | null;
  /** Resolves with the next datagram; rejects after `timeoutMs`. One wait at a time. */
  next(timeoutMs: number): Promise<Buffer>;
  close(): void;
}

/**
 * Binds a datagram socket at `path` ('@name' = abstract; a filesystem path must not exist
 * yet and is left for the caller to remove).
 */
export function bindDatagramReceiver(path: string): DatagramReceiver {
  const addr = sockaddrUn(path);
  const fd = withContext(`binding ${path}`, () => {
    const s = libc.socket(libc.AF_UNIX, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC | libc.SOCK_NONBLOCK, 0);
    try {
      libc.bind(s, addr);
      return s;
    } catch (e) {
      libc.close(s);
      throw e;
    }
  });
  const buf = Buffer.alloc(MAX_DATAGRAM_BYTES);
  let open = true;
  const recv = (): Buffer | null => {
    if (!open) throw new Error(`datagram receiver ${path} is closed`);
    const n = withContext(`receiving on ${path}`, () => libc.recvNonBlocking(fd, buf, 0));
    return n === null ? null : Buffer.from(buf.subarray(0, n));
  };
  const waiters = new Set<() => void>();
  return {
    path,
    recv,
    next(timeoutMs) {
      const ready = recv();
      if (ready) return Promise.resolve(ready);
      // libuv allows one poll handle per descriptor; a second would make it misbehave.
      if (waiters.size > 0) return Promise.reject(new Error(`already waiting for a datagram on ${path}`));
      return new Promise<Buffer>((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          handle.close();
          waiters.delete(cancel);
        };
        const cancel = (): void => {
          done();
          reject(new Error(`datagram receiver ${path} closed while waiting`));
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no datagram on ${path} within ${timeoutMs} ms`));
        }, timeoutMs);
        const onReadable = (): void => {
          try {
            const d = recv();
            if (!d) return;
            done();
            resolve(d);
          } catch (e) {
            done();
            reject(e as Error);
          }
        };
        const handle = koffi.node.poll(fd, { readable: true }, onReadable as unknown as Parameters<typeof koffi.node.poll>[1]);
        waiters.add(cancel);
      });
    },
    close() {
      if (!open) return;
      for (const w of [...waiters]) w();
      open = false;
      libc.close(fd);
    },
  };
}
