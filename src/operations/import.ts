/**
 * Import (KMIP 1.4 / 2.x "Import"): the client hands over a managed object together with all its
 * attributes, under the Unique Identifier it names (typically what Export gave it on another
 * server).
 *
 * Request: Unique Identifier, Object Type, Replace Existing (Boolean, default False), Key Wrap
 * Type, Attributes (2.x: one Attributes structure; 1.4: Attribute structures), the object.
 * Response: the Unique Identifier.
 *
 * - The attributes are set to the values supplied: the "Initially set by" and "When implicitly
 *   set" rules are not applied (State, Initial Date, Digest, Fresh... come from the request).
 *   What the request leaves out the server fills in as for Register, so the object is whole.
 *   A supplied Unique Identifier or Object Type attribute must agree with the request's; State
 *   must be a live state (an object with key material cannot be imported as destroyed);
 *   Protection Storage Mask is not taken (it describes how a server stores the object, and
 *   kmipd reports its own). Single-valued attributes may appear once, Names not twice.
 * - The object is checked as Register checks it (register.ts parseRegistrable: formats,
 *   lengths, algorithm and length agreeing with the attributes) and, like every object, kept
 *   sealed under the root key (ObjectService.create / seal).
 * - Key Wrap Type Not Wrapped: a wrapped object is unwrapped first, with the key its Encryption
 *   Key Information names (the client must be allowed to use it, key-wrapping.ts). As
 *   Registered, or absent: the object is stored as given.
 * - An existing object under that identifier: without Replace Existing, Object Already
 *   Exists. With it, the object is replaced (same owner kept), but only when it is this
 *   client's own or its group's (ObjectService.replaceable): nobody overwrites another
 *   identity's object, admins included.
 * - The new object passes the Quantum Safe rule and the client's constraints (constraints.ts).
 */
