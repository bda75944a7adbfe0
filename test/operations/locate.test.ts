import t from 'tap';
import { Enums, Masks, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { batchItems, itemResult, startEngine, type Engine } from '../helpers/engine.js';
import { FAILED, OK, attr, attribute1x, childrenOf, customAttr, insertObject, nameAttr, textsOf, vendorAttribute } from './_objects.js';
import { AES256, OP, createKey, text } from './_keys.js';

const Op = Enums.Operation;

function uids(p: StructureNode | undefined): string[] {
  return textsOf(p, Tag.UniqueIdentifier);
}

function located(p: StructureNode | undefined): number | undefined {
  const n = childrenOf(p, Tag.LocatedItems)[0];
  return n?.type === 'Integer' ? n.value : undefined;
}

function name1x(value: string): StructureNode {
  return attribute1x('Name', T.struct(Tag.AttributeValue, [T.text(Tag.NameValue, value), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]));
}

async function locate(engine: Engine, payload: TtlvNode[], version: KmipVersion = '1.4', identity = 'alice') {
  const r = await engine.call(Op.Locate, payload, { version, identity });
  return r;
}

const nowS = () => BigInt(Math.floor(Date.now() / 1000));

t.test('Locate', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  await t.test('by Name, and nobody else sees it', async (t) => {
    const mine = await insertObject(engine, { attrs: [nameAttr('loc-name-1')] });
    await insertObject(engine, { attrs: [nameAttr('loc-name-2')] });
    const bobs = await insertObject(engine, { owner: 'bob', attrs: [nameAttr('loc-name-1-bob')] });
    const r = await locate(engine, [name1x('loc-name-1')]);
    t.equal(r.status, OK);
    t.same(uids(r.payload), [mine]);
    t.equal(located(r.payload), 1, 'Located Items in 1.4');
    const asBob = await locate(engine, [name1x('loc-name-1')], '1.4', 'bob');
    t.same(uids(asBob.payload), [], "bob does not find alice's object");
    const bobOwn = await locate(engine, [name1x('loc-name-1-bob')], '1.4', 'bob');
    t.same(uids(bobOwn.payload), [bobs]);
    const aliceBob = await locate(engine, [name1x('loc-name-1-bob')]);
    t.same(uids(aliceBob.payload), [], "alice does not find bob's object");
    // Name Type is matched too when given.
    const uri = await locate(engine, [attribute1x('Name', T.struct(Tag.AttributeValue, [T.text(Tag.NameValue, 'loc-name-1'), T.enum(Tag.NameType, Enums.NameType.URI)]))]);
    t.same(uids(uri.payload), [], 'same Name Value, other Name Type');
  });

  await t.test('by custom x- attribute, with Object Type and algorithm', async (t) => {
    const a = await insertObject(engine, { attrs: [customAttr('x-Component', 'Virtual Machine'), customAttr('x-Identifier', 'vm-aaa')] });
    const b = await insertObject(engine, { attrs: [customAttr('x-Component', 'Virtual Machine'), customAttr('x-Identifier', 'vm-bbb')] });
    await insertObject(engine, { attrs: [customAttr('x-Component', 'ESXi Server')] });
    await insertObject(engine, { owner: 'bob', attrs: [customAttr('x-Component', 'Virtual Machine')] });
    const vm = await locate(engine, [
      attribute1x('Object Type', T.enum(Tag.AttributeValue, Enums.ObjectType.SymmetricKey)),
      attribute1x('Cryptographic Algorithm', T.enum(Tag.AttributeValue, Enums.CryptographicAlgorithm.AES)),
      attribute1x('x-Component', T.text(Tag.AttributeValue, 'Virtual Machine')),
    ]);
    t.same(uids(vm.payload), [b, a], 'newest first');
    const one = await locate(engine, [attribute1x('x-Component', T.text(Tag.AttributeValue, 'Virtual Machine')), attribute1x('x-Identifier', T.text(Tag.AttributeValue, 'vm-aaa'))]);
    t.same(uids(one.payload), [a], 'every attribute must match');
    const none = await locate(engine, [attribute1x('Object Type', T.enum(Tag.AttributeValue, Enums.ObjectType.SecretData)), attribute1x('x-Component', T.text(Tag.AttributeValue, 'Virtual Machine'))]);
    t.same(uids(none.payload), []);
    // The same in 2.x: one Attributes structure, the custom attribute as a vendor Attribute.
    const v2 = await locate(engine, [T.struct(Tag.Attributes, [T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey), vendorAttribute('x', 'Component', T.text(Tag.AttributeValue, 'Virtual Machine'))])], '2.1');
    t.equal(v2.status, OK);
    t.same(uids(v2.payload), [b, a]);
    t.equal(located(v2.payload), 2);
  });

  await t.test('by State, including time-based transitions', async (t) => {
    const group = attr('Object Group', T.text(Tag.ObjectGroup, 'state-group'));
    const pre = await insertObject(engine, { attrs: [group] });
    const act = await insertObject(engine, { attrs: [group], state: Enums.State.Active });
    // Stored Pre-Active with an Activation Date already passed: it is Active.
    const due = await insertObject(engine, { attrs: [group, attr('Activation Date', T.date(Tag.ActivationDate, nowS() + 1n))], now: new Date(Date.now() - 10_000) });
    await new Promise((r) => setTimeout(r, 1100));
    const g = attribute1x('Object Group', T.text(Tag.AttributeValue, 'state-group'));
    const active = await locate(engine, [g, attribute1x('State', T.enum(Tag.AttributeValue, Enums.State.Active))]);
    t.same(uids(active.payload), [due, act]);
    const preActive = await locate(engine, [g, attribute1x('State', T.enum(Tag.AttributeValue, Enums.State.PreActive))]);
    t.same(uids(preActive.payload), [pre]);
    const both = await locate(engine, [g, attribute1x('State', T.enum(Tag.AttributeValue, Enums.State.PreActive)), attribute1x('State', T.enum(Tag.AttributeValue, Enums.State.Active))]);
    t.same(uids(both.payload), [], 'two different States match nothing');
  });

  await t.test('date range: two instances of the same date attribute', async (t) => {
    const base = nowS() + 100_000n;
    const d = (k: bigint) => attr('Activation Date', T.date(Tag.ActivationDate, base + k));
    const g = attr('Object Group', T.text(Tag.ObjectGroup, 'date-group'));
    const o1 = await insertObject(engine, { attrs: [g, d(10n)] });
    const o2 = await insertObject(engine, { attrs: [g, d(20n)] });
    const o3 = await insertObject(engine, { attrs: [g, d(30n)] });
    await insertObject(engine, { attrs: [g] });
    const ad = (k: bigint) => attribute1x('Activation Date', T.date(Tag.AttributeValue, base + k));
    const range = await locate(engine, [ad(10n), ad(20n)]);
    t.same(uids(range.payload), [o2, o1], 'limits included');
    const reversed = await locate(engine, [ad(30n), ad(15n)]);
    t.same(uids(reversed.payload), [o3, o2], 'order of the two instances does not matter');
    const exact = await locate(engine, [ad(20n)]);
    t.same(uids(exact.payload), [o2], 'one instance: that date');
    const three = await locate(engine, [ad(1n), ad(2n), ad(3n)]);
    t.equal(three.status, FAILED, 'three instances of a date: Invalid Field');
    // 2.x: the same, with Date-Time values in Attributes.
    const v2 = await locate(engine, [T.struct(Tag.Attributes, [T.date(Tag.ActivationDate, base + 15n), T.date(Tag.ActivationDate, base + 35n)])], '2.1');
    t.same(uids(v2.payload), [o3, o2]);
    // The largest date stands for "no such attribute".
    const undef = await locate(engine, [attribute1x('Object Group', T.text(Tag.AttributeValue, 'date-group')), attribute1x('Activation Date', T.date(Tag.AttributeValue, (1n << 63n) - 1n))]);
    t.equal(uids(undef.payload).length, 1, 'the group member without an Activation Date');
  });

  await t.test('Offset Items, Maximum Items, Located Items', async (t) => {
    const g = attr('Object Group', T.text(Tag.ObjectGroup, 'page-group'));
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push(await insertObject(engine, { attrs: [g] }));
    const newest = [...made].reverse();
    const crit = attribute1x('Object Group', T.text(Tag.AttributeValue, 'page-group'));
    const first = await locate(engine, [T.int(Tag.MaximumItems, 2), crit]);
    t.same(uids(first.payload), newest.slice(0, 2));
    t.equal(located(first.payload), 5, 'Located Items counts every match');
    const second = await locate(engine, [T.int(Tag.MaximumItems, 2), T.int(Tag.OffsetItems, 2), crit]);
    t.same(uids(second.payload), newest.slice(2, 4));
    const last = await locate(engine, [T.int(Tag.OffsetItems, 4), crit]);
    t.same(uids(last.payload), newest.slice(4));
    const beyond = await locate(engine, [T.int(Tag.OffsetItems, 9), crit]);
    t.same(uids(beyond.payload), []);
    t.equal(located(beyond.payload), 5);
    const old = await locate(engine, [T.int(Tag.MaximumItems, 1), crit], '1.2');
    t.same(uids(old.payload), newest.slice(0, 1));
    t.equal(located(old.payload), undefined, 'no Located Items before 1.3');
    const neg = await locate(engine, [T.int(Tag.MaximumItems, -1), crit]);
    t.equal(neg.status, FAILED);
    // Group Member Default: the member served least recently; all fresh here, so the oldest.
    const def = await locate(engine, [T.enum(Tag.ObjectGroupMember, Enums.ObjectGroupMember.GroupMemberDefault), crit]);
    t.same(uids(def.payload), made.slice(0, 1));
    // Group Member Fresh: objects not yet served (all are fresh here), oldest first.
    const fresh = await locate(engine, [T.enum(Tag.ObjectGroupMember, Enums.ObjectGroupMember.GroupMemberFresh), crit]);
    t.same(uids(fresh.payload), made);
  });

  await t.test('Group Member Default cycles through the group as its members are served', async (t) => {
    const g = attr('Object Group', T.text(Tag.ObjectGroup, 'rr-group'));
    const keys: string[] = [];
    for (let i = 0; i < 3; i++) keys.push(await createKey(engine, '1.4', [...AES256(), g]));
    const crit = attribute1x('Object Group', T.text(Tag.AttributeValue, 'rr-group'));
    const served: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await engine.request([
        { operation: OP.Locate, payload: [T.enum(Tag.ObjectGroupMember, Enums.ObjectGroupMember.GroupMemberDefault), crit] },
        { operation: OP.Get, payload: [] },
      ]);
      const items = batchItems(r).map(itemResult);
      t.equal(items[1]?.status, OK, 'Get of the default member through the ID Placeholder');
      served.push(text(items[1]?.payload, Tag.UniqueIdentifier)!);
    }
    t.same(served, [...keys, keys[0]], 'fresh members oldest first, then the least recently changed');
    const freshNone = await engine.request([
      { operation: OP.Locate, payload: [T.enum(Tag.ObjectGroupMember, Enums.ObjectGroupMember.GroupMemberFresh), crit] },
      { operation: OP.Get, payload: [] },
    ]);
    const items = batchItems(freshNone).map(itemResult);
    t.same(uids(items[0]?.payload), [], 'no fresh member left');
    t.equal(items[1]?.reason, Enums.ResultReason.ItemNotFound, 'Get after a Locate that found nothing: Item Not Found');
  });

  await t.test('Cryptographic Usage Mask: the requested bits at least', async (t) => {
    const g = attr('Object Group', T.text(Tag.ObjectGroup, 'mask-group'));
    const encDec = await insertObject(engine, { attrs: [g] }); // 12 = Encrypt | Decrypt
    const crit = attribute1x('Object Group', T.text(Tag.AttributeValue, 'mask-group'));
    const enc = await locate(engine, [crit, attribute1x('Cryptographic Usage Mask', T.int(Tag.AttributeValue, Masks.CryptographicUsageMask.Encrypt))]);
    t.same(uids(enc.payload), [encDec]);
    const sign = await locate(engine, [crit, attribute1x('Cryptographic Usage Mask', T.int(Tag.AttributeValue, Masks.CryptographicUsageMask.Encrypt | Masks.CryptographicUsageMask.Sign))]);
    t.same(uids(sign.payload), []);
  });

  await t.test('Storage Status Mask and destroyed objects', async (t) => {
    const g = attr('Object Group', T.text(Tag.ObjectGroup, 'ssm-group'));
    const live = await insertObject(engine, { attrs: [g] });
    const dead = await insertObject(engine, { attrs: [g], state: Enums.State.Destroyed });
    const crit2 = T.struct(Tag.Attributes, [T.text(Tag.ObjectGroup, 'ssm-group')]);
    const SSM = Masks.StorageStatusMask;
    const dflt = await locate(engine, [crit2], '2.1');
    t.same(uids(dflt.payload), [live], '2.x: destroyed objects are not on-line');
    const destroyed = await locate(engine, [T.int(Tag.StorageStatusMask, SSM.DestroyedStorage), crit2], '2.1');
    t.same(uids(destroyed.payload), [dead]);
    const both = await locate(engine, [T.int(Tag.StorageStatusMask, SSM.OnLineStorage | SSM.DestroyedStorage), crit2], '2.1');
    t.same(uids(both.payload), [dead, live]);
    const archived = await locate(engine, [T.int(Tag.StorageStatusMask, SSM.ArchivalStorage), crit2], '2.1');
    t.same(uids(archived.payload), [], 'kmipd keeps no archived objects');
    const crit1 = attribute1x('Object Group', T.text(Tag.AttributeValue, 'ssm-group'));
    const v14 = await locate(engine, [crit1], '1.4');
    t.same(uids(v14.payload), [live], '1.x: a destroyed object is not found (no Destroyed Storage bit in 1.x)');
  });

  await t.test('structured attributes match on the fields given', async (t) => {
    const link = (type: number, id: string) => attr('Link', T.struct(Tag.Link, [T.enum(Tag.LinkType, type), T.text(Tag.LinkedObjectIdentifier, id)]));
    const o = await insertObject(engine, { attrs: [link(Enums.LinkType.ReplacementObjectLink, 'target-42')] });
    const byId = await locate(engine, [attribute1x('Link', T.struct(Tag.AttributeValue, [T.text(Tag.LinkedObjectIdentifier, 'target-42')]))]);
    t.same(uids(byId.payload), [o], 'Linked Object Identifier alone');
    const wrongType = await locate(engine, [attribute1x('Link', T.struct(Tag.AttributeValue, [T.enum(Tag.LinkType, Enums.LinkType.PublicKeyLink), T.text(Tag.LinkedObjectIdentifier, 'target-42')]))]);
    t.same(uids(wrongType.payload), []);
  });

  await t.test('no attribute: every object of the client', async (t) => {
    const c1 = await insertObject(engine, { owner: 'carol' });
    const c2 = await insertObject(engine, { owner: 'carol' });
    const all = await locate(engine, [], '1.4', 'carol');
    t.same(uids(all.payload), [c2, c1]);
    const nobody = await locate(engine, [], '1.4', 'dave');
    t.same(uids(nobody.payload), []);
    t.equal(located(nobody.payload), 0);
  });

  await t.test('ID Placeholder: a single result feeds the next item', async (t) => {
    const o = await insertObject(engine, { attrs: [nameAttr('placeholder-target')] });
    const resp = await engine.request([
      { operation: Op.Locate, payload: [name1x('placeholder-target')] },
      { operation: Op.GetAttributes, payload: [T.text(Tag.AttributeName, 'Name')] },
    ]);
    const items = batchItems(resp).map(itemResult);
    t.same(items.map((i) => i.status), [OK, OK]);
    t.same(uids(items[1]!.payload), [o]);
  });

  await t.test(
    'ID Placeholder: several results empty it (1.4 §4.9, 2.1 §6.1.27)',
    async (t) => {
      const g = attr('Object Group', T.text(Tag.ObjectGroup, 'placeholder-many'));
      await insertObject(engine, { attrs: [g] });
      await insertObject(engine, { attrs: [g] });
      const resp = await engine.request([
        { operation: Op.Locate, payload: [attribute1x('Object Group', T.text(Tag.AttributeValue, 'placeholder-many'))] },
        { operation: Op.GetAttributes, payload: [T.text(Tag.AttributeName, 'Name')] },
      ]);
      const items = batchItems(resp).map(itemResult);
      t.equal(items[0]!.status, OK);
      t.equal(items[1]?.status, FAILED, 'the batched item without a Unique Identifier fails');
    },
  );
});
