// Runs the configuration loader the way main.ts does, on a throwaway config file.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/errors.js';
import { parseCommandLine } from '../../src/config/flags.js';
import { loadFromCommandLine, type LoadedConfig } from '../../src/config/load.js';

export const HOSTNAME = 'node-under-test';
const dir = mkdtempSync(join(tmpdir(), 'vmt-config-'));
let n = 0;

/** Writes YAML to a fresh file and returns its path. */
export function yamlFile(text: string): string {
  const path = join(dir, `c${++n}.yml`);
  writeFileSync(path, text);
  return path;
}

/** The minimum a valid configuration needs, as flags. */
export const BASE = ['--ip', '198.51.100.10', '--netmask', '24', '--interface', 'eth0', '--trigger-key', '/service/pg/leader'];

export type Outcome = { ok: true; loaded: LoadedConfig } | { ok: false; problems: readonly string[] };

export function load(argv: string[], env: Record<string, string> = {}, file?: string): Outcome {
  const args = file === undefined ? argv : [...argv, '--config', yamlFile(file)];
  try {
    return { ok: true, loaded: loadFromCommandLine(parseCommandLine(args), { env, hostname: HOSTNAME }) };
  } catch (e) {
    if (e instanceof ConfigError) return { ok: false, problems: e.problems };
    throw e;
  }
}

export function loaded(o: Outcome): LoadedConfig {
  if (!o.ok) throw new Error(`expected a valid configuration, got:\n${o.problems.join('\n')}`);
  return o.loaded;
}

export function problems(o: Outcome): readonly string[] {
  if (o.ok) throw new Error('expected configuration errors, got a valid configuration');
  return o.problems;
}
