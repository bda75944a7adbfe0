/**
 * Split keys (KMIP 1.2+): Create Split Key (1.4 §4.38; 2.1 §6.1 "Create Split Key"), Join Split
 * Key (1.4 §4.39) and the Split Key object (1.4 §2.2.5) that Register also accepts.
 *
 * A Split Key object: Split Key Parts (n), Key Part Identifier (x, 1..n), Split Key Threshold
 * (k), Split Key Method, Prime Field Size (prime field method only), Key Block (Raw key
 * material; the Cryptographic Algorithm and Length of the key that was split).
 *
 * Methods (randomness from node:crypto randomBytes):
 * - XOR: n-1 random parts, the last one the XOR of the key and them; all n are needed (k = n).
 * - Polynomial Sharing GF(2^8): per byte, a random polynomial of degree k-1 whose constant term
 *   is the key byte, evaluated at x = Key Part Identifier; field polynomial x^8+x^4+x^3+x^2+1
 *   (0x11D), the field of the OASIS Split/Join test cases (TC-SJ-2/3: their parts join to the
 *   registered key under this field and no other). Any k parts join by Lagrange interpolation.
 * - Polynomial Sharing Prime Field: the key as a big-endian integer below the Prime Field Size
 *   p, a random polynomial mod p; each part is f(x) mod p in as many bytes as p has.
 * Polynomial Sharing GF(2^16) is not implemented (Feature Not Supported).
 *
 * Create Split Key: the base object (Symmetric Key or Secret Data, visible with its material,
 * not destroyed; the OASIS test cases split a Pre-Active key) is split into n new Split Key
 * objects, which get the request's attributes and the base's Cryptographic Algorithm and
 * Length. Response: their Unique Identifiers, part 1 first.
 *
 * Join Split Key: at least k parts of the same split (same n, k, method, field and key length,
 * distinct identifiers) make a new Symmetric Key or Secret Data with the request's attributes.
 * Fewer than k parts cannot reconstruct the key: Cryptographic Failure, what TC-SJ-1/2/3
 * expect. Parts that belong to different splits: Invalid Field.
 */
