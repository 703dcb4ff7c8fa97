// Trust anchors as the Go original has them. With a PKI root → intermediate → leaves made by
// openssl here, a CA file holding only the intermediate, only the root, or both verifies the
// server (Go's x509 treats every certificate in the pool as an anchor; OpenSSL alone would refuse
// the intermediate-only file), against a real etcd (server TLS, and client-certificate auth) and
// a real HTTPS server (the Patroni REST source). A CA that did not issue the chain is refused with
// the clear error; hostnames and IPs are still verified; no SNI for IP endpoints and no runtime
// warning in this process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import https from 'node:https';
import { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { EtcdLeaderSource } from '../../src/dcs/etcd/source.js';
import { EtcdSourceError } from '../../src/dcs/etcd/errors.js';
import { buildEtcdClient } from '../../src/dcs/etcd/client.js';
import { FailoverHttpClient, type AllEndpointsFailedError, type EndpointError } from '../../src/dcs/http-client.js';
import { PatroniLeaderSource } from '../../src/dcs/patroni/rest-source.js';
import type { LeaderUnreachable, LeaderView } from '../../src/reconcile/ports.js';
import { clientSecureContext, DcsTlsConfigError, readTlsFiles, type TlsFiles } from '../../src/dcs/tls-trust.js';
import { silentLogger } from '../../src/log.js';
import { etcdctl, startEtcd, type EtcdServer } from '../harness/etcd.js';
import { createChainPki, type ChainPki } from '../harness/tls.js';
import { collectViews } from './consul-helpers.js';
import { isUnreachable, isValue, ViewLog } from './etcd-views.js';

// Every Node warning this process emits (the sources run in it). The harness's own etcd writes go
// through etcdctl, so nothing else here could emit one.
const warnings: string[] = [];
process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));

const KEY = '/service/tls/leader';
const CA_FILES = ['intermediateOnly', 'rootOnly', 'bundle'] as const;
const stops: Array<() => Promise<void>> = [];
let pki: ChainPki;

before(() => {
  pki = createChainPki(['127.0.0.1', 'localhost']);
});
after(async () => {
  await Promise.allSettled(stops.splice(0).map((s) => s()));
  pki?.dispose();
  assert.deepEqual(warnings, [], 'no Node runtime warning in any configuration');
});

function etcdSource(endpoint: string, tlsFiles: TlsFiles): ViewLog {
  const src = new EtcdLeaderSource({ endpoints: [endpoint], triggerKey: KEY, retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000, ...tlsFiles }, silentLogger());
  stops.push(() => src.close());
  const views = new ViewLog();
  src.start(views.onView);
  return views;
}

async function refusedByEtcd(views: ViewLog): Promise<EtcdSourceError> {
  const seen = await views.waitFor(isUnreachable, 5000, 'TLS refusal');
  const e = (seen.view as LeaderUnreachable).error;
  assert.ok(e instanceof EtcdSourceError);
  assert.equal(e.reason, 'tls');
  assert.equal(views.seen.filter((s) => s.view.kind === 'value').length, 0, 'never a value from an unverified server');
  return e;
}

