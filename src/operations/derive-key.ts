/**
 * Derive Key (KMIP 1.4 §4.6; 2.1 §6.1 "Derive Key"): a new Symmetric Key or Secret Data from one
 * or more existing objects, by a Derivation Method with its Derivation Parameters.
 *
 * Request: Object Type (Symmetric Key or Secret Data), Unique Identifier(s) of the base object(s)
 * (none: the ID Placeholder), Derivation Method, Derivation Parameters, 1.x Template-Attribute /
 * 2.x Attributes (Cryptographic Length required: it is the length of the derived key).
 * Response: Unique Identifier of the new object (the optional 1.x Template-Attribute of
 * implicitly set attributes is omitted, as in the OASIS test cases).
 *
 * Methods (all with node:crypto; the output is the first Cryptographic Length bits):
 * - PBKDF2 (RFC 8018): password = the base object's key material; Salt and Iteration Count
 *   required; the PRF is HMAC with the Hashing Algorithm of the Cryptographic Parameters,
 *   HMAC-SHA-1 when none is given (what TC-DERIVEKEY-3/4 expect: RFC 6070's vectors).
 * - HASH: the hash of the base object's key material (Hashing Algorithm required). The base
 *   object supplies the input, so Derivation Data is refused (Invalid Field) rather than
 *   silently ignored or mixed in by a rule of kmipd's own.
 * - HMAC: HMAC keyed with the base object's key material over the Derivation Data (both
 *   required).
 * - HKDF (2.0+; RFC 5869): input key material = the base key, Salt optional, Derivation Data as
 *   the info.
 * - Asymmetric Key (1.4+) with ECDH: one private key and one public key (either order), on the
 *   same curve; the output is the leading bytes of the shared secret (the x-coordinate).
 * The derived length may not exceed what the method yields (the digest size for HASH / HMAC,
 * the shared secret for ECDH): Invalid Field. ENCRYPT, NIST800-108-C/F/DPI and AWS Signature
 * Version 4 are not implemented (Feature Not Supported).
 *
 * Each base object must be visible to the client with its material, not destroyed, of a type
 * the method takes (Illegal Object Type; 1.x Illegal Operation), Active (Wrong Key Lifecycle
 * State; 1.x Permission Denied) and have the Derive Key bit in its Cryptographic Usage Mask
 * (Incompatible Cryptographic Usage Mask; 1.x Permission Denied).
 *
 * The new object is kept like every other (sealed by the ObjectService, owned by the client),
 * with the template's attributes, a Derivation Base Object Link to each base object; each base
 * object gets a Derived Key Link to it (KMIP 1.4 §3.35 Link).
 */
