/**
 * Create (KMIP 1.4 §4.1; 2.1 §6.1 "Create"): the server generates a new symmetric key.
 *
 * Request: Object Type; 1.x Template-Attribute / 2.x Attributes (+ Protection Storage Masks).
 * Response: Object Type, Unique Identifier. The 1.x response's Template-Attribute "of attributes
 * implicitly set by the server" is optional and omitted, as in the OASIS test cases.
 *
 * The key starts Pre-Active unless the client's Activation Date is already reached
 * (1.4 §3.22 State). vCenter sends exactly AES / 256 / Usage Mask Encrypt|Decrypt, no Name.
 *
 * Secret Data: KMIP 2.x's Create "generate[s] a new symmetric key or generate[s] Secret Data";
 * the 1.4 test-case note TC-CREATE-SD-1-14 does the same in 1.4, and kmipd accepts it in every
 * version. The client gives the Cryptographic Length (bits, a multiple of 8, up to 8192) and no
 * Cryptographic Algorithm (Secret Data is not a key of an algorithm); the server fills it with
 * random bytes from node:crypto. Secret Data Type is a field of the object, not an attribute, so
 * a request cannot carry it: generated secrets are Password (as in TC-CREATE-SD-1), kept in
 * Opaque format (bytes with no further structure).
 */
