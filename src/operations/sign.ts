/**
 * Sign (KMIP 1.2+; 1.4 §4.31; 2.1 §6.1 "Sign").
 *
 * Request: Unique Identifier (or the ID Placeholder), Cryptographic Parameters, Data or (1.4+)
 * Digested Data, Correlation Value, Init Indicator, Final Indicator. Response: Unique
 * Identifier, Signature Data (one-shot or last part), Correlation Value (a stream that goes on).
 *
 * - Private keys: RSA PKCS #1 v1.5 and RSASSA-PSS (Salt Length and Mask Generator Hashing
 *   Algorithm honoured), ECDSA (DER-encoded signatures, as the OASIS cases carry them), DSA,
 *   Ed25519 / Ed448. The scheme comes from the Digital Signature Algorithm, or from Cryptographic
 *   Algorithm / Padding Method / Hashing Algorithm (crypto-params.ts `signatureScheme`).
 * - Digested Data (the client hashed): RSA PKCS #1 v1.5 (DigestInfo for the Hashing Algorithm;
 *   without one, the bytes are signed as they are, as TC-RSA-SIGN-DIGESTEDDATA does) and PSS.
 *   ECDSA / DSA over a digest are Unsupported Cryptographic Parameters: node:crypto only signs
 *   messages it hashes itself.
 * - Streams: the message is hashed as it comes (node:crypto Sign / Hash objects); Ed25519 and
 *   Ed448 sign the whole message, which is then held within the stream registry's budget.
 */
import {
  constants,
  createHash,
  createSign,
  createVerify,
  sign as nodeSign,
  verify as nodeVerify,
  type Hash,
  type KeyObject,
  type Sign,
  type SignKeyObjectInput,
  type Verify,
  type VerifyKeyObjectInput,
} from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkKeyForUse, consumeUsage, keyForUse, releaseKey, requireFamily, type KeyForUse } from './crypto-keys.js';
import { chooseParams, cryptoFailure, signatureScheme, unsupported, type SignatureScheme } from './crypto-params.js';
import { digestInfo, pkcs1SignRaw, pkcs1VerifyRaw, pssSignDigest, pssVerifyDigest } from './crypto-primitives.js';
import { guarded } from './encrypt.js';
import { streamKind, streamPhase, streams, withLease, type StreamPhase } from './streams.js';

const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------
// Schemes, shared with Signature Verify

/** PSS whose MGF1 hash differs from the signature hash: node:crypto cannot, crypto-primitives can. */
function ownPss(s: SignatureScheme): boolean {
  return s.padding === 'pss' && s.mgfHash !== undefined && s.hash !== undefined && s.mgfHash.alg !== s.hash.alg;
}

function signOptions(key: KeyObject, s: SignatureScheme): SignKeyObjectInput {
  if (s.family !== 'rsa') return { key, dsaEncoding: 'der' };
  if (s.padding === 'pss') return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: s.saltLength ?? constants.RSA_PSS_SALTLEN_DIGEST };
  return { key, padding: constants.RSA_PKCS1_PADDING };
}

function verifyOptions(key: KeyObject, s: SignatureScheme): VerifyKeyObjectInput {
  if (s.family !== 'rsa') return { key, dsaEncoding: 'der' };
  if (s.padding === 'pss') return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: s.saltLength ?? constants.RSA_PSS_SALTLEN_AUTO };
  return { key, padding: constants.RSA_PKCS1_PADDING };
}

function isEdwards(s: SignatureScheme): boolean {
  return s.family === 'ed25519' || s.family === 'ed448';
}

/** Signs a digest the client computed. */
export function signDigest(key: KeyObject, s: SignatureScheme, digest: Uint8Array): Buffer {
  if (s.family !== 'rsa') throw unsupported(`${s.family.toUpperCase()} signatures over Digested Data are not supported (node:crypto hashes the message itself)`);
  if (s.hash && digest.length !== s.hash.size) throw new KmipError('InvalidField', `the Digested Data is ${digest.length} bytes, not the ${s.hash.size} of ${s.hash.node}`);
  if (s.padding === 'pss') return guarded(() => pssSignDigest(key, s.hash!, s.mgfHash ?? s.hash!, s.saltLength, digest));
  return guarded(() => pkcs1SignRaw(key, s.hash ? digestInfo(s.hash, digest) : digest));
}

