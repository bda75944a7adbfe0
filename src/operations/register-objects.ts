/**
 * Register of the object types beyond symmetric keys, secret data and opaque objects: Private
 * Key, Public Key (KMIP 1.4 §2.2.3-2.2.4), Certificate (§2.2.1), Split Key, PGP Key and (2.x)
 * Certificate Request. register.ts dispatches here.
 *
 * Keys are read with node:crypto in the format they come in (key-formats.ts) and kept exactly
 * as registered, so that Get returns them byte for byte; their Cryptographic Algorithm and
 * Length become attributes (derived from the key: a declared value that disagrees is Invalid
 * Field; 1.x clients may call an EC key ECDSA, ECDH or ECMQV and that name is kept). The Digest
 * is over the registered Key Material (a structured one: over its TTLV encoding; 1.4 §3.17 and
 * the 1.2 test case TC-182). A key registered wrapped (Key Wrapping Data) is kept as it came,
 * unchecked and without a digest, like a wrapped symmetric key.
 */
import type { KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { req, reqValue } from '../codec/node.js';
import { readKeyBlock } from './register.js';
import { Enums, Tag, enumValueName } from '../spec/index.js';
import { T, type StructureNode } from '../ttlv/index.js';
import { dropEchoedCertificateType, parseCertificateObject } from './certificates.js';
import { algorithmsFor, digestInput, importKey, isEncryptedPkcs8, keyFacts, kindArticle, readAsymmetricBlock } from './key-formats.js';
import { digestNode, enumOf, intOf } from './lifecycle.js';
import { parseSplitKeyObject } from './split-key.js';
import { parseCertificateRequestObject } from './certificate-requests.js';

const OT = Enums.ObjectType;

/** What register.ts stores for an object (its ParsedObject). */
export interface RegisteredObject {
  object: StructureNode;
  implicit: KmipAttribute[];
  digest?: StructureNode;
}

export interface RegistrableType {
  /** The tag the object travels in. */
  tag: number;
  /** Drops attributes the client echoes from the object itself (checked against it). */
  dropEchoed?(attrs: KmipAttribute[], obj: StructureNode): KmipAttribute[];
  parse(obj: StructureNode, client: readonly KmipAttribute[]): RegisteredObject;
}

function algorithmName(a: number): string {
  return enumValueName('CryptographicAlgorithm', a) ?? `algorithm ${a}`;
}

const algAttr = (v: number): KmipAttribute => ({ name: 'Cryptographic Algorithm', index: 0, value: T.enum(Tag.CryptographicAlgorithm, v) });
const lenAttr = (v: number): KmipAttribute => ({ name: 'Cryptographic Length', index: 0, value: T.int(Tag.CryptographicLength, v) });

function agree(what: string, a: number | undefined, b: number | undefined): number | undefined {
  if (a !== undefined && b !== undefined && a !== b) throw new KmipError('InvalidField', `the Key Block's ${what} differs from the ${what} attribute`);
  return a ?? b;
}

function parseKey(objectType: number, obj: StructureNode, client: readonly KmipAttribute[]): RegisteredObject {
  const isPrivate = objectType === OT.PrivateKey;
  const blockNode = req(obj, Tag.KeyBlock, 'Structure');
  const block = readAsymmetricBlock(blockNode);
  const declaredAlg = agree('Cryptographic Algorithm', block.algorithm, enumOf(client, 'Cryptographic Algorithm'));
  const declaredLen = agree('Cryptographic Length', block.length, intOf(client, 'Cryptographic Length'));
  const wrapperTag = isPrivate ? Tag.PrivateKey : Tag.PublicKey;
  if (block.wrapping || !block.material || (isPrivate && isEncryptedPkcs8(block.format, block.material))) {
    // Wrapped, or an encrypted PKCS#8 key: kept as registered, unchecked, without a Digest.
    const implicit: KmipAttribute[] = [];
    if (declaredAlg !== undefined) implicit.push(algAttr(declaredAlg));
    if (declaredLen !== undefined) implicit.push(lenAttr(declaredLen));
    return { object: T.struct(wrapperTag, [blockNode]), implicit };
  }
  const key = importKey(isPrivate, block.format, block.material);
  const facts = keyFacts(key);
  if (declaredAlg !== undefined && !algorithmsFor(facts.kind).includes(declaredAlg)) {
    throw new KmipError('InvalidField', `the key is ${kindArticle(facts.kind)} key, not ${algorithmName(declaredAlg)}`);
  }
  if (declaredLen !== undefined && declaredLen !== facts.length) {
    throw new KmipError('InvalidField', `Cryptographic Length ${declaredLen} does not match the ${facts.length}-bit key`);
  }
  const algorithm = declaredAlg ?? facts.algorithm;
  // Kept as registered: Key Format Type, (Key Compression Type), Key Value's Key Material only.
  const kept = blockNode.value.filter((c) => c.tag === Tag.KeyFormatType || c.tag === Tag.KeyCompressionType);
  kept.push(T.struct(Tag.KeyValue, [block.material]));
  kept.push(T.enum(Tag.CryptographicAlgorithm, algorithm), T.int(Tag.CryptographicLength, facts.length));
  return {
    object: T.struct(wrapperTag, [T.struct(Tag.KeyBlock, kept)]),
    implicit: [algAttr(algorithm), lenAttr(facts.length)],
    digest: digestNode(digestInput(block.material), block.format),
  };
}

/**
 * A PGP Key (KMIP 1.2 §2.2.9): PGP Key Version and a Key Block whose Key Material is the
 * client's PGP key block (RFC 4880). kmipd does not read OpenPGP: the object is kept as
 * registered and returned so; Cryptographic Algorithm and Length come from the Key Block or the
 * attributes as declared, and the Digest is over the Key Material's bytes.
 */
function parsePgpKey(obj: StructureNode, client: readonly KmipAttribute[]): RegisteredObject {
  const version = reqValue(obj, Tag.PGPKeyVersion, 'Integer');
  if (version < 0) throw new KmipError('InvalidField', 'PGP Key Version must not be negative');
  const blockNode = req(obj, Tag.KeyBlock, 'Structure');
  const p = readKeyBlock(blockNode);
  if (!p.keyValue) throw new KmipError('MissingData', 'the Key Block has no Key Value');
  const algorithm = agree('Cryptographic Algorithm', p.algorithm, enumOf(client, 'Cryptographic Algorithm'));
  const length = agree('Cryptographic Length', p.length, intOf(client, 'Cryptographic Length'));
  const implicit: KmipAttribute[] = [];
  if (algorithm !== undefined) implicit.push(algAttr(algorithm));
  if (length !== undefined) implicit.push(lenAttr(length));
  if (p.wrapping) return { object: T.struct(Tag.PGPKey, [T.int(Tag.PGPKeyVersion, version), blockNode]), implicit };
  if (!p.key) throw new KmipError('InvalidField', 'a PGP Key\'s Key Material is a Byte String (the PGP key block)');
  const kept = blockNode.value.map((c) => (c.tag === Tag.KeyValue && c.type === 'Structure' ? T.struct(Tag.KeyValue, c.value.filter((k) => k.tag === Tag.KeyMaterial)) : c));
  return {
    object: T.struct(Tag.PGPKey, [T.int(Tag.PGPKeyVersion, version), T.struct(Tag.KeyBlock, kept)]),
    implicit,
    digest: digestNode(p.key, p.format),
  };
}

/** The object types register.ts hands to this module, by Object Type. */
export const REGISTRABLE: Readonly<Record<number, RegistrableType>> = {
  [OT.PrivateKey]: { tag: Tag.PrivateKey, parse: (obj, client) => parseKey(OT.PrivateKey, obj, client) },
  [OT.PublicKey]: { tag: Tag.PublicKey, parse: (obj, client) => parseKey(OT.PublicKey, obj, client) },
  [OT.Certificate]: { tag: Tag.Certificate, dropEchoed: dropEchoedCertificateType, parse: (obj) => parseCertificateObject(obj) },
  // Split Key parts (split-key.ts): checked and kept as registered.
  [OT.SplitKey]: { tag: Tag.SplitKey, parse: (obj) => parseSplitKeyObject(obj) },
  [OT.PGPKey]: { tag: Tag.PGPKey, parse: parsePgpKey },
  // Certificate Requests (2.x, certificate-requests.ts): PKCS#10, signature checked, kept as registered.
  [OT.CertificateRequest]: { tag: Tag.CertificateRequest, parse: (obj) => parseCertificateRequestObject(obj) },
};
