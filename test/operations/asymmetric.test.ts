import { createHash, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Masks, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, encodeTtlv, nodesEqual, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { batchItems, itemResult, startEngine, type Engine } from '../helpers/engine.js';
import { need, vectorsDir } from '../helpers/requirements.js';
import { ALG, FAILED, OK, OP, ST, a, activation, alg, attrValue, attrValues, bytes, child, enumValue, get, len, nameA, nowS, reason, scalar, stored, struct, template, text, uidNode, notFound } from './_keys.js';
import { KFT, LT, OT, RC, createPair, curveParams, formatOf, getBlock, keyFromBlock, linksOf, pairPayload, usage } from './_asymmetric.js';

const M = Masks.CryptographicUsageMask;
const DATA = Buffer.from('kmipd asymmetric round trip');

function digestOf(o: { attributes: KmipAttribute[] }): { value?: Buffer; format?: number } {
  const d = o.attributes.find((x) => x.name === 'Digest')?.value;
  if (d?.type !== 'Structure') return {};
  const r: { value?: Buffer; format?: number } = {};
  const v = bytes(d, Tag.DigestValue);
  if (v) r.value = v;
  const f = enumValue(d, Tag.KeyFormatType);
  if (f !== undefined) r.format = f;
  return r;
}

async function getKey(engine: Engine, uid: string, version: KmipVersion, format?: number, extra: TtlvNode[] = []): Promise<{ block: StructureNode; payload: StructureNode }> {
  const r = await get(engine, uid, version, [...(format === undefined ? [] : [T.enum(Tag.KeyFormatType, format)]), ...extra]);
  if (r.status !== OK) throw new Error(`Get failed: ${r.reason} ${r.message}`);
  return { block: getBlock(r.payload)!, payload: r.payload! };
}

/** Signs with every private form and verifies with every public form. */
function crossCheck(t: Test, privs: [string, KeyObject][], pubs: [string, KeyObject][], hash: string | null = 'sha256'): void {
  for (const [pn, pk] of privs) {
    const sig = sign(hash, DATA, pk);
    for (const [qn, qk] of pubs) t.ok(verify(hash, DATA, qk, sig), `signed with ${pn}, verified with ${qn}`);
  }
}

function registerPayload(version: KmipVersion, objectType: number, object: StructureNode, attrs: KmipAttribute[] = []): TtlvNode[] {
  return [T.enum(Tag.ObjectType, objectType), ...template(version, attrs), object];
}

function keyObject(objectType: number, format: number, material: TtlvNode, algorithm?: number, length?: number): StructureNode {
  const block: TtlvNode[] = [T.enum(Tag.KeyFormatType, format), T.struct(Tag.KeyValue, [material])];
  if (algorithm !== undefined) block.push(T.enum(Tag.CryptographicAlgorithm, algorithm));
  if (length !== undefined) block.push(T.int(Tag.CryptographicLength, length));
  return T.struct(objectType === OT.PrivateKey ? Tag.PrivateKey : Tag.PublicKey, [T.struct(Tag.KeyBlock, block)]);
}

async function register(engine: Engine, version: KmipVersion, objectType: number, object: StructureNode, attrs: KmipAttribute[] = []): Promise<string> {
  const r = await engine.call(OP.Register, registerPayload(version, objectType, object, attrs), { version });
  if (r.status !== OK) throw new Error(`Register failed: ${r.reason} ${r.message}`);
  return text(r.payload, Tag.UniqueIdentifier)!;
}

const big = (tag: number, b: Buffer) => T.big(tag, BigInt('0x' + b.toString('hex')));

t.test('Create Key Pair', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  for (const version of ['1.4', '2.1'] as const) {
    await t.test(`KMIP ${version}: RSA 2048 as AKLC-M-1 sends it`, async (t) => {
      const pair = await createPair(
        engine,
        version,
        [alg(ALG.RSA), len(2048)],
        [nameA(`AKLC-${version}-private`), usage(M.Sign)],
        [nameA(`AKLC-${version}-public`), usage(M.Verify)],
      );
      t.not(pair.priv, pair.pub);
      const priv = await stored(engine, pair.priv);
      const pub = await stored(engine, pair.pub);
      t.equal(priv.objectType, OT.PrivateKey);
      t.equal(pub.objectType, OT.PublicKey);
      t.equal(priv.state, ST.PreActive);
      t.equal(pub.state, ST.PreActive);
      t.same(linksOf(attrValues(priv, 'Link'), LT.PublicKeyLink), [pair.pub], 'private -> Public Key Link');
      t.same(linksOf(attrValues(pub, 'Link'), LT.PrivateKeyLink), [pair.priv], 'public -> Private Key Link');
      t.equal(scalar(attrValue(priv, 'Cryptographic Usage Mask')), M.Sign, 'private key: its own usage mask');
      t.equal(scalar(attrValue(pub, 'Cryptographic Usage Mask')), M.Verify, 'public key: its own usage mask');
      for (const o of [priv, pub]) {
        t.equal(scalar(attrValue(o, 'Cryptographic Algorithm')), ALG.RSA);
        t.equal(scalar(attrValue(o, 'Cryptographic Length')), 2048);
        t.ok(attrValue(o, 'Original Creation Date'), 'Original Creation Date');
        t.ok(attrValue(o, 'Random Number Generator'), 'Random Number Generator');
        t.equal(scalar(attrValue(o, 'Fresh')), true);
      }
      t.equal(attrValues(priv, 'Name').length, 1, 'names are per half');
      // Default format PKCS#1 for both halves, the digest over it (AKLC-M-1's Digest: PKCS_1).
      for (const [uid, o] of [
        [pair.priv, priv],
        [pair.pub, pub],
      ] as const) {
        const { block } = await getKey(engine, uid, version);
        t.equal(formatOf(block), KFT.PKCS_1, 'PKCS#1 by default');
        t.equal(enumValue(block, Tag.CryptographicAlgorithm), ALG.RSA);
        t.equal(scalar(child(block, Tag.CryptographicLength)), 2048);
        const km = child(struct(block, Tag.KeyValue), Tag.KeyMaterial);
        const d = digestOf(o);
        t.equal(d.format, KFT.PKCS_1, 'Digest over PKCS#1');
        t.same(d.value, createHash('sha256').update(km?.type === 'ByteString' ? km.value : Buffer.alloc(0)).digest(), 'Digest value');
      }
      const k = keyFromBlock((await getKey(engine, pair.priv, version)).block, true);
      t.equal(k.asymmetricKeyDetails?.modulusLength, 2048);
      t.equal(k.asymmetricKeyDetails?.publicExponent, 65537n, 'public exponent 65537');
    });

    await t.test(`KMIP ${version}: EC P-256`, async (t) => {
      const common = version === '2.1' ? [alg(ALG.EC), curveParams(RC.P_256)] : [alg(ALG.ECDSA), len(256)];
      const pair = await createPair(engine, version, common, [usage(M.Sign)], [usage(M.Verify)]);
      const priv = await stored(engine, pair.priv);
      const pub = await stored(engine, pair.pub);
      t.same(linksOf(attrValues(priv, 'Link'), LT.PublicKeyLink), [pair.pub]);
      t.same(linksOf(attrValues(pub, 'Link'), LT.PrivateKeyLink), [pair.priv]);
      t.equal(scalar(attrValue(priv, 'Cryptographic Algorithm')), version === '2.1' ? ALG.EC : ALG.ECDSA, 'algorithm as named');
      t.equal(scalar(attrValue(priv, 'Cryptographic Length')), 256);
      const dp = attrValue(pub, 'Cryptographic Domain Parameters');
      t.equal(dp?.type === 'Structure' ? enumValue(dp, Tag.RecommendedCurve) : undefined, RC.P_256, 'curve recorded');
      const pb = (await getKey(engine, pair.priv, version)).block;
      const qb = (await getKey(engine, pair.pub, version)).block;
      t.equal(formatOf(pb), KFT.ECPrivateKey, 'EC private: SEC1 by default');
      t.equal(formatOf(qb), KFT.X_509, 'EC public: SubjectPublicKeyInfo by default');
      t.equal(digestOf(priv).format, KFT.ECPrivateKey);
      const k = keyFromBlock(pb, true);
      t.equal(k.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      crossCheck(t, [['SEC1', k]], [['X.509', keyFromBlock(qb, false)]]);
    });
  }

  await t.test('the ID Placeholder is the private key (1.4 §4.2)', async (t) => {
    const resp = await engine.request([
      { operation: OP.CreateKeyPair, payload: pairPayload('1.4', [alg(ALG.RSA), len(1024)], [], []) },
      { operation: OP.Get, payload: [] },
      { operation: OP.Activate, payload: [] },
    ]);
    const items = batchItems(resp).map(itemResult);
    t.same(items.map((i) => i.status), [OK, OK, OK]);
    const priv = text(items[0]!.payload, Tag.PrivateKeyUniqueIdentifier);
    t.equal(enumValue(items[1]!.payload, Tag.ObjectType), OT.PrivateKey, 'Get without a uid returns the private key');
    t.equal(text(items[1]!.payload, Tag.UniqueIdentifier), priv);
    t.equal((await stored(engine, priv!)).state, ST.Active, 'Activate without a uid activated it');
  });

  await t.test('EC curves: P-384, P-521 by curve or length; SECP256K1 (TC-DERIVEKEY-6 shape)', async (t) => {
    const cases: [KmipAttribute[], string][] = [
      [[alg(ALG.EC), curveParams(RC.P_384)], 'secp384r1'],
      [[alg(ALG.EC), len(521)], 'secp521r1'],
      [[alg(ALG.EC), a('Cryptographic Domain Parameters', T.struct(Tag.CryptographicDomainParameters, [T.int(Tag.Qlength, 256), T.enum(Tag.RecommendedCurve, RC.SECP256K1)]))], 'secp256k1'],
    ];
    for (const [common, curve] of cases) {
      const pair = await createPair(engine, '2.1', common);
      const k = keyFromBlock((await getKey(engine, pair.priv, '2.1')).block, true);
      t.equal(k.asymmetricKeyDetails?.namedCurve, curve, curve);
    }
  });

  await t.test('attributes: the half wins over Common; Common multi-valued ones go to both', async (t) => {
    const pair = await createPair(engine, '2.1', [alg(ALG.RSA), len(1024), usage(M.Sign | M.Verify), a('Object Group', T.text(Tag.ObjectGroup, 'g'))], [usage(M.Sign)], []);
    const priv = await stored(engine, pair.priv);
    const pub = await stored(engine, pair.pub);
    t.equal(scalar(attrValue(priv, 'Cryptographic Usage Mask')), M.Sign, 'private: its own');
    t.equal(scalar(attrValue(pub, 'Cryptographic Usage Mask')), M.Sign | M.Verify, 'public: Common');
    t.equal(scalar(attrValue(priv, 'Object Group')), 'g');
    t.equal(scalar(attrValue(pub, 'Object Group')), 'g');
  });

  await t.test('an Activation Date in the past makes both halves Active', async (t) => {
    const pair = await createPair(engine, '1.4', [alg(ALG.RSA), len(1024), activation(nowS() - 60n)]);
    t.equal((await stored(engine, pair.priv)).state, ST.Active);
    t.equal((await stored(engine, pair.pub)).state, ST.Active);
  });

  await t.test('bad requests', async (t) => {
    const cases: [string, KmipAttribute[], KmipAttribute[], KmipAttribute[], string, KmipVersion][] = [
      ['no algorithm', [len(2048)], [], [], 'MissingData', '2.1'],
      ['RSA without length', [alg(ALG.RSA)], [], [], 'MissingData', '2.1'],
      ['RSA 512', [alg(ALG.RSA), len(512)], [], [], 'InvalidField', '2.1'],
      ['RSA 8192', [alg(ALG.RSA), len(8192)], [], [], 'InvalidField', '2.1'],
      ['AES is no key pair', [alg(ALG.AES), len(256)], [], [], 'FeatureNotSupported', '2.1'],
      ['EC without curve or length', [alg(ALG.EC)], [], [], 'MissingData', '2.1'],
      ['EC curve and length disagree', [alg(ALG.EC), curveParams(RC.P_256), len(384)], [], [], 'InvalidField', '2.1'],
      ['EC curve kmipd does not generate', [alg(ALG.EC), curveParams(RC.B_163)], [], [], 'FeatureNotSupported', '2.1'],
      ['halves disagree on the algorithm', [len(2048)], [alg(ALG.RSA)], [alg(ALG.EC)], 'InvalidField', '2.1'],
      ['server-set attribute', [alg(ALG.RSA), len(1024), a('State', T.enum(Tag.State, ST.Active))], [], [], 'ReadOnlyAttribute', '2.1'],
    ];
    for (const [what, common, priv, pub, why, version] of cases) {
      const r = await engine.call(OP.CreateKeyPair, pairPayload(version, common, priv, pub), { version });
      t.equal(r.status, FAILED, what);
      t.equal(r.reason, reason(why), `${what}: ${why}`);
    }
  });
});

t.test('Get: key formats and conversions', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  for (const version of ['1.4', '2.1'] as const) {
    await t.test(`KMIP ${version}: RSA in every format, signatures across all of them`, async (t) => {
      const pair = await createPair(engine, version, [alg(ALG.RSA), len(2048)]);
      const privs: [string, KeyObject][] = [];
      for (const f of [KFT.PKCS_1, KFT.PKCS_8, KFT.TransparentRSAPrivateKey]) {
        const { block } = await getKey(engine, pair.priv, version, f);
        t.equal(formatOf(block), f);
        t.equal(enumValue(block, Tag.CryptographicAlgorithm), ALG.RSA);
        privs.push([`private ${f}`, keyFromBlock(block, true)]);
      }
      const pubs: [string, KeyObject][] = [];
      for (const f of [KFT.PKCS_1, KFT.X_509, KFT.TransparentRSAPublicKey]) {
        const { block } = await getKey(engine, pair.pub, version, f);
        t.equal(formatOf(block), f);
        pubs.push([`public ${f}`, keyFromBlock(block, false)]);
      }
      crossCheck(t, privs, pubs);
      for (const [n, k] of privs) t.same(k.export({ format: 'jwk' }), privs[0]![1].export({ format: 'jwk' }), `${n}: the same key`);
      const bad = await get(engine, pair.priv, version, [T.enum(Tag.KeyFormatType, KFT.X_509)]);
      t.equal(bad.reason, reason('KeyFormatTypeNotSupported'), 'X.509 is no private key format');
      const bad2 = await get(engine, pair.pub, version, [T.enum(Tag.KeyFormatType, KFT.Raw)]);
      t.equal(bad2.reason, reason('KeyFormatTypeNotSupported'), 'no Raw RSA public key');
      const bad3 = await get(engine, pair.pub, version, [T.enum(Tag.KeyCompressionType, Enums.KeyCompressionType.ECPublicKeyTypeUncompressed)]);
      t.equal(bad3.reason, reason('KeyCompressionTypeNotSupported'), 'compression applies to EC keys only');
    });

    await t.test(`KMIP ${version}: EC P-256 in every format`, async (t) => {
      const pair = await createPair(engine, version, [alg(ALG.EC), curveParams(RC.P_256)]);
      const privFormats = [KFT.ECPrivateKey, KFT.PKCS_8, version === '2.1' ? KFT.TransparentECPrivateKey : KFT.TransparentECDSAPrivateKey];
      const privs: [string, KeyObject][] = [];
      for (const f of privFormats) {
        const { block } = await getKey(engine, pair.priv, version, f);
        t.equal(formatOf(block), f);
        privs.push([`private ${f}`, keyFromBlock(block, true)]);
      }
      const pubFormats = [KFT.X_509, version === '2.1' ? KFT.TransparentECPublicKey : KFT.TransparentECDSAPublicKey];
      const pubs: [string, KeyObject][] = [];
      for (const f of pubFormats) {
        const { block } = await getKey(engine, pair.pub, version, f);
        t.equal(formatOf(block), f);
        pubs.push([`public ${f}`, keyFromBlock(block, false)]);
      }
      // Compressed Q String on request.
      const { block } = await getKey(engine, pair.pub, version, pubFormats[1], [T.enum(Tag.KeyCompressionType, Enums.KeyCompressionType.ECPublicKeyTypeX9_62CompressedPrime)]);
      const q = child(struct(struct(block, Tag.KeyValue), Tag.KeyMaterial), Tag.QString);
      t.equal(q?.type === 'ByteString' ? q.value.length : 0, 33, 'compressed point');
      pubs.push(['public compressed', keyFromBlock(block, false)]);
      crossCheck(t, privs, pubs);
      const bad = await get(engine, pair.pub, version, [T.enum(Tag.KeyFormatType, KFT.PKCS_1)]);
      t.equal(bad.reason, reason('KeyFormatTypeNotSupported'), 'PKCS#1 is for RSA keys');
      const bad2 = await get(engine, pair.pub, version, [T.enum(Tag.KeyFormatType, KFT.X_509), T.enum(Tag.KeyCompressionType, Enums.KeyCompressionType.ECPublicKeyTypeX9_62CompressedPrime)]);
      t.equal(bad2.reason, reason('KeyCompressionTypeNotSupported'), 'compressed X.509 not produced');
    });
  }
});

