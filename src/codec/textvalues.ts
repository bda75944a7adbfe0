/**
 * The value rules shared by the XML and JSON encodings of KMIP Additional Message Encodings
 * v1.0 (and the CLI's tree printer): how each TTLV item type is written as text and read back.
 *
 * - Integer: decimal (also `0x` hex); a mask (Cryptographic Usage Mask, or an Attribute Value
 *   whose Attribute Name is a mask attribute) as its bit names, or a number when some bit has
 *   no name.
 * - Long Integer, Interval: decimal (also `0x` hex).
 * - Enumeration: the value's name in the tag's enumeration, or `0x` and 8 hex digits.
 * - Big Integer: hex of the two's complement bytes as on the wire; Byte String: hex.
 * - Date-Time: ISO 8601 (`2009-11-12T10:47:51Z`; offsets such as `+00:00` are read), or `0x` and 16
 *   hex digits; Date-Time Extended the same with microseconds.
 * - Boolean: `true` / `false`.
 * - A value starting with `$` is a placeholder of the OASIS test cases, bound by a caller's hook.
 *
 * Writers only use a name when reading it back gives the same number, so every tree survives a
 * round trip whatever the dictionary holds.
 */
import {
  enumForTag,
  enumValueByName,
  enumValueName,
  maskForTag,
  maskNames,
  maskValue,
  Tag,
  tagByName,
  type EnumInfo,
} from '../spec/index.js';
import { bigIntegerBytes } from '../ttlv/encode.js';
import type { ItemTypeName, TtlvNode } from '../ttlv/types.js';

/** A value text that does not fit its type. The XML and JSON readers add where it is. */
export class ValueSyntaxError extends Error {
  override readonly name = 'ValueSyntaxError';
}

export type PrimitiveTypeName = Exclude<ItemTypeName, 'Structure'>;
export type PrimitiveValue = Exclude<TtlvNode['value'], TtlvNode[]>;

/**
 * Binds a `$…` placeholder of the OASIS test cases (`$UNIQUE_IDENTIFIER_0`, `$NOW-3600`,
 * `$ENCRYPTED_VALUE_0`, …). `name` is the whole value text, `$` included; `tagPath` runs from the
 * outermost tag to the item's own. Return a value of the item's JS type (number for Integer,
 * Enumeration and Interval; bigint for Long Integer, Big Integer and the dates; boolean; string;
 * Uint8Array), or undefined to leave it unbound: a Text String then keeps the text, any other
 * type is an error.
 */
export type PlaceholderHook = (name: string, type: PrimitiveTypeName, tagPath: readonly number[]) => PrimitiveValue | undefined;

/** The enumeration and mask that name an item's values, when it has them. */
export interface Naming {
  enum?: EnumInfo | undefined;
  mask?: EnumInfo | undefined;
}

const NO_NAMING: Naming = {};

/**
 * Where an item's value names come from: its own tag, except for an Attribute Value, whose
 * enumeration or mask is that of the attribute its sibling Attribute Name names ("State",
 * "Cryptographic Usage Mask", or a 2.x normalised name).
 */
export function namingFor(tag: number, attributeName: string | undefined): Naming {
  if (tag === Tag.AttributeValue) {
    if (attributeName === undefined) return NO_NAMING;
    const info = tagByName(attributeName);
    if (info === undefined) return NO_NAMING;
    return { enum: enumForTag(info.tag), mask: maskForTag(info.tag) };
  }
  const e = enumForTag(tag);
  const m = maskForTag(tag);
  return e === undefined && m === undefined ? NO_NAMING : { enum: e, mask: m };
}


