/**
 * The server certificate after the first run: reading the pair a running server should use
 * (without ever creating one), and replacing it (`kmipd cert rotate-server`).
 *
 * vCenter pins the server certificate it was shown, so a rotation means re-approving the new one
 * in vCenter ("Make vCenter Trust KMS"). The previous pair is kept as server.crt.prev /
 * server.key.prev to go back to if needed.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isDnsName } from './build.js';
import { type CertInfo, certInfo } from './info.js';
import { issueServerCert } from './issue.js';
import { defaultServerSans, loadCa, pkiPaths, writeFileAtomic } from './store.js';

export interface ServerPair {
  certPem: string;
  keyPem: string;
}

/**
 * Reads DATA/pki/server.crt and server.key and checks them: the key belongs to the certificate,
 * and kmipd's CA (`caPem`) issued it. Throws with the reason otherwise (e.g. in the moment
 * between the two renames of a rotation); it never creates anything.
 */
export function loadServerPair(dataDir: string, caPem: string): ServerPair {
  const p = pkiPaths(dataDir);
  const certPem = readFileSync(p.serverCert, 'utf8');
  const keyPem = readFileSync(p.serverKey, 'utf8');
  const cert = new X509Certificate(certPem);
  const ca = new X509Certificate(caPem);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new Error(`${p.serverCert} was not issued by the kmipd CA`);
  const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  if (!fromKey.equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new Error(`${p.serverKey} does not belong to ${p.serverCert}`);
  }
  return { certPem, keyPem };
}

/** The server certificate of a data folder, for showing (no checks beyond parsing). */
export function readServerCert(dataDir: string): { path: string; pem: string; info: CertInfo; caPath: string } {
  const p = pkiPaths(dataDir);
  if (!existsSync(p.serverCert)) {
    throw new Error(`no server certificate at ${p.serverCert}; run \`kmipd serve --data ${dataDir}\` once first`);
  }
  const pem = readFileSync(p.serverCert, 'utf8');
  return { path: p.serverCert, pem, info: certInfo(pem), caPath: p.caCert };
}

/**
 * Issues a new server certificate from the data folder's CA and puts it in place of the old one.
 * The subject CN is kept; the SANs are kmipd's defaults, those of the old certificate (so that
 * clients checking host names keep working) and `extraSans`. Returns the new certificate.
 */
export async function rotateServerCert(
  dataDir: string,
  opts: { sans?: string[]; days?: number } = {},
): Promise<{ certPem: string; info: CertInfo; previous?: CertInfo; sans: string[] }> {
  const p = pkiPaths(dataDir);
  const ca = loadCa(dataDir);
  let previous: CertInfo | undefined;
  try {
    previous = certInfo(readFileSync(p.serverCert, 'utf8'));
  } catch {
    previous = undefined;
  }
  const oldSans = (previous?.sans ?? []).filter((s) => s.startsWith('DNS:') || s.startsWith('IP:'));
  const sans = defaultServerSans([...oldSans, ...(opts.sans ?? [])]);
  const host = hostname();
  const commonName = previous?.commonName ?? (isDnsName(host) && host.length <= 64 ? host : 'kmipd');
  const issueOpts: Parameters<typeof issueServerCert>[1] = { commonName, sans };
  if (opts.days !== undefined) issueOpts.days = opts.days;
  const issued = await issueServerCert(ca, issueOpts);
  if (existsSync(p.serverCert) && existsSync(p.serverKey)) {
    writeFileAtomic(`${p.serverKey}.prev`, readFileSync(p.serverKey), 0o600);
    writeFileAtomic(`${p.serverCert}.prev`, readFileSync(p.serverCert), 0o644);
  }
  // The key first: a server that reloads between the two renames sees a pair that does not
  // match, keeps its current one, and picks up the new pair at the certificate's rename.
  writeFileAtomic(p.serverKey, issued.keyPem, 0o600);
  writeFileAtomic(p.serverCert, issued.certPem, 0o644);
  const out: { certPem: string; info: CertInfo; previous?: CertInfo; sans: string[] } = {
    certPem: issued.certPem,
    info: certInfo(issued.certPem),
    sans,
  };
  if (previous) out.previous = previous;
  return out;
}
