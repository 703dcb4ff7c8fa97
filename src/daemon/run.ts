// The daemon: one DCS session, and per VIP entry a leader source over it, a VIP holder, a
// reconciler and a hook queue (entry.ts); the operations surface (metrics/health/status HTTP,
// systemd notifications) over all of them. Runs until a stop signal (signals.ts), re-reads the
// configuration on SIGHUP (reload.ts), then releases every VIP (unless release-on-stop is
// false) and exits with the signal's code.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { flushCompileCache } from '../compile-cache.js';
import { trimMemory } from '../ops/memory-trim.js';
import { EXIT_CONFIG } from '../config/errors.js';
import type { LoadedConfig } from '../config/load.js';
import { maskedConfig, maskedEntry } from '../config/render.js';
import type { DcsSession } from '../dcs/session.js';
import { openLogger, type Logger } from '../log.js';
import { createOpsHttp } from '../ops/http.js';
import { Metrics } from '../ops/metrics.js';
import { registerConfigSecrets } from '../ops/redact.js';
import { Notifier } from '../ops/sdnotify.js';
import { assertCapabilities, MissingCapabilityError } from '../net/capabilities.js';
import { sendDatagram } from '../net/unix-datagram.js';
import { buildInfo, runtimeInfo } from '../version.js';
import { wakeups } from '../wakeups.js';
import type { VipManager } from '../reconcile/ports.js';
import { buildEntry, leaderSpec, startEntry, type Entry, type EntryContext } from './entry.js';
import { createDcsSession, createLocalPrimaryPoller } from './factories.js';
import { reloadConfiguration } from './reload.js';
import { installSignalHandlers } from './signals.js';
import { statusDocument, statusLine } from './status.js';

/**
 * The reconcile loop's heartbeat: /healthz and the systemd watchdog need it recent. It beats
 * 0.5–1.5 s apart, on whatever shared wake-up comes in that window (src/wakeups.ts): with etcd
 * it rides on the connection check and costs no wake-up of its own.
 */
const HEARTBEAT_MS = 1000;
/**
 * Start-up, or a burst of leader changes, is over once this long has passed without a
 * transition: then the memory only it needed is handed back (src/ops/memory-trim.ts: malloc's
 * free pages, the start-up snapshots and other read-only data of the runtime; never code).
 * About 25 ms of CPU each time (a full garbage collection included); nothing at idle.
 */
const TRIM_QUIET_MS = 3000;
/** A heartbeat older than this means the event loop is stuck: unhealthy, no watchdog ping. */
const HEARTBEAT_STALE_MS = 5000;
/**
 * A reconcile pass running longer than this is stuck (a hung kernel or API call): unhealthy.
 * Longer than any single bounded call the managers make (Robot's 90 s POST is split into
 * retries the manager schedules, not one pass), shorter than a restart would be worth.
 */
const PASS_STUCK_MS = 120_000;
/** Errors that building the source or the manager throws for a bad setting or file. */
const CONFIG_ERRORS = new Set(['HetznerConfigError', 'EtcdConfigFileError', 'DcsTlsConfigError', 'InvalidVipError', 'HookCapabilityError']);
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

