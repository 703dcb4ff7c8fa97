// The operator kit in a real Prometheus: Debian's prometheus scrapes two live daemons (real
// etcd, real interfaces in test namespaces) with the scrape configuration the README shows
// (job vip-manager, no target labels: the daemon sets `vip` on its per-VIP series itself), loads
// the shipped alert rules, and evaluates them and every dashboard query on that live data: the
// no-holder and DCS alerts go pending when they should and clear when the VIP is held, every
// rule evaluates without error, every dashboard query returns series. Needs prometheus and
// promtool (Debian: prometheus).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { createBed, ETCD_HOST, KEY, VIP4, type Bed } from '../daemon/bed.js';
import { alertRules, dashboard, dashboardQueries, grafanaToPromql, RULES_FILE } from '../ops/operator-kit.js';
import { promtool } from '../ops/promtool.js';
import { HTTP_PORT } from './scrape.js';
import { startPrometheus, type PrometheusServer, type Sample } from './prometheus.js';

const LEASE_TTL_S = 30;
const JOB = 'vip-manager';

interface RuleGroups { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; type: string }> }> }

describe('operator kit in a real Prometheus scraping live daemons', { concurrency: false }, () => {
  let bed: Bed;
  let prom: PrometheusServer;
  let lease: ReturnType<Bed['kv']['lease']> | undefined;
  let targets: [string, string];
  const heldBy = (s: Sample[]) => s.filter((x) => x.value[1] === '1').map((x) => x.metric.instance);

  before(async () => {
    bed = await createBed();
    await bed.kv.delete().key(KEY);
    targets = [`${bed.nodes[0].ipv4}:${HTTP_PORT}`, `${bed.nodes[1].ipv4}:${HTTP_PORT}`];
    await bed.start(0, ['--http-listen', targets[0]]);
    await bed.start(1, ['--http-listen', targets[1]]);
    // The README's scrape configuration, with the intervals shortened for a test.
    const config = stringify({
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      rule_files: [RULES_FILE],
      scrape_configs: [{ job_name: JOB, static_configs: [{ targets }] }],
    });
    const dir = mkdtempSync(join(tmpdir(), 'vmt-promcfg-'));
    try {
      writeFileSync(join(dir, 'prometheus.yml'), config);
      const check = promtool(['check', 'config', join(dir, 'prometheus.yml')]);
      assert.equal(check.status, 0, check.output);
      assert.match(check.output, new RegExp(`SUCCESS: ${alertRules().length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    prom = await startPrometheus(ETCD_HOST, config);
    await prom.queryUntil(`up{job="${JOB}"} == 1`, 'both daemons scraped', (s) => s.length === 2);
  });
  after(async () => {
    await prom?.dispose();
    await lease?.revoke().catch(() => {});
    await bed?.dispose();
  });

  test('no holder: VipManagerNoHolder goes pending for the VIP, and clears once n1 holds it', async () => {
    const pending = await prom.queryUntil('ALERTS{alertname="VipManagerNoHolder"}', 'VipManagerNoHolder pending', (s) => s.length === 1);
    assert.deepEqual(pending[0]!.metric, { __name__: 'ALERTS', alertname: 'VipManagerNoHolder', alertstate: 'pending', job: JOB, vip: VIP4, severity: 'critical' });

    lease = bed.kv.lease(LEASE_TTL_S);
    await lease.put(KEY).value('n1');
    const held = await prom.queryUntil(`vip_manager_vip_held{job="${JOB}"}`, 'n1 holding', (s) => heldBy(s).join() === targets[0]);
    assert.deepEqual(held.map((s) => s.metric.vip), [VIP4, VIP4], 'the daemon\'s vip label (the entry\'s name: its ip) is on every series');
    assert.deepEqual(await prom.query('{exported_vip!=""}'), [], 'no label clash: nothing renamed to exported_vip');
    await prom.queryUntil('ALERTS{alertname="VipManagerNoHolder"}', 'VipManagerNoHolder cleared', (s) => s.length === 0);
  });

  test('after a switchover and back, every dashboard query returns series and every rule evaluates cleanly', async () => {
    await lease!.put(KEY).value('n2');
    await prom.queryUntil(`vip_manager_vip_held{job="${JOB}"}`, 'n2 holding', (s) => heldBy(s).join() === targets[1]);
    await lease!.put(KEY).value('n1');
    await prom.queryUntil(`vip_manager_transitions_total{instance="${targets[0]}",direction="acquire",cause="key-ours"}`,
      'n1\'s second acquisition scraped', (s) => s[0]?.value[1] === '2');

    const empty: string[] = [];
    for (const q of dashboardQueries()) {
      const expr = grafanaToPromql(q.expr);
      if ((await prom.query(expr)).length === 0) empty.push(`${q.where}: ${expr}`);
    }
    assert.deepEqual(empty, [], 'dashboard queries without a series on live data');

    // The variables (label_values) list the VIP and both nodes.
    for (const v of dashboard().templating.list.filter((x) => x.type === 'query')) {
      const q = typeof v.query === 'string' ? v.query : v.query!.query;
      const [, selector, label] = /^label_values\((.*),\s*(\w+)\)$/.exec(q)!;
      const values = [...new Set((await prom.query(grafanaToPromql(selector!))).map((s) => s.metric[label!]))].sort();
      const want = label === 'vip' ? [VIP4] : label === 'instance' ? [...targets].sort() : [JOB];
      assert.deepEqual(values, want, `variable ${v.name}`);
    }

    const rules = (await prom.api<RuleGroups>('rules')).groups.flatMap((g) => g.rules);
    assert.deepEqual(rules.map((r) => r.name).sort(), alertRules().map((r) => r.alert).sort());
    for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError ?? ''}`);
  });

  test('etcd stopped: VipManagerDcsDisconnected goes pending for both nodes', async () => {
    await bed.etcd.stop();
    const pending = await prom.queryUntil('ALERTS{alertname="VipManagerDcsDisconnected"}', 'VipManagerDcsDisconnected pending for both', (s) => s.length === 2);
    assert.deepEqual(pending.map((s) => s.metric.instance).sort(), [...targets].sort());
    for (const s of pending) assert.equal(s.metric.alertstate, 'pending');
  });
});
