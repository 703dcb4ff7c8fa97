// One HTTP exchange with a Hetzner API: Node's built-in fetch, a timeout on the injectable clock
// (so tests can let a stand-in hang and advance fake time), the whole body read inside the
// timeout, and failures turned into typed errors whose messages carry no request headers.
import { type Clock } from './clock.js';
import { HetznerNetworkError, HetznerTimeoutError } from './errors.js';

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
  /** Where the exchange is listed while it waits for its reply. */
  readonly inFlight?: InFlight;
}

/**
 * The requests sent and not answered yet. A Robot switch keeps its POST or DELETE open for
 * 40-60 s; at the shutdown deadline the daemon names what it leaves unanswered.
 */
export class InFlight {
  #seq = 0;
  readonly #open = new Map<number, { what: string; since: number }>();

  constructor(private readonly clock: Clock) {}

  /** Lists `what` until the returned function is called. */
  begin(what: string): () => void {
    const id = ++this.#seq;
    this.#open.set(id, { what, since: this.clock.now() });
    return () => this.#open.delete(id);
  }

  list(): { what: string; ageMs: number }[] {
    const now = this.clock.now();
    return [...this.#open.values()].map((r) => ({ what: r.what, ageMs: Math.round(now - r.since) }));
  }
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
  const done = req.inFlight?.begin(req.what);
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
    done?.();
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
