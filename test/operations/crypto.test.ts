/**
 * Encrypt, Decrypt, MAC, MAC Verify, Hash, RNG Retrieve, RNG Seed: known-answer vectors
 * (FIPS-197, NIST SP 800-38A/38D test vectors, RFC 4231, RFC 4493, RFC 8439, the OASIS
 * profile transcripts), round trips, parameters from the key's attribute, and the refusals
 * (state, usage mask, dates, Usage Limits, IV and tag rules).
 */
import { createDecipheriv } from 'node:crypto';
import t from 'tap';
import { Enums, Tag } from '../../src/spec/index.js';
import { T } from '../../src/ttlv/index.js';
import { startEngine } from '../helpers/engine.js';
import { FAILED, OK, OP, a, bytes, date, enumValue, expectedReason, nowS, reason, stored, attrValue, text } from './_keys.js';
import { ALG, HASH, M, MODE, PAD, VI, dataHex, decrypt, encrypt, fieldHex, hex, params, paramsAttr, registerSymmetric } from './_crypto.js';

const K128 = hex('000102030405060708090a0b0c0d0e0f');
const NIST_K = hex('2b7e151628aed2a6abf7158809cf4f3c');
const OASIS_K = hex('0123456789abcdef0123456789abcdef');

t.test('Encrypt / Decrypt, known answers', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  await t.test('AES-128-ECB, FIPS-197 C.1', async (t) => {
    const uid = await registerSymmetric(engine, K128, ALG.AES, { attrs: [paramsAttr({ mode: MODE.ECB })] });
    const r = await encrypt(engine, uid, { data: hex('00112233445566778899aabbccddeeff') });
    t.equal(r.status, OK, r.message ?? "");
    t.equal(dataHex(r), '69c4e0d86a7b0430d8cdb78070b4c55a', 'parameters from the key attribute');
    t.equal(text(r.payload, Tag.UniqueIdentifier), uid);
    const d = await decrypt(engine, uid, { data: hex('69c4e0d86a7b0430d8cdb78070b4c55a') });
    t.equal(dataHex(d), '00112233445566778899aabbccddeeff');
  });

  await t.test('AES-128-CBC, SP 800-38A F.2.1 (no padding)', async (t) => {
    const uid = await registerSymmetric(engine, NIST_K, ALG.AES);
    const p = params({ mode: MODE.CBC, padding: PAD.None });
    const pt = hex('6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51');
    const r = await encrypt(engine, uid, { params: p, data: pt, iv: K128 }, { version: '2.1' });
    t.equal(dataHex(r), '7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2');
    t.equal(fieldHex(r, Tag.IVCounterNonce), undefined, 'a client IV is not echoed');
    const d = await decrypt(engine, uid, { params: p, data: bytes(r.payload, Tag.Data)!, iv: K128 }, { version: '2.1' });
    t.equal(dataHex(d), pt.toString('hex'));
    const odd = await encrypt(engine, uid, { params: p, data: hex('0102'), iv: K128 });
    t.equal(odd.reason, reason('InvalidField'), 'no padding: whole blocks only');
  });

  await t.test('AES-128-CBC PKCS5, CS-BC-M-11 transcript', async (t) => {
    const uid = await registerSymmetric(engine, OASIS_K, ALG.AES);
    const p = params({ mode: MODE.CBC, padding: PAD.PKCS5 });
    const pt = hex('010203040506070809101112131415160102030405060708091011121314151601');
    const ct = 'e768203ba72b6e157daaad34b1e791d8e88457dc147942f01bfaff7b28a3cdde2203d4d5a4c7928ba9e9cc78b66a6546';
    const iv = hex('FF020304050607080910111213141516');
    const r = await encrypt(engine, uid, { params: p, data: pt, iv });
    t.equal(dataHex(r), ct);
    let d = await decrypt(engine, uid, { params: p, data: hex(ct), iv: Buffer.alloc(16) });
    t.equal(dataHex(d), 'fe000000000000000000000000000000' + '0102030405060708091011121314151601', 'a wrong IV garbles the first block only');
    d = await decrypt(engine, uid, { params: p, data: hex(ct) });
    t.equal(d.status, FAILED);
    t.equal(d.reason, reason('InvalidMessage'), 'missing IV: Invalid Message, as the profile expects');
    d = await decrypt(engine, uid, { params: p, data: hex(ct) }, { version: '2.1' });
    t.equal(d.reason, reason('InvalidMessage'), 'in 2.1 too');
    d = await decrypt(engine, uid, { params: p, data: hex(ct), iv });
    t.equal(dataHex(d), pt.toString('hex'));
    d = await decrypt(engine, uid, { params: p, data: hex(ct).subarray(0, 40), iv });
    t.equal(d.reason, reason('CryptographicFailure'), 'ciphertext not in whole blocks');
  });

  await t.test('AES-128-CTR, SP 800-38A F.5.1', async (t) => {
    const uid = await registerSymmetric(engine, NIST_K, ALG.AES);
    const p = params({ mode: MODE.CTR });
    const ctr = hex('f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff');
    const r = await encrypt(engine, uid, { params: p, data: hex('6bc1bee22e409f96e93d7e117393172a ae2d'), iv: ctr });
    t.equal(dataHex(r), '874d6191b620e3261bef6864990db6ce' + '9806');
    // A 8-bit counter starting at 0xff has room for one block only.
    const short = await encrypt(engine, uid, { params: params({ mode: MODE.CTR, counterLength: 8 }), data: Buffer.alloc(32), iv: ctr });
    t.equal(short.reason, reason('CryptographicFailure'), 'counter wrap refused (1.x fallback of Bad Cryptographic Parameters)');
    const ok = await encrypt(engine, uid, { params: params({ mode: MODE.CTR, counterLength: 8 }), data: Buffer.alloc(16), iv: ctr });
    t.equal(ok.status, OK);
  });

  await t.test('AES-GCM, McGrew-Viega test cases 2 and 4/5 (CS-BC-M-GCM-1, -3)', async (t) => {
    const zero = await registerSymmetric(engine, Buffer.alloc(16), ALG.AES);
    const gcm = params({ mode: MODE.GCM, tagLength: 16 });
    let r = await encrypt(engine, zero, { params: gcm, data: Buffer.alloc(16), iv: Buffer.alloc(12) });
    t.equal(dataHex(r), '0388dace60b6a392f328c2b971b2fe78');
    t.equal(fieldHex(r, Tag.AuthenticatedEncryptionTag), 'ab6e47d42cec13bdf53a67b21257bddf');
    const ct = hex('0388dace60b6a392f328c2b971b2fe78');
    const tag = hex('ab6e47d42cec13bdf53a67b21257bddf');
    let d = await decrypt(engine, zero, { params: gcm, data: ct, iv: Buffer.alloc(12), tag });
    t.equal(dataHex(d), '00000000000000000000000000000000');
    for (const [what, f] of [
      ['tag', { data: ct, iv: Buffer.alloc(12), tag: hex('006e47d42cec13bdf53a67b21257bddf') }],
      ['IV', { data: ct, iv: hex('ff0000000000000000000000'), tag }],
      ['data', { data: hex('ff88dace60b6a392f328c2b971b2fe78'), iv: Buffer.alloc(12), tag }],
    ] as const) {
      d = await decrypt(engine, zero, { params: gcm, ...f });
      t.equal(d.reason, reason('CryptographicFailure'), `a wrong ${what} fails authentication`);
      t.notOk(d.payload, 'and returns nothing');
    }
    d = await decrypt(engine, zero, { params: params({ mode: MODE.GCM, tagLength: 12 }), data: ct, iv: Buffer.alloc(12), tag: tag.subarray(0, 12) });
    t.equal(dataHex(d), '00000000000000000000000000000000', 'a 12-byte tag');
    d = await decrypt(engine, zero, { params: gcm, data: ct, iv: Buffer.alloc(12), tag: tag.subarray(0, 12) });
    t.equal(d.reason, reason('CryptographicFailure'), 'a tag shorter than Tag Length');
    d = await decrypt(engine, zero, { params: params({ mode: MODE.GCM }), data: ct, iv: Buffer.alloc(12), tag: tag.subarray(0, 8) });
    t.equal(d.reason, reason('CryptographicFailure'), 'an 8-byte tag is not accepted');
    d = await decrypt(engine, zero, { params: gcm, data: ct, iv: Buffer.alloc(12) });
    t.equal(d.reason, reason('MissingData'), 'no tag');
    for (const tl of [1, 32, 8]) {
      r = await encrypt(engine, zero, { params: params({ mode: MODE.GCM, tagLength: tl }), data: Buffer.alloc(16), iv: Buffer.alloc(12) }, { version: '2.1' });
      t.equal(r.reason, reason('GeneralFailure'), `Tag Length ${tl}: General Failure, as CS-BC-M-GCM-1 expects`);
    }
    r = await encrypt(engine, zero, { params: params({ mode: MODE.GCM, tagLength: 13 }), data: Buffer.alloc(16), iv: Buffer.alloc(12) });
    t.equal(fieldHex(r, Tag.AuthenticatedEncryptionTag), 'ab6e47d42cec13bdf53a67b212', 'a 13-byte tag is the truncated 16-byte one');

    const k = await registerSymmetric(engine, hex('feffe9928665731c6d6a8f9467308308'), ALG.AES);
    const pt = hex('d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39');
    const aad = hex('feedfacedeadbeeffeedfacedeadbeefabaddad2');
    r = await encrypt(engine, k, { params: gcm, data: pt, iv: hex('cafebabefacedbaddecaf888'), aad });
    t.equal(dataHex(r), '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091');
    t.equal(fieldHex(r, Tag.AuthenticatedEncryptionTag), '5bc94fbc3221a5db94fae95ae7121a47');
    r = await encrypt(engine, k, { params: gcm, data: pt, iv: hex('cafebabefacedbad'), aad });
    t.equal(fieldHex(r, Tag.AuthenticatedEncryptionTag), '3612d2e79e3b0785561be14aaca2fccb', 'a 64-bit IV');
    d = await decrypt(engine, k, { params: gcm, data: bytes(r.payload, Tag.Data)!, iv: hex('cafebabefacedbad'), aad: hex('00'), tag: hex('3612d2e79e3b0785561be14aaca2fccb') });
    t.equal(d.reason, reason('CryptographicFailure'), 'wrong additional data');
  });

  await t.test('Random IV: generated, returned, usable', async (t) => {
    const uid = await registerSymmetric(engine, OASIS_K, ALG.AES, { attrs: [paramsAttr({ mode: MODE.CBC, padding: PAD.PKCS5, randomIV: true })] });
    const pt = hex('010203040506070809101112131415160102030405060708091011121314151601');
    const r = await encrypt(engine, uid, { data: pt });
    t.equal(r.status, OK, r.message ?? "");
    const iv = bytes(r.payload, Tag.IVCounterNonce);
    t.equal(iv?.length, 16, 'a 16-byte IV is returned');
    t.equal(bytes(r.payload, Tag.Data)?.length, 48);
    const again = await encrypt(engine, uid, { data: pt });
    t.not(fieldHex(again, Tag.IVCounterNonce), iv!.toString('hex'), 'a fresh IV each time');
    let d = await decrypt(engine, uid, { data: bytes(r.payload, Tag.Data)! });
    t.equal(d.reason, reason('InvalidMessage'), 'Decrypt never invents an IV (CS-BC-M-13)');
    d = await decrypt(engine, uid, { data: bytes(r.payload, Tag.Data)!, iv: iv! });
    t.equal(dataHex(d), pt.toString('hex'));

    const gcmKey = await registerSymmetric(engine, K128, ALG.AES);
    const g = await encrypt(engine, gcmKey, { params: params({ mode: MODE.GCM, randomIV: true, tagLength: 12 }), data: pt, aad: hex('77d997b514608c0d') });
    const giv = bytes(g.payload, Tag.IVCounterNonce)!;
    t.equal(giv.length, 12, 'GCM: a 96-bit IV');
    const gtag = bytes(g.payload, Tag.AuthenticatedEncryptionTag)!;
    t.equal(gtag.length, 12);
    const local = createDecipheriv('aes-128-gcm', K128, giv, { authTagLength: 12 });
    local.setAAD(hex('77d997b514608c0d'));
    local.setAuthTag(gtag);
    t.equal(Buffer.concat([local.update(bytes(g.payload, Tag.Data)!), local.final()]).toString('hex'), pt.toString('hex'), 'node:crypto decrypts it');
  });

  await t.test('server defaults: no parameters at all', async (t) => {
    const uid = await registerSymmetric(engine, K128, ALG.AES);
    const r = await encrypt(engine, uid, { data: hex('00112233') });
    t.equal(r.status, OK, r.message ?? "");
    const iv = bytes(r.payload, Tag.IVCounterNonce)!;
    t.equal(bytes(r.payload, Tag.Data)?.length, 16, 'CBC with PKCS5 padding');
    const local = createDecipheriv('aes-128-cbc', K128, iv);
    t.equal(Buffer.concat([local.update(bytes(r.payload, Tag.Data)!), local.final()]).toString('hex'), '00112233');
    const d = await decrypt(engine, uid, { data: bytes(r.payload, Tag.Data)!, iv });
    t.equal(dataHex(d), '00112233');
  });

  await t.test('Triple DES (TC-STREAM-ENC-2) and key wrap (RFC 3394 4.1)', async (t) => {
    const des = await registerSymmetric(engine, hex('010101010101010101010101010101010101010101010101'), ALG.DES3, { length: 168 });
    let r = await encrypt(engine, des, { params: params({ mode: MODE.ECB }), data: hex('0102030405060708') });
    t.equal(dataHex(r), 'cead373db80eabf8');
    r = await encrypt(engine, des, { params: params({ mode: MODE.CBC, padding: PAD.PKCS5 }), data: hex('0102030405060708090a'), iv: hex('0001020304050607') });
    const d = await decrypt(engine, des, { params: params({ mode: MODE.CBC, padding: PAD.PKCS5 }), data: bytes(r.payload, Tag.Data)!, iv: hex('0001020304050607') });
    t.equal(dataHex(d), '0102030405060708090a', '3DES-CBC round trip');
    const bad = await encrypt(engine, des, { params: params({ mode: MODE.CBC }), data: hex('0102030405060708'), iv: K128 });
    t.equal(bad.reason, reason('InvalidField'), 'a 16-byte IV for an 8-byte block');

    const kek = await registerSymmetric(engine, K128, ALG.AES);
    r = await encrypt(engine, kek, { params: params({ mode: MODE.NISTKeyWrap }), data: hex('00112233445566778899AABBCCDDEEFF') });
    t.equal(dataHex(r), '1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5');
    const u = await decrypt(engine, kek, { params: params({ mode: MODE.NISTKeyWrap }), data: hex('1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe6') });
    t.equal(u.reason, reason('CryptographicFailure'), 'a damaged wrapped key fails its integrity check');
  });

  await t.test('ChaCha20 (CS-BC-M-CHACHA20-1..3) and ChaCha20-Poly1305 (RFC 8439 2.8.2)', async (t) => {
    const v = { version: '2.1' as const };
    const zero = await registerSymmetric(engine, Buffer.alloc(32), ALG.ChaCha20, { version: '2.1' });
    let r = await encrypt(engine, zero, { params: params({}), data: Buffer.alloc(64), iv: Buffer.alloc(8) }, v);
    t.equal(dataHex(r), '76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586');
    r = await encrypt(engine, zero, { params: params({}), data: Buffer.alloc(60), iv: hex('0000000000000001') }, v);
    t.equal(dataHex(r), 'de9cba7bf3d69ef5e786dc63973f653a0b49e015adbff7134fcb7df137821031e85a050278a7084527214f73efc7fa5b5277062eb7a0433e445f41e3');
    const one = await registerSymmetric(engine, hex('0000000000000000000000000000000000000000000000000000000000000001'), ALG.ChaCha20, { version: '2.1' });
    r = await encrypt(engine, one, { params: params({}), data: Buffer.alloc(64), iv: Buffer.alloc(8) }, v);
    t.equal(dataHex(r)?.slice(0, 32), '4540f05a9f1fb296d7736e7b208e3c96');
    const d = await decrypt(engine, one, { params: params({}), data: bytes(r.payload, Tag.Data)!, iv: Buffer.alloc(8) }, v);
    t.equal(dataHex(d), '00'.repeat(64));

    const key = await registerSymmetric(engine, hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'), ALG.ChaCha20Poly1305, { version: '2.1' });
    const pt = Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
    const p = params({ mode: MODE.AEAD, tagLength: 16 });
    const nonce = hex('070000004041424344454647');
    const aad = hex('50515253c0c1c2c3c4c5c6c7');
    r = await encrypt(engine, key, { params: p, data: pt, iv: nonce, aad }, v);
    t.equal(dataHex(r)?.slice(0, 32), 'd31a8d34648e60db7b86afbc53ef7ec2');
    t.equal(fieldHex(r, Tag.AuthenticatedEncryptionTag), '1ae10b594f09e26a7e902ecbd0600691');
    const ct = bytes(r.payload, Tag.Data)!;
    let dd = await decrypt(engine, key, { params: params({ mode: MODE.AEAD, tagLength: 12 }), data: ct, iv: nonce, aad, tag: hex('1ae10b594f09e26a7e902ecb') }, v);
    t.equal(dd.status, OK, 'a 12-byte tag (CS-BC-M-CHACHA20POLY1305-1)');
    t.equal(bytes(dd.payload, Tag.Data)?.toString(), pt.toString());
    dd = await decrypt(engine, key, { params: p, data: ct, iv: nonce, aad, tag: hex('ffe10b594f09e26a7e902ecbd0600691') }, v);
    t.equal(dd.reason, reason('CryptographicFailure'));
    dd = await decrypt(engine, key, { params: params({ mode: MODE.AEAD }), data: ct, iv: nonce, aad, tag: hex('1a') }, v);
    t.equal(dd.reason, reason('CryptographicFailure'), 'a 1-byte tag is never accepted');
    r = await encrypt(engine, key, { params: params({ mode: MODE.AEAD, tagLength: 1 }), data: pt, iv: nonce, aad }, v);
    t.equal(r.reason, reason('GeneralFailure'));
  });

  await t.test('parameter errors', async (t) => {
    const uid = await registerSymmetric(engine, K128, ALG.AES);
    for (const version of ['1.4', '2.1'] as const) {
      let r = await encrypt(engine, uid, { params: params({ mode: MODE.XTS }), data: Buffer.alloc(16), iv: K128 }, { version });
      t.equal(r.reason, expectedReason(version, 'UnsupportedCryptographicParameters', 'CryptographicFailure'), `XTS (${version})`);
      r = await encrypt(engine, uid, { params: params({ mode: MODE.CBC, padding: PAD.ANSIX9_23 }), data: Buffer.alloc(16), iv: K128 }, { version });
      t.equal(r.reason, expectedReason(version, 'UnsupportedCryptographicParameters', 'CryptographicFailure'), `ANSI X9.23 padding (${version})`);
      r = await encrypt(engine, uid, { params: params({ mode: MODE.ECB, algorithm: ALG.DES3 }), data: Buffer.alloc(16) }, { version });
      t.equal(r.reason, expectedReason(version, 'BadCryptographicParameters', 'CryptographicFailure'), `an algorithm that is not the key's (${version})`);
      r = await encrypt(engine, uid, { params: params({ mode: MODE.ECB }), data: Buffer.alloc(16), aad: hex('00') }, { version });
      t.equal(r.reason, reason('InvalidField'), 'additional data without AEAD');
    }
    const r = await encrypt(engine, uid, { params: params({ mode: MODE.ECB }) });
    t.equal(r.reason, reason('MissingData'), 'no Data');
  });
});

