// A fake Patroni REST API for one node: GET /leader answers 200 (with a JSON body like
// Patroni's) while `leader` is true and 503 otherwise, like Patroni's real /leader endpoint.
// Listens on the given host (the test LAN's switch address), over HTTP or HTTPS. close() makes
// it unreachable (connection refused); listen() again reuses the same port.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface FakePatroniOptions {
  host: string;
  name: string;
  tls?: { key: Buffer; cert: Buffer };
}

export class FakePatroni {
  leader = false;
  /** Every request's path, in order. */
  readonly requests: string[] = [];
  private server: http.Server;
  private port = 0;

  private constructor(private readonly opts: FakePatroniOptions) {
    this.server = this.make();
  }

  static async start(opts: FakePatroniOptions): Promise<FakePatroni> {
    const p = new FakePatroni(opts);
    await p.listen();
    return p;
  }

  get url(): string {
    return `${this.opts.tls ? 'https' : 'http'}://${this.opts.host}:${this.port}`;
  }

  get listening(): boolean {
    return this.server.listening;
  }

  private make(): http.Server {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      this.requests.push(req.url ?? '');
      if (req.method !== 'GET' || req.url !== '/leader') {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
        return;
      }
      const status = this.leader ? 200 : 503;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ state: 'running', role: this.leader ? 'primary' : 'replica', patroni: { scope: 'test', name: this.opts.name } }));
    };
    const t = this.opts.tls;
    const server = t ? https.createServer({ key: t.key, cert: t.cert }, handler) : http.createServer(handler);
    server.keepAliveTimeout = 5_000;
    return server;
  }

  /** Listens (again, on the same port after close()). */
  async listen(): Promise<void> {
    if (this.server.listening) return;
    this.server = this.make();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, this.opts.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Stops listening and cuts every connection: the REST API is unreachable. */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}
