/**
 * FrameDecoder: a TCP/TLS byte stream in, whole TTLV messages out, whatever the chunking.
 */
import t from 'tap';
import { decodeTtlv, encodeTtlv, FrameDecoder, ItemType, T, TtlvError, TtlvErrorKind } from '../../src/ttlv/index.js';

const REQUEST = 0x420078; // Request Message
const HEADER = 0x420077; // Request Header

/** A request-shaped message whose size varies with `n` (text of n bytes, so padding varies too). */
function message(n: number): Buffer {
  return encodeTtlv(
    T.struct(REQUEST, [
      T.struct(HEADER, [T.int(0x42000d, n)]), // Batch Count
      T.text(0x420055, 'm'.repeat(n)), // Name Value
      T.bytes(0x420043, Buffer.alloc(n % 13, n)), // Key Material
    ]),
  );
}

function hdr(tag: number, type: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUIntBE(tag, 0, 3);
  b[3] = type;
  b.writeUInt32BE(length, 4);
  return b;
}

/** Feeds chunks and collects every frame. */
function feed(f: FrameDecoder, chunks: Uint8Array[]): Buffer[] {
  const out: Buffer[] = [];
  for (const c of chunks) out.push(...f.push(c));
  return out;
}

function same(t: Tap, got: Buffer[], want: Buffer[], msg: string): void {
  t.equal(got.length, want.length, `${msg}: ${want.length} frames`);
  t.ok(got.length === want.length && got.every((g, i) => g.equals(want[i]!)), `${msg}: the same bytes`);
}
interface Tap {
  equal(a: unknown, b: unknown, msg: string): unknown;
  ok(v: unknown, msg: string): unknown;
}

t.test('one message split at every offset', (t) => {
  const m = message(21);
  for (let cut = 0; cut <= m.length; cut++) {
    const f = new FrameDecoder();
    const first = f.push(m.subarray(0, cut));
    t.equal(first.length, cut === m.length ? 1 : 0, `cut ${cut}: nothing early`);
    t.equal(f.pending, cut === m.length ? 0 : cut, `cut ${cut}: pending`);
    const rest = f.push(m.subarray(cut));
    same(t, [...first, ...rest], [m], `cut ${cut}`);
    t.equal(f.pending, 0, `cut ${cut}: nothing left over`);
  }
  t.end();
});

t.test('two messages split at every offset, and at every pair of offsets', (t) => {
  const a = message(3);
  const b = message(40);
  const both = Buffer.concat([a, b]);
  for (let cut = 0; cut <= both.length; cut++) {
    same(t, feed(new FrameDecoder(), [both.subarray(0, cut), both.subarray(cut)]), [a, b], `cut ${cut}`);
  }
  let pairs = 0;
  let okPairs = 0;
  for (let i = 0; i <= both.length; i++) {
    for (let j = i; j <= both.length; j++) {
      const got = feed(new FrameDecoder(), [both.subarray(0, i), both.subarray(i, j), both.subarray(j)]);
      pairs++;
      if (got.length === 2 && got[0]!.equals(a) && got[1]!.equals(b)) okPairs++;
    }
  }
  t.equal(okPairs, pairs, `all ${pairs} three-chunk splits`);
  t.end();
});

t.test('one byte at a time', (t) => {
  const msgs = [message(0), message(1), message(7), message(8), message(9), encodeTtlv(T.struct(REQUEST, []))];
  const stream = Buffer.concat(msgs);
  const f = new FrameDecoder();
  const out: Buffer[] = [];
  let maxPending = 0;
  for (let i = 0; i < stream.length; i++) {
    out.push(...f.push(stream.subarray(i, i + 1)));
    maxPending = Math.max(maxPending, f.pending);
  }
  same(t, out, msgs, 'byte by byte');
  t.ok(maxPending < Math.max(...msgs.map((m) => m.length)), `pending stays below one message (${maxPending})`);
  t.equal(f.pending, 0, 'nothing left over');
  t.end();
});

t.test('many messages in one chunk, and in random chunks', (t) => {
  const msgs = Array.from({ length: 500 }, (_, i) => message(i % 70));
  const stream = Buffer.concat(msgs);
  same(t, feed(new FrameDecoder(), [stream]), msgs, 'one chunk');
  // Seeded random chunk sizes, from 1 byte to several messages.
  let seed = 12345;
  const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 0x1000000;
  for (let round = 0; round < 20; round++) {
    const chunks: Buffer[] = [];
    for (let p = 0; p < stream.length; ) {
      const n = 1 + Math.floor(next() * (round % 2 ? 40 : 600));
      chunks.push(stream.subarray(p, p + n));
      p += n;
    }
    same(t, feed(new FrameDecoder(), chunks), msgs, `round ${round}: ${chunks.length} chunks`);
  }
  // Empty chunks change nothing.
  const f = new FrameDecoder();
  t.same(f.push(Buffer.alloc(0)), [], 'empty chunk');
  same(t, feed(f, [msgs[0]!.subarray(0, 5), Buffer.alloc(0), msgs[0]!.subarray(5)]), [msgs[0]!], 'with an empty chunk between');
  // Every frame decodes.
  for (const m of feed(new FrameDecoder(), [stream]).slice(0, 10)) t.equal(decodeTtlv(m).tag, REQUEST, 'frame decodes');
  t.end();
});

