/**
 * The key of a cryptographic service operation (Encrypt, Decrypt, Sign, Signature Verify, MAC,
 * MAC Verify): may this client use this object for this purpose now, and its material.
 *
 * Checks, in this order:
 * - the object exists and the client may use its material (ObjectService: another identity's
 *   object is Item Not Found);
 * - not destroyed (Object Destroyed; 1.x Item Not Found);
 * - an Object Type the operation works with (Illegal Object Type; 1.x Illegal Operation);
 * - State Active (KMIP 1.4 §3.22: only an Active object may be used for cryptographic
 *   operations; "under extraordinary circumstances" Deactivated/Compromised keys may process
 *   data: kmipd has no such special permission and refuses): Wrong Key Lifecycle State (1.x:
 *   Permission Denied, what CS-BC-M-14-14 expects);
 * - the Cryptographic Usage Mask has the operation's bit (an object without a mask allows
 *   nothing, as in Check): Incompatible Cryptographic Usage Mask (1.x: Permission Denied);
 * - Protect Stop Date (§3.26) reached: no more Encrypt / Sign / MAC; Process Start Date (§3.25)
 *   not reached: no Decrypt / Verify / MAC Verify. Wrong Key Lifecycle State (1.x: Permission
 *   Denied), as CS-BC-M-14 and CS-AC-M-8 expect in 1.4 and 2.1; Permission Denied in 2.0, as
 *   the 2.0 (csprd01) versions of the same test cases expect.
 *
 * Usage Limits (§3.21) are consumed per request part: Byte units count the data bytes handed to
 * the operation, Object units count one per operation (a stream counts once, at its start).
 * The count is taken before the computation (a failed decryption still consumed it), so that
 * concurrent requests cannot together exceed the limit. Exceeding it is Permission Denied in
 * every version (CS-BC-M-7-14 and -21 both expect it).
 *
 * Key material never reaches a log or a result message; raw symmetric key bytes are zeroed by
 * `releaseKey` once the cipher holds them.
 */
import type { KeyObject } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import { opt, req, reqValue } from '../codec/node.js';
import type { StoredObject } from '../keystore/types.js';
import { Enums, Masks, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { storedKey } from './key-formats.js';
import type { OperationContext } from './context.js';
import { name, unsupported, type KeyFamily } from './crypto-params.js';
import { dateOf, enumOf, firstValue, intOf, isDestroyed, loadObject, stateName, withServerAttribute } from './lifecycle.js';
import { storedTree, wipeTree } from './stored-tree.js';

const OT = Enums.ObjectType;
const KFT = Enums.KeyFormatType;
const M = Masks.CryptographicUsageMask;

export type CryptoUse = 'Encrypt' | 'Decrypt' | 'Sign' | 'Verify' | 'MACGenerate' | 'MACVerify';

const USE_BIT: Readonly<Record<CryptoUse, number>> = {
  Encrypt: M.Encrypt,
  Decrypt: M.Decrypt,
  Sign: M.Sign,
  Verify: M.Verify,
  MACGenerate: M.MACGenerate,
  MACVerify: M.MACVerify,
};

/** Uses that apply cryptographic protection (bounded by Protect Stop Date). */
const PROTECT: ReadonlySet<CryptoUse> = new Set<CryptoUse>(['Encrypt', 'Sign', 'MACGenerate']);

export interface KeyForUse {
  obj: StoredObject;
  /** Cryptographic Algorithm of the key block, else of the attributes. */
  algorithm: number | undefined;
  /** Raw key bytes of a symmetric key; zeroed by releaseKey. */
  symmetric?: Buffer;
  /** A private or public key. */
  asymmetric?: KeyObject;
  family?: KeyFamily;
}

function objectTypeName(t: number): string {
  return name('ObjectType', t);
}

/**
 * Loads `uid` and checks that it may be used for `use` now (everything but Usage Limits). The
 * object is returned with its time-based state transitions applied.
 */
export async function checkKeyForUse(ctx: OperationContext, uid: string, use: CryptoUse, types: readonly number[]): Promise<StoredObject> {
  const obj = await loadObject(ctx, uid, 'material');
  if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'the object has been destroyed');
  if (!types.includes(obj.objectType)) {
    throw new KmipError('IllegalObjectType', `${use} needs a ${types.map(objectTypeName).join(' or ')}, not a ${objectTypeName(obj.objectType)}`);
  }
  if (obj.state !== Enums.State.Active) {
    throw new KmipError('WrongKeyLifecycleState', `the key is ${stateName(obj.state)}; ${use} needs an Active key`);
  }
  const mask = (intOf(obj.attributes, 'Cryptographic Usage Mask') ?? 0) >>> 0;
  const bit = USE_BIT[use];
  if ((mask & bit) >>> 0 !== bit) {
    throw new KmipError('IncompatibleCryptographicUsageMask', `the key's Cryptographic Usage Mask does not allow ${use}`);
  }
  const now = BigInt(Math.floor(ctx.now().getTime() / 1000));
  // 2.1 profiles: Wrong Key Lifecycle State; the 2.0 draft profiles and 1.x: Permission Denied.
  const dateReason = ctx.version === '2.0' ? 'PermissionDenied' : 'WrongKeyLifecycleState';
  if (PROTECT.has(use)) {
    const stop = dateOf(obj.attributes, 'Protect Stop Date');
    if (stop !== undefined && stop <= now) throw new KmipError(dateReason, `the key's Protect Stop Date has passed; no more ${use}`);
  } else {
    const start = dateOf(obj.attributes, 'Process Start Date');
    if (start !== undefined && start > now) throw new KmipError(dateReason, `the key's Process Start Date has not come yet; no ${use} before it`);
  }
  return obj;
}

