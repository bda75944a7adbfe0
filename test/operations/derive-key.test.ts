/**
 * Derive Key: known-answer vectors for each method (RFC 6070 and RFC 7914 PBKDF2, FIPS 180-2
 * SHA-256 "abc", RFC 4231 HMAC, RFC 5869 HKDF), ECDH checked against a shared secret computed
 * here from keys made here, the links between base and derived objects, the derived key sealed
 * at rest, and the refusals with their Result Reasons.
 */
import { diffieHellman, generateKeyPairSync } from 'node:crypto';
import t from 'tap';
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { FAILED, OK, OP, a, activation, alg, attrValues, expectedReason, get, keyBytes, len, mask, nowS, stored, template, text } from './_keys.js';
import { ALG, HASH, KFT, M, OT, hex, registerAsymmetric, registerSymmetric } from './_crypto.js';

const DM = Enums.DerivationMethod;
const LT = Enums.LinkType;

async function registerSecret(engine: Engine, secret: Buffer, o: { mask?: number; active?: boolean; version?: KmipVersion } = {}): Promise<string> {
  const version = o.version ?? '1.4';
  const attrs: KmipAttribute[] = [mask(o.mask ?? M.DeriveKey)];
  if (o.active !== false) attrs.push(activation(nowS() - 3600n));
  const obj = T.struct(Tag.SecretData, [
    T.enum(Tag.SecretDataType, Enums.SecretDataType.Password),
    T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.Opaque), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, secret)])]),
  ]);
  const r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, OT.SecretData), ...template(version, attrs), obj], { version });
  if (r.status !== OK) throw new Error(`Register failed: ${r.reason} ${r.message}`);
  return text(r.payload, Tag.UniqueIdentifier)!;
}

interface DeriveOptions {
  objectType?: number;
  uids: string[];
  method: number;
  hash?: number;
  cryptoAlg?: number;
  data?: Buffer;
  salt?: Buffer;
  iterations?: number;
  attrs: KmipAttribute[];
  version?: KmipVersion;
}

function deriveCall(engine: Engine, o: DeriveOptions) {
  const version = o.version ?? '1.4';
  const dp: TtlvNode[] = [];
  const cp: TtlvNode[] = [];
  if (o.hash !== undefined) cp.push(T.enum(Tag.HashingAlgorithm, o.hash));
  if (o.cryptoAlg !== undefined) cp.push(T.enum(Tag.CryptographicAlgorithm, o.cryptoAlg));
  if (cp.length > 0) dp.push(T.struct(Tag.CryptographicParameters, cp));
  if (o.data) dp.push(T.bytes(Tag.DerivationData, o.data));
  if (o.salt) dp.push(T.bytes(Tag.Salt, o.salt));
  if (o.iterations !== undefined) dp.push(T.int(Tag.IterationCount, o.iterations));
  const payload: TtlvNode[] = [
    T.enum(Tag.ObjectType, o.objectType ?? OT.SymmetricKey),
    ...o.uids.map((u) => T.text(Tag.UniqueIdentifier, u)),
    T.enum(Tag.DerivationMethod, o.method),
    T.struct(Tag.DerivationParameters, dp),
    ...template(version, o.attrs),
  ];
  return engine.call(OP.DeriveKey, payload, { version });
}

const aes = (bits: number): KmipAttribute[] => [alg(ALG.AES), len(bits), mask(M.Encrypt | M.Decrypt)];
const secret = (bits: number): KmipAttribute[] => [len(bits)];

async function derivedHex(engine: Engine, uid: string, objectTag: number = Tag.SymmetricKey, version: KmipVersion = '1.4'): Promise<string | undefined> {
  const g = await get(engine, uid, version);
  return keyBytes(g.payload, objectTag)?.toString('hex');
}

