import t from 'tap';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  aesKeyUnwrapPad,
  aesKeyWrapPad,
  checkCanary,
  createSoftwareMasterKey,
  KeyUnwrapError,
  loadSoftwareMasterKey,
  MasterKeyFileError,
  recordCanary,
  SoftwareMasterKey,
  WrongMasterKeyError,
  type MetaStore,
} from '../../src/crypto/index.js';

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kmipd-mk-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function memoryMeta(): MetaStore & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return {
    map,
    getMeta: async (k) => map.get(k),
    setMeta: async (k, v) => void map.set(k, v),
  };
}

t.test('RFC 5649 §6 known-answer vectors', (t) => {
  const kek = Buffer.from('5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8', 'hex');
  const vectors: [string, string][] = [
    ['c37b7e6492584340bed12207808941155068f738', '138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a'],
    ['466f7250617369', 'afbeb0f07dfbf5419200f2ccb50bb24f'],
  ];
  for (const [key, wrapped] of vectors) {
    t.equal(aesKeyWrapPad(kek, Buffer.from(key, 'hex')).toString('hex'), wrapped, `wrap ${key.length / 2} bytes`);
    t.equal(aesKeyUnwrapPad(kek, Buffer.from(wrapped, 'hex')).toString('hex'), key, `unwrap ${key.length / 2} bytes`);
  }
  t.end();
});

t.test('RFC 5649 with AES-256: round trip, lengths, tampering, wrong key', (t) => {
  const kek = randomBytes(32);
  for (const n of [1, 7, 8, 9, 16, 31, 32, 33, 64, 100]) {
    const p = randomBytes(n);
    const w = aesKeyWrapPad(kek, p);
    t.equal(w.length, Math.ceil(n / 8) * 8 + 8, `${n} bytes wrap to ${w.length}`);
    t.ok(aesKeyUnwrapPad(kek, w).equals(p), `${n} bytes round trip`);
  }
  const w = aesKeyWrapPad(kek, randomBytes(32));
  for (const pos of [0, 7, 8, 20, w.length - 1]) {
    const bad = Buffer.from(w);
    bad[pos]! ^= 0x01;
    t.throws(() => aesKeyUnwrapPad(kek, bad), KeyUnwrapError, `bit flip at byte ${pos}`);
  }
  t.throws(() => aesKeyUnwrapPad(randomBytes(32), w), KeyUnwrapError, 'wrong key-encryption key');
  t.throws(() => aesKeyUnwrapPad(kek, w.subarray(0, 15)), KeyUnwrapError, 'too short');
  t.throws(() => aesKeyUnwrapPad(kek, w.subarray(0, 20)), KeyUnwrapError, 'not a multiple of 8');
  t.throws(() => aesKeyWrapPad(kek, Buffer.alloc(0)), RangeError, 'nothing to wrap');
  t.throws(() => aesKeyWrapPad(randomBytes(20), Buffer.alloc(8)), RangeError, 'bad key-encryption key size');
  t.end();
});

t.test('createSoftwareMasterKey writes 32 bytes, mode 0600, atomically, never overwrites', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'master.key');
  const mk = await createSoftwareMasterKey(file);
  t.equal(statSync(file).mode & 0o777, 0o600, 'mode 0600');
  const bytes = readFileSync(file);
  t.equal(bytes.length, 32, '32 bytes');
  t.equal(mk.kind, 'software');
  t.match(mk.keyId, /^sw-[0-9a-f]{16}$/, 'short fingerprint');
  t.notOk(bytes.toString('hex').includes(mk.keyId.slice(3)), 'the id is not part of the key');
  t.same(readdirSync(dir), ['master.key'], 'no temporary file left');
  await t.rejects(createSoftwareMasterKey(file), { name: 'MasterKeyFileError', message: /exists already; refusing to overwrite/ });
  t.ok(readFileSync(file).equals(bytes), 'existing key untouched');
  t.same(readdirSync(dir), ['master.key'], 'still no temporary file');

  const loaded = await loadSoftwareMasterKey(file);
  t.equal(loaded.keyId, mk.keyId, 'same key id after load');
  const plain = randomBytes(32);
  t.ok((await loaded.unwrap(await mk.wrap(plain))).equals(plain), 'created and loaded keys are the same key');
  t.ok(aesKeyUnwrapPad(bytes, await mk.wrap(plain)).equals(plain), 'format is RFC 5649 AES-256 (CKM_AES_KEY_WRAP_PAD)');
  await mk.close();
  await t.rejects(mk.wrap(plain), /closed/, 'closed key refuses');
  const other = await createSoftwareMasterKey(join(dir, 'other.key'));
  t.not(other.keyId, loaded.keyId, 'different keys, different ids');
  await t.rejects(other.unwrap(await loaded.wrap(plain)), KeyUnwrapError, 'another key cannot unwrap');
});

t.test('loadSoftwareMasterKey refuses unsafe or malformed files', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'master.key');
  await createSoftwareMasterKey(file);
  for (const mode of [0o640, 0o604, 0o644, 0o660, 0o601]) {
    chmodSync(file, mode);
    await t.rejects(
      loadSoftwareMasterKey(file),
      { name: 'MasterKeyFileError', message: new RegExp(`accessible by group or others \\(mode 0${mode.toString(8)}\\).*chmod 600`) },
      `mode 0${mode.toString(8)} refused`,
    );
  }
  chmodSync(file, 0o400);
  t.ok(await loadSoftwareMasterKey(file), 'mode 0400 accepted');
  for (const n of [0, 16, 31, 33, 64]) {
    const f = join(dir, `len${n}.key`);
    writeFileSync(f, randomBytes(n), { mode: 0o600 });
    await t.rejects(loadSoftwareMasterKey(f), { name: 'MasterKeyFileError', message: /exactly 32 bytes/ }, `${n} bytes refused`);
  }
  await t.rejects(loadSoftwareMasterKey(join(dir, 'missing.key')), { name: 'MasterKeyFileError', message: /does not exist/ });
  await t.rejects(loadSoftwareMasterKey(dir), MasterKeyFileError, 'a directory is refused');
});

t.test('canary: recorded at set-up, verified later, a wrong master key is caught', async (t) => {
  const meta = memoryMeta();
  const right = new SoftwareMasterKey(randomBytes(32), 'mem');
  const wrong = new SoftwareMasterKey(randomBytes(32), 'mem');
  t.equal(await checkCanary(right, meta), 'absent', 'nothing recorded yet');
  t.equal(meta.map.size, 0, 'checking records nothing');
  await recordCanary(right, meta);
  t.equal(meta.map.get('masterkey.kind'), 'software');
  t.equal(meta.map.get('masterkey.id'), right.keyId);
  t.match(meta.map.get('masterkey.canary'), /^[0-9a-f]{80}$/, 'canary stored (RFC 5649 of 32 bytes)');
  t.equal(await checkCanary(right, meta), 'verified');
  await t.rejects(checkCanary(wrong, meta), {
    name: 'WrongMasterKeyError',
    message: new RegExp(`set up with master key software:${right.keyId}.*\\(software:${wrong.keyId}\\).*refusing to start`),
  });
  await t.rejects(checkCanary(wrong, meta), WrongMasterKeyError);
  t.equal(meta.map.get('masterkey.id'), right.keyId, 'a failed check records nothing');
});
