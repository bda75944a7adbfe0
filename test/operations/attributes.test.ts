import t from 'tap';
import { Enums, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { batchItems, itemResult, startEngine, type Engine } from '../helpers/engine.js';
import {
  FAILED,
  OK,
  attr,
  attribute1x,
  attributes1x,
  childrenOf,
  customAttr,
  insertObject,
  nameAttr,
  textsOf,
  vendorAttribute,
  vendorReference,
} from './_objects.js';

const Op = Enums.Operation;
const R = Enums.ResultReason;

/** vCenter's Unique Batch Item ID: "QLKC" and a 32-bit little-endian counter from 1. */
function qlkc(n: number): Buffer {
  const b = Buffer.from('QLKC\0\0\0\0', 'latin1');
  b.writeUInt32LE(n, 4);
  return b;
}

const VCENTER_TAGS: [string, string][] = [
  ['x-Product_Version', '7.0.3 build-19480866'],
  ['x-Vendor', 'VMware, Inc.'],
  ['x-Product', 'VMware vSphere'],
];

function uidOf(p: StructureNode | undefined): string | undefined {
  return textsOf(p, Tag.UniqueIdentifier)[0];
}

/** The 2.x Attributes structure of a response. */
function attrs2x(p: StructureNode | undefined): TtlvNode[] {
  const s = childrenOf(p, Tag.Attributes)[0];
  return s?.type === 'Structure' ? s.value : [];
}

function vendorValues(nodes: TtlvNode[], vendor: string, name: string): TtlvNode[] {
  return nodes.flatMap((n) => {
    if (n.tag !== Tag.Attribute || n.type !== 'Structure') return [];
    const v = n.value.find((c) => c.tag === Tag.VendorIdentification);
    const a = n.value.find((c) => c.tag === Tag.AttributeName);
    if (v?.type !== 'TextString' || v.value !== vendor || a?.type !== 'TextString' || a.value !== name) return [];
    return n.value.filter((c) => c.tag === Tag.AttributeValue);
  });
}

function textValue(n: TtlvNode | undefined): string | undefined {
  return n?.type === 'TextString' ? n.value : undefined;
}

async function getAttributes1x(engine: Engine, uid: string, names: string[], version: KmipVersion = '1.4', identity?: string) {
  const o: { version: KmipVersion; identity?: string } = { version };
  if (identity) o.identity = identity;
  return engine.call(Op.GetAttributes, [T.text(Tag.UniqueIdentifier, uid), ...names.map((n) => T.text(Tag.AttributeName, n))], o);
}

t.test('attribute operations', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  await t.test('vCenter (1.1): absent x- attributes, three AddAttribute in one message, read back', async (t) => {
    const uid = await insertObject(engine);
    // 1. Three GetAttributes, one message each, of attributes the key does not have yet.
    let counter = 0;
    for (const [name] of VCENTER_TAGS) {
      const resp = await engine.request([{ operation: Op.GetAttributes, id: qlkc(++counter), payload: [T.text(Tag.UniqueIdentifier, uid), T.text(Tag.AttributeName, name)] }], { version: '1.1' });
      const item = batchItems(resp)[0]!;
      const r = itemResult(item);
      t.equal(r.status, OK, `GetAttributes ${name} succeeds`);
      t.same(r.payload!.value.map((c) => c.tag), [Tag.UniqueIdentifier], `${name}: the Unique Identifier and no attribute`);
      t.equal(uidOf(r.payload), uid);
    }
    // 2. One message, three AddAttribute items with QLKC ids 1..3.
    const resp = await engine.request(
      VCENTER_TAGS.map(([name, value], i) => ({
        operation: Op.AddAttribute,
        id: qlkc(i + 1),
        payload: [T.text(Tag.UniqueIdentifier, uid), attribute1x(name, T.text(Tag.AttributeValue, value))],
      })),
      { version: '1.1' },
    );
    const items = batchItems(resp);
    t.equal(items.length, 3);
    items.forEach((item, i) => {
      const id = item.value.find((c) => c.tag === Tag.UniqueBatchItemID);
      t.ok(id?.type === 'ByteString' && Buffer.from(id.value).equals(qlkc(i + 1)), `item ${i + 1}: QLKC id echoed`);
      const r = itemResult(item);
      t.equal(r.status, OK);
      t.equal(uidOf(r.payload), uid);
      const [a] = attributes1x(r.payload);
      t.equal(a?.name, VCENTER_TAGS[i]![0], 'the Attribute is echoed');
      t.equal(a?.index, 0, 'with its assigned index');
      t.equal(textValue(a?.value), VCENTER_TAGS[i]![1]);
    });
    // 3. Read back, one by one and all together.
    for (const [name, value] of VCENTER_TAGS) {
      const r = await getAttributes1x(engine, uid, [name], '1.1');
      const got = attributes1x(r.payload);
      t.same(got.map((a) => [a.name, textValue(a.value)]), [[name, value]]);
    }
    const all = await getAttributes1x(engine, uid, [], '1.1');
    for (const [name, value] of VCENTER_TAGS) t.ok(attributes1x(all.payload).some((a) => a.name === name && textValue(a.value) === value), `${name} among all attributes`);
    // 4. State is Pre-Active (vCenter then activates).
    const st = await getAttributes1x(engine, uid, ['State'], '1.1');
    const [state] = attributes1x(st.payload);
    t.ok(state?.value?.type === 'Enumeration' && state.value.value === Enums.State.PreActive);
    // 5. The same tags are Vendor Attributes of vendor "x" for a 2.x client.
    const g2 = await engine.call(Op.GetAttributes, [T.text(Tag.UniqueIdentifier, uid), vendorReference('x', 'Vendor')], { version: '2.1' });
    t.equal(g2.status, OK);
    t.same(vendorValues(attrs2x(g2.payload), 'x', 'Vendor').map(textValue), ['VMware, Inc.']);
  });

  await t.test('vCenter end to end (1.1): Create, tag, Get while Pre-Active, State, Activate, tag again', async (t) => {
    const v = { version: '1.1' as KmipVersion };
    const created = await engine.call(
      Op.Create,
      [
        T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
        T.struct(Tag.TemplateAttribute, [
          attribute1x('Cryptographic Algorithm', T.enum(Tag.AttributeValue, Enums.CryptographicAlgorithm.AES)),
          attribute1x('Cryptographic Usage Mask', T.int(Tag.AttributeValue, 12)),
          attribute1x('Cryptographic Length', T.int(Tag.AttributeValue, 256)),
        ]),
      ],
      v,
    );
    t.equal(created.status, OK);
    const uid = uidOf(created.payload)!;
    const tag = async (pairs: [string, string][]) => {
      for (const [name] of pairs) {
        const r = await getAttributes1x(engine, uid, [name], '1.1');
        t.equal(r.status, OK);
        t.same(attributes1x(r.payload), [], `${name} absent`);
      }
      const resp = await engine.request(
        pairs.map(([name, value], i) => ({ operation: Op.AddAttribute, id: qlkc(i + 1), payload: [T.text(Tag.UniqueIdentifier, uid), attribute1x(name, T.text(Tag.AttributeValue, value))] })),
        v,
      );
      t.same(batchItems(resp).map((i) => itemResult(i).status), pairs.map(() => OK));
    };
    await tag(VCENTER_TAGS);
    const got = await engine.call(Op.Get, [T.text(Tag.UniqueIdentifier, uid)], v);
    t.equal(got.status, OK, 'Get while Pre-Active');
    const st = await getAttributes1x(engine, uid, ['State'], '1.1');
    const s0 = attributes1x(st.payload)[0]?.value;
    t.ok(s0?.type === 'Enumeration' && s0.value === Enums.State.PreActive);
    t.equal((await engine.call(Op.Activate, [T.text(Tag.UniqueIdentifier, uid)], v)).status, OK);
    await tag([
      ['x-Identifier', '420c1b2e-1111-2222-3333-444455556666'],
      ['x-Component', 'Virtual Machine'],
      ['x-Name', 'vm-01'],
    ]);
    const st2 = await getAttributes1x(engine, uid, ['State', 'x-Name', 'x-Vendor'], '1.1');
    const got2 = attributes1x(st2.payload);
    t.ok(got2[0]?.value?.type === 'Enumeration' && got2[0].value.value === Enums.State.Active, 'Active after Activate');
    t.same(got2.slice(1).map((a) => [a.name, textValue(a.value)]), [['x-Name', 'vm-01'], ['x-Vendor', 'VMware, Inc.']], 'request order kept');
    // An inventory by x-Component finds it.
    const loc = await engine.call(Op.Locate, [attribute1x('x-Component', T.text(Tag.AttributeValue, 'Virtual Machine')), attribute1x('x-Name', T.text(Tag.AttributeValue, 'vm-01'))], { version: '1.4' });
    t.same(textsOf(loc.payload, Tag.UniqueIdentifier), [uid]);
  });

  for (const version of ['2.0', '2.1'] as KmipVersion[]) {
    await t.test(`vCenter's tagging as ${version} Vendor Attributes`, async (t) => {
      const uid = await insertObject(engine);
      for (const [name] of VCENTER_TAGS) {
        const r = await engine.call(Op.GetAttributes, [T.text(Tag.UniqueIdentifier, uid), vendorReference('x', name.slice(2))], { version });
        t.equal(r.status, OK);
        t.same(attrs2x(r.payload), [], `${name}: an empty Attributes`);
        t.equal(childrenOf(r.payload, Tag.Attributes).length, 1, 'Attributes is present (required in 2.x)');
      }
      const resp = await engine.request(
        VCENTER_TAGS.map(([name, value], i) => ({
          operation: Op.AddAttribute,
          id: qlkc(i + 1),
          payload: [T.text(Tag.UniqueIdentifier, uid), T.struct(Tag.NewAttribute, [vendorAttribute('x', name.slice(2), T.text(Tag.AttributeValue, value))])],
        })),
        { version },
      );
      for (const item of batchItems(resp)) {
        const r = itemResult(item);
        t.equal(r.status, OK);
        t.same(r.payload!.value.map((c) => c.tag), [Tag.UniqueIdentifier], '2.x answers with the Unique Identifier only');
      }
      const r = await engine.call(Op.GetAttributes, [T.text(Tag.UniqueIdentifier, uid), ...VCENTER_TAGS.map(([n]) => vendorReference('x', n.slice(2)))], { version });
      for (const [name, value] of VCENTER_TAGS) t.same(vendorValues(attrs2x(r.payload), 'x', name.slice(2)).map(textValue), [value]);
      // Readable by a 1.x client under their x- names.
      const r1 = await getAttributes1x(engine, uid, ['x-Product'], '1.1');
      t.same(attributes1x(r1.payload).map((a) => textValue(a.value)), ['VMware vSphere']);
    });
  }

  await t.test('1.x Attribute Index semantics', async (t) => {
    const uid = await insertObject(engine, { attrs: [nameAttr('idx-a')] });
    const add = async (value: string) =>
      engine.call(Op.AddAttribute, [T.text(Tag.UniqueIdentifier, uid), attribute1x('Name', T.struct(Tag.AttributeValue, [T.text(Tag.NameValue, value), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]))]);
    const b = await add('idx-b');
    t.equal(b.status, OK);
    t.equal(attributes1x(b.payload)[0]?.index, 1, 'second Name gets index 1');
    const c = await add('idx-c');
    t.equal(attributes1x(c.payload)[0]?.index, 2);
    // Modify index 1.
    const m = await engine.call(Op.ModifyAttribute, [
      T.text(Tag.UniqueIdentifier, uid),
      attribute1x('Name', T.struct(Tag.AttributeValue, [T.text(Tag.NameValue, 'idx-B'), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]), 1),
    ]);
    t.equal(m.status, OK);
    t.equal(attributes1x(m.payload)[0]?.index, 1, 'the modified instance keeps its index');
    // Delete without an index: index 0.
    const d = await engine.call(Op.DeleteAttribute, [T.text(Tag.UniqueIdentifier, uid), T.text(Tag.AttributeName, 'Name')]);
    t.equal(d.status, OK);
    const deleted = attributes1x(d.payload)[0];
    t.equal(deleted?.name, 'Name', 'the deleted Attribute is returned');
    t.equal(deleted?.value?.type === 'Structure' && textValue(deleted.value.value.find((x) => x.tag === Tag.NameValue)), 'idx-a');
    // The others keep their indices; a new one takes the next number.
    const g = await getAttributes1x(engine, uid, ['Name']);
    t.same(attributes1x(g.payload).map((a) => a.index), [1, 2]);
    const e = await add('idx-e');
    t.equal(attributes1x(e.payload)[0]?.index, 3);
    // Index that does not exist.
    const bad = await engine.call(Op.DeleteAttribute, [T.text(Tag.UniqueIdentifier, uid), T.text(Tag.AttributeName, 'Name'), T.int(Tag.AttributeIndex, 0)]);
    t.equal(bad.status, FAILED);
    t.equal(bad.reason, R.ItemNotFound, '1.x: Item Not Found');
    const badMod = await engine.call(Op.ModifyAttribute, [T.text(Tag.UniqueIdentifier, uid), attribute1x('Contact Information', T.text(Tag.AttributeValue, 'x'))]);
    t.equal(badMod.reason, R.ItemNotFound, 'modifying an attribute the object lacks');
    // Add must not name an index.
    const withIndex = await engine.call(Op.AddAttribute, [T.text(Tag.UniqueIdentifier, uid), attribute1x('x-foo', T.text(Tag.AttributeValue, 'v'), 4)]);
    t.equal(withIndex.reason, R.InvalidField);
    // The same name twice in Get Attributes (1.1 test case 17.1).
    const dup = await getAttributes1x(engine, uid, ['Object Type', 'Object Type']);
    t.equal(dup.status, FAILED);
    t.equal(dup.reason, R.InvalidMessage);
    // A Name already used by another object of this client.
    const other = await insertObject(engine, { attrs: [nameAttr('taken')] });
    t.ok(other);
    const clash = await add('taken');
    t.equal(clash.status, FAILED);
    t.equal(clash.reason, R.IllegalOperation);
  });

  await t.test('a Name the object already has is not unique either (BL-M-8-21)', async (t) => {
    const v = { version: '2.1' as KmipVersion };
    const name = (value: string) => T.struct(Tag.Name, [T.text(Tag.NameValue, value), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]);
    const uid = await insertObject(engine, { attrs: [nameAttr('bl-m-8'), nameAttr('bl-m-8-second')] });
    const U = T.text(Tag.UniqueIdentifier, uid);
    const same = await engine.call(Op.AddAttribute, [U, T.struct(Tag.NewAttribute, [name('bl-m-8')])], v);
    t.equal(same.status, FAILED);
    t.equal(same.reason, R.NonUniqueNameAttribute, '2.x: Non Unique Name Attribute');
    const same1x = await engine.call(Op.AddAttribute, [U, attribute1x('Name', T.struct(Tag.AttributeValue, [T.text(Tag.NameValue, 'bl-m-8'), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]))]);
    t.equal(same1x.reason, R.InvalidField, '1.x: Invalid Field (no Non Unique Name Attribute before 2.0)');
    // Modify one Name to the value of the other: two equal Names.
    const clash = await engine.call(Op.ModifyAttribute, [U, T.struct(Tag.CurrentAttribute, [name('bl-m-8-second')]), T.struct(Tag.NewAttribute, [name('bl-m-8')])], v);
    t.equal(clash.reason, R.NonUniqueNameAttribute, 'Modify to a Name the object has under another instance');
    // Modify a Name to its own value, and add a new distinct one: fine.
    t.equal((await engine.call(Op.ModifyAttribute, [U, T.struct(Tag.CurrentAttribute, [name('bl-m-8')]), T.struct(Tag.NewAttribute, [name('bl-m-8')])], v)).status, OK, 'a Name modified to its own value');
    t.equal((await engine.call(Op.AddAttribute, [U, T.struct(Tag.NewAttribute, [name('bl-m-8-third')])], v)).status, OK, 'a new distinct Name');
    const g = await engine.call(Op.GetAttributes, [U, T.enum(Tag.AttributeReference, Tag.Name)], v);
    t.same(
      attrs2x(g.payload).map((n) => (n.type === 'Structure' ? textValue(n.value.find((c) => c.tag === Tag.NameValue)) : undefined)),
      ['bl-m-8', 'bl-m-8-second', 'bl-m-8-third'],
      'the refused changes left the Names as they were',
    );
  });

  await t.test('single-instance and read-only attributes', async (t) => {
    const uid = await insertObject(engine);
    const ci = (v: string) => attribute1x('Contact Information', T.text(Tag.AttributeValue, v));
    t.equal((await engine.call(Op.AddAttribute, [T.text(Tag.UniqueIdentifier, uid), ci('a')])).status, OK);
    const again = await engine.call(Op.AddAttribute, [T.text(Tag.UniqueIdentifier, uid), ci('b')]);
    t.equal(again.status, FAILED);
    t.equal(again.reason, R.IllegalOperation, '1.x: the specified attribute already exists');
    const again2 = await engine.call(Op.AddAttribute, [T.text(Tag.UniqueIdentifier, uid), T.struct(Tag.NewAttribute, [T.text(Tag.ContactInformation, 'b')])], { version: '2.1' });
    t.equal(again2.reason, R.AttributeSingleValued, '2.x: Attribute Single Valued (BL-M-5-21)');
    const ro = await engine.call(Op.ModifyAttribute, [T.text(Tag.UniqueIdentifier, uid), attribute1x('State', T.enum(Tag.AttributeValue, Enums.State.Active))]);
    t.equal(ro.status, FAILED);
    t.equal(ro.reason, R.PermissionDenied, '1.x: read-only is Permission Denied');
    const ro2 = await engine.call(Op.ModifyAttribute, [T.text(Tag.UniqueIdentifier, uid), T.struct(Tag.NewAttribute, [T.text(Tag.UniqueIdentifier, 'mine')])], { version: '2.1' });
    t.equal(ro2.reason, R.AttributeReadOnly);
    const wrongType = await engine.call(Op.AddAttribute, [T.text(Tag.UniqueIdentifier, uid), attribute1x('Object Group', T.int(Tag.AttributeValue, 3))]);
    t.equal(wrongType.status, FAILED, 'a value of the wrong type');
  });

  await t.test('vSphere 8: ModifyAttribute of a custom attribute (1.1, by name)', async (t) => {
    const uid = await insertObject(engine, { attrs: [customAttr('x-Name', 'vm-01')] });
    const m = await engine.call(Op.ModifyAttribute, [T.text(Tag.UniqueIdentifier, uid), attribute1x('x-Name', T.text(Tag.AttributeValue, 'vm-02'))], { version: '1.1' });
    t.equal(m.status, OK);
    t.same(attributes1x(m.payload).map((a) => [a.name, textValue(a.value)]), [['x-Name', 'vm-02']]);
    const g = await getAttributes1x(engine, uid, ['x-Name'], '1.1');
    t.same(attributes1x(g.payload).map((a) => textValue(a.value)), ['vm-02']);
    // Last Change Date follows the change.
    const lcd = await getAttributes1x(engine, uid, ['Last Change Date']);
    t.equal(attributes1x(lcd.payload).length, 1);
  });

  await t.test('2.x Modify / Delete / Set', async (t) => {
    const v = { version: '2.1' as KmipVersion };
    const uid = await insertObject(engine, { attrs: [customAttr('x-tag', 'one'), customAttr('x-tag', 'two')] });
    const U = T.text(Tag.UniqueIdentifier, uid);
    const va = (value: string) => vendorAttribute('x', 'tag', T.text(Tag.AttributeValue, value));
    // Without Current Attribute, two instances are ambiguous.
    const amb = await engine.call(Op.ModifyAttribute, [U, T.struct(Tag.NewAttribute, [va('three')])], v);
    t.equal(amb.reason, R.MultiValuedAttribute);
    const mod = await engine.call(Op.ModifyAttribute, [U, T.struct(Tag.CurrentAttribute, [va('two')]), T.struct(Tag.NewAttribute, [va('TWO')])], v);
    t.equal(mod.status, OK);
    const miss = await engine.call(Op.ModifyAttribute, [U, T.struct(Tag.CurrentAttribute, [va('zzz')]), T.struct(Tag.NewAttribute, [va('x')])], v);
    t.equal(miss.reason, R.AttributeInstanceNotFound);
    let g = await engine.call(Op.GetAttributes, [U, vendorReference('x', 'tag')], v);
    t.same(vendorValues(attrs2x(g.payload), 'x', 'tag').map(textValue), ['one', 'TWO']);
    // Set on two instances: Multi Valued Attribute (TC-SETATTR-3-20).
    const setMulti = await engine.call(Op.SetAttribute, [U, T.struct(Tag.NewAttribute, [va('x')])], v);
    t.equal(setMulti.reason, R.MultiValuedAttribute);
    // Delete by Current Attribute: that instance.
    const delOne = await engine.call(Op.DeleteAttribute, [U, T.struct(Tag.CurrentAttribute, [va('one')])], v);
    t.equal(delOne.status, OK);
    g = await engine.call(Op.GetAttributes, [U, vendorReference('x', 'tag')], v);
    t.same(vendorValues(attrs2x(g.payload), 'x', 'tag').map(textValue), ['TWO']);
    // Set with one instance replaces it; Modify without Current Attribute works too.
    t.equal((await engine.call(Op.SetAttribute, [U, T.struct(Tag.NewAttribute, [va('set')])], v)).status, OK);
    t.equal((await engine.call(Op.ModifyAttribute, [U, T.struct(Tag.NewAttribute, [va('modified')])], v)).status, OK);
    g = await engine.call(Op.GetAttributes, [U, vendorReference('x', 'tag')], v);
    t.same(vendorValues(attrs2x(g.payload), 'x', 'tag').map(textValue), ['modified']);
    // Delete by reference: every instance.
    await engine.call(Op.AddAttribute, [U, T.struct(Tag.NewAttribute, [va('again')])], v);
    t.equal((await engine.call(Op.DeleteAttribute, [U, vendorReference('x', 'tag')], v)).status, OK);
    g = await engine.call(Op.GetAttributes, [U, vendorReference('x', 'tag')], v);
    t.same(attrs2x(g.payload), []);
    const gone = await engine.call(Op.DeleteAttribute, [U, vendorReference('x', 'tag')], v);
    t.equal(gone.reason, R.AttributeNotFound);
    // Set on an absent attribute adds it; a standard one too.
    t.equal((await engine.call(Op.SetAttribute, [U, T.struct(Tag.NewAttribute, [T.text(Tag.Description, 'd1')])], v)).status, OK);
    t.equal((await engine.call(Op.SetAttribute, [U, T.struct(Tag.NewAttribute, [T.text(Tag.Description, 'd2')])], v)).status, OK);
    g = await engine.call(Op.GetAttributes, [U, T.enum(Tag.AttributeReference, Tag.Description)], v);
    t.same(attrs2x(g.payload).map(textValue), ['d2']);
    // Set does not exist in 1.x.
    const s14 = await engine.call(Op.SetAttribute, [U, T.struct(Tag.NewAttribute, [T.text(Tag.Description, 'd3')])], { version: '1.4' });
    t.equal(s14.reason, R.OperationNotSupported);
    const delNone = await engine.call(Op.DeleteAttribute, [U], v);
    t.equal(delNone.reason, R.MissingData);
  });

  await t.test('another identity sees nothing', async (t) => {
    const uid = await insertObject(engine, { owner: 'alice', attrs: [customAttr('x-secret', 's')] });
    const g = await getAttributes1x(engine, uid, ['x-secret'], '1.4', 'bob');
    t.equal(g.status, FAILED);
    t.equal(g.reason, R.ItemNotFound);
    const missing = await getAttributes1x(engine, 'no-such-uid', [], '1.4', 'bob');
    t.equal(missing.reason, R.ItemNotFound, 'exactly like a missing object');
    t.equal(missing.message?.replace('no-such-uid', uid), g.message, 'same message');
    for (const op of [Op.AddAttribute, Op.ModifyAttribute]) {
      const r = await engine.call(op, [T.text(Tag.UniqueIdentifier, uid), attribute1x('x-secret', T.text(Tag.AttributeValue, 'bob'))], { identity: 'bob' });
      t.equal(r.reason, R.ItemNotFound);
    }
    const d = await engine.call(Op.DeleteAttribute, [T.text(Tag.UniqueIdentifier, uid), T.text(Tag.AttributeName, 'x-secret')], { identity: 'bob' });
    t.equal(d.reason, R.ItemNotFound);
    const l = await engine.call(Op.GetAttributeList, [T.text(Tag.UniqueIdentifier, uid)], { identity: 'bob' });
    t.equal(l.reason, R.ItemNotFound);
    const still = await getAttributes1x(engine, uid, ['x-secret']);
    t.same(attributes1x(still.payload).map((a) => textValue(a.value)), ['s'], "alice's attribute untouched");
  });

  await t.test('State is evaluated at the time of the request', async (t) => {
    const past = T.date(Tag.ActivationDate, BigInt(Math.floor(Date.now() / 1000) + 2));
    // Inserted Pre-Active with an Activation Date two seconds ahead; read once it has passed.
    const uid = await insertObject(engine, { attrs: [attr('Activation Date', past)], state: Enums.State.PreActive });
    const before = await getAttributes1x(engine, uid, ['State']);
    t.ok(attributes1x(before.payload)[0]?.value?.type === 'Enumeration');
    await new Promise((r) => setTimeout(r, 2100));
    const after = await getAttributes1x(engine, uid, ['State']);
    const s = attributes1x(after.payload)[0]?.value;
    t.ok(s?.type === 'Enumeration' && s.value === Enums.State.Active, 'Active once the Activation Date has passed');
  });

  await t.test('attributes a version does not know are never sent', async (t) => {
    const uid = await insertObject(engine, { attrs: [attr('Sensitive', T.bool(Tag.Sensitive, false)), customAttr('x-any', 'v')] });
    const r10 = await getAttributes1x(engine, uid, [], '1.0');
    const names10 = attributes1x(r10.payload).map((a) => a.name);
    t.notOk(names10.includes('Sensitive'), 'Sensitive (1.4) not shown to 1.0');
    t.ok(names10.includes('x-any') && names10.includes('Cryptographic Algorithm'));
    const r14 = await getAttributes1x(engine, uid, [], '1.4');
    t.ok(attributes1x(r14.payload).some((a) => a.name === 'Sensitive'));
    const asked = await getAttributes1x(engine, uid, ['Sensitive'], '1.0');
    t.same(attributes1x(asked.payload), [], 'asked by name: still absent');
    const list10 = await engine.call(Op.GetAttributeList, [T.text(Tag.UniqueIdentifier, uid)], { version: '1.0' });
    const names = textsOf(list10.payload, Tag.AttributeName);
    t.notOk(names.includes('Sensitive'));
    t.ok(names.includes('x-any') && names.includes('State'));
    t.equal(new Set(names).size, names.length, 'each name once');
  });

  await t.test('Get Attribute List in 2.x: Attribute References', async (t) => {
    const uid = await insertObject(engine, { attrs: [customAttr('x-Product', 'p'), nameAttr('gal-2x')] });
    const r = await engine.call(Op.GetAttributeList, [T.text(Tag.UniqueIdentifier, uid)], { version: '2.1' });
    t.equal(r.status, OK);
    const refs = childrenOf(r.payload, Tag.AttributeReference);
    t.ok(refs.some((n) => n.type === 'Enumeration' && n.value === Tag.CryptographicAlgorithm));
    t.ok(refs.some((n) => n.type === 'Enumeration' && n.value === Tag.Name));
    t.ok(refs.some((n) => n.type === 'Structure' && textsOf(n, Tag.VendorIdentification)[0] === 'x' && textsOf(n, Tag.AttributeName)[0] === 'Product'));
  });

  await t.test('ID Placeholder: attribute operations without a Unique Identifier', async (t) => {
    const uid = await insertObject(engine);
    const resp = await engine.request([
      { operation: Op.GetAttributes, payload: [T.text(Tag.UniqueIdentifier, uid), T.text(Tag.AttributeName, 'State')] },
      { operation: Op.AddAttribute, payload: [attribute1x('x-ph', T.text(Tag.AttributeValue, 'v'))] },
      { operation: Op.GetAttributes, payload: [T.text(Tag.AttributeName, 'x-ph')] },
    ]);
    const items = batchItems(resp).map(itemResult);
    t.same(items.map((i) => i.status), [OK, OK, OK]);
    t.equal(uidOf(items[1]!.payload), uid);
    t.same(attributes1x(items[2]!.payload).map((a) => textValue(a.value)), ['v']);
  });
});