for (const clientCertAuth of [false, true]) {
  describe(`etcd source, server TLS${clientCertAuth ? ' + client-certificate auth' : ''}`, () => {
    let etcd: EtcdServer;
    before(async () => {
      etcd = await startEtcd({ tls: pki, clientCertAuth });
      await etcdctl(['put', KEY, 'node-a'], { endpoints: etcd.clientUrl, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    });
    after(async () => { await etcd?.dispose(); });
    const client = () => (clientCertAuth ? { certFile: pki.clientCert, keyFile: pki.clientKey } : {});

    for (const which of CA_FILES) {
      test(`CA file with ${which}: verifies, reads and watches`, async () => {
        const views = etcdSource(etcd.clientUrl, { caFile: pki[which], ...client() });
        await views.waitFor(isValue('node-a'), 5000, `value with ${which}`);
      });
    }

    test('a CA that did not issue the chain (unrelated root, sibling intermediate) is refused: "certificate verify failed … (check etcd-ca-file)"', async () => {
      for (const caFile of [pki.wrongCa, pki.siblingIntermediate]) {
        const e = await refusedByEtcd(etcdSource(etcd.clientUrl, { caFile, ...client() }));
        assert.match(e.message, /^certificate verify failed for https:\/\/127\.0\.0\.1:\d+: .+ \(check etcd-ca-file\)$/);
      }
    });

    test('an endpoint without a scheme is dialled with TLS (as the original\'s etcd client does)', async () => {
      const views = etcdSource(etcd.clientUrl.replace('https://', ''), { caFile: pki.intermediateOnly, ...client() });
      await views.waitFor(isValue('node-a'), 5000, 'value over a scheme-less endpoint');
    });
  });
}

test('etcd: user/password over TLS with the intermediate-only CA file (Authenticate goes over the same credentials)', async () => {
  const etcd = await startEtcd({ tls: pki, auth: { user: 'vip', password: 'vip-Secr3t-pw', prefix: '/service/' } });
  stops.push(() => etcd.dispose());
  await etcdctl(['put', KEY, 'node-b'], { endpoints: etcd.clientUrl, user: `root:${etcd.rootPassword!}`, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
  const views = new ViewLog();
  const src = new EtcdLeaderSource({ endpoints: [etcd.clientUrl], triggerKey: KEY, user: 'vip', password: 'vip-Secr3t-pw', caFile: pki.intermediateOnly, retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000 }, silentLogger());
  stops.push(() => src.close());
  src.start(views.onView);
  await views.waitFor(isValue('node-b'), 5000, 'value with user/password over TLS');
});

test('etcd: a plain etcd behind an https:// endpoint is "does not speak TLS", not a CA problem', async () => {
  const etcd = await startEtcd();
  stops.push(() => etcd.dispose());
  // Go's server may also just reset the connection (then "unreachable"); the handshake
  // failures it does report must say what is wrong.
  const views = etcdSource(etcd.clientUrl.replace('http://', 'https://'), { caFile: pki.intermediateOnly });
  const seen = await views.waitFor((v) => v.kind === 'unreachable' && (v.error as EtcdSourceError).reason === 'tls', 10_000, 'a TLS failure');
  const e = (seen.view as LeaderUnreachable).error;
  assert.equal(views.seen.filter((s) => s.view.kind === 'value').length, 0);
  assert.match(e.message, /^TLS handshake with https:\/\/127\.0\.0\.1:\d+ failed: the server closed the connection or does not speak TLS .*for a plain etcd write http:\/\//);
});

// ---- The Patroni REST source (the shared HTTPS client, also Consul's) ----

async function httpsServer(opts: https.ServerOptions): Promise<{ url: string; sni: Array<string | false | null> }> {
  const sni: Array<string | false | null> = [];
  const server = https.createServer(opts, (req, res) => {
    sni.push((req.socket as tls.TLSSocket).servername);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"role":"primary"}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  stops.push(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, sni };
}

function patroniSource(endpoint: string, tlsFiles: TlsFiles): ReturnType<typeof collectViews> {
  const src = new PatroniLeaderSource({ endpoints: [endpoint], triggerKey: '/leader', tls: tlsFiles, intervalMs: 200, retryAfterMs: 100, retryNum: 3, log: silentLogger() });
  stops.push(() => src.close());
  return collectViews(src);
}

/** A TLS refusal among an outage's failures (a handshake on a loaded machine may also time out first). */
const tlsFailure = (view: LeaderView): EndpointError | undefined =>
  view.kind === 'unreachable' ? (view as LeaderUnreachable & { error: AllEndpointsFailedError }).error.failures?.find((f) => f.kind === 'tls') : undefined;

async function refusedByPatroni(endpoint: string, tlsFiles: TlsFiles): Promise<EndpointError> {
  const v = patroniSource(endpoint, tlsFiles);
  const view = await v.waitFor((x) => tlsFailure(x) !== undefined, 15_000);
  assert.equal(v.views.filter((x) => x.kind === 'value').length, 0);
  return tlsFailure(view)!;
}

for (const clientCertAuth of [false, true]) {
  describe(`Patroni REST source over HTTPS${clientCertAuth ? ' with client-certificate auth' : ''}`, () => {
    let server: { url: string; sni: Array<string | false | null> };
    before(async () => {
      server = await httpsServer({
        cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey),
        ...(clientCertAuth ? { requestCert: true, rejectUnauthorized: true, ca: readFileSync(pki.ca) } : {}),
      });
    });
    const client = () => (clientCertAuth ? { certFile: pki.clientCert, keyFile: pki.clientKey } : {});

    for (const which of CA_FILES) {
      test(`CA file with ${which}: verifies and reads 200`, async () => {
        await patroniSource(server.url, { caFile: pki[which], ...client() }).waitFor(isValue('200'), 5000);
        assert.ok(server.sni.length > 0 && server.sni.every((n) => !n), 'no SNI for an IP endpoint');
      });
    }

    test('a CA that did not issue the chain is refused with the clear error', async () => {
      for (const caFile of [pki.wrongCa, pki.siblingIntermediate]) {
        const failure = await refusedByPatroni(server.url, { caFile, ...client() });
        assert.match(failure.message, /TLS verification failed: .*; is .* \(etcd-ca-file\) the CA that signed the server certificate\?$/);
      }
    });
  });
}

test('Patroni: like Go, a server that sends no intermediate verifies with the intermediate, not with the root alone', async () => {
  const server = await httpsServer({ cert: readFileSync(pki.serverLeaf), key: readFileSync(pki.serverKey) });
  await patroniSource(server.url, { caFile: pki.intermediateOnly }).waitFor(isValue('200'), 5000);
  await patroniSource(server.url, { caFile: pki.bundle }).waitFor(isValue('200'), 5000);
  await refusedByPatroni(server.url, { caFile: pki.rootOnly });
});

test('Patroni: the server certificate must name the endpoint (IP SANs checked)', async () => {
  const other = createChainPki(['192.0.2.1', 'db.example']);
  stops.push(async () => other.dispose());
  const server = await httpsServer({ cert: readFileSync(other.serverCert), key: readFileSync(other.serverKey) });
  const failure = await refusedByPatroni(server.url, { caFile: other.intermediateOnly });
  assert.equal(failure.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
});

test('Patroni: without a CA file the default CAs verify; with one, only its certificates do (as Go\'s RootCAs)', async () => {
  const server = await httpsServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) });
  // A child whose default CA store trusts the test root (NODE_EXTRA_CA_CERTS), asking once
  // without a CA file and once with an unrelated one.
  const client = new URL('../../src/dcs/http-client.js', import.meta.url).href;
  const log = new URL('../../src/log.js', import.meta.url).href;
  const ask = (caFile: string | undefined) => `(async () => {
    const { FailoverHttpClient } = await import(${JSON.stringify(client)});
    const { silentLogger } = await import(${JSON.stringify(log)});
    const c = new FailoverHttpClient({ endpoints: [${JSON.stringify(server.url)}], tls: { caFile: ${JSON.stringify(caFile)} }, connectTimeoutMs: 2000, log: silentLogger() });
    try { return String((await c.request({ path: '/leader', timeoutMs: 2000, maxBodyBytes: 10 })).status); }
    catch (e) { return e.failures[0].kind; } finally { c.close(); }
  })()`;
  const script = `Promise.all([${ask(undefined)}, ${ask(pki.wrongCa)}]).then((r) => console.log(r.join(' ')))`;
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: pki.ca }, timeout: 20_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout.trim())));
  });
  assert.equal(out, '200 tls', 'default CAs without a CA file; the CA file alone with one');
});

