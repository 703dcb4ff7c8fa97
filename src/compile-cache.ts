// V8's code cache of the modules loaded so far, written now rather than at exit.

/**
 * With a compile cache (the package's launcher enables one in the service's CacheDirectory=),
 * Node writes a new entry only at exit; a daemon stopped by SIGKILL or a crash would never leave
 * one. Called once start-up has loaded every module the configuration needs (the package's
 * bundle is split into chunks that are loaded on first use, the DCS client's among the last),
 * so the next start finds them all whatever happens. Node < 22.10 has no such call (the
 * checkout's Node 20): then nothing happens.
 */
export async function flushCompileCache(): Promise<void> {
  const mod = (await import('node:module')) as { getCompileCacheDir?: () => string | undefined; flushCompileCache?: () => void };
  if (mod.getCompileCacheDir?.() !== undefined) mod.flushCompileCache?.();
}
