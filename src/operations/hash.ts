/**
 * Hash (KMIP 1.2+; 1.4 §4.35; 2.1 §6.1 "Hash").
 *
 * Request: Cryptographic Parameters (Hashing Algorithm), Data, Correlation Value, Init
 * Indicator, Final Indicator. Response: Data (the digest: one-shot or last part), Correlation
 * Value (a stream that goes on).
 *
 * - SHA-1, SHA-224/256/384/512, SHA-512/224, SHA-512/256, SHA3-224/256/384/512 (node:crypto
 *   createHash); in 2.x the SHA-3 functions may also be named as the Cryptographic Algorithm.
 *   MD2, MD4, MD5 and the rest: Unsupported Cryptographic Parameters.
 * - No key is involved: no state, mask or usage checks. Streams are still bound to the client
 *   identity that opened them. Parts after the first may repeat the Cryptographic Parameters
 *   (TC-STREAM-HASH-*); the first part's algorithm is kept.
 */
import { createHash, type Hash } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import { opt, optValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { hashForHashOperation, parseCryptoParams } from './crypto-params.js';
import { streamKind, streamPhase, streams, withLease } from './streams.js';

const EMPTY = Buffer.alloc(0);

interface HashStream {
  hash: Hash;
}

const HASH_STREAM = streamKind<HashStream>('Hash');

function response(o: { digest?: Buffer; cv?: Buffer }): TtlvNode[] {
  const out: TtlvNode[] = [];
  if (o.digest) out.push(T.bytes(Tag.Data, o.digest));
  if (o.cv) out.push(T.bytes(Tag.CorrelationValue, o.cv));
  return out;
}

export const hashHandler: OperationHandler = {
  operation: Enums.Operation.Hash,
  name: 'Hash',
  since: '1.2',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const { phase, correlationValue } = streamPhase(payload);
    const data = optValue(payload, Tag.Data, 'ByteString');
    if (correlationValue !== undefined) {
      const lease = streams.take(ctx, HASH_STREAM, correlationValue, undefined);
      return withLease(streams, lease, async (s) => {
        s.hash.update(data ?? EMPTY);
        if (phase === 'final') return { result: response({ digest: s.hash.digest() }), done: true };
        return { result: response({ cv: lease.correlationValue }), done: false };
      });
    }
    const params = opt(payload, Tag.CryptographicParameters, 'Structure');
    if (!params) throw new KmipError('MissingData', 'Hash needs Cryptographic Parameters with a Hashing Algorithm');
    const info = hashForHashOperation(parseCryptoParams(params));
    if (phase === 'once' && data === undefined) throw new KmipError('MissingData', 'Hash needs Data');
    const hash = createHash(info.node).update(data ?? EMPTY);
    if (phase === 'once') return response({ digest: hash.digest() });
    return response({ cv: streams.open(ctx, HASH_STREAM, undefined, { hash }) });
  },
};