t.test('Derive Key', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  await t.test('PBKDF2-HMAC-SHA1 (default PRF): RFC 6070, c=4096, into Secret Data', async (t) => {
    const base = await registerSecret(engine, Buffer.from('password'));
    const r = await deriveCall(engine, { objectType: OT.SecretData, uids: [base], method: DM.PBKDF2, salt: Buffer.from('salt'), iterations: 4096, attrs: secret(160) });
    t.equal(r.status, OK, r.message ?? '');
    const uid = text(r.payload, Tag.UniqueIdentifier)!;
    t.equal(await derivedHex(engine, uid, Tag.SecretData), '4b007901b765489abead49d926f721d065a429c1');
  });

  await t.test('PBKDF2-HMAC-SHA256: RFC 7914 §11 (c=1, 64 bytes), 2.1 Attributes', async (t) => {
    const base = await registerSecret(engine, Buffer.from('passwd'), { version: '2.1' });
    const r = await deriveCall(engine, { objectType: OT.SecretData, uids: [base], method: DM.PBKDF2, hash: HASH.SHA_256, salt: Buffer.from('salt'), iterations: 1, attrs: secret(512), version: '2.1' });
    t.equal(r.status, OK, r.message ?? '');
    t.equal(
      await derivedHex(engine, text(r.payload, Tag.UniqueIdentifier)!, Tag.SecretData, '2.1'),
      '55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783',
    );
  });

  await t.test('HASH: SHA-256("abc") (FIPS 180-2) as an AES-256 key; links both ways; sealed at rest', async (t) => {
    const base = await registerSecret(engine, Buffer.from('abc'));
    const r = await deriveCall(engine, { uids: [base], method: DM.HASH, hash: HASH.SHA_256, attrs: aes(256) });
    t.equal(r.status, OK, r.message ?? '');
    const uid = text(r.payload, Tag.UniqueIdentifier)!;
    const expected = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    t.equal(await derivedHex(engine, uid), expected);
    const derived = await stored(engine, uid);
    t.equal(derived.objectType, OT.SymmetricKey);
    t.equal(derived.owner, 'alice');
    const links = (o: typeof derived) => attrValues(o, 'Link').map((v) => (v as StructureNode).value.map((c) => (c.type === 'Enumeration' || c.type === 'TextString' ? c.value : '')));
    t.same(links(derived), [[LT.DerivationBaseObjectLink, base]], 'the derived key points at its base');
    t.same(links(await stored(engine, base)), [[LT.DerivedKeyLink, uid]], 'the base points at the derived key');
    t.ok(derived.material, 'material kept');
    t.notOk(derived.material!.blob.includes(hex(expected)), 'not in clear at rest');
    // The derived key is usable: the template's usage mask.
    t.same(attrValues(derived, 'Cryptographic Usage Mask').map((v) => (v.type === 'Integer' ? v.value : -1)), [M.Encrypt | M.Decrypt]);
  });

  await t.test('HMAC-SHA256: RFC 4231 test case 2', async (t) => {
    const base = await registerSecret(engine, Buffer.from('Jefe'));
    const r = await deriveCall(engine, { uids: [base], method: DM.HMAC, hash: HASH.SHA_256, data: Buffer.from('what do ya want for nothing?'), attrs: aes(256) });
    t.equal(r.status, OK, r.message ?? '');
    t.equal(await derivedHex(engine, text(r.payload, Tag.UniqueIdentifier)!), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  });

  await t.test('HKDF-SHA256: RFC 5869 test case 1 (2.0+ only)', async (t) => {
    const base = await registerSecret(engine, Buffer.alloc(22, 0x0b), { version: '2.1' });
    const o: DeriveOptions = {
      objectType: OT.SecretData,
      uids: [base],
      method: DM.HKDF,
      hash: HASH.SHA_256,
      salt: hex('000102030405060708090a0b0c'),
      data: hex('f0f1f2f3f4f5f6f7f8f9'),
      attrs: secret(336),
      version: '2.1',
    };
    const r = await deriveCall(engine, o);
    t.equal(r.status, OK, r.message ?? '');
    t.equal(
      await derivedHex(engine, text(r.payload, Tag.UniqueIdentifier)!, Tag.SecretData, '2.1'),
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    );
    const old = await deriveCall(engine, { ...o, version: '1.4' });
    t.equal(old.status, FAILED, 'HKDF is a 2.0 method');
  });

  await t.test('Asymmetric Key (ECDH, P-256): the shared secret both parties compute', async (t) => {
    const mine = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const theirs = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const expected = diffieHellman({ privateKey: mine.privateKey, publicKey: theirs.publicKey }).toString('hex');
    const o = { version: '2.1' as KmipVersion, mask: M.DeriveKey };
    const priv = await registerAsymmetric(engine, OT.PrivateKey, KFT.PKCS_8, mine.privateKey.export({ type: 'pkcs8', format: 'der' }), ALG.EC, 256, o);
    const pub = await registerAsymmetric(engine, OT.PublicKey, KFT.X_509, theirs.publicKey.export({ type: 'spki', format: 'der' }), ALG.EC, 256, o);
    for (const uids of [[priv, pub], [pub, priv]]) {
      const r = await deriveCall(engine, { uids, method: DM.AsymmetricKey, cryptoAlg: ALG.ECDH, attrs: aes(256), version: '2.1' });
      t.equal(r.status, OK, r.message ?? '');
      t.equal(await derivedHex(engine, text(r.payload, Tag.UniqueIdentifier)!, Tag.SymmetricKey, '2.1'), expected, `base objects in order ${uids.join(', ')}`);
    }
    const short = await deriveCall(engine, { uids: [priv, pub], method: DM.AsymmetricKey, attrs: aes(128), version: '2.1' });
    t.equal(await derivedHex(engine, text(short.payload, Tag.UniqueIdentifier)!, Tag.SymmetricKey, '2.1'), expected.slice(0, 32), 'leading bytes');
    const one = await deriveCall(engine, { uids: [priv], method: DM.AsymmetricKey, attrs: aes(256), version: '2.1' });
    t.equal(one.reason, expectedReason('2.1', 'InvalidField', 'InvalidField'), 'needs both keys');
  });

  await t.test('refusals', async (t) => {
    const base = await registerSecret(engine, Buffer.from('password'));
    for (const version of ['1.4', '2.1'] as const) {
      const noBit = await registerSymmetric(engine, hex('00112233445566778899aabbccddeeff'), ALG.AES, { version, mask: M.Encrypt | M.Decrypt });
      let r = await deriveCall(engine, { uids: [noBit], method: DM.HASH, hash: HASH.SHA_256, attrs: aes(128), version });
      t.equal(r.reason, expectedReason(version, 'IncompatibleCryptographicUsageMask', 'PermissionDenied'), `${version}: no Derive Key bit`);
      const inactive = await registerSymmetric(engine, hex('00112233445566778899aabbccddeeff'), ALG.AES, { version, mask: M.DeriveKey, active: false });
      r = await deriveCall(engine, { uids: [inactive], method: DM.HASH, hash: HASH.SHA_256, attrs: aes(128), version });
      t.equal(r.reason, expectedReason(version, 'WrongKeyLifecycleState', 'PermissionDenied'), `${version}: Pre-Active base`);
    }
    const cases: [string, DeriveOptions, string][] = [
      ['no Cryptographic Length', { uids: [base], method: DM.HASH, hash: HASH.SHA_256, attrs: [alg(ALG.AES)] }, 'MissingData'],
      ['HASH without a Hashing Algorithm', { uids: [base], method: DM.HASH, attrs: aes(128) }, 'MissingData'],
      ['HASH with Derivation Data', { uids: [base], method: DM.HASH, hash: HASH.SHA_256, data: hex('01'), attrs: aes(128) }, 'InvalidField'],
      ['HASH longer than the digest', { uids: [base], method: DM.HASH, hash: HASH.SHA_1, attrs: aes(256) }, 'InvalidField'],
      ['HMAC without Derivation Data', { uids: [base], method: DM.HMAC, hash: HASH.SHA_256, attrs: aes(128) }, 'MissingData'],
      ['PBKDF2 without a Salt', { uids: [base], method: DM.PBKDF2, iterations: 1, attrs: aes(128) }, 'MissingData'],
      ['PBKDF2 with 0 iterations', { uids: [base], method: DM.PBKDF2, salt: hex('00'), iterations: 0, attrs: aes(128) }, 'InvalidField'],
      ['an AES length AES does not have', { uids: [base], method: DM.HASH, hash: HASH.SHA_256, attrs: aes(100) }, 'InvalidField'],
      ['a method kmipd does not implement', { uids: [base], method: DM.NIST800_108_C, hash: HASH.SHA_256, data: hex('01'), attrs: aes(128) }, 'FeatureNotSupported'],
      ['an unknown base object', { uids: ['no-such-object'], method: DM.HASH, hash: HASH.SHA_256, attrs: aes(128) }, 'ItemNotFound'],
    ];
    for (const [what, o, why] of cases) {
      const r = await deriveCall(engine, o);
      t.equal(r.status, FAILED, what);
      t.equal(r.reason, expectedReason('1.4', why, why), `${what}: ${why}`);
    }
    const pk = await deriveCall(engine, { objectType: OT.PrivateKey, uids: [base], method: DM.HASH, hash: HASH.SHA_256, attrs: aes(128), version: '2.1' });
    t.equal(pk.reason, expectedReason('2.1', 'InvalidObjectType', 'InvalidField'), 'Derive Key makes Symmetric Keys and Secret Data only');
    const other = await engine.call(
      OP.DeriveKey,
      [T.enum(Tag.ObjectType, OT.SymmetricKey), T.text(Tag.UniqueIdentifier, base), T.enum(Tag.DerivationMethod, DM.HASH), T.struct(Tag.DerivationParameters, [T.struct(Tag.CryptographicParameters, [T.enum(Tag.HashingAlgorithm, HASH.SHA_256)])]), ...template('1.4', aes(128))],
      { version: '1.4', identity: 'mallory' },
    );
    t.equal(other.reason, expectedReason('1.4', 'ItemNotFound', 'ItemNotFound'), "another identity's base object is not found");
  });

  await t.test('Query lists Derive Key', async (t) => {
    const r = await engine.call(OP.Query, [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryOperations)], { version: '1.0' });
    t.ok(r.payload?.value.some((c) => c.tag === Tag.Operation && c.type === 'Enumeration' && c.value === OP.DeriveKey));
  });
});