test('Patroni: a plain HTTP server behind an https:// endpoint is "does not speak TLS", not a CA problem', async () => {
  const plain = createServer((_, res) => res.end('{}'));
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  stops.push(async () => { plain.closeAllConnections(); await new Promise((r) => plain.close(r)); });
  const failure = await refusedByPatroni(`https://127.0.0.1:${(plain.address() as AddressInfo).port}`, { caFile: pki.intermediateOnly });
  assert.match(failure.message, /TLS handshake failed: the server does not speak TLS \(wrong version number\); write http:\/\/ for a plain endpoint$/);
});

test('Consul\'s client (default roots plus the CA file): each CA file verifies; an unrelated CA does not', async () => {
  const server = await httpsServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) });
  const ask = async (caFile: string) => {
    const client = new FailoverHttpClient({ endpoints: [server.url], tls: { caFile, alsoDefaultRoots: true }, connectTimeoutMs: 2000, log: silentLogger() });
    try {
      return (await client.request({ path: '/v1/kv/k', timeoutMs: 2000, maxBodyBytes: 100 })).status;
    } catch (e) {
      return ((e as AllEndpointsFailedError).failures[0] as EndpointError).kind;
    } finally {
      client.close();
    }
  };
  for (const which of CA_FILES) assert.equal(await ask(pki[which]), 200, which);
  assert.equal(await ask(pki.wrongCa), 'tls');
});

