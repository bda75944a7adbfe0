/**
 * What the attribute operations (Get Attributes, Get Attribute List, Add / Modify / Delete / Set
 * Attribute) and Locate share: reading attribute names and references in both protocol
 * generations, comparing values, instance numbering, the truthful attribute view of an object,
 * and writing attribute changes. (The 1.x / 2.x wire shapes themselves are in codec/attributes.)
 *
 * 1.x names attributes by text (KMIP 1.4 §2.1.1 Attribute: Attribute Name, Attribute Index,
 * Attribute Value); 2.x by Attribute Reference, an Enumeration holding the attribute's tag or a
 * structure of Vendor Identification and Attribute Name (KMIP 2.1 §7.3), and carries values
 * tagged with the attribute's own tag or, for vendor attributes, an Attribute structure of
 * Vendor Identification, Attribute Name and Attribute Value (KMIP 2.1 §4.60 Table 150).
 */
import { KmipError } from '../codec/errors.js';
import { attributeFrom2x, isCustomName, isV2, type KmipAttribute } from '../codec/attributes.js';
import { reqValue } from '../codec/node.js';
import type { StoredObject } from '../keystore/types.js';
import { Tag, tagByName, tagInfo } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { attributeRule } from './attribute-rules.js';
import type { OperationContext } from './context.js';
import { applyTimeTransitions, loadObject, touched } from './lifecycle.js';
import type { Access } from './objects.js';
import { DEFAULT_LEASE_TIME_SECONDS, derivedAttributes, digestForVersion, withAttributeHistory, withUsageLimitsCount } from './server-attributes.js';

// ---------------------------------------------------------------------------------------------
// Names

/**
 * The internal name for a 1.x Attribute Name: the spec name of a standard attribute, the name
 * itself for a custom one ("x-Name", "y-Name", "<vendor>-Name"); undefined for a name that is
 * neither.
 */
export function internalName(raw: string): string | undefined {
  if (isCustomName(raw)) return raw;
  return tagByName(raw)?.specName;
}

/** Whether `name` (internal) is a custom / vendor attribute. */
export function isCustom(name: string): boolean {
  return isCustomName(name);
}

function splitCustom(name: string): { vendor: string; name: string } {
  const dash = name.indexOf('-');
  return { vendor: name.slice(0, dash), name: name.slice(dash + 1) };
}

/** Whether an attribute may have several instances: the attribute rules, custom ones always (1.4 §3.39, 2.1 §4.60). */
export function isMultiInstance(name: string): boolean {
  const rule = attributeRule(name);
  if (rule) return rule.multi;
  return isCustom(name);
}

/** Reads a 2.x Attribute Reference (Enumeration of a tag, or Vendor Identification + Attribute Name). */
export function referenceFrom2x(n: TtlvNode): string {
  if (n.type === 'Enumeration') {
    const info = tagInfo(n.value);
    if (!info) throw new KmipError('InvalidField', `Attribute Reference names an unknown tag 0x${n.value.toString(16)}`);
    return info.specName;
  }
  if (n.type === 'Structure') {
    const vendor = reqValue(n, Tag.VendorIdentification, 'TextString');
    const name = reqValue(n, Tag.AttributeName, 'TextString');
    if (vendor.length === 0 || name.length === 0) throw new KmipError('InvalidField', 'a vendor Attribute Reference needs a Vendor Identification and an Attribute Name');
    return `${vendor}-${name}`;
  }
  throw new KmipError('InvalidField', `Attribute Reference must be an Enumeration or a Structure, not a ${n.type}`);
}

/** The 2.x Attribute Reference of an internal name, or undefined when it has no tag. */
export function referenceTo2x(name: string): TtlvNode | undefined {
  if (isCustom(name)) {
    const s = splitCustom(name);
    return T.struct(Tag.AttributeReference, [T.text(Tag.VendorIdentification, s.vendor), T.text(Tag.AttributeName, s.name)]);
  }
  const info = tagByName(name);
  return info ? T.enum(Tag.AttributeReference, info.tag) : undefined;
}

// ---------------------------------------------------------------------------------------------
// New Attribute / Current Attribute

/** The single attribute inside a New Attribute / Current Attribute structure. */
export function attributeIn(s: StructureNode, what: string): KmipAttribute {
  const [only, ...rest] = s.value;
  if (!only) throw new KmipError('MissingData', `${what} holds no attribute`);
  if (rest.length > 0) throw new KmipError('InvalidField', `${what} must hold exactly one attribute`);
  return attributeFrom2x(only);
}

// ---------------------------------------------------------------------------------------------
// Comparing values

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Equality of two values, ignoring the outer tag (a Current Attribute against a stored value). */
export function sameValue(a: TtlvNode, b: TtlvNode): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'Structure') {
    const bv = (b as StructureNode).value;
    if (a.value.length !== bv.length) return false;
    return a.value.every((c, i) => {
      const d = bv[i]!;
      return c.tag === d.tag && sameValue(c, d);
    });
  }
  if (a.type === 'ByteString') return sameBytes(a.value, (b as typeof a).value);
  return a.value === b.value;
}

/**
 * Locate's matching of a structured value (KMIP 1.4 §4.9 / 2.1 §6.1.27): every field given in
 * the request must be present with the same value; fields left out match anything.
 */
