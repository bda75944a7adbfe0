/**
 * The KMIP dictionary: tags, enumerations and bit masks of KMIP 1.0-2.1 with the versions each
 * is defined in, and both the specification name ("Cryptographic Usage Mask") and the normalised
 * name the OASIS XML/JSON encodings use ("CryptographicUsageMask").
 *
 * The data lives in src/spec/data/*.json; src/spec/generated.ts is generated from it
 * (`npm run gen:spec`). This module adds the lookups, built once at load time.
 */
import type { ItemTypeName } from '../ttlv/types.js';
import { ENUM_INFO, KMIP_VERSIONS, MASK_INFO, TAG_INFO, type KmipVersion } from './generated.js';

export { Tag, Enums, Masks, KMIP_VERSIONS, type KmipVersion, type TagName } from './generated.js';
export type { EnumName, MaskName, EnumValueName, MaskBitName } from './generated.js';
export { TAG_INFO, ENUM_INFO, MASK_INFO } from './generated.js';

export interface TagInfo {
  tag: number;
  /** Normalised name, as used for XML element names and JSON "tag" strings. */
  name: string;
  /** The name as printed in the specification's tag table. */
  specName: string;
  /** Item type(s) the tag is encoded with; several when it depends on the version or context. */
  type?: ItemTypeName | readonly ItemTypeName[];
  since: KmipVersion;
  /** Last version the tag exists in; absent when it is still defined in 2.1. */
  until?: KmipVersion;
  /** Version whose table first marks the tag "deprecated". */
  deprecated?: KmipVersion;
  /** Normalised name of the enumeration, when the type includes Enumeration. */
  enum?: string;
  /** Normalised name of the bit mask, when the Integer is a mask. */
  mask?: string;
  ref?: string;
  note?: string;
}

export interface EnumValueInfo {
  name: string;
  specName: string;
  value: number;
  since: KmipVersion;
  until?: KmipVersion;
  deprecated?: KmipVersion;
  /** Other normalised names accepted on input (another version's spelling, or the rule-derived form where the OASIS corpus differs). */
  aliases?: readonly string[];
  /** The value's name as printed in other versions' tables. */
  specAliases?: readonly string[];
  note?: string;
}

export interface EnumInfo {
  name: string;
  specName: string;
  since: KmipVersion;
  until?: KmipVersion;
  ref?: string;
  note?: string;
  values: readonly EnumValueInfo[];
}

/** Vendor extension tags (KMIP: "Extensions 540000 - 54FFFF"). */
export const EXTENSION_TAG_MIN = 0x540000;
export const EXTENSION_TAG_MAX = 0x54ffff;

export function isExtensionTag(tag: number): boolean {
  return tag >= EXTENSION_TAG_MIN && tag <= EXTENSION_TAG_MAX;
}

/** Vendor extension enumeration values ("8XXXXXXX"). */
export function isExtensionEnumValue(value: number): boolean {
  return (value >>> 0) >= 0x80000000;
}

// ---------------------------------------------------------------------------------------------
// Indexes, built once.

const versionIndex = new Map<string, number>(KMIP_VERSIONS.map((v, i) => [v, i]));

const tagsByNumber = new Map<number, TagInfo>();
const tagsByName = new Map<string, TagInfo>();
for (const t of TAG_INFO) {
  tagsByNumber.set(t.tag, t);
  tagsByName.set(t.name, t);
  if (!tagsByName.has(t.specName)) tagsByName.set(t.specName, t);
}

interface ValueIndex {
  info: EnumInfo;
  byValue: Map<number, EnumValueInfo>;
  byName: Map<string, EnumValueInfo>;
  /** Mask bits in ascending order (masks only). */
  bits: EnumValueInfo[];
}

function indexOf(list: readonly EnumInfo[]): Map<string, ValueIndex> {
  const out = new Map<string, ValueIndex>();
  for (const info of list) {
    const byValue = new Map<number, EnumValueInfo>();
    const byName = new Map<string, EnumValueInfo>();
    for (const v of info.values) {
      const prev = byValue.get(v.value);
      // A number reused across versions: prefer the entry that lasts longest.
      if (!prev || rank(v.until) > rank(prev.until)) byValue.set(v.value, v);
      for (const n of [v.name, v.specName, ...(v.aliases ?? []), ...(v.specAliases ?? [])]) {
        if (!byName.has(n)) byName.set(n, v);
      }
    }
    const bits = [...byValue.values()].sort((a, b) => (a.value >>> 0) - (b.value >>> 0));
    const idx: ValueIndex = { info, byValue, byName, bits };
    out.set(info.name, idx);
    if (!out.has(info.specName)) out.set(info.specName, idx);
  }
  return out;
}

function rank(until: KmipVersion | undefined): number {
  return until === undefined ? KMIP_VERSIONS.length : (versionIndex.get(until) ?? -1);
}

