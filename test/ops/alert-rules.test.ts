// The Prometheus alert rules (packaging/prometheus/vip-manager.rules.yml): promtool accepts
// them, and its rule unit tests (test/ops/fixtures/vip-manager.rules.test.yml) show every alert
// firing in its scenario and none during ordinary switchovers. Mutated copies prove those
// silences depend on the rules' `for:` durations. Needs promtool (Debian: prometheus).
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { alertRules, metricNames, RULE_TESTS_FILE, RULES_FILE } from './operator-kit.js';
import { promtool } from './promtool.js';

interface RuleTest {
  name: string;
  alert_rule_test: Array<{ eval_time: string; alertname: string; exp_alerts?: unknown[] }>;
}

const SWITCHOVER_TEST = 'ordinary switchovers stay silent';

/** Runs the unit tests against a copy of the rules with `edit` applied. */
function testMutated(dir: string, edit: (rules: string) => string): ReturnType<typeof promtool> {
  const original = readFileSync(RULES_FILE, 'utf8');
  const mutated = edit(original);
  assert.notEqual(mutated, original, 'the mutation changed nothing');
  const rulesDir = join(dir, 'packaging', 'prometheus');
  const testsDir = join(dir, 'test', 'ops', 'fixtures');
  for (const d of [rulesDir, testsDir]) mkdirSync(d, { recursive: true });
  writeFileSync(join(rulesDir, 'vip-manager.rules.yml'), mutated);
  copyFileSync(RULE_TESTS_FILE, join(testsDir, 'vip-manager.rules.test.yml'));
  return promtool(['test', 'rules', 'vip-manager.rules.test.yml'], testsDir);
}

describe('Prometheus alert rules', () => {
  const rules = alertRules();
  const tests = (parse(readFileSync(RULE_TESTS_FILE, 'utf8')) as { tests: RuleTest[] }).tests;
  let scratch: string;
  before(() => { scratch = mkdtempSync(join(tmpdir(), 'vip-rules-')); });
  after(() => { if (scratch) rmSync(scratch, { recursive: true, force: true }); });

  it('has the alerts an HA operator needs, each with a severity, a summary and a first check', () => {
    assert.deepEqual(rules.map((r) => r.alert).sort(), [
      'VipManagerDcsDisconnected', 'VipManagerDown', 'VipManagerErrors', 'VipManagerFlapping',
      'VipManagerLeaseNearExpiry', 'VipManagerMultipleHolders', 'VipManagerNoHolder',
    ]);
    for (const r of rules) {
      assert.match(r.labels?.severity ?? '', /^(critical|warning)$/, `${r.alert}: severity`);
      assert.ok((r.annotations?.summary ?? '').length > 10, `${r.alert}: summary`);
      assert.match(r.annotations?.description ?? '', /Check first/, `${r.alert}: the description says what to check first`);
    }
  });

  it('groups the per-VIP alerts by the daemon\'s vip label (the entry\'s name)', () => {
    for (const name of ['VipManagerNoHolder', 'VipManagerMultipleHolders', 'VipManagerFlapping']) {
      assert.match(rules.find((r) => r.alert === name)!.expr, /sum by \(job, vip\)/, name);
    }
  });

  it('shows a scrape configuration without a vip target label, and says why', () => {
    const header = readFileSync(RULES_FILE, 'utf8').split('\ngroups:')[0]!;
    assert.match(header, /^#\s+scrape_configs:$/m);
    assert.match(header, /^#\s+- targets: \[/m);
    assert.doesNotMatch(header, /^#\s+labels:/m, 'a target label vip would rename the daemon\'s to exported_vip');
    assert.match(header, /exported_vip/);
  });

  it('puts $labels.vip only in alerts on per-VIP series (errors_total and up have no vip label)', () => {
    for (const r of rules.filter((x) => /vip_manager_errors_total|\bup\{/.test(x.expr))) {
      assert.doesNotMatch(JSON.stringify(r.annotations), /\$labels\.vip/, r.alert);
    }
  });

  it('reads only vip-manager metrics and up (checked against a live daemon in test/ops-daemon)', () => {
    for (const r of rules) {
      for (const n of metricNames(r.expr)) assert.ok(n === 'up' || n.startsWith('vip_manager_'), `${r.alert} reads ${n}`);
    }
  });

  it('passes promtool check rules', () => {
    const r = promtool(['check', 'rules', RULES_FILE]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it('has a unit test in which each alert fires, and checks each one silent during switchovers', () => {
    const fired = new Set(tests.flatMap((t) => t.alert_rule_test.filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname)));
    const quiet = tests.find((t) => t.name === SWITCHOVER_TEST);
    assert.ok(quiet, `no test named "${SWITCHOVER_TEST}"`);
    const silent = new Set(quiet.alert_rule_test.filter((a) => (a.exp_alerts ?? []).length === 0).map((a) => a.alertname));
    for (const r of rules) {
      assert.ok(fired.has(r.alert), `${r.alert} never fires in ${RULE_TESTS_FILE}`);
      assert.ok(silent.has(r.alert), `${r.alert} is not checked silent in "${SWITCHOVER_TEST}"`);
    }
  });

  it('passes promtool test rules', () => {
    const r = promtool(['test', 'rules', RULE_TESTS_FILE]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  it('would alert during a switchover without the for: durations (the silence is the rules\', not the data\'s)', () => {
    for (const [alert, dur] of [['VipManagerMultipleHolders', '30s'], ['VipManagerNoHolder', '1m']] as const) {
      const r = testMutated(scratch, (text) => text.replace(
        new RegExp(`(alert: ${alert}\\n(?:.*\\n)*?\\s+for: )${dur}`), '$10s'));
      assert.notEqual(r.status, 0, `${alert} without for: still passed:\n${r.output}`);
      assert.match(r.output, new RegExp(`name: ${SWITCHOVER_TEST},\\s*alertname: ${alert}`), r.output);
    }
  });
});
