// Retrying kernel calls that failed for a passing reason (EBUSY, EAGAIN, ENOBUFS, EINTR):
// retry-num more attempts, retry-after ms apart. Anything else (EPERM, EINVAL, ENODEV...)
// would fail the same way again, so it is thrown at once.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { NetError } from './errors.js';

export interface RetryPolicy {
  /** Extra attempts after the first; negative counts as 0. */
  retryNum: number;
  /** Milliseconds between attempts. */
  retryAfter: number;
}

export async function retryTransient<T>(what: string, policy: RetryPolicy, log: Logger, f: () => T): Promise<T> {
  const extra = Math.max(0, Math.floor(policy.retryNum));
  for (let attempt = 0; ; attempt++) {
    try {
      return f();
    } catch (e) {
      if (!(e instanceof NetError) || !e.transient || attempt >= extra) throw e;
      log.debug({ what, code: e.code, attempt: attempt + 1, of: extra + 1, retryAfterMs: policy.retryAfter }, 'transient kernel error; retrying');
      await sleep(policy.retryAfter);
    }
  }
}
