/**
 * Compares a server's response with the expected response of an OASIS XML test case, under the
 * KMIP Profiles' "Permitted Test Case Variations" (Profiles 1.3/1.4 §5.x, 2.x §4.x): an
 * implementation MAY differ from the transcript in the items the profiles list as variable, and
 * in nothing else.
 *
 * Variable items (a value that may differ; the expected value is a stand-in for the server's):
 * - Unique Identifiers and the other identifiers a server assigns; `$…` placeholders bind at
 *   first sight and must then match;
 * - Time Stamp, Asynchronous/Server/Client Correlation Values;
 * - date-times the server sets (Initial Date, Last Change Date, … any date-time the client did
 *   not send); `$NOW` and `$NOW±n` within the test case's time window;
 * - key material, key format and digest of server-generated objects, and certificates the
 *   server generates (Certify);
 * - outputs that depend on server randomness: ciphertext and IV when the server picks the IV,
 *   RSA encryption, ECDSA/DSA/PSS signatures, RNG output, anything under a generated key;
 * - the Result Message text (ignored, present or not);
 * - Query responses: more operations and object types than the reference server listed, and
 *   any vendor, server, extension, profile, capability and RNG information;
 * - Get Attributes without attribute names and Get Attribute List: more attributes than the
 *   reference server had, and none of the reference server's own `x-` attributes;
 * - the order of entries where the specification does not fix it: attributes in a list,
 *   Locate's identifiers, Get Attribute List's names.
 *
 * Two runner assumptions, documented in REPORT.md: an Attribute Index of 0 equals an absent one
 * (its default), and Discover Versions without a client list may name versions beyond the
 * reference server's, as long as the expected ones come in the same order.
 *
 * Everything else must be equal: structure, order, types and values, Result Status and Reason.
 */
import { readXml, xmlElementToTtlv, type XmlElement } from '../src/codec/xml.js';
import { namingFor, valueToText, type PrimitiveTypeName, type PrimitiveValue } from '../src/codec/textvalues.js';
import { Enums, Tag, enumValueName, tagByName, tagName } from '../src/spec/index.js';
import type { StructureNode, TtlvNode } from '../src/ttlv/types.js';

// ---------------------------------------------------------------------------------------------
// The expected side: a TTLV tree whose leaves may be `$…` placeholders

export interface ExpectedStructure {
  tag: number;
  type: 'Structure';
  children: Expected[];
}
export interface ExpectedLeaf {
  tag: number;
  type: PrimitiveTypeName;
  value: PrimitiveValue;
  /** The `$…` text when the value is a placeholder; `value` is then a dummy. */
  placeholder?: string;
}
export type Expected = ExpectedStructure | ExpectedLeaf;

function dummy(type: PrimitiveTypeName): PrimitiveValue {
  switch (type) {
    case 'Integer':
    case 'Enumeration':
    case 'Interval':
      return 0;
    case 'LongInteger':
    case 'BigInteger':
    case 'DateTime':
    case 'DateTimeExtended':
      return 0n;
    case 'Boolean':
      return false;
    case 'TextString':
      return '';
    case 'ByteString':
      return new Uint8Array(0);
  }
}

function zip(el: XmlElement, node: TtlvNode): Expected {
  if (node.type === 'Structure') {
    const els = el.children.filter((c): c is XmlElement => c.kind === 'element');
    return { tag: node.tag, type: 'Structure', children: node.value.map((c, i) => zip(els[i]!, c)) };
  }
  const text = el.attributes.find((a) => a.name === 'value')?.value.trim();
  const leaf: ExpectedLeaf = { tag: node.tag, type: node.type, value: node.value };
  if (text !== undefined && text.startsWith('$')) leaf.placeholder = text;
  return leaf;
}

/** The expected tree of one XML element (a ResponseMessage), placeholders kept as such. */
export function expectedFromXml(el: XmlElement): Expected {
  const node = xmlElementToTtlv(el, { placeholder: (_name, type) => dummy(type) });
  return zip(el, node);
}

/** Convenience for tests: expected tree from XML text. */
export function expectedFromXmlText(text: string): Expected {
  return expectedFromXml(readXml(text));
}

/** An expected tree with no placeholders, from a TTLV tree. */
export function expectedFromTtlv(node: TtlvNode): Expected {
  if (node.type === 'Structure') return { tag: node.tag, type: 'Structure', children: node.value.map(expectedFromTtlv) };
  return { tag: node.tag, type: node.type, value: node.value };
}

// ---------------------------------------------------------------------------------------------
// Options and results

export interface TypedValue {
  type: PrimitiveTypeName;
  value: PrimitiveValue;
}

export interface CompareOptions {
  /** Placeholder bindings of the test case so far; not modified (new ones are in the result). */
  bindings?: ReadonlyMap<string, TypedValue>;
  /** The request message that was sent (placeholders substituted). */
  request?: TtlvNode;
  /** Seconds since the epoch between which `$NOW` may fall (tolerance included). */
  now?: { from: bigint; to: bigint };
  /** Date-times (seconds) any request of the test case carried: those are not server-set. */
  clientDates?: ReadonlySet<bigint>;
  /** Text strings any request of the test case carried (attribute names, values). */
  clientTexts?: ReadonlySet<string>;
  /** Unique identifiers of objects the server generated (Create, Create Key Pair, Re-key, Certify, …). */
  generated?: ReadonlySet<string>;
  /** Cryptographic Algorithm of objects, by unique identifier, where the test case told it. */
  algorithms?: ReadonlyMap<string, number>;
  /** Padding Method of the objects' Cryptographic Parameters, where the test case set one. */
  paddings?: ReadonlyMap<string, number>;
  /** At most this many differences are collected (default 20). */
  maxDifferences?: number;
}

export interface Difference {
  /** Tag path from the message down, e.g. ResponseMessage/BatchItem[0]/ResponsePayload/Attribute[State]/AttributeValue. */
  path: string;
  expected: string;
  actual: string;
}

/** A literal expected value that stands for a server's value: later requests use the server's. */
export interface Substitution {
  type: PrimitiveTypeName;
  from: PrimitiveValue;
  to: PrimitiveValue;
}

