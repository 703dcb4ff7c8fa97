// Parses `http-listen` ("host:port", "[v6]:port") into what net.Server#listen takes.
export interface ListenAddress {
  host: string;
  port: number;
}

const MAX_PORT = 65535;

export class ListenAddressError extends Error {
  constructor(value: string, why: string) {
    super(`invalid http-listen "${value}": ${why} (expected host:port or [v6-address]:port)`);
    this.name = 'ListenAddressError';
  }
}

export function parseListenAddress(value: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(value);
  if (!m) throw new ListenAddressError(value, 'not in host:port form');
  const port = Number(m[3]);
  if (port > MAX_PORT) throw new ListenAddressError(value, `port ${port} is above ${MAX_PORT}`);
  return { host: (m[1] ?? m[2]) as string, port };
}

/** host:port again, bracketing IPv6 literals: for messages. */
export function formatListenAddress(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