export function verifyDigest(key: KeyObject, s: SignatureScheme, digest: Uint8Array, signature: Uint8Array): boolean {
  if (s.family !== 'rsa') throw unsupported(`${s.family.toUpperCase()} signatures over Digested Data are not supported (node:crypto hashes the message itself)`);
  if (s.hash && digest.length !== s.hash.size) return false;
  try {
    if (s.padding === 'pss') return pssVerifyDigest(key, s.hash!, s.mgfHash ?? s.hash!, s.saltLength, digest, signature);
    return pkcs1VerifyRaw(key, s.hash ? digestInfo(s.hash, digest) : digest, signature);
  } catch (e) {
    if (e instanceof KmipError) throw e;
    return false;
  }
}

export function signMessage(key: KeyObject, s: SignatureScheme, data: Uint8Array): Buffer {
  if (ownPss(s)) return signDigest(key, s, createHash(s.hash!.node).update(data).digest());
  if (isEdwards(s)) return guarded(() => nodeSign(null, data, key));
  return guarded(() => nodeSign(s.hash!.node, data, signOptions(key, s)));
}

export function verifyMessage(key: KeyObject, s: SignatureScheme, data: Uint8Array, signature: Uint8Array): boolean {
  if (ownPss(s)) return verifyDigest(key, s, createHash(s.hash!.node).update(data).digest(), signature);
  try {
    if (isEdwards(s)) return nodeVerify(null, data, key, signature);
    return nodeVerify(s.hash!.node, data, verifyOptions(key, s), signature);
  } catch {
    return false;
  }
}

/** A message being hashed part by part (or held, for Ed25519/Ed448). */
export type Accumulator =
  | { kind: 'sign'; obj: Sign }
  | { kind: 'verify'; obj: Verify }
  | { kind: 'hash'; obj: Hash }
  | { kind: 'held'; parts: Buffer[] };

export function newAccumulator(s: SignatureScheme, purpose: 'sign' | 'verify'): Accumulator {
  if (isEdwards(s)) return { kind: 'held', parts: [] };
  if (ownPss(s)) return { kind: 'hash', obj: createHash(s.hash!.node) };
  return purpose === 'sign' ? { kind: 'sign', obj: createSign(s.hash!.node) } : { kind: 'verify', obj: createVerify(s.hash!.node) };
}

/** Adds a part; returns the bytes now held back (Ed25519/Ed448), for the registry's budget. */
export function accumulate(a: Accumulator, data: Uint8Array): number {
  if (a.kind === 'held') {
    a.parts.push(Buffer.from(data));
    return data.length;
  }
  a.obj.update(data);
  return 0;
}

export function disposeAccumulator(a: Accumulator): void {
  if (a.kind === 'held') for (const p of a.parts) p.fill(0);
}

export function finishSign(a: Accumulator, key: KeyObject, s: SignatureScheme): Buffer {
  switch (a.kind) {
    case 'held':
      return signMessage(key, s, Buffer.concat(a.parts));
    case 'hash':
      return signDigest(key, s, a.obj.digest());
    case 'sign':
      return guarded(() => a.obj.sign(signOptions(key, s)));
    case 'verify':
      throw cryptoFailure('a verification stream cannot sign');
  }
}

export function finishVerify(a: Accumulator, key: KeyObject, s: SignatureScheme, signature: Uint8Array): boolean {
  switch (a.kind) {
    case 'held':
      return verifyMessage(key, s, Buffer.concat(a.parts), signature);
    case 'hash':
      return verifyDigest(key, s, a.obj.digest(), signature);
    case 'verify':
      try {
        return a.obj.verify(verifyOptions(key, s), signature);
      } catch {
        return false;
      }
    case 'sign':
      throw cryptoFailure('a signing stream cannot verify');
  }
}