import { randomBytes } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import type { KmipAttribute } from '../codec/attributes.js';
import { all, opt, reqValue } from '../codec/node.js';
import { Enums, Masks, Tag, enumValueName } from '../spec/index.js';
import { encodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { checkInitialAttributes, readRequestAttributes } from './attribute-rules.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkNoDuplicateNames, dateNode, digestNode, enumOf, firstValue, initialAttributes, intOf, seconds } from './lifecycle.js';
import { expandTemplateReferences } from './templates.js';
import { asStored, rngAttribute } from './server-attributes.js';
import { checkNewObject } from './constraints.js';

const ALG = Enums.CryptographicAlgorithm;

export function algorithmName(alg: number): string {
  return enumValueName('CryptographicAlgorithm', alg) ?? `algorithm ${alg}`;
}

/** HMAC keys: any whole number of bytes in this range of bits. */
const HMAC_MIN_BITS = 64;
const HMAC_MAX_BITS = 8192;

const HMACS: readonly number[] = [
  ALG.HMAC_SHA1,
  ALG.HMAC_SHA224,
  ALG.HMAC_SHA256,
  ALG.HMAC_SHA384,
  ALG.HMAC_SHA512,
  ALG.HMAC_SHA3_224,
  ALG.HMAC_SHA3_256,
  ALG.HMAC_SHA3_384,
  ALG.HMAC_SHA3_512,
];

/**
 * Key bytes for a Cryptographic Length, for the algorithms kmipd generates; throws Invalid
 * Field for any other algorithm or length.
 * - AES: 128, 192, 256.
 * - DES3: 168 (three-key, 24 bytes; 192 is accepted as the same key with its parity bits
 *   counted) and 112 (two-key, 16 bytes; also 128).
 * - HMAC-SHA*: any multiple of 8 from 64 to 8192 bits.
 * - ChaCha20, ChaCha20-Poly1305: 256.
 */
export function keyBytesFor(alg: number, length: number): number {
  const bad = (): never => {
    throw new KmipError('InvalidField', `Cryptographic Length ${length} is not valid for ${algorithmName(alg)}`);
  };
  if (alg === ALG.AES) return [128, 192, 256].includes(length) ? length / 8 : bad();
  if (alg === ALG.DES3) {
    if (length === 168 || length === 192) return 24;
    if (length === 112 || length === 128) return 16;
    return bad();
  }
  if (HMACS.includes(alg)) return length % 8 === 0 && length >= HMAC_MIN_BITS && length <= HMAC_MAX_BITS ? length / 8 : bad();
  if (alg === ALG.ChaCha20 || alg === ALG.ChaCha20Poly1305) return length === 256 ? 32 : bad();
  throw new KmipError('InvalidField', `kmipd does not generate ${algorithmName(alg)} keys with Create`);
}

/** Sets each byte's low bit so that the byte has odd parity (DES keys, FIPS 46-3). */
export function setDesParity(key: Buffer): void {
  for (let i = 0; i < key.length; i++) {
    let b = key[i]! & 0xfe;
    let ones = 0;
    for (let v = b; v; v >>= 1) ones += v & 1;
    if (ones % 2 === 0) b |= 1;
    key[i] = b;
  }
}

/** New random key material from node:crypto. The caller zeroes it when done. */
export function generateSymmetricKey(alg: number, length: number): Buffer {
  const key = randomBytes(keyBytesFor(alg, length));
  if (alg === ALG.DES3) setDesParity(key);
  return key;
}

/**
 * The Symmetric Key object (1.4 §2.2.2) with a Key Block in Raw or Transparent Symmetric Key
 * format, as Get returns it and as kmipd seals it.
 */
export function symmetricKeyObject(key: Uint8Array, format: number, alg: number | undefined, length: number | undefined): StructureNode {
  const material: TtlvNode =
    format === Enums.KeyFormatType.TransparentSymmetricKey ? T.struct(Tag.KeyMaterial, [T.bytes(Tag.Key, key)]) : T.bytes(Tag.KeyMaterial, key);
  const block: TtlvNode[] = [T.enum(Tag.KeyFormatType, format), T.struct(Tag.KeyValue, [material])];
  if (alg !== undefined) block.push(T.enum(Tag.CryptographicAlgorithm, alg));
  if (length !== undefined) block.push(T.int(Tag.CryptographicLength, length));
  return T.struct(Tag.SymmetricKey, [T.struct(Tag.KeyBlock, block)]);
}

/**
 * Protection Storage Masks (2.x): kmipd keeps every object in software, sealed under its root
 * key on the server's own system and premises. A request whose masks all exclude that is
 * refused rather than silently ignored.
 */
export function checkProtectionStorageMasks(payload: StructureNode): void {
  const psm = opt(payload, Tag.ProtectionStorageMasks, 'Structure');
  if (!psm) return;
  const masks = all(psm, Tag.ProtectionStorageMask, 'Integer').map((m) => m.value >>> 0);
  if (masks.length === 0) return;
  const P = Masks.ProtectionStorageMask;
  const ours = (P.Software | P.OnSystem | P.OnPremises | P.SelfManaged) >>> 0;
  // A mask is satisfied when storage of one of its kinds is available: kmipd offers the bits above.
  if (!masks.some((m) => (m & ours) !== 0)) {
    throw new KmipError('FeatureNotSupported', 'kmipd stores objects only in software on its own system (Protection Storage Mask Software, On System, On Premises, Self Managed)');
  }
}

/** Object Type (and, 2.x, Key Format Type) given among the attributes: tolerated when it agrees with the request, refused otherwise. */
export function dropEchoedAttributes(attrs: KmipAttribute[], objectType: number, keyFormatType?: number): KmipAttribute[] {
  return attrs.filter((a) => {
    if (a.name === 'Object Type') {
      if (a.value.type === 'Enumeration' && a.value.value === objectType) return false;
      throw new KmipError('InvalidField', 'the Object Type attribute differs from the request\'s Object Type');
    }
    if (a.name === 'Key Format Type' && keyFormatType !== undefined && a.value.type === 'Enumeration' && a.value.value === keyFormatType) return false;
    return true;
  });
}

/**
 * What the server sets on a key it generates when the client did not (1.4 §3.43 Original
 * Creation Date: the time the server created it; §3.44 Random Number Generator: the one used).
 */
export function generatedKeyAttributes(client: readonly KmipAttribute[], now: Date): KmipAttribute[] {
  const out: KmipAttribute[] = [];
  if (!firstValue(client, 'Original Creation Date')) out.push({ name: 'Original Creation Date', index: 0, value: dateNode(Tag.OriginalCreationDate, seconds(now)) });
  if (!firstValue(client, 'Random Number Generator')) out.push(rngAttribute());
  return out;
}

/** Generated Secret Data: whole bytes, at most this many bits. */
const SECRET_DATA_MAX_BITS = 8192;

/** The Secret Data object (1.4 §2.2.7) kmipd generates: Password, Opaque key block. */
export function secretDataObject(secret: Uint8Array): StructureNode {
  return T.struct(Tag.SecretData, [
    T.enum(Tag.SecretDataType, Enums.SecretDataType.Password),
    T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, Enums.KeyFormatType.Opaque), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, secret)])]),
  ]);
}

