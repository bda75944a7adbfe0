import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Masks, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, nodesEqual, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import {
  ALG,
  ALL,
  FAILED,
  KFT,
  OK,
  OP,
  ST,
  a,
  activation,
  alg,
  attrValue,
  bytes,
  child,
  enumValue,
  get,
  keyBlock,
  keyBytes,
  len,
  mask,
  nameA,
  reason,
  scalar,
  stored,
  struct,
  template,
  text,
} from './_keys.js';

const OT = Enums.ObjectType;

function rawKey(key: Buffer, algorithm?: number, length?: number, format: number = KFT.Raw): StructureNode {
  const material: TtlvNode = format === KFT.TransparentSymmetricKey ? T.struct(Tag.KeyMaterial, [T.bytes(Tag.Key, key)]) : T.bytes(Tag.KeyMaterial, key);
  const block: TtlvNode[] = [T.enum(Tag.KeyFormatType, format), T.struct(Tag.KeyValue, [material])];
  if (algorithm !== undefined) block.push(T.enum(Tag.CryptographicAlgorithm, algorithm));
  if (length !== undefined) block.push(T.int(Tag.CryptographicLength, length));
  return T.struct(Tag.SymmetricKey, [T.struct(Tag.KeyBlock, block)]);
}

function registerPayload(version: KmipVersion, objectType: number, object: StructureNode, attrs: KmipAttribute[] = []): TtlvNode[] {
  return [T.enum(Tag.ObjectType, objectType), ...template(version, attrs), object];
}

async function register(engine: Engine, version: KmipVersion, objectType: number, object: StructureNode, attrs: KmipAttribute[] = []): Promise<string> {
  const r = await engine.call(OP.Register, registerPayload(version, objectType, object, attrs), { version });
  if (r.status !== OK) throw new Error(`Register failed: ${r.reason} ${r.message}`);
  return text(r.payload, Tag.UniqueIdentifier)!;
}

