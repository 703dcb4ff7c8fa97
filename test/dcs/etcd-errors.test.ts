// How a TLS client meeting a plain (non-TLS) server is reported. A plain etcd closes the
// connection after our ClientHello either with a FIN (Node: "disconnected before secure TLS
// connection was established") or, when bytes of ours are still unread, with a RST (Node: only
// "read ECONNRESET"); both must read as the TLS mistake they are ("for a plain etcd write
// http://"), never as an outage. Stand-in servers force each close deterministically; then a
// real plain etcd is asked over https:// many times, as diagnose does.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { buildEtcdClient } from '../../src/dcs/etcd/client.js';
import { describeEtcdError, type EtcdSourceError } from '../../src/dcs/etcd/errors.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';

/** A TCP server that closes every connection when the client's first bytes arrive: `reset` with a RST, `end` with a FIN. */
async function closingServer(how: 'reset' | 'end'): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
    s.once('data', () => (how === 'reset' ? s.resetAndDestroy() : s.end()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0, sockets };
}

/** One read through a fresh client, as the daemon and diagnose make it; the error it fails with, described. */
async function readError(endpoint: string): Promise<EtcdSourceError> {
  const built = buildEtcdClient({ endpoints: [endpoint] });
  try {
    await built.gateway.range({ key: Buffer.from('/k') });
  } catch (e) {
    return describeEtcdError(e, { endpoints: [endpoint], key: '/k' });
  } finally {
    built.liveness.stop();
    built.gateway.close();
  }
  throw new Error(`a read from ${endpoint} succeeded`);
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const plainHint = (endpoint: string) => new RegExp(`^TLS handshake with ${esc(endpoint)} failed: the server closed the connection or does not speak TLS \\(.+\\); for a plain etcd write http:// \\(an endpoint without a scheme uses TLS, as in the original\\)$`);

describe('etcd errors: TLS spoken to a plain server', () => {
  const servers: Server[] = [];
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    for (const s of servers) s.close();
    await etcd?.dispose();
  });

  it('a reset before the handshake completed reads as TLS (not "unavailable: read ECONNRESET")', async () => {
    const { server, port } = await closingServer('reset');
    servers.push(server);
    const endpoint = `https://127.0.0.1:${port}`;
    const err = await readError(endpoint);
    assert.equal(err.reason, 'tls', err.message);
    assert.match(err.message, plainHint(endpoint));
    assert.match(err.message, /reset before secure TLS connection was established \(read ECONNRESET\)/, 'the cause stays visible');
  });

  it('a close (FIN) before the handshake completed reads as TLS too', async () => {
    const { server, port } = await closingServer('end');
    servers.push(server);
    const endpoint = `https://127.0.0.1:${port}`;
    const err = await readError(endpoint);
    assert.equal(err.reason, 'tls', err.message);
    assert.match(err.message, plainHint(endpoint));
  });

  it('a reset on an http:// endpoint stays an outage (nothing about TLS)', async () => {
    const { server, port } = await closingServer('reset');
    servers.push(server);
    const endpoint = `http://127.0.0.1:${port}`;
    const err = await readError(endpoint);
    assert.equal(err.reason, 'unavailable', err.message);
    assert.match(err.message, /ECONNRESET/);
  });

  it('a real plain etcd asked over https:// is a TLS failure every time (20 fresh clients)', async (t) => {
    const endpoint = etcd.clientUrl.replace('http://', 'https://');
    const details = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const err = await readError(endpoint);
      assert.equal(err.reason, 'tls', `attempt ${i + 1}: ${err.message}`);
      assert.match(err.message, plainHint(endpoint));
      const detail = /does not speak TLS \((.+)\); for a plain/.exec(err.message)![1]!;
      details.set(detail, (details.get(detail) ?? 0) + 1);
    }
    t.diagnostic(`causes seen: ${JSON.stringify(Object.fromEntries(details))}`);
  });
});
