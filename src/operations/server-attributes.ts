/**
 * Server-maintained attributes that kmipd computes when an object is read instead of storing
 * them. Each one follows from the object itself and the server's policy, so objects stored by an
 * earlier kmipd (which did not keep them) answer exactly like new ones, and a change of policy
 * (the lease time) applies to every object at once. They are only added where the object has no
 * stored instance; the attribute rules make them read-only for clients (attribute-rules.ts).
 *
 * - Lease Time (KMIP 1.4 §3.20; 2.1 §4 "Lease Time"): "Initially set by: Server", "Modifiable
 *   by client: No", for Cryptographic Objects; the maximum lease the server serves. kmipd's is
 *   the `leaseTimeSeconds` of ServerInfo (DEFAULT_LEASE_TIME_SECONDS unless configured; 0 sets
 *   none). The OASIS reference server answered 3600 in every test case, hence the default.
 * - Sensitive (1.4 §3.48) and Extractable (1.4 §3.50) take their defaults, False and True,
 *   when the client never set them (the attributes exist from 1.4 on).
 * - Always Sensitive (1.4 §3.49) / Never Extractable (1.4 §3.51): "set by the server" from the
 *   history of Sensitive / Extractable. initialAttributes (lifecycle.ts) stores them when the
 *   client gave Sensitive / Extractable at creation and withAttributeHistory below updates them
 *   on every change; an object without a stored value has kept its default all along, so the
 *   value follows from the current Sensitive / Extractable.
 * - Short Unique Identifier (2.0/2.1 §4 "Short Unique Identifier"): a fixed-length (32 byte)
 *   Byte String the server derives from the Unique Identifier: its SHA-256.
 * - Key Format Type (2.0/2.1 §4 "Key Format Type", an attribute in 2.x only): the format the
 *   server keeps the object in, the format its Digest is computed over (the Digest's own Key
 *   Format Type, which kmipd stores for every object whose material it holds in plaintext).
 * - Protection Storage Mask (2.0/2.1 §4 "Protection Storage Mask", 2.x only): how the server
 *   stores the object. kmipd keeps every object in software (sealed under its root key; see
 *   checkProtectionStorageMasks in create.ts for the masks it satisfies): Software.
 */
import { createHash } from 'node:crypto';
import type { KmipAttribute } from '../codec/attributes.js';
import { isV2 } from '../codec/attributes.js';
import type { StoredObject } from '../keystore/types.js';
import { Enums, Masks, Tag, type KmipVersion } from '../spec/index.js';
import { T, type TtlvNode } from '../ttlv/index.js';

/** The Lease Time kmipd grants unless configured otherwise (seconds). */
export const DEFAULT_LEASE_TIME_SECONDS = 3600;

const OT = Enums.ObjectType;
const ALG = Enums.CryptographicAlgorithm;

/** Managed Objects that are not Cryptographic Objects (KMIP 1.4 §2.2): no lease, no sensitivity. */
const NOT_CRYPTOGRAPHIC: readonly number[] = [OT.OpaqueObject, OT.Template];

export function isCryptographicObject(objectType: number): boolean {
  return !NOT_CRYPTOGRAPHIC.includes(objectType);
}

function first(attrs: readonly KmipAttribute[], name: string): TtlvNode | undefined {
  let best: KmipAttribute | undefined;
  for (const a of attrs) if (a.name === name && (!best || a.index < best.index)) best = a;
  return best?.value;
}

function bool(attrs: readonly KmipAttribute[], name: string): boolean | undefined {
  const v = first(attrs, name);
  return v?.type === 'Boolean' ? v.value : undefined;
}

/** Sensitive as it is now: its default (False) when never set. */
export function effectiveSensitive(attrs: readonly KmipAttribute[]): boolean {
  return bool(attrs, 'Sensitive') ?? false;
}

/** Extractable as it is now: its default (True) when never set. */
export function effectiveExtractable(attrs: readonly KmipAttribute[]): boolean {
  return bool(attrs, 'Extractable') ?? true;
}

function alwaysSensitive(attrs: readonly KmipAttribute[]): boolean {
  return bool(attrs, 'Always Sensitive') ?? effectiveSensitive(attrs);
}

function neverExtractable(attrs: readonly KmipAttribute[]): boolean {
  return bool(attrs, 'Never Extractable') ?? !effectiveExtractable(attrs);
}

/** The SHA-256 of the Unique Identifier (2.x Short Unique Identifier). */
export function shortUniqueIdentifier(uid: string): Buffer {
  return createHash('sha256').update(uid, 'utf8').digest();
}

/** The Key Format Type the object's Digest was computed over, if any. */
function digestKeyFormat(attrs: readonly KmipAttribute[]): number | undefined {
  for (const a of attrs) {
    if (a.name !== 'Digest' || a.value.type !== 'Structure') continue;
    const k = a.value.value.find((c) => c.tag === Tag.KeyFormatType);
    if (k?.type === 'Enumeration') return k.value;
  }
  return undefined;
}

export interface DerivedOptions {
  version: KmipVersion;
  /** Lease Time in seconds; 0: none. */
  leaseTimeSeconds: number;
}

