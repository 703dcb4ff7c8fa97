// LeaseTracker pacing and the error descriptions, without etcd (the behaviour against a real
// etcd is covered in etcd-source.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tagEndpoint } from '../../src/dcs/etcd/endpoints.js';
import { EtcdDeadlineError, gatewayError } from '../../src/dcs/etcd/gateway.js';
import { LEASE_QUERY_SLACK_MS, LeaseTracker, NO_LEASE, leaseDeadline } from '../../src/dcs/etcd/lease.js';
import { describeEtcdError } from '../../src/dcs/etcd/errors.js';
import { sleep } from './etcd-views.js';

/**
 * A query that takes `delayMs`, recording when each call started and how many are running, so
 * the tests wait for what happened (calls, answers) rather than for a while.
 */
function fakeQuery(delayMs: number) {
  const calls: string[] = [];
  const startedAt: number[] = [];
  let running = 0;
  let fail: Error | null = null;
  return {
    calls,
    startedAt,
    get running() { return running; },
    failNext(e: Error) { fail = e; },
    query: async (id: string) => {
      calls.push(id);
      startedAt.push(performance.now());
      running++;
      try {
        await sleep(delayMs);
        if (fail) {
          const e = fail;
          fail = null;
          throw e;
        }
        return 1000;
      } finally {
        running--;
      }
    },
  };
}

/** Polls `check` after every turn of the event loop until it holds. */
async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(1);
  }
}

describe('LeaseTracker', () => {
  it('queries at once, then every interval; a burst of refreshes costs at most one extra query', async () => {
    const INTERVAL = 200;
    const q = fakeQuery(20);
    const got: string[] = [];
    const lt = new LeaseTracker(q.query, INTERVAL, { onDeadline: (id) => got.push(id), onError: () => assert.fail('no error') });
    lt.track('7');
    assert.equal(q.calls.length, 1, 'the first query starts at once');
    for (let i = 0; i < 100; i++) lt.refreshNow();
    // Both answers in: the in-flight query and the single one the burst asked for.
    await until('two answers', () => got.length === 2);
    assert.equal(q.calls.length, 2, 'the in-flight query plus one for the whole burst');
    // Then the periodic ones, each no sooner than the interval less the slack that lets it
    // share a wake-up (a quarter of this interval) after the previous answer (timers never
    // fire early; 1 ms for their rounding), and on its own no later than the interval. No
    // upper bound asserted: lateness is load.
    await until('two periodic queries', () => q.calls.length >= 4);
    const earliest = INTERVAL - Math.min(LEASE_QUERY_SLACK_MS, INTERVAL / 4);
    for (let i = 2; i < 4; i++) {
      const gap = q.startedAt[i]! - q.startedAt[i - 1]!;
      assert.ok(gap >= earliest + 20 - 1, `query ${i + 1} came ${gap.toFixed(1)} ms after the one before (interval ${INTERVAL} ms, slack ${INTERVAL - earliest} ms, after a 20 ms answer)`);
    }
    lt.stop();
    const n = q.calls.length;
    await sleep(1.5 * INTERVAL + 20); // an absence window: the next periodic query would be due
    assert.equal(q.calls.length, n, 'nothing after stop()');
    assert.ok(got.every((id) => id === '7'));
  });

  it('drops results for a lease no longer tracked and stops on error', async () => {
    const q = fakeQuery(50);
    const got: string[] = [];
    const errors: unknown[] = [];
    const lt = new LeaseTracker(q.query, 10_000, { onDeadline: (id) => got.push(id), onError: (e) => errors.push(e) });
    lt.track('1');
    lt.track('2'); // while '1' is in flight
    await until('both queries answered', () => q.calls.length === 2 && q.running === 0);
    assert.deepEqual(q.calls, ['1', '2']);
    assert.deepEqual(got, ['2'], 'the answer about lease 1 is dropped');
    q.failNext(new Error('boom'));
    lt.refreshNow();
    await until('the failed query reported', () => errors.length === 1 && q.running === 0);
    assert.equal(q.calls.length, 3);
    lt.refreshNow(); // stopped by the error: nothing tracked
    assert.equal(q.calls.length, 3, 'no query after the error');
    lt.track(NO_LEASE);
    assert.equal(q.calls.length, 3, 'no query for a key without lease');
  });
});

