/**
 * Backend-independent helpers for storing attributes: the lossless blob encoding of an object's
 * StoredAttribute[] and the normalised keys of the Locate index. The SQLite store uses them, and
 * the PostgreSQL store is meant to use the same ones, so that both index and match identically.
 */
import { createHash } from 'node:crypto';
import { decodeTtlv, encodeTtlv, isItemTypeName, T, type TtlvNode } from '../ttlv/index.js';
import type { AttributeFilter, StoredAttribute } from './types.js';

/** KMIP tags used for the storage envelope of the attribute list (Attributes / Attribute / ...). */
const TAG_ATTRIBUTES = 0x420125;
const TAG_ATTRIBUTE = 0x420008;
const TAG_ATTRIBUTE_INDEX = 0x420009;
const TAG_ATTRIBUTE_NAME = 0x42000a;
/** Name Value inside a Name structure. */
const TAG_NAME_VALUE = 0x420055;

/**
 * Limits for decoding stored blobs. They are our own writes, not a peer's message, so they are
 * wider than the wire limits; the depth allows the two levels of our envelope on top of the
 * wire's 64.
 */
const STORED_LIMITS = { maxMessageSize: 256 * 1024 * 1024, maxDepth: 128 } as const;

/** Thrown when an object's attributes cannot be stored (bad name, duplicate instance, ...). */
export class AttributeEncodingError extends Error {
  override readonly name = 'AttributeEncodingError';
}

/**
 * Encodes the attribute list as one TTLV structure:
 * Attributes { Attribute { Attribute Name, Attribute Index, <the value node as is> } ... }.
 * Every node keeps its tag and type, so decodeAttributes gives back an equal list, in order.
 * Throws AttributeEncodingError or TtlvError (a value that cannot be encoded).
 */
export function encodeAttributes(attrs: readonly StoredAttribute[]): Buffer {
  checkAttributes(attrs);
  const items: TtlvNode[] = attrs.map((a) =>
    T.struct(TAG_ATTRIBUTE, [T.text(TAG_ATTRIBUTE_NAME, a.name), T.int(TAG_ATTRIBUTE_INDEX, a.index), a.value]),
  );
  return encodeTtlv(T.struct(TAG_ATTRIBUTES, items), 64 + attrs.length * 64);
}

export function decodeAttributes(blob: Uint8Array): StoredAttribute[] {
  const root = decodeTtlv(blob, STORED_LIMITS);
  if (root.tag !== TAG_ATTRIBUTES || root.type !== 'Structure') {
    throw new AttributeEncodingError('stored attribute blob does not start with an Attributes structure');
  }
  return root.value.map((item, i) => {
    if (item.tag !== TAG_ATTRIBUTE || item.type !== 'Structure' || item.value.length !== 3) {
      throw new AttributeEncodingError(`stored attribute #${i} is malformed`);
    }
    const [name, index, value] = item.value as [TtlvNode, TtlvNode, TtlvNode];
    if (name.type !== 'TextString' || index.type !== 'Integer') {
      throw new AttributeEncodingError(`stored attribute #${i} has a malformed name or index`);
    }
    return { name: name.value, index: index.value, value };
  });
}

function checkAttributes(attrs: readonly StoredAttribute[]): void {
  const seen = new Set<string>();
  for (const a of attrs) {
    if (typeof a.name !== 'string' || a.name.length === 0) {
      throw new AttributeEncodingError('an attribute name must be a non-empty string');
    }
    if (typeof a.value !== 'object' || a.value === null || !isItemTypeName(a.value.type)) {
      throw new AttributeEncodingError(`attribute ${a.name} has no TTLV value`);
    }
    if (!Number.isInteger(a.index) || a.index < 0 || a.index > 0x7fffffff) {
      throw new AttributeEncodingError(`attribute ${a.name} has an invalid index ${String(a.index)}`);
    }
    const k = `${a.index}\u0000${a.name}`;
    if (seen.has(k)) throw new AttributeEncodingError(`attribute ${a.name} has two instances with index ${a.index}`);
    seen.add(k);
  }
}

