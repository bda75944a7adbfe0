import { TtlvError, TtlvErrorKind } from './errors.js';
import { ItemType, type TtlvNode } from './types.js';

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const UINT32_MAX = 0xffffffff;
/** A UTF-16 surrogate without its pair cannot be encoded as UTF-8. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/**
 * A growable output buffer. Structures reserve their header, write their children, then patch
 * the length in place: one pass, no intermediate buffers, amortised linear growth.
 */
class Writer {
  buf: Buffer;
  pos = 0;
  readonly path: number[] = [];

  constructor(initial: number) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const nb = Buffer.allocUnsafe(size);
    this.buf.copy(nb, 0, 0, this.pos);
    this.buf = nb;
  }

  fail(detail: string, tag: number): never {
    throw new TtlvError(TtlvErrorKind.BadValue, detail, this.pos, [...this.path, tag]);
  }

  header(tag: number, type: number, length: number): void {
    if (!Number.isInteger(tag) || tag < 0 || tag > 0xffffff) {
      throw new TtlvError(TtlvErrorKind.BadTag, `tag ${tag} does not fit in 3 bytes`, this.pos, [...this.path]);
    }
    this.ensure(8);
    const b = this.buf;
    const p = this.pos;
    b[p] = tag >>> 16;
    b[p + 1] = (tag >>> 8) & 0xff;
    b[p + 2] = tag & 0xff;
    b[p + 3] = type;
    b.writeUInt32BE(length, p + 4);
    this.pos = p + 8;
  }

  /** Writes `len` value bytes with `fill`, then zero padding to the next multiple of 8. */
  padded(len: number, fill: (b: Buffer, p: number) => void): void {
    const total = (len + 7) & ~7;
    this.ensure(total);
    fill(this.buf, this.pos);
    this.buf.fill(0, this.pos + len, this.pos + total);
    this.pos += total;
  }

  node(n: TtlvNode): void {
    const tag = n.tag;
    switch (n.type) {
      case 'Structure': {
        const start = this.pos;
        this.header(n.tag, ItemType.Structure, 0);
        this.path.push(n.tag);
        for (const c of n.value) this.node(c);
        this.path.pop();
        this.buf.writeUInt32BE(this.pos - start - 8, start + 4);
        return;
      }
      case 'Integer': {
        const v = n.value;
        if (!Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) this.fail(`Integer ${v} out of range`, n.tag);
        this.header(n.tag, ItemType.Integer, 4);
        this.padded(4, (b, p) => b.writeInt32BE(v, p));
        return;
      }
      case 'Enumeration':
      case 'Interval': {
        const v = n.value;
        if (!Number.isInteger(v) || v < 0 || v > UINT32_MAX) this.fail(`${n.type} ${v} out of range`, n.tag);
        this.header(n.tag, ItemType[n.type], 4);
        this.padded(4, (b, p) => b.writeUInt32BE(v, p));
        return;
      }
      case 'LongInteger':
      case 'DateTime':
      case 'DateTimeExtended': {
        const v = n.value;
        if (typeof v !== 'bigint' || v < INT64_MIN || v > INT64_MAX) this.fail(`${n.type} ${String(v)} out of range`, n.tag);
        this.header(n.tag, ItemType[n.type], 8);
        this.padded(8, (b, p) => b.writeBigInt64BE(v, p));
        return;
      }
      case 'Boolean': {
        if (typeof n.value !== 'boolean') this.fail('Boolean value must be true or false', tag);
        this.header(n.tag, ItemType.Boolean, 8);
        const v = n.value ? 1n : 0n;
        this.padded(8, (b, p) => b.writeBigUInt64BE(v, p));
        return;
      }
      case 'BigInteger': {
        if (typeof n.value !== 'bigint') this.fail('Big Integer value must be a bigint', tag);
        const bytes = bigIntegerBytes(n.value);
        this.header(n.tag, ItemType.BigInteger, bytes.length);
        this.padded(bytes.length, (b, p) => bytes.copy(b, p));
        return;
      }
      case 'TextString': {
        if (typeof n.value !== 'string') this.fail('Text String value must be a string', tag);
        const s = n.value;
        if (LONE_SURROGATE.test(s)) this.fail('Text String holds a lone surrogate', n.tag);
        const len = Buffer.byteLength(s, 'utf8');
        this.header(n.tag, ItemType.TextString, len);
        this.padded(len, (b, p) => b.write(s, p, len, 'utf8'));
        return;
      }
      case 'ByteString': {
        const v = n.value;
        if (!(v instanceof Uint8Array)) this.fail('Byte String value must be a Uint8Array', tag);
        this.header(n.tag, ItemType.ByteString, v.length);
        this.padded(v.length, (b, p) => b.set(v, p));
        return;
      }
    }
  }
}

/**
 * Two's complement big-endian, sign-extended to the shortest multiple of 8 bytes that holds the
 * value with its sign (KMIP §9.1.1.4: "padded with leading sign-extended bytes").
 */
export function bigIntegerBytes(v: bigint): Buffer {
  let bits = 1; // the sign bit
  for (let m = v < 0n ? -v - 1n : v; m > 0n; m >>= 1n) bits++;
  const len = Math.max(8, Math.ceil(bits / 64) * 8);
  const u = v < 0n ? (1n << BigInt(len * 8)) + v : v;
  return Buffer.from(u.toString(16).padStart(len * 2, '0'), 'hex');
}

/** Encodes a tree to TTLV bytes. Throws TtlvError (BadValue, BadTag) for values that cannot be encoded. */
export function encodeTtlv(node: TtlvNode, sizeHint = 512): Buffer {
  const w = new Writer(sizeHint);
  w.node(node);
  // Hand out exactly the bytes written, in a buffer of their own.
  return w.pos === w.buf.length ? w.buf : Buffer.from(w.buf.subarray(0, w.pos));
}
