/**
 * Put (KMIP 1.4 §5.2; 2.0/2.1 §7 "Put"): a server-to-client operation, received here from a
 * trusted upstream key server that replicates its objects to kmipd (see upstream.ts for who may
 * send it, who owns what it stores and how its attributes are taken).
 *
 * Request: Unique Identifier, Put Function (New / Replace), Replaced Unique Identifier (Replace
 * only), the Managed Object, and its attributes (1.x: Attribute structures; 2.x: Attributes).
 * Response: an empty payload.
 *
 * - New: the object is checked like a Register of it (register.ts parseManagedObject: key length
 *   against algorithm, key formats, certificates...), stored under the upstream's Unique
 *   Identifier, its material sealed at rest like every object's. A Digest sent must match the
 *   material (Invalid Field otherwise): a corrupted replica is refused, not stored.
 * - The identifier exists already: a re-delivery of the same object (same key material, visible
 *   to the upstream) updates its attributes to the ones sent; anything else is Object Already
 *   Exists (1.0-1.3: Illegal Operation). kmipd never changes an existing object's key material.
 * - Replace: the object is stored as for New; the replaced object, when it exists here, gets a
 *   Replacement Object Link to it and the new one a Replaced Object Link to the replaced one (as
 *   Re-key links old and new). "In case the object with the Replaced Unique Identifier does not
 *   exist at the client, the client SHALL interpret this as if the Put Function contained the
 *   value New" (1.4 §5.2). A replaced object the upstream may not manage is Permission Denied.
 */
