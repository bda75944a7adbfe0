/**
 * Revoke (KMIP 1.4 §4.20; 2.1 §6.1 "Revoke").
 *
 * Request: Unique Identifier (or the ID Placeholder), Revocation Reason (code and optional
 * message), Compromise Occurrence Date. Response: Unique Identifier.
 *
 * - Key Compromise / CA Compromise: the object becomes Compromised (a destroyed one Destroyed
 *   Compromised); Compromise Date is now; Compromise Occurrence Date is the one given, else the
 *   object's Initial Date (1.4 §4.20: "SHOULD be set to the Initial Date").
 * - Any other reason: the object becomes Deactivated, Deactivation Date now. An object already
 *   Deactivated keeps its Deactivation Date and only records the reason.
 * - Compromise Occurrence Date with a non-compromise reason is refused (1.4 §4.20: it "SHALL NOT
 *   be specified for other reasons"): Invalid Field.
 * - Revocation Reason is recorded as given. Transitions outside the state machine (e.g. a
 *   Compromised key revoked for Cessation of Operation) are Wrong Key Lifecycle State (1.x:
 *   Permission Denied).
 */
import { KmipError } from '../codec/errors.js';
import { opt, optValue, req, reqValue } from '../codec/node.js';
import { Enums, Tag, enumValueName } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { State, assertTransition, dateNode, dateOf, dateValue, loadObject, seconds, touched, withAttribute, withState } from './lifecycle.js';

const RRC = Enums.RevocationReasonCode;

export const revokeHandler: OperationHandler = {
  operation: Enums.Operation.Revoke,
  name: 'Revoke',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const uid = ctx.uidOrPlaceholder(payload);
    const reason = req(payload, Tag.RevocationReason, 'Structure');
    const code = reqValue(reason, Tag.RevocationReasonCode, 'Enumeration');
    if (enumValueName('RevocationReasonCode', code) === undefined && code >>> 0 < 0x80000000) {
      throw new KmipError('InvalidField', `unknown Revocation Reason Code ${code}`);
    }
    const message = optValue(reason, Tag.RevocationMessage, 'TextString');
    const occurrenceNode = opt(payload, Tag.CompromiseOccurrenceDate, 'DateTime');
    const compromise = code === RRC.KeyCompromise || code === RRC.CACompromise;
    if (!compromise && occurrenceNode) {
      throw new KmipError('InvalidField', 'Compromise Occurrence Date is only given with a Key Compromise or CA Compromise reason');
    }

    const obj = await loadObject(ctx, uid, 'manage');
    const now = ctx.now();
    const nowS = seconds(now);
    const reasonNode = T.struct(Tag.RevocationReason, [
      T.enum(Tag.RevocationReasonCode, code),
      ...(message !== undefined ? [T.text(Tag.RevocationMessage, message)] : []),
    ]);

    let next;
    if (compromise) {
      if (obj.state === State.Compromised || obj.state === State.DestroyedCompromised) {
        // Already compromised: record the (new) reason, keep the first compromise dates.
        next = touched({ ...obj, attributes: withAttribute(obj.attributes, 'Revocation Reason', reasonNode) }, now);
      } else {
        const target = obj.state === State.Destroyed ? State.DestroyedCompromised : State.Compromised;
        assertTransition(obj.state, target, 'Revoke (compromise)');
        next = withState(obj, target, now);
        const occurred = dateValue(occurrenceNode) ?? dateOf(obj.attributes, 'Initial Date') ?? nowS;
        let attrs = withAttribute(next.attributes, 'Compromise Occurrence Date', dateNode(Tag.CompromiseOccurrenceDate, occurred));
        attrs = withAttribute(attrs, 'Compromise Date', dateNode(Tag.CompromiseDate, nowS));
        attrs = withAttribute(attrs, 'Revocation Reason', reasonNode);
        next = { ...next, attributes: attrs };
      }
    } else if (obj.state === State.Deactivated) {
      next = touched({ ...obj, attributes: withAttribute(obj.attributes, 'Revocation Reason', reasonNode) }, now);
    } else {
      assertTransition(obj.state, State.Deactivated, 'Revoke');
      next = withState(obj, State.Deactivated, now);
      let attrs = withAttribute(next.attributes, 'Deactivation Date', dateNode(Tag.DeactivationDate, nowS));
      attrs = withAttribute(attrs, 'Revocation Reason', reasonNode);
      next = { ...next, attributes: attrs };
    }
    await ctx.objects.save(obj, next);
    ctx.log.info({ uid: obj.uid, reason: enumValueName('RevocationReasonCode', code) ?? code }, 'revoked');
    return [T.text(Tag.UniqueIdentifier, obj.uid)];
  },
};
