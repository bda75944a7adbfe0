/**
 * RNG Retrieve (KMIP 1.2+; 1.4 §4.36; 2.1 §6.1 "RNG Retrieve").
 *
 * Request: Data Length (bytes). Response: Data, that many bytes from node:crypto randomBytes
 * (OpenSSL's DRBG, seeded by the operating system).
 *
 * At most MAX_RNG_BYTES per request (Invalid Field beyond, as for a length of zero or less):
 * the answer must also fit the Maximum Response Size.
 */
import { randomBytes } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import { reqValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';

export const MAX_RNG_BYTES = 64 * 1024;

export const rngRetrieveHandler: OperationHandler = {
  operation: Enums.Operation.RNGRetrieve,
  name: 'RNGRetrieve',
  since: '1.2',
  async handle(_ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const n = reqValue(payload, Tag.DataLength, 'Integer');
    if (n <= 0) throw new KmipError('InvalidField', 'Data Length must be at least 1');
    if (n > MAX_RNG_BYTES) throw new KmipError('InvalidField', `kmipd returns at most ${MAX_RNG_BYTES} random bytes per request`);
    return [T.bytes(Tag.Data, randomBytes(n))];
  },
};
