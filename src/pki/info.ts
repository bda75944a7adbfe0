/** Reading certificates: a summary for people, and the client identity rule for the server. */
import { X509Certificate } from 'node:crypto';
import { type NameAttribute, OID, ekuName, parseCertificate, parseExtKeyUsage, parseSubjectAltName } from './der.js';
import { describeKey } from './keys.js';

export interface CertInfo {
  /** node:crypto's rendering, one attribute per item, joined with ", " (e.g. "C=US, O=Acme, CN=vcenter"). */
  subject: string;
  issuer: string;
  commonName?: string;
  notBefore: Date;
  notAfter: Date;
  /** Upper-case hex, as node:crypto reports it. */
  serial: string;
  /** SHA-1 fingerprint `AA:BB:...` (what vCenter shows when it asks to trust a certificate). */
  sha1: string;
  /** SHA-256 fingerprint `AA:BB:...`. */
  sha256: string;
  /** Extended key usages by name (serverAuth, clientAuth, ...; unknown ones as OIDs); absent without the extension. */
  ekus?: string[];
  /** `DNS:name`, `IP:addr`, `email:x`, `URI:x`. */
  sans: string[];
  isCA: boolean;
  /** node:crypto's asymmetricKeyType: 'rsa', 'ec', 'ed25519', ... */
  keyType: string;
  /** "RSA 2048", "EC P-256", ... */
  keyDescription: string;
  selfSigned: boolean;
}

/** node:crypto renders names one attribute per line; kmipd shows them on one line. */
export function formatName(nodeName: string): string {
  return nodeName.split('\n').join(', ');
}

function toDate(nodeText: string, fallback: Date): Date {
  const d = new Date(nodeText);
  return Number.isNaN(d.getTime()) ? fallback : d;
}

/** Summary of the first certificate in a PEM text (or DER bytes). */
export function certInfo(pem: string | Uint8Array): CertInfo {
  const x = new X509Certificate(typeof pem === 'string' ? pem : Buffer.from(pem));
  const parsed = parseCertificate(x.raw);
  const ekuExt = parsed.extensions.get(OID.extKeyUsage);
  const sanExt = parsed.extensions.get(OID.subjectAltName);
  const cn = commonName(parsed.subjectAttributes);
  const info: CertInfo = {
    subject: formatName(x.subject),
    issuer: formatName(x.issuer),
    // node:crypto 20 gives validity as text only; the DER values are the fallback
    notBefore: toDate(x.validFrom, parsed.notBefore),
    notAfter: toDate(x.validTo, parsed.notAfter),
    serial: x.serialNumber.toUpperCase(),
    sha1: x.fingerprint,
    sha256: x.fingerprint256,
    sans: sanExt ? parseSubjectAltName(sanExt.value) : [],
    isCA: x.ca,
    keyType: x.publicKey.asymmetricKeyType ?? 'unknown',
    keyDescription: describeKey(x.publicKey),
    selfSigned: x.checkIssued(x) && x.verify(x.publicKey),
  };
  if (cn.ok) info.commonName = cn.cn;
  if (ekuExt) info.ekus = parseExtKeyUsage(ekuExt.value).map(ekuName);
  return info;
}

export type ClientIdentity = { ok: true; cn: string } | { ok: false; reason: string };

/** The subject's single common name, or why there is none usable. */
export function commonName(attrs: readonly NameAttribute[]): ClientIdentity {
  const cns = attrs.filter((a) => a.oid === OID.commonName);
  if (cns.length === 0) return { ok: false, reason: 'the certificate subject has no common name (CN)' };
  if (cns.length > 1) return { ok: false, reason: `the certificate subject has ${cns.length} common names (CN); exactly one is required` };
  const cn = cns[0]?.value ?? '';
  if (cn.length === 0) return { ok: false, reason: 'the certificate subject has an empty common name (CN)' };
  if (/[\u0000-\u001f\u007f]/.test(cn)) return { ok: false, reason: 'the certificate common name (CN) contains control characters' };
  return { ok: true, cn };
}

/**
 * Whether a (chain-verified) client certificate may act as a KMIP client, and its identity.
 *
 * - no Extended Key Usage extension: allowed (vCenter's own certificates have none);
 * - an EKU with clientAuth or anyExtendedKeyUsage: allowed;
 * - an EKU without either (e.g. serverAuth only), or one that cannot be parsed: refused;
 * - identity: the subject's common name; refused without exactly one CN.
 *
 * The EKU is parsed from the DER with asn1js: node:crypto's `keyUsage` is undefined both
 * when the extension is absent and when it is malformed, and the two must be told apart.
 */
export function clientIdentityAllowed(cert: X509Certificate | Uint8Array): ClientIdentity {
  let parsed;
  try {
    parsed = parseCertificate(cert instanceof X509Certificate ? cert.raw : cert);
  } catch (e) {
    return { ok: false, reason: `the certificate cannot be parsed: ${(e as Error).message}` };
  }
  const eku = parsed.extensions.get(OID.extKeyUsage);
  if (eku) {
    let oids: string[];
    try {
      oids = parseExtKeyUsage(eku.value);
    } catch (e) {
      return { ok: false, reason: `the extended key usage extension cannot be parsed: ${(e as Error).message}` };
    }
    if (!oids.includes(OID.clientAuth) && !oids.includes(OID.anyExtendedKeyUsage)) {
      return {
        ok: false,
        reason: `the certificate's extended key usage (${oids.map(ekuName).join(', ')}) does not allow TLS client authentication (clientAuth)`,
      };
    }
  }
  try {
    return commonName(parsed.subjectAttributes);
  } catch (e) {
    return { ok: false, reason: `the certificate subject cannot be read: ${(e as Error).message}` };
  }
}