export interface CompareResult {
  ok: boolean;
  differences: Difference[];
  /** Placeholders first seen in this response, with the server's values. */
  bound: Map<string, TypedValue>;
  substitutions: Substitution[];
  /** Where a permitted variation was applied to a differing value: `path: rule`. */
  variations: string[];
}

// ---------------------------------------------------------------------------------------------
// Helpers

const E = Enums;
const OP = E.Operation;

/** Tags whose values servers assign. */
const IDENTIFIER_TAGS = new Set<number>([
  Tag.UniqueIdentifier,
  Tag.PrivateKeyUniqueIdentifier,
  Tag.PublicKeyUniqueIdentifier,
  Tag.LinkedObjectIdentifier,
  Tag.ShortUniqueIdentifier,
]);
const CORRELATION_TAGS = new Set<number>([
  Tag.AsynchronousCorrelationValue,
  Tag.ServerCorrelationValue,
  Tag.ClientCorrelationValue,
  Tag.CorrelationValue,
]);
/** Header fields a server may or may not send. */
const OPTIONAL_HEADER_TAGS = new Set<number>([Tag.ServerCorrelationValue, Tag.ClientCorrelationValue]);
/** Cryptographic outputs. */
const OUTPUT_TAGS = new Set<number>([Tag.Data, Tag.IVCounterNonce, Tag.SignatureData, Tag.MACData, Tag.AuthenticatedEncryptionTag]);
/** Attributes a certificate determines (issuer, serial number and length differ for a certificate the server signs). */
const CERTIFICATE_FIELDS = new Set<number>([
  Tag.CertificateLength,
  Tag.CertificateIdentifier,
  Tag.CertificateIssuer,
  Tag.X_509CertificateIdentifier,
  Tag.X_509CertificateIssuer,
  Tag.IssuerDistinguishedName,
  Tag.SerialNumber,
  Tag.CertificateIssuerDistinguishedName,
]);
/** Query response items whose content, and presence, is the server's own. */
const QUERY_FREE_TAGS = new Set<number>([
  Tag.VendorIdentification,
  Tag.ServerInformation,
  Tag.ApplicationNamespace,
  Tag.ExtensionInformation,
  Tag.AttestationType,
]);
/**
 * Query response items that describe the server (its profiles, capabilities, RNGs, …): their
 * content is the server's own, but a query function the transcript answers must be answered.
 */
const QUERY_DESCRIPTIVE_TAGS = new Set<number>([
  Tag.ProfileInformation,
  Tag.ValidationInformation,
  Tag.CapabilityInformation,
  Tag.RNGParameters,
  Tag.ClientRegistrationMethod,
  Tag.DefaultsInformation,
  Tag.ProtectionStorageMasks,
]);
/** Operations whose new objects get key material from the server. */
export const GENERATING_OPERATIONS: ReadonlySet<number> = new Set<number>([
  OP.Create,
  OP.CreateKeyPair,
  OP.ReKey,
  OP.ReKeyKeyPair,
  OP.Certify,
  OP.ReCertify,
  OP.CreateSplitKey,
]);

function isStructure(n: TtlvNode | Expected | undefined): n is StructureNode | ExpectedStructure {
  return n !== undefined && n.type === 'Structure';
}

function kids(n: TtlvNode | Expected): readonly (TtlvNode | Expected)[] {
  if (n.type !== 'Structure') return [];
  return 'children' in n ? n.children : (n as StructureNode).value;
}

function child<T extends TtlvNode | Expected>(n: T | undefined, tag: number): T | undefined {
  if (!n || n.type !== 'Structure') return undefined;
  return (kids(n) as T[]).find((c) => c.tag === tag);
}

function leafValue(n: TtlvNode | Expected | undefined): PrimitiveValue | undefined {
  if (!n || n.type === 'Structure') return undefined;
  return (n as { value: PrimitiveValue }).value;
}

