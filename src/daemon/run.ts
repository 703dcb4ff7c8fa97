// The daemon: builds the leader source, the VIP holder, the reconciler and the operations
// surface (metrics/health/status HTTP, systemd notifications) from the configuration, runs
// until a stop signal (signals.ts), then releases the VIP (unless release-on-stop is false) and
// exits with the signal's code.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { EXIT_CONFIG } from '../config/errors.js';
import type { LoadedConfig } from '../config/load.js';
import { maskedConfig } from '../config/render.js';
import { createLogger, type Logger } from '../log.js';
import { createOpsHttp } from '../ops/http.js';
import { Metrics } from '../ops/metrics.js';
import { registerConfigSecrets } from '../ops/redact.js';
import { Notifier } from '../ops/sdnotify.js';
import { assertCapabilities, MissingCapabilityError } from '../net/capabilities.js';
import { sendDatagram } from '../net/unix-datagram.js';
import { Reconciler, type Transition } from '../reconcile/loop.js';
import { buildInfo, runtimeInfo } from '../version.js';
import { wakeups } from '../wakeups.js';
import type { HookQueue } from '../hooks/runner.js';
import type { VipManager } from '../reconcile/ports.js';
import { createLeaderSource, createLocalPrimaryPoller, createVipManager } from './factories.js';
import { installSignalHandlers } from './signals.js';
import { StatusBoard } from './status.js';

/**
 * The reconcile loop's heartbeat: /healthz and the systemd watchdog need it recent. It beats
 * 0.5–1.5 s apart, on whatever shared wake-up comes in that window (src/wakeups.ts): with etcd
 * it rides on the connection check and costs no wake-up of its own.
 */
const HEARTBEAT_MS = 1000;
/** A heartbeat older than this means the event loop is stuck: unhealthy, no watchdog ping. */
const HEARTBEAT_STALE_MS = 5000;
/**
 * A reconcile pass running longer than this is stuck (a hung kernel or API call): unhealthy.
 * Longer than any single bounded call the managers make (Robot's 90 s POST is split into
 * retries the manager schedules, not one pass), shorter than a restart would be worth.
 */
const PASS_STUCK_MS = 120_000;
/** Errors that building the source or the manager throws for a bad setting or file. */
const CONFIG_ERRORS = new Set(['HetznerConfigError', 'EtcdConfigFileError', 'DcsTlsConfigError', 'InvalidVipError']);
/** SIGTERM to exit with the basic manager: the release itself takes well under a millisecond. */
const SHUTDOWN_DEADLINE_MS = 900;
/**
 * With a provider's API the release may be a request (unroute/unassign) that takes seconds;
 * still inside the unit's TimeoutStopSec=30s, so systemd never has to kill us mid-request.
 *
 * A Robot switch (POST or DELETE) answers only when Hetzner has finished it, 40-60 s later:
 * longer than this deadline and than TimeoutStopSec. At the deadline the daemon exits without
 * that answer, names the request in one warning, and exits with the signal's usual code. It
 * does not cancel the request first: errors (lock, rate limit, credentials, 5xx) come back in
 * well under a second, so a request still open after 20 s is a switch Robot has accepted and
 * is carrying out; the answer would only confirm it. Waiting for it would take the stop past
 * TimeoutStopSec (SIGKILL) and delay every reboot by a minute, for no change in outcome: the
 * IP ends unrouted (or routed here, for a route in flight) and the next leader routes it to
 * itself either way. A non-zero exit would mark every such stop as a failed unit.
 */
const API_SHUTDOWN_DEADLINE_MS = 20_000;
/**
 * On a stop, hooks still running or waiting (the shutdown release's on-release among them) get
 * this long before they are killed: with the API deadline above, inside TimeoutStopSec=30s.
 */
const HOOKS_SHUTDOWN_WAIT_MS = 5000;

