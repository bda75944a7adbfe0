/**
 * Poll and Cancel (KMIP 1.4 §4.28 and §4.27; 2.1 §6.1 "Poll" and "Cancel"): the client's handle on an
 * operation kmipd answered with Operation Pending (the table and its rules: src/server/async.ts).
 *
 * - Poll (request: Asynchronous Correlation Value): answers with the pending operation's own
 *   batch item, its Operation and Result Status: the final Success payload or Operation Failed
 *   reason, or Operation Pending again (with the value) while it still runs. A Poll starts a
 *   queued operation at once and waits a little for it. A value
 *   this client does not hold (unknown, expired, another identity's, accepted by another node)
 *   is Invalid Asynchronous Correlation Value, which 1.x clients receive as Item Not Found.
 * - Cancel (request: Asynchronous Correlation Value; response: the value and a Cancellation
 *   Result): Canceled while the operation is still queued (it never runs), Unable to Cancel
 *   while it runs, Completed / Failed once it has finished, Unavailable for a value this client
 *   does not hold.
 * Neither is ever answered asynchronously itself.
 */
import { KmipError } from '../codec/errors.js';
import { reqValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { AsyncAccess, OperationContext, OperationHandler } from './context.js';

function asyncAccess(ctx: OperationContext): AsyncAccess {
  if (!ctx.async) throw new KmipError('OperationNotSupported', 'this server runs no asynchronous operations');
  return ctx.async;
}

export const pollHandler: OperationHandler = {
  operation: Enums.Operation.Poll,
  name: 'Poll',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const value = reqValue(payload, Tag.AsynchronousCorrelationValue, 'ByteString');
    const answer = await asyncAccess(ctx).poll(value);
    if (!ctx.answerAs) throw new KmipError('OperationNotSupported', 'Poll is not available here');
    ctx.answerAs(answer);
    return answer.payload ?? [];
  },
};

export const cancelHandler: OperationHandler = {
  operation: Enums.Operation.Cancel,
  name: 'Cancel',
  since: '1.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const value = reqValue(payload, Tag.AsynchronousCorrelationValue, 'ByteString');
    const result = asyncAccess(ctx).cancel(value);
    if (result === Enums.CancellationResult.Canceled) ctx.log.info('asynchronous operation canceled');
    return [T.bytes(Tag.AsynchronousCorrelationValue, value), T.enum(Tag.CancellationResult, result)];
  },
};
