/**
 * The generic TTLV tree (KMIP Specification §9.1 / 2.x §"Message Encoding").
 *
 * This layer knows nothing of KMIP semantics: a node is a 3-byte tag, an item type and a value.
 * Tags are numbers (0x420000-0x54FFFF in KMIP; any 24-bit value is representable).
 */

/** Item type codes as they appear on the wire (one byte after the tag). */
export const ItemType = {
  Structure: 0x01,
  Integer: 0x02,
  LongInteger: 0x03,
  BigInteger: 0x04,
  Enumeration: 0x05,
  Boolean: 0x06,
  TextString: 0x07,
  ByteString: 0x08,
  DateTime: 0x09,
  Interval: 0x0a,
  /** KMIP 2.0+: microseconds since the epoch, signed 64-bit. */
  DateTimeExtended: 0x0b,
} as const;

export type ItemTypeName = keyof typeof ItemType;
export type ItemTypeCode = (typeof ItemType)[ItemTypeName];

const codeToName = new Map<number, ItemTypeName>(
  (Object.keys(ItemType) as ItemTypeName[]).map((n) => [ItemType[n], n]),
);

export function itemTypeName(code: number): ItemTypeName | undefined {
  return codeToName.get(code);
}

export function isItemTypeName(s: string): s is ItemTypeName {
  return Object.prototype.hasOwnProperty.call(ItemType, s);
}

/** Fixed value lengths; types absent here have a variable length. */
export const FIXED_LENGTH: Partial<Record<ItemTypeName, number>> = {
  Integer: 4,
  LongInteger: 8,
  Enumeration: 4,
  Boolean: 8,
  DateTime: 8,
  Interval: 4,
  DateTimeExtended: 8,
};

interface Base<T extends ItemTypeName, V> {
  tag: number;
  type: T;
  value: V;
}

export type StructureNode = Base<'Structure', TtlvNode[]>;
/** Signed 32-bit. Masks are Integers too. */
export type IntegerNode = Base<'Integer', number>;
/** Signed 64-bit. */
export type LongIntegerNode = Base<'LongInteger', bigint>;
/** Arbitrary precision, two's complement big-endian on the wire, padded to 8 bytes with sign bytes. */
export type BigIntegerNode = Base<'BigInteger', bigint>;
/** Unsigned 32-bit. */
export type EnumerationNode = Base<'Enumeration', number>;
export type BooleanNode = Base<'Boolean', boolean>;
export type TextStringNode = Base<'TextString', string>;
export type ByteStringNode = Base<'ByteString', Uint8Array>;
/** Seconds since the POSIX epoch, signed 64-bit. */
export type DateTimeNode = Base<'DateTime', bigint>;
/** Seconds, unsigned 32-bit. */
export type IntervalNode = Base<'Interval', number>;
/** Microseconds since the POSIX epoch, signed 64-bit (KMIP 2.0+). */
export type DateTimeExtendedNode = Base<'DateTimeExtended', bigint>;

export type TtlvNode =
  | StructureNode
  | IntegerNode
  | LongIntegerNode
  | BigIntegerNode
  | EnumerationNode
  | BooleanNode
  | TextStringNode
  | ByteStringNode
  | DateTimeNode
  | IntervalNode
  | DateTimeExtendedNode;

export type NodeOf<T extends ItemTypeName> = Extract<TtlvNode, { type: T }>;
export type ValueOf<T extends ItemTypeName> = NodeOf<T>['value'];

/** Builders: short, typed constructors used throughout the codec and the tests. */
export const T = {
  struct: (tag: number, value: TtlvNode[]): StructureNode => ({ tag, type: 'Structure', value }),
  int: (tag: number, value: number): IntegerNode => ({ tag, type: 'Integer', value }),
  long: (tag: number, value: bigint): LongIntegerNode => ({ tag, type: 'LongInteger', value }),
  big: (tag: number, value: bigint): BigIntegerNode => ({ tag, type: 'BigInteger', value }),
  enum: (tag: number, value: number): EnumerationNode => ({ tag, type: 'Enumeration', value }),
  bool: (tag: number, value: boolean): BooleanNode => ({ tag, type: 'Boolean', value }),
  text: (tag: number, value: string): TextStringNode => ({ tag, type: 'TextString', value }),
  bytes: (tag: number, value: Uint8Array): ByteStringNode => ({ tag, type: 'ByteString', value }),
  date: (tag: number, value: bigint): DateTimeNode => ({ tag, type: 'DateTime', value }),
  interval: (tag: number, value: number): IntervalNode => ({ tag, type: 'Interval', value }),
  dateExt: (tag: number, value: bigint): DateTimeExtendedNode => ({ tag, type: 'DateTimeExtended', value }),
} as const;

/** Deep structural equality of two trees (byte strings by content). */
export function nodesEqual(a: TtlvNode, b: TtlvNode): boolean {
  if (a.tag !== b.tag || a.type !== b.type) return false;
  if (a.type === 'Structure') {
    const bv = (b as StructureNode).value;
    if (a.value.length !== bv.length) return false;
    for (let i = 0; i < a.value.length; i++) {
      if (!nodesEqual(a.value[i]!, bv[i]!)) return false;
    }
    return true;
  }
  if (a.type === 'ByteString') {
    const bv = (b as ByteStringNode).value;
    return Buffer.from(a.value.buffer, a.value.byteOffset, a.value.byteLength).equals(bv);
  }
  return a.value === b.value;
}
