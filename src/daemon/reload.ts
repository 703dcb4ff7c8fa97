// SIGHUP: re-read the configuration and apply what changed, entry by entry, without touching
// what did not. The new configuration is checked whole and every new or changed entry is built
// (its VIP holder, credentials, hooks) before anything running is touched: a configuration that
// fails anywhere is refused with one error line and the running one continues unchanged.
//
//   unchanged entry → left alone: no release, no re-add, no announcement, no gap;
//   removed entry   → its VIP is released (the operator no longer wants it here), its series go;
//   changed entry   → same address, interface and manager: the old reconciler stops without a
//                     release and the new one finds the VIP held (kept if it is still wanted);
//                     otherwise the old VIP is released first;
//   added entry     → started like at start-up.
//
// Process-wide keys (the DCS connection, HTTP listener, logging) belong to objects made once at
// start: a change to them is named in a warning and applied at the next restart.
import { ConfigError } from '../config/errors.js';
import type { LoadedConfig, VipEntry } from '../config/load.js';
import { PROCESS_KEYS as PROCESS_KEY_DEFS, VIP_KEYS as VIP_KEY_DEFS, type Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { registerConfigSecrets } from '../ops/redact.js';
import { buildEntry, startEntry, type Entry, type EntryContext } from './entry.js';

/** On a reload, hooks of a retired entry still queued or running get this long before they are killed. */
const RETIRED_HOOKS_WAIT_MS = 5000;

const PROCESS_KEYS = PROCESS_KEY_DEFS.map((k) => k.name as keyof Config);
const VIP_KEYS = VIP_KEY_DEFS.map((k) => k.name as keyof Config);
/** Keys that say which VIP a holder manages and how: a change means the old one is released first. */
const HOLDER_KEYS = VIP_KEYS.filter((k) => ['ip', 'netmask', 'interface', 'manager-type'].includes(k) || /^(hetzner|hcloud)-/.test(k));

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
const changedKeys = (a: Config, b: Config, keys: readonly (keyof Config)[]) => keys.filter((k) => !same(a[k], b[k]));

export interface ReloadInput {
  readonly current: LoadedConfig;
  readonly reread: () => LoadedConfig;
  readonly entries: readonly Entry[];
  readonly ctx: EntryContext;
  readonly log: Logger;
}

export interface ReloadResult {
  readonly loaded: LoadedConfig;
  readonly entries: Entry[];
}

export async function reloadConfiguration(o: ReloadInput): Promise<ReloadResult> {
  const log = o.log.child({ component: 'reload' });
  const unchanged: ReloadResult = { loaded: o.current, entries: [...o.entries] };
  let next: LoadedConfig;
  try {
    next = o.reread();
  } catch (e) {
    const why = e instanceof ConfigError ? e.problems.join('; ') : (e as Error).message;
    log.error({ problems: e instanceof ConfigError ? e.problems : undefined }, `reload refused: ${why}; the running configuration stays`);
    return unchanged;
  }
  // Before anything is logged or built from it: a secret new in this file is masked like those read at start.
  for (const v of next.vips) registerConfigSecrets(v.config);
  for (const w of next.warnings) log.warn(`config: ${w}`);
  const fixed = changedKeys(o.current.config, next.config, PROCESS_KEYS);
  if (fixed.length > 0) {
    log.warn({ keys: fixed }, `reload: ${fixed.join(', ')} cannot change while running (the DCS session, HTTP listener and logging are made once at start); the running values stay until a restart`);
  }
  // Every entry runs on the process-wide values in force, whatever the new file says of them.
  const wanted: VipEntry[] = next.vips.map((v) => ({ ...v, config: { ...v.config, ...pick(o.current.config, PROCESS_KEYS) } }));
  const running = new Map(o.entries.map((e) => [e.name, e]));
  const plan = wanted.map((v) => {
    const old = running.get(v.name);
    if (old === undefined) return { v, old, kind: 'added' as const };
    const diff = changedKeys(old.config, v.config, VIP_KEYS);
    if (diff.length === 0) return { v, old, kind: 'unchanged' as const };
    return { v, old, kind: 'changed' as const, diff, release: changedKeys(old.config, v.config, HOLDER_KEYS).length > 0 };
  });
  const removed = o.entries.filter((e) => !wanted.some((v) => v.name === e.name));

  // Build first: a holder or hook that cannot be made refuses the whole reload, untouched.
  const built = new Map<string, Entry>();
  try {
    for (const p of plan) if (p.kind !== 'unchanged') built.set(p.v.name, await buildEntry(p.v, o.ctx));
  } catch (e) {
    await Promise.allSettled([...built.values()].map((b) => b.dispose()));
    log.error({ err: e }, `reload refused: ${(e as Error).message}; the running configuration stays`);
    return unchanged;
  }

  const retire = async (e: Entry, release: boolean, why: string): Promise<void> => {
    await e.reconciler.stop(release, why);
    void e.hooks?.close(RETIRED_HOOKS_WAIT_MS);
  };
  await Promise.all(removed.map(async (e) => {
    await retire(e, true, 'reload: entry removed');
    await o.ctx.metrics.dropVip(e.name);
  }));
  const entries: Entry[] = [];
  for (const p of plan) {
    if (p.kind === 'unchanged') {
      entries.push(p.old);
      continue;
    }
    const fresh = built.get(p.v.name)!;
    if (p.kind === 'changed') await retire(p.old, p.release, 'reload: the entry continues under its changed settings');
    await startEntry(fresh);
    entries.push(fresh);
  }
  const names = (kind: string) => plan.filter((p) => p.kind === kind).map((p) => p.v.name);
  log.info(
    { unchanged: names('unchanged'), added: names('added'), changed: plan.flatMap((p) => (p.kind === 'changed' ? [{ name: p.v.name, keys: p.diff, released: p.release }] : [])), removed: removed.map((e) => e.name) },
    `reload applied: ${[
      `${names('unchanged').length} unchanged`,
      ...(names('added').length ? [`added ${names('added').join(', ')}`] : []),
      ...(names('changed').length ? [`changed ${names('changed').join(', ')}`] : []),
      ...(removed.length ? [`removed ${removed.map((e) => e.name).join(', ')}`] : []),
    ].join('; ')}`,
  );
  return { loaded: { ...next, vips: wanted, config: wanted[0]!.config }, entries };
}

function pick(cfg: Config, keys: readonly (keyof Config)[]): Partial<Config> {
  return Object.fromEntries(keys.map((k) => [k, cfg[k]])) as Partial<Config>;
}
