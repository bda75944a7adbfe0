/**
 * What Put (put.ts) and Notify (notify.ts) share: kmipd as the receiving end of KMIP's
 * server-to-client operations (KMIP 1.4 §5 "Server-to-Client Operations"; 2.0/2.1 §7), fed by
 * an upstream key server that replicates its objects to kmipd.
 *
 * - Trust: only identities named in the server's `upstreams` setting (ServerInfo.upstreams) may
 *   send Put or Notify; anyone else gets Permission Denied before the payload is looked at.
 * - Ownership: an object a Put stores belongs to the upstream identity that pushed it, like an
 *   object it had registered; local clients read it through the policy groups (put the upstream
 *   in a group with them). Notify and Put Replace change only objects the upstream may manage
 *   (its own, its group's, every object for an admin).
 * - Attributes are the upstream's: server-maintained ones (State, Initial Date, Last Change Date,
 *   Lease Time, Fresh, Destroy Date...) are taken as sent, which is what a replica must do. What
 *   follows from the key material itself (Unique Identifier, Object Type, Cryptographic
 *   Algorithm / Length, Digest, the certificate fields) is checked against it and can never be
 *   changed: kmipd never changes an object's key material or what it implies.
 */
import type { KmipAttribute } from '../codec/attributes.js';
import { attributeFrom1x, attributesFrom2x, isV2 } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { all, opt, reqValue } from '../codec/node.js';
import type { StoredObject } from '../keystore/types.js';
import { Enums, Tag, enumValueName, type KmipVersion } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import { attributeRule, checkValueType } from './attribute-rules.js';
import { referenceFrom2x, sameValue, storedValue } from './attribute-support.js';
import type { OperationContext } from './context.js';
import { checkNoDuplicateNames, dateNode, isDestroyed, seconds, stateName, withAttribute } from './lifecycle.js';
import { withAttributeHistory } from './server-attributes.js';

/** Permission Denied unless the requester is a configured upstream. */
function requireUpstream(ctx: OperationContext, operation: string): void {
  const upstreams = ctx.server.upstreams ?? [];
  if (!upstreams.includes(ctx.identity.name)) {
    ctx.log.warn({ identity: ctx.identity.name, operation }, 'server-to-client operation from an identity that is not a trusted upstream');
    throw new KmipError('PermissionDenied', `${operation} is accepted only from a trusted upstream key server (the server's upstreams setting)`);
  }
}

/** The longest Unique Identifier kmipd accepts from an upstream (its own are 36-character UUIDs). */
const MAX_UID_LENGTH = 256;

/** An upstream's Unique Identifier: non-empty, bounded, printable. */
/**
 * The start of every pushed operation (Put, Notify): only a trusted upstream may push, and the
 * Unique Identifier it names must be one kmipd can store. Returns that identifier.
 */
export function pushedTarget(ctx: OperationContext, payload: StructureNode, operation: string): string {
  requireUpstream(ctx, operation);
  const uid = reqValue(payload, Tag.UniqueIdentifier, 'TextString');
  checkPushedUid(uid, 'Unique Identifier');
  return uid;
}

export function checkPushedUid(uid: string, what: string): void {
  if (uid.length === 0) throw new KmipError('InvalidField', `${what} must not be empty`);
  if (uid.length > MAX_UID_LENGTH) throw new KmipError('InvalidField', `${what} is longer than ${MAX_UID_LENGTH} characters`);
  if (/[\u0000-\u001f\u007f]/.test(uid)) throw new KmipError('InvalidField', `${what} holds control characters`);
}

/**
 * Attributes fixed by the object's material: an upstream may repeat them (they must agree), never
 * change or delete them.
 */
const FIXED = new Set([
  'Unique Identifier',
  'Object Type',
  'Cryptographic Algorithm',
  'Cryptographic Length',
  'Digest',
  'Certificate Type',
  'Certificate Length',
  'X.509 Certificate Identifier',
  'X.509 Certificate Subject',
  'X.509 Certificate Issuer',
  'Certificate Identifier',
  'Certificate Subject',
  'Certificate Issuer',
  'Digital Signature Algorithm',
  'Key Format Type',
  'Short Unique Identifier',
  'Key Value Present',
]);