/** Checks `uid` for `use` and opens its material. Call releaseKey when done. */
export async function keyForUse(ctx: OperationContext, uid: string, use: CryptoUse, types: readonly number[]): Promise<KeyForUse> {
  const obj = await checkKeyForUse(ctx, uid, use, types);
  const stored = await storedTree(ctx, obj);
  try {
    return openKey(obj, stored);
  } finally {
    wipeTree(stored);
  }
}

export function releaseKey(k: KeyForUse | undefined): void {
  k?.symmetric?.fill(0);
}


function openKey(obj: StoredObject, stored: StructureNode): KeyForUse {
  const block = req(stored, Tag.KeyBlock, 'Structure');
  if (opt(block, Tag.KeyWrappingData, 'Structure')) {
    throw new KmipError('FeatureNotSupported', 'the key was registered wrapped under a key kmipd does not hold; it cannot be used');
  }
  const format = reqValue(block, Tag.KeyFormatType, 'Enumeration');
  const algorithm = opt(block, Tag.CryptographicAlgorithm, 'Enumeration')?.value ?? enumOf(obj.attributes, 'Cryptographic Algorithm');
  const kv = req(block, Tag.KeyValue, 'Structure');
  const material = kv.value.find((c) => c.tag === Tag.KeyMaterial);
  if (!material) throw new KmipError('KeyValueNotPresent', 'the key has no Key Material');
  const out: KeyForUse = { obj, algorithm };

  if (obj.objectType === OT.SymmetricKey || obj.objectType === OT.SecretData) {
    let bytes: Uint8Array | undefined;
    if (format === KFT.Raw && material.type === 'ByteString') bytes = material.value;
    else if (format === KFT.TransparentSymmetricKey && material.type === 'Structure') bytes = reqValue(material, Tag.Key, 'ByteString');
    if (!bytes) throw new KmipError('KeyFormatTypeNotSupported', `kmipd cannot use a symmetric key kept in ${name('KeyFormatType', format)} format`);
    out.symmetric = Buffer.from(bytes);
    return out;
  }

  // Private and public keys: read by key-formats.ts (every format kmipd stores them in).
  const key = storedKey(obj.objectType, stored).key;
  out.asymmetric = key;
  const family = familyOf(key);
  if (family) out.family = family;
  return out;
}

function familyOf(k: KeyObject): KeyFamily | undefined {
  switch (k.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      return 'rsa';
    case 'ec':
      return 'ec';
    case 'dsa':
      return 'dsa';
    case 'ed25519':
      return 'ed25519';
    case 'ed448':
      return 'ed448';
    default:
      return undefined;
  }
}

/** The family of a key, refusing keys that cannot do `what`. */
export function requireFamily(k: KeyForUse, allowed: readonly KeyFamily[], what: string): KeyFamily {
  const f = k.family;
  if (!f || !allowed.includes(f)) throw unsupported(`${what} is not supported with ${k.asymmetric?.asymmetricKeyType ?? 'this'} keys`);
  return f;
}

// ---------------------------------------------------------------------------------------------
// Usage Limits

interface Limits {
  total?: bigint;
  count?: bigint;
  unit?: number;
}

function readLimits(v: TtlvNode | undefined): Limits | undefined {
  if (v?.type !== 'Structure') return undefined;
  const l: Limits = {};
  for (const c of v.value) {
    if (c.tag === Tag.UsageLimitsTotal && c.type === 'LongInteger') l.total = c.value;
    else if (c.tag === Tag.UsageLimitsCount && c.type === 'LongInteger') l.count = c.value;
    else if (c.tag === Tag.UsageLimitsUnit && c.type === 'Enumeration') l.unit = c.value;
  }
  return l;
}

/** Usage Limits with the count replaced (Total, Count, Unit: the 1.1+ field order). */
function withCount(v: StructureNode, count: bigint): StructureNode {
  const rest = v.value.filter((c) => c.tag !== Tag.UsageLimitsCount);
  const at = rest.findIndex((c) => c.tag === Tag.UsageLimitsTotal) + 1;
  return T.struct(v.tag, [...rest.slice(0, at), T.long(Tag.UsageLimitsCount, count), ...rest.slice(at)]);
}

/**
 * Consumes the key's Usage Limits for one request part: `bytes` of data (Byte units) and, when
 * `counts` is true, one use (Object units). A key without Usage Limits is unlimited. Retries a
 * few times when another request changed the key meanwhile.
 */
export async function consumeUsage(ctx: OperationContext, obj: StoredObject, bytes: number, counts: boolean): Promise<void> {
  let current = obj;
  for (let attempt = 0; ; attempt++) {
    const v = firstValue(current.attributes, 'Usage Limits');
    const l = readLimits(v);
    if (!l || v?.type !== 'Structure') return;
    const amount = l.unit === Enums.UsageLimitsUnit.Object ? (counts ? 1n : 0n) : BigInt(bytes);
    const left = l.count ?? l.total;
    if (left === undefined || amount === 0n) return;
    if (amount > left) {
      const unit = l.unit === Enums.UsageLimitsUnit.Object ? 'uses' : 'bytes';
      throw new KmipError('PermissionDenied', `the key's Usage Limits allow ${left} more ${unit}, not ${amount}`);
    }
    const next = withServerAttribute(current, 'Usage Limits', withCount(v, left - amount), ctx.now());
    try {
      await ctx.objects.save(current, next);
      return;
    } catch (e) {
      if (!(e instanceof KmipError) || e.reason !== 'GeneralFailure' || attempt >= 4) throw e;
      current = await ctx.objects.find(obj.uid, 'material');
    }
  }
}
