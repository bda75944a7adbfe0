/**
 * Notify (KMIP 1.4 §5.1; 2.0/2.1 §7 "Notify"): a server-to-client operation, received here from a
 * trusted upstream key server telling kmipd that attributes of an object it replicated have
 * changed (see upstream.ts for who may send it and how its attributes are taken).
 *
 * Request: Unique Identifier; the attributes that changed ("This includes at least the Last
 * Change Date attribute"), 1.x as Attribute structures, 2.x in an Attributes structure. A deleted
 * attribute travels in 1.x as an Attribute without Attribute Value (that Attribute Index; 0 when
 * absent), in 2.x as an Attribute Reference (every instance). Response: an empty payload.
 *
 * The object must be one the upstream may manage (Item Not Found otherwise, as for any object a
 * client cannot see). A destroyed object is still notified (its attributes outlive its material);
 * a State of Destroyed removes the key material as Destroy does. The object's key material and
 * what it implies (Cryptographic Algorithm and Length, Digest...) cannot be changed.
 */
import { isV2 } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { Enums, Tag } from '../spec/index.js';
import type { StructureNode, TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { loadObject } from './lifecycle.js';
import { applyPushedChanges, checkPushedAttributes, pushedTarget, readPushedAttributes } from './upstream.js';

export const notifyHandler: OperationHandler = {
  operation: Enums.Operation.Notify,
  name: 'Notify',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = pushedTarget(ctx, payload, 'Notify');
    const { changes, deletions } = readPushedAttributes(payload);
    if (changes.length === 0 && deletions.length === 0) throw new KmipError('MissingData', 'Notify names no changed attribute');
    const obj = await loadObject(ctx, uid, 'manage');
    checkPushedAttributes(changes, obj.objectType, ctx.version);
    const next = applyPushedChanges(ctx, obj, changes, deletions, isV2(ctx.version) || payload.value.some((c) => c.tag === Tag.Attributes));
    await ctx.objects.save(obj, next);
    ctx.log.info({ uid, changed: [...new Set(changes.map((a) => a.name))], deleted: deletions.map((d) => d.name) }, 'Notify: attributes updated by an upstream');
    return [];
  },
};
