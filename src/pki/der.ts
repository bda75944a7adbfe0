/**
 * Reading DER with asn1js where node:crypto has no API: the raw subject and SPKI of a
 * certificate (to splice them into certificates we issue), its extensions (EKU, SAN, SKI),
 * subject attributes (the CN that identifies a KMIP client) and PKCS#10 requests.
 *
 * Everything here is strict: trailing bytes, indefinite lengths, unknown structure and
 * duplicate extensions are errors, because a certificate we cannot read exactly must not
 * be used to decide who a client is.
 */
import * as asn1js from 'asn1js';

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

type Block = asn1js.AsnType;

const UNIVERSAL = 1;
const CONTEXT = 3;

const TAG = {
  BOOLEAN: 1,
  INTEGER: 2,
  BIT_STRING: 3,
  OCTET_STRING: 4,
  NULL: 5,
  OID: 6,
  UTF8_STRING: 12,
  SEQUENCE: 16,
  SET: 17,
  PRINTABLE_STRING: 19,
  TELETEX_STRING: 20,
  IA5_STRING: 22,
  UTC_TIME: 23,
  GENERALIZED_TIME: 24,
  UNIVERSAL_STRING: 28,
  BMP_STRING: 30,
} as const;

export const OID = {
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  anyExtendedKeyUsage: '2.5.29.37.0',
  extensionRequest: '1.2.840.113549.1.9.14',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
} as const;

const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
  '2.5.29.37.0': 'anyExtendedKeyUsage',
};

/** A short name for an EKU OID (serverAuth, clientAuth, ...), or the dotted OID itself. */
export function ekuName(oid: string): string {
  return EKU_NAMES[oid] ?? oid;
}

/** Parses exactly one DER element filling all of `bytes`. */
export function parseDer(bytes: Uint8Array, what: string): Block {
  let res: ReturnType<typeof asn1js.fromBER>;
  try {
    res = asn1js.fromBER(bytes, { parseEmbedded: false, maxDepth: 32 });
  } catch (e) {
    throw new DerError(`${what}: not valid DER (${(e as Error).message})`);
  }
  if (res.offset === -1 || res.result.error) {
    throw new DerError(`${what}: not valid DER (${res.result.error || 'decoding failed'})`);
  }
  if (res.offset !== bytes.length) {
    throw new DerError(`${what}: ${bytes.length - res.offset} unexpected bytes after the DER value`);
  }
  return res.result;
}

function is(b: Block, tagClass: number, tagNumber: number): boolean {
  return b.idBlock.tagClass === tagClass && b.idBlock.tagNumber === tagNumber;
}

function expect(b: Block | undefined, tagClass: number, tagNumber: number, what: string): Block {
  if (!b || !is(b, tagClass, tagNumber)) throw new DerError(`${what}: unexpected ASN.1 structure`);
  if (b.lenBlock.isIndefiniteForm) throw new DerError(`${what}: indefinite length is not DER`);
  return b;
}

function children(b: Block, what: string): Block[] {
  const v: unknown = (b.valueBlock as { value?: unknown }).value;
  if (!b.idBlock.isConstructed || !Array.isArray(v)) throw new DerError(`${what}: expected a constructed value`);
  return v as Block[];
}

function seq(b: Block | undefined, what: string): Block[] {
  return children(expect(b, UNIVERSAL, TAG.SEQUENCE, what), what);
}

/** The full encoding (tag, length and content) of a parsed element. */
export function raw(b: Block): Uint8Array {
  return b.valueBeforeDecodeView;
}

/** The content octets of a primitive element. */
function content(b: Block, what: string): Uint8Array {
  if (b.idBlock.isConstructed) throw new DerError(`${what}: expected a primitive value`);
  const all = raw(b);
  const len = b.lenBlock.length;
  if (len < 0 || len > all.length) throw new DerError(`${what}: bad length`);
  return all.subarray(all.length - len);
}

function oid(b: Block | undefined, what: string): string {
  const o = expect(b, UNIVERSAL, TAG.OID, what);
  return (o as asn1js.ObjectIdentifier).getValue();
}

