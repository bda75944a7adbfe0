/**
 * The JSON encoding of KMIP Additional Message Encodings v1.0 (§5), both ways, to and from the
 * generic TTLV tree. Each item is an object:
 *
 *     {"tag": "RequestMessage", "value": [
 *       {"tag": "ProtocolVersionMajor", "type": "Integer", "value": 1},
 *       {"tag": "CryptographicUsageMask", "type": "Integer", "value": "Encrypt|Decrypt"},
 *       {"tag": "0x540001", "type": "TextString", "value": "na"}, ...]}
 *
 * `tag` is the normalised name or `0x` and 6 hex digits; `type` defaults to Structure, whose value
 * is an array of items. Numbers are JSON numbers (a Long Integer beyond 2^53 is written as hex);
 * every other value is a string with the same rules as the XML encoding (textvalues.ts), masks
 * joined by `|`. An optional `name` member is accepted and ignored.
 *
 * The reader is our own small JSON parser: it keeps numbers exact (Long and Big Integers) and
 * says where an error is, as a JSON path and a line and column.
 */
import { Tag, tagByName, tagInfo, tagName } from '../spec/index.js';
import { formatTag } from '../ttlv/errors.js';
import { isItemTypeName, type TtlvNode } from '../ttlv/types.js';
import {
  bigIntegerToHex,
  bindPlaceholder,
  bytesToHex,
  dateTimeExtendedToText,
  dateTimeToText,
  enumerationToText,
  hex64,
  integerToText,
  makeNode,
  namingFor,
  parseValueText,
  siblingAttributeName,
  valueFitsType,
  ValueSyntaxError,
  type Naming,
  type PlaceholderHook,
  type PrimitiveTypeName,
  type PrimitiveValue,
} from './textvalues.js';

