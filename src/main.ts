// The executable's entry: command line → configuration → (check-config | daemon).
// Returns the process exit code; nothing here calls process.exit, so output is always flushed.
import { hostname } from 'node:os';
import { ConfigError, EXIT_CONFIG } from './config/errors.js';
import { helpText, parseCommandLine } from './config/flags.js';
import { loadFromCommandLine } from './config/load.js';
import { renderEffectiveConfig } from './config/render.js';
import { versionText } from './version.js';

export async function main(argv: readonly string[]): Promise<number> {
  // Until the daemon's own handlers are in (daemon/signals.ts), Node would open its inspector on
  // SIGUSR1: any listener replaces that handler.
  process.on('SIGUSR1', () => {});
  const cli = parseCommandLine(argv);
  if (cli.help) {
    process.stdout.write(helpText());
    return 0;
  }
  if (cli.version) {
    process.stdout.write(versionText());
    return 0;
  }
  let loaded;
  try {
    loaded = loadFromCommandLine(cli, { env: process.env, hostname: hostname() });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of e.problems) process.stderr.write(`vip-manager: config error: ${p}\n`);
    return EXIT_CONFIG;
  }
  for (const w of loaded.warnings) process.stderr.write(`vip-manager: config warning: ${w}\n`);
  if (cli.checkConfig) {
    process.stdout.write(renderEffectiveConfig(loaded));
    return 0;
  }
  const { runDaemon } = await import('./daemon/run.js');
  return runDaemon(loaded);
}
