// A bed for end-to-end tests of the leader sources other than etcd and of the Hetzner manager:
// a LAN of two node namespaces (n1 = 203.0.113.11, n2 = 203.0.113.12 on eth0), the test
// process moved into the switch namespace whose bridge carries 203.0.113.1, so in-process
// stand-ins (Consul, Patroni REST, Hetzner Robot) listening on that address are what the
// daemons on the nodes talk to. Nothing leaves the namespaces this bed creates.
// That address is not loopback, so a stand-in that receives credentials (the Hetzner APIs)
// serves HTTPS with a test CA (test/harness/tls.ts), and the daemon trusts it through the
// environment (StartOptions.env, NODE_EXTRA_CA_CERTS): the daemon refuses http:// there.
import { Daemon, type LogRecord } from '../harness/daemon.js';
import { enterNetns, leaveNetns } from '../harness/enter-netns.js';
import { createLan, type Lan, type LanHost } from '../harness/netns.js';

export const SWITCH_IP = '203.0.113.1';
export const VIP4 = '203.0.113.100';
export const V4 = `${VIP4}/24`;
export const NAMES = ['n1', 'n2'] as const;

export interface StartOptions {
  /** Wait for the daemon's "ready:" line (its first DCS answer applied); default true. */
  waitReady?: boolean;
  readyTimeoutMs?: number;
  /** Extra environment for the daemon (e.g. NODE_EXTRA_CA_CERTS to trust a stand-in's CA). */
  env?: Record<string, string>;
}

export interface SourcesBed {
  lan: Lan;
  nodes: [LanHost, LanHost];
  daemons: Daemon[];
  /**
   * Starts vip-manager on node i (named n1/n2) with `args`; only `--log-format json` (added by
   * the Daemon harness) is implied, so every test spells out its source and manager.
   */
  start(i: 0 | 1, args: string[], opts?: StartOptions): Promise<Daemon>;
  /** SIGKILLs every daemon started so far (between tests). */
  stopAll(): Promise<void>;
  dispose(): Promise<void>;
}

export async function createSourcesBed(): Promise<SourcesBed> {
  const lan = createLan(2, [...NAMES]);
  try {
    lan.sw.ip('addr', 'add', `${SWITCH_IP}/24`, 'dev', 'br0');
    enterNetns(lan.sw);
  } catch (e) {
    leaveNetns();
    lan.dispose();
    throw e;
  }
  const daemons: Daemon[] = [];
  const bed: SourcesBed = {
    lan,
    nodes: [lan.hosts[0]!, lan.hosts[1]!],
    daemons,
    async start(i, args, opts = {}) {
      const d = new Daemon({ ns: bed.nodes[i].ns, args, env: opts.env });
      daemons.push(d);
      if (opts.waitReady ?? true) await d.waitReady(opts.readyTimeoutMs);
      return d;
    },
    async stopAll() {
      await Promise.all(daemons.splice(0).map((d) => d.kill()));
    },
    async dispose() {
      await bed.stopAll();
      leaveNetns();
      lan.dispose();
    },
  };
  return bed;
}

/** Everything a daemon wrote (JSON records and raw lines), for "never logged" checks. */
export function allOutput(d: Daemon): string {
  return [...d.logs.map((r) => JSON.stringify(r)), ...d.rawLines].join('\n');
}

/** Log records from `from` on, e.g. to look only at what followed an action. */
export function logsSince(d: Daemon, from: number): LogRecord[] {
  return d.logs.slice(from);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
