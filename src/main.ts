// The executable's entry: command line → configuration → (check-config | daemon).
// Returns the process exit code; nothing here calls process.exit, so output is always flushed.
// The configuration layer (commander, yaml, valibot and the schema) and the daemon are imported
// only when needed: a plain `--version` loads neither.
import { hostname } from 'node:os';
import { versionText } from './version.js';

export async function main(argv: readonly string[]): Promise<number> {
  // Until the daemon's own handlers are in (daemon/signals.ts), Node would open its inspector on
  // SIGUSR1: any listener replaces that handler.
  process.on('SIGUSR1', () => {});
  // Exactly `--version`: what the full parser would answer too. With anything else beside it
  // the parser decides (a value named --version, an unknown flag, --help first).
  if (argv.length === 1 && argv[0] === '--version') {
    process.stdout.write(versionText());
    return 0;
  }
  const [{ ConfigError, EXIT_CONFIG }, { helpText, parseCommandLine }, { loadFromCommandLine }] = await Promise.all([
    import('./config/errors.js'), import('./config/flags.js'), import('./config/load.js'),
  ]);
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
    const { renderEffectiveConfig } = await import('./config/render.js');
    process.stdout.write(renderEffectiveConfig(loaded));
    return 0;
  }
  if (cli.diagnose) return (await import('./diagnose/run.js')).runDiagnose(loaded);
  const { runDaemon } = await import('./daemon/run.js');
  return runDaemon(loaded, () => loadFromCommandLine(cli, { env: process.env, hostname: hostname() }));
}
