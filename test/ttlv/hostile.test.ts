/**
 * Hostile input for the TTLV decoder and the stream framer. Each case is numbered (Hnn) and names
 * the attack it stands for. Every refusal must be a TtlvError with the right kind, the byte
 * offset of the item (or byte) at fault, and the tag path down to it.
 */
import t from 'tap';
import {
  decodeTtlv,
  DEFAULT_MAX_DEPTH,
  encodeTtlv,
  FrameDecoder,
  nodesEqual,
  parseHex,
  peekItemSize,
  T,
  TtlvError,
  TtlvErrorKind,
  type ItemTypeName,
  ItemType,
} from '../../src/ttlv/index.js';

/** KMIP 1.1 test case 17.1: Create (symmetric key, with Template-Attribute of six attributes). */
const CREATE_REQUEST = parseHex(
  '42007801000001F04200770100000038420069010000002042006A0200000004000000010000000042006B02000000040000000100000000' +
    '42000D0200000004000000010000000042000F01000001A842005C05000000040000000100000000420079010000019042005705000000' +
    '0400000002000000004200910100000178420008010000003042000A070000001743727970746F6772617068696320416C676F726974686D' +
    '0042000B05000000040000000300000000420008010000003042000A070000001443727970746F67726170686963204C656E677468000000' +
    '0042000B02000000040000010000000000420008010000003042000A070000001843727970746F67726170686963205573616765204D6173' +
    '6B42000B02000000040000000C00000000420008010000004042000A07000000044E616D650000000042000B0100000028420055070000000D' +
    '4669727374546573744E616D6500000042005405000000040000000100000000420008010000004042000A07000000044E616D6500000000' +
    '42000B0100000028420055070000000E5365636F6E64546573744E616D65000042005405000000040000000100000000420008010000003842' +
    '000A0700000013436F6E7461637420496E666F726D6174696F6E000000000042000B070000000F61646D696E406C6F63616C686F737400',
);

/** A message holding one item of every type, padding included. */
const ALL_TYPES = encodeTtlv(
  T.struct(0x42007b, [
    T.struct(0x42007a, [T.int(0x42006a, -7), T.date(0x420092, 1_335_514_341n), T.interval(0x42000d, 86_400)]),
    T.long(0x420030, -(1n << 62n)),
    T.big(0x420031, -(1n << 100n) + 12345n),
    T.enum(0x42005c, 0xffffffff),
    T.bool(0x420034, true),
    T.text(0x420055, 'plain, then ünïcödé €𝄞'),
    T.bytes(0x420043, Buffer.from('0102030405', 'hex')),
    T.dateExt(0x420160, 1_700_000_000_123_456n),
  ]),
);

const OUTER = 0x420078; // Request Message
const INNER = 0x420077; // Request Header
const LEAF = 0x420055; // Name Value

/** An 8-byte header. */
function hdr(tag: number, type: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUIntBE(tag, 0, 3);
  b[3] = type;
  b.writeUInt32BE(length, 4);
  return b;
}
/** A header and value, the value padded with zeros to a multiple of 8 (unless `pad` is false). */
function item(tag: number, type: number, value: Buffer, length = value.length, pad = true): Buffer {
  const total = pad ? (value.length + 7) & ~7 : value.length;
  const v = Buffer.alloc(total);
  value.copy(v);
  return Buffer.concat([hdr(tag, type, length), v]);
}
/** A Structure around already-encoded children, with its true length unless one is given. */
function struct(tag: number, kids: Buffer[], length?: number): Buffer {
  const body = Buffer.concat(kids);
  return Buffer.concat([hdr(tag, ItemType.Structure, length ?? body.length), body]);
}

interface Expect {
  kind: TtlvErrorKind;
  offset: number;
  path: number[];
}

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** The part of a tap test that throwsTtlv uses. */
interface Asserts {
  fail(msg: string): unknown;
  strictSame(found: unknown, wanted: unknown, msg: string): unknown;
}

function throwsTtlv(t: Asserts, fn: () => unknown, want: Expect, name: string): void {
  const e = errorOf(fn);
  if (!(e instanceof TtlvError)) {
    t.fail(`${name}: expected TtlvError ${want.kind}, got ${e === undefined ? 'no error' : String(e)}`);
    return;
  }
  t.strictSame({ kind: e.kind, offset: e.offset, path: [...e.path] }, want, `${name}: ${e.message}`);
}

