// The Go original's own behaviour scripts (its repository's test/behaviour_test.sh,
// cacert_test.sh, clientcert_test.sh), run against this daemon in a test namespace: the key
// absent → no VIP; the key = this host → the VIP is up and a TCP connection to a service behind
// it works; the key = garbage → the VIP is gone (and the connection fails). Plain etcd, etcd with
// server TLS and a CA file holding only the issuing intermediate (what the original's test
// certificates are), and etcd requiring a client certificate; the certificates are made here.
// The flags are the scripts' own (--interval 3000, netmask 32, a trigger key without a leading
// slash), with the scripts' 2 s bounds.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Daemon, eventually, hasVip } from '../harness/daemon.js';
import { createChainPki, type ChainPki } from '../harness/tls.js';
import { createBed, ETCD_HOST, NAMES, VIP4, type Bed } from './bed.js';

const KEY = 'service/pgcluster/leader';
const VIP = `${VIP4}/32`;
const PORT = 12345;
/** The scripts sleep 2 s before each check. */
const BOUND_MS = 2000;

/** `ncat -lk 0.0.0.0 12345 -e "echo $HOSTNAME"` in node n1's namespace. */
async function hostnameService(bed: Bed): Promise<ChildProcess> {
  const code = `require('net').createServer((s) => s.end(${JSON.stringify(`${NAMES[0]}\n`)})).listen(${PORT}, '0.0.0.0', () => console.log('listening'))`;
  const child = bed.nodes[0].ns.spawn(process.execPath, ['-e', code]);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`service exited (${c})`)));
  });
  return child;
}

/** Connects to the VIP from the switch namespace (where the test runs): the service's answer, or the error. */
function dial(timeoutMs: number): Promise<{ answer?: string; error?: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: VIP4, port: PORT, timeout: timeoutMs });
    let data = '';
    s.on('data', (d: Buffer) => { data += d.toString(); });
    s.on('end', () => resolve({ answer: data.trim() }));
    s.on('timeout', () => { s.destroy(); resolve({ error: 'timeout' }); });
    s.on('error', (e) => resolve({ error: e.message }));
  });
}

type Variant = 'plain' | 'CA file' | 'client certificate';

for (const variant of ['plain', 'CA file', 'client certificate'] as Variant[]) {
  describe(`the original's behaviour test, ${variant}`, () => {
    let bed: Bed;
    let pki: ChainPki | undefined;
    let service: ChildProcess | undefined;
    before(async () => {
      pki = variant === 'plain' ? undefined : createChainPki([ETCD_HOST]);
      bed = await createBed(pki ? { tls: pki, clientCertAuth: variant === 'client certificate' } : {});
      service = await hostnameService(bed);
    });
    after(async () => {
      service?.kill('SIGKILL');
      await bed?.dispose();
      pki?.dispose();
    });

    test('key absent → no VIP; key = this host → VIP and a working connection; key = garbage → VIP gone', async () => {
      const tls = !pki ? [] : variant === 'CA file' ? ['--etcd-ca-file', pki.intermediateOnly]
        : ['--etcd-cert-file', pki.clientCert, '--etcd-key-file', pki.clientKey, '--etcd-ca-file', pki.intermediateOnly];
      await bed.kv.delete().key(KEY);
      const d = new Daemon({
        ns: bed.nodes[0].ns,
        args: [...tls, '--dcs-endpoints', bed.etcd.clientUrl, '--interval', '3000', '--interface', 'eth0', '--ip', VIP4, '--netmask', '32',
          '--trigger-key', KEY, '--trigger-value', NAMES[0]],
      });
      bed.daemons.push(d);
      await d.waitReady();
      // test 1: the VIP is not registered
      assert.equal(hasVip(bed.nodes[0].ns, VIP), false, 'no VIP while the key is absent');

      // test 2: a member promoted to leader → the VIP is up and reachable
      await bed.kv.put(KEY).value(NAMES[0]);
      await eventually('the VIP on this host', () => hasVip(bed.nodes[0].ns, VIP), BOUND_MS);
      assert.deepEqual(await dial(1000), { answer: NAMES[0] }, 'a TCP connection to the VIP reaches the service');

      // test 3: the leader changes → the VIP is deregistered, the connection fails
      await bed.kv.put(KEY).value('0xGARBAGE');
      await eventually('the VIP gone', () => !hasVip(bed.nodes[0].ns, VIP), BOUND_MS);
      const after = await dial(1000);
      assert.equal(after.answer, undefined, `no connection to the VIP any more (${JSON.stringify(after)})`);
      await d.kill();
    });
  });
}
