// One HTTP exchange with a Hetzner API: Node's built-in fetch, a timeout on the injectable clock
// (so tests can let a stand-in hang and advance fake time), the whole body read inside the
// timeout, and failures turned into typed errors whose messages carry no request headers.
import { type Clock } from './hetzner-clock.js';
import { HetznerNetworkError, HetznerTimeoutError } from './hetzner-errors.js';

/** The subset of fetch the managers use; injectable for tests and for the daemon's own agent. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export interface HttpExchange {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
  readonly timeoutMs: number;
  /** What this is, for messages: "GET /failover/198.51.100.10". Never contains secrets. */
  readonly what: string;
  /** Aborts the exchange early (the manager is closing); reported as a network error. */
  readonly signal?: AbortSignal;
}

export interface HttpReply {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
}

export async function exchange(fetchImpl: FetchLike, clock: Clock, req: HttpExchange): Promise<HttpReply> {
  const ac = new AbortController();
  let timedOut = false;
  const timer = clock.setTimeout(() => {
    timedOut = true;
    ac.abort();
  }, req.timeoutMs);
  const onOuterAbort = (): void => ac.abort();
  req.signal?.addEventListener('abort', onOuterAbort, { once: true });
  if (req.signal?.aborted) ac.abort();
  try {
    const res = await fetchImpl(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal: ac.signal,
      redirect: 'error',
    });
    const body = await res.text();
    return { status: res.status, headers: res.headers, body };
  } catch (err) {
    if (timedOut) {
      throw new HetznerTimeoutError(`${req.what}: no reply within ${req.timeoutMs} ms`, { cause: err });
    }
    if (ac.signal.aborted) throw new HetznerNetworkError(`${req.what}: abandoned (shutting down)`, { cause: err });
    throw new HetznerNetworkError(`${req.what}: ${describeNetworkError(err)}`, { cause: err });
  } finally {
    clock.clearTimeout(timer);
    req.signal?.removeEventListener('abort', onOuterAbort);
  }
}

/** "ECONNREFUSED 127.0.0.1:443" rather than undici's bare "fetch failed". */
function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  return err instanceof Error ? err.message : String(err);
}

/** Parses JSON without throwing: undefined when the text is not JSON. */
export function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
