/** Activate, Revoke, Destroy and the state machine; Get's answers along the way. */
import t from 'tap';
import { Enums, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T } from '../../src/ttlv/index.js';
import { startEngine } from '../helpers/engine.js';
import { AES256, ALL, FAILED, KFT, OK, OP, ST, a, activation, attrValue, createKey, enumValue, expectedReason, get, keyBlock, keyBytes, nowS, reason, revokePayload, scalar, stored, struct, text, uidNode, notFound } from './_keys.js';

const RRC = Enums.RevocationReasonCode;

t.test('lifecycle', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const call = (op: number, uid: string, version: KmipVersion) => engine.call(op, [uidNode(uid)], { version });

  for (const version of ALL) {
    await t.test(`KMIP ${version}: create, activate, destroy refused, revoke, destroy`, async (t) => {
      const uid = await createKey(engine, version);
      let r = await call(OP.Activate, uid, version);
      t.equal(r.status, OK, 'Activate');
      t.equal(text(r.payload, Tag.UniqueIdentifier), uid, 'Activate answers the uid');
      let o = await stored(engine, uid);
      t.equal(o.state, ST.Active, 'Active');
      const act = scalar(attrValue(o, 'Activation Date')) as bigint;
      t.ok(act <= nowS() && act >= nowS() - 5n, 'Activation Date is now');

      r = await call(OP.Activate, uid, version);
      t.equal(r.status, FAILED, 'Activate twice');
      t.equal(r.reason, expectedReason(version, 'WrongKeyLifecycleState', 'PermissionDenied'), 'Activate of an Active key: wrong state');

      r = await call(OP.Destroy, uid, version);
      t.equal(r.status, FAILED, 'Destroy while Active');
      // 2.0: Permission Denied, as the KMIP 2.0 profile test case AKLC-M-2-20 expects.
      t.equal(r.reason, version === '2.0' ? reason('PermissionDenied') : expectedReason(version, 'WrongKeyLifecycleState', 'PermissionDenied'));
      t.ok((await stored(engine, uid)).material, 'material still there');

      const key = keyBytes((await get(engine, uid, version)).payload);
      t.equal(key?.length, 32);

      r = await engine.call(OP.Revoke, revokePayload(uid, RRC.CessationOfOperation, undefined, 'retired'), { version });
      t.equal(r.status, OK, 'Revoke (cessation of operation)');
      o = await stored(engine, uid);
      t.equal(o.state, ST.Deactivated, 'Deactivated');
      t.ok(scalar(attrValue(o, 'Deactivation Date')), 'Deactivation Date set');
      const rr = attrValue(o, 'Revocation Reason');
      t.ok(rr?.type === 'Structure' && enumValue(rr, Tag.RevocationReasonCode) === RRC.CessationOfOperation && text(rr, Tag.RevocationMessage) === 'retired', 'Revocation Reason recorded');

      t.equal((await get(engine, uid, version)).status, OK, 'a Deactivated key can still be fetched');

      r = await call(OP.Destroy, uid, version);
      t.equal(r.status, OK, 'Destroy');
      o = await stored(engine, uid);
      t.equal(o.state, ST.Destroyed, 'Destroyed');
      t.equal(o.material, null, 'material gone');
      t.ok(scalar(attrValue(o, 'Destroy Date')), 'Destroy Date');
      t.equal(scalar(attrValue(o, 'Cryptographic Algorithm')), Enums.CryptographicAlgorithm.AES, 'metadata remains');

      r = await get(engine, uid, version);
      t.equal(r.status, FAILED, 'Get of a destroyed key');
      t.equal(r.reason, expectedReason(version, 'ObjectDestroyed', 'ItemNotFound'));
      r = await call(OP.Destroy, uid, version);
      t.equal(r.reason, expectedReason(version, 'ObjectDestroyed', 'ItemNotFound'), 'Destroy twice');
      r = await call(OP.Activate, uid, version);
      t.equal(r.reason, expectedReason(version, 'WrongKeyLifecycleState', 'PermissionDenied'), 'Activate of a destroyed key');
    });
  }

  await t.test('SKLC-M-2-21: Revoke with Key Compromise makes an Active key Compromised; then Destroyed Compromised', async (t) => {
    const uid = await createKey(engine, '2.1');
    t.equal((await call(OP.Activate, uid, '2.1')).status, OK);
    const r = await engine.call(OP.Revoke, revokePayload(uid, RRC.KeyCompromise, 6n), { version: '2.1' });
    t.equal(r.status, OK);
    let o = await stored(engine, uid);
    t.equal(o.state, ST.Compromised, 'Compromised');
    t.equal(scalar(attrValue(o, 'Compromise Occurrence Date')), 6n, 'Compromise Occurrence Date as given');
    const cd = scalar(attrValue(o, 'Compromise Date')) as bigint;
    t.ok(cd >= nowS() - 5n, 'Compromise Date is now');
    t.equal(attrValue(o, 'Deactivation Date'), undefined, 'no Deactivation Date');
    t.equal((await get(engine, uid, '2.1')).status, OK, 'a Compromised key can still be fetched');
    t.equal((await call(OP.Destroy, uid, '2.1')).status, OK);
    o = await stored(engine, uid);
    t.equal(o.state, ST.DestroyedCompromised, 'Destroyed Compromised');
  });

  await t.test('compromise without an occurrence date: the Initial Date', async (t) => {
    const uid = await createKey(engine, '1.4');
    const r = await engine.call(OP.Revoke, revokePayload(uid, RRC.CACompromise));
    t.equal(r.status, OK, 'a Pre-Active key can be revoked as compromised');
    const o = await stored(engine, uid);
    t.equal(o.state, ST.Compromised);
    t.equal(scalar(attrValue(o, 'Compromise Occurrence Date')), scalar(attrValue(o, 'Initial Date')));
    const again = await engine.call(OP.Revoke, revokePayload(uid, RRC.KeyCompromise, 100n));
    t.equal(again.status, OK, 'revoking a compromised key again as compromised');
    t.equal(scalar(attrValue(await stored(engine, uid), 'Compromise Occurrence Date')), scalar(attrValue(o, 'Initial Date')), 'the first compromise dates stay');
  });

  await t.test('refused transitions and fields', async (t) => {
    const uid = await createKey(engine, '1.4');
    let r = await engine.call(OP.Revoke, revokePayload(uid, RRC.Superseded, 5n));
    t.equal(r.reason, reason('InvalidField'), 'occurrence date with a non-compromise reason');
    r = await engine.call(OP.Revoke, [uidNode(uid)]);
    t.equal(r.reason, reason('MissingData'), 'no Revocation Reason');
    r = await engine.call(OP.Revoke, revokePayload(uid, 0x77));
    t.equal(r.reason, reason('InvalidField'), 'unknown reason code');
    r = await engine.call(OP.Revoke, revokePayload(uid, RRC.KeyCompromise));
    t.equal(r.status, OK);
    for (const version of ['1.4', '2.1'] as const) {
      r = await engine.call(OP.Revoke, revokePayload(uid, RRC.CessationOfOperation), { version });
      t.equal(r.reason, expectedReason(version, 'WrongKeyLifecycleState', 'PermissionDenied'), `${version}: a compromised key cannot be deactivated`);
      r = await call(OP.Activate, uid, version);
      t.equal(r.reason, expectedReason(version, 'WrongKeyLifecycleState', 'PermissionDenied'), `${version}: nor activated`);
    }
  });

  await t.test('Pre-Active: destroyed directly; a destroyed key can still be marked compromised', async (t) => {
    const uid = await createKey(engine, '1.4');
    t.equal((await call(OP.Destroy, uid, '1.4')).status, OK, 'Destroy of a Pre-Active key');
    t.equal((await stored(engine, uid)).state, ST.Destroyed);
    const r = await engine.call(OP.Revoke, revokePayload(uid, RRC.KeyCompromise));
    t.equal(r.status, OK);
    t.equal((await stored(engine, uid)).state, ST.DestroyedCompromised, 'Destroyed -> Destroyed Compromised');
    const r2 = await engine.call(OP.Revoke, revokePayload((await createKey(engine, '1.4')), RRC.Unspecified));
    t.equal(r2.status, OK, 'Revoke of a Pre-Active key for another reason deactivates it');
  });

  await t.test('Deactivated by date, then revoked: the date stays, the reason is recorded', async (t) => {
    const past = nowS() - 100n;
    const uid = await createKey(engine, '1.4', [...AES256(), activation(past - 100n), a('Deactivation Date', T.date(Tag.DeactivationDate, past))]);
    t.equal((await stored(engine, uid)).state, ST.Deactivated);
    const r = await engine.call(OP.Revoke, revokePayload(uid, RRC.Superseded));
    t.equal(r.status, OK);
    const o = await stored(engine, uid);
    t.equal(scalar(attrValue(o, 'Deactivation Date')), past, 'Deactivation Date unchanged');
    t.ok(attrValue(o, 'Revocation Reason'), 'reason recorded');
  });

  await t.test('Get: formats, wrapping, compression, unknown uids', async (t) => {
    const uid = await createKey(engine, '1.4');
    const raw = keyBytes((await get(engine, uid)).payload)!;
    for (const version of ['1.4', '2.1'] as const) {
      const tr = await get(engine, uid, version, [T.enum(Tag.KeyFormatType, KFT.TransparentSymmetricKey)]);
      t.equal(tr.status, OK);
      const kb = keyBlock(tr.payload);
      t.equal(enumValue(kb, Tag.KeyFormatType), KFT.TransparentSymmetricKey, `${version}: Transparent Symmetric Key`);
      t.ok(struct(struct(kb, Tag.KeyValue), Tag.KeyMaterial), 'Key Material is a structure');
      t.same(keyBytes(tr.payload), raw, 'holding the same key');
      const rw = await get(engine, uid, version, [T.enum(Tag.KeyFormatType, KFT.Raw)]);
      t.same(keyBytes(rw.payload), raw, `${version}: Raw on request`);
      let r = await get(engine, uid, version, [T.enum(Tag.KeyFormatType, KFT.PKCS_8)]);
      t.equal(r.reason, reason('KeyFormatTypeNotSupported'), `${version}: PKCS#8 refused`);
      r = await get(engine, uid, version, [T.struct(Tag.KeyWrappingSpecification, [T.enum(Tag.WrappingMethod, Enums.WrappingMethod.Encrypt)])]);
      t.equal(r.reason, reason('MissingData'), `${version}: Key Wrapping Specification without Encryption Key Information`);
      r = await get(engine, uid, version, [T.enum(Tag.KeyCompressionType, Enums.KeyCompressionType.ECPublicKeyTypeUncompressed)]);
      t.equal(r.reason, reason('KeyCompressionTypeNotSupported'), `${version}: Key Compression Type refused`);
      r = await get(engine, '00000000-0000-0000-0000-000000000000', version);
      t.equal(r.reason, notFound(version), `${version}: unknown uid`);
      r = await engine.call(OP.Get, [], { version });
      t.equal(r.reason, reason('MissingData'), `${version}: no uid and no placeholder`);
    }
  });

  await t.test('Sensitive and not Extractable keys are not handed out', async (t) => {
    const sens = await createKey(engine, '1.4', [...AES256(), a('Sensitive', T.bool(Tag.Sensitive, true))]);
    let r = await get(engine, sens);
    t.equal(r.reason, reason('Sensitive'), 'Sensitive');
    t.equal(scalar(attrValue(await stored(engine, sens), 'Always Sensitive')), true, 'Always Sensitive set by the server');
    const nx = await createKey(engine, '2.1', [...AES256(), a('Extractable', T.bool(Tag.Extractable, false))]);
    r = await get(engine, nx, '2.1');
    t.equal(r.reason, reason('NotExtractable'), 'Not Extractable');
    t.equal(scalar(attrValue(await stored(engine, nx), 'Never Extractable')), true, 'Never Extractable set by the server');
  });

  await t.test('Get Attributes sees the lifecycle', async (t) => {
    const uid = await createKey(engine, '1.4');
    await call(OP.Activate, uid, '1.4');
    const r = await engine.call(OP.GetAttributes, [uidNode(uid), T.enum(Tag.AttributeReference, Tag.State)], { version: '2.1' });
    t.equal(r.status, OK);
    const attrs = struct(r.payload, Tag.Attributes);
    t.equal(enumValue(attrs, Tag.State), ST.Active);
  });
});
