// One VIP entry of the daemon: its leader source (a facade over the shared DCS session), its
// VIP holder, its reconciler and its hook queue, wired to the entry's metrics series, /status
// board and log fields (all carry the entry's name). run.ts builds one per configured entry at
// start; reload.ts builds, swaps and retires them on SIGHUP.
import type { VipEntry } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { DcsSession, LeaderSpec } from '../dcs/session.js';
import type { HookQueue } from '../hooks/runner.js';
import type { Logger } from '../log.js';
import type { Metrics, VipMetrics } from '../ops/metrics.js';
import { Reconciler, type Transition } from '../reconcile/loop.js';
import type { LeaderSource, VipManager } from '../reconcile/ports.js';
import { createVipManager, type createLocalPrimaryPoller } from './factories.js';
import { StatusBoard } from './status.js';

/** What every entry shares: the process's log, metrics, DCS session and callbacks into run.ts. */
export interface EntryContext {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly session: DcsSession;
  readonly localPrimary: Awaited<ReturnType<typeof createLocalPrimaryPoller>>;
  readonly onFatal: (err: Error) => void;
  /** Something STATUS= shows changed; `always`: report it even before READY=1 (a transition). */
  readonly onStatus: (always?: boolean) => void;
  /** An entry applied its first DCS answer (readiness counts every entry). */
  readonly onFirstAnswer: () => void;
}

export interface Entry {
  readonly name: string;
  readonly config: Config;
  readonly metrics: VipMetrics;
  readonly board: StatusBoard;
  readonly manager: VipManager;
  readonly source: LeaderSource;
  readonly reconciler: Reconciler;
  readonly hooks: HookQueue | null;
  readonly conflicts: () => ReadonlyArray<object> | undefined;
  /** The first DCS answer has been applied. */
  answered: boolean;
  /** Closes what was built, for an entry that never started (a failed start or reload). */
  dispose(): Promise<void>;
}

/** Which node the entry's VIP belongs on, as the DCS session reads it. */
export function leaderSpec(cfg: Config): LeaderSpec {
  return { triggerKey: cfg['trigger-key'], role: cfg.role, fallback: cfg.fallback, maxLag: cfg['max-lag'] };
}

