// Notices a silent etcd peer (packets dropped, no RST: cable cut, firewall drop, power loss)
// within about a second and a half, for one timer wake-up a second and one getsockopt, without
// breaking etcd's keepalive policy.
//
// Why not an application probe every second: measured at 1 Hz on a (shared, loaded) 2-core
// machine, a serializable Range through etcd3/grpc-js added 0.25–0.4 % of a core (about 0.1 %
// still over the JSON gateway, ~1 ms per call), against a budget of 0.02 %; and a watch request
// over HTTP/1.1 cannot carry a progress request at all (its body is read before the answer
// starts, gateway.ts).
//
// What is used instead: the kernel's TCP keepalive on every etcd connection, 1 s idle and 1 s
// between probes. The kernel sends the probe and the peer's kernel answers it; etcd never sees
// it, and it costs this process nothing.
// A timer here, woken about once a second, reads TCP_INFO (one getsockopt): when nothing at all
// (ACK or data) came back from the peer for SUSPECT_MS (one probe interval plus a margin for
// the round trip and the kernel's timer slack), the connection is suspect, and the owner
// confirms with a cheap call of its own (connection.ts: a serializable Range with a short
// deadline, which TCP retransmits after its 200 ms minimum RTO if a segment is lost, so one
// lost keepalive probe is not an outage). The kernel gives up by itself after KEEPALIVE_COUNT
// unanswered probes, should this process not look.
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import koffi from 'koffi';
import { setsockoptInt } from '../../net/libc.js';
import { wakeups } from '../../wakeups.js';

/** TCP_KEEPIDLE and TCP_KEEPINTVL (whole seconds; the kernel's minimum is 1). */
export const KEEPALIVE_PROBE_S = 1;
/** Unanswered probes after which the kernel itself drops the connection (backstop). */
export const KEEPALIVE_COUNT = 3;
/**
 * Nothing heard from the peer for this long makes a connection suspect. An idle, healthy
 * connection hears the ACK of a keepalive probe every ~1 s (+ the round trip, + the kernel's
 * timer slack: measured here 992–1020 ms between ACKs on an idle connection), so 1250 ms is
 * passed only when a probe went unanswered (or the round trip exceeds ~200 ms: then every
 * probe costs a confirming read, which is correct, only dearer).
 */
export const SUSPECT_MS = 1250;
/** Earliest re-check after a check; bounds the wake-ups if a clock reads oddly. */
const MIN_CHECK_MS = 20;

const IPPROTO_TCP = 6;
const SOL_SOCKET = 1;
const SO_KEEPALIVE = 9;
const TCP_KEEPIDLE = 4;
const TCP_KEEPINTVL = 5;
const TCP_KEEPCNT = 6;
const TCP_INFO = 11;
const TCP_ESTABLISHED = 1;
// struct tcp_info (linux/tcp.h), stable since 2.6: u8 tcpi_state at 0; u32 last_data_recv at
// 52 and last_ack_recv at 56, both "ms ago".
const TCPI_LAST_DATA_RECV = 52;
const TCPI_LAST_ACK_RECV = 56;
const TCP_INFO_LEN = 64;

const libc = koffi.load('libc.so.6');
const getsockopt = libc.func('int getsockopt(int fd, int level, int optname, void *optval, void *optlen)');

/** The socket's file descriptor (Node keeps it on the libuv handle), or -1. */
function fdOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/** ms since anything (ACK or data) arrived from the peer; null if the socket is not an established TCP socket. */
export function silentForMs(fd: number, buf = Buffer.alloc(TCP_INFO_LEN), len = Buffer.alloc(4)): number | null {
  len.writeUInt32LE(buf.length, 0);
  if ((getsockopt(fd, IPPROTO_TCP, TCP_INFO, buf, len) as number) !== 0) return null;
  if (len.readUInt32LE(0) < TCPI_LAST_ACK_RECV + 4 || buf[0] !== TCP_ESTABLISHED) return null;
  return Math.min(buf.readUInt32LE(TCPI_LAST_DATA_RECV), buf.readUInt32LE(TCPI_LAST_ACK_RECV));
}

