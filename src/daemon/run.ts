// The daemon: builds the leader source, the VIP holder, the reconciler and the operations
// surface (metrics/health/status HTTP, systemd notifications) from the configuration, runs
// until a stop signal (signals.ts), then releases the VIP (unless release-on-stop is false) and
// exits with the signal's code.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { EXIT_CONFIG } from '../config/errors.js';
import type { LoadedConfig } from '../config/load.js';
import { maskedConfig } from '../config/render.js';
import { createLogger } from '../log.js';
import { createOpsHttp } from '../ops/http.js';
import { Metrics } from '../ops/metrics.js';
import { registerConfigSecrets } from '../ops/redact.js';
import { Notifier } from '../ops/sdnotify.js';
import { assertCapabilities, MissingCapabilityError } from '../net/capabilities.js';
import { sendDatagram } from '../net/unix-datagram.js';
import { Reconciler, type Transition } from '../reconcile/loop.js';
import { buildInfo, runtimeInfo } from '../version.js';
import { createLeaderSource, createVipManager } from './factories.js';
import { installSignalHandlers } from './signals.js';
import { StatusBoard } from './status.js';

/** The reconcile loop's heartbeat: /healthz and the systemd watchdog need it recent. */
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
 */
const API_SHUTDOWN_DEADLINE_MS = 20_000;

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
  let source;
  let manager;
  try {
    source = createLeaderSource(cfg, log.child({ component: 'dcs' }));
    manager = await createVipManager(cfg, log.child({ component: 'vip' }), metrics);
  } catch (e) {
    log.error({ err: e }, `cannot start: ${(e as Error).message}`);
    // A bad credentials or TLS file is a configuration error like any other: systemd must not
    // restart into it (RestartPreventExitStatus=78).
    return CONFIG_ERRORS.has((e as Error).name) ? EXIT_CONFIG : 1;
  }
  if (cfg['dcs-loss'] === 'hold-lease' && !source.providesLeaseDeadline) {
    log.warn(`dcs-type ${cfg['dcs-type']} gives no lease deadline: dcs-loss hold-lease acts as release (retry-num ${cfg['retry-num']} × retry-after ${cfg['retry-after']} ms)`);
  }

  let heartbeat = performance.now();
  const beat = setInterval(() => { heartbeat = performance.now(); }, HEARTBEAT_MS);
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
    status: () => status.snapshot(reconciler!.snapshot()),
  });
  try {
    await http.start();
  } catch (e) {
    log.error({ err: e }, `cannot start: ${(e as Error).message}`);
    clearInterval(beat);
    await Promise.allSettled([source.close(), manager.close()]);
    return 1;
  }
  await reconciler.start();
  notifier.start();

  const { code, keep } = await exited;
  void notifier.stopping('stopping');
  const limit = cfg['manager-type'] === 'basic' ? SHUTDOWN_DEADLINE_MS : API_SHUTDOWN_DEADLINE_MS;
  const deadline = new Promise<'late'>((r) => setTimeout(() => r('late'), limit).unref());
  const stopped = await Promise.race([reconciler.stop(keep === null, keep ?? undefined).then(() => 'done' as const), deadline]);
  if (stopped === 'late') log.warn(`shutdown took longer than ${limit} ms; exiting anyway`);
  clearInterval(beat);
  await Promise.race([http.close(), deadline]);
  log.info({ code }, 'vip-manager stopped');
  log.flush?.();
  // A DCS client that did not close in time must not keep the process alive.
  setTimeout(() => process.exit(code), 100).unref();
  return code;
}
