// Structured logging: pino, readable single lines by default (journald adds its own
// timestamps, but lines are also read from files, so they keep theirs), JSON on request.
// Secrets never reach the logger: configuration is logged only through config/render.ts,
// which masks them, and the redact list below is a second line of defence. A third: every
// line is scrubbed of the registered secret values (ops/redact.ts) just before it is written,
// which catches a secret inside free text, such as a server's error body echoing a header.
import pino, { type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import { scrubLogLine } from './ops/redact.js';

export type { Logger };

export interface LogOptions {
  format: 'text' | 'json';
  verbose: boolean;
  /** Defaults to stderr, where systemd and test harnesses collect it. */
  destination?: NodeJS.WritableStream;
}

const REDACT = ['password', 'token', 'pass', '*.password', '*.token', '*.pass', 'headers.authorization', 'headers["x-consul-token"]'];

/**
 * The daemon's logger. pino-pretty, which only the text format uses, is imported here when the
 * format asks for it: a daemon logging JSON never loads its code (in the package, a chunk of
 * its own that is then never read).
 */
export async function openLogger(opts: LogOptions): Promise<Logger> {
  return createLogger(opts, opts.format === 'text' ? (await import('pino-pretty')).default : undefined);
}

/** As openLogger, synchronously: the text format needs pino-pretty passed in. */
export function createLogger(opts: LogOptions, pretty?: typeof PinoPretty): Logger {
  const level = opts.verbose ? 'debug' : 'info';
  const dest = opts.destination ?? process.stderr;
  if (opts.format === 'json') {
    return pino({ level, base: { pid: process.pid }, redact: { paths: REDACT, censor: '*****' }, hooks: { streamWrite: scrubLogLine } }, dest as pino.DestinationStream);
  }
  if (pretty === undefined) throw new TypeError('createLogger: the text log format needs pino-pretty; use openLogger()');
  const stream = pretty({
    destination: dest,
    sync: true,
    colorize: false,
    singleLine: true,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
    ignore: 'pid,hostname',
  });
  return pino({ level, base: undefined, redact: { paths: REDACT, censor: '*****' }, hooks: { streamWrite: scrubLogLine } }, stream);
}

/** A logger that drops everything: for unit tests of code that takes a logger. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
