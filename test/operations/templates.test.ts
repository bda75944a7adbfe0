import t from 'tap';
import { Enums, Tag } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine } from '../helpers/engine.js';
import { FAILED, OK, OP, attrValue, attrValues, get, reason, scalar, stored, text } from './_keys.js';

const OT = Enums.ObjectType;

const attr1x = (name: string, value: TtlvNode): StructureNode => T.struct(Tag.Attribute, [T.text(Tag.AttributeName, name), { ...value, tag: Tag.AttributeValue } as TtlvNode]);
const nameValue = (v: string): TtlvNode => T.struct(Tag.AttributeValue, [T.text(Tag.NameValue, v), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]);
const nameRef = (v: string): StructureNode => T.struct(Tag.Name, [T.text(Tag.NameValue, v), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]);

t.test('Template objects (1.x)', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  const reg = await engine.call(OP.Register, [
    T.enum(Tag.ObjectType, OT.Template),
    T.struct(Tag.TemplateAttribute, []),
    T.struct(Tag.Template, [
      attr1x('Object Group', T.text(0, 'Group1')),
      attr1x('Cryptographic Length', T.int(0, 128)),
      attr1x('x-Purpose', T.text(0, 'from-template')),
      attr1x('Name', nameValue('Template1')),
    ]),
  ], { version: '1.2' });
  t.equal(reg.status, OK, reg.message ?? '');
  const tuid = text(reg.payload, Tag.UniqueIdentifier)!;
  const tobj = await stored(engine, tuid);
  t.equal(tobj.objectType, OT.Template);
  t.equal(attrValues(tobj, 'Name').length, 1, 'the Name in the Template names the template');
  const g = await get(engine, tuid, '1.2');
  t.equal(g.status, OK);
  t.equal((g.payload?.value.find((c) => c.tag === Tag.Template) as StructureNode | undefined)?.value.length, 3, 'Get returns the Template without its name');

  const c = await engine.call(OP.Create, [
    T.enum(Tag.ObjectType, OT.SymmetricKey),
    T.struct(Tag.TemplateAttribute, [
      nameRef('Template1'),
      attr1x('Cryptographic Algorithm', T.enum(0, Enums.CryptographicAlgorithm.AES)),
      attr1x('Cryptographic Length', T.int(0, 256)),
      attr1x('Cryptographic Usage Mask', T.int(0, 12)),
      attr1x('x-Purpose', T.text(0, 'from-create')),
    ]),
  ], { version: '1.2' });
  t.equal(c.status, OK, c.message ?? '');
  const key = await stored(engine, text(c.payload, Tag.UniqueIdentifier)!);
  t.equal(scalar(attrValue(key, 'Object Group')), 'Group1', 'attribute from the template');
  t.equal(scalar(attrValue(key, 'Cryptographic Length')), 256, 'the explicit single-instance attribute wins');
  t.same(attrValues(key, 'x-Purpose').map(scalar), ['from-template', 'from-create'], 'multi-instance attributes add up');
  t.equal(attrValues(key, 'Name').length, 0, 'the template\'s name is not copied');

  const missing = await engine.call(OP.Create, [
    T.enum(Tag.ObjectType, OT.SymmetricKey),
    T.struct(Tag.TemplateAttribute, [nameRef('NoSuchTemplate'), attr1x('Cryptographic Algorithm', T.enum(0, Enums.CryptographicAlgorithm.AES))]),
  ], { version: '1.2' });
  t.equal(missing.status, FAILED);
  t.equal(missing.reason, reason('ItemNotFound'), 'an unknown template');

  const bob = await engine.call(OP.Create, [
    T.enum(Tag.ObjectType, OT.SymmetricKey),
    T.struct(Tag.TemplateAttribute, [nameRef('Template1'), attr1x('Cryptographic Algorithm', T.enum(0, Enums.CryptographicAlgorithm.AES))]),
  ], { version: '1.2', identity: 'bob' });
  t.equal(bob.reason, reason('ItemNotFound'), 'another identity\'s template is not visible');
});