describe('describeEtcdError', () => {
  const ctx = { endpoints: ['https://192.0.2.1:2379'], user: 'vip', key: '/k' };
  const sys = (message: string, code: string) => Object.assign(new Error(message), { code });

  it('socket errors are outages, worded as Node words them, with the endpoint they came from', () => {
    const e = describeEtcdError(tagEndpoint(sys('connect ECONNREFUSED 192.0.2.1:2379', 'ECONNREFUSED'), 'https://192.0.2.1:2379'), ctx);
    assert.equal(e.reason, 'unavailable');
    assert.equal(e.message, 'etcd unreachable at https://192.0.2.1:2379: connect ECONNREFUSED 192.0.2.1:2379');
    assert.equal(describeEtcdError(sys('socket hang up', 'ECONNRESET'), ctx).reason, 'unavailable');
    assert.equal(describeEtcdError(new EtcdDeadlineError(3000), ctx).reason, 'timeout');
  });

  it('names TLS verification failures and auth failures', () => {
    const tls = describeEtcdError(sys('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN'), ctx);
    assert.equal(tls.reason, 'tls');
    assert.match(tls.message, /^certificate verify failed for https:\/\/192\.0\.2\.1:2379: self-signed certificate in certificate chain/);
    const auth = describeEtcdError(gatewayError({ error: 'etcdserver: authentication failed, invalid user ID or password', message: 'etcdserver: authentication failed, invalid user ID or password', code: 3 }, 400), ctx);
    assert.equal(auth.reason, 'auth');
    assert.match(auth.message, /user "vip"/);
  });

  it('maps the gateway\'s gRPC codes as etcd3 mapped them', () => {
    const unary = (message: string, code: number, status: number) => describeEtcdError(gatewayError({ error: message, message, code }, status), ctx);
    assert.equal(unary('etcdserver: invalid auth token', 16, 401).reason, 'auth-token');
    assert.equal(unary('etcdserver: permission denied', 7, 403).reason, 'permission');
    assert.equal(unary('etcdserver: no leader', 14, 503).reason, 'no-leader');
    assert.equal(unary('etcdserver: request timed out', 14, 503).reason, 'timeout');
    assert.equal(unary('context deadline exceeded', 4, 504).reason, 'timeout');
    assert.equal(unary('etcdserver: too many requests', 14, 503).reason, 'unavailable');
    assert.equal(unary('etcdserver: mvcc: required revision has been compacted', 11, 400).reason, 'other');
    // The streaming shape of the same error.
    assert.equal(describeEtcdError(gatewayError({ error: { grpc_code: 14, http_code: 503, message: 'etcdserver: no leader', http_status: 'Service Unavailable' } }), ctx).reason, 'no-leader');
  });
});

describe('leaseDeadline', () => {
  it('counts the remaining TTL from when the question was sent', () => {
    assert.equal(leaseDeadline(5000, 7, 10), 12_000);
    assert.equal(leaseDeadline(5000, 10, 10), 15_000);
  });
  it('reads an expired or revoked lease (-1) as expiring now', () => {
    assert.equal(leaseDeadline(5000, -1, 10), 5000);
    assert.equal(leaseDeadline(5000, 0, 10), 5000);
  });
  it("reads a demoted lessor's \"forever\" (math.MaxInt64 ns) as expiring now, never as a deadline in 292 years", () => {
    // Seen on the Patroni bed: the etcd member that had been raft leader, cut off from its peers.
    assert.equal(leaseDeadline(5000, 9223372036, 10), 5000);
    assert.equal(leaseDeadline(5000, 11, 10), 5000);
    assert.equal(leaseDeadline(5000, Number.NaN, 10), 5000);
  });
});
