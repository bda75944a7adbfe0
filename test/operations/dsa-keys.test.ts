/**
 * DSA private and public keys: Register in Transparent DSA Private / Public Key (P, Q, G, X / Y),
 * PKCS#8 and X.509 formats, Get in every DSA format (checked against node:crypto), the domain
 * parameter checks, and Sign / Signature Verify with registered DSA keys.
 */
import { createPublicKey, generateKeyPairSync, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import t from 'tap';
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { KmipError } from '../../src/codec/errors.js';
import { generatePair } from '../../src/operations/create-key-pair.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { ALG, FAILED, OK, OP, a, activation, attrValue, bytes, enumValue, get, nowS, reason, scalar, stored, template, text } from './_keys.js';
import { KFT, OT, formatOf, getBlock, keyFromBlock } from './_asymmetric.js';
import { M, params } from './_crypto.js';

const DSA_SIG = Enums.DigitalSignatureAlgorithm;
const MSG = Buffer.from('kmipd DSA round trip');

// The 512-bit DSA key of the OASIS KMIP 2.1 Baseline test cases BL-M-12 / BL-M-13.
const P = BigInt('0xfca682ce8e12caba26efccf7110e526db078b05edecbcd1eb4a208f3ae1617ae01f35b91a47e6df63413c5e12ed0899bcd132acd50d99151bdc43ee737592e17');
const Q = BigInt('0x962eddcc369cba8ebb260ee6b6a126d9346e38c5');
const G = BigInt('0x678471b27a9cf44ee91a49c5147db1a9aaf244f05a434d6486931d2d14271b9e35030b71fd73da179069b32e2935630e1c2062354d0da20a6c416e50be794ca4');
const X = BigInt('0x095411d740d2443fa3f97d1ed9a0411bb45e7131');
const Y = BigInt('0xb3cb74d988dea7160a64a4edbb7f70404fa4c08a4208c19d76357a6a9df200cce79faecb22e3419be9b01128cbd998a2d9307101705e4a952462f34728ac5fcf');

function transparent(fields: [number, bigint][]): TtlvNode {
  return T.struct(
    Tag.KeyMaterial,
    fields.map(([tag, v]) => T.big(tag, v)),
  );
}

function keyObject(objectType: number, format: number, material: TtlvNode, algorithm?: number, length?: number): StructureNode {
  const block: TtlvNode[] = [T.enum(Tag.KeyFormatType, format), T.struct(Tag.KeyValue, [material])];
  if (algorithm !== undefined) block.push(T.enum(Tag.CryptographicAlgorithm, algorithm));
  if (length !== undefined) block.push(T.int(Tag.CryptographicLength, length));
  return T.struct(objectType === OT.PrivateKey ? Tag.PrivateKey : Tag.PublicKey, [T.struct(Tag.KeyBlock, block)]);
}

async function register(engine: Engine, version: KmipVersion, objectType: number, obj: StructureNode, attrs: KmipAttribute[] = []): Promise<{ uid?: string; reason?: number }> {
  const r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, objectType), ...template(version, attrs), obj], { version });
  if (r.status !== OK) return { reason: r.reason ?? -1 };
  return { uid: text(r.payload, Tag.UniqueIdentifier)! };
}

async function getIn(engine: Engine, uid: string, version: KmipVersion, format?: number): Promise<StructureNode> {
  const r = await get(engine, uid, version, format === undefined ? [] : [T.enum(Tag.KeyFormatType, format)]);
  if (r.status !== OK) throw new Error(`Get failed: ${r.reason} ${r.message}`);
  return getBlock(r.payload)!;
}

function bigOf(block: StructureNode, tag: number): bigint | undefined {
  const km = materialOf(block);
  const f = km.type === 'Structure' ? km.value.find((c) => c.tag === tag) : undefined;
  return f?.type === 'BigInteger' ? f.value : undefined;
}

function materialOf(block: StructureNode): TtlvNode {
  const kv = block.value.find((c) => c.tag === Tag.KeyValue);
  const km = kv?.type === 'Structure' ? kv.value.find((c) => c.tag === Tag.KeyMaterial) : undefined;
  if (!km) throw new Error('no Key Material');
  return km;
}

function derOf(block: StructureNode): Buffer {
  const km = materialOf(block);
  if (km.type !== 'ByteString') throw new Error('not a DER key');
  return Buffer.from(km.value);
}

