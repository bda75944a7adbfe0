/**
 * Get Usage Allocation (KMIP 1.4 §4.14; 2.1 §6.1 "Get Usage Allocation"): the client takes
 * `Usage Limits Count` units of the object's Usage Limits for protection it applies itself.
 * The server counts the whole amount as consumed: the Usage Limits Count it keeps (server-
 * attributes.ts withUsageLimitsCount) goes down by it, and Last Change Date moves.
 *
 * Refused (Permission Denied, as in the OASIS test case TC-51 "Unable to allocate requested
 * amount"; 2.x Usage Limit Exceeded when the amount is not available):
 * - an object without Usage Limits, or that is not a key (nothing to allocate);
 * - an object not usable for protection now: not Active, or past its Protect Stop Date
 *   (1.4 §4.14: only between the Activation Date and the Protect Stop Date; Wrong Key
 *   Lifecycle State);
 * - an amount that is not positive or more than what is left.
 */
import { isV2 } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { reqValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { dateOf, firstValue, loadObject, seconds, stateName, touched, withAttribute } from './lifecycle.js';
import { withUsageLimitsCount } from './server-attributes.js';

const OT = Enums.ObjectType;
const KEYS: readonly number[] = [OT.SymmetricKey, OT.PrivateKey, OT.PublicKey, OT.SplitKey, OT.SecretData];

export const getUsageAllocationHandler: OperationHandler = {
  operation: Enums.Operation.GetUsageAllocation,
  name: 'GetUsageAllocation',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const amount = reqValue(payload, Tag.UsageLimitsCount, 'LongInteger');
    if (amount <= 0n) throw new KmipError('InvalidField', 'the Usage Limits Count asked for must be positive');
    const obj = await loadObject(ctx, uid, 'manage');
    const limits = firstValue(obj.attributes, 'Usage Limits');
    if (!KEYS.includes(obj.objectType) || limits?.type !== 'Structure') {
      throw new KmipError('PermissionDenied', 'the object has no Usage Limits to allocate from');
    }
    if (obj.state !== Enums.State.Active) throw new KmipError('WrongKeyLifecycleState', `the key is ${stateName(obj.state)}; allocations are for Active keys`);
    const stop = dateOf(obj.attributes, 'Protect Stop Date');
    if (stop !== undefined && stop <= seconds(ctx.now())) throw new KmipError('WrongKeyLifecycleState', 'the key\'s Protect Stop Date has passed');
    const counted = withUsageLimitsCount(limits) as StructureNode;
    const count = counted.value.find((c) => c.tag === Tag.UsageLimitsCount);
    const left = count?.type === 'LongInteger' ? count.value : undefined;
    if (left === undefined) throw new KmipError('PermissionDenied', 'the object\'s Usage Limits have no total to allocate from');
    if (amount > left) {
      throw new KmipError(isV2(ctx.version) ? 'UsageLimitExceeded' : 'PermissionDenied', `unable to allocate ${amount}: the Usage Limits allow ${left} more`);
    }
    const next = T.struct(counted.tag, counted.value.map((c) => (c.tag === Tag.UsageLimitsCount ? T.long(Tag.UsageLimitsCount, left - amount) : c)));
    await ctx.objects.save(obj, touched({ ...obj, attributes: withAttribute(obj.attributes, 'Usage Limits', next) }, ctx.now()));
    return [T.text(Tag.UniqueIdentifier, uid)];
  },
};
