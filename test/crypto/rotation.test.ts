/**
 * Key rotation in one process: root keys moved to a new master key in one transaction, a
 * running keyring that learns about root keys another process created (and about a newer
 * master key), objects re-wrapped under a new root key without losing a concurrent write, and
 * the data-directory commands (master rotate / migrate / rollback / status, root rotate),
 * including what an interrupted master key change leaves and how it is finished. With SoftHSM2:
 * a rotated token key has the attributes of the first, and software -> PKCS#11 -> software
 * keeps every key readable.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import {
  META_MASTER_ID,
  RootKeyError,
  RootKeyring,
  SoftwareMasterKey,
  WrongMasterKeyError,
  createSoftwareMasterKey,
  loadSoftwareMasterKey,
  type MasterKeyProvider,
} from '../../src/crypto/index.js';
import { objectsUnderRetiredRootKeys, rewrapObjects, rewrapRootKeys, rootKeyUsage } from '../../src/crypto/rotation.js';
import { openSqliteStore, type SqliteKeyStore } from '../../src/keystore/sqlite.js';
import type { KeyStore, StoredObject } from '../../src/keystore/types.js';
import { readManifest, writeManifest } from '../../src/server/datadir.js';
import { KEY_LOCK_FILE, KeyAdminError, acquireKeyLock, keyStatus, migrateMaster, rollbackMaster, rotateMaster, rotateRoot } from '../../src/server/key-admin.js';
import { silentLogger } from '../../src/server/log.js';
import { openServerState } from '../../src/server/server.js';
import { makeObject } from '../keystore/suite.js';
import { need, softhsm } from '../helpers/requirements.js';
import { createSoftHsm } from '../helpers/softhsm.js';

function tempDir(prefix = 'kmipd-rot-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const master = (): SoftwareMasterKey => new SoftwareMasterKey(randomBytes(32), 'mem');

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Inserts `n` objects sealed by `ring`; returns uid -> plaintext. */
async function fill(store: KeyStore, ring: RootKeyring, n: number, prefix = 'obj'): Promise<Map<string, Buffer>> {
  const keys = new Map<string, Buffer>();
  const old = Date.now() - 60_000;
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const uid = `${prefix}-${i}`;
      const pt = randomBytes(32);
      keys.set(uid, pt);
      await store.insert(makeObject({ uid, material: ring.seal(uid, pt), revision: 1, createdAt: old, updatedAt: old }));
    }),
  );
  return keys;
}

async function allOpen(store: KeyStore, ring: RootKeyring, keys: Map<string, Buffer>): Promise<number> {
  let ok = 0;
  for (const [uid, pt] of keys) {
    const o = await store.get(uid);
    if (o?.material && (await ring.openOrReload(uid, o.material)).equals(pt)) ok++;
  }
  return ok;
}