t.test('Transparent DSA keys (BL-M-12 / BL-M-13)', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  await t.test('a transparent public key is kept, and converts to X.509', async (t) => {
    const material = transparent([[Tag.P, P], [Tag.Q, Q], [Tag.G, G], [Tag.Y, Y]]);
    const r = await register(engine, '2.1', OT.PublicKey, keyObject(OT.PublicKey, KFT.TransparentDSAPublicKey, material, ALG.DSA, 512), [a('Cryptographic Usage Mask', T.int(Tag.CryptographicUsageMask, M.Verify))]);
    t.ok(r.uid, 'registered');
    const o = await stored(engine, r.uid!);
    t.equal(scalar(attrValue(o, 'Cryptographic Algorithm')), ALG.DSA, 'Cryptographic Algorithm DSA');
    t.equal(scalar(attrValue(o, 'Cryptographic Length')), 512, 'Cryptographic Length: the bits of P');
    const same = await getIn(engine, r.uid!, '2.1');
    t.equal(formatOf(same), KFT.TransparentDSAPublicKey, 'Get: as registered');
    t.equal(bigOf(same, Tag.Y), Y);
    const spki = await getIn(engine, r.uid!, '2.1', KFT.X_509);
    const pub = createPublicKey({ key: derOf(spki), format: 'der', type: 'spki' });
    t.equal(pub.asymmetricKeyType, 'dsa', 'the X.509 form is a DSA key node:crypto reads');
    t.same(pub.asymmetricKeyDetails, { modulusLength: 512, divisorLength: 160 });
    // Back to transparent from the SPKI form: the same numbers.
    const again = await register(engine, '2.1', OT.PublicKey, keyObject(OT.PublicKey, KFT.X_509, T.bytes(Tag.KeyMaterial, derOf(spki))));
    const back = await getIn(engine, again.uid!, '2.1', KFT.TransparentDSAPublicKey);
    t.same([bigOf(back, Tag.P), bigOf(back, Tag.Q), bigOf(back, Tag.G), bigOf(back, Tag.Y)], [P, Q, G, Y], 'X.509 -> transparent gives P, Q, G, Y');
  });

  await t.test('a transparent private key (no Y) is kept, Y derived, PKCS#8 and sign/verify agree', async (t) => {
    const material = transparent([[Tag.P, P], [Tag.Q, Q], [Tag.G, G], [Tag.X, X]]);
    const r = await register(engine, '2.1', OT.PrivateKey, keyObject(OT.PrivateKey, KFT.TransparentDSAPrivateKey, material, ALG.DSA, 512), [
      a('Cryptographic Usage Mask', T.int(Tag.CryptographicUsageMask, M.Sign)),
      activation(nowS() - 60n),
    ]);
    t.ok(r.uid, 'registered');
    const same = await getIn(engine, r.uid!, '2.1');
    t.equal(formatOf(same), KFT.TransparentDSAPrivateKey, 'Get: as registered');
    t.same([bigOf(same, Tag.P), bigOf(same, Tag.Q), bigOf(same, Tag.G), bigOf(same, Tag.X)], [P, Q, G, X]);
    const pkcs8 = await getIn(engine, r.uid!, '2.1', KFT.PKCS_8);
    const priv = keyFromBlock(pkcs8, true);
    t.equal(priv.asymmetricKeyType, 'dsa');
    // The public half node:crypto derives from X is the Y of BL-M-12.
    const pubSpki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
    const pubId = await register(engine, '2.1', OT.PublicKey, keyObject(OT.PublicKey, KFT.X_509, T.bytes(Tag.KeyMaterial, pubSpki)));
    t.equal(bigOf(await getIn(engine, pubId.uid!, '2.1', KFT.TransparentDSAPublicKey), Tag.Y), Y, 'Y = G^X mod P');

    const s = await engine.call(OP.Sign, [T.text(Tag.UniqueIdentifier, r.uid!), params({ dsa: DSA_SIG.DSAWithSHA256 }), T.bytes(Tag.Data, MSG)], { version: '2.1' });
    t.equal(s.status, OK, `Sign with the registered DSA key: ${s.message ?? ''}`);
    const sig = bytes(s.payload, Tag.SignatureData)!;
    t.ok(nodeVerify('sha256', MSG, createPublicKey(priv), sig), 'node:crypto verifies the signature');
  });

  await t.test('inconsistent or incomplete transparent DSA keys are refused', async (t) => {
    const cases: [string, number, [number, bigint][], string][] = [
      ['no G', OT.PublicKey, [[Tag.P, P], [Tag.Q, Q], [Tag.Y, Y]], 'MissingData'],
      ['no X', OT.PrivateKey, [[Tag.P, P], [Tag.Q, Q], [Tag.G, G]], 'MissingData'],
      ['Q does not divide P-1', OT.PublicKey, [[Tag.P, P], [Tag.Q, Q + 2n], [Tag.G, G], [Tag.Y, Y]], 'InvalidField'],
      ['G not of order Q', OT.PublicKey, [[Tag.P, P], [Tag.Q, Q], [Tag.G, 2n], [Tag.Y, Y]], 'InvalidField'],
      ['Y not in the group', OT.PublicKey, [[Tag.P, P], [Tag.Q, Q], [Tag.G, G], [Tag.Y, 2n]], 'InvalidField'],
      ['X >= Q', OT.PrivateKey, [[Tag.P, P], [Tag.Q, Q], [Tag.G, G], [Tag.X, Q]], 'InvalidField'],
      ['X = 0', OT.PrivateKey, [[Tag.P, P], [Tag.Q, Q], [Tag.G, G], [Tag.X, 0n]], 'InvalidField'],
    ];
    for (const [what, type, fields, why] of cases) {
      const format = type === OT.PrivateKey ? KFT.TransparentDSAPrivateKey : KFT.TransparentDSAPublicKey;
      const r = await register(engine, '2.1', type, keyObject(type, format, transparent(fields)));
      t.equal(r.reason, reason(why), `${what}: ${why}`);
    }
    const rsaNamed = await register(engine, '2.1', OT.PublicKey, keyObject(OT.PublicKey, KFT.TransparentDSAPublicKey, transparent([[Tag.P, P], [Tag.Q, Q], [Tag.G, G], [Tag.Y, Y]]), ALG.RSA));
    t.equal(rsaNamed.reason, reason('InvalidField'), 'a DSA key declared RSA is refused');
  });
});

