/**
 * Certificate objects (KMIP 1.4 §2.2.1; 2.1 §2.2.1 "Certificate"): Certificate Type and
 * Certificate Value (the X.509 DER), and the attributes the server derives from the
 * certificate when it is registered or certified (each "Initially set by: Server", "When
 * implicitly set: Register, Certify, Re-certify"):
 *
 * - Certificate Type (1.4 §3.8), Certificate Length (§3.9, the DER's length in bytes);
 * - X.509 Certificate Identifier (§3.10): Issuer Distinguished Name (the issuer Name's DER) and
 *   Certificate Serial Number (the serialNumber INTEGER's DER, tag and length included, as the
 *   OASIS test cases TC-CERTATTR-1 and TC-ECC-3 show it);
 * - X.509 Certificate Subject / Issuer (§3.11, §3.12): the Name DER, and the Subject / Issuer
 *   Alternative Name extension's value when the certificate has one;
 * - Certificate Identifier / Subject / Issuer (§3.13-3.15, deprecated in 1.1, removed in 2.0):
 *   the same as text, names as RFC 4514 strings ("CN=Inter,O=Kmip Test,C=AU"), the serial
 *   number in upper-case hex;
 * - Digital Signature Algorithm (§3.16) from the signatureAlgorithm OID;
 * - Cryptographic Algorithm and Length of the certified public key;
 * - the Certificate Attributes of 1.4 / 2.x (Certificate Subject CN, O, OU, Email, C, ST, L,
 *   UID, Serial Number, Title, DC, DN Qualifier, and the same for the issuer): one instance per
 *   value in the name;
 * - Digest: SHA-256 of the DER, Key Format Type Raw (as TC-CERTATTR-1 shows).
 *
 * Which of these a client sees depends on its protocol version (tags not in the version are
 * left out of its views by the attribute model).
 */
