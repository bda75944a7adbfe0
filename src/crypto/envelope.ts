/**
 * Root keys and the envelope of each object's key material.
 *
 * Root keys are random AES-256 keys, stored only wrapped by the master key (KeyStore.putRootKey).
 * One is active (seals new material); retired ones only open what they sealed.
 *
 * Envelope format (version 1), stored as WrappedMaterial { rootKeyId, blob }:
 *   blob = 0x01 || iv (12 bytes, random) || tag (16 bytes) || AES-256-GCM ciphertext
 *   AAD  = "kmipd-envelope" || 0x01 || u16 len || rootKeyId (UTF-8) || u32 len || uid (UTF-8)
 * The uid and root key id are authenticated: material moved to another uid, a changed root key
 * id, or any flipped bit fails to open with EnvelopeError instead of giving garbage.
 *
 * Plaintext handling: Node gives no way to zero a KeyObject or OpenSSL's cipher contexts; those
 * are released by the garbage collector (OpenSSL cleanses key schedules when freeing a context).
 * Buffers we own are zeroed with fill(0) as soon as they are no longer needed. Buffers the caller
 * passes (seal's plaintext) or receives (open's result) are the caller's to zero.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import type { KeyStore, RootKeyRecord, WrappedMaterial } from '../keystore/types.js';
import { checkCanary, KeyUnwrapError, recordCanary, type MasterKeyProvider } from './masterkey.js';

export const ENVELOPE_VERSION = 1;
const AAD_LABEL = Buffer.from('kmipd-envelope', 'ascii');
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;
const ROOT_KEY_BYTES = 32;

export type EnvelopeErrorCode =
  /** The blob is too short or of an unknown version. */
  | 'BAD_FORMAT'
  /** The blob names a root key this keyring does not hold. */
  | 'UNKNOWN_ROOT_KEY'
  /** Authentication failed: altered bytes, another object's material, or another root key id. */
  | 'AUTH_FAILED'
  | 'CLOSED';