const enumIndex = indexOf(ENUM_INFO);
const maskIndex = indexOf(MASK_INFO);

// ---------------------------------------------------------------------------------------------
// Tags

export function tagInfo(tag: number): TagInfo | undefined {
  return tagsByNumber.get(tag);
}

/** By normalised ("CryptographicUsageMask") or specification ("Cryptographic Usage Mask") name. */
export function tagByName(name: string): TagInfo | undefined {
  return tagsByName.get(name);
}

/** The normalised name, or the tag in hex ("0x540001") when it is not in the dictionary. */
export function tagName(tag: number): string {
  return tagsByNumber.get(tag)?.name ?? hexTag(tag);
}

export function hexTag(tag: number): string {
  return '0x' + tag.toString(16).toUpperCase().padStart(6, '0');
}

// ---------------------------------------------------------------------------------------------
// Enumerations

/** By normalised or specification name of the enumeration. */
export function enumInfo(name: string): EnumInfo | undefined {
  return enumIndex.get(name)?.info;
}

export function enumForTag(tag: number): EnumInfo | undefined {
  const e = tagsByNumber.get(tag)?.enum;
  return e === undefined ? undefined : enumIndex.get(e)?.info;
}

/** Normalised name of a value, or undefined when the enumeration or the value is unknown. */
export function enumValueName(enumName: string, value: number): string | undefined {
  return enumIndex.get(enumName)?.byValue.get(value >>> 0)?.name;
}

export function enumValueInfo(enumName: string, value: number): EnumValueInfo | undefined {
  return enumIndex.get(enumName)?.byValue.get(value >>> 0);
}

/** Accepts the normalised name, the specification name, or a recorded alias of either. */
export function enumValueByName(enumName: string, valueName: string): number | undefined {
  return enumIndex.get(enumName)?.byName.get(valueName)?.value;
}

// ---------------------------------------------------------------------------------------------
// Bit masks

export function maskInfo(name: string): EnumInfo | undefined {
  return maskIndex.get(name)?.info;
}

export function maskForTag(tag: number): EnumInfo | undefined {
  const m = tagsByNumber.get(tag)?.mask;
  return m === undefined ? undefined : maskIndex.get(m)?.info;
}

/**
 * The names of the bits set in value, lowest bit first; [] for 0. Undefined when the mask is
 * unknown or bits remain that have no name (reserved or vendor bits): the caller then keeps the
 * number, as the XML/JSON encodings allow.
 */
export function maskNames(maskName: string, value: number): string[] | undefined {
  const idx = maskIndex.get(maskName);
  if (!idx) return undefined;
  let rest = value >>> 0;
  const names: string[] = [];
  for (const bit of idx.bits) {
    const b = bit.value >>> 0;
    if ((rest & b) >>> 0 === b) {
      names.push(bit.name);
      rest = (rest & ~b) >>> 0;
    }
  }
  return rest === 0 ? names : undefined;
}

/** OR of the named bits; undefined when the mask or any name is unknown. */
export function maskValue(maskName: string, names: readonly string[]): number | undefined {
  const idx = maskIndex.get(maskName);
  if (!idx) return undefined;
  let v = 0;
  for (const n of names) {
    const bit = idx.byName.get(n);
    if (!bit) return undefined;
    v = (v | bit.value) >>> 0;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Versions

export function compareVersions(a: KmipVersion, b: KmipVersion): number {
  return (versionIndex.get(a) ?? -1) - (versionIndex.get(b) ?? -1);
}

/** The KmipVersion for a Protocol Version major/minor pair this dictionary covers. */
export function parseVersion(major: number, minor: number): KmipVersion | undefined {
  const v = `${major}.${minor}`;
  return versionIndex.has(v) ? (v as KmipVersion) : undefined;
}

function inRange(x: { since: KmipVersion; until?: KmipVersion }, v: KmipVersion): boolean {
  return compareVersions(x.since, v) <= 0 && (x.until === undefined || compareVersions(v, x.until) <= 0);
}

/** True when the tag is defined in version v; vendor extension tags are valid in every version. */
export function tagInVersion(tag: number, v: KmipVersion): boolean {
  if (isExtensionTag(tag)) return true;
  const t = tagsByNumber.get(tag);
  return t !== undefined && inRange(t, v);
}

/** True when the value is defined in version v (the enumeration too); extension values are valid in every version the enumeration exists in. */
export function enumValueInVersion(enumName: string, value: number, v: KmipVersion): boolean {
  const idx = enumIndex.get(enumName);
  if (!idx || !inRange(idx.info, v)) return false;
  if (isExtensionEnumValue(value)) return true;
  return idx.info.values.some((x) => x.value === value >>> 0 && inRange(x, v));
}
