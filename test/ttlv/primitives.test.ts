import t from 'tap';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { decodeTtlv, encodeTtlv, parseHex, toHex, type TtlvNode } from '../../src/ttlv/index.js';
import { need, vectorsDir } from '../helpers/requirements.js';

interface Vector {
  type: string;
  value: string;
  hex: string;
}

t.test('KMIP 1.4 §9.1.2 primitive examples decode and re-encode byte for byte', (t) => {
  const v = vectorsDir();
  if (!need(t, v)) return;
  const file = resolve(v.dir, 'oasis-kmip-spec-v1.4', 'ttlv-primitive-examples-9.1.2.json');
  const { vectors } = JSON.parse(readFileSync(file, 'utf8')) as { vectors: Vector[] };
  t.equal(vectors.length, 10);
  for (const vec of vectors) {
    const bytes = parseHex(vec.hex);
    const node = decodeTtlv(bytes);
    t.equal(node.tag, 0x420020, `${vec.type} tag`);
    t.equal(node.type, vec.type, `${vec.type} type`);
    t.equal(toHex(encodeTtlv(node)), vec.hex.toUpperCase(), `${vec.type} re-encodes`);
  }
  t.end();
});

t.test('values of each type', (t) => {
  const cases: [TtlvNode, string][] = [
    [{ tag: 0x420020, type: 'Integer', value: 8 }, '42002002000000040000000800000000'],
    [{ tag: 0x420020, type: 'LongInteger', value: 123456789000000000n }, '420020030000000801B69B4BA5749200'],
    [{ tag: 0x420020, type: 'BigInteger', value: 1234567890000000000000000000n }, '42002004000000100000000003FD35EB6BC2DF4618080000'],
    [{ tag: 0x420020, type: 'BigInteger', value: -1n }, '4200200400000008FFFFFFFFFFFFFFFF'],
    [{ tag: 0x420020, type: 'BigInteger', value: 0x80n }, '42002004000000080000000000000080'],
    [{ tag: 0x420020, type: 'BigInteger', value: -(1n << 63n) }, '42002004000000088000000000000000'],
    [{ tag: 0x420020, type: 'BigInteger', value: 1n << 63n }, '4200200400000010' + '0000000000000000' + '8000000000000000'],
    [{ tag: 0x420020, type: 'Boolean', value: false }, '42002006000000080000000000000000'],
    [{ tag: 0x420020, type: 'DateTimeExtended', value: 1_700_000_000_123_456n }, '4200200B00000008' + '00060A2418202240'],
    [{ tag: 0x420020, type: 'Interval', value: 864000 }, '4200200A00000004000D2F0000000000'],
    [{ tag: 0x420020, type: 'TextString', value: 'é' }, '4200200700000002C3A9000000000000'],
    [{ tag: 0x420020, type: 'ByteString', value: Buffer.from([1, 2, 3]) }, '42002008000000030102030000000000'],
    [{ tag: 0x420020, type: 'Structure', value: [] }, '4200200100000000'],
  ];
  for (const [node, hex] of cases) {
    t.equal(toHex(encodeTtlv(node)), hex, `${node.type} ${String(node.value)}`);
    t.same(decodeTtlv(parseHex(hex)), node, `${node.type} decodes`);
  }
  t.end();
});