t.test('key state, usage mask, dates, Usage Limits', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const ecb = paramsAttr({ mode: MODE.ECB });
  const block = Buffer.alloc(16, 7);

  await t.test('only Active keys', async (t) => {
    const pre = await registerSymmetric(engine, K128, ALG.AES, { active: false, attrs: [ecb] });
    for (const version of ['1.0', '1.2', '1.4', '2.0', '2.1'] as const) {
      if (version === '1.0') {
        const r = await encrypt(engine, pre, { data: block }, { version });
        t.equal(r.reason, reason('OperationNotSupported'), 'no Encrypt in 1.0');
        continue;
      }
      const r = await encrypt(engine, pre, { data: block }, { version });
      t.equal(r.reason, expectedReason(version, 'WrongKeyLifecycleState', 'PermissionDenied'), `Pre-Active (${version})`);
    }
    const act = await engine.call(OP.Activate, [T.text(Tag.UniqueIdentifier, pre)]);
    t.equal(act.status, OK);
    t.equal((await encrypt(engine, pre, { data: block })).status, OK, 'Active after Activate');
    await engine.call(OP.Revoke, [T.text(Tag.UniqueIdentifier, pre), T.struct(Tag.RevocationReason, [T.enum(Tag.RevocationReasonCode, Enums.RevocationReasonCode.CessationOfOperation)])]);
    let r = await decrypt(engine, pre, { data: block }, { version: '2.1' });
    t.equal(r.reason, reason('WrongKeyLifecycleState'), 'Deactivated: no Decrypt either');
    await engine.call(OP.Destroy, [T.text(Tag.UniqueIdentifier, pre)]);
    r = await decrypt(engine, pre, { data: block }, { version: '2.1' });
    t.equal(r.reason, reason('ObjectDestroyed'));
    r = await decrypt(engine, 'no-such-key', { data: block });
    t.equal(r.reason, reason('ItemNotFound'));
  });

  await t.test('Cryptographic Usage Mask', async (t) => {
    const encOnly = await registerSymmetric(engine, K128, ALG.AES, { mask: M.Encrypt, attrs: [ecb] });
    const r = await encrypt(engine, encOnly, { data: block });
    t.equal(r.status, OK);
    for (const version of ['1.4', '2.1'] as const) {
      const d = await decrypt(engine, encOnly, { data: bytes(r.payload, Tag.Data)! }, { version });
      t.equal(d.reason, expectedReason(version, 'IncompatibleCryptographicUsageMask', 'PermissionDenied'), `no Decrypt bit (${version})`);
      const mac = await engine.call(OP.MAC, [T.text(Tag.UniqueIdentifier, encOnly), T.bytes(Tag.Data, block)], { version });
      t.equal(mac.reason, expectedReason(version, 'IncompatibleCryptographicUsageMask', 'PermissionDenied'), `no MAC Generate bit (${version})`);
    }
  });

  await t.test('Protect Stop Date and Process Start Date (CS-BC-M-14)', async (t) => {
    const uid = await registerSymmetric(engine, OASIS_K, ALG.AES, {
      attrs: [ecb, date('Process Start Date', Tag.ProcessStartDate, nowS() + 3600n), date('Protect Stop Date', Tag.ProtectStopDate, nowS() - 3600n)],
    });
    for (const version of ['1.4', '2.1'] as const) {
      const e = await encrypt(engine, uid, { data: block }, { version });
      t.equal(e.reason, expectedReason(version, 'WrongKeyLifecycleState', 'PermissionDenied'), `Encrypt after Protect Stop Date (${version})`);
      const d = await decrypt(engine, uid, { data: block }, { version });
      t.equal(d.reason, expectedReason(version, 'WrongKeyLifecycleState', 'PermissionDenied'), `Decrypt before Process Start Date (${version})`);
    }
    const later = await registerSymmetric(engine, OASIS_K, ALG.AES, { attrs: [ecb, date('Protect Stop Date', Tag.ProtectStopDate, nowS() + 3600n), date('Process Start Date', Tag.ProcessStartDate, nowS() - 3600n)] });
    t.equal((await encrypt(engine, later, { data: block })).status, OK, 'within both dates');
    t.equal((await decrypt(engine, later, { data: block })).status, OK);
  });

  await t.test('Usage Limits in bytes (CS-BC-M-7) and in objects', async (t) => {
    const ul = (total: bigint, unit: number) =>
      a('Usage Limits', T.struct(Tag.UsageLimits, [T.long(Tag.UsageLimitsTotal, total), T.enum(Tag.UsageLimitsUnit, unit)]));
    for (const version of ['1.4', '2.1'] as const) {
      const uid = await registerSymmetric(engine, OASIS_K, ALG.AES, { version, attrs: [ecb, ul(16n, Enums.UsageLimitsUnit.Byte)] });
      const r = await encrypt(engine, uid, { data: hex('01020304050607080910111213141516') }, { version });
      t.equal(dataHex(r), 'd9bcce11b0b437b90239552df3a360c9', 'the CS-BC-M-7 transcript value');
      const count = attrValue(await stored(engine, uid), 'Usage Limits');
      t.match(JSON.stringify(count, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)), /"value":"0"/, 'the count went to 0');
      const again = await encrypt(engine, uid, { data: hex('01020304050607080910111213141516') }, { version });
      t.equal(again.reason, reason('PermissionDenied'), `exhausted: Permission Denied, as CS-BC-M-7-${version === '1.4' ? '14' : '21'} expects`);
    }
    const twice = await registerSymmetric(engine, OASIS_K, ALG.AES, { attrs: [ecb, ul(2n, Enums.UsageLimitsUnit.Object)] });
    t.equal((await encrypt(engine, twice, { data: Buffer.alloc(64) })).status, OK);
    t.equal((await decrypt(engine, twice, { data: Buffer.alloc(64) })).status, OK);
    t.equal((await encrypt(engine, twice, { data: Buffer.alloc(16) })).reason, reason('PermissionDenied'), 'two uses, then none');
  });

  await t.test("another identity's key does not exist", async (t) => {
    const uid = await registerSymmetric(engine, K128, ALG.AES, { attrs: [ecb] });
    const r = await encrypt(engine, uid, { data: block }, { identity: 'mallory' });
    t.equal(r.reason, reason('ItemNotFound'));
  });

  await t.test('ID Placeholder: Register then Encrypt in one batch', async (t) => {
    const r = await engine.request(
      [
        {
          operation: OP.Register,
          payload: [
            T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
            T.struct(Tag.Attributes, [T.int(Tag.CryptographicUsageMask, M.Encrypt), T.date(Tag.ActivationDate, nowS() - 10n), params({ mode: MODE.ECB })]),
            T.struct(Tag.SymmetricKey, [
              T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, Enums.KeyFormatType.Raw), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, K128)]), T.enum(Tag.CryptographicAlgorithm, ALG.AES), T.int(Tag.CryptographicLength, 128)]),
            ]),
          ],
        },
        { operation: OP.Encrypt, payload: [T.bytes(Tag.Data, hex('00112233445566778899aabbccddeeff'))] },
      ],
      { version: '2.1' },
    );
    const items = r.value.filter((c) => c.tag === Tag.BatchItem);
    const last = items[1];
    t.ok(last && last.type === 'Structure');
    if (last?.type === 'Structure') {
      const payload = last.value.find((c) => c.tag === Tag.ResponsePayload);
      t.equal(payload?.type === 'Structure' ? bytes(payload, Tag.Data)?.toString('hex') : undefined, '69c4e0d86a7b0430d8cdb78070b4c55a');
    }
  });
});

