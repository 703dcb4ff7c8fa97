// The Consul leader source of a single key: a Consul backend (backend.ts) with that one key as
// its only subject, i.e. the single-key blocking query on /v1/kv/<key> (consistent reads) with
// the leader check beside it, as vip-manager has always watched the trigger key. A change
// arrives the moment Consul answers; unlike the Go original, nothing sleeps `interval` after an
// answer. The loop, the index rules, the leader check and the timeouts are described in
// backend.ts, blocking-index.ts and timing.ts.
import type { Logger } from '../../log.js';
import type { LeaderSource, LeaderView } from '../../reconcile/ports.js';
import { ConsulBackend, type ConsulBackendOptions } from './backend.js';

export interface ConsulSourceOptions extends ConsulBackendOptions {
  triggerKey: string;
  log: Logger;
}

export class ConsulLeaderSource implements LeaderSource {
  readonly kind = 'consul' as const;
  readonly providesLeaseDeadline = false;

  private readonly backend: ConsulBackend;
  private readonly source: LeaderSource;
  private started = false;

  /** Throws on a configuration problem (unreadable TLS file, empty key), never later. */
  constructor(opts: ConsulSourceOptions) {
    this.backend = new ConsulBackend(opts, opts.log);
    this.source = this.backend.keySource(opts.triggerKey);
  }

  start(onView: (view: LeaderView) => void): void {
    if (this.started) throw new Error('ConsulLeaderSource already started');
    this.started = true;
    this.source.start(onView);
  }

  async close(): Promise<void> {
    await this.source.close();
    await this.backend.close();
  }
}
