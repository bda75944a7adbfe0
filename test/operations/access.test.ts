/** Ownership, groups and admins for the object operations; no plaintext key in the keystore files. */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Enums, Tag } from '../../src/spec/index.js';
import { T } from '../../src/ttlv/index.js';
import { startEngine } from '../helpers/engine.js';
import { ALG, FAILED, KFT, OK, OP, ST, createKey, get, keyBytes, reason, revokePayload, stored, template, text, uidNode, notFound } from './_keys.js';

t.test('another identity sees nothing of alice\'s keys', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  for (const version of ['1.4', '2.1'] as const) {
    const uid = await createKey(engine, version);
    const missing = '11111111-2222-3333-4444-555555555555';
    const bob = { version, identity: 'bob' };
    for (const [op, payload] of [
      [OP.Get, (u: string) => [uidNode(u)]],
      [OP.Activate, (u: string) => [uidNode(u)]],
      [OP.Destroy, (u: string) => [uidNode(u)]],
      [OP.Revoke, (u: string) => revokePayload(u, Enums.RevocationReasonCode.KeyCompromise)],
      [OP.ReKey, (u: string) => [uidNode(u)]],
      [OP.Check, (u: string) => [uidNode(u)]],
    ] as const) {
      const theirs = await engine.call(op, payload(uid), bob);
      const none = await engine.call(op, payload(missing), bob);
      t.equal(theirs.status, FAILED);
      t.equal(theirs.reason, notFound(version), `${version} op ${op}: Item / Object Not Found`);
      t.equal(theirs.message?.replace(uid, '<uid>'), none.message?.replace(missing, '<uid>'), `${version} op ${op}: the same answer as for a uid that does not exist`);
    }
    const o = await stored(engine, uid);
    t.equal(o.state, ST.PreActive, 'nothing changed');
    t.equal((await get(engine, uid, version)).status, OK, 'alice still gets it');
  }
});

t.test('groups share; admins manage but do not read material', async (t) => {
  const engine = await startEngine({ policy: { groups: [['alice', 'dave']], admins: ['carol'], adminsMayReadKeyMaterial: false } });
  t.teardown(() => engine.close());
  const uid = await createKey(engine, '1.4');
  const key = keyBytes((await get(engine, uid)).payload)!;

  const dave = await get(engine, uid, '1.4', [], 'dave');
  t.equal(dave.status, OK, 'a group member gets the key');
  t.same(keyBytes(dave.payload), key);

  let r = await get(engine, uid, '1.4', [], 'carol');
  t.equal(r.status, FAILED);
  t.equal(r.reason, reason('PermissionDenied'), 'the admin may not read the material');
  r = await engine.call(OP.Activate, [uidNode(uid)], { identity: 'carol' });
  t.equal(r.status, OK, 'the admin activates');
  t.equal((await stored(engine, uid)).state, ST.Active);
  r = await engine.call(OP.Check, [uidNode(uid), T.int(Tag.CryptographicUsageMask, 4)], { identity: 'carol', version: '2.1' });
  t.equal(r.status, OK, 'the admin checks');
  r = await engine.call(OP.Revoke, revokePayload(uid, Enums.RevocationReasonCode.Superseded), { identity: 'carol' });
  t.equal(r.status, OK, 'the admin revokes');
  r = await engine.call(OP.Destroy, [uidNode(uid)], { identity: 'carol', version: '2.1' });
  t.equal(r.status, OK, 'the admin destroys');
  t.equal((await stored(engine, uid)).owner, 'alice', 'ownership unchanged');

  const bob = await get(engine, (await createKey(engine, '1.4')), '1.4', [], 'bob');
  t.equal(bob.reason, reason('ItemNotFound'), 'outside the group: not found');
});

t.test('the keystore files never hold a plaintext key', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const keys: Buffer[] = [];
  for (const version of ['1.1', '1.4', '2.1'] as const) {
    for (let i = 0; i < 3; i++) {
      const uid = await createKey(engine, version);
      keys.push(keyBytes((await get(engine, uid, version)).payload)!);
    }
    const reg = randomBytes(32);
    const r = await engine.call(
      OP.Register,
      [
        T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
        ...template(version, []),
        T.struct(Tag.SymmetricKey, [
          T.struct(Tag.KeyBlock, [
            T.enum(Tag.KeyFormatType, KFT.Raw),
            T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, reg)]),
            T.enum(Tag.CryptographicAlgorithm, ALG.AES),
            T.int(Tag.CryptographicLength, 256),
          ]),
        ]),
      ],
      { version },
    );
    t.equal(r.status, OK);
    keys.push(reg);
    const rk = await engine.call(OP.ReKey, [uidNode(text(r.payload, Tag.UniqueIdentifier)!)], { version });
    keys.push(keyBytes((await get(engine, text(rk.payload, Tag.UniqueIdentifier)!, version)).payload)!);
  }
  const scan = (when: string) => {
    const files = readdirSync(engine.dataDir).filter((f) => f.startsWith('keystore.sqlite'));
    t.ok(files.includes('keystore.sqlite'), `${when}: the database file is there`);
    const contents = files.map((f) => readFileSync(join(engine.dataDir, f)));
    // Control: the scan does see what is stored in the clear (the Digest attribute of a key).
    const digest = createHash('sha256').update(keys[0]!).digest();
    t.ok(contents.some((c) => c.includes(digest)), `${when}: the scan finds the stored Digest (control)`);
    for (const [i, k] of keys.entries()) {
      const prefix = k.subarray(0, 16);
      t.notOk(contents.some((c) => c.includes(prefix)), `${when}: key ${i} is not in ${files.join(', ')}`);
    }
  };
  // While open (the WAL and shared-memory files hold the recent writes), and once the store has
  // closed (everything checkpointed into the database file).
  scan('open');
  await engine.store.close();
  scan('closed');
});
