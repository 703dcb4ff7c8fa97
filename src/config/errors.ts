// Configuration errors are collected, never thrown one at a time: the user sees every problem
// in one run, one line each, and the process exits with EXIT_CONFIG.

/**
 * Exit code for any configuration error: EX_CONFIG from sysexits.h. The systemd unit lists it
 * in RestartPreventExitStatus=, so a broken config does not become a restart loop.
 */
export const EXIT_CONFIG = 78;

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/** Where a raw value came from, as shown to the user: "flag --ip", "env VIP_IP", "file /etc/x.yml:3". */
export type Layer = 'flag' | 'env' | 'file' | 'default';

export interface Origin {
  readonly layer: Layer;
  /** The spelling that was used (a legacy name stays visible here). */
  readonly name: string;
  /** Human-readable location, e.g. "flag --ip", "env VIP_MASK", "file ./vip.yml line 3". */
  readonly where: string;
}