export function isFixed(name: string): boolean {
  return FIXED.has(name) || /^Certificate (Subject|Issuer) /.test(name);
}

/** Attributes every object has ("Shall always have a value"): never deleted. */
const ALWAYS = new Set(['State', 'Initial Date', 'Last Change Date']);

/**
 * The attributes of a Put or Notify: 1.x Attribute structures in the payload, 2.x one Attributes
 * structure (either shape is read whatever the version). In 1.x an Attribute without Attribute
 * Value names an attribute the upstream deleted (Notify, 1.4 §5.1); in 2.x those travel as
 * Attribute References. Values are checked against the dictionary's item types.
 */
export function readPushedAttributes(payload: StructureNode): { changes: KmipAttribute[]; deletions: { name: string; index: number | undefined }[] } {
  const changes: KmipAttribute[] = [];
  const deletions: { name: string; index: number | undefined }[] = [];
  const v2 = opt(payload, Tag.Attributes, 'Structure');
  if (v2) changes.push(...attributesFrom2x(v2));
  for (const s of all(payload, Tag.Attribute, 'Structure')) {
    if (s.value.some((c) => c.tag === Tag.AttributeValue)) changes.push(attributeFrom1x(s));
    else {
      const a = attributeFrom1x(s, false);
      deletions.push({ name: a.name, index: a.index });
    }
  }
  for (const n of payload.value) {
    if (n.tag !== Tag.AttributeReference) continue;
    deletions.push({ name: referenceFrom2x(n), index: undefined });
  }
  for (const a of changes) checkValueType(a);
  return { changes, deletions };
}

/**
 * Each attribute known (Unsupported Attribute), applicable to the object type (Invalid
 * Attribute), single-valued ones once (2.x Attribute Single Valued, 1.x Invalid Field), names
 * not repeated, State a state.
 */
export function checkPushedAttributes(attrs: readonly KmipAttribute[], objectType: number, version: KmipVersion): void {
  const seen = new Set<string>();
  for (const a of attrs) {
    const rule = attributeRule(a.name);
    if (!rule) throw new KmipError('UnsupportedAttribute', `'${a.name}' is not an attribute kmipd knows`);
    if (rule.objectTypes && !rule.objectTypes.includes(objectType)) {
      throw new KmipError('InvalidAttribute', `${rule.name} does not apply to a ${enumValueName('ObjectType', objectType) ?? objectType}`);
    }
    if (!rule.multi) {
      if (seen.has(rule.name)) throw new KmipError(isV2(version) ? 'AttributeSingleValued' : 'InvalidField', `${rule.name} is given more than once; it takes a single value`);
      seen.add(rule.name);
    }
    if (a.name === 'State' && (a.value.type !== 'Enumeration' || enumValueName('State', a.value.value) === undefined)) {
      throw new KmipError('InvalidAttributeValue', 'State is not a KMIP state');
    }
  }
  checkNoDuplicateNames(attrs);
}

/** Hashing Algorithm and Digest Value agree (the Key Format Type too where both name one). */
export function sameDigest(a: TtlvNode, b: TtlvNode): boolean {
  if (a.type !== 'Structure' || b.type !== 'Structure') return false;
  for (const tag of [Tag.HashingAlgorithm, Tag.DigestValue, Tag.KeyFormatType]) {
    const x = a.value.find((c) => c.tag === tag);
    const y = b.value.find((c) => c.tag === tag);
    if (tag === Tag.KeyFormatType && (!x || !y)) continue;
    if (!x || !y || !sameValue(x, y)) return false;
  }
  return true;
}

function agreesWithStored(obj: StoredObject, a: KmipAttribute): boolean {
  if (a.name === 'Unique Identifier') return a.value.type === 'TextString' && a.value.value === obj.uid;
  if (a.name === 'Object Type') return a.value.type === 'Enumeration' && a.value.value === obj.objectType;
  return obj.attributes.some((s) => s.name === a.name && (a.name === 'Digest' ? sameDigest(s.value, a.value) : sameValue(s.value, a.value)));
}