export async function runDaemon(loaded: LoadedConfig, reread?: () => LoadedConfig): Promise<number> {
  const cfg = loaded.config;
  // Before the first log line and before any client exists: from here on no log line or
  // /status answer can show a secret value, even inside a server's error body that echoes our
  // request headers.
  for (const v of loaded.vips) registerConfigSecrets(v.config);
  const log = await openLogger({ format: cfg['log-format'], verbose: cfg.verbose });
  // First of all: until SIGUSR1 has a listener, Node would open its inspector on it. A stop
  // signal during start-up is kept and acted on as soon as the parts to stop exist.
  let stopping = false;
  let finish: (stop: Stop) => void = () => {};
  const exited = new Promise<Stop>((resolve) => { finish = (s) => { if (!stopping) { stopping = true; resolve(s); } }; });
  let entries: Entry[] = [];
  let reloadRequested: () => void = () => log.info('SIGHUP received during start-up: the configuration read at start is used');
  installSignalHandlers({
    log, status: () => statusLine(entries), stopping: () => stopping,
    stop: (_signal, code) => finish({ code, keep: null }),
    reload: () => reloadRequested(),
  });
  for (const w of loaded.warnings) log.warn(`config: ${w}`);
  const info = buildInfo();
  const summary = loaded.vips.map((v) => `${v.name === v.config.ip ? '' : `${v.name} = `}${v.config.ip}/${v.config.netmask}${v.config.interface ? ` on ${v.config.interface}` : ''} (${v.config.role === 'leader' ? `key ${v.config['trigger-key']}` : `role ${v.config.role} of ${v.config['trigger-key']}`} = ${v.config['trigger-value']}, manager ${v.config['manager-type']}, dcs-loss ${v.config['dcs-loss']})`);
  log.info({ version: info.version, commit: info.commit, runtime: runtimeInfo(info), config: maskedConfig(cfg, 'process'), vips: loaded.vips.map(maskedEntry) },
    `vip-manager ${info.version} starting: ${cfg['dcs-type']}; VIP ${summary.join('; VIP ')}`);

  // Before anything answers /healthz: a daemon that could never take the VIP over must not
  // look healthy until the moment it has to.
  try {
    for (const type of new Set(loaded.vips.map((v) => v.config['manager-type']))) {
      if (!assertCapabilities(type, () => readFileSync('/proc/self/status', 'utf8'))) {
        log.warn('cannot read the effective capabilities from /proc/self/status: not checked at start');
        break;
      }
    }
  } catch (e) {
    if (!(e instanceof MissingCapabilityError)) throw e;
    log.error({ missing: e.missing }, `cannot start: ${e.message}`);
    return 1;
  }

  let session: DcsSession | null = null;
  let localPrimary: Awaited<ReturnType<typeof createLocalPrimaryPoller>> = null;
  let dropPrefetch: () => Promise<void> = () => Promise.resolve();
  try {
    session = await createDcsSession(cfg, log.child({ component: 'dcs' }));
    // The first DCS request goes out now; the holders, the metrics and the HTTP endpoint are
    // set up while it is on its way, instead of before it.
    dropPrefetch = session.prefetch(loaded.vips.map((v) => leaderSpec(v.config)));
    // One turn of the event loop, so that the connection just opened completes and the request
    // is written now: the set-up below loads modules, which never yields to I/O.
    await new Promise<void>((resolve) => setImmediate(resolve));
    localPrimary = await createLocalPrimaryPoller(cfg, loaded.vips.some((v) => v.config['dcs-loss'] === 'patroni'), log.child({ component: 'patroni-local' }));
  } catch (e) {
    log.error({ err: e }, `cannot start: ${(e as Error).message}`);
    // The prefetch may be reading: its connection would keep the process alive.
    await Promise.allSettled([session?.close()]);
    // A bad credentials or TLS file is a configuration error like any other: systemd must not
    // restart into it (RestartPreventExitStatus=78).
    return CONFIG_ERRORS.has((e as Error).name) ? EXIT_CONFIG : 1;
  }

  const metrics = new Metrics({ version: info.version, dcsType: cfg['dcs-type'], managerType: cfg['manager-type'] });
  let heartbeat = performance.now();
  const beatKey = {};
  const beat = (): void => {
    heartbeat = performance.now();
    wakeups.schedule(beatKey, HEARTBEAT_MS / 2, HEARTBEAT_MS * 1.5, beat);
  };
  beat();
  const alive = () => {
    const now = performance.now();
    return now - heartbeat < HEARTBEAT_STALE_MS && entries.every((e) => {
      const busySince = e.reconciler.snapshot().busySince;
      return busySince === null || now - busySince < PASS_STUCK_MS;
    });
  };
  const notifier = new Notifier({ send: sendDatagram, alive, logger: log });
  const startedAt = new Date();
  let readySent = false;
  const trimKey = {};
  // Each call pushes the trim back: it runs once things have been quiet for TRIM_QUIET_MS.
  const scheduleTrim = (): void => {
    wakeups.schedule(trimKey, TRIM_QUIET_MS, TRIM_QUIET_MS + 1000, () => {
      const t0 = performance.now();
      const r = trimMemory();
      log.debug({ mappings: r.mappings, fileKb: r.fileKb, collected: r.collected, mallocReleased: r.mallocReleased, failures: r.failures, tookMs: Math.round((performance.now() - t0) * 10) / 10 },
        `memory handed back: RSS ${(r.rssBeforeKb / 1024).toFixed(1)} -> ${(r.rssAfterKb / 1024).toFixed(1)} MiB`);
    }, false);
  };
  /** Ends the daemon's own jobs on the shared timer: the heartbeat would keep a stopping process alive, and a trim has no place in a stop. */
  const cancelJobs = (): void => {
    wakeups.cancel(beatKey);
    wakeups.cancel(trimKey);
  };
  const ctx: EntryContext = {
    log, metrics, session, localPrimary,
    onFatal: () => finish({ code: 1, keep: 'stopping after a fatal error' }),
    onStatus: (always = false) => {
      if (readySent || always) void notifier.status(statusLine(entries));
      // `always`: a transition.
      if (readySent && always) scheduleTrim();
    },
    onFirstAnswer: () => {
      // READY=1 once every entry has applied its first DCS answer (or found it needs nothing).
      if (readySent || !entries.every((e) => e.answered)) return;
      readySent = true;
      void notifier.ready(statusLine(entries));
      scheduleTrim();
    },
  };
  try {
    for (const v of loaded.vips) entries.push(await buildEntry(v, ctx));
  } catch (e) {
    log.error({ err: e }, `cannot start: ${(e as Error).message}`);
    cancelJobs();
    await Promise.allSettled(entries.map((en) => en.dispose()));
    await Promise.allSettled([session.close(), localPrimary?.close()]);
    return CONFIG_ERRORS.has((e as Error).name) ? EXIT_CONFIG : 1;
  }

  const http = createOpsHttp({
    enabled: cfg['http-enabled'], listen: cfg['http-listen'], metrics, logger: log.child({ component: 'http' }),
    health: () => {
      const now = performance.now();
      const busy = entries.map((e) => e.reconciler.snapshot().busySince).filter((b): b is number => b !== null);
      return { ok: alive(), detail: { heartbeatAgeMs: Math.round(now - heartbeat), passRunningMs: busy.length === 0 ? null : Math.round(now - Math.min(...busy)) } };
    },
    status: () => statusDocument(entries, info, startedAt),
  });
  try {
    await http.start();
  } catch (e) {
    log.error({ err: e }, `cannot start: ${(e as Error).message}`);
    cancelJobs();
    await Promise.allSettled(entries.map((en) => en.dispose()));
    await Promise.allSettled([session.close(), localPrimary?.close()]);
    return 1;
  }
  for (const e of entries) await startEntry(e);
  await dropPrefetch();
  localPrimary?.start((a) => { for (const e of entries) e.reconciler.setLocalPrimary(a); });
  notifier.start();
  // Every module this configuration needs is loaded by now (src/compile-cache.ts).
  await flushCompileCache();

  // SIGHUP: one reload at a time; one more if another SIGHUP came meanwhile (it may carry a
  // newer file), never during a stop.
  let reloading: Promise<void> | null = null;
  let again = false;
  let current = loaded;
  reloadRequested = () => {
    if (stopping) return;
    if (reread === undefined) {
      log.warn('SIGHUP received: this daemon was started without a configuration to re-read; restart to apply changes');
      return;
    }
    if (reloading !== null) { again = true; return; }
    const run = async (): Promise<void> => {
      do {
        again = false;
        void notifier.reloading();
        const r = await reloadConfiguration({ current, reread, entries, ctx, log });
        current = r.loaded;
        entries = r.entries;
        void notifier.ready(statusLine(entries));
        scheduleTrim();
      } while (again && !stopping);
    };
    reloading = run().finally(() => { reloading = null; });
  };

  const { code, keep } = await exited;
  await reloading;
  void notifier.stopping('stopping');
  const limit = entries.every((e) => e.config['manager-type'] === 'basic') ? SHUTDOWN_DEADLINE_MS : API_SHUTDOWN_DEADLINE_MS;
  const deadline = new Promise<'late'>((r) => setTimeout(() => r('late'), limit).unref());
  const stops = entries.map((e) => {
    const why = keep ?? (e.config['release-on-stop'] ? null : 'release-on-stop is false');
    const done = e.reconciler.stop(why === null, why ?? undefined).then(() => true);
    return { e, why, done: Promise.race([done, deadline.then(() => false)]) };
  });
  for (const { e, why, done } of stops) {
    if (await done) continue;
    const pending = e.manager.inFlight?.() ?? [];
    if (pending.length === 0) {
      log.warn({ vip: e.name }, `shutdown took longer than ${limit} ms; exiting anyway`);
      // The stuck pass keeps the loop from releasing, but a VIP left on a node whose daemon is
      // gone stays there while the next leader adds it too. Nothing is waiting on the manager
      // (no request in flight), so release directly, bounded: a netlink delete takes
      // microseconds, and whatever the pass was retrying ends with the process.
      if (why === null) await releaseDirectly(e.manager, log.child({ vip: e.name }), RELEASE_AT_DEADLINE_MS);
    } else {
      const what = pending.map((p) => `${p.what} (sent ${p.ageMs} ms ago)`).join(', ');
      log.warn({ vip: e.name, deadlineMs: limit, inFlight: pending },
        `shutdown deadline of ${limit} ms reached with ${what} unanswered; exiting without the answer: the provider carries out the change it accepted (a Robot switch takes 40-60 s), and the next leader takes the IP over either way`);
    }
  }
  await localPrimary?.close();
  await Promise.all(entries.map((e) => e.hooks?.close(HOOKS_SHUTDOWN_WAIT_MS)));
  cancelJobs();
  await Promise.race([Promise.allSettled([http.close(), session.close()]), deadline]);
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
