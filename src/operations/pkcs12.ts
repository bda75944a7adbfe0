/**
 * Key Format Type PKCS#12 (KMIP 1.4+; 1.4 §3.29 Link, 2.1 §4.24 "Link"): a private key, its
 * certificate chain and a password travel together in one PKCS#12 container (src/pki/pkcs12.ts).
 *
 * - The password is a Secret Data object the private key names with a PKCS#12 Password Link;
 *   its Key Material bytes are the password. Using it (to build or to open a container) needs
 *   it Active: otherwise Wrong Key Lifecycle State (1.x clients: Permission Denied, as the KMIP
 *   1.4 TC-PKCS12-2 expects).
 * - The chain: the private key's PKCS#12 Certificate Link names its certificate, each
 *   certificate's PKCS#12 Certificate Link the next one up (TC-PKCS12-1); a plain Certificate
 *   Link is followed when there is no PKCS#12 one. The first certificate must belong to the key.
 * - Get with Key Format Type PKCS#12 returns the container in a Key Block holding only the Key
 *   Format Type (the PKCS#12 itself says what the key is): KMIP 2.x as the Key Material of the
 *   Key Value, 1.x as the Key Value Byte String, as the 2.0 and 1.4 test cases carry it.
 * - Register with Key Format Type PKCS#12 (register.ts) opens the container with the linked
 *   password, keeps the private key (as PKCS#8) and registers each certificate as a
 *   Certificate object, linked from the key (and each to its issuer) by PKCS#12 Certificate
 *   Links; the PKCS#12 Friendly Name attribute names both, as the 1.4 test case shows.
 *
 * The password never reaches a log or an error; buffers holding it are zeroed.
 */
import { isV2 } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { opt, optValue, req } from '../codec/node.js';
import type { KmipAttribute } from '../codec/attributes.js';
import type { StoredObject } from '../keystore/types.js';
import { buildPkcs12, certificateMatchesKey, Pkcs12Error, readPkcs12, type Pkcs12Contents } from '../pki/pkcs12.js';
import { Enums, Tag } from '../spec/index.js';
import { encodeTtlv, T, type StructureNode } from '../ttlv/index.js';
import { certificateObject, parseCertificateObject } from './certificates.js';
import type { OperationContext } from './context.js';
import { algorithmsFor, keyFacts, keyObjectNode, storedKey } from './key-formats.js';
import { digestNode, enumOf, initialAttributes, intOf, isDestroyed, linkNode, linkType, loadObject, stateName } from './lifecycle.js';
import { storedTree, wipeTree } from './stored-tree.js';

const OT = Enums.ObjectType;
const LT = Enums.LinkType;
const KFT = Enums.KeyFormatType;

/** The object a Link of `type` names, if any. */
export function linkedUid(attrs: readonly KmipAttribute[], type: number): string | undefined {
  for (const a of attrs) {
    if (a.name !== 'Link' || linkType(a.value) !== type || a.value.type !== 'Structure') continue;
    const id = a.value.value.find((c) => c.tag === Tag.LinkedObjectIdentifier);
    if (id?.type === 'TextString') return id.value;
  }
  return undefined;
}

function friendlyName(attrs: readonly KmipAttribute[]): string | undefined {
  const a = attrs.find((x) => x.name === 'PKCS#12 Friendly Name');
  return a?.value.type === 'TextString' ? a.value.value : undefined;
}

/** The bytes of the Active Secret Data a PKCS#12 Password Link names (caller zeroes them). */
export async function pkcs12Password(ctx: OperationContext, passwordUid: string | undefined): Promise<Buffer> {
  if (passwordUid === undefined) {
    throw new KmipError('MissingData', 'a PKCS#12 needs a password: link a Secret Data with a PKCS#12 Password Link');
  }
  const obj = await loadObject(ctx, passwordUid, 'material');
  if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'the PKCS#12 password object has been destroyed');
  if (obj.objectType !== OT.SecretData) throw new KmipError('IllegalObjectType', 'the PKCS#12 Password Link must name a Secret Data');
  if (obj.state !== Enums.State.Active) {
    throw new KmipError(isV2(ctx.version) ? 'WrongKeyLifecycleState' : 'PermissionDenied', `the PKCS#12 password object is ${stateName(obj.state)}, not Active`);
  }
  const tree = await storedTree(ctx, obj);
  try {
    const block = req(tree, Tag.KeyBlock, 'Structure');
    if (opt(block, Tag.KeyWrappingData, 'Structure')) throw new KmipError('KeyWrapTypeNotSupported', 'the PKCS#12 password object is kept wrapped');
    const kv = req(block, Tag.KeyValue, 'Structure');
    const m = kv.value.find((c) => c.tag === Tag.KeyMaterial);
    if (m?.type !== 'ByteString') throw new KmipError('InvalidField', 'the PKCS#12 password object holds no bytes');
    return Buffer.from(m.value);
  } finally {
    wipeTree(tree);
  }
}

