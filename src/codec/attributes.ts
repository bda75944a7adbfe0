import { Tag, tagByName, tagInfo, tagInVersion, type KmipVersion } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { KmipError } from './errors.js';
import { all, optValue, reqValue } from './node.js';

/**
 * The server's one, version-independent model of an attribute instance, and its 1.x and 2.x
 * wire shapes.
 *
 * - Standard attributes: `name` is the spec name ("Cryptographic Algorithm"), `value` is tagged
 *   with the attribute's own tag (the 2.x shape); in 1.x the same value travels as an Attribute
 *   Value inside an Attribute structure named by that spec name.
 * - Custom attributes: 1.x "x-Name"/"y-Name" and 2.x Vendor Attribute (Vendor Identification
 *   "x"/"y", Attribute Name "Name") are the same attribute, named "x-Name" here, with the value
 *   tagged Attribute Value (in 2.x a vendor attribute is an Attribute structure holding Vendor
 *   Identification, Attribute Name and Attribute Value). Other vendors' attributes are named "<Vendor>-<Name>".
 */
export interface KmipAttribute {
  name: string;
  index: number;
  value: TtlvNode;
}

export function isCustomName(name: string): boolean {
  return /^[xy]-/.test(name) || (name.includes('-') && tagByName(name) === undefined);
}

/** The attribute tag for a standard spec name, or undefined for custom names and unknown ones. */
export function attributeTag(name: string): number | undefined {
  if (isCustomName(name)) return undefined;
  return tagByName(name)?.tag;
}

function withTag(n: TtlvNode, tag: number): TtlvNode {
  return { ...n, tag } as TtlvNode;
}

function standardName(name: string): string {
  const info = tagByName(name);
  if (!info) throw new KmipError('InvalidField', `unknown attribute name '${name}'`);
  return info.specName;
}

/** Reads a 1.x Attribute structure. `needValue` false for requests that name attributes only. */
export function attributeFrom1x(s: StructureNode, needValue = true): KmipAttribute {
  const rawName = reqValue(s, Tag.AttributeName, 'TextString');
  const index = optValue(s, Tag.AttributeIndex, 'Integer') ?? 0;
  if (index < 0) throw new KmipError('InvalidField', 'Attribute Index must not be negative');
  const v = s.value.find((c) => c.tag === Tag.AttributeValue);
  if (!v && needValue) throw new KmipError('MissingData', `attribute '${rawName}' has no Attribute Value`);
  const value = v ?? T.struct(Tag.AttributeValue, []);
  if (isCustomName(rawName)) return { name: rawName, index, value: withTag(value, Tag.AttributeValue) };
  const name = standardName(rawName);
  return { name, index, value: withTag(value, tagByName(name)!.tag) };
}

export function attributeTo1x(a: KmipAttribute, withIndex: boolean): StructureNode {
  const c: TtlvNode[] = [T.text(Tag.AttributeName, a.name)];
  if (withIndex) c.push(T.int(Tag.AttributeIndex, a.index));
  c.push(withTag(a.value, Tag.AttributeValue));
  return T.struct(Tag.Attribute, c);
}

/** Reads one 2.x attribute node (a child of Attributes, New Attribute, Current Attribute). */
export function attributeFrom2x(n: TtlvNode, index = 0): KmipAttribute {
  if (n.tag === Tag.Attribute) {
    if (n.type !== 'Structure') throw new KmipError('InvalidField', 'a vendor Attribute must be a Structure');
    const vendor = reqValue(n, Tag.VendorIdentification, 'TextString');
    const name = reqValue(n, Tag.AttributeName, 'TextString');
    const v = n.value.find((c) => c.tag === Tag.AttributeValue);
    if (!v) throw new KmipError('MissingData', `vendor attribute '${name}' has no Attribute Value`);
    return { name: `${vendor}-${name}`, index, value: v };
  }
  const info = tagInfo(n.tag);
  if (!info) throw new KmipError('InvalidField', `unknown attribute tag 0x${n.tag.toString(16)}`);
  return { name: info.specName, index, value: n };
}

export function attributeTo2x(a: KmipAttribute): TtlvNode {
  if (a.value.tag !== Tag.AttributeValue) return a.value;
  const dash = a.name.indexOf('-');
  return T.struct(Tag.Attribute, [
    T.text(Tag.VendorIdentification, a.name.slice(0, dash)),
    T.text(Tag.AttributeName, a.name.slice(dash + 1)),
    a.value,
  ]);
}

/** Reads a 2.x Attributes structure; instances of the same name are numbered in order. */
export function attributesFrom2x(s: StructureNode): KmipAttribute[] {
  const seen = new Map<string, number>();
  return s.value.map((n) => {
    const a = attributeFrom2x(n);
    const i = seen.get(a.name) ?? 0;
    seen.set(a.name, i + 1);
    a.index = i;
    return a;
  });
}

/** Reads the attributes of a 1.x Template-Attribute (or Common/Private/Public Template-Attribute). */
export function templateAttributeFrom1x(s: StructureNode): KmipAttribute[] {
  if (all(s, Tag.Name, 'Structure').length > 0) {
    // Templates were deprecated in 1.3 and removed in 2.0; kmipd keeps no Template objects.
    throw new KmipError('ItemNotFound', 'templates are not supported: no Template object can be named');
  }
  return all(s, Tag.Attribute, 'Structure').map((a) => attributeFrom1x(a));
}

/** Whether an attribute may be shown to a client speaking `version`. */
export function attributeInVersion(a: KmipAttribute, version: KmipVersion): boolean {
  if (a.value.tag === Tag.AttributeValue) return true;
  return tagInVersion(a.value.tag, version);
}

export function isV2(version: KmipVersion): boolean {
  return version.startsWith('2.');
}

/** Attributes in the client's version's shape: a list of 1.x Attribute structures, or one 2.x Attributes structure. */
export function attributesForVersion(attrs: KmipAttribute[], version: KmipVersion, tag: number = Tag.Attributes): TtlvNode[] {
  const visible = attrs.filter((a) => attributeInVersion(a, version));
  if (isV2(version)) return [T.struct(tag, visible.map(attributeTo2x))];
  return visible.map((a) => attributeTo1x(a, a.index > 0));
}