/** Offsets of every item of a well-formed message, with the tags of the structures around it. */
interface Span {
  start: number;
  /** End of the value, padding included. */
  end: number;
  tag: number;
  structure: boolean;
  /** Tags of the enclosing structures, outermost first. */
  parents: number[];
}
function layout(buf: Buffer, start = 0, end = buf.length, parents: number[] = [], out: Span[] = []): Span[] {
  let p = start;
  while (p < end) {
    const tag = buf.readUIntBE(p, 3);
    const type = buf[p + 3]!;
    const len = buf.readUInt32BE(p + 4);
    const structure = type === ItemType.Structure;
    const stop = p + 8 + (structure ? len : (len + 7) & ~7);
    out.push({ start: p, end: stop, tag, structure, parents });
    if (structure) layout(buf, p + 8, p + 8 + len, [...parents, tag], out);
    p = stop;
  }
  return out;
}

t.test('H01 truncation at every byte (a peer that stops mid-message)', (t) => {
  for (const [label, msg] of [
    ['Create request', CREATE_REQUEST],
    ['all types', ALL_TYPES],
  ] as const) {
    const outer = msg.readUIntBE(0, 3);
    for (let n = 0; n < msg.length; n++) {
      const want: Expect =
        n < 8
          ? { kind: 'Truncated', offset: 0, path: [] }
          : { kind: 'Truncated', offset: 4, path: [outer] };
      throwsTtlv(t, () => decodeTtlv(msg.subarray(0, n)), want, `${label} cut to ${n} bytes`);
    }
  }
  t.end();
});

t.test('H02 truncation at every byte with every enclosing length rewritten to fit (a cut deep inside)', (t) => {
  for (const [label, msg] of [
    ['Create request', CREATE_REQUEST],
    ['all types', ALL_TYPES],
  ] as const) {
    const spans = layout(msg);
    let ok = 0;
    for (let n = 1; n < msg.length; n++) {
      const cut = Buffer.from(msg.subarray(0, n));
      // Every structure whose header is whole and whose value the cut splits now ends at the cut.
      for (const s of spans) if (s.structure && s.start + 8 <= n && n < s.end) cut.writeUInt32BE(n - s.start - 8, s.start + 4);
      // The item that must be reported: a primitive whose header, value or padding the cut
      // splits, or a structure whose header it splits. None: the cut falls between items.
      const split = spans.find((s) => s.start < n && n < (s.structure ? s.start + 8 : s.end));
      if (!split) {
        // The cut falls between items: a shorter but well-formed message.
        t.doesNotThrow(() => decodeTtlv(cut), `${label} cut at item boundary ${n}`);
        ok++;
        continue;
      }
      const headerWhole = n - split.start >= 8;
      const want: Expect = {
        kind: 'Truncated',
        offset: headerWhole ? split.start + 4 : split.start,
        path: headerWhole ? [...split.parents, split.tag] : [...split.parents],
      };
      throwsTtlv(t, () => decodeTtlv(cut), want, `${label} cut at ${n}`);
    }
    t.ok(ok > 3, `${label}: ${ok} cuts fell between items`);
  }
  t.end();
});

t.test('H03 a child whose length runs past its parent (a lying inner length)', (t) => {
  // Request Message { Request Header (16 bytes) { Name Value claiming 32 bytes } , 32 more bytes }
  const msg = struct(OUTER, [
    struct(INNER, [hdr(LEAF, ItemType.TextString, 32), Buffer.from('abcdefgh')]),
    item(0x420056, ItemType.TextString, Buffer.alloc(24, 0x41)),
  ]);
  throwsTtlv(t, () => decodeTtlv(msg), { kind: 'LengthExceedsParent', offset: 20, path: [OUTER, INNER, LEAF] }, 'text');
  // The same with a Structure child that claims more than its parent holds.
  const msg2 = struct(OUTER, [struct(INNER, [hdr(0x420069, ItemType.Structure, 16)]), item(0x420056, ItemType.TextString, Buffer.alloc(16))]);
  throwsTtlv(t, () => decodeTtlv(msg2), { kind: 'LengthExceedsParent', offset: 20, path: [OUTER, INNER, 0x420069] }, 'structure');
  // A length that fits but whose padding does not (parent length 13, not a multiple of 8).
  const msg3 = struct(OUTER, [struct(INNER, [item(LEAF, ItemType.TextString, Buffer.from('hello'), 5, false)]), item(0x420056, ItemType.TextString, Buffer.alloc(8))]);
  throwsTtlv(t, () => decodeTtlv(msg3), { kind: 'LengthExceedsParent', offset: 20, path: [OUTER, INNER, LEAF] }, 'padding');
  t.end();
});

