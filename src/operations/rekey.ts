/**
 * Re-key (KMIP 1.4 §4.4; 2.1 §6.1 "Re-key"): a replacement for an existing symmetric key.
 *
 * Request: Unique Identifier (or the ID Placeholder), Offset, 1.x Template-Attribute / 2.x
 * Attributes (+ Protection Storage Masks). Response: the replacement's Unique Identifier (the
 * executor makes it the ID Placeholder).
 *
 * The replacement gets fresh key material of the same algorithm and length and the existing
 * key's attributes, except (1.4 §4.4 table "Re-key Attribute Requirements"):
 * - Unique Identifier new; Initial Date and Last Change Date now; Fresh true; Digest of the new
 *   material; State from its dates;
 * - Destroy Date, Compromise Occurrence Date, Compromise Date, Revocation Reason, Archive Date
 *   not set;
 * - Name: the existing key's names move to the replacement (removed from the existing key);
 *   names in the request are added to them;
 * - Usage Limits: copied, with the count reset to the total;
 * - Link: a Replaced Object Link to the existing key; the existing key gets a Replacement
 *   Object Link to the replacement (the old key's own replacement links are not copied);
 * - Dates without Offset: Activation, Process Start, Protect Stop and Deactivation Date copied;
 *   with Offset: Activation Date = Initial Date + Offset and each other date shifted by
 *   (new Activation Date - old Activation Date) (1.4 §4.4 table "Computing New Dates from
 *   Offset during Re-key");
 * - any attribute in the request replaces the copied one (Name instances are added).
 * The existing key's state is not changed (the spec leaves it to the client to revoke it).
 */