import { timingSafeEqual } from 'node:crypto';
import type { KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { optValue, reqValue } from '../codec/node.js';
import type { StoredObject } from '../keystore/types.js';
import { Enums, Tag, enumValueName } from '../spec/index.js';
import { encodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { enumOf, initialAttributes, isDestroyed, linkNode, linkType, renumber, touched, withAttribute, withInstance, withoutAttribute } from './lifecycle.js';
import { parseManagedObject, registrableTypeOfTag, type ParsedObject } from './register.js';
import { storedTree, wipeTree } from './stored-tree.js';
import { applyPushedChanges, checkPushedAttributes, checkPushedState, checkPushedUid, pushedTarget, readPushedAttributes, sameDigest } from './upstream.js';

const PF = Enums.PutFunction;
const LT = Enums.LinkType;

/** Attributes initialAttributes sets for a new object, which an upstream's values replace. */
const TAKEN_AS_SENT = ['Initial Date', 'Last Change Date', 'Always Sensitive', 'Never Extractable'];

/** The one Managed Object of the payload and its Object Type. */
function managedObject(payload: StructureNode): { objectType: number; obj: StructureNode } {
  const found = payload.value.filter((c) => registrableTypeOfTag(c.tag) !== undefined);
  if (found.length === 0) {
    if (payload.value.some((c) => c.tag === Tag.Template)) throw new KmipError('FeatureNotSupported', 'kmipd does not keep Template objects pushed by Put');
    throw new KmipError('MissingData', 'Put carries no Managed Object');
  }
  if (found.length > 1) throw new KmipError('InvalidField', 'Put carries more than one Managed Object');
  const obj = found[0]!;
  if (obj.type !== 'Structure') throw new KmipError('InvalidField', 'the Managed Object must be a Structure');
  return { objectType: registrableTypeOfTag(obj.tag)!, obj };
}

/**
 * The Digests to store: the one computed over the material, which every SHA-256 Digest sent must
 * match; Digests of other hashing algorithms are kept as sent. Without a computed one (a wrapped
 * or metadata-only object) the sent ones are kept as they are.
 */
function digests(sent: readonly KmipAttribute[], computed: StructureNode | undefined): TtlvNode[] {
  if (!computed) return sent.map((a) => a.value);
  const out: TtlvNode[] = [computed];
  for (const a of sent) {
    const v = a.value;
    const alg = v.type === 'Structure' ? v.value.find((c) => c.tag === Tag.HashingAlgorithm) : undefined;
    if (alg?.type === 'Enumeration' && alg.value === Enums.HashingAlgorithm.SHA_256) {
      if (!sameDigest(v, computed)) throw new KmipError('InvalidField', 'the Digest sent does not match the key material sent');
    } else {
      out.push(v);
    }
  }
  return out;
}

/** The attribute list and state of the object a Put New stores. */
function newObjectAttributes(ctx: OperationContext, uid: string, objectType: number, parsed: ParsedObject, client: KmipAttribute[]): { attributes: KmipAttribute[]; state: number } {
  const general = client.filter((a) => a.name !== 'State' && a.name !== 'Digest' && !TAKEN_AS_SENT.includes(a.name));
  const init = initialAttributes({ uid, objectType, now: ctx.now(), client: general, implicit: parsed.implicit });
  let attributes = init.attributes;
  for (const name of TAKEN_AS_SENT) {
    const sent = client.filter((a) => a.name === name);
    if (sent.length > 0) attributes = [...attributes.filter((a) => a.name !== name), ...sent];
  }
  for (const d of digests(client.filter((a) => a.name === 'Digest'), parsed.digest)) attributes.push({ name: 'Digest', index: 0, value: d });
  let state = init.state;
  const sentState = enumOf(client, 'State');
  if (sentState !== undefined) {
    checkPushedState(sentState);
    state = sentState;
    attributes = withAttribute(attributes, 'State', T.enum(Tag.State, state));
  }
  return { attributes: renumber(attributes), state };
}

/** Whether the stored object's material is byte for byte the one sent. */
async function sameMaterial(ctx: OperationContext, existing: StoredObject, object: StructureNode): Promise<boolean> {
  if (!existing.material) return false;
  const tree = await storedTree(ctx, existing);
  const had = encodeTtlv(tree);
  wipeTree(tree);
  const sent = encodeTtlv(object);
  try {
    return had.length === sent.length && timingSafeEqual(had, sent);
  } finally {
    had.fill(0);
    sent.fill(0);
  }
}

/** Links the replaced object to its replacement and back (1.4 §3.35 Replacement / Replaced Object Link). */
async function link(ctx: OperationContext, old: StoredObject, uid: string): Promise<void> {
  const now = ctx.now();
  const fresh = await ctx.objects.find(uid, 'manage');
  if (!fresh.attributes.some((a) => a.name === 'Link' && linkType(a.value) === LT.ReplacedObjectLink)) {
    await ctx.objects.save(fresh, { ...fresh, attributes: withInstance(fresh.attributes, 'Link', linkNode(LT.ReplacedObjectLink, old.uid)) });
  }
  const prev = await ctx.objects.find(old.uid, 'manage');
  const attrs = withoutAttribute(prev.attributes, 'Link', (v) => linkType(v) === LT.ReplacementObjectLink);
  await ctx.objects.save(prev, touched({ ...prev, attributes: withInstance(attrs, 'Link', linkNode(LT.ReplacementObjectLink, uid)) }, now));
}

export const putHandler: OperationHandler = {
  operation: Enums.Operation.Put,
  name: 'Put',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = pushedTarget(ctx, payload, 'Put');
    const fn = reqValue(payload, Tag.PutFunction, 'Enumeration');
    if (fn !== PF.New && fn !== PF.Replace) throw new KmipError('InvalidField', `Put Function ${fn} is neither New nor Replace`);
    const replaced = optValue(payload, Tag.ReplacedUniqueIdentifier, 'TextString');
    if (fn === PF.Replace && replaced === undefined) throw new KmipError('MissingData', 'Put Function Replace needs the Replaced Unique Identifier');
    if (fn === PF.New && replaced !== undefined) throw new KmipError('InvalidField', 'a Replaced Unique Identifier goes with Put Function Replace, not New');
    if (replaced !== undefined) {
      checkPushedUid(replaced, 'Replaced Unique Identifier');
      if (replaced === uid) throw new KmipError('InvalidField', 'an object cannot replace itself');
    }
    const { objectType, obj } = managedObject(payload);
    const { changes, deletions } = readPushedAttributes(payload);
    if (deletions.length > 0) throw new KmipError('MissingData', 'every attribute of a Put needs its Attribute Value');
    for (const a of changes) {
      if (a.name === 'Unique Identifier' && !(a.value.type === 'TextString' && a.value.value === uid)) {
        throw new KmipError('InvalidField', 'the Unique Identifier attribute differs from the Put\'s Unique Identifier');
      }
    }
    const attrs = changes.filter((a) => a.name !== 'Unique Identifier');
    checkPushedAttributes(attrs, objectType, ctx.version);
    const { parsed, client } = parseManagedObject(objectType, obj, attrs);

    let old: StoredObject | undefined;
    if (replaced !== undefined) {
      const p = await ctx.objects.probe(replaced, 'manage');
      if (p === 'hidden') throw new KmipError('PermissionDenied', 'the replaced object is not one this upstream may change');
      old = p;
    }

    const existing = await ctx.objects.probe(uid, 'manage');
    if (existing !== undefined) {
      const what = `an object with Unique Identifier '${uid}' exists already`;
      if (existing === 'hidden' || existing.objectType !== objectType) throw new KmipError('ObjectAlreadyExists', what);
      if (isDestroyed(existing.state)) throw new KmipError('ObjectAlreadyExists', `${what} and has been destroyed here`);
      if (!(await sameMaterial(ctx, existing, parsed.object))) {
        throw new KmipError('ObjectAlreadyExists', `${what} with other key material; kmipd never changes an object's key material`);
      }
      // A re-delivery: the upstream's attributes as sent (the Digest was checked with the material).
      const sent = client.filter((a) => a.name !== 'Digest');
      const sentState = enumOf(sent, 'State');
      if (sentState !== undefined) checkPushedState(sentState);
      digests(client.filter((a) => a.name === 'Digest'), parsed.digest);
      await ctx.objects.save(existing, applyPushedChanges(ctx, existing, sent, [], true));
      ctx.log.info({ uid }, 'Put: an object pushed again; attributes updated');
    } else {
      const { attributes, state } = newObjectAttributes(ctx, uid, objectType, parsed, client);
      const material = encodeTtlv(parsed.object);
      try {
        await ctx.objects.create({ uid, objectType, state, attributes, material });
      } finally {
        material.fill(0);
      }
      ctx.log.info({ uid, objectType: enumValueName('ObjectType', objectType), upstream: ctx.identity.name }, 'Put: stored an object pushed by an upstream');
    }
    if (old) {
      await link(ctx, old, uid);
      ctx.log.info({ uid, replaced: old.uid }, 'Put: linked the replaced object');
    }
    return [];
  },
};
