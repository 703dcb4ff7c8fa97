// Picks the leader source and the VIP holder that the configuration names. Each is imported
// only when configured: an etcd daemon never loads the Consul, Patroni or Hetzner code, which
// would only add start-up time and resident memory to a process that runs for months.
import type { Config } from '../config/schema.js';
import type { ConsulSourceOptions } from '../dcs/consul/source.js';
import type { EtcdSourceOptions } from '../dcs/etcd/source.js';
import type { PatroniSourceOptions } from '../dcs/patroni/rest-source.js';
import type { Logger } from '../log.js';
import type { VipMetrics } from '../ops/metrics.js';
import { DcsSession, type DcsBackend } from '../dcs/session.js';
import { roleSource } from '../dcs/role-source.js';
import { registerBasicAuth } from '../ops/redact.js';
import type { LeaderSource, VipManager } from '../reconcile/ports.js';

/**
 * The one DCS session of the daemon (dcs/session.ts): one client or query loop for every entry.
 * The session and the role VIPs' code come with this module (every daemon has a session, and
 * both are small: a lazy import of each would cost a start more, in the package's chunk files,
 * than it saves); each DCS's only when configured.
 */
export async function createDcsSession(cfg: Config, log: Logger): Promise<DcsSession> {
  return new DcsSession(await createBackend(cfg, log), roleSource, log);
}

async function createBackend(cfg: Config, log: Logger): Promise<DcsBackend> {
  switch (cfg['dcs-type']) {
    case 'etcd': return (await import('../dcs/etcd/backend.js')).createEtcdBackend(etcdSourceOptions(cfg), log);
    case 'consul': {
      const o = consulSourceOptions(cfg, log);
      return (await import('../dcs/consul/backend.js')).createConsulBackend(o, o.log);
    }
    case 'patroni': {
      // Patroni's REST API is polled per path: each distinct trigger-key is one poller.
      const { PatroniLeaderSource } = await import('../dcs/patroni/rest-source.js');
      return {
        kind: 'patroni', providesLeaseDeadline: false,
        keySource: (key) => new PatroniLeaderSource({ ...patroniSourceOptions(cfg, log), triggerKey: key }),
        // The configuration refuses role VIPs with dcs-type patroni (config/load.ts).
        prefixSource: (prefix) => { throw new Error(`dcs-type patroni cannot watch the cluster prefix ${prefix} that role VIPs need`); },
        close: async () => undefined,
      };
    }
  }
}

/** The etcd source's settings from the configuration (the source never sees the whole Config). */
export function etcdSourceOptions(cfg: Config): EtcdSourceOptions {
  return {
    endpoints: cfg['dcs-endpoints'],
    triggerKey: cfg['trigger-key'],
    user: cfg['etcd-user'],
    password: cfg['etcd-password'],
    caFile: cfg['etcd-ca-file'],
    certFile: cfg['etcd-cert-file'],
    keyFile: cfg['etcd-key-file'],
    retryAfter: cfg['retry-after'],
    retryNum: cfg['retry-num'],
    leaseCheckInterval: cfg['lease-check-interval'],
  };
}

export function consulSourceOptions(cfg: Config, log: Logger): ConsulSourceOptions {
  return {
    endpoints: cfg['dcs-endpoints'],
    triggerKey: cfg['trigger-key'],
    token: cfg['consul-token'],
    // The original's Consul client trusts the system roots only; the CA file is added to them.
    tls: { caFile: cfg['etcd-ca-file'], certFile: cfg['etcd-cert-file'], keyFile: cfg['etcd-key-file'], alsoDefaultRoots: true },
    intervalMs: cfg.interval,
    retryAfterMs: cfg['retry-after'],
    retryNum: cfg['retry-num'],
    log: log.child({ dcs: 'consul' }),
  };
}

export function patroniSourceOptions(cfg: Config, log: Logger): PatroniSourceOptions {
  return {
    endpoints: cfg['dcs-endpoints'],
    triggerKey: cfg['trigger-key'],
    tls: { caFile: cfg['etcd-ca-file'], certFile: cfg['etcd-cert-file'], keyFile: cfg['etcd-key-file'] },
    intervalMs: cfg.interval,
    retryAfterMs: cfg['retry-after'],
    retryNum: cfg['retry-num'],
    log: log.child({ dcs: 'patroni' }),
  };
}

export async function createVipManager(cfg: Config, log: Logger, metrics: VipMetrics): Promise<VipManager> {
  switch (cfg['manager-type']) {
    case 'basic': {
      const { BasicManager } = await import('../vip/basic.js');
      const manager: VipManager = new BasicManager({
        ip: cfg.ip, prefixLen: cfg.netmask, interfaceName: cfg.interface!,
        announceCount: cfg['announce-count'], announceInterval: cfg['announce-interval'], announceRefresh: cfg['announce-refresh'],
        retryNum: cfg['retry-num'], retryAfter: cfg['retry-after'],
        onAnnounce: (packets: number) => metrics.announced(packets),
        onConflict: () => metrics.addressConflict(),
      }, log);
      metrics.setConflictSource(() => manager.conflicts?.().length ?? 0);
      return manager;
    }
    case 'hetzner': {
      const [{ createHetznerRobotManager }, { kernelAddresses }] = await Promise.all([import('../vip/hetzner/robot.js'), import('../vip/kernel-addresses.js')]);
      return createHetznerRobotManager(cfg, kernelAddresses(cfg.interface), log);
    }
    case 'hetzner-cloud': {
      const [{ createHetznerCloudManager }, { kernelAddresses }] = await Promise.all([import('../vip/hetzner/cloud.js'), import('../vip/kernel-addresses.js')]);
      return createHetznerCloudManager(cfg, kernelAddresses(cfg.interface), log);
    }
  }
}

/** dcs-loss patroni only (`needed`: some entry has it): the poller of this node's Patroni REST API (GET /primary), shared by every entry. */
export async function createLocalPrimaryPoller(cfg: Config, needed: boolean, log: Logger) {
  if (!needed) return null;
  const { PatroniLocalPrimary } = await import('../dcs/patroni/local-primary.js');
  const user = cfg['patroni-api-user'];
  const password = cfg['patroni-api-password'];
  if (user !== undefined && password !== undefined) registerBasicAuth(user, password);
  return new PatroniLocalPrimary({
    url: cfg['patroni-api-url'], user, password, intervalMs: cfg.interval, log,
    tls: { caFile: cfg['patroni-api-ca-file'], certFile: cfg['patroni-api-cert-file'], keyFile: cfg['patroni-api-key-file'] },
  });
}
