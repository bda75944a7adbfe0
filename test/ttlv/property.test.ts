/**
 * Property tests (fast-check): any tree of the 11 item types survives encode -> decode, encoding
 * what we decoded gives back the same bytes, and the encoder refuses values its type cannot hold.
 */
import t from 'tap';
import fc from 'fast-check';
import {
  decodeTtlv,
  encodeTtlv,
  nodesEqual,
  T,
  TtlvError,
  TtlvErrorKind,
  type TtlvNode,
} from '../../src/ttlv/index.js';

const SEED = 20240601;
const RUNS = 2000;

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

const tag = fc.integer({ min: 0, max: 0xffffff });
const int64 = fc.bigInt({ min: INT64_MIN, max: INT64_MAX });

/**
 * Characters at UTF-8's edges (1-, 2-, 3- and 4-byte boundaries, NUL, U+FEFF which a decoder may
 * take for a byte-order mark, the last code point), mixed into otherwise random code points.
 */
const edgeChar = fc.constantFrom('\u0000', '\u007F', '\u0080', '\u07FF', '\u0800', '\uD7FF', '\uE000', '\uFEFF', '\uFFFD', '\uFFFF', '\u{10000}', '\u{10FFFF}');
const text = fc.string({ unit: fc.oneof(edgeChar, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 12 });

/** One leaf of each primitive type, values over their whole range. */
const leaf: fc.Arbitrary<TtlvNode> = fc.oneof(
  fc.tuple(tag, fc.integer({ min: -0x80000000, max: 0x7fffffff })).map(([g, v]) => T.int(g, v)),
  fc.tuple(tag, int64).map(([g, v]) => T.long(g, v)),
  fc.tuple(tag, fc.oneof(int64, fc.bigInt({ min: -(1n << 2048n), max: 1n << 2048n }))).map(([g, v]) => T.big(g, v)),
  fc.tuple(tag, fc.integer({ min: 0, max: 0xffffffff })).map(([g, v]) => T.enum(g, v)),
  fc.tuple(tag, fc.boolean()).map(([g, v]) => T.bool(g, v)),
  // unit 'binary': any code point U+0000-U+10FFFF, never a lone surrogate.
  fc.tuple(tag, fc.string({ unit: 'binary', maxLength: 40 })).map(([g, v]) => T.text(g, v)),
  fc.tuple(tag, fc.string({ unit: 'grapheme', maxLength: 10 })).map(([g, v]) => T.text(g, v)),
  fc.tuple(tag, text).map(([g, v]) => T.text(g, v)),
  fc.tuple(tag, fc.uint8Array({ maxLength: 70 })).map(([g, v]) => T.bytes(g, v)),
  fc.tuple(tag, int64).map(([g, v]) => T.date(g, v)),
  fc.tuple(tag, fc.integer({ min: 0, max: 0xffffffff })).map(([g, v]) => T.interval(g, v)),
  fc.tuple(tag, int64).map(([g, v]) => T.dateExt(g, v)),
);

const tree: fc.Arbitrary<TtlvNode> = fc.letrec<{ node: TtlvNode }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 6, depthIdentifier: 'tree' },
    leaf,
    fc.tuple(tag, fc.array(tie('node'), { maxLength: 6 })).map(([g, kids]) => T.struct(g, kids)),
  ),
})).node;

/** Trees with a Structure at the top, as messages are. */
const message = fc.tuple(tag, fc.array(tree, { maxLength: 8 })).map(([g, kids]) => T.struct(g, kids));

t.test('encode -> decode gives back the same tree', (t) => {
  fc.assert(
    fc.property(fc.oneof(tree, message), (node) => nodesEqual(decodeTtlv(encodeTtlv(node)), node)),
    { seed: SEED, numRuns: RUNS },
  );
  t.pass(`${RUNS} trees`);
  t.end();
});

t.test('encode(decode(bytes)) is the identity on encoded bytes', (t) => {
  fc.assert(
    fc.property(message, (node) => {
      const bytes = encodeTtlv(node);
      return encodeTtlv(decodeTtlv(bytes)).equals(bytes) && bytes.length % 8 === 0;
    }),
    { seed: SEED + 1, numRuns: RUNS },
  );
  t.pass(`${RUNS} messages`);
  t.end();
});

t.test('the encoded length is what the tree says', (t) => {
  const size = (n: TtlvNode): number => {
    switch (n.type) {
      case 'Structure':
        return 8 + n.value.reduce((s, c) => s + size(c), 0);
      case 'TextString':
        return 8 + Math.ceil(Buffer.byteLength(n.value, 'utf8') / 8) * 8;
      case 'ByteString':
        return 8 + Math.ceil(n.value.length / 8) * 8;
      case 'BigInteger':
        return 8 + encodeTtlv(n).readUInt32BE(4);
      default:
        return 16;
    }
  };
  fc.assert(
    fc.property(message, (node) => encodeTtlv(node).length === size(node)),
    { seed: SEED + 2, numRuns: RUNS },
  );
  t.pass('sizes');
  t.end();
});