/** The DER certificate of a Certificate object this client may read. */
async function certificateDer(ctx: OperationContext, uid: string): Promise<{ obj: StoredObject; der: Buffer }> {
  const obj = await loadObject(ctx, uid, 'material');
  if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'a certificate of the PKCS#12 chain has been destroyed');
  if (obj.objectType !== OT.Certificate) throw new KmipError('IllegalObjectType', 'a PKCS#12 Certificate Link must name a Certificate');
  const tree = await storedTree(ctx, obj);
  const v = tree.value.find((c) => c.tag === Tag.CertificateValue);
  if (v?.type !== 'ByteString') throw new KmipError('InternalServerError', 'the stored certificate is malformed');
  return { obj, der: Buffer.from(v.value) };
}

const MAX_CHAIN = 10;

/** The key's certificate chain: PKCS#12 Certificate Links (else Certificate Links) from the key up. */
async function chainOf(ctx: OperationContext, key: StoredObject): Promise<Buffer[]> {
  const next = (attrs: readonly KmipAttribute[]): string | undefined => linkedUid(attrs, LT.PKCS_12CertificateLink) ?? linkedUid(attrs, LT.CertificateLink);
  const out: Buffer[] = [];
  const seen = new Set<string>([key.uid]);
  let uid = next(key.attributes);
  while (uid !== undefined && !seen.has(uid)) {
    if (out.length >= MAX_CHAIN) throw new KmipError('InvalidField', `the PKCS#12 certificate chain is longer than ${MAX_CHAIN}`);
    seen.add(uid);
    const { obj, der } = await certificateDer(ctx, uid);
    out.push(der);
    uid = next(obj.attributes);
  }
  return out;
}

/** Get in Key Format Type PKCS#12: the Private Key object as a PKCS#12 container. */
export async function privateKeyAsPkcs12(ctx: OperationContext, obj: StoredObject, stored: StructureNode): Promise<StructureNode> {
  if (obj.objectType !== OT.PrivateKey) throw new KmipError('KeyFormatTypeNotSupported', 'only a Private Key can be returned in PKCS#12 format');
  const { key } = storedKey(obj.objectType, stored);
  const chain = await chainOf(ctx, obj);
  if (chain[0] && !certificateMatchesKey(chain[0], key)) {
    throw new KmipError('InvalidField', "the certificate the private key's PKCS#12 Certificate Link names is not this key's");
  }
  const password = await pkcs12Password(ctx, linkedUid(obj.attributes, LT.PKCS_12PasswordLink));
  let pfx: Buffer;
  try {
    const name = friendlyName(obj.attributes);
    pfx = await buildPkcs12({ key, certificates: chain, password, ...(name !== undefined ? { friendlyName: name } : {}) });
  } finally {
    password.fill(0);
  }
  // KMIP 2.x: a Key Value structure with the PKCS#12 as its Key Material (TC-PKCS12-1-20); the
  // KMIP 1.4 test cases carry it as the Key Value Byte String itself (TC-PKCS12-1-14).
  const keyValue = isV2(ctx.version) ? T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, pfx)]) : T.bytes(Tag.KeyValue, pfx);
  return T.struct(Tag.PrivateKey, [T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.PKCS_12), keyValue])]);
}

/** Register in Key Format Type PKCS#12: opens the container with the linked password. */
export async function openPkcs12(ctx: OperationContext, container: Uint8Array, passwordUid: string | undefined): Promise<Pkcs12Contents> {
  const password = await pkcs12Password(ctx, passwordUid);
  try {
    return readPkcs12(container, password);
  } catch (e) {
    if (!(e instanceof Pkcs12Error)) throw e;
    if (e.kind === 'unsupported') throw new KmipError('KeyFormatTypeNotSupported', e.message);
    if (e.kind === 'password') throw new KmipError('CryptographicFailure', e.message);
    throw new KmipError('InvalidField', e.message);
  } finally {
    password.fill(0);
  }
}

/** The PKCS#12 bytes of a registered Key Block: the Key Value Byte String (1.4) or its Key Material (2.0). */
function containerBytes(block: StructureNode): Uint8Array {
  if (opt(block, Tag.KeyWrappingData, 'Structure')) {
    throw new KmipError('KeyWrapTypeNotSupported', 'a PKCS#12 is protected by its password; kmipd does not take it wrapped under another key');
  }
  const kv = block.value.find((c) => c.tag === Tag.KeyValue);
  if (kv?.type === 'ByteString') return kv.value;
  const m = kv?.type === 'Structure' ? kv.value.find((c) => c.tag === Tag.KeyMaterial) : undefined;
  if (m?.type === 'ByteString') return m.value;
  throw new KmipError('InvalidField', 'a PKCS#12 Key Block carries the PKCS#12 as a Byte String (Key Value or Key Material)');
}

