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
 * The leader check (a non-blocking ?consistent read of the key or prefix, see backend.ts) failed or did
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

/**
 * A recursive read of a Patroni cluster's keys (role VIPs) left keys out because the token may
 * not read them (X-Consul-Results-Filtered-By-ACLs). The member a role VIP belongs on is chosen
 * from all of the cluster's keys; choosing from part of them could put the VIP on another node
 * than every other vip-manager chooses, so the prefix counts as unreadable until it is fixed.
 */
export class ConsulAclFilteredError extends ConsulAclError {
  constructor(endpoint: string, prefix: string, tokenSet: boolean) {
    super(endpoint, prefix, 'Results-Filtered-By-ACLs', tokenSet);
    this.message = `Consul at ${endpoint} hides some keys under "${prefix}" from the token (X-Consul-Results-Filtered-By-ACLs): `
      + `the role VIPs need every key of the cluster; grant the token's policy key:read there (e.g. key_prefix "${prefix}" { policy = "read" })`;
    this.name = 'ConsulAclFilteredError';
  }
}
