/**
 * Check (KMIP 1.4 §4.10; 2.1 §6.1 "Check"): may the client use the object as it describes?
 *
 * Request: Unique Identifier (or the ID Placeholder), Usage Limits Count, Cryptographic Usage
 * Mask, Lease Time. Response: Unique Identifier when every check passes.
 *
 * - Cryptographic Usage Mask: every bit asked for must be set in the object's mask (an object
 *   without a mask allows nothing). Fails with Incompatible Cryptographic Usage Mask (2.x; 1.x:
 *   Permission Denied, the 1.x error for "not allowed to use the object as specified").
 * - Usage Limits Count: must not exceed what the object's Usage Limits still allow (its count,
 *   or its total when no count is kept); an object without Usage Limits is unlimited. Fails with
 *   Usage Limit Exceeded (2.x) / Permission Denied (1.x).
 * - Lease Time: must not exceed the object's Lease Time attribute, when it has one (Check
 *   obtains no lease). Fails with Permission Denied.
 * - A destroyed object can no longer be used: Object Destroyed (1.x: Item Not Found).
 *
 * Not done (the executor has no payload on a failed item): the 1.x response listing the fields
 * that failed, and emptying the ID Placeholder after a failure.
 */
import { isV2 } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import { Enums, Tag, maskNames } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { firstValue, intOf, isDestroyed, loadObject } from './lifecycle.js';
import { leaseTimeSeconds } from './attribute-support.js';
import { isCryptographicObject } from './server-attributes.js';

function remainingUses(v: TtlvNode | undefined): bigint | undefined {
  if (v?.type !== 'Structure') return undefined;
  const count = v.value.find((c) => c.tag === Tag.UsageLimitsCount);
  if (count?.type === 'LongInteger') return count.value;
  const total = v.value.find((c) => c.tag === Tag.UsageLimitsTotal);
  return total?.type === 'LongInteger' ? total.value : undefined;
}

export const checkHandler: OperationHandler = {
  operation: Enums.Operation.Check,
  name: 'Check',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const count = optValue(payload, Tag.UsageLimitsCount, 'LongInteger');
    const mask = optValue(payload, Tag.CryptographicUsageMask, 'Integer');
    const lease = optValue(payload, Tag.LeaseTime, 'Interval');

    const obj = await loadObject(ctx, uid, 'read');
    if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'the object has been destroyed');
    if (mask !== undefined) {
      const have = (intOf(obj.attributes, 'Cryptographic Usage Mask') ?? 0) >>> 0;
      const missing = (mask >>> 0) & ~have;
      if (missing !== 0) {
        const names = maskNames('CryptographicUsageMask', missing >>> 0)?.join(', ') ?? `0x${(missing >>> 0).toString(16)}`;
        throw new KmipError('IncompatibleCryptographicUsageMask', `the object's Cryptographic Usage Mask does not allow: ${names}`);
      }
    }
    if (count !== undefined) {
      const left = remainingUses(firstValue(obj.attributes, 'Usage Limits'));
      if (left !== undefined && count > left) {
        throw new KmipError(isV2(ctx.version) ? 'UsageLimitExceeded' : 'PermissionDenied', `the object's Usage Limits allow ${left} more, not ${count}`);
      }
    }
    if (lease !== undefined) {
      const max = intOf(obj.attributes, 'Lease Time') ?? (isCryptographicObject(obj.objectType) && leaseTimeSeconds(ctx) > 0 ? leaseTimeSeconds(ctx) : undefined);
      if (max !== undefined && lease > max) {
        throw new KmipError('PermissionDenied', `the object's Lease Time is ${max} seconds, less than ${lease}`);
      }
    }
    return [T.text(Tag.UniqueIdentifier, obj.uid)];
  },
};
