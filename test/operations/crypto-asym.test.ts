/**
 * Encrypt / Decrypt / Sign / Signature Verify with private and public keys (RSA, EC), checked
 * against node:crypto on the other side, plus the OASIS CS-AC-M-OAEP-8 known answer and the
 * constructions of crypto-primitives.ts against node:crypto's own.
 */
import {
  constants,
  createHash,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { hashInfo } from '../../src/operations/crypto-params.js';
import { digestInfo, oaepDecrypt, oaepEncrypt, pkcs1SignRaw, pssSignDigest, pssVerifyDigest } from '../../src/operations/crypto-primitives.js';
import { Tag } from '../../src/spec/index.js';
import { T, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { OK, OP, bytes, date, enumValue, expectedReason, nowS, reason, stored } from './_keys.js';
import { ALG, HASH, KFT, M, OT, PAD, VI, dataHex, dataOf, decrypt, encrypt, hex, params, paramsAttr, registerAsymmetric, streamParts, type ParamFields } from './_crypto.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const der = (k: KeyObject, type: 'pkcs1' | 'pkcs8' | 'spki' | 'sec1'): Buffer => k.export({ format: 'der', type } as never) as Buffer;
const MSG = hex('01020304050607080910111213141516');

function signPayload(uid: string, p: ParamFields | undefined, f: { data?: Buffer; digested?: Buffer; signature?: Buffer }): TtlvNode[] {
  const out: TtlvNode[] = [T.text(Tag.UniqueIdentifier, uid)];
  if (p) out.push(params(p));
  if (f.data) out.push(T.bytes(Tag.Data, f.data));
  if (f.digested) out.push(T.bytes(Tag.DigestedData, f.digested));
  if (f.signature) out.push(T.bytes(Tag.SignatureData, f.signature));
  return out;
}

async function sign(engine: Engine, uid: string, p: ParamFields | undefined, f: { data?: Buffer; digested?: Buffer }, version: '1.4' | '2.1' = '1.4'): Promise<Buffer | number> {
  const r = await engine.call(OP.Sign, signPayload(uid, p, f), { version });
  if (r.status !== OK) return r.reason ?? -1;
  return bytes(r.payload, Tag.SignatureData)!;
}

async function verify(engine: Engine, uid: string, p: ParamFields | undefined, f: { data?: Buffer; digested?: Buffer; signature: Buffer }): Promise<number | undefined> {
  const r = await engine.call(OP.SignatureVerify, signPayload(uid, p, f));
  if (r.status !== OK) return -(r.reason ?? 1);
  return enumValue(r.payload, Tag.ValidityIndicator);
}

async function withDates(engine: Engine, uid: string, attrs: KmipAttribute[]): Promise<string> {
  const o = await stored(engine, uid);
  await engine.store.update({ ...o, attributes: [...o.attributes, ...attrs] }, o.revision);
  return uid;
}

t.test('RSA encryption', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const pub = await registerAsymmetric(engine, OT.PublicKey, KFT.X_509, der(rsa.publicKey, 'spki'), ALG.RSA, 2048);
  const priv = await registerAsymmetric(engine, OT.PrivateKey, KFT.PKCS_1, der(rsa.privateKey, 'pkcs1'), ALG.RSA, 2048);

  await t.test('OAEP with node:crypto on the other side', async (t) => {
    let r = await encrypt(engine, pub, { params: params({ padding: PAD.OAEP, hash: HASH.SHA_256 }), data: MSG });
    t.equal(r.status, OK, r.message ?? '');
    const ct = bytes(r.payload, Tag.Data)!;
    t.equal(ct.length, 256);
    t.equal(privateDecrypt({ key: rsa.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, ct).toString('hex'), MSG.toString('hex'));
    const d = await decrypt(engine, priv, { params: params({ padding: PAD.OAEP, hash: HASH.SHA_256, mgfHash: HASH.SHA_256 }), data: ct });
    t.equal(dataHex(d), MSG.toString('hex'));
    const sha1 = publicEncrypt({ key: rsa.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING }, MSG);
    r = await decrypt(engine, priv, { data: sha1 });
    t.equal(dataHex(r), MSG.toString('hex'), 'no parameters: OAEP with SHA-1');
    r = await decrypt(engine, priv, { params: params({ padding: PAD.OAEP, hash: HASH.SHA_256 }), data: sha1 }, { version: '2.1' });
    t.equal(r.reason, reason('CryptographicFailure'), 'the wrong hash fails');
    r = await encrypt(engine, pub, { params: params({ padding: PAD.OAEP, hash: HASH.SHA_384, mgfHash: HASH.SHA_256 }), data: MSG });
    const mixed = bytes(r.payload, Tag.Data)!;
    r = await decrypt(engine, priv, { params: params({ padding: PAD.OAEP, hash: HASH.SHA_384, mgfHash: HASH.SHA_256 }), data: mixed });
    t.equal(dataHex(r), MSG.toString('hex'), 'SHA-384 with MGF1-SHA-256, both ways');
    r = await encrypt(engine, pub, { params: params({ padding: PAD.OAEP, hash: HASH.SHA_256 }), data: Buffer.alloc(300) });
    t.equal(r.reason, reason('CryptographicFailure'), 'too long for the key');
  });

  await t.test('the CS-AC-M-OAEP-8-14 known answer (SHA-384, MGF1 SHA-256, key parameters)', async (t) => {
    const v = JSON.parse(readFileSync(new URL('../fixtures/crypto/cs-ac-m-oaep-8-14.json', import.meta.url), 'utf8')) as { privateKeyPkcs1: string; ciphertext: string; plaintext: string };
    const k = await registerAsymmetric(engine, OT.PrivateKey, KFT.PKCS_1, hex(v.privateKeyPkcs1), ALG.RSA, 2048, {
      mask: M.Decrypt,
      attrs: [paramsAttr({ padding: PAD.OAEP, hash: HASH.SHA_384, algorithm: ALG.RSA, mgfHash: HASH.SHA_256 })],
    });
    const r = await decrypt(engine, k, { data: hex(v.ciphertext) });
    t.equal(dataHex(r), v.plaintext);
  });

  await t.test('PKCS #1 v1.5: encryption yes, decryption refused', async (t) => {
    const r = await encrypt(engine, pub, { params: params({ padding: PAD.PKCS1V1_5 }), data: MSG });
    const raw = privateDecrypt({ key: rsa.privateKey, padding: constants.RSA_NO_PADDING }, bytes(r.payload, Tag.Data)!);
    t.equal(raw.subarray(0, 2).toString('hex'), '0002', 'EME-PKCS1-v1_5 block type 2');
    t.equal(raw.subarray(raw.length - 17).toString('hex'), '00' + MSG.toString('hex'));
    for (const version of ['1.4', '2.1'] as const) {
      const d = await decrypt(engine, priv, { params: params({ padding: PAD.PKCS1V1_5 }), data: bytes(r.payload, Tag.Data)! }, { version });
      t.equal(d.reason, expectedReason(version, 'UnsupportedCryptographicParameters', 'CryptographicFailure'), `refused (${version})`);
    }
  });

  await t.test('wrong object types', async (t) => {
    for (const version of ['1.4', '2.1'] as const) {
      let r = await encrypt(engine, priv, { data: MSG }, { version });
      t.equal(r.reason, expectedReason(version, 'IllegalObjectType', 'IllegalOperation'), `Encrypt with a private key (${version})`);
      r = await decrypt(engine, pub, { data: MSG }, { version });
      t.equal(r.reason, expectedReason(version, 'IllegalObjectType', 'IllegalOperation'), `Decrypt with a public key (${version})`);
    }
    const r = await encrypt(engine, pub, { data: MSG, init: true });
    t.equal(r.reason, reason('FeatureNotSupported'), 'RSA does not stream');
  });
});

t.test('Sign / Signature Verify', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const priv = await registerAsymmetric(engine, OT.PrivateKey, KFT.PKCS_8, der(rsa.privateKey, 'pkcs8'), ALG.RSA, 2048, { mask: M.Sign });
  const pub = await registerAsymmetric(engine, OT.PublicKey, KFT.PKCS_1, der(rsa.publicKey, 'pkcs1'), ALG.RSA, 2048, { mask: M.Verify });

  await t.test('RSA PKCS #1 v1.5 and PSS against node:crypto', async (t) => {
    let s = await sign(engine, priv, { padding: PAD.PKCS1V1_5, hash: HASH.SHA_256 }, { data: MSG });
    t.ok(Buffer.isBuffer(s) && nodeVerify('sha256', MSG, rsa.publicKey, s), 'PKCS #1 v1.5 SHA-256 (the default too)');
    t.same(await sign(engine, priv, undefined, { data: MSG }), s, 'no parameters: PKCS #1 v1.5 with SHA-256 (deterministic)');
    s = await sign(engine, priv, { padding: PAD.PSS, hash: HASH.SHA_256, saltLength: 222 }, { data: MSG }, '2.1');
    t.ok(Buffer.isBuffer(s) && nodeVerify('sha256', MSG, { key: rsa.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 222 }, s), 'PSS with the CS-AC-M-1 salt length');
    t.equal(await verify(engine, pub, { padding: PAD.PSS, hash: HASH.SHA_256 }, { data: MSG, signature: s as Buffer }), VI.Valid, 'any salt length when verifying');
    t.equal(await verify(engine, pub, { padding: PAD.PSS, hash: HASH.SHA_256, saltLength: 32 }, { data: MSG, signature: s as Buffer }), VI.Invalid, 'a stated salt length must match');
    t.equal(await verify(engine, pub, { padding: PAD.PSS, hash: HASH.SHA_1 }, { data: MSG, signature: s as Buffer }), VI.Invalid, 'CS-AC-M-3: SHA-1 verification of a SHA-256 signature is Invalid');
    const theirs = nodeSign('sha384', MSG, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 });
    t.equal(await verify(engine, pub, { padding: PAD.PSS, hash: HASH.SHA_384 }, { data: MSG, signature: theirs }), VI.Valid, 'a node:crypto PSS signature');
    t.equal(await verify(engine, pub, { dsa: 8 /* RSASSA-PSS */, hash: HASH.SHA_384 }, { data: MSG, signature: theirs }), VI.Valid, 'named by Digital Signature Algorithm');
    t.equal(await verify(engine, pub, { padding: PAD.PSS, hash: HASH.SHA_384 }, { data: hex('00'), signature: theirs }), VI.Invalid);
    t.equal(await verify(engine, pub, { padding: PAD.PSS, hash: HASH.SHA_384 }, { data: MSG, signature: hex('0102') }), VI.Invalid, 'a malformed signature is Invalid, not an error');
    s = await sign(engine, priv, { padding: PAD.PSS, hash: HASH.SHA_384, mgfHash: HASH.SHA_1 }, { data: MSG });
    t.equal(await verify(engine, pub, { padding: PAD.PSS, hash: HASH.SHA_384, mgfHash: HASH.SHA_1 }, { data: MSG, signature: s as Buffer }), VI.Valid, 'PSS with its own MGF1 hash');
    t.equal(await verify(engine, pub, { padding: PAD.PSS, hash: HASH.SHA_384 }, { data: MSG, signature: s as Buffer }), VI.Invalid, '... which the default MGF1 hash does not verify');
  });

  await t.test('Digested Data', async (t) => {
    const digest = createHash('sha256').update(MSG).digest();
    let s = await sign(engine, priv, { padding: PAD.PKCS1V1_5, hash: HASH.SHA_256 }, { digested: digest });
    t.ok(Buffer.isBuffer(s) && nodeVerify('sha256', MSG, rsa.publicKey, s), 'a DigestInfo signature node:crypto verifies over the message');
    t.equal(await verify(engine, pub, { hash: HASH.SHA_256 }, { digested: digest, signature: s as Buffer }), VI.Valid);
    t.equal(await verify(engine, pub, { hash: HASH.SHA_256 }, { data: MSG, signature: s as Buffer }), VI.Valid, 'the same signature over the message');
    s = await sign(engine, priv, { algorithm: ALG.RSA }, { digested: MSG });
    t.equal(await verify(engine, pub, { algorithm: ALG.RSA }, { digested: MSG, signature: s as Buffer }), VI.Valid, 'TC-RSA-SIGN-DIGESTEDDATA: raw bytes, no hash');
    t.equal(await verify(engine, pub, { padding: PAD.PSS, hash: HASH.SHA_1, algorithm: ALG.RSA }, { data: MSG, signature: s as Buffer }), VI.Invalid);
    s = await sign(engine, priv, { padding: PAD.PSS, hash: HASH.SHA_256 }, { digested: digest });
    t.ok(Buffer.isBuffer(s) && nodeVerify('sha256', MSG, { key: rsa.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, s), 'PSS over a digest');
    t.equal(await sign(engine, priv, { hash: HASH.SHA_256 }, { digested: MSG }), reason('InvalidField'), 'a digest of the wrong length');
    const r = await engine.call(OP.Sign, [...signPayload(priv, undefined, { data: MSG }), T.bytes(Tag.DigestedData, digest)]);
    t.equal(r.reason, reason('InvalidField'), 'Data and Digested Data');
  });

  await t.test('ECDSA', async (t) => {
    const ePriv = await registerAsymmetric(engine, OT.PrivateKey, KFT.ECPrivateKey, der(ec.privateKey, 'sec1'), ALG.EC, 256, { mask: M.Sign });
    const ePub = await registerAsymmetric(engine, OT.PublicKey, KFT.X_509, der(ec.publicKey, 'spki'), ALG.EC, 256, { mask: M.Verify });
    const s = await sign(engine, ePriv, { hash: HASH.SHA_256, algorithm: ALG.ECDSA }, { data: MSG });
    t.ok(Buffer.isBuffer(s) && nodeVerify('sha256', MSG, ec.publicKey, s), 'a DER signature node:crypto verifies');
    const theirs = nodeSign('sha384', MSG, ec.privateKey);
    t.equal(await verify(engine, ePub, { dsa: 15 /* ECDSA with SHA-384 */ }, { data: MSG, signature: theirs }), VI.Valid);
    const bad = Buffer.from(theirs);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
    t.equal(await verify(engine, ePub, { dsa: 15 }, { data: MSG, signature: bad }), VI.Invalid);
    t.equal(await sign(engine, ePriv, { hash: HASH.SHA_256 }, { digested: createHash('sha256').update(MSG).digest() }, '2.1'), reason('UnsupportedCryptographicParameters'), 'no ECDSA over a digest');
    t.equal(await sign(engine, ePriv, { padding: PAD.PSS }, { data: MSG }, '2.1'), reason('BadCryptographicParameters'), 'no padding for ECDSA');
    t.equal(await sign(engine, ePriv, { algorithm: ALG.RSA }, { data: MSG }, '2.1'), reason('BadCryptographicParameters'), 'an RSA scheme for an EC key');
  });

  await t.test('streams (TC-STREAM-SIGN-1, TC-STREAM-SIGNVFY-1)', async (t) => {
    const p = params({ padding: PAD.PSS, hash: HASH.SHA_256 });
    const parts = [hex('0102'), hex('030405060708091011121314'), hex('1516')];
    const rs = await streamParts(engine, OP.Sign, priv, parts, { params: p });
    t.same(rs.map((r) => r.status), [OK, OK, OK]);
    t.equal(bytes(rs[1]!.payload, Tag.SignatureData), undefined);
    const s = dataOf(rs, Tag.SignatureData);
    t.ok(nodeVerify('sha256', MSG, { key: rsa.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, s), 'node:crypto verifies the streamed signature');
    const vs = await streamParts(engine, OP.SignatureVerify, pub, parts, { params: p, extra: [T.bytes(Tag.SignatureData, s)] });
    t.same(vs.map((r) => enumValue(r.payload, Tag.ValidityIndicator)), [undefined, undefined, VI.Valid], 'signature with the first part');
    const late = await streamParts(engine, OP.SignatureVerify, pub, [hex('0102'), hex('03')], { params: p }, { extra: [T.bytes(Tag.SignatureData, s)] });
    t.equal(enumValue(late[1]!.payload, Tag.ValidityIndicator), VI.Invalid, 'signature with the last part, other data');
    const own = await streamParts(engine, OP.Sign, priv, parts, { params: params({ padding: PAD.PSS, hash: HASH.SHA_256, mgfHash: HASH.SHA_512 }) });
    t.equal(await verify(engine, pub, { padding: PAD.PSS, hash: HASH.SHA_256, mgfHash: HASH.SHA_512 }, { data: MSG, signature: dataOf(own, Tag.SignatureData) }), VI.Valid, 'own-MGF PSS streamed');
  });

  await t.test('refusals', async (t) => {
    for (const version of ['1.4', '2.1'] as const) {
      let r = await engine.call(OP.Sign, signPayload(pub, undefined, { data: MSG }), { version });
      t.equal(r.reason, expectedReason(version, 'IllegalObjectType', 'IllegalOperation'), `Sign with a public key (${version})`);
      const decOnly = await registerAsymmetric(engine, OT.PrivateKey, KFT.PKCS_1, der(rsa.privateKey, 'pkcs1'), ALG.RSA, 2048, { mask: M.Decrypt, version });
      r = await engine.call(OP.Sign, signPayload(decOnly, undefined, { data: MSG }), { version });
      t.equal(r.reason, expectedReason(version, 'IncompatibleCryptographicUsageMask', 'PermissionDenied'), `no Sign bit (${version})`);
      // CS-AC-M-8: Process Start Date ahead, Protect Stop Date passed.
      const dates = [date('Process Start Date', Tag.ProcessStartDate, nowS() + 3600n), date('Protect Stop Date', Tag.ProtectStopDate, nowS() - 3600n)];
      // (Put in the store directly: Register currently refuses these dates on asymmetric keys.)
      const p8 = await withDates(engine, await registerAsymmetric(engine, OT.PrivateKey, KFT.PKCS_1, der(rsa.privateKey, 'pkcs1'), ALG.RSA, 2048, { mask: M.Sign, version }), dates);
      const v8 = await withDates(engine, await registerAsymmetric(engine, OT.PublicKey, KFT.PKCS_1, der(rsa.publicKey, 'pkcs1'), ALG.RSA, 2048, { mask: M.Verify, version }), dates);
      r = await engine.call(OP.Sign, signPayload(p8, undefined, { data: MSG }), { version });
      t.equal(r.reason, expectedReason(version, 'WrongKeyLifecycleState', 'PermissionDenied'), `CS-AC-M-8 Sign (${version})`);
      r = await engine.call(OP.SignatureVerify, signPayload(v8, undefined, { data: MSG, signature: Buffer.alloc(256) }), { version });
      t.equal(r.reason, expectedReason(version, 'WrongKeyLifecycleState', 'PermissionDenied'), `CS-AC-M-8 Signature Verify (${version})`);
    }
    const r = await engine.call(OP.SignatureVerify, signPayload(pub, undefined, { data: MSG }));
    t.equal(r.reason, reason('MissingData'), 'no Signature Data');
  });
});

t.test('crypto-primitives against node:crypto', async (t) => {
  const sha256 = hashInfo(HASH.SHA_256);
  const sha1 = hashInfo(HASH.SHA_1);
  const ct = oaepEncrypt(rsa.publicKey, sha256, sha256, Buffer.alloc(0), MSG);
  t.equal(privateDecrypt({ key: rsa.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, ct).toString('hex'), MSG.toString('hex'), 'OAEP encoding = node:crypto');
  const label = Buffer.from('label');
  const theirs = publicEncrypt({ key: rsa.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1', oaepLabel: label }, MSG);
  t.equal(oaepDecrypt(rsa.privateKey, sha1, sha1, label, theirs).toString('hex'), MSG.toString('hex'), 'OAEP decoding = node:crypto (with a label)');
  t.throws(() => oaepDecrypt(rsa.privateKey, sha1, sha1, Buffer.from('other'), theirs), 'a wrong label fails');
  t.throws(() => oaepDecrypt(rsa.privateKey, sha256, sha256, Buffer.alloc(0), theirs), 'a wrong hash fails');
  t.equal(oaepDecrypt(rsa.privateKey, sha256, sha256, Buffer.alloc(0), oaepEncrypt(rsa.publicKey, sha256, sha256, Buffer.alloc(0), Buffer.alloc(0))).length, 0, 'an empty message');

  const digest = createHash('sha256').update(MSG).digest();
  const pss = pssSignDigest(rsa.privateKey, sha256, sha256, undefined, digest);
  t.ok(nodeVerify('sha256', MSG, { key: rsa.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pss), 'EMSA-PSS encoding = node:crypto');
  const nodePss = nodeSign('sha256', MSG, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 20 });
  t.ok(pssVerifyDigest(rsa.publicKey, sha256, sha256, undefined, digest, nodePss), 'EMSA-PSS verification = node:crypto');
  t.notOk(pssVerifyDigest(rsa.publicKey, sha256, sha256, 32, digest, nodePss), 'salt length enforced when given');
  t.same(pkcs1SignRaw(rsa.privateKey, digestInfo(sha256, digest)), nodeSign('sha256', MSG, rsa.privateKey), 'DigestInfo + block type 1 = node:crypto RSA-SHA256');
  const sha3 = hashInfo(HASH.SHA3_256);
  t.same(pkcs1SignRaw(rsa.privateKey, digestInfo(sha3, createHash('sha3-256').update(MSG).digest())), nodeSign('sha3-256', MSG, rsa.privateKey), 'and for SHA3-256');
});