/** Every failure to read JSON: what, where (JSON path, line and column) and inside which tags. */
export class JsonCodecError extends Error {
  override readonly name = 'JsonCodecError';
  constructor(
    readonly detail: string,
    /** `$` for the top, then `.value[2].value` and so on. */
    readonly jsonPath: string,
    readonly line: number,
    readonly column: number,
    /** Tag names from the outermost item down to the one at fault. */
    readonly tagPath: string = '',
  ) {
    super(`${detail} at ${jsonPath} (line ${line}, column ${column})${tagPath ? ` in ${tagPath}` : ''}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The JSON reader

interface Pos {
  line: number;
  column: number;
}
type JsonValue =
  | (Pos & { kind: 'object'; members: Map<string, JsonValue> })
  | (Pos & { kind: 'array'; items: JsonValue[] })
  | (Pos & { kind: 'string'; value: string })
  | (Pos & { kind: 'number'; raw: string })
  | (Pos & { kind: 'boolean'; value: boolean })
  | (Pos & { kind: 'null' });

/** Nesting cap of the reader. Stops: stack exhaustion on hostile input. */
const MAX_JSON_DEPTH = 512;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

class JsonReader {
  pos = 0;
  line = 1;
  lineStart = 0;

  constructor(readonly src: string) {}

  here(): Pos {
    return { line: this.line, column: this.pos - this.lineStart + 1 };
  }

  fail(detail: string, path: string): never {
    const { line, column } = this.here();
    throw new JsonCodecError(detail, path, line, column);
  }

  ws(): void {
    for (;;) {
      const c = this.src[this.pos];
      if (c === '\n') {
        this.pos++;
        this.line++;
        this.lineStart = this.pos;
      } else if (c === ' ' || c === '\t' || c === '\r') this.pos++;
      else return;
    }
  }

  document(): JsonValue {
    if (this.src.charCodeAt(0) === 0xfeff) this.pos = 1;
    const v = this.value('$', 0);
    this.ws();
    if (this.pos < this.src.length) this.fail('unexpected text after the JSON value', '$');
    return v;
  }

  value(path: string, depth: number): JsonValue {
    if (depth > MAX_JSON_DEPTH) this.fail(`JSON nests deeper than ${MAX_JSON_DEPTH}`, path);
    this.ws();
    const at = this.here();
    const c = this.src[this.pos];
    if (c === '{') {
      this.pos++;
      const members = new Map<string, JsonValue>();
      this.ws();
      if (this.src[this.pos] === '}') {
        this.pos++;
        return { kind: 'object', members, ...at };
      }
      for (;;) {
        this.ws();
        if (this.src[this.pos] !== '"') this.fail('expected a member name in double quotes', path);
        const key = this.string(path);
        if (members.has(key)) this.fail(`member "${key}" appears twice`, path);
        this.ws();
        if (this.src[this.pos] !== ':') this.fail(`expected ':' after "${key}"`, path);
        this.pos++;
        members.set(key, this.value(`${path}.${key}`, depth + 1));
        this.ws();
        const d = this.src[this.pos];
        this.pos++;
        if (d === '}') return { kind: 'object', members, ...at };
        if (d !== ',') {
          this.pos--;
          this.fail("expected ',' or '}'", path);
        }
      }
    }
    if (c === '[') {
      this.pos++;
      const items: JsonValue[] = [];
      this.ws();
      if (this.src[this.pos] === ']') {
        this.pos++;
        return { kind: 'array', items, ...at };
      }
      for (;;) {
        items.push(this.value(`${path}[${items.length}]`, depth + 1));
        this.ws();
        const d = this.src[this.pos];
        this.pos++;
        if (d === ']') return { kind: 'array', items, ...at };
        if (d !== ',') {
          this.pos--;
          this.fail("expected ',' or ']'", path);
        }
      }
    }
    if (c === '"') return { kind: 'string', value: this.string(path), ...at };
    for (const [word, v] of [
      ['true', true],
      ['false', false],
    ] as const) {
      if (this.src.startsWith(word, this.pos)) {
        this.pos += word.length;
        return { kind: 'boolean', value: v, ...at };
      }
    }
    if (this.src.startsWith('null', this.pos)) {
      this.pos += 4;
      return { kind: 'null', ...at };
    }
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.src);
    if (m) {
      this.pos = NUMBER.lastIndex;
      return { kind: 'number', raw: m[0], ...at };
    }
    this.fail(this.pos >= this.src.length ? 'unexpected end of the JSON text' : `unexpected character '${c}'`, path);
  }

  string(path: string): string {
    this.pos++; // the opening quote
    let out = '';
    let start = this.pos;
    for (;;) {
      if (this.pos >= this.src.length) this.fail('unterminated string', path);
      const ch = this.src.charCodeAt(this.pos);
      if (ch === 0x22) {
        out += this.src.slice(start, this.pos);
        this.pos++;
        return out;
      }
      if (ch < 0x20) this.fail('control character in a string (escape it)', path);
      if (ch === 0x5c) {
        out += this.src.slice(start, this.pos);
        const e = this.src[this.pos + 1];
        if (e === 'u') {
          const h = this.src.slice(this.pos + 2, this.pos + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail('bad \\u escape', path);
          out += String.fromCharCode(parseInt(h, 16));
          this.pos += 6;
        } else {
          const r = e === undefined ? undefined : ESCAPES[e];
          if (r === undefined) this.fail(`bad escape '\\${e ?? ''}'`, path);
          out += r;
          this.pos += 2;
        }
        start = this.pos;
        continue;
      }
      this.pos++;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// JSON -> TTLV

export interface JsonParseOptions {
  /** Binds `$…` placeholders in string values, as for XML. */
  placeholder?: PlaceholderHook;
  /** Structures inside structures, the outermost counting 1. Default 64, as the TTLV decoder. */
  maxDepth?: number;
}

const DEFAULT_MAX_DEPTH = 64;
const MEMBERS = new Set(['tag', 'type', 'value', 'name']);

class Converter {
  readonly tagNames: string[] = [];
  readonly tags: number[] = [];
  constructor(readonly opts: JsonParseOptions) {}

  fail(detail: string, at: Pos, path: string): never {
    throw new JsonCodecError(detail, path, at.line, at.column, this.tagNames.join('/'));
  }

  node(j: JsonValue, path: string, attributeName: string | undefined): TtlvNode {
    if (j.kind !== 'object') this.fail(`an item must be an object with tag, type and value, not ${describe(j)}`, j, path);
    for (const k of j.members.keys()) {
      if (!MEMBERS.has(k)) this.fail(`unknown member "${k}" (expected tag, type, value, name)`, j, path);
    }
    const tagJ = j.members.get('tag');
    if (tagJ === undefined) this.fail('item without "tag"', j, path);
    if (tagJ.kind !== 'string') this.fail('"tag" must be a string', tagJ, `${path}.tag`);
    const tag = tagNumber(tagJ.value);
    if (tag === undefined) this.fail(`unknown tag name "${tagJ.value}"; write a tag outside the dictionary as "0x54XXXX"`, tagJ, `${path}.tag`);
    this.tagNames.push(tagName(tag));
    this.tags.push(tag);
    const typeJ = j.members.get('type');
    let type = 'Structure';
    if (typeJ !== undefined) {
      if (typeJ.kind !== 'string' || !isItemTypeName(typeJ.value)) this.fail(`unknown type ${describe(typeJ)}`, typeJ, `${path}.type`);
      type = typeJ.value;
    }
    const valueJ = j.members.get('value');
    const vpath = `${path}.value`;
    if (valueJ === undefined) this.fail('item without "value"', j, path);
    let node: TtlvNode;
    if (type === 'Structure') {
      if (valueJ.kind !== 'array') this.fail(`a Structure's value must be an array, not ${describe(valueJ)}`, valueJ, vpath);
      const max = this.opts.maxDepth ?? DEFAULT_MAX_DEPTH;
      if (this.tags.length > max) this.fail(`structures nest deeper than ${max}`, valueJ, vpath);
      const an = attributeNameOf(valueJ.items);
      node = makeNode(tag, 'Structure', valueJ.items.map((c, i) => this.node(c, `${vpath}[${i}]`, an)));
    } else {
      try {
        node = makeNode(tag, type as PrimitiveTypeName, this.primitive(type as PrimitiveTypeName, valueJ, namingFor(tag, attributeName)));
      } catch (e) {
        if (e instanceof ValueSyntaxError) this.fail(e.message, valueJ, vpath);
        throw e;
      }
    }
    this.tagNames.pop();
    this.tags.pop();
    return node;
  }