import { createHash, createHmac, diffieHellman, hkdf, pbkdf2, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { all, opt, optValue, req, reqValue } from '../codec/node.js';
import type { StoredObject } from '../keystore/types.js';
import { Enums, Masks, Tag, compareVersions, enumValueName } from '../spec/index.js';
import { encodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { checkInitialAttributes, readRequestAttributes } from './attribute-rules.js';
import type { OperationContext, OperationHandler } from './context.js';
import { algorithmName, checkProtectionStorageMasks, dropEchoedAttributes, keyBytesFor, setDesParity, symmetricKeyObject } from './create.js';
import { hashInfo, name, parseCryptoParams, unsupported, type CryptoParams, type HashInfo } from './crypto-params.js';
import { storedKey } from './key-formats.js';
import { checkNoDuplicateNames, digestNode, enumOf, initialAttributes, intOf, isDestroyed, linkNode, loadObject, renumber, stateName, touched } from './lifecycle.js';
import { storedTree, wipeTree } from './stored-tree.js';
import { checkNewObject } from './constraints.js';

const OT = Enums.ObjectType;
const DM = Enums.DerivationMethod;
const KFT = Enums.KeyFormatType;
const LT = Enums.LinkType;

/** Largest derived object, in bits (a 1024-byte secret). */
export const MAX_DERIVED_BITS = 8192;
/** PBKDF2 iterations run on the thread pool; more than this is refused (Invalid Field). */
export const MAX_PBKDF2_ITERATIONS = 10_000_000;

const pbkdf2Async = promisify(pbkdf2);
const hkdfAsync = promisify(hkdf);

interface DerivationParameters {
  params: CryptoParams;
  derivationData?: Buffer;
  salt?: Buffer;
  iterationCount?: number;
  iv?: Buffer;
}

function readParameters(s: StructureNode): DerivationParameters {
  const cp = opt(s, Tag.CryptographicParameters, 'Structure');
  const p: DerivationParameters = { params: cp ? parseCryptoParams(cp) : {} };
  const data = optValue(s, Tag.DerivationData, 'ByteString');
  if (data !== undefined) p.derivationData = Buffer.from(data);
  const salt = optValue(s, Tag.Salt, 'ByteString');
  if (salt !== undefined) p.salt = Buffer.from(salt);
  const it = optValue(s, Tag.IterationCount, 'Integer');
  if (it !== undefined) p.iterationCount = it;
  const iv = optValue(s, Tag.InitializationVector, 'ByteString');
  if (iv !== undefined) p.iv = Buffer.from(iv);
  return p;
}

function typeName(t: number): string {
  return name('ObjectType', t);
}

/** A base object checked for Derive Key (see the header). */
async function loadBase(ctx: OperationContext, uid: string, types: readonly number[]): Promise<StoredObject> {
  const obj = await loadObject(ctx, uid, 'material');
  if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'the base object has been destroyed');
  if (!types.includes(obj.objectType)) {
    throw new KmipError('IllegalObjectType', `this derivation needs a ${types.map(typeName).join(' or ')} as its base, not a ${typeName(obj.objectType)}`);
  }
  if (obj.state !== Enums.State.Active) throw new KmipError('WrongKeyLifecycleState', `the base object is ${stateName(obj.state)}; Derive Key needs an Active one`);
  const mask = (intOf(obj.attributes, 'Cryptographic Usage Mask') ?? 0) >>> 0;
  const bit = Masks.CryptographicUsageMask.DeriveKey >>> 0;
  if ((mask & bit) >>> 0 !== bit) throw new KmipError('IncompatibleCryptographicUsageMask', "the base object's Cryptographic Usage Mask does not allow Derive Key");
  return obj;
}



/** The key bytes of a Symmetric Key or Secret Data (Raw, Opaque or Transparent Symmetric Key). Zero it when done. */
async function secretBytes(ctx: OperationContext, obj: StoredObject): Promise<Buffer> {
  const stored = await storedTree(ctx, obj);
  try {
    const block = req(stored, Tag.KeyBlock, 'Structure');
    if (opt(block, Tag.KeyWrappingData, 'Structure')) {
      throw new KmipError('KeyWrapTypeNotSupported', 'the base object was registered wrapped under a key kmipd does not hold');
    }
    const format = reqValue(block, Tag.KeyFormatType, 'Enumeration');
    const kv = req(block, Tag.KeyValue, 'Structure');
    const m = kv.value.find((c) => c.tag === Tag.KeyMaterial);
    if (!m) throw new KmipError('KeyValueNotPresent', 'the base object has no Key Material');
    if ((format === KFT.Raw || format === KFT.Opaque) && m.type === 'ByteString') return Buffer.from(m.value);
    if (format === KFT.TransparentSymmetricKey && m.type === 'Structure') return Buffer.from(reqValue(m, Tag.Key, 'ByteString'));
    throw new KmipError('KeyFormatTypeNotSupported', `kmipd cannot derive from key material kept in ${name('KeyFormatType', format)} format`);
  } finally {
    wipeTree(stored);
  }
}

async function asymmetricKey(ctx: OperationContext, obj: StoredObject): Promise<KeyObject> {
  const stored = await storedTree(ctx, obj);
  try {
    return storedKey(obj.objectType, stored).key;
  } finally {
    wipeTree(stored);
  }
}

function requireHash(p: DerivationParameters, method: string): HashInfo {
  if (p.params.hashingAlgorithm === undefined) throw new KmipError('MissingData', `${method} derivation needs a Hashing Algorithm in the Cryptographic Parameters`);
  return hashInfo(p.params.hashingAlgorithm);
}

function truncate(out: Buffer, bytes: number, what: string): Buffer {
  if (bytes > out.length) {
    out.fill(0);
    throw new KmipError('InvalidField', `${what} yields ${out.length * 8} bits; a ${bytes * 8}-bit key cannot be derived from it`);
  }
  const r = Buffer.from(out.subarray(0, bytes));
  out.fill(0);
  return r;
}

/** Derives `bytes` bytes from the base objects. The caller zeroes the result. */
async function derive(ctx: OperationContext, method: number, bases: readonly StoredObject[], p: DerivationParameters, bytes: number): Promise<Buffer> {
  const one = (): StoredObject => {
    if (bases.length !== 1) throw new KmipError('InvalidField', `${name('DerivationMethod', method)} derives from exactly one base object, not ${bases.length}`);
    return bases[0]!;
  };
  switch (method) {
    case DM.PBKDF2: {
      if (p.salt === undefined) throw new KmipError('MissingData', 'PBKDF2 needs a Salt');
      if (p.iterationCount === undefined) throw new KmipError('MissingData', 'PBKDF2 needs an Iteration Count');
      if (p.iterationCount < 1 || p.iterationCount > MAX_PBKDF2_ITERATIONS) {
        throw new KmipError('InvalidField', `Iteration Count must be from 1 to ${MAX_PBKDF2_ITERATIONS}`);
      }
      const hash = p.params.hashingAlgorithm === undefined ? hashInfo(Enums.HashingAlgorithm.SHA_1) : hashInfo(p.params.hashingAlgorithm);
      const password = await secretBytes(ctx, one());
      try {
        return await pbkdf2Async(password, p.salt, p.iterationCount, bytes, hash.node);
      } finally {
        password.fill(0);
      }
    }
    case DM.HASH: {
      const hash = requireHash(p, 'HASH');
      if (p.derivationData !== undefined) {
        throw new KmipError('InvalidField', 'HASH derivation hashes the base object\'s key material; Derivation Data has no place in it');
      }
      const key = await secretBytes(ctx, one());
      try {
        return truncate(createHash(hash.node).update(key).digest(), bytes, `${name('HashingAlgorithm', hash.alg)}`);
      } finally {
        key.fill(0);
      }
    }
    case DM.HMAC: {
      const hash = requireHash(p, 'HMAC');
      if (p.derivationData === undefined) throw new KmipError('MissingData', 'HMAC derivation needs Derivation Data');
      const key = await secretBytes(ctx, one());
      try {
        return truncate(createHmac(hash.node, key).update(p.derivationData).digest(), bytes, `HMAC-${name('HashingAlgorithm', hash.alg)}`);
      } finally {
        key.fill(0);
      }
    }
    case DM.HKDF: {
      const hash = requireHash(p, 'HKDF');
      if (bytes > 255 * hash.size) throw new KmipError('InvalidField', `HKDF yields at most ${255 * hash.size * 8} bits with this hash`);
      const key = await secretBytes(ctx, one());
      try {
        return Buffer.from(await hkdfAsync(hash.node, key, p.salt ?? Buffer.alloc(0), p.derivationData ?? Buffer.alloc(0), bytes));
      } finally {
        key.fill(0);
      }
    }
    case DM.AsymmetricKey: {
      const alg = p.params.cryptographicAlgorithm;
      if (alg !== undefined && alg !== Enums.CryptographicAlgorithm.ECDH) {
        throw unsupported(`Asymmetric Key derivation with ${name('CryptographicAlgorithm', alg)} is not supported (ECDH only)`);
      }
      if (bases.length !== 2) throw new KmipError('InvalidField', 'ECDH derivation needs two base objects: a private key and the other party\'s public key');
      const priv = bases.find((b) => b.objectType === OT.PrivateKey);
      const pub = bases.find((b) => b.objectType === OT.PublicKey);
      if (!priv || !pub) throw new KmipError('InvalidField', 'ECDH derivation needs one Private Key and one Public Key');
      const privateKey = await asymmetricKey(ctx, priv);
      const publicKey = await asymmetricKey(ctx, pub);
      if (privateKey.asymmetricKeyType !== 'ec' || publicKey.asymmetricKeyType !== 'ec') {
        throw unsupported('Asymmetric Key derivation is supported with elliptic curve keys (ECDH) only');
      }
      if (privateKey.asymmetricKeyDetails?.namedCurve !== publicKey.asymmetricKeyDetails?.namedCurve) {
        throw new KmipError('InvalidField', 'the private and public keys are on different curves');
      }
      let secret: Buffer;
      try {
        secret = diffieHellman({ privateKey, publicKey });
      } catch {
        throw new KmipError('CryptographicFailure', 'ECDH failed');
      }
      return truncate(secret, bytes, 'the ECDH shared secret');
    }
    default:
      throw new KmipError('FeatureNotSupported', `kmipd does not implement the ${name('DerivationMethod', method)} derivation method (PBKDF2, HASH, HMAC, HKDF and Asymmetric Key with ECDH only)`);
  }
}

/** The object types each method takes as base objects. */
function baseTypes(method: number): readonly number[] {
  return method === DM.AsymmetricKey ? [OT.PrivateKey, OT.PublicKey] : [OT.SymmetricKey, OT.SecretData];
}

/** The derived Secret Data object: a Seed in Opaque format. */
function secretDataObject(key: Uint8Array): StructureNode {
  return T.struct(Tag.SecretData, [
    T.enum(Tag.SecretDataType, Enums.SecretDataType.Seed),
    T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.Opaque), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, key)])]),
  ]);
}

