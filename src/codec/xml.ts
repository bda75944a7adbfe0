/**
 * The XML encoding of KMIP Additional Message Encodings v1.0 (§6), both ways, to and from the
 * generic TTLV tree:
 *
 *     <RequestMessage>
 *       <RequestHeader>
 *         <ProtocolVersion>
 *           <ProtocolVersionMajor type="Integer" value="1"/>
 *       ...
 *       <TTLV tag="0x540001" type="TextString" value="na"/>
 *
 * One element is one item: the element name is the tag's normalised name (or any name, by
 * convention TTLV, with a `tag="0x42XXXX"` attribute), `type` defaults to Structure and `value`
 * holds a primitive's value as text (see textvalues.ts for each type).
 *
 * The reader is a small XML 1.0 parser of our own (elements, attributes, character and entity
 * references, comments, CDATA, processing instructions; no DTDs). `readXmlDocument` also reads
 * the OASIS test-case files, which are not always well-formed: `# …` lines before the root and
 * as text between messages (`# TIME 0`, `# [Client-A]`), and a duplicated closing root tag.
 */
import { Tag, tagByName, tagInfo } from '../spec/index.js';
import { formatTag } from '../ttlv/errors.js';
import { isItemTypeName, type TtlvNode } from '../ttlv/types.js';
import {
  bindPlaceholder,
  makeNode,
  namingFor,
  parseValueText,
  siblingAttributeName,
  valueToText,
  ValueSyntaxError,
  type PlaceholderHook,
} from './textvalues.js';

export type { PlaceholderHook } from './textvalues.js';

