// The failover bench's printed report: per DCS row the five move figures (median / p90 / max),
// the idle table, the multi-entry figure side by side, and the notes. Pure formatting.
import type { MoveMetrics } from './failover-move.js';
import {
  IDLE_WARMUP_MS, NEIGH_TIMEOUT_MS, type RowResult,
} from './failover-rows.js';
import type { IdleResult } from './failover-idle.js';
import { mpm, ms, stats, table } from './stats.js';

/** What a move costs inside the daemon: VIP present on the new holder minus the put's round trip. */
export const daemonShare = (m: MoveMetrics): number | null => (m.present === null ? null : m.present - m.put);

export function report(all: RowResult[], opt: { lease: boolean }, env: string[]): string {
  const out: string[] = [];
  out.push('vip-manager failover benchmark', ...env.map((e) => `  ${e}`), '');
  const results = all.filter((r) => r.spec.section === 'dcs');
  const metric = (title: string, pick: (m: MoveMetrics) => number | null, note?: (r: RowResult) => string): void => {
    const rows = results.map((r) => {
      const vals = r.metrics.map(pick);
      const got = vals.filter((v): v is number => v !== null);
      const s = stats(got);
      const missing = vals.length - got.length;
      const extra = [missing > 0 ? `${missing} not seen` : '', note?.(r) ?? ''].filter(Boolean).join('; ');
      return [r.spec.label, String(got.length), s ? ms(s.median) : '-', s ? ms(s.p90) : '-', s ? ms(s.max) : '-', extra];
    });
    out.push(title, table(['', 'n', 'median', 'p90', 'max', ''], rows, 1).replace(/^/gm, '  '), '');
  };
  if (results.length) {
    metric('1. key change → VIP present on the new holder (ms)', (m) => m.present);
    metric('2. key change → VIP gone from the old holder (ms)', (m) => m.gone);
    metric('3. both held the VIP (overlap, ms; 0 when none)', (m) => m.overlap, (r) => {
      const k = r.metrics.filter((m) => m.overlap > 0).length;
      return `${k}/${r.metrics.length} moves overlapped`;
    });
    metric('4. neither held the VIP (gap, ms)', (m) => m.gap, (r) => {
      const k = r.metrics.filter((m) => m.gap > 0).length;
      return `${k}/${r.metrics.length} moves had a gap`;
    });
    metric(`5. key change → client's neighbour entry for the VIP has the new holder's MAC (ms; "not seen" = not within ${NEIGH_TIMEOUT_MS} ms of the move)`,
      (m) => m.neigh, flipBackNote);
    metric('   (for reference) key change → put returned / flip done (ms)', (m) => m.put);
  }

  const oddities = all.filter((r) => r.metrics.some((m) => m.extra > 0));
  for (const r of oddities) {
    out.push(`note: ${r.spec.label}: ${r.metrics.filter((m) => m.extra > 0).length} moves had extra VIP add/del events (a flap)`);
  }
  if (oddities.length) out.push('');

  const idle = results.filter((r) => r.idle);
  if (idle.length) {
    out.push(`idle: ${idle[0]!.idle!.seconds.toFixed(1)} s window after ${IDLE_WARMUP_MS / 1000} s of idle (key unchanged${opt.lease ? ', for this daemon attached to a lease as Patroni\'s is' : ', no lease'}; n1 holds the VIP; both daemons running;`,
      '  RSS at the end, CPU = utime+stime over the window in % of one core; etcd counters over the window ÷ seconds ÷ 2 daemons)');
    const per = (v: number, r: IdleResult): string => (v / r.seconds / 2).toFixed(2);
    const rows = idle.map((r) => {
      const i = r.idle!;
      const unary = [...i.grpcHandled].map(([k, v]) => `${k} ${per(v, i)}`);
      const msgs = [...i.grpcMsgs].filter(([k]) => !i.grpcHandled.has(k)).map(([k, v]) => `${k} msgs ${per(v, i)}`);
      const v2 = [...i.v2].map(([k, v]) => `v2 ${k} ${per(v, i)}`);
      const total = [...i.grpcHandled.values(), ...i.v2.values()].reduce((a, b) => a + b, 0);
      const detail = [...unary, ...msgs, ...v2].join(', ') || 'none';
      return [
        r.spec.label,
        i.rssMiB.map((x) => x.toFixed(1)).join(' / '),
        i.cpuPct.map((x) => x.toFixed(2)).join(' / '),
        i.wakeups.map((x) => x.toFixed(0)).join(' / '),
        per(total, i),
        detail,
        (i.proposals / i.seconds).toFixed(2),
        (i.walBytes / i.seconds).toFixed(0),
      ];
    });
    out.push(table(['', 'RSS MiB n1/n2', 'CPU % n1/n2', 'ctx switches/s n1/n2', 'etcd req/s/daemon', 'by method (/s/daemon)', 'raft proposals/s', 'WAL bytes/s'], rows, 1).replace(/^/gm, '  '), '');
  }

  const vips = all.filter((r) => r.spec.section === 'vips');
  if (vips.length) out.push(...entriesFigure(vips, opt), '');

  out.push(
    'notes:',
    '  - pollers (interval 1000): "present"/"gone" fall anywhere in [0, interval]; overlap and gap depend on the phase between',
    '    the two nodes\' timers (one phase per block). Watchers react to the same event on both nodes: overlap/gap are sub-ms..ms.',
    '  - the fake Patroni API flips both nodes at the same instant; a real switchover demotes first (503) and promotes later (200),',
    '    so real overlaps are shorter and real gaps longer.',
    '  - Consul row: against a stand-in that follows Consul\'s HTTP API documentation (no Consul binary can be installed here).',
    '  - v2 QGET = quorum GET: every read of the baseline goes through raft (a proposal and a WAL write on each member).',
  );
  if (results.length) out.push(`start offsets (n2's daemon after n1's, per block): ${results.map((r) => `${r.spec.id} ${r.staggers.map((x) => ms(x)).join('/')} ms`).join('; ')}`);
  return out.join('\n');
}

