/**
 * Property tests: random trees survive tree -> XML -> tree and tree -> JSON -> tree unchanged.
 * Tags are a mix of dictionary tags (named elements, enumerations and masks by name, unnamed
 * enumeration values in hex) and tags outside it (`tag="0x…"`); Attribute structures pair an
 * Attribute Name with an Attribute Value named after it; text holds XML specials and unicode.
 */
import t from 'tap';
import fc from 'fast-check';
import { parseXml, readXmlDocument, toXml, XmlCodecError } from '../../src/codec/xml.js';
import { JsonCodecError, parseJson, toJson } from '../../src/codec/json.js';
import { Tag, tagInfo } from '../../src/spec/index.js';
import { decodeTtlv, encodeTtlv, nodesEqual, type TtlvNode } from '../../src/ttlv/index.js';

const knownTags: number[] = Object.values(Tag as Record<string, number>);
/** Tags whose values are named: enumerations and masks. */
const namedTags = knownTags.filter((tag) => {
  const info = tagInfo(tag);
  return info !== undefined && (info.enum !== undefined || info.mask !== undefined);
});
/** Spec names of attributes whose values are named, and a few that are not. */
const attributeNames: string[] = [...namedTags.map((tag) => tagInfo(tag)!.specName), 'Cryptographic Length', 'x-custom', ''];

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

const tagArb = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...knownTags) },
  { weight: 2, arbitrary: fc.constantFrom(...namedTags) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffffff }) },
);

const specialText = fc.string({
  unit: fc.constantFrom('<', '>', '&', '"', "'", '\t', '\n', '\r', ' ', '$', '#', ']]>', 'a', 'Α', 'é', '😀', '\u0000', '\u0001', '\u007f', '\ufffe', '&#913;', '&amp;'),
  maxLength: 12,
});
const textArb = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 20 }), specialText);

/** A primitive of any type with the given tag. */
function primitive(tag: number): fc.Arbitrary<TtlvNode> {
  return fc.oneof(
    fc.oneof(fc.integer(), fc.constantFrom(0, 1, 4, 8, 12, 0x10, 0x7fffffff, -1, -0x80000000)).map((value): TtlvNode => ({ tag, type: 'Integer', value })),
    fc.bigInt({ min: INT64_MIN, max: INT64_MAX }).map((value): TtlvNode => ({ tag, type: 'LongInteger', value })),
    fc.bigInt({ min: -(1n << 300n), max: 1n << 300n }).map((value): TtlvNode => ({ tag, type: 'BigInteger', value })),
    fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 0xffffffff })).map((value): TtlvNode => ({ tag, type: 'Enumeration', value })),
    fc.boolean().map((value): TtlvNode => ({ tag, type: 'Boolean', value })),
    textArb.map((value): TtlvNode => ({ tag, type: 'TextString', value })),
    fc.uint8Array({ maxLength: 40 }).map((value): TtlvNode => ({ tag, type: 'ByteString', value })),
    fc
      .oneof(fc.bigInt({ min: -62167219200n, max: 253402300799n }), fc.bigInt({ min: INT64_MIN, max: INT64_MAX }))
      .map((value): TtlvNode => ({ tag, type: 'DateTime', value })),
    fc.integer({ min: 0, max: 0xffffffff }).map((value): TtlvNode => ({ tag, type: 'Interval', value })),
    fc.bigInt({ min: INT64_MIN, max: INT64_MAX }).map((value): TtlvNode => ({ tag, type: 'DateTimeExtended', value })),
  );
}

const attribute: fc.Arbitrary<TtlvNode> = fc
  .tuple(fc.constantFrom(...attributeNames), tagArb.chain(() => primitive(Tag.AttributeValue)))
  .map(([name, value]): TtlvNode => ({ tag: Tag.Attribute, type: 'Structure', value: [{ tag: Tag.AttributeName, type: 'TextString', value: name }, value] }));

const tree = fc.letrec<{ node: TtlvNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    tagArb.chain(primitive),
    attribute,
    fc.tuple(tagArb, fc.array(tie('node'), { maxLength: 5 })).map(([tag, value]): TtlvNode => ({ tag, type: 'Structure', value })),
  ),
})).node;

/** Every value in a random tree can be encoded as TTLV (the generators stay in range). */
function encodable(n: TtlvNode): boolean {
  try {
    encodeTtlv(n);
    return true;
  } catch {
    return false;
  }
}

t.test('tree -> XML -> tree is the identity', (t) => {
  fc.assert(
    fc.property(tree, (node) => {
      const back = parseXml(toXml(node));
      return nodesEqual(back, node);
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 random trees');
  t.end();
});

t.test('tree -> JSON -> tree is the identity', (t) => {
  fc.assert(
    fc.property(tree, (node) => nodesEqual(parseJson(toJson(node)), node)),
    { numRuns: 2000 },
  );
  t.pass('2000 random trees');
  t.end();
});

t.test('through TTLV too: tree -> TTLV -> tree -> XML/JSON -> TTLV gives the same bytes', (t) => {
  fc.assert(
    fc.property(tree.filter(encodable), (node) => {
      const bytes = encodeTtlv(node);
      const decoded = decodeTtlv(bytes);
      return encodeTtlv(parseXml(toXml(decoded))).equals(bytes) && encodeTtlv(parseJson(toJson(decoded, { indent: 0 }))).equals(bytes);
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 random trees');
  t.end();
});

/** Applies random edits (delete, insert, replace a character) to a valid text. */
function mutated(valid: string): fc.Arbitrary<string> {
  const edit = fc.tuple(fc.nat(), fc.constantFrom('del', 'ins', 'rep'), fc.constantFrom('<', '>', '/', '"', '=', '&', ';', '#', '{', '}', '[', ']', ',', ':', 'x', '0', ' ', '\n', '$'));
  return fc.array(edit, { minLength: 1, maxLength: 4 }).map((edits) => {
    let s = valid;
    for (const [at, op, ch] of edits) {
      const i = s.length === 0 ? 0 : at % s.length;
      s = op === 'del' ? s.slice(0, i) + s.slice(i + 1) : op === 'ins' ? s.slice(0, i) + ch + s.slice(i) : s.slice(0, i) + ch + s.slice(i + 1);
    }
    return s;
  });
}

/** True when `f` returns, or throws an error of class `cls`; anything else fails the property. */
function onlyThrows(cls: new (...args: never[]) => Error, f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch (e) {
    if (e instanceof cls) return true;
    throw e;
  }
}

t.test('damaged input only ever raises the codec error of its module', (t) => {
  const sample = tree.filter((n) => n.type === 'Structure');
  fc.assert(
    fc.property(
      sample.chain((n) => mutated(toXml(n))),
      (text) => onlyThrows(XmlCodecError, () => parseXml(text)) && onlyThrows(XmlCodecError, () => readXmlDocument(text)),
    ),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(
      sample.chain((n) => mutated(toJson(n, { indent: 0 }))),
      (text) => onlyThrows(JsonCodecError, () => parseJson(text)),
    ),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
      return onlyThrows(XmlCodecError, () => readXmlDocument(text)) && onlyThrows(JsonCodecError, () => parseJson(text));
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 damaged XML texts, 2000 damaged JSON texts, 2000 random strings');
  t.end();
});
