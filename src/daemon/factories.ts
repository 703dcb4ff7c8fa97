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
      return new BasicManager({
        ip: cfg.ip, prefixLen: cfg.netmask, interfaceName: cfg.interface!,
        announceCount: cfg['announce-count'], announceInterval: cfg['announce-interval'], announceRefresh: cfg['announce-refresh'],
        retryNum: cfg['retry-num'], retryAfter: cfg['retry-after'],
        onAnnounce: (packets: number) => metrics.announced(packets),
      }, log);
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