  primitive(type: PrimitiveTypeName, v: JsonValue, naming: Naming): PrimitiveValue {
    switch (v.kind) {
      case 'string':
        return bindPlaceholder(v.value, type, this.tags, this.opts.placeholder) ?? parseValueText(type, v.value, naming);
      case 'number': {
        if (!/^-?[0-9]+$/.test(v.raw)) throw new ValueSyntaxError(`${type} ${v.raw} is not a whole number`);
        let value: PrimitiveValue;
        switch (type) {
          case 'Integer':
          case 'Enumeration':
          case 'Interval':
            value = Number(v.raw);
            break;
          case 'LongInteger':
          case 'BigInteger':
            value = BigInt(v.raw);
            break;
          default:
            throw new ValueSyntaxError(`${type} is not written as a JSON number`);
        }
        if (!valueFitsType(type, value)) throw new ValueSyntaxError(`${type} ${v.raw} is out of range`);
        return value;
      }
      case 'boolean':
        if (type !== 'Boolean') throw new ValueSyntaxError(`${type} is not written as true or false`);
        return v.value;
      default:
        throw new ValueSyntaxError(`${type} value cannot be ${describe(v)}`);
    }
  }
}

function describe(j: JsonValue): string {
  switch (j.kind) {
    case 'string':
      return `"${j.value.length > 30 ? j.value.slice(0, 30) + '…' : j.value}"`;
    case 'number':
      return j.raw;
    case 'boolean':
      return String(j.value);
    case 'null':
      return 'null';
    default:
      return `an ${j.kind}`;
  }
}

