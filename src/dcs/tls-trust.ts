// The TLS client context every DCS client uses (etcd over gRPC, Patroni REST, Consul), built
// from etcd-ca-file / etcd-cert-file / etcd-key-file so that a server verifies exactly when the
// Go original's would. The original gives Go's crypto/tls a RootCAs pool holding the CA file's
// certificates; Go treats every certificate in that pool as a trust anchor, self-signed or not,
// and trusts nothing else (Consul aside: see alsoDefaultRoots). OpenSSL (so Node) by default accepts only a chain that ends in a
// self-signed root, so a CA file holding just the issuing intermediate (what many PKIs hand out
// as "the etcd CA") would fail here while it works with the original. OpenSSL's partial-chain
// flag (Node's allowPartialTrustChain) makes every certificate in `ca` an anchor, as in Go.
// Hostname / IP verification is untouched: Node checks the certificate's SANs against the
// endpoint's host as Go does.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

/** The TLS settings (etcd-* keys); every DCS client uses the same three files, as the original does. */
export interface TlsFiles {
  /** With it, its certificates are the only trust anchors (as Go's RootCAs); without, Node's default roots. */
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /**
   * Trust the default roots as well as the CA file. For Consul: the original's Consul client
   * ignores the etcd-* files and trusts the system roots, so those must keep working here.
   */
  alsoDefaultRoots?: boolean | undefined;
}

/** A TLS file named in the configuration cannot be read or used: a startup error, never retried. */
export class DcsTlsConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DcsTlsConfigError';
  }
}

/** The three files' contents (what was configured); `read` names the setting in its error. */
export interface TlsMaterial {
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
}

function readDefault(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new DcsTlsConfigError(`cannot read ${setting} ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** Reads the configured files; `read` lets a caller throw its own error type for an unreadable file. */
export function readTlsFiles(files: TlsFiles, read: (setting: string, path: string) => Buffer = readDefault): TlsMaterial {
  return {
    ca: files.caFile ? read('etcd-ca-file', files.caFile) : undefined,
    cert: files.certFile ? read('etcd-cert-file', files.certFile) : undefined,
    key: files.keyFile ? read('etcd-key-file', files.keyFile) : undefined,
  };
}

/**
 * The client context: the CA file's certificates as the only anchors, each one an anchor
 * (intermediate, root, or both: whatever verifies with Go verifies here), plus the client
 * certificate. Throws DcsTlsConfigError when OpenSSL refuses the material (a key that does not
 * match the certificate, a file that is not PEM).
 */
export function clientSecureContext(m: TlsMaterial, alsoDefaultRoots = false): tls.SecureContext {
  if (Boolean(m.cert) !== Boolean(m.key)) {
    throw new DcsTlsConfigError(m.cert ? 'etcd-cert-file requires etcd-key-file' : 'etcd-key-file requires etcd-cert-file');
  }
  if (m.ca) checkAnchors(m.ca);
  try {
    return tls.createSecureContext({
      // Without a CA file the partial-chain flag stays off: setting it makes Node build a
      // fresh store of its bundled roots only, dropping NODE_EXTRA_CA_CERTS (and
      // --use-openssl-ca), which the default store honours.
      ...(m.ca ? { ca: alsoDefaultRoots ? [...tls.rootCertificates, m.ca.toString('utf8')] : m.ca, allowPartialTrustChain: true } : {}),
      ...(m.cert && m.key ? { cert: m.cert, key: m.key } : {}),
    });
  } catch (e) {
    const which = m.cert ? 'etcd-ca-file / etcd-cert-file / etcd-key-file' : 'etcd-ca-file';
    throw new DcsTlsConfigError(`cannot use ${which}: ${(e as Error).message}`, { cause: e });
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * OpenSSL skips what is not a certificate in a CA bundle without a word, so a CA file holding
 * none (a key, an empty file, a DER file) would start a daemon whose every connection fails
 * verification. Refused here instead, as the Go original's x509 pool refuses it.
 */
function checkAnchors(ca: Buffer): void {
  const blocks = ca.toString('latin1').match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new DcsTlsConfigError('cannot use etcd-ca-file: it holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  for (const [i, pem] of blocks.entries()) {
    try {
      new X509Certificate(pem);
    } catch (e) {
      throw new DcsTlsConfigError(`cannot use etcd-ca-file: certificate ${i + 1} of ${blocks.length} does not parse: ${(e as Error).message}`, { cause: e });
    }
  }
}
