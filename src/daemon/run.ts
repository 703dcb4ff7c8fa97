import type { LoadedConfig } from '../config/load.js';
export async function runDaemon(_loaded: LoadedConfig): Promise<number> {
  process.stderr.write('vip-manager: the daemon is not built yet\n');
  return 1;
}