function octets(b: Block | undefined, what: string): Uint8Array {
  return content(expect(b, UNIVERSAL, TAG.OCTET_STRING, what), what);
}

function bitString(b: Block | undefined, what: string): { unusedBits: number; bytes: Uint8Array } {
  const c = content(expect(b, UNIVERSAL, TAG.BIT_STRING, what), what);
  const unused = c[0];
  if (unused === undefined || unused > 7 || (c.length === 1 && unused !== 0)) {
    throw new DerError(`${what}: bad BIT STRING`);
  }
  return { unusedBits: unused, bytes: c.subarray(1) };
}

function boolean(b: Block, what: string): boolean {
  const c = content(expect(b, UNIVERSAL, TAG.BOOLEAN, what), what);
  if (c.length !== 1 || (c[0] !== 0 && c[0] !== 0xff)) throw new DerError(`${what}: bad BOOLEAN`);
  return c[0] === 0xff;
}

/** Decodes the directory string types found in names. */
function directoryString(b: Block, what: string): string {
  const c = Buffer.from(content(b, what));
  if (b.idBlock.tagClass !== UNIVERSAL) throw new DerError(`${what}: unexpected string type`);
  switch (b.idBlock.tagNumber) {
    case TAG.UTF8_STRING: {
      const s = c.toString('utf8');
      if (!Buffer.from(s, 'utf8').equals(c)) throw new DerError(`${what}: invalid UTF-8`);
      return s;
    }
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.TELETEX_STRING:
      return c.toString('latin1');
    case TAG.BMP_STRING: {
      if (c.length % 2 !== 0) throw new DerError(`${what}: bad BMPString`);
      let s = '';
      for (let i = 0; i < c.length; i += 2) s += String.fromCharCode(c.readUInt16BE(i));
      return s;
    }
    case TAG.UNIVERSAL_STRING: {
      if (c.length % 4 !== 0) throw new DerError(`${what}: bad UniversalString`);
      let s = '';
      for (let i = 0; i < c.length; i += 4) s += String.fromCodePoint(c.readUInt32BE(i));
      return s;
    }
    default:
      throw new DerError(`${what}: unsupported string type (tag ${b.idBlock.tagNumber})`);
  }
}

export interface NameAttribute {
  oid: string;
  value: string;
}

/** The attributes of an X.501 Name, in encoding order (multi-valued RDNs flattened). */
export function parseName(nameDer: Uint8Array): NameAttribute[] {
  return nameAttributes(parseDer(nameDer, 'name'));
}

function nameAttributes(name: Block): NameAttribute[] {
  const out: NameAttribute[] = [];
  for (const rdn of seq(name, 'name')) {
    const atvs = children(expect(rdn, UNIVERSAL, TAG.SET, 'name RDN'), 'name RDN');
    if (atvs.length === 0) throw new DerError('name: empty RDN');
    for (const atv of atvs) {
      const [type, value] = seq(atv, 'name attribute');
      const t = oid(type, 'name attribute type');
      if (!value) throw new DerError('name attribute: missing value');
      // Attributes whose value is not a string (rare) are kept by OID with an empty value,
      // except the CN, which must be a string.
      let v = '';
      try {
        v = directoryString(value, `name attribute ${t}`);
      } catch (e) {
        if (t === OID.commonName) throw e;
      }
      out.push({ oid: t, value: v });
    }
  }
  return out;
}

export interface Extension {
  critical: boolean;
  /** The content of extnValue: the DER of the extension's own value. */
  value: Uint8Array;
}

export interface ParsedCertificate {
  tbs: Uint8Array;
  serial: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  subjectAttributes: NameAttribute[];
  notBefore: Date;
  notAfter: Date;
  spki: Uint8Array;
  extensions: Map<string, Extension>;
}

function time(b: Block | undefined, what: string): Date {
  if (b && (is(b, UNIVERSAL, TAG.UTC_TIME) || is(b, UNIVERSAL, TAG.GENERALIZED_TIME))) {
    const d = (b as asn1js.UTCTime).toDate();
    if (!Number.isNaN(d.getTime())) return d;
  }
  throw new DerError(`${what}: bad time`);
}