export const deriveKeyHandler: OperationHandler = {
  operation: Enums.Operation.DeriveKey,
  name: 'DeriveKey',
  since: '1.0',
  objectTypes: [OT.SymmetricKey, OT.SecretData],
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const objectType = reqValue(payload, Tag.ObjectType, 'Enumeration');
    if (objectType !== OT.SymmetricKey && objectType !== OT.SecretData) {
      const what = enumValueName('ObjectType', objectType) ?? `object type ${objectType}`;
      throw new KmipError('InvalidObjectType', `Derive Key makes Symmetric Keys and Secret Data, not ${what}`);
    }
    const method = reqValue(payload, Tag.DerivationMethod, 'Enumeration');
    if (method === DM.HKDF && compareVersions(ctx.version, '2.0') < 0) throw new KmipError('InvalidField', 'HKDF derivation exists from KMIP 2.0');
    const params = readParameters(req(payload, Tag.DerivationParameters, 'Structure'));
    checkProtectionStorageMasks(payload);
    const client = dropEchoedAttributes(readRequestAttributes(payload, ctx.version, true), objectType);
    checkInitialAttributes(client, 'create', objectType, ctx.version);
    checkNoDuplicateNames(client);
    const length = intOf(client, 'Cryptographic Length');
    if (length === undefined) throw new KmipError('MissingData', 'Derive Key needs the Cryptographic Length of the key to derive');
    const alg = enumOf(client, 'Cryptographic Algorithm');
    let bytes: number;
    if (objectType === OT.SymmetricKey) {
      if (alg === undefined) throw new KmipError('MissingData', 'Derive Key needs the Cryptographic Algorithm of the symmetric key to derive');
      bytes = keyBytesFor(alg, length);
    } else {
      if (length <= 0 || length % 8 !== 0 || length > MAX_DERIVED_BITS) throw new KmipError('InvalidField', `Cryptographic Length must be a multiple of 8 from 8 to ${MAX_DERIVED_BITS}`);
      bytes = length / 8;
    }

    const uids = all(payload, Tag.UniqueIdentifier, 'TextString').map((n) => n.value);
    if (uids.length === 0) uids.push(ctx.uidOrPlaceholder(payload));
    if (new Set(uids).size !== uids.length) throw new KmipError('InvalidField', 'a base object is named twice');
    const bases: StoredObject[] = [];
    for (const uid of uids) bases.push(await loadBase(ctx, uid, baseTypes(method)));

    const key = await derive(ctx, method, bases, params, bytes);
    let material: Buffer | undefined;
    try {
      if (objectType === OT.SymmetricKey && alg === Enums.CryptographicAlgorithm.DES3) setDesParity(key);
      const uid = ctx.objects.newUid();
      const now = ctx.now();
      const links: KmipAttribute[] = bases.map((b) => ({ name: 'Link', index: 0, value: linkNode(LT.DerivationBaseObjectLink, b.uid) }));
      const format = objectType === OT.SymmetricKey ? KFT.Raw : KFT.Opaque;
      const { attributes, state } = initialAttributes({ uid, objectType, now, client: [...client, ...links], digest: digestNode(key, format) });
      await checkNewObject(ctx, objectType, attributes);
      material = encodeTtlv(objectType === OT.SymmetricKey ? symmetricKeyObject(key, format, alg, length) : secretDataObject(key));
      await ctx.objects.create({ uid, objectType, state, attributes, material });
      for (const b of bases) {
        const attrs = renumber([...b.attributes, { name: 'Link', index: 0, value: linkNode(LT.DerivedKeyLink, uid) }]);
        await ctx.objects.save(b, touched({ ...b, attributes: attrs }, now));
      }
      ctx.log.info(
        { uid, bases: bases.map((b) => b.uid), method: name('DerivationMethod', method), ...(alg !== undefined ? { algorithm: algorithmName(alg) } : {}), length },
        'derived a key',
      );
      return [T.text(Tag.UniqueIdentifier, uid)];
    } finally {
      key.fill(0);
      material?.fill(0);
    }
  },
};
