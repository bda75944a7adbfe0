import { TtlvError, TtlvErrorKind } from './errors.js';
import { FIXED_LENGTH, itemTypeName, type TtlvNode } from './types.js';

/** Every TTLV item starts with tag (3 bytes), type (1 byte) and length (4 bytes). */
export const HEADER_SIZE = 8;

/**
 * Default cap on one message, header included.
 * Stops: memory exhaustion by a peer that announces (or sends) huge messages. Real KMIP
 * messages are a few hundred bytes to a few tens of KiB; certificates and Locate responses
 * stay far below 1 MiB.
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024;

/**
 * Default cap on structure nesting.
 * Stops: stack exhaustion by deeply nested structures (a 10,000-deep message is 80 KB).
 * The deepest KMIP messages (Locate responses with 2.x attribute structures, transparent
 * keys inside key blocks inside objects inside batch items) stay under 12 levels.
 */
export const DEFAULT_MAX_DEPTH = 64;

export interface DecodeLimits {
  /** Bytes, header included. */
  maxMessageSize: number;
  /** Structures inside structures, counting the outermost as 1. */
  maxDepth: number;
}

export const DEFAULT_LIMITS: DecodeLimits = {
  maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
  maxDepth: DEFAULT_MAX_DEPTH,
};

// ignoreBOM: a leading U+FEFF is part of the string, not a byte-order mark to drop (without it
// "\uFEFFx" would decode as "x" and the tree would not survive a round trip).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  readonly path: number[] = [];
  constructor(
    readonly buf: Buffer,
    readonly limits: DecodeLimits,
  ) {}

  fail(kind: TtlvErrorKind, detail: string, offset: number, extraTag?: number): never {
    const path = extraTag === undefined ? [...this.path] : [...this.path, extraTag];
    throw new TtlvError(kind, detail, offset, path);
  }

  /** Decodes one item at `pos`, which must end at or before `end`; returns the node and the next position. */
  item(pos: number, end: number, depth: number): [TtlvNode, number] {
    const buf = this.buf;
    if (end - pos < HEADER_SIZE) {
      this.fail(TtlvErrorKind.Truncated, `item header needs ${HEADER_SIZE} bytes, ${end - pos} left`, pos);
    }
    const tag = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
    const typeCode = buf[pos + 3]!;
    const length = buf.readUInt32BE(pos + 4);
    const type = itemTypeName(typeCode);
    if (type === undefined) {
      this.fail(TtlvErrorKind.UnknownType, `unknown item type 0x${typeCode.toString(16).padStart(2, '0')}`, pos + 3, tag);
    }
    const vstart = pos + HEADER_SIZE;
    // Lengths are checked against what the parent holds before anything is read or allocated.
    // Stops: a lying length that would make us read past the parent or the buffer.
    if (length > end - vstart) {
      const kind = end === buf.length ? TtlvErrorKind.Truncated : TtlvErrorKind.LengthExceedsParent;
      this.fail(kind, `length ${length} exceeds the ${end - vstart} bytes available`, pos + 4, tag);
    }
    const fixed = FIXED_LENGTH[type];
    if (fixed !== undefined && length !== fixed) {
      // Stops: type confusion, and reads of uninitialised padding as value bytes.
      this.fail(TtlvErrorKind.BadFixedLength, `${type} must have length ${fixed}, not ${length}`, pos + 4, tag);
    }
    // -length & 7 rather than (length + 7) & ~7: no 32-bit wrap-around for lengths near 2^32.
    const padded = type === 'Structure' ? length : length + (-length & 7);
    if (padded > end - vstart) {
      // Same kind as for the length itself: the input ending inside the padding is a truncation.
      const kind = end === buf.length ? TtlvErrorKind.Truncated : TtlvErrorKind.LengthExceedsParent;
      this.fail(kind, `padding of ${type} runs past its parent`, pos + 4, tag);
    }
    const vend = vstart + length;
    for (let i = vend; i < vstart + padded; i++) {
      // Stops: covert data in padding, and ambiguous encodings of the same message.
      if (buf[i] !== 0) this.fail(TtlvErrorKind.BadPadding, 'non-zero padding byte', i, tag);
    }
    const next = vstart + padded;
    switch (type) {
      case 'Structure': {
        if (depth + 1 > this.limits.maxDepth) {
          this.fail(TtlvErrorKind.TooDeep, `structures nest deeper than ${this.limits.maxDepth}`, pos, tag);
        }
        this.path.push(tag);
        const children: TtlvNode[] = [];
        let p = vstart;
        while (p < vend) {
          const [child, np] = this.item(p, vend, depth + 1);
          children.push(child);
          p = np;
        }
        this.path.pop();
        return [{ tag, type, value: children }, next];
      }
      case 'Integer':
        return [{ tag, type, value: buf.readInt32BE(vstart) }, next];
      case 'Enumeration':
        return [{ tag, type, value: buf.readUInt32BE(vstart) }, next];
      case 'Interval':
        return [{ tag, type, value: buf.readUInt32BE(vstart) }, next];
      case 'LongInteger':
        return [{ tag, type, value: buf.readBigInt64BE(vstart) }, next];
      case 'DateTime':
        return [{ tag, type, value: buf.readBigInt64BE(vstart) }, next];
      case 'DateTimeExtended':
        return [{ tag, type, value: buf.readBigInt64BE(vstart) }, next];
      case 'Boolean': {
        const v = buf.readBigUInt64BE(vstart);
        if (v > 1n) this.fail(TtlvErrorKind.BadBoolean, 'Boolean must be 0 or 1', vstart, tag);
        return [{ tag, type, value: v === 1n }, next];
      }
      case 'BigInteger': {
        if (length === 0 || length % 8 !== 0) {
          this.fail(TtlvErrorKind.BadBigIntegerLength, `Big Integer length ${length} is not a positive multiple of 8`, pos + 4, tag);
        }
        return [{ tag, type, value: readBigInteger(buf, vstart, vend) }, next];
      }
      case 'TextString': {
        let ascii = true;
        for (let i = vstart; i < vend; i++) {
          if (buf[i]! >= 0x80) {
            ascii = false;
            break;
          }
        }
        let value: string;
        if (ascii) value = buf.toString('latin1', vstart, vend);
        else {
          try {
            value = utf8.decode(buf.subarray(vstart, vend));
          } catch {
            // Stops: invalid UTF-8 reaching logs, databases and other clients as mojibake.
            this.fail(TtlvErrorKind.BadUtf8, 'Text String is not valid UTF-8', vstart, tag);
          }
        }
        return [{ tag, type, value }, next];
      }
      case 'ByteString': {
        // A copy, never a view: the caller may reuse or zero the input buffer.
        const value = Buffer.allocUnsafeSlow(length);
        buf.copy(value, 0, vstart, vend);
        return [{ tag, type, value }, next];
      }
    }
  }
}

