// Typed errors of the Consul source. Each says what happened and what to do about it; they
// reach the log and the `unreachable` view's `error`.

/**
 * Consul answered 403: the token (consul-token, sent as X-Consul-Token) is unknown ("ACL not
 * found") or lacks key:read on the trigger key ("Permission denied..."). Not a network
 * problem, so it is logged once and retried slowly, never in a hot loop.
 */
export class ConsulAclError extends Error {
  constructor(readonly endpoint: string, readonly key: string, readonly consulMessage: string, readonly tokenSet: boolean) {
    const fix = tokenSet
      ? `check that consul-token is a valid token whose policy grants key:read on "${key}"`
      : `set consul-token to a token whose policy grants key:read on "${key}" (no token was sent)`;
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
