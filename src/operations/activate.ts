/**
 * Activate (KMIP 1.4 §4.19; 2.1 §6.1 "Activate"): Pre-Active -> Active, Activation Date now.
 *
 * Only a Pre-Active object can be activated; any other state is Wrong Key Lifecycle State
 * (2.x), which 1.x clients receive as Permission Denied (the 1.x error for "object is not in
 * the Pre-Active state"). Admins of the access policy may activate objects they do not own.
 */
import { KmipError } from '../codec/errors.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { State, dateNode, loadObject, seconds, stateName, withAttribute, withState } from './lifecycle.js';

export const activateHandler: OperationHandler = {
  operation: Enums.Operation.Activate,
  name: 'Activate',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const obj = await loadObject(ctx, uid, 'manage');
    if (obj.state !== State.PreActive) {
      throw new KmipError('WrongKeyLifecycleState', `only a Pre-Active object can be activated; this one is ${stateName(obj.state)}`);
    }
    const now = ctx.now();
    const next = withState(obj, State.Active, now);
    next.attributes = withAttribute(next.attributes, 'Activation Date', dateNode(Tag.ActivationDate, seconds(now)));
    await ctx.objects.save(obj, next);
    ctx.log.info({ uid: obj.uid }, 'activated');
    return [T.text(Tag.UniqueIdentifier, obj.uid)];
  },
};
