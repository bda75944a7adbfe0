/**
 * Key wrapping on Get (KMIP 1.4 §2.1.5 Key Wrapping Data, §2.1.6 Key Wrapping Specification;
 * 2.1 §2.1.10-2.1.11) and unwrapping of keys registered wrapped.
 *
 * Wrapping Method Encrypt only (MAC/sign, encrypt-then-MAC... are Feature Not Supported), with
 * the wrapping key named in Encryption Key Information:
 * - a Symmetric Key (AES): Block Cipher Mode NIST Key Wrap (RFC 3394, node:crypto
 *   'id-aesNNN-wrap') or AES Key Wrap with Padding (RFC 5649, 'id-aesNNN-wrap-pad'); NIST Key
 *   Wrap when no Block Cipher Mode is given;
 * - a Public Key (RSA): RSA-OAEP, Hashing Algorithm (default SHA-1) and MGF1 hash from the
 *   Cryptographic Parameters (node:crypto publicEncrypt).
 * The Cryptographic Parameters come from the Encryption Key Information, else from the
 * wrapping key's Cryptographic Parameters attribute.
 *
 * What is wrapped (Encoding Option): TTLV Encoding (the default) wraps the TTLV encoding of the
 * Key Value structure, Key Material plus the attributes named by Attribute Name; No Encoding
 * wraps the Key Material's bytes alone (a Byte String Key Material only, and no attributes:
 * Encoding Option Error otherwise). The wrapped bytes travel as the Key Value Byte String (the
 * Key Block's "Byte String for a wrapped Key Value"), as the 1.1/1.2 (TC-141), 1.4
 * (TC-SENSITIVE-1) and 2.0 (TC-WRAP) test cases show. One exception: an object the client
 * registered wrapped with its wrapped bytes in the Key Material of a Key Value structure (the
 * KMIP 1.4 TC-WRAP-1/3-14 form) is re-wrapped with No Encoding in that same form.
 *
 * The wrapping key must be usable to wrap now: not destroyed (Object Destroyed), Active (Wrong
 * Key Lifecycle State), its Cryptographic Usage Mask with Wrap Key (Incompatible Cryptographic
 * Usage Mask; 1.x: Permission Denied), Protect Stop Date not passed. Unwrapping needs the
 * unwrapping key Active or Deactivated (a Deactivated key may still process protected data,
 * 1.4 §3.22) with Unwrap Key; a symmetric key-encryption key made for wrapping may unwrap what
 * it wrapped (Wrap Key suffices: TC-WRAP-2 registers its KEK with Wrap Key alone and expects
 * Get in Not Wrapped form to succeed).
 *
 * Key material (wrapped or not) never reaches a log or an error message; intermediate
 * plaintext buffers are zeroed.
 */
import { constants, createCipheriv, createDecipheriv, privateDecrypt, publicEncrypt, type KeyObject } from 'node:crypto';
import { attributeTo1x, attributeTo2x, isV2 } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { all, opt, optValue, req, reqValue } from '../codec/node.js';
import type { StoredObject } from '../keystore/types.js';
import { Enums, Masks, Tag, type KmipVersion } from '../spec/index.js';
import { decodeTtlv, encodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext } from './context.js';
import { attributeParams, name, parseCryptoParams, rsaEncryptionScheme, type CryptoParams } from './crypto-params.js';
import { oaepDecrypt, oaepEncrypt } from './crypto-primitives.js';
import { storedKey } from './key-formats.js';
import { dateOf, enumOf, intOf, isDestroyed, loadObject, stateName } from './lifecycle.js';
import { storedTree, wipeTree } from './stored-tree.js';

const OT = Enums.ObjectType;
const KFT = Enums.KeyFormatType;
const ALG = Enums.CryptographicAlgorithm;
const MODE = Enums.BlockCipherMode;
const M = Masks.CryptographicUsageMask;
const ENC = Enums.EncodingOption;

const RFC3394_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
const RFC5649_IV = Buffer.from('a65959a6', 'hex');

