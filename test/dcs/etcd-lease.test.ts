// LeaseTracker pacing and the error descriptions, without etcd (the behaviour against a real
// etcd is covered in etcd-source.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EtcdAuthenticationFailedError, GRPCUnavailableError } from 'etcd3';
import { LeaseTracker, NO_LEASE } from '../../src/dcs/etcd-lease.js';
import { describeEtcdError } from '../../src/dcs/etcd-errors.js';
import { sleep } from './etcd-views.js';

function fakeQuery(delayMs: number) {
  const calls: string[] = [];
  let fail: Error | null = null;
  return {
    calls,
    failNext(e: Error) { fail = e; },
    query: async (id: string) => {
      calls.push(id);
      await sleep(delayMs);
      if (fail) {
        const e = fail;
        fail = null;
        throw e;
      }
      return 1000;
    },
  };
}

describe('LeaseTracker', () => {
  it('queries at once, then every interval; a burst of refreshes costs at most one extra query', async () => {
    const q = fakeQuery(20);
    const got: string[] = [];
    const lt = new LeaseTracker(q.query, 200, { onDeadline: (id) => got.push(id), onError: () => assert.fail('no error') });
    lt.track('7');
    for (let i = 0; i < 100; i++) lt.refreshNow();
    await sleep(60);
    assert.equal(q.calls.length, 2, 'the in-flight query plus one for the whole burst');
    await sleep(450);
    assert.ok(q.calls.length >= 3 && q.calls.length <= 5, `periodic queries (${q.calls.length})`);
    lt.stop();
    const n = q.calls.length;
    await sleep(300);
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
    await sleep(120);
    assert.deepEqual(got, ['2'], 'the answer about lease 1 is dropped');
    q.failNext(new Error('boom'));
    lt.refreshNow();
    await sleep(120);
    assert.equal(errors.length, 1);
    lt.refreshNow(); // stopped by the error: nothing tracked
    await sleep(80);
    assert.equal(q.calls.length, 3);
    lt.track(NO_LEASE);
    assert.equal(q.calls.length, 3, 'no query for a key without lease');
  });
});

describe('describeEtcdError', () => {
  const ctx = { endpoints: ['https://192.0.2.1:2379'], user: 'vip', key: '/k' };

  it('strips grpc-js noise from connection errors', () => {
    const e = describeEtcdError(new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 192.0.2.1:2379 (2026-01-01T00:00:00.000Z). Resolution note: '), ctx);
    assert.equal(e.reason, 'unavailable');
    assert.equal(e.message, 'etcd unreachable at https://192.0.2.1:2379: connect ECONNREFUSED 192.0.2.1:2379');
  });

  it('names TLS verification failures and auth failures', () => {
    const tls = describeEtcdError(new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: Error: self-signed certificate in certificate chain. Resolution note:  undefined'), ctx);
    assert.equal(tls.reason, 'tls');
    assert.match(tls.message, /^certificate verify failed for https:\/\/192\.0\.2\.1:2379: self-signed certificate in certificate chain/);
    const auth = describeEtcdError(new EtcdAuthenticationFailedError('etcdserver: authentication failed, invalid user ID or password'), ctx);
    assert.equal(auth.reason, 'auth');
    assert.match(auth.message, /user "vip"/);
  });
});
