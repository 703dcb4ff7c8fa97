// Every metric the alert rules (packaging/prometheus/vip-manager.rules.yml) and the Grafana
// dashboard (packaging/grafana/vip-manager.json) read exists in a live daemon's /metrics (real
// etcd, real interfaces in test namespaces), with the labels and label values they select and
// group by. The daemon first acquires and releases the VIP once, because a labelled counter
// has no series before its first increment.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { hasVip } from '../harness/daemon.js';
import { createBed, KEY, VIP4, type Bed } from '../daemon/bed.js';
import { alertRules, dashboardQueries, queriedMetrics, SCRAPE_SERIES } from '../ops/operator-kit.js';
import { HTTP_PORT, metricsUntil, type Samples } from './scrape.js';

const V4 = `${VIP4}/24`;
/** Every per-VIP series carries the entry's name, by default its ip. */
const VIPL = { vip: VIP4 };
const LEASE_TTL_S = 30;
/**
 * Labels Prometheus adds to every series of a target (the rules' README scrape configuration).
 * `vip` is not one of them: the daemon sets it on its per-VIP series, so it is checked here.
 */
const TARGET_LABELS = new Set(['job', 'instance']);

/** `metric{label op "value", …}` selectors in an expression. */
function selectors(expr: string): Array<{ metric: string; label: string; op: string; value: string }> {
  return [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)].flatMap((m) =>
    [...m[2]!.matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)].map((l) => ({ metric: m[1]!, label: l[1]!, op: l[2]!, value: l[3]! })));
}

/** Labels named in by (…) clauses. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()).filter((s) => s !== ''));
}

describe('operator kit: the metrics the rules and the dashboard read, on a live daemon', () => {
  let bed: Bed;
  let scrape: Samples;
  let lease: ReturnType<Bed['kv']['lease']> | undefined;
  before(async () => {
    bed = await createBed();
    const host = bed.nodes[0].ipv4;
    const d = await bed.start(0, ['--http-listen', `${host}:${HTTP_PORT}`]);
    lease = bed.kv.lease(LEASE_TTL_S);
    let mark = d.logs.length;
    await lease.put(KEY).value('n1');
    assert.equal((await d.waitForTransition('acquire', mark, 3000)).cause, 'key-ours');
    mark = d.logs.length;
    await lease.put(KEY).value('n2');
    assert.equal((await d.waitForTransition('release', mark, 3000)).cause, 'key-other');
    assert.equal(hasVip(bed.nodes[0].ns, V4), false);
    scrape = await metricsUntil(host, 'both transitions counted', (s) =>
      s.counter('vip_manager_transitions_total', { ...VIPL, direction: 'acquire', cause: 'key-ours' }) === 1
      && s.counter('vip_manager_transitions_total', { ...VIPL, direction: 'release', cause: 'key-other' }) === 1);
  });
  after(async () => {
    await lease?.revoke().catch(() => {});
    await bed?.dispose();
  });

  test('every metric queried is exported (up is Prometheus\'s own)', () => {
    const uses = queriedMetrics();
    assert.ok(uses.size >= 10, `only ${uses.size} metrics found in the rules and the dashboard`);
    const exported = new Set(scrape.rows.map((r) => r.name));
    const missing = [...uses].filter(([name]) => !SCRAPE_SERIES.has(name) && !exported.has(name))
      .map(([name, where]) => `${name} (read by ${[...new Set(where)].join('; ')})`);
    assert.deepEqual(missing, [], `metrics not in /metrics:\n${scrape.text.split('\n').filter((l) => l.startsWith('# TYPE')).join('\n')}`);
  });

  test('every label a query selects or groups by is on the metric, with the selected values', () => {
    const exprs = [...alertRules().map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })), ...dashboardQueries()];
    for (const { where, expr } of exprs) {
      for (const s of selectors(expr)) {
        if (TARGET_LABELS.has(s.label) || SCRAPE_SERIES.has(s.metric)) continue;
        const rows = scrape.rows.filter((r) => r.name === s.metric);
        assert.ok(rows.some((r) => s.label in r.labels), `${where}: ${s.metric} has no label ${s.label}`);
        if (s.op === '=') assert.ok(rows.some((r) => r.labels[s.label] === s.value), `${where}: no ${s.metric}{${s.label}="${s.value}"}`);
      }
      const read = new Set(scrape.rows.filter((r) => expr.includes(r.name)).flatMap((r) => Object.keys(r.labels)));
      for (const label of groupingLabels(expr)) {
        assert.ok(TARGET_LABELS.has(label) || read.has(label), `${where}: groups by ${label}, which none of its metrics has`);
      }
    }
  });
});