/** Parses an X.509 certificate far enough for kmipd's needs. */
export function parseCertificate(der: Uint8Array): ParsedCertificate {
  const [tbsB, algB, sigB] = seq(parseDer(der, 'certificate'), 'certificate');
  if (!tbsB || !algB || !sigB) throw new DerError('certificate: missing parts');
  const tbs = seq(tbsB, 'TBSCertificate');
  let i = 0;
  const first = tbs[0];
  if (first && is(first, CONTEXT, 0)) i = 1; // [0] EXPLICIT version
  const serialB = expect(tbs[i], UNIVERSAL, TAG.INTEGER, 'serial number');
  const sigAlg = tbs[i + 1];
  const issuerB = tbs[i + 2];
  const validity = seq(tbs[i + 3], 'validity');
  const subjectB = tbs[i + 4];
  const spkiB = tbs[i + 5];
  if (!sigAlg || !issuerB || !subjectB || !spkiB) throw new DerError('TBSCertificate: missing fields');
  seq(sigAlg, 'signature algorithm');
  seq(spkiB, 'subjectPublicKeyInfo');
  const extensions = new Map<string, Extension>();
  for (const extra of tbs.slice(i + 6)) {
    if (is(extra, CONTEXT, 1) || is(extra, CONTEXT, 2)) continue; // unique IDs
    if (!is(extra, CONTEXT, 3)) throw new DerError('TBSCertificate: unexpected field');
    const [list] = children(extra, 'extensions');
    for (const ext of seq(list, 'extensions')) {
      const parts = seq(ext, 'extension');
      const id = oid(parts[0], 'extension id');
      let critical = false;
      let valueB = parts[1];
      if (valueB && is(valueB, UNIVERSAL, TAG.BOOLEAN)) {
        critical = boolean(valueB, `extension ${id} critical flag`);
        valueB = parts[2];
      }
      const value = octets(valueB, `extension ${id}`);
      if (extensions.has(id)) throw new DerError(`certificate has extension ${id} twice`);
      extensions.set(id, { critical, value });
    }
  }
  return {
    tbs: raw(tbsB),
    serial: content(serialB, 'serial number'),
    issuer: raw(issuerB),
    subject: raw(subjectB),
    subjectAttributes: nameAttributes(subjectB),
    notBefore: time(validity[0], 'notBefore'),
    notAfter: time(validity[1], 'notAfter'),
    spki: raw(spkiB),
    extensions,
  };
}

/** The OIDs of an ExtendedKeyUsage extension value. */
export function parseExtKeyUsage(value: Uint8Array): string[] {
  const list = seq(parseDer(value, 'extended key usage'), 'extended key usage');
  if (list.length === 0) throw new DerError('extended key usage: empty');
  return list.map((b) => oid(b, 'extended key usage'));
}

/** The key identifier of a SubjectKeyIdentifier extension value. */
export function parseSubjectKeyIdentifier(value: Uint8Array): Uint8Array {
  return octets(parseDer(value, 'subject key identifier'), 'subject key identifier');
}

