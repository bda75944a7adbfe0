/** Archive and Recover (src/operations/archive.ts), synchronous, in 1.x and 2.x; the archived state across a restart. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Enums, Masks, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { AES256, ALL, FAILED, OK, OP, attrValue, createKey, get, nameA, reason, revokePayload, stored, template, uidNode } from './_keys.js';

const SSM = Masks.StorageStatusMask;

function locatePayload(version: KmipVersion, name: string, mask?: number): TtlvNode[] {
  const criteria = template(version, [nameA(name)]).flatMap((n) => (n.tag === Tag.TemplateAttribute && n.type === 'Structure' ? n.value : [n]));
  return [...(mask !== undefined ? [T.int(Tag.StorageStatusMask, mask)] : []), ...criteria];
}

async function locate(engine: Engine, version: KmipVersion, name: string, mask?: number): Promise<string[]> {
  const r = await engine.call(OP.Locate, locatePayload(version, name, mask), { version });
  if (r.status !== OK) throw new Error(`Locate failed: ${r.reason} ${r.message}`);
  return (r.payload?.value ?? []).filter((c) => c.tag === Tag.UniqueIdentifier).map((c) => c.value as string);
}

/** The Archive Date Get Attributes reports (undefined: none). */
async function archiveDate(engine: Engine, version: KmipVersion, uid: string): Promise<bigint | undefined> {
  const payload: TtlvNode[] = [uidNode(uid)];
  if (version.startsWith('2.')) payload.push(T.enum(Tag.AttributeReference, Tag.ArchiveDate));
  else payload.push(T.text(Tag.AttributeName, 'Archive Date'));
  const r = await engine.call(OP.GetAttributes, payload, { version });
  if (r.status !== OK) throw new Error(`Get Attributes failed: ${r.reason} ${r.message}`);
  const find = (n: TtlvNode): bigint | undefined => {
    if (n.tag === Tag.ArchiveDate && n.type === 'DateTime') return n.value;
    if (n.type === 'Structure') {
      const name = n.value.find((c) => c.tag === Tag.AttributeName);
      const value = n.value.find((c) => c.tag === Tag.AttributeValue);
      if (name?.value === 'Archive Date' && value?.type === 'DateTime') return value.value;
      for (const c of n.value) {
        const d = find(c);
        if (d !== undefined) return d;
      }
    }
    return undefined;
  };
  return find(r.payload as StructureNode);
}

t.test('Archive takes an object out of service; Recover brings it back', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  for (const version of ALL) {
    const name = `archive-${version}`;
    const uid = await createKey(engine, version, [...AES256(), nameA(name)]);
    const call = (op: number, v: KmipVersion = version, identity?: string) => engine.call(op, [uidNode(uid)], { version: v, ...(identity ? { identity } : {}) });
    t.equal(await archiveDate(engine, version, uid), undefined, `${version}: no Archive Date before`);

    const before = Math.floor(Date.now() / 1000);
    const a = await call(OP.Archive);
    t.equal(a.status, OK, `${version}: Archive`);
    t.equal(a.payload?.value.find((c) => c.tag === Tag.UniqueIdentifier)?.value, uid, 'Archive answers the uid');
    const date = await archiveDate(engine, version, uid);
    t.ok(date !== undefined && date >= BigInt(before) - 1n, 'Get Attributes still reads it: Archive Date set');

    const g = await get(engine, uid, version);
    t.equal(g.status, FAILED, 'Get of an archived object fails');
    t.equal(g.reason, reason('ObjectArchived'));
    for (const op of [OP.Activate, OP.Destroy, OP.ObtainLease, OP.ReKey]) {
      t.equal((await call(op)).reason, reason('ObjectArchived'), `${version}: operation ${op} refused with Object Archived`);
    }
    const rv = await engine.call(OP.Revoke, revokePayload(uid, Enums.RevocationReasonCode.KeyCompromise), { version });
    t.equal(rv.reason, reason('ObjectArchived'), 'Revoke refused with Object Archived');
    if (version !== '1.0') {
      const enc = await engine.call(OP.Encrypt, [uidNode(uid), T.bytes(Tag.Data, Buffer.alloc(16))], { version });
      t.equal(enc.reason, reason('ObjectArchived'), 'Encrypt (1.2+) refused with Object Archived');
    }

    t.same(await locate(engine, version, name), [], 'Locate (on-line storage) does not find it');
    t.same(await locate(engine, version, name, SSM.OnLineStorage), []);
    t.same(await locate(engine, version, name, SSM.ArchivalStorage), [uid], 'Archival Storage finds it');
    t.same(await locate(engine, version, name, SSM.ArchivalStorage | SSM.OnLineStorage), [uid]);

    // Archiving again changes nothing.
    t.equal((await call(OP.Archive)).status, OK, 'Archive twice');
    t.equal(await archiveDate(engine, version, uid), date, 'the Archive Date stays');

    t.equal((await call(OP.Recover)).status, OK, `${version}: Recover`);
    t.equal(await archiveDate(engine, version, uid), undefined, 'Recover deletes the Archive Date');
    t.equal((await get(engine, uid, version)).status, OK, 'Get works again');
    t.same(await locate(engine, version, name), [uid], 'Locate finds it on-line again');
    t.same(await locate(engine, version, name, SSM.ArchivalStorage), [], 'and no longer in the archive');
    t.equal((await call(OP.Recover)).status, OK, 'Recover of an object that is not archived changes nothing');
    t.equal((await call(OP.Activate)).status, OK, 'lifecycle operations work again');
  }
});