import { X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import type { KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { optValue, reqValue } from '../codec/node.js';
import { type NameAttribute, parseCertificate, parseName, parseSubjectAltName } from '../pki/der.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { keyFacts } from './key-formats.js';
import { digestNode } from './lifecycle.js';

const DSA = Enums.DigitalSignatureAlgorithm;

/** signatureAlgorithm OIDs -> Digital Signature Algorithm. */
const SIGNATURE_ALGORITHMS: Readonly<Record<string, number>> = {
  '1.2.840.113549.1.1.2': DSA.MD2WithRSAEncryption,
  '1.2.840.113549.1.1.4': DSA.MD5WithRSAEncryption,
  '1.2.840.113549.1.1.5': DSA.SHA_1WithRSAEncryption,
  '1.2.840.113549.1.1.14': DSA.SHA_224WithRSAEncryption,
  '1.2.840.113549.1.1.11': DSA.SHA_256WithRSAEncryption,
  '1.2.840.113549.1.1.12': DSA.SHA_384WithRSAEncryption,
  '1.2.840.113549.1.1.13': DSA.SHA_512WithRSAEncryption,
  '1.2.840.113549.1.1.10': DSA.RSASSA_PSS,
  '1.2.840.10040.4.3': DSA.DSAWithSHA_1,
  '2.16.840.1.101.3.4.3.1': DSA.DSAWithSHA224,
  '2.16.840.1.101.3.4.3.2': DSA.DSAWithSHA256,
  '1.2.840.10045.4.1': DSA.ECDSAWithSHA_1,
  '1.2.840.10045.4.3.1': DSA.ECDSAWithSHA224,
  '1.2.840.10045.4.3.2': DSA.ECDSAWithSHA256,
  '1.2.840.10045.4.3.3': DSA.ECDSAWithSHA384,
  '1.2.840.10045.4.3.4': DSA.ECDSAWithSHA512,
  '2.16.840.1.101.3.4.3.14': DSA.SHA3_256WithRSAEncryption,
  '2.16.840.1.101.3.4.3.15': DSA.SHA3_384WithRSAEncryption,
  '2.16.840.1.101.3.4.3.16': DSA.SHA3_512WithRSAEncryption,
};

/** Name attribute OIDs: their RFC 4514 short name and the KMIP Certificate Attribute suffix. */
const NAME_ATTRIBUTES: Readonly<Record<string, { short: string; kmip?: string }>> = {
  '2.5.4.3': { short: 'CN', kmip: 'CN' },
  '2.5.4.10': { short: 'O', kmip: 'O' },
  '2.5.4.11': { short: 'OU', kmip: 'OU' },
  '1.2.840.113549.1.9.1': { short: 'emailAddress', kmip: 'Email' },
  '2.5.4.6': { short: 'C', kmip: 'C' },
  '2.5.4.8': { short: 'ST', kmip: 'ST' },
  '2.5.4.7': { short: 'L', kmip: 'L' },
  '0.9.2342.19200300.100.1.1': { short: 'UID', kmip: 'UID' },
  '2.5.4.5': { short: 'serialNumber', kmip: 'Serial Number' },
  '2.5.4.12': { short: 'title', kmip: 'Title' },
  '0.9.2342.19200300.100.1.25': { short: 'DC', kmip: 'DC' },
  '2.5.4.46': { short: 'dnQualifier', kmip: 'DN Qualifier' },
  '2.5.4.9': { short: 'STREET' },
};

/** An RFC 4514 attribute value with its special characters escaped. */
function escapeValue(v: string): string {
  let s = v.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`);
  if (s.startsWith(' ') || s.startsWith('#')) s = `\\${s}`;
  if (s.endsWith(' ') && !s.endsWith('\\ ')) s = `${s.slice(0, -1)}\\ `;
  return s;
}

/** A Name as an RFC 4514 string: most specific RDN first, "CN=Inter,O=Kmip Test,C=AU". */
export function nameString(attrs: readonly NameAttribute[]): string {
  return [...attrs]
    .reverse()
    .map((a) => `${NAME_ATTRIBUTES[a.oid]?.short ?? a.oid}=${escapeValue(a.value)}`)
    .join(',');
}

/** The DER of an INTEGER with these content octets (tag and length included). */
function integerDer(content: Uint8Array): Buffer {
  const n = content.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([0x02]), len, Buffer.from(content)]);
}

/** The serial number as upper-case hex without leading zero octets. */
function serialHex(content: Uint8Array): string {
  let i = 0;
  while (i < content.length - 1 && content[i] === 0) i++;
  return Buffer.from(content.subarray(i)).toString('hex').toUpperCase();
}

/** The certificate's signatureAlgorithm OID (outer, the one its signature was made with). */
function signatureAlgorithmOid(der: Uint8Array): string | undefined {
  const r = asn1js.fromBER(der);
  if (r.offset === -1) return undefined;
  const outer = r.result;
  if (!(outer instanceof asn1js.Sequence)) return undefined;
  const alg = outer.valueBlock.value[1];
  if (!(alg instanceof asn1js.Sequence)) return undefined;
  const oid = alg.valueBlock.value[0];
  return oid instanceof asn1js.ObjectIdentifier ? oid.getValue() : undefined;
}

function attr(name: string, value: TtlvNode): KmipAttribute {
  return { name, index: 0, value };
}

/** What a certificate tells the server about itself, as attributes (before instance numbering). */
export function certificateAttributes(der: Uint8Array): KmipAttribute[] {
  let x: X509Certificate;
  let parsed: ReturnType<typeof parseCertificate>;
  let issuerAttrs: NameAttribute[];
  try {
    x = new X509Certificate(Buffer.from(der));
    parsed = parseCertificate(der);
    issuerAttrs = parseName(parsed.issuer);
  } catch {
    throw new KmipError('InvalidField', 'the Certificate Value is not a DER X.509 certificate kmipd can read');
  }
  const out: KmipAttribute[] = [];
  out.push(attr('Certificate Type', T.enum(Tag.CertificateType, Enums.CertificateType.X_509)));
  out.push(attr('Certificate Length', T.int(Tag.CertificateLength, der.length)));

  const serialDer = integerDer(parsed.serial);
  out.push(
    attr('X.509 Certificate Identifier', T.struct(Tag.X_509CertificateIdentifier, [T.bytes(Tag.IssuerDistinguishedName, parsed.issuer), T.bytes(Tag.CertificateSerialNumber, serialDer)])),
  );
  const subjectAlt = parsed.extensions.get('2.5.29.17');
  const issuerAlt = parsed.extensions.get('2.5.29.18');
  const x509Subject: TtlvNode[] = [T.bytes(Tag.SubjectDistinguishedName, parsed.subject)];
  if (subjectAlt) x509Subject.push(T.bytes(Tag.SubjectAlternativeName, subjectAlt.value));
  out.push(attr('X.509 Certificate Subject', T.struct(Tag.X_509CertificateSubject, x509Subject)));
  const x509Issuer: TtlvNode[] = [T.bytes(Tag.IssuerDistinguishedName, parsed.issuer)];
  if (issuerAlt) x509Issuer.push(T.bytes(Tag.IssuerAlternativeName, issuerAlt.value));
  out.push(attr('X.509 Certificate Issuer', T.struct(Tag.X_509CertificateIssuer, x509Issuer)));

  // The 1.0 text forms.
  const issuerText = nameString(issuerAttrs);
  const subjectText = nameString(parsed.subjectAttributes);
  out.push(attr('Certificate Identifier', T.struct(Tag.CertificateIdentifier, [T.text(Tag.Issuer, issuerText), T.text(Tag.SerialNumber, serialHex(parsed.serial))])));
  const altNames = (ext: { value: Uint8Array } | undefined): string[] => {
    if (!ext) return [];
    try {
      return parseSubjectAltName(ext.value);
    } catch {
      return [];
    }
  };
  out.push(
    attr(
      'Certificate Subject',
      T.struct(Tag.CertificateSubject, [
        T.text(Tag.CertificateSubjectDistinguishedName, subjectText),
        ...altNames(subjectAlt).map((n) => T.text(Tag.CertificateSubjectAlternativeName, n)),
      ]),
    ),
  );
  out.push(
    attr(
      'Certificate Issuer',
      T.struct(Tag.CertificateIssuer, [
        T.text(Tag.CertificateIssuerDistinguishedName, issuerText),
        ...altNames(issuerAlt).map((n) => T.text(Tag.CertificateIssuerAlternativeName, n)),
      ]),
    ),
  );

  const sigOid = signatureAlgorithmOid(der);
  const sig = sigOid === undefined ? undefined : SIGNATURE_ALGORITHMS[sigOid];
  if (sig !== undefined) out.push(attr('Digital Signature Algorithm', T.enum(Tag.DigitalSignatureAlgorithm, sig)));

  try {
    const facts = keyFacts(x.publicKey);
    out.push(attr('Cryptographic Algorithm', T.enum(Tag.CryptographicAlgorithm, facts.algorithm)));
    out.push(attr('Cryptographic Length', T.int(Tag.CryptographicLength, facts.length)));
  } catch {
    // A certificate for a key type kmipd does not keep (DSA, Ed25519...) is still stored.
  }

  // Certificate Attributes (1.4+, 2.x): Certificate Subject CN ... Certificate Issuer DN Qualifier.
  for (const [prefix, attrs] of [
    ['Certificate Subject', parsed.subjectAttributes],
    ['Certificate Issuer', issuerAttrs],
  ] as const) {
    for (const a of attrs) {
      const k = NAME_ATTRIBUTES[a.oid]?.kmip;
      if (k === undefined || a.value === '') continue;
      const name = `${prefix} ${k}`;
      const tag = Tag[`${prefix.replace(' ', '')}${k.replace(' ', '')}` as keyof typeof Tag];
      if (typeof tag !== 'number') continue;
      out.push(attr(name, T.text(tag, a.value)));
    }
  }
  return out;
}

/** The structure kmipd stores for a certificate (and Get returns). */
export function certificateObject(der: Uint8Array): StructureNode {
  return T.struct(Tag.Certificate, [T.enum(Tag.CertificateType, Enums.CertificateType.X_509), T.bytes(Tag.CertificateValue, der)]);
}

/** Register's reading of a Certificate object: the stored form, the derived attributes, the digest. */
export function parseCertificateObject(obj: StructureNode): { object: StructureNode; implicit: KmipAttribute[]; digest: StructureNode } {
  const type = reqValue(obj, Tag.CertificateType, 'Enumeration');
  if (type !== Enums.CertificateType.X_509) throw new KmipError('FeatureNotSupported', 'kmipd registers X.509 certificates only');
  const der = reqValue(obj, Tag.CertificateValue, 'ByteString');
  const implicit = certificateAttributes(der);
  return { object: certificateObject(der), implicit, digest: digestNode(der, Enums.KeyFormatType.Raw) };
}

/**
 * Certificate Type among a Register request's attributes: server-set (1.4 §3.8), but clients
 * echo it (TC-CERTATTR-1). Dropped when it agrees with the certificate, refused otherwise.
 */
export function dropEchoedCertificateType(attrs: KmipAttribute[], obj: StructureNode): KmipAttribute[] {
  const type = optValue(obj, Tag.CertificateType, 'Enumeration');
  return attrs.filter((a) => {
    if (a.name !== 'Certificate Type') return true;
    if (a.value.type === 'Enumeration' && a.value.value === type) return false;
    throw new KmipError('InvalidField', "the Certificate Type attribute differs from the certificate's Certificate Type");
  });
}

/** Get of a certificate: as stored; a Key Format Type does not apply (X.509 is tolerated: it is what the object is). */
export function certificateInFormat(stored: StructureNode, requested: number | undefined): StructureNode {
  if (requested === undefined || requested === Enums.KeyFormatType.X_509) return stored;
  throw new KmipError('KeyFormatTypeNotSupported', 'a Certificate is returned as it is: Key Format Type does not apply to it');
}