/** A store whose rootKeys() calls are counted. */
function counting(store: KeyStore): { store: KeyStore; reads: () => number } {
  let n = 0;
  const wrapped = new Proxy(store, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (prop === 'rootKeys') {
        return () => {
          n++;
          return target.rootKeys();
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store: wrapped, reads: () => n };
}

// ---- keystore ----------------------------------------------------------------------------------

t.test('putRootKeys writes records and meta in one unit; countByRootKey counts by root key', async (t) => {
  const store = await openSqliteStore(join(tempDir(), 'k.db'));
  t.teardown(() => store.close());
  const rec = (id: string, status: 'active' | 'retired') => ({ id, wrapped: randomBytes(40), masterKeyId: 'm1', status, createdAt: Date.now() });
  await store.putRootKeys([rec('a', 'retired'), rec('b', 'active')], { 'x.one': '1', 'x.two': '2' });
  t.same((await store.rootKeys()).map((r) => [r.id, r.status]).sort(), [['a', 'retired'], ['b', 'active']]);
  t.equal(await store.getMeta('x.two'), '2');
  await t.rejects(store.putRootKeys([rec('c', 'active'), rec('d', 'active')]), /at most one/, 'two active keys refused');
  await t.rejects(store.putRootKeys([rec('e', 'retired')], { schema_version: '9' }), /managed by the keystore/);
  t.equal((await store.rootKeys()).length, 2, 'a refused call wrote nothing');
  await store.putRootKeys([rec('c', 'active')]);
  t.same((await store.rootKeys()).filter((r) => r.status === 'active').map((r) => r.id), ['c'], 'a new active key retires the old one');

  await store.insert(makeObject({ uid: 'u1', material: { rootKeyId: 'a', blob: Buffer.from('x') } }));
  await store.insert(makeObject({ uid: 'u2', material: { rootKeyId: 'a', blob: Buffer.from('x') } }));
  await store.insert(makeObject({ uid: 'u3', material: { rootKeyId: 'c', blob: Buffer.from('x') } }));
  await store.insert(makeObject({ uid: 'u4', material: null }));
  t.same(await store.countByRootKey(), [
    { rootKeyId: 'a', n: 2 },
    { rootKeyId: 'c', n: 1 },
  ]);
});

// ---- root keys under a new master key -----------------------------------------------------------

t.test('rewrapRootKeys: every root key under the new master, canary re-recorded, in one transaction', async (t) => {
  const store = await openSqliteStore(join(tempDir(), 'k.db'));
  t.teardown(() => store.close());
  const m1 = master();
  const ring = await RootKeyring.open(store, m1);
  await ring.rotate();
  await ring.rotate();
  const keys = await fill(store, ring, 20);
  ring.close();

  // A master key that fails half way: nothing is written.
  const m2 = master();
  let calls = 0;
  const flaky: MasterKeyProvider = {
    kind: 'software',
    keyId: m2.keyId,
    wrap: async (b) => {
      if (++calls === 2) throw new Error('HSM gone');
      return m2.wrap(b);
    },
    unwrap: (b) => m2.unwrap(b),
    close: async () => {},
  };
  const before = await store.rootKeys();
  await t.rejects(rewrapRootKeys(store, flaky, async () => m1), /HSM gone/);
  t.same(await store.rootKeys(), before, 'a failure half way leaves every record as it was');
  t.equal(await store.getMeta(META_MASTER_ID), m1.keyId, 'and the canary');

  t.equal(await rewrapRootKeys(store, m2, async (id) => (id === m1.keyId ? m1 : undefined)), 3);
  t.ok((await store.rootKeys()).every((r) => r.masterKeyId === m2.keyId), 'all records name the new master key');
  t.equal(await store.getMeta(META_MASTER_ID), m2.keyId, 'canary re-recorded');
  t.type(await caught(RootKeyring.open(store, m1)), WrongMasterKeyError, 'the old master key no longer opens the store');
  const r2 = await RootKeyring.open(store, m2);
  t.equal(await allOpen(store, r2, keys), keys.size, 'every object opens under the new master key');
  r2.close();
  await t.rejects(rewrapRootKeys(store, master(), async () => undefined), /not available; nothing was changed/);
});

// ---- a running keyring follows other processes --------------------------------------------------

t.test('a running keyring loads root keys made by another process, and seals under the new active key', async (t) => {
  const file = join(tempDir(), 'k.db');
  const serverStore = await openSqliteStore(file);
  const adminStore = await openSqliteStore(file);
  t.teardown(async () => {
    await serverStore.close();
    await adminStore.close();
  });
  const m1 = master();
  const counted = counting(serverStore);
  const server = await RootKeyring.open(counted.store, m1, { minReloadIntervalMs: 50 });
  t.teardown(() => server.close());
  const keys = await fill(serverStore, server, 10);
  const first = server.activeKeyId;

  const admin = await RootKeyring.open(adminStore, m1);
  await admin.rotate();
  const sealed = admin.seal('new-obj', Buffer.from('after rotation'));
  t.throws(() => server.open('new-obj', sealed), { code: 'UNKNOWN_ROOT_KEY' }, 'open() alone does not know the new key');
  const reads0 = counted.reads();
  const opened = await Promise.all(Array.from({ length: 50 }, () => server.openOrReload('new-obj', sealed)));
  t.ok(opened.every((b) => b.toString() === 'after rotation'), 'openOrReload loads it (50 concurrent callers)');
  t.ok(counted.reads() - reads0 <= 2, `the callers shared the reload (${counted.reads() - reads0} store reads)`);
  t.equal(server.activeKeyId, admin.activeKeyId, 'and now seals under the new active key');
  t.not(server.activeKeyId, first);

  // A genuinely unknown id: a rate-limited reload, then the usual error.
  const bogus = { rootKeyId: 'rk-nope', blob: sealed.blob };
  const t0 = Date.now();
  await t.rejects(server.openOrReload('x', bogus), { code: 'UNKNOWN_ROOT_KEY' });
  await t.rejects(server.openOrReload('x', bogus), { code: 'UNKNOWN_ROOT_KEY' });
  t.ok(Date.now() - t0 >= 40, 'reloads are at least minReloadIntervalMs apart');

  // Periodic refresh: a keyring that never meets the new key still moves to it.
  const idle = await RootKeyring.open(serverStore, m1, { refreshIntervalMs: 50, minReloadIntervalMs: 0 });
  t.teardown(() => idle.close());
  const newest = await admin.rotate();
  const until = Date.now() + 3000;
  while (idle.activeKeyId !== newest && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  t.equal(idle.activeKeyId, newest, 'the periodic refresh switched to the newest active root key');
  t.equal(await allOpen(serverStore, idle, keys), keys.size);
  admin.close();
});

t.test('after the master key was rotated elsewhere, a running keyring opens the new master key to load new root keys', async (t) => {
  const file = join(tempDir(), 'k.db');
  const serverStore = await openSqliteStore(file);
  const adminStore = await openSqliteStore(file);
  t.teardown(async () => {
    await serverStore.close();
    await adminStore.close();
  });
  const m1 = master();
  const m2 = master();
  const asked: string[] = [];
  const server = await RootKeyring.open(serverStore, m1, {
    minReloadIntervalMs: 0,
    masterFor: async (id) => {
      asked.push(id);
      return id === m2.keyId ? m2 : undefined;
    },
  });
  t.teardown(() => server.close());
  const plain = await RootKeyring.open(serverStore, m1, { minReloadIntervalMs: 0 });
  t.teardown(() => plain.close());
  const keys = await fill(serverStore, server, 5);

  await rewrapRootKeys(adminStore, m2, async () => m1);
  const admin = await RootKeyring.open(adminStore, m2);
  await admin.rotate();
  const sealed = admin.seal('n', Buffer.from('new'));
  t.equal((await server.openOrReload('n', sealed)).toString(), 'new', 'loaded with the master key masterFor found');
  t.same(asked, [m2.keyId]);
  t.equal(await allOpen(serverStore, server, keys), keys.size, 'the old objects still open');
  const e = await caught(plain.openOrReload('n', sealed));
  t.type(e, RootKeyError, 'without masterFor the new root key cannot be unwrapped: RootKeyError');
  admin.close();
});

// ---- objects under a new root key --------------------------------------------------------------

t.test('rewrapObjects: batches, a concurrent write is re-read (never lost), stop and resume', async (t) => {
  const raw = await openSqliteStore(join(tempDir(), 'k.db'));
  t.teardown(() => raw.close());
  const m1 = master();
  const ring0 = await RootKeyring.open(raw, m1);
  const keys = await fill(raw, ring0, 120);
  ring0.close();

  // A store where a "server" changes three objects between our read and our write.
  const racing = new Set(['obj-3', 'obj-50', 'obj-99']);
  const store = new Proxy(raw, {
    get(target: SqliteKeyStore, prop) {
      if (prop === 'update') {
        return async (obj: StoredObject, rev: number) => {
          if (racing.delete(obj.uid)) {
            const cur = (await target.get(obj.uid))!;
            await target.update({ ...cur, state: 3, updatedAt: Date.now() - 60_000 }, cur.revision);
          }
          return target.update(obj, rev);
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as KeyStore;

  const ring = await RootKeyring.open(store, m1);
  t.teardown(() => ring.close());
  const oldKey = ring.activeKeyId;
  await ring.rotate();
  const stop = new AbortController();
  const seen: number[] = [];
  const r1 = await rewrapObjects(store, ring, {
    batch: 10,
    onProgress: (p) => {
      seen.push(p.done);
      if (p.done >= 40) stop.abort();
    },
    signal: stop.signal,
  });
  t.ok(r1.remaining > 0 && r1.rewrapped >= 40, `stopped part way: ${r1.rewrapped} done, ${r1.remaining} left`);
  t.equal(await objectsUnderRetiredRootKeys(store, ring.activeKeyId), r1.remaining);
  t.ok(seen.includes(10) && seen.includes(20), 'progress after each batch of 10');

  const r2 = await rewrapObjects(store, ring, { batch: 7 });
  t.equal(r2.remaining, 0, 'the second run finished');
  t.equal(r1.rewrapped + r2.rewrapped, keys.size, 'every object re-wrapped exactly once');
  t.equal(r1.conflicts + r2.conflicts, 3, 'three conflicts met and retried');
  for (const uid of ['obj-3', 'obj-50', 'obj-99']) t.equal((await raw.get(uid))!.state, 3, `the concurrent change of ${uid} was kept`);
  const usage = await rootKeyUsage(raw);
  t.same(
    usage.keys.map((k) => [k.id === oldKey ? 'old' : 'new', k.objects]).sort(),
    [
      ['new', 120],
      ['old', 0],
    ],
  );
  t.equal(await allOpen(raw, ring, keys), keys.size, 'every object opens');
  const r3 = await rewrapObjects(store, ring, {});
  t.equal(r3.rewrapped, 0, 'a run with nothing left does nothing');
});

// ---- data directory commands --------------------------------------------------------------------

async function dataDir(n: number): Promise<{ dir: string; keys: Map<string, Buffer> }> {
  const dir = tempDir('kmipd-rot-data-');
  const state = await openServerState(dir, { log: silentLogger() });
  try {
    return { dir, keys: await fill(state.store, state.keyring, n) };
  } finally {
    await state.close();
  }
}

async function readableCount(dir: string, keys: Map<string, Buffer>): Promise<number> {
  const state = await openServerState(dir, { log: silentLogger() });
  try {
    let ok = 0;
    for (const [uid, pt] of keys) {
      const o = await state.store.get(uid);
      if (o?.material && (await state.sealer.open(uid, o.material)).equals(pt)) ok++;
    }
    return ok;
  } finally {
    await state.close();
  }
}

t.test('master rotate / rollback / status on a software data directory', async (t) => {
  const { dir, keys } = await dataDir(30);
  const r = await rotateMaster(dir);
  t.equal(r.action, 'rotated');
  t.same([r.from.version, r.to.version], [1, 2]);
  t.equal(statSync(join(dir, 'master-2.key')).mode & 0o777, 0o600, 'new key file, mode 0600');
  t.notOk(existsSync(join(dir, 'master.key')), 'old key file renamed');
  t.ok(existsSync(join(dir, 'master.key.retired')), 'and kept as master.key.retired');
  t.match(r.notes.join('\n'), /shred -u .*master\.key\.retired/);
  const m = readManifest(dir)!;
  t.same([m.master.kind, m.master.kind === 'software' && m.master.file, m.master.version, m.masterPending], ['software', 'master-2.key', 2, undefined]);
  t.same(m.masterHistory?.map((h) => [h.version, h.kind === 'software' && h.file]), [[1, 'master.key.retired']]);
  t.equal(await readableCount(dir, keys), keys.size, 'a restart with only the directory reads every key');
  t.equal((await loadSoftwareMasterKey(join(dir, 'master-2.key'))).keyId, r.to.id);

  let s = await keyStatus(dir);
  t.same(
    s.masterVersions.map((v) => [v.version, v.status]),
    [
      [1, 'retired'],
      [2, 'active'],
    ],
  );
  t.same(s.rootKeys.map((k) => [k.status, k.masterVersion, k.objects]), [['active', 2, 30]]);
  t.same(s.objects, { sealed: 30, underActiveRootKey: 30, underRetiredRootKeys: 0, sealedByHsm: 0, underUnknownKeys: 0 });

  const back = await rollbackMaster(dir);
  t.equal(back.action, 'rolled back');
  t.same([back.from.version, back.to.version], [2, 1]);
  t.ok(existsSync(join(dir, 'master.key')) && existsSync(join(dir, 'master-2.key.retired')), 'files swapped back');
  t.equal(await readableCount(dir, keys), keys.size, 'every key readable after the rollback');
  s = await keyStatus(dir);
  t.same(
    s.masterVersions.map((v) => [v.version, v.status]),
    [
      [1, 'active'],
      [2, 'retired'],
    ],
  );
  const again = await rotateMaster(dir);
  t.equal(again.to.version, 3, 'version numbers are never reused');
  t.equal(await readableCount(dir, keys), keys.size);
  await t.rejects(migrateMaster(dir, { to: 'software' }), KeyAdminError, 'migrating to the kind in use is refused');
});

t.test('root rotate on a data directory: stop, status mid-way, resume without a new key', async (t) => {
  const { dir, keys } = await dataDir(200);
  const stop = new AbortController();
  let started: { resumed: boolean; activeKeyId: string; objects: number } | undefined;
  const r1 = await rotateRoot(dir, {
    batch: 20,
    settleMs: 0,
    onStart: (s) => (started = s),
    onProgress: (p) => {
      if (p.done >= 60) stop.abort();
    },
    signal: stop.signal,
  });
  t.same([started?.resumed, started?.objects], [false, 200]);
  t.ok(r1.rewrap.remaining > 0, 'stopped part way');
  const s = await keyStatus(dir);
  t.equal(s.rootKeys.length, 2);
  const active = s.rootKeys.find((k) => k.status === 'active')!;
  const retired = s.rootKeys.find((k) => k.status === 'retired')!;
  t.equal(active.id, r1.activeKeyId);
  t.equal(active.objects + retired.objects, 200, 'status: every object counted once');
  t.equal(retired.objects, r1.rewrap.remaining, 'status: the objects still under the retired key');
  t.equal(s.rootRotationComplete, false);
  t.match(retired.note, /root rotate/);
  t.equal(await readableCount(dir, keys), keys.size, 'every object readable mid-way');

  const r2 = await rotateRoot(dir, { batch: 50, settleMs: 0 });
  t.ok(r2.resumed, 'the second run resumed');
  t.equal(r2.activeKeyId, r1.activeKeyId, 'with the same root key');
  t.equal(r2.rewrap.remaining, 0);
  const s2 = await keyStatus(dir);
  t.same(s2.rootKeys.map((k) => [k.status, k.objects]), [
    ['retired', 0],
    ['active', 200],
  ]);
  t.match(s2.rootKeys[0]!.note, /may be deleted/);
  t.equal(await readableCount(dir, keys), keys.size);
  const r3 = await rotateRoot(dir, { settleMs: 0 });
  t.notOk(r3.resumed, 'with nothing left, the next run makes a new root key');
  t.equal((await keyStatus(dir)).rootKeys.length, 3);
});

t.test('the key lock: a live holder is refused, a dead one is taken over', async (t) => {
  const dir = tempDir();
  const release = acquireKeyLock(dir, 'test');
  t.throws(() => acquireKeyLock(dir, 'other'), /another key command is running.*test/);
  release();
  t.notOk(existsSync(join(dir, KEY_LOCK_FILE)));
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(dir, KEY_LOCK_FILE), JSON.stringify({ pid: 2 ** 22 + 12345, what: 'killed', since: 'then' }));
  const r2 = acquireKeyLock(dir, 'after a kill');
  t.match(readFileSync(join(dir, KEY_LOCK_FILE), 'utf8'), /after a kill/);
  r2();
});

t.test('an interrupted master key change: the server follows the keystore, the next command finishes it', async (t) => {
  // Case 1: killed after the keystore moved, before the manifest switched.
  const a = await dataDir(10);
  const before = readManifest(a.dir)!;
  await rotateMaster(a.dir);
  const after = readManifest(a.dir)!;
  // Rebuild the manifest as it was between step 3 and step 4 (old key file still in place).
  renameSync(join(a.dir, 'master.key.retired'), join(a.dir, 'master.key'));
  writeManifest(a.dir, { ...before, masterPending: after.master });
  t.equal(await readableCount(a.dir, a.keys), a.keys.size, 'the server opens the pending master key the keystore is under');
  t.match((await keyStatus(a.dir)).pendingMasterChange, /already under it/);
  const f = await rotateMaster(a.dir);
  t.equal(f.action, 'finished', 'the next command finishes the change (and does nothing else)');
  const m = readManifest(a.dir)!;
  t.same([m.master.version, m.masterPending, m.masterHistory?.length], [2, undefined, 1]);
  t.ok(existsSync(join(a.dir, 'master.key.retired')));
  t.equal(await readableCount(a.dir, a.keys), a.keys.size);

  // Case 2: killed after the new key and the pending record, before the keystore moved.
  const b = await dataDir(10);
  const mb = readManifest(b.dir)!;
  const k2 = await createSoftwareMasterKey(join(b.dir, 'master-2.key'));
  writeManifest(b.dir, { ...mb, masterPending: { kind: 'software', file: 'master-2.key', version: 2, keyId: k2.keyId, createdAt: new Date().toISOString() } });
  await k2.close();
  t.equal(await readableCount(b.dir, b.keys), b.keys.size, 'the server still uses the current master key');
  t.match((await keyStatus(b.dir)).pendingMasterChange, /not yet under it/);
  const g = await rotateMaster(b.dir);
  t.equal(g.action, 'finished');
  t.equal(g.rootKeys, 1);
  t.equal(readManifest(b.dir)!.master.keyId, k2.keyId, 'moved to the pending key');
  t.equal(await readableCount(b.dir, b.keys), b.keys.size);
});

// ---- PKCS#11 ------------------------------------------------------------------------------------

const P = pkcs11js;

/** The attributes that say what a key may do, read through a second handle on the module. */
function keyAttributes(module: string, token: string, pin: string, label: string): Record<string, string> {
  const p = new P.PKCS11();
  p.load(module);
  try {
    p.C_Initialize();
  } catch (e) {
    if (!(e instanceof Error && e.message.startsWith('CKR_CRYPTOKI_ALREADY_INITIALIZED'))) throw e;
  }
  const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === token);
  if (slot === undefined) throw new Error('no slot');
  const session = p.C_OpenSession(slot, P.CKF_SERIAL_SESSION);
  try {
    try {
      p.C_Login(session, P.CKU_USER, pin);
    } catch (e) {
      if (!(e instanceof Error && e.message.startsWith('CKR_USER_ALREADY_LOGGED_IN'))) throw e;
    }
    p.C_FindObjectsInit(session, [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
      { type: P.CKA_LABEL, value: label },
    ]);
    const [h] = p.C_FindObjects(session, 2);
    p.C_FindObjectsFinal(session);
    if (h === undefined) throw new Error(`no key ${label}`);
    const names = ['CKA_TOKEN', 'CKA_PRIVATE', 'CKA_SENSITIVE', 'CKA_EXTRACTABLE', 'CKA_WRAP', 'CKA_UNWRAP', 'CKA_ENCRYPT', 'CKA_DECRYPT', 'CKA_SIGN', 'CKA_VERIFY', 'CKA_DERIVE', 'CKA_KEY_TYPE', 'CKA_VALUE_LEN', 'CKA_LOCAL', 'CKA_NEVER_EXTRACTABLE'] as const;
    const got = p.C_GetAttributeValue(session, h, names.map((n) => ({ type: P[n] })));
    return Object.fromEntries(got.map((a, i) => [names[i]!, a.value.toString('hex')]));
  } finally {
    p.C_CloseSession(session);
  }
}

t.test('PKCS#11: master rotate makes <label>-v2 in the token with the same attributes; migrate software -> pkcs11 -> software', async (t: Test) => {
  if (!need(t, softhsm())) return;
  const hsm = await createSoftHsm();
  t.teardown(() => hsm.cleanup());
  const saved = process.env.KMIPD_PKCS11_PIN;
  process.env.KMIPD_PKCS11_PIN = hsm.pin;
  t.teardown(() => {
    if (saved === undefined) delete process.env.KMIPD_PKCS11_PIN;
    else process.env.KMIPD_PKCS11_PIN = saved;
  });

  const { dir, keys } = await dataDir(25);
  const toHsm = await migrateMaster(dir, { to: 'pkcs11', module: hsm.module, token: hsm.token, keyLabel: 'kmipd-master', pin: hsm.pin });
  t.same([toHsm.action, toHsm.from.kind, toHsm.to.kind, toHsm.to.version], ['migrated', 'software', 'pkcs11', 2]);
  t.ok(existsSync(join(dir, 'master.key.retired')) && !existsSync(join(dir, 'master.key')), 'the software key file is kept as .retired');
  t.match(toHsm.notes.join('\n'), /shred -u/, 'and the admin is told to shred it');
  const m = readManifest(dir)!;
  t.same(m.master.kind === 'pkcs11' && [m.master.token, m.master.keyLabel, m.master.mode], [hsm.token, 'kmipd-master', 'root']);
  t.equal(await readableCount(dir, keys), keys.size, 'every key readable under the HSM master key');

  const rot = await rotateMaster(dir);
  t.equal(rot.to.version, 3);
  const m3 = readManifest(dir)!;
  t.same(m3.master.kind === 'pkcs11' && [m3.master.keyLabel, m3.master.baseKeyLabel], ['kmipd-master-v3', 'kmipd-master']);
  const a1 = keyAttributes(hsm.module, hsm.token, hsm.pin, 'kmipd-master');
  const a3 = keyAttributes(hsm.module, hsm.token, hsm.pin, 'kmipd-master-v3');
  t.same(a3, a1, 'the rotated token key has the attributes of the first');
  t.equal(a3.CKA_EXTRACTABLE, '00', 'not extractable');
  t.equal(a3.CKA_LOCAL, '01', 'generated inside the token');
  t.equal(await readableCount(dir, keys), keys.size, 'every key readable after the rotation');
  t.match(rot.notes.join('\n'), /stays on token/, 'the old token key is kept');

  const r = await rotateRoot(dir, { batch: 10, settleMs: 0 });
  t.equal(r.rewrap.rewrapped, keys.size, 'root rotate under the HSM master key');

  const toSw = await migrateMaster(dir, { to: 'software' });
  t.same([toSw.from.kind, toSw.to.kind, toSw.to.version], ['pkcs11', 'software', 4]);
  t.ok(statSync(join(dir, 'master-4.key')).isFile());
  t.equal(await readableCount(dir, keys), keys.size, 'every key readable after the round trip back to software');
  const s = await keyStatus(dir);
  t.same(
    s.masterVersions.map((v) => [v.version, v.kind, v.status]),
    [
      [1, 'software', 'retired'],
      [2, 'pkcs11', 'retired'],
      [3, 'pkcs11', 'retired'],
      [4, 'software', 'active'],
    ],
  );
  t.ok(s.rootKeys.every((k) => k.masterVersion === 4), 'every root key is wrapped by version 4');
  const e = await caught(migrateMaster(dir, { to: 'pkcs11', module: hsm.module, token: hsm.token, keyLabel: 'kmipd-master', pin: hsm.pin }));
  t.type(e, KeyAdminError);
  t.match((e as Error).message, /exists already/, 'a label in use on the token is refused');
  t.equal(readManifest(dir)!.master.kind, 'software', 'and nothing changed');
  t.equal(await readableCount(dir, keys), keys.size);
});