t.test('Archive and Recover follow ownership', async (t) => {
  const engine = await startEngine({ policy: { admins: ['officer'] } });
  t.teardown(() => engine.close());
  const uid = await createKey(engine, '1.4', AES256(), 'alice');
  for (const op of [OP.Archive, OP.Recover]) {
    const r = await engine.call(op, [uidNode(uid)], { identity: 'mallory' });
    t.equal(r.reason, reason('ItemNotFound'), `another identity's ${op === OP.Archive ? 'Archive' : 'Recover'}: Item Not Found`);
  }
  t.equal((await get(engine, uid)).status, OK, 'still on-line');
  t.equal((await engine.call(OP.Archive, [uidNode(uid)], { identity: 'officer' })).status, OK, 'an admin of the access policy may archive');
  t.equal((await get(engine, uid)).reason, reason('ObjectArchived'));
  t.equal((await engine.call(OP.Recover, [uidNode(uid)], { identity: 'officer' })).status, OK, 'and recover');
  t.equal((await engine.call(OP.Archive, [], {})).reason, reason('MissingData'), 'no uid and no ID Placeholder');
  // Archive Date is the server's: a client cannot set it to archive an object.
  const add = await engine.call(OP.AddAttribute, [
    uidNode(uid),
    T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Archive Date'), T.date(Tag.AttributeValue, 1n)]),
  ]);
  t.equal(add.status, FAILED, 'Add Attribute Archive Date is refused');
  t.equal((await get(engine, uid)).status, OK);
});

t.test('the archived state survives a restart', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kmipd-archive-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  let engine = await startEngine({ dataDir });
  const uid = await createKey(engine, '1.4', [...AES256(), nameA('kept')]);
  t.equal((await engine.call(OP.Archive, [uidNode(uid)])).status, OK);
  const date = attrValue(await stored(engine, uid), 'Archive Date');
  t.ok(date, 'stored with its Archive Date');
  await engine.close();

  engine = await startEngine({ dataDir });
  t.teardown(() => engine.close());
  t.equal((await get(engine, uid)).reason, reason('ObjectArchived'), 'still archived after the restart');
  t.same(attrValue(await stored(engine, uid), 'Archive Date'), date, 'same Archive Date');
  t.same(await locate(engine, '1.4', 'kept'), []);
  t.same(await locate(engine, '1.4', 'kept', SSM.ArchivalStorage), [uid]);
  t.equal((await engine.call(OP.Recover, [uidNode(uid)])).status, OK);
  t.equal((await get(engine, uid)).status, OK, 'recovered');
  t.equal(Enums.Operation.Archive, OP.Archive);
});
