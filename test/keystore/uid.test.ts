import t from 'tap';
import { uuidv7 } from '../../src/keystore/uid.js';
import { startEngine } from '../helpers/engine.js';
import { Enums, Tag } from '../../src/spec/index.js';
import { T } from '../../src/ttlv/index.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

t.test('RFC 9562 version 7: layout, time, order, uniqueness', async (t) => {
  const now = Date.UTC(2026, 10, 29, 12, 0, 0);
  const id = uuidv7(now);
  t.match(id, V7, 'version 7, variant 10');
  t.equal(parseInt(id.replace(/-/g, '').slice(0, 12), 16), now, 'the first 48 bits are the time in ms');
  const many = Array.from({ length: 20_000 }, (_, i) => uuidv7(now + Math.floor(i / 100)));
  t.equal(new Set(many).size, many.length, 'no two alike');
  let ordered = true;
  for (let i = 100; i < many.length; i += 100) if (!(many[i - 1]! < many[i]!)) ordered = false;
  t.ok(ordered, 'a later millisecond sorts after an earlier one');
  // The 74 random bits really vary: every hex digit after the time takes many values.
  const digits = new Set(many.map((u) => u.replace(/-/g, '').slice(20, 21)));
  t.ok(digits.size >= 12, `random part varies (${digits.size} distinct digits seen at one position)`);
  t.throws(() => uuidv7(-1), RangeError);
  t.throws(() => uuidv7(2 ** 48), RangeError);
});

t.test('Create hands out version 7 identifiers', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const before = Date.now();
  const r = await engine.call(Enums.Operation.Create, [
    T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
    T.struct(Tag.TemplateAttribute, [
      T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Algorithm'), T.enum(Tag.AttributeValue, Enums.CryptographicAlgorithm.AES)]),
      T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Length'), T.int(Tag.AttributeValue, 256)]),
    ]),
  ]);
  t.equal(r.status, Enums.ResultStatus.Success);
  const uid = r.payload?.value.find((c) => c.tag === Tag.UniqueIdentifier)?.value;
  t.type(uid, 'string');
  t.match(uid as string, V7);
  const ms = parseInt((uid as string).replace(/-/g, '').slice(0, 12), 16);
  t.ok(ms >= before && ms <= Date.now(), 'stamped with the time of the Create');
});
