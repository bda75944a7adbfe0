import { DEFAULT_MAX_MESSAGE_SIZE, HEADER_SIZE } from './decode.js';
import { TtlvError, TtlvErrorKind } from './errors.js';
import { ItemType } from './types.js';

/**
 * Splits a TCP/TLS byte stream into whole TTLV messages.
 *
 * - Any chunking works: one byte at a time, or many messages in one chunk.
 * - The 8-byte header is checked before any of the value is buffered: a message announced as
 *   larger than `maxMessageSize`, or whose outer item is not a Structure, is refused at once
 *   (a peer cannot make us allocate 2 GiB by sending 8 bytes).
 * - Every frame handed out is a fresh copy owned by the caller, never a view of a buffer that
 *   the framer reuses.
 *
 * After an error the framer is poisoned: the stream has lost its alignment and the connection
 * must be closed.
 */
export class FrameDecoder {
  private readonly maxMessageSize: number;
  /** Bytes of the current partial header. */
  private readonly header = Buffer.alloc(HEADER_SIZE);
  private headerFill = 0;
  /** The frame being filled (header included), once its size is known. */
  private frame: Buffer | undefined;
  private frameFill = 0;
  private failed: TtlvError | undefined;

  constructor(opts: { maxMessageSize?: number } = {}) {
    this.maxMessageSize = opts.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  }

  /** Bytes held for a message not yet complete. */
  get pending(): number {
    return this.frame ? this.frameFill : this.headerFill;
  }

  /** Feeds a chunk; returns the messages it completed, in order. Throws TtlvError on a bad header. */
  push(chunk: Uint8Array): Buffer[] {
    if (this.failed) throw this.failed;
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (!this.frame) {
        const take = Math.min(HEADER_SIZE - this.headerFill, chunk.length - i);
        this.header.set(chunk.subarray(i, i + take), this.headerFill);
        this.headerFill += take;
        i += take;
        if (this.headerFill < HEADER_SIZE) break;
        const size = this.checkHeader();
        this.frame = Buffer.allocUnsafeSlow(size);
        this.header.copy(this.frame, 0);
        this.frameFill = HEADER_SIZE;
        this.headerFill = 0;
      }
      const take = Math.min(this.frame.length - this.frameFill, chunk.length - i);
      this.frame.set(chunk.subarray(i, i + take), this.frameFill);
      this.frameFill += take;
      i += take;
      if (this.frameFill === this.frame.length) {
        out.push(this.frame);
        this.frame = undefined;
        this.frameFill = 0;
      }
    }
    return out;
  }

  private checkHeader(): number {
    const h = this.header;
    const tag = (h[0]! << 16) | (h[1]! << 8) | h[2]!;
    if (h[3] !== ItemType.Structure) {
      this.failed = new TtlvError(TtlvErrorKind.UnknownType, `a message must be a Structure, not type 0x${h[3]!.toString(16)}`, 3, [tag]);
      throw this.failed;
    }
    const length = h.readUInt32BE(4);
    const size = HEADER_SIZE + length;
    if (size > this.maxMessageSize) {
      this.failed = new TtlvError(
        TtlvErrorKind.TooLarge,
        `message announces ${size} bytes, more than the maximum of ${this.maxMessageSize}`,
        4,
        [tag],
      );
      throw this.failed;
    }
    return size;
  }
}
