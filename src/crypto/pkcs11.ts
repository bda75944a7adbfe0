/**
 * The PKCS#11 master key: an AES-256 key generated inside an HSM token that never leaves it.
 *
 * Two modes:
 *  - root-key mode (Pkcs11MasterKey, a MasterKeyProvider): the token key wraps and unwraps the
 *    root keys with AES key wrap with padding (RFC 5649). Only start-up and root-key rotation
 *    touch the HSM; the root keys then live in process memory (RootKeyring).
 *  - direct mode (Pkcs11DirectSealer, a MaterialSealer): every object's material is sealed and
 *    opened inside the HSM with AES-256-GCM under a second token key (`<keyLabel>-direct`), for
 *    policies that forbid root keys in process memory. The blob has the layout of the software
 *    envelope (envelope.ts, version 1) and the same AAD, bound to the object's uid.
 *
 * Nothing here is specific to one vendor: the token is found by its label among the slots of
 * any PKCS#11 v2.40 module with AES. The module is loaded and C_Initialize'd once per process
 * (per module path) and every call into it goes through one queue, so PKCS#11 sessions are
 * never used concurrently and a (re)initialisation never races another call. Everything stays
 * in this process: a forked child would have to C_Initialize again.
 *
 * Each token has one logged-in session per process, shared by the providers that use it. When
 * a call fails because the session, the token or the module went away, the session is dropped,
 * re-opened (re-initialising the module and logging in again if needed) and the call is tried
 * once more; if the HSM is still unreachable the call rejects with HsmUnavailableError, and a
 * later call tries again (at most once per `retryIntervalMs`), so service resumes by itself.
 *
 * The PIN is kept in memory (a JS string, which cannot be zeroed) to log in again after an
 * outage. It is never logged and never part of an error message. After a PIN refusal during
 * service no further login is attempted (a wrong PIN retried on every request would lock the
 * token): the process must be restarted with the right PIN.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { endianness } from 'node:os';
import pkcs11js from 'pkcs11js';
import type { GcmParams, Handle, Mechanism, PKCS11, Template } from 'pkcs11js';
import type { WrappedMaterial } from '../keystore/types.js';
import type { MaterialSealer } from '../operations/objects.js';
import { ENVELOPE_VERSION, EnvelopeError, envelopeAad } from './envelope.js';
import { KeyUnwrapError, type MasterKeyProvider } from './masterkey.js';

// ---- errors -------------------------------------------------------------------------------------

export type Pkcs11SetupErrorCode =
  /** The module cannot be loaded or initialised. */
  | 'MODULE'
  /** No initialised token has the configured label. */
  | 'TOKEN_NOT_FOUND'
  /** Several tokens have the configured label. */
  | 'TOKEN_AMBIGUOUS'
  /** The token refused the PIN (CKR_PIN_INCORRECT, CKR_PIN_LEN_RANGE, CKR_PIN_INVALID). */
  | 'PIN_INCORRECT'
  /** The user PIN is locked or expired. */
  | 'PIN_LOCKED'
  /** This process is already logged in to the token with a different PIN. */
  | 'PIN_MISMATCH'
  /** Login failed for another reason. */
  | 'LOGIN_FAILED'
  /** No key with the configured label, and `create` was not asked for. */
  | 'KEY_MISSING'
  /** `create` was asked for, but a key with that label exists already. */
  | 'KEY_EXISTS'
  /** Several keys have the configured label. */
  | 'KEY_AMBIGUOUS'
  /** The key is not an AES-256 token key that is sensitive, never extractable and fit for its use. */
  | 'KEY_UNSUITABLE'
  /** The module lacks a mechanism kmipd needs, or it does not behave as the standard says. */
  | 'MECHANISM';

/** The PKCS#11 configuration cannot be used (at start-up). Never contains the PIN. */
export class Pkcs11SetupError extends Error {
  override readonly name = 'Pkcs11SetupError';
  constructor(
    readonly code: Pkcs11SetupErrorCode,
    message: string,
    /** The PKCS#11 return value behind it, e.g. 'CKR_PIN_INCORRECT'. */
    readonly ckr?: string,
  ) {
    super(message);
  }
}

/**
 * The HSM cannot be reached while serving: session closed, device error, token gone, module
 * finalised. The request failed; the next one tries to re-open a session.
 */
export class HsmUnavailableError extends Error {
  override readonly name = 'HsmUnavailableError';
  constructor(
    message: string,
    readonly ckr?: string,
  ) {
    super(message);
  }
}

/** A PKCS#11 call failed unexpectedly (not an outage, not a bad ciphertext). */
export class Pkcs11OperationError extends Error {
  override readonly name = 'Pkcs11OperationError';
  constructor(
    message: string,
    readonly ckr?: string,
  ) {
    super(message);
  }
}

// ---- constants ----------------------------------------------------------------------------------

const P = pkcs11js;
/** RFC 5649 in SoftHSM and PKCS#11 v2.40 (v3.0 re-defines 0x210A as PKCS#7 padding + RFC 3394). */
export const CKM_AES_KEY_WRAP_PAD = 0x210a;
/** RFC 5649 by its PKCS#11 v3.0 name. Preferred when a module offers it. */
export const CKM_AES_KEY_WRAP_KWP = 0x210b;

const AES_256_BYTES = 32;
const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const ENVELOPE_HEADER_BYTES = 1 + GCM_IV_BYTES + GCM_TAG_BYTES;
const DEFAULT_RETRY_INTERVAL_MS = 1000;

/** Return values meaning that the session, the token or the module state is gone. */
const OUTAGE = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_REMOVED',
  'CKR_DEVICE_MEMORY',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_SLOT_ID_INVALID',
  'CKR_OBJECT_HANDLE_INVALID',
  'CKR_KEY_HANDLE_INVALID',
  'CKR_OPERATION_ACTIVE',
]);

const PIN_REFUSED = new Set(['CKR_PIN_INCORRECT', 'CKR_PIN_LEN_RANGE', 'CKR_PIN_INVALID']);
const PIN_LOCKED = new Set(['CKR_PIN_LOCKED', 'CKR_PIN_EXPIRED']);

