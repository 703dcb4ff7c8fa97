// Typed errors of the Hetzner managers. Each says what to do about it in its message and how
// the manager treats it in `disposition`:
//   fatal     — retrying cannot help and may hurt (a 401 counts towards Robot's ten-minute
//               lockout): the manager stops talking to the API until it is restarted.
//   deferred  — the API named a moment before which asking again is pointless (rate limit,
//               failover switch under way, our own request budget): retry at `retryAt`.
//   transient — server errors, timeouts, malformed replies: retry with growing backoff.
// Messages never contain secrets: the HTTP layer never puts headers in them, and text taken
// from a reply is passed through maskSecrets() first.

export type Disposition = 'fatal' | 'deferred' | 'transient';

export abstract class HetznerError extends Error {
  abstract readonly disposition: Disposition;
  /** The API's error code (FAILOVER_LOCKED, rate_limit_exceeded, ...) when there was one. */
  readonly code: string | undefined;
  /** The HTTP status when there was a reply. */
  readonly status: number | undefined;
  /** For deferred errors: the clock.now() instant before which a retry is pointless. */
  readonly retryAt: number | undefined;

  constructor(message: string, opts: { code?: string; status?: number; retryAt?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = opts.code;
    this.status = opts.status;
    this.retryAt = opts.retryAt;
  }
}

/** Configuration or credentials file problem found before talking to any API. */
export class HetznerConfigError extends HetznerError {
  readonly disposition = 'fatal' as const;
}

/** Something this manager needs is not known yet (this server's IP or id): try again later. */
export class HetznerNotReadyError extends HetznerError {
  readonly disposition = 'transient' as const;
}

/** 401: wrong credentials or token. Never retried (Robot locks the client out after three). */
export class HetznerAuthError extends HetznerError {
  readonly disposition = 'fatal' as const;
}

/** The failover/floating IP or the target server does not exist in this account/project. */
export class HetznerNotFoundError extends HetznerError {
  readonly disposition = 'fatal' as const;
}

/** Any other refusal that repeats identically until the configuration changes (invalid input). */
export class HetznerRejectedError extends HetznerError {
  readonly disposition = 'fatal' as const;
}

/** The API's own rate limit was hit (Robot 403 RATE_LIMIT_EXCEEDED, Cloud 429). */
export class HetznerRateLimitError extends HetznerError {
  readonly disposition = 'deferred' as const;
}

/** Our own per-method request budget is used up; sending would exceed the documented limit. */
export class HetznerBudgetError extends HetznerError {
  readonly disposition = 'deferred' as const;
}

/** A switch or another action is under way on the IP (Robot FAILOVER_LOCKED, Cloud locked). */
export class HetznerLockedError extends HetznerError {
  readonly disposition = 'deferred' as const;
}

/** 5xx (failover failed, not complete, maintenance, unavailable) and Cloud conflict. */
export class HetznerServerError extends HetznerError {
  readonly disposition = 'transient' as const;
}

/** Cloud 403 forbidden / token_readonly: retried, slowly, in case the token's rights change. */
export class HetznerForbiddenError extends HetznerError {
  readonly disposition = 'transient' as const;
}

/** No reply within the request's timeout. */
export class HetznerTimeoutError extends HetznerError {
  readonly disposition = 'transient' as const;
}

/** Connection refused, reset, DNS failure: the request did not get a reply. */
export class HetznerNetworkError extends HetznerError {
  readonly disposition = 'transient' as const;
}

/** A reply that is not the documented JSON shape (the Go original panics on these). */
export class HetznerResponseError extends HetznerError {
  readonly disposition = 'transient' as const;
}

/** A Cloud action finished with status "error". */
export class HetznerActionError extends HetznerError {
  readonly disposition = 'transient' as const;
}

/** Replaces every occurrence of each non-empty secret in `text` with *****. */
export function maskSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (s !== undefined && s.length > 0) out = out.split(s).join('*****');
  }
  return out;
}

/** A short, masked excerpt of a reply body for an error message. */
export function excerpt(body: string, secrets: readonly (string | undefined)[], max = 200): string {
  const oneLine = body.replace(/\s+/g, ' ').trim();
  const cut = oneLine.length > max ? oneLine.slice(0, max) + '…' : oneLine;
  return JSON.stringify(maskSecrets(cut, secrets));
}

/** Anything else that went wrong (a local address call failed, a bug): retried with backoff. */
export class HetznerUnexpectedError extends HetznerError {
  readonly disposition = 'transient' as const;
}

export function asHetznerError(err: unknown): HetznerError {
  if (err instanceof HetznerError) return err;
  return new HetznerUnexpectedError(err instanceof Error ? err.message : String(err), { cause: err });
}
