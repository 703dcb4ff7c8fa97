// The daemon over TLS with the CA files a user of the Go original may have: only the issuing
// intermediate, only the root, or both, against a real etcd (server TLS; client-certificate auth)
// and a real HTTPS server as the Patroni REST API. Each verifies and the VIP is acquired; a CA
// that did not issue the server's chain is refused with the clear error and the VIP stays away.
// Every daemon here talks to an IP endpoint: the harness fails any test whose daemon prints a
// Node runtime warning (the IP-as-ServerName DeprecationWarning among them).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { Daemon, eventually, failOnRuntimeWarnings, hasVip, isRuntimeWarning } from '../harness/daemon.js';
import { createChainPki, type ChainPki } from '../harness/tls.js';
import { createBed, ETCD_HOST, KEY, VIP4, type Bed } from './bed.js';

const V4 = `${VIP4}/24`;
const CA_FILES = ['intermediateOnly', 'rootOnly', 'bundle'] as const;

/** SIGTERM: the daemons release the VIP (release-on-stop), so the next test starts without it. */
async function stopAll(bed: Bed): Promise<void> {
  await Promise.all(bed.daemons.splice(0).map(async (d) => {
    d.signal('SIGTERM');
    await d.waitExit();
  }));
  assert.equal(hasVip(bed.nodes[0].ns, V4), false, 'the VIP released on stop');
}

/** An HTTPS "Patroni" on the LAN (the test process is in the switch namespace): /leader → 200. */
async function patroniHttps(pki: ChainPki, clientCertAuth: boolean): Promise<{ url: string; close(): Promise<void> }> {
  const server = https.createServer({
    cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey),
    ...(clientCertAuth ? { requestCert: true, rejectUnauthorized: true, ca: readFileSync(pki.ca) } : {}),
  }, (req, res) => {
    res.writeHead(req.url === '/leader' ? 200 : 503, { 'content-type': 'application/json' });
    res.end('{"role":"primary"}');
  });
  await new Promise<void>((r) => server.listen(0, ETCD_HOST, r));
  return {
    url: `https://${ETCD_HOST}:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

for (const clientCertAuth of [false, true]) {
  describe(`daemon over TLS: CA files as the original accepts them${clientCertAuth ? ', client-certificate auth' : ''}`, { concurrency: false }, () => {
    let bed: Bed;
    let pki: ChainPki;
    let patroni: { url: string; close(): Promise<void> };
    const tlsArgs = (caFile: string) => ['--etcd-ca-file', caFile, ...(clientCertAuth ? ['--etcd-cert-file', pki.clientCert, '--etcd-key-file', pki.clientKey] : [])];
    before(async () => {
      pki = createChainPki([ETCD_HOST]);
      bed = await createBed({ tls: pki, clientCertAuth });
      patroni = await patroniHttps(pki, clientCertAuth);
    });
    after(async () => {
      await patroni?.close();
      await bed?.dispose();
      pki?.dispose();
    });
    afterEach(async () => { if (bed) await stopAll(bed); });

    for (const which of CA_FILES) {
      test(`etcd, CA file with ${which}: verifies and acquires`, async () => {
        await bed.kv.put(KEY).value('n1');
        await bed.start(0, tlsArgs(pki[which]));
        await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 3000);
      });
    }

    test('etcd: an endpoint without a scheme is dialled with TLS, as by the original', async () => {
      await bed.kv.put(KEY).value('n1');
      const d = await bed.start(0, tlsArgs(pki.intermediateOnly), { endpoint: bed.etcd.clientUrl.replace('https://', '') });
      await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 3000);
      const first = d.logs[0]!;
      assert.match(JSON.stringify(first), new RegExp(`https://${ETCD_HOST.replace(/\./g, '\\.')}:\\d+`), 'the effective configuration names the https:// endpoint');
    });

    test('etcd: a CA that did not issue the chain is refused with the clear error; no VIP', async () => {
      await bed.kv.put(KEY).value('n1');
      for (const caFile of [pki.wrongCa, pki.siblingIntermediate]) {
        // --verbose: a repeated failure is logged at debug, and on a loaded machine the first
        // one logged may be a timeout rather than the TLS refusal.
        const d = await bed.start(0, ['--verbose', ...tlsArgs(caFile)], { waitReady: false });
        const err = await d.waitForLog((r) => /certificate verify failed/.test(JSON.stringify(r)), 10_000, 'the TLS error');
        assert.match(JSON.stringify(err), /certificate verify failed for https:\/\/203\.0\.113\.1:\d+: [^"]+ \(check etcd-ca-file\)/);
        assert.equal(hasVip(bed.nodes[0].ns, V4), false);
        assert.equal(d.child.exitCode, null, 'still running and retrying');
        await stopAll(bed);
      }
    });

    for (const which of CA_FILES) {
      test(`Patroni REST over HTTPS, CA file with ${which}: verifies and acquires`, async () => {
        await bed.start(0, ['--dcs-type', 'patroni', '--trigger-key', '/leader', '--trigger-value', '200', '--interval', '200', ...tlsArgs(pki[which])], { endpoint: patroni.url });
        await eventually('VIP on n1', () => hasVip(bed.nodes[0].ns, V4), 3000);
      });
    }

    test('Patroni REST: a CA that did not issue the chain is refused with the clear error; no VIP', async () => {
      const d = await bed.start(0, ['--verbose', '--dcs-type', 'patroni', '--trigger-key', '/leader', '--trigger-value', '200', '--interval', '200', ...tlsArgs(pki.siblingIntermediate)], { endpoint: patroni.url, waitReady: false });
      const err = await d.waitForLog((r) => /TLS verification failed/.test(JSON.stringify(r)), 10_000, 'the TLS error');
      assert.match(JSON.stringify(err), /TLS verification failed: .*is [^ ]+sibling\.crt \(etcd-ca-file\) the CA that signed the server certificate\?/);
      assert.equal(hasVip(bed.nodes[0].ns, V4), false);
    });
  });
}

test('the harness fails a daemon test whose stderr carries a Node runtime warning', async () => {
  const pki = createChainPki([ETCD_HOST]);
  const bed = await createBed({ tls: pki });
  try {
    // A warning planted through NODE_OPTIONS: the daemon's stderr shows "(node:PID) Warning: …".
    const d = new Daemon({
      ns: bed.nodes[0].ns,
      env: { NODE_OPTIONS: '--import=data:text/javascript,process.emitWarning(String.fromCharCode(112,114,111,98,101))' },
      args: ['--ip', VIP4, '--netmask', '24', '--interface', 'eth0', '--trigger-key', KEY, '--trigger-value', 'n1', '--dcs-endpoints', bed.etcd.clientUrl, '--etcd-ca-file', pki.intermediateOnly],
    });
    bed.daemons.push(d);
    await d.waitReady();
    await eventually('the warning line read', () => d.rawLines.some(isRuntimeWarning), 5000);
    assert.throws(() => failOnRuntimeWarnings(), /vip-manager printed a Node runtime warning on stderr:\n\(node:\d+\) Warning: probe/);
  } finally {
    await bed.dispose();
    pki.dispose();
  }
});