/** The CKR_* name of a pkcs11js error, if it is one. */
function ckrOf(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined;
  const m = /^(CKR_[A-Z0-9_]+)/.exec(e.message);
  return m?.[1];
}

/** True when `e` says the HSM (session, token, module) went away rather than the call being bad. */
function isOutage(e: unknown): boolean {
  const rv = ckrOf(e);
  if (rv !== undefined) return OUTAGE.has(rv);
  // pkcs11js raises NativeError for failures outside PKCS#11 (e.g. the module is unloaded).
  return e instanceof Error && e.name === 'NativeError';
}

function describe(e: unknown): string {
  return ckrOf(e) ?? (e instanceof Error ? e.message : String(e));
}

function readUlong(b: Buffer): number {
  if (b.length === 8) return Number(endianness() === 'LE' ? b.readBigUInt64LE() : b.readBigUInt64BE());
  if (b.length === 4) return endianness() === 'LE' ? b.readUInt32LE() : b.readUInt32BE();
  throw new Pkcs11OperationError(`unexpected CK_ULONG of ${b.length} bytes`);
}

function readBool(b: Buffer): boolean {
  return b.length > 0 && b[0] !== 0;
}

/** Length of the RFC 5649 wrapping of `n` bytes. */
export function rfc5649Length(n: number): number {
  return n <= 8 ? 16 : 8 + Math.ceil(n / 8) * 8;
}

// ---- the module: loaded and initialised once per process ----------------------------------------

class Pkcs11Library {
  readonly path: string;
  readonly p: PKCS11;
  initialized = false;
  /** Bumped at every (re)initialisation: handles from an older generation are dead. */
  generation = 0;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    this.path = path;
    const lib = new P.PKCS11();
    try {
      lib.load(path);
    } catch (e) {
      throw new Pkcs11SetupError('MODULE', `cannot load the PKCS#11 module ${path}: ${describe(e)}`);
    }
    this.p = lib;
  }

  /** Runs `fn` after every call queued before it: one PKCS#11 call at a time per module. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.#tail.then(fn, fn);
    this.#tail = r.then(
      () => undefined,
      () => undefined,
    );
    return r;
  }

  ensureInitialized(): void {
    if (this.initialized) return;
    try {
      this.p.C_Initialize({ flags: P.CKF_OS_LOCKING_OK });
    } catch (e) {
      const rv = ckrOf(e);
      if (rv === 'CKR_CANT_LOCK') {
        // The module cannot lock with OS primitives; all our calls are serialised anyway.
        try {
          this.p.C_Initialize();
        } catch (e2) {
          if (ckrOf(e2) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw e2;
        }
      } else if (rv !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        throw new Pkcs11SetupError('MODULE', `C_Initialize of the PKCS#11 module ${this.path} failed (${describe(e)})`, rv);
      }
    }
    this.initialized = true;
    this.generation++;
  }

  /**
   * C_Finalize + C_Initialize: the module forgets every session and scans its slots again (some
   * modules only notice a returning token or a reconnected device this way). Every connection
   * notices the new generation before its next call and re-opens its session.
   */
  reinitialize(): void {
    try {
      this.p.C_Finalize();
    } catch {
      // Already finalised (behind our back, or the module is broken): initialise anyway.
    }
    this.initialized = false;
    this.ensureInitialized();
  }
}

const libraries = new Map<string, Pkcs11Library>();

function libraryFor(path: string): Pkcs11Library {
  let lib = libraries.get(path);
  if (!lib) {
    lib = new Pkcs11Library(path);
    libraries.set(path, lib);
  }
  return lib;
}

// ---- one token: its slot, its logged-in session, its keys ---------------------------------------

type KeyUse = 'wrap' | 'encrypt';

interface KeyInfo {
  handle: Handle;
  label: string;
  ckaId: Buffer;
  keyType: number;
  valueLen: number;
  token: boolean;
  sensitive: boolean;
  extractable: boolean;
  wrap: boolean;
  unwrap: boolean;
  encrypt: boolean;
  decrypt: boolean;
}

/** What an operation gets: the module, the logged-in session, and the token's keys. */
interface SessionContext {
  readonly p: PKCS11;
  readonly session: Handle;
  readonly slot: Handle;
  /**
   * The handle of the key `label` whose CKA_ID is `ckaId` (as found at set-up); rejects with
   * HsmUnavailableError if it is gone or was replaced by another key under that label.
   */
  key(label: string, ckaId: Buffer): Handle;
  /** Every secret key with this label. */
  findKeys(label: string): KeyInfo[];
}

export interface Pkcs11Status {
  /** A logged-in session is open. */
  connected: boolean;
  /** Sessions opened so far (1 after start-up; more after outages). */
  sessionOpens: number;
  /** The last outage, if any (no secrets). */
  lastError: string | null;
}

const SESSION_FLAGS = (): number => P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION;

function closeQuietly(p: PKCS11, session: Handle): void {
  try {
    p.C_CloseSession(session);
  } catch {
    // gone already
  }
}

function pinDigest(pin: string): Buffer {
  return createHash('sha256').update('kmipd pkcs11 pin\0').update(pin, 'utf8').digest();
}

class TokenConnection {
  readonly lib: Pkcs11Library;
  readonly label: string;
  readonly #pin: string;
  readonly #pinDigest: Buffer;
  readonly #retryIntervalMs: number;
  serial: string | null = null;
  refs = 0;
  #slot: Handle | null = null;
  #session: Handle | null = null;
  #generation = -1;
  #renew = false;
  #everOpened = false;
  #closed = false;
  #loginRefused: string | null = null;
  #nextAttempt = 0;
  /** Key handles found on the current session, by label, with the CKA_ID they were checked against. */
  #keyHandles = new Map<string, { handle: Handle; ckaId: Buffer }>();
  #opens = 0;
  #lastError: string | null = null;