import { attributeFrom1x, attributesFrom2x, isV2, type KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { all, opt, optValue, req, reqValue } from '../codec/node.js';
import { DuplicateObjectError } from '../keystore/types.js';
import { Enums, Tag, enumValueName } from '../spec/index.js';
import { encodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { attributeRule, checkValueType } from './attribute-rules.js';
import { checkNewObject } from './constraints.js';
import type { OperationContext, OperationHandler } from './context.js';
import { unwrapObject } from './key-wrapping.js';
import { checkNoDuplicateNames, initialAttributes, isDestroyed, renumber, stateName } from './lifecycle.js';
import { parseRegistrable, registrableTag } from './register.js';

/** Longest Unique Identifier a client may choose (kmipd's own are 36-character UUIDs). */
export const MAX_IMPORTED_UID_LENGTH = 256;

/** Supplied attributes the import does not take as attributes (see the top of the file). */
const NOT_STORED = new Set(['Unique Identifier', 'Object Type', 'State', 'Protection Storage Mask']);

function checkUid(uid: string): void {
  if (uid.length === 0 || uid.length > MAX_IMPORTED_UID_LENGTH) throw new KmipError('InvalidField', `the Unique Identifier must have 1 to ${MAX_IMPORTED_UID_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(uid)) throw new KmipError('InvalidField', 'the Unique Identifier must not contain control characters');
}

function suppliedAttributes(ctx: OperationContext, payload: StructureNode): KmipAttribute[] {
  const v2 = opt(payload, Tag.Attributes, 'Structure');
  let attrs: KmipAttribute[];
  if (v2) attrs = attributesFrom2x(v2);
  else if (!isV2(ctx.version)) attrs = all(payload, Tag.Attribute, 'Structure').map((a) => attributeFrom1x(a));
  else throw new KmipError('MissingData', 'Import needs the object\'s Attributes');
  const seen = new Set<string>();
  for (const a of attrs) {
    checkValueType(a);
    const rule = attributeRule(a.name);
    if (rule && !rule.multi) {
      if (seen.has(a.name)) throw new KmipError(isV2(ctx.version) ? 'AttributeSingleValued' : 'InvalidField', `${a.name} is given more than once; it takes a single value`);
      seen.add(a.name);
    }
  }
  checkNoDuplicateNames(attrs);
  return attrs;
}

function agreeing(attrs: readonly KmipAttribute[], name: string, expected: TtlvNode['value'], what: string): void {
  const a = attrs.find((x) => x.name === name);
  if (a && a.value.value !== expected) throw new KmipError('InvalidField', `the ${name} attribute differs from the request's ${what}`);
}

const LIVE_STATES: readonly number[] = [Enums.State.PreActive, Enums.State.Active, Enums.State.Deactivated, Enums.State.Compromised];

export const importHandler: OperationHandler = {
  operation: Enums.Operation.Import,
  name: 'Import',
  since: '1.4',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = reqValue(payload, Tag.UniqueIdentifier, 'TextString');
    checkUid(uid);
    const objectType = reqValue(payload, Tag.ObjectType, 'Enumeration');
    const replace = optValue(payload, Tag.ReplaceExisting, 'Boolean') ?? false;
    const wrapType = optValue(payload, Tag.KeyWrapType, 'Enumeration');
    if (wrapType !== undefined && wrapType !== Enums.KeyWrapType.NotWrapped && wrapType !== Enums.KeyWrapType.AsRegistered) {
      throw new KmipError('KeyWrapTypeNotSupported', `Key Wrap Type ${enumValueName('KeyWrapType', wrapType) ?? wrapType} is not supported`);
    }
    const tag = registrableTag(objectType);
    let obj = req(payload, tag, 'Structure');
    const supplied = suppliedAttributes(ctx, payload);
    agreeing(supplied, 'Unique Identifier', uid, 'Unique Identifier');
    agreeing(supplied, 'Object Type', objectType, 'Object Type');
    const stateAttr = supplied.find((a) => a.name === 'State');
    const suppliedState = stateAttr?.value.type === 'Enumeration' ? stateAttr.value.value : undefined;
    if (suppliedState !== undefined && !LIVE_STATES.includes(suppliedState)) {
      throw new KmipError('InvalidField', `an object with key material cannot be imported in state ${stateName(suppliedState)}`);
    }
    const kept = supplied.filter((a) => !NOT_STORED.has(a.name));

    if (wrapType === Enums.KeyWrapType.NotWrapped) obj = await unwrapObject(ctx, obj);
    const parsed = parseRegistrable(objectType, obj, kept);
    // What the server would set, then every supplied attribute in place of the server's.
    const init: Parameters<typeof initialAttributes>[0] = { uid, objectType, now: ctx.now(), client: kept, implicit: parsed.implicit };
    if (parsed.digest) init.digest = parsed.digest;
    const base = initialAttributes(init);
    const suppliedNames = new Set(kept.map((a) => a.name));
    const attributes = renumber([...base.attributes.filter((a) => !suppliedNames.has(a.name) && a.name !== 'State'), ...kept]);
    const state = suppliedState ?? base.state;
    attributes.push({ name: 'State', index: 0, value: T.enum(Tag.State, state) });
    await checkNewObject(ctx, objectType, attributes);

    const existing = await ctx.objects.replaceable(uid);
    if (existing && !replace) throw new KmipError('ObjectAlreadyExists', `an object with Unique Identifier '${uid}' exists (Replace Existing is not set)`);
    const material = encodeTtlv(parsed.object);
    try {
      if (existing) {
        const sealed = await ctx.objects.seal(uid, material);
        await ctx.objects.save(existing, { ...existing, objectType, state, attributes, material: sealed });
      } else {
        try {
          await ctx.objects.create({ uid, objectType, state, attributes, material });
        } catch (e) {
          if (e instanceof DuplicateObjectError) throw new KmipError('ObjectAlreadyExists', `an object with Unique Identifier '${uid}' was stored meanwhile`);
          throw e;
        }
      }
    } finally {
      material.fill(0);
    }
    ctx.log.info({ uid, objectType: enumValueName('ObjectType', objectType), replaced: existing !== undefined, wasDestroyed: existing ? isDestroyed(existing.state) : undefined }, 'imported an object');
    return [T.text(Tag.UniqueIdentifier, uid)];
  },
};