/** A Key Wrapping Specification as the request gave it. */
export interface WrappingSpec {
  /** The request's Encryption Key Information, echoed in the Key Wrapping Data. */
  encryptionKeyInformation: StructureNode;
  keyUid: string;
  params: CryptoParams | undefined;
  encodingOption: number | undefined;
  attributeNames: string[];
}

/** Reads a Key Wrapping Specification; throws for what kmipd does not offer. */
export function readWrappingSpec(s: StructureNode): WrappingSpec {
  const method = reqValue(s, Tag.WrappingMethod, 'Enumeration');
  if (method !== Enums.WrappingMethod.Encrypt) {
    throw new KmipError('FeatureNotSupported', `Wrapping Method ${name('WrappingMethod', method)} is not supported (Encrypt only)`);
  }
  if (opt(s, Tag.MACSignatureKeyInformation, 'Structure')) {
    throw new KmipError('FeatureNotSupported', 'MAC/Signature Key Information is not supported (Wrapping Method Encrypt only)');
  }
  const eki = opt(s, Tag.EncryptionKeyInformation, 'Structure');
  if (!eki) throw new KmipError('MissingData', 'Wrapping Method Encrypt needs Encryption Key Information');
  const keyUid = reqValue(eki, Tag.UniqueIdentifier, 'TextString');
  const cp = opt(eki, Tag.CryptographicParameters, 'Structure');
  const encodingOption = optValue(s, Tag.EncodingOption, 'Enumeration');
  if (encodingOption !== undefined && encodingOption !== ENC.NoEncoding && encodingOption !== ENC.TTLVEncoding) {
    throw new KmipError('EncodingOptionError', `Encoding Option ${name('EncodingOption', encodingOption)} is not supported`);
  }
  const attributeNames = all(s, Tag.AttributeName, 'TextString').map((n) => n.value);
  if (encodingOption === ENC.NoEncoding && attributeNames.length > 0) {
    throw new KmipError('EncodingOptionError', 'with Encoding Option No Encoding no attributes can be wrapped with the key');
  }
  return { encryptionKeyInformation: eki, keyUid, params: cp ? parseCryptoParams(cp) : undefined, encodingOption, attributeNames };
}

// ---------------------------------------------------------------------------------------------
// The primitives

/** RFC 3394 (padded false) or RFC 5649 (padded true) AES key wrap of `data` under `kek`. */
export function aesKeyWrap(kek: Uint8Array, data: Uint8Array, padded: boolean): Buffer {
  const cipher = aesWrapCipher(kek, padded);
  if (!padded && (data.length < 16 || data.length % 8 !== 0)) {
    throw new KmipError('InvalidField', 'NIST Key Wrap (RFC 3394) wraps a multiple of 8 bytes, at least 16; use AES Key Wrap with Padding');
  }
  if (padded && data.length === 0) throw new KmipError('InvalidField', 'there is nothing to wrap');
  const c = createCipheriv(cipher, kek, padded ? RFC5649_IV : RFC3394_IV);
  return Buffer.concat([c.update(data), c.final()]);
}

/** The inverse of aesKeyWrap; a failed integrity check is Cryptographic Failure. */
export function aesKeyUnwrap(kek: Uint8Array, wrapped: Uint8Array, padded: boolean): Buffer {
  const cipher = aesWrapCipher(kek, padded);
  try {
    const d = createDecipheriv(cipher, kek, padded ? RFC5649_IV : RFC3394_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch {
    throw new KmipError('CryptographicFailure', 'the wrapped key did not unwrap (integrity check failed)');
  }
}

function aesWrapCipher(kek: Uint8Array, padded: boolean): string {
  if (![16, 24, 32].includes(kek.length)) throw new KmipError('InvalidField', 'the wrapping key is not an AES key');
  return `id-aes${kek.length * 8}-wrap${padded ? '-pad' : ''}`;
}

/** RSA-OAEP with the scheme's hashes and label. */
export function rsaOaepWrap(pub: KeyObject, p: CryptoParams, data: Uint8Array): Buffer {
  const s = oaepScheme(p);
  try {
    if (s.hash.alg === s.mgfHash.alg) {
      return publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: s.hash.node, ...(s.label ? { oaepLabel: s.label } : {}) }, data);
    }
    return oaepEncrypt(pub, s.hash, s.mgfHash, s.label ?? new Uint8Array(0), data);
  } catch (e) {
    if (e instanceof KmipError) throw e;
    throw new KmipError('CryptographicFailure', 'RSA-OAEP wrapping failed (is the key too long for the wrapping key?)');
  }
}

