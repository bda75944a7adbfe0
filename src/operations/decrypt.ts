/**
 * Decrypt (KMIP 1.2+; 1.4 §4.30; 2.1 §6.1 "Decrypt").
 *
 * Request: Unique Identifier (or the ID Placeholder), Cryptographic Parameters, Data,
 * IV/Counter/Nonce, Correlation Value, Init Indicator, Final Indicator (1.3+), Authenticated
 * Encryption Additional Data and Tag (1.4+). Response: Unique Identifier, Data, Correlation
 * Value (a stream that goes on).
 *
 * - The same ciphers and parameters as Encrypt (encrypt.ts, crypto-params.ts). The IV is never
 *   generated: without one an IV-taking mode fails with Invalid Message (CS-BC-M-11/12/13).
 * - Authenticated decryption (GCM, ChaCha20-Poly1305) needs the tag; a tag of 12 to 16 bytes
 *   whose length agrees with Tag Length when that is given. Any authentication failure (wrong
 *   tag, IV, data or additional data) is one Cryptographic Failure (CS-BC-M-GCM-1).
 * - Streams: ordinary modes answer plaintext as it comes (PKCS5 keeps the last block back, as
 *   TC-STREAM-ENCDEC-1 expects). Authenticated streams answer no plaintext before the last
 *   part: it is held (within the stream registry's memory budget) until the tag has been
 *   verified, so that no unauthenticated plaintext ever leaves the server.
 * - Private keys: RSA-OAEP (any Hashing Algorithm with any MGF1 hash, P Source label). RSA
 *   PKCS #1 v1.5 decryption is refused (Unsupported Cryptographic Parameters): Node.js no longer
 *   offers it (CVE-2023-46809, the Marvin timing attack), and unpadding by hand on a network
 *   service would hand clients a Bleichenbacher padding oracle.
 */
import { constants, privateDecrypt, type Decipher, type DecipherGCM } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkKeyForUse, consumeUsage, keyForUse, releaseKey, type KeyForUse } from './crypto-keys.js';
import { MAX_TAG, MIN_TAG, checkCounterRoom, chooseParams, cryptoFailure, rsaEncryptionScheme, unsupported, type CipherSpec, type CryptoParams } from './crypto-params.js';
import { oaepDecrypt } from './crypto-primitives.js';
import { SYMMETRIC_OR, guarded, makeCipher, setAad, symmetricSetup } from './encrypt.js';
import { streamKind, streamPhase, streams, withLease, type StreamPhase } from './streams.js';

const EMPTY = Buffer.alloc(0);

interface DecryptStream {
  decipher: Decipher;
  spec: CipherSpec;
  iv: Buffer | null;
  total: number;
  /** Tag Length of the parameters, when given. */
  tagLength: number | undefined;
  /** AEAD: plaintext held until the tag is verified. */
  held: Buffer[];
}

const DECRYPT_STREAM = streamKind<DecryptStream>('Decrypt');

function response(uid: string, o: { data?: Buffer; cv?: Buffer }): TtlvNode[] {
  const out: TtlvNode[] = [T.text(Tag.UniqueIdentifier, uid)];
  if (o.data) out.push(T.bytes(Tag.Data, o.data));
  if (o.cv) out.push(T.bytes(Tag.CorrelationValue, o.cv));
  return out;
}

/** The tag length a decipher is made with: ChaCha20-Poly1305 needs it up front, GCM does not. */
function decipherTagLength(spec: CipherSpec, tagLength: number | undefined): number | undefined {
  if (spec.kind !== 'aead') return undefined;
  return spec.cipher === 'chacha20-poly1305' ? (tagLength ?? 16) : tagLength;
}

/** Sets the tag; an unusable one fails like a wrong one (Cryptographic Failure). */
function setTag(d: Decipher, spec: CipherSpec, tag: Uint8Array | undefined, tagLength: number | undefined): void {
  if (spec.kind !== 'aead') {
    if (tag !== undefined) throw new KmipError('InvalidField', 'Authenticated Encryption Tag applies to GCM and ChaCha20-Poly1305 only');
    return;
  }
  if (tag === undefined) throw new KmipError('MissingData', 'authenticated decryption needs the Authenticated Encryption Tag');
  if (tag.length < MIN_TAG || tag.length > MAX_TAG || (tagLength !== undefined && tag.length !== tagLength)) throw cryptoFailure();
  guarded(() => (d as DecipherGCM).setAuthTag(tag));
}

/** Ciphertext of a block mode must be whole blocks. */
function checkBlocks(spec: CipherSpec, length: number): void {
  if (spec.kind === 'block' && length % spec.blockSize !== 0) throw cryptoFailure(`the data is not a multiple of ${spec.blockSize} bytes`);
}

function rsaDecrypt(key: KeyForUse, params: CryptoParams, data: Uint8Array): Buffer {
  const priv = key.asymmetric;
  if (!priv || key.family !== 'rsa') throw unsupported(`decryption with ${priv?.asymmetricKeyType ?? 'this'} keys is not supported (RSA only)`);
  const s = rsaEncryptionScheme(params);
  if (s.padding === 'pkcs1') {
    throw unsupported('RSA PKCS #1 v1.5 decryption is not offered (Marvin / Bleichenbacher padding oracle, CVE-2023-46809); use OAEP');
  }
  const hash = s.hash!;
  const mgf = s.mgfHash!;
  if (hash.alg === mgf.alg) {
    return guarded(() => privateDecrypt({ key: priv, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash.node, ...(s.label ? { oaepLabel: s.label } : {}) }, data));
  }
  return oaepDecrypt(priv, hash, mgf, s.label ?? EMPTY, data);
}

