/**
 * Certify (KMIP 1.4 §4.7; 2.1 §6.1.8 "Certify"): the server issues an X.509 certificate for a
 * public key and keeps it as a Certificate object.
 *
 * Request: Unique Identifier of the Public Key (or the ID Placeholder); Certificate Request Type
 * and Certificate Request (1.x) / Certificate Request Value (2.x): a PKCS#10 request, DER
 * (PKCS_10) or PEM text (PEM), or (2.x) the Certificate Request Unique Identifier of a stored
 * Certificate Request object (certificate-requests.ts), checked again when used; 1.x
 * Template-Attribute / 2.x Attributes. Response: the new
 * certificate's Unique Identifier (the executor makes it the ID Placeholder).
 *
 * The subject: the request's (its self-signature is checked first, and its key must be the
 * public key's when both are given: the spec lets the request's information win over the
 * attributes, not over the key it certifies); without a request, the Certificate Subject CN /
 * O / OU / Email / C / ST / L / ... attributes of the request (the 1.4 / 2.x Certificate
 * Attributes) make the subject name.
 *
 * The issuer: KMIP leaves the choice of the certification authority to the server. kmipd signs
 * only with keys the client itself keeps in kmipd:
 * - a Link of type Certificate Link among the request's attributes names the issuer's
 *   certificate (1.4 §3.35: for a certificate, "the parent certificate in a chain"); the
 *   signing key is the Private Key that certificate's Private Key Link names, or the one its
 *   Public Key Link's public key links to. The link stays on the new certificate;
 * - without one, the certificate is self-signed with the public key's own private key (its
 *   Private Key Link).
 * The signing key must allow Certificate Sign (or Sign) when it has a Cryptographic Usage Mask,
 * and be Active (1.4 §3.22) when it is an issuer's; a key pair certifying itself may still be
 * Pre-Active (a PKCS#10 request's self-signature is made the same way). kmipd's own CA, which authenticates KMIP clients at the TLS
 * layer, never signs for Certify: a KMIP client must not be able to obtain a certificate that
 * kmipd itself would trust.
 *
 * The certificate: X.509 v3, a random 128-bit serial number, valid from now (less five
 * minutes) to the Deactivation Date given in the request or one year; extensions Basic
 * Constraints (CA when the Cryptographic Usage Mask has Certificate Sign), Key Usage from the
 * mask (Digital Signature when there is none), Subject and Authority Key Identifier. It is
 * assembled with node-forge's ASN.1 (the public key spliced in as node:crypto exports it),
 * signed with node:crypto (SHA-256 with RSA; ECDSA with SHA-256/384/512 by curve) and checked
 * with X509Certificate before it is stored. Its attributes are derived as for Register
 * (certificates.ts); the public key and the certificate then link to each other (Certificate
 * Link / Public Key Link, 1.4 §4.7).
 *
 * Re-certify (below) issues a replacement from the same issuer.
 */