t.test('DSA keys in PKCS#8 / X.509 (node:crypto generated, 2048/256)', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const pair = generateKeyPairSync('dsa', { modulusLength: 2048, divisorLength: 256 });
  const der = (k: KeyObject, type: 'pkcs8' | 'spki'): Buffer => k.export({ format: 'der', type }) as Buffer;

  const priv = await register(engine, '1.4', OT.PrivateKey, keyObject(OT.PrivateKey, KFT.PKCS_8, T.bytes(Tag.KeyMaterial, der(pair.privateKey, 'pkcs8'))), [
    a('Cryptographic Usage Mask', T.int(Tag.CryptographicUsageMask, M.Sign)),
    activation(nowS() - 60n),
  ]);
  t.ok(priv.uid, 'a PKCS#8 DSA private key is registered');
  const o = await stored(engine, priv.uid!);
  t.equal(scalar(attrValue(o, 'Cryptographic Algorithm')), ALG.DSA);
  t.equal(scalar(attrValue(o, 'Cryptographic Length')), 2048);

  // Transparent form, then registered again in that form: the same key.
  const tr = await getIn(engine, priv.uid!, '1.4', KFT.TransparentDSAPrivateKey);
  const again = await register(engine, '1.4', OT.PrivateKey, keyObject(OT.PrivateKey, KFT.TransparentDSAPrivateKey, materialOf(tr)));
  t.ok(again.uid, 'the transparent export registers again');
  const roundTrip = keyFromBlock(await getIn(engine, again.uid!, '1.4', KFT.PKCS_8), true);
  t.ok(der(roundTrip, 'pkcs8').equals(der(pair.privateKey, 'pkcs8')), 'PKCS#8 -> transparent -> PKCS#8 is the same key');

  const pub = await register(engine, '1.4', OT.PublicKey, keyObject(OT.PublicKey, KFT.X_509, T.bytes(Tag.KeyMaterial, der(pair.publicKey, 'spki'))), [
    a('Cryptographic Usage Mask', T.int(Tag.CryptographicUsageMask, M.Verify)),
    activation(nowS() - 60n),
  ]);
  t.ok(pub.uid);
  const sig = nodeSign('sha256', MSG, pair.privateKey);
  const v = await engine.call(OP.SignatureVerify, [T.text(Tag.UniqueIdentifier, pub.uid!), params({ dsa: DSA_SIG.DSAWithSHA256 }), T.bytes(Tag.Data, MSG), T.bytes(Tag.SignatureData, sig)]);
  t.equal(v.status, OK, `Signature Verify: ${v.message ?? ''}`);
  t.equal(enumValue(v.payload, Tag.ValidityIndicator), Enums.ValidityIndicator.Valid, 'node:crypto signature verified by kmipd');

  const wrong = await get(engine, pub.uid!, '1.4', [T.enum(Tag.KeyFormatType, KFT.PKCS_1)]);
  t.equal(wrong.status, FAILED);
  t.equal(wrong.reason, reason('KeyFormatTypeNotSupported'), 'PKCS#1 is for RSA keys only');

  // Re-key Key Pair of a DSA pair would need a new DSA pair: kmipd does not generate DSA keys.
  const refused = await generatePair({ kind: 'dsa', algorithm: ALG.DSA, length: 2048 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(refused instanceof KmipError && refused.reason === 'FeatureNotSupported', 'kmipd does not generate DSA key pairs');
});
