/**
 * Register (KMIP 1.4 §4.3; 2.1 §6.1 "Register"): the client hands the server an object it made.
 *
 * Request: Object Type; 1.x Template-Attribute / 2.x Attributes (+ Protection Storage Masks);
 * the object (Symmetric Key, Secret Data, Opaque Object here). Response: Unique Identifier.
 *
 * Symmetric keys are checked (Raw or Transparent Symmetric Key format, length consistent with
 * Cryptographic Length, an algorithm in the key block or the attributes) and kept in the format
 * they were registered in, so that Get returns them as registered. Cryptographic Algorithm and
 * Length become attributes of the object (set implicitly from the key block).
 */
import type { KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { opt, optValue, req, reqValue } from '../codec/node.js';
import { Enums, Tag, enumValueName } from '../spec/index.js';
import { encodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { checkInitialAttributes, checkValueType, readRequestAttributes } from './attribute-rules.js';
import { isV2 } from '../codec/attributes.js';
import { expandTemplateReferences, parseTemplate } from './templates.js';
import type { OperationContext, OperationHandler } from './context.js';
import { algorithmName, checkProtectionStorageMasks, dropEchoedAttributes } from './create.js';
import { checkNoDuplicateNames, digestNode, enumOf, initialAttributes, intOf } from './lifecycle.js';
import { REGISTRABLE } from './register-objects.js';
import { registerPkcs12 } from './pkcs12.js';
import { checkNewObject } from './constraints.js';

const OT = Enums.ObjectType;
const KFT = Enums.KeyFormatType;
const ALG = Enums.CryptographicAlgorithm;

/** The structure tag each registrable object type travels in. */
const OBJECT_TAG: Readonly<Record<number, number>> = {
  [OT.SymmetricKey]: Tag.SymmetricKey,
  [OT.SecretData]: Tag.SecretData,
  [OT.OpaqueObject]: Tag.OpaqueObject,
};

/** An object as kmipd stores it (the structure Get returns) and what the server learns from it. */
export interface ParsedObject {
  object: StructureNode;
  /** Attributes implied by the object: Cryptographic Algorithm / Length from a key block. */
  implicit: KmipAttribute[];
  digest?: StructureNode;
}

/** A key block's parts, for symmetric keys and secret data. */
export interface KeyBlockParts {
  format: number;
  /** Present when the client registered the key wrapped. */
  wrapping?: StructureNode;
  /** Absent for a metadata-only object (MDO: the key lives elsewhere, Key Value Location). */
  keyValue?: TtlvNode;
  algorithm?: number;
  length?: number;
  /** The plaintext key bytes (a view into the request tree); undefined when wrapped. */
  key?: Uint8Array;
}

export function readKeyBlock(block: StructureNode): KeyBlockParts {
  const format = reqValue(block, Tag.KeyFormatType, 'Enumeration');
  if (opt(block, Tag.KeyCompressionType, 'Enumeration')) {
    throw new KmipError('KeyCompressionTypeNotSupported', 'Key Compression Type applies to elliptic curve keys only');
  }
  const keyValue = block.value.find((c) => c.tag === Tag.KeyValue);
  const parts: KeyBlockParts = { format };
  if (keyValue) parts.keyValue = keyValue;
  const wrapping = opt(block, Tag.KeyWrappingData, 'Structure');
  if (wrapping) parts.wrapping = wrapping;
  if (wrapping && !keyValue) throw new KmipError('MissingData', 'a wrapped Key Block needs its Key Value');
  const algorithm = optValue(block, Tag.CryptographicAlgorithm, 'Enumeration');
  if (algorithm !== undefined) parts.algorithm = algorithm;
  const length = optValue(block, Tag.CryptographicLength, 'Integer');
  if (length !== undefined) parts.length = length;
  if (!wrapping && keyValue) {
    if (keyValue.type !== 'Structure') throw new KmipError('InvalidField', 'an unwrapped Key Value must be a Structure');
    const material = keyValue.value.find((c) => c.tag === Tag.KeyMaterial);
    if (!material) throw new KmipError('MissingData', 'the Key Value has no Key Material');
    if (format === KFT.TransparentSymmetricKey) {
      if (material.type === 'Structure') parts.key = reqValue(material, Tag.Key, 'ByteString');
    } else if (material.type === 'ByteString') parts.key = material.value;
  }
  return parts;
}

/**
 * The Cryptographic Length a key of `bytes` bytes has for `alg`, checked against a declared
 * one. Triple DES keys carry parity bits: 24 bytes are 168 bits (192 accepted), 16 bytes 112
 * (128 accepted); single DES 8 bytes are 56 (64 accepted).
 */
export function checkedLength(alg: number, bytes: number, declared: number | undefined): number {
  const bits = bytes * 8;
  let allowed: number[];
  if (alg === ALG.DES3) allowed = bytes === 24 ? [168, 192] : bytes === 16 ? [112, 128] : [];
  else if (alg === ALG.DES) allowed = bytes === 8 ? [56, 64] : [];
  else if (alg === ALG.AES) allowed = [16, 24, 32].includes(bytes) ? [bits] : [];
  else allowed = bytes > 0 ? [bits] : [];
  if (allowed.length === 0) throw new KmipError('InvalidField', `a ${bytes}-byte key is not a valid ${algorithmName(alg)} key`);
  if (declared === undefined) return allowed[0]!;
  if (!allowed.includes(declared)) {
    throw new KmipError('InvalidField', `Cryptographic Length ${declared} does not match the ${bytes}-byte ${algorithmName(alg)} key`);
  }
  return declared;
}

/** Key Value as kmipd keeps it: Key Material only (1.x attributes inside a Key Value are not kept there). */
function storedKeyValue(kv: TtlvNode): TtlvNode {
  if (kv.type !== 'Structure') return kv;
  return T.struct(Tag.KeyValue, kv.value.filter((c) => c.tag === Tag.KeyMaterial));
}

function agree(what: string, a: number | undefined, b: number | undefined): number | undefined {
  if (a !== undefined && b !== undefined && a !== b) throw new KmipError('InvalidField', `the Key Block's ${what} differs from the ${what} attribute`);
  return a ?? b;
}

function parseSymmetricKey(obj: StructureNode, client: readonly KmipAttribute[]): ParsedObject {
  const p = readKeyBlock(req(obj, Tag.KeyBlock, 'Structure'));
  const algorithm = agree('Cryptographic Algorithm', p.algorithm, enumOf(client, 'Cryptographic Algorithm'));
  let length = agree('Cryptographic Length', p.length, intOf(client, 'Cryptographic Length'));
  const implicit: KmipAttribute[] = [];
  if (p.wrapping) {
    // Registered wrapped (Key Wrapping Data present): the client wrapped it under a key of its
    // own, so kmipd cannot see or check the key. It is stored exactly as registered and Get
    // returns it so; no Digest (the plaintext is unknown).
    if (algorithm !== undefined) implicit.push({ name: 'Cryptographic Algorithm', index: 0, value: T.enum(Tag.CryptographicAlgorithm, algorithm) });
    if (length !== undefined) implicit.push({ name: 'Cryptographic Length', index: 0, value: T.int(Tag.CryptographicLength, length) });
    return { object: T.struct(Tag.SymmetricKey, [req(obj, Tag.KeyBlock, 'Structure')]), implicit };
  }
  if (!p.keyValue) return metadataOnly(Tag.SymmetricKey, p, algorithm, length, client);
  if (p.format !== KFT.Raw && p.format !== KFT.TransparentSymmetricKey) {
    const f = enumValueName('KeyFormatType', p.format) ?? String(p.format);
    throw new KmipError('KeyFormatTypeNotSupported', `a symmetric key is registered in Raw or Transparent Symmetric Key format, not ${f}`);
  }
  if (!p.key) throw new KmipError('InvalidField', 'the Key Material does not hold the key bytes its Key Format Type calls for');
  if (algorithm === undefined) throw new KmipError('MissingData', 'Cryptographic Algorithm is neither in the Key Block nor among the attributes');
  length = checkedLength(algorithm, p.key.length, length);
  const block: TtlvNode[] = [
    T.enum(Tag.KeyFormatType, p.format),
    storedKeyValue(p.keyValue),
    T.enum(Tag.CryptographicAlgorithm, algorithm),
    T.int(Tag.CryptographicLength, length),
  ];
  implicit.push({ name: 'Cryptographic Algorithm', index: 0, value: T.enum(Tag.CryptographicAlgorithm, algorithm) });
  implicit.push({ name: 'Cryptographic Length', index: 0, value: T.int(Tag.CryptographicLength, length) });
  // The digest is over the key as kept (1.4 §3.17): Raw, the key bytes; Transparent, the TTLV Key Material (OASIS TC-181).
  return { object: T.struct(Tag.SymmetricKey, [T.struct(Tag.KeyBlock, block)]), implicit, digest: digestNode(p.format === KFT.Raw ? p.key : encodeTtlv(req(p.keyValue as StructureNode, Tag.KeyMaterial, 'Structure')), p.format) };
}

/**
 * A metadata-only object (KMIP 1.2 §3.41-3.42, the MDO test cases): a Key Block without a Key
 * Value, for a key (Symmetric Key) or secret (Secret Data) kept elsewhere. The client must say where (Key Value Location); the server
 * records Key Value Present false, keeps the Key Block as given (Get returns it so) and has no
 * Digest to compute. The object cannot be used for cryptography (Key Value Not Present).
 */
function metadataOnly(tag: number, p: KeyBlockParts, algorithm: number | undefined, length: number | undefined, client: readonly KmipAttribute[], before: TtlvNode[] = []): ParsedObject {
  if (!client.some((a) => a.name === 'Key Value Location')) {
    throw new KmipError('MissingData', 'the Key Block has no Key Value (a metadata-only object needs a Key Value Location)');
  }
  const block: TtlvNode[] = [T.enum(Tag.KeyFormatType, p.format)];
  const implicit: KmipAttribute[] = [{ name: 'Key Value Present', index: 0, value: T.bool(Tag.KeyValuePresent, false) }];
  if (algorithm !== undefined) {
    block.push(T.enum(Tag.CryptographicAlgorithm, algorithm));
    implicit.push({ name: 'Cryptographic Algorithm', index: 0, value: T.enum(Tag.CryptographicAlgorithm, algorithm) });
  }
  if (length !== undefined) {
    block.push(T.int(Tag.CryptographicLength, length));
    implicit.push({ name: 'Cryptographic Length', index: 0, value: T.int(Tag.CryptographicLength, length) });
  }
  return { object: T.struct(tag, [...before, T.struct(Tag.KeyBlock, block)]), implicit };
}

function parseSecretData(obj: StructureNode, client: readonly KmipAttribute[]): ParsedObject {
  const type = reqValue(obj, Tag.SecretDataType, 'Enumeration');
  const blockNode = req(obj, Tag.KeyBlock, 'Structure');
  const p = readKeyBlock(blockNode);
  // Metadata-only Secret Data, under the same rule as a metadata-only symmetric key.
  if (!p.keyValue) return metadataOnly(Tag.SecretData, p, p.algorithm, p.length, client, [T.enum(Tag.SecretDataType, type)]);
  const stored = T.struct(Tag.SecretData, [
    T.enum(Tag.SecretDataType, type),
    p.wrapping ? blockNode : T.struct(Tag.KeyBlock, blockNode.value.map((c) => (c.tag === Tag.KeyValue ? storedKeyValue(c) : c))),
  ]);
  if (p.wrapping) return { object: stored, implicit: [] };
  if (!p.key) throw new KmipError('InvalidField', 'the Secret Data Key Material must be a Byte String');
  return { object: stored, implicit: [], digest: digestNode(p.key, p.format) };
}

function parseOpaqueObject(obj: StructureNode): ParsedObject {
  const type = reqValue(obj, Tag.OpaqueDataType, 'Enumeration');
  const value = reqValue(obj, Tag.OpaqueDataValue, 'ByteString');
  const stored = T.struct(Tag.OpaqueObject, [T.enum(Tag.OpaqueDataType, type), T.bytes(Tag.OpaqueDataValue, value)]);
  return { object: stored, implicit: [], digest: digestNode(value, undefined) };
}

/** The Object Type whose object travels in structure `tag`, among those Register accepts (Template aside). */
export function registrableTypeOfTag(tag: number): number | undefined {
  for (const [t, g] of Object.entries(OBJECT_TAG)) if (g === tag) return Number(t);
  for (const [t, r] of Object.entries(REGISTRABLE)) if (r.tag === tag) return Number(t);
  return undefined;
}

/** The tag a registrable object of `objectType` travels in; Feature Not Supported for any other type. */
export function registrableTag(objectType: number): number {
  const tag = OBJECT_TAG[objectType] ?? REGISTRABLE[objectType]?.tag;
  if (tag !== undefined) return tag;
  const what = enumValueName('ObjectType', objectType);
  if (what === undefined) throw new KmipError('InvalidField', `unknown Object Type ${objectType}`);
  throw new KmipError('FeatureNotSupported', `kmipd does not register ${what} objects`);
}

/** The attributes that came with object `obj`, less its echoes (Object Type, a matching Key Format Type or Certificate Type). */
function withoutEchoes(objectType: number, obj: StructureNode, attrs: KmipAttribute[]): KmipAttribute[] {
  const blockFormat = objectType === OT.OpaqueObject ? undefined : opt(obj, Tag.KeyBlock, 'Structure');
  const client = dropEchoedAttributes(attrs, objectType, blockFormat ? optValue(blockFormat, Tag.KeyFormatType, 'Enumeration') : undefined);
  const more = REGISTRABLE[objectType];
  return more?.dropEchoed ? more.dropEchoed(client, obj) : client;
}

/** Checks a client-made object (`obj`, in its tag) and returns the form kmipd stores (Register and Import). */
export function parseRegistrable(objectType: number, obj: StructureNode, client: readonly KmipAttribute[]): ParsedObject {
  const more = REGISTRABLE[objectType];
  if (more) return more.parse(obj, client);
  if (objectType === OT.SymmetricKey) return parseSymmetricKey(obj, client);
  if (objectType === OT.SecretData) return parseSecretData(obj, client);
  return parseOpaqueObject(obj);
}

/**
 * An object of `objectType` (not a Template) checked and put in the form kmipd keeps, as
 * Register does, with the attributes that came with it less their echoes. Used by Put (put.ts).
 */
export function parseManagedObject(objectType: number, obj: StructureNode, attrs: KmipAttribute[]): { parsed: ParsedObject; client: KmipAttribute[] } {
  const client = withoutEchoes(objectType, obj, attrs);
  return { parsed: parseRegistrable(objectType, obj, client), client };
}

/** Register of a Template (1.x; see templates.ts). */
async function registerTemplate(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
  const obj = opt(payload, Tag.Template, 'Structure');
  if (!obj) throw new KmipError('MissingData', 'Register of a Template needs the Template itself');
  const parsed = parseTemplate(obj);
  for (const a of parsed.names) checkValueType(a);
  const client = [...readRequestAttributes(payload, ctx.version, false), ...parsed.names];
  checkInitialAttributes(client, 'register', OT.Template, ctx.version);
  checkNoDuplicateNames(client);
  const uid = ctx.objects.newUid();
  const { attributes, state } = initialAttributes({ uid, objectType: OT.Template, now: ctx.now(), client, implicit: [] });
  const material = encodeTtlv(parsed.object);
  try {
    await ctx.objects.create({ uid, objectType: OT.Template, state, attributes, material });
  } finally {
    material.fill(0);
  }
  ctx.log.info({ uid, objectType: 'Template' }, 'registered an object');
  return [T.text(Tag.UniqueIdentifier, uid)];
}

export const registerHandler: OperationHandler = {
  operation: Enums.Operation.Register,
  name: 'Register',
  since: '1.0',
  /** Query Objects: every object type this handler accepts (Template: 1.x only, filtered by version). */
  objectTypes: [...Object.keys(OBJECT_TAG), ...Object.keys(REGISTRABLE)].map(Number).concat(OT.Template),
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const objectType = reqValue(payload, Tag.ObjectType, 'Enumeration');
    payload = await expandTemplateReferences(ctx, payload);
    if (objectType === OT.Template && !isV2(ctx.version)) return registerTemplate(ctx, payload);
    if (objectType === OT.CertificateRequest && !isV2(ctx.version)) throw new KmipError('InvalidField', 'Certificate Request objects exist from KMIP 2.0 on');
    const tag = registrableTag(objectType);
    const obj = opt(payload, tag, 'Structure');
    if (!obj) throw new KmipError('MissingData', `Register of a ${enumValueName('ObjectType', objectType)} needs the object itself`);
    checkProtectionStorageMasks(payload);
    const blockFormat = objectType === OT.OpaqueObject ? undefined : opt(obj, Tag.KeyBlock, 'Structure');
    const client = withoutEchoes(objectType, obj, readRequestAttributes(payload, ctx.version, false));
    checkInitialAttributes(client, 'register', objectType, ctx.version);
    checkNoDuplicateNames(client);
    if (objectType === OT.PrivateKey && blockFormat && optValue(blockFormat, Tag.KeyFormatType, 'Enumeration') === KFT.PKCS_12) {
      // A PKCS#12: the key and its certificates, opened with the linked password (pkcs12.ts).
      return [T.text(Tag.UniqueIdentifier, await registerPkcs12(ctx, obj, client))];
    }

    const parsed = parseRegistrable(objectType, obj, client);
    const uid = ctx.objects.newUid();
    const init: Parameters<typeof initialAttributes>[0] = { uid, objectType, now: ctx.now(), client, implicit: parsed.implicit };
    if (parsed.digest) init.digest = parsed.digest;
    const { attributes, state } = initialAttributes(init);
    await checkNewObject(ctx, objectType, attributes);
    const material = encodeTtlv(parsed.object);
    try {
      await ctx.objects.create({ uid, objectType, state, attributes, material });
    } finally {
      material.fill(0);
    }
    ctx.log.info({ uid, objectType: enumValueName('ObjectType', objectType) }, 'registered an object');
    return [T.text(Tag.UniqueIdentifier, uid)];
  },
};