t.test('MAC, MAC Verify', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const mac = (uid: string, data: Buffer, p?: ReturnType<typeof params>) =>
    engine.call(OP.MAC, [T.text(Tag.UniqueIdentifier, uid), ...(p ? [p] : []), T.bytes(Tag.Data, data)]);
  const verify = (uid: string, data: Buffer, m: Buffer) =>
    engine.call(OP.MACVerify, [T.text(Tag.UniqueIdentifier, uid), T.bytes(Tag.Data, data), T.bytes(Tag.MACData, m)]);
  const macMask = M.MACGenerate | M.MACVerify;

  await t.test('HMAC, RFC 4231 test case 1 and RFC 2202', async (t) => {
    const key = Buffer.alloc(20, 0x0b);
    const data = Buffer.from('Hi There');
    const cases: [number, string][] = [
      [ALG.HMAC_SHA1, 'b617318655057264e28bc0b6fb378c8ef146be00'],
      [ALG.HMAC_SHA224, '896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22'],
      [ALG.HMAC_SHA256, 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
      [ALG.HMAC_SHA384, 'afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6'],
      [ALG.HMAC_SHA512, '87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854'],
    ];
    for (const [alg, want] of cases) {
      const uid = await registerSymmetric(engine, key, alg, { mask: macMask });
      const r = await mac(uid, data);
      t.equal(fieldHex(r, Tag.MACData), want, `algorithm ${alg}`);
      const v = await verify(uid, data, hex(want));
      t.equal(enumValue(v.payload, Tag.ValidityIndicator), VI.Valid);
      const w = await verify(uid, data, hex(want).subarray(0, 16));
      t.equal(enumValue(w.payload, Tag.ValidityIndicator), VI.Invalid, 'a truncated MAC is Invalid');
    }
    const jefe = await registerSymmetric(engine, Buffer.from('Jefe'), ALG.HMAC_SHA256, { mask: macMask });
    const r = await mac(jefe, Buffer.from('what do ya want for nothing?'));
    t.equal(fieldHex(r, Tag.MACData), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843', 'RFC 4231 test case 2');
  });

  await t.test('an AES key with HMAC_SHA256 Cryptographic Parameters (CS-AC-M-4..6)', async (t) => {
    const uid = await registerSymmetric(engine, OASIS_K, ALG.AES, { mask: M.Encrypt | M.Decrypt | macMask, attrs: [paramsAttr({ algorithm: ALG.HMAC_SHA256 })] });
    const data = hex('01020304050607080910111213141516');
    const r = await mac(uid, data);
    t.equal(fieldHex(r, Tag.MACData), 'c911e78196d64c30f631bb079ea37b97a95936d4da764d6a171df030c895ecf9');
    let v = await verify(uid, data, bytes(r.payload, Tag.MACData)!);
    t.equal(enumValue(v.payload, Tag.ValidityIndicator), VI.Valid);
    v = await verify(uid, hex('01020304050607080910111213141517'), bytes(r.payload, Tag.MACData)!);
    t.equal(enumValue(v.payload, Tag.ValidityIndicator), VI.Invalid);
    const bad = await mac(uid, data, params({ algorithm: ALG.HMAC_SHA256, hash: HASH.SHA_1 }));
    t.equal(bad.reason, reason('CryptographicFailure'), 'an HMAC algorithm contradicting the hash (Bad Cryptographic Parameters in 2.x)');
  });

  await t.test('AES-CMAC, RFC 4493 examples', async (t) => {
    const uid = await registerSymmetric(engine, NIST_K, ALG.AES, { mask: macMask });
    const msg = hex('6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710');
    const cases: [number, string][] = [
      [0, 'bb1d6929e95937287fa37d129b756746'],
      [16, '070a16b46b4d4144f79bdd9dd04a287c'],
      [40, 'dfa66747de9ae63030ca32611497c827'],
      [64, '51f0bebf7e3b9d92fc49741779363cfe'],
    ];
    for (const [n, want] of cases) {
      const r = await mac(uid, msg.subarray(0, n));
      t.equal(fieldHex(r, Tag.MACData), want, `${n} bytes`);
      const v = await verify(uid, msg.subarray(0, n), hex(want));
      t.equal(enumValue(v.payload, Tag.ValidityIndicator), VI.Valid);
    }
  });
});

t.test('Hash', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const hash = (p: ReturnType<typeof params> | undefined, data: Buffer, version: '1.4' | '2.1' = '1.4') =>
    engine.call(OP.Hash, [...(p ? [p] : []), T.bytes(Tag.Data, data)], { version });
  const abc = Buffer.from('abc');
  const cases: [number, string][] = [
    [HASH.SHA_1, 'a9993e364706816aba3e25717850c26c9cd0d89d'],
    [HASH.SHA_224, '23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7'],
    [HASH.SHA_256, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
    [HASH.SHA_384, 'cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7'],
    [HASH.SHA_512, 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f'],
    [HASH.SHA3_256, '3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532'],
  ];
  for (const [alg, want] of cases) {
    const r = await hash(params({ hash: alg }), abc);
    t.equal(dataHex(r), want, `hashing algorithm ${alg}`);
  }
  let r = await hash(params({ hash: HASH.SHA_512 }), hex('01020304050607080910111213141516'));
  t.equal(dataHex(r), '406a806f76c06b90c8aca278995d4271037f91124ebfaba5475f1f59ee21ebe3a0cc7f5ca6f2183d360bcc762cef68713de7c6498eb08dc591075ca62f7a0717', 'CS-AC-M-7');
  r = await hash(params({ algorithm: ALG.SHA3_256 }), abc, '2.1');
  t.equal(dataHex(r), '3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532', 'SHA-3 named as the Cryptographic Algorithm');
  r = await hash(params({ hash: HASH.MD5 }), abc, '2.1');
  t.equal(r.reason, reason('UnsupportedCryptographicParameters'), 'MD5 is refused');
  r = await hash(undefined, abc);
  t.equal(r.reason, reason('MissingData'), 'no Cryptographic Parameters');
  r = await hash(params({ hash: HASH.SHA_256 }), Buffer.alloc(0));
  t.equal(dataHex(r), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'empty data');
});

t.test('RNG Retrieve, RNG Seed', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  let r = await engine.call(OP.RNGRetrieve, [T.int(Tag.DataLength, 32)]);
  t.equal(r.status, OK);
  const first = bytes(r.payload, Tag.Data)!;
  t.equal(first.length, 32);
  r = await engine.call(OP.RNGRetrieve, [T.int(Tag.DataLength, 32)], { version: '2.1' });
  t.not(bytes(r.payload, Tag.Data)!.toString('hex'), first.toString('hex'), 'two draws differ');
  r = await engine.call(OP.RNGRetrieve, [T.int(Tag.DataLength, 0)]);
  t.equal(r.reason, reason('InvalidField'));
  r = await engine.call(OP.RNGRetrieve, [T.int(Tag.DataLength, 1 << 20)]);
  t.equal(r.reason, reason('InvalidField'), 'more than the per-request maximum');
  r = await engine.call(OP.RNGRetrieve, []);
  t.equal(r.reason, reason('MissingData'));
  r = await engine.call(OP.RNGSeed, [T.bytes(Tag.Data, hex('333c06587706225099a67438f263f8f932f64b860c3a7dbb21bc2bd56685d8bc'))]);
  t.equal(r.status, OK);
  const len = r.payload?.value.find((c) => c.tag === Tag.DataLength);
  t.equal(len?.type === 'Integer' ? len.value : undefined, 0, 'no seed data accepted (CS-RNG-O-3)');
  r = await engine.call(OP.RNGSeed, []);
  t.equal(r.reason, reason('MissingData'));
});