export function rsaOaepUnwrap(priv: KeyObject, p: CryptoParams, wrapped: Uint8Array): Buffer {
  const s = oaepScheme(p);
  try {
    if (s.hash.alg === s.mgfHash.alg) {
      return privateDecrypt({ key: priv, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: s.hash.node, ...(s.label ? { oaepLabel: s.label } : {}) }, wrapped);
    }
    return oaepDecrypt(priv, s.hash, s.mgfHash, s.label ?? new Uint8Array(0), wrapped);
  } catch (e) {
    if (e instanceof KmipError && e.reason !== 'CryptographicFailure') throw e;
    throw new KmipError('CryptographicFailure', 'the wrapped key did not unwrap');
  }
}

function oaepScheme(p: CryptoParams): Required<Pick<ReturnType<typeof rsaEncryptionScheme>, 'hash' | 'mgfHash'>> & { label?: Uint8Array } {
  const s = rsaEncryptionScheme(p);
  if (s.padding !== 'oaep' || !s.hash || !s.mgfHash) {
    throw new KmipError('UnsupportedCryptographicParameters', 'RSA key wrapping uses OAEP only');
  }
  return { hash: s.hash, mgfHash: s.mgfHash, ...(s.label ? { label: s.label } : {}) };
}

// ---------------------------------------------------------------------------------------------
// The wrapping and unwrapping keys

type WrapUse = 'wrap' | 'unwrap';

interface WrappingKey {
  obj: StoredObject;
  /** AES key bytes (zeroed by the caller). */
  aes?: Buffer;
  rsa?: KeyObject;
  params: CryptoParams;
}

async function openWrappingKey(ctx: OperationContext, uid: string, use: WrapUse, given: CryptoParams | undefined): Promise<WrappingKey> {
  const obj = await loadObject(ctx, uid, 'material');
  if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'the wrapping key has been destroyed');
  const types: number[] = use === 'wrap' ? [OT.SymmetricKey, OT.PublicKey] : [OT.SymmetricKey, OT.PrivateKey];
  if (!types.includes(obj.objectType)) {
    throw new KmipError('IllegalObjectType', `a key is ${use === 'wrap' ? 'wrapped under a Symmetric Key or a Public Key' : 'unwrapped with a Symmetric Key or a Private Key'}, not a ${name('ObjectType', obj.objectType)}`);
  }
  const okStates: number[] = use === 'wrap' ? [Enums.State.Active] : [Enums.State.Active, Enums.State.Deactivated];
  if (!okStates.includes(obj.state)) {
    throw new KmipError('WrongKeyLifecycleState', `the ${use}ping key is ${stateName(obj.state)}`);
  }
  const mask = (intOf(obj.attributes, 'Cryptographic Usage Mask') ?? 0) >>> 0;
  const allowed = use === 'wrap' ? M.WrapKey : obj.objectType === OT.SymmetricKey ? M.UnwrapKey | M.WrapKey : M.UnwrapKey;
  if ((mask & allowed) === 0) {
    const reason = isV2(ctx.version) ? 'IncompatibleCryptographicUsageMask' : 'PermissionDenied';
    throw new KmipError(reason, `the key's Cryptographic Usage Mask does not allow ${use === 'wrap' ? 'Wrap Key' : 'Unwrap Key'}`);
  }
  if (use === 'wrap') {
    const stop = dateOf(obj.attributes, 'Protect Stop Date');
    if (stop !== undefined && stop <= BigInt(Math.floor(ctx.now().getTime() / 1000))) {
      throw new KmipError('WrongKeyLifecycleState', 'the wrapping key\'s Protect Stop Date has passed');
    }
  }
  const params = given ?? attributeParams(obj.attributes) ?? {};
  const stored = await storedTree(ctx, obj);
  try {
    if (obj.objectType === OT.SymmetricKey) {
      const block = req(stored, Tag.KeyBlock, 'Structure');
      if (opt(block, Tag.KeyWrappingData, 'Structure')) throw new KmipError('KeyWrapTypeNotSupported', 'the wrapping key is itself kept wrapped');
      const alg = optValue(block, Tag.CryptographicAlgorithm, 'Enumeration') ?? enumOf(obj.attributes, 'Cryptographic Algorithm');
      if (alg !== ALG.AES) throw new KmipError('UnsupportedCryptographicParameters', `key wrapping with ${name('CryptographicAlgorithm', alg)} keys is not supported (AES, RSA)`);
      const bytes = symmetricBytes(block);
      return { obj, aes: Buffer.from(bytes), params };
    }
    const { key } = storedKey(obj.objectType, stored);
    if (key.asymmetricKeyType !== 'rsa') throw new KmipError('UnsupportedCryptographicParameters', `key wrapping with ${key.asymmetricKeyType ?? 'these'} keys is not supported (AES, RSA)`);
    return { obj, rsa: key, params };
  } finally {
    wipeTree(stored);
  }
}