async function start(ctx: OperationContext, payload: StructureNode, phase: StreamPhase): Promise<TtlvNode[]> {
  const uid = ctx.uidOrPlaceholder(payload);
  const data = optValue(payload, Tag.Data, 'ByteString');
  if (phase === 'once' && data === undefined) throw new KmipError('MissingData', 'Decrypt needs Data');
  const bytes = data ?? EMPTY;
  const key = await keyForUse(ctx, uid, 'Decrypt', SYMMETRIC_OR.decrypt);
  try {
    const { params } = chooseParams(payload, key.obj.attributes);
    if (key.asymmetric) {
      if (phase !== 'once') throw new KmipError('FeatureNotSupported', 'RSA decryption does not stream');
      await consumeUsage(ctx, key.obj, bytes.length, true);
      return response(uid, { data: rsaDecrypt(key, params, bytes) });
    }
    const setup = symmetricSetup(key, params, optValue(payload, Tag.IVCounterNonce, 'ByteString'), 'decrypt');
    const { spec } = setup;
    if (spec.kind === 'wrap' && phase !== 'once') throw new KmipError('FeatureNotSupported', 'key wrap modes do not stream');
    const tag = optValue(payload, Tag.AuthenticatedEncryptionTag, 'ByteString');
    const aad = optValue(payload, Tag.AuthenticatedEncryptionAdditionalData, 'ByteString');
    checkCounterRoom(spec, setup.iv, bytes.length);
    if (phase === 'once') {
      checkBlocks(spec, bytes.length);
      const tl = spec.kind === 'aead' && tag !== undefined ? tag.length : undefined;
      const d = makeCipher('decrypt', setup, key.symmetric!, decipherTagLength(spec, tl)) as Decipher;
      setAad(d, spec, aad);
      setTag(d, spec, tag, params.tagLength);
      await consumeUsage(ctx, key.obj, bytes.length, true);
      return response(uid, { data: guarded(() => Buffer.concat([d.update(bytes), d.final()])) });
    }
    if (tag !== undefined) throw new KmipError('InvalidField', 'the Authenticated Encryption Tag goes with the last part of a stream');
    const d = makeCipher('decrypt', setup, key.symmetric!, decipherTagLength(spec, params.tagLength)) as Decipher;
    setAad(d, spec, aad);
    await consumeUsage(ctx, key.obj, bytes.length, true);
    const out = guarded(() => d.update(bytes));
    const state: DecryptStream = { decipher: d, spec, iv: setup.iv, total: bytes.length, tagLength: params.tagLength, held: [] };
    const hold = spec.kind === 'aead';
    if (hold && out.length) state.held.push(out);
    const dispose = (s: DecryptStream) => {
      for (const b of s.held) b.fill(0);
      s.held = [];
    };
    const cv = streams.open(ctx, DECRYPT_STREAM, uid, state, dispose, hold ? out.length : 0);
    return response(uid, { ...(!hold && out.length ? { data: out } : {}), cv });
  } finally {
    releaseKey(key);
  }
}

async function next(ctx: OperationContext, payload: StructureNode, phase: StreamPhase, cv: Uint8Array): Promise<TtlvNode[]> {
  const lease = streams.take(ctx, DECRYPT_STREAM, cv, optValue(payload, Tag.UniqueIdentifier, 'TextString'));
  return withLease(streams, lease, async (s) => {
    const uid = lease.uid!;
    if (optValue(payload, Tag.AuthenticatedEncryptionAdditionalData, 'ByteString') !== undefined) {
      throw new KmipError('InvalidField', 'Authenticated Encryption Additional Data goes with the first part of a stream');
    }
    const tag = optValue(payload, Tag.AuthenticatedEncryptionTag, 'ByteString');
    if (phase !== 'final' && tag !== undefined) throw new KmipError('InvalidField', 'the Authenticated Encryption Tag goes with the last part of a stream');
    const obj = await checkKeyForUse(ctx, uid, 'Decrypt', SYMMETRIC_OR.decrypt);
    const bytes = optValue(payload, Tag.Data, 'ByteString') ?? EMPTY;
    s.total += bytes.length;
    checkCounterRoom(s.spec, s.iv, s.total);
    await consumeUsage(ctx, obj, bytes.length, false);
    const hold = s.spec.kind === 'aead';
    if (phase === 'final') {
      checkBlocks(s.spec, s.total);
      setTag(s.decipher, s.spec, tag, s.tagLength);
      const last = guarded(() => Buffer.concat([s.decipher.update(bytes), s.decipher.final()]));
      const out = hold ? Buffer.concat([...s.held, last]) : last;
      return { result: response(uid, out.length ? { data: out } : {}), done: true };
    }
    const out = guarded(() => s.decipher.update(bytes));
    if (hold) {
      streams.account(lease, out.length);
      s.held.push(out);
      return { result: response(uid, { cv: lease.correlationValue }), done: false };
    }
    return { result: response(uid, { ...(out.length ? { data: out } : {}), cv: lease.correlationValue }), done: false };
  });
}

export const decryptHandler: OperationHandler = {
  operation: Enums.Operation.Decrypt,
  name: 'Decrypt',
  since: '1.2',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const { phase, correlationValue } = streamPhase(payload);
    if (correlationValue !== undefined) return next(ctx, payload, phase, correlationValue);
    return start(ctx, payload, phase);
  },
};
