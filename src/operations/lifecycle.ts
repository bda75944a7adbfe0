/**
 * The object state machine and the server-maintained attributes.
 *
 * States and transitions: KMIP 1.4 §3.22 State (2.1 §4 "State"):
 *   Pre-Active  -> Active                (Activate; or Activation Date <= now)
 *   Pre-Active  -> Deactivated           (Deactivation Date <= now; Revoke, non-compromise reason)
 *   Pre-Active  -> Compromised           (Revoke, Key/CA Compromise)
 *   Pre-Active  -> Destroyed             (Destroy)
 *   Active      -> Deactivated           (Revoke, non-compromise reason; or Deactivation Date <= now)
 *   Active      -> Compromised           (Revoke, Key/CA Compromise)
 *   Deactivated -> Compromised           (Revoke, Key/CA Compromise)
 *   Deactivated -> Destroyed             (Destroy)
 *   Compromised -> Destroyed Compromised (Destroy)
 *   Destroyed   -> Destroyed Compromised (Revoke, Key/CA Compromise)
 * An Active object cannot be destroyed (Destroy: "the object SHALL NOT be Active").
 *
 * Time-based transitions are evaluated whenever an object is read through `loadObject` (or
 * `refreshState`) and persisted then, so every operation sees the state the dates imply.
 */