function symmetricBytes(block: StructureNode): Uint8Array {
  const format = reqValue(block, Tag.KeyFormatType, 'Enumeration');
  const kv = req(block, Tag.KeyValue, 'Structure');
  const material = kv.value.find((c) => c.tag === Tag.KeyMaterial);
  if (format === KFT.Raw && material?.type === 'ByteString') return material.value;
  if (format === KFT.TransparentSymmetricKey && material?.type === 'Structure') return reqValue(material, Tag.Key, 'ByteString');
  throw new KmipError('KeyFormatTypeNotSupported', `a symmetric key kept in ${name('KeyFormatType', format)} format cannot wrap`);
}


function aesPadded(p: CryptoParams): boolean {
  const mode = p.blockCipherMode ?? MODE.NISTKeyWrap;
  if (mode === MODE.NISTKeyWrap) return false;
  if (mode === MODE.AESKeyWrapPadding) return true;
  throw new KmipError('UnsupportedCryptographicParameters', `AES key wrapping with Block Cipher Mode ${name('BlockCipherMode', mode)} is not supported (NIST Key Wrap, AES Key Wrap with Padding)`);
}

function checkAlgorithm(p: CryptoParams, expected: number): void {
  if (p.cryptographicAlgorithm !== undefined && p.cryptographicAlgorithm !== expected) {
    throw new KmipError('BadCryptographicParameters', `the Cryptographic Parameters name ${name('CryptographicAlgorithm', p.cryptographicAlgorithm)} but the wrapping key is ${name('CryptographicAlgorithm', expected)}`);
  }
}

function encrypt(k: WrappingKey, data: Uint8Array): Buffer {
  if (k.aes) {
    checkAlgorithm(k.params, ALG.AES);
    return aesKeyWrap(k.aes, data, aesPadded(k.params));
  }
  checkAlgorithm(k.params, ALG.RSA);
  return rsaOaepWrap(k.rsa!, k.params, data);
}

function decrypt(k: WrappingKey, data: Uint8Array): Buffer {
  if (k.aes) {
    checkAlgorithm(k.params, ALG.AES);
    return aesKeyUnwrap(k.aes, data, aesPadded(k.params));
  }
  checkAlgorithm(k.params, ALG.RSA);
  return rsaOaepUnwrap(k.rsa!, k.params, data);
}

