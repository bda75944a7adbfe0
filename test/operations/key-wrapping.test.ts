import { constants, createPrivateKey, generateKeyPairSync, privateDecrypt, randomBytes } from 'node:crypto';
import t from 'tap';
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { KmipError } from '../../src/codec/errors.js';
import { aesKeyUnwrap, aesKeyWrap } from '../../src/operations/key-wrapping.js';
import { Enums, Masks, Tag, type KmipVersion } from '../../src/spec/index.js';
import { decodeTtlv, T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { getBlock } from './_asymmetric.js';
import { ALG, FAILED, KFT, OK, OP, a, activation, child, enumValue, get, keyBlock, keyBytes, mask, nowS, reason, struct, template, text, notFound } from './_keys.js';

const OT = Enums.ObjectType;
const M = Masks.CryptographicUsageMask;
const MODE = Enums.BlockCipherMode;
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function rawKey(key: Buffer, bits = key.length * 8, algorithm: number = ALG.AES): StructureNode {
  return T.struct(Tag.SymmetricKey, [
    T.struct(Tag.KeyBlock, [
      T.enum(Tag.KeyFormatType, KFT.Raw),
      T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, key)]),
      T.enum(Tag.CryptographicAlgorithm, algorithm),
      T.int(Tag.CryptographicLength, bits),
    ]),
  ]);
}

async function register(engine: Engine, version: KmipVersion, objectType: number, object: StructureNode, attrs: KmipAttribute[], identity?: string): Promise<string> {
  const r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, objectType), ...template(version, attrs), object], { version, ...(identity ? { identity } : {}) });
  if (r.status !== OK) throw new Error(`Register failed: ${r.reason} ${r.message}`);
  return text(r.payload, Tag.UniqueIdentifier)!;
}

function params(mode?: number, extra: TtlvNode[] = []): StructureNode {
  return T.struct(Tag.CryptographicParameters, [...(mode !== undefined ? [T.enum(Tag.BlockCipherMode, mode)] : []), ...extra]);
}

function spec(kekUid: string, cp: StructureNode | undefined, encoding?: number, attributeNames: string[] = []): TtlvNode {
  const eki: TtlvNode[] = [T.text(Tag.UniqueIdentifier, kekUid)];
  if (cp) eki.push(cp);
  const c: TtlvNode[] = [T.enum(Tag.WrappingMethod, Enums.WrappingMethod.Encrypt), T.struct(Tag.EncryptionKeyInformation, eki)];
  if (encoding !== undefined) c.push(T.enum(Tag.EncodingOption, encoding));
  for (const n of attributeNames) c.push(T.text(Tag.AttributeName, n));
  return T.struct(Tag.KeyWrappingSpecification, c);
}

const kekAttrs = (m: number = M.WrapKey, mode: number | undefined = MODE.NISTKeyWrap): KmipAttribute[] => [
  mask(m),
  ...(mode !== undefined ? [a('Cryptographic Parameters', params(mode))] : []),
  activation(nowS() - 3600n),
];

function wrappedValue(block: StructureNode | undefined): Buffer | undefined {
  const kv = child(block, Tag.KeyValue);
  if (kv?.type === 'ByteString') return Buffer.from(kv.value);
  if (kv?.type === 'Structure') {
    const m = kv.value.find((c) => c.tag === Tag.KeyMaterial);
    return m?.type === 'ByteString' ? Buffer.from(m.value) : undefined;
  }
  return undefined;
}

function reasonOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof KmipError ? e.reason : 'not a KmipError';
  }
  return undefined;
}

