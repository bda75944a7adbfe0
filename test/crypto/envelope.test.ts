import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  aesKeyUnwrapPad,
  createSoftwareMasterKey,
  EnvelopeError,
  loadSoftwareMasterKey,
  RootKeyError,
  RootKeyring,
  SoftwareMasterKey,
  WrongMasterKeyError,
} from '../../src/crypto/index.js';
import { openSqliteStore } from '../../src/keystore/sqlite.js';
import type { WrappedMaterial } from '../../src/keystore/types.js';

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kmipd-env-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function setup(t: Test) {
  const store = await openSqliteStore(join(tempDir(), 'keys.db'));
  const master = new SoftwareMasterKey(randomBytes(32), 'mem');
  const ring = await RootKeyring.open(store, master);
  t.teardown(async () => {
    ring.close();
    await store.close();
  });
  return { store, master, ring };
}

function flip(w: WrappedMaterial, pos: number): WrappedMaterial {
  const blob = Buffer.from(w.blob);
  blob[pos]! ^= 0x80;
  return { rootKeyId: w.rootKeyId, blob };
}

t.test('seal/open round trip; format', async (t) => {
  const { ring, store } = await setup(t);
  const roots = await store.rootKeys();
  t.equal(roots.length, 1, 'a root key was created on first use');
  t.match(await store.getMeta('masterkey.canary'), /^[0-9a-f]{80}$/, 'canary recorded at set-up');
  t.equal(roots[0]!.status, 'active');
  t.equal(roots[0]!.id, ring.activeKeyId);
  for (const n of [0, 1, 16, 32, 33, 512, 4096]) {
    const pt = randomBytes(n);
    const w = ring.seal('uid-1', pt);
    t.equal(w.rootKeyId, ring.activeKeyId);
    t.equal(w.blob.length, 1 + 12 + 16 + n, `${n} bytes: version + iv + tag + ciphertext`);
    t.equal(w.blob[0], 1, 'version byte');
    if (n >= 16) t.notOk(w.blob.includes(pt.subarray(0, 16)), 'plaintext does not appear');
    t.ok(ring.open('uid-1', w).equals(pt), `${n} bytes round trip`);
  }
  const pt = randomBytes(32);
  const a = ring.seal('u', pt);
  const b = ring.seal('u', pt);
  t.notOk(a.blob.subarray(1, 13).equals(b.blob.subarray(1, 13)), 'fresh IV each time');
  t.notOk(a.blob.equals(b.blob), 'different blobs');
});

t.test('tampering is detected with a typed error, never garbage', async (t) => {
  const { ring } = await setup(t);
  const pt = randomBytes(32);
  const w = ring.seal('uid-a', pt);
  t.throws(() => ring.open('uid-b', w), { name: 'EnvelopeError', code: 'AUTH_FAILED' }, 'material swapped to another uid');
  t.throws(() => ring.open('', w), { code: 'AUTH_FAILED' }, 'empty uid');
  t.throws(() => ring.open('uid-a', flip(w, 0)), { code: 'BAD_FORMAT' }, 'version byte');
  for (const [pos, what] of [
    [1, 'iv'],
    [12, 'iv end'],
    [13, 'tag'],
    [28, 'tag end'],
    [29, 'ciphertext'],
    [w.blob.length - 1, 'last byte'],
  ] as const) {
    t.throws(() => ring.open('uid-a', flip(w, pos)), { code: 'AUTH_FAILED' }, `bit flip in ${what}`);
  }
  t.throws(() => ring.open('uid-a', { rootKeyId: w.rootKeyId, blob: w.blob.subarray(0, 28) }), { code: 'BAD_FORMAT' }, 'truncated');
  t.throws(() => ring.open('uid-a', { rootKeyId: w.rootKeyId, blob: w.blob.subarray(0, w.blob.length - 1) }), { code: 'AUTH_FAILED' }, 'one byte short');
  t.throws(() => ring.open('uid-a', { rootKeyId: 'rk-nope', blob: w.blob }), { code: 'UNKNOWN_ROOT_KEY' }, 'unknown root key');
  // Relabelled as sealed by another root key the ring holds: the root key id is authenticated.
  const old = w.rootKeyId;
  await ring.rotate();
  t.throws(() => ring.open('uid-a', { rootKeyId: ring.activeKeyId, blob: w.blob }), { code: 'AUTH_FAILED' }, 'root key id swapped');
  t.ok(ring.open('uid-a', { rootKeyId: old, blob: w.blob }).equals(pt), 'still opens as sealed');
  t.type(new EnvelopeError('AUTH_FAILED', 'x'), Error);
});