/** Data or Digested Data of a request (not both). */
export function messageOf(payload: StructureNode): { data?: Uint8Array; digested?: Uint8Array } {
  const data = optValue(payload, Tag.Data, 'ByteString');
  const digested = optValue(payload, Tag.DigestedData, 'ByteString');
  if (data !== undefined && digested !== undefined) throw new KmipError('InvalidField', 'send Data or Digested Data, not both');
  return { ...(data !== undefined ? { data } : {}), ...(digested !== undefined ? { digested } : {}) };
}

/** The key and scheme of a Sign or Signature Verify request. */
export function schemeFor(key: KeyForUse, payload: StructureNode, digested: boolean, what: string): SignatureScheme {
  const family = requireFamily(key, ['rsa', 'ec', 'dsa', 'ed25519', 'ed448'], what);
  const { params } = chooseParams(payload, key.obj.attributes);
  return signatureScheme(family, params, digested);
}

// ---------------------------------------------------------------------------------------------
// Sign

interface SignStream {
  key: KeyObject;
  scheme: SignatureScheme;
  acc: Accumulator;
}

const SIGN_STREAM = streamKind<SignStream>('Sign');
const PRIVATE = [Enums.ObjectType.PrivateKey];

function response(uid: string, o: { sig?: Buffer; cv?: Buffer }): TtlvNode[] {
  const out: TtlvNode[] = [T.text(Tag.UniqueIdentifier, uid)];
  if (o.sig) out.push(T.bytes(Tag.SignatureData, o.sig));
  if (o.cv) out.push(T.bytes(Tag.CorrelationValue, o.cv));
  return out;
}

async function start(ctx: OperationContext, payload: StructureNode, phase: StreamPhase): Promise<TtlvNode[]> {
  const uid = ctx.uidOrPlaceholder(payload);
  const { data, digested } = messageOf(payload);
  if (phase === 'once' && data === undefined && digested === undefined) throw new KmipError('MissingData', 'Sign needs Data or Digested Data');
  const key = await keyForUse(ctx, uid, 'Sign', PRIVATE);
  try {
    const scheme = schemeFor(key, payload, digested !== undefined, 'Signing');
    const priv = key.asymmetric!;
    if (digested !== undefined) {
      if (phase !== 'once') throw new KmipError('FeatureNotSupported', 'Digested Data is signed in one request, not streamed');
      await consumeUsage(ctx, key.obj, digested.length, true);
      return response(uid, { sig: signDigest(priv, scheme, digested) });
    }
    const bytes = data ?? EMPTY;
    await consumeUsage(ctx, key.obj, bytes.length, true);
    if (phase === 'once') return response(uid, { sig: signMessage(priv, scheme, bytes) });
    const acc = newAccumulator(scheme, 'sign');
    const held = accumulate(acc, bytes);
    const cv = streams.open(ctx, SIGN_STREAM, uid, { key: priv, scheme, acc }, (s) => disposeAccumulator(s.acc), held);
    return response(uid, { cv });
  } finally {
    releaseKey(key);
  }
}

async function next(ctx: OperationContext, payload: StructureNode, phase: StreamPhase, cv: Uint8Array): Promise<TtlvNode[]> {
  const lease = streams.take(ctx, SIGN_STREAM, cv, optValue(payload, Tag.UniqueIdentifier, 'TextString'));
  return withLease(streams, lease, async (s) => {
    const uid = lease.uid!;
    const { data, digested } = messageOf(payload);
    if (digested !== undefined) throw new KmipError('InvalidField', 'Digested Data cannot continue a stream');
    const obj = await checkKeyForUse(ctx, uid, 'Sign', PRIVATE);
    const bytes = data ?? EMPTY;
    await consumeUsage(ctx, obj, bytes.length, false);
    if (s.acc.kind === 'held') streams.account(lease, bytes.length);
    accumulate(s.acc, bytes);
    if (phase === 'final') return { result: response(uid, { sig: finishSign(s.acc, s.key, s.scheme) }), done: true };
    return { result: response(uid, { cv: lease.correlationValue }), done: false };
  });
}

export const signHandler: OperationHandler = {
  operation: Enums.Operation.Sign,
  name: 'Sign',
  since: '1.2',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const { phase, correlationValue } = streamPhase(payload);
    if (correlationValue !== undefined) return next(ctx, payload, phase, correlationValue);
    return start(ctx, payload, phase);
  },
};