t.test('AES key wrap primitives: RFC 3394 §4 and RFC 5649 §6 known answers', async (t) => {
  // RFC 3394 §4.1: 128-bit key data with a 128-bit KEK.
  const kek128 = hex('000102030405060708090A0B0C0D0E0F');
  t.same(aesKeyWrap(kek128, hex('00112233445566778899AABBCCDDEEFF'), false), hex('1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5'), '4.1');
  // RFC 3394 §4.6: 256-bit key data with a 256-bit KEK.
  const kek256 = hex('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F');
  const data256 = hex('00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F');
  const wrapped256 = hex('28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21');
  t.same(aesKeyWrap(kek256, data256, false), wrapped256, '4.6');
  t.same(aesKeyUnwrap(kek256, wrapped256, false), data256, '4.6 unwrapped');
  // RFC 5649 §6: 192-bit KEK, 20 octets and 7 octets of key data.
  const kek192 = hex('5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8');
  t.same(aesKeyWrap(kek192, hex('c37b7e6492584340 bed1220780894115 5068f738'), true), hex('138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a'), '§6, 20 octets');
  t.same(aesKeyWrap(kek192, hex('466f7250617369'), true), hex('afbeb0f07dfbf541 9200f2ccb50bb24f'), '§6, 7 octets');
  t.same(aesKeyUnwrap(kek192, hex('afbeb0f07dfbf541 9200f2ccb50bb24f'), true), hex('466f7250617369'), '§6 unwrapped');
  const tampered = Buffer.from(wrapped256);
  tampered[3]! ^= 1;
  t.equal(reasonOf(() => aesKeyUnwrap(kek256, tampered, false)), 'CryptographicFailure', 'a tampered wrapping fails the integrity check');
  t.equal(reasonOf(() => aesKeyWrap(kek128, randomBytes(20), false)), 'InvalidField', 'RFC 3394 needs whole 64-bit blocks');
});

