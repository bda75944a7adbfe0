/**
 * Signature Verify (KMIP 1.2+; 1.4 §4.32; 2.1 §6.1 "Signature Verify").
 *
 * Request: Unique Identifier (or the ID Placeholder), Cryptographic Parameters, Data or (1.4+)
 * Digested Data, Signature Data, Correlation Value, Init Indicator, Final Indicator. Response:
 * Unique Identifier, Validity Indicator (one-shot or last part), Correlation Value (a stream
 * that goes on).
 *
 * - Public keys, with the schemes of Sign (sign.ts). A signature that does not verify, whatever
 *   the reason (wrong key, wrong parameters, malformed signature), is Validity Indicator
 *   Invalid, not an error (CS-AC-M-3: the SHA-1 verification of a SHA-256 signature).
 * - PSS without a Salt Length accepts any salt length.
 * - Streams: the Signature Data may come with the first part (TC-STREAM-SIGNVFY-1) or the last;
 *   the last one wins. Parts before the last answer only the Correlation Value.
 */
import type { KeyObject } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkKeyForUse, consumeUsage, keyForUse, releaseKey } from './crypto-keys.js';
import type { SignatureScheme } from './crypto-params.js';
import { accumulate, disposeAccumulator, finishVerify, messageOf, newAccumulator, schemeFor, verifyDigest, verifyMessage, type Accumulator } from './sign.js';
import { streamKind, streamPhase, streams, withLease, type StreamPhase } from './streams.js';

const EMPTY = Buffer.alloc(0);
const VI = Enums.ValidityIndicator;
const PUBLIC = [Enums.ObjectType.PublicKey];

interface VerifyStream {
  key: KeyObject;
  scheme: SignatureScheme;
  acc: Accumulator;
  signature: Uint8Array | undefined;
}

const VERIFY_STREAM = streamKind<VerifyStream>('SignatureVerify');

function response(uid: string, o: { valid?: boolean; cv?: Buffer }): TtlvNode[] {
  const out: TtlvNode[] = [T.text(Tag.UniqueIdentifier, uid)];
  if (o.valid !== undefined) out.push(T.enum(Tag.ValidityIndicator, o.valid ? VI.Valid : VI.Invalid));
  if (o.cv) out.push(T.bytes(Tag.CorrelationValue, o.cv));
  return out;
}

async function start(ctx: OperationContext, payload: StructureNode, phase: StreamPhase): Promise<TtlvNode[]> {
  const uid = ctx.uidOrPlaceholder(payload);
  const { data, digested } = messageOf(payload);
  const signature = optValue(payload, Tag.SignatureData, 'ByteString');
  if (phase === 'once') {
    if (data === undefined && digested === undefined) throw new KmipError('MissingData', 'Signature Verify needs Data or Digested Data');
    if (signature === undefined) throw new KmipError('MissingData', 'Signature Verify needs the Signature Data');
  }
  const key = await keyForUse(ctx, uid, 'Verify', PUBLIC);
  try {
    const scheme = schemeFor(key, payload, digested !== undefined, 'Signature verification');
    const pub = key.asymmetric!;
    if (digested !== undefined) {
      if (phase !== 'once') throw new KmipError('FeatureNotSupported', 'Digested Data is verified in one request, not streamed');
      await consumeUsage(ctx, key.obj, digested.length, true);
      return response(uid, { valid: verifyDigest(pub, scheme, digested, signature!) });
    }
    const bytes = data ?? EMPTY;
    await consumeUsage(ctx, key.obj, bytes.length, true);
    if (phase === 'once') return response(uid, { valid: verifyMessage(pub, scheme, bytes, signature!) });
    const acc = newAccumulator(scheme, 'verify');
    const held = accumulate(acc, bytes);
    const state: VerifyStream = { key: pub, scheme, acc, signature: signature === undefined ? undefined : Buffer.from(signature) };
    const cv = streams.open(ctx, VERIFY_STREAM, uid, state, (s) => disposeAccumulator(s.acc), held);
    return response(uid, { cv });
  } finally {
    releaseKey(key);
  }
}

async function next(ctx: OperationContext, payload: StructureNode, phase: StreamPhase, cv: Uint8Array): Promise<TtlvNode[]> {
  const lease = streams.take(ctx, VERIFY_STREAM, cv, optValue(payload, Tag.UniqueIdentifier, 'TextString'));
  return withLease(streams, lease, async (s) => {
    const uid = lease.uid!;
    const { data, digested } = messageOf(payload);
    if (digested !== undefined) throw new KmipError('InvalidField', 'Digested Data cannot continue a stream');
    const sig = optValue(payload, Tag.SignatureData, 'ByteString');
    if (sig !== undefined) s.signature = Buffer.from(sig);
    const obj = await checkKeyForUse(ctx, uid, 'Verify', PUBLIC);
    const bytes = data ?? EMPTY;
    await consumeUsage(ctx, obj, bytes.length, false);
    if (s.acc.kind === 'held') streams.account(lease, bytes.length);
    accumulate(s.acc, bytes);
    if (phase === 'final') {
      if (s.signature === undefined) throw new KmipError('MissingData', 'no Signature Data was sent with this stream');
      return { result: response(uid, { valid: finishVerify(s.acc, s.key, s.scheme, s.signature) }), done: true };
    }
    return { result: response(uid, { cv: lease.correlationValue }), done: false };
  });
}

export const signatureVerifyHandler: OperationHandler = {
  operation: Enums.Operation.SignatureVerify,
  name: 'SignatureVerify',
  since: '1.2',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const { phase, correlationValue } = streamPhase(payload);
    if (correlationValue !== undefined) return next(ctx, payload, phase, correlationValue);
    return start(ctx, payload, phase);
  },
};