import { randomBytes } from 'node:crypto';
import type { KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { all, opt, optValue, req, reqValue } from '../codec/node.js';
import { Enums, Tag, enumValueInVersion, enumValueName } from '../spec/index.js';
import { encodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { checkInitialAttributes, readRequestAttributes } from './attribute-rules.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkProtectionStorageMasks, dropEchoedAttributes, keyBytesFor, symmetricKeyObject } from './create.js';
import { checkNoDuplicateNames, digestNode, enumOf, initialAttributes, intOf, isDestroyed, loadObject } from './lifecycle.js';
import type { RegisteredObject } from './register-objects.js';
import { storedTree, wipeTree } from './stored-tree.js';
import { checkNewObject } from './constraints.js';

const OT = Enums.ObjectType;
const KFT = Enums.KeyFormatType;
const SKM = Enums.SplitKeyMethod;

/** Most parts of one split (GF(2^8) has 255 non-zero evaluation points). */
export const MAX_SPLIT_PARTS = 255;
/** Largest key split or joined, in bytes. */
export const MAX_SPLIT_KEY_BYTES = 1024;

// ---------------------------------------------------------------------------------------------
// GF(2^8) with x^8+x^4+x^3+x^2+1, generator 2

const GF_POLY = 0x11d;
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
{
  let v = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = v;
    LOG[v] = i;
    v <<= 1;
    if (v & 0x100) v ^= GF_POLY;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255]!;
}

export function gfMul(a: number, b: number): number {
  if (a === 0 || b === 0) return 0;
  return EXP[LOG[a]! + LOG[b]!]!;
}

function gfDiv(a: number, b: number): number {
  if (b === 0) throw new Error('division by zero in GF(2^8)');
  if (a === 0) return 0;
  return EXP[(LOG[a]! + 255 - LOG[b]!) % 255]!;
}

/** Shares of `secret` at x = 1..n for threshold k, over GF(2^8). */
export function splitGf256(secret: Uint8Array, n: number, k: number): Buffer[] {
  const coeffs = randomBytes(secret.length * (k - 1));
  const shares = Array.from({ length: n }, () => Buffer.alloc(secret.length));
  try {
    for (let b = 0; b < secret.length; b++) {
      for (let x = 1; x <= n; x++) {
        // Horner: ((a_{k-1} x + a_{k-2}) x + ...) x + s
        let y = 0;
        for (let j = k - 2; j >= 0; j--) y = gfMul(y, x) ^ coeffs[b * (k - 1) + j]!;
        shares[x - 1]![b] = gfMul(y, x) ^ secret[b]!;
      }
    }
  } finally {
    coeffs.fill(0);
  }
  return shares;
}

/** The secret from shares (x, y) over GF(2^8): Lagrange interpolation at 0. */
export function joinGf256(points: readonly { x: number; y: Uint8Array }[]): Buffer {
  const len = points[0]!.y.length;
  const out = Buffer.alloc(len);
  const weights = points.map((p, j) => {
    let num = 1;
    let den = 1;
    points.forEach((q, m) => {
      if (m === j) return;
      num = gfMul(num, q.x);
      den = gfMul(den, q.x ^ p.x);
    });
    return gfDiv(num, den);
  });
  for (let b = 0; b < len; b++) {
    let s = 0;
    points.forEach((p, j) => {
      s ^= gfMul(p.y[b]!, weights[j]!);
    });
    out[b] = s;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Prime field

function toBig(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${Buffer.from(b).toString('hex')}`);
}

function fromBig(v: bigint, bytes: number): Buffer {
  const hex = v.toString(16).padStart(bytes * 2, '0');
  if (hex.length > bytes * 2) throw new KmipError('CryptographicFailure', 'the joined value does not fit the key length');
  return Buffer.from(hex, 'hex');
}

function mod(a: bigint, p: bigint): bigint {
  const r = a % p;
  return r < 0n ? r + p : r;
}

function modInverse(a: bigint, p: bigint): bigint {
  let [r0, r1] = [mod(a, p), p];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new KmipError('CryptographicFailure', 'the Prime Field Size is not prime');
  return mod(s0, p);
}

function byteLength(p: bigint): number {
  return Math.ceil(p.toString(16).length / 2);
}

/** A uniformly random value below p (rejection sampling on node:crypto bytes). */
function randomBelow(p: bigint): bigint {
  const bytes = byteLength(p);
  const bits = p.toString(2).length;
  const excess = BigInt(bytes * 8 - bits);
  for (;;) {
    const v = toBig(randomBytes(bytes)) >> excess;
    if (v < p) return v;
  }
}

export function splitPrime(secret: Uint8Array, n: number, k: number, p: bigint): Buffer[] {
  const s = toBig(secret);
  if (s >= p) throw new KmipError('InvalidField', 'the key, as an integer, is not below the Prime Field Size');
  const coeffs = Array.from({ length: k - 1 }, () => randomBelow(p));
  const bytes = byteLength(p);
  const shares: Buffer[] = [];
  for (let x = 1; x <= n; x++) {
    let y = 0n;
    for (let j = coeffs.length - 1; j >= 0; j--) y = mod(y * BigInt(x) + coeffs[j]!, p);
    shares.push(fromBig(mod(y * BigInt(x) + s, p), bytes));
  }
  return shares;
}

export function joinPrime(points: readonly { x: number; y: Uint8Array }[], p: bigint, keyBytes: number): Buffer {
  let s = 0n;
  points.forEach((pt, j) => {
    let num = 1n;
    let den = 1n;
    points.forEach((q, m) => {
      if (m === j) return;
      num = mod(num * BigInt(q.x), p);
      den = mod(den * BigInt(q.x - pt.x), p);
    });
    s = mod(s + toBig(pt.y) * num * modInverse(den, p), p);
  });
  return fromBig(s, keyBytes);
}

export function xorAll(parts: readonly Uint8Array[]): Buffer {
  const out = Buffer.alloc(parts[0]!.length);
  for (const p of parts) for (let i = 0; i < out.length; i++) out[i]! ^= p[i]!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// The Split Key object

interface SplitFields {
  parts: number;
  id: number;
  threshold: number;
  method: number;
  prime?: bigint;
}

function checkSplitFields(f: Omit<SplitFields, 'id'> & { id?: number }): void {
  if (f.parts < 1 || f.parts > MAX_SPLIT_PARTS) throw new KmipError('InvalidField', `Split Key Parts must be from 1 to ${MAX_SPLIT_PARTS}`);
  if (f.threshold < 1 || f.threshold > f.parts) throw new KmipError('InvalidField', 'Split Key Threshold must be from 1 to Split Key Parts');
  if (f.id !== undefined && (f.id < 1 || f.id > f.parts)) throw new KmipError('InvalidField', 'Key Part Identifier must be from 1 to Split Key Parts');
  switch (f.method) {
    case SKM.XOR:
      if (f.threshold !== f.parts) throw new KmipError('InvalidField', 'XOR splitting needs every part: Split Key Threshold must equal Split Key Parts');
      break;
    case SKM.PolynomialSharingGF2_8:
      break;
    case SKM.PolynomialSharingPrimeField:
      if (f.prime === undefined) throw new KmipError('MissingData', 'Polynomial Sharing Prime Field needs a Prime Field Size');
      if (f.prime <= BigInt(f.parts)) throw new KmipError('InvalidField', 'the Prime Field Size must be larger than Split Key Parts');
      break;
    default:
      throw new KmipError('FeatureNotSupported', `kmipd does not implement the ${enumValueName('SplitKeyMethod', f.method) ?? f.method} split method (XOR, Polynomial Sharing GF(2^8) and Prime Field only)`);
  }
}

function readSplitFields(s: StructureNode): SplitFields {
  const f: SplitFields = {
    parts: reqValue(s, Tag.SplitKeyParts, 'Integer'),
    id: reqValue(s, Tag.KeyPartIdentifier, 'Integer'),
    threshold: reqValue(s, Tag.SplitKeyThreshold, 'Integer'),
    method: reqValue(s, Tag.SplitKeyMethod, 'Enumeration'),
  };
  const prime = optValue(s, Tag.PrimeFieldSize, 'BigInteger');
  if (prime !== undefined) f.prime = prime;
  return f;
}

export function splitKeyObject(f: SplitFields, part: Uint8Array, alg: number | undefined, length: number | undefined): StructureNode {
  const fields: TtlvNode[] = [
    T.int(Tag.SplitKeyParts, f.parts),
    T.int(Tag.KeyPartIdentifier, f.id),
    T.int(Tag.SplitKeyThreshold, f.threshold),
    T.enum(Tag.SplitKeyMethod, f.method),
  ];
  if (f.prime !== undefined) fields.push(T.big(Tag.PrimeFieldSize, f.prime));
  const block: TtlvNode[] = [T.enum(Tag.KeyFormatType, KFT.Raw), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, part)])];
  if (alg !== undefined) block.push(T.enum(Tag.CryptographicAlgorithm, alg));
  if (length !== undefined) block.push(T.int(Tag.CryptographicLength, length));
  fields.push(T.struct(Tag.KeyBlock, block));
  return T.struct(Tag.SplitKey, fields);
}

interface BlockFacts {
  material: Buffer;
  algorithm?: number;
  length?: number;
}

/** Raw / Opaque / Transparent Symmetric Key material of a key block (copied; zero it). */
function readBlock(block: StructureNode): BlockFacts {
  if (opt(block, Tag.KeyWrappingData, 'Structure')) throw new KmipError('KeyWrapTypeNotSupported', 'kmipd cannot split or join key material it holds wrapped');
  const format = reqValue(block, Tag.KeyFormatType, 'Enumeration');
  const kv = req(block, Tag.KeyValue, 'Structure');
  const m = kv.value.find((c) => c.tag === Tag.KeyMaterial);
  if (!m) throw new KmipError('KeyValueNotPresent', 'the Key Block has no Key Material');
  let material: Buffer | undefined;
  if ((format === KFT.Raw || format === KFT.Opaque) && m.type === 'ByteString') material = Buffer.from(m.value);
  else if (format === KFT.TransparentSymmetricKey && m.type === 'Structure') material = Buffer.from(reqValue(m, Tag.Key, 'ByteString'));
  if (!material) throw new KmipError('KeyFormatTypeNotSupported', `kmipd splits and joins Raw, Opaque and Transparent Symmetric Key material, not ${enumValueName('KeyFormatType', format) ?? format}`);
  const out: BlockFacts = { material };
  const alg = optValue(block, Tag.CryptographicAlgorithm, 'Enumeration');
  if (alg !== undefined) out.algorithm = alg;
  const length = optValue(block, Tag.CryptographicLength, 'Integer');
  if (length !== undefined) out.length = length;
  return out;
}

const algAttr = (v: number): KmipAttribute => ({ name: 'Cryptographic Algorithm', index: 0, value: T.enum(Tag.CryptographicAlgorithm, v) });
const lenAttr = (v: number): KmipAttribute => ({ name: 'Cryptographic Length', index: 0, value: T.int(Tag.CryptographicLength, v) });

function implicitOf(f: { algorithm?: number; length?: number }): KmipAttribute[] {
  const out: KmipAttribute[] = [];
  if (f.algorithm !== undefined) out.push(algAttr(f.algorithm));
  if (f.length !== undefined) out.push(lenAttr(f.length));
  return out;
}

/** Register of a Split Key object (register-objects.ts dispatches here). */
export function parseSplitKeyObject(obj: StructureNode): RegisteredObject {
  const f = readSplitFields(obj);
  checkSplitFields(f);
  // The object keeps this copy of the part; register.ts encodes and seals it.
  const block = readBlock(req(obj, Tag.KeyBlock, 'Structure'));
  if (block.material.length === 0 || block.material.length > MAX_SPLIT_KEY_BYTES) throw new KmipError('InvalidField', `a key part must be 1 to ${MAX_SPLIT_KEY_BYTES} bytes`);
  if (f.prime !== undefined && toBig(block.material) >= f.prime) throw new KmipError('InvalidField', 'the key part is not below the Prime Field Size');
  const stored = splitKeyObject(f, block.material, block.algorithm, block.length);
  return { object: stored, implicit: implicitOf(block), digest: digestNode(block.material, KFT.Raw) };
}



function requestAttributes(ctx: OperationContext, payload: StructureNode, objectType: number): KmipAttribute[] {
  checkProtectionStorageMasks(payload);
  const client = dropEchoedAttributes(readRequestAttributes(payload, ctx.version, false), objectType);
  checkInitialAttributes(client, 'create', objectType, ctx.version);
  checkNoDuplicateNames(client);
  return client;
}

// ---------------------------------------------------------------------------------------------
// Operations

export const createSplitKeyHandler: OperationHandler = {
  operation: Enums.Operation.CreateSplitKey,
  name: 'CreateSplitKey',
  since: '1.2',
  objectTypes: [OT.SplitKey],
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const objectType = reqValue(payload, Tag.ObjectType, 'Enumeration');
    if (objectType !== OT.SplitKey) throw new KmipError('InvalidObjectType', 'Create Split Key makes Split Key objects');
    const f: Omit<SplitFields, 'id'> = {
      parts: reqValue(payload, Tag.SplitKeyParts, 'Integer'),
      threshold: reqValue(payload, Tag.SplitKeyThreshold, 'Integer'),
      method: reqValue(payload, Tag.SplitKeyMethod, 'Enumeration'),
    };
    if (!enumValueInVersion('SplitKeyMethod', f.method, ctx.version)) throw new KmipError('InvalidField', `Split Key Method ${f.method} does not exist in KMIP ${ctx.version}`);
    const prime = optValue(payload, Tag.PrimeFieldSize, 'BigInteger');
    if (prime !== undefined) f.prime = prime;
    checkSplitFields(f);
    const client = requestAttributes(ctx, payload, objectType);

    const uid = ctx.uidOrPlaceholder(payload);
    const base = await loadObject(ctx, uid, 'material');
    if (isDestroyed(base.state)) throw new KmipError('ObjectDestroyed', 'the key to split has been destroyed');
    if (base.objectType !== OT.SymmetricKey && base.objectType !== OT.SecretData) {
      throw new KmipError('IllegalObjectType', `kmipd splits Symmetric Keys and Secret Data, not ${enumValueName('ObjectType', base.objectType) ?? base.objectType}`);
    }
    const stored = await storedTree(ctx, base);
    let block: BlockFacts;
    try {
      block = readBlock(req(stored, Tag.KeyBlock, 'Structure'));
    } finally {
      wipeTree(stored);
    }
    const alg = block.algorithm ?? enumOf(base.attributes, 'Cryptographic Algorithm');
    const length = block.length ?? intOf(base.attributes, 'Cryptographic Length');
    let shares: Buffer[] = [];
    try {
      if (block.material.length === 0 || block.material.length > MAX_SPLIT_KEY_BYTES) throw new KmipError('InvalidField', `kmipd splits keys of 1 to ${MAX_SPLIT_KEY_BYTES} bytes`);
      if (f.method === SKM.XOR) {
        shares = Array.from({ length: f.parts - 1 }, () => randomBytes(block.material.length));
        shares.push(xorAll([block.material, ...shares]));
      } else if (f.method === SKM.PolynomialSharingGF2_8) {
        shares = splitGf256(block.material, f.parts, f.threshold);
      } else {
        shares = splitPrime(block.material, f.parts, f.threshold, f.prime!);
      }
      const now = ctx.now();
      const uids: string[] = [];
      for (let i = 0; i < shares.length; i++) {
        const partUid = ctx.objects.newUid();
        const part = shares[i]!;
        const { attributes, state } = initialAttributes({
          uid: partUid,
          objectType,
          now,
          client,
          implicit: implicitOf({ ...(alg !== undefined ? { algorithm: alg } : {}), ...(length !== undefined ? { length } : {}) }),
          digest: digestNode(part, KFT.Raw),
        });
        // The parts differ only in identifier and Digest: the first one stands for all.
        if (i === 0) await checkNewObject(ctx, objectType, attributes);
        const material = encodeTtlv(splitKeyObject({ ...f, id: i + 1 }, part, alg, length));
        try {
          await ctx.objects.create({ uid: partUid, objectType, state, attributes, material });
        } finally {
          material.fill(0);
        }
        uids.push(partUid);
      }
      ctx.log.info({ uid: base.uid, parts: uids, threshold: f.threshold, method: enumValueName('SplitKeyMethod', f.method) }, 'split a key');
      return uids.map((u) => T.text(Tag.UniqueIdentifier, u));
    } finally {
      block.material.fill(0);
      for (const s of shares) s.fill(0);
    }
  },
};

export const joinSplitKeyHandler: OperationHandler = {
  operation: Enums.Operation.JoinSplitKey,
  name: 'JoinSplitKey',
  since: '1.2',
  objectTypes: [OT.SymmetricKey, OT.SecretData],
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const objectType = reqValue(payload, Tag.ObjectType, 'Enumeration');
    if (objectType !== OT.SymmetricKey && objectType !== OT.SecretData) {
      throw new KmipError('InvalidObjectType', `kmipd joins split keys into Symmetric Keys or Secret Data, not ${enumValueName('ObjectType', objectType) ?? objectType}`);
    }
    const uids = all(payload, Tag.UniqueIdentifier, 'TextString').map((n) => n.value);
    if (uids.length === 0) throw new KmipError('MissingData', 'Join Split Key needs the Unique Identifiers of the parts');
    if (new Set(uids).size !== uids.length) throw new KmipError('InvalidField', 'a part is named twice');
    const client = requestAttributes(ctx, payload, objectType);

    const points: { f: SplitFields; block: BlockFacts }[] = [];
    try {
      for (const uid of uids) {
        const obj = await loadObject(ctx, uid, 'material');
        if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', `the part ${uid} has been destroyed`);
        if (obj.objectType !== OT.SplitKey) throw new KmipError('IllegalObjectType', `${uid} is not a Split Key`);
        const stored = await storedTree(ctx, obj);
        try {
          points.push({ f: readSplitFields(stored), block: readBlock(req(stored, Tag.KeyBlock, 'Structure')) });
        } finally {
          wipeTree(stored);
        }
      }
      const first = points[0]!;
      for (const p of points) {
        const same =
          p.f.parts === first.f.parts &&
          p.f.threshold === first.f.threshold &&
          p.f.method === first.f.method &&
          p.f.prime === first.f.prime &&
          p.block.material.length === first.block.material.length &&
          p.block.length === first.block.length;
        if (!same) throw new KmipError('InvalidField', 'the parts do not belong to the same split (parts, threshold, method, field or length differ)');
      }
      if (new Set(points.map((p) => p.f.id)).size !== points.length) throw new KmipError('InvalidField', 'two parts carry the same Key Part Identifier');
      if (points.length < first.f.threshold) {
        throw new KmipError('CryptographicFailure', `${points.length} of the ${first.f.threshold} parts needed: the key cannot be reconstructed`);
      }
      checkSplitFields(first.f);

      const alg = enumOf(client, 'Cryptographic Algorithm') ?? first.block.algorithm;
      const length = intOf(client, 'Cryptographic Length') ?? first.block.length;
      const bytes =
        objectType === OT.SymmetricKey && alg !== undefined && length !== undefined
          ? keyBytesFor(alg, length)
          : length !== undefined
            ? Math.ceil(length / 8)
            : first.block.material.length;
      if (objectType === OT.SymmetricKey && alg === undefined) throw new KmipError('MissingData', 'the joined symmetric key needs a Cryptographic Algorithm (the request\'s or the parts\')');
      const xy = points.map((p) => ({ x: p.f.id, y: p.block.material }));
      let key: Buffer;
      if (first.f.method === SKM.XOR) key = xorAll(xy.map((p) => p.y));
      else if (first.f.method === SKM.PolynomialSharingGF2_8) key = joinGf256(xy.slice(0, first.f.threshold));
      else key = joinPrime(xy.slice(0, first.f.threshold), first.f.prime!, bytes);
      let material: Buffer | undefined;
      try {
        if (key.length !== bytes) throw new KmipError('InvalidField', `the parts hold a ${key.length * 8}-bit key, not ${bytes * 8} bits`);
        const uid = ctx.objects.newUid();
        const implicit = objectType === OT.SymmetricKey ? implicitOf({ ...(alg !== undefined ? { algorithm: alg } : {}), ...(length !== undefined ? { length } : {}) }) : [];
        const format = objectType === OT.SymmetricKey ? KFT.Raw : KFT.Opaque;
        const { attributes, state } = initialAttributes({ uid, objectType, now: ctx.now(), client, implicit, digest: digestNode(key, format) });
        await checkNewObject(ctx, objectType, attributes);
        material = encodeTtlv(
          objectType === OT.SymmetricKey
            ? symmetricKeyObject(key, format, alg, length)
            : T.struct(Tag.SecretData, [
                T.enum(Tag.SecretDataType, Enums.SecretDataType.Seed),
                T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, format), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, key)])]),
              ]),
        );
        await ctx.objects.create({ uid, objectType, state, attributes, material });
        ctx.log.info({ uid, parts: uids }, 'joined a split key');
        return [T.text(Tag.UniqueIdentifier, uid)];
      } finally {
        key.fill(0);
        material?.fill(0);
      }
    } finally {
      for (const p of points) p.block.material.fill(0);
    }
  },
};
