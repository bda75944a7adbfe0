/**
 * Destroy (KMIP 1.4 §4.21; 2.1 §6.1 "Destroy"): the key material is removed for good; the
 * object stays as metadata (its attributes, State Destroyed or Destroyed Compromised, Destroy
 * Date), so that Get Attributes and Locate still find it.
 *
 * Refused while the object is Active (1.4 §4.21: "the object SHALL NOT be Active"; it must be
 * revoked or deactivated first): Wrong Key Lifecycle State, which 1.x clients receive as
 * Permission Denied, and 2.0 clients too (the KMIP 2.0 profile test case AKLC-M-2-20 expects it,
 * as the 2.0 test cases do wherever 2.1 has Wrong Key Lifecycle State). Destroying an already
 * destroyed object is Object Destroyed (1.x: Item Not Found).
 */
import { KmipError } from '../codec/errors.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { State, assertTransition, dateNode, isDestroyed, loadObject, seconds, withAttribute, withState } from './lifecycle.js';

export const destroyHandler: OperationHandler = {
  operation: Enums.Operation.Destroy,
  name: 'Destroy',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const obj = await loadObject(ctx, uid, 'manage');
    if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'the object has already been destroyed');
    if (obj.state === State.Active) {
      throw new KmipError(ctx.version === '2.0' ? 'PermissionDenied' : 'WrongKeyLifecycleState', 'an Active object cannot be destroyed; revoke it first');
    }
    const target = obj.state === State.Compromised ? State.DestroyedCompromised : State.Destroyed;
    assertTransition(obj.state, target, 'Destroy');
    const now = ctx.now();
    const next = withState(obj, target, now);
    next.attributes = withAttribute(next.attributes, 'Destroy Date', dateNode(Tag.DestroyDate, seconds(now)));
    next.material = null;
    await ctx.objects.save(obj, next);
    ctx.log.info({ uid: obj.uid }, 'destroyed');
    return [T.text(Tag.UniqueIdentifier, obj.uid)];
  },
};