// ---------------------------------------------------------------------------------------------
// Locate index keys

/**
 * A normalised, comparable key as stored in the index and bound in queries:
 * - integers of every width (and Booleans as 0/1, Date-Times in seconds) as SQL integers
 *   (`number` when safe, else `bigint` within int64), Date-Time Extended with a fractional part
 *   as a SQL real (seconds);
 * - Text Strings as text, Byte Strings as blobs;
 * - values longer than LONG_KEY bytes as a SHA-256 digest with a NUL-led marker, so the index
 *   stays small (equality still works: filter values are normalised the same way; ranges on
 *   such values are meaningless anyway);
 * - Big Integers outside int64 as a NUL-led text marker with the decimal value;
 * - null for structures other than Name (indexed for `present` only).
 */
export type IndexKey = number | bigint | string | Buffer | null;

export interface IndexEntry {
  name: string;
  instance: number;
  key: IndexKey;
}

const LONG_KEY = 256;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

function intKey(v: bigint): IndexKey {
  if (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (v >= INT64_MIN && v <= INT64_MAX) return v;
  return `\u0000big:${v.toString(10)}`;
}

function textKey(s: string): IndexKey {
  if (Buffer.byteLength(s, 'utf8') <= LONG_KEY) return s;
  return `\u0000sha256:${createHash('sha256').update(s, 'utf8').digest('hex')}`;
}

const LONG_BLOB_MARKER = Buffer.from('\u0000sha256:', 'latin1');

function bytesKey(b: Uint8Array): IndexKey {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length <= LONG_KEY) return Buffer.from(buf); // a copy: the caller's buffer may change
  return Buffer.concat([LONG_BLOB_MARKER, createHash('sha256').update(buf).digest()]);
}

/** The index key of one attribute value (see IndexKey). */
export function indexKeyOf(name: string, value: TtlvNode): IndexKey {
  switch (value.type) {
    case 'Integer':
    case 'Enumeration':
    case 'Interval':
      return value.value;
    case 'LongInteger':
    case 'BigInteger':
    case 'DateTime':
      return intKey(value.value);
    case 'DateTimeExtended': {
      const us = value.value;
      if (us % 1_000_000n === 0n) return intKey(us / 1_000_000n);
      return Number(us) / 1e6;
    }
    case 'Boolean':
      return value.value ? 1 : 0;
    case 'TextString':
      return textKey(value.value);
    case 'ByteString':
      return bytesKey(value.value);
    case 'Structure': {
      if (name !== 'Name') return null;
      const nv = value.value.find((c) => c.tag === TAG_NAME_VALUE);
      return nv !== undefined && nv.type === 'TextString' ? textKey(nv.value) : null;
    }
  }
}

/** The index rows of an object: one per attribute instance. */
export function indexEntries(attrs: readonly StoredAttribute[]): IndexEntry[] {
  return attrs.map((a) => ({ name: a.name, instance: a.index, key: indexKeyOf(a.name, a.value) }));
}

/** Normalises the value of an `equals` filter exactly as indexKeyOf normalises stored values. */
export function filterKey(value: Extract<AttributeFilter, { kind: 'equals' }>['value']): Exclude<IndexKey, null> {
  if (typeof value === 'string') return textKey(value) as string;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'bigint') return intKey(value) as number | bigint | string;
  if (typeof value === 'number') return value; // a non-integer simply matches nothing
  if (value instanceof Uint8Array) return bytesKey(value) as Buffer;
  throw new TypeError('a Locate filter value must be a string, number, bigint, boolean or Buffer');
}

/** Clamps a range bound (seconds) into what an SQL integer holds. */
export function rangeBound(v: bigint): number | bigint {
  const c = v < INT64_MIN ? INT64_MIN : v > INT64_MAX ? INT64_MAX : v;
  return intKey(c) as number | bigint;
}
