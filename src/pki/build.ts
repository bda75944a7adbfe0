/**
 * Building and signing X.509 certificates with node-forge.
 *
 * forge can only encode RSA public keys, and kmipd issues EC certificates too, so the
 * TBSCertificate is assembled here from forge.asn1 parts with the SubjectPublicKeyInfo DER
 * that node:crypto produced spliced in unchanged (the same path for RSA and EC keys, and for
 * a CSR's key). The TBS bytes are then signed (SHA-256, PKCS#1 v1.5) with the CA's RSA key
 * by forge. The caller checks the result with node:crypto's X509Certificate.
 */
import { createHash, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { type Forge, forge } from './forge.js';
import { OID, spkiPublicKeyBits } from './der.js';

const { asn1 } = forge;
type Asn1 = Forge.asn1.Asn1;

const U = asn1.Class.UNIVERSAL;
const C = asn1.Class.CONTEXT_SPECIFIC;
const T = asn1.Type;

/** Node Buffer/Uint8Array <-> forge "binary string". */
export function toBinary(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}
export function fromBinary(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** Parses DER with forge and checks re-encoding gives the same bytes (so splicing is exact). */
function spliceDer(der: Uint8Array, what: string): Asn1 {
  const bin = toBinary(der);
  const node = asn1.fromDer(bin, true);
  if (asn1.toDer(node).getBytes() !== bin) throw new Error(`internal: ${what} does not round-trip through forge.asn1`);
  return node;
}

function oidNode(oid: string): Asn1 {
  return asn1.create(U, T.OID, false, asn1.oidToDer(oid).getBytes());
}

function seq(items: Asn1[]): Asn1 {
  return asn1.create(U, T.SEQUENCE, true, items);
}

function octetString(bytes: string): Asn1 {
  return asn1.create(U, T.OCTETSTRING, false, bytes);
}

/** A Name with one RDN: CN=commonName, as UTF8String (RFC 5280 §4.1.2.4). */
export function commonNameDer(commonName: string): Buffer {
  const name = seq([
    asn1.create(U, T.SET, true, [seq([oidNode(OID.commonName), asn1.create(U, T.UTF8, false, forge.util.encodeUtf8(commonName))])]),
  ]);
  return fromBinary(asn1.toDer(name).getBytes());
}

/** Checks a common name we are asked to put in a certificate. */
export function checkCommonName(cn: string): void {
  if (typeof cn !== 'string' || cn.length === 0) throw new Error('the common name (CN) must not be empty');
  if ([...cn].length > 64) throw new Error('the common name (CN) must be at most 64 characters');
  if (/[\u0000-\u001f\u007f]/.test(cn)) throw new Error('the common name (CN) must not contain control characters');
}

/** 128 random bits as a positive INTEGER in minimal DER (a 0x00 prefix when the top bit is set). */
export function randomSerial(): Buffer {
  for (;;) {
    let b = randomBytes(16);
    let i = 0;
    while (i < b.length && b[i] === 0) i++;
    if (i === b.length) continue;
    b = b.subarray(i);
    return (b[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b;
  }
}

/** RFC 5280 §4.2.1.2 (1): SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spkiDer: Uint8Array): Buffer {
  return createHash('sha1').update(spkiPublicKeyBits(spkiDer)).digest();
}

function timeNode(d: Date): Asn1 {
  // UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5)
  return d.getUTCFullYear() < 2050
    ? asn1.create(U, T.UTCTIME, false, asn1.dateToUtcTime(d))
    : asn1.create(U, T.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d));
}

/** IPv4/IPv6 text to its 4 or 16 bytes. */
export function ipBytes(ip: string): Buffer {
  const v = isIP(ip);
  if (v === 4) return Buffer.from(ip.split('.').map((p) => Number(p)));
  if (v !== 6 || ip.includes('%')) throw new Error(`not an IP address: ${ip}`);
  let text = ip;
  const words: number[] = [];
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let tail: number[] = [];
  if (m) {
    const v4 = ipBytes(m[2] ?? '');
    tail = [((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0)];
    text = (m[1] ?? '').endsWith('::') ? (m[1] ?? '') : (m[1] ?? '').slice(0, -1);
  }
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const dbl = text.indexOf('::');
  if (dbl >= 0) {
    const head = parse(text.slice(0, dbl));
    const rest = parse(text.slice(dbl + 2));
    const fill = 8 - tail.length - head.length - rest.length;
    words.push(...head, ...new Array<number>(fill).fill(0), ...rest);
  } else {
    words.push(...parse(text));
  }
  words.push(...tail);
  if (words.length !== 8) throw new Error(`not an IP address: ${ip}`);
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

const DNS_NAME = /^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** Whether `name` can go in a dNSName SAN (ASCII host name, optional leading wildcard). */
export function isDnsName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && DNS_NAME.test(name);
}

export type KeyUsageBit =
  | 'digitalSignature'
  | 'nonRepudiation'
  | 'keyEncipherment'
  | 'dataEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign';

const KU_BITS: Record<KeyUsageBit, number> = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
};

/** The profile of one certificate: what goes in its extensions. */
export interface CertProfile {
  ca: boolean;
  keyUsage: KeyUsageBit[];
  extKeyUsage?: string[];
  /** Already validated: IPs (v4/v6) become iPAddress, everything else dNSName. */
  sans?: string[];
}

function extension(oid: string, critical: boolean, value: Asn1): Asn1 {
  const parts = [oidNode(oid)];
  if (critical) parts.push(asn1.create(U, T.BOOLEAN, false, '\xff'));
  parts.push(octetString(asn1.toDer(value).getBytes()));
  return seq(parts);
}

function keyUsageValue(bits: KeyUsageBit[]): Asn1 {
  const positions = bits.map((b) => KU_BITS[b]);
  const top = Math.max(...positions);
  const bytes = new Uint8Array(Math.floor(top / 8) + 1);
  for (const p of positions) bytes[p >> 3] = (bytes[p >> 3] ?? 0) | (0x80 >> (p & 7));
  const unused = bytes.length * 8 - (top + 1);
  return asn1.create(U, T.BITSTRING, false, String.fromCharCode(unused) + toBinary(bytes));
}

function extensions(profile: CertProfile, ski: Buffer, aki: Buffer): Asn1 {
  const list: Asn1[] = [];
  const bc: Asn1[] = [];
  if (profile.ca) bc.push(asn1.create(U, T.BOOLEAN, false, '\xff'), asn1.create(U, T.INTEGER, false, '\x00')); // pathLen 0
  list.push(extension(OID.basicConstraints, profile.ca, seq(bc)));
  list.push(extension(OID.keyUsage, true, keyUsageValue(profile.keyUsage)));
  if (profile.extKeyUsage && profile.extKeyUsage.length > 0) {
    list.push(extension(OID.extKeyUsage, false, seq(profile.extKeyUsage.map(oidNode))));
  }
  if (profile.sans && profile.sans.length > 0) {
    const names = profile.sans.map((s) =>
      isIP(s) ? asn1.create(C, 7, false, toBinary(ipBytes(s))) : asn1.create(C, 2, false, s),
    );
    list.push(extension(OID.subjectAltName, false, seq(names)));
  }
  list.push(extension(OID.subjectKeyIdentifier, false, octetString(toBinary(ski))));
  list.push(extension(OID.authorityKeyIdentifier, false, seq([asn1.create(C, 0, false, toBinary(aki))])));
  return asn1.create(C, 3, true, [seq(list)]);
}

export interface TbsInput {
  serial: Uint8Array;
  issuerDer: Uint8Array;
  subjectDer: Uint8Array;
  spkiDer: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  profile: CertProfile;
  /** The issuer's key identifier (the subject's own for a self-signed CA). */
  authorityKeyId: Buffer;
}

function signatureAlgorithm(): Asn1 {
  return seq([oidNode(OID.sha256WithRSAEncryption), asn1.create(U, T.NULL, false, '')]);
}

/**
 * Assembles the TBSCertificate, signs it with the CA's RSA key (sha256WithRSAEncryption)
 * and returns the certificate DER.
 */
export function buildCertificate(input: TbsInput, signer: Forge.pki.rsa.PrivateKey): Buffer {
  const ski = keyIdentifier(input.spkiDer);
  const tbs = seq([
    asn1.create(C, 0, true, [asn1.create(U, T.INTEGER, false, '\x02')]), // v3
    asn1.create(U, T.INTEGER, false, toBinary(input.serial)),
    signatureAlgorithm(),
    spliceDer(input.issuerDer, 'issuer name'),
    seq([timeNode(input.notBefore), timeNode(input.notAfter)]),
    spliceDer(input.subjectDer, 'subject name'),
    spliceDer(input.spkiDer, 'subjectPublicKeyInfo'),
    extensions(input.profile, ski, input.authorityKeyId),
  ]);
  const tbsDer = asn1.toDer(tbs).getBytes();
  const md = forge.md.sha256.create();
  md.update(tbsDer, 'raw');
  const signature = signer.sign(md);
  const cert = seq([tbs, signatureAlgorithm(), asn1.create(U, T.BITSTRING, false, '\x00' + signature)]);
  return fromBinary(asn1.toDer(cert).getBytes());
}
