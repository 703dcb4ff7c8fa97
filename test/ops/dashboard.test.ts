// The Grafana dashboard (packaging/grafana/vip-manager.json), kept as data: it is well formed
// for import (one data source variable, unique panel ids, panels inside the 24-column grid and
// not overlapping), every query is PromQL that promtool parses once Grafana's variables are
// filled in, and it shows what an operator needs. That every metric it reads exists is
// checked against a live daemon in test/ops-daemon/operator-kit-metrics.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { dashboard, dashboardQueries, grafanaToPromql, metricNames, variableMetrics } from './operator-kit.js';
import { promtool } from './promtool.js';

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };
/** Variables Grafana defines itself. */
const BUILTIN_VARIABLES = new Set(['__rate_interval', '__interval', '__range']);

describe('Grafana dashboard', () => {
  const d = dashboard();
  const queries = dashboardQueries(d);

  it('is importable: a fixed uid, a Prometheus data source variable, every query using it', () => {
    assert.equal(d.uid, 'vip-manager');
    const ds = d.templating.list.find((v) => v.type === 'datasource');
    assert.equal(ds?.name, 'datasource');
    assert.equal(ds?.query, 'prometheus');
    for (const p of d.panels.filter((p) => p.type !== 'row')) {
      assert.deepEqual(p.datasource, DATASOURCE, `panel ${p.id} "${p.title}": data source`);
      assert.ok((p.targets ?? []).length > 0, `panel ${p.id} "${p.title}" has no query`);
      for (const t of p.targets ?? []) assert.deepEqual(t.datasource, DATASOURCE, `panel ${p.id} ${t.refId}: data source`);
      assert.ok((p.description ?? '').length > 20, `panel ${p.id} "${p.title}" explains itself`);
    }
  });

  it('has unique panel ids and lays the panels out inside the grid without overlaps', () => {
    const ids = d.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, `duplicate panel ids: ${ids.join(',')}`);
    const taken = new Map<string, number>();
    for (const p of d.panels) {
      const g = p.gridPos;
      assert.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0 && g.y >= 0, `panel ${p.id}: gridPos ${JSON.stringify(g)}`);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          const other = taken.get(`${x},${y}`);
          assert.equal(other, undefined, `panel ${p.id} overlaps panel ${other} at ${x},${y}`);
          taken.set(`${x},${y}`, p.id);
        }
      }
    }
  });

  it('filters by vip only the per-VIP series (process-wide ones carry no vip label)', () => {
    const processWide = /\b(vip_manager_errors_total|vip_manager_info|process_\w+|nodejs_\w+)\{([^}]*)\}/g;
    for (const q of queries) {
      for (const m of q.expr.matchAll(processWide)) assert.doesNotMatch(m[2]!, /\bvip\s*=/, `${q.where}: ${m[1]} has no vip label to select on`);
    }
    for (const q of queries.filter((x) => /vip_manager_(vip_held|transitions_total|reaction_seconds|dcs_|leader_lease|announcements)/.test(x.expr))) {
      assert.match(q.expr, /vip=~"\$vip"/, `${q.where}: a per-VIP series follows the vip variable`);
    }
  });

  it('uses only variables it defines', () => {
    const defined = new Set([...d.templating.list.map((v) => v.name), ...BUILTIN_VARIABLES]);
    const texts = [...queries.map((q) => ({ where: q.where, text: q.expr })),
      ...d.templating.list.map((v) => ({ where: `variable ${v.name}`, text: typeof v.query === 'string' ? v.query : v.query?.query ?? '' }))];
    for (const { where, text } of texts) {
      for (const m of text.matchAll(/\$\{?(\w+)/g)) assert.ok(defined.has(m[1]!), `${where} uses $${m[1]}, which the dashboard does not define`);
    }
  });

  it('shows who holds each VIP, transitions with causes, reaction quantiles, the DCS, the lease, errors, CPU and memory', () => {
    const all = queries.map((q) => q.expr).join('\n');
    for (const [what, pattern] of [
      ['holder per VIP', /vip_manager_vip_held\{/],
      ['transitions by cause', /by \([^)]*cause[^)]*\) \(increase\(vip_manager_transitions_total/],
      ['reaction-time quantiles', /histogram_quantile\(0\.99, sum by \([^)]*le\) \((rate|increase)\(vip_manager_reaction_seconds_bucket/],
      ['DCS connectivity', /vip_manager_dcs_connected\{/],
      ['DCS answer age', /vip_manager_dcs_last_answer_seconds\{/],
      ['lease deadline', /vip_manager_leader_lease_deadline_seconds\{/],
      ['errors by component', /by \([^)]*component[^)]*\) \(rate\(vip_manager_errors_total/],
      ['process CPU', /rate\(process_cpu_seconds_total\{/],
      ['process RSS', /process_resident_memory_bytes\{/],
    ] as const) {
      assert.match(all, pattern, `no panel shows ${what}`);
    }
  });

  it('finds the metric names in PromQL (the helper the live check relies on)', () => {
    assert.deepEqual(metricNames('sum by (instance, le) (rate(a_bucket{x="y",le=~"$vip"}[5m])) > 0.5 and on (job) b == 1'), ['a_bucket', 'b']);
    assert.deepEqual(metricNames('histogram_quantile(0.99, sum without (pod) (increase(c[1h] offset 5m)))'), ['c']);
    assert.deepEqual(metricNames('up{job="vip-manager"} == 0 or vector(1e3)'), ['up']);
  });

  it('has only queries promtool parses, with Grafana\'s variables filled in', () => {
    const exprs = [
      ...queries.map((q) => ({ where: q.where, expr: grafanaToPromql(q.expr) })),
      // label_values(selector, label): the selector part must be valid PromQL too.
      ...d.templating.list.filter((v) => v.type === 'query').map((v) => {
        const q = typeof v.query === 'string' ? v.query : v.query?.query ?? '';
        return { where: `variable ${v.name}`, expr: grafanaToPromql(/^label_values\((.*),\s*\w+\)$/.exec(q)?.[1] ?? q) };
      }),
    ];
    // vip_manager_info is process-wide (no vip label): the VIPs and their nodes come from a per-VIP series.
    assert.deepEqual(variableMetrics(d).map((v) => `${v.where}: ${v.metric}`),
      ['variable job: vip_manager_info', 'variable vip: vip_manager_vip_held', 'variable instance: vip_manager_vip_held']);
    const dir = mkdtempSync(join(tmpdir(), 'vip-dashboard-'));
    try {
      const file = join(dir, 'dashboard-queries.yml');
      // Recording rules are the one place promtool parses arbitrary expressions offline.
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: e.expr })) }] }));
      const r = promtool(['check', 'rules', file]);
      assert.equal(r.status, 0, `${r.output}\nqueries:\n${exprs.map((e, i) => `${i}: ${e.where}: ${e.expr}`).join('\n')}`);
      assert.match(r.output, new RegExp(`SUCCESS: ${exprs.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
