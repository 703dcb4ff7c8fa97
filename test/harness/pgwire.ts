// A tiny PostgreSQL client (frontend/backend protocol 3.0, simple query, trust authentication
// only) for the Patroni test bed: one TCP connection per call, so every write through the VIP
// lands on whichever machine holds the VIP at that moment, the way a reconnecting application's
// would. No dependency (the npm `pg` package is not installed); a few milliseconds per call,
// against ~30 ms for spawning `psql` through `ip netns exec`.
//
// Sockets belong to the network namespace the calling thread is in when they are opened: call
// it after enterNetns(client) to reach the LAN from the client's namespace.
import { connect, type Socket } from 'node:net';

export interface PgQueryOptions {
  host: string;
  port?: number;
  user?: string;
  database?: string;
  /** Connect + query deadline, ms. */
  timeoutMs?: number;
  /**
   * Deadline for the TCP handshake alone, ms (default: timeoutMs). A SYN sent to a VIP that
   * just left a machine is dropped and TCP retransmits it only after 1 s; a short connect
   * deadline lets a writer retry with a fresh SYN as soon as the VIP is announced elsewhere.
   */
  connectTimeoutMs?: number;
}

export interface PgResult {
  columns: string[];
  /** Text values (null for SQL NULL). */
  rows: Array<Array<string | null>>;
  command: string;
}

/** An ErrorResponse from the server, or a connection failure (code = errno name). */
export class PgError extends Error {
  constructor(message: string, readonly code: string, readonly severity?: string) {
    super(message);
    this.name = 'PgError';
  }
}

function startupMessage(user: string, database: string): Buffer {
  const params = Buffer.from(`user\0${user}\0database\0${database}\0application_name\0vmt-writer\0\0`, 'utf8');
  const b = Buffer.alloc(8 + params.length);
  b.writeInt32BE(b.length, 0);
  b.writeInt32BE(196608, 4); // protocol 3.0
  params.copy(b, 8);
  return b;
}

function message(type: string, body: Buffer): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b.write(type, 0, 'ascii');
  b.writeInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
}

function parseError(body: Buffer): PgError {
  const fields: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const t = String.fromCharCode(body[i]!);
    const end = body.indexOf(0, i + 1);
    fields[t] = body.subarray(i + 1, end).toString('utf8');
    i = end + 1;
  }
  return new PgError(fields.M ?? 'unknown server error', fields.C ?? 'XX000', fields.S);
}

/** Runs one statement (simple query protocol) on a fresh connection and closes it. */
export function pgQuery(sql: string, opts: PgQueryOptions): Promise<PgResult> {
  const { host, port = 5432, user = 'postgres', database = 'postgres', timeoutMs = 2000, connectTimeoutMs } = opts;
  return new Promise((resolve, reject) => {
    let sock: Socket;
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    let error: PgError | null = null;
    const result: PgResult = { columns: [], rows: [], command: '' };
    let queried = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(connectTimer);
      if (!sock.destroyed) {
        try { sock.end(message('X', Buffer.alloc(0))); } catch { /* closing anyway */ }
        sock.destroy();
      }
      if (err) reject(err);
      else resolve(result);
    };
    const timer = setTimeout(() => finish(new PgError(`timed out after ${timeoutMs} ms talking to ${host}:${port}`, 'ETIMEDOUT')), timeoutMs);
    sock = connect({ host, port });
    sock.setNoDelay(true);
    const connectTimer = connectTimeoutMs === undefined ? undefined
      : setTimeout(() => finish(new PgError(`no TCP connection to ${host}:${port} within ${connectTimeoutMs} ms`, 'ETIMEDOUT')), connectTimeoutMs);
    sock.on('connect', () => {
      clearTimeout(connectTimer);
      sock.write(startupMessage(user, database));
    });
    sock.on('error', (e: NodeJS.ErrnoException) => finish(new PgError(`${host}:${port}: ${e.message}`, e.code ?? 'ECONN')));
    sock.on('close', () => finish(new PgError(`${host}:${port}: connection closed by the server`, 'ECONNRESET')));
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 5) {
        const type = String.fromCharCode(buf[0]!);
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) break;
        const body = buf.subarray(5, 1 + len);
        buf = buf.subarray(1 + len);
        switch (type) {
          case 'R': {
            const code = body.readInt32BE(0);
            if (code !== 0) return finish(new PgError(`the server asks for authentication method ${code}; this client speaks trust only`, '28000'));
            break;
          }
          case 'E':
            error = parseError(body);
            // Before the query (startup): fatal, the server closes the connection.
            if (!queried) return finish(error);
            break;
          case 'T': {
            const n = body.readInt16BE(0);
            let i = 2;
            for (let f = 0; f < n; f++) {
              const end = body.indexOf(0, i);
              result.columns.push(body.subarray(i, end).toString('utf8'));
              i = end + 1 + 18;
            }
            break;
          }
          case 'D': {
            const n = body.readInt16BE(0);
            let i = 2;
            const row: Array<string | null> = [];
            for (let f = 0; f < n; f++) {
              const l = body.readInt32BE(i);
              i += 4;
              if (l < 0) row.push(null);
              else {
                row.push(body.subarray(i, i + l).toString('utf8'));
                i += l;
              }
            }
            result.rows.push(row);
            break;
          }
          case 'C':
            result.command = body.subarray(0, body.length - 1).toString('utf8');
            break;
          case 'Z':
            if (!queried) {
              queried = true;
              sock.write(message('Q', Buffer.from(`${sql}\0`, 'utf8')));
            } else {
              return finish(error);
            }
            break;
          default: // S (parameter status), K (key data), N (notice), I (empty query): nothing to do
            break;
        }
      }
    });
  });
}