t.test('H04 a 2 GiB length header (memory exhaustion by announcement)', (t) => {
  for (const len of [0x7fffffff, 0xffffffff, 0x80000000, 0xfffffff9]) {
    const before = process.memoryUsage().arrayBuffers;
    const h = hdr(OUTER, ItemType.Structure, len);
    throwsTtlv(t, () => decodeTtlv(h), { kind: 'Truncated', offset: 4, path: [OUTER] }, `decodeTtlv, length 0x${len.toString(16)}`);
    // Inside a parent, as a Byte String and as a Text String.
    for (const type of [ItemType.ByteString, ItemType.TextString]) {
      const msg = struct(OUTER, [hdr(0x420043, type, len), Buffer.alloc(8)]);
      const padded = struct(OUTER, [msg, Buffer.alloc(8)]); // not at the end of the input
      throwsTtlv(t, () => decodeTtlv(msg), { kind: 'Truncated', offset: 12, path: [OUTER, 0x420043] }, `type ${type} at the end`);
      throwsTtlv(
        t,
        () => decodeTtlv(padded),
        { kind: 'LengthExceedsParent', offset: 20, path: [OUTER, OUTER, 0x420043] },
        `type ${type} inside`,
      );
    }
    const f = new FrameDecoder();
    throwsTtlv(t, () => f.push(h), { kind: 'TooLarge', offset: 4, path: [OUTER] }, `FrameDecoder, length 0x${len.toString(16)}`);
    t.ok(f.pending <= 8, `FrameDecoder holds ${f.pending} bytes`);
    const grown = process.memoryUsage().arrayBuffers - before;
    t.ok(grown < 64 * 1024 * 1024, `no large allocation (${grown} bytes of array buffers grown)`);
    // The size a framer would compute from the header, without 32-bit wrap-around.
    t.equal(peekItemSize(hdr(0x420043, ItemType.ByteString, len)), 8 + Math.ceil(len / 8) * 8, `peekItemSize 0x${len.toString(16)}`);
    t.equal(peekItemSize(h), 8 + len, `peekItemSize Structure 0x${len.toString(16)}`);
  }
  t.end();
});

t.test('H05 10,000-deep nesting (stack exhaustion)', (t) => {
  for (const depth of [10_000, 100_000]) {
    const buf = Buffer.alloc(depth * 8);
    for (let i = 0; i < depth; i++) buf.set(hdr(0x420001 + (i % 100), ItemType.Structure, (depth - i - 1) * 8), i * 8);
    const e = errorOf(() => decodeTtlv(buf, { maxMessageSize: buf.length }));
    t.ok(e instanceof TtlvError, `${depth} deep: a TtlvError, not a RangeError`);
    if (e instanceof TtlvError) {
      t.equal(e.kind, TtlvErrorKind.TooDeep, `${depth} deep: TooDeep`);
      t.equal(e.offset, DEFAULT_MAX_DEPTH * 8, `${depth} deep: at the first structure too deep`);
      t.equal(e.path.length, DEFAULT_MAX_DEPTH + 1, `${depth} deep: path down to it`);
      t.equal(e.path[0], 0x420001, `${depth} deep: path starts at the outermost`);
    }
  }
  // The limit is exact: maxDepth structures pass, one more does not.
  const nest = (n: number) => {
    let node = T.struct(0x420001, []);
    for (let i = 1; i < n; i++) node = T.struct(0x420001, [node]);
    return encodeTtlv(node);
  };
  t.doesNotThrow(() => decodeTtlv(nest(DEFAULT_MAX_DEPTH)), `${DEFAULT_MAX_DEPTH} deep is allowed`);
  throwsTtlv(
    t,
    () => decodeTtlv(nest(DEFAULT_MAX_DEPTH + 1)),
    { kind: 'TooDeep', offset: DEFAULT_MAX_DEPTH * 8, path: Array<number>(DEFAULT_MAX_DEPTH + 1).fill(0x420001) },
    `${DEFAULT_MAX_DEPTH + 1} deep`,
  );
  throwsTtlv(t, () => decodeTtlv(nest(4), { maxDepth: 3 }), { kind: 'TooDeep', offset: 24, path: [0x420001, 0x420001, 0x420001, 0x420001] }, 'maxDepth 3');
  t.end();
});

