// Numbers and tables every benchmark prints: nearest-rank percentiles, millisecond formatting,
// plain-text tables, and Prometheus counter sums (etcd's /metrics). No I/O.

export interface Stats { n: number; median: number; p90: number; p99: number; max: number }

/** Nearest-rank percentiles; null without samples (a row that measured nothing prints '-'). */
export function stats(samples: readonly number[]): Stats | null {
  if (samples.length === 0) return null;
  const s = [...samples].sort((x, y) => x - y);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
  return { n: s.length, median: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1]! };
}

/** stats() for benches whose every cell has samples: an empty one is a bug in the bench. */
export function statsOf(samples: readonly number[], what = 'a measurement'): Stats {
  const s = stats(samples);
  if (!s) throw new Error(`no samples for ${what}`);
  return s;
}

/** Sums of Prometheus counters by metric name and one label (e.g. grpc_method). */
export function promSums(text: string, metric: string, byLabel?: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== metric) continue;
    let key = '';
    if (byLabel) {
      const lm = new RegExp(`(?:^|,)${byLabel}="([^"]*)"`).exec(m[3] ?? '');
      key = lm ? lm[1]! : '';
    }
    out.set(key, (out.get(key) ?? 0) + Number(m[4]));
  }
  return out;
}

export function deltas(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out.set(k, d);
  }
  return out;
}

export const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** median / p90 / max of `samples` as one cell, '-' without samples. */
export const mpm = (samples: readonly number[]): string => {
  const s = stats(samples);
  return s ? `${ms(s.median)} / ${ms(s.p90)} / ${ms(s.max)}` : '-';
};

export function table(headers: string[], rows: string[][], alignLeft = 1): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (i < alignLeft ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [fmt(headers), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n');
}