/** IPv4 dotted or IPv6 in its usual compressed form. */
export function ipToString(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) return Buffer.from(bytes).toString('hex');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // longest run (>= 2) of zero words becomes '::'
  let bestStart = -1;
  let bestLen = 0;
  for (let s = 0; s < 8; ) {
    if (words[s] !== 0) {
      s++;
      continue;
    }
    let e = s;
    while (e < 8 && words[e] === 0) e++;
    if (e - s > bestLen) {
      bestStart = s;
      bestLen = e - s;
    }
    s = e;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** SubjectAltName entries formatted `DNS:name`, `IP:addr`, `email:x`, `URI:x`. */
export function parseSubjectAltName(value: Uint8Array): string[] {
  const out: string[] = [];
  for (const gn of seq(parseDer(value, 'subject alternative name'), 'subject alternative name')) {
    const n = gn.idBlock.tagNumber;
    if (gn.idBlock.tagClass !== CONTEXT) throw new DerError('subject alternative name: bad entry');
    if (gn.idBlock.isConstructed) {
      out.push(n === 4 ? 'DirName' : n === 0 ? 'othername' : `[${n}]`);
      continue;
    }
    const c = Buffer.from(content(gn, 'subject alternative name'));
    if (n === 1) out.push(`email:${c.toString('latin1')}`);
    else if (n === 2) out.push(`DNS:${c.toString('latin1')}`);
    else if (n === 6) out.push(`URI:${c.toString('latin1')}`);
    else if (n === 7) out.push(`IP:${ipToString(c)}`);
    else out.push(`[${n}]`);
  }
  return out;
}

/**
 * The key identifier RFC 5280 §4.2.1.2 method (1) derives: SHA-1 of the subjectPublicKey
 * BIT STRING's bits. Returns the bits; the caller hashes them.
 */
export function spkiPublicKeyBits(spkiDer: Uint8Array): Uint8Array {
  const [alg, bits] = seq(parseDer(spkiDer, 'subjectPublicKeyInfo'), 'subjectPublicKeyInfo');
  seq(alg, 'subjectPublicKeyInfo algorithm');
  const bs = bitString(bits, 'subjectPublicKey');
  if (bs.unusedBits !== 0) throw new DerError('subjectPublicKey: unused bits');
  return bs.bytes;
}

export interface ParsedCsr {
  /** The exact CertificationRequestInfo bytes the signature covers. */
  info: Uint8Array;
  version: number;
  subject: Uint8Array;
  subjectAttributes: NameAttribute[];
  spki: Uint8Array;
  signatureAlgorithm: string;
  /** DER of the AlgorithmIdentifier parameters, when present. */
  signatureParameters?: Uint8Array;
  signature: Uint8Array;
}

/** Parses a PKCS#10 CertificationRequest (RFC 2986). */
export function parseCsr(der: Uint8Array): ParsedCsr {
  const [infoB, algB, sigB, ...rest] = seq(parseDer(der, 'CSR'), 'CSR');
  if (!infoB || !algB || !sigB || rest.length > 0) throw new DerError('CSR: expected request info, algorithm and signature');
  const [versionB, subjectB, spkiB, attrsB] = seq(infoB, 'CSR request info');
  const vbytes = content(expect(versionB, UNIVERSAL, TAG.INTEGER, 'CSR version'), 'CSR version');
  if (vbytes.length !== 1) throw new DerError('CSR: bad version');
  if (!subjectB || !spkiB) throw new DerError('CSR: missing subject or public key');
  if (attrsB && !is(attrsB, CONTEXT, 0)) throw new DerError('CSR: bad attributes');
  seq(spkiB, 'CSR subjectPublicKeyInfo');
  const [algOid, params] = seq(algB, 'CSR signature algorithm');
  const bits = bitString(sigB, 'CSR signature');
  if (bits.unusedBits !== 0) throw new DerError('CSR signature: unused bits');
  const out: ParsedCsr = {
    info: raw(infoB),
    version: vbytes[0] ?? -1,
    subject: raw(subjectB),
    subjectAttributes: nameAttributes(subjectB),
    spki: raw(spkiB),
    signatureAlgorithm: oid(algOid, 'CSR signature algorithm'),
    signature: bits.bytes,
  };
  if (params && !is(params, UNIVERSAL, TAG.NULL)) out.signatureParameters = raw(params);
  return out;
}

/** Decodes the first PEM block with one of `labels`; throws when there is none. */
export function pemDecode(pem: string, labels: readonly string[], what: string): Buffer {
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(pem); m; m = re.exec(pem)) {
    const label = m[1] ?? '';
    if (!labels.includes(label)) continue;
    const body = (m[2] ?? '').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0 || body.length === 0) {
      throw new DerError(`${what}: the PEM block is not valid base64`);
    }
    return Buffer.from(body, 'base64');
  }
  throw new DerError(`${what}: no PEM block "${labels.join('" or "')}" found`);
}

export function pemEncode(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