t.test('root keys persist across reopening a SQLite store; rotation; retired keys still open', async (t) => {
  const dir = tempDir();
  const dbFile = join(dir, 'keys.db');
  const keyFile = join(dir, 'master.key');

  const master1 = await createSoftwareMasterKey(keyFile);
  const store1 = await openSqliteStore(dbFile);
  const ring1 = await RootKeyring.open(store1, master1);
  const rk1 = ring1.activeKeyId;
  const pt1 = randomBytes(32);
  const w1 = ring1.seal('obj-1', pt1);
  ring1.close();
  await master1.close();
  await store1.close();

  // The stored root key is RFC 5649-wrapped under the master key, as an HSM would do it.
  const raw = new Database(dbFile, { readonly: true });
  const rec = raw.prepare('SELECT wrapped, master_key_id FROM root_keys').get() as { wrapped: Buffer; master_key_id: string };
  raw.close();
  const rootPlain = aesKeyUnwrapPad(readFileSync(keyFile), rec.wrapped);
  t.equal(rootPlain.length, 32, 'root key is AES-256, wrapped with RFC 5649');
  rootPlain.fill(0);

  const master2 = await loadSoftwareMasterKey(keyFile);
  t.equal(rec.master_key_id, master2.keyId, 'record names the master key');
  const store2 = await openSqliteStore(dbFile);
  const ring2 = await RootKeyring.open(store2, master2);
  t.equal(ring2.activeKeyId, rk1, 'same active root key after reopen');
  t.equal((await store2.rootKeys()).length, 1, 'no new root key created');
  t.ok(ring2.open('obj-1', w1).equals(pt1), 'material sealed before reopen opens');

  const rk2 = await ring2.rotate();
  t.not(rk2, rk1);
  const pt2 = randomBytes(32);
  const w2 = ring2.seal('obj-2', pt2);
  t.equal(w2.rootKeyId, rk2, 'new material under the new root key');
  ring2.close();
  await store2.close();

  const store3 = await openSqliteStore(dbFile);
  const ring3 = await RootKeyring.open(store3, master2);
  t.equal(ring3.activeKeyId, rk2);
  t.same(
    ring3.keys().sort((a, b) => a.id.localeCompare(b.id)),
    [
      { id: rk1, status: 'retired' },
      { id: rk2, status: 'active' },
    ].sort((a, b) => a.id.localeCompare(b.id)),
  );
  t.ok(ring3.open('obj-1', w1).equals(pt1), 'retired root key still opens');
  t.ok(ring3.open('obj-2', w2).equals(pt2), 'active root key opens');
  ring3.close();
  t.throws(() => ring3.seal('x', pt1), { code: 'CLOSED' });
  await store3.close();
});

t.test('a wrong master key is refused at start-up', async (t) => {
  const dir = tempDir();
  const dbFile = join(dir, 'keys.db');
  const right = await createSoftwareMasterKey(join(dir, 'right.key'));
  const wrong = await createSoftwareMasterKey(join(dir, 'wrong.key'));
  const s1 = await openSqliteStore(dbFile);
  (await RootKeyring.open(s1, right)).close();
  await s1.close();

  const s2 = await openSqliteStore(dbFile);
  t.teardown(() => s2.close());
  await t.rejects(RootKeyring.open(s2, wrong), {
    name: 'WrongMasterKeyError',
    message: new RegExp(`set up with master key software:${right.keyId}`),
  });
  t.equal((await s2.rootKeys()).length, 1, 'nothing created');

  // Without the canary (say, deleted), the root key unwrap still refuses the wrong key.
  await s2.setMeta('masterkey.canary', '');
  await t.rejects(RootKeyring.open(s2, wrong), WrongMasterKeyError, 'empty canary does not match either');
  const raw = new Database(dbFile);
  raw.prepare(`DELETE FROM meta WHERE key LIKE 'masterkey.%'`).run();
  raw.close();
  await t.rejects(RootKeyring.open(s2, wrong), { name: 'RootKeyError', message: /cannot be unwrapped by master key software:/ });
  t.equal(await s2.getMeta('masterkey.canary'), undefined, 'a wrong key never records its canary');
  const ring = await RootKeyring.open(s2, right);
  t.equal(await s2.getMeta('masterkey.id'), right.keyId, 'the right key records the canary again');
  ring.close();
  await t.rejects(RootKeyring.open(s2, wrong), WrongMasterKeyError, 'and the canary catches the wrong key again');
  t.type(new RootKeyError('x'), Error);
});
