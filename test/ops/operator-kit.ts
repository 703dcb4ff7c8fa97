// The PromQL the operator kit runs against a Prometheus: every alert rule's expression
// (packaging/prometheus/vip-manager.rules.yml) and every query of the Grafana dashboard
// (packaging/grafana/vip-manager.json), and the metric names they read. Shared by the static
// tests in test/ops and the live scrape in test/ops-daemon.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

// dist/test/ops → repository root
const REPO = new URL('../../../', import.meta.url);
export const RULES_FILE = fileURLToPath(new URL('packaging/prometheus/vip-manager.rules.yml', REPO));
export const DASHBOARD_FILE = fileURLToPath(new URL('packaging/grafana/vip-manager.json', REPO));
export const RULE_TESTS_FILE = fileURLToPath(new URL('test/ops/fixtures/vip-manager.rules.test.yml', REPO));

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function alertRules(): AlertRule[] {
  const doc = parse(readFileSync(RULES_FILE, 'utf8')) as { groups: Array<{ name: string; rules: AlertRule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

export interface DashboardTarget { expr: string; refId: string; legendFormat?: string; datasource?: { type: string; uid: string } }
export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: DashboardTarget[];
}
export interface DashboardVariable { type: string; name: string; query?: string | { query: string }; datasource?: { type: string; uid: string } }
export interface Dashboard {
  uid: string;
  title: string;
  panels: DashboardPanel[];
  templating: { list: DashboardVariable[] };
}

export function dashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
}

/** Every panel query, named by its panel for messages. */
export function dashboardQueries(d: Dashboard = dashboard()): Array<{ where: string; expr: string }> {
  return d.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr })));
}

/** The metric each `label_values(metric{…}, label)` variable query reads. */
export function variableMetrics(d: Dashboard = dashboard()): Array<{ where: string; metric: string }> {
  return d.templating.list.filter((v) => v.type === 'query').map((v) => {
    const q = typeof v.query === 'string' ? v.query : v.query?.query ?? '';
    const m = /^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(q);
    if (!m) throw new Error(`variable ${v.name}: expected a label_values(metric…) query, got ${JSON.stringify(q)}`);
    return { where: `variable ${v.name}`, metric: m[1]! };
  });
}

/**
 * The dashboard's Grafana variables replaced by what Grafana would send, so a query becomes
 * plain PromQL that promtool can parse.
 */
export function grafanaToPromql(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval/g, '1m')
    .replace(/\$__range/g, '6h')
    .replace(/\$job\b/g, 'vip-manager')
    .replace(/\$(vip|instance)\b/g, '.*');
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'atan2', 'Inf', 'NaN', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects. Strings, label matchers, ranges and grouping
 * label lists are removed first; what remains is function names (followed by "("), keywords,
 * numbers and durations, and the metric names themselves.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] !== undefined || KEYWORDS.has(m[1]!)) continue;
    names.add(m[1]!);
  }
  return [...names].sort();
}

/** Series Prometheus makes itself for every target, not found in any /metrics. */
export const SCRAPE_SERIES: ReadonlySet<string> = new Set(['up']);

/** Every metric the rules and the dashboard read, with where each is read. */
export function queriedMetrics(): Map<string, string[]> {
  const uses = new Map<string, string[]>();
  const add = (name: string, where: string) => uses.set(name, [...(uses.get(name) ?? []), where]);
  for (const r of alertRules()) for (const n of metricNames(r.expr)) add(n, `alert ${r.alert}`);
  for (const q of dashboardQueries()) for (const n of metricNames(q.expr)) add(n, q.where);
  for (const v of variableMetrics()) add(v.metric, v.where);
  return uses;
}