async function createSecretData(ctx: OperationContext, client: KmipAttribute[]): Promise<TtlvNode[]> {
  const objectType = Enums.ObjectType.SecretData;
  const alg = enumOf(client, 'Cryptographic Algorithm');
  if (alg !== undefined) throw new KmipError('InvalidField', `Secret Data is generated as random bytes, not as a ${algorithmName(alg)} key: omit the Cryptographic Algorithm`);
  const length = intOf(client, 'Cryptographic Length');
  if (length === undefined) throw new KmipError('MissingData', 'Create of Secret Data needs a Cryptographic Length (in bits)');
  if (length <= 0 || length % 8 !== 0 || length > SECRET_DATA_MAX_BITS) {
    throw new KmipError('InvalidField', `Secret Data is generated in whole bytes, 8 to ${SECRET_DATA_MAX_BITS} bits, not ${length}`);
  }
  const secret = randomBytes(length / 8);
  const uid = await storeGenerated(ctx, objectType, client, secret, Enums.KeyFormatType.Opaque, secretDataObject);
  ctx.log.info({ uid, length }, 'created secret data');
  return [T.enum(Tag.ObjectType, objectType), T.text(Tag.UniqueIdentifier, uid)];
}

/**
 * Stores a value the server generated (`value`, wiped afterwards) as a new object of
 * `objectType`: its initial attributes, Digest over `format`, the client's constraints checked,
 * sealed at rest. Returns its Unique Identifier.
 */
async function storeGenerated(
  ctx: OperationContext,
  objectType: number,
  client: KmipAttribute[],
  value: Buffer,
  format: number,
  object: (value: Buffer) => StructureNode,
): Promise<string> {
  let material: Buffer | undefined;
  try {
    const uid = ctx.objects.newUid();
    const { attributes, state } = initialAttributes({
      uid,
      objectType,
      now: ctx.now(),
      client: asStored(client),
      implicit: generatedKeyAttributes(client, ctx.now()),
      digest: digestNode(value, format),
    });
    await checkNewObject(ctx, objectType, attributes);
    material = encodeTtlv(object(value));
    await ctx.objects.create({ uid, objectType, state, attributes, material });
    return uid;
  } finally {
    value.fill(0);
    material?.fill(0);
  }
}

export const createHandler: OperationHandler = {
  operation: Enums.Operation.Create,
  name: 'Create',
  since: '1.0',
  objectTypes: [Enums.ObjectType.SymmetricKey, Enums.ObjectType.SecretData],
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const objectType = reqValue(payload, Tag.ObjectType, 'Enumeration');
    if (objectType !== Enums.ObjectType.SymmetricKey && objectType !== Enums.ObjectType.SecretData) {
      const what = enumValueName('ObjectType', objectType) ?? `object type ${objectType}`;
      throw new KmipError('InvalidObjectType', `Create makes symmetric keys and secret data, not ${what} (use Create Key Pair or Register)`);
    }
    checkProtectionStorageMasks(payload);
    const client = dropEchoedAttributes(readRequestAttributes(await expandTemplateReferences(ctx, payload), ctx.version, true), objectType);
    checkInitialAttributes(client, 'create', objectType, ctx.version);
    checkNoDuplicateNames(client);
    if (objectType === Enums.ObjectType.SecretData) return createSecretData(ctx, client);
    const alg = enumOf(client, 'Cryptographic Algorithm');
    if (alg === undefined) throw new KmipError('MissingData', 'Create needs a Cryptographic Algorithm');
    const length = intOf(client, 'Cryptographic Length');
    if (length === undefined) throw new KmipError('MissingData', 'Create needs a Cryptographic Length');

    const key = generateSymmetricKey(alg, length);
    const uid = await storeGenerated(ctx, objectType, client, key, Enums.KeyFormatType.Raw, (k) => symmetricKeyObject(k, Enums.KeyFormatType.Raw, alg, length));
    ctx.log.info({ uid, algorithm: algorithmName(alg), length }, 'created a symmetric key');
    return [T.enum(Tag.ObjectType, objectType), T.text(Tag.UniqueIdentifier, uid)];
  },
};
