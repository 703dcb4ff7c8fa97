// retryTransient: transient kernel errors are retried retry-num times retry-after apart;
// permanent ones are thrown at once.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { retryTransient } from '../../src/net/retry.js';
import { NetlinkError } from '../../src/net/errors.js';
import { silentLogger } from '../../src/log.js';

const failing = (code: string, errno: number, times: number): { calls: number[]; f: () => string } => {
  const calls: number[] = [];
  return {
    calls,
    f: () => {
      calls.push(performance.now());
      if (calls.length <= times) throw new NetlinkError('test op', errno, code);
      return 'done';
    },
  };
};

describe('net/retry', () => {
  it('retries EBUSY until it succeeds, retry-after apart', async () => {
    const { calls, f } = failing('EBUSY', 16, 2);
    assert.equal(await retryTransient('op', { retryNum: 3, retryAfter: 40 }, silentLogger(), f), 'done');
    assert.equal(calls.length, 3);
    for (let i = 1; i < calls.length; i++) assert.ok(calls[i]! - calls[i - 1]! >= 35, 'spaced by retry-after');
  });

  it('gives up after retry-num retries with the last error', async () => {
    const { calls, f } = failing('ENOBUFS', 105, 10);
    await assert.rejects(retryTransient('op', { retryNum: 2, retryAfter: 1 }, silentLogger(), f), (e: unknown) => e instanceof NetlinkError && e.code === 'ENOBUFS');
    assert.equal(calls.length, 3);
  });

  it('throws a permanent error at once', async () => {
    for (const [code, errno] of [['EPERM', 1], ['EINVAL', 22], ['ENODEV', 19]] as const) {
      const { calls, f } = failing(code, errno, 10);
      await assert.rejects(retryTransient('op', { retryNum: 5, retryAfter: 1 }, silentLogger(), f), (e: unknown) => e instanceof NetlinkError && e.code === code);
      assert.equal(calls.length, 1, code);
    }
  });
});
