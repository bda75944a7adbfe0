import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import t from 'tap';
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Masks, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, nodesEqual, type StructureNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { ALG, FAILED, KFT, OK, OP, a, activation, attrValue, bytes, child, get, keyBlock, mask, nowS, reason, scalar, stored, template, text } from './_keys.js';

const OT = Enums.ObjectType;
const M = Masks.CryptographicUsageMask;

async function register(engine: Engine, version: KmipVersion, objectType: number, object: StructureNode, attrs: KmipAttribute[]) {
  return engine.call(OP.Register, [T.enum(Tag.ObjectType, objectType), ...template(version, attrs), object], { version });
}

t.test('Register: more object shapes', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  await t.test('a metadata-only key (no Key Value) with its Key Value Location', async (t) => {
    const mdo = T.struct(Tag.SymmetricKey, [
      T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.Raw), T.enum(Tag.CryptographicAlgorithm, ALG.AES), T.int(Tag.CryptographicLength, 128)]),
    ]);
    const location = a('Key Value Location', T.struct(Tag.KeyValueLocation, [
      T.text(Tag.KeyValueLocationValue, 'HSM-1'),
      T.enum(Tag.KeyValueLocationType, Enums.KeyValueLocationType.UninterpretedTextString),
    ]));
    const r = await register(engine, '1.2', OT.SymmetricKey, mdo, [mask(M.Encrypt), location]);
    t.equal(r.status, OK, r.message ?? '');
    const uid = text(r.payload, Tag.UniqueIdentifier)!;
    const o = await stored(engine, uid);
    t.equal(scalar(attrValue(o, 'Key Value Present')), false, 'Key Value Present is false');
    t.equal(scalar(attrValue(o, 'Cryptographic Length')), 128);
    t.notOk(attrValue(o, 'Digest'), 'no digest without material');
    const g = await get(engine, uid, '1.2');
    t.equal(g.status, OK);
    t.ok(nodesEqual(child(g.payload, Tag.SymmetricKey)!, mdo), 'Get returns the Key Block as registered');
    const without = await register(engine, '1.2', OT.SymmetricKey, mdo, [mask(M.Encrypt)]);
    t.equal(without.reason, reason('MissingData'), 'no Key Value and no Key Value Location');
  });

  await t.test('metadata-only Secret Data, under the same rule', async (t) => {
    const mdo = T.struct(Tag.SecretData, [T.enum(Tag.SecretDataType, Enums.SecretDataType.Password), T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.Opaque)])]);
    const location = a('Key Value Location', T.struct(Tag.KeyValueLocation, [
      T.text(Tag.KeyValueLocationValue, 'vault://pads/1'),
      T.enum(Tag.KeyValueLocationType, Enums.KeyValueLocationType.URI),
    ]));
    const r = await register(engine, '1.3', OT.SecretData, mdo, [mask(M.Encrypt | M.Decrypt), location]);
    t.equal(r.status, OK, r.message ?? '');
    const uid = text(r.payload, Tag.UniqueIdentifier)!;
    const o = await stored(engine, uid);
    t.equal(scalar(attrValue(o, 'Key Value Present')), false, 'Key Value Present is false');
    t.notOk(attrValue(o, 'Digest'), 'no digest without material');
    const g = await get(engine, uid, '1.3');
    t.equal(g.status, OK);
    t.ok(nodesEqual(child(g.payload, Tag.SecretData)!, mdo), 'Get returns Secret Data Type and Key Block as registered');
    const without = await register(engine, '1.3', OT.SecretData, mdo, [mask(M.Encrypt)]);
    t.equal(without.reason, reason('MissingData'), 'no Key Value and no Key Value Location (TC-OTP-SETUP-2-13 is skipped for this)');
  });

  await t.test('a PGP Key is kept as registered', async (t) => {
    const block = Buffer.concat([Buffer.from('-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n'), randomBytes(200), Buffer.from('\n-----END PGP PUBLIC KEY BLOCK-----\n')]);
    const pgp = T.struct(Tag.PGPKey, [
      T.int(Tag.PGPKeyVersion, 4),
      T.struct(Tag.KeyBlock, [
        T.enum(Tag.KeyFormatType, KFT.Raw),
        T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, block)]),
        T.enum(Tag.CryptographicAlgorithm, ALG.RSA),
        T.int(Tag.CryptographicLength, 2048),
      ]),
    ]);
    const r = await register(engine, '1.4', OT.PGPKey, pgp, [a('x-ID', T.text(Tag.AttributeValue, 'pgp1'))]);
    t.equal(r.status, OK, r.message ?? '');
    const uid = text(r.payload, Tag.UniqueIdentifier)!;
    const g = await get(engine, uid, '1.4');
    t.equal(g.status, OK);
    t.ok(nodesEqual(child(g.payload, Tag.PGPKey)!, pgp), 'byte for byte');
    const o = await stored(engine, uid);
    t.equal(scalar(attrValue(o, 'Cryptographic Algorithm')), ALG.RSA);
    const d = attrValue(o, 'Digest');
    t.same(d?.type === 'Structure' ? bytes(d, Tag.DigestValue) : undefined, createHash('sha256').update(block).digest(), 'Digest over the key block bytes');
    const bad = await register(engine, '1.4', OT.PGPKey, T.struct(Tag.PGPKey, [pgp.value[1]!]), []);
    t.equal(bad.status, FAILED, 'PGP Key Version is required');
  });

  await t.test('an encrypted PKCS#8 private key is kept as registered', async (t) => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const der = privateKey.export({ type: 'pkcs8', format: 'der', cipher: 'aes-256-cbc', passphrase: 'not known to the server' });
    const obj = T.struct(Tag.PrivateKey, [
      T.struct(Tag.KeyBlock, [
        T.enum(Tag.KeyFormatType, KFT.PKCS_8),
        T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, der)]),
        T.enum(Tag.CryptographicAlgorithm, ALG.EC),
        T.int(Tag.CryptographicLength, 256),
      ]),
    ]);
    const r = await register(engine, '1.4', OT.PrivateKey, obj, [mask(M.Sign)]);
    t.equal(r.status, OK, r.message ?? '');
    const uid = text(r.payload, Tag.UniqueIdentifier)!;
    const g = await get(engine, uid, '1.4');
    t.equal(g.status, OK, g.message ?? '');
    t.same(bytes(struct(keyBlock(g.payload, Tag.PrivateKey), Tag.KeyValue), Tag.KeyMaterial), der, 'returned as registered');
    const conv = await get(engine, uid, '1.4', [T.enum(Tag.KeyFormatType, KFT.TransparentECPrivateKey)]);
    t.equal(conv.reason, reason('KeyFormatTypeNotSupported'), 'it cannot be converted');
    const garbage = T.struct(Tag.PrivateKey, [T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.PKCS_8), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, randomBytes(64))])])]);
    t.equal((await register(engine, '1.4', OT.PrivateKey, garbage, [])).reason, reason('InvalidField'), 'garbage is still refused');
  });

  await t.test('Fresh may be set by the client at registration', async (t) => {
    const key = T.struct(Tag.SymmetricKey, [T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.Raw), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, randomBytes(16))]), T.enum(Tag.CryptographicAlgorithm, ALG.AES), T.int(Tag.CryptographicLength, 128)])]);
    const r = await register(engine, '1.1', OT.SymmetricKey, key, [mask(M.Encrypt), a('Fresh', T.bool(Tag.Fresh, false))]);
    t.equal(r.status, OK, r.message ?? '');
    t.equal(scalar(attrValue(await stored(engine, text(r.payload, Tag.UniqueIdentifier)!), 'Fresh')), false);
  });

  await t.test('Process Start Date and Protect Stop Date on a key pair (CS-AC-M-8)', async (t) => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const obj = T.struct(Tag.PrivateKey, [T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.PKCS_1), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, privateKey.export({ type: 'pkcs1', format: 'der' }))])])]);
    const r = await register(engine, '2.1', OT.PrivateKey, obj, [
      mask(M.Sign),
      activation(nowS() - 3600n),
      a('Process Start Date', T.date(Tag.ProcessStartDate, nowS() + 3600n)),
      a('Protect Stop Date', T.date(Tag.ProtectStopDate, nowS() - 3600n)),
    ]);
    t.equal(r.status, OK, r.message ?? '');
    const uid = text(r.payload, Tag.UniqueIdentifier)!;
    const s = await engine.call(OP.Sign, [T.text(Tag.UniqueIdentifier, uid), T.struct(Tag.CryptographicParameters, [T.enum(Tag.PaddingMethod, Enums.PaddingMethod.PSS), T.enum(Tag.HashingAlgorithm, Enums.HashingAlgorithm.SHA_256)]), T.bytes(Tag.Data, Buffer.from('abc'))], { version: '2.1' });
    t.equal(s.reason, reason('WrongKeyLifecycleState'), 'no signing after the Protect Stop Date');
  });
});

function struct(p: StructureNode | undefined, tag: number): StructureNode | undefined {
  const c = child(p, tag);
  return c?.type === 'Structure' ? c : undefined;
}
