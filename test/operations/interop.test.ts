/**
 * Interop (2.0+): Begin / End / Reset acknowledged with an empty payload and logged; nothing
 * changes (Reset does not touch the client's objects); absent in 1.x; bad fields refused.
 */
import t from 'tap';
import { Enums, Tag } from '../../src/spec/index.js';
import { T, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine } from '../helpers/engine.js';
import { FAILED, OK, OP, createKey, expectedReason, get, reason } from './_keys.js';

const IF = Enums.InteropFunction;

function interop(fn: number | undefined, id: string | undefined): TtlvNode[] {
  const p: TtlvNode[] = [];
  if (fn !== undefined) p.push(T.enum(Tag.InteropFunction, fn));
  if (id !== undefined) p.push(T.text(Tag.InteropIdentifier, id));
  return p;
}

t.test('Interop', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  await t.test('Begin, End, Reset: Success, empty payload; Reset keeps the objects', async (t) => {
    for (const version of ['2.0', '2.1'] as const) {
      const r = await engine.call(OP.Interop, interop(IF.Begin, 'BL-M-1-21'), { version });
      t.equal(r.status, OK, `${version} Begin`);
      t.same(r.payload?.value ?? [], [], 'empty payload');
    }
    const uid = await createKey(engine, '2.1');
    for (const fn of [IF.Reset, IF.End]) {
      const r = await engine.call(OP.Interop, interop(fn, 'BL-M-1-21'), { version: '2.1' });
      t.equal(r.status, OK);
      t.same(r.payload?.value ?? [], []);
    }
    t.equal((await get(engine, uid, '2.1')).status, OK, 'the key made during the test is still there after Reset');
  });

  await t.test('refusals', async (t) => {
    let r = await engine.call(OP.Interop, interop(IF.Begin, 'X'), { version: '1.4' });
    t.equal(r.status, FAILED);
    t.equal(r.reason, reason('OperationNotSupported'), 'Interop does not exist in 1.x');
    r = await engine.call(OP.Interop, interop(undefined, 'X'), { version: '2.1' });
    t.equal(r.reason, reason('MissingData'), 'no Interop Function');
    r = await engine.call(OP.Interop, interop(IF.Begin, undefined), { version: '2.1' });
    t.equal(r.reason, reason('MissingData'), 'no Interop Identifier');
    r = await engine.call(OP.Interop, interop(99, 'X'), { version: '2.1' });
    t.equal(r.reason, expectedReason('2.1', 'InvalidField', 'InvalidField'), 'unknown function');
    r = await engine.call(OP.Interop, interop(IF.Begin, ''), { version: '2.1' });
    t.equal(r.reason, reason('InvalidField'), 'empty identifier');
  });

  await t.test('Query Operations lists Interop in 2.x only', async (t) => {
    const q = (version: '1.4' | '2.1') => engine.call(OP.Query, [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryOperations)], { version });
    const has = (r: Awaited<ReturnType<typeof q>>) => r.payload?.value.some((c) => c.tag === Tag.Operation && c.type === 'Enumeration' && c.value === OP.Interop);
    t.ok(has(await q('2.1')));
    t.notOk(has(await q('1.4')));
  });
});
