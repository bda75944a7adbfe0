/**
 * The PKCS#11 master key and direct sealer against SoftHSM2 (private tokens, see
 * test/helpers/softhsm.ts), several tokens in this one process.
 *
 * Some checks look at the token from the side, through a second pkcs11js handle on the same
 * (already initialised) module: the key's attributes, what the token refuses, and outages
 * staged behind the providers' backs (sessions closed, module finalised, token directory gone).
 */
import t, { type Test } from 'tap';
import pkcs11js from 'pkcs11js';
import type { Handle, PKCS11 } from 'pkcs11js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  aesKeyWrapPad,
  EnvelopeError,
  KeyUnwrapError,
  RootKeyring,
  WrongMasterKeyError,
} from '../../src/crypto/index.js';
import {
  CKM_AES_KEY_WRAP_PAD,
  directKeyLabel,
  HsmUnavailableError,
  openPkcs11DirectSealer,
  openPkcs11MasterKey,
  Pkcs11SetupError,
  rfc5649Length,
  type Pkcs11Options,
} from '../../src/crypto/pkcs11.js';
import { openSqliteStore } from '../../src/keystore/sqlite.js';
import type { WrappedMaterial } from '../../src/keystore/types.js';
import { need, softhsm } from '../helpers/requirements.js';
import { createSoftHsm, type SoftHsmToken } from '../helpers/softhsm.js';

const P = pkcs11js;

interface Tokens {
  /** Main token: master key, direct key, keyring. */
  a: SoftHsmToken;
  /** A second token with a key under the same label (canary test). */
  b: SoftHsmToken;
  /** Outage token. */
  c: SoftHsmToken;
  /** PIN tests. */
  d: SoftHsmToken;
}

let fixture: Promise<Tokens> | undefined;
function tokens(): Promise<Tokens> {
  fixture ??= (async () => {
    const a = await createSoftHsm();
    const b = await createSoftHsm();
    const c = await createSoftHsm();
    const d = await createSoftHsm({ pin: '5555' });
    for (const x of [a, b, c, d]) t.teardown(() => x.cleanup());
    return { a, b, c, d };
  })();
  return fixture;
}

function opts(tok: SoftHsmToken, keyLabel: string, extra: Partial<Pkcs11Options> = {}): Pkcs11Options {
  return { module: tok.module, token: tok.token, keyLabel, pin: tok.pin, retryIntervalMs: 0, ...extra };
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  return undefined;
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kmipd-p11-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A side channel to the token through a second handle on the same module. */
interface Raw {
  p: PKCS11;
  slot: Handle;
  session: Handle;
  findKey(label: string): Handle;
  attrs(key: Handle, types: number[]): Map<number, Buffer>;
  /** A session AES key from known bytes, able to wrap/unwrap/encrypt. */
  sessionKek(bytes: Buffer): Handle;
  close(): void;
}

function raw(tok: SoftHsmToken, openSession = true): Raw {
  const p = new P.PKCS11();
  p.load(tok.module);
  try {
    p.C_Initialize();
  } catch (e) {
    if (!(e instanceof Error && e.message.startsWith('CKR_CRYPTOKI_ALREADY_INITIALIZED'))) throw e;
  }
  const slot = p.C_GetSlotList(true).find((s) => {
    try {
      return p.C_GetTokenInfo(s).label.trim() === tok.token;
    } catch {
      return false; // a token whose files were moved away
    }
  });
  if (slot === undefined) throw new Error(`raw: no token ${tok.token}`);
  const session = openSession ? p.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION) : Buffer.alloc(0);
  return {
    p,
    slot,
    session,
    findKey(label) {
      p.C_FindObjectsInit(session, [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
        { type: P.CKA_LABEL, value: label },
      ]);
      const found = p.C_FindObjects(session, 4);
      p.C_FindObjectsFinal(session);
      if (found.length !== 1 || found[0] === undefined) throw new Error(`raw: ${found.length} keys labelled ${label}`);
      return found[0];
    },
    attrs(key, types) {
      const m = new Map<number, Buffer>();
      for (const a of p.C_GetAttributeValue(session, key, types.map((type) => ({ type })))) m.set(a.type, a.value);
      return m;
    },
    sessionKek(bytes) {
      return p.C_CreateObject(session, [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
        { type: P.CKA_TOKEN, value: false },
        { type: P.CKA_VALUE, value: bytes },
        { type: P.CKA_WRAP, value: true },
        { type: P.CKA_UNWRAP, value: true },
        { type: P.CKA_ENCRYPT, value: true },
      ]);
    },
    close() {
      if (openSession) {
        try {
          p.C_CloseSession(session);
        } catch {
          // finalised meanwhile
        }
      }
      p.close();
    },
  };
}

