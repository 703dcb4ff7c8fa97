// What every signal does to the daemon. A daemon holding the VIP that dies from a signal leaves
// the address on the interface (and, on the old leader, two nodes answering ARP for it), so
// every catchable signal whose default action would kill the process is either ignored or
// turned into the orderly stop, which releases the VIP per release-on-stop. Signals whose
// default is harmless keep it (no wake-up for nothing). The handlers are installed once and
// never removed: removing the last listener restores SIG_DFL, so a second signal during the
// shutdown would kill the process half-way through the release.
import type { Logger } from '../log.js';
import { ignoreRealtimeSignals } from '../net/libc.js';

export type SignalEffect =
  /** The orderly stop: release per release-on-stop (see the exit code), then exit. */
  | { readonly kind: 'stop'; readonly exitCode: 0 | 1; readonly why: string }
  /** Re-read the configuration (run.ts → reload.ts). */
  | { readonly kind: 'reload'; readonly why: string }
  /** Keep running; log a line (with the status for `status`), or nothing for `silent`. */
  | { readonly kind: 'ignore'; readonly log: 'line' | 'status' | 'silent'; readonly note: string; readonly why: string }
  /** No listener: the disposition Node or the kernel gives it is already right (or unavoidable). */
  | { readonly kind: 'default'; readonly why: string };

const stop = (why: string, exitCode: 0 | 1 = 0): SignalEffect => ({ kind: 'stop', exitCode, why });
const ignore = (note: string, why: string, log: 'line' | 'status' | 'silent' = 'line'): SignalEffect => ({ kind: 'ignore', log, note, why });
const keep = (why: string): SignalEffect => ({ kind: 'default', why });

/** Every signal Node names on Linux (SIGIOT = SIGABRT, SIGPOLL = SIGIO share a number). */
export const SIGNAL_TABLE: Readonly<Record<string, SignalEffect>> = {
  SIGTERM: stop('systemd\'s stop signal (KillSignal=) and kill\'s default'),
  SIGINT: stop('Ctrl-C when run by hand'),
  SIGQUIT: stop('Ctrl-\\ or an operator asking it to quit; its default core dump would leave the VIP behind, and there is no goroutine dump to take as in Go'),
  SIGXCPU: stop('the soft RLIMIT_CPU was reached and SIGKILL follows at the hard limit: release while that is still possible; exit 1 so Restart=on-failure restarts it', 1),
  SIGHUP: { kind: 'reload', why: 'the conventional reload request (systemctl reload: ExecReload= sends it): re-read the configuration and apply what changed; dying from it would leave the VIP behind' },
  SIGUSR1: ignore('ignored; a signal never opens the debugger',
    'Node opens its inspector on SIGUSR1 (anyone local could then run code in the daemon); a listener replaces that handler. Logs the status line instead', 'status'),
  SIGUSR2: ignore('ignored', 'no user-defined action; its default would kill the daemon with the VIP left behind. Logs the status line', 'status'),
  SIGALRM: ignore('ignored', 'vip-manager sets no alarm; its default would kill the daemon'),
  SIGVTALRM: ignore('ignored', 'vip-manager sets no virtual timer; its default would kill the daemon'),
  SIGPROF: ignore('ignored', 'vip-manager runs no profiling timer (V8\'s profiler installs its own handler when started); its default would kill the daemon', 'silent'),
  SIGTRAP: ignore('ignored', 'a stray breakpoint trap; a debugger attached with ptrace sees it before us. Its default would dump core'),
  SIGSYS: ignore('ignored', 'a seccomp filter in trap mode fails the call with an error we already handle; its default would dump core (the units\' SystemCallFilter= answers EPERM, not SIGSYS)'),
  SIGXFSZ: ignore('ignored', 'a write beyond RLIMIT_FSIZE then fails with EFBIG instead; not logged, because that log line would itself be such a write', 'silent'),
  SIGPWR: ignore('ignored', 'a UPS power-failure notice for init; the shutdown that may follow sends SIGTERM. Its default would kill the daemon'),
  SIGSTKFLT: ignore('ignored', 'unused on Linux; its default would kill the daemon'),
  SIGIO: ignore('ignored', 'vip-manager requests no signal-driven I/O; its default would kill the daemon'),
  SIGTSTP: ignore('ignored; a stopped daemon would keep the VIP without following the leader key',
    'Ctrl-Z: a stopped holder keeps the address while another node takes over (two nodes answering ARP). SIGSTOP cannot be caught'),
  SIGTTIN: ignore('ignored', 'a background read from the terminal; vip-manager reads none. Its default would stop the daemon, see SIGTSTP'),
  SIGTTOU: ignore('ignored', 'a background write to a terminal with tostop; its default would stop the daemon, see SIGTSTP'),
  SIGCONT: ignore('continuing', 'the kernel resumes a stopped process whatever we do; the line marks in the log where it was stopped'),
  SIGPIPE: keep('Node ignores it at start (SIG_IGN): a write to a closed socket fails with EPIPE instead'),
  SIGCHLD: keep('default: ignored by the kernel; the daemon starts no children'),
  SIGURG: keep('default: ignored by the kernel'),
  SIGWINCH: keep('default: ignored by the kernel'),
  SIGABRT: keep('abort() and systemd\'s watchdog (WatchdogSignal=) send it to a process known to be broken: the core dump is the evidence, and the restart that follows puts the VIP right (a stray VIP on a non-leader is removed)'),
  SIGSEGV: keep('a real fault must crash: a listener would return to the faulting instruction and spin. The restart puts the VIP right'),
  SIGBUS: keep('as SIGSEGV'),
  SIGFPE: keep('as SIGSEGV'),
  SIGILL: keep('as SIGSEGV'),
  SIGKILL: keep('cannot be caught: the VIP stays until the next start (systemd restarts the unit) removes it or keeps it for the leader'),
  SIGSTOP: keep('cannot be caught'),
};