export function partialMatch(req: TtlvNode, cand: TtlvNode): boolean {
  if (req.type !== cand.type) return false;
  if (req.type === 'Structure') {
    const cv = (cand as StructureNode).value;
    return req.value.every((rc) => cv.some((cc) => cc.tag === rc.tag && partialMatch(rc, cc)));
  }
  if (req.type === 'ByteString') return sameBytes(req.value, (cand as typeof req).value);
  return req.value === cand.value;
}

// ---------------------------------------------------------------------------------------------
// Instances

export function instancesOf(attrs: readonly KmipAttribute[], name: string): KmipAttribute[] {
  return attrs.filter((a) => a.name === name);
}

/**
 * The index for a new instance. Indices of existing instances never change when others are added
 * or deleted (KMIP 1.4 §2.1.1), so a new instance takes the next number after the highest.
 */
export function nextIndex(attrs: readonly KmipAttribute[], name: string): number {
  let max = -1;
  for (const a of attrs) if (a.name === name && a.index > max) max = a.index;
  return max + 1;
}

/**
 * The value tagged as stored: the attribute's own tag, Attribute Value for custom attributes;
 * Usage Limits with the server's count (server-attributes.ts withUsageLimitsCount).
 */
export function storedValue(name: string, value: TtlvNode): TtlvNode {
  const tag = isCustom(name) ? Tag.AttributeValue : tagByName(name)?.tag;
  if (tag === undefined) throw new KmipError('InvalidField', `unknown attribute '${name}'`);
  const tagged = value.tag === tag ? value : ({ ...value, tag } as TtlvNode);
  return name === 'Usage Limits' ? withUsageLimitsCount(tagged) : tagged;
}

// ---------------------------------------------------------------------------------------------
// Objects

/** Attributes that live in the object's columns rather than its attribute list. */
const COLUMN_ATTRIBUTES = new Set(['Unique Identifier', 'Object Type', 'State']);

/**
 * Every attribute of an object as a client sees it now: its stored attributes with Unique
 * Identifier, Object Type and State taken from the object itself, the state evaluated at
 * `ctx.now()` (time-based transitions included, not persisted: for Locate's candidates), and the
 * server-maintained attributes computed on read (server-attributes.ts).
 */
export function objectView(ctx: OperationContext, stored: StoredObject): View {
  return viewOf(ctx, applyTimeTransitions(stored, ctx.now()) ?? stored);
}

/**
 * The object `uid` names, with `access` (ownership enforced), its time-based transitions applied
 * and persisted (lifecycle.loadObject), and its attribute view.
 */
export async function loadView(ctx: OperationContext, uid: string, access: Access): Promise<View> {
  return viewOf(ctx, await loadObject(ctx, uid, access));
}

export interface View {
  obj: StoredObject;
  attrs: KmipAttribute[];
}

/** The Lease Time the server grants (seconds; 0: none). */
export function leaseTimeSeconds(ctx: OperationContext): number {
  return ctx.server.leaseTimeSeconds ?? DEFAULT_LEASE_TIME_SECONDS;
}

function viewOf(ctx: OperationContext, obj: StoredObject): View {
  const stored = obj.attributes.filter((a) => !COLUMN_ATTRIBUTES.has(a.name));
  const shaped = stored.map((a) => (a.name === 'Digest' ? { ...a, value: digestForVersion(a.value, ctx.version) } : a));
  const attrs: KmipAttribute[] = [
    { name: 'Unique Identifier', index: 0, value: T.text(Tag.UniqueIdentifier, obj.uid) },
    { name: 'Object Type', index: 0, value: T.enum(Tag.ObjectType, obj.objectType) },
    { name: 'State', index: 0, value: T.enum(Tag.State, obj.state) },
    ...shaped,
    ...derivedAttributes(obj, stored, { version: ctx.version, leaseTimeSeconds: leaseTimeSeconds(ctx) }),
  ];
  return { obj, attrs };
}

// ---------------------------------------------------------------------------------------------
// Changing attributes

export interface Loaded {
  uid: string;
  /** The object as stored, its time-based state transitions applied (and persisted). */
  obj: StoredObject;
}

/** The object a mutating attribute operation names (Unique Identifier or ID Placeholder). */
export async function loadForChange(ctx: OperationContext, payload: StructureNode): Promise<Loaded> {
  const uid = ctx.uidOrPlaceholder(payload);
  return { uid, obj: await loadObject(ctx, uid, 'manage') };
}

/**
 * Writes the object with its new attribute list, Last Change Date updated (optimistically), and
 * Always Sensitive / Never Extractable kept true to the history of Sensitive / Extractable.
 */
export async function saveAttributes(ctx: OperationContext, l: Loaded, attributes: KmipAttribute[]): Promise<void> {
  const next = withAttributeHistory(l.obj.objectType, l.obj.attributes, attributes);
  await ctx.objects.save(l.obj, touched({ ...l.obj, attributes: next }, ctx.now()));
}

/**
 * A Name must not be shared with another object the client can see (KMIP 1.4 §3.2: unique within
 * the key management domain). Other owners' names are not consulted: that would reveal them.
 */
export async function checkNameUnique(ctx: OperationContext, uid: string, value: TtlvNode): Promise<void> {
  if (value.type !== 'Structure') return;
  const nv = value.value.find((c) => c.tag === Tag.NameValue);
  if (nv?.type !== 'TextString') return;
  const uids = await ctx.objects.locate({ filters: [{ kind: 'equals', name: 'Name', value: nv.value }] });
  if (uids.some((u) => u !== uid)) {
    throw new KmipError(isV2(ctx.version) ? 'NonUniqueNameAttribute' : 'IllegalOperation', `the name '${nv.value}' is already used by another object`);
  }
}