t.test('Register Private Key / Public Key', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  await t.test('every format comes back byte for byte and converts to the others', async (t) => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ec = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const rj = rsa.privateKey.export({ format: 'jwk' });
    const ej = ec.privateKey.export({ format: 'jwk' });
    const b = (s: string | undefined) => Buffer.from(s ?? '', 'base64url');
    const cases: [string, number, number, TtlvNode, number, number][] = [
      ['RSA PKCS#1 private', OT.PrivateKey, KFT.PKCS_1, T.bytes(Tag.KeyMaterial, rsa.privateKey.export({ type: 'pkcs1', format: 'der' })), ALG.RSA, 2048],
      ['RSA PKCS#8 private', OT.PrivateKey, KFT.PKCS_8, T.bytes(Tag.KeyMaterial, rsa.privateKey.export({ type: 'pkcs8', format: 'der' })), ALG.RSA, 2048],
      [
        'RSA transparent private',
        OT.PrivateKey,
        KFT.TransparentRSAPrivateKey,
        T.struct(Tag.KeyMaterial, [
          big(Tag.Modulus, b(rj.n)),
          big(Tag.PrivateExponent, b(rj.d)),
          big(Tag.PublicExponent, b(rj.e)),
          big(Tag.P, b(rj.p)),
          big(Tag.Q, b(rj.q)),
          big(Tag.PrimeExponentP, b(rj.dp)),
          big(Tag.PrimeExponentQ, b(rj.dq)),
          big(Tag.CRTCoefficient, b(rj.qi)),
        ]),
        ALG.RSA,
        2048,
      ],
      ['RSA PKCS#1 public', OT.PublicKey, KFT.PKCS_1, T.bytes(Tag.KeyMaterial, rsa.publicKey.export({ type: 'pkcs1', format: 'der' })), ALG.RSA, 2048],
      ['RSA X.509 public', OT.PublicKey, KFT.X_509, T.bytes(Tag.KeyMaterial, rsa.publicKey.export({ type: 'spki', format: 'der' })), ALG.RSA, 2048],
      ['RSA transparent public', OT.PublicKey, KFT.TransparentRSAPublicKey, T.struct(Tag.KeyMaterial, [big(Tag.Modulus, b(rj.n)), big(Tag.PublicExponent, b(rj.e))]), ALG.RSA, 2048],
      ['EC SEC1 private', OT.PrivateKey, KFT.ECPrivateKey, T.bytes(Tag.KeyMaterial, ec.privateKey.export({ type: 'sec1', format: 'der' })), ALG.EC, 384],
      ['EC PKCS#8 private', OT.PrivateKey, KFT.PKCS_8, T.bytes(Tag.KeyMaterial, ec.privateKey.export({ type: 'pkcs8', format: 'der' })), ALG.EC, 384],
      ['EC transparent private', OT.PrivateKey, KFT.TransparentECPrivateKey, T.struct(Tag.KeyMaterial, [T.enum(Tag.RecommendedCurve, RC.P_384), big(Tag.D, b(ej.d))]), ALG.EC, 384],
      ['EC X.509 public', OT.PublicKey, KFT.X_509, T.bytes(Tag.KeyMaterial, ec.publicKey.export({ type: 'spki', format: 'der' })), ALG.EC, 384],
      [
        'EC transparent public',
        OT.PublicKey,
        KFT.TransparentECPublicKey,
        T.struct(Tag.KeyMaterial, [T.enum(Tag.RecommendedCurve, RC.P_384), T.bytes(Tag.QString, Buffer.concat([Buffer.from([4]), b(ej.x), b(ej.y)]))]),
        ALG.EC,
        384,
      ],
    ];
    for (const [what, objectType, format, material, algorithm, length] of cases) {
      const obj = keyObject(objectType, format, material, algorithm, length);
      const uid = await register(engine, '2.1', objectType, obj, [usage(objectType === OT.PrivateKey ? M.Sign : M.Verify)]);
      const g = await get(engine, uid, '2.1');
      t.ok(nodesEqual(child(g.payload, objectType === OT.PrivateKey ? Tag.PrivateKey : Tag.PublicKey)!, obj), `${what}: as registered`);
      const o = await stored(engine, uid);
      t.equal(scalar(attrValue(o, 'Cryptographic Algorithm')), algorithm, `${what}: algorithm`);
      t.equal(scalar(attrValue(o, 'Cryptographic Length')), length, `${what}: length`);
      const d = digestOf(o);
      t.equal(d.format, format, `${what}: digest format`);
      t.same(d.value, createHash('sha256').update(material.type === 'ByteString' ? material.value : encodeTtlv(material)).digest(), `${what}: digest value`);
      // Converted to the default format of its kind, the key still works.
      const isPrivate = objectType === OT.PrivateKey;
      const other = algorithm === ALG.RSA ? (isPrivate ? KFT.PKCS_8 : KFT.X_509) : isPrivate ? KFT.PKCS_8 : KFT.TransparentECPublicKey;
      const k = keyFromBlock((await getKey(engine, uid, '2.1', other)).block, isPrivate);
      const pair = algorithm === ALG.RSA ? rsa : ec;
      if (isPrivate) t.ok(verify('sha256', DATA, pair.publicKey, sign('sha256', DATA, k)), `${what}: converted private key signs`);
      else t.ok(verify('sha256', DATA, k, sign('sha256', DATA, pair.privateKey)), `${what}: converted public key verifies`);
    }
  });

  await t.test('a transparent RSA private key with n, e, d only: the primes are recovered', async (t) => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const j = rsa.privateKey.export({ format: 'jwk' });
    const b = (s: string | undefined) => Buffer.from(s ?? '', 'base64url');
    const obj = keyObject(OT.PrivateKey, KFT.TransparentRSAPrivateKey, T.struct(Tag.KeyMaterial, [big(Tag.Modulus, b(j.n)), big(Tag.PrivateExponent, b(j.d)), big(Tag.PublicExponent, b(j.e))]));
    const uid = await register(engine, '1.4', OT.PrivateKey, obj);
    const k = keyFromBlock((await getKey(engine, uid, '1.4', KFT.PKCS_1)).block, true);
    t.ok(verify('sha256', DATA, rsa.publicKey, sign('sha256', DATA, k)), 'the rebuilt key signs');
  });

  await t.test('1.x names for EC keys (ECDSA) are kept; lengths are checked', async (t) => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const der = T.bytes(Tag.KeyMaterial, ec.privateKey.export({ type: 'sec1', format: 'der' }));
    const uid = await register(engine, '1.4', OT.PrivateKey, keyObject(OT.PrivateKey, KFT.ECPrivateKey, der, ALG.ECDSA, 256));
    t.equal(scalar(attrValue(await stored(engine, uid), 'Cryptographic Algorithm')), ALG.ECDSA);
    const cases: [string, StructureNode, KmipAttribute[], string][] = [
      ['length differs', keyObject(OT.PrivateKey, KFT.ECPrivateKey, der, ALG.EC, 384), [], 'InvalidField'],
      ['algorithm differs', keyObject(OT.PrivateKey, KFT.ECPrivateKey, der, ALG.RSA), [], 'InvalidField'],
      ['attribute disagrees with the key block', keyObject(OT.PrivateKey, KFT.ECPrivateKey, der, ALG.EC), [alg(ALG.RSA)], 'InvalidField'],
      ['not a key', keyObject(OT.PrivateKey, KFT.PKCS_8, T.bytes(Tag.KeyMaterial, randomBytes(64))), [], 'InvalidField'],
      ['SEC1 under a PKCS#1 label', keyObject(OT.PrivateKey, KFT.PKCS_1, der), [], 'InvalidField'],
      ['a public key format for a private key', keyObject(OT.PrivateKey, KFT.X_509, der), [], 'KeyFormatTypeNotSupported'],
      ['Raw is no asymmetric key format', keyObject(OT.PrivateKey, KFT.Raw, der), [], 'KeyFormatTypeNotSupported'],
      ['transparent RSA without exponents', keyObject(OT.PrivateKey, KFT.TransparentRSAPrivateKey, T.struct(Tag.KeyMaterial, [T.big(Tag.Modulus, 12345n)])), [], 'MissingData'],
    ];
    for (const [what, obj, attrs, why] of cases) {
      const r = await engine.call(OP.Register, registerPayload('1.4', OT.PrivateKey, obj, attrs));
      t.equal(r.status, FAILED, what);
      t.equal(r.reason, reason(why), `${what}: ${why}`);
    }
    const ed = generateKeyPairSync('ed25519');
    const r = await engine.call(OP.Register, registerPayload('1.4', OT.PrivateKey, keyObject(OT.PrivateKey, KFT.PKCS_8, T.bytes(Tag.KeyMaterial, ed.privateKey.export({ type: 'pkcs8', format: 'der' })))));
    t.equal(r.reason, reason('FeatureNotSupported'), 'Ed25519 keys are not kept (RSA, EC and DSA are; DSA: dsa-keys.test.ts)');
  });

  await t.test('a wrapped private key is kept as registered', async (t) => {
    const block = T.struct(Tag.KeyBlock, [
      T.enum(Tag.KeyFormatType, KFT.PKCS_8),
      T.bytes(Tag.KeyValue, randomBytes(200)),
      T.enum(Tag.CryptographicAlgorithm, ALG.RSA),
      T.int(Tag.CryptographicLength, 2048),
      T.struct(Tag.KeyWrappingData, [T.enum(Tag.WrappingMethod, Enums.WrappingMethod.Encrypt), T.struct(Tag.EncryptionKeyInformation, [uidNode('client-kek')])]),
    ]);
    const obj = T.struct(Tag.PrivateKey, [block]);
    const uid = await register(engine, '1.4', OT.PrivateKey, obj);
    const g = await get(engine, uid);
    t.ok(nodesEqual(child(g.payload, Tag.PrivateKey)!, obj));
    const r = await get(engine, uid, '1.4', [T.enum(Tag.KeyFormatType, KFT.PKCS_1)]);
    t.equal(r.reason, reason('KeyFormatTypeNotSupported'));
  });

  await t.test('TC-ECC-1-14: a secp256k1 pair, linked by Add Attribute, found by Locate through its links', async (t) => {
    const v = vectorsDir();
    if (!need(t, v)) return;
    const xml = readFileSync(join(v.dir, 'cosmian-kmip/website/testcases/v1.4/cnprd01/test-cases/kmip-v1.4/TC-ECC-1-14.xml'), 'utf8');
    const hexes = [...xml.matchAll(/<KeyMaterial type="ByteString" value="([0-9a-f]+)"/g)].map((m) => Buffer.from(m[1]!, 'hex'));
    const sec1 = hexes[0]!;
    const spki = hexes[1]!;
    const priv = await register(engine, '1.4', OT.PrivateKey, keyObject(OT.PrivateKey, KFT.ECPrivateKey, T.bytes(Tag.KeyMaterial, sec1), ALG.EC, 256), [usage(M.Sign), a('x-ID', T.text(Tag.AttributeValue, 'TC-ECC-1-14-prikey1'))]);
    const link = (type: number, uid: string) => a('Link', T.struct(Tag.Link, [T.enum(Tag.LinkType, type), T.text(Tag.LinkedObjectIdentifier, uid)]));
    const pub = await register(engine, '1.4', OT.PublicKey, keyObject(OT.PublicKey, KFT.X_509, T.bytes(Tag.KeyMaterial, spki), ALG.EC, 256), [usage(M.Verify), link(LT.PrivateKeyLink, priv)]);
    const add = await engine.call(OP.AddAttribute, [uidNode(priv), T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Link'), T.struct(Tag.AttributeValue, [T.enum(Tag.LinkType, LT.PublicKeyLink), T.text(Tag.LinkedObjectIdentifier, pub)])])]);
    t.equal(add.status, OK, 'Add Attribute Link');
    const locate = async (objectType: number, type: number, target: string) => {
      const r = await engine.call(OP.Locate, [
        T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Object Type'), T.enum(Tag.AttributeValue, objectType)]),
        T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Link'), T.struct(Tag.AttributeValue, [T.enum(Tag.LinkType, type), T.text(Tag.LinkedObjectIdentifier, target)])]),
      ]);
      return r.payload?.value.filter((c) => c.tag === Tag.UniqueIdentifier).map((c) => (c.type === 'TextString' ? c.value : ''));
    };
    t.same(await locate(OT.PublicKey, LT.PrivateKeyLink, priv), [pub], 'Locate the public key by its Private Key Link');
    t.same(await locate(OT.PrivateKey, LT.PublicKeyLink, pub), [priv], 'Locate the private key by its Public Key Link');
    const g = await getKey(engine, priv, '1.4');
    const km = child(struct(g.block, Tag.KeyValue), Tag.KeyMaterial);
    t.same(km?.type === 'ByteString' ? Buffer.from(km.value) : undefined, sec1, 'Get: the SEC1 bytes registered');
    const k = keyFromBlock(g.block, true);
    const q = keyFromBlock((await getKey(engine, pub, '1.4', KFT.TransparentECDSAPublicKey)).block, false);
    crossCheck(t, [['secp256k1 SEC1', k]], [['transparent ECDSA public', q]]);
  });

  await t.test('TC-182-12: the digests of an RSA private key in PKCS#1 and in transparent form', async (t) => {
    const v = vectorsDir();
    if (!need(t, v)) return;
    const xml = readFileSync(join(v.dir, 'ovh-kmip-go/kmiptest/testdata/v1.2/TC_182_12_Digests_of_RSA_Private_Keys.xml'), 'utf8');
    const pkcs1 = Buffer.from(/<KeyMaterial type="ByteString" value="([0-9a-f]+)"/.exec(xml)![1]!, 'hex');
    const field = (name: string) => BigInt('0x' + new RegExp(`<${name} type="BigInteger" value="([0-9a-f]+)"`).exec(xml)![1]!);
    const digests = [...xml.matchAll(/<DigestValue type="ByteString" value="([0-9a-f]+)"/g)].map((m) => m[1]);
    const u1 = await register(engine, '1.2', OT.PrivateKey, keyObject(OT.PrivateKey, KFT.PKCS_1, T.bytes(Tag.KeyMaterial, pkcs1), ALG.RSA, 2048), [alg(ALG.RSA), len(2048), usage(M.Sign)]);
    t.equal(digestOf(await stored(engine, u1)).value?.toString('hex'), digests[0], 'PKCS#1 digest as the test case');
    const material = T.struct(Tag.KeyMaterial, [
      T.big(Tag.Modulus, field('Modulus')),
      T.big(Tag.PrivateExponent, field('PrivateExponent')),
      T.big(Tag.PublicExponent, field('PublicExponent')),
      T.big(Tag.P, field('P')),
      T.big(Tag.Q, field('Q')),
      T.big(Tag.PrimeExponentP, field('PrimeExponentP')),
      T.big(Tag.PrimeExponentQ, field('PrimeExponentQ')),
      T.big(Tag.CRTCoefficient, field('CRTCoefficient')),
    ]);
    const u2 = await register(engine, '1.2', OT.PrivateKey, keyObject(OT.PrivateKey, KFT.TransparentRSAPrivateKey, material, ALG.RSA, 2048), [alg(ALG.RSA), len(2048), usage(M.Sign)]);
    const d2 = digestOf(await stored(engine, u2));
    t.equal(d2.value?.toString('hex'), digests[1], 'transparent digest as the test case (TTLV of the Key Material)');
    t.equal(d2.format, KFT.TransparentRSAPrivateKey);
    const pk = await getKey(engine, u2, '1.2', KFT.PKCS_1);
    const km = child(struct(pk.block, Tag.KeyValue), Tag.KeyMaterial);
    t.same(km?.type === 'ByteString' ? Buffer.from(km.value) : undefined, pkcs1, 'the transparent key converts to the same PKCS#1 bytes');
  });
});

