// The silent-peer watch of etcd connections (src/dcs/etcd/tcp.ts): every connection the etcd
// client opens, plain and TLS, gets 1 s kernel keepalive probes and is tracked; TCP_INFO reads
// what the kernel knows. (Detection itself, against a real partition: etcd-silent-partition.test.ts.)
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { buildEtcdClient } from '../../src/dcs/etcd/client.js';
import { KEEPALIVE_COUNT, KEEPALIVE_PROBE_S, silentForMs } from '../../src/dcs/etcd/tcp.js';
import { getsockoptInt } from '../../src/net/libc.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { createPki, type TestPki } from '../harness/tls.js';

const SOL_SOCKET = 1;
const SO_KEEPALIVE = 9;
const IPPROTO_TCP = 6;
const TCP_KEEPIDLE = 4;
const TCP_KEEPINTVL = 5;
const TCP_KEEPCNT = 6;

function assertTuned(fd: number): void {
  assert.equal(getsockoptInt(fd, SOL_SOCKET, SO_KEEPALIVE), 1, 'SO_KEEPALIVE on');
  assert.equal(getsockoptInt(fd, IPPROTO_TCP, TCP_KEEPIDLE), KEEPALIVE_PROBE_S, 'first probe after 1 s idle');
  assert.equal(getsockoptInt(fd, IPPROTO_TCP, TCP_KEEPINTVL), KEEPALIVE_PROBE_S, 'then one a second');
  assert.equal(getsockoptInt(fd, IPPROTO_TCP, TCP_KEEPCNT), KEEPALIVE_COUNT);
}

describe('etcd connections: TCP keepalive and TCP_INFO', () => {
  it('silentForMs: ms since the peer was last heard on an established socket; null otherwise', async () => {
    const srv = net.createServer((s) => s.on('data', (d) => s.write(d)));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const sock = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    try {
      await new Promise<void>((r) => sock.once('connect', () => r()));
      const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
      sock.write('x');
      await new Promise<void>((r) => sock.once('data', () => r()));
      const silent = silentForMs(fd);
      assert.ok(silent !== null && silent >= 0 && silent < 1000, `just heard from the peer (${silent} ms)`);
      assert.equal(silentForMs(-1), null, 'not a socket');
    } finally {
      sock.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  describe('against etcd', () => {
    let plain: EtcdServer;
    let tls: EtcdServer;
    let pki: TestPki;
    before(async () => {
      pki = createPki(['127.0.0.1', 'localhost']);
      [plain, tls] = await Promise.all([startEtcd(), startEtcd({ tls: pki })]);
    });
    after(async () => {
      await Promise.all([plain?.dispose(), tls?.dispose()]);
      pki?.dispose();
    });

    for (const kind of ['plain', 'TLS'] as const) {
      it(`${kind}: the connection a call opens is tuned and tracked until the client closes`, async () => {
        const server = kind === 'plain' ? plain : tls;
        const { gateway, liveness } = buildEtcdClient({ endpoints: server.endpoints, ...(kind === 'TLS' ? { caFile: pki.ca } : {}) });
        try {
          assert.deepEqual(liveness.connections(), [], 'nothing dialled before the first call');
          await gateway.range({ key: Buffer.from('/service/x/leader') });
          const conns = liveness.connections();
          assert.equal(conns.length, 1, `one connection: ${JSON.stringify(conns)}`);
          assert.equal(conns[0]!.target, new URL(server.endpoints[0]!).host);
          assertTuned(conns[0]!.fd);
        } finally {
          liveness.stop();
          gateway.close();
        }
        // The socket's 'close' comes on a later tick: wait for it (bounded), then check.
        for (let i = 0; i < 200 && liveness.connections().length > 0; i++) await new Promise<void>((r) => setImmediate(r));
        assert.deepEqual(liveness.connections(), [], 'forgotten once closed');
      });
    }
  });
});
