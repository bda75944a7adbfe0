import t from 'tap';
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type TtlvNode } from '../../src/ttlv/index.js';
import { batchItems, itemResult, startEngine } from '../helpers/engine.js';
import type { StoredObject } from '../../src/keystore/types.js';
import { AES256, ALG, ALL, FAILED, OK, OP, ST, a, activation, alg, attrValue, attrValues, createKey, deactivation, expectedReason, get, keyBytes, len, nameA, nowS, reason, scalar, stored, template, text, uidNode, notFound } from './_keys.js';

const LT = Enums.LinkType;

function links(o: StoredObject, type: number): string[] {
  return attrValues(o, 'Link').flatMap((v) => {
    if (v.type !== 'Structure') return [];
    const lt = v.value.find((c) => c.tag === Tag.LinkType);
    const id = v.value.find((c) => c.tag === Tag.LinkedObjectIdentifier);
    return lt?.type === 'Enumeration' && lt.value === type && id?.type === 'TextString' ? [id.value] : [];
  });
}

function names(o: StoredObject): string[] {
  return attrValues(o, 'Name').flatMap((v) => (v.type === 'Structure' ? v.value.flatMap((c) => (c.tag === Tag.NameValue && c.type === 'TextString' ? [c.value] : [])) : []));
}

function rekeyPayload(version: KmipVersion, uid: string | undefined, attrs: KmipAttribute[] = [], offset?: number): TtlvNode[] {
  const p: TtlvNode[] = [];
  if (uid) p.push(uidNode(uid));
  if (offset !== undefined) p.push(T.interval(Tag.Offset, offset));
  if (attrs.length) p.push(...template(version, attrs));
  return p;
}