t.test('H06 invalid UTF-8 in a Text String (mojibake, filter bypass by overlong forms)', (t) => {
  const cases: [string, string][] = [
    ['overlong "/" (C0 AF)', '61C0AF'],
    ['overlong NUL (C0 80)', 'C080'],
    ['overlong 3-byte (E0 80 AF)', 'E080AF'],
    ['overlong 4-byte (F0 82 82 AC)', 'F08282AC'],
    ['lone continuation byte', '6180'],
    ['continuation bytes only', 'BFBFBF'],
    ['UTF-16 high surrogate encoded in UTF-8 (ED A0 80)', 'EDA080'],
    ['UTF-16 low surrogate encoded in UTF-8 (ED BF BF)', '41EDBFBF'],
    ['surrogate pair encoded as two 3-byte sequences (CESU-8)', 'EDA0BDEDB880'],
    ['truncated 3-byte sequence', 'E282'],
    ['truncated 4-byte sequence at the end', '41F09F98'],
    ['code point above U+10FFFF (F4 90 80 80)', 'F4908080'],
    ['5-byte form (F8 88 80 80 80)', 'F888808080'],
    ['byte FE', 'FE'],
    ['byte FF', '41FF'],
  ];
  for (const [name, hex] of cases) {
    const msg = struct(OUTER, [struct(INNER, [item(LEAF, ItemType.TextString, Buffer.from(hex, 'hex'))])]);
    throwsTtlv(t, () => decodeTtlv(msg), { kind: 'BadUtf8', offset: 24, path: [OUTER, INNER, LEAF] }, name);
  }
  // Valid multi-byte UTF-8 passes, and a leading U+FEFF is kept (not eaten as a byte-order mark).
  for (const s of ['é', '€', '𝄞', '\uFEFFbom', 'a\u0000b']) {
    const msg = struct(OUTER, [item(LEAF, ItemType.TextString, Buffer.from(s, 'utf8'))]);
    const node = decodeTtlv(msg);
    t.strictSame(node, T.struct(OUTER, [T.text(LEAF, s)]), `valid ${JSON.stringify(s)}`);
  }
  t.end();
});

t.test('H07 wrong length for each fixed-size type (type confusion, reading padding as value)', (t) => {
  const fixed: [ItemTypeName, number][] = [
    ['Integer', 4],
    ['LongInteger', 8],
    ['Enumeration', 4],
    ['Boolean', 8],
    ['DateTime', 8],
    ['Interval', 4],
    ['DateTimeExtended', 8],
  ];
  for (const [type, size] of fixed) {
    for (const len of [0, 1, size - 1, size + 1, 16, size === 4 ? 8 : 4]) {
      const msg = struct(OUTER, [item(0x420020, ItemType[type], Buffer.alloc(len), len)]);
      throwsTtlv(t, () => decodeTtlv(msg), { kind: 'BadFixedLength', offset: 12, path: [OUTER, 0x420020] }, `${type} length ${len}`);
    }
  }
  t.end();
});

t.test('H08 non-zero padding (covert channel, ambiguous encodings)', (t) => {
  const cases: [string, number, Buffer, number][] = [
    ['Integer', ItemType.Integer, Buffer.from('0000000800000001', 'hex'), 4],
    ['Enumeration', ItemType.Enumeration, Buffer.from('0000000180000000', 'hex'), 4],
    ['Interval', ItemType.Interval, Buffer.from('0000000100FF0000', 'hex'), 4],
    ['Text String', ItemType.TextString, Buffer.from('6869000000000001', 'hex'), 2],
    ['Byte String', ItemType.ByteString, Buffer.from('0102030405000100', 'hex'), 5],
  ];
  for (const [name, type, value, len] of cases) {
    const msg = struct(OUTER, [struct(INNER, [item(0x420020, type, value, len)])]);
    const firstBad = 24 + value.findIndex((b, i) => i >= len && b !== 0);
    throwsTtlv(t, () => decodeTtlv(msg), { kind: 'BadPadding', offset: firstBad, path: [OUTER, INNER, 0x420020] }, name);
  }
  t.end();
});

