// The nodejs_eventloop_lag_* metrics sample only while someone scrapes (src/ops/metrics.ts):
// an idle, unscraped daemon must not wake for them, and a scrape must still see every series
// with real figures, including a stall that happened between two scrapes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metrics, OnDemandLoopDelay } from '../../src/ops/metrics.js';

const LAG_SERIES = ['', '_min', '_max', '_mean', '_stddev', '_p50', '_p90', '_p99'].map((s) => `nodejs_eventloop_lag${s}_seconds`);

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  assert.ok(line !== undefined, `${series} is missing from:\n${text}`);
  return Number(line.slice(series.length + 1));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* a stalled event loop */ }
}

describe('event-loop delay metrics on demand', () => {
  it('the monitor is off until the first scrape, then every lag series has a finite value', async () => {
    const m = new Metrics({ version: '1', dcsType: 'etcd', managerType: 'basic' });
    try {
      assert.equal(m.loopDelay?.sampling, false, 'sampling before anyone scraped');
      const text = await m.render();
      assert.equal(m.loopDelay?.sampling, true);
      for (const s of LAG_SERIES) {
        assert.equal(text.split('\n').filter((l) => l.startsWith(`# TYPE ${s} gauge`)).length, 1, `${s}: one gauge`);
        const v = value(text, s);
        assert.ok(Number.isFinite(v) && v >= 0, `${s} = ${v}`);
      }
    } finally {
      m.loopDelay?.stop();
    }
  });

  it('a stall between two scrapes shows in max and p99', async () => {
    const d = new OnDemandLoopDelay(10, 60_000);
    try {
      await d.sample(); // starts the monitor
      await sleep(50);
      block(120);
      await sleep(50);
      const s = await d.sample();
      // The monitor's timer fired ~120 ms late once: 100 ms leaves room for timer resolution.
      assert.ok(s.max >= 0.1, `max ${s.max}`);
      assert.ok(s.p99 >= 0.1, `p99 ${s.p99}`);
      assert.ok(s.min <= s.mean && s.mean <= s.max, JSON.stringify(s));
    } finally {
      d.stop();
    }
  });

  it('stops sampling when no scrape comes for the keep time, and starts again with the next', async () => {
    const d = new OnDemandLoopDelay(10, 100);
    try {
      await d.sample();
      assert.equal(d.sampling, true);
      await sleep(300);
      assert.equal(d.sampling, false, 'still sampling 300 ms after the last scrape (keep 100 ms)');
      const s = await d.sample();
      assert.equal(d.sampling, true);
      // No samples yet after a restart: the scrape's own measurement stands in for all figures.
      assert.equal(s.min, s.lag);
      assert.equal(s.p99, s.lag);
      assert.equal(s.stddev, 0);
    } finally {
      d.stop();
    }
  });
});
