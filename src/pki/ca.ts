/** kmipd's certificate authority: creating it and preparing it to sign. */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { type Forge, forge } from './forge.js';
import { buildCertificate, checkCommonName, commonNameDer, keyIdentifier, randomSerial } from './build.js';
import { OID, parseCertificate, parseSubjectKeyIdentifier, pemEncode } from './der.js';
import { CA_RSA_BITS, generateKey } from './keys.js';

/** A CA certificate and its private key, both PEM (the key PKCS#8). */
export interface CaMaterial {
  certPem: string;
  keyPem: string;
}

export interface IssuedCert {
  certPem: string;
  keyPem: string;
}

export const DEFAULT_CA_DAYS = 3650;
const DAY_MS = 86_400_000;
/** Leaf certificates start a little in the past, for clients whose clocks run behind. */
export const BACKDATE_MS = 5 * 60_000;

export function checkDays(days: unknown, fallback: number): number {
  if (days === undefined) return fallback;
  if (typeof days !== 'number' || !Number.isInteger(days) || days < 1 || days > 36_500) {
    throw new Error(`days must be a whole number from 1 to 36500, not ${String(days)}`);
  }
  return days;
}

/** Seconds precision: certificates carry no fractions. */
export function wholeSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

export function validityFor(days: number, notAfterLimit?: Date): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  let notAfter = wholeSeconds(now + days * DAY_MS);
  if (notAfterLimit && notAfter > notAfterLimit) notAfter = notAfterLimit;
  return { notBefore: wholeSeconds(now - BACKDATE_MS), notAfter };
}

/** Creates a self-signed CA: RSA-3072, basicConstraints CA:true (pathlen 0), keyCertSign+cRLSign. */
export async function createCA(opts: { commonName: string; days?: number }): Promise<IssuedCert> {
  checkCommonName(opts.commonName);
  const days = checkDays(opts.days, DEFAULT_CA_DAYS);
  const key = await generateKey('rsa', CA_RSA_BITS);
  const name = commonNameDer(opts.commonName);
  const der = buildCertificate(
    {
      serial: randomSerial(),
      issuerDer: name,
      subjectDer: name,
      spkiDer: key.spkiDer,
      ...validityFor(days),
      profile: { ca: true, keyUsage: ['keyCertSign', 'cRLSign'] },
      authorityKeyId: keyIdentifier(key.spkiDer),
    },
    forge.pki.privateKeyFromPem(key.keyPem),
  );
  const certPem = pemEncode('CERTIFICATE', der);
  const x = new X509Certificate(der);
  if (!x.checkIssued(x) || !x.verify(key.publicKey)) throw new Error('internal: the new CA certificate does not verify');
  return { certPem, keyPem: key.keyPem };
}

/** What signing with a CA needs, derived once per CaMaterial object. */
export interface PreparedCa {
  cert: X509Certificate;
  signer: Forge.pki.rsa.PrivateKey;
  subjectDer: Uint8Array;
  keyId: Buffer;
  notAfter: Date;
}

const prepared = new WeakMap<CaMaterial, { certPem: string; keyPem: string; ca: PreparedCa }>();

/**
 * Checks a CaMaterial (a CA certificate with an RSA key that matches it) and derives what
 * signing needs. Throws with a clear message otherwise.
 */
export function prepareCa(ca: CaMaterial): PreparedCa {
  const cached = prepared.get(ca);
  if (cached && cached.certPem === ca.certPem && cached.keyPem === ca.keyPem) return cached.ca;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(ca.certPem);
  } catch (e) {
    throw new Error(`the CA certificate cannot be read: ${(e as Error).message}`);
  }
  if (!cert.ca) throw new Error('the CA certificate is not a CA (basicConstraints CA:true missing)');
  let privateKey;
  try {
    privateKey = createPrivateKey(ca.keyPem);
  } catch (e) {
    throw new Error(`the CA private key cannot be read: ${(e as Error).message}`);
  }
  if (privateKey.asymmetricKeyType !== 'rsa') throw new Error('the CA key must be an RSA key');
  const fromKey = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const fromCert = cert.publicKey.export({ type: 'spki', format: 'der' });
  if (!fromKey.equals(fromCert)) throw new Error('the CA private key does not belong to the CA certificate');
  const parsed = parseCertificate(cert.raw);
  const skiExt = parsed.extensions.get(OID.subjectKeyIdentifier);
  const keyId = skiExt ? Buffer.from(parseSubjectKeyIdentifier(skiExt.value)) : keyIdentifier(parsed.spki);
  const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const p: PreparedCa = {
    cert,
    signer: forge.pki.privateKeyFromPem(pkcs1),
    subjectDer: parsed.subject,
    keyId,
    notAfter: parsed.notAfter,
  };
  prepared.set(ca, { certPem: ca.certPem, keyPem: ca.keyPem, ca: p });
  return p;
}