/**
 * The server-maintained attributes `obj` does not store, as a client of `version` sees them.
 * `stored` are its stored attributes.
 */
export function derivedAttributes(obj: StoredObject, stored: readonly KmipAttribute[], o: DerivedOptions): KmipAttribute[] {
  const out: KmipAttribute[] = [];
  const has = (name: string) => stored.some((a) => a.name === name);
  const add = (name: string, value: TtlvNode) => {
    if (!has(name)) out.push({ name, index: 0, value });
  };
  if (isV2(o.version)) {
    add('Short Unique Identifier', T.bytes(Tag.ShortUniqueIdentifier, shortUniqueIdentifier(obj.uid)));
    add('Protection Storage Mask', T.int(Tag.ProtectionStorageMask, Masks.ProtectionStorageMask.Software));
    const kft = digestKeyFormat(stored);
    if (kft !== undefined) add('Key Format Type', T.enum(Tag.KeyFormatType, kft));
  }
  if (!isCryptographicObject(obj.objectType)) return out;
  if (o.leaseTimeSeconds > 0) add('Lease Time', T.interval(Tag.LeaseTime, o.leaseTimeSeconds));
  add('Sensitive', T.bool(Tag.Sensitive, effectiveSensitive(stored)));
  add('Always Sensitive', T.bool(Tag.AlwaysSensitive, alwaysSensitive(stored)));
  add('Extractable', T.bool(Tag.Extractable, effectiveExtractable(stored)));
  add('Never Extractable', T.bool(Tag.NeverExtractable, neverExtractable(stored)));
  return out;
}

/**
 * `next` (an object's new attribute list, replacing `prev`) with Always Sensitive and Never
 * Extractable kept true to their history (KMIP 1.4 §3.49, §3.51): Always Sensitive stays True
 * only while Sensitive has always been True, Never Extractable only while Extractable has never
 * been True. A value is stored only where it differs from what derivedAttributes would say.
 */
export function withAttributeHistory(objectType: number, prev: readonly KmipAttribute[], next: KmipAttribute[]): KmipAttribute[] {
  if (!isCryptographicObject(objectType)) return next;
  let out = next;
  const keep = (name: string, tag: number, value: boolean, derived: boolean) => {
    const stored = bool(out, name);
    if (stored === value || (stored === undefined && value === derived)) return;
    out = [...out.filter((a) => a.name !== name), { name, index: 0, value: T.bool(tag, value) }];
  };
  keep('Always Sensitive', Tag.AlwaysSensitive, alwaysSensitive(prev) && effectiveSensitive(next), effectiveSensitive(next));
  keep('Never Extractable', Tag.NeverExtractable, neverExtractable(prev) && !effectiveExtractable(next), !effectiveExtractable(next));
  return out;
}

/**
 * Usage Limits as the server keeps them (1.4 §3.21): the Usage Limits Count, the units left, is
 * the server's; when the client gives a Total without a Count, the count starts at the Total
 * (OASIS TC-51 echoes it so from Add Attribute). A Count the client gave is kept.
 */
export function withUsageLimitsCount(value: TtlvNode): TtlvNode {
  if (value.type !== 'Structure' || value.value.some((c) => c.tag === Tag.UsageLimitsCount)) return value;
  const total = value.value.find((c) => c.tag === Tag.UsageLimitsTotal);
  if (total?.type !== 'LongInteger') return value;
  const at = value.value.indexOf(total) + 1;
  return { ...value, value: [...value.value.slice(0, at), T.long(Tag.UsageLimitsCount, total.value), ...value.value.slice(at)] };
}

/** Client attributes as the server stores them (Usage Limits with their count). */
export function asStored(attrs: readonly KmipAttribute[]): KmipAttribute[] {
  return attrs.map((a) => (a.name === 'Usage Limits' ? { ...a, value: withUsageLimitsCount(a.value) } : a));
}

/**
 * A Digest as a KMIP 1.0 client knows it: Hashing Algorithm and Digest Value only (KMIP 1.0
 * §3.17; Key Format Type joined the structure in 1.1, and the OASIS 1.0 test cases answer
 * without it while the 1.1 ones answer with it). Other versions get the stored value.
 */
export function digestForVersion(value: TtlvNode, version: KmipVersion): TtlvNode {
  if (version !== '1.0' || value.type !== 'Structure') return value;
  return { ...value, value: value.value.filter((c) => c.tag !== Tag.KeyFormatType) };
}

/**
 * Random Number Generator (KMIP 1.4 §3.44) of the keys kmipd generates: node:crypto's
 * randomness, OpenSSL's default DRBG, CTR_DRBG with AES-256.
 */
export function rngAttribute(): KmipAttribute {
  return {
    name: 'Random Number Generator',
    index: 0,
    value: T.struct(Tag.RandomNumberGenerator, [
      T.enum(Tag.RNGAlgorithm, Enums.RNGAlgorithm.DRBG),
      T.enum(Tag.CryptographicAlgorithm, ALG.AES),
      T.int(Tag.CryptographicLength, 256),
      T.enum(Tag.DRBGAlgorithm, Enums.DRBGAlgorithm.CTR),
    ]),
  };
}