  constructor(lib: Pkcs11Library, label: string, pin: string, retryIntervalMs: number) {
    this.lib = lib;
    this.label = label;
    this.#pin = pin;
    this.#pinDigest = pinDigest(pin);
    this.#retryIntervalMs = retryIntervalMs;
  }

  samePin(pin: string): boolean {
    return timingSafeEqual(this.#pinDigest, pinDigest(pin));
  }

  get status(): Pkcs11Status {
    return { connected: this.#session !== null && this.#generation === this.lib.generation, sessionOpens: this.#opens, lastError: this.#lastError };
  }

  /**
   * Runs `op` with the logged-in session, in the module's queue. An outage (see OUTAGE) drops
   * the session and `op` is tried once more on a fresh one; if that fails too, or no session
   * can be opened, the call rejects with HsmUnavailableError. Any other failure renews the
   * session before the next call (a failed C_Encrypt can leave the operation active).
   */
  use<T>(op: (ctx: SessionContext) => Promise<T>): Promise<T> {
    return this.lib.run(async () => {
      for (let attempt = 0; ; attempt++) {
        const ctx = this.#ensureSession();
        try {
          return await op(ctx);
        } catch (e) {
          if (e instanceof HsmUnavailableError) throw e;
          if (isOutage(e)) {
            this.#dropSession(true);
            this.#lastError = `${describe(e)} during a call`;
            if (attempt === 0) continue;
            throw new HsmUnavailableError(`the HSM token "${this.label}" is unavailable (${describe(e)})`, ckrOf(e));
          }
          this.#renew = true;
          if (ckrOf(e) !== undefined) {
            throw new Pkcs11OperationError(`PKCS#11 call on token "${this.label}" failed: ${describe(e)}`, ckrOf(e));
          }
          throw e;
        }
      }
    });
  }

  /** Closes the session (when the last provider using this token closes). */
  release(): Promise<void> {
    return this.lib.run(async () => {
      if (--this.refs > 0) return;
      this.#closed = true;
      this.#dropSession(true);
      if (connections.get(connectionKey(this.lib.path, this.label)) === this) {
        connections.delete(connectionKey(this.lib.path, this.label));
      }
    });
  }

  #dropSession(close = false): void {
    const s = this.#session;
    this.#session = null;
    this.#keyHandles.clear();
    // A session of an older generation is dead, and its handle may already name someone else's.
    if (close && s !== null && this.#generation === this.lib.generation) closeQuietly(this.lib.p, s);
  }

  #context(session: Handle, slot: Handle): SessionContext {
    const p = this.lib.p;
    const findKeys = (label: string): KeyInfo[] => findSecretKeys(p, session, label);
    return {
      p,
      session,
      slot,
      findKeys,
      key: (label, ckaId) => {
        const cached = this.#keyHandles.get(label);
        if (cached && cached.ckaId.equals(ckaId)) return cached.handle;
        const found = findKeys(label);
        const k = found[0];
        if (found.length !== 1 || k === undefined || !k.ckaId.equals(ckaId)) {
          const what = found.length === 0 ? 'is no longer on the token' : found.length > 1 ? 'is ambiguous now' : 'was replaced by another key';
          throw new HsmUnavailableError(`the key "${label}" on token "${this.label}" ${what}; refusing to use it`);
        }
        this.#keyHandles.set(label, { handle: k.handle, ckaId: k.ckaId });
        return k.handle;
      },
    };
  }

  #ensureSession(): SessionContext {
    if (this.#closed) throw new Pkcs11OperationError(`the PKCS#11 provider for token "${this.label}" is closed`);
    if (this.#loginRefused !== null) throw new HsmUnavailableError(this.#loginRefused);
    if (this.#session !== null && this.#slot !== null && this.#generation === this.lib.generation) {
      if (this.#renew) this.#renewSession();
      if (this.#session !== null) return this.#context(this.#session, this.#slot);
    }
    this.#session = null;
    this.#keyHandles.clear();
    if (this.#everOpened && Date.now() < this.#nextAttempt) {
      throw new HsmUnavailableError(`the HSM token "${this.label}" is unavailable (${this.#lastError ?? 'unknown error'}); retrying shortly`);
    }
    try {
      this.#open();
    } catch (e) {
      if (!this.#everOpened) {
        if (e instanceof Pkcs11SetupError) throw e;
        throw new Pkcs11SetupError('MODULE', `cannot open a session on token "${this.label}" with ${this.lib.path}: ${describe(e)}`, ckrOf(e));
      }
      this.#nextAttempt = Date.now() + this.#retryIntervalMs;
      this.#lastError = e instanceof Error ? e.message : String(e);
      if (e instanceof HsmUnavailableError) throw e;
      throw new HsmUnavailableError(`the HSM token "${this.label}" is unavailable: ${this.#lastError}`, ckrOf(e) ?? (e instanceof Pkcs11SetupError ? e.ckr : undefined));
    }
    if (this.#session === null || this.#slot === null) throw new HsmUnavailableError(`no session on token "${this.label}"`);
    return this.#context(this.#session, this.#slot);
  }

  /**
   * Opens a new session before closing the current one, so the login survives. If that fails,
   * both are dropped and the caller opens (and logs in) from scratch.
   */
  #renewSession(): void {
    this.#renew = false;
    const old = this.#session;
    const slot = this.#slot;
    if (old === null || slot === null) return;
    const p = this.lib.p;
    let s: Handle | null = null;
    try {
      s = p.C_OpenSession(slot, SESSION_FLAGS());
      this.#login(s);
    } catch {
      if (s !== null) closeQuietly(p, s);
      this.#dropSession(true);
      return;
    }
    this.#session = s;
    this.#keyHandles.clear();
    closeQuietly(p, old);
  }

  #open(): void {
    const lib = this.lib;
    lib.ensureInitialized();
    let slot: Handle;
    try {
      slot = this.#findSlot();
    } catch (e) {
      // Scan again before giving up: modules without hot-plug support (SoftHSM, some network
      // HSM clients) only see a returning token, a token initialised after start-up or a
      // restarted daemon after a fresh C_Initialize. Other connections re-open transparently.
      if (e instanceof Pkcs11SetupError && e.code === 'TOKEN_AMBIGUOUS') throw e;
      lib.reinitialize();
      slot = this.#findSlot();
    }
    const info = lib.p.C_GetTokenInfo(slot);
    const serial = info.serialNumber.trim();
    if (this.serial !== null && serial !== this.serial) {
      throw new HsmUnavailableError(`the token labelled "${this.label}" now has serial ${serial}, not ${this.serial}; refusing to use it`);
    }
    if ((info.flags & P.CKF_USER_PIN_LOCKED) !== 0) {
      this.#refuseLogin('PIN_LOCKED', `the user PIN of token "${this.label}" is locked (too many wrong attempts); unlock it with the SO PIN`, 'CKR_PIN_LOCKED');
    }
    const session = lib.p.C_OpenSession(slot, SESSION_FLAGS());
    try {
      this.#login(session);
    } catch (e) {
      closeQuietly(lib.p, session);
      throw e;
    }
    this.#slot = slot;
    this.#session = session;
    this.#generation = lib.generation;
    this.#renew = false;
    this.serial = serial;
    this.#everOpened = true;
    this.#opens++;
  }

  #login(session: Handle): void {
    try {
      this.lib.p.C_Login(session, P.CKU_USER, this.#pin);
    } catch (e) {
      const rv = ckrOf(e);
      if (rv === 'CKR_USER_ALREADY_LOGGED_IN') return; // another session of this process is
      if (rv !== undefined && PIN_REFUSED.has(rv)) {
        this.#refuseLogin('PIN_INCORRECT', `the token "${this.label}" refused the PIN (${rv})`, rv);
      }
      if (rv !== undefined && PIN_LOCKED.has(rv)) {
        this.#refuseLogin('PIN_LOCKED', `the user PIN of token "${this.label}" is locked or expired (${rv})`, rv);
      }
      if (isOutage(e)) throw e;
      throw new Pkcs11SetupError('LOGIN_FAILED', `login to token "${this.label}" failed (${describe(e)})`, rv);
    }
  }

  #refuseLogin(code: Pkcs11SetupErrorCode, message: string, rv: string): never {
    if (this.#everOpened) {
      // Never try this PIN again in this process: retries would lock the token.
      this.#loginRefused = `${message}; no further login attempts: restart kmipd with the right PIN`;
      throw new HsmUnavailableError(this.#loginRefused, rv);
    }
    throw new Pkcs11SetupError(code, message, rv);
  }

  #findSlot(): Handle {
    const p = this.lib.p;
    let slots: Handle[];
    try {
      slots = p.C_GetSlotList(true);
    } catch (e) {
      if (ckrOf(e) !== 'CKR_CRYPTOKI_NOT_INITIALIZED') throw e;
      this.lib.reinitialize();
      slots = p.C_GetSlotList(true);
    }
    const found: { slot: Handle; label: string; serial: string }[] = [];
    for (const slot of slots) {
      let info;
      try {
        info = p.C_GetTokenInfo(slot);
      } catch {
        continue; // removed while we looked
      }
      if ((info.flags & P.CKF_TOKEN_INITIALIZED) === 0) continue;
      found.push({ slot, label: info.label.replace(/[ \0]+$/, ''), serial: info.serialNumber.trim() });
    }
    const matches = found.filter((f) => f.label === this.label);
    const m = matches[0];
    if (matches.length === 1 && m !== undefined) return m.slot;
    if (matches.length > 1) {
      throw new Pkcs11SetupError(
        'TOKEN_AMBIGUOUS',
        `several tokens are labelled "${this.label}" (serials ${matches.map((x) => x.serial).join(', ')}); give each token a unique label`,
      );
    }
    const list = found.length ? found.map((f) => `"${f.label}" (serial ${f.serial})`).join(', ') : 'none';
    throw new Pkcs11SetupError('TOKEN_NOT_FOUND', `no token labelled "${this.label}" in ${this.lib.path}; tokens found: ${list}`);
  }
}

const connections = new Map<string, TokenConnection>();

function connectionKey(module: string, token: string): string {
  return `${module}\0${token}`;
}

function acquire(opts: Pkcs11Options): TokenConnection {
  const lib = libraryFor(opts.module);
  const key = connectionKey(opts.module, opts.token);
  let conn = connections.get(key);
  if (conn) {
    if (!conn.samePin(opts.pin)) {
      throw new Pkcs11SetupError(
        'PIN_MISMATCH',
        `PIN refused for token "${opts.token}": this process is already logged in to it with a different PIN`,
      );
    }
  } else {
    conn = new TokenConnection(lib, opts.token, opts.pin, opts.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS);
    connections.set(key, conn);
  }
  conn.refs++;
  return conn;
}

// ---- keys ---------------------------------------------------------------------------------------

function findSecretKeys(p: PKCS11, session: Handle, label: string): KeyInfo[] {
  p.C_FindObjectsInit(session, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_LABEL, value: label },
  ]);
  let handles: Handle[];
  try {
    handles = p.C_FindObjects(session, 16);
  } finally {
    p.C_FindObjectsFinal(session);
  }
  return handles.map((handle) => readKeyInfo(p, session, handle, label));
}