/** C_Finalize through a second handle on the module: every session of the process is gone. */
function finalizeBehindBack(module: string): void {
  const p = new P.PKCS11();
  p.load(module);
  try {
    p.C_Initialize();
  } catch {
    // initialised already: that is the point
  }
  p.C_Finalize();
  p.close();
}

function ckr(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function flip(w: WrappedMaterial, pos: number): WrappedMaterial {
  const blob = Buffer.from(w.blob);
  blob[pos]! ^= 0x01;
  return { rootKeyId: w.rootKeyId, blob };
}

// -------------------------------------------------------------------------------------------------

t.test('create on first start, reopen later, refuse to create twice or open a missing key', async (t: Test) => {
  if (!need(t, softhsm())) return;
  const { a } = await tokens();
  const m = await openPkcs11MasterKey(opts(a, 'master', { create: true }));
  t.equal(m.kind, 'pkcs11');
  t.match(m.keyId, /^p11-[0-9a-f]{16}$/, 'non-secret key id');
  t.equal(m.token, a.token);
  t.match(m.tokenSerial, /^[0-9a-f]{16}$/, 'token serial');
  t.equal(m.ckaId.length, 32, '16-byte CKA_ID');
  t.equal(m.mechanism, CKM_AES_KEY_WRAP_PAD, 'SoftHSM 2.6.1 offers RFC 5649 as 0x210A');
  t.comment(`wraps any length as RFC 5649: ${m.wrapsAnyLength}`);
  t.same(m.status, { connected: true, sessionOpens: 1, lastError: null });
  const x = randomBytes(32);
  const w1 = await m.wrap(x);
  await m.close();
  await t.rejects(m.wrap(x), /closed/, 'closed provider rejects');

  const again = await openPkcs11MasterKey(opts(a, 'master'));
  t.equal(again.keyId, m.keyId, 'same key id after reopening');
  t.ok((await again.wrap(x)).equals(w1), 'same key: RFC 5649 is deterministic');
  t.ok((await again.unwrap(w1)).equals(x), 'unwraps what the first instance wrapped');

  const exists = await caught(openPkcs11MasterKey(opts(a, 'master', { create: true })));
  t.type(exists, Pkcs11SetupError);
  t.equal((exists as Pkcs11SetupError).code, 'KEY_EXISTS');
  t.match(ckr(exists), /"master"/, 'names the label');

  const missing = await caught(openPkcs11MasterKey(opts(a, 'no-such-key')));
  t.type(missing, Pkcs11SetupError);
  t.equal((missing as Pkcs11SetupError).code, 'KEY_MISSING');
  t.match(ckr(missing), /no key labelled "no-such-key" on token/);
  t.equal(again.status.sessionOpens, 1, 'failed opens did not disturb the shared session');
  await again.close();
});

t.test('wrap/unwrap round trips; RFC 5649 lengths; tampering', async (t: Test) => {
  if (!need(t, softhsm())) return;
  const { a } = await tokens();
  const m = await openPkcs11MasterKey(opts(a, 'master'));
  t.teardown(() => m.close());
  const seen = new Set<string>();
  for (let i = 0; i < 8; i++) {
    const k = randomBytes(32);
    const w = await m.wrap(k);
    t.equal(w.length, 40, 'a 32-byte key wraps into 40 bytes (RFC 5649)');
    t.notOk(w.includes(k.subarray(0, 8)), 'no plaintext in the output');
    seen.add(w.toString('hex'));
    t.ok((await m.unwrap(w)).equals(k), '32-byte round trip');
  }
  t.equal(seen.size, 8, 'different keys, different wrappings');
  for (const n of [8, 16, 24, 40, 48, 64, 256, 1000]) {
    const k = randomBytes(n);
    const w = await m.wrap(k);
    t.equal(w.length, rfc5649Length(n), `${n} bytes wrap into ${rfc5649Length(n)}`);
    t.ok((await m.unwrap(w)).equals(k), `${n} bytes round trip`);
  }
  for (const n of [1, 7, 20, 33, 100]) {
    const k = randomBytes(n);
    if (m.wrapsAnyLength) {
      const w = await m.wrap(k);
      t.equal(w.length, rfc5649Length(n), `${n} bytes wrap into ${rfc5649Length(n)}`);
      t.ok((await m.unwrap(w)).equals(k), `${n} bytes round trip`);
    } else {
      await t.rejects(m.wrap(k), RangeError, `${n} bytes refused: this module would not produce RFC 5649 for them`);
    }
  }
  await t.rejects(m.wrap(Buffer.alloc(0)), RangeError, 'nothing to wrap');
  const w = await m.wrap(randomBytes(32));
  for (const pos of [0, 7, 8, 20, 39]) {
    const bad = Buffer.from(w);
    bad[pos]! ^= 0x01;
    await t.rejects(m.unwrap(bad), KeyUnwrapError, `bit flip at byte ${pos} refused`);
  }
  await t.rejects(m.unwrap(w.subarray(0, 15)), KeyUnwrapError, 'too short');
  await t.rejects(m.unwrap(w.subarray(0, 36)), KeyUnwrapError, 'not a multiple of 8');
  // Many at once: the calls queue up and all succeed.
  const keys = Array.from({ length: 40 }, () => randomBytes(32));
  const wrapped = await Promise.all(keys.map((k) => m.wrap(k)));
  const back = await Promise.all(wrapped.map((x) => m.unwrap(x)));
  t.ok(back.every((b, i) => b.equals(keys[i]!)), '40 concurrent wrap+unwrap round trips');
  t.equal(m.status.sessionOpens, 1, 'one session throughout (renewals keep the count)');
});

t.test('SoftHSM 0x210A against node id-aes256-wrap-pad, with a known session KEK', async (t: Test) => {
  if (!need(t, softhsm())) return;
  const { a } = await tokens();
  const m = await openPkcs11MasterKey(opts(a, 'master'));
  t.teardown(() => m.close());
  const r = raw(a);
  t.teardown(() => r.close());
  const kekBytes = randomBytes(32);
  const kek = r.sessionKek(kekBytes);
  const hsmWrap = (v: Buffer): Buffer => {
    const obj = r.p.C_CreateObject(r.session, [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
      { type: P.CKA_TOKEN, value: false },
      { type: P.CKA_EXTRACTABLE, value: true },
      { type: P.CKA_VALUE, value: v },
    ]);
    return Buffer.from(r.p.C_WrapKey(r.session, { mechanism: CKM_AES_KEY_WRAP_PAD }, kek, obj, Buffer.alloc(v.length + 24)));
  };
  for (const n of [8, 16, 32, 64]) {
    const v = randomBytes(n);
    t.ok(hsmWrap(v).equals(aesKeyWrapPad(kekBytes, v)), `${n} bytes: byte-identical to node's RFC 5649`);
  }
  const v20 = randomBytes(20);
  const same = hsmWrap(v20).equals(aesKeyWrapPad(kekBytes, v20));
  t.equal(same, m.wrapsAnyLength, `20 bytes ${same ? 'identical' : 'differ (SoftHSM zero-pads to 24 first)'}; the provider's self-test agrees`);
});

t.test("the master key's attributes: sensitive, never extractable, wrap-only", async (t: Test) => {
  if (!need(t, softhsm())) return;
  const { a } = await tokens();
  const m = await openPkcs11MasterKey(opts(a, 'master'));
  t.teardown(() => m.close());
  const r = raw(a);
  t.teardown(() => r.close());
  const key = r.findKey('master');
  const at = r.attrs(key, [
    P.CKA_TOKEN,
    P.CKA_PRIVATE,
    P.CKA_SENSITIVE,
    P.CKA_ALWAYS_SENSITIVE,
    P.CKA_EXTRACTABLE,
    P.CKA_NEVER_EXTRACTABLE,
    P.CKA_LOCAL,
    P.CKA_WRAP,
    P.CKA_UNWRAP,
    P.CKA_ENCRYPT,
    P.CKA_DECRYPT,
    P.CKA_SIGN,
    P.CKA_VERIFY,
    P.CKA_DERIVE,
    P.CKA_KEY_TYPE,
    P.CKA_VALUE_LEN,
  ]);
  const bool = (ty: number) => at.get(ty)?.[0] === 1;
  const ulong = (ty: number) => at.get(ty)?.readUInt32LE(0);
  t.ok(bool(P.CKA_TOKEN), 'token object');
  t.ok(bool(P.CKA_PRIVATE), 'private');
  t.ok(bool(P.CKA_SENSITIVE) && bool(P.CKA_ALWAYS_SENSITIVE), 'sensitive, always sensitive');
  t.ok(!bool(P.CKA_EXTRACTABLE) && bool(P.CKA_NEVER_EXTRACTABLE), 'not extractable, never extractable');
  t.ok(bool(P.CKA_LOCAL), 'generated in the token');
  t.ok(bool(P.CKA_WRAP) && bool(P.CKA_UNWRAP), 'wraps and unwraps');
  for (const [ty, name] of [
    [P.CKA_ENCRYPT, 'encrypt'],
    [P.CKA_DECRYPT, 'decrypt'],
    [P.CKA_SIGN, 'sign'],
    [P.CKA_VERIFY, 'verify'],
    [P.CKA_DERIVE, 'derive'],
  ] as const) {
    t.notOk(bool(ty), `may not ${name}`);
  }
  t.equal(ulong(P.CKA_KEY_TYPE), P.CKK_AES, 'AES');
  t.equal(ulong(P.CKA_VALUE_LEN), 32, '256 bits');
  t.throws(() => r.attrs(key, [P.CKA_VALUE]), /CKR_ATTRIBUTE_SENSITIVE/, 'its value cannot be read');
  const other = r.sessionKek(randomBytes(32));
  t.throws(
    () => r.p.C_WrapKey(r.session, { mechanism: CKM_AES_KEY_WRAP_PAD }, other, key, Buffer.alloc(64)),
    /CKR_KEY_UNEXTRACTABLE/,
    'it cannot be wrapped out of the token',
  );
  t.throws(
    () => r.p.C_EncryptInit(r.session, { mechanism: P.CKM_AES_ECB }, key),
    /CKR_KEY_FUNCTION_NOT_PERMITTED/,
    'it cannot encrypt (no ECB oracle)',
  );
});

t.test('wrong PIN and wrong token label are refused clearly, without the PIN', async (t: Test) => {
  if (!need(t, softhsm())) return;
  const { a, d } = await tokens();
  const secretPin = '98765-not-the-pin';
  const e = await caught(openPkcs11MasterKey(opts(d, 'master', { pin: secretPin, create: true })));
  t.type(e, Pkcs11SetupError);
  const err = e as Pkcs11SetupError;
  t.equal(err.code, 'PIN_INCORRECT');
  t.equal(err.ckr, 'CKR_PIN_INCORRECT');
  t.match(err.message, /CKR_PIN_INCORRECT/, 'says why');
  t.match(err.message, new RegExp(`"${d.token}"`), 'names the token');
  t.notOk(`${err.message}\n${err.stack ?? ''}\n${JSON.stringify(err)}`.includes(secretPin), 'the PIN appears nowhere');
  t.comment(err.message);

  // The right PIN works (no key was created by the refused attempt).
  const m = await openPkcs11MasterKey(opts(d, 'master', { create: true }));
  t.teardown(() => m.close());
  // While this process is logged in, the token would not check another PIN: kmipd does.
  const mismatch = await caught(openPkcs11MasterKey(opts(d, 'master', { pin: secretPin })));
  t.type(mismatch, Pkcs11SetupError);
  t.equal((mismatch as Pkcs11SetupError).code, 'PIN_MISMATCH');
  t.notOk(ckr(mismatch).includes(secretPin), 'the PIN is not in the message');
  t.notOk(ckr(mismatch).includes(d.pin), 'nor the right one');

  const wrong = await caught(openPkcs11MasterKey(opts(a, 'master', { token: 'no-such-token' })));
  t.type(wrong, Pkcs11SetupError);
  t.equal((wrong as Pkcs11SetupError).code, 'TOKEN_NOT_FOUND');
  t.match(ckr(wrong), /no token labelled "no-such-token"/, 'names the wanted label');
  t.match(ckr(wrong), new RegExp(`tokens found: .*"${a.token}" \\(serial [0-9a-f]+\\)`), 'lists the tokens found');
  t.notOk(ckr(wrong).includes(a.pin), 'no PIN');
  t.comment(ckr(wrong));

  const badModule = await caught(openPkcs11MasterKey(opts(a, 'master', { module: '/nonexistent/libpkcs11.so' })));
  t.type(badModule, Pkcs11SetupError);
  t.equal((badModule as Pkcs11SetupError).code, 'MODULE');
});

t.test('direct mode: seal and open inside the HSM; uid swap, bit flips, wrong key id', async (t: Test) => {
  if (!need(t, softhsm())) return;
  const { a } = await tokens();
  const s = await openPkcs11DirectSealer(opts(a, 'master', { create: true }));
  t.match(s.keyId, /^p11d-[0-9a-f]{16}$/);
  t.equal(s.keyLabel, directKeyLabel('master'));
  for (const n of [1, 15, 16, 32, 33, 512, 4096]) {
    const pt = randomBytes(n);
    const w = await s.seal('uid-1', pt);
    t.equal(w.rootKeyId, s.keyId);
    t.equal(w.blob.length, 1 + 12 + 16 + n, `${n} bytes: version + iv + tag + ciphertext`);
    t.equal(w.blob[0], 1, 'envelope version 1');
    if (n >= 16) t.notOk(w.blob.includes(pt.subarray(0, 16)), 'no plaintext in the blob');
    t.ok((await s.open('uid-1', w)).equals(pt), `${n} bytes round trip`);
  }
  const pt = randomBytes(32);
  const w = await s.seal('uid-1', pt);
  const w2 = await s.seal('uid-1', pt);
  t.notOk(w.blob.equals(w2.blob), 'random IV: sealing twice differs');

  const swapped = await caught(s.open('uid-2', w));
  t.type(swapped, EnvelopeError, 'material moved to another uid');
  t.equal((swapped as EnvelopeError).code, 'AUTH_FAILED');
  for (const pos of [1, 12, 13, 28, 29, w.blob.length - 1]) {
    const e = await caught(s.open('uid-1', flip(w, pos)));
    t.equal(e instanceof EnvelopeError && e.code, 'AUTH_FAILED', `bit flip at byte ${pos} detected`);
  }
  const otherKey = await caught(s.open('uid-1', { rootKeyId: 'p11d-0000000000000000', blob: w.blob }));
  t.equal(otherKey instanceof EnvelopeError && otherKey.code, 'UNKNOWN_ROOT_KEY', 'another key id');
  const version = await caught(s.open('uid-1', flip(w, 0)));
  t.equal(version instanceof EnvelopeError && version.code, 'BAD_FORMAT', 'unknown version');
  const short = await caught(s.open('uid-1', { rootKeyId: w.rootKeyId, blob: w.blob.subarray(0, 29) }));
  t.equal(short instanceof EnvelopeError && short.code, 'BAD_FORMAT', 'truncated');
  await t.rejects(s.seal('uid-1', Buffer.alloc(0)), RangeError, 'empty material refused before the HSM');
  t.ok((await s.open('uid-1', w)).equals(pt), 'still works after the failures');

  const many = await Promise.all(Array.from({ length: 50 }, (_, i) => s.seal(`u${i}`, Buffer.from(`material ${i}`))));
  const opened = await Promise.all(many.map((x, i) => s.open(`u${i}`, x)));
  t.ok(opened.every((b, i) => b.toString() === `material ${i}`), '50 concurrent seals and opens');
  await s.close();
  await t.rejects(s.seal('u', pt), EnvelopeError, 'closed sealer rejects');

  const again = await openPkcs11DirectSealer(opts(a, 'master'));
  t.equal(again.keyId, s.keyId, 'same key id after reopening');
  t.ok((await again.open('uid-1', w)).equals(pt), 'opens what the first instance sealed');
  const exists = await caught(openPkcs11DirectSealer(opts(a, 'master', { create: true })));
  t.equal(exists instanceof Pkcs11SetupError && exists.code, 'KEY_EXISTS');

  const r = raw(a);
  const key = r.findKey(directKeyLabel('master'));
  const at = r.attrs(key, [P.CKA_SENSITIVE, P.CKA_EXTRACTABLE, P.CKA_ENCRYPT, P.CKA_DECRYPT, P.CKA_WRAP, P.CKA_UNWRAP]);
  t.same(
    [P.CKA_SENSITIVE, P.CKA_EXTRACTABLE, P.CKA_ENCRYPT, P.CKA_DECRYPT, P.CKA_WRAP, P.CKA_UNWRAP].map((ty) => at.get(ty)?.[0]),
    [1, 0, 1, 1, 0, 0],
    'direct key: sensitive, not extractable, encrypt/decrypt only',
  );
  r.close();
  await again.close();
});

t.test('a RootKeyring on SQLite under the PKCS#11 master key survives close and reopen', async (t: Test) => {
  if (!need(t, softhsm())) return;
  const { a } = await tokens();
  const file = join(tempDir(), 'keys.db');
  let master = await openPkcs11MasterKey(opts(a, 'master'));
  let store = await openSqliteStore(file);
  let ring = await RootKeyring.open(store, master);
  t.equal(await store.getMeta('masterkey.kind'), 'pkcs11');
  t.equal(await store.getMeta('masterkey.id'), master.keyId);
  const roots = await store.rootKeys();
  t.equal(roots.length, 1);
  t.equal(roots[0]!.wrapped.length, 40, 'root key stored RFC 5649-wrapped by the HSM');
  t.equal(roots[0]!.masterKeyId, master.keyId);
  const material = randomBytes(32);
  const sealed = ring.seal('obj-1', material);
  ring.close();
  await store.close();
  await master.close();

  master = await openPkcs11MasterKey(opts(a, 'master'));
  store = await openSqliteStore(file);
  ring = await RootKeyring.open(store, master);
  t.ok(ring.open('obj-1', sealed).equals(material), 'the same sealed material opens after reopening');
  await ring.rotate();
  const sealed2 = ring.seal('obj-2', material);
  ring.close();
  await store.close();
  await master.close();

  master = await openPkcs11MasterKey(opts(a, 'master'));
  store = await openSqliteStore(file);
  ring = await RootKeyring.open(store, master);
  t.ok(ring.open('obj-1', sealed).equals(material) && ring.open('obj-2', sealed2).equals(material), 'both root keys unwrap after a rotation');
  ring.close();
  await store.close();
  await master.close();
});

t.test('the canary catches a different token key', async (t: Test) => {
  if (!need(t, softhsm())) return;
  const { a, b } = await tokens();
  const file = join(tempDir(), 'keys.db');
  const master = await openPkcs11MasterKey(opts(a, 'master'));
  const store = await openSqliteStore(file);
  const ring = await RootKeyring.open(store, master);
  ring.close();
  await master.close();

  // Another token, a key under the same label.
  const impostor = await openPkcs11MasterKey(opts(b, 'master', { create: true }));
  const e1 = await caught(RootKeyring.open(store, impostor));
  t.type(e1, WrongMasterKeyError, 'same label on another token');
  t.match(ckr(e1), new RegExp(impostor.keyId), 'names the configured key');
  await impostor.close();

  // The same token, another key.
  const other = await openPkcs11MasterKey(opts(a, 'master-2', { create: true }));
  t.type(await caught(RootKeyring.open(store, other)), WrongMasterKeyError, 'another key on the same token');
  await other.close();
  await store.close();
});

t.test('a token created after the module was initialised is found by a rescan', async (t: Test) => {
  if (!need(t, softhsm())) return;
  const { a } = await tokens();
  const m = await openPkcs11MasterKey(opts(a, 'master'));
  t.teardown(() => m.close());
  const x = randomBytes(32);
  const w = await m.wrap(x);
  const e = await createSoftHsm();
  t.teardown(() => e.cleanup());
  const late = await openPkcs11MasterKey(opts(e, 'master', { create: true }));
  t.equal(late.token, e.token, 'the new token is found (C_Finalize + C_Initialize)');
  t.ok((await late.unwrap(await late.wrap(x))).equals(x), 'and works');
  t.notOk((await late.wrap(x)).equals(w), 'with its own key');
  t.ok((await m.unwrap(w)).equals(x), 'the provider already open re-opened its session transparently');
  t.equal(m.status.sessionOpens, 2, 'one re-open');
  await late.close();
});

t.test('HSM outages: transparent re-open, HsmUnavailableError while gone, recovery', async (t: Test) => {
  if (!need(t, softhsm())) return;
  const { c } = await tokens();
  const m = await openPkcs11MasterKey(opts(c, 'master', { create: true }));
  const s = await openPkcs11DirectSealer(opts(c, 'master', { create: true }));
  t.teardown(async () => {
    await m.close();
    await s.close();
  });
  const root = randomBytes(32);
  const wrapped = await m.wrap(root);
  const material = randomBytes(48);
  const sealed = await s.seal('obj', material);
  const opens0 = m.status.sessionOpens;

  // 1. Every session closed behind the providers' backs: the next call re-opens and logs in.
  let r = raw(c, false);
  r.p.C_CloseAllSessions(r.slot);
  r.close();
  t.ok((await m.wrap(root)).equals(wrapped), 'sessions closed: wrap re-opens transparently');
  t.ok((await s.open('obj', sealed)).equals(material), 'and direct mode works on the new session');
  t.equal(m.status.sessionOpens, opens0 + 1, 'one new session');

  // 2. The module finalised behind their backs: re-initialised on the next call.
  r = raw(c, false);
  r.p.C_Finalize();
  r.close();
  t.ok((await m.unwrap(wrapped)).equals(root), 'module finalised: unwrap re-initialises transparently');
  t.ok((await s.open('obj', sealed)).equals(material), 'direct mode too');

  // 3. The token is gone (its directory moved away) and the module finalised: unavailable.
  const hidden = join(dirname(c.tokensDir), 'hidden-token');
  renameSync(c.tokenDir, hidden);
  finalizeBehindBack(c.module);
  for (const [what, p] of [
    ['wrap', m.wrap(root)],
    ['unwrap', m.unwrap(wrapped)],
    ['seal', s.seal('obj', material)],
    ['open', s.open('obj', sealed)],
    ['wrap again', m.wrap(root)],
  ] as const) {
    const e = await caught(p);
    t.type(e, HsmUnavailableError, `${what} while the token is gone: HsmUnavailableError`);
    t.match(ckr(e), new RegExp(`"${c.token}"`), 'names the token');
    t.notOk(ckr(e).includes(c.pin), 'no PIN');
  }
  t.comment(ckr(await caught(m.wrap(root))));
  t.equal(m.status.connected, false, 'status: not connected');
  t.match(m.status.lastError, /no token labelled/, 'status: last error');

  // 4. The token is back: service resumes by itself.
  renameSync(hidden, c.tokenDir);
  t.ok((await m.wrap(root)).equals(wrapped), 'token back: wrap works again, same key');
  t.ok((await s.open('obj', sealed)).equals(material), 'direct mode too');
  t.ok((await s.open('obj', await s.seal('obj', material))).equals(material), 'new seals too');
  t.equal(m.status.connected, true);

  // 5. The PIN changed while serving: the login is refused once, then never retried (lockout).
  r = raw(c);
  r.p.C_SetPIN(r.session, c.pin, '4321');
  r.p.C_Finalize();
  r.close();
  const e1 = await caught(m.wrap(root));
  t.type(e1, HsmUnavailableError, 'PIN refused after an outage: HsmUnavailableError');
  t.match(ckr(e1), /CKR_PIN_INCORRECT.*no further login attempts/);
  t.notOk(ckr(e1).includes(c.pin) || ckr(e1).includes('4321'), 'neither PIN in the message');
  r = raw(c);
  r.p.C_Login(r.session, P.CKU_USER, '4321');
  r.p.C_SetPIN(r.session, '4321', c.pin);
  r.close();
  const e2 = await caught(s.seal('obj', material));
  t.type(e2, HsmUnavailableError, 'still refused although the PIN is right again: no login was attempted');
  t.match(ckr(e2), /no further login attempts/);
  const after = await caught(openPkcs11MasterKey(opts(c, 'other', { create: true })));
  t.type(after, HsmUnavailableError, 'a provider opened meanwhile shares the refused connection (until all are closed)');
});

t.test('during an outage, re-opening is tried at most once per retryIntervalMs', async (t: Test) => {
  if (!need(t, softhsm())) return;
  const { b } = await tokens();
  const m = await openPkcs11MasterKey(opts(b, 'master', { retryIntervalMs: 60_000 }));
  t.teardown(() => m.close());
  const x = randomBytes(32);
  const w = await m.wrap(x);
  const hidden = join(dirname(b.tokensDir), 'hidden-token-b');
  renameSync(b.tokenDir, hidden);
  finalizeBehindBack(b.module);
  t.type(await caught(m.wrap(x)), HsmUnavailableError, 'token gone: unavailable');
  renameSync(hidden, b.tokenDir);
  const e = await caught(m.wrap(x));
  t.type(e, HsmUnavailableError, 'token back, but the next attempt is not due yet');
  t.match(ckr(e), /retrying shortly/);
  const opens = m.status.sessionOpens;
  t.equal(m.status.connected, false);
  t.equal(opens, 1, 'no session was opened meanwhile');
  t.ok(w.length === 40);
});
