// systemd's notify protocol (sd_notify(3)): newline-separated VAR=value assignments in one
// datagram to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or '@' for the abstract
// namespace). With Type=notify, systemd considers the service started only after READY=1,
// and with WatchdogSec= it restarts the service when WATCHDOG=1 stops arriving.
//
// The watchdog is only useful if a hung daemon stops pinging: a bare timer would keep firing
// while the reconcile loop is stuck on a promise that never settles. So every ping first asks
// `alive()` (e.g. "the reconcile loop's heartbeat is recent") and is withheld when it says no.
//
// Datagrams go out through src/net/unix-datagram.ts (libc via koffi: no native build, no child
// process); tests may inject another `send`.
import type { Logger } from '../log.js';
import { sendDatagram } from '../net/unix-datagram.js';

/** Sends one datagram to an AF_UNIX SOCK_DGRAM socket ('@name' = abstract namespace). */
export type DatagramSender = (path: string, data: Buffer) => void | Promise<void>;

export interface NotifierOptions {
  /** Defaults to sendDatagram from src/net/unix-datagram.ts. */
  send?: DatagramSender;
  /** Whether the daemon's loops are alive; WATCHDOG=1 is sent only while this says true. */
  alive: () => boolean;
  /** Defaults to process.env (read once, at construction). */
  env?: NodeJS.ProcessEnv;
  /** Defaults to process.pid; compared with $WATCHDOG_PID. */
  pid?: number;
  logger?: Logger;
}

const USEC_PER_MS = 1000;
/** sd_watchdog_enabled(3): ping at half the timeout. */
const WATCHDOG_PING_FRACTION = 2;

export class Notifier {
  /** The notify socket, or null when not run by systemd (then every method is a no-op). */
  readonly socket: string | null;
  /** Milliseconds between watchdog pings, or null when systemd expects none from us. */
  readonly watchdogIntervalMs: number | null;
  private timer: NodeJS.Timeout | null = null;
  private withheld = false;
  private sendFailed = false;

  constructor(private readonly opts: NotifierOptions) {
    const env = opts.env ?? process.env;
    this.socket = parseSocket(env.NOTIFY_SOCKET, opts.logger);
    this.watchdogIntervalMs = this.socket === null ? null : parseWatchdog(env, opts.pid ?? process.pid, opts.logger);
  }

  get enabled(): boolean {
    return this.socket !== null;
  }

  /** Starts the watchdog pings (if systemd asked for them). The timer never keeps the process alive. */
  start(): void {
    if (this.watchdogIntervalMs === null || this.timer !== null) return;
    this.timer = setInterval(() => void this.watchdog(), this.watchdogIntervalMs);
    this.timer.unref();
  }

  /** Start-up is complete: the VIP state is being reconciled. */
  ready(status?: string): Promise<boolean> {
    return this.notify(['READY=1', ...statusLine(status)]);
  }

  /** A one-line, human-readable state shown by `systemctl status`. */
  status(text: string): Promise<boolean> {
    return this.notify(statusLine(text));
  }

  /**
   * A reload (SIGHUP) has begun; ready() says it ended. MONOTONIC_USEC lets systemd (>= 253,
   * Type=notify-reload) tell this reload from an earlier one; older ones ignore the field.
   */
  reloading(): Promise<boolean> {
    const usec = process.hrtime.bigint() / 1000n;
    return this.notify(['RELOADING=1', `MONOTONIC_USEC=${usec}`]);
  }

  /** Shutdown has begun; also stops the watchdog pings. */
  stopping(status?: string): Promise<boolean> {
    this.close();
    return this.notify(['STOPPING=1', ...statusLine(status)]);
  }

  /** One watchdog ping, sent only while `alive()` says the loops are alive. */
  async watchdog(): Promise<boolean> {
    if (this.socket === null) return false;
    if (!this.opts.alive()) {
      if (!this.withheld) this.opts.logger?.warn('daemon loops look stuck: withholding the systemd watchdog ping so systemd can restart the service');
      this.withheld = true;
      return false;
    }
    if (this.withheld) this.opts.logger?.info('daemon loops alive again: systemd watchdog pings resumed');
    this.withheld = false;
    return this.notify(['WATCHDOG=1']);
  }

  /** Stops the watchdog timer; sends nothing. */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async notify(lines: readonly string[]): Promise<boolean> {
    if (this.socket === null || lines.length === 0) return false;
    try {
      await (this.opts.send ?? sendDatagram)(this.socket, Buffer.from(lines.join('\n') + '\n', 'utf8'));
      this.sendFailed = false;
      return true;
    } catch (err) {
      // Best effort: systemd acts on missing notifications (start timeout, watchdog) by itself.
      // Logged once per failure streak so a broken socket cannot flood the journal.
      if (!this.sendFailed) this.opts.logger?.warn({ err, socket: this.socket }, 'cannot send a systemd notification');
      this.sendFailed = true;
      return false;
    }
  }
}

/** STATUS= is a single line; newlines would start new assignments. */
function statusLine(text: string | undefined): string[] {
  return text === undefined ? [] : [`STATUS=${text.replace(/[\r\n]+/g, ' ')}`];
}

function parseSocket(value: string | undefined, logger: Logger | undefined): string | null {
  if (value === undefined || value === '') return null;
  if (value.startsWith('/') || (value.startsWith('@') && value.length > 1)) return value;
  // systemd ≥ 254 can hand out vsock: addresses (for VMs); not meaningful for this daemon.
  logger?.warn({ socket: value }, 'NOTIFY_SOCKET is neither a path nor an abstract socket name; systemd notifications disabled');
  return null;
}

function parseWatchdog(env: NodeJS.ProcessEnv, pid: number, logger: Logger | undefined): number | null {
  const usecText = env.WATCHDOG_USEC;
  if (usecText === undefined || usecText === '') return null;
  // $WATCHDOG_PID names the process systemd expects pings from; another process inherited it.
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== '' && Number(env.WATCHDOG_PID) !== pid) return null;
  const usec = Number(usecText);
  if (!Number.isSafeInteger(usec) || usec <= 0) {
    logger?.warn({ WATCHDOG_USEC: usecText }, 'WATCHDOG_USEC is not a positive whole number; watchdog pings disabled');
    return null;
  }
  return Math.max(1, Math.floor(usec / USEC_PER_MS / WATCHDOG_PING_FRACTION));
}
