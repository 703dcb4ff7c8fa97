// A TCP proxy on loopback between the code under test and etcd, so a test can take etcd away
// from one client only (connections reset, new ones refused) while the test's own admin client
// keeps writing to etcd directly. Used to change and compact history during a client's outage.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface EtcdProxy {
  /** http://<host>:<port> */
  readonly url: string;
  /** Resets every proxied connection and every new one until restore(). */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** `host`: where the proxy listens (default loopback; a LAN address for daemons in namespaces). */
export async function startEtcdProxy(target: string, host = '127.0.0.1'): Promise<EtcdProxy> {
  const t = new URL(target);
  const pairs = new Set<[Socket, Socket]>();
  let isCut = false;

  const server: Server = createServer((client) => {
    if (isCut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(Number(t.port), t.hostname);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;

  return {
    url: `${t.protocol}//${host}:${port}`,
    cut() {
      isCut = true;
      for (const [c, u] of pairs) {
        c.resetAndDestroy();
        u.destroy();
      }
      pairs.clear();
    },
    restore() {
      isCut = false;
    },
    close() {
      for (const [c, u] of pairs) {
        c.destroy();
        u.destroy();
      }
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
