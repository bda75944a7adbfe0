/**
 * Streamed ("by parts") Encrypt, Decrypt, MAC, MAC Verify, Hash: several parts equal one shot
 * (the TC-STREAM-* transcripts and more), streams bound to their identity, operation and key,
 * and the registry's limits.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { Tag } from '../../src/spec/index.js';
import { T } from '../../src/ttlv/index.js';
import { KmipError } from '../../src/codec/errors.js';
import { StreamRegistry, streamKind, streams } from '../../src/operations/streams.js';
import type { OperationContext } from '../../src/operations/context.js';
import type { KmipVersion } from '../../src/spec/index.js';
import { startEngine } from '../helpers/engine.js';
import { FAILED, OK, OP, bytes, enumValue, expectedReason, reason } from './_keys.js';
import { ALG, HASH, M, MODE, PAD, VI, dataHex, dataOf, decrypt, encrypt, fieldHex, hex, params, paramsAttr, registerSymmetric, streamParts } from './_crypto.js';

const OASIS_K = hex('0123456789abcdef0123456789abcdef');

t.test('streamed Encrypt / Decrypt', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  await t.test('ECB (TC-STREAM-ENC-1): parts that complete no block answer no Data', async (t) => {
    const uid = await registerSymmetric(engine, OASIS_K, ALG.AES, { attrs: [paramsAttr({ mode: MODE.ECB })] });
    const one = await encrypt(engine, uid, { data: hex('01020304050607080910111213141516') });
    const parts = [hex('0102030405060708'), hex('09101112'), hex('13141516')];
    const rs = await streamParts(engine, OP.Encrypt, uid, parts, {});
    t.same(rs.map((r) => r.status), [OK, OK, OK]);
    t.equal(bytes(rs[0]!.payload, Tag.Data), undefined, 'half a block: no Data');
    t.ok(bytes(rs[0]!.payload, Tag.CorrelationValue), 'a Correlation Value');
    t.equal(bytes(rs[1]!.payload, Tag.Data), undefined);
    t.same(bytes(rs[1]!.payload, Tag.CorrelationValue), bytes(rs[0]!.payload, Tag.CorrelationValue), 'echoed while the stream goes on');
    t.equal(dataHex(rs[2]!), dataHex(one), 'the last part completes the block');
    t.equal(bytes(rs[2]!.payload, Tag.CorrelationValue), undefined, 'no Correlation Value once final');
    const empty = await streamParts(engine, OP.Encrypt, uid, [Buffer.alloc(0), hex('010203040506070809101112'), hex('13141516')], {});
    t.equal(dataOf(empty).toString('hex'), dataHex(one), 'an Init part without Data');
  });

  await t.test('CBC PKCS5 (TC-STREAM-ENCDEC-1), then random splits', async (t) => {
    const uid = await registerSymmetric(engine, OASIS_K, ALG.AES);
    const p = params({ mode: MODE.CBC, padding: PAD.PKCS5 });
    const iv = hex('01020304050607080910111213141516');
    const pt = hex('010203040506070809101112131415160102030405060708091011121314151601');
    const ct = '79abc5c23868ad84d388ce61110a62742bda19d694bbcb757dd06617c0d80fb1df2e71864ad9633d7d797e30860df00d';
    const e = await streamParts(engine, OP.Encrypt, uid, [pt.subarray(0, 8), pt.subarray(8, 16), pt.subarray(16)], { params: p, iv });
    t.same(e.map((r) => dataHex(r)), [undefined, '79abc5c23868ad84d388ce61110a6274', '2bda19d694bbcb757dd06617c0d80fb1df2e71864ad9633d7d797e30860df00d']);
    const c = hex(ct);
    const d = await streamParts(engine, OP.Decrypt, uid, [c.subarray(0, 16), c.subarray(16, 32), c.subarray(32)], { params: p, iv });
    t.same(d.map((r) => dataHex(r)), [undefined, '01020304050607080910111213141516', '0102030405060708091011121314151601'], 'the transcript: the last block is kept back');
    for (let round = 0; round < 5; round++) {
      const msg = randomBytes(1 + Math.floor(Math.random() * 200));
      const cuts = [0, ...[1, 2].map(() => Math.floor(Math.random() * msg.length)).sort((x, y) => x - y), msg.length];
      const parts = cuts.slice(1).map((end, i) => msg.subarray(cuts[i]!, end));
      const once = await encrypt(engine, uid, { params: p, data: msg, iv });
      const streamed = await streamParts(engine, OP.Encrypt, uid, parts, { params: p, iv });
      t.equal(dataOf(streamed).toString('hex'), dataHex(once), `${msg.length} bytes in ${parts.length} parts`);
      const back = await streamParts(engine, OP.Decrypt, uid, parts.length > 1 ? [bytes(once.payload, Tag.Data)!.subarray(0, 5), bytes(once.payload, Tag.Data)!.subarray(5)] : [bytes(once.payload, Tag.Data)!], { params: p, iv });
      t.equal(dataOf(back).toString('hex'), msg.toString('hex'));
    }
  });

  await t.test('3DES ECB (TC-STREAM-ENC-2)', async (t) => {
    const uid = await registerSymmetric(engine, hex('010101010101010101010101010101010101010101010101'), ALG.DES3, { length: 168 });
    const rs = await streamParts(engine, OP.Encrypt, uid, [hex('01020304'), hex('050607'), hex('08')], { params: params({ mode: MODE.ECB }) });
    t.same(rs.map((r) => dataHex(r)), [undefined, undefined, 'cead373db80eabf8']);
    const bad = await streamParts(engine, OP.Encrypt, uid, [hex('01020304'), hex('050607')], { params: params({ mode: MODE.ECB }) });
    t.equal(bad[1]!.reason, reason('InvalidField'), 'no padding and a partial block at the end');
  });

  await t.test('GCM (CS-BC-M-GCM-3): the tag comes with the last part; decryption holds plaintext back', async (t) => {
    const uid = await registerSymmetric(engine, hex('feffe9928665731c6d6a8f9467308308'), ALG.AES);
    const gcm = params({ mode: MODE.GCM, tagLength: 16 });
    const iv = hex('cafebabefacedbad');
    const aad = hex('feedfacedeadbeeffeedfacedeadbeefabaddad2');
    const pt = hex('d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39');
    const rs = await streamParts(engine, OP.Encrypt, uid, [pt.subarray(0, 32), pt.subarray(32)], { params: gcm, iv, aad });
    t.same(rs.map((r) => dataHex(r)), ['61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423', '73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598']);
    t.equal(fieldHex(rs[0]!, Tag.AuthenticatedEncryptionTag), undefined);
    t.equal(fieldHex(rs[1]!, Tag.AuthenticatedEncryptionTag), '3612d2e79e3b0785561be14aaca2fccb');
    const ct = dataOf(rs);
    const tag = hex('3612d2e79e3b0785561be14aaca2fccb');
    const d = await streamParts(engine, OP.Decrypt, uid, [ct.subarray(0, 10), ct.subarray(10, 40), ct.subarray(40)], { params: gcm, iv, aad }, { tag });
    t.same(d.map((r) => r.status), [OK, OK, OK]);
    t.same(d.slice(0, 2).map((r) => dataHex(r)), [undefined, undefined], 'no unauthenticated plaintext');
    t.equal(dataHex(d[2]!), pt.toString('hex'), 'all of it once the tag verifies');
    const forged = await streamParts(engine, OP.Decrypt, uid, [ct.subarray(0, 10), ct.subarray(10)], { params: gcm, iv, aad }, { tag: hex('0012d2e79e3b0785561be14aaca2fccb') });
    t.equal(forged[1]!.reason, reason('CryptographicFailure'), 'a wrong tag: nothing at all');
    t.notOk(forged[1]!.payload);
    t.equal(streams.bufferedBytes, 0, 'held plaintext released');
  });

  await t.test('Usage Limits count every part', async (t) => {
    const ul = T.struct(Tag.UsageLimits, [T.long(Tag.UsageLimitsTotal, 20n), T.enum(Tag.UsageLimitsUnit, 1)]);
    const uid = await registerSymmetric(engine, OASIS_K, ALG.AES, { attrs: [paramsAttr({ mode: MODE.ECB }), { name: 'Usage Limits', index: 0, value: ul }] });
    const rs = await streamParts(engine, OP.Encrypt, uid, [Buffer.alloc(16), Buffer.alloc(16)], {});
    t.same(rs.map((r) => r.status), [OK, FAILED]);
    t.equal(rs[1]!.reason, reason('PermissionDenied'));
  });

  await t.test('a key revoked mid-stream stops the stream', async (t) => {
    const uid = await registerSymmetric(engine, OASIS_K, ALG.AES, { attrs: [paramsAttr({ mode: MODE.ECB })] });
    const first = await encrypt(engine, uid, { data: Buffer.alloc(8), init: true });
    const cv = bytes(first.payload, Tag.CorrelationValue)!;
    await engine.call(OP.Revoke, [T.text(Tag.UniqueIdentifier, uid), T.struct(Tag.RevocationReason, [T.enum(Tag.RevocationReasonCode, 1)])]);
    let r = await encrypt(engine, uid, { data: Buffer.alloc(8), cv }, { version: '2.1' });
    t.equal(r.reason, reason('WrongKeyLifecycleState'));
    r = await encrypt(engine, uid, { data: Buffer.alloc(8), cv, final: true }, { version: '2.1' });
    t.equal(r.reason, reason('InvalidCorrelationValue'), 'the failed part ended the stream');
  });
});

t.test('streamed MAC, MAC Verify, Hash (TC-STREAM-MAC-1, TC-STREAM-HASH-1..3)', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const uid = await registerSymmetric(engine, OASIS_K, ALG.AES, { mask: M.MACGenerate | M.MACVerify, attrs: [paramsAttr({ algorithm: ALG.HMAC_SHA256 })] });
  const want = 'c911e78196d64c30f631bb079ea37b97a95936d4da764d6a171df030c895ecf9';
  const mac = await streamParts(engine, OP.MAC, uid, [hex('0102'), hex('030405060708091011121314'), hex('1516')], {});
  t.same(mac.map((r) => fieldHex(r, Tag.MACData)), [undefined, undefined, want]);
  const ok = await streamParts(engine, OP.MACVerify, uid, [hex('01020304'), hex('0506070809101112'), hex('13141516')], { extra: [T.bytes(Tag.MACData, hex(want))] });
  t.same(ok.map((r) => enumValue(r.payload, Tag.ValidityIndicator)), [undefined, undefined, VI.Valid], 'MAC Data with the first part');
  const late = await streamParts(engine, OP.MACVerify, uid, [hex('01020304'), hex('05060708091011121314151600')], {}, { extra: [T.bytes(Tag.MACData, hex(want))] });
  t.equal(enumValue(late[1]!.payload, Tag.ValidityIndicator), VI.Invalid, 'MAC Data with the last part; other data');

  const cmacKey = await registerSymmetric(engine, hex('2b7e151628aed2a6abf7158809cf4f3c'), ALG.AES, { mask: M.MACGenerate });
  const msg = hex('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411');
  const cm = await streamParts(engine, OP.MAC, cmacKey, [msg.subarray(0, 7), msg.subarray(7, 32), msg.subarray(32)], {});
  t.equal(fieldHex(cm[2]!, Tag.MACData), 'dfa66747de9ae63030ca32611497c827', 'CMAC in parts (RFC 4493, 40 bytes)');

  const p = params({ hash: HASH.SHA_256 });
  const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
  let h = await streamParts(engine, OP.Hash, undefined, [hex('61'), hex('62'), hex('63')], { params: p });
  t.same(h.map((r) => dataHex(r)), [undefined, undefined, abc]);
  h = await streamParts(engine, OP.Hash, undefined, [hex('61'), hex('62'), hex('63'), Buffer.alloc(0)], { params: p });
  t.equal(dataHex(h[3]!), abc, 'an empty last part (TC-STREAM-HASH-2)');
  const first = await engine.call(OP.Hash, [p, T.bytes(Tag.Data, hex('616263')), T.bool(Tag.InitIndicator, true)]);
  const last = await engine.call(OP.Hash, [p, T.bytes(Tag.CorrelationValue, bytes(first.payload, Tag.CorrelationValue)!), T.bool(Tag.FinalIndicator, true)]);
  t.equal(dataHex(last), abc, 'a last part without Data (TC-STREAM-HASH-3)');
});

t.test('streams belong to their identity, operation and key', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const ecb = paramsAttr({ mode: MODE.ECB });
  const uid = await registerSymmetric(engine, OASIS_K, ALG.AES, { attrs: [ecb] });
  const other = await registerSymmetric(engine, OASIS_K, ALG.AES, { attrs: [ecb] });
  const bobKey = await registerSymmetric(engine, OASIS_K, ALG.AES, { attrs: [ecb], identity: 'bob' });
  const start = await encrypt(engine, uid, { data: hex('0102030405060708'), init: true }, { version: '2.1' });
  const cv = bytes(start.payload, Tag.CorrelationValue)!;
  t.equal(cv.length, 16);

  for (const version of ['1.4', '2.1'] as KmipVersion[]) {
    let r = await encrypt(engine, undefined, { data: hex('0910111213141516'), cv }, { version, identity: 'bob' });
    t.equal(r.reason, expectedReason(version, 'InvalidCorrelationValue', 'InvalidField'), `another identity (${version})`);
    r = await encrypt(engine, bobKey, { data: hex('0910111213141516'), cv }, { version, identity: 'bob' });
    t.equal(r.reason, expectedReason(version, 'InvalidCorrelationValue', 'InvalidField'), `another identity naming its own key (${version})`);
  }
  let r = await encrypt(engine, other, { data: hex('0910111213141516'), cv }, { version: '2.1' });
  t.equal(r.reason, reason('InvalidCorrelationValue'), 'another key');
  r = await decrypt(engine, uid, { data: hex('0910111213141516'), cv }, { version: '2.1' });
  t.equal(r.reason, reason('InvalidCorrelationValue'), 'another operation');
  r = await engine.call(OP.Hash, [params({ hash: HASH.SHA_256 }), T.bytes(Tag.CorrelationValue, cv)], { version: '2.1' });
  t.equal(r.reason, reason('InvalidCorrelationValue'), 'Hash cannot take it either');
  r = await encrypt(engine, uid, { data: hex('0910111213141516'), cv, init: true }, { version: '2.1' });
  t.equal(r.reason, reason('InvalidField'), 'Init Indicator with a Correlation Value');
  r = await encrypt(engine, uid, { data: hex('0910111213141516'), cv, final: true });
  t.equal(r.status, OK, 'the owner still finishes it after all that');
  t.equal(dataHex(r)?.length, 32);
  r = await encrypt(engine, uid, { data: hex('00'), cv, final: true }, { version: '2.1' });
  t.equal(r.reason, reason('InvalidCorrelationValue'), 'a finished stream is gone');
  r = await encrypt(engine, uid, { data: hex('00'), cv: randomBytes(16) }, { version: '2.1' });
  t.equal(r.reason, reason('InvalidCorrelationValue'), 'a value never issued');

  const h = await engine.call(OP.Hash, [params({ hash: HASH.SHA_256 }), T.bytes(Tag.Data, hex('61')), T.bool(Tag.InitIndicator, true)]);
  const hcv = bytes(h.payload, Tag.CorrelationValue)!;
  r = await engine.call(OP.Hash, [T.bytes(Tag.CorrelationValue, hcv), T.bytes(Tag.Data, hex('62'))], { identity: 'bob', version: '2.1' });
  t.equal(r.reason, reason('InvalidCorrelationValue'), 'a key-less Hash stream is bound to its identity too');
});

function reasonOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof KmipError ? e.reason : 'not a KmipError';
  }
  return undefined;
}

t.test('StreamRegistry limits', async (t) => {
  let now = 1_000_000;
  const reg = new StreamRegistry({ maxPerIdentity: 2, maxTotal: 3, idleMs: 1000, maxBuffered: 100 }, () => now);
  const ctx = (name: string, version: KmipVersion = '2.1') => ({ identity: { name }, version }) as unknown as OperationContext;
  const kind = streamKind<{ n: number }>('Test');
  const otherKind = streamKind<{ n: number }>('Other');
  let disposed = 0;
  const a1 = reg.open(ctx('alice'), kind, 'k', { n: 1 }, () => disposed++);
  reg.open(ctx('alice'), kind, 'k', { n: 2 });
  t.equal(reasonOf(() => reg.open(ctx('alice'), kind, 'k', { n: 3 })), 'ServerLimitExceeded', 'per identity');
  reg.open(ctx('bob'), kind, 'k', { n: 4 });
  t.equal(reasonOf(() => reg.open(ctx('carol'), kind, 'k', { n: 5 })), 'ServerLimitExceeded', 'in all');
  t.equal(reg.size, 3);

  t.equal(reasonOf(() => reg.take(ctx('alice'), otherKind, a1, 'k')), 'InvalidCorrelationValue', 'kind');
  t.equal(reasonOf(() => reg.take(ctx('alice'), kind, a1, 'other')), 'InvalidCorrelationValue', 'key');
  t.equal(reasonOf(() => reg.take(ctx('bob', '1.4'), kind, a1, 'k')), 'InvalidField', 'identity (1.x reason)');
  const lease = reg.take(ctx('alice'), kind, a1, undefined);
  t.equal(lease.state.n, 1);
  t.equal(reasonOf(() => reg.take(ctx('alice'), kind, a1, 'k')), 'InvalidCorrelationValue', 'one part at a time');
  reg.account(lease, 60);
  t.equal(reasonOf(() => reg.account(lease, 60)), 'ServerLimitExceeded', 'buffer budget');
  t.equal(reg.bufferedBytes, 60);
  reg.release(lease);

  now += 1500;
  t.equal(reasonOf(() => reg.take(ctx('alice'), kind, a1, 'k')), 'InvalidCorrelationValue', 'expired after idling');
  t.equal(reg.size, 0, 'idle streams swept');
  t.equal(disposed, 1, 'disposed once');
  t.equal(reg.bufferedBytes, 0, 'its buffer released');
  let wiped = false;
  t.equal(reasonOf(() => reg.open(ctx('x'), kind, undefined, { n: 0 }, () => (wiped = true), 101)), 'ServerLimitExceeded', 'too much held at opening');
  t.ok(wiped, 'a refused state is disposed too');

  const bg = new StreamRegistry({ idleMs: 1000 }, () => now);
  bg.open(ctx('alice'), kind, 'k', { n: 1 });
  now += 5000;
  await new Promise((r) => setTimeout(r, 1200));
  t.equal(bg.size, 0, 'swept in the background');
  bg.clear();
});