t.test('Get with a Key Wrapping Specification', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const KEK = hex('000102030405060708090A0B0C0D0E0F');
  const DEK = hex('00112233445566778899AABBCCDDEEFF');
  const EXPECTED = hex('1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5');

  for (const version of ['1.1', '1.4', '2.0', '2.1'] as KmipVersion[]) {
    await t.test(`KMIP ${version}: NIST key wrap, No Encoding, through Get (RFC 3394 §4.1)`, async (t) => {
      const kek = await register(engine, version, OT.SymmetricKey, rawKey(KEK), kekAttrs());
      const dek = await register(engine, version, OT.SymmetricKey, rawKey(DEK), [mask(M.Encrypt | M.Decrypt)]);
      const g = await get(engine, dek, version, [spec(kek, params(MODE.NISTKeyWrap), Enums.EncodingOption.NoEncoding)]);
      t.equal(g.status, OK, g.message ?? '');
      const block = keyBlock(g.payload);
      t.same(wrappedValue(block), EXPECTED, 'the RFC 3394 wrapping of the key');
      t.equal(child(block, Tag.KeyValue)?.type, 'ByteString', 'the wrapped Key Value is a Byte String (TC-141, TC-SENSITIVE-1-14, TC-WRAP-20)');
      const kwd = struct(block, Tag.KeyWrappingData);
      t.equal(enumValue(kwd, Tag.WrappingMethod), Enums.WrappingMethod.Encrypt);
      t.equal(text(struct(kwd, Tag.EncryptionKeyInformation), Tag.UniqueIdentifier), kek, 'the wrapping key named');
      t.equal(enumValue(kwd, Tag.EncodingOption), Enums.EncodingOption.NoEncoding);
      t.equal(enumValue(block, Tag.CryptographicAlgorithm), ALG.AES);
      const plain = await get(engine, dek, version);
      t.same(keyBytes(plain.payload), DEK, 'a plain Get still returns the key unwrapped');
    });
  }

  await t.test('TTLV encoding (the default) wraps the Key Value structure, attributes included', async (t) => {
    const kek = await register(engine, '2.1', OT.SymmetricKey, rawKey(randomBytes(32)), kekAttrs(M.WrapKey, MODE.AESKeyWrapPadding));
    const key = randomBytes(32);
    const dek = await register(engine, '2.1', OT.SymmetricKey, rawKey(key), [mask(M.Encrypt)]);
    const kekBytes = keyBytes((await get(engine, kek, '2.1')).payload)!;
    const g = await get(engine, dek, '2.1', [spec(kek, undefined, undefined, ['Cryptographic Usage Mask'])]);
    t.equal(g.status, OK, g.message ?? '');
    const wrapped = wrappedValue(keyBlock(g.payload))!;
    const kv = decodeTtlv(aesKeyUnwrap(kekBytes, wrapped, true)) as StructureNode;
    t.equal(kv.tag, Tag.KeyValue);
    t.same(Buffer.from((kv.value.find((c) => c.tag === Tag.KeyMaterial) as { value: Uint8Array }).value), key, 'the key inside');
    const attrs = kv.value.find((c) => c.tag === Tag.Attributes) as StructureNode | undefined;
    t.equal((attrs?.value.find((c) => c.tag === Tag.CryptographicUsageMask) as { value: number } | undefined)?.value, M.Encrypt, 'the named attribute inside');
    t.equal(enumValue(struct(keyBlock(g.payload), Tag.KeyWrappingData), Tag.EncodingOption), undefined, 'no Encoding Option echoed when none was asked');
  });

  await t.test('RSA-OAEP under a public key; decrypted independently with privateDecrypt', async (t) => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pubDer = publicKey.export({ type: 'pkcs1', format: 'der' });
    const pubObj = T.struct(Tag.PublicKey, [
      T.struct(Tag.KeyBlock, [
        T.enum(Tag.KeyFormatType, KFT.PKCS_1),
        T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, pubDer)]),
        T.enum(Tag.CryptographicAlgorithm, ALG.RSA),
        T.int(Tag.CryptographicLength, 2048),
      ]),
    ]);
    const pub = await register(engine, '1.4', OT.PublicKey, pubObj, [mask(M.WrapKey), activation(nowS() - 60n)]);
    const key = randomBytes(32);
    const dek = await register(engine, '1.4', OT.SymmetricKey, rawKey(key), [mask(M.Encrypt)]);
    const cp = T.struct(Tag.CryptographicParameters, [T.enum(Tag.PaddingMethod, Enums.PaddingMethod.OAEP), T.enum(Tag.HashingAlgorithm, Enums.HashingAlgorithm.SHA_256)]);
    const g = await get(engine, dek, '1.4', [spec(pub, cp, Enums.EncodingOption.NoEncoding)]);
    t.equal(g.status, OK, g.message ?? '');
    const wrapped = wrappedValue(keyBlock(g.payload))!;
    t.equal(wrapped.length, 256);
    const plain = privateDecrypt({ key: createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' })), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, wrapped);
    t.same(plain, key, 'RSA-OAEP SHA-256 of the key bytes');
  });

  await t.test('a private key wrapped with TTLV encoding', async (t) => {
    const r = await engine.call(OP.CreateKeyPair, [
      T.struct(Tag.CommonTemplateAttribute, [
        T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Algorithm'), T.enum(Tag.AttributeValue, ALG.RSA)]),
        T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Length'), T.int(Tag.AttributeValue, 2048)]),
      ]),
      T.struct(Tag.PrivateKeyTemplateAttribute, [T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Usage Mask'), T.int(Tag.AttributeValue, M.Sign)])]),
      T.struct(Tag.PublicKeyTemplateAttribute, [T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Usage Mask'), T.int(Tag.AttributeValue, M.Verify)])]),
    ], { version: '1.4' });
    t.equal(r.status, OK, r.message ?? '');
    const priv = text(r.payload, Tag.PrivateKeyUniqueIdentifier)!;
    const kekKey = randomBytes(16);
    const kek = await register(engine, '1.4', OT.SymmetricKey, rawKey(kekKey), kekAttrs(M.WrapKey, MODE.AESKeyWrapPadding));
    const g = await get(engine, priv, '1.4', [spec(kek, undefined)]);
    t.equal(g.status, OK, g.message ?? '');
    const block = getBlock(g.payload)!;
    const kv = decodeTtlv(aesKeyUnwrap(kekKey, wrappedValue(block)!, true)) as StructureNode;
    const material = kv.value.find((c) => c.tag === Tag.KeyMaterial);
    t.equal(material?.type, 'ByteString');
    const der = Buffer.from((material as { value: Uint8Array }).value);
    t.equal(createPrivateKey({ key: der, format: 'der', type: enumValue(block, Tag.KeyFormatType) === KFT.PKCS_8 ? 'pkcs8' : 'pkcs1' }).asymmetricKeyType, 'rsa', 'a usable RSA private key inside');
  });

  await t.test('refusals', async (t) => {
    const kek = await register(engine, '2.1', OT.SymmetricKey, rawKey(randomBytes(16)), kekAttrs());
    const dek = await register(engine, '2.1', OT.SymmetricKey, rawKey(randomBytes(16)), [mask(M.Encrypt)]);
    const noWrapMask = await register(engine, '2.1', OT.SymmetricKey, rawKey(randomBytes(16)), kekAttrs(M.Encrypt));
    let g = await get(engine, dek, '2.1', [spec(noWrapMask, undefined)]);
    t.equal(g.status, FAILED);
    t.equal(g.reason, reason('IncompatibleCryptographicUsageMask'), 'a key without Wrap Key cannot wrap (2.x)');
    const noWrapMask1 = await register(engine, '1.4', OT.SymmetricKey, rawKey(randomBytes(16)), kekAttrs(M.Encrypt));
    g = await get(engine, dek, '1.4', [spec(noWrapMask1, undefined)]);
    t.equal(g.reason, reason('PermissionDenied'), 'a key without Wrap Key cannot wrap (1.x)');
    const preActive = await register(engine, '2.1', OT.SymmetricKey, rawKey(randomBytes(16)), [mask(M.WrapKey)]);
    g = await get(engine, dek, '2.1', [spec(preActive, undefined)]);
    t.equal(g.reason, reason('WrongKeyLifecycleState'), 'a Pre-Active key cannot wrap');
    g = await get(engine, dek, '2.1', [spec('no-such-key', undefined)]);
    t.equal(g.reason, notFound('2.1'), 'an unknown wrapping key');
    g = await get(engine, dek, '2.1', [spec(kek, params(MODE.CBC))]);
    t.equal(g.reason, reason('UnsupportedCryptographicParameters'), 'AES wrapping in another mode');
    g = await get(engine, dek, '2.1', [spec(kek, undefined, Enums.EncodingOption.NoEncoding, ['Name'])]);
    t.equal(g.reason, reason('EncodingOptionError'), 'No Encoding with attributes');
    g = await get(engine, dek, '2.1', [T.struct(Tag.KeyWrappingSpecification, [T.enum(Tag.WrappingMethod, Enums.WrappingMethod.MACSign), T.struct(Tag.EncryptionKeyInformation, [T.text(Tag.UniqueIdentifier, kek)])])]);
    t.equal(g.reason, reason('FeatureNotSupported'), 'Wrapping Method MAC/sign');
    const otherOwner = await register(engine, '2.1', OT.SymmetricKey, rawKey(randomBytes(16)), kekAttrs(), 'bob');
    g = await get(engine, dek, '2.1', [spec(otherOwner, undefined)]);
    t.equal(g.reason, notFound('2.1'), 'another identity\'s key cannot wrap for this client');
  });

  await t.test('a sensitive key is returned wrapped, never in plaintext', async (t) => {
    const kek = await register(engine, '1.4', OT.SymmetricKey, rawKey(randomBytes(16)), kekAttrs());
    const dek = await register(engine, '1.4', OT.SymmetricKey, rawKey(randomBytes(16)), [mask(M.Encrypt), a('Sensitive', T.bool(Tag.Sensitive, true))]);
    t.equal((await get(engine, dek, '1.4')).reason, reason('Sensitive'));
    t.equal((await get(engine, dek, '1.4', [spec(kek, undefined)])).status, OK);
  });
});

t.test('Register of a wrapped key, and Get in Not Wrapped form', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const KEK = hex('000102030405060708090A0B0C0D0E0F');
  const DEK = hex('00112233445566778899AABBCCDDEEFF');
  const WRAPPED = hex('1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5');

  function wrappedKey(kekUid: string): StructureNode {
    return T.struct(Tag.SymmetricKey, [
      T.struct(Tag.KeyBlock, [
        T.enum(Tag.KeyFormatType, KFT.Raw),
        T.bytes(Tag.KeyValue, WRAPPED),
        T.enum(Tag.CryptographicAlgorithm, ALG.AES),
        T.int(Tag.CryptographicLength, 128),
        T.struct(Tag.KeyWrappingData, [
          T.enum(Tag.WrappingMethod, Enums.WrappingMethod.Encrypt),
          T.struct(Tag.EncryptionKeyInformation, [T.text(Tag.UniqueIdentifier, kekUid), params(MODE.NISTKeyWrap)]),
          T.enum(Tag.EncodingOption, Enums.EncodingOption.NoEncoding),
        ]),
      ]),
    ]);
  }

  const kek = await register(engine, '1.4', OT.SymmetricKey, rawKey(KEK), kekAttrs());
  const kek2 = await register(engine, '1.4', OT.SymmetricKey, rawKey(randomBytes(16)), kekAttrs());
  const dek = await register(engine, '1.4', OT.SymmetricKey, wrappedKey(kek), [mask(M.Encrypt | M.Decrypt)]);

  await t.test('as registered by default', async (t) => {
    const g = await get(engine, dek, '1.4');
    t.equal(g.status, OK);
    t.same(wrappedValue(keyBlock(g.payload)), WRAPPED);
    t.ok(struct(keyBlock(g.payload), Tag.KeyWrappingData), 'still wrapped');
  });

  await t.test('Key Wrap Type Not Wrapped unwraps with the server-held KEK', async (t) => {
    const g = await get(engine, dek, '1.4', [T.enum(Tag.KeyFormatType, KFT.Raw), T.enum(Tag.KeyWrapType, Enums.KeyWrapType.NotWrapped)]);
    t.equal(g.status, OK, g.message ?? '');
    t.same(keyBytes(g.payload), DEK, 'the RFC 3394 §4.1 key');
    t.notOk(struct(keyBlock(g.payload), Tag.KeyWrappingData));
  });

  await t.test('re-wrapped under another key on request', async (t) => {
    const g = await get(engine, dek, '1.4', [spec(kek2, params(MODE.NISTKeyWrap), Enums.EncodingOption.NoEncoding)]);
    t.equal(g.status, OK, g.message ?? '');
    const kek2Bytes = keyBytes((await get(engine, kek2, '1.4')).payload)!;
    t.same(aesKeyUnwrap(kek2Bytes, wrappedValue(keyBlock(g.payload))!, false), DEK);
    t.equal(text(struct(struct(keyBlock(g.payload), Tag.KeyWrappingData), Tag.EncryptionKeyInformation), Tag.UniqueIdentifier), kek2);
  });

  await t.test('re-wrapped in the form it was registered in (Key Material of a Key Value structure, TC-WRAP-3-14)', async (t) => {
    const asMaterial = wrappedKey(kek);
    const block = asMaterial.value[0] as StructureNode;
    block.value[1] = T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, WRAPPED)]);
    const uid = await register(engine, '1.4', OT.SymmetricKey, asMaterial, [mask(M.Encrypt | M.Decrypt)]);
    const g = await get(engine, uid, '1.4', [spec(kek2, params(MODE.NISTKeyWrap), Enums.EncodingOption.NoEncoding)]);
    t.equal(g.status, OK, g.message ?? '');
    const kv = child(keyBlock(g.payload), Tag.KeyValue);
    t.equal(kv?.type, 'Structure', 'the Key Value structure, as registered');
    const kek2Bytes = keyBytes((await get(engine, kek2, '1.4')).payload)!;
    t.same(aesKeyUnwrap(kek2Bytes, wrappedValue(keyBlock(g.payload))!, false), DEK, 'the key, re-wrapped under the other KEK');
    const g2 = await get(engine, dek, '1.4', [spec(kek2, params(MODE.NISTKeyWrap), Enums.EncodingOption.NoEncoding)]);
    t.equal(child(keyBlock(g2.payload), Tag.KeyValue)?.type, 'ByteString', 'registered as a Key Value Byte String: re-wrapped as one');
  });

  await t.test('a wrapped key whose KEK the server does not hold', async (t) => {
    const orphan = await register(engine, '1.4', OT.SymmetricKey, wrappedKey('somewhere-else'), [mask(M.Encrypt)]);
    const g = await get(engine, orphan, '1.4', [T.enum(Tag.KeyWrapType, Enums.KeyWrapType.NotWrapped)]);
    t.equal(g.status, FAILED);
    t.equal(g.reason, reason('ItemNotFound'));
    t.equal((await get(engine, orphan, '1.4', [T.enum(Tag.KeyWrapType, Enums.KeyWrapType.AsRegistered)])).status, OK, 'As Registered still works');
  });

  await t.test('a corrupted wrapped key fails to unwrap', async (t) => {
    const bad = wrappedKey(kek);
    const kv = (bad.value[0] as StructureNode).value[1] as { value: Uint8Array };
    kv.value = Buffer.from(WRAPPED);
    kv.value[5]! ^= 0xff;
    const uid = await register(engine, '1.4', OT.SymmetricKey, bad, [mask(M.Encrypt)]);
    const g = await get(engine, uid, '1.4', [T.enum(Tag.KeyWrapType, Enums.KeyWrapType.NotWrapped)]);
    t.equal(g.reason, reason('CryptographicFailure'));
  });
});
