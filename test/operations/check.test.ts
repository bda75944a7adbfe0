import t from 'tap';
import { Enums, Masks, Tag } from '../../src/spec/index.js';
import { T, type TtlvNode } from '../../src/ttlv/index.js';
import { batchItems, itemResult, startEngine } from '../helpers/engine.js';
import { AES256, FAILED, OK, OP, a, createKey, createPayload, expectedReason, reason, text, uidNode } from './_keys.js';

const M = Masks.CryptographicUsageMask;

t.test('Check', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const ul = T.struct(Tag.UsageLimits, [T.long(Tag.UsageLimitsTotal, 1000n), T.enum(Tag.UsageLimitsUnit, Enums.UsageLimitsUnit.Byte)]);
  const uid = await createKey(engine, '1.4', [...AES256(), a('Usage Limits', ul)]);
  // Lease Time is set by the server only: put it in the store directly.
  const leased = await createKey(engine, '1.4');
  const o = (await engine.store.get(leased))!;
  await engine.store.update({ ...o, attributes: [...o.attributes, a('Lease Time', T.interval(Tag.LeaseTime, 600))] }, o.revision);

  for (const version of ['1.0', '1.4', '2.0', '2.1'] as const) {
    await t.test(`KMIP ${version}`, async (t) => {
      const check = (extra: TtlvNode[]) => engine.call(OP.Check, [uidNode(uid), ...extra], { version });
      let r = await check([T.int(Tag.CryptographicUsageMask, M.Encrypt)]);
      t.equal(r.status, OK, 'Encrypt is allowed');
      t.equal(text(r.payload, Tag.UniqueIdentifier), uid, 'answers the uid');
      r = await check([T.int(Tag.CryptographicUsageMask, M.Encrypt | M.Decrypt)]);
      t.equal(r.status, OK, 'Encrypt|Decrypt is allowed');
      r = await check([T.int(Tag.CryptographicUsageMask, M.Sign)]);
      t.equal(r.status, FAILED, 'Sign is not');
      t.equal(r.reason, expectedReason(version, 'IncompatibleCryptographicUsageMask', 'PermissionDenied'));
      r = await check([T.long(Tag.UsageLimitsCount, 500n)]);
      t.equal(r.status, OK, '500 of 1000 bytes');
      r = await check([T.long(Tag.UsageLimitsCount, 1500n)]);
      t.equal(r.reason, expectedReason(version, 'UsageLimitExceeded', 'PermissionDenied'), '1500 of 1000 bytes');
      r = await check([T.interval(Tag.LeaseTime, 3600)]);
      t.equal(r.status, OK, 'no Lease Time attribute: any lease');
      r = await check([]);
      t.equal(r.status, OK, 'nothing to check');
      r = await engine.call(OP.Check, [uidNode(leased), T.interval(Tag.LeaseTime, 600)], { version });
      t.equal(r.status, OK, 'a lease within the Lease Time');
      r = await engine.call(OP.Check, [uidNode(leased), T.interval(Tag.LeaseTime, 601)], { version });
      t.equal(r.reason, reason('PermissionDenied'), 'a lease beyond the Lease Time');
    });
  }

  await t.test('after Create through the ID Placeholder (BL-M-2-21 shape)', async (t) => {
    const resp = await engine.request(
      [
        { operation: OP.Create, payload: createPayload('2.1', AES256()) },
        { operation: OP.Check, payload: [T.int(Tag.CryptographicUsageMask, M.Decrypt)] },
        { operation: OP.Check, payload: [T.int(Tag.CryptographicUsageMask, M.WrapKey)] },
      ],
      { version: '2.1', header: [T.enum(Tag.BatchErrorContinuationOption, Enums.BatchErrorContinuationOption.Continue)] },
    );
    const items = batchItems(resp).map(itemResult);
    t.same(items.map((i) => i.status), [OK, OK, FAILED]);
    t.equal(items[2]!.reason, reason('IncompatibleCryptographicUsageMask'));
  });

  await t.test('a destroyed or unknown object', async (t) => {
    const gone = await createKey(engine, '1.4');
    await engine.call(OP.Destroy, [uidNode(gone)]);
    let r = await engine.call(OP.Check, [uidNode(gone), T.int(Tag.CryptographicUsageMask, M.Encrypt)], { version: '2.1' });
    t.equal(r.reason, reason('ObjectDestroyed'));
    r = await engine.call(OP.Check, [uidNode('none')]);
    t.equal(r.reason, reason('ItemNotFound'));
  });
});