/** The Attribute Name that gives an Attribute Value its naming: the first Text String one among the siblings. */
export function siblingAttributeName(siblings: readonly TtlvNode[]): string | undefined {
  for (const s of siblings) {
    if (s.tag === Tag.AttributeName && s.type === 'TextString') return s.value;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Writing

const HEX_DIGITS = /^[0-9a-fA-F]*$/;

export function hex32(v: number): string {
  return '0x' + (v >>> 0).toString(16).toUpperCase().padStart(8, '0');
}

export function hex64(v: bigint): string {
  return '0x' + BigInt.asUintN(64, v).toString(16).toUpperCase().padStart(16, '0');
}

export function bytesToHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** The Big Integer's wire bytes (two's complement, sign-extended to a multiple of 8) in hex. */
export function bigIntegerToHex(v: bigint): string {
  return bigIntegerBytes(v).toString('hex');
}

/** Mask bit names for `v`, when every set bit has a name and the names read back to `v`. */
export function maskNamesFor(v: number, mask: EnumInfo | undefined): string[] | undefined {
  if (mask === undefined || v === 0) return undefined;
  const names = maskNames(mask.name, v >>> 0);
  if (names === undefined || names.length === 0) return undefined;
  if (names.some((n) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(n))) return undefined;
  const back = maskValue(mask.name, names);
  return back !== undefined && back >>> 0 === v >>> 0 ? names : undefined;
}

/** An Integer as text: mask names joined by `sep`, else decimal. */
export function integerToText(v: number, naming: Naming, sep: string): string {
  const names = maskNamesFor(v, naming.mask);
  return names ? names.join(sep) : String(v);
}

/** The enumeration name of `v` when it reads back to `v`. */
export function enumNameFor(v: number, e: EnumInfo | undefined): string | undefined {
  if (e === undefined) return undefined;
  const name = enumValueName(e.name, v);
  if (name === undefined || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return undefined;
  return enumValueByName(e.name, name) === v ? name : undefined;
}

export function enumerationToText(v: number, naming: Naming): string {
  return enumNameFor(v, naming.enum) ?? hex32(v);
}

// Proleptic Gregorian calendar <-> days since 1970-01-01 (the era-based method of
// H. Hinnant's "chrono-compatible low-level date algorithms").
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d];
}

/** Seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range ISO 8601 writes with 4-digit years. */
const MIN_ISO_SECONDS = BigInt(daysFromCivil(0, 1, 1)) * 86400n;
const MAX_ISO_SECONDS = BigInt(daysFromCivil(9999, 12, 31)) * 86400n + 86399n;

const pad = (n: number, w: number): string => String(n).padStart(w, '0');

function isoSeconds(secs: bigint): string {
  const s = Number(secs);
  const days = Math.floor(s / 86400);
  const rem = s - days * 86400;
  const [y, m, d] = civilFromDays(days);
  const hh = Math.floor(rem / 3600);
  const mm = Math.floor((rem % 3600) / 60);
  const ss = rem % 60;
  return `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}T${pad(hh, 2)}:${pad(mm, 2)}:${pad(ss, 2)}`;
}

/** ISO 8601 in UTC (`2009-11-12T10:47:51Z`); hex for instants outside years 0000-9999. */
export function dateTimeToText(secs: bigint): string {
  if (secs < MIN_ISO_SECONDS || secs > MAX_ISO_SECONDS) return hex64(secs);
  return isoSeconds(secs) + 'Z';
}

/** ISO 8601 with microseconds (`2009-11-12T10:47:51.000123Z`); hex outside years 0000-9999. */
export function dateTimeExtendedToText(micros: bigint): string {
  let secs = micros / 1_000_000n;
  let frac = micros % 1_000_000n;
  if (frac < 0n) {
    frac += 1_000_000n;
    secs -= 1n;
  }
  if (secs < MIN_ISO_SECONDS || secs > MAX_ISO_SECONDS) return hex64(micros);
  return `${isoSeconds(secs)}.${frac.toString().padStart(6, '0')}Z`;
}

