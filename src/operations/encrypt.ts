/**
 * Encrypt (KMIP 1.2+; 1.4 §4.29; 2.1 §6.1 "Encrypt").
 *
 * Request: Unique Identifier (or the ID Placeholder), Cryptographic Parameters, Data,
 * IV/Counter/Nonce, Correlation Value, Init Indicator, Final Indicator (1.3+), Authenticated
 * Encryption Additional Data (1.4+). Response: Unique Identifier, Data, IV/Counter/Nonce (when
 * the server generated it), Correlation Value (a stream that goes on), Authenticated Encryption
 * Tag (AEAD, one-shot or last part).
 *
 * - Symmetric keys: AES (ECB, CBC with PKCS5 or no padding, CTR, CFB, OFB, GCM, NIST key wrap
 *   RFC 3394 / RFC 5649), Triple DES (ECB, CBC, CFB, OFB), ChaCha20 (8-, 12- or 16-byte
 *   IV/Counter/Nonce), ChaCha20-Poly1305. Parameters and defaults: see crypto-params.ts.
 * - Random IV: when the parameters ask for it (or by the server default) and the client sends
 *   no IV/Counter/Nonce, the server generates one with randomBytes and returns it. A client IV
 *   is used as sent. Without either, an IV-taking mode fails (Invalid Message, CS-BC-M-11).
 * - Public keys: RSA-OAEP (Hashing Algorithm, MGF1 hash and P Source label honoured) and RSA
 *   PKCS #1 v1.5. No streaming for RSA.
 * - Streams (streams.ts): parts are encrypted as they come; a part that completes no block
 *   answers no Data (TC-STREAM-ENC-1/-2). AEAD additional data only with the first part; the
 *   tag comes with the last.
 * - Key checks, Usage Limits: crypto-keys.ts.
 */
import { constants, createCipheriv, createDecipheriv, publicEncrypt, randomBytes, type Cipher, type CipherGCM, type CipherGCMOptions, type Decipher, type DecipherGCM } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import { Enums, Tag } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/index.js';
import type { OperationContext, OperationHandler } from './context.js';
import { checkKeyForUse, consumeUsage, keyForUse, releaseKey, type KeyForUse } from './crypto-keys.js';
import {
  checkCounterRoom,
  chooseParams,
  cipherIv,
  cryptoFailure,
  rsaEncryptionScheme,
  symmetricCipher,
  unsupported,
  type CipherSpec,
  type CryptoParams,
} from './crypto-params.js';
import { oaepEncrypt } from './crypto-primitives.js';
import { streamKind, streamPhase, streams, withLease, type StreamPhase } from './streams.js';

const OT = Enums.ObjectType;
const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------
// The symmetric engine, shared with Decrypt

export type Direction = 'encrypt' | 'decrypt';

/** The key, cipher and IV of a symmetric Encrypt or Decrypt. */
export interface SymmetricSetup {
  spec: CipherSpec;
  /** As node:crypto takes it. */
  iv: Buffer | null;
  /** The IV the server generated (to return), if it did. */
  generatedIv?: Buffer;
}

/**
 * The cipher and IV for a symmetric request. `direction` decides whether a missing IV may be
 * generated (Encrypt with Random IV) or is an error.
 */
export function symmetricSetup(key: KeyForUse, params: CryptoParams, ivIn: Uint8Array | undefined, direction: Direction): SymmetricSetup {
  if (!key.symmetric) throw cryptoFailure('not a symmetric key');
  if (key.algorithm === undefined) throw new KmipError('MissingData', 'the key has no Cryptographic Algorithm');
  const spec = symmetricCipher(key.algorithm, key.symmetric.length, params);
  if (ivIn !== undefined && params.ivLength !== undefined && ivIn.length * 8 !== params.ivLength) {
    throw new KmipError('InvalidField', `the IV/Counter/Nonce is ${ivIn.length * 8} bits but IV Length says ${params.ivLength}`);
  }
  const takesIv = spec.ivLengths === 'any' || spec.ivLengths.length > 0;
  if (!takesIv || ivIn !== undefined) return { spec, iv: cipherIv(spec, ivIn) };
  if (spec.defaultIv) return { spec, iv: spec.defaultIv };
  if (direction === 'encrypt' && spec.randomIV) {
    const generatedIv = randomBytes(spec.randomIvLength);
    return { spec, iv: cipherIv(spec, generatedIv), generatedIv };
  }
  // Invalid Message: what CS-BC-M-11/12/13 (1.4 and 2.1) expect for a missing IV.
  throw new KmipError('InvalidMessage', 'missing IV/Counter/Nonce: this cipher needs one and Random IV is not set');
}