/**
 * `obj` with the upstream's attribute changes applied, as it sent them:
 * - `byName` (2.x Attributes, and a re-delivered Put): the instances sent replace every instance
 *   of that attribute; otherwise (1.x Notify) each instance replaces the one at its Attribute
 *   Index, or is added with that index.
 * - A change of State takes effect with its consequence: a Destroyed (or Destroyed Compromised)
 *   object loses its key material, as with Destroy, and gets a Destroy Date unless it has one.
 *   A destroyed object never comes back (Wrong Key Lifecycle State).
 * - Last Change Date is the upstream's when sent, else now; Always Sensitive / Never Extractable
 *   follow the history of Sensitive / Extractable unless sent.
 */
export function applyPushedChanges(
  ctx: OperationContext,
  obj: StoredObject,
  changes: readonly KmipAttribute[],
  deletions: readonly { name: string; index: number | undefined }[],
  byName: boolean,
): StoredObject {
  let attrs: KmipAttribute[] = [...obj.attributes];
  let state = obj.state;
  let material = obj.material;
  const names = [...new Set(changes.map((a) => a.name))];
  for (const name of names) {
    const sent = changes.filter((a) => a.name === name);
    if (isFixed(name)) {
      for (const s of sent) {
        if (!agreesWithStored(obj, s)) throw new KmipError('InvalidField', `${name} follows from the object's key material and cannot be changed`);
      }
      continue;
    }
    if (name === 'State') {
      const v = sent[0]!.value;
      if (v.type === 'Enumeration') state = v.value;
      continue;
    }
    const multi = attributeRule(name)?.multi ?? true;
    if (!multi || byName) {
      attrs = [...attrs.filter((a) => a.name !== name), ...sent.map((s, i) => ({ name, index: multi ? i : 0, value: storedValue(name, s.value) }))];
    } else {
      for (const s of sent) {
        const value = storedValue(name, s.value);
        const at = attrs.findIndex((a) => a.name === name && a.index === s.index);
        if (at >= 0) attrs[at] = { name, index: s.index, value };
        else attrs.push({ name, index: s.index, value });
      }
    }
  }
  for (const d of deletions) {
    if (isFixed(d.name) || ALWAYS.has(d.name)) throw new KmipError('InvalidField', `${d.name} cannot be deleted`);
    attrs = attrs.filter((a) => a.name !== d.name || (d.index !== undefined && a.index !== d.index));
  }
  const now = ctx.now();
  if (state !== obj.state) {
    if (isDestroyed(obj.state) && !isDestroyed(state)) {
      throw new KmipError('WrongKeyLifecycleState', `the object has been destroyed here; it cannot become ${stateName(state)}`);
    }
    if (isDestroyed(state)) {
      material = null;
      if (!attrs.some((a) => a.name === 'Destroy Date')) attrs.push({ name: 'Destroy Date', index: 0, value: dateNode(Tag.DestroyDate, seconds(now)) });
    }
    attrs = withAttribute(attrs, 'State', T.enum(Tag.State, state));
  }
  if (!changes.some((a) => a.name === 'Last Change Date')) attrs = withAttribute(attrs, 'Last Change Date', dateNode(Tag.LastChangeDate, seconds(now)));
  if (!changes.some((a) => a.name === 'Always Sensitive' || a.name === 'Never Extractable')) attrs = withAttributeHistory(obj.objectType, obj.attributes, attrs);
  return { ...obj, state, material, attributes: attrs };
}

/** The State an upstream may push a new object in: any but the destroyed ones (it carries key material). */
export function checkPushedState(state: number): void {
  if (isDestroyed(state)) {
    throw new KmipError('InvalidField', `a pushed object carries key material, so it cannot be ${stateName(state)}; Notify its destruction instead`);
  }
  if (state === Enums.State.PreActive || state === Enums.State.Active || state === Enums.State.Deactivated || state === Enums.State.Compromised) return;
  throw new KmipError('InvalidAttributeValue', `State ${state} is not a KMIP state`);
}