function readKeyInfo(p: PKCS11, session: Handle, handle: Handle, label: string): KeyInfo {
  const types = [
    P.CKA_ID,
    P.CKA_KEY_TYPE,
    P.CKA_VALUE_LEN,
    P.CKA_TOKEN,
    P.CKA_SENSITIVE,
    P.CKA_EXTRACTABLE,
    P.CKA_WRAP,
    P.CKA_UNWRAP,
    P.CKA_ENCRYPT,
    P.CKA_DECRYPT,
  ];
  const got = new Map<number, Buffer>();
  for (const a of p.C_GetAttributeValue(session, handle, types.map((type) => ({ type })))) got.set(a.type, a.value);
  const b = (t: number) => readBool(got.get(t) ?? Buffer.alloc(0));
  const u = (t: number) => {
    const v = got.get(t);
    return v === undefined || v.length === 0 ? -1 : readUlong(v);
  };
  return {
    handle,
    label,
    ckaId: got.get(P.CKA_ID) ?? Buffer.alloc(0),
    keyType: u(P.CKA_KEY_TYPE),
    valueLen: u(P.CKA_VALUE_LEN),
    token: b(P.CKA_TOKEN),
    sensitive: b(P.CKA_SENSITIVE),
    extractable: b(P.CKA_EXTRACTABLE),
    wrap: b(P.CKA_WRAP),
    unwrap: b(P.CKA_UNWRAP),
    encrypt: b(P.CKA_ENCRYPT),
    decrypt: b(P.CKA_DECRYPT),
  };
}