import { type KeyObject, X509Certificate, createPublicKey, sign } from 'node:crypto';
import type { KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import type { StoredObject } from '../keystore/types.js';
import { keyIdentifier, randomSerial, toBinary, fromBinary } from '../pki/build.js';
import { OID, parseCertificate, parseSubjectKeyIdentifier } from '../pki/der.js';
import { type Forge, forge } from '../pki/forge.js';
import { Enums, Masks, Tag } from '../spec/index.js';
import { encodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { attributeRule, checkInitialAttributes, readRequestAttributes } from './attribute-rules.js';
import { type CheckedRequest, checkCertificateRequest, storedCertificateRequest } from './certificate-requests.js';
import { certificateAttributes, certificateObject, dropEchoedCertificateType } from './certificates.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkProtectionStorageMasks } from './create.js';
import { keyFacts, storedKey, type KeyKind } from './key-formats.js';
import { checkNoDuplicateNames, dateOf, digestNode, initialAttributes, intOf, isDestroyed, linkNode, linkType, loadObject, seconds, touched, withInstance, withoutAttribute } from './lifecycle.js';
import { replacementAttributes } from './rekey-key-pair.js';
import { storedTree } from './stored-tree.js';
import { checkNewObject } from './constraints.js';

const OT = Enums.ObjectType;
const LT = Enums.LinkType;
const M = Masks.CryptographicUsageMask;
const { asn1 } = forge;
type Asn1 = Forge.asn1.Asn1;
const U = asn1.Class.UNIVERSAL;
const C = asn1.Class.CONTEXT_SPECIFIC;
const AT = asn1.Type;

const BACKDATE_S = 300n;
const DEFAULT_VALIDITY_S = 365n * 86400n;

// ---------------------------------------------------------------------------------------------
// ASN.1 pieces (forge.asn1)

const oidNode = (oid: string): Asn1 => asn1.create(U, AT.OID, false, asn1.oidToDer(oid).getBytes());
const seq = (items: Asn1[]): Asn1 => asn1.create(U, AT.SEQUENCE, true, items);
const derOf = (n: Asn1): Buffer => fromBinary(asn1.toDer(n).getBytes());

function splice(der: Uint8Array): Asn1 {
  const bin = toBinary(der);
  const node = asn1.fromDer(bin, true);
  if (asn1.toDer(node).getBytes() !== bin) throw new KmipError('InternalServerError', 'a DER value does not round-trip');
  return node;
}

function timeNode(s: bigint): Asn1 {
  const d = new Date(Number(s) * 1000);
  return d.getUTCFullYear() < 2050 ? asn1.create(U, AT.UTCTIME, false, asn1.dateToUtcTime(d)) : asn1.create(U, AT.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d));
}

function extension(oid: string, critical: boolean, value: Asn1): Asn1 {
  const parts = [oidNode(oid)];
  if (critical) parts.push(asn1.create(U, AT.BOOLEAN, false, '\xff'));
  parts.push(asn1.create(U, AT.OCTETSTRING, false, asn1.toDer(value).getBytes()));
  return seq(parts);
}

/** Key Usage bits (RFC 5280 §4.2.1.3) from a Cryptographic Usage Mask. */
function keyUsageBits(mask: number | undefined, kind: KeyKind): number[] {
  if (mask === undefined) return [0];
  const bits = new Set<number>();
  if (mask & (M.Sign | M.Verify | M.Authenticate)) bits.add(0); // digitalSignature
  if (mask & M.ContentCommitment) bits.add(1); // nonRepudiation
  if (kind === 'rsa' && mask & (M.Encrypt | M.Decrypt | M.WrapKey | M.UnwrapKey)) bits.add(2); // keyEncipherment
  if (kind === 'rsa' && mask & (M.Encrypt | M.Decrypt)) bits.add(3); // dataEncipherment
  if (kind === 'ec' && mask & (M.KeyAgreement | M.DeriveKey)) bits.add(4); // keyAgreement
  if (mask & M.CertificateSign) bits.add(5); // keyCertSign
  if (mask & M.CRLSign) bits.add(6); // cRLSign
  if (bits.size === 0) bits.add(0);
  return [...bits].sort((a, b) => a - b);
}

function keyUsageValue(positions: number[]): Asn1 {
  const top = Math.max(...positions);
  const bytes = new Uint8Array(Math.floor(top / 8) + 1);
  for (const p of positions) bytes[p >> 3] = (bytes[p >> 3] ?? 0) | (0x80 >> (p & 7));
  const unused = bytes.length * 8 - (top + 1);
  return asn1.create(U, AT.BITSTRING, false, String.fromCharCode(unused) + toBinary(bytes));
}

/** Name attributes a client may give for the subject, in the order they go into the name. */
const SUBJECT_FIELDS: readonly [string, string, 'printable' | 'ia5' | 'utf8'][] = [
  ['Certificate Subject C', '2.5.4.6', 'printable'],
  ['Certificate Subject ST', '2.5.4.8', 'utf8'],
  ['Certificate Subject L', '2.5.4.7', 'utf8'],
  ['Certificate Subject O', '2.5.4.10', 'utf8'],
  ['Certificate Subject OU', '2.5.4.11', 'utf8'],
  ['Certificate Subject DC', '0.9.2342.19200300.100.1.25', 'ia5'],
  ['Certificate Subject Title', '2.5.4.12', 'utf8'],
  ['Certificate Subject Serial Number', '2.5.4.5', 'printable'],
  ['Certificate Subject DN Qualifier', '2.5.4.46', 'printable'],
  ['Certificate Subject UID', '0.9.2342.19200300.100.1.1', 'utf8'],
  ['Certificate Subject CN', '2.5.4.3', 'utf8'],
  ['Certificate Subject Email', '1.2.840.113549.1.9.1', 'ia5'],
];

/** The subject Name DER from Certificate Subject attributes; undefined when there are none. */
function subjectFromAttributes(attrs: readonly KmipAttribute[]): Buffer | undefined {
  const rdns: Asn1[] = [];
  for (const [name, oid, kind] of SUBJECT_FIELDS) {
    for (const a of attrs) {
      if (a.name !== name) continue;
      if (a.value.type !== 'TextString' || a.value.value.length === 0) throw new KmipError('InvalidAttributeValue', `${name} must be a non-empty Text String`);
      const v = a.value.value;
      let str: Asn1;
      if (kind === 'printable') {
        if (!/^[A-Za-z0-9 '()+,\-./:=?]+$/.test(v)) throw new KmipError('InvalidAttributeValue', `${name} holds characters a PrintableString cannot`);
        str = asn1.create(U, AT.PRINTABLESTRING, false, v);
      } else if (kind === 'ia5') {
        if (!/^[\x00-\x7f]+$/.test(v)) throw new KmipError('InvalidAttributeValue', `${name} must be ASCII`);
        str = asn1.create(U, AT.IA5STRING, false, v);
      } else str = asn1.create(U, AT.UTF8, false, forge.util.encodeUtf8(v));
      rdns.push(asn1.create(U, AT.SET, true, [seq([oidNode(oid), str])]));
    }
  }
  return rdns.length === 0 ? undefined : derOf(seq(rdns));
}

// ---------------------------------------------------------------------------------------------
// Objects the operation uses

function linkedUid(attrs: readonly KmipAttribute[], type: number): string | undefined {
  for (const a of attrs) {
    if (a.name !== 'Link' || linkType(a.value) !== type || a.value.type !== 'Structure') continue;
    const id = a.value.value.find((c) => c.tag === Tag.LinkedObjectIdentifier);
    if (id?.type === 'TextString') return id.value;
  }
  return undefined;
}


async function keyOf(ctx: OperationContext, obj: StoredObject): Promise<KeyObject> {
  return storedKey(obj.objectType, await storedTree(ctx, obj)).key;
}

/**
 * The signing key: a Private Key whose usage mask (if any) allows certificate signing, Active
 * when it signs for another key (a CA key); a key signing its own certificate may also be
 * Pre-Active (it certifies itself, as a PKCS#10 request's self-signature does).
 */
async function signingKey(ctx: OperationContext, uid: string, selfSigned: boolean): Promise<KeyObject> {
  const obj = await loadObject(ctx, uid, 'material');
  if (obj.objectType !== OT.PrivateKey) throw new KmipError('IllegalObjectType', 'the issuer\'s signing key must be a Private Key');
  if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'the issuer\'s private key has been destroyed');
  const S = Enums.State;
  if (obj.state !== S.Active && !(selfSigned && obj.state === S.PreActive)) {
    throw new KmipError('WrongKeyLifecycleState', `the issuer's private key is ${selfSigned ? 'neither Pre-Active nor Active' : 'not Active'}`);
  }
  const mask = intOf(obj.attributes, 'Cryptographic Usage Mask');
  if (mask !== undefined && (mask & (M.CertificateSign | M.Sign)) === 0) {
    throw new KmipError('IncompatibleCryptographicUsageMask', 'the issuer\'s private key may not sign certificates (Cryptographic Usage Mask)');
  }
  return keyOf(ctx, obj);
}

interface Issuer {
  name: Uint8Array;
  keyId: Buffer;
  key: KeyObject;
  /** The issuer certificate's public key (self-signed: undefined, the subject's key). */
  publicKey?: KeyObject;
}

/** The issuer a Certificate Link in the request names. */
async function issuerFromCertificate(ctx: OperationContext, uid: string): Promise<Issuer> {
  const certObj = await loadObject(ctx, uid, 'read');
  if (certObj.objectType !== OT.Certificate) throw new KmipError('IllegalObjectType', 'the Certificate Link of a Certify request must name the issuer\'s Certificate');
  if (isDestroyed(certObj.state)) throw new KmipError('ObjectDestroyed', 'the issuer\'s certificate has been destroyed');
  const tree = await storedTree(ctx, certObj);
  const value = tree.value.find((c) => c.tag === Tag.CertificateValue);
  if (value?.type !== 'ByteString') throw new KmipError('InternalServerError', 'the stored certificate is malformed');
  const x = new X509Certificate(Buffer.from(value.value));
  const parsed = parseCertificate(value.value);
  let keyUid = linkedUid(certObj.attributes, LT.PrivateKeyLink);
  if (keyUid === undefined) {
    const pubUid = linkedUid(certObj.attributes, LT.PublicKeyLink);
    if (pubUid !== undefined) keyUid = linkedUid((await loadObject(ctx, pubUid, 'read')).attributes, LT.PrivateKeyLink);
  }
  if (keyUid === undefined) throw new KmipError('ItemNotFound', 'the issuer\'s certificate links to no private key kmipd holds (Private Key Link, or Public Key Link to a linked public key)');
  const key = await signingKey(ctx, keyUid, false);
  if (!createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(x.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new KmipError('InvalidField', 'the issuer\'s private key does not belong to its certificate');
  }
  const ski = parsed.extensions.get(OID.subjectKeyIdentifier);
  const keyId = ski ? Buffer.from(parseSubjectKeyIdentifier(ski.value)) : keyIdentifier(parsed.spki);
  return { name: parsed.subject, keyId, key, publicKey: x.publicKey };
}

function signatureAlgorithm(key: KeyObject): { oid: string; hash: string; nullParams: boolean } {
  const f = keyFacts(key);
  if (f.kind === 'rsa') return { oid: OID.sha256WithRSAEncryption, hash: 'sha256', nullParams: true };
  if (f.kind === 'dsa') throw new KmipError('FeatureNotSupported', 'kmipd signs certificates with RSA and EC issuer keys, not DSA');
  if (f.length > 384) return { oid: '1.2.840.10045.4.3.4', hash: 'sha512', nullParams: false };
  if (f.length > 256) return { oid: '1.2.840.10045.4.3.3', hash: 'sha384', nullParams: false };
  return { oid: '1.2.840.10045.4.3.2', hash: 'sha256', nullParams: false };
}

/** Builds and signs the certificate; checks it with node:crypto. */
function issue(o: { subject: Uint8Array; spki: Uint8Array; issuer: Issuer; notBefore: bigint; notAfter: bigint; mask: number | undefined; kind: KeyKind }): Buffer {
  const sig = signatureAlgorithm(o.issuer.key);
  const algId = seq(sig.nullParams ? [oidNode(sig.oid), asn1.create(U, AT.NULL, false, '')] : [oidNode(sig.oid)]);
  const ca = o.mask !== undefined && (o.mask & M.CertificateSign) !== 0;
  const ski = keyIdentifier(o.spki);
  const exts = [
    extension(OID.basicConstraints, true, seq(ca ? [asn1.create(U, AT.BOOLEAN, false, '\xff')] : [])),
    extension(OID.keyUsage, true, keyUsageValue(keyUsageBits(o.mask, o.kind))),
    extension(OID.subjectKeyIdentifier, false, asn1.create(U, AT.OCTETSTRING, false, toBinary(ski))),
    extension(OID.authorityKeyIdentifier, false, seq([asn1.create(C, 0, false, toBinary(o.issuer.keyId.length ? o.issuer.keyId : ski))])),
  ];
  const tbs = seq([
    asn1.create(C, 0, true, [asn1.create(U, AT.INTEGER, false, '\x02')]),
    asn1.create(U, AT.INTEGER, false, toBinary(randomSerial())),
    algId,
    splice(o.issuer.name),
    seq([timeNode(o.notBefore), timeNode(o.notAfter)]),
    splice(o.subject),
    splice(o.spki),
    asn1.create(C, 3, true, [seq(exts)]),
  ]);
  const tbsDer = derOf(tbs);
  let signature: Buffer;
  try {
    signature = sign(sig.hash, tbsDer, o.issuer.key);
  } catch {
    throw new KmipError('CryptographicFailure', 'the certificate could not be signed');
  }
  const der = derOf(seq([tbs, algId, asn1.create(U, AT.BITSTRING, false, '\x00' + toBinary(signature))]));
  const x = new X509Certificate(der);
  const verifier = o.issuer.publicKey ?? createPublicKey({ key: Buffer.from(o.spki), format: 'der', type: 'spki' });
  if (!x.verify(verifier)) throw new KmipError('InternalServerError', 'the issued certificate does not verify');
  return der;
}

// ---------------------------------------------------------------------------------------------

/**
 * The request's certificate request, checked: inline (Certificate Request Type with Certificate
 * Request (1.x) / Certificate Request Value (2.x)), or (2.x) a stored Certificate Request object
 * named by Certificate Request Unique Identifier (certificate-requests.ts).
 */
async function readCsr(ctx: OperationContext, payload: StructureNode): Promise<CheckedRequest | undefined> {
  const bytes = optValue(payload, Tag.CertificateRequest, 'ByteString') ?? optValue(payload, Tag.CertificateRequestValue, 'ByteString');
  const type = optValue(payload, Tag.CertificateRequestType, 'Enumeration');
  const requestUid = optValue(payload, Tag.CertificateRequestUniqueIdentifier, 'TextString');
  if (requestUid !== undefined) {
    if (bytes || type !== undefined) throw new KmipError('InvalidField', 'a Certificate Request Unique Identifier and a Certificate Request in the same request');
    return storedCertificateRequest(ctx, requestUid);
  }
  if (!bytes) {
    if (type !== undefined) throw new KmipError('MissingData', 'a Certificate Request Type without a Certificate Request');
    return undefined;
  }
  if (type === undefined) throw new KmipError('MissingData', 'a Certificate Request needs its Certificate Request Type');
  return checkCertificateRequest(type, bytes);
}

/** The request's attributes: Certificate Subject fields apart (they make a subject), Certificate Type echo dropped, the rest checked. */
function readCertifyAttributes(ctx: OperationContext, payload: StructureNode): { attrs: KmipAttribute[]; subjectFields: KmipAttribute[] } {
  let attrs = readRequestAttributes(payload, ctx.version, false);
  const subjectFields = attrs.filter((a) => a.name.startsWith('Certificate Subject '));
  attrs = attrs.filter((a) => !a.name.startsWith('Certificate Subject '));
  attrs = dropEchoedCertificateType(attrs, T.struct(Tag.Certificate, [T.enum(Tag.CertificateType, Enums.CertificateType.X_509)]));
  checkInitialAttributes(attrs, 'register', OT.Certificate, ctx.version);
  checkNoDuplicateNames(attrs);
  return { attrs, subjectFields };
}

/** The public key object `uid` names, and its SubjectPublicKeyInfo. */
async function publicKeyObject(ctx: OperationContext, uid: string): Promise<{ obj: StoredObject; spki: Buffer }> {
  const obj = await loadObject(ctx, uid, 'manage');
  if (obj.objectType !== OT.PublicKey) throw new KmipError('IllegalObjectType', 'Certify certifies a Public Key');
  if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'the public key has been destroyed');
  return { obj, spki: (await keyOf(ctx, obj)).export({ type: 'spki', format: 'der' }) };
}

/** The issuer: the certificate a Certificate Link names, else the public key's own private key (self-signed). */
async function chooseIssuer(ctx: OperationContext, issuerCert: string | undefined, pubObj: StoredObject | undefined, subject: Uint8Array, spki: Uint8Array): Promise<Issuer> {
  if (issuerCert !== undefined) return issuerFromCertificate(ctx, issuerCert);
  const ownKey = pubObj ? linkedUid(pubObj.attributes, LT.PrivateKeyLink) : undefined;
  if (ownKey === undefined) {
    throw new KmipError('MissingData', 'no issuer: name the issuer\'s certificate with a Certificate Link, or certify a public key whose private key kmipd holds (self-signed)');
  }
  const key = await signingKey(ctx, ownKey, true);
  if (!createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(Buffer.from(spki))) {
    throw new KmipError('InvalidField', 'the public key\'s Private Key Link names a key of another pair');
  }
  return { name: subject, keyId: keyIdentifier(spki), key };
}

/** Issues the certificate and stores it with `client` attributes (links included); returns its uid. */
async function issueAndStore(
  ctx: OperationContext,
  o: { subject: Uint8Array; spki: Uint8Array; issuer: Issuer; client: KmipAttribute[]; now: Date },
): Promise<string> {
  const nowS = seconds(o.now);
  const activation = dateOf(o.client, 'Activation Date');
  const deactivation = dateOf(o.client, 'Deactivation Date');
  const notBefore = (activation !== undefined && activation < nowS ? activation : nowS) - BACKDATE_S;
  const notAfter = deactivation !== undefined && deactivation > nowS ? deactivation : nowS + DEFAULT_VALIDITY_S;
  const kind = keyFacts(createPublicKey({ key: Buffer.from(o.spki), format: 'der', type: 'spki' })).kind;
  const der = issue({ subject: o.subject, spki: o.spki, issuer: o.issuer, notBefore, notAfter, mask: intOf(o.client, 'Cryptographic Usage Mask'), kind });
  const certUid = ctx.objects.newUid();
  const implicit = certificateAttributes(der);
  if (!o.client.some((a) => a.name === 'Original Creation Date')) {
    implicit.push({ name: 'Original Creation Date', index: 0, value: T.date(Tag.OriginalCreationDate, nowS) });
  }
  const { attributes, state } = initialAttributes({
    uid: certUid,
    objectType: OT.Certificate,
    now: o.now,
    client: o.client,
    implicit,
    digest: digestNode(der, Enums.KeyFormatType.Raw),
  });
  await checkNewObject(ctx, OT.Certificate, attributes);
  await ctx.objects.create({ uid: certUid, objectType: OT.Certificate, state, attributes, material: encodeTtlv(certificateObject(der)) });
  return certUid;
}

/** Points the public key's Certificate Link at `certUid` (replacing the link to `replaces`, if given). */
async function linkPublicKey(ctx: OperationContext, pubUid: string, certUid: string, now: Date, replaces?: string): Promise<void> {
  const fresh = await ctx.objects.find(pubUid, 'manage');
  const link = linkNode(LT.CertificateLink, certUid);
  let attrs = fresh.attributes;
  const old = replaces === undefined ? -1 : attrs.findIndex((a) => a.name === 'Link' && linkType(a.value) === LT.CertificateLink && linkedUid([a], LT.CertificateLink) === replaces);
  if (old >= 0) attrs = attrs.map((a, i) => (i === old ? { ...a, value: link } : a));
  else attrs = withInstance(attrs, 'Link', link);
  await ctx.objects.save(fresh, touched({ ...fresh, attributes: attrs }, now));
}

export const certifyHandler: OperationHandler = {
  operation: Enums.Operation.Certify,
  name: 'Certify',
  since: '1.0',
  objectTypes: [OT.Certificate],
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    checkProtectionStorageMasks(payload);
    const csr = await readCsr(ctx, payload);
    const uid = optValue(payload, Tag.UniqueIdentifier, 'TextString') ?? ctx.idPlaceholder;
    if (uid === undefined && !csr) throw new KmipError('MissingData', 'Certify needs the public key\'s Unique Identifier or a Certificate Request');
    const { attrs, subjectFields } = readCertifyAttributes(ctx, payload);

    let pubObj: StoredObject | undefined;
    let spki: Uint8Array;
    if (uid !== undefined) {
      const pk = await publicKeyObject(ctx, uid);
      pubObj = pk.obj;
      spki = pk.spki;
      if (csr && !Buffer.from(csr.spki).equals(pk.spki)) throw new KmipError('InvalidCSR', 'the Certificate Request is for another key than the public key named');
    } else spki = csr!.spki;
    const subject = csr?.subject ?? subjectFromAttributes(subjectFields);
    if (!subject) throw new KmipError('MissingData', 'Certify needs a Certificate Request or a subject (Certificate Subject CN, O, ... attributes)');
    const issuerCert = linkedUid(attrs, LT.CertificateLink);
    const issuer = await chooseIssuer(ctx, issuerCert, pubObj, subject, spki);

    const now = ctx.now();
    const client = pubObj ? [{ name: 'Link', index: 0, value: linkNode(LT.PublicKeyLink, pubObj.uid) }, ...attrs] : attrs;
    const certUid = await issueAndStore(ctx, { subject, spki, issuer, client, now });
    if (pubObj) await linkPublicKey(ctx, pubObj.uid, certUid, now);
    ctx.log.info({ uid: certUid, publicKey: pubObj?.uid, selfSigned: issuerCert === undefined }, 'certified a public key');
    return [T.text(Tag.UniqueIdentifier, certUid)];
  },
};

/**
 * Re-certify (KMIP 1.4 §4.8; 2.1 §6.1.42 "Re-certify"): a replacement certificate for the same
 * public key, from the same issuer (the existing certificate's Certificate Link, or self-signed
 * again), with the request's subject when a Certificate Request is given, else the existing
 * certificate's subject. Attributes as Re-key gives them (1.4 §4.8 table "Re-certify Attribute
 * Requirements"): copied from the existing certificate, dates per Offset, Names moved to the
 * replacement (the request's first, as TC-134 lists them), a Replaced Object Link to the
 * existing certificate, which gets a Replacement Object Link; the public key's Certificate Link
 * now names the replacement.
 */
export const recertifyHandler: OperationHandler = {
  operation: Enums.Operation.ReCertify,
  name: 'ReCertify',
  since: '1.0',
  objectTypes: [OT.Certificate],
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    checkProtectionStorageMasks(payload);
    const uid = ctx.uidOrPlaceholder(payload);
    const csr = await readCsr(ctx, payload);
    const offset = optValue(payload, Tag.Offset, 'Interval');
    const { attrs, subjectFields } = readCertifyAttributes(ctx, payload);
    const old = await loadObject(ctx, uid, 'manage');
    if (old.objectType !== OT.Certificate) throw new KmipError('IllegalObjectType', 'Re-certify replaces a Certificate');
    if (isDestroyed(old.state)) throw new KmipError('ObjectDestroyed', 'the certificate has been destroyed');
    const tree = await storedTree(ctx, old);
    const value = tree.value.find((c) => c.tag === Tag.CertificateValue);
    if (value?.type !== 'ByteString') throw new KmipError('InternalServerError', 'the stored certificate is malformed');
    const parsed = parseCertificate(value.value);

    const pubUid = linkedUid(old.attributes, LT.PublicKeyLink);
    let pubObj: StoredObject | undefined;
    let spki: Uint8Array = parsed.spki;
    if (pubUid !== undefined) {
      const pk = await publicKeyObject(ctx, pubUid);
      pubObj = pk.obj;
      spki = pk.spki;
    }
    if (csr && !Buffer.from(csr.spki).equals(Buffer.from(spki))) throw new KmipError('InvalidCSR', 'the Certificate Request is for another key than the certificate\'s');
    const subject = csr?.subject ?? subjectFromAttributes(subjectFields) ?? parsed.subject;
    const issuerCert = linkedUid(attrs, LT.CertificateLink) ?? linkedUid(old.attributes, LT.CertificateLink);
    const issuer = await chooseIssuer(ctx, issuerCert, pubObj, subject, spki);

    const now = ctx.now();
    const requestNames = attrs.filter((a) => a.name === 'Name');
    // What the server derived from the old certificate is derived anew from the new one.
    const copied = replacementAttributes(
      { ...old, attributes: old.attributes.filter((a) => !(attributeRule(a.name)?.serverOnly ?? false)) },
      attrs.filter((a) => a.name !== 'Name'),
      offset,
      now,
    );
    const client: KmipAttribute[] = [...(pubObj ? [{ name: 'Link', index: 0, value: linkNode(LT.PublicKeyLink, pubObj.uid) }] : []), ...requestNames, ...copied];
    checkNoDuplicateNames(client);
    const certUid = await issueAndStore(ctx, { subject, spki, issuer, client, now });
    let oldAttrs = withoutAttribute(old.attributes, 'Name');
    oldAttrs = withoutAttribute(oldAttrs, 'Link', (v) => linkType(v) === LT.ReplacementObjectLink);
    await ctx.objects.save(old, touched({ ...old, attributes: withInstance(oldAttrs, 'Link', linkNode(LT.ReplacementObjectLink, certUid)) }, now));
    if (pubObj) await linkPublicKey(ctx, pubObj.uid, certUid, now, old.uid);
    ctx.log.info({ uid: old.uid, replacement: certUid }, 're-certified');
    return [T.text(Tag.UniqueIdentifier, certUid)];
  },
};