export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError';
  constructor(
    readonly code: EnvelopeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A stored root key could not be unwrapped by the master key (at start-up). */
export class RootKeyError extends Error {
  override readonly name = 'RootKeyError';
}

/** The additional authenticated data binding a blob to its root key and its object. */
export function envelopeAad(rootKeyId: string, uid: string): Buffer {
  const rk = Buffer.from(rootKeyId, 'utf8');
  const u = Buffer.from(uid, 'utf8');
  if (rk.length > 0xffff) throw new RangeError('root key id too long');
  const aad = Buffer.alloc(AAD_LABEL.length + 1 + 2 + rk.length + 4 + u.length);
  let p = AAD_LABEL.copy(aad, 0);
  p = aad.writeUInt8(ENVELOPE_VERSION, p);
  p = aad.writeUInt16BE(rk.length, p);
  p += rk.copy(aad, p);
  p = aad.writeUInt32BE(u.length, p);
  u.copy(aad, p);
  return aad;
}

/** AES-256-GCM seal of `plaintext` for object `uid` under root key `key` (id `rootKeyId`). */
export function sealWith(key: KeyObject, rootKeyId: string, uid: string, plaintext: Buffer): WrappedMaterial {
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  c.setAAD(envelopeAad(rootKeyId, uid));
  const ct1 = c.update(plaintext);
  const ct2 = c.final();
  const tag = c.getAuthTag();
  const blob = Buffer.concat([Buffer.of(ENVELOPE_VERSION), iv, tag, ct1, ct2]);
  return { rootKeyId, blob };
}

/** Opens a blob sealed by sealWith; throws EnvelopeError (BAD_FORMAT, AUTH_FAILED). */
export function openWith(key: KeyObject, rootKeyId: string, uid: string, blob: Buffer): Buffer {
  if (blob.length < HEADER_BYTES) throw new EnvelopeError('BAD_FORMAT', `sealed material of ${uid} is truncated`);
  if (blob[0] !== ENVELOPE_VERSION) {
    throw new EnvelopeError('BAD_FORMAT', `sealed material of ${uid} has unknown envelope version ${blob[0]!}`);
  }
  const iv = blob.subarray(1, 1 + IV_BYTES);
  const tag = blob.subarray(1 + IV_BYTES, HEADER_BYTES);
  const d = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  d.setAAD(envelopeAad(rootKeyId, uid));
  d.setAuthTag(tag);
  // GCM hands out plaintext before it has checked the tag: it is zeroed unless final() passes.
  const pt = d.update(blob.subarray(HEADER_BYTES));
  try {
    const rest = d.final();
    if (rest.length === 0) return pt;
    const all = Buffer.concat([pt, rest]);
    pt.fill(0);
    rest.fill(0);
    return all;
  } catch {
    pt.fill(0);
    throw new EnvelopeError(
      'AUTH_FAILED',
      `sealed material of ${uid} failed authentication (altered, or belonging to another object or root key)`,
    );
  }
}

interface LoadedRootKey {
  id: string;
  key: KeyObject;
  status: 'active' | 'retired';
  createdAt: number;
}

function newRootKeyId(): string {
  return `rk-${randomBytes(8).toString('hex')}`;
}

/**
 * The root keys of a store, unwrapped in memory, and the envelope operations on them.
 */
export class RootKeyring {
  readonly #store: KeyStore;
  readonly #master: MasterKeyProvider;
  #keys = new Map<string, LoadedRootKey>();
  #active: LoadedRootKey | null = null;

  private constructor(store: KeyStore, master: MasterKeyProvider) {
    this.#store = store;
    this.#master = master;
  }

  /**
   * Checks the master key against the store's canary (WrongMasterKeyError), unwraps every root
   * key (RootKeyError), records the canary if there was none (only now that the key has proved
   * itself, so a wrong key can never record its own), and creates the first root key if the
   * store has no active one.
   */
  static async open(store: KeyStore, master: MasterKeyProvider): Promise<RootKeyring> {
    const canary = await checkCanary(master, store);
    const ring = new RootKeyring(store, master);
    const records = await store.rootKeys();
    for (const r of records) ring.#keys.set(r.id, await ring.#unwrapRecord(r));
    if (canary === 'absent') await recordCanary(master, store);
    const actives = [...ring.#keys.values()].filter((k) => k.status === 'active');
    ring.#active = actives.sort((a, b) => b.createdAt - a.createdAt)[0] ?? null;
    if (ring.#active === null) await ring.rotate();
    return ring;
  }

  async #unwrapRecord(r: RootKeyRecord): Promise<LoadedRootKey> {
    let plain: Buffer;
    try {
      plain = await this.#master.unwrap(r.wrapped);
    } catch (e) {
      if (!(e instanceof KeyUnwrapError)) throw e;
      throw new RootKeyError(
        `root key ${r.id} (wrapped by master key ${r.masterKeyId}) cannot be unwrapped by master key ` +
          `${this.#master.kind}:${this.#master.keyId}: wrong master key, or the stored root key is damaged`,
      );
    }
    try {
      if (plain.length !== ROOT_KEY_BYTES) throw new RootKeyError(`root key ${r.id} has ${plain.length} bytes, not ${ROOT_KEY_BYTES}`);
      return { id: r.id, key: createSecretKey(plain), status: r.status, createdAt: r.createdAt };
    } finally {
      plain.fill(0);
    }
  }

  /**
   * Generates a new root key, stores it wrapped as the active one (the store retires the
   * previous active key in the same transaction), and seals with it from now on.
   * Returns its id.
   */
  async rotate(): Promise<string> {
    const plain = randomBytes(ROOT_KEY_BYTES);
    try {
      const id = newRootKeyId();
      const wrapped = await this.#master.wrap(plain);
      const createdAt = Date.now();
      await this.#store.putRootKey({ id, wrapped, masterKeyId: this.#master.keyId, status: 'active', createdAt });
      const loaded: LoadedRootKey = { id, key: createSecretKey(plain), status: 'active', createdAt };
      for (const k of this.#keys.values()) k.status = 'retired';
      this.#keys.set(id, loaded);
      this.#active = loaded;
      return id;
    } finally {
      plain.fill(0);
    }
  }

  /** The id of the root key that seals new material. */
  get activeKeyId(): string {
    return this.#activeKey().id;
  }

  /** Ids of every loaded root key with its status. */
  keys(): { id: string; status: 'active' | 'retired' }[] {
    return [...this.#keys.values()].map((k) => ({ id: k.id, status: k.status }));
  }

  #activeKey(): LoadedRootKey {
    if (this.#active === null) throw new EnvelopeError('CLOSED', 'root keyring is closed');
    return this.#active;
  }

  /** Seals `plaintext` for object `uid` under the active root key. Does not modify `plaintext`. */
  seal(uid: string, plaintext: Buffer): WrappedMaterial {
    const k = this.#activeKey();
    return sealWith(k.key, k.id, uid, plaintext);
  }

  /**
   * Verifies and decrypts the material of object `uid`. Throws EnvelopeError (UNKNOWN_ROOT_KEY,
   * BAD_FORMAT, AUTH_FAILED). The caller owns the result and should fill(0) it after use.
   */
  open(uid: string, wrapped: WrappedMaterial): Buffer {
    this.#activeKey(); // throws when closed
    const k = this.#keys.get(wrapped.rootKeyId);
    if (k === undefined) {
      throw new EnvelopeError('UNKNOWN_ROOT_KEY', `material of ${uid} is sealed under unknown root key ${wrapped.rootKeyId}`);
    }
    return openWith(k.key, k.id, uid, wrapped.blob);
  }

  /** Drops the unwrapped root keys (see the note on KeyObjects above). */
  close(): void {
    this.#keys = new Map();
    this.#active = null;
  }
}
