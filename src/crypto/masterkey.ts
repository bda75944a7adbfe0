/**
 * The top of the key hierarchy: master key -> root keys -> each object's material.
 *
 * A master key never leaves its provider. It only wraps and unwraps root keys, in the format of
 * AES key wrap with padding (RFC 5649): the software provider does it with node:crypto, a PKCS#11
 * provider inside the HSM with CKM_AES_KEY_WRAP_PAD, and both produce the same bytes for the
 * same key, so root keys wrapped by one can be unwrapped by the other.
 */
import { createCipheriv, createDecipheriv, timingSafeEqual, type KeyObject } from 'node:crypto';

export interface MasterKeyProvider {
  /** 'software', 'pkcs11', ... */
  readonly kind: string;
  /** A stable, non-secret identifier of the key (a fingerprint or an HSM label/id). */
  readonly keyId: string;
  /** RFC 5649 AES key wrap with padding of `plain` (1 byte or more). */
  wrap(plain: Buffer): Promise<Buffer>;
  /** Inverse of wrap; rejects with KeyUnwrapError when the integrity check fails. */
  unwrap(wrapped: Buffer): Promise<Buffer>;
  /** Forgets the key; later calls reject. */
  close(): Promise<void>;
}

/** RFC 5649 unwrap failed: wrong key, or the wrapped bytes were altered. */
export class KeyUnwrapError extends Error {
  override readonly name = 'KeyUnwrapError';
}

/** The configured master key is not the one the data was set up with. */
export class WrongMasterKeyError extends Error {
  override readonly name = 'WrongMasterKeyError';
}

/** The alternative initial value of RFC 5649 §3; its length (4 bytes) selects padded wrapping. */
const RFC5649_AIV = Buffer.from('A65959A6', 'hex');

function wrapCipherFor(kek: KeyObject | Buffer): string {
  const len = Buffer.isBuffer(kek) ? kek.length : (kek.symmetricKeySize ?? 0);
  switch (len) {
    case 16:
      return 'id-aes128-wrap-pad';
    case 24:
      return 'id-aes192-wrap-pad';
    case 32:
      return 'id-aes256-wrap-pad';
    default:
      throw new RangeError(`an AES key-encryption key has 16, 24 or 32 bytes, not ${len}`);
  }
}

/**
 * AES key wrap with padding (RFC 5649) of `plain` under `kek` (AES-128/192/256 by its length).
 * Output: 8 bytes longer than `plain` rounded up to a multiple of 8 (16 bytes at least).
 */
export function aesKeyWrapPad(kek: KeyObject | Buffer, plain: Buffer): Buffer {
  if (plain.length === 0) throw new RangeError('RFC 5649 wraps at least one byte');
  const c = createCipheriv(wrapCipherFor(kek), kek, RFC5649_AIV);
  const a = c.update(plain);
  const b = c.final();
  return b.length === 0 ? a : Buffer.concat([a, b]);
}

/**
 * Inverse of aesKeyWrapPad. Throws KeyUnwrapError when the integrity check (AIV and padding)
 * fails. The caller owns the returned plaintext and should zero it after use.
 */
export function aesKeyUnwrapPad(kek: KeyObject | Buffer, wrapped: Buffer): Buffer {
  if (wrapped.length < 16 || wrapped.length % 8 !== 0) {
    throw new KeyUnwrapError(`an RFC 5649 wrapped key has a multiple of 8 bytes, at least 16, not ${wrapped.length}`);
  }
  const d = createDecipheriv(wrapCipherFor(kek), kek, RFC5649_AIV);
  let a: Buffer | undefined;
  try {
    a = d.update(wrapped);
    const b = d.final();
    if (b.length === 0) return a;
    const out = Buffer.concat([a, b]);
    a.fill(0);
    b.fill(0);
    return out;
  } catch {
    a?.fill(0);
    throw new KeyUnwrapError('key unwrap failed: wrong key-encryption key, or the wrapped key was altered');
  }
}

// ---- canary -------------------------------------------------------------------------------------

/** A fixed value wrapped to tell the right master key from a wrong one. Not secret. */
export const CANARY_PLAINTEXT = Buffer.from('kmipd master key canary, v1.....', 'ascii');

/** Keystore meta keys where the canary and the identity of the master key are kept. */
export const META_MASTER_CANARY = 'masterkey.canary';
export const META_MASTER_KIND = 'masterkey.kind';
export const META_MASTER_ID = 'masterkey.id';

/** The part of KeyStore that the canary needs. */
export interface MetaStore {
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;
}

/** The canary of a master key: RFC 5649 is deterministic, so this is a known answer per key. */
export async function computeCanary(master: MasterKeyProvider): Promise<Buffer> {
  return master.wrap(Buffer.from(CANARY_PLAINTEXT));
}

/** Records `master` as the master key of the data in `meta` (first start, or after a re-wrap). */
export async function recordCanary(master: MasterKeyProvider, meta: MetaStore): Promise<void> {
  const canary = await computeCanary(master);
  await meta.setMeta(META_MASTER_KIND, master.kind);
  await meta.setMeta(META_MASTER_ID, master.keyId);
  await meta.setMeta(META_MASTER_CANARY, canary.toString('hex'));
}

/**
 * Checks that `master` is the master key the data in `meta` was set up with: wraps the fixed
 * canary value and compares it with the canary recorded at set-up (recordCanary). Resolves
 * 'verified', or 'absent' when no canary was recorded yet (the caller proves the key some other
 * way, e.g. by unwrapping the existing root keys, before recording one); rejects with
 * WrongMasterKeyError on a mismatch.
 *
 * The canary lives with the data, not with the key: a wrong key file, or a different HSM key
 * under the same label, is then caught at start-up before any root key is used.
 */
export async function checkCanary(master: MasterKeyProvider, meta: MetaStore): Promise<'verified' | 'absent'> {
  const stored = await meta.getMeta(META_MASTER_CANARY);
  if (stored === undefined) return 'absent';
  const expected = Buffer.from(stored, 'hex');
  const actual = await computeCanary(master);
  if (expected.length === actual.length && timingSafeEqual(expected, actual)) return 'verified';
  const kind = (await meta.getMeta(META_MASTER_KIND)) ?? 'unknown';
  const id = (await meta.getMeta(META_MASTER_ID)) ?? 'unknown';
  throw new WrongMasterKeyError(
    `wrong master key: the data was set up with master key ${kind}:${id}, but the configured master key ` +
      `(${master.kind}:${master.keyId}) does not reproduce its canary; refusing to start. ` +
      'Configure the master key this data was created with.',
  );
}
