import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOOK_BUCKETS_SECONDS, Metrics, OTHER_CAUSE, REACTION_BUCKETS_SECONDS } from '../../src/ops/metrics.js';

/** The value of one sample line `name{labels} value` in the text exposition. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  if (line === undefined) return undefined;
  const v = line.slice(series.length + 1).trim();
  return v === 'Nan' || v === 'NaN' ? NaN : v === '+Inf' ? Infinity : Number(v);
}

/** The label of the one entry most tests use (an entry's name defaults to its ip). */
const VIP = '198.51.100.10';
const L = `vip="${VIP}"`;

function fixture() {
  let now = 1_000;
  const metrics = new Metrics({ version: '9.9.9', dcsType: 'etcd', managerType: 'basic', now: () => now, defaultMetrics: false });
  return { metrics, m: metrics.vip(VIP), advance: (ms: number) => (now += ms), at: () => now };
}

/** Every sample line of the exposition whose labels include vip="<name>". */
function linesOf(text: string, name: string): string[] {
  return text.split('\n').filter((l) => !l.startsWith('#') && l.includes(`vip="${name}"`));
}

describe('Metrics', () => {
  it('exposes every vip_manager metric with its initial value', async () => {
    const { metrics } = fixture();
    const text = await metrics.render();
    for (const name of [
      'vip_manager_vip_held', 'vip_manager_transitions_total', 'vip_manager_dcs_connected',
      'vip_manager_dcs_last_answer_seconds', 'vip_manager_leader_lease_deadline_seconds',
      'vip_manager_reaction_seconds', 'vip_manager_announcements_total', 'vip_manager_errors_total', 'vip_manager_info',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is missing`);
    }
    assert.equal(sample(text, `vip_manager_vip_held{${L}}`), 0);
    assert.equal(sample(text, `vip_manager_dcs_connected{${L}}`), 0);
    assert.equal(sample(text, `vip_manager_dcs_last_answer_seconds{${L}}`), Infinity);
    assert.ok(Number.isNaN(sample(text, `vip_manager_leader_lease_deadline_seconds{${L}}`)));
    assert.equal(sample(text, `vip_manager_announcements_total{${L}}`), 0);
    assert.equal(sample(text, `vip_manager_address_conflicts_total{${L}}`), 0);
    assert.equal(sample(text, `vip_manager_address_conflict{${L}}`), 0);
    assert.equal(sample(text, `vip_manager_reaction_seconds_count{${L}}`), 0);
    // Process-wide series carry no vip label.
    assert.equal(sample(text, 'vip_manager_info{version="9.9.9",dcs_type="etcd",manager_type="basic"}'), 1);
    for (const c of ['dcs', 'kernel', 'manager', 'http']) assert.equal(sample(text, `vip_manager_errors_total{component="${c}"}`), 0);
    assert.equal(metrics.hasDcsAnswered(), false);
    assert.equal(metrics.vip(VIP), metrics.vip(VIP), 'one handle per entry name');
  });

  it('has no per-VIP series before an entry asks for them', async () => {
    const metrics = new Metrics({ version: '9.9.9', dcsType: 'etcd', managerType: 'basic', defaultMetrics: false });
    const text = await metrics.render();
    assert.deepEqual(text.split('\n').filter((l) => l.startsWith('vip_manager_') && !/^vip_manager_(errors_total|info)\{/.test(l)), []);
    assert.equal(metrics.hasDcsAnswered(), false, 'no entry has answered: not ready');
  });

  it('follows the API calls', async () => {
    const { metrics, m } = fixture();
    m.setHeld(true);
    m.setDcsConnected(true);
    m.transition('acquire', 'leader-changed');
    m.transition('acquire', 'leader-changed');
    m.transition('release', 'lease-expired');
    m.announced(4);
    m.announced();
    m.addressConflict();
    metrics.error('kernel');
    metrics.error('dcs');
    metrics.error('dcs');
    m.observeReaction(0.7);
    m.observeReaction(30);
    m.setConflictSource(() => 2);
    const text = await metrics.render();
    assert.equal(sample(text, `vip_manager_vip_held{${L}}`), 1);
    assert.equal(sample(text, `vip_manager_dcs_connected{${L}}`), 1);
    assert.equal(sample(text, `vip_manager_transitions_total{${L},direction="acquire",cause="leader-changed"}`), 2);
    assert.equal(sample(text, `vip_manager_transitions_total{${L},direction="release",cause="lease-expired"}`), 1);
    assert.equal(sample(text, `vip_manager_announcements_total{${L}}`), 5);
    assert.equal(sample(text, `vip_manager_address_conflicts_total{${L}}`), 1);
    assert.equal(sample(text, `vip_manager_address_conflict{${L}}`), 2);
    assert.equal(sample(text, 'vip_manager_errors_total{component="dcs"}'), 2);
    assert.equal(sample(text, 'vip_manager_errors_total{component="kernel"}'), 1);
    assert.equal(sample(text, `vip_manager_reaction_seconds_count{${L}}`), 2);
    assert.equal(sample(text, `vip_manager_reaction_seconds_bucket{le="0.001",${L}}`), 1);
    assert.equal(sample(text, `vip_manager_reaction_seconds_bucket{le="0.05",${L}}`), 2);
    assert.ok(Math.abs(sample(text, `vip_manager_reaction_seconds_sum{${L}}`)! - 0.0307) < 1e-9);
    assert.match(text, new RegExp(`vip_manager_reaction_seconds_bucket\\{le="0.0005",${L}\\}`), 'sub-millisecond bucket');
    assert.equal(REACTION_BUCKETS_SECONDS.at(-1), 5);

    m.setHeld(false);
    m.setDcsConnected(false);
    const after = await metrics.render();
    assert.equal(sample(after, `vip_manager_vip_held{${L}}`), 0);
    assert.equal(sample(after, `vip_manager_dcs_connected{${L}}`), 0);
  });

  it('computes the DCS answer age and the lease deadline at scrape time', async () => {
    const { metrics, m, advance, at } = fixture();
    assert.equal(m.hasDcsAnswered(), false);
    m.dcsAnswered(at());
    m.setLeaseDeadline(at() + 10_000);
    assert.equal(m.hasDcsAnswered(), true);
    assert.equal(metrics.hasDcsAnswered(), true);
    assert.equal(sample(await metrics.render(), `vip_manager_dcs_last_answer_seconds{${L}}`), 0);
    advance(2_500);
    const text = await metrics.render();
    assert.equal(sample(text, `vip_manager_dcs_last_answer_seconds{${L}}`), 2.5);
    assert.equal(sample(text, `vip_manager_leader_lease_deadline_seconds{${L}}`), 7.5);
    // While connected, silence means "nothing changed", not "no answer".
    m.setDcsConnected(true);
    assert.equal(sample(await metrics.render(), `vip_manager_dcs_last_answer_seconds{${L}}`), 0);
    m.setDcsConnected(false);
    assert.equal(sample(await metrics.render(), `vip_manager_dcs_last_answer_seconds{${L}}`), 2.5);
    // An older answer reported late must not make the last answer look older.
    m.dcsAnswered(at());
    m.dcsAnswered(at() - 2_000);
    assert.equal(sample(await metrics.render(), `vip_manager_dcs_last_answer_seconds{${L}}`), 0);
    advance(10_000);
    assert.equal(sample(await metrics.render(), `vip_manager_leader_lease_deadline_seconds{${L}}`), -2.5);
    m.setLeaseDeadline(null);
    assert.ok(Number.isNaN(sample(await metrics.render(), `vip_manager_leader_lease_deadline_seconds{${L}}`)));
  });

  it('keeps cause labels to short slugs, so no data (or secret) can become a label', async () => {
    const { metrics, m } = fixture();
    m.transition('release', 'dcs error: http://user:hunter2@10.0.0.1:2379 refused');
    m.transition('release', 'A'.repeat(100));
    const text = await metrics.render();
    assert.doesNotMatch(text, /hunter2/);
    assert.equal(sample(text, `vip_manager_transitions_total{${L},direction="release",cause="${OTHER_CAUSE}"}`), 2);
  });

  it('ignores nonsense reaction times and announcement counts', async () => {
    const { metrics, m } = fixture();
    m.observeReaction(-1);
    m.observeReaction(NaN);
    m.announced(0);
    const text = await metrics.render();
    assert.equal(sample(text, `vip_manager_reaction_seconds_count{${L}}`), 0);
    assert.equal(sample(text, `vip_manager_announcements_total{${L}}`), 0);
  });

  it('gives each VIP entry its own labelled series set', async () => {
    const { metrics, m: primary, at, advance } = fixture();
    const billing = metrics.vip('billing');
    primary.setHeld(true);
    primary.setDcsConnected(true);
    primary.transition('acquire', 'key-ours');
    primary.announced(3);
    primary.dcsAnswered(at());
    billing.transition('release', 'key-other');
    billing.transition('release', 'key-other');
    billing.observeReaction(2);
    billing.setLeaseDeadline(at() + 4_000);
    billing.dcsAnswered(at());
    advance(1_000);
    const text = await metrics.render();
    assert.equal(sample(text, `vip_manager_vip_held{${L}}`), 1);
    assert.equal(sample(text, 'vip_manager_vip_held{vip="billing"}'), 0);
    assert.equal(sample(text, `vip_manager_dcs_connected{${L}}`), 1);
    assert.equal(sample(text, 'vip_manager_dcs_connected{vip="billing"}'), 0);
    assert.equal(sample(text, `vip_manager_transitions_total{${L},direction="acquire",cause="key-ours"}`), 1);
    assert.equal(sample(text, 'vip_manager_transitions_total{vip="billing",direction="release",cause="key-other"}'), 2);
    assert.equal(sample(text, 'vip_manager_transitions_total{vip="billing",direction="acquire",cause="key-ours"}'), undefined);
    assert.equal(sample(text, `vip_manager_transitions_total{${L},direction="release",cause="key-other"}`), undefined);
    assert.equal(sample(text, `vip_manager_announcements_total{${L}}`), 3);
    assert.equal(sample(text, 'vip_manager_announcements_total{vip="billing"}'), 0);
    assert.equal(sample(text, `vip_manager_reaction_seconds_count{${L}}`), 0);
    assert.equal(sample(text, 'vip_manager_reaction_seconds_count{vip="billing"}'), 1);
    // Time-based gauges are per entry too: connected → 0, disconnected → the answer's age.
    assert.equal(sample(text, `vip_manager_dcs_last_answer_seconds{${L}}`), 0);
    assert.equal(sample(text, 'vip_manager_dcs_last_answer_seconds{vip="billing"}'), 1);
    assert.ok(Number.isNaN(sample(text, `vip_manager_leader_lease_deadline_seconds{${L}}`)));
    assert.equal(sample(text, 'vip_manager_leader_lease_deadline_seconds{vip="billing"}'), 3);
    // Exactly one series of each per-VIP metric per entry: 2 entries → 2 of each.
    for (const name of ['vip_manager_vip_held', 'vip_manager_dcs_connected', 'vip_manager_dcs_last_answer_seconds',
      'vip_manager_leader_lease_deadline_seconds', 'vip_manager_announcements_total', 'vip_manager_address_conflicts_total',
      'vip_manager_address_conflict', 'vip_manager_reaction_seconds_count']) {
      const series = text.split('\n').filter((l) => l.startsWith(`${name}{`));
      assert.deepEqual(series.map((l) => /vip="([^"]*)"/.exec(l)?.[1]).sort(), [VIP, 'billing'].sort(), name);
    }
  });

  it('dropVip removes exactly that entry\'s series, hook and transition series included', async () => {
    const { metrics, m: primary } = fixture();
    const billing = metrics.vip('billing');
    for (const v of [primary, billing]) {
      v.setHeld(true);
      v.transition('acquire', 'key-ours');
      v.transition('release', 'dcs-lost');
      v.observeReaction(1);
      v.announced(2);
      v.addressConflict();
      v.enableHooks(['on-acquire', 'on-release']);
      v.hookRun('on-acquire', 'ok', 0.2);
    }
    const before = await metrics.render();
    const primaryLines = linesOf(before, VIP);
    const billingLines = linesOf(before, 'billing');
    assert.equal(primaryLines.length, billingLines.length);
    // held, connected, answer age, lease, 2 transitions, announcements, conflicts (counter and
    // gauge), reaction (buckets + sum + count), 10 hook-run series, 2 hook-duration histograms.
    const histogram = (buckets: number) => buckets + 1 + 2;
    const expected = 1 + 1 + 1 + 1 + 2 + 1 + 2 + histogram(REACTION_BUCKETS_SECONDS.length) + 10 + 2 * histogram(HOOK_BUCKETS_SECONDS.length);
    assert.equal(billingLines.length, expected, billingLines.join('\n'));
    for (const metric of ['vip_manager_transitions_total', 'vip_manager_hook_runs_total', 'vip_manager_hook_duration_seconds_bucket']) {
      assert.ok(billingLines.some((l) => l.startsWith(`${metric}{`)), `billing has ${metric} before the drop`);
    }

    await metrics.dropVip('billing');
    const after = await metrics.render();
    assert.deepEqual(linesOf(after, 'billing'), [], 'no series of the dropped entry is left');
    assert.deepEqual(linesOf(after, VIP), primaryLines, 'the other entry keeps every series and value');
    for (const c of ['dcs', 'kernel', 'manager', 'http']) assert.equal(sample(after, `vip_manager_errors_total{component="${c}"}`), 0);
    assert.equal(sample(after, 'vip_manager_info{version="9.9.9",dcs_type="etcd",manager_type="basic"}'), 1);

    // Dropping an unknown name changes nothing; an entry of the same name added later starts at 0.
    await metrics.dropVip('nope');
    assert.deepEqual(linesOf(await metrics.render(), VIP), primaryLines);
    metrics.vip('billing');
    const again = await metrics.render();
    assert.equal(sample(again, 'vip_manager_vip_held{vip="billing"}'), 0);
    assert.equal(sample(again, 'vip_manager_transitions_total{vip="billing",direction="acquire",cause="key-ours"}'), undefined);
    assert.ok(!again.includes('vip_manager_hook_runs_total{vip="billing"'), 'hook series come back only when the new entry enables them');
  });

  it('hasDcsAnswered: only once every entry has had an answer; a dropped entry no longer counts', async () => {
    const { metrics, m: primary, at } = fixture();
    const billing = metrics.vip('billing');
    assert.equal(metrics.hasDcsAnswered(), false);
    primary.dcsAnswered(at());
    assert.equal(primary.hasDcsAnswered(), true);
    assert.equal(billing.hasDcsAnswered(), false);
    assert.equal(metrics.hasDcsAnswered(), false, 'one of two entries answered: not ready');
    metrics.vip('third').dcsAnswered(at());
    assert.equal(metrics.hasDcsAnswered(), false);
    billing.dcsAnswered(at());
    assert.equal(metrics.hasDcsAnswered(), true);
    const late = metrics.vip('late');
    assert.equal(metrics.hasDcsAnswered(), false, 'an entry added by a reload must answer too');
    await metrics.dropVip('late');
    assert.equal(late.hasDcsAnswered(), false);
    assert.equal(metrics.hasDcsAnswered(), true, 'the removed entry is not waited for');
  });

  it('includes the runtime default metrics in its own registry, not the global one', async () => {
    const a = new Metrics({ version: '1', dcsType: 'consul', managerType: 'hetzner' });
    const b = new Metrics({ version: '1', dcsType: 'patroni', managerType: 'basic' });
    const text = await a.render();
    assert.match(text, /^process_cpu_seconds_total /m);
    assert.match(text, /^nodejs_heap_size_used_bytes /m);
    assert.match(await b.render(), /dcs_type="patroni"/);
    assert.doesNotMatch(text, /dcs_type="patroni"/);
    assert.equal(a.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  });
});