t.test('H09 Boolean other than 0 or 1 (ambiguous truth values)', (t) => {
  for (const hex of ['0000000000000002', '0100000000000000', 'FFFFFFFFFFFFFFFF', '8000000000000001']) {
    const msg = struct(OUTER, [item(0x420020, ItemType.Boolean, Buffer.from(hex, 'hex'))]);
    throwsTtlv(t, () => decodeTtlv(msg), { kind: 'BadBoolean', offset: 16, path: [OUTER, 0x420020] }, `Boolean ${hex}`);
  }
  t.end();
});

t.test('H10 Big Integer of length 0 or not a multiple of 8 (KMIP §9.1.1.4)', (t) => {
  for (const len of [0, 1, 4, 12, 15]) {
    const msg = struct(OUTER, [item(0x420020, ItemType.BigInteger, Buffer.alloc(len, 0), len)]);
    throwsTtlv(t, () => decodeTtlv(msg), { kind: 'BadBigIntegerLength', offset: 12, path: [OUTER, 0x420020] }, `length ${len}`);
  }
  t.end();
});

t.test('H11 unknown item type (parser confusion)', (t) => {
  for (const type of [0x00, 0x0c, 0x0d, 0x80, 0xff]) {
    const msg = struct(OUTER, [struct(INNER, [item(0x420020, type, Buffer.alloc(8))])]);
    throwsTtlv(t, () => decodeTtlv(msg), { kind: 'UnknownType', offset: 19, path: [OUTER, INNER, 0x420020] }, `type 0x${type.toString(16)}`);
    throwsTtlv(t, () => decodeTtlv(item(0x420020, type, Buffer.alloc(8))), { kind: 'UnknownType', offset: 3, path: [0x420020] }, `outer type 0x${type.toString(16)}`);
  }
  t.end();
});

t.test('H12 trailing bytes after the message (request smuggling)', (t) => {
  for (const extra of [Buffer.alloc(1), Buffer.alloc(8), CREATE_REQUEST]) {
    const msg = Buffer.concat([CREATE_REQUEST, extra]);
    throwsTtlv(t, () => decodeTtlv(msg), { kind: 'TrailingBytes', offset: CREATE_REQUEST.length, path: [] }, `${extra.length} extra bytes`);
  }
  t.end();
});

t.test('H13 a message over the size limit (memory exhaustion by sending)', (t) => {
  throwsTtlv(t, () => decodeTtlv(CREATE_REQUEST, { maxMessageSize: 256 }), { kind: 'TooLarge', offset: 0, path: [] }, 'over the limit');
  t.doesNotThrow(() => decodeTtlv(CREATE_REQUEST, { maxMessageSize: CREATE_REQUEST.length }), 'exactly at the limit');
  t.end();
});

t.test('H14 empty and header-only input', (t) => {
  throwsTtlv(t, () => decodeTtlv(Buffer.alloc(0)), { kind: 'Truncated', offset: 0, path: [] }, 'empty');
  throwsTtlv(t, () => decodeTtlv(struct(OUTER, [Buffer.alloc(5)])), { kind: 'Truncated', offset: 8, path: [OUTER] }, 'a 5-byte child');
  t.strictSame(decodeTtlv(hdr(OUTER, ItemType.Structure, 0)), T.struct(OUTER, []), 'an empty Structure is valid');
  t.end();
});

// ---------------------------------------------------------------------------------------------

