/**
 * Obtain Lease (KMIP 1.4 §4.15; 2.1 §6.1.32 "Obtain Lease"): a new lease on an object. The
 * answer is the object's Unique Identifier, the lease granted (the server's Lease Time, see
 * server-attributes.ts and the `leaseTimeSeconds` setting; 0 means no lease limit) and its Last
 * Change Date, against which the client can tell whether what it cached is stale.
 *
 * A lease is the right to go on using the object, so none is given for an object that must
 * not be used any more: Compromised or Destroyed (Permission Denied, as in the OASIS test case
 * TC-95: "no lease given" for a Compromised key). Objects that are not cryptographic objects
 * (Opaque Object) have no Lease Time attribute: their lease is 0, no limit.
 */
import { KmipError } from '../codec/errors.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { leaseTimeSeconds } from './attribute-support.js';
import type { OperationContext, OperationHandler } from './context.js';
import { dateOf, loadObject, stateName } from './lifecycle.js';
import { isCryptographicObject } from './server-attributes.js';

const S = Enums.State;
const NO_LEASE: readonly number[] = [S.Compromised, S.Destroyed, S.DestroyedCompromised];

export const obtainLeaseHandler: OperationHandler = {
  operation: Enums.Operation.ObtainLease,
  name: 'ObtainLease',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const obj = await loadObject(ctx, uid, 'read');
    if (NO_LEASE.includes(obj.state)) throw new KmipError('PermissionDenied', `the object is ${stateName(obj.state)}: no lease is given`);
    const lease = isCryptographicObject(obj.objectType) ? leaseTimeSeconds(ctx) : 0;
    const changed = dateOf(obj.attributes, 'Last Change Date') ?? BigInt(Math.floor(obj.updatedAt / 1000));
    return [T.text(Tag.UniqueIdentifier, uid), T.interval(Tag.LeaseTime, lease), T.date(Tag.LastChangeDate, changed)];
  },
};
