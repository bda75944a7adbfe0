import t from 'tap';
import { Enums, Tag } from '../../src/spec/index.js';
import { T } from '../../src/ttlv/index.js';
import { startEngine } from '../helpers/engine.js';
import { attr, insertObject } from './_objects.js';
import { AES256, FAILED, OK, OP, activation, child, createKey, expectedReason, nowS, reason, revokePayload, text } from './_keys.js';

t.test('Obtain Lease', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const lease = (uid: string, version: '1.4' | '2.1' = '1.4', identity?: string) =>
    engine.call(OP.ObtainLease, [T.text(Tag.UniqueIdentifier, uid)], { version, ...(identity ? { identity } : {}) });

  const active = await createKey(engine, '1.4', [...AES256(), activation(nowS() - 60n)]);
  let r = await lease(active);
  t.equal(r.status, OK, r.message ?? '');
  t.equal(text(r.payload, Tag.UniqueIdentifier), active);
  const lt = child(r.payload, Tag.LeaseTime);
  t.same([lt?.type, lt?.value], ['Interval', 3600], "the server's Lease Time (setting leaseTimeSeconds, default 3600)");
  t.equal(child(r.payload, Tag.LastChangeDate)?.type, 'DateTime', 'Last Change Date');

  // An object whose Lease Time the server set (Lease Time is server-maintained, so it is put in the store directly).
  const limited = await insertObject(engine, { attrs: [attr('Lease Time', T.interval(Tag.LeaseTime, 600)), attr('Activation Date', T.date(Tag.ActivationDate, nowS() - 60n))], state: Enums.State.Active });
  r = await lease(limited, '2.1');
  t.equal(r.status, OK, r.message ?? '');
  t.equal(child(r.payload, Tag.LeaseTime)?.value, 600, 'the object\'s Lease Time');

  const pre = await createKey(engine, '1.4');
  r = await lease(pre);
  t.equal(r.status, FAILED);
  t.equal(r.reason, expectedReason('1.4', 'WrongKeyLifecycleState', 'PermissionDenied'), 'no lease before activation');

  r = await engine.call(OP.Revoke, revokePayload(active, Enums.RevocationReasonCode.KeyCompromise, nowS() - 10n), { version: '1.4' });
  t.equal(r.status, OK);
  r = await lease(active);
  t.equal(r.reason, reason('PermissionDenied'), 'no lease on a compromised key');

  r = await lease(active, '1.4', 'bob');
  t.equal(r.reason, reason('ItemNotFound'), 'another identity\'s object');
  r = await lease('no-such-object');
  t.equal(r.reason, reason('ItemNotFound'));
});

t.test('Obtain Lease with leaseTimeSeconds 0: no limit', async (t) => {
  const engine = await startEngine({ leaseTimeSeconds: 0 });
  t.teardown(() => engine.close());
  const active = await createKey(engine, '1.4', [...AES256(), activation(nowS() - 60n)]);
  const r = await engine.call(OP.ObtainLease, [T.text(Tag.UniqueIdentifier, active)], { version: '1.4' });
  t.equal(r.status, OK, r.message ?? '');
  t.equal(child(r.payload, Tag.LeaseTime)?.value, 0);
});