import { createHash } from 'node:crypto';
import type { KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import type { StoredObject } from '../keystore/types.js';
import { Enums, Tag, enumValueName } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import type { OperationContext } from './context.js';
import type { Access } from './objects.js';

export const State = Enums.State;

/** Seconds since the epoch, as KMIP Date-Time values carry them. */
export function seconds(d: Date): bigint {
  return BigInt(Math.floor(d.getTime() / 1000));
}

export function stateName(state: number): string {
  return enumValueName('State', state) ?? String(state);
}

export function isDestroyed(state: number): boolean {
  return state === State.Destroyed || state === State.DestroyedCompromised;
}

// ---------------------------------------------------------------------------------------------
// Attribute list helpers (pure: they return new lists)

export function values(attrs: readonly KmipAttribute[], name: string): TtlvNode[] {
  return attrs.filter((a) => a.name === name).sort((a, b) => a.index - b.index).map((a) => a.value);
}

export function firstValue(attrs: readonly KmipAttribute[], name: string): TtlvNode | undefined {
  return values(attrs, name)[0];
}

/** A Date-Time (or Date-Time Extended) attribute in seconds; undefined when absent. */
export function dateOf(attrs: readonly KmipAttribute[], name: string): bigint | undefined {
  return dateValue(firstValue(attrs, name));
}

export function dateValue(v: TtlvNode | undefined): bigint | undefined {
  if (!v) return undefined;
  if (v.type === 'DateTime') return v.value;
  if (v.type === 'DateTimeExtended') {
    const us = v.value;
    return us >= 0n ? us / 1_000_000n : -((-us + 999_999n) / 1_000_000n);
  }
  return undefined;
}

export function enumOf(attrs: readonly KmipAttribute[], name: string): number | undefined {
  const v = firstValue(attrs, name);
  return v?.type === 'Enumeration' ? v.value : undefined;
}

export function intOf(attrs: readonly KmipAttribute[], name: string): number | undefined {
  const v = firstValue(attrs, name);
  return v?.type === 'Integer' || v?.type === 'Interval' ? v.value : undefined;
}

export function boolOf(attrs: readonly KmipAttribute[], name: string): boolean | undefined {
  const v = firstValue(attrs, name);
  return v?.type === 'Boolean' ? v.value : undefined;
}

/** Instances renumbered 0..n-1 per name, in list order. */
export function renumber(attrs: readonly KmipAttribute[]): KmipAttribute[] {
  const next = new Map<string, number>();
  return attrs.map((a) => {
    const i = next.get(a.name) ?? 0;
    next.set(a.name, i + 1);
    return { ...a, index: i };
  });
}

/** Replaces every instance of `name` by one instance with `value` (where the first was, else at the end). */
export function withAttribute(attrs: readonly KmipAttribute[], name: string, value: TtlvNode): KmipAttribute[] {
  const out: KmipAttribute[] = [];
  let placed = false;
  for (const a of attrs) {
    if (a.name !== name) out.push(a);
    else if (!placed) {
      out.push({ name, index: 0, value });
      placed = true;
    }
  }
  if (!placed) out.push({ name, index: 0, value });
  return out;
}

/** Removes every instance of `name` (or only those `which` selects), renumbering the rest. */
export function withoutAttribute(attrs: readonly KmipAttribute[], name: string, which?: (v: TtlvNode) => boolean): KmipAttribute[] {
  return renumber(attrs.filter((a) => a.name !== name || (which !== undefined && !which(a.value))));
}

/** Appends a new instance of a multi-instance attribute. */
export function withInstance(attrs: readonly KmipAttribute[], name: string, value: TtlvNode): KmipAttribute[] {
  return renumber([...attrs, { name, index: 0, value }]);
}

export function dateNode(tag: number, s: bigint): TtlvNode {
  return T.date(tag, s);
}

export function linkNode(linkType: number, uid: string): StructureNode {
  return T.struct(Tag.Link, [T.enum(Tag.LinkType, linkType), T.text(Tag.LinkedObjectIdentifier, uid)]);
}

export function linkType(v: TtlvNode): number | undefined {
  if (v.type !== 'Structure') return undefined;
  const t = v.value.find((c) => c.tag === Tag.LinkType);
  return t?.type === 'Enumeration' ? t.value : undefined;
}

// ---------------------------------------------------------------------------------------------
// Server-maintained attributes

/**
 * The Digest attribute (1.4 §3.17): SHA-256 of the object's material as it is in `keyFormatType`
 * (Raw for symmetric keys: the key bytes). Opaque Objects have no Key Format Type in the digest.
 */
export function digestNode(material: Uint8Array, keyFormatType: number | undefined): StructureNode {
  const c: TtlvNode[] = [
    T.enum(Tag.HashingAlgorithm, Enums.HashingAlgorithm.SHA_256),
    T.bytes(Tag.DigestValue, createHash('sha256').update(material).digest()),
  ];
  if (keyFormatType !== undefined) c.push(T.enum(Tag.KeyFormatType, keyFormatType));
  return T.struct(Tag.Digest, c);
}

/**
 * The state a new object starts in (Create, Register, Re-key): Pre-Active, Active when its
 * Activation Date is at or before now, Deactivated when its Deactivation Date is too.
 */
export function initialState(attrs: readonly KmipAttribute[], now: Date): number {
  return timeState(State.PreActive, attrs, seconds(now));
}

function timeState(state: number, attrs: readonly KmipAttribute[], now: bigint): number {
  let s = state;
  const activation = dateOf(attrs, 'Activation Date');
  const deactivation = dateOf(attrs, 'Deactivation Date');
  if (s === State.PreActive && activation !== undefined && activation <= now) s = State.Active;
  if ((s === State.PreActive || s === State.Active) && deactivation !== undefined && deactivation <= now) s = State.Deactivated;
  return s;
}

/**
 * The full attribute list of a new object: the client's attributes (already checked) plus what
 * the server maintains: Unique Identifier, Object Type, State, Initial Date, Last Change Date,
 * Fresh (true unless the client set it), Digest when there is material to digest, Always Sensitive / Never Extractable when the
 * client set Sensitive / Extractable. `implicit` are attributes the server derived (Cryptographic
 * Algorithm and Length from a key block): they replace client instances of the same name.
 */
export function initialAttributes(o: {
  uid: string;
  objectType: number;
  now: Date;
  client: readonly KmipAttribute[];
  implicit?: readonly KmipAttribute[];
  digest?: StructureNode;
}): { attributes: KmipAttribute[]; state: number } {
  const now = seconds(o.now);
  let attrs: KmipAttribute[] = [];
  attrs.push({ name: 'Unique Identifier', index: 0, value: T.text(Tag.UniqueIdentifier, o.uid) });
  attrs.push({ name: 'Object Type', index: 0, value: T.enum(Tag.ObjectType, o.objectType) });
  const implicitNames = new Set((o.implicit ?? []).map((a) => a.name));
  attrs.push(...(o.implicit ?? []));
  attrs.push(...o.client.filter((a) => !implicitNames.has(a.name)));
  const state = initialState(attrs, o.now);
  attrs.push({ name: 'State', index: 0, value: T.enum(Tag.State, state) });
  attrs.push({ name: 'Initial Date', index: 0, value: dateNode(Tag.InitialDate, now) });
  attrs.push({ name: 'Last Change Date', index: 0, value: dateNode(Tag.LastChangeDate, now) });
  if (boolOf(attrs, 'Fresh') === undefined) attrs.push({ name: 'Fresh', index: 0, value: T.bool(Tag.Fresh, true) });
  if (o.digest) attrs.push({ name: 'Digest', index: 0, value: o.digest });
  const sensitive = boolOf(attrs, 'Sensitive');
  if (sensitive !== undefined) attrs.push({ name: 'Always Sensitive', index: 0, value: T.bool(Tag.AlwaysSensitive, sensitive) });
  const extractable = boolOf(attrs, 'Extractable');
  if (extractable !== undefined) attrs.push({ name: 'Never Extractable', index: 0, value: T.bool(Tag.NeverExtractable, !extractable) });
  attrs = renumber(attrs);
  return { attributes: attrs, state };
}

/** `obj` with its State attribute and field set to `state`, and Last Change Date now. */
export function withState(obj: StoredObject, state: number, now: Date): StoredObject {
  const attrs = withAttribute(obj.attributes, 'State', T.enum(Tag.State, state));
  return touched({ ...obj, state, attributes: attrs }, now);
}

/** `obj` with Last Change Date set to now (1.4 §3.38: on every change of attributes or contents). */
export function touched(obj: StoredObject, now: Date): StoredObject {
  return { ...obj, attributes: withAttribute(obj.attributes, 'Last Change Date', dateNode(Tag.LastChangeDate, seconds(now))) };
}

/** `obj` with `name` set to one instance of `value`, and Last Change Date now. */
export function withServerAttribute(obj: StoredObject, name: string, value: TtlvNode, now: Date): StoredObject {
  return touched({ ...obj, attributes: withAttribute(obj.attributes, name, value) }, now);
}

// ---------------------------------------------------------------------------------------------
// Transitions

const TRANSITIONS: Readonly<Record<number, readonly number[]>> = {
  [State.PreActive]: [State.Active, State.Deactivated, State.Compromised, State.Destroyed],
  [State.Active]: [State.Deactivated, State.Compromised],
  [State.Deactivated]: [State.Compromised, State.Destroyed],
  [State.Compromised]: [State.DestroyedCompromised],
  [State.Destroyed]: [State.DestroyedCompromised],
  [State.DestroyedCompromised]: [],
};

export function canTransition(from: number, to: number): boolean {
  return TRANSITIONS[from]?.includes(to) ?? false;
}

/** Throws Wrong Key Lifecycle State (1.x: Permission Denied) when `from` -> `to` is not a transition of the state machine. */
export function assertTransition(from: number, to: number, what: string): void {
  if (!canTransition(from, to)) {
    throw new KmipError('WrongKeyLifecycleState', `${what} is not possible for an object in state ${stateName(from)}`);
  }
}

/**
 * Applies the time-based transitions (Activation Date / Deactivation Date reached). Returns the
 * changed object, or undefined when nothing changed.
 */
export function applyTimeTransitions(obj: StoredObject, now: Date): StoredObject | undefined {
  const next = timeState(obj.state, obj.attributes, seconds(now));
  return next === obj.state ? undefined : withState(obj, next, now);
}

/**
 * The object with its time-based transitions applied and persisted. A concurrent writer that
 * got there first is fine: the transition is then re-read from the store's view.
 */
export async function refreshState(ctx: OperationContext, obj: StoredObject): Promise<StoredObject> {
  const next = applyTimeTransitions(obj, ctx.now());
  if (!next) return obj;
  return saveQuietly(ctx, obj, next);
}

/** Finds `uid` with `access` (ownership enforced by the ObjectService) and refreshes its state. */
export async function loadObject(ctx: OperationContext, uid: string, access: Access): Promise<StoredObject> {
  return refreshState(ctx, await ctx.objects.find(uid, access));
}

/**
 * Saves a change that is a side effect of a read (time transition, Fresh): when another request
 * changed the object meanwhile the read still succeeds with the state computed here.
 */
export async function saveQuietly(ctx: OperationContext, prev: StoredObject, next: StoredObject): Promise<StoredObject> {
  try {
    return await ctx.objects.save(prev, next);
  } catch (e) {
    if (!(e instanceof KmipError)) throw e;
    ctx.log.debug({ uid: prev.uid }, 'concurrent change while persisting a read side effect');
    return next;
  }
}

// ---------------------------------------------------------------------------------------------
// Names

/** The Name Value of a Name attribute value. */
export function nameValue(v: TtlvNode): string | undefined {
  if (v.type !== 'Structure') return undefined;
  const n = v.value.find((c) => c.tag === Tag.NameValue);
  return n?.type === 'TextString' ? n.value : undefined;
}

/**
 * One object may not carry the same Name twice (2.x: Non Unique Name Attribute; 1.x: Invalid
 * Field). 1.4 §3.2 also says names "SHALL be unique within a given key management domain";
 * kmipd does not enforce that across objects: common clients give every object the same
 * default name (PyKMIP registers keys named "Symmetric Key"), and a check across owners would
 * tell a client that an object it cannot see exists.
 */
export function checkNoDuplicateNames(attrs: readonly KmipAttribute[]): void {
  const seen = new Set<string>();
  for (const a of attrs) {
    if (a.name !== 'Name') continue;
    const n = nameValue(a.value);
    if (n === undefined) continue;
    if (seen.has(n)) throw new KmipError('NonUniqueNameAttribute', `the name '${n}' is given twice`);
    seen.add(n);
  }
}
