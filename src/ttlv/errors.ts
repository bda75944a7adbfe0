/**
 * The one error type of the TTLV layer. Every decode or encode failure is a TtlvError that says
 * what went wrong (kind), where (byte offset from the start of the message) and inside what
 * (the path of tags from the outermost structure to the offending item).
 */
export const TtlvErrorKind = {
  /** The input ends before an item's header or value does. */
  Truncated: 'Truncated',
  /** An item's length runs past the end of the structure that contains it. */
  LengthExceedsParent: 'LengthExceedsParent',
  /** The declared message is larger than the configured maximum. */
  TooLarge: 'TooLarge',
  /** Structures nest deeper than the configured maximum. */
  TooDeep: 'TooDeep',
  /** The type byte is not one of the TTLV item types. */
  UnknownType: 'UnknownType',
  /** A fixed-size type (Integer, Boolean, Date-Time, ...) declares the wrong length. */
  BadFixedLength: 'BadFixedLength',
  /** A Big Integer whose length is not a positive multiple of 8. */
  BadBigIntegerLength: 'BadBigIntegerLength',
  /** Padding bytes after a value are not zero. */
  BadPadding: 'BadPadding',
  /** A Text String is not valid UTF-8. */
  BadUtf8: 'BadUtf8',
  /** A Boolean whose value is neither 0 nor 1. */
  BadBoolean: 'BadBoolean',
  /** Bytes follow the single top-level item. */
  TrailingBytes: 'TrailingBytes',
  /** A value cannot be encoded (out of range for its type, or of the wrong JS type). */
  BadValue: 'BadValue',
  /** A tag outside 24 bits. */
  BadTag: 'BadTag',
} as const;

export type TtlvErrorKind = (typeof TtlvErrorKind)[keyof typeof TtlvErrorKind];

export function formatTag(tag: number): string {
  return '0x' + tag.toString(16).toUpperCase().padStart(6, '0');
}

export class TtlvError extends Error {
  override readonly name = 'TtlvError';
  readonly kind: TtlvErrorKind;
  /** Byte offset, from the start of the message, of the item or byte at fault. */
  readonly offset: number;
  /** Tags from the outermost item down to the item at fault. */
  readonly path: readonly number[];

  constructor(kind: TtlvErrorKind, detail: string, offset: number, path: readonly number[]) {
    const where = path.length ? ` in ${path.map(formatTag).join('/')}` : '';
    super(`${kind}: ${detail} at byte ${offset}${where}`);
    this.kind = kind;
    this.offset = offset;
    this.path = path;
  }
}
