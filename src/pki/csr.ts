/**
 * Signing PKCS#10 requests, e.g. the one vCenter generates ("Sign CSR" in its KMS trust
 * workflow). The request's self-signature is checked with node:crypto first (proof that the
 * requester holds the private key). Its subject and public key are kept exactly; any
 * extensions it asks for are ignored: kmipd issues its own client profile (clientAuth).
 */
import { type KeyObject, X509Certificate, createPublicKey, verify } from 'node:crypto';
import { type CaMaterial, checkDays, prepareCa } from './ca.js';
import { DerError, type ParsedCsr, parseCsr, pemDecode } from './der.js';
import { DEFAULT_CLIENT_DAYS, clientProfile, signLeaf } from './issue.js';
import { commonName, formatName } from './info.js';

export class CsrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CsrError';
  }
}

/** Signature algorithms accepted on requests: OID -> [hash, key type]. */
const SIG_ALGS: Record<string, { hash: string | null; key: string; name: string }> = {
  '1.2.840.113549.1.1.5': { hash: 'sha1', key: 'rsa', name: 'sha1WithRSAEncryption' },
  '1.2.840.113549.1.1.14': { hash: 'sha224', key: 'rsa', name: 'sha224WithRSAEncryption' },
  '1.2.840.113549.1.1.11': { hash: 'sha256', key: 'rsa', name: 'sha256WithRSAEncryption' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', key: 'rsa', name: 'sha384WithRSAEncryption' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', key: 'rsa', name: 'sha512WithRSAEncryption' },
  '1.2.840.10045.4.1': { hash: 'sha1', key: 'ec', name: 'ecdsa-with-SHA1' },
  '1.2.840.10045.4.3.1': { hash: 'sha224', key: 'ec', name: 'ecdsa-with-SHA224' },
  '1.2.840.10045.4.3.2': { hash: 'sha256', key: 'ec', name: 'ecdsa-with-SHA256' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', key: 'ec', name: 'ecdsa-with-SHA384' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', key: 'ec', name: 'ecdsa-with-SHA512' },
  '1.3.101.112': { hash: null, key: 'ed25519', name: 'Ed25519' },
};

const EC_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);
const MIN_RSA_BITS = 2048;

function checkRequestKey(key: KeyObject): void {
  const type = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails;
  if (type === 'rsa') {
    if ((d?.modulusLength ?? 0) < MIN_RSA_BITS) {
      throw new CsrError(`CSR rejected: RSA key of ${d?.modulusLength ?? '?'} bits; at least ${MIN_RSA_BITS} are required`);
    }
  } else if (type === 'ec') {
    if (!d?.namedCurve || !EC_CURVES.has(d.namedCurve)) {
      throw new CsrError(`CSR rejected: EC curve ${d?.namedCurve ?? '?'} is not supported (use P-256, P-384 or P-521)`);
    }
  } else if (type !== 'ed25519') {
    throw new CsrError(`CSR rejected: unsupported key type ${type ?? '?'}`);
  }
}

/**
 * Parses a PEM CSR and checks its self-signature. Returns the parsed request and its public key.
 * Throws CsrError with a readable reason for anything wrong.
 */
export function verifyCsr(csrPem: string): { csr: ParsedCsr; publicKey: KeyObject } {
  let csr: ParsedCsr;
  try {
    csr = parseCsr(pemDecode(csrPem, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'], 'CSR'));
  } catch (e) {
    if (e instanceof DerError) throw new CsrError(`CSR cannot be read: ${e.message}`);
    throw e;
  }
  if (csr.version !== 0) throw new CsrError(`CSR rejected: version ${csr.version} (only version 1, value 0, exists)`);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(csr.spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new CsrError(`CSR rejected: its public key cannot be read (${(e as Error).message})`);
  }
  checkRequestKey(publicKey);
  const alg = SIG_ALGS[csr.signatureAlgorithm];
  if (!alg) throw new CsrError(`CSR rejected: unsupported signature algorithm ${csr.signatureAlgorithm}`);
  if (alg.key !== publicKey.asymmetricKeyType) {
    throw new CsrError(`CSR rejected: signature algorithm ${alg.name} does not match its ${publicKey.asymmetricKeyType ?? '?'} key`);
  }
  if (alg.key !== 'rsa' && csr.signatureParameters) {
    throw new CsrError(`CSR rejected: unexpected parameters for ${alg.name}`);
  }
  let ok = false;
  try {
    ok = verify(alg.hash, csr.info, publicKey, csr.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new CsrError('CSR rejected: its signature does not verify (altered, or not signed by the key it contains)');
  return { csr, publicKey };
}

/**
 * Verifies a CSR and issues a client certificate for it (clientAuth EKU; digitalSignature, plus
 * keyEncipherment for RSA keys), keeping the request's subject exactly. The subject must have
 * exactly one common name, since kmipd identifies clients by CN.
 */
export function signCsr(ca: CaMaterial, csrPem: string, opts: { days?: number } = {}): { certPem: string; subject: string } {
  const days = checkDays(opts.days, DEFAULT_CLIENT_DAYS);
  const { csr, publicKey } = verifyCsr(csrPem);
  const cn = commonName(csr.subjectAttributes);
  if (!cn.ok) throw new CsrError(`CSR rejected: ${cn.reason.replace('the certificate', 'its')}; kmipd identifies clients by CN`);
  const p = prepareCa(ca);
  const certPem = signLeaf(p, {
    subjectDer: csr.subject,
    spkiDer: csr.spki,
    profile: clientProfile(publicKey.asymmetricKeyType ?? ''),
    days,
  });
  return { certPem, subject: formatName(new X509Certificate(certPem).subject) };
}