/** A node:crypto Cipher or Decipher for the setup. `tagLength`: AEAD tag length in bytes. */
export function makeCipher(direction: Direction, setup: SymmetricSetup, key: Buffer, tagLength: number | undefined): Cipher | Decipher {
  const { spec, iv } = setup;
  const opts: CipherGCMOptions = {};
  if (spec.kind === 'aead' && tagLength !== undefined) opts.authTagLength = tagLength;
  let c: Cipher | Decipher;
  try {
    c = direction === 'encrypt' ? createCipheriv(spec.cipher, key, iv, opts) : createDecipheriv(spec.cipher, key, iv, opts);
  } catch {
    throw cryptoFailure(`the ${spec.cipher} cipher cannot be set up with this key and IV`);
  }
  if (spec.kind === 'block') c.setAutoPadding(spec.padding);
  return c;
}

/** Runs `f`, turning node:crypto errors into Cryptographic Failure (no detail: no oracle). */
export function guarded<R>(f: () => R): R {
  try {
    return f();
  } catch (e) {
    if (e instanceof KmipError) throw e;
    throw cryptoFailure();
  }
}

export function setAad(c: Cipher | Decipher, spec: CipherSpec, aad: Uint8Array | undefined): void {
  if (aad === undefined) return;
  if (spec.kind !== 'aead') throw new KmipError('InvalidField', 'Authenticated Encryption Additional Data applies to GCM and ChaCha20-Poly1305 only');
  // setAAD exists on the GCM and ChaCha20-Poly1305 ciphers this spec makes.
  guarded(() => (c as CipherGCM | DecipherGCM).setAAD(aad));
}

/** Refuses block-mode data that is not whole blocks when there is no padding. */
function checkAligned(spec: CipherSpec, length: number): void {
  if (spec.kind === 'block' && !spec.padding && length % spec.blockSize !== 0) {
    throw new KmipError('InvalidField', `with no padding the data must be a multiple of ${spec.blockSize} bytes`);
  }
}

/** The key types each direction uses. */
export const SYMMETRIC_OR: Readonly<Record<Direction, readonly number[]>> = {
  encrypt: [OT.SymmetricKey, OT.PublicKey],
  decrypt: [OT.SymmetricKey, OT.PrivateKey],
};

// ---------------------------------------------------------------------------------------------
// Encrypt

interface EncryptStream {
  cipher: Cipher;
  spec: CipherSpec;
  iv: Buffer | null;
  total: number;
}

const ENCRYPT_STREAM = streamKind<EncryptStream>('Encrypt');

function response(uid: string, o: { data?: Buffer; iv?: Buffer; cv?: Buffer; tag?: Buffer }): TtlvNode[] {
  const out: TtlvNode[] = [T.text(Tag.UniqueIdentifier, uid)];
  if (o.data) out.push(T.bytes(Tag.Data, o.data));
  if (o.iv) out.push(T.bytes(Tag.IVCounterNonce, o.iv));
  if (o.cv) out.push(T.bytes(Tag.CorrelationValue, o.cv));
  if (o.tag) out.push(T.bytes(Tag.AuthenticatedEncryptionTag, o.tag));
  return out;
}

function rsaEncrypt(key: KeyForUse, params: CryptoParams, data: Uint8Array): Buffer {
  const pub = key.asymmetric;
  if (!pub || key.family !== 'rsa') throw unsupported(`encryption with ${pub?.asymmetricKeyType ?? 'this'} keys is not supported (RSA only)`);
  const s = rsaEncryptionScheme(params);
  return guarded(() => {
    if (s.padding === 'pkcs1') return publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, data);
    const hash = s.hash!;
    const mgf = s.mgfHash!;
    if (hash.alg === mgf.alg) {
      return publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash.node, ...(s.label ? { oaepLabel: s.label } : {}) }, data);
    }
    return oaepEncrypt(pub, hash, mgf, s.label ?? EMPTY, data);
  });
}