/** Builds an entry without starting it; throws the manager's or the hooks' configuration errors. */
export async function buildEntry(v: VipEntry, ctx: EntryContext): Promise<Entry> {
  const cfg = v.config;
  const log = ctx.log.child({ vip: v.name });
  const metrics = ctx.metrics.vip(v.name);
  // Hooks run beside the reconciler, never in its way; one queue per entry, loaded only when
  // configured, like the sources and managers (factories.ts).
  let hooks: HookQueue | null = null;
  if (cfg['on-acquire'] !== undefined || cfg['on-release'] !== undefined) {
    const { HookQueue } = await import('../hooks/runner.js');
    hooks = new HookQueue({
      commands: { acquire: cfg['on-acquire'], release: cfg['on-release'] }, timeoutMs: cfg['hook-timeout'],
      log: log.child({ component: 'hooks' }), onResult: (hook, result, seconds) => metrics.hookRun(hook, result, seconds),
    });
    metrics.enableHooks([...(cfg['on-acquire'] ? ['on-acquire' as const] : []), ...(cfg['on-release'] ? ['on-release' as const] : [])]);
  }
  const manager = await createVipManager(cfg, log.child({ component: 'vip' }), metrics);
  const source = ctx.session.leaderSource(leaderSpec(cfg), log.child({ component: 'dcs' }));
  if (cfg['dcs-loss'] === 'patroni' && cfg['dcs-type'] === 'patroni') {
    log.warn('dcs-loss patroni with dcs-type patroni: the DCS is already the Patroni REST API, so when it is unreachable the VIP goes at once; dcs-loss patroni is meant for dcs-type etcd or consul');
  }
  if (cfg['dcs-loss'] === 'hold-lease' && !source.providesLeaseDeadline) {
    const why = cfg.role === 'leader' ? `dcs-type ${cfg['dcs-type']} gives no lease deadline` : `a role VIP (role ${cfg.role}) has no lease deadline`;
    log.warn(`${why}: dcs-loss hold-lease acts as release (retry-num ${cfg['retry-num']} × retry-after ${cfg['retry-after']} ms)`);
  }
  const board = new StatusBoard(v.name, cfg);
  const localPrimary = ctx.localPrimary;
  const entry: Entry = {
    name: v.name, config: cfg, metrics, board, manager, source, hooks, answered: false,
    conflicts: () => manager.conflicts?.(),
    reconciler: undefined as unknown as Reconciler,
    dispose: async () => {
      await hooks?.close(0);
      await Promise.allSettled([source.close(), manager.close()]);
    },
  };
  const reconciler = new Reconciler({
    source, manager, log: log.child({ component: 'reconcile' }),
    policy: cfg['dcs-loss'], triggerValue: cfg['trigger-value'], ...(cfg.role === 'leader' ? {} : { role: cfg.role }), retryNum: cfg['retry-num'], retryAfter: cfg['retry-after'],
    // An answer counts until the next one is due at the latest: asked every interval, each
    // request at most its timeout long.
    ...(localPrimary && cfg['dcs-loss'] === 'patroni' ? { localPrimaryMaxAgeMs: cfg.interval + localPrimary.timeoutMs } : {}),
    onView: (view) => {
      const before = board.line();
      board.view(view);
      // systemctl status shows an outage (or its end) even when it changes nothing else.
      if (board.line() !== before) ctx.onStatus();
      metrics.setDcsConnected(view.kind === 'value');
      if (view.kind === 'value') {
        metrics.dcsAnswered(view.at);
        metrics.setLeaseDeadline(view.leaseDeadline);
      } else {
        ctx.metrics.error('dcs');
      }
    },
    onTransition: (t: Transition) => {
      board.transition(t);
      if (t.direction !== 'announce') {
        metrics.transition(t.direction, t.cause);
        metrics.setHeld(t.direction === 'acquire');
        if (t.reactionMs !== null) metrics.observeReaction(t.reactionMs);
        hooks?.push({ event: t.direction, name: v.name, ip: cfg.ip, cause: t.cause, value: t.value });
      }
      // Every transition is reported, before READY=1 and after STOPPING=1 too (the shutdown release).
      ctx.onStatus(true);
    },
    onError: (component) => ctx.metrics.error(component),
    // Retrying cannot help, and a release would meet the same refusal (or, with an API, repeat
    // a rejected call): the VIP stays as it is.
    onFatal: (err) => ctx.onFatal(err),
    onPassed: (view, decision) => {
      // A pass that changed nothing saw the VIP as it is: keep the gauge, /status and STATUS=
      // in step (a restart on the holder finds the VIP already here, with no acquire).
      const observed = reconciler.snapshot().held;
      if ((decision.action === 'none' || decision.action === 'announce') && observed) {
        metrics.setHeld(observed.held);
        if (board.observed(observed.held)) ctx.onStatus();
      }
      if (entry.answered || view?.kind !== 'value') return;
      entry.answered = true;
      log.info({ value: view.value, revision: view.revision, desired: decision.desired, cause: decision.cause },
        `ready: first answer from the DCS applied (${cfg.role === 'leader' ? cfg['trigger-key'] : `role ${cfg.role}`} = ${JSON.stringify(view.value)}); ${decision.desired ? 'this node holds the VIP' : 'standing by'}`);
      ctx.onFirstAnswer();
    },
  });
  (entry as { reconciler: Reconciler }).reconciler = reconciler;
  return entry;
}

/** Starts observing the VIP and following the DCS; the latest local Patroni answer, if any, is handed over. */
export async function startEntry(e: Entry): Promise<void> {
  await e.reconciler.start();
}
