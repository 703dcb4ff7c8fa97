// Picks the leader source and the VIP holder that the configuration names. Each is imported
// only when configured: an etcd daemon never loads the Consul, Patroni or Hetzner code, which
// would only add start-up time and resident memory to a process that runs for months.
import type { Config } from '../config/schema.js';
import type { LeaderSource } from '../dcs/source.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../ops/metrics.js';
import type { VipManager } from '../vip/manager.js';

export async function createLeaderSource(cfg: Config, log: Logger): Promise<LeaderSource> {
  switch (cfg['dcs-type']) {
    case 'etcd': return (await import('../dcs/etcd.js')).createEtcdSource(cfg, log);
    case 'consul': return (await import('../dcs/consul.js')).createConsulSource(cfg, log);
    case 'patroni': return (await import('../dcs/patroni.js')).createPatroniSource(cfg, log);
  }
}

export async function createVipManager(cfg: Config, log: Logger, metrics: Metrics): Promise<VipManager> {
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
      const [{ createHetznerRobotManager }, { kernelAddresses }] = await Promise.all([import('../vip/hetzner-robot.js'), import('../vip/kernel-addresses.js')]);
      return createHetznerRobotManager(cfg, kernelAddresses(cfg.interface), log);
    }
    case 'hetzner-cloud': {
      const [{ createHetznerCloudManager }, { kernelAddresses }] = await Promise.all([import('../vip/hetzner-cloud.js'), import('../vip/kernel-addresses.js')]);
      return createHetznerCloudManager(cfg, kernelAddresses(cfg.interface), log);
    }
  }
}

/** dcs-loss patroni only: the poller of this node's Patroni REST API (GET /primary). */
export async function createLocalPrimaryPoller(cfg: Config, log: Logger) {
  if (cfg['dcs-loss'] !== 'patroni') return null;
  const [{ PatroniLocalPrimary }, { registerBasicAuth }] = await Promise.all([import('../dcs/patroni-local.js'), import('../ops/redact.js')]);
  const user = cfg['patroni-api-user'];
  const password = cfg['patroni-api-password'];
  if (user !== undefined && password !== undefined) registerBasicAuth(user, password);
  return new PatroniLocalPrimary({
    url: cfg['patroni-api-url'], user, password, intervalMs: cfg.interval, log,
    tls: { caFile: cfg['patroni-api-ca-file'], certFile: cfg['patroni-api-cert-file'], keyFile: cfg['patroni-api-key-file'] },
  });
}
