// Endpoint choice (stick to the member that answered, avoid one that failed while another is
// usable, never refuse every endpoint), without etcd.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ENDPOINT_AVOID_MS, EndpointHealth, endpointOf, tagEndpoint } from '../../src/dcs/etcd/endpoints.js';

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

  it('a call tries the member in use first, then the others; an error is tagged with the first endpoint it came from', () => {
    const h = new EndpointHealth([A, B, C], () => 0);
    assert.deepEqual(new Set(h.order()), new Set([A, B, C]));
    h.succeeded(C);
    for (let i = 0; i < 10; i++) assert.equal(h.order()[0], C, 'the member in use comes first');
    const e = tagEndpoint(new Error('boom'), B);
    tagEndpoint(e, A);
    assert.equal(endpointOf(e), B);
  });
});