/** Refuses a key that is not a sensitive, never-extractable AES-256 token key fit for `use`. */
function checkKey(k: KeyInfo, use: KeyUse, token: string): void {
  const problems: string[] = [];
  if (k.keyType !== P.CKK_AES) problems.push('it is not an AES key');
  if (k.valueLen !== AES_256_BYTES) problems.push(`it has ${k.valueLen} bytes, not ${AES_256_BYTES}`);
  if (!k.token) problems.push('it is not a token object');
  if (!k.sensitive) problems.push('CKA_SENSITIVE is false');
  if (k.extractable) problems.push('CKA_EXTRACTABLE is true');
  if (use === 'wrap' && !(k.wrap && k.unwrap)) problems.push('it may not wrap and unwrap (CKA_WRAP/CKA_UNWRAP)');
  if (use === 'encrypt' && !(k.encrypt && k.decrypt)) problems.push('it may not encrypt and decrypt (CKA_ENCRYPT/CKA_DECRYPT)');
  if (problems.length) {
    throw new Pkcs11SetupError('KEY_UNSUITABLE', `the key "${k.label}" on token "${token}" cannot be used: ${problems.join('; ')}`);
  }
}

function keyTemplate(label: string, ckaId: Buffer, use: KeyUse): Template {
  return [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
    { type: P.CKA_VALUE_LEN, value: AES_256_BYTES },
    { type: P.CKA_LABEL, value: label },
    { type: P.CKA_ID, value: ckaId },
    { type: P.CKA_TOKEN, value: true },
    { type: P.CKA_PRIVATE, value: true },
    { type: P.CKA_SENSITIVE, value: true },
    { type: P.CKA_EXTRACTABLE, value: false },
    // Only the one use: some modules (SoftHSM) turn on encrypt/decrypt/sign/verify by default.
    { type: P.CKA_WRAP, value: use === 'wrap' },
    { type: P.CKA_UNWRAP, value: use === 'wrap' },
    { type: P.CKA_ENCRYPT, value: use === 'encrypt' },
    { type: P.CKA_DECRYPT, value: use === 'encrypt' },
    { type: P.CKA_SIGN, value: false },
    { type: P.CKA_VERIFY, value: false },
    { type: P.CKA_DERIVE, value: false },
  ];
}

function mechanismFlags(p: PKCS11, slot: Handle, mech: number): number {
  try {
    return p.C_GetMechanismInfo(slot, mech).flags;
  } catch {
    return 0;
  }
}

/**
 * Finds the key `label`, or generates it in the token when `create` is set; checks it and
 * records its identity in the connection. Returns its CKA_ID.
 */
async function setUpKey(ctx: SessionContext, label: string, use: KeyUse, create: boolean, token: string): Promise<Buffer> {
  const existing = ctx.findKeys(label);
  if (create && existing.length > 0) {
    throw new Pkcs11SetupError('KEY_EXISTS', `a key labelled "${label}" exists already on token "${token}"; refusing to create another (open it without create)`);
  }
  if (!create && existing.length === 0) {
    throw new Pkcs11SetupError('KEY_MISSING', `no key labelled "${label}" on token "${token}" (create it on first start)`);
  }
  if (existing.length > 1) {
    throw new Pkcs11SetupError('KEY_AMBIGUOUS', `${existing.length} keys are labelled "${label}" on token "${token}"; keep one`);
  }
  let key = existing[0];
  if (create) {
    if ((mechanismFlags(ctx.p, ctx.slot, P.CKM_AES_KEY_GEN) & P.CKF_GENERATE) === 0) {
      throw new Pkcs11SetupError('MECHANISM', `token "${token}" cannot generate AES keys (CKM_AES_KEY_GEN)`);
    }
    const ckaId = randomBytes(16);
    const handle = await ctx.p.C_GenerateKeyAsync(ctx.session, { mechanism: P.CKM_AES_KEY_GEN }, keyTemplate(label, ckaId, use));
    const now = ctx.findKeys(label);
    if (now.length !== 1) {
      // Someone created one at the same moment: keep theirs, drop ours, and let the caller retry.
      try {
        ctx.p.C_DestroyObject(ctx.session, handle);
      } catch {
        // ignore
      }
      throw new Pkcs11SetupError('KEY_AMBIGUOUS', `another key labelled "${label}" appeared on token "${token}" while creating it`);
    }
    key = now[0];
  }
  if (key === undefined) throw new Pkcs11SetupError('KEY_MISSING', `no key labelled "${label}" on token "${token}"`);
  checkKey(key, use, token);
  return key.ckaId;
}

function keyIdOf(prefix: string, serial: string, label: string, ckaId: Buffer): string {
  const h = createHash('sha256');
  for (const part of ['kmipd pkcs11 key id v1', serial, label]) h.update(part, 'utf8').update('\0');
  h.update(ckaId);
  return `${prefix}-${h.digest('hex').slice(0, 16)}`;
}

// ---- root-key mode ------------------------------------------------------------------------------