function readBigInteger(buf: Buffer, start: number, end: number): bigint {
  const hex = buf.toString('hex', start, end);
  let v = BigInt('0x' + hex);
  if (buf[start]! & 0x80) v -= 1n << BigInt((end - start) * 8);
  return v;
}

function asBuffer(input: Uint8Array): Buffer {
  return Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
}

/**
 * Decodes exactly one TTLV item that fills `input`. Throws TtlvError on any malformation,
 * and on nothing else.
 */
export function decodeTtlv(input: Uint8Array, limits: Partial<DecodeLimits> = {}): TtlvNode {
  const lim: DecodeLimits = { ...DEFAULT_LIMITS, ...limits };
  const buf = asBuffer(input);
  if (buf.length > lim.maxMessageSize) {
    throw new TtlvError(TtlvErrorKind.TooLarge, `message of ${buf.length} bytes exceeds the maximum of ${lim.maxMessageSize}`, 0, []);
  }
  const r = new Reader(buf, lim);
  const [node, next] = r.item(0, buf.length, 0);
  if (next !== buf.length) {
    throw new TtlvError(TtlvErrorKind.TrailingBytes, `${buf.length - next} bytes after the message`, next, []);
  }
  return node;
}

/**
 * Reads the size of the whole item whose header starts `input` (header + padded value), or
 * undefined when fewer than 8 bytes are available. Used by the stream framer.
 */
export function peekItemSize(input: Uint8Array): number | undefined {
  if (input.length < HEADER_SIZE) return undefined;
  const len = ((input[4]! << 24) >>> 0) + (input[5]! << 16) + (input[6]! << 8) + input[7]!;
  // -len & 7: (len + 7) & ~7 wraps to 0 or a negative number for lengths of 2^31 - 7 and up.
  return HEADER_SIZE + (input[3] === 0x01 ? len : len + (-len & 7));
}