// ---------------------------------------------------------------------------------------------
// Objects

/** Whether a stored or returned object's Key Block carries Key Wrapping Data. */
export function isWrapped(object: StructureNode): boolean {
  const block = object.value.find((c) => c.tag === Tag.KeyBlock);
  return block?.type === 'Structure' && block.value.some((c) => c.tag === Tag.KeyWrappingData);
}

/**
 * Whether a registered-wrapped object keeps its wrapped bytes in the Key Material of a Key Value
 * structure (the form TC-WRAP-1/3-14 register) rather than as the Key Value Byte String.
 */
export function wrappedInKeyMaterial(object: StructureNode): boolean {
  const block = object.value.find((c) => c.tag === Tag.KeyBlock);
  if (block?.type !== 'Structure' || !block.value.some((c) => c.tag === Tag.KeyWrappingData)) return false;
  return block.value.some((c) => c.tag === Tag.KeyValue && c.type === 'Structure');
}

/**
 * `object` (a plaintext key object: Symmetric Key, Private Key, Public Key, Secret Data, Split
 * Key) wrapped as `spec` asks. `attrs` are the object's attributes, for Attribute Name.
 * `inKeyMaterial`: with No Encoding, the wrapped bytes go in a Key Value structure's Key
 * Material (the form the object was registered wrapped in, see wrappedInKeyMaterial) instead of
 * the Key Value Byte String.
 */
export async function wrapObject(
  ctx: OperationContext,
  object: StructureNode,
  attrs: StoredObject['attributes'],
  spec: WrappingSpec,
  inKeyMaterial = false,
): Promise<StructureNode> {
  const blockIdx = object.value.findIndex((c) => c.tag === Tag.KeyBlock);
  const block = object.value[blockIdx];
  if (blockIdx < 0 || block?.type !== 'Structure') throw new KmipError('InvalidField', `a ${name('ObjectType', object.tag)} has no Key Block to wrap`);
  const kv = req(block, Tag.KeyValue, 'Structure');
  const material = kv.value.find((c) => c.tag === Tag.KeyMaterial);
  if (!material) throw new KmipError('KeyValueNotPresent', 'the object has no Key Material to wrap');

  const noEncoding = spec.encodingOption === ENC.NoEncoding;
  let plain: Buffer;
  if (noEncoding) {
    if (material.type !== 'ByteString') {
      throw new KmipError('EncodingOptionError', 'No Encoding wraps a Byte String Key Material only; this key\'s format is structured (use TTLV Encoding)');
    }
    plain = Buffer.from(material.value);
  } else {
    const children: TtlvNode[] = [material];
    const named: StoredObject['attributes'] = [];
    for (const n of spec.attributeNames) {
      const found = attrs.filter((a) => a.name === n);
      if (found.length === 0) throw new KmipError('ItemNotFound', `the object has no attribute '${n}' to wrap with it`);
      named.push(...found);
    }
    if (named.length > 0) {
      if (isV2(ctx.version)) children.push(T.struct(Tag.Attributes, named.map(attributeTo2x)));
      else children.push(...named.map((a) => attributeTo1x(a, a.index > 0)));
    }
    plain = encodeTtlv(T.struct(Tag.KeyValue, children));
  }
  const key = await openWrappingKey(ctx, spec.keyUid, 'wrap', spec.params);
  let wrapped: Buffer;
  try {
    wrapped = encrypt(key, plain);
  } finally {
    plain.fill(0);
    key.aes?.fill(0);
  }
  const wrappingData: TtlvNode[] = [T.enum(Tag.WrappingMethod, Enums.WrappingMethod.Encrypt), spec.encryptionKeyInformation];
  if (spec.encodingOption !== undefined) wrappingData.push(T.enum(Tag.EncodingOption, spec.encodingOption));
  const keyValue = inKeyMaterial && noEncoding
    ? T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, wrapped)])
    : T.bytes(Tag.KeyValue, wrapped);
  const out: TtlvNode[] = [];
  for (const c of block.value) {
    if (c.tag === Tag.KeyValue) out.push(keyValue);
    else if (c.tag !== Tag.KeyWrappingData) out.push(c);
  }
  out.push(T.struct(Tag.KeyWrappingData, wrappingData));
  const value = [...object.value];
  value[blockIdx] = T.struct(Tag.KeyBlock, out);
  return T.struct(object.tag, value);
}