t.test('an oversize header is refused before its body is buffered', (t) => {
  const max = 1024;
  for (const len of [max - 8 + 1, 0x10000, 0x7fffffff, 0xffffffff]) {
    const f = new FrameDecoder({ maxMessageSize: max });
    const h = hdr(REQUEST, ItemType.Structure, len);
    // The first 7 header bytes are held; the 8th completes the header and is refused.
    t.same(f.push(h.subarray(0, 7)), [], `0x${len.toString(16)}: 7 bytes held`);
    t.equal(f.pending, 7, 'pending 7');
    let e: unknown;
    try {
      f.push(Buffer.concat([h.subarray(7), Buffer.alloc(4096)]));
    } catch (err) {
      e = err;
    }
    t.ok(e instanceof TtlvError, 'TtlvError');
    if (e instanceof TtlvError) {
      t.equal(e.kind, TtlvErrorKind.TooLarge, 'TooLarge');
      t.equal(e.offset, 4, 'at the length field');
      t.same(e.path, [REQUEST], 'path');
    }
    t.ok(f.pending <= 8, `pending ${f.pending} <= 8`);
  }
  // Exactly at the limit is accepted.
  const f = new FrameDecoder({ maxMessageSize: 64 });
  const m = Buffer.concat([hdr(REQUEST, ItemType.Structure, 56), Buffer.alloc(56)]);
  same(t, feed(f, [m]), [m], 'a 64-byte message with a 64-byte limit');
  t.end();
});

t.test('frames are copies, never views of the fed chunks', (t) => {
  const a = message(10);
  const b = message(11);
  const chunk = Buffer.concat([a, b, a.subarray(0, 12)]);
  const f = new FrameDecoder();
  const frames = f.push(chunk);
  t.equal(frames.length, 2, 'two whole frames');
  chunk.fill(0xee);
  t.ok(frames[0]!.equals(a) && frames[1]!.equals(b), 'mutating the chunk afterwards changes no frame');
  t.not(frames[0]!.buffer, chunk.buffer, 'own memory');
  t.not(frames[0]!.buffer, frames[1]!.buffer, 'frames do not share memory');
  // The partial third message was copied too: its rest completes it correctly.
  const rest = f.push(a.subarray(12));
  t.ok(rest.length === 1 && rest[0]!.equals(a), 'a partial message survives mutation of its first chunk');
  // And mutating a frame does not disturb the next one.
  const g = new FrameDecoder();
  const [x, y] = g.push(Buffer.concat([a, a]));
  x!.fill(0);
  t.ok(y!.equals(a), 'frames are independent');
  t.end();
});

t.test('a message that is not a Structure is refused', (t) => {
  for (const [name, type] of [
    ['Integer', ItemType.Integer],
    ['Text String', ItemType.TextString],
    ['Byte String', ItemType.ByteString],
    ['type 0x00', 0x00],
    ['type 0x0C', 0x0c],
  ] as const) {
    const f = new FrameDecoder();
    let e: unknown;
    try {
      f.push(Buffer.concat([hdr(0x420020, type, 4), Buffer.alloc(8)]));
    } catch (err) {
      e = err;
    }
    t.ok(e instanceof TtlvError && e.kind === TtlvErrorKind.UnknownType && e.offset === 3, `${name}: refused at the type byte`);
  }
  t.end();
});

t.test('after an error the framer stays failed', (t) => {
  const f = new FrameDecoder({ maxMessageSize: 100 });
  const good = message(1);
  same(t, f.push(good), [good], 'a good message first');
  let first: unknown;
  try {
    f.push(hdr(REQUEST, ItemType.Structure, 1000));
  } catch (e) {
    first = e;
  }
  t.ok(first instanceof TtlvError, 'the bad header throws');
  for (const next of [good, Buffer.alloc(0), Buffer.alloc(1)]) {
    let again: unknown;
    try {
      f.push(next);
    } catch (e) {
      again = e;
    }
    t.equal(again, first, `a later push of ${next.length} bytes throws the same error`);
  }
  t.end();
});