/** A "tag" string: `0x` and up to 6 hex digits, or a normalised or specification name. */
function tagNumber(s: string): number | undefined {
  return /^0[xX][0-9a-fA-F]{1,6}$/.test(s) ? parseInt(s.slice(2), 16) : tagByName(s)?.tag;
}

/** The Attribute Name text among JSON siblings (the first Text String one). */
function attributeNameOf(items: readonly JsonValue[]): string | undefined {
  for (const it of items) {
    if (it.kind !== 'object') continue;
    const tag = it.members.get('tag');
    const type = it.members.get('type');
    const value = it.members.get('value');
    if (tag?.kind !== 'string' || type?.kind !== 'string' || type.value !== 'TextString' || value?.kind !== 'string') continue;
    if (tagNumber(tag.value) === Tag.AttributeName) return value.value;
  }
  return undefined;
}

function readJson(text: string): JsonValue {
  return new JsonReader(text).document();
}

/** Parses one item in the JSON encoding. Throws JsonCodecError. */
export function parseJson(text: string, opts: JsonParseOptions = {}): TtlvNode {
  return new Converter(opts).node(readJson(text), '$', undefined);
}

/** Parses one item, or an array of items (several messages), in the JSON encoding. */
export function parseJsonMessages(text: string, opts: JsonParseOptions = {}): TtlvNode[] {
  const j = readJson(text);
  if (j.kind === 'array') return j.items.map((it, i) => new Converter(opts).node(it, `$[${i}]`, undefined));
  return [new Converter(opts).node(j, '$', undefined)];
}

// ---------------------------------------------------------------------------------------------
// TTLV -> JSON

type JsonOut = { tag: string; type?: string; value: JsonOut[] | string | number | boolean };

function jsonTag(tag: number): string {
  const info = tagInfo(tag);
  return info !== undefined && tagByName(info.name)?.tag === tag && !/^0[xX]/.test(info.name) ? info.name : formatTag(tag);
}

function toJsonValue(node: TtlvNode, attributeName: string | undefined): JsonOut {
  const tag = jsonTag(node.tag);
  if (node.type === 'Structure') {
    const an = siblingAttributeName(node.value);
    return { tag, value: node.value.map((c) => toJsonValue(c, an)) };
  }
  const naming = namingFor(node.tag, attributeName);
  let value: string | number | boolean;
  switch (node.type) {
    case 'Integer': {
      const t = integerToText(node.value, naming, '|');
      value = /^-?[0-9]+$/.test(t) ? node.value : t;
      break;
    }
    case 'LongInteger':
      value = node.value >= BigInt(Number.MIN_SAFE_INTEGER) && node.value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(node.value) : hex64(node.value);
      break;
    case 'BigInteger':
      value = '0x' + bigIntegerToHex(node.value).toUpperCase();
      break;
    case 'Enumeration':
      value = enumerationToText(node.value, naming);
      break;
    case 'Boolean':
      value = node.value;
      break;
    case 'TextString':
      value = node.value;
      break;
    case 'ByteString':
      value = bytesToHex(node.value);
      break;
    case 'DateTime':
      value = dateTimeToText(node.value);
      break;
    case 'Interval':
      value = node.value;
      break;
    case 'DateTimeExtended':
      value = dateTimeExtendedToText(node.value);
      break;
  }
  return { tag, type: node.type, value };
}

export interface JsonWriteOptions {
  /** Spaces per level, as JSON.stringify; default 2. 0 writes one line. */
  indent?: number;
}

/** Writes a tree in the JSON encoding. */
export function toJson(node: TtlvNode, opts: JsonWriteOptions = {}): string {
  return JSON.stringify(toJsonValue(node, undefined), null, opts.indent ?? 2);
}
