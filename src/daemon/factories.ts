// Picks the leader source and the VIP holder that the configuration names.
import type { Config } from '../config/schema.js';
import { createConsulSource } from '../dcs/consul.js';
import { createEtcdSource } from '../dcs/etcd.js';
import { createPatroniSource } from '../dcs/patroni.js';
import type { LeaderSource } from '../dcs/source.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../ops/metrics.js';
import { BasicManager } from '../vip/basic.js';
import { createHetznerCloudManager } from '../vip/hetzner-cloud.js';
import { createHetznerRobotManager } from '../vip/hetzner-robot.js';
import { kernelAddresses } from '../vip/kernel-addresses.js';
import type { VipManager } from '../vip/manager.js';

export function createLeaderSource(cfg: Config, log: Logger): LeaderSource {
  switch (cfg['dcs-type']) {
    case 'etcd': return createEtcdSource(cfg, log);
    case 'consul': return createConsulSource(cfg, log);
    case 'patroni': return createPatroniSource(cfg, log);
  }
}

export async function createVipManager(cfg: Config, log: Logger, metrics: Metrics): Promise<VipManager> {
  switch (cfg['manager-type']) {
    case 'basic':
      return new BasicManager({
        ip: cfg.ip, prefixLen: cfg.netmask, interfaceName: cfg.interface!,
        announceCount: cfg['announce-count'], announceInterval: cfg['announce-interval'], announceRefresh: cfg['announce-refresh'],
        retryNum: cfg['retry-num'], retryAfter: cfg['retry-after'],
        onAnnounce: (packets: number) => metrics.announced(packets),
      }, log);
    case 'hetzner': return createHetznerRobotManager(cfg, kernelAddresses(cfg.interface), log);
    case 'hetzner-cloud': return createHetznerCloudManager(cfg, kernelAddresses(cfg.interface), log);
  }
}
