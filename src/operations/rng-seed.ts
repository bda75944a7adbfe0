/**
 * RNG Seed (KMIP 1.2+; 1.4 §4.37; 2.1 §6.1 "RNG Seed").
 *
 * Request: Data (seed material). Response: Data Length, "the amount of seed data accepted".
 *
 * kmipd answers Data Length 0: it accepts none of it. Its random numbers come from node:crypto
 * (OpenSSL's DRBG, seeded and reseeded by the operating system), and node:crypto has no
 * interface to add entropy to that generator. Mixing the client's bytes into some separate
 * generator of kmipd's own would be cryptography outside node:crypto and would let a client
 * influence the randomness other clients receive. The seed is neither stored nor logged.
 * The OASIS profile allows this answer (CS-RNG-O-3: Data Length 0). Its other optional test
 * cases for the same seed are the alternatives a server may choose instead (O-1: all used, O-2:
 * 16 bytes used, O-4: Permission Denied); conformance/skip.ts skips them with this reason.
 * Refusing (Permission Denied) would tell the client it lacks a permission some other client
 * has; none has it, so the truthful answer is "accepted: 0 bytes".
 */
import { reqValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';

export const rngSeedHandler: OperationHandler = {
  operation: Enums.Operation.RNGSeed,
  name: 'RNGSeed',
  since: '1.2',
  async handle(_ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const seed = reqValue(payload, Tag.Data, 'ByteString');
    seed.fill(0);
    return [T.int(Tag.DataLength, 0)];
  },
};
