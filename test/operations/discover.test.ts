import t from 'tap';
import { Enums, Tag, compareVersions, type KmipVersion } from '../../src/spec/index.js';
import { SERVER_INFO } from '../../src/server/server.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { batchItems, itemResult, startEngine } from '../helpers/engine.js';
import { OK } from './_objects.js';

const DV = Enums.Operation.DiscoverVersions;

function pv(major: number, minor: number): TtlvNode {
  return T.struct(Tag.ProtocolVersion, [T.int(Tag.ProtocolVersionMajor, major), T.int(Tag.ProtocolVersionMinor, minor)]);
}

function versionsOf(payload: StructureNode | undefined): string[] {
  return (payload?.value ?? [])
    .filter((c): c is StructureNode => c.tag === Tag.ProtocolVersion && c.type === 'Structure')
    .map((s) => {
      const get = (tag: number) => {
        const n = s.value.find((c) => c.tag === tag);
        return n?.type === 'Integer' ? n.value : -1;
      };
      return `${get(Tag.ProtocolVersionMajor)}.${get(Tag.ProtocolVersionMinor)}`;
    });
}

function headerVersion(resp: StructureNode): string {
  const h = resp.value.find((c) => c.tag === Tag.ResponseHeader) as StructureNode;
  const p = h.value.find((c) => c.tag === Tag.ProtocolVersion) as StructureNode;
  const n = (tag: number) => (p.value.find((c) => c.tag === tag) as { value: number }).value;
  return `${n(Tag.ProtocolVersionMajor)}.${n(Tag.ProtocolVersionMinor)}`;
}

t.test('Discover Versions', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const ours = [...SERVER_INFO.versions].sort((a, b) => compareVersions(b, a));

  await t.test('vCenter: empty payload in a 1.1 message, no batch item id', async (t) => {
    const resp = await engine.request([{ operation: DV, payload: [] }], { version: '1.1' });
    t.equal(headerVersion(resp), '1.1', 'the response header says 1.1');
    const items = batchItems(resp);
    t.equal(items.length, 1);
    t.notOk(items[0]!.value.some((c) => c.tag === Tag.UniqueBatchItemID), 'no Unique Batch Item ID invented');
    const r = itemResult(items[0]!);
    t.equal(r.status, OK);
    const vs = versionsOf(r.payload);
    t.same(vs, ours, 'every version kmipd speaks, highest first');
    t.ok(vs.includes('1.1'), 'the list holds 1.1');
    t.equal(vs[0], ours[0]);
  });

  await t.test('empty payload in a 2.1 message', async (t) => {
    const resp = await engine.request([{ operation: DV, payload: [] }], { version: '2.1' });
    t.equal(headerVersion(resp), '2.1');
    const r = itemResult(batchItems(resp)[0]!);
    t.equal(r.status, OK);
    t.same(versionsOf(r.payload), ours);
  });

  await t.test('a list: the intersection in the client order', async (t) => {
    for (const version of ['1.1', '2.1'] as KmipVersion[]) {
      const r = await engine.call(DV, [pv(1, 0), pv(9, 31), pv(2, 1), pv(1, 1), pv(1, 0)], { version });
      t.equal(r.status, OK);
      t.same(versionsOf(r.payload), ['1.0', '2.1', '1.1'], `in a ${version} message: unknown dropped, duplicates once, client order kept`);
    }
  });

  await t.test('nothing in common: empty payload (1.1 test case 16.1)', async (t) => {
    const r = await engine.call(DV, [pv(9, 31)], { version: '1.1' });
    t.equal(r.status, OK);
    t.ok(r.payload, 'a Response Payload is present');
    t.same(versionsOf(r.payload), []);
  });

  await t.test('only 1.0', async (t) => {
    const r = await engine.call(DV, [pv(1, 0)], { version: '1.1' });
    t.same(versionsOf(r.payload), ['1.0']);
  });

  await t.test('two DiscoverVersions in one message (vCenter health check shape)', async (t) => {
    const resp = await engine.request(
      [
        { operation: DV, payload: [] },
        { operation: DV, payload: [pv(1, 1)] },
      ],
      { version: '1.1' },
    );
    const items = batchItems(resp).map(itemResult);
    t.same(items.map((i) => i.status), [OK, OK]);
    t.same(versionsOf(items[1]!.payload), ['1.1']);
  });
});