// ---- The etcd client's own connections: SNI and name checks ----

describe('the etcd client\'s TLS connections (gateway.ts)', () => {
  /**
   * One call through a fresh etcd client to a TLS server with `sans`' certificate that answers
   * GET /version as etcd does, then closes: the SNI it saw, and the error the call failed with.
   */
  async function handshake(host: string, sans: ChainPki): Promise<{ sni: string | false | null; error?: NodeJS.ErrnoException }> {
    let sni: string | false | null = false;
    const server = tls.createServer({ cert: readFileSync(sans.serverCert), key: readFileSync(sans.serverKey) }, (s) => {
      sni = s.servername;
      s.on('error', () => undefined);
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 46\r\nConnection: close\r\n\r\n{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}\n'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const built = buildEtcdClient({ endpoints: [`https://${host}:${port}`], caFile: sans.intermediateOnly });
    try {
      // The version answer arrives, then the connection closes: the range fails after the handshake.
      await built.gateway.range({ key: Buffer.from('/k') }, { deadlineMs: 2000 });
      return { sni };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return /ECONNRESET|socket hang up|closed the connection|ECONNREFUSED|deadline/.test(err.message) && sni !== false ? { sni } : { sni, error: err };
    } finally {
      built.liveness.stop();
      built.gateway.close();
      server.close();
    }
  }

  test('an IP endpoint: no SNI, verified against the IP SAN', async () => {
    const r = await handshake('127.0.0.1', pki);
    assert.equal(r.error, undefined);
    assert.equal(r.sni, false);
  });

  test('a host name: sent as SNI and verified', async () => {
    const r = await handshake('localhost', pki);
    assert.equal(r.error, undefined);
    assert.equal(r.sni, 'localhost');
  });

  test('a certificate that does not name the endpoint is refused', async () => {
    const other = createChainPki(['192.0.2.1']);
    stops.push(async () => other.dispose());
    const r = await handshake('127.0.0.1', other);
    assert.equal(r.error?.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });
});

test('TLS material OpenSSL refuses is a configuration error naming the keys', () => {
  assert.throws(() => clientSecureContext(readTlsFiles({ certFile: pki.clientCert, keyFile: pki.serverKey })),
    (e: unknown) => e instanceof DcsTlsConfigError && /^cannot use etcd-ca-file \/ etcd-cert-file \/ etcd-key-file: .*key values mismatch/.test(e.message));
  assert.throws(() => readTlsFiles({ caFile: `${pki.dir}/missing.crt` }),
    (e: unknown) => e instanceof DcsTlsConfigError && /^cannot read etcd-ca-file .*missing\.crt: ENOENT/.test(e.message));
});


test('a CA file without a usable certificate is refused, not started with and failed on every connection', () => {
  const noCert = { ca: readTlsFiles({ caFile: pki.serverKey }).ca };
  assert.throws(() => clientSecureContext(noCert),
    (e: unknown) => e instanceof DcsTlsConfigError && e.message === 'cannot use etcd-ca-file: it holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  assert.throws(() => clientSecureContext({ ca: Buffer.alloc(0) }), (e: unknown) => e instanceof DcsTlsConfigError && /holds no PEM certificate/.test(e.message));
  const good = readTlsFiles({ caFile: pki.ca }).ca!.toString('latin1');
  const broken = Buffer.from(`${good}\n-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n`, 'latin1');
  assert.throws(() => clientSecureContext({ ca: broken }),
    (e: unknown) => e instanceof DcsTlsConfigError && /^cannot use etcd-ca-file: certificate 2 of 2 does not parse: /.test(e.message));
  assert.ok(clientSecureContext({ ca: Buffer.from(good, 'latin1') }), 'a real CA file still makes a context');
});
