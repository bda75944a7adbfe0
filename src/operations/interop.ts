/**
 * Interop (KMIP 2.0+; 2.1 §6.1 "Interop"): a client marks the Begin and End of an
 * interoperability test case, or asks for a Reset, each with an Interop Identifier (the test
 * case's name, e.g. BL-M-1-21).
 *
 * Request: Interop Function (Begin, End, Reset), Interop Identifier. Response: empty payload.
 *
 * kmipd acknowledges each function and logs it at info with the identifier and the client. It
 * keeps no state tied to an Interop Identifier (no test mode, no per-test object set), so Reset
 * has nothing to put back: objects a client created during a test stay until the client
 * destroys them, as always; an Interop message never deletes or changes anything.
 * A function this version does not define is Invalid Field; a missing field, Missing Data.
 */
import { KmipError } from '../codec/errors.js';
import { reqValue } from '../codec/node.js';
import { Enums, Tag, enumValueInVersion, enumValueName } from '../spec/index.js';
import type { StructureNode, TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';

/** Longest Interop Identifier accepted (a test-case name; bounds what reaches the log). */
export const MAX_INTEROP_IDENTIFIER = 256;

export const interopHandler: OperationHandler = {
  operation: Enums.Operation.Interop,
  name: 'Interop',
  since: '2.0',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const fn = reqValue(payload, Tag.InteropFunction, 'Enumeration');
    if (!enumValueInVersion('InteropFunction', fn, ctx.version)) throw new KmipError('InvalidField', `Interop Function ${fn} does not exist in KMIP ${ctx.version}`);
    const id = reqValue(payload, Tag.InteropIdentifier, 'TextString');
    if (id.length === 0 || id.length > MAX_INTEROP_IDENTIFIER) throw new KmipError('InvalidField', `the Interop Identifier must be 1 to ${MAX_INTEROP_IDENTIFIER} characters`);
    const what = enumValueName('InteropFunction', fn) ?? String(fn);
    ctx.log.info({ interop: what, identifier: id, client: ctx.identity.name }, fn === Enums.InteropFunction.Reset ? 'interop reset: kmipd keeps no per-test state, nothing to reset' : `interop test case ${what.toLowerCase()}`);
    return [];
  },
};