t.test('Big Integers: shortest sign-extended multiple of 8 bytes', (t) => {
  fc.assert(
    fc.property(fc.bigInt({ min: -(1n << 1024n), max: 1n << 1024n }), (v) => {
      const b = encodeTtlv(T.big(0x420020, v));
      const len = b.readUInt32BE(4);
      // Shortest: dropping the first 8 bytes would change the value or its sign.
      const minimal =
        len === 8 ||
        !(b.subarray(8, 16).every((x) => x === 0) && b[16]! < 0x80) && !(b.subarray(8, 16).every((x) => x === 0xff) && b[16]! >= 0x80);
      const back = decodeTtlv(b);
      return len > 0 && len % 8 === 0 && minimal && back.type === 'BigInteger' && back.value === v;
    }),
    { seed: SEED + 3, numRuns: RUNS },
  );
  t.pass('big integers');
  t.end();
});

/** The error the encoder throws for `node`, or undefined. */
function encodeError(node: TtlvNode): TtlvError | undefined {
  try {
    encodeTtlv(node);
  } catch (e) {
    if (e instanceof TtlvError) return e;
    throw e;
  }
  return undefined;
}

t.test('the encoder refuses values out of range for their type (BadValue)', (t) => {
  const notInt = fc.oneof(
    fc.constantFrom(0.5, -0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53),
    fc.double({ noInteger: true, noNaN: true }),
  );
  const bad: fc.Arbitrary<TtlvNode> = fc.oneof(
    fc.oneof(fc.integer({ min: 0x80000000, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: Number.MIN_SAFE_INTEGER, max: -0x80000001 }), notInt).map((v) => T.int(0x420020, v)),
    fc.oneof(fc.integer({ min: 0x100000000, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: Number.MIN_SAFE_INTEGER, max: -1 }), notInt).map((v) => T.enum(0x420020, v)),
    fc.oneof(fc.integer({ min: 0x100000000, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: Number.MIN_SAFE_INTEGER, max: -1 }), notInt).map((v) => T.interval(0x420020, v)),
    fc.oneof(fc.bigInt({ min: INT64_MAX + 1n, max: 1n << 200n }), fc.bigInt({ min: -(1n << 200n), max: INT64_MIN - 1n })).chain((v) =>
      fc.constantFrom(T.long(0x420020, v), T.date(0x420020, v), T.dateExt(0x420020, v)),
    ),
    // A lone surrogate cannot be written as UTF-8.
    fc.tuple(fc.string({ maxLength: 5 }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.string({ maxLength: 5 })).map(([a, s, b]) =>
      T.text(0x420020, `${a}${String.fromCharCode(s)}${b}`),
    ),
  );
  fc.assert(
    fc.property(bad, fc.array(tag, { maxLength: 4 }), (node, parents) => {
      // Wrapped in structures: the error's path names them, then the bad item.
      let wrapped: TtlvNode = node;
      for (let i = parents.length - 1; i >= 0; i--) wrapped = T.struct(parents[i]!, [T.int(0x420001, 1), wrapped]);
      const e = encodeError(wrapped);
      return e !== undefined && e.kind === TtlvErrorKind.BadValue && e.path.length === parents.length + 1 && e.path.at(-1) === node.tag && parents.every((p, i) => e.path[i] === p);
    }),
    { seed: SEED + 4, numRuns: RUNS },
  );
  // A lone surrogate that fast-check's strings might hide: check the two edges by hand.
  t.equal(encodeError(T.text(0x420020, 'a\uD800'))?.kind, TtlvErrorKind.BadValue, 'lone high surrogate at the end');
  t.equal(encodeError(T.text(0x420020, '\uDC00a'))?.kind, TtlvErrorKind.BadValue, 'lone low surrogate at the start');
  t.equal(encodeError(T.text(0x420020, '\uD83D\uDE00')), undefined, 'a surrogate pair is fine');
  // Values of the wrong JS type (a caller bypassing the types).
  const wrong: [string, TtlvNode][] = [
    ['Boolean 1', { tag: 0x420020, type: 'Boolean', value: 1 as unknown as boolean }],
    ['Long Integer as number', { tag: 0x420020, type: 'LongInteger', value: 5 as unknown as bigint }],
    ['Big Integer as number', { tag: 0x420020, type: 'BigInteger', value: 5 as unknown as bigint }],
    ['Text String as Buffer', { tag: 0x420020, type: 'TextString', value: Buffer.from('x') as unknown as string }],
    ['Byte String as string', { tag: 0x420020, type: 'ByteString', value: 'x' as unknown as Uint8Array }],
    ['Integer as bigint', { tag: 0x420020, type: 'Integer', value: 5n as unknown as number }],
  ];
  for (const [name, node] of wrong) t.equal(encodeError(node)?.kind, TtlvErrorKind.BadValue, name);
  t.end();
});

t.test('the encoder refuses tags outside 24 bits (BadTag)', (t) => {
  fc.assert(
    fc.property(
      fc.oneof(fc.integer({ min: 0x1000000, max: 2 ** 40 }), fc.integer({ min: -(2 ** 40), max: -1 }), fc.constant(1.5), fc.constant(Number.NaN)),
      (g) => encodeError(T.struct(0x420078, [T.int(g, 1)]))?.kind === TtlvErrorKind.BadTag,
    ),
    { seed: SEED + 5, numRuns: 500 },
  );
  t.pass('tags');
  t.end();
});

t.test('decodeTtlv on arbitrary bytes: a tree or a TtlvError', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeTtlv(bytes);
      } catch (e) {
        return e instanceof TtlvError;
      }
      return true;
    }),
    { seed: SEED + 6, numRuns: 20_000 },
  );
  t.pass('arbitrary bytes');
  t.end();
});