/** Every failure to read XML: what, where (line and column, 1-based) and inside which elements. */
export class XmlCodecError extends Error {
  override readonly name = 'XmlCodecError';
  constructor(
    readonly detail: string,
    readonly line: number,
    readonly column: number,
    /** Element names from the outermost down to the one at fault, e.g. RequestMessage/BatchItem/Operation. */
    readonly path: string = '',
  ) {
    super(`${detail} at line ${line}, column ${column}${path ? ` in ${path}` : ''}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The XML reader

export interface XmlPosition {
  line: number;
  column: number;
}
export interface XmlAttribute extends XmlPosition {
  name: string;
  value: string;
}
export interface XmlElement extends XmlPosition {
  kind: 'element';
  name: string;
  attributes: XmlAttribute[];
  children: XmlContent[];
}
/** Character data that is not only white space (trimmed of the white space around it). */
export interface XmlText extends XmlPosition {
  kind: 'text';
  text: string;
}
export interface XmlComment extends XmlPosition {
  kind: 'comment';
  text: string;
}
export type XmlContent = XmlElement | XmlText | XmlComment;

const NAME = /[\p{L}_:][\p{L}\p{N}_.:\-]*/uy;
const WS = /[ \t\r\n]*/y;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
/** Roots of the OASIS test-case files, which hold a sequence of messages. */
const CONTAINERS = new Set(['KMIP', 'KmipTestCase']);
const MESSAGES = new Set(['RequestMessage', 'ResponseMessage']);

class XmlReader {
  pos = 0;
  private readonly lineStarts: number[] = [0];

  constructor(
    readonly src: string,
    readonly tolerant: boolean,
  ) {
    for (let i = 0; i < src.length; i++) if (src.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }

  at(pos: number): XmlPosition {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: pos - this.lineStarts[lo]! + 1 };
  }

  fail(detail: string, pos = this.pos, path: readonly XmlElement[] = []): never {
    const { line, column } = this.at(pos);
    throw new XmlCodecError(detail, line, column, path.map((e) => e.name).join('/'));
  }

  starts(s: string): boolean {
    return this.src.startsWith(s, this.pos);
  }

  skipWs(): void {
    WS.lastIndex = this.pos;
    WS.exec(this.src);
    this.pos = WS.lastIndex;
  }

  name(what: string, stack: readonly XmlElement[]): string {
    NAME.lastIndex = this.pos;
    const m = NAME.exec(this.src);
    if (!m) this.fail(`expected ${what}`, this.pos, stack);
    this.pos = NAME.lastIndex;
    return m[0];
  }

  /** Skips to just after `end`, failing with `what` if it never comes. Returns the text skipped. */
  until(end: string, what: string, stack: readonly XmlElement[]): string {
    const i = this.src.indexOf(end, this.pos);
    if (i < 0) this.fail(`unterminated ${what}`, this.pos, stack);
    const s = this.src.slice(this.pos, i);
    this.pos = i + end.length;
    return s;
  }

  /** Replaces character and entity references in `raw`, which starts at `base` in the source. */
  decode(raw: string, base: number, stack: readonly XmlElement[]): string {
    if (!raw.includes('&')) return raw;
    let out = '';
    let i = 0;
    while (i < raw.length) {
      const amp = raw.indexOf('&', i);
      if (amp < 0) {
        out += raw.slice(i);
        break;
      }
      out += raw.slice(i, amp);
      const semi = raw.indexOf(';', amp);
      if (semi < 0 || semi - amp > 12) this.fail("'&' that starts no reference (write &amp;)", base + amp, stack);
      const ref = raw.slice(amp + 1, semi);
      let ch: string | undefined;
      if (ref.startsWith('#')) {
        const cp = /^#x[0-9a-fA-F]+$/.test(ref) ? parseInt(ref.slice(2), 16) : /^#[0-9]+$/.test(ref) ? parseInt(ref.slice(1), 10) : NaN;
        if (Number.isInteger(cp) && cp <= 0x10ffff) ch = String.fromCodePoint(cp);
      } else {
        ch = PREDEFINED[ref];
      }
      if (ch === undefined) this.fail(`unknown reference &${ref};`, base + amp, stack);
      out += ch;
      i = semi + 1;
    }
    return out;
  }

  /** Comments, processing instructions and a DOCTYPE, outside the root or inside an element. */
  misc(into: XmlContent[] | undefined, stack: readonly XmlElement[]): boolean {
    if (this.starts('<!--')) {
      const p = this.pos;
      this.pos += 4;
      const text = this.until('-->', 'comment', stack);
      into?.push({ kind: 'comment', text, ...this.at(p) });
      return true;
    }
    if (this.starts('<?')) {
      this.pos += 2;
      this.until('?>', 'processing instruction', stack);
      return true;
    }
    if (this.starts('<!DOCTYPE')) {
      // Skipped, internal subset included; entities it may declare are not supported.
      let depth = 0;
      for (; this.pos < this.src.length; this.pos++) {
        const c = this.src[this.pos];
        if (c === '[') depth++;
        else if (c === ']') depth--;
        else if (c === '>' && depth <= 0) break;
      }
      if (this.pos >= this.src.length) this.fail('unterminated DOCTYPE');
      this.pos++;
      return true;
    }
    return false;
  }

  /**
   * Where a `# …` note that starts at `start` ends: at the end of its line, or before a
   * RequestMessage/ResponseMessage start tag later on the line (`# TIME 0 <RequestMessage>`).
   * A `#` directly before markup (`#<RequestMessage>`, `#  <BatchCount …/>`) comments it out.
   */
  noteEnd(start: number): number {
    let eol = this.src.indexOf('\n', start);
    if (eol < 0) eol = this.src.length;
    const m = /\s<(?:RequestMessage|ResponseMessage)[\s/>]/.exec(this.src.slice(start, eol));
    if (m && !/^#\s*$/.test(this.src.slice(start, start + m.index + 1))) return start + m.index + 1;
    return eol;
  }

  /** A `# …` note outside the root (tolerant mode). */
  hashLine(into: XmlContent[]): boolean {
    if (!this.tolerant || this.src[this.pos] !== '#') return false;
    const p = this.pos;
    this.pos = this.noteEnd(p);
    into.push({ kind: 'text', text: this.src.slice(p, this.pos).trim(), ...this.at(p) });
    return true;
  }

  /**
   * The top level: one root element (strict), or in tolerant mode any sequence of elements,
   * `# …` lines, and duplicated closing tags of the element before.
   */
  read(): XmlContent[] {
    const items: XmlContent[] = [];
    let last: XmlElement | undefined;
    if (this.src.charCodeAt(0) === 0xfeff) this.pos = 1;
    for (;;) {
      this.skipWs();
      if (this.pos >= this.src.length) break;
      if (this.misc(this.tolerant ? items : undefined, []) || this.hashLine(items)) continue;
      if (this.tolerant && last && this.starts(`</${last.name}`)) {
        // A duplicated closing tag, as in some OASIS files.
        this.pos += last.name.length + 2;
        this.skipWs();
        if (this.src[this.pos] !== '>') this.fail(`expected '>' to end </${last.name}`);
        this.pos++;
        continue;
      }
      if (this.src[this.pos] !== '<') this.fail(last ? `text after the root element <${last.name}>` : 'text before the root element');
      if (last && !this.tolerant) this.fail(`content after the end of the root element <${last.name}>`);
      last = this.element();
      items.push(last);
    }
    if (!last) this.fail('no root element');
    return items;
  }

  /**
   * In tolerant mode, the text directly inside a KMIP/KmipTestCase container is read line by
   * line; a `#` starts a note that may hold markup (see noteEnd): some test cases comment out
   * whole messages that way.
   */
  containerText(top: XmlElement): void {
    const src = this.src;
    while (this.pos < src.length && src[this.pos] !== '<') {
      const c = src[this.pos]!;
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
        this.pos++;
        continue;
      }
      const start = this.pos;
      let end: number;
      if (c === '#') end = this.noteEnd(start);
      else {
        end = src.indexOf('\n', start);
        if (end < 0) end = src.length;
        const lt = src.indexOf('<', start);
        if (lt >= 0 && lt < end) end = lt;
      }
      this.pos = end;
      top.children.push({ kind: 'text', text: this.decode(src.slice(start, end), start, [top]).trim(), ...this.at(start) });
    }
  }

  /** Reads one element and everything in it, iteratively (no recursion on the input's depth). */
  element(): XmlElement {
    NAME.lastIndex = this.pos + 1;
    if (this.src[this.pos] !== '<' || !NAME.test(this.src)) this.fail('expected an element');
    const stack: XmlElement[] = [];
    let root: XmlElement | undefined;
    for (;;) {
      const top = stack[stack.length - 1];
      if (top === undefined && root !== undefined) return root;
      if (this.pos >= this.src.length) {
        this.fail(`<${top!.name}> (line ${top!.line}) is never closed`, this.pos, stack);
      }
      if (this.tolerant && stack.length === 1 && CONTAINERS.has(top!.name)) this.containerText(top!);
      if (this.pos >= this.src.length) continue;
      if (this.src[this.pos] !== '<') {
        // Character data up to the next markup.
        const start = this.pos;
        let end = this.src.indexOf('<', start);
        if (end < 0) end = this.src.length;
        this.pos = end;
        const raw = this.src.slice(start, end);
        const lead = raw.search(/[^ \t\r\n]/);
        if (lead >= 0 && top) {
          if (raw.includes(']]>')) this.fail("']]>' in character data", start + raw.indexOf(']]>'), stack);
          const text = this.decode(raw, start, stack).replace(/\r\n?/g, '\n').trim();
          top.children.push({ kind: 'text', text, ...this.at(start + lead) });
        }
        continue;
      }
      if (top && this.misc(top.children, stack)) continue;
      if (this.starts('<![CDATA[')) {
        const p = this.pos;
        this.pos += 9;
        const text = this.until(']]>', 'CDATA section', stack);
        if (top && text.trim() !== '') top.children.push({ kind: 'text', text: text.trim(), ...this.at(p) });
        continue;
      }
      if (this.starts('</')) {
        const p = this.pos;
        this.pos += 2;
        const name = this.name('an element name after </', stack);
        this.skipWs();
        if (this.src[this.pos] !== '>') this.fail(`expected '>' to end </${name}`, this.pos, stack);
        this.pos++;
        if (top === undefined) this.fail(`closing tag </${name}> without an opening tag`, p);
        if (name !== top.name) this.fail(`</${name}> closes <${top.name}> (opened at line ${top.line}, column ${top.column})`, p, stack);
        stack.pop();
        continue;
      }
      if (this.starts('<!')) this.fail("unsupported markup '<!'", this.pos, stack);
      // A start tag.
      const p = this.pos;
      this.pos++;
      const el: XmlElement = { kind: 'element', name: this.name('an element name after <', stack), attributes: [], children: [], ...this.at(p) };
      if (top) top.children.push(el);
      else root = el;
      stack.push(el);
      let selfClosing = false;
      for (;;) {
        const before = this.pos;
        this.skipWs();
        if (this.starts('/>')) {
          this.pos += 2;
          selfClosing = true;
          break;
        }
        if (this.src[this.pos] === '>') {
          this.pos++;
          break;
        }
        if (this.pos >= this.src.length) this.fail(`unterminated start tag <${el.name}`, p, stack);
        if (this.pos === before) this.fail(`expected white space, '>' or '/>' in <${el.name}>`, this.pos, stack);
        const ap = this.pos;
        const aname = this.name('an attribute name', stack);
        this.skipWs();
        if (this.src[this.pos] !== '=') this.fail(`expected '=' after attribute ${aname}`, this.pos, stack);
        this.pos++;
        this.skipWs();
        const q = this.src[this.pos];
        if (q !== '"' && q !== "'") this.fail(`the value of attribute ${aname} must be quoted`, this.pos, stack);
        const vstart = this.pos + 1;
        const vend = this.src.indexOf(q, vstart);
        if (vend < 0) this.fail(`unterminated value of attribute ${aname}`, vstart, stack);
        const raw = this.src.slice(vstart, vend);
        const lt = raw.indexOf('<');
        if (lt >= 0) this.fail(`'<' in the value of attribute ${aname} (write &lt;)`, vstart + lt, stack);
        this.pos = vend + 1;
        if (el.attributes.some((a) => a.name === aname)) this.fail(`attribute ${aname} appears twice`, ap, stack);
        // Attribute-value normalisation: literal line breaks and tabs read as spaces.
        const value = this.decode(raw.replace(/\r\n|[\t\n\r]/g, ' '), vstart, stack);
        el.attributes.push({ name: aname, value, ...this.at(ap) });
      }
      if (selfClosing) stack.pop();
    }
  }
}

/** Reads an XML text with a single element as its root. */
export function readXml(text: string): XmlElement {
  const [root] = new XmlReader(text, false).read();
  return root as XmlElement;
}

// ---------------------------------------------------------------------------------------------
// XML elements -> TTLV

export interface XmlParseOptions {
  /** Binds `$…` placeholders; see PlaceholderHook. */
  placeholder?: PlaceholderHook;
  /** Structures inside structures, the outermost counting 1. Default 64, as the TTLV decoder. */
  maxDepth?: number;
}

const DEFAULT_MAX_DEPTH = 64;
const KNOWN_ATTRIBUTES = new Set(['tag', 'type', 'value']);

function attr(el: XmlElement, name: string): XmlAttribute | undefined {
  return el.attributes.find((a) => a.name === name);
}

function elementFail(detail: string, where: XmlPosition, path: readonly string[]): never {
  throw new XmlCodecError(detail, where.line, where.column, path.join('/'));
}

/** A `tag` attribute's value: `0x` and up to 6 hex digits. */
function hexTag(text: string): number | undefined {
  return /^0[xX][0-9a-fA-F]{1,6}$/.test(text) ? parseInt(text.slice(2), 16) : undefined;
}

/** The tag an element stands for: its `tag` attribute, else its name in the dictionary. */
function elementTag(el: XmlElement, path: readonly string[]): number {
  const t = attr(el, 'tag');
  if (t !== undefined) {
    const tag = hexTag(t.value);
    if (tag === undefined) elementFail(`tag '${t.value}' is not 0x and up to 6 hex digits`, t, path);
    return tag;
  }
  const info = tagByName(el.name);
  if (info === undefined) {
    elementFail(`unknown tag name <${el.name}>; write a tag outside the dictionary as <TTLV tag="0x54XXXX" ...>`, el, path);
  }
  return info.tag;
}

/** The raw Attribute Name text among `siblings`, for naming an Attribute Value's values. */
function siblingAttributeNameText(siblings: readonly XmlElement[]): string | undefined {
  for (const s of siblings) {
    const type = attr(s, 'type')?.value;
    if (type !== 'TextString') continue;
    const t = attr(s, 'tag');
    const tag = t ? hexTag(t.value) : tagByName(s.name)?.tag;
    if (tag === Tag.AttributeName) return attr(s, 'value')?.value;
  }
  return undefined;
}

function convert(
  el: XmlElement,
  attributeName: string | undefined,
  tagPath: number[],
  namePath: string[],
  opts: XmlParseOptions,
): TtlvNode {
  namePath.push(el.name);
  const tag = elementTag(el, namePath);
  tagPath.push(tag);
  for (const a of el.attributes) {
    if (!KNOWN_ATTRIBUTES.has(a.name)) elementFail(`unknown attribute '${a.name}' (expected type, value or tag)`, a, namePath);
  }
  const typeAttr = attr(el, 'type');
  const type = typeAttr?.value ?? 'Structure';
  if (!isItemTypeName(type)) elementFail(`unknown type '${type}'`, typeAttr ?? el, namePath);
  const valueAttr = attr(el, 'value');
  const elements: XmlElement[] = [];
  for (const c of el.children) {
    if (c.kind === 'text') elementFail(`unexpected text '${c.text.slice(0, 30)}' (values go in the value attribute)`, c, namePath);
    if (c.kind === 'element') elements.push(c);
  }
  let node: TtlvNode;
  if (type === 'Structure') {
    if (valueAttr) elementFail('a Structure has no value attribute', valueAttr, namePath);
    if (tagPath.length > (opts.maxDepth ?? DEFAULT_MAX_DEPTH)) {
      elementFail(`structures nest deeper than ${opts.maxDepth ?? DEFAULT_MAX_DEPTH}`, el, namePath);
    }
    const name = siblingAttributeNameText(elements);
    node = makeNode(tag, type, elements.map((c) => convert(c, name, tagPath, namePath, opts)));
  } else {
    if (elements.length > 0) elementFail(`an item of type ${type} holds no elements`, elements[0]!, namePath);
    if (valueAttr === undefined) elementFail(`an item of type ${type} needs a value attribute`, el, namePath);
    try {
      const bound = bindPlaceholder(valueAttr.value, type, tagPath, opts.placeholder);
      const value = bound ?? parseValueText(type, valueAttr.value, namingFor(tag, attributeName));
      node = makeNode(tag, type, value);
    } catch (e) {
      if (e instanceof ValueSyntaxError) elementFail(e.message, valueAttr, namePath);
      throw e;
    }
  }
  tagPath.pop();
  namePath.pop();
  return node;
}

/** Converts one element (and its content) to a TTLV tree. Throws XmlCodecError. */
export function xmlElementToTtlv(el: XmlElement, opts: XmlParseOptions = {}): TtlvNode {
  return convert(el, undefined, [], [], opts);
}

/** Parses an XML text whose root element is one TTLV item. Throws XmlCodecError. */
export function parseXml(text: string, opts: XmlParseOptions = {}): TtlvNode {
  return xmlElementToTtlv(readXml(text), opts);
}

// ---------------------------------------------------------------------------------------------
// OASIS test-case files

export interface XmlMessageSource extends XmlPosition {
  /** The element name: RequestMessage or ResponseMessage (or the root's name when the document is a single item). */
  kind: string;
  /** Position among the document's messages, from 0. */
  index: number;
  /** The text lines (trimmed) between the previous message and this one: `# TIME 0`, `# [Client-A]`, … */
  notes: string[];
  element: XmlElement;
}

export interface XmlDocument {
  /** KMIP or KmipTestCase; undefined when the file is a bare sequence of messages or a single item. */
  root: string | undefined;
  /** The text lines (`# …`) before the container element. */
  preamble: string[];
  messages: XmlMessageSource[];
}

export interface XmlMessage {
  kind: string;
  index: number;
  line: number;
  column: number;
  notes: string[];
  node: TtlvNode;
}


/**
 * Reads an OASIS test-case file (root `<KMIP>` or `<KmipTestCase>`) into its messages, in order,
 * still as XML so that a caller can bind placeholders message by message (`xmlElementToTtlv`).
 * Tolerates `# …` lines before the root and between messages (whole lines: `#<RequestMessage>`
 * comments a message out), files with no container (a bare sequence of messages), comments and
 * a duplicated closing root tag. A document whose only element is anything else is one item.
 */
export function readXmlDocument(text: string): XmlDocument {
  const top = new XmlReader(text, true).read();
  const elements = top.filter((c): c is XmlElement => c.kind === 'element');
  const only = elements.length === 1 ? elements[0]! : undefined;
  let root: string | undefined;
  let preamble: string[] = [];
  let content: XmlContent[] = top;
  if (only && CONTAINERS.has(only.name)) {
    root = only.name;
    preamble = top.slice(0, top.indexOf(only)).flatMap((c) => (c.kind === 'text' ? [c.text] : []));
    content = only.children;
  } else if (only && !MESSAGES.has(only.name)) {
    return { root: undefined, preamble, messages: [{ kind: only.name, index: 0, line: only.line, column: only.column, notes: [], element: only }] };
  }
  const messages: XmlMessageSource[] = [];
  let notes: string[] = [];
  for (const c of content) {
    if (c.kind === 'comment') continue;
    if (c.kind === 'text') {
      notes.push(...c.text.split('\n').map((l) => l.trim()).filter((l) => l !== ''));
      continue;
    }
    if (!MESSAGES.has(c.name)) {
      throw new XmlCodecError(`<${c.name}> where a RequestMessage or ResponseMessage should be`, c.line, c.column, root ?? '');
    }
    messages.push({ kind: c.name, index: messages.length, line: c.line, column: c.column, notes, element: c });
    notes = [];
  }
  return { root, preamble, messages };
}

/** Reads an OASIS test-case file and converts every message (see readXmlDocument). */
export function parseXmlDocument(text: string, opts: XmlParseOptions = {}): XmlMessage[] {
  return readXmlDocument(text).messages.map(({ element, ...m }) => ({ ...m, node: xmlElementToTtlv(element, opts) }));
}

// ---------------------------------------------------------------------------------------------
// TTLV -> XML

export interface XmlWriteOptions {
  /** One level of indentation; default two spaces. */
  indent?: string;
}

const SAFE_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** The element name for a tag, when the dictionary's name reads back to the same tag. */
function xmlNameFor(tag: number): string | undefined {
  const info = tagInfo(tag);
  if (info === undefined || !SAFE_NAME.test(info.name) || info.name === 'TTLV') return undefined;
  return tagByName(info.name)?.tag === tag ? info.name : undefined;
}

/** Escapes an attribute value; characters XML cannot hold literally become character references. */
export function escapeXmlAttribute(s: string): string {
  return s.replace(/[&<>"\u0000-\u001f\u007f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`;
    }
  });
}

function write(node: TtlvNode, attributeName: string | undefined, depth: number, indent: string, out: string[]): void {
  const pad = indent.repeat(depth);
  const name = xmlNameFor(node.tag);
  const open = name ?? `TTLV tag="${formatTag(node.tag)}"`;
  const close = name ?? 'TTLV';
  if (node.type === 'Structure') {
    if (node.value.length === 0) {
      out.push(`${pad}<${open}/>`);
      return;
    }
    out.push(`${pad}<${open}>`);
    const an = siblingAttributeName(node.value);
    for (const c of node.value) write(c, an, depth + 1, indent, out);
    out.push(`${pad}</${close}>`);
    return;
  }
  const text = valueToText(node, namingFor(node.tag, attributeName), ' ');
  out.push(`${pad}<${open} type="${node.type}" value="${escapeXmlAttribute(text)}"/>`);
}

/** Writes a tree as indented XML (no XML declaration, no final newline). */
export function toXml(node: TtlvNode, opts: XmlWriteOptions = {}): string {
  const out: string[] = [];
  write(node, undefined, 0, opts.indent ?? '  ', out);
  return out.join('\n');
}