/** How the daemon stops: the exit code, and why a held VIP stays (null: release it). */
interface Stop {
  code: number;
  keep: string | null;
}

export async function runDaemon(loaded: LoadedConfig): Promise<number> {
  const cfg = loaded.config;
  // Before the first log line and before any client exists: from here on no log line or
  // /status answer can show a secret value, even inside a server's error body that echoes our
  // request headers.
  registerConfigSecrets(cfg);
  const log = createLogger({ format: cfg['log-format'], verbose: cfg.verbose });
  // First of all: until SIGUSR1 has a listener, Node would open its inspector on it. A stop
  // signal during start-up is kept and acted on as soon as the parts to stop exist.
  let stopping = false;
  let finish: (stop: Stop) => void = () => {};
  const exited = new Promise<Stop>((resolve) => { finish = (s) => { if (!stopping) { stopping = true; resolve(s); } }; });
  let statusLine = () => 'starting';
  installSignalHandlers({
    log, status: () => statusLine(), stopping: () => stopping,
    stop: (_signal, code) => finish({ code, keep: cfg['release-on-stop'] ? null : 'release-on-stop is false' }),
  });
  for (const w of loaded.warnings) log.warn(`config: ${w}`);
  const info = buildInfo();
  log.info({ version: info.version, commit: info.commit, runtime: runtimeInfo(info), config: maskedConfig(cfg) },
    `vip-manager ${info.version} starting: VIP ${cfg.ip}/${cfg.netmask}${cfg.interface ? ` on ${cfg.interface}` : ''}, ${cfg['dcs-type']} key ${cfg['trigger-key']} = ${cfg['trigger-value']}, manager ${cfg['manager-type']}, dcs-loss ${cfg['dcs-loss']}`);

  // Before anything answers /healthz: a daemon that could never take the VIP over must not
  // look healthy until the moment it has to.
  try {
    if (!assertCapabilities(cfg['manager-type'], () => readFileSync('/proc/self/status', 'utf8'))) {
      log.warn('cannot read the effective capabilities from /proc/self/status: not checked at start');
    }
  } catch (e) {
    if (!(e instanceof MissingCapabilityError)) throw e;
    log.error({ missing: e.missing }, `cannot start: ${e.message}`);
    return 1;
  }

  const metrics = new Metrics({ version: info.version, dcsType: cfg['dcs-type'], managerType: cfg['manager-type'] });
  // Hooks run beside the reconciler, never in its way; one queue per VIP entry (today one).
  // Loaded only when configured, like the sources and managers (factories.ts).
  let hooks: HookQueue | null = null;
  if (cfg['on-acquire'] !== undefined || cfg['on-release'] !== undefined) {
    const { HookQueue } = await import('../hooks/runner.js');
    try {
      hooks = new HookQueue({
        commands: { acquire: cfg['on-acquire'], release: cfg['on-release'] }, timeoutMs: cfg['hook-timeout'],
        log: log.child({ component: 'hooks' }), onResult: (hook, result, seconds) => metrics.hookRun(hook, result, seconds),
      });
    } catch (e) {
      if ((e as Error).name !== 'HookCapabilityError') throw e;
      log.error(`cannot start: ${(e as Error).message}`);
      return EXIT_CONFIG;
    }
    metrics.enableHooks([...(cfg['on-acquire'] ? ['on-acquire' as const] : []), ...(cfg['on-release'] ? ['on-release' as const] : [])]);
  }
  let source;
  let manager;
  let localPrimary: Awaited<ReturnType<typeof createLocalPrimaryPoller>> = null;
  try {
    source = await createLeaderSource(cfg, log.child({ component: 'dcs' }));
    manager = await createVipManager(cfg, log.child({ component: 'vip' }), metrics);
    localPrimary = await createLocalPrimaryPoller(cfg, log.child({ component: 'patroni-local' }));
  } catch (e) {
    log.error({ err: e }, `cannot start: ${(e as Error).message}`);
    // A bad credentials or TLS file is a configuration error like any other: systemd must not
    // restart into it (RestartPreventExitStatus=78).
    return CONFIG_ERRORS.has((e as Error).name) ? EXIT_CONFIG : 1;
  }
  if (cfg['dcs-loss'] === 'patroni' && cfg['dcs-type'] === 'patroni') {
    log.warn('dcs-loss patroni with dcs-type patroni: the DCS is already the Patroni REST API, so when it is unreachable the VIP goes at once; dcs-loss patroni is meant for dcs-type etcd or consul');
  }
  if (cfg['dcs-loss'] === 'hold-lease' && !source.providesLeaseDeadline) {
    log.warn(`dcs-type ${cfg['dcs-type']} gives no lease deadline: dcs-loss hold-lease acts as release (retry-num ${cfg['retry-num']} × retry-after ${cfg['retry-after']} ms)`);
  }

  let heartbeat = performance.now();
  const beatKey = {};
  const beat = (): void => {
    heartbeat = performance.now();
    wakeups.schedule(beatKey, HEARTBEAT_MS / 2, HEARTBEAT_MS * 1.5, beat);
  };
  beat();
  let reconciler: Reconciler | undefined;
  const alive = () => {
    const busySince = reconciler?.snapshot().busySince ?? null;
    return performance.now() - heartbeat < HEARTBEAT_STALE_MS && (busySince === null || performance.now() - busySince < PASS_STUCK_MS);
  };
  const notifier = new Notifier({ send: sendDatagram, alive, logger: log });
  const status = new StatusBoard(cfg, info);
  statusLine = () => status.line();

  let readySent = false;

  reconciler = new Reconciler({
    source, manager, log: log.child({ component: 'reconcile' }),
    policy: cfg['dcs-loss'], triggerValue: cfg['trigger-value'], retryNum: cfg['retry-num'], retryAfter: cfg['retry-after'],
    // An answer counts until the next one is due at the latest: asked every interval, each
    // request at most its timeout long.
    ...(localPrimary ? { localPrimaryMaxAgeMs: cfg.interval + localPrimary.timeoutMs } : {}),
    onView: (v) => {
      const before = status.line();
      status.view(v);
      // systemctl status shows an outage (or its end) even when it changes nothing else.
      if (readySent && status.line() !== before) void notifier.status(status.line());
      metrics.setDcsConnected(v.kind === 'value');
      if (v.kind === 'value') {
        metrics.dcsAnswered(v.at);
        metrics.setLeaseDeadline(v.leaseDeadline);
      } else {
        metrics.error('dcs');
      }
    },
    onTransition: (t: Transition) => {
      status.transition(t);
      if (t.direction !== 'announce') {
        metrics.transition(t.direction, t.cause);
        metrics.setHeld(t.direction === 'acquire');
        if (t.reactionMs !== null) metrics.observeReaction(t.reactionMs);
        hooks?.push({ event: t.direction, name: cfg.ip, ip: cfg.ip, cause: t.cause, value: t.value });
      }
      void notifier.status(status.line());
    },
    onError: (component) => metrics.error(component),
    // Retrying cannot help, and a release would meet the same refusal (or, with an API, repeat
    // a rejected call): the VIP stays as it is.
    onFatal: () => finish({ code: 1, keep: 'stopping after a fatal error' }),
    onPassed: (view, decision) => {
      // A pass that changed nothing saw the VIP as it is: keep the gauge, /status and STATUS=
      // in step (a restart on the holder finds the VIP already here, with no acquire).
      const observed = reconciler?.snapshot().held;
      if ((decision.action === 'none' || decision.action === 'announce') && observed) {
        metrics.setHeld(observed.held);
        if (status.observed(observed.held) && readySent) void notifier.status(status.line());
      }
      // READY=1 once the first DCS answer has been applied (or found to need nothing).
      if (readySent || view?.kind !== 'value') return;
      readySent = true;
      log.info({ value: view.value, revision: view.revision, desired: decision.desired, cause: decision.cause },
        `ready: first answer from the DCS applied (${cfg['trigger-key']} = ${JSON.stringify(view.value)}); ${decision.desired ? 'this node holds the VIP' : 'standing by'}`);
      void notifier.ready(status.line());
    },
  });

  const http = createOpsHttp({
    enabled: cfg['http-enabled'], listen: cfg['http-listen'], metrics, logger: log.child({ component: 'http' }),
    health: () => {
      const busySince = reconciler!.snapshot().busySince;
      return { ok: alive(), detail: { heartbeatAgeMs: Math.round(performance.now() - heartbeat), passRunningMs: busySince === null ? null : Math.round(performance.now() - busySince) } };
    },
    status: () => status.snapshot(reconciler!.snapshot(), manager.conflicts?.()),
  });
  try {
    await http.start();
  } catch (e) {
    log.error({ err: e }, `cannot start: ${(e as Error).message}`);
    wakeups.cancel(beatKey);
    await Promise.allSettled([source.close(), manager.close()]);
    return 1;
  }
  await reconciler.start();
  localPrimary?.start((a) => reconciler!.setLocalPrimary(a));
  notifier.start();

  const { code, keep } = await exited;
  void notifier.stopping('stopping');
  const limit = cfg['manager-type'] === 'basic' ? SHUTDOWN_DEADLINE_MS : API_SHUTDOWN_DEADLINE_MS;
  const deadline = new Promise<'late'>((r) => setTimeout(() => r('late'), limit).unref());
  const stopped = await Promise.race([reconciler.stop(keep === null, keep ?? undefined).then(() => 'done' as const), deadline]);
  if (stopped === 'late') {
    const pending = manager.inFlight?.() ?? [];
    if (pending.length === 0) {
      log.warn(`shutdown took longer than ${limit} ms; exiting anyway`);
      // The stuck pass keeps the loop from releasing, but a VIP left on a node whose daemon is
      // gone stays there while the next leader adds it too. Nothing is waiting on the manager
      // (no request in flight), so release directly, bounded: a netlink delete takes
      // microseconds, and whatever the pass was retrying ends with the process.
      if (keep === null) await releaseDirectly(manager, log, RELEASE_AT_DEADLINE_MS);
    } else {
      const what = pending.map((p) => `${p.what} (sent ${p.ageMs} ms ago)`).join(', ');
      log.warn({ deadlineMs: limit, inFlight: pending },
        `shutdown deadline of ${limit} ms reached with ${what} unanswered; exiting without the answer: the provider carries out the change it accepted (a Robot switch takes 40-60 s), and the next leader takes the IP over either way`);
    }
  }
  await localPrimary?.close();
  await hooks?.close(HOOKS_SHUTDOWN_WAIT_MS);
  wakeups.cancel(beatKey);
  await Promise.race([http.close(), deadline]);
  log.info({ code }, 'vip-manager stopped');
  log.flush?.();
  // A DCS client that did not close in time must not keep the process alive.
  setTimeout(() => process.exit(code), 100).unref();
  return code;
}

/** How long the late-shutdown release may take before the process exits anyway. */
const RELEASE_AT_DEADLINE_MS = 1000;

async function releaseDirectly(manager: VipManager, log: Logger, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), ms).unref(); });
  try {
    const r = await Promise.race([manager.release().then(() => 'released' as const), timeout]);
    if (r === 'released') log.warn('released the VIP directly: the stuck pass never finished');
    else log.error(`could not release the VIP within ${ms} ms at the shutdown deadline; it is left on this node`);
  } catch (e) {
    log.error({ err: e }, `could not release the VIP at the shutdown deadline: ${(e as Error).message}; it is left on this node`);
  } finally {
    clearTimeout(timer);
  }
}