/** A primitive value as the text the XML encoding writes (masks separated by `maskSep`). */
export function valueToText(node: Exclude<TtlvNode, { type: 'Structure' }>, naming: Naming, maskSep = ' '): string {
  switch (node.type) {
    case 'Integer':
      return integerToText(node.value, naming, maskSep);
    case 'LongInteger':
      return node.value.toString();
    case 'BigInteger':
      return bigIntegerToHex(node.value);
    case 'Enumeration':
      return enumerationToText(node.value, naming);
    case 'Boolean':
      return node.value ? 'true' : 'false';
    case 'TextString':
      return node.value;
    case 'ByteString':
      return bytesToHex(node.value);
    case 'DateTime':
      return dateTimeToText(node.value);
    case 'Interval':
      return String(node.value);
    case 'DateTimeExtended':
      return dateTimeExtendedToText(node.value);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

const DECIMAL = /^[-+]?[0-9]+$/;
const HEX_NUMBER = /^0[xX]([0-9a-fA-F]+)$/;

function hexNumber(text: string, maxDigits: number, what: string): bigint | undefined {
  const m = HEX_NUMBER.exec(text);
  if (!m) return undefined;
  const digits = m[1]!;
  if (digits.length > maxDigits) throw new ValueSyntaxError(`${what} '${text}' has more than ${maxDigits} hex digits`);
  return BigInt('0x' + digits);
}

function decimalInRange(text: string, min: number, max: number, what: string): number {
  const v = Number(text);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new ValueSyntaxError(`${what} ${text} is out of range (${min} to ${max})`);
  return v;
}

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const UINT32_MAX = 0xffffffff;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

function parseInteger(text: string, naming: Naming): number {
  const t = text.trim();
  if (DECIMAL.test(t)) return decimalInRange(t, INT32_MIN, INT32_MAX, 'Integer');
  const h = hexNumber(t, 8, 'Integer');
  if (h !== undefined) return Number(BigInt.asIntN(32, h));
  const mask = naming.mask;
  const tokens = t.split(/[\s|]+/).filter((s) => s !== '');
  if (tokens.length === 0) throw new ValueSyntaxError('empty Integer value');
  if (mask === undefined) {
    throw new ValueSyntaxError(`Integer '${text}' is not a number, and this item is not a mask whose bits have names`);
  }
  let acc = 0;
  for (const tok of tokens) {
    let bits: number | undefined;
    if (DECIMAL.test(tok)) bits = decimalInRange(tok, INT32_MIN, UINT32_MAX, 'mask part');
    else {
      const hb = hexNumber(tok, 8, 'mask part');
      bits = hb !== undefined ? Number(hb) : maskValue(mask.name, [tok]);
    }
    if (bits === undefined) throw new ValueSyntaxError(`'${tok}' is not a bit of ${mask.specName}`);
    acc = (acc | bits) >>> 0;
  }
  return acc | 0;
}

function parseEnumeration(text: string, naming: Naming): number {
  const t = text.trim();
  const h = hexNumber(t, 8, 'Enumeration');
  if (h !== undefined) return Number(h);
  if (DECIMAL.test(t)) return decimalInRange(t, 0, UINT32_MAX, 'Enumeration');
  const e = naming.enum;
  if (e === undefined) throw new ValueSyntaxError(`no enumeration gives '${text}' a value here; write it in hex (0x0000002A)`);
  const v = enumValueByName(e.name, t);
  if (v === undefined) throw new ValueSyntaxError(`'${text}' is not a value of ${e.specName}`);
  return v;
}

function parseLong(text: string, what: string): bigint {
  const t = text.trim();
  let v: bigint;
  if (DECIMAL.test(t)) v = BigInt(t);
  else {
    const h = hexNumber(t, 16, what);
    if (h === undefined) throw new ValueSyntaxError(`${what} '${text}' is not a number`);
    v = BigInt.asIntN(64, h);
  }
  if (v < INT64_MIN || v > INT64_MAX) throw new ValueSyntaxError(`${what} ${text} is out of the signed 64-bit range`);
  return v;
}

/** Two's complement big-endian hex (an optional `0x`), as Big Integer bytes are written. */
function parseBigInteger(text: string): bigint {
  let t = text.trim();
  if (t.startsWith('0x') || t.startsWith('0X')) t = t.slice(2);
  if (t === '' || !HEX_DIGITS.test(t)) throw new ValueSyntaxError(`Big Integer '${text}' is not hex`);
  if (t.length % 2 !== 0) throw new ValueSyntaxError(`Big Integer '${text}' has an odd number of hex digits`);
  let v = BigInt('0x' + t);
  if (parseInt(t[0]!, 16) >= 8) v -= 1n << BigInt(t.length * 4);
  return v;
}

export function parseHexBytes(text: string): Buffer {
  const t = text.trim();
  if (!HEX_DIGITS.test(t)) throw new ValueSyntaxError(`Byte String '${abbreviate(text)}' is not hex`);
  if (t.length % 2 !== 0) throw new ValueSyntaxError('Byte String has an odd number of hex digits');
  return Buffer.from(t, 'hex');
}

function parseBoolean(text: string): boolean {
  const t = text.trim();
  if (t === 'true' || t === '1') return true;
  if (t === 'false' || t === '0') return false;
  const h = hexNumber(t, 16, 'Boolean');
  if (h === 0n) return false;
  if (h === 1n) return true;
  throw new ValueSyntaxError(`Boolean '${text}' is neither true nor false`);
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;

/** Returns [seconds since the epoch, the fraction digits as written]. */
function parseIso(text: string, what: string): [bigint, string] {
  const m = ISO.exec(text);
  if (!m) throw new ValueSyntaxError(`${what} '${text}' is neither ISO 8601 (2009-11-12T10:47:51Z) nor hex`);
  const [y, mo, d, hh, mi, ss] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  const monthDays = [31, y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  if (mo < 1 || mo > 12 || d < 1 || d > monthDays[mo - 1]! || hh > 23 || mi > 59 || ss > 59) {
    throw new ValueSyntaxError(`${what} '${text}' is not a valid date and time`);
  }
  let offset = 0;
  const z = m[8];
  if (z !== undefined && z !== 'Z') {
    const oh = Number(z.slice(1, 3));
    const om = Number(z.slice(-2));
    if (oh > 23 || om > 59) throw new ValueSyntaxError(`${what} '${text}' has an invalid UTC offset`);
    offset = (z[0] === '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const secs = BigInt(daysFromCivil(y, mo, d)) * 86400n + BigInt(hh * 3600 + mi * 60 + ss - offset);
  return [secs, m[7] ?? ''];
}

function parseDateTime(text: string): bigint {
  const t = text.trim();
  const h = hexNumber(t, 16, 'Date-Time');
  if (h !== undefined) return BigInt.asIntN(64, h);
  const [secs, frac] = parseIso(t, 'Date-Time');
  if (/[1-9]/.test(frac)) throw new ValueSyntaxError(`Date-Time '${text}' has a fraction of a second; Date-Time counts whole seconds`);
  return checkedInt64(secs, 'Date-Time', text);
}

function parseDateTimeExtended(text: string): bigint {
  const t = text.trim();
  const h = hexNumber(t, 16, 'Date-Time Extended');
  if (h !== undefined) return BigInt.asIntN(64, h);
  const [secs, frac] = parseIso(t, 'Date-Time Extended');
  if (/[1-9]/.test(frac.slice(6))) throw new ValueSyntaxError(`Date-Time Extended '${text}' is more precise than a microsecond`);
  const micros = secs * 1_000_000n + BigInt((frac + '000000').slice(0, 6));
  return checkedInt64(micros, 'Date-Time Extended', text);
}

function checkedInt64(v: bigint, what: string, text: string): bigint {
  if (v < INT64_MIN || v > INT64_MAX) throw new ValueSyntaxError(`${what} '${text}' is out of range`);
  return v;
}

function parseInterval(text: string): number {
  const t = text.trim();
  if (DECIMAL.test(t)) return decimalInRange(t, 0, UINT32_MAX, 'Interval');
  const h = hexNumber(t, 8, 'Interval');
  if (h === undefined) throw new ValueSyntaxError(`Interval '${text}' is not a number of seconds`);
  return Number(h);
}

/** Reads a primitive value from its text (the XML `value` attribute, a JSON string). */
export function parseValueText(type: PrimitiveTypeName, text: string, naming: Naming): PrimitiveValue {
  switch (type) {
    case 'Integer':
      return parseInteger(text, naming);
    case 'LongInteger':
      return parseLong(text, 'Long Integer');
    case 'BigInteger':
      return parseBigInteger(text);
    case 'Enumeration':
      return parseEnumeration(text, naming);
    case 'Boolean':
      return parseBoolean(text);
    case 'TextString':
      return text;
    case 'ByteString':
      return parseHexBytes(text);
    case 'DateTime':
      return parseDateTime(text);
    case 'Interval':
      return parseInterval(text);
    case 'DateTimeExtended':
      return parseDateTimeExtended(text);
  }
}

/** Whether `v` is a value of the JS type that items of `type` hold (and in range for fixed-width types). */
export function valueFitsType(type: PrimitiveTypeName, v: unknown): v is PrimitiveValue {
  switch (type) {
    case 'Integer':
      return typeof v === 'number' && Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX;
    case 'Enumeration':
    case 'Interval':
      return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= UINT32_MAX;
    case 'LongInteger':
    case 'DateTime':
    case 'DateTimeExtended':
      return typeof v === 'bigint' && v >= INT64_MIN && v <= INT64_MAX;
    case 'BigInteger':
      return typeof v === 'bigint';
    case 'Boolean':
      return typeof v === 'boolean';
    case 'TextString':
      return typeof v === 'string';
    case 'ByteString':
      return v instanceof Uint8Array;
  }
}

/**
 * The bound value of a `$…` placeholder, or undefined when `text` is no placeholder or is a Text
 * String placeholder left unbound (it then stays literal text).
 */
export function bindPlaceholder(
  text: string,
  type: PrimitiveTypeName,
  tagPath: readonly number[],
  hook: PlaceholderHook | undefined,
): PrimitiveValue | undefined {
  if (!text.startsWith('$')) return undefined;
  const v = hook?.(text, type, tagPath);
  if (v === undefined) {
    if (type === 'TextString') return undefined;
    throw new ValueSyntaxError(`placeholder ${text} has no value bound (type ${type})`);
  }
  if (!valueFitsType(type, v)) throw new ValueSyntaxError(`placeholder ${text} was bound to a value that does not fit type ${type}`);
  return v;
}

/** Builds a node from a tag, a type and a value already checked to fit the type. */
export function makeNode(tag: number, type: ItemTypeName, value: TtlvNode['value']): TtlvNode {
  return { tag, type, value } as TtlvNode;
}

export function abbreviate(s: string, max = 40): string {
  return s.length <= max ? s : s.slice(0, max) + '…';
}
