/**
 * Obtain Lease (KMIP 1.4 §4.10; 2.1 §6.1 "Obtain Lease"): the client asks for a new lease on
 * an object's material. Request: Unique Identifier (or the ID Placeholder). Response: Unique
 * Identifier, Lease Time, Last Change Date (so that the client sees whether its cached copy is
 * still current).
 *
 * - The client must be able to use the object's material (another identity's object is Item
 *   Not Found, as for Get); a destroyed object has none (Object Destroyed; 1.x Item Not Found).
 * - Server policy: no lease on a compromised object (Compromised, Destroyed Compromised: Permission
 *   Denied, as the 1.0-1.2 test case TC-95 expects), nor on one that cannot be used yet
 *   (Pre-Active: Wrong Key Lifecycle State, which 1.x clients receive as Permission Denied).
 * - Lease Time: a Lease Time stored on the object, else the server's (the `leaseTimeSeconds`
 *   setting, the same value GetAttributes shows: server-attributes.ts) for cryptographic
 *   objects, else 0 (no limit; an Opaque Object has no Lease Time). The lease is not recorded:
 *   kmipd does not track leases per client.
 */
import { KmipError } from '../codec/errors.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import { leaseTimeSeconds } from './attribute-support.js';
import type { OperationContext, OperationHandler } from './context.js';
import { State, dateNode, dateOf, intOf, isDestroyed, loadObject, stateName } from './lifecycle.js';
import { isCryptographicObject } from './server-attributes.js';

export const obtainLeaseHandler: OperationHandler = {
  operation: Enums.Operation.ObtainLease,
  name: 'ObtainLease',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const obj = await loadObject(ctx, uid, 'material');
    if (obj.state === State.Compromised || obj.state === State.DestroyedCompromised) {
      throw new KmipError('PermissionDenied', `the object is ${stateName(obj.state)}; no lease is given`);
    }
    if (isDestroyed(obj.state)) throw new KmipError('ObjectDestroyed', 'the object has been destroyed');
    if (obj.state === State.PreActive) throw new KmipError('WrongKeyLifecycleState', 'the object is Pre-Active; no lease is given before it is activated');
    const lease = intOf(obj.attributes, 'Lease Time') ?? (isCryptographicObject(obj.objectType) ? leaseTimeSeconds(ctx) : 0);
    const changed = dateOf(obj.attributes, 'Last Change Date') ?? BigInt(Math.floor(obj.updatedAt / 1000));
    ctx.log.info({ uid: obj.uid, leaseSeconds: lease }, 'lease obtained');
    return [T.text(Tag.UniqueIdentifier, obj.uid), T.interval(Tag.LeaseTime, lease), dateNode(Tag.LastChangeDate, changed)];
  },
};
