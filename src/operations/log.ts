/**
 * Log (KMIP 2.0/2.1 §6.1): Log Message (Text String, required) -> nothing. The client's text is
 * written to the audit trail (DIR/audit/audit.log) in the record of this batch item, as its
 * `message`, next to who sent it; `kmipd audit show` prints it. The response, like that of any
 * audited request, is sent only once the record is durable.
 *
 * The text is the client's: at most MAX_LOG_MESSAGE_CHARS characters (longer: Invalid Field,
 * nothing recorded), stored as a JSON string (control characters escaped), never interpreted,
 * and never written to the server log.
 */
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import type { OperationHandler } from './context.js';

/** The longest Log Message recorded (the audit trail's limit for one value). */
export const MAX_LOG_MESSAGE_CHARS = 1024;

export const logHandler: OperationHandler = {
  operation: Enums.Operation.Log,
  name: 'Log',
  since: '2.0',
  async handle(ctx, payload) {
    const text = optValue(payload, Tag.LogMessage, 'TextString');
    if (text === undefined) throw new KmipError('MissingData', 'Log needs a Log Message');
    if (text.length === 0) throw new KmipError('InvalidField', 'the Log Message is empty');
    if (text.length > MAX_LOG_MESSAGE_CHARS) throw new KmipError('InvalidField', `the Log Message is longer than ${MAX_LOG_MESSAGE_CHARS} characters`);
    ctx.auditMessage(text);
    return [];
  },
};
