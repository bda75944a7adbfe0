/**
 * MAC Verify (KMIP 1.2+; 1.4 §4.34; 2.1 §6.1 "MAC Verify").
 *
 * Request: Unique Identifier (or the ID Placeholder), Cryptographic Parameters, Data, MAC Data,
 * Correlation Value, Init Indicator, Final Indicator. Response: Unique Identifier, Validity
 * Indicator (one-shot or last part), Correlation Value (a stream that goes on).
 *
 * - The MAC algorithms of MAC (mac.ts). The MAC is recomputed and compared in constant time; a
 *   MAC of another length (a truncated one included) is Invalid.
 * - Key checks (Active, MAC Verify in the usage mask, Process Start Date) and Usage Limits:
 *   crypto-keys.ts.
 * - Streams: the MAC Data may come with the first part (TC-STREAM-MAC-1) or the last; the last
 *   one wins.
 */
import { timingSafeEqual } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkKeyForUse, consumeUsage, keyForUse, releaseKey } from './crypto-keys.js';
import { MAC_KEY_TYPES, macDigest, macUpdate, newMac, type MacState } from './mac.js';
import { streamKind, streamPhase, streams, withLease, type StreamPhase } from './streams.js';

const EMPTY = Buffer.alloc(0);
const VI = Enums.ValidityIndicator;

interface MacVerifyStream {
  mac: MacState;
  expected: Buffer | undefined;
}

const MAC_VERIFY_STREAM = streamKind<MacVerifyStream>('MACVerify');

function response(uid: string, o: { valid?: boolean; cv?: Buffer }): TtlvNode[] {
  const out: TtlvNode[] = [T.text(Tag.UniqueIdentifier, uid)];
  if (o.valid !== undefined) out.push(T.enum(Tag.ValidityIndicator, o.valid ? VI.Valid : VI.Invalid));
  if (o.cv) out.push(T.bytes(Tag.CorrelationValue, o.cv));
  return out;
}

function matches(computed: Buffer, expected: Uint8Array): boolean {
  const ok = computed.length === expected.length && timingSafeEqual(computed, expected);
  computed.fill(0);
  return ok;
}

async function start(ctx: OperationContext, payload: StructureNode, phase: StreamPhase): Promise<TtlvNode[]> {
  const uid = ctx.uidOrPlaceholder(payload);
  const data = optValue(payload, Tag.Data, 'ByteString');
  const expected = optValue(payload, Tag.MACData, 'ByteString');
  if (phase === 'once') {
    if (data === undefined) throw new KmipError('MissingData', 'MAC Verify needs Data');
    if (expected === undefined) throw new KmipError('MissingData', 'MAC Verify needs the MAC Data');
  }
  const bytes = data ?? EMPTY;
  const key = await keyForUse(ctx, uid, 'MACVerify', MAC_KEY_TYPES);
  try {
    const mac = newMac(key, payload);
    await consumeUsage(ctx, key.obj, bytes.length, true);
    macUpdate(mac, bytes);
    if (phase === 'once') return response(uid, { valid: matches(macDigest(mac), expected!) });
    const cv = streams.open(ctx, MAC_VERIFY_STREAM, uid, { mac, expected: expected === undefined ? undefined : Buffer.from(expected) });
    return response(uid, { cv });
  } finally {
    releaseKey(key);
  }
}

async function next(ctx: OperationContext, payload: StructureNode, phase: StreamPhase, cv: Uint8Array): Promise<TtlvNode[]> {
  const lease = streams.take(ctx, MAC_VERIFY_STREAM, cv, optValue(payload, Tag.UniqueIdentifier, 'TextString'));
  return withLease(streams, lease, async (s) => {
    const uid = lease.uid!;
    const expected = optValue(payload, Tag.MACData, 'ByteString');
    if (expected !== undefined) s.expected = Buffer.from(expected);
    const obj = await checkKeyForUse(ctx, uid, 'MACVerify', MAC_KEY_TYPES);
    const bytes = optValue(payload, Tag.Data, 'ByteString') ?? EMPTY;
    await consumeUsage(ctx, obj, bytes.length, false);
    macUpdate(s.mac, bytes);
    if (phase === 'final') {
      if (s.expected === undefined) throw new KmipError('MissingData', 'no MAC Data was sent with this stream');
      return { result: response(uid, { valid: matches(macDigest(s.mac), s.expected) }), done: true };
    }
    return { result: response(uid, { cv: lease.correlationValue }), done: false };
  });
}

export const macVerifyHandler: OperationHandler = {
  operation: Enums.Operation.MACVerify,
  name: 'MACVerify',
  since: '1.2',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const { phase, correlationValue } = streamPhase(payload);
    if (correlationValue !== undefined) return next(ctx, payload, phase, correlationValue);
    return start(ctx, payload, phase);
  },
};
