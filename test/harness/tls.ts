// Test certificates made with openssl: a CA, a server certificate for the given IPs/names, a
// client certificate, and an unrelated "wrong" CA for negative tests. Files live in a temp dir.
// createChainPki adds an intermediate between the root and the leaves, as enterprise PKIs do.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  ca: string;
  wrongCa: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  dispose(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`], dir);
}

function makeLeaf(dir: string, name: string, ca: string, ext: string): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`,
    '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
  chmodSync(join(dir, `${name}.key`), 0o600);
}

/** `sans` are IP addresses or DNS names the server certificate is valid for. */
export function createPki(sans: string[] = ['127.0.0.1', 'localhost']): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'vmt-pki-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'wrong-ca');
  const alt = sans.map((s) => (/^[\d.]+$|:/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',');
  makeLeaf(dir, 'server', 'ca', `subjectAltName=${alt}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  makeLeaf(dir, 'client', 'ca', 'extendedKeyUsage=clientAuth\n');
  const p = (f: string) => join(dir, f);
  return {
    dir,
    ca: p('ca.crt'),
    wrongCa: p('wrong-ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * root → intermediate → server and client certificates. The leaves' files carry the chain
 * (leaf + intermediate), as a server must send it for a client that trusts only the root.
 * `ca` is the root (what etcd trusts for client certificates and the harness's own clients
 * use); the CA files a user might be handed are `intermediateOnly`, `rootOnly` and `bundle`.
 */
export interface ChainPki extends TestPki {
  intermediateOnly: string;
  rootOnly: string;
  /** intermediate + root in one file. */
  bundle: string;
  /** Another intermediate under the same root: it did not issue the server's chain. */
  siblingIntermediate: string;
  /** The server certificate alone, without the intermediate (a server that sends no chain). */
  serverLeaf: string;
}

function makeIntermediate(dir: string, name: string, root: string): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`,
    '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${root}.crt`, '-CAkey', `${root}.key`, '-CAcreateserial',
    '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
}

export function createChainPki(sans: string[] = ['127.0.0.1', 'localhost']): ChainPki {
  const dir = mkdtempSync(join(tmpdir(), 'vmt-pki-'));
  const p = (f: string) => join(dir, f);
  const cat = (out: string, ...files: string[]) => writeFileSync(p(out), files.map((f) => readFileSync(p(f), 'utf8')).join(''));
  makeCa(dir, 'root');
  makeCa(dir, 'wrong-ca');
  makeIntermediate(dir, 'intermediate', 'root');
  makeIntermediate(dir, 'sibling', 'root');
  const alt = sans.map((s) => (/^[\d.]+$|:/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',');
  makeLeaf(dir, 'server', 'intermediate', `subjectAltName=${alt}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  makeLeaf(dir, 'client', 'intermediate', 'extendedKeyUsage=clientAuth\n');
  cat('server-chain.crt', 'server.crt', 'intermediate.crt');
  cat('client-chain.crt', 'client.crt', 'intermediate.crt');
  cat('bundle.crt', 'intermediate.crt', 'root.crt');
  return {
    dir,
    ca: p('root.crt'),
    wrongCa: p('wrong-ca.crt'),
    serverCert: p('server-chain.crt'),
    serverKey: p('server.key'),
    clientCert: p('client-chain.crt'),
    clientKey: p('client.key'),
    intermediateOnly: p('intermediate.crt'),
    rootOnly: p('root.crt'),
    bundle: p('bundle.crt'),
    siblingIntermediate: p('sibling.crt'),
    serverLeaf: p('server.crt'),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