export interface SignalHandlerOptions {
  log: Logger;
  /** The orderly stop; called once per stop signal (the caller ignores repeats). */
  stop: (signal: NodeJS.Signals, exitCode: 0 | 1) => void;
  /** The one-line status (as in systemd's STATUS=) for the signals that log it. */
  status: () => string;
  /** SIGHUP: re-read the configuration (the caller serialises reloads and ignores them while stopping). */
  reload: () => void;
  /** Whether a stop is already under way: later stop signals are only logged. */
  stopping: () => boolean;
}

/**
 * Installs the table's handlers. Call as early as possible: until SIGUSR1 has a listener,
 * Node's own handler would open the inspector. Real-time signals (SIGRTMIN…SIGRTMAX), which
 * Node cannot name and which would kill the process, are set to SIG_IGN through libc.
 */
export function installSignalHandlers(o: SignalHandlerOptions): void {
  for (const [name, effect] of Object.entries(SIGNAL_TABLE)) {
    if (effect.kind === 'default') continue;
    const signal = name as NodeJS.Signals;
    if (effect.kind === 'reload') {
      process.on(signal, () => {
        o.log.info({ signal }, `${signal} received: ${o.stopping() ? 'stopping, not reloading' : 'reloading the configuration'}`);
        if (!o.stopping()) o.reload();
      });
    } else if (effect.kind === 'stop') {
      process.on(signal, () => {
        if (o.stopping()) {
          o.log.info({ signal }, `${signal} received: already stopping`);
          return;
        }
        o.log.info({ signal }, `${signal} received: stopping`);
        o.stop(signal, effect.exitCode);
      });
    } else {
      process.on(signal, () => {
        if (effect.log === 'silent') return;
        const status = effect.log === 'status' ? `; ${o.status()}` : '';
        o.log.info({ signal }, `${signal} received: ${effect.note}${status}`);
      });
    }
  }
  try {
    ignoreRealtimeSignals();
  } catch (e) {
    o.log.warn({ err: e }, `cannot ignore the real-time signals: ${(e as Error).message}; one of them would kill the daemon with the VIP left behind`);
  }
}