t.test('Re-key Key Pair', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  for (const version of ['1.4', '2.1'] as const) {
    await t.test(`KMIP ${version}: a new pair, Replacement / Replaced links, same parameters`, async (t) => {
      const pair = await createPair(engine, version, [alg(ALG.EC), curveParams(RC.P_384), activation(nowS() - 3600n)], [nameA(`rkp-priv-${version}`), usage(M.Sign)], [nameA(`rkp-pub-${version}`), usage(M.Verify)]);
      const r = await engine.call(OP.ReKeyKeyPair, [T.text(Tag.PrivateKeyUniqueIdentifier, pair.priv)], { version });
      t.equal(r.status, OK, r.message ?? 'Re-key Key Pair');
      const np = text(r.payload, Tag.PrivateKeyUniqueIdentifier)!;
      const nq = text(r.payload, Tag.PublicKeyUniqueIdentifier)!;
      t.ok(np && nq && np !== pair.priv && nq !== pair.pub, 'new identifiers');
      const [oldPriv, oldPub, newPriv, newPub] = await Promise.all([stored(engine, pair.priv), stored(engine, pair.pub), stored(engine, np), stored(engine, nq)]);
      t.same(linksOf(attrValues(newPriv, 'Link'), LT.ReplacedObjectLink), [pair.priv], 'new private -> Replaced Object Link');
      t.same(linksOf(attrValues(oldPriv, 'Link'), LT.ReplacementObjectLink), [np], 'old private -> Replacement Object Link');
      t.same(linksOf(attrValues(newPub, 'Link'), LT.ReplacedObjectLink), [pair.pub], 'new public -> Replaced Object Link');
      t.same(linksOf(attrValues(oldPub, 'Link'), LT.ReplacementObjectLink), [nq], 'old public -> Replacement Object Link');
      t.same(linksOf(attrValues(newPriv, 'Link'), LT.PublicKeyLink), [nq], 'the new halves link to each other');
      t.same(linksOf(attrValues(newPub, 'Link'), LT.PrivateKeyLink), [np]);
      t.same(linksOf(attrValues(oldPriv, 'Link'), LT.PublicKeyLink), [pair.pub], 'the old pair keeps its own links');
      t.equal(attrValues(oldPriv, 'Name').length, 0, 'names moved');
      t.equal(attrValues(newPriv, 'Name').length, 1);
      t.equal(scalar(attrValue(newPriv, 'Cryptographic Usage Mask')), M.Sign);
      t.equal(scalar(attrValue(newPub, 'Cryptographic Usage Mask')), M.Verify);
      t.equal(newPriv.state, ST.Active, 'Activation Date copied: Active');
      t.equal(oldPriv.state, ST.Active, 'the old private key keeps its state');
      const k = keyFromBlock((await getKey(engine, np, version)).block, true);
      t.equal(k.asymmetricKeyDetails?.namedCurve, 'secp384r1', 'same curve');
      const old = keyFromBlock((await getKey(engine, pair.priv, version)).block, true);
      t.not(k.export({ format: 'jwk' }).d, old.export({ format: 'jwk' }).d, 'new key material');
      crossCheck(t, [['new private', k]], [['new public', keyFromBlock((await getKey(engine, nq, version)).block, false)]], 'sha384');
    });
  }

  await t.test('RSA through the ID Placeholder, with Offset', async (t) => {
    const resp = await engine.request([
      { operation: OP.CreateKeyPair, payload: pairPayload('1.4', [alg(ALG.RSA), len(1024)], [], []) },
      { operation: OP.ReKeyKeyPair, payload: [T.interval(Tag.Offset, 3600)] },
      { operation: OP.Get, payload: [] },
    ]);
    const items = batchItems(resp).map(itemResult);
    t.same(items.map((i) => i.status), [OK, OK, OK]);
    const np = text(items[1]!.payload, Tag.PrivateKeyUniqueIdentifier)!;
    t.equal(text(items[2]!.payload, Tag.UniqueIdentifier), np, 'the placeholder is the new private key');
    const n = await stored(engine, np);
    t.equal(n.state, ST.PreActive, 'Activation Date one hour ahead');
    const k = keyFromBlock(getBlock(items[2]!.payload)!, true);
    t.equal(k.asymmetricKeyDetails?.modulusLength, 1024, 'same modulus length');
  });

  await t.test('errors', async (t) => {
    const pair = await createPair(engine, '2.1', [alg(ALG.RSA), len(1024)]);
    let r = await engine.call(OP.ReKeyKeyPair, [T.text(Tag.PrivateKeyUniqueIdentifier, pair.pub)], { version: '2.1' });
    t.equal(r.reason, reason('IllegalObjectType'), 'names the public key');
    r = await engine.call(OP.ReKeyKeyPair, [T.text(Tag.PrivateKeyUniqueIdentifier, pair.priv), ...pairPayload('2.1', [len(2048)], [], [])], { version: '2.1' });
    t.equal(r.reason, reason('InvalidField'), 'another length');
    r = await engine.call(OP.ReKeyKeyPair, [T.text(Tag.PrivateKeyUniqueIdentifier, 'nope')], { version: '2.1' });
    t.equal(r.reason, notFound('2.1'));
    r = await engine.call(OP.ReKeyKeyPair, [T.text(Tag.PrivateKeyUniqueIdentifier, pair.priv)], { version: '2.1', identity: 'mallory' });
    t.equal(r.reason, notFound('2.1'), "another identity's pair");
  });
});