/** mulberry32: small, fast, seeded. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('H15 random bytes and mutated messages: decodeTtlv throws TtlvError or nothing', (t) => {
  const rand = rng(0x6b6d6970);
  const int = (n: number) => Math.floor(rand() * n);
  const seeds = [CREATE_REQUEST, ALL_TYPES, encodeTtlv(T.struct(OUTER, [T.struct(INNER, [T.text(LEAF, 'x'.repeat(20))]), T.bytes(0x420043, Buffer.alloc(33, 7))]))];
  const seedSpans = seeds.map((s) => layout(s));
  const lengths = [0, 1, 4, 7, 8, 9, 15, 16, 0x7fffffff, 0x80000000, 0xfffffff8, 0xffffffff];
  const ITER = 200_000;
  const kinds = new Map<string, number>();
  const strangers: string[] = [];
  const started = Date.now();
  for (let i = 0; i < ITER; i++) {
    let buf: Buffer;
    if (i % 4 === 0) {
      // Random bytes, half of them behind a plausible header.
      buf = Buffer.alloc(int(64));
      for (let j = 0; j < buf.length; j++) buf[j] = int(256);
      if (i % 8 === 0 && buf.length >= 8) {
        buf.writeUIntBE(0x420000 + int(0x200), 0, 3);
        buf[3] = int(13);
        buf.writeUInt32BE(int(buf.length), 4);
      }
    } else {
      const k = int(seeds.length);
      buf = Buffer.from(seeds[k]!);
      const spans = seedSpans[k]!;
      for (let m = 1 + int(3); m > 0; m--) {
        const s = spans[int(spans.length)]!;
        switch (int(8)) {
          case 0: // flip a bit
            if (buf.length) buf[int(buf.length)]! ^= 1 << int(8);
            break;
          case 1: // random byte
            if (buf.length) buf[int(buf.length)] = int(256);
            break;
          case 2: // interesting length in a real header
            if (s.start + 8 <= buf.length) buf.writeUInt32BE(lengths[int(lengths.length)]!, s.start + 4);
            break;
          case 3: // length off by a little
            if (s.start + 8 <= buf.length) buf.writeUInt32BE((buf.readUInt32BE(s.start + 4) + int(17) - 8) >>> 0, s.start + 4);
            break;
          case 4: // another type byte
            if (s.start + 4 <= buf.length) buf[s.start + 3] = int(14);
            break;
          case 5: // truncate
            buf = buf.subarray(0, int(buf.length + 1));
            break;
          case 6: // delete or duplicate a slice
          {
            const a = int(buf.length + 1);
            const b = Math.min(buf.length, a + int(24));
            buf = int(2) ? Buffer.concat([buf.subarray(0, a), buf.subarray(b)]) : Buffer.concat([buf.subarray(0, b), buf.subarray(a)]);
            break;
          }
          case 7: // append junk
            buf = Buffer.concat([buf, Buffer.alloc(1 + int(16), int(256))]);
            break;
        }
      }
    }
    try {
      const node = decodeTtlv(buf);
      kinds.set('ok', (kinds.get('ok') ?? 0) + 1);
      // Whatever decodes must encode again and decode to the same tree.
      const again = decodeTtlv(encodeTtlv(node));
      if (!nodesEqual(node, again)) strangers.push(`iteration ${i}: re-encoding changed the tree: ${buf.toString('hex')}`);
    } catch (e) {
      if (e instanceof TtlvError) kinds.set(e.kind, (kinds.get(e.kind) ?? 0) + 1);
      else strangers.push(`iteration ${i}: ${String(e)}: ${buf.toString('hex')}`);
    }
    if (strangers.length >= 5) break;
  }
  t.strictSame(strangers, [], 'no error other than TtlvError');
  const summary = [...kinds.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
  t.comment(`${ITER} inputs in ${Date.now() - started} ms: ${summary}`);
  t.ok((kinds.get('ok') ?? 0) > 100, 'some mutants still decode');
  t.ok(kinds.size >= 8, `${kinds.size} different outcomes`);
  t.end();
});

t.test('H16 random chunks into FrameDecoder: frames or TtlvError, nothing else', (t) => {
  const rand = rng(42);
  const int = (n: number) => Math.floor(rand() * n);
  const strangers: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    const f = new FrameDecoder({ maxMessageSize: 4096 });
    const stream = Buffer.concat([CREATE_REQUEST, ALL_TYPES]);
    for (let j = 0; j < 1 + int(4); j++) stream[int(stream.length)] = int(256);
    let p = 0;
    try {
      while (p < stream.length) {
        const n = 1 + int(200);
        for (const frame of f.push(stream.subarray(p, p + n))) {
          try {
            decodeTtlv(frame);
          } catch (e) {
            if (!(e instanceof TtlvError)) throw e;
          }
        }
        p += n;
      }
    } catch (e) {
      if (!(e instanceof TtlvError)) strangers.push(`iteration ${i}: ${String(e)}`);
    }
    if (strangers.length >= 5) break;
  }
  t.strictSame(strangers, [], 'no error other than TtlvError');
  t.end();
});