/**
 * A registered-wrapped object (its Key Block carries Key Wrapping Data) unwrapped with the key
 * its Encryption Key Information names, which this client must be able to use. The result
 * holds the Key Material only (attributes wrapped with it are not returned in the Key Value).
 */
export async function unwrapObject(ctx: OperationContext, object: StructureNode): Promise<StructureNode> {
  const blockIdx = object.value.findIndex((c) => c.tag === Tag.KeyBlock);
  const block = object.value[blockIdx];
  if (blockIdx < 0 || block?.type !== 'Structure') return object;
  const kwd = opt(block, Tag.KeyWrappingData, 'Structure');
  if (!kwd) return object;
  const method = reqValue(kwd, Tag.WrappingMethod, 'Enumeration');
  if (method !== Enums.WrappingMethod.Encrypt || opt(kwd, Tag.MACSignatureKeyInformation, 'Structure')) {
    throw new KmipError('KeyWrapTypeNotSupported', `kmipd cannot unwrap a key wrapped with Wrapping Method ${name('WrappingMethod', method)}`);
  }
  const eki = opt(kwd, Tag.EncryptionKeyInformation, 'Structure');
  if (!eki) throw new KmipError('KeyWrapTypeNotSupported', 'the Key Wrapping Data names no Encryption Key Information; kmipd cannot unwrap it');
  const cp = opt(eki, Tag.CryptographicParameters, 'Structure');
  const encoding = optValue(kwd, Tag.EncodingOption, 'Enumeration') ?? ENC.TTLVEncoding;
  const kv = block.value.find((c) => c.tag === Tag.KeyValue);
  let wrapped: Uint8Array | undefined;
  if (kv?.type === 'ByteString') wrapped = kv.value;
  else if (kv?.type === 'Structure') {
    const m = kv.value.find((c) => c.tag === Tag.KeyMaterial);
    if (m?.type === 'ByteString') wrapped = m.value;
  }
  if (!wrapped) throw new KmipError('KeyValueNotPresent', 'the wrapped Key Value holds no bytes');
  const key = await openWrappingKey(ctx, reqValue(eki, Tag.UniqueIdentifier, 'TextString'), 'unwrap', cp ? parseCryptoParams(cp) : undefined);
  let plain: Buffer;
  try {
    plain = decrypt(key, wrapped);
  } finally {
    key.aes?.fill(0);
  }
  let material: TtlvNode;
  try {
    if (encoding === ENC.NoEncoding) material = T.bytes(Tag.KeyMaterial, Buffer.from(plain));
    else {
      let decoded: TtlvNode;
      try {
        decoded = decodeTtlv(plain);
      } catch {
        throw new KmipError('CryptographicFailure', 'the unwrapped Key Value is not a TTLV Key Value structure');
      }
      const m = decoded.type === 'Structure' && decoded.tag === Tag.KeyValue ? decoded.value.find((c) => c.tag === Tag.KeyMaterial) : undefined;
      if (!m) throw new KmipError('CryptographicFailure', 'the unwrapped Key Value is not a TTLV Key Value structure');
      material = m;
    }
  } finally {
    plain.fill(0);
  }
  const out: TtlvNode[] = [];
  for (const c of block.value) {
    if (c.tag === Tag.KeyValue) out.push(T.struct(Tag.KeyValue, [material]));
    else if (c.tag !== Tag.KeyWrappingData) out.push(c);
  }
  const value = [...object.value];
  value[blockIdx] = T.struct(Tag.KeyBlock, out);
  return T.struct(object.tag, value);
}