async function start(ctx: OperationContext, payload: StructureNode, phase: StreamPhase): Promise<TtlvNode[]> {
  const uid = ctx.uidOrPlaceholder(payload);
  const data = optValue(payload, Tag.Data, 'ByteString');
  if (phase === 'once' && data === undefined) throw new KmipError('MissingData', 'Encrypt needs Data');
  const bytes = data ?? EMPTY;
  const key = await keyForUse(ctx, uid, 'Encrypt', SYMMETRIC_OR.encrypt);
  try {
    const { params } = chooseParams(payload, key.obj.attributes);
    if (key.asymmetric) {
      if (phase !== 'once') throw new KmipError('FeatureNotSupported', 'RSA encryption does not stream');
      await consumeUsage(ctx, key.obj, bytes.length, true);
      return response(uid, { data: rsaEncrypt(key, params, bytes) });
    }
    const setup = symmetricSetup(key, params, optValue(payload, Tag.IVCounterNonce, 'ByteString'), 'encrypt');
    const { spec } = setup;
    if (spec.kind === 'wrap' && phase !== 'once') throw new KmipError('FeatureNotSupported', 'key wrap modes do not stream');
    if (phase === 'once') checkAligned(spec, bytes.length);
    checkCounterRoom(spec, setup.iv, bytes.length);
    const aad = optValue(payload, Tag.AuthenticatedEncryptionAdditionalData, 'ByteString');
    const cipher = makeCipher('encrypt', setup, key.symmetric!, spec.tagLength) as Cipher;
    setAad(cipher, spec, aad);
    await consumeUsage(ctx, key.obj, bytes.length, true);
    if (phase === 'once') {
      const out = guarded(() => Buffer.concat([cipher.update(bytes), cipher.final()]));
      const tag = spec.kind === 'aead' ? (cipher as CipherGCM).getAuthTag() : undefined;
      return response(uid, { data: out, ...(setup.generatedIv ? { iv: setup.generatedIv } : {}), ...(tag ? { tag } : {}) });
    }
    const out = guarded(() => cipher.update(bytes));
    const cv = streams.open(ctx, ENCRYPT_STREAM, uid, { cipher, spec, iv: setup.iv, total: bytes.length });
    return response(uid, { ...(out.length ? { data: out } : {}), ...(setup.generatedIv ? { iv: setup.generatedIv } : {}), cv });
  } finally {
    releaseKey(key);
  }
}

async function next(ctx: OperationContext, payload: StructureNode, phase: StreamPhase, cv: Uint8Array): Promise<TtlvNode[]> {
  const lease = streams.take(ctx, ENCRYPT_STREAM, cv, optValue(payload, Tag.UniqueIdentifier, 'TextString'));
  return withLease(streams, lease, async (s) => {
    const uid = lease.uid!;
    if (optValue(payload, Tag.AuthenticatedEncryptionAdditionalData, 'ByteString') !== undefined) {
      throw new KmipError('InvalidField', 'Authenticated Encryption Additional Data goes with the first part of a stream');
    }
    const obj = await checkKeyForUse(ctx, uid, 'Encrypt', SYMMETRIC_OR.encrypt);
    const bytes = optValue(payload, Tag.Data, 'ByteString') ?? EMPTY;
    s.total += bytes.length;
    checkCounterRoom(s.spec, s.iv, s.total);
    if (phase === 'final') checkAligned(s.spec, s.total);
    await consumeUsage(ctx, obj, bytes.length, false);
    if (phase === 'final') {
      const out = guarded(() => Buffer.concat([s.cipher.update(bytes), s.cipher.final()]));
      const tag = s.spec.kind === 'aead' ? (s.cipher as CipherGCM).getAuthTag() : undefined;
      return { result: response(uid, { ...(out.length ? { data: out } : {}), ...(tag ? { tag } : {}) }), done: true };
    }
    const out = guarded(() => s.cipher.update(bytes));
    return { result: response(uid, { ...(out.length ? { data: out } : {}), cv: lease.correlationValue }), done: false };
  });
}

export const encryptHandler: OperationHandler = {
  operation: Enums.Operation.Encrypt,
  name: 'Encrypt',
  since: '1.2',
  async handle(ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const { phase, correlationValue } = streamPhase(payload);
    if (correlationValue !== undefined) return next(ctx, payload, phase, correlationValue);
    return start(ctx, payload, phase);
  },
};