/** Turns on 1 s kernel keepalive probes. Throws (SyscallError) if the socket refuses. */
export function tuneKeepalive(socket: Socket): number {
  const fd = fdOf(socket);
  if (fd < 0) throw new Error('etcd connection has no file descriptor (not a TCP socket?)');
  setsockoptInt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
  setsockoptInt(fd, IPPROTO_TCP, TCP_KEEPIDLE, KEEPALIVE_PROBE_S);
  setsockoptInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, KEEPALIVE_PROBE_S);
  setsockoptInt(fd, IPPROTO_TCP, TCP_KEEPCNT, KEEPALIVE_COUNT);
  return fd;
}

export interface SuspectConnection {
  /** host:port the connection was dialled for. */
  readonly target: string;
  readonly silentMs: number;
  /** Closes the connection now (the next call dials a new one). */
  close(): void;
}

/**
 * Decides about a suspect connection: resolve true if it proved alive, false to have it closed.
 * Until it settles the connection is not suspected again.
 */
export type ConfirmAlive = (c: SuspectConnection) => Promise<boolean>;

interface Tracked {
  readonly socket: Socket;
  readonly fd: number;
  readonly target: string;
  confirming: boolean;
}

export class TcpLiveness {
  private readonly tracked = new Set<Tracked>();
  private scheduled = false;
  private readonly info = Buffer.alloc(TCP_INFO_LEN);
  private readonly infoLen = Buffer.alloc(4);
  private confirm: ConfirmAlive = () => Promise.resolve(false);

  constructor(private readonly onError: (e: Error, target: string) => void = () => undefined) {}

  /** Who decides about suspect connections (the etcd client); by default they are closed. */
  setConfirm(confirm: ConfirmAlive): void {
    this.confirm = confirm;
  }

  /** Watches a freshly connected socket (before TLS, if any) until it closes. */
  adopt(socket: Socket, target: string): void {
    let fd: number;
    try {
      fd = tuneKeepalive(socket);
    } catch (e) {
      // Still usable: the frozen-member check notices a silent peer, only later (connection.ts).
      this.onError(e as Error, target);
      return;
    }
    const t: Tracked = { socket, fd, target, confirming: false };
    this.tracked.add(t);
    socket.once('close', () => {
      this.tracked.delete(t);
      if (this.tracked.size === 0) this.stop();
    });
    this.schedule(SUSPECT_MS);
  }

  /** Connections currently watched: the target each was dialled for and its descriptor (status, tests). */
  connections(): Array<{ target: string; fd: number }> {
    return [...this.tracked].filter((t) => !t.socket.destroyed).map((t) => ({ target: t.target, fd: t.fd }));
  }

  stop(): void {
    wakeups.cancel(this);
    this.scheduled = false;
  }

  private schedule(ms: number): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const at = Math.max(MIN_CHECK_MS, ms);
    // On the shared timer (the daemon's heartbeat rides on it); not ref'd: an idle connection
    // alone must not keep a closing process alive.
    wakeups.schedule(this, at, at, () => {
      this.scheduled = false;
      this.check();
    }, false);
  }

  private check(): void {
    let next = SUSPECT_MS;
    for (const t of this.tracked) {
      if (t.socket.destroyed) continue;
      const silent = silentForMs(t.fd, this.info, this.infoLen);
      if (silent === null) continue; // closing, or not (yet) established: the call's own error or deadline handles it
      if (silent < SUSPECT_MS) {
        next = Math.min(next, SUSPECT_MS - silent);
        continue;
      }
      if (t.confirming) continue;
      t.confirming = true;
      const sentAt = performance.now();
      const close = (): void => {
        if (!t.socket.destroyed) {
          t.socket.destroy(new Error(`etcd at ${t.target} went silent: nothing received for ${silent + Math.round(performance.now() - sentAt)} ms (TCP keepalive unanswered)`));
        }
      };
      void this.confirm({ target: t.target, silentMs: silent, close }).then(
        (alive) => alive,
        () => false,
      ).then((alive) => {
        t.confirming = false;
        if (!alive) close();
        if (this.tracked.size > 0) this.schedule(SUSPECT_MS);
      });
    }
    if (this.tracked.size > 0) this.schedule(next);
  }
}