import type { KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { encodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { attributeRule, checkInitialAttributes, readRequestAttributes } from './attribute-rules.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkProtectionStorageMasks, dropEchoedAttributes, generateSymmetricKey, symmetricKeyObject } from './create.js';
import {
  checkNoDuplicateNames,
  dateNode,
  dateOf,
  digestNode,
  enumOf,
  firstValue,
  initialAttributes,
  intOf,
  isDestroyed,
  linkNode,
  linkType,
  loadObject,
  renumber,
  seconds,
  touched,
  withoutAttribute,
} from './lifecycle.js';
import { checkNewObject } from './constraints.js';

const LT = Enums.LinkType;

/** Not copied to the replacement: set anew by the server, or not set at all. */
export const NOT_COPIED: ReadonlySet<string> = new Set([
  'Unique Identifier',
  'Object Type',
  'State',
  'Initial Date',
  'Last Change Date',
  'Fresh',
  'Digest',
  'Destroy Date',
  'Compromise Occurrence Date',
  'Compromise Date',
  'Revocation Reason',
  'Archive Date',
  'Key Value Present',
  'Key Value Location',
  'Original Creation Date',
  'Random Number Generator',
  'Short Unique Identifier',
  'Always Sensitive',
  'Never Extractable',
  'Activation Date',
  'Process Start Date',
  'Protect Stop Date',
  'Deactivation Date',
  'Usage Limits',
]);

const SHIFTED_DATES: readonly [string, number][] = [
  ['Process Start Date', Tag.ProcessStartDate],
  ['Protect Stop Date', Tag.ProtectStopDate],
  ['Deactivation Date', Tag.DeactivationDate],
];

/** Usage Limits with the count reset to the total (1.1+ shape; other shapes copied as they are). */
function resetUsageLimits(v: TtlvNode): TtlvNode {
  if (v.type !== 'Structure') return v;
  const total = v.value.find((c) => c.tag === Tag.UsageLimitsTotal);
  if (total?.type !== 'LongInteger') return v;
  const rest = v.value.filter((c) => c.tag !== Tag.UsageLimitsCount);
  const at = rest.indexOf(total) + 1;
  return T.struct(v.tag, [...rest.slice(0, at), T.long(Tag.UsageLimitsCount, total.value), ...rest.slice(at)]);
}

export const rekeyHandler: OperationHandler = {
  operation: Enums.Operation.ReKey,
  name: 'ReKey',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const offset = optValue(payload, Tag.Offset, 'Interval');
    checkProtectionStorageMasks(payload);
    const objectType = Enums.ObjectType.SymmetricKey;
    const requested = dropEchoedAttributes(readRequestAttributes(payload, ctx.version, false), objectType);
    checkInitialAttributes(requested, 'create', objectType, ctx.version);

    const old = await loadObject(ctx, uid, 'manage');
    if (old.objectType !== objectType) throw new KmipError('IllegalObjectType', 'Re-key replaces symmetric keys; use Re-key Key Pair for key pairs');
    if (isDestroyed(old.state)) throw new KmipError('ObjectDestroyed', 'the existing key has been destroyed');
    const alg = enumOf(old.attributes, 'Cryptographic Algorithm');
    const length = intOf(old.attributes, 'Cryptographic Length');
    if (alg === undefined || length === undefined) throw new KmipError('MissingData', 'the existing key has no Cryptographic Algorithm or Length to re-key with');
    for (const [name, v] of [['Cryptographic Algorithm', alg], ['Cryptographic Length', length]] as const) {
      const asked = firstValue(requested, name);
      if (asked && (asked.type === 'Enumeration' || asked.type === 'Integer') && asked.value !== v) {
        throw new KmipError('InvalidField', `Re-key keeps the ${name} of the existing key`);
      }
    }

    const now = ctx.now();
    const nowS = seconds(now);
    const newUid = ctx.objects.newUid();

    // Attributes carried over.
    let attrs: KmipAttribute[] = old.attributes.filter((a) => {
      if (NOT_COPIED.has(a.name)) return false;
      if (a.name === 'Link') {
        const t = linkType(a.value);
        return t !== LT.ReplacementObjectLink && t !== LT.ReplacedObjectLink;
      }
      return true;
    });
    const ul = firstValue(old.attributes, 'Usage Limits');
    if (ul) attrs.push({ name: 'Usage Limits', index: 0, value: resetUsageLimits(ul) });
    const oldActivation = dateOf(old.attributes, 'Activation Date');
    if (offset === undefined) {
      for (const name of ['Activation Date', 'Process Start Date', 'Protect Stop Date', 'Deactivation Date']) {
        const v = firstValue(old.attributes, name);
        if (v) attrs.push({ name, index: 0, value: v });
      }
    } else {
      const newActivation = nowS + BigInt(offset);
      attrs.push({ name: 'Activation Date', index: 0, value: dateNode(Tag.ActivationDate, newActivation) });
      if (oldActivation !== undefined) {
        for (const [name, tag] of SHIFTED_DATES) {
          const d = dateOf(old.attributes, name);
          if (d !== undefined) attrs.push({ name, index: 0, value: dateNode(tag, d + (newActivation - oldActivation)) });
        }
      }
    }
    attrs.push({ name: 'Link', index: 0, value: linkNode(LT.ReplacedObjectLink, old.uid) });

    // The request's attributes: Names (and other multi-instance attributes) add, others replace.
    for (const a of requested) {
      const multi = attributeRule(a.name)?.multi ?? true;
      if (!multi) attrs = attrs.filter((x) => x.name !== a.name);
      attrs.push({ name: a.name, index: 0, value: a.value });
    }
    attrs = renumber(attrs);
    checkNoDuplicateNames(attrs);

    const key = generateSymmetricKey(alg, length);
    let material: Buffer | undefined;
    try {
      const { attributes, state } = initialAttributes({
        uid: newUid,
        objectType,
        now,
        client: attrs,
        digest: digestNode(key, Enums.KeyFormatType.Raw),
      });
      await checkNewObject(ctx, objectType, attributes);
      // The existing key: names move to the replacement; it points at its replacement.
      let oldAttrs = withoutAttribute(old.attributes, 'Name');
      oldAttrs = withoutAttribute(oldAttrs, 'Link', (v) => linkType(v) === LT.ReplacementObjectLink);
      oldAttrs = renumber([...oldAttrs, { name: 'Link', index: 0, value: linkNode(LT.ReplacementObjectLink, newUid) }]);
      await ctx.objects.save(old, touched({ ...old, attributes: oldAttrs }, now));

      material = encodeTtlv(symmetricKeyObject(key, Enums.KeyFormatType.Raw, alg, length));
      await ctx.objects.create({ uid: newUid, objectType, state, attributes, material });
      ctx.log.info({ uid: old.uid, replacement: newUid }, 're-keyed');
      return [T.text(Tag.UniqueIdentifier, newUid)];
    } finally {
      key.fill(0);
      material?.fill(0);
    }
  },
};
