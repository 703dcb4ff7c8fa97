// A small bed for daemon tests: a LAN of namespaces (two nodes and a peer), a real etcd in the
// switch namespace on the LAN (203.0.113.1), and helpers to start vip-manager on the nodes.
// The test process itself moves into the switch namespace so its etcd client reaches etcd.
import type { Etcd3 } from 'etcd3';
import { Daemon, hasVip } from '../harness/daemon.js';
import { enterNetns, leaveNetns } from '../harness/enter-netns.js';
import { startEtcd, type EtcdServer, type StartEtcdOptions } from '../harness/etcd.js';
import { createLan, type Lan, type LanHost } from '../harness/netns.js';

export const ETCD_HOST = '203.0.113.1';
export const VIP4 = '203.0.113.100';
export const VIP6 = '2001:db8:1::100';
export const KEY = '/service/test/leader';

export interface Bed {
  lan: Lan;
  nodes: [LanHost, LanHost];
  peer: LanHost;
  etcd: EtcdServer;
  kv: Etcd3;
  daemons: Daemon[];
  /**
   * Kills every daemon and removes the VIPs (VIP4/24, VIP6/64) a killed holder or a test left on
   * any host: the next test starts on a LAN where no host holds the address (the
   * address-conflict alarm rightly reports one that does).
   */
  reset(): Promise<void>;
  /** Starts vip-manager on node i (0 or 1), named n1/n2, with extra flags. */
  start(i: 0 | 1, extra?: string[], opts?: StartOptions): Promise<Daemon>;
  dispose(): Promise<void>;
}

export const NAMES = ['n1', 'n2'] as const;

export interface StartOptions {
  unprivileged?: boolean;
  /** With `unprivileged`: the capabilities kept (see DaemonOptions.caps). */
  caps?: readonly string[];
  ip?: string;
  netmask?: string;
  /** Defaults to the bed's etcd; e.g. a proxy in front of it. */
  endpoint?: string;
  /** Wait for the daemon's first applied DCS answer (default true). */
  waitReady?: boolean;
  /** Extra environment for the daemon (e.g. NOTIFY_SOCKET). */
  env?: Record<string, string>;
  /** Instead of `node bin/vip-manager.js` (see DaemonOptions.command). */
  command?: string[];
}

export async function createBed(etcdOpts: StartEtcdOptions = {}): Promise<Bed> {
  const lan = createLan(3, ['n1', 'n2', 'peer']);
  const daemons: Daemon[] = [];
  let etcd: EtcdServer | undefined;
  try {
    lan.sw.ip('addr', 'add', `${ETCD_HOST}/24`, 'dev', 'br0');
    lan.sw.ip('addr', 'add', '2001:db8:1::1/64', 'dev', 'br0', 'nodad');
    enterNetns(lan.sw);
    etcd = await startEtcd({ host: ETCD_HOST, ...etcdOpts });
  } catch (e) {
    leaveNetns();
    lan.dispose();
    throw e;
  }
  const kv = etcd.client();
  const bed: Bed = {
    lan, nodes: [lan.hosts[0]!, lan.hosts[1]!], peer: lan.hosts[2]!, etcd, kv, daemons,
    async start(i, extra = [], opts = {}) {
      const d = new Daemon({
        ns: bed.nodes[i].ns,
        unprivileged: opts.unprivileged,
        caps: opts.caps,
        env: opts.env,
        command: opts.command,
        args: [
          '--ip', opts.ip ?? VIP4, '--netmask', opts.netmask ?? '24', '--interface', 'eth0',
          '--trigger-key', KEY, '--trigger-value', NAMES[i], '--dcs-endpoints', opts.endpoint ?? etcd!.clientUrl,
          '--retry-after', '100', '--announce-count', '2', '--announce-interval', '50', ...extra,
        ],
      });
      daemons.push(d);
      if (opts.waitReady !== false) await d.waitReady();
      return d;
    },
    async reset() {
      await Promise.all(daemons.splice(0).map((d) => d.kill()));
      for (const h of [...bed.nodes, bed.peer]) {
        for (const cidr of [`${VIP4}/24`, `${VIP6}/64`]) if (hasVip(h.ns, cidr)) h.ns.ip('addr', 'del', cidr, 'dev', 'eth0');
      }
    },
    async dispose() {
      await Promise.allSettled(daemons.map((d) => d.kill()));
      await etcd!.dispose();
      leaveNetns();
      lan.dispose();
    },
  };
  return bed;
}
