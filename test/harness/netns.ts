// Test hosts in network namespaces. Everything here is created inside namespaces this process
// made (names `vmt-<pid>-<n>-<label>`); nothing in the root namespace is ever touched: veth
// pairs are created inside the "switch" namespace and one end is moved into the host's.
// Namespaces and the processes started in them are removed on dispose, on process exit, on
// SIGINT/SIGTERM, and, for leftovers of a dead test process, by the sweep at the next start.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { pidAlive } from './pid.js';

const PREFIX = 'vmt';
let counter = 0;
const live = new Set<Netns>();
const children = new Set<ChildProcess>();

/** Fails (never skips) when the test cannot create namespaces. */
export function requireNetnsPrivileges(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('this test needs root to create network namespaces (run the suite as root, as CI does)');
  }
  if (!existsSync('/usr/sbin/ip') && !existsSync('/sbin/ip') && !existsSync('/usr/bin/ip')) {
    throw new Error('this test needs iproute2 (`ip`): apt-get install iproute2');
  }
}

function run(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Removes namespaces left by test processes that are gone (a crash or a SIGKILL). */
export function sweepStale(): void {
  if (!existsSync('/run/netns')) return;
  for (const name of readdirSync('/run/netns')) {
    const m = /^vmt-(\d+)-/.exec(name);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) {
      try {
        killAllIn(name);
        run(['netns', 'del', name]);
      } catch { /* already gone */ }
    }
  }
}

function killAllIn(ns: string): void {
  let pids: string[] = [];
  try {
    pids = run(['netns', 'pids', ns]).split(/\s+/).filter(Boolean);
  } catch { return; }
  for (const pid of pids) {
    // A test process that entered the namespace (enter-netns.ts) is listed too: not itself.
    if (Number(pid) === process.pid) continue;
    try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
  }
}

export class Netns {
  readonly name: string;
  private disposed = false;

  constructor(label: string) {
    requireNetnsPrivileges();
    if (counter === 0) sweepStale();
    this.name = `${PREFIX}-${process.pid}-${++counter}-${label}`;
    run(['netns', 'add', this.name]);
    live.add(this);
    this.ip('link', 'set', 'lo', 'up');
  }

  /** `ip -n <ns> ...` */
  ip(...args: string[]): string {
    return run(['-n', this.name, ...args]);
  }

  /** Runs a command inside the namespace and returns its stdout. */
  exec(cmd: string, args: string[] = [], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): string {
    return execFileSync('ip', ['netns', 'exec', this.name, cmd, ...args], {
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      input: opts.input,
    });
  }

  /** Starts a long-running process inside the namespace; it is killed on dispose. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  }

  /** Addresses (CIDR) on an interface, from `ip -j addr`. */
  addresses(dev: string): string[] {
    const out = JSON.parse(this.ip('-j', 'addr', 'show', 'dev', dev)) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>;
    return (out[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    live.delete(this);
    killAllIn(this.name);
    try { run(['netns', 'del', this.name]); } catch { /* already gone */ }
  }
}

export interface LanHost {
  readonly ns: Netns;
  /** The host's interface on the LAN (always `eth0` inside its namespace). */
  readonly dev: 'eth0';
  readonly ipv4: string;
  readonly ipv6: string;
  readonly mac: string;
  /** The switch-side end of its cable (in the switch namespace), for cutting the link. */
  readonly port: string;
}

export interface Lan {
  readonly sw: Netns;
  readonly hosts: LanHost[];
  /** Cuts (down) or restores (up) a host's cable at the switch. */
  setCable(host: LanHost, up: boolean): void;
  dispose(): void;
}

/**
 * A LAN: a bridge inside a "switch" namespace and `count` hosts, each in its own namespace
 * with `eth0` = 203.0.113.(11+i)/24 and 2001:db8:1::(11+i)/64 (documentation ranges).
 */
export function createLan(count: number, labels: string[] = []): Lan {
  const sw = new Netns('sw');
  const hosts: LanHost[] = [];
  try {
    sw.ip('link', 'add', 'br0', 'type', 'bridge');
    sw.ip('link', 'set', 'br0', 'up');
    for (let i = 0; i < count; i++) {
      const ns = new Netns(labels[i] ?? `h${i + 1}`);
      const port = `p${i + 1}`;
      sw.ip('link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name);
      sw.ip('link', 'set', port, 'master', 'br0');
      sw.ip('link', 'set', port, 'up');
      const ipv4 = `203.0.113.${11 + i}`;
      const ipv6 = `2001:db8:1::${11 + i}`;
      ns.ip('addr', 'add', `${ipv4}/24`, 'dev', 'eth0');
      ns.ip('addr', 'add', `${ipv6}/64`, 'dev', 'eth0', 'nodad');
      ns.ip('link', 'set', 'eth0', 'up');
      const link = JSON.parse(ns.ip('-j', 'link', 'show', 'dev', 'eth0')) as Array<{ address: string }>;
      hosts.push({ ns, dev: 'eth0', ipv4, ipv6, mac: link[0]!.address, port });
    }
  } catch (e) {
    for (const h of hosts) h.ns.dispose();
    sw.dispose();
    throw e;
  }
  return {
    sw,
    hosts,
    setCable(host, up) {
      sw.ip('link', 'set', host.port, up ? 'up' : 'down');
    },
    dispose() {
      for (const h of hosts) h.ns.dispose();
      sw.dispose();
    },
  };
}

function disposeAll(): void {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
  for (const ns of [...live]) ns.dispose();
}

process.once('exit', disposeAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    disposeAll();
    process.exit(130);
  });
}
