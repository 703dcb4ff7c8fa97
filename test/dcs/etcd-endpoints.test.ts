// Endpoint choice (stick to the member that answered, avoid one that failed while another is
// usable, never refuse every endpoint), without etcd.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GRPCUnavailableError } from 'etcd3';
import { ENDPOINT_AVOID_MS, EndpointHealth, endpointOf } from '../../src/dcs/etcd/endpoints.js';

const [A, B, C] = ['http://192.0.2.1:2379', 'http://192.0.2.2:2379', 'http://192.0.2.3:2379'] as const;

describe('EndpointHealth', () => {
  it('allows every endpoint at first, then sticks to the one that answered', () => {
    const h = new EndpointHealth([A, B, C], () => 0);
    assert.deepEqual([A, B, C].map((e) => h.allows(e)), [true, true, true]);
    h.succeeded(B);
    assert.equal(h.current, B);
    assert.deepEqual([A, B, C].map((e) => h.allows(e)), [false, true, false]);
  });

  it('avoids a failed endpoint while another is usable, for ENDPOINT_AVOID_MS', () => {
    let now = 0;
    const h = new EndpointHealth([A, B, C], () => now);
    h.succeeded(A);
    h.failed(A);
    assert.equal(h.current, undefined);
    assert.deepEqual([A, B, C].map((e) => h.allows(e)), [false, true, true]);
    now = ENDPOINT_AVOID_MS + 1;
    assert.equal(h.allows(A), true, 'usable again after the avoid period');
  });

  it('never refuses all endpoints: a lone or all-failed set is always tried', () => {
    const one = new EndpointHealth([A], () => 0);
    one.failed(A);
    assert.equal(one.allows(A), true, 'a single endpoint is retried whenever the source asks');
    const all = new EndpointHealth([A, B], () => 0);
    all.failed(A);
    all.failed(B);
    assert.deepEqual([all.allows(A), all.allows(B)], [true, true]);
  });

  it('a policy tags errors with the endpoint and records success and connection failures', async () => {
    const h = new EndpointHealth([A, B], () => 0);
    const pa = h.policyFor(A) as unknown as { execute<T>(fn: () => Promise<T>): Promise<T> };
    assert.equal(await pa.execute(async () => 42), 42);
    assert.equal(h.current, A);
    const err = await pa.execute(async () => { throw new GRPCUnavailableError('14 UNAVAILABLE: boom'); }).catch((e: unknown) => e);
    assert.equal(endpointOf(err), A);
    assert.equal(h.allows(A), false, 'A avoided after a connection failure while B is usable');
    await assert.rejects(pa.execute(async () => 1), /avoided/);
  });
});