interface NewObject {
  uid: string;
  objectType: number;
  state: number;
  attributes: KmipAttribute[];
  material: Buffer;
}

/**
 * Register of a Private Key in Key Format Type PKCS#12: the key (kept as PKCS#8) and every
 * certificate in the container (Certificate objects), linked by PKCS#12 Certificate Links.
 * `client` are the request's attributes for the key (its PKCS#12 Password Link among them).
 * Returns the private key's Unique Identifier.
 */
export async function registerPkcs12(ctx: OperationContext, obj: StructureNode, client: readonly KmipAttribute[]): Promise<string> {
  const block = req(obj, Tag.KeyBlock, 'Structure');
  const contents = await openPkcs12(ctx, containerBytes(block), linkedUid(client, LT.PKCS_12PasswordLink));
  const facts = keyFacts(contents.key);
  const declaredAlg = optValue(block, Tag.CryptographicAlgorithm, 'Enumeration') ?? enumOf(client, 'Cryptographic Algorithm');
  if (declaredAlg !== undefined && !algorithmsFor(facts.kind).includes(declaredAlg)) {
    throw new KmipError('InvalidField', `the PKCS#12 holds ${facts.kind === 'rsa' ? 'an RSA' : 'an EC'} key, not the declared algorithm`);
  }
  const declaredLen = optValue(block, Tag.CryptographicLength, 'Integer') ?? intOf(client, 'Cryptographic Length');
  if (declaredLen !== undefined && declaredLen !== facts.length) {
    throw new KmipError('InvalidField', `Cryptographic Length ${declaredLen} does not match the ${facts.length}-bit key in the PKCS#12`);
  }
  const now = ctx.now();
  const requestName = friendlyName(client);
  const created: NewObject[] = [];
  try {
    // The certificates, the root end first, so that each can link to its issuer.
    let issuerUid: string | undefined;
    const certUids: string[] = [];
    for (let i = contents.certificates.length - 1; i >= 0; i--) {
      const cert = contents.certificates[i]!;
      const parsed = parseCertificateObject(certificateObject(cert.der));
      const certClient: KmipAttribute[] = [];
      const name = cert.friendlyName ?? (i === 0 ? (requestName ?? contents.friendlyName) : undefined);
      if (name !== undefined) certClient.push({ name: 'PKCS#12 Friendly Name', index: 0, value: T.text(Tag.PKCS_12FriendlyName, name) });
      if (issuerUid !== undefined) certClient.push({ name: 'Link', index: 0, value: linkNode(LT.PKCS_12CertificateLink, issuerUid) });
      const uid = ctx.objects.newUid();
      const { attributes, state } = initialAttributes({ uid, objectType: OT.Certificate, now, client: certClient, implicit: parsed.implicit, digest: parsed.digest });
      created.push({ uid, objectType: OT.Certificate, state, attributes, material: encodeTtlv(parsed.object) });
      certUids.unshift(uid);
      issuerUid = uid;
    }
    // The private key, as PKCS#8, linked to its certificate (the first one, when it is the key's).
    const der = contents.key.export({ type: 'pkcs8', format: 'der' });
    const algorithm = declaredAlg ?? facts.algorithm;
    const keyObject = keyObjectNode(OT.PrivateKey, KFT.PKCS_8, T.bytes(Tag.KeyMaterial, der), algorithm, facts.length);
    const keyClient: KmipAttribute[] = [...client];
    if (requestName === undefined && contents.friendlyName !== undefined) {
      keyClient.push({ name: 'PKCS#12 Friendly Name', index: 0, value: T.text(Tag.PKCS_12FriendlyName, contents.friendlyName) });
    }
    const own = contents.certificates[0] && certificateMatchesKey(contents.certificates[0].der, contents.key) ? certUids[0] : undefined;
    if (own !== undefined) keyClient.push({ name: 'Link', index: 0, value: linkNode(LT.PKCS_12CertificateLink, own) });
    const uid = ctx.objects.newUid();
    const { attributes, state } = initialAttributes({
      uid,
      objectType: OT.PrivateKey,
      now,
      client: keyClient,
      implicit: [
        { name: 'Cryptographic Algorithm', index: 0, value: T.enum(Tag.CryptographicAlgorithm, algorithm) },
        { name: 'Cryptographic Length', index: 0, value: T.int(Tag.CryptographicLength, facts.length) },
      ],
      digest: digestNode(der, KFT.PKCS_8),
    });
    created.push({ uid, objectType: OT.PrivateKey, state, attributes, material: encodeTtlv(keyObject) });
    der.fill(0);
    for (const o of created) await ctx.objects.create(o);
    ctx.log.info({ uid, certificates: certUids }, 'registered a PKCS#12: a private key and its certificates');
    return uid;
  } finally {
    for (const o of created) o.material.fill(0);
  }
}
