/**
 * MAC (KMIP 1.2+; 1.4 §4.33; 2.1 §6.1 "MAC").
 *
 * Request: Unique Identifier (or the ID Placeholder), Cryptographic Parameters, Data,
 * Correlation Value, Init Indicator, Final Indicator. Response: Unique Identifier, MAC Data
 * (one-shot or last part), Correlation Value (a stream that goes on).
 *
 * - HMAC with SHA-1, SHA-224/256/384/512 and SHA3-224/256/384/512 (node:crypto createHmac) over
 *   the raw bytes of a Symmetric Key. The algorithm is the Cryptographic Algorithm of the
 *   Cryptographic Parameters (request, else key attribute), else the key's own: CS-AC-M-4..6
 *   and TC-STREAM-MAC-1 register an AES key whose Cryptographic Parameters say HMAC_SHA256.
 * - AES-CMAC (RFC 4493) for an AES key without an HMAC algorithm (or Block Cipher Mode CMAC):
 *   node:crypto has no CMAC, so it is built on aes-*-ecb (crypto-primitives.ts).
 * - Key checks (Active, MAC Generate in the usage mask, Protect Stop Date) and Usage Limits:
 *   crypto-keys.ts. Streams: streams.ts.
 */
import { createHmac, type Hmac } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkKeyForUse, consumeUsage, keyForUse, releaseKey, type KeyForUse } from './crypto-keys.js';
import { chooseParams, cryptoFailure, macAlgorithm } from './crypto-params.js';
import { AesCmac } from './crypto-primitives.js';
import { streamKind, streamPhase, streams, withLease, type StreamPhase } from './streams.js';

const EMPTY = Buffer.alloc(0);
export const MAC_KEY_TYPES: readonly number[] = [Enums.ObjectType.SymmetricKey];

/** A MAC being computed. */
export type MacState = { kind: 'hmac'; obj: Hmac } | { kind: 'cmac'; obj: AesCmac };

/** Starts the MAC the request (or the key) asks for. */
export function newMac(key: KeyForUse, payload: StructureNode): MacState {
  const { params } = chooseParams(payload, key.obj.attributes);
  const alg = macAlgorithm(params, key.algorithm);
  const k = key.symmetric;
  if (!k) throw cryptoFailure('not a symmetric key');
  if (alg.kind === 'hmac') return { kind: 'hmac', obj: createHmac(alg.hash.node, k) };
  if (key.algorithm !== Enums.CryptographicAlgorithm.AES) throw new KmipError('InvalidField', 'CMAC needs an AES key');
  return { kind: 'cmac', obj: new AesCmac(k) };
}

export function macUpdate(s: MacState, data: Uint8Array): void {
  s.obj.update(data);
}

export function macDigest(s: MacState): Buffer {
  return s.obj.digest();
}

interface MacStream {
  mac: MacState;
}

const MAC_STREAM = streamKind<MacStream>('MAC');

function response(uid: string, o: { mac?: Buffer; cv?: Buffer }): TtlvNode[] {
  const out: TtlvNode[] = [T.text(Tag.UniqueIdentifier, uid)];
  if (o.mac) out.push(T.bytes(Tag.MACData, o.mac));
  if (o.cv) out.push(T.bytes(Tag.CorrelationValue, o.cv));
  return out;
}

async function start(ctx: OperationContext, payload: StructureNode, phase: StreamPhase): Promise<TtlvNode[]> {
  const uid = ctx.uidOrPlaceholder(payload);
  const data = optValue(payload, Tag.Data, 'ByteString');
  if (phase === 'once' && data === undefined) throw new KmipError('MissingData', 'MAC needs Data');
  const bytes = data ?? EMPTY;
  const key = await keyForUse(ctx, uid, 'MACGenerate', MAC_KEY_TYPES);
  try {
    const mac = newMac(key, payload);
    await consumeUsage(ctx, key.obj, bytes.length, true);
    macUpdate(mac, bytes);
    if (phase === 'once') return response(uid, { mac: macDigest(mac) });
    const cv = streams.open(ctx, MAC_STREAM, uid, { mac });
    return response(uid, { cv });
  } finally {
    releaseKey(key);
  }
}

async function next(ctx: OperationContext, payload: StructureNode, phase: StreamPhase, cv: Uint8Array): Promise<TtlvNode[]> {
  const lease = streams.take(ctx, MAC_STREAM, cv, optValue(payload, Tag.UniqueIdentifier, 'TextString'));
  return withLease(streams, lease, async (s) => {
    const uid = lease.uid!;
    const obj = await checkKeyForUse(ctx, uid, 'MACGenerate', MAC_KEY_TYPES);
    const bytes = optValue(payload, Tag.Data, 'ByteString') ?? EMPTY;
    await consumeUsage(ctx, obj, bytes.length, false);
    macUpdate(s.mac, bytes);
    if (phase === 'final') return { result: response(uid, { mac: macDigest(s.mac) }), done: true };
    return { result: response(uid, { cv: lease.correlationValue }), done: false };
  });
}

export const macHandler: OperationHandler = {
  operation: Enums.Operation.MAC,
  name: 'MAC',
  since: '1.2',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const { phase, correlationValue } = streamPhase(payload);
    if (correlationValue !== undefined) return next(ctx, payload, phase, correlationValue);
    return start(ctx, payload, phase);
  },
};
