// Which etcd endpoint a call goes to, as etcd's own Go client chooses: stick to one member (the
// one that last answered), so the read, the watch that follows it and the lease queries all see
// the same member; leave a member that failed for a while, while another is usable; never
// refuse every endpoint (so a single endpoint is retried as soon as the source asks — no circuit
// breaker holding calls back after etcd returns). gateway.ts asks here before every attempt.
import { performance } from 'node:perf_hooks';

/**
 * How long an endpoint that failed for a connection reason (refused, reset, keepalive or
 * deadline timeout, no leader) is avoided while another one is usable. Long enough that a
 * powered-off member does not cost a connect timeout on every retry, short enough that a
 * member back from a restart takes load again soon.
 */
export const ENDPOINT_AVOID_MS = 10_000;

/** The property errors from a call carry: the endpoint the call went to. */
export const ENDPOINT = Symbol('etcd endpoint');

export function endpointOf(e: unknown): string | undefined {
  return e && typeof e === 'object' ? (e as { [ENDPOINT]?: string })[ENDPOINT] : undefined;
}

/** Tags `e` with the endpoint it came from (once: the first tag is the one that failed). */
export function tagEndpoint<E>(e: E, endpoint: string): E {
  if (e && typeof e === 'object' && !(ENDPOINT in e)) Object.defineProperty(e, ENDPOINT, { value: endpoint });
  return e;
}

export class EndpointHealth {
  private preferred: string | undefined;
  private readonly failedAt = new Map<string, number>();

  constructor(readonly endpoints: readonly string[], private readonly now: () => number = () => performance.now()) {}

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

  /**
   * The endpoints one call tries, in order: the member in use first, then the others from a
   * random starting point (as etcd3 shuffled them, so several daemons spread over the members),
   * each only if allowed at the moment it is tried (see allows()).
   */
  order(): string[] {
    const n = this.endpoints.length;
    const start = Math.floor(Math.random() * n);
    const rotated = Array.from({ length: n }, (_, i) => this.endpoints[(start + i) % n]!);
    const cur = this.preferred;
    return cur === undefined ? rotated : [cur, ...rotated.filter((e) => e !== cur)];
  }
}