t.test('Register', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  for (const version of ALL) {
    await t.test(`KMIP ${version}: a symmetric key comes back byte for byte`, async (t) => {
      const key = randomBytes(32);
      const uid = await register(engine, version, OT.SymmetricKey, rawKey(key, ALG.AES, 256), [mask(12), nameA(`reg-${version}`)]);
      const g = await get(engine, uid, version);
      t.equal(g.status, OK);
      t.equal(enumValue(g.payload, Tag.ObjectType), OT.SymmetricKey);
      t.equal(text(g.payload, Tag.UniqueIdentifier), uid);
      t.ok(nodesEqual(child(g.payload, Tag.SymmetricKey)!, rawKey(key, ALG.AES, 256)), 'the object exactly as registered');
      const o = await stored(engine, uid);
      t.equal(o.state, ST.PreActive);
      t.equal(scalar(attrValue(o, 'Cryptographic Algorithm')), ALG.AES, 'algorithm attribute from the key block');
      t.equal(scalar(attrValue(o, 'Cryptographic Length')), 256, 'length attribute from the key block');
      const d = attrValue(o, 'Digest');
      t.same(d?.type === 'Structure' ? bytes(d, Tag.DigestValue) : undefined, createHash('sha256').update(key).digest(), 'Digest');
    });
  }

  await t.test('algorithm and length from the attributes when the key block has none', async (t) => {
    const key = randomBytes(16);
    const uid = await register(engine, '1.4', OT.SymmetricKey, rawKey(key), [alg(ALG.AES), len(128)]);
    const kb = keyBlock((await get(engine, uid)).payload);
    t.equal(enumValue(kb, Tag.CryptographicAlgorithm), ALG.AES, 'Get shows the algorithm in the key block');
    t.equal(scalar(child(kb, Tag.CryptographicLength)), 128);
    const uid2 = await register(engine, '2.1', OT.SymmetricKey, rawKey(randomBytes(32)), [alg(ALG.HMAC_SHA256)]);
    t.equal(scalar(attrValue(await stored(engine, uid2), 'Cryptographic Length')), 256, 'length derived from the key bytes');
  });

  await t.test('key block checks', async (t) => {
    const cases: [string, StructureNode, KmipAttribute[], string][] = [
      ['length differs from the key', rawKey(randomBytes(16), ALG.AES, 256), [], 'InvalidField'],
      ['20 bytes are no AES key', rawKey(randomBytes(20), ALG.AES), [], 'InvalidField'],
      ['no algorithm anywhere', rawKey(randomBytes(16)), [], 'MissingData'],
      ['key block and attribute disagree', rawKey(randomBytes(16), ALG.AES, 128), [alg(ALG.DES3)], 'InvalidField'],
      ['length attribute disagrees', rawKey(randomBytes(16), ALG.AES, 128), [len(256)], 'InvalidField'],
      ['PKCS#1 is no symmetric key format', rawKey(randomBytes(16), ALG.AES, 128, KFT.PKCS_1), [], 'KeyFormatTypeNotSupported'],
      ['no Key Block', T.struct(Tag.SymmetricKey, []), [], 'MissingData'],
      ['Raw format with a structure', T.struct(Tag.SymmetricKey, [T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.Raw), T.struct(Tag.KeyValue, [T.struct(Tag.KeyMaterial, [T.bytes(Tag.Key, randomBytes(16))])]), T.enum(Tag.CryptographicAlgorithm, ALG.AES)])]), [], 'InvalidField'],
    ];
    for (const [what, obj, attrs, why] of cases) {
      const r = await engine.call(OP.Register, registerPayload('1.4', OT.SymmetricKey, obj, attrs));
      t.equal(r.status, FAILED, what);
      t.equal(r.reason, reason(why), `${what}: ${why}`);
    }
    const r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, OT.SymmetricKey), ...template('1.4', [])]);
    t.equal(r.reason, reason('MissingData'), 'no object at all');
  });

  await t.test('Transparent Symmetric Key: kept as registered, converted on request', async (t) => {
    const key = randomBytes(32);
    const uid = await register(engine, '1.4', OT.SymmetricKey, rawKey(key, ALG.AES, 256, KFT.TransparentSymmetricKey));
    let g = await get(engine, uid);
    t.equal(enumValue(keyBlock(g.payload), Tag.KeyFormatType), KFT.TransparentSymmetricKey, 'default: as registered');
    t.same(keyBytes(g.payload), key);
    g = await get(engine, uid, '2.1', [T.enum(Tag.KeyFormatType, KFT.Raw)]);
    t.equal(enumValue(keyBlock(g.payload), Tag.KeyFormatType), KFT.Raw, 'Raw on request');
    t.same(keyBytes(g.payload), key, 'same key bytes');
    t.ok(nodesEqual(child(g.payload, Tag.SymmetricKey)!, rawKey(key, ALG.AES, 256)), 'a plain Raw key block');
  });

  await t.test('Triple DES: 24 bytes are 168 bits', async (t) => {
    const uid = await register(engine, '1.2', OT.SymmetricKey, rawKey(randomBytes(24), ALG.DES3));
    t.equal(scalar(attrValue(await stored(engine, uid), 'Cryptographic Length')), 168);
    const uid2 = await register(engine, '1.2', OT.SymmetricKey, rawKey(randomBytes(24), ALG.DES3, 192));
    t.equal(scalar(attrValue(await stored(engine, uid2), 'Cryptographic Length')), 192, '192 accepted as given');
  });

  await t.test('a key registered wrapped is stored and returned as registered', async (t) => {
    const wrapped = randomBytes(40);
    const block = T.struct(Tag.KeyBlock, [
      T.enum(Tag.KeyFormatType, KFT.Raw),
      T.bytes(Tag.KeyValue, wrapped),
      T.enum(Tag.CryptographicAlgorithm, ALG.AES),
      T.int(Tag.CryptographicLength, 256),
      T.struct(Tag.KeyWrappingData, [
        T.enum(Tag.WrappingMethod, Enums.WrappingMethod.Encrypt),
        T.struct(Tag.EncryptionKeyInformation, [T.text(Tag.UniqueIdentifier, 'client-kek')]),
      ]),
    ]);
    const obj = T.struct(Tag.SymmetricKey, [block]);
    const uid = await register(engine, '1.4', OT.SymmetricKey, obj);
    const g = await get(engine, uid);
    t.equal(g.status, OK);
    t.ok(nodesEqual(child(g.payload, Tag.SymmetricKey)!, obj), 'returned exactly as registered');
    const r = await get(engine, uid, '1.4', [T.enum(Tag.KeyFormatType, KFT.TransparentSymmetricKey)]);
    t.equal(r.reason, reason('KeyFormatTypeNotSupported'), 'no conversion of a wrapped key');
    t.equal(attrValue(await stored(engine, uid), 'Digest'), undefined, 'no digest of an unknown plaintext');
  });

  await t.test('Secret Data round trip', async (t) => {
    const secret = Buffer.from('correct horse battery staple');
    const obj = T.struct(Tag.SecretData, [
      T.enum(Tag.SecretDataType, Enums.SecretDataType.Password),
      T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.Opaque), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, secret)])]),
    ]);
    for (const version of ['1.4', '2.1'] as const) {
      const uid = await register(engine, version, OT.SecretData, obj, [mask(Masks.CryptographicUsageMask.Verify)]);
      const g = await get(engine, uid, version);
      t.equal(enumValue(g.payload, Tag.ObjectType), OT.SecretData);
      t.ok(nodesEqual(child(g.payload, Tag.SecretData)!, obj), `${version}: as registered`);
      const r = await get(engine, uid, version, [T.enum(Tag.KeyFormatType, KFT.Raw)]);
      t.equal(r.reason, reason('KeyFormatTypeNotSupported'), `${version}: no conversion of secret data`);
    }
  });

  await t.test('Opaque Object round trip (BL-M-5-21: an Activation Date in 2000 makes it Active)', async (t) => {
    const obj = T.struct(Tag.OpaqueObject, [T.enum(Tag.OpaqueDataType, 0x80123456), T.bytes(Tag.OpaqueDataValue, Buffer.from('0123456789abcdef0123456789abcdef', 'hex'))]);
    const uid = await register(engine, '2.1', OT.OpaqueObject, obj, [mask(4), activation(BigInt(Date.UTC(2000, 1, 1) / 1000))]);
    const g = await get(engine, uid, '2.1');
    t.ok(nodesEqual(child(g.payload, Tag.OpaqueObject)!, obj), 'as registered');
    t.equal((await stored(engine, uid)).state, ST.Active, 'Active');
  });

  await t.test('incomplete objects, and unknown object types', async (t) => {
    const cert = T.struct(Tag.Certificate, [T.enum(Tag.CertificateType, 1), T.bytes(Tag.CertificateValue, Buffer.from([0x30, 0]))]);
    const pgp = T.struct(Tag.PGPKey, [T.int(Tag.PGPKeyVersion, 4)]);
    let r = await engine.call(OP.Register, registerPayload('1.4', OT.PGPKey, pgp));
    t.equal(r.reason, reason('MissingData'), 'a PGP Key without its key block (PGP keys: register-more.test.ts)');
    // Split Key parts are registered (split-key.test.ts); an incomplete one is Missing Data.
    r = await engine.call(OP.Register, registerPayload('1.4', OT.SplitKey, T.struct(Tag.SplitKey, [T.int(Tag.SplitKeyParts, 2)])));
    t.equal(r.reason, reason('MissingData'), 'an incomplete Split Key');
    r = await engine.call(OP.Register, registerPayload('1.4', 0x55, cert));
    t.equal(r.reason, reason('InvalidField'), 'unknown object type');
    r = await engine.call(OP.Register, registerPayload('1.4', OT.SecretData, rawKey(randomBytes(16), ALG.AES)));
    t.equal(r.reason, reason('MissingData'), 'object type and object disagree');
  });

  await t.test('server-set attributes cannot be registered', async (t) => {
    const r = await engine.call(OP.Register, registerPayload('2.1', OT.SymmetricKey, rawKey(randomBytes(16), ALG.AES), [a('State', T.enum(Tag.State, ST.Active))]), {
      version: '2.1',
    });
    t.equal(r.reason, reason('ReadOnlyAttribute'));
    const r1 = await engine.call(OP.Register, registerPayload('1.4', OT.SymmetricKey, rawKey(randomBytes(16), ALG.AES), [a('Digest', T.struct(Tag.Digest, []))]));
    t.equal(r1.reason, reason('PermissionDenied'), '1.x: Permission Denied');
  });

  await t.test('Key Value attributes (1.x) are not kept inside the key value', async (t) => {
    const key = randomBytes(16);
    const obj = T.struct(Tag.SymmetricKey, [
      T.struct(Tag.KeyBlock, [
        T.enum(Tag.KeyFormatType, KFT.Raw),
        T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, key), T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'x-inline'), T.text(Tag.AttributeValue, 'v')])]),
        T.enum(Tag.CryptographicAlgorithm, ALG.AES),
        T.int(Tag.CryptographicLength, 128),
      ]),
    ]);
    const uid = await register(engine, '1.4', OT.SymmetricKey, obj);
    const g = await get(engine, uid);
    t.ok(nodesEqual(child(g.payload, Tag.SymmetricKey)!, rawKey(key, ALG.AES, 128)));
    t.ok(struct(keyBlock(g.payload), Tag.KeyValue)?.value.length === 1);
  });
});
