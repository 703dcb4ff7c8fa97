// Moves this test process's main thread into one of its namespaces (setns), so code under test
// that opens kernel sockets (rtnetlink, AF_PACKET) works on that namespace's interfaces
// in-process. Sockets stay bound to the namespace they were opened in, so a test can open a
// capture socket in a peer's namespace and then switch to the host under test.
// Child processes started while inside inherit the namespace, but tests still address
// namespaces explicitly (`ip -n`), so nothing relies on that.
import koffi from 'koffi';
import { closeSync, openSync, statSync } from 'node:fs';
import { closeRouteSocket } from '../../src/net/netlink.js';
import type { Netns } from './netns.js';

const CLONE_NEWNET = 0x40000000;
const libc = koffi.load('libc.so.6');
const setns = libc.func('int setns(int fd, int nstype)');

let homeFd: number | undefined;
let current: string | null = null;

function join(fd: number, what: string): void {
  if ((setns(fd, CLONE_NEWNET) as number) !== 0) throw new Error(`setns into ${what} failed with errno ${koffi.errno()}`);
  // The shared rtnetlink request socket belongs to the namespace it was opened in.
  closeRouteSocket();
}

/** Enters `ns` (leaving any other first); verifies the switch so a test never acts on the host. */
export function enterNetns(ns: Netns): void {
  homeFd ??= openSync('/proc/thread-self/ns/net', 'r');
  const fd = openSync(`/run/netns/${ns.name}`, 'r');
  try {
    join(fd, ns.name);
  } finally {
    closeSync(fd);
  }
  if (statSync('/proc/thread-self/ns/net').ino !== statSync(`/run/netns/${ns.name}`).ino) {
    throw new Error(`still not in namespace ${ns.name} after setns`);
  }
  current = ns.name;
}

/** Back to the namespace the process started in. */
export function leaveNetns(): void {
  if (homeFd === undefined || current === null) return;
  join(homeFd, 'the original namespace');
  current = null;
}

/** Runs `f` inside `ns` and comes back, even if it throws. */
export function inNetns<T>(ns: Netns, f: () => T): T {
  const previous = current;
  enterNetns(ns);
  try {
    return f();
  } finally {
    leaveNetns();
    if (previous) enterNetns({ name: previous } as Netns);
  }
}