export interface Pkcs11Options {
  /** Path of the PKCS#11 module (.so). */
  module: string;
  /** Label of the token. */
  token: string;
  /** CKA_LABEL of the master key (direct mode: `<keyLabel>-direct`). */
  keyLabel: string;
  /** User PIN. Never logged, never in an error message. */
  pin: string;
  /** Generate the key in the token (first start); refused if one with that label exists. */
  create?: boolean;
  /** During an outage, try to re-open a session at most this often (ms, default 1000). */
  retryIntervalMs?: number;
}

function wrapMechanism(m: number): Mechanism {
  return { mechanism: m };
}

const sessionSecretTemplate = (value: Buffer): Template => [
  { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
  { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
  { type: P.CKA_TOKEN, value: false },
  { type: P.CKA_PRIVATE, value: true },
  { type: P.CKA_SENSITIVE, value: true },
  { type: P.CKA_EXTRACTABLE, value: true },
  { type: P.CKA_VALUE, value },
];

const unwrapTemplate = (): Template => [
  { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
  { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
  { type: P.CKA_TOKEN, value: false },
  { type: P.CKA_PRIVATE, value: true },
  // Not sensitive, extractable: the value is read back once, then the object is destroyed.
  { type: P.CKA_SENSITIVE, value: false },
  { type: P.CKA_EXTRACTABLE, value: true },
];

function destroyQuietly(ctx: SessionContext, h: Handle): void {
  try {
    ctx.p.C_DestroyObject(ctx.session, h);
  } catch {
    // A session object dies with its session anyway.
  }
}

/** C_WrapKey of `plain` (as a short-lived session object) under `kek`. */
async function hsmWrap(ctx: SessionContext, mech: number, kek: Handle, plain: Buffer): Promise<Buffer> {
  const obj = ctx.p.C_CreateObject(ctx.session, sessionSecretTemplate(plain));
  try {
    const out = await ctx.p.C_WrapKeyAsync(ctx.session, wrapMechanism(mech), kek, obj, Buffer.alloc(rfc5649Length(plain.length) + 16));
    return Buffer.from(out);
  } finally {
    destroyQuietly(ctx, obj);
  }
}

/** C_UnwrapKey into a session object, read its value, destroy it. */
async function hsmUnwrap(ctx: SessionContext, mech: number, kek: Handle, wrapped: Buffer): Promise<Buffer> {
  let obj: Handle;
  try {
    obj = await ctx.p.C_UnwrapKeyAsync(ctx.session, wrapMechanism(mech), kek, wrapped, unwrapTemplate());
  } catch (e) {
    if (isOutage(e)) throw e;
    throw new KeyUnwrapError(`key unwrap failed in the HSM (${describe(e)}): wrong master key, or the wrapped key was altered`);
  }
  try {
    const attr = ctx.p.C_GetAttributeValue(ctx.session, obj, [{ type: P.CKA_VALUE }])[0];
    if (attr === undefined) throw new Pkcs11OperationError('the unwrapped key has no value');
    return attr.value;
  } finally {
    destroyQuietly(ctx, obj);
  }
}

/** Fixed, non-secret values for the start-up self-test of the wrap mechanism. */
const SELF_TEST_32 = createHash('sha256').update('kmipd pkcs11 wrap self-test').digest();
const SELF_TEST_1 = Buffer.of(0x5a);

/**
 * Picks the RFC 5649 mechanism and checks the module really produces RFC 5649: 40 bytes for a
 * 32-byte key (PKCS#7 padding + RFC 3394, the v3.0 meaning of 0x210A, gives 56) that unwrap to
 * the same bytes. Also finds out whether lengths that are not a multiple of 8 survive a round
 * trip: SoftHSM 2.6.1 zero-pads them to a multiple of 8 before wrapping, so its output for
 * such lengths is not RFC 5649 and unwraps to the padded value.
 */
async function chooseWrapMechanism(ctx: SessionContext, kek: Handle, token: string): Promise<{ mechanism: number; anyLength: boolean }> {
  const candidates = [CKM_AES_KEY_WRAP_KWP, CKM_AES_KEY_WRAP_PAD].filter((m) => {
    const f = mechanismFlags(ctx.p, ctx.slot, m);
    return (f & P.CKF_WRAP) !== 0 && (f & P.CKF_UNWRAP) !== 0;
  });
  if (candidates.length === 0) {
    throw new Pkcs11SetupError('MECHANISM', `token "${token}" offers no AES key wrap with padding (CKM_AES_KEY_WRAP_KWP 0x210B or CKM_AES_KEY_WRAP_PAD 0x210A) for wrap and unwrap`);
  }
  const failures: string[] = [];
  for (const m of candidates) {
    const name = `0x${m.toString(16).toUpperCase()}`;
    try {
      const w = await hsmWrap(ctx, m, kek, SELF_TEST_32);
      if (w.length !== rfc5649Length(SELF_TEST_32.length)) {
        failures.push(`${name} wraps 32 bytes into ${w.length}, not ${rfc5649Length(32)} (not RFC 5649)`);
        continue;
      }
      const back = await hsmUnwrap(ctx, m, kek, w);
      if (!back.equals(SELF_TEST_32)) {
        failures.push(`${name} does not unwrap what it wrapped`);
        continue;
      }
      let anyLength = false;
      try {
        const w1 = await hsmWrap(ctx, m, kek, SELF_TEST_1);
        anyLength = w1.length === 16 && (await hsmUnwrap(ctx, m, kek, w1)).equals(SELF_TEST_1);
      } catch (e) {
        if (isOutage(e)) throw e;
      }
      return { mechanism: m, anyLength };
    } catch (e) {
      if (isOutage(e)) throw e;
      failures.push(`${name}: ${describe(e)}`);
    }
  }
  throw new Pkcs11SetupError('MECHANISM', `token "${token}" has no working RFC 5649 key wrap: ${failures.join('; ')}`);
}

export class Pkcs11MasterKey implements MasterKeyProvider {
  readonly kind = 'pkcs11';
  readonly keyId: string;
  readonly token: string;
  readonly tokenSerial: string;
  readonly keyLabel: string;
  /** CKA_ID of the key, hex. */
  readonly ckaId: string;
  readonly #ckaId: Buffer;
  /** The RFC 5649 mechanism in use (0x210B or 0x210A). */
  readonly mechanism: number;
  /**
   * Whether the module wraps lengths that are not a multiple of 8 correctly (SoftHSM 2.6.1
   * does not). When false, wrap() refuses them rather than produce non-RFC 5649 bytes. Root
   * keys and the canary are 32 bytes.
   */
  readonly wrapsAnyLength: boolean;
  #conn: TokenConnection | null;

  /** @internal use openPkcs11MasterKey */
  constructor(conn: TokenConnection, serial: string, keyLabel: string, ckaId: Buffer, mechanism: number, anyLength: boolean) {
    this.#conn = conn;
    this.token = conn.label;
    this.tokenSerial = serial;
    this.keyLabel = keyLabel;
    this.ckaId = ckaId.toString('hex');
    this.#ckaId = Buffer.from(ckaId);
    this.keyId = keyIdOf('p11', serial, keyLabel, ckaId);
    this.mechanism = mechanism;
    this.wrapsAnyLength = anyLength;
  }

  #c(): TokenConnection {
    if (this.#conn === null) throw new Pkcs11OperationError('PKCS#11 master key is closed');
    return this.#conn;
  }

  get status(): Pkcs11Status {
    return this.#c().status;
  }

  async wrap(plain: Buffer): Promise<Buffer> {
    const conn = this.#c();
    if (plain.length === 0) throw new RangeError('RFC 5649 wraps at least one byte');
    if (!this.wrapsAnyLength && plain.length % 8 !== 0) {
      throw new RangeError(
        `this PKCS#11 module does not wrap ${plain.length}-byte values as RFC 5649 (it pads them to a multiple of 8); ` +
          'only multiples of 8 bytes can be wrapped with it',
      );
    }
    const w = await conn.use((ctx) => hsmWrap(ctx, this.mechanism, ctx.key(this.keyLabel, this.#ckaId), plain));
    if (w.length !== rfc5649Length(plain.length)) {
      throw new Pkcs11OperationError(`the HSM wrapped ${plain.length} bytes into ${w.length}, not ${rfc5649Length(plain.length)} (RFC 5649)`);
    }
    return w;
  }

  async unwrap(wrapped: Buffer): Promise<Buffer> {
    const conn = this.#c();
    if (wrapped.length < 16 || wrapped.length % 8 !== 0) {
      throw new KeyUnwrapError(`an RFC 5649 wrapped key has a multiple of 8 bytes, at least 16, not ${wrapped.length}`);
    }
    return conn.use((ctx) => hsmUnwrap(ctx, this.mechanism, ctx.key(this.keyLabel, this.#ckaId), wrapped));
  }

  async close(): Promise<void> {
    const conn = this.#conn;
    this.#conn = null;
    if (conn) await conn.release();
  }
}

/**
 * Opens (or with `create`, generates) the master key `keyLabel` on token `token`: an AES-256
 * token key, sensitive, never extractable, that may only wrap and unwrap. Rejects with
 * Pkcs11SetupError (token not found, PIN refused, key missing/existing/unsuitable, mechanism
 * missing) naming what is wrong, never the PIN.
 */
export async function openPkcs11MasterKey(opts: Pkcs11Options): Promise<Pkcs11MasterKey> {
  const conn = acquire(opts);
  try {
    const r = await conn.use(async (ctx) => {
      const ckaId = await setUpKey(ctx, opts.keyLabel, 'wrap', opts.create === true, opts.token);
      const m = await chooseWrapMechanism(ctx, ctx.key(opts.keyLabel, ckaId), opts.token);
      return { ckaId, ...m };
    });
    return new Pkcs11MasterKey(conn, conn.serial ?? '', opts.keyLabel, r.ckaId, r.mechanism, r.anyLength);
  } catch (e) {
    await conn.release();
    throw e;
  }
}

// ---- direct mode --------------------------------------------------------------------------------

/** The label of the direct-mode key that goes with master key label `keyLabel`. */
export function directKeyLabel(keyLabel: string): string {
  return `${keyLabel}-direct`;
}

function gcmMechanism(iv: Buffer, aad: Buffer): Mechanism {
  const parameter: GcmParams = { type: P.CK_PARAMS_AES_GCM_v240, iv, ivBits: GCM_IV_BYTES * 8, aad, tagBits: GCM_TAG_BYTES * 8 };
  return { mechanism: P.CKM_AES_GCM, parameter };
}

/**
 * Seals each object's material inside the HSM (AES-256-GCM, C_Encrypt/C_Decrypt) under the
 * token key `<keyLabel>-direct`; no key ever enters process memory.
 *
 * Blob (same layout and AAD as envelope.ts version 1, with rootKeyId = this.keyId):
 *   0x01 || iv (12, random) || tag (16) || ciphertext;  AAD = envelopeAad(keyId, uid)
 */
export class Pkcs11DirectSealer implements MaterialSealer {
  /** Stored as WrappedMaterial.rootKeyId: identifies the token key (not secret). */
  readonly keyId: string;
  readonly token: string;
  readonly tokenSerial: string;
  readonly keyLabel: string;
  readonly ckaId: string;
  readonly #ckaId: Buffer;
  #conn: TokenConnection | null;

  /** @internal use openPkcs11DirectSealer */
  constructor(conn: TokenConnection, serial: string, keyLabel: string, ckaId: Buffer) {
    this.#conn = conn;
    this.token = conn.label;
    this.tokenSerial = serial;
    this.keyLabel = keyLabel;
    this.ckaId = ckaId.toString('hex');
    this.#ckaId = Buffer.from(ckaId);
    this.keyId = keyIdOf('p11d', serial, keyLabel, ckaId);
  }

  #c(): TokenConnection {
    if (this.#conn === null) throw new EnvelopeError('CLOSED', 'the PKCS#11 direct sealer is closed');
    return this.#conn;
  }

  get status(): Pkcs11Status {
    return this.#c().status;
  }

  /** Seals `plaintext` (1 byte or more) for object `uid`. Does not modify `plaintext`. */
  async seal(uid: string, plaintext: Buffer): Promise<WrappedMaterial> {
    const conn = this.#c();
    // PKCS#11 modules differ on empty input (SoftHSM: CKR_ARGUMENTS_BAD); key material never is.
    if (plaintext.length === 0) throw new RangeError('direct mode seals at least one byte');
    const iv = randomBytes(GCM_IV_BYTES);
    const aad = envelopeAad(this.keyId, uid);
    const out = await conn.use(async (ctx) => {
      ctx.p.C_EncryptInit(ctx.session, gcmMechanism(iv, aad), ctx.key(this.keyLabel, this.#ckaId));
      return ctx.p.C_EncryptAsync(ctx.session, plaintext, Buffer.alloc(plaintext.length + GCM_TAG_BYTES));
    });
    if (out.length !== plaintext.length + GCM_TAG_BYTES) {
      throw new Pkcs11OperationError(`AES-GCM in the HSM returned ${out.length} bytes for ${plaintext.length}`);
    }
    const ct = out.subarray(0, plaintext.length);
    const tag = out.subarray(plaintext.length);
    return { rootKeyId: this.keyId, blob: Buffer.concat([Buffer.of(ENVELOPE_VERSION), iv, tag, ct]) };
  }

  /**
   * Verifies and decrypts the material of `uid` in the HSM. Rejects with EnvelopeError
   * (UNKNOWN_ROOT_KEY, BAD_FORMAT, AUTH_FAILED) or HsmUnavailableError. The caller owns the
   * result and should fill(0) it after use.
   */
  async open(uid: string, wrapped: WrappedMaterial): Promise<Buffer> {
    const conn = this.#c();
    if (wrapped.rootKeyId !== this.keyId) {
      throw new EnvelopeError('UNKNOWN_ROOT_KEY', `material of ${uid} is sealed under ${wrapped.rootKeyId}, not the HSM key ${this.keyId}`);
    }
    const blob = wrapped.blob;
    if (blob.length <= ENVELOPE_HEADER_BYTES) throw new EnvelopeError('BAD_FORMAT', `sealed material of ${uid} is truncated`);
    if (blob[0] !== ENVELOPE_VERSION) {
      throw new EnvelopeError('BAD_FORMAT', `sealed material of ${uid} has unknown envelope version ${blob[0]!}`);
    }
    const iv = blob.subarray(1, 1 + GCM_IV_BYTES);
    const tag = blob.subarray(1 + GCM_IV_BYTES, ENVELOPE_HEADER_BYTES);
    const input = Buffer.concat([blob.subarray(ENVELOPE_HEADER_BYTES), tag]);
    const aad = envelopeAad(this.keyId, uid);
    return conn.use(async (ctx) => {
      const out = Buffer.alloc(input.length);
      try {
        ctx.p.C_DecryptInit(ctx.session, gcmMechanism(iv, aad), ctx.key(this.keyLabel, this.#ckaId));
        const pt = await ctx.p.C_DecryptAsync(ctx.session, input, out);
        if (pt.length !== input.length - GCM_TAG_BYTES) throw new Pkcs11OperationError(`AES-GCM in the HSM returned ${pt.length} bytes`);
        return Buffer.from(pt); // a right-sized copy; `out` is zeroed below
      } catch (e) {
        if (isOutage(e) || e instanceof HsmUnavailableError) throw e;
        // SoftHSM reports a wrong tag as CKR_GENERAL_ERROR, others CKR_ENCRYPTED_DATA_INVALID.
        throw new EnvelopeError(
          'AUTH_FAILED',
          `sealed material of ${uid} failed authentication in the HSM (${describe(e)}): altered, or belonging to another object or key`,
        );
      } finally {
        out.fill(0);
      }
    });
  }

  async close(): Promise<void> {
    const conn = this.#conn;
    this.#conn = null;
    if (conn) await conn.release();
  }
}

/**
 * Opens (or with `create`, generates) the direct-mode key `<keyLabel>-direct` on `token`: an
 * AES-256 token key, sensitive, never extractable, that may only encrypt and decrypt. Checks
 * that the token does AES-GCM. Errors as openPkcs11MasterKey.
 */
export async function openPkcs11DirectSealer(opts: Pkcs11Options): Promise<Pkcs11DirectSealer> {
  const label = directKeyLabel(opts.keyLabel);
  const conn = acquire(opts);
  let sealer: Pkcs11DirectSealer | undefined;
  try {
    const ckaId = await conn.use(async (ctx) => {
      const f = mechanismFlags(ctx.p, ctx.slot, P.CKM_AES_GCM);
      if ((f & P.CKF_ENCRYPT) === 0 || (f & P.CKF_DECRYPT) === 0) {
        throw new Pkcs11SetupError('MECHANISM', `token "${opts.token}" offers no AES-GCM encryption (CKM_AES_GCM)`);
      }
      return setUpKey(ctx, label, 'encrypt', opts.create === true, opts.token);
    });
    sealer = new Pkcs11DirectSealer(conn, conn.serial ?? '', label, ckaId);
    // Self-test: a round trip, and a wrong AAD must be refused.
    const probe = Buffer.from('kmipd direct-mode self-test', 'ascii');
    const w = await sealer.seal('self-test', probe);
    const back = await sealer.open('self-test', w);
    if (!back.equals(probe)) throw new Pkcs11SetupError('MECHANISM', `AES-GCM on token "${opts.token}" does not decrypt what it encrypted`);
    const refused = await sealer.open('self-test-other', w).then(
      () => false,
      (e: unknown) => e instanceof EnvelopeError,
    );
    if (!refused) throw new Pkcs11SetupError('MECHANISM', `AES-GCM on token "${opts.token}" ignores the additional authenticated data`);
    return sealer;
  } catch (e) {
    if (sealer) await sealer.close();
    else await conn.release();
    throw e;
  }
}
