// A raw value as one layer (flag, env, file) gave it, before coercion to the key's type.
import type { Origin } from './errors.js';

export interface RawEntry {
  /** The key's current (dashed) name, after mapping a legacy name. */
  readonly key: string;
  readonly raw: unknown;
  readonly origin: Origin;
}

/** What reading one layer produced: its entries, plus problems and warnings found on the way. */
export interface LayerResult {
  readonly entries: RawEntry[];
  readonly problems: string[];
  readonly warnings: string[];
}