t.test('ReKey', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  for (const version of ALL) {
    await t.test(`KMIP ${version}: a replacement with new material, the same attributes, links both ways`, async (t) => {
      const uid = await createKey(engine, version, [...AES256(), activation(nowS() - 3600n), nameA(`orig-${version}`), a('x-Product', T.text(Tag.AttributeValue, 'p'))]);
      const oldKey = keyBytes((await get(engine, uid, version)).payload)!;
      const r = await engine.call(OP.ReKey, rekeyPayload(version, uid, [nameA(`first-${version}`)]), { version });
      t.equal(r.status, OK);
      const nu = text(r.payload, Tag.UniqueIdentifier)!;
      t.not(nu, uid, 'a new uid');
      const n = await stored(engine, nu);
      const o = await stored(engine, uid);
      t.equal(n.state, ST.Active, 'the replacement is Active (copied Activation Date in the past)');
      t.equal(o.state, ST.Active, 'the existing key keeps its state');
      t.same(links(n, LT.ReplacedObjectLink), [uid], 'replacement -> Replaced Object Link');
      t.same(links(o, LT.ReplacementObjectLink), [nu], 'existing -> Replacement Object Link');
      t.same(names(n), [`orig-${version}`, `first-${version}`], 'names moved to the replacement, the new one added');
      t.same(names(o), [], 'names removed from the existing key');
      t.equal(scalar(attrValue(n, 'Cryptographic Algorithm')), ALG.AES);
      t.equal(scalar(attrValue(n, 'Cryptographic Length')), 256);
      t.equal(scalar(attrValue(n, 'Cryptographic Usage Mask')), 12);
      t.equal(scalar(attrValue(n, 'x-Product')), 'p', 'custom attributes copied');
      t.equal(scalar(attrValue(n, 'Activation Date')), scalar(attrValue(o, 'Activation Date')), 'Activation Date copied (no Offset)');
      t.equal(scalar(attrValue(n, 'Fresh')), true);
      t.equal(scalar(attrValue(n, 'Unique Identifier')), nu);
      const newKey = keyBytes((await get(engine, nu, version)).payload)!;
      t.equal(newKey.length, 32);
      t.notSame(newKey, oldKey, 'new key material');
      t.equal(n.owner, 'alice');
    });
  }

  await t.test('TC-REKEY-1: chained re-keys through the ID Placeholder', async (t) => {
    const uid = await createKey(engine, '1.4', [...AES256(), activation(nowS() - 3600n), nameA('chain-original')]);
    const resp = await engine.request([
      { operation: OP.ReKey, payload: rekeyPayload('1.4', uid, [nameA('chain-1')]) },
      { operation: OP.ReKey, payload: rekeyPayload('1.4', undefined, [nameA('chain-2')]) },
      { operation: OP.ReKey, payload: rekeyPayload('1.4', undefined, [nameA('chain-3')]) },
    ]);
    const items = batchItems(resp).map(itemResult);
    t.same(items.map((i) => i.status), [OK, OK, OK]);
    const uids = items.map((i) => text(i.payload, Tag.UniqueIdentifier)!);
    const last = await stored(engine, uids[2]!);
    t.same(names(last), ['chain-original', 'chain-1', 'chain-2', 'chain-3']);
    t.same(links(last, LT.ReplacedObjectLink), [uids[1]]);
    t.same(links(await stored(engine, uids[1]!), LT.ReplacementObjectLink), [uids[2]]);
    t.same(links(await stored(engine, uids[1]!), LT.ReplacedObjectLink), [uids[0]], 'the old replaced link is not copied forward');
  });

  await t.test('Offset: Activation Date = now + Offset, the other dates shifted alike (TC-92)', async (t) => {
    const act = nowS() - 7200n;
    const deact = nowS() + 3600n;
    const uid = await createKey(engine, '1.4', [...AES256(), activation(act), deactivation(deact), a('Protect Stop Date', T.date(Tag.ProtectStopDate, deact - 60n))]);
    const before = nowS();
    const r = await engine.call(OP.ReKey, rekeyPayload('1.4', uid, [], 0));
    t.equal(r.status, OK);
    const n = await stored(engine, text(r.payload, Tag.UniqueIdentifier)!);
    const newAct = scalar(attrValue(n, 'Activation Date')) as bigint;
    t.ok(newAct >= before && newAct <= nowS(), 'Activation Date is the Initial Date');
    t.equal(scalar(attrValue(n, 'Initial Date')), newAct);
    t.equal(scalar(attrValue(n, 'Deactivation Date')), deact + (newAct - act), 'Deactivation Date shifted');
    t.equal(scalar(attrValue(n, 'Protect Stop Date')), deact - 60n + (newAct - act), 'Protect Stop Date shifted');
    t.equal(n.state, ST.Active, 'Active');
    const r2 = await engine.call(OP.ReKey, rekeyPayload('2.1', uid, [], 3600), { version: '2.1' });
    const n2 = await stored(engine, text(r2.payload, Tag.UniqueIdentifier)!);
    t.equal(n2.state, ST.PreActive, 'an Offset ahead leaves the replacement Pre-Active');
  });

  await t.test('dates in the request win (TC-94)', async (t) => {
    const uid = await createKey(engine, '1.0', [...AES256(), nameA('rekeyKey')]);
    const when = BigInt(Date.UTC(2006, 0, 1, 11) / 1000);
    const later = BigInt(Date.UTC(2070, 0, 1, 11) / 1000);
    const r = await engine.call(OP.ReKey, rekeyPayload('1.0', uid, [activation(when), a('Process Start Date', T.date(Tag.ProcessStartDate, when)), deactivation(later)]), { version: '1.0' });
    t.equal(r.status, OK);
    const n = await stored(engine, text(r.payload, Tag.UniqueIdentifier)!);
    t.equal(scalar(attrValue(n, 'Activation Date')), when);
    t.equal(scalar(attrValue(n, 'Deactivation Date')), later);
    t.equal(n.state, ST.Active);
    t.equal((await stored(engine, uid)).state, ST.PreActive, 'the existing key is untouched in state');
  });

  await t.test('Usage Limits: the count starts again at the total', async (t) => {
    const ul = T.struct(Tag.UsageLimits, [T.long(Tag.UsageLimitsTotal, 1000n), T.long(Tag.UsageLimitsCount, 10n), T.enum(Tag.UsageLimitsUnit, Enums.UsageLimitsUnit.Byte)]);
    const uid = await createKey(engine, '1.4', [...AES256(), a('Usage Limits', ul)]);
    const r = await engine.call(OP.ReKey, rekeyPayload('1.4', uid));
    const n = await stored(engine, text(r.payload, Tag.UniqueIdentifier)!);
    const v = attrValue(n, 'Usage Limits');
    const count = v?.type === 'Structure' ? v.value.find((c) => c.tag === Tag.UsageLimitsCount) : undefined;
    t.equal(scalar(count), 1000n);
  });

  await t.test('refusals', async (t) => {
    const uid = await createKey(engine, '1.4');
    await engine.call(OP.Destroy, [uidNode(uid)]);
    for (const version of ['1.4', '2.1'] as const) {
      let r = await engine.call(OP.ReKey, rekeyPayload(version, uid), { version });
      t.equal(r.reason, expectedReason(version, 'ObjectDestroyed', 'ItemNotFound'), `${version}: destroyed key`);
      r = await engine.call(OP.ReKey, rekeyPayload(version, 'nope'), { version });
      t.equal(r.reason, notFound(version), `${version}: unknown key`);
      const live = await createKey(engine, version);
      r = await engine.call(OP.ReKey, rekeyPayload(version, live, [len(128)]), { version });
      t.equal(r.reason, reason('InvalidField'), `${version}: another length`);
      r = await engine.call(OP.ReKey, rekeyPayload(version, live, [alg(ALG.AES)]), { version });
      t.equal(r.status, OK, `${version}: the same algorithm may be repeated`);
      r = await engine.call(OP.ReKey, rekeyPayload(version, live, [a('State', T.enum(Tag.State, ST.Active))]), { version });
      t.equal(r.reason, expectedReason(version, 'ReadOnlyAttribute', 'PermissionDenied'), `${version}: server attributes refused`);
    }
    const opaque = await engine.call(
      OP.Register,
      [T.enum(Tag.ObjectType, Enums.ObjectType.OpaqueObject), ...template('1.4', []), T.struct(Tag.OpaqueObject, [T.enum(Tag.OpaqueDataType, 0x80000001), T.bytes(Tag.OpaqueDataValue, Buffer.from('xx'))])],
    );
    const r = await engine.call(OP.ReKey, rekeyPayload('1.4', text(opaque.payload, Tag.UniqueIdentifier)!));
    t.equal(r.status, FAILED);
    t.equal(r.reason, reason('IllegalOperation'), 'an Opaque Object cannot be re-keyed (1.x Illegal Operation)');
  });
});