function hasDeep(n: TtlvNode | undefined, tag: number): TtlvNode | undefined {
  if (!n) return undefined;
  if (n.tag === tag) return n;
  if (n.type !== 'Structure') return undefined;
  for (const c of n.value) {
    const f = hasDeep(c, tag);
    if (f) return f;
  }
  return undefined;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Runs of spaces collapse to one: the 1.0-1.2 transcripts were extracted from documents with line-wrapping spaces. */
export function normalizeText(s: string): string {
  return s.replace(/ {2,}/g, ' ').trim();
}

export function valuesEqual(type: PrimitiveTypeName, a: PrimitiveValue, b: PrimitiveValue): boolean {
  if (type === 'ByteString') return a instanceof Uint8Array && b instanceof Uint8Array && bytesEqual(a, b);
  if (type === 'TextString') return typeof a === 'string' && typeof b === 'string' && normalizeText(a) === normalizeText(b);
  if (type === 'Integer') return typeof a === 'number' && typeof b === 'number' && a >>> 0 === b >>> 0;
  return a === b;
}

function describeValue(n: TtlvNode | Expected, attributeName?: string): string {
  if (n.type === 'Structure') return `${tagName(n.tag)} (Structure)`;
  const leaf = n as ExpectedLeaf;
  if (leaf.placeholder) return `${leaf.type} ${leaf.placeholder}`;
  const text = valueToText({ tag: n.tag, type: n.type, value: leaf.value } as Exclude<TtlvNode, StructureNode>, namingFor(n.tag, attributeName), ' ');
  return `${n.type} ${text.length > 80 ? `${text.slice(0, 77)}...` : text}`;
}

function typedValueText(v: TypedValue): string {
  return describeValue({ tag: 0, type: v.type, value: v.value });
}

/** The attribute name an Attribute structure carries (its Attribute Name), normalised. */
function attributeNameOf(n: TtlvNode | Expected): string | undefined {
  const an = child(n as TtlvNode, Tag.AttributeName);
  const v = leafValue(an);
  return typeof v === 'string' ? normalizeText(v) : undefined;
}

function attributeTagOf(name: string | undefined): number | undefined {
  if (name === undefined) return undefined;
  return tagByName(name)?.tag ?? tagByName(name.replace(/[^A-Za-z0-9]/g, ''))?.tag;
}

/** A key for paths: the attribute name of an Attribute, else the tag. */
function entryKey(n: TtlvNode | Expected): string {
  if (n.tag === Tag.Attribute) {
    const name = attributeNameOf(n) ?? '?';
    const idx = leafValue(child(n as TtlvNode, Tag.AttributeIndex));
    return typeof idx === 'number' && idx !== 0 ? `${name}#${idx}` : name;
  }
  return tagName(n.tag);
}

/**
 * What makes two list entries "the same entry" when reporting a mismatch: an Attribute's name;
 * a text or enumeration leaf's value (a name in a list); else the tag.
 */
function similarityKey(n: TtlvNode | Expected): string {
  if (n.tag === Tag.Attribute) return entryKey(n);
  if (n.type === 'TextString' || n.type === 'Enumeration') {
    const leaf = n as ExpectedLeaf;
    if (leaf.placeholder) return `${tagName(n.tag)}=${leaf.placeholder}`;
    return `${tagName(n.tag)}=${typeof leaf.value === 'string' ? normalizeText(leaf.value) : String(leaf.value)}`;
  }
  return tagName(n.tag);
}

// ---------------------------------------------------------------------------------------------
// The comparison state: bindings and findings, copied for trial matches

class State {
  constructor(
    readonly bindings: Map<string, TypedValue>,
    readonly bound: Map<string, TypedValue>,
    readonly substitutions: Substitution[],
    readonly variations: string[],
    readonly differences: Difference[],
    readonly max: number,
  ) {}

  fork(): State {
    return new State(new Map(this.bindings), new Map(this.bound), [...this.substitutions], [...this.variations], [], this.max);
  }

  adopt(other: State): void {
    for (const [k, v] of other.bindings) this.bindings.set(k, v);
    for (const [k, v] of other.bound) this.bound.set(k, v);
    this.substitutions.splice(0, this.substitutions.length, ...other.substitutions);
    this.variations.splice(0, this.variations.length, ...other.variations);
    for (const d of other.differences) this.diff(d.path, d.expected, d.actual);
  }

  diff(path: string, expected: string, actual: string): void {
    if (this.differences.length < this.max) this.differences.push({ path, expected, actual });
  }

  get failed(): boolean {
    return this.differences.length > 0;
  }
}

/** What the position in the message tells about which variations apply. */
interface Ctx {
  path: string;
  opts: CompareOptions;
  op?: number;
  /** The matching request batch item's payload. */
  reqPayload?: TtlvNode;
  /** The batch item's object is server-generated. */
  generated: boolean;
  /** The server chose the IV (Encrypt with no IV in the request, one in the response). */
  serverIv: boolean;
  /** The output comes from a randomised algorithm (RSA encryption, ECDSA/DSA/PSS signature). */
  randomized: boolean;
  inKeyBlock: boolean;
  /** The attribute (tag) this value belongs to: 1.x Attribute Name, or the 2.x attribute tag. */
  attr?: number;
  /** The Attribute Name text, for naming enumeration values in messages. */
  attrName?: string;
  /** Inside a structure whose content the server decides. */
  free?: string;
}

function at(ctx: Ctx, segment: string, extra: Partial<Ctx> = {}): Ctx {
  return { ...ctx, ...extra, path: ctx.path ? `${ctx.path}/${segment}` : segment };
}

/** The permitted variation that lets this expected item differ, if any. */
function variableRule(e: Expected, ctx: Ctx): string | undefined {
  if (ctx.free) return ctx.free;
  const t = e.tag;
  if (t === Tag.TimeStamp) return 'Time Stamp';
  if (CORRELATION_TAGS.has(t)) return 'correlation value';
  if (IDENTIFIER_TAGS.has(t) && e.type !== 'Structure') return 'identifier assigned by the server';
  if ((e.type === 'DateTime' || e.type === 'DateTimeExtended') && !(e as ExpectedLeaf).placeholder) {
    const v = (e as ExpectedLeaf).value as bigint;
    const secs = e.type === 'DateTime' ? v : v / 1_000_000n;
    if (!ctx.opts.clientDates?.has(secs)) return 'date-time set by the server';
  }
  if (ctx.attr === Tag.RandomNumberGenerator) return 'random number generator of the server';
  if (ctx.generated) {
    if (t === Tag.KeyMaterial) return 'key material of a server-generated object';
    if (t === Tag.KeyFormatType && ctx.inKeyBlock && !hasDeep(ctx.reqPayload, Tag.KeyFormatType)) return 'key format chosen by the server';
    if (t === Tag.CertificateValue) return 'certificate generated by the server';
    if (ctx.attr === Tag.Digest && (t === Tag.DigestValue || t === Tag.KeyFormatType)) return 'digest of server-generated material';
    if (ctx.attr !== undefined && CERTIFICATE_FIELDS.has(ctx.attr)) return 'field of a certificate the server generated';
    if (OUTPUT_TAGS.has(t)) return 'output under a server-generated key';
  }
  if (ctx.serverIv && OUTPUT_TAGS.has(t)) return 'output with an IV the server chose';
  if (ctx.randomized && OUTPUT_TAGS.has(t)) return 'output of a randomised algorithm';
  if (ctx.op === OP.RNGRetrieve && t === Tag.Data) return 'random data';
  return undefined;
}

const NOW_RE = /^\$NOW(?:([-+])(\d+))?$/;

// ---------------------------------------------------------------------------------------------
// Comparison

function compareLeafPlaceholder(e: ExpectedLeaf, a: TtlvNode, ctx: Ctx, st: State): void {
  const name = e.placeholder!;
  if (a.type === 'Structure' || a.type !== e.type) {
    st.diff(ctx.path, `${e.type} ${name}`, describeValue(a));
    return;
  }
  const now = NOW_RE.exec(name);
  if (now && e.tag === Tag.TimeStamp) return; // Time Stamp may vary, whatever the transcript wrote
  if (now) {
    const offset = (now[1] === '-' ? -1n : 1n) * BigInt(now[2] ?? '0');
    const window = ctx.opts.now;
    if (!window || (a.type !== 'DateTime' && a.type !== 'DateTimeExtended')) return;
    const secs = a.type === 'DateTime' ? a.value : a.value / 1_000_000n;
    if (secs < window.from + offset || secs > window.to + offset) {
      st.diff(ctx.path, `${e.type} ${name} (between ${describeValue({ tag: 0, type: 'DateTime', value: window.from + offset })} and ${describeValue({ tag: 0, type: 'DateTime', value: window.to + offset }).replace(/^DateTime /, '')})`, describeValue(a));
    }
    return;
  }
  const known = st.bindings.get(name);
  if (known) {
    if (known.type === a.type && valuesEqual(a.type, known.value, a.value)) return;
    if (CORRELATION_TAGS.has(e.tag) && known.type === a.type) {
      // The transcripts reuse one name for the correlation value of successive streams; a
      // server may start each with a new one (correlation values are variable items).
      const tv: TypedValue = { type: a.type, value: a.value };
      st.bindings.set(name, tv);
      st.bound.set(name, tv);
      st.variations.push(`${ctx.path}: correlation value (${name} now the server's new one)`);
      return;
    }
    st.diff(ctx.path, `${name} = ${typedValueText(known)}`, describeValue(a));
    return;
  }
  const tv: TypedValue = { type: a.type, value: a.value };
  st.bindings.set(name, tv);
  st.bound.set(name, tv);
}

function compareLeaf(e: ExpectedLeaf, a: TtlvNode, ctx: Ctx, st: State): void {
  if (e.placeholder) {
    compareLeafPlaceholder(e, a, ctx, st);
    return;
  }
  const rule = variableRule(e, ctx);
  if (a.type === 'Structure' || a.type !== e.type) {
    if (rule && e.tag === Tag.KeyMaterial) return; // a generated key may come in another format
    st.diff(ctx.path, describeValue(e, ctx.attrName), describeValue(a, ctx.attrName));
    return;
  }
  if (valuesEqual(e.type, e.value, a.value)) return;
  if (rule) {
    st.variations.push(`${ctx.path}: ${rule}`);
    if (e.type === 'ByteString' || e.type === 'BigInteger' || e.type === 'TextString') {
      st.substitutions.push({ type: e.type, from: e.value, to: a.value });
    }
    return;
  }
  st.diff(ctx.path, describeValue(e, ctx.attrName), describeValue(a, ctx.attrName));
}

/** Accepts any content (a variable subtree), still binding placeholders and noting substitutions. */
function compareFree(e: Expected, a: TtlvNode, ctx: Ctx, st: State, rule: string): void {
  if (e.type !== 'Structure') {
    compareLeaf(e, a, { ...ctx, free: rule }, st);
    return;
  }
  if (a.type === 'Structure' && a.value.length === e.children.length && e.children.every((c, i) => c.tag === a.value[i]!.tag)) {
    e.children.forEach((c, i) => compareFree(c, a.value[i]!, at(ctx, tagName(c.tag)), st, rule));
    return;
  }
  st.variations.push(`${ctx.path}: ${rule}`);
}

function compareNode(e: Expected, a: TtlvNode | undefined, ctx: Ctx, st: State): void {
  if (a === undefined) {
    st.diff(ctx.path, describeValue(e, ctx.attrName), '(absent)');
    return;
  }
  if (e.tag !== a.tag) {
    st.diff(ctx.path, `${tagName(e.tag)}: ${describeValue(e, ctx.attrName)}`, `${tagName(a.tag)}: ${describeValue(a)}`);
    return;
  }
  if (e.type !== 'Structure') {
    compareLeaf(e, a, ctx, st);
    return;
  }
  const rule = variableRule(e, ctx);
  if (rule && (e.tag === Tag.KeyMaterial || e.tag === Tag.CertificateValue || ctx.attr === Tag.RandomNumberGenerator)) {
    compareFree(e, a, ctx, st, rule);
    return;
  }
  if (a.type !== 'Structure') {
    st.diff(ctx.path, describeValue(e), describeValue(a));
    return;
  }
  compareStructure(e, a, ctx, st);
}

/** The context for the children of `e` (attribute names, key blocks, 2.x attribute tags). */
function childCtx(e: ExpectedStructure, c: Expected, ctx: Ctx, segment: string): Ctx {
  const extra: Partial<Ctx> = {};
  if (e.tag === Tag.KeyBlock) extra.inKeyBlock = true;
  if (e.tag === Tag.Attribute && c.tag === Tag.AttributeValue) {
    const name = attributeNameOf(e);
    const t = attributeTagOf(name);
    if (t !== undefined) extra.attr = t;
    if (name !== undefined) extra.attrName = name;
  }
  if (e.tag === Tag.Attributes) {
    extra.attr = c.tag;
    extra.attrName = tagName(c.tag);
  }
  return at(ctx, segment, extra);
}

/** Segments for a list of children: `Tag`, `Tag[i]` when repeated, `Attribute[Name]`. */
function segments(list: readonly (TtlvNode | Expected)[]): string[] {
  const counts = new Map<number, number>();
  for (const c of list) counts.set(c.tag, (counts.get(c.tag) ?? 0) + 1);
  const seen = new Map<number, number>();
  return list.map((c) => {
    const i = seen.get(c.tag) ?? 0;
    seen.set(c.tag, i + 1);
    if (c.tag === Tag.Attribute) return `Attribute[${entryKey(c)}]`;
    if (c.tag === Tag.BatchItem) return `BatchItem[${i}]`;
    return (counts.get(c.tag) ?? 0) > 1 ? `${tagName(c.tag)}[${i}]` : tagName(c.tag);
  });
}

function dropIndexZero<T extends TtlvNode | Expected>(list: readonly T[]): T[] {
  return list.filter((c) => !(c.tag === Tag.AttributeIndex && leafValue(c) === 0));
}

/**
 * Children in order, except that runs of Attribute structures (1.x) and the content of an
 * Attributes structure (2.x) are lists whose order the specification does not fix.
 */
function compareStructure(e: ExpectedStructure, a: StructureNode, ctx: Ctx, st: State): void {
  let ec: readonly Expected[] = e.children;
  let ac: readonly TtlvNode[] = a.value;
  if (e.tag === Tag.Attribute) {
    ec = dropIndexZero(ec);
    ac = dropIndexZero(ac);
  }
  if (e.tag === Tag.Attributes) {
    compareBag(ec, ac, ctx, st, { extras: false, ctxFor: (c, seg) => childCtx(e, c, ctx, seg) });
    return;
  }
  const segs = segments(ec);
  let i = 0;
  let j = 0;
  while (i < ec.length) {
    const c = ec[i]!;
    if (c.tag === Tag.Attribute) {
      // A run of attributes: compare as a list in any order.
      let i2 = i;
      while (i2 < ec.length && ec[i2]!.tag === Tag.Attribute) i2++;
      let j2 = j;
      while (j2 < ac.length && ac[j2]!.tag === Tag.Attribute) j2++;
      compareBag(ec.slice(i, i2), ac.slice(j, j2), ctx, st, { extras: false, ctxFor: (_c, seg) => at(ctx, seg) });
      i = i2;
      j = j2;
      continue;
    }
    compareNode(c, ac[j], childCtx(e, c, ctx, segs[i]!), st);
    i++;
    j++;
  }
  if (j < ac.length) {
    const extra = ac[j]!;
    st.diff(at(ctx, segments(ac)[j]!).path, '(absent)', describeValue(extra));
  }
}

interface BagOptions {
  /** Actual entries beyond the expected ones are permitted. */
  extras: boolean;
  /** An expected entry whose absence is permitted, with the reason; undefined: it must be there. */
  mayBeMissing?: (e: Expected) => string | undefined;
  ctxFor: (e: Expected, segment: string) => Ctx;
}

function hasUnboundPlaceholder(e: Expected, st: State): boolean {
  if (e.type === 'Structure') return e.children.some((c) => hasUnboundPlaceholder(c, st));
  const p = e.placeholder;
  return p !== undefined && !NOW_RE.test(p) && !st.bindings.has(p);
}

/** A list in any order: each expected entry matches a distinct actual one. */
function compareBag(ec: readonly Expected[], ac: readonly TtlvNode[], ctx: Ctx, st: State, o: BagOptions): void {
  const used = new Array<boolean>(ac.length).fill(false);
  const segs = segments(ec);
  // Entries that bind placeholders go last, so that bound and literal ones pick their match first.
  const order = ec.map((_, i) => i).sort((x, y) => Number(hasUnboundPlaceholder(ec[x]!, st)) - Number(hasUnboundPlaceholder(ec[y]!, st)));
  for (const i of order) {
    const e = ec[i]!;
    const cctx = o.ctxFor(e, segs[i]!);
    let matched = false;
    for (let j = 0; j < ac.length && !matched; j++) {
      if (used[j] || ac[j]!.tag !== e.tag) continue;
      const trial = st.fork();
      compareNode(e, ac[j], cctx, trial);
      if (!trial.failed) {
        used[j] = true;
        st.adopt(trial);
        matched = true;
      }
    }
    if (matched) continue;
    const why = o.mayBeMissing?.(e);
    if (why) {
      st.variations.push(`${cctx.path}: absent (${why})`);
      continue;
    }
    // Report against the most similar entry (same attribute name, or for a leaf the same tag
    // when it is no name in a list), else as missing.
    const key = entryKey(e);
    const skey = similarityKey(e);
    const similar = (e as ExpectedLeaf).placeholder ? -1 : ac.findIndex((x, j) => !used[j] && x.tag === e.tag && similarityKey(x) === skey);
    if (similar >= 0) {
      compareNode(e, ac[similar], cctx, st);
      used[similar] = true;
    } else {
      st.diff(cctx.path, describeValue(e.tag === Tag.Attribute ? (child(e, Tag.AttributeValue) ?? e) : e, key), '(absent)');
    }
  }
  if (!o.extras) {
    const asegs = segments(ac);
    ac.forEach((x, j) => {
      if (!used[j]) st.diff(at(ctx, asegs[j]!).path, '(absent)', describeValue(x.tag === Tag.Attribute ? (child(x, Tag.AttributeValue) ?? x) : x, entryKey(x)));
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Messages, batch items and payloads

function enumText(enumName: string, v: PrimitiveValue | undefined): string {
  if (typeof v !== 'number') return '(absent)';
  return enumValueName(enumName, v) ?? `0x${v.toString(16)}`;
}

function batchItems(msg: TtlvNode | undefined): TtlvNode[] {
  if (!isStructure(msg)) return [];
  return (msg as StructureNode).value.filter((c) => c.tag === Tag.BatchItem);
}

function uidOf(payload: TtlvNode | undefined): string | undefined {
  const v = leafValue(child(payload, Tag.UniqueIdentifier));
  return typeof v === 'string' ? v : undefined;
}

const RANDOM_SIGNATURES = new Set<number>([E.CryptographicAlgorithm.ECDSA, E.CryptographicAlgorithm.DSA, E.CryptographicAlgorithm.EC]);
const DSA_SIGNATURE_ALGORITHMS = new Set<number>(
  Object.entries(E.DigitalSignatureAlgorithm)
    .filter(([k]) => /^(ECDSA|DSA)|PSS/.test(k))
    .map(([, v]) => v),
);

/**
 * Does the operation's output depend on randomness the client does not control? The request's
 * Cryptographic Parameters count, else the object's (`keyPadding`).
 */
function isRandomized(op: number | undefined, reqPayload: TtlvNode | undefined, algorithm: number | undefined, keyPadding: number | undefined): boolean {
  const params = child(reqPayload, Tag.CryptographicParameters);
  const padding = leafValue(child(params, Tag.PaddingMethod)) ?? keyPadding;
  const alg = (leafValue(child(params, Tag.CryptographicAlgorithm)) as number | undefined) ?? algorithm;
  if (op === OP.Encrypt) {
    return padding === E.PaddingMethod.OAEP || padding === E.PaddingMethod.PKCS1V1_5 || alg === E.CryptographicAlgorithm.RSA;
  }
  if (op === OP.Sign) {
    const dsa = leafValue(child(params, Tag.DigitalSignatureAlgorithm));
    return padding === E.PaddingMethod.PSS || (typeof alg === 'number' && RANDOM_SIGNATURES.has(alg)) || (typeof dsa === 'number' && DSA_SIGNATURE_ALGORITHMS.has(dsa));
  }
  return false;
}

function isVendorAttribute(e: Expected, opts: CompareOptions): string | undefined {
  const key = e.tag === Tag.Attribute ? attributeNameOf(e) : undefined;
  if (key !== undefined && /^x-/i.test(key) && !opts.clientTexts?.has(key)) return "the reference server's own x- attribute";
  return undefined;
}

function compareGetAttributes(e: ExpectedStructure, a: StructureNode, ctx: Ctx, st: State): void {
  const named = !!(child(ctx.reqPayload, Tag.AttributeName) ?? child(ctx.reqPayload, Tag.AttributeReference));
  const isAttr = (n: TtlvNode | Expected) => n.tag === Tag.Attribute;
  const eHead = e.children.filter((c) => !isAttr(c) && c.tag !== Tag.Attributes);
  const aHead = a.value.filter((c) => !isAttr(c) && c.tag !== Tag.Attributes);
  compareStructure({ ...e, children: eHead }, { ...a, value: aHead }, ctx, st);
  const bag: BagOptions = {
    extras: !named,
    ctxFor: (c, seg) => (c.tag === Tag.Attribute ? at(ctx, seg) : at(ctx, `Attributes/${seg}`, { attr: c.tag, attrName: tagName(c.tag) })),
  };
  if (!named) bag.mayBeMissing = (x) => isVendorAttribute(x, ctx.opts);
  // 1.x: Attribute structures in the payload; 2.x: the content of one Attributes structure.
  const eAttrs = e.children.filter(isAttr);
  const aAttrs = a.value.filter(isAttr);
  if (eAttrs.length > 0 || aAttrs.length > 0) compareBag(eAttrs, aAttrs, ctx, st, bag);
  const eA = child(e, Tag.Attributes);
  const aA = child(a, Tag.Attributes);
  if (eA || aA) {
    if (!eA || !aA) st.diff(at(ctx, 'Attributes').path, eA ? 'Attributes (Structure)' : '(absent)', aA ? 'Attributes (Structure)' : '(absent)');
    else compareBag(kids(eA) as Expected[], (aA as StructureNode).value, ctx, st, bag);
  }
}

/** Get Attribute List: the names (1.x) or references (2.x) in any order; more are permitted. */
function compareNameList(e: ExpectedStructure, a: StructureNode, ctx: Ctx, st: State, listTags: ReadonlySet<number>, extras: boolean): void {
  const eHead = e.children.filter((c) => !listTags.has(c.tag));
  const aHead = a.value.filter((c) => !listTags.has(c.tag));
  compareStructure({ ...e, children: eHead }, { ...a, value: aHead }, ctx, st);
  const bag: BagOptions = { extras, ctxFor: (_c, seg) => at(ctx, seg) };
  if (extras) {
    bag.mayBeMissing = (x) => {
      const v = leafValue(x);
      return typeof v === 'string' && /^x-/i.test(normalizeText(v)) && !ctx.opts.clientTexts?.has(normalizeText(v)) ? "the reference server's own x- attribute" : undefined;
    };
  }
  compareBag(
    e.children.filter((c) => listTags.has(c.tag)),
    a.value.filter((c) => listTags.has(c.tag)),
    ctx,
    st,
    bag,
  );
}

/**
 * Query: the operations and object types expected must be listed (more are permitted); vendor,
 * server, extension and namespace information may be anything or nothing; profile, capability,
 * validation, RNG, registration and defaults information must be there when the transcript has
 * some, with content of the server's own.
 */
function compareQuery(e: ExpectedStructure, a: StructureNode, ctx: Ctx, st: State): void {
  const descriptive = (n: TtlvNode | Expected) => QUERY_DESCRIPTIVE_TAGS.has(n.tag);
  compareBag(
    e.children.filter((c) => !descriptive(c)),
    a.value.filter((c) => !descriptive(c)),
    ctx,
    st,
    {
      extras: true,
      mayBeMissing: (x) => (QUERY_FREE_TAGS.has(x.tag) ? 'server-specific Query information' : undefined),
      ctxFor: (c, seg) => at(ctx, seg, QUERY_FREE_TAGS.has(c.tag) ? { free: 'server-specific Query information' } : {}),
    },
  );
  for (const tag of QUERY_DESCRIPTIVE_TAGS) {
    const want = e.children.filter((c) => c.tag === tag).length;
    const got = a.value.filter((c) => c.tag === tag).length;
    if (want > 0 && got === 0) st.diff(at(ctx, tagName(tag)).path, `${want} × ${tagName(tag)} (content the server's own)`, '(absent)');
    else if (want > 0 && got !== want) st.variations.push(`${at(ctx, tagName(tag)).path}: ${got} entries where the transcript has ${want} (server-specific Query information)`);
  }
}

function compareDiscoverVersions(e: ExpectedStructure, a: StructureNode, ctx: Ctx, st: State): void {
  const clientList = child(ctx.reqPayload, Tag.ProtocolVersion) !== undefined;
  if (clientList) {
    compareStructure(e, a, ctx, st);
    return;
  }
  // The server's own list: the expected versions in the same order, others may come between.
  let j = 0;
  const segs = segments(e.children);
  e.children.forEach((c, i) => {
    const cctx = at(ctx, segs[i]!);
    while (j < a.value.length) {
      const trial = st.fork();
      compareNode(c, a.value[j], cctx, trial);
      j++;
      if (!trial.failed) {
        st.adopt(trial);
        return;
      }
    }
    st.diff(cctx.path, describeValue(c), '(absent, or out of order)');
  });
}

function comparePayload(e: ExpectedStructure, a: StructureNode, ctx: Ctx, st: State): void {
  switch (ctx.op) {
    case OP.Query:
      return compareQuery(e, a, ctx, st);
    case OP.DiscoverVersions:
      return compareDiscoverVersions(e, a, ctx, st);
    case OP.GetAttributes:
      return compareGetAttributes(e, a, ctx, st);
    case OP.GetAttributeList:
      return compareNameList(e, a, ctx, st, new Set([Tag.AttributeName, Tag.AttributeReference]), true);
    case OP.Locate: {
      // Located Items (1.3+): a server MAY omit the count, so it may also give it where the
      // reference server did not; when both have it, it must agree.
      const both = child(e, Tag.LocatedItems) !== undefined && child(a, Tag.LocatedItems) !== undefined;
      const keep = <T extends TtlvNode | Expected>(list: readonly T[]) => (both ? [...list] : list.filter((c) => c.tag !== Tag.LocatedItems));
      if (!both && (child(e, Tag.LocatedItems) || child(a, Tag.LocatedItems))) st.variations.push(`${ctx.path}/LocatedItems: optional (present on one side only)`);
      return compareNameList({ ...e, children: keep(e.children) }, { ...a, value: keep(a.value) }, ctx, st, new Set([Tag.UniqueIdentifier]), false);
    }
    default:
      return compareStructure(e, a, ctx, st);
  }
}

function compareBatchItem(e: ExpectedStructure, a: TtlvNode | undefined, reqItem: TtlvNode | undefined, placeholderUid: string | undefined, ctx: Ctx, st: State): void {
  if (!isStructure(a)) {
    compareNode(e, a, ctx, st);
    return;
  }
  const aItem = a as StructureNode;
  const eStatus = leafValue(child(e, Tag.ResultStatus));
  const aStatus = leafValue(child(aItem, Tag.ResultStatus));
  const eReason = leafValue(child(e, Tag.ResultReason));
  const aReason = leafValue(child(aItem, Tag.ResultReason));
  const op = (leafValue(child(e, Tag.Operation)) ?? leafValue(child(aItem, Tag.Operation))) as number | undefined;
  if (eStatus !== aStatus || eReason !== aReason) {
    const msg = leafValue(child(aItem, Tag.ResultMessage));
    const actual = `${enumText('ResultStatus', aStatus)}${aReason !== undefined ? ` / ${enumText('ResultReason', aReason)}` : ''}${typeof msg === 'string' ? ` ("${msg.length > 100 ? `${msg.slice(0, 97)}...` : msg}")` : ''}`;
    const expected = `${enumText('ResultStatus', eStatus)}${eReason !== undefined ? ` / ${enumText('ResultReason', eReason)}` : ''}`;
    st.diff(at(ctx, eStatus !== aStatus ? 'ResultStatus' : 'ResultReason').path, expected, actual);
    return;
  }
  const reqPayload = child(reqItem, Tag.RequestPayload);
  const aPayload = child(aItem, Tag.ResponsePayload);
  const target = uidOf(aPayload) ?? uidOf(reqPayload) ?? placeholderUid;
  const generated = target !== undefined && (ctx.opts.generated?.has(target) ?? false);
  const serverIv = op === OP.Encrypt && !hasDeep(reqPayload, Tag.IVCounterNonce) && child(aPayload, Tag.IVCounterNonce) !== undefined;
  const randomized = isRandomized(
    op,
    reqPayload,
    target !== undefined ? ctx.opts.algorithms?.get(target) : undefined,
    target !== undefined ? ctx.opts.paddings?.get(target) : undefined,
  );
  const ictx: Ctx = { ...ctx, generated, serverIv, randomized };
  if (op !== undefined) ictx.op = op;
  if (reqPayload !== undefined) ictx.reqPayload = reqPayload;

  // The Result Message is optional and its text the server's: left out on both sides.
  const ec = e.children.filter((c) => c.tag !== Tag.ResultMessage);
  const ac = aItem.value.filter((c) => c.tag !== Tag.ResultMessage);
  const segs = segments(ec);
  let j = 0;
  for (let i = 0; i < ec.length; i++) {
    const c = ec[i]!;
    const cctx = at(ictx, segs[i]!);
    const x = ac[j];
    j++;
    if (c.tag === Tag.ResponsePayload && x?.tag === Tag.ResponsePayload && c.type === 'Structure' && x.type === 'Structure') {
      comparePayload(c, x, cctx, st);
    } else {
      compareNode(c, x, cctx, st);
    }
  }
  if (j < ac.length) st.diff(at(ictx, segments(ac)[j]!).path, '(absent)', describeValue(ac[j]!));
}

/** The unique identifiers a response payload names (object, private key, public key). */
function newObjects(payload: TtlvNode | undefined): string[] {
  if (!payload || payload.type !== 'Structure') return [];
  return payload.value
    .filter((c) => c.tag === Tag.UniqueIdentifier || c.tag === Tag.PrivateKeyUniqueIdentifier || c.tag === Tag.PublicKeyUniqueIdentifier)
    .map((c) => leafValue(c))
    .filter((v): v is string => typeof v === 'string');
}

/**
 * A server answers in the request's protocol version. Where a transcript's response names
 * another version than its own request (an OASIS typo, e.g. OMOS-O-1-14), the request's counts.
 */
function versionFromRequest(header: Expected, request: TtlvNode | undefined, ctx: Ctx, st: State): Expected {
  const reqVersion = child(child(request, Tag.RequestHeader), Tag.ProtocolVersion);
  const expVersion = child(header, Tag.ProtocolVersion);
  if (!reqVersion || !expVersion || header.type !== 'Structure') return header;
  const same = [Tag.ProtocolVersionMajor, Tag.ProtocolVersionMinor].every((t) => leafValue(child(reqVersion, t)) === leafValue(child(expVersion, t)));
  if (same) return header;
  st.variations.push(`${ctx.path}/ProtocolVersion: the transcript's response version contradicts its request's; the request's is expected`);
  return { ...header, children: header.children.map((c) => (c.tag === Tag.ProtocolVersion ? expectedFromTtlv(reqVersion) : c)) };
}

/**
 * Compares one response message. Bindings in `opts` are read, never changed: the result lists
 * the placeholders this response bound.
 */
export function compareResponse(expected: Expected, actual: TtlvNode, opts: CompareOptions = {}): CompareResult {
  const st = new State(new Map(opts.bindings ?? []), new Map(), [], [], [], opts.maxDifferences ?? 20);
  const ctx: Ctx = { path: tagName(expected.tag), opts, generated: false, serverIv: false, randomized: false, inKeyBlock: false };
  if (expected.tag !== actual.tag || expected.type !== 'Structure' || actual.type !== 'Structure') {
    compareNode(expected, actual, ctx, st);
  } else {
    const reqItems = batchItems(opts.request);
    const eItems = expected.children.filter((c) => c.tag === Tag.BatchItem);
    const aItems = actual.value.filter((c) => c.tag === Tag.BatchItem);
    // Objects generated by earlier items of this very message count as generated too.
    const generated = new Set(opts.generated ?? []);
    const ictx: Ctx = { ...ctx, opts: { ...opts, generated } };
    // The batch items first: a missing item explains a Batch Count that differs.
    let placeholderUid: string | undefined;
    eItems.forEach((ei, i) => {
      if (ei.type !== 'Structure') return;
      const ai = aItems[i];
      // The request item: the one with the same Unique Batch Item ID, else the same position.
      const id = leafValue(child(ei, Tag.UniqueBatchItemID));
      const reqItem =
        (id instanceof Uint8Array ? reqItems.find((r) => { const v = leafValue(child(r, Tag.UniqueBatchItemID)); return v instanceof Uint8Array && bytesEqual(v, id); }) : undefined) ??
        reqItems[i];
      compareBatchItem(ei, ai, reqItem, placeholderUid, at(ictx, `BatchItem[${i}]`), st);
      const aPayload = child(ai, Tag.ResponsePayload);
      placeholderUid = uidOf(aPayload) ?? placeholderUid;
      const op = leafValue(child(ai, Tag.Operation));
      if (typeof op === 'number' && GENERATING_OPERATIONS.has(op) && leafValue(child(ai, Tag.ResultStatus)) === E.ResultStatus.Success) {
        for (const u of newObjects(aPayload)) generated.add(u);
      }
    });
    if (aItems.length > eItems.length) st.diff(at(ctx, `BatchItem[${eItems.length}]`).path, '(absent)', describeValue(aItems[eItems.length]!));
    // The header: in order, Time Stamp variable, correlation values optional.
    const eHeader = child(expected, Tag.ResponseHeader);
    const aHeader = child(actual, Tag.ResponseHeader);
    if (eHeader) {
      const strip = <T extends TtlvNode | Expected>(n: T | undefined): T | undefined => {
        if (!n || n.type !== 'Structure') return n;
        if ('children' in n) return { ...n, children: n.children.filter((c) => !OPTIONAL_HEADER_TAGS.has(c.tag)) } as T;
        return { ...n, value: (n as StructureNode).value.filter((c) => !OPTIONAL_HEADER_TAGS.has(c.tag)) } as T;
      };
      compareNode(versionFromRequest(strip(eHeader)!, opts.request, at(ctx, 'ResponseHeader'), st), strip(aHeader), at(ctx, 'ResponseHeader'), st);
    }
    const eo = expected.children.filter((c) => c.tag !== Tag.ResponseHeader && c.tag !== Tag.BatchItem);
    const ao = actual.value.filter((c) => c.tag !== Tag.ResponseHeader && c.tag !== Tag.BatchItem);
    eo.forEach((c, i) => compareNode(c, ao[i], at(ctx, tagName(c.tag)), st));
  }
  return { ok: !st.failed, differences: st.differences, bound: st.bound, substitutions: st.substitutions, variations: st.variations };
}

// ---------------------------------------------------------------------------------------------
// Object provenance, for the variations of server-generated material

export interface Provenance {
  generated: Set<string>;
  algorithms: Map<string, number>;
  paddings: Map<string, number>;
}

/** Operations whose response names new objects. */
const CREATING_OPERATIONS: ReadonlySet<number> = new Set<number>([
  ...GENERATING_OPERATIONS,
  OP.Register,
  OP.DeriveKey,
  OP.JoinSplitKey,
  OP.Import,
]);

function algorithmIn(n: TtlvNode | undefined): number | undefined {
  if (!n) return undefined;
  if (n.tag === Tag.CryptographicAlgorithm && n.type === 'Enumeration') return n.value;
  if (n.tag === Tag.Attribute && n.type === 'Structure') {
    const name = attributeNameOf(n);
    const v = leafValue(child(n, Tag.AttributeValue));
    if (name === 'Cryptographic Algorithm' && typeof v === 'number') return v;
  }
  if (n.type === 'Structure') {
    for (const c of n.value) {
      const f = algorithmIn(c);
      if (f !== undefined) return f;
    }
  }
  return undefined;
}

/**
 * Records which objects a response created with server-generated material, and the algorithm
 * the request named for them. DeriveKey and Join Split Key results inherit "generated" from the
 * objects they come from.
 */
export function trackObjects(request: TtlvNode, response: TtlvNode, prov: Provenance): void {
  const reqItems = batchItems(request);
  const resItems = batchItems(response);
  resItems.forEach((ri, i) => {
    if (leafValue(child(ri, Tag.ResultStatus)) !== E.ResultStatus.Success) return;
    const op = leafValue(child(ri, Tag.Operation)) as number | undefined;
    const payload = child(ri, Tag.ResponsePayload);
    const reqPayload = child(reqItems[i], Tag.RequestPayload);
    const uids = newObjects(payload);
    let generated = op !== undefined && GENERATING_OPERATIONS.has(op);
    if (op === OP.DeriveKey || op === OP.JoinSplitKey) {
      const sources: string[] = [];
      const collect = (n: TtlvNode | undefined) => {
        if (!n) return;
        if (n.tag === Tag.UniqueIdentifier && n.type === 'TextString') sources.push(n.value);
        if (n.type === 'Structure') n.value.forEach(collect);
      };
      collect(reqPayload);
      generated = sources.some((s) => prov.generated.has(s));
    }
    if (op === undefined || !CREATING_OPERATIONS.has(op)) {
      for (const uid of uids) if (generated) prov.generated.add(uid);
      return;
    }
    const source = uidOf(reqPayload);
    const alg = algorithmIn(reqPayload) ?? (source !== undefined ? prov.algorithms.get(source) : undefined);
    const pad = hasDeep(reqPayload, Tag.PaddingMethod);
    const padding = pad?.type === 'Enumeration' ? pad.value : source !== undefined ? prov.paddings.get(source) : undefined;
    for (const uid of uids) {
      if (generated) prov.generated.add(uid);
      if (alg !== undefined) prov.algorithms.set(uid, alg);
      if (padding !== undefined) prov.paddings.set(uid, padding);
    }
  });
}