function flipBackNote(r: RowResult): string {
  return [
    r.flipBacks.overlap ? `${r.flipBacks.overlap}× back to the old MAC while both held the VIP` : '',
    r.flipBacks.released ? `${r.flipBacks.released}× back to the old MAC AFTER it released the VIP` : '',
  ].filter(Boolean).join('; ');
}

/**
 * The multi-entry figure: one VIP's move while the daemons hold 1 entry and while they hold
 * several, a column per row, median / p90 / max per cell.
 */
function entriesFigure(rows: RowResult[], opt: { lease: boolean }): string[] {
  const cell = (r: RowResult, pick: (m: MoveMetrics) => number | null): string => {
    const vals = r.metrics.map(pick);
    const got = vals.filter((v): v is number => v !== null);
    const missing = vals.length - got.length;
    return `${mpm(got)}${missing > 0 ? ` (${missing} not seen)` : ''}`;
  };
  const line = (label: string, pick: (m: MoveMetrics) => number | null): string[] => [label, ...rows.map((r) => cell(r, pick))];
  const body: string[][] = [
    ['moves measured', ...rows.map((r) => `${r.metrics.length}${r.error ? ' (failed)' : ''}`)],
    line('key change → VIP present on the new holder', (m) => m.present),
    line('daemon share (VIP present − put round trip)', daemonShare),
    line('key change → VIP gone from the old holder', (m) => m.gone),
    line('both held the VIP (overlap)', (m) => m.overlap),
    line('key change → client\'s neighbour entry has the new MAC', (m) => m.neigh),
    line('key change → put returned', (m) => m.put),
    ['add/del of the other entries\' VIPs during the moves', ...rows.map((r) => (r.metrics.length ? String(r.metrics.reduce((a, m) => a + m.others, 0)) : '-'))],
  ];
  return [
    `6. one VIP's move while each daemon holds 1 or several entries (this, etcd v3 watch, one entry's key changed at a time${opt.lease ? ', each key on its own lease' : ', no leases'}; median / p90 / max, ms)`,
    table(['', ...rows.map((r) => r.spec.label)], body, 1).replace(/^/gm, '  '),
    ...rows.flatMap((r) => { const n = flipBackNote(r); return n ? [`  ${r.spec.label}: ${n}`] : []; }),
  ];
}
