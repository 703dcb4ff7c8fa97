import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metrics, OTHER_CAUSE, REACTION_BUCKETS_SECONDS } from '../../src/ops/metrics.js';

/** The value of one sample line `name{labels} value` in the text exposition. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  if (line === undefined) return undefined;
  const v = line.slice(series.length + 1).trim();
  return v === 'Nan' || v === 'NaN' ? NaN : v === '+Inf' ? Infinity : Number(v);
}

function fixture() {
  let now = 1_000;
  const m = new Metrics({ version: '9.9.9', dcsType: 'etcd', managerType: 'basic', now: () => now, defaultMetrics: false });
  return { m, advance: (ms: number) => (now += ms), at: () => now };
}

describe('Metrics', () => {
  it('exposes every vip_manager metric with its initial value', async () => {
    const { m } = fixture();
    const text = await m.render();
    for (const name of [
      'vip_manager_vip_held', 'vip_manager_transitions_total', 'vip_manager_dcs_connected',
      'vip_manager_dcs_last_answer_seconds', 'vip_manager_leader_lease_deadline_seconds',
      'vip_manager_reaction_seconds', 'vip_manager_announcements_total', 'vip_manager_errors_total', 'vip_manager_info',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is missing`);
    }
    assert.equal(sample(text, 'vip_manager_vip_held'), 0);
    assert.equal(sample(text, 'vip_manager_dcs_connected'), 0);
    assert.equal(sample(text, 'vip_manager_dcs_last_answer_seconds'), Infinity);
    assert.ok(Number.isNaN(sample(text, 'vip_manager_leader_lease_deadline_seconds')));
    assert.equal(sample(text, 'vip_manager_info{version="9.9.9",dcs_type="etcd",manager_type="basic"}'), 1);
    for (const c of ['dcs', 'kernel', 'manager', 'http']) assert.equal(sample(text, `vip_manager_errors_total{component="${c}"}`), 0);
    assert.equal(m.hasDcsAnswered(), false);
  });

  it('follows the API calls', async () => {
    const { m } = fixture();
    m.setHeld(true);
    m.setDcsConnected(true);
    m.transition('acquire', 'leader-changed');
    m.transition('acquire', 'leader-changed');
    m.transition('release', 'lease-expired');
    m.announced(4);
    m.announced();
    m.error('kernel');
    m.error('dcs');
    m.error('dcs');
    m.observeReaction(0.7);
    m.observeReaction(30);
    const text = await m.render();
    assert.equal(sample(text, 'vip_manager_vip_held'), 1);
    assert.equal(sample(text, 'vip_manager_dcs_connected'), 1);
    assert.equal(sample(text, 'vip_manager_transitions_total{direction="acquire",cause="leader-changed"}'), 2);
    assert.equal(sample(text, 'vip_manager_transitions_total{direction="release",cause="lease-expired"}'), 1);
    assert.equal(sample(text, 'vip_manager_announcements_total'), 5);
    assert.equal(sample(text, 'vip_manager_errors_total{component="dcs"}'), 2);
    assert.equal(sample(text, 'vip_manager_errors_total{component="kernel"}'), 1);
    assert.equal(sample(text, 'vip_manager_reaction_seconds_count'), 2);
    assert.equal(sample(text, 'vip_manager_reaction_seconds_bucket{le="0.001"}'), 1);
    assert.equal(sample(text, 'vip_manager_reaction_seconds_bucket{le="0.05"}'), 2);
    assert.ok(Math.abs(sample(text, 'vip_manager_reaction_seconds_sum')! - 0.0307) < 1e-9);
    assert.match(text, /vip_manager_reaction_seconds_bucket\{le="0.0005"\}/, 'sub-millisecond bucket');
    assert.equal(REACTION_BUCKETS_SECONDS.at(-1), 5);

    m.setHeld(false);
    m.setDcsConnected(false);
    const after = await m.render();
    assert.equal(sample(after, 'vip_manager_vip_held'), 0);
    assert.equal(sample(after, 'vip_manager_dcs_connected'), 0);
  });

  it('computes the DCS answer age and the lease deadline at scrape time', async () => {
    const { m, advance, at } = fixture();
    m.dcsAnswered(at());
    m.setLeaseDeadline(at() + 10_000);
    assert.equal(m.hasDcsAnswered(), true);
    assert.equal(sample(await m.render(), 'vip_manager_dcs_last_answer_seconds'), 0);
    advance(2_500);
    const text = await m.render();
    assert.equal(sample(text, 'vip_manager_dcs_last_answer_seconds'), 2.5);
    assert.equal(sample(text, 'vip_manager_leader_lease_deadline_seconds'), 7.5);
    // While connected, silence means "nothing changed", not "no answer".
    m.setDcsConnected(true);
    assert.equal(sample(await m.render(), 'vip_manager_dcs_last_answer_seconds'), 0);
    m.setDcsConnected(false);
    assert.equal(sample(await m.render(), 'vip_manager_dcs_last_answer_seconds'), 2.5);
    // An older answer reported late must not make the last answer look older.
    m.dcsAnswered(at());
    m.dcsAnswered(at() - 2_000);
    assert.equal(sample(await m.render(), 'vip_manager_dcs_last_answer_seconds'), 0);
    advance(10_000);
    assert.equal(sample(await m.render(), 'vip_manager_leader_lease_deadline_seconds'), -2.5);
    m.setLeaseDeadline(null);
    assert.ok(Number.isNaN(sample(await m.render(), 'vip_manager_leader_lease_deadline_seconds')));
  });

  it('keeps cause labels to short slugs, so no data (or secret) can become a label', async () => {
    const { m } = fixture();
    m.transition('release', 'dcs error: http://user:hunter2@10.0.0.1:2379 refused');
    m.transition('release', 'A'.repeat(100));
    const text = await m.render();
    assert.doesNotMatch(text, /hunter2/);
    assert.equal(sample(text, `vip_manager_transitions_total{direction="release",cause="${OTHER_CAUSE}"}`), 2);
  });

  it('ignores nonsense reaction times and announcement counts', async () => {
    const { m } = fixture();
    m.observeReaction(-1);
    m.observeReaction(NaN);
    m.announced(0);
    const text = await m.render();
    assert.equal(sample(text, 'vip_manager_reaction_seconds_count'), 0);
    assert.equal(sample(text, 'vip_manager_announcements_total'), 0);
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
