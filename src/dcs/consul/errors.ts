// Typed errors of the Consul source. Each says what happened and what to do about it; they
// reach the log and the `unreachable` view's `error`.

/**
 * Consul answered 403: the token (consul-token, sent as X-Consul-Token) is unknown ("ACL not
 * found") or lacks key:read on the trigger key ("Permission denied..."). Not a network
 * problem, so it is logged once and retried slowly, never in a hot loop.
 */
export class ConsulAclError extends Error {
  constructor(readonly endpoint: string, readonly key: string, readonly consulMessage: string, readonly tokenSet: boolean) {
    const fix = !tokenSet
      ? `set consul-token to a token whose policy grants key:read on "${key}" (no token was sent)`
      : consulMessage.includes('ACL not found')
        ? `consul-token is not a token this Consul knows (deleted, expired, or from another cluster); set a valid token whose policy grants key:read on "${key}"`
        : `the token is valid but may not read "${key}"; grant its policy key:read there (e.g. key_prefix "${key}" { policy = "read" })`;
    super(`Consul at ${endpoint} refused to read "${key}" (403 ${consulMessage.trim() || 'Forbidden'}): ${fix}`);
    this.name = 'ConsulAclError';
  }

  /** "ACL not found" can be transient while a server catches up on replication. */
  get tokenNotFound(): boolean {
    return this.consulMessage.includes('ACL not found');
  }
}

/** Consul answered, but not with something we can use (unexpected status, body or headers). */
export class ConsulResponseError extends Error {
  constructor(readonly endpoint: string, readonly status: number, detail: string) {
    super(`unexpected answer from Consul at ${endpoint} (HTTP ${status}): ${detail}`);
    this.name = 'ConsulResponseError';
  }
}

/**
 * The leader check (a non-blocking ?consistent read of the key, see consul.ts) failed or did
 * not answer in time: this node cannot currently learn who the leader is.
 */
export class ConsulLeaderCheckError extends Error {
  constructor(readonly key: string, readonly timeoutMs: number, cause: Error) {
    const timedOut = /no answer within/.test(cause.message);
    super(`Consul leader check of "${key}" failed: ${cause.message}${timedOut
      ? ` (a consistent read must answer within ${timeoutMs} ms; an agent that cannot reach a cluster leader holds it instead of answering)` : ''}`, { cause });
    this.name = 'ConsulLeaderCheckError';
  }
}
