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

/** How a keyring follows root key changes made by other processes (`kmipd root rotate`, `kmipd master ...`). */
export interface RootKeyringOptions {
  /**
   * The master key with this id, when a root key record wrapped by another master key than the
   * keyring's appears (the master key was rotated or migrated by another process); undefined
   * when it cannot be found. The keyring does not close what it returns.
   */
  masterFor?: (masterKeyId: string) => Promise<MasterKeyProvider | undefined>;
  /** Re-read the root key records this often (ms), to start sealing under a new active root key. 0: never (default). */
  refreshIntervalMs?: number;
  /** At least this long between two reloads from the store (ms, default 200): unknown ids wait, they do not fail. */
  minReloadIntervalMs?: number;
  /** Told when a background refresh fails (the keyring keeps the keys it has). */
  onRefreshError?: (e: unknown) => void;
}

const DEFAULT_MIN_RELOAD_MS = 200;

/**
 * The root keys of a store, unwrapped in memory, and the envelope operations on them.
 *
 * Root keys can change under a running keyring: another process may add a root key and make it
 * the active one (`kmipd root rotate`), then re-wrap objects under it. openOrReload() reloads the
 * records when it meets a root key id it does not hold (rate-limited and shared by concurrent
 * callers), and with `refreshIntervalMs` the keyring re-reads the records periodically so that
 * seal() moves to the new active key.
 */
export class RootKeyring {
  readonly #store: KeyStore;
  readonly #master: MasterKeyProvider;
  readonly #opts: RootKeyringOptions;
  #keys = new Map<string, LoadedRootKey>();
  #active: LoadedRootKey | null = null;
  #closed = false;
  #timer: NodeJS.Timeout | null = null;
  /** The reload in progress; `seq` orders reloads by when they were started. */
  #inflight: { seq: number; done: Promise<void> } | null = null;
  #reloadSeq = 0;
  #lastReloadAt = 0;

  private constructor(store: KeyStore, master: MasterKeyProvider, opts: RootKeyringOptions) {
    this.#store = store;
    this.#master = master;
    this.#opts = opts;
  }

  /**
   * Checks the master key against the store's canary (WrongMasterKeyError), unwraps every root
   * key (RootKeyError), records the canary if there was none (only now that the key has proved
   * itself, so a wrong key can never record its own), and creates the first root key if the
   * store has no active one.
   */
  static async open(store: KeyStore, master: MasterKeyProvider, opts: RootKeyringOptions = {}): Promise<RootKeyring> {
    const canary = await checkCanary(master, store);
    const ring = new RootKeyring(store, master, opts);
    const records = await store.rootKeys();
    for (const r of records) ring.#keys.set(r.id, await ring.#unwrapRecord(r));
    if (canary === 'absent') await recordCanary(master, store);
    const actives = [...ring.#keys.values()].filter((k) => k.status === 'active');
    ring.#active = actives.sort((a, b) => b.createdAt - a.createdAt)[0] ?? null;
    if (ring.#active === null) await ring.rotate();
    ring.#lastReloadAt = Date.now();
    if (opts.refreshIntervalMs !== undefined && opts.refreshIntervalMs > 0) ring.#startTimer(opts.refreshIntervalMs);
    return ring;
  }

  /** The master key that wrapped `r`: the keyring's own, or another found through `masterFor`. */
  async #masterOf(r: RootKeyRecord): Promise<MasterKeyProvider> {
    if (r.masterKeyId === this.#master.keyId || this.#opts.masterFor === undefined) return this.#master;
    return (await this.#opts.masterFor(r.masterKeyId)) ?? this.#master;
  }

  async #unwrapRecord(r: RootKeyRecord): Promise<LoadedRootKey> {
    const master = await this.#masterOf(r);
    let plain: Buffer;
    try {
      plain = await master.unwrap(r.wrapped);
    } catch (e) {
      if (!(e instanceof KeyUnwrapError)) throw e;
      throw new RootKeyError(
        `root key ${r.id} (wrapped by master key ${r.masterKeyId}) cannot be unwrapped by master key ` +
          `${master.kind}:${master.keyId}: wrong master key, or the stored root key is damaged`,
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

  /**
   * Re-reads the root key records: unwraps the ones this keyring does not hold yet, takes over
   * the statuses, and seals under the key the store marks active from now on. Rejects (after
   * loading what it could) when a new record cannot be unwrapped.
   */
  refresh(): Promise<void> {
    if (this.#closed) return Promise.reject(new EnvelopeError('CLOSED', 'root keyring is closed'));
    return this.#startReload().done;
  }

  #startReload(): { seq: number; done: Promise<void> } {
    const seq = ++this.#reloadSeq;
    const wait = Math.max(0, this.#lastReloadAt + (this.#opts.minReloadIntervalMs ?? DEFAULT_MIN_RELOAD_MS) - Date.now());
    const done = (async () => {
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      this.#lastReloadAt = Date.now();
      await this.#load();
    })();
    const entry = { seq, done };
    this.#inflight = entry;
    const clear = (): void => {
      if (this.#inflight === entry) this.#inflight = null;
    };
    done.then(clear, clear);
    return entry;
  }

  async #load(): Promise<void> {
    if (this.#closed) return;
    const records = await this.#store.rootKeys();
    let failure: unknown;
    for (const r of records) {
      if (this.#closed) return;
      const k = this.#keys.get(r.id);
      if (k !== undefined) {
        k.status = r.status;
        continue;
      }
      try {
        const loaded = await this.#unwrapRecord(r);
        if (this.#closed) return;
        this.#keys.set(r.id, loaded);
      } catch (e) {
        failure ??= e;
      }
    }
    const active = records
      .filter((r) => r.status === 'active')
      .sort((a, b) => b.createdAt - a.createdAt)
      .map((r) => this.#keys.get(r.id))
      .find((k) => k !== undefined);
    if (active !== undefined) this.#active = active;
    if (failure !== undefined) throw failure;
  }

  /** Reloads until `rootKeyId` is known or a reload started after this call has finished. */
  async #reloadFor(rootKeyId: string): Promise<void> {
    const mine = this.#reloadSeq;
    while (!this.#keys.has(rootKeyId) && !this.#closed) {
      const cur = this.#inflight;
      if (cur !== null && cur.seq > mine) {
        await cur.done;
        return;
      }
      if (cur !== null) {
        // Started before this call: it may have read the records before the key was added.
        await cur.done.catch(() => undefined);
        continue;
      }
      await this.#startReload().done;
      return;
    }
  }

  #startTimer(ms: number): void {
    this.#timer = setInterval(() => {
      if (this.#inflight !== null || this.#closed) return;
      this.#startReload().done.catch((e: unknown) => {
        if (!this.#closed) this.#opts.onRefreshError?.(e);
      });
    }, ms);
    this.#timer.unref();
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

  /**
   * As open(), but first reloads the root key records when `wrapped` names a root key this
   * keyring does not hold (one created by another process since): waits for the reload rather
   * than failing. Rejects like open(), or with the reason the new root key could not be loaded.
   */
  async openOrReload(uid: string, wrapped: WrappedMaterial): Promise<Buffer> {
    this.#activeKey(); // throws when closed
    if (!this.#keys.has(wrapped.rootKeyId)) await this.#reloadFor(wrapped.rootKeyId);
    return this.open(uid, wrapped);
  }

  /** Drops the unwrapped root keys (see the note on KeyObjects above) and stops refreshing. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#keys = new Map();
    this.#active = null;
  }
}
