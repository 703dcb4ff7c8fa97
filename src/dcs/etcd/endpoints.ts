// Which etcd endpoint a call goes to. etcd3 shuffles the endpoints for every call and asks a
// per-endpoint policy to run it; a policy that declines makes etcd3 try the next endpoint.
// We use that hook for what etcd's own Go client does: stick to one member (the one that last
// answered), so the read, the watch that follows it and the lease queries all see the same
// member; leave a member that failed for a while, while another is usable; never decline
// when no other endpoint is usable (so a single endpoint is retried as soon as the source
// asks — no circuit breaker holding calls back after etcd returns).
//
// etcd3 only ever calls `execute` on its policies (connection-pool.js), so the small objects
// below stand in for cockatiel policies without a dependency on cockatiel.
import { performance } from 'node:perf_hooks';
import { isRecoverableError, type IOptions } from 'etcd3';

/**
 * How long an endpoint that failed for a connection reason (refused, reset, keepalive or
 * deadline timeout, no leader) is avoided while another one is usable. Long enough that a
 * powered-off member does not cost a connect timeout on every retry, short enough that a
 * member back from a restart takes load again soon.
 */
export const ENDPOINT_AVOID_MS = 10_000;

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;
type GlobalPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type Fn<T> = (ctx: { signal: AbortSignal }) => PromiseLike<T> | T;

/** The property errors from a call carry: the endpoint the call went to. */
export const ENDPOINT = Symbol('etcd endpoint');

export function endpointOf(e: unknown): string | undefined {
  return e && typeof e === 'object' ? (e as { [ENDPOINT]?: string })[ENDPOINT] : undefined;
}

/** Thrown by a policy that declines an endpoint; etcd3 then tries the next one. */
class EndpointAvoided extends Error {
  constructor(endpoint: string) {
    super(`etcd endpoint ${endpoint} avoided after a recent failure`);
  }
}

export class EndpointHealth {
  private preferred: string | undefined;
  private readonly failedAt = new Map<string, number>();

  constructor(private readonly endpoints: readonly string[], private readonly now: () => number = () => performance.now()) {}

  /** The member calls stick to, if any. */
  get current(): string | undefined {
    return this.preferred;
  }

  private avoided(ep: string, now: number): boolean {
    const t = this.failedAt.get(ep);
    return t !== undefined && now - t < ENDPOINT_AVOID_MS;
  }

  allows(ep: string): boolean {
    const now = this.now();
    const usableOther = this.endpoints.some((o) => o !== ep && !this.avoided(o, now));
    if (this.avoided(ep, now)) return !usableOther;
    if (this.preferred !== undefined && this.preferred !== ep && !this.avoided(this.preferred, now)) return false;
    return true;
  }

  succeeded(ep: string): void {
    this.failedAt.delete(ep);
    this.preferred = ep;
  }

  failed(ep: string): void {
    this.failedAt.set(ep, this.now());
    if (this.preferred === ep) this.preferred = undefined;
  }

  /** The policy etcd3 runs every call to `ep` through. */
  policyFor(ep: string): HostPolicy {
    const policy = {
      execute: async <T>(fn: Fn<T>): Promise<T> => {
        if (!this.allows(ep)) throw new EndpointAvoided(ep);
        try {
          const result = await fn({ signal: new AbortController().signal });
          this.succeeded(ep);
          return result;
        } catch (e) {
          if (e instanceof Error && isRecoverableError(e)) this.failed(ep);
          if (e && typeof e === 'object' && !(ENDPOINT in e)) Object.defineProperty(e, ENDPOINT, { value: ep });
          throw e;
        }
      },
    };
    return policy as unknown as HostPolicy;
  }
}

/**
 * Across endpoints: a call that fails for a connection reason is tried at once on the next
 * usable endpoint (each run picks another one), so one dead member costs one attempt, not a
 * backoff period. Anything beyond that is the source's retry loop.
 */
export function failoverPolicy(endpointCount: number): GlobalPolicy {
  const policy = {
    async execute<T>(fn: Fn<T>): Promise<T> {
      let last: unknown;
      for (let i = 0; i < endpointCount; i++) {
        try {
          return await fn({ signal: new AbortController().signal });
        } catch (e) {
          last = e;
          if (!(e instanceof Error) || !isRecoverableError(e)) throw e;
        }
      }
      throw last;
    },
  };
  return policy as unknown as GlobalPolicy;
}
