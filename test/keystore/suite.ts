/**
 * The behaviour every KeyStore backend must have. A backend's test runs it with a factory that
 * opens a fresh, empty store:
 *
 *   t.test('sqlite', (t) => keystoreSuite(t, () => openSqliteStore(tempFile())));
 *
 * Each subtest opens its own store and closes it at the end.
 */
import type { Test } from 'tap';
import {
  ConcurrentModificationError,
  DuplicateObjectError,
  KeyStoreClosedError,
  type KeyStore,
  type LocateQuery,
  type StoredAttribute,
  type StoredObject,
} from '../../src/keystore/types.js';
import { nodesEqual, T, type TtlvNode } from '../../src/ttlv/index.js';

// KMIP tags and enumerations used by the fixtures.
const TAG = {
  Name: 0x420053,
  NameValue: 0x420055,
  NameType: 0x420054,
  AttributeValue: 0x42000b,
  CryptographicAlgorithm: 0x420028,
  CryptographicLength: 0x42002a,
  ActivationDate: 0x420001,
  Link: 0x42004a,
  LinkType: 0x42004b,
  LinkedObjectIdentifier: 0x42004c,
  Sensitive: 0x420120,
  Digest: 0x420034,
} as const;
const OT = { SymmetricKey: 2, SecretData: 7, Certificate: 1 } as const;
const ST = { PreActive: 1, Active: 2, Deactivated: 3, Destroyed: 6 } as const;

export function nameAttr(value: string, index = 0): StoredAttribute {
  return { name: 'Name', index, value: T.struct(TAG.Name, [T.text(TAG.NameValue, value), T.enum(TAG.NameType, 1)]) };
}

let counter = 0;
/** A plausible object; `over` replaces fields. */
export function makeObject(over: Partial<StoredObject> = {}): StoredObject {
  const n = ++counter;
  return {
    uid: `uid-${n.toString().padStart(6, '0')}`,
    objectType: OT.SymmetricKey,
    state: ST.Active,
    owner: 'alice',
    attributes: [
      nameAttr(`key-${n}`),
      { name: 'Cryptographic Algorithm', index: 0, value: T.enum(TAG.CryptographicAlgorithm, 3) },
      { name: 'Cryptographic Length', index: 0, value: T.int(TAG.CryptographicLength, 256) },
    ],
    material: { rootKeyId: 'rk-1', blob: Buffer.from(`sealed-${n}`) },
    revision: 0,
    createdAt: 1_700_000_000_000 + n,
    updatedAt: 1_700_000_000_000 + n,
    ...over,
  };
}

/** An attribute list with every TTLV type, nesting, instances and custom attributes. */
function richAttributes(): StoredAttribute[] {
  return [
    nameAttr('first name'),
    nameAttr('second name', 1),
    { name: 'Cryptographic Algorithm', index: 0, value: T.enum(TAG.CryptographicAlgorithm, 3) },
    { name: 'Cryptographic Length', index: 0, value: T.int(TAG.CryptographicLength, -1) },
    { name: 'Activation Date', index: 0, value: T.date(TAG.ActivationDate, 1_700_000_000n) },
    { name: 'Sensitive', index: 0, value: T.bool(TAG.Sensitive, true) },
    {
      name: 'Link',
      index: 0,
      value: T.struct(TAG.Link, [T.enum(TAG.LinkType, 0x103), T.text(TAG.LinkedObjectIdentifier, 'other-uid')]),
    },
    {
      name: 'Digest',
      index: 0,
      value: T.struct(TAG.Digest, [T.enum(0x420038, 4), T.bytes(0x420039, Buffer.from('00ff10', 'hex')), T.struct(0x4200aa, [])]),
    },
    { name: 'x-text', index: 0, value: T.text(TAG.AttributeValue, 'héllo, wörld \u{1F511}') },
    { name: 'x-text', index: 3, value: T.text(TAG.AttributeValue, '') },
    { name: 'x-bom', index: 0, value: T.text(TAG.AttributeValue, '\uFEFFleading BOM') },
    { name: 'x-long', index: 0, value: T.long(TAG.AttributeValue, -(1n << 62n)) },
    { name: 'x-big', index: 0, value: T.big(TAG.AttributeValue, (1n << 100n) + 12345n) },
    { name: 'x-bytes', index: 0, value: T.bytes(TAG.AttributeValue, Buffer.from([0, 1, 2, 255])) },
    { name: 'x-interval', index: 0, value: T.interval(TAG.AttributeValue, 86400) },
    { name: 'x-dtx', index: 0, value: T.dateExt(TAG.AttributeValue, 1_700_000_000_123_456n) },
    { name: 'y-vendor', index: 0, value: T.bool(TAG.AttributeValue, false) },
  ];
}

function attributesEqual(a: readonly StoredAttribute[], b: readonly StoredAttribute[]): boolean {
  return a.length === b.length && a.every((x, i) => x.name === b[i]!.name && x.index === b[i]!.index && nodesEqual(x.value, b[i]!.value));
}

/** Asserts that `got` is exactly `want` (attributes compared as TTLV trees, blobs by content). */
export function assertSameObject(t: Test, got: StoredObject | undefined, want: StoredObject, msg: string): void {
  if (got === undefined) {
    t.fail(`${msg}: object ${want.uid} missing`);
    return;
  }
  const { attributes: ga, material: gm, ...grest } = got;
  const { attributes: wa, material: wm, ...wrest } = want;
  t.same(grest, wrest, `${msg}: fields`);
  t.ok(attributesEqual(ga, wa), `${msg}: attributes`);
  if (wm === null) t.equal(gm, null, `${msg}: no material`);
  else {
    t.equal(gm?.rootKeyId, wm.rootKeyId, `${msg}: root key id`);
    t.ok(gm !== null && gm !== undefined && Buffer.from(gm.blob).equals(wm.blob), `${msg}: material blob`);
  }
}

type Open = () => Promise<KeyStore>;

async function withStore(t: Test, open: Open): Promise<KeyStore> {
  const s = await open();
  t.teardown(() => s.close());
  return s;
}

export async function keystoreSuite(t: Test, open: Open): Promise<void> {
  await t.test('insert and get round-trip every attribute type losslessly', async (t) => {
    const s = await withStore(t, open);
    t.type(s.backend, 'string');
    const obj = makeObject({ attributes: richAttributes() });
    await s.insert(obj);
    assertSameObject(t, await s.get(obj.uid), obj, 'rich object');
    const bare = makeObject({ attributes: [], material: null, owner: '' });
    await s.insert(bare);
    assertSameObject(t, await s.get(bare.uid), bare, 'object without attributes or material');
    t.equal(await s.get('no-such-uid'), undefined, 'missing uid gives undefined');
    // The store keeps its own copy: changing the caller's buffers later changes nothing.
    const mutable = makeObject();
    const expected = structuredClone(mutable);
    await s.insert(mutable);
    mutable.material!.blob.fill(0);
    assertSameObject(t, await s.get(mutable.uid), { ...expected, material: { rootKeyId: 'rk-1', blob: Buffer.from(expected.material!.blob) } }, 'copy');
  });

  await t.test('insert rejects a duplicate uid and bad input', async (t) => {
    const s = await withStore(t, open);
    const obj = makeObject();
    await s.insert(obj);
    await t.rejects(s.insert({ ...obj, owner: 'mallory' }), DuplicateObjectError, 'duplicate uid');
    t.equal((await s.get(obj.uid))?.owner, 'alice', 'original untouched');
    await t.rejects(s.insert(makeObject({ uid: '' })), TypeError, 'empty uid');
    await t.rejects(
      s.insert(makeObject({ attributes: [nameAttr('a'), nameAttr('b')] })),
      { message: /two instances/ },
      'two instances with the same index',
    );
    await t.rejects(
      s.insert(makeObject({ attributes: [{ name: 'x-bad', index: 0, value: T.int(TAG.AttributeValue, 2 ** 40) }] })),
      { name: 'TtlvError' },
      'unencodable value',
    );
    await t.rejects(
      s.insert(makeObject({ attributes: [{ name: 'x-bad', index: 0, value: { tag: 0x42000b, type: 'Bogus', value: 1 } as unknown as TtlvNode }] })),
      { message: /no TTLV value/ },
      'not a TTLV node',
    );
    t.same(await s.locate({ filters: [] }), [obj.uid], 'nothing of the failed inserts stored');
  });

  await t.test('update is optimistic and returns the new row', async (t) => {
    const s = await withStore(t, open);
    const obj = makeObject({ revision: 4 });
    await s.insert(obj);
    const changed: StoredObject = { ...obj, state: ST.Deactivated, attributes: [nameAttr('renamed')], updatedAt: obj.updatedAt + 1 };
    const r1 = await s.update(changed, 4);
    t.equal(r1.revision, 5, 'revision bumped');
    t.equal(r1.state, ST.Deactivated);
    assertSameObject(t, await s.get(obj.uid), r1, 'stored as returned');
    await t.rejects(s.update({ ...r1, state: ST.Destroyed }, 4), ConcurrentModificationError, 'stale revision');
    t.equal((await s.get(obj.uid))?.state, ST.Deactivated, 'stale update changed nothing');
    await t.rejects(s.update(makeObject(), 0), ConcurrentModificationError, 'missing uid');
    const r2 = await s.update({ ...r1, material: null, state: ST.Destroyed }, r1.revision);
    t.equal(r2.revision, 6);
    t.equal((await s.get(obj.uid))?.material, null, 'material removed');
    // The index follows updates.
    t.same(await s.locate({ filters: [{ kind: 'equals', name: 'Name', value: obj.uid.replace('uid-', 'key-') }] }), []);
    t.same(await s.locate({ filters: [{ kind: 'equals', name: 'Name', value: 'renamed' }] }), [obj.uid]);
    t.same(await s.locate({ filters: [{ kind: 'present', name: 'Cryptographic Algorithm' }] }), [], 'removed attribute unindexed');
    t.same(await s.locate({ states: [ST.Destroyed], filters: [] }), [obj.uid]);
  });

  await t.test('concurrent updates of one object: exactly one wins', async (t) => {
    const s = await withStore(t, open);
    const obj = makeObject();
    await s.insert(obj);
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((i) => s.update({ ...obj, owner: `o${i}` }, 0)));
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one update succeeded');
    for (const r of results) if (r.status === 'rejected') t.type(r.reason, ConcurrentModificationError);
    t.equal((await s.get(obj.uid))?.revision, 1);
  });

  await t.test('restore puts rows back exactly, removes, and keeps the Locate order', async (t) => {
    const s = await withStore(t, open);
    const a = makeObject();
    const b = makeObject({ revision: 7 });
    const c = makeObject();
    for (const o of [a, b, c]) await s.insert(o);
    const b2 = await s.update({ ...b, attributes: [nameAttr('b-renamed')], state: ST.Deactivated }, 7);
    await s.restore(b.uid, b);
    assertSameObject(t, await s.get(b.uid), b, 'row restored exactly (revision included)');
    t.same(await s.locate({ filters: [{ kind: 'equals', name: 'Name', value: 'b-renamed' }] }), [], 'index restored');
    t.equal(b2.revision, 8);
    await s.restore(b.uid, null);
    t.equal(await s.get(b.uid), undefined, 'restore(null) removes');
    t.same(await s.locate({ filters: [] }), [a.uid, c.uid]);
    await s.restore(b.uid, b);
    assertSameObject(t, await s.get(b.uid), b, 'removed row restored');
    t.same(await s.locate({ filters: [] }), [a.uid, b.uid, c.uid], 'back in its place in the order');
    await s.restore('never-existed', null);
    t.pass('restore(null) of a missing uid is a no-op');
    await t.rejects(s.restore(a.uid, c), TypeError, 'uid mismatch rejected');
    const fresh = makeObject();
    await s.restore(fresh.uid, fresh);
    assertSameObject(t, await s.get(fresh.uid), fresh, 'restore of an unknown uid inserts it');
    t.equal((await s.locate({ filters: [] })).at(-1), fresh.uid);
  });

  await t.test('locate: each filter kind, ANDed, oldest first, offset and limit', async (t) => {
    const s = await withStore(t, open);
    const long = 'L'.repeat(1000);
    const longBytes = Buffer.alloc(700, 7);
    // Inserted in an order that differs from the uid order.
    const objs: StoredObject[] = [];
    const specs: { uid: string; owner: string; type: number; state: number; attrs: StoredAttribute[] }[] = [
      {
        uid: 'm-3',
        owner: 'alice',
        type: OT.SymmetricKey,
        state: ST.Active,
        attrs: [
          nameAttr('disk-1'),
          nameAttr('alias-1', 1),
          { name: 'Activation Date', index: 0, value: T.date(TAG.ActivationDate, 1000n) },
          { name: 'x-product', index: 0, value: T.text(TAG.AttributeValue, 'vsphere') },
          { name: 'x-count', index: 0, value: T.int(TAG.AttributeValue, 5) },
          { name: 'x-flag', index: 0, value: T.bool(TAG.AttributeValue, true) },
          { name: 'x-long', index: 0, value: T.long(TAG.AttributeValue, 1n << 40n) },
          { name: 'x-blob', index: 0, value: T.bytes(TAG.AttributeValue, Buffer.from('abc')) },
          { name: 'x-longtext', index: 0, value: T.text(TAG.AttributeValue, long) },
        ],
      },
      {
        uid: 'm-1',
        owner: 'bob',
        type: OT.SymmetricKey,
        state: ST.PreActive,
        attrs: [
          nameAttr('disk-2'),
          { name: 'Cryptographic Algorithm', index: 0, value: T.enum(TAG.CryptographicAlgorithm, 3) },
          { name: 'Activation Date', index: 0, value: T.date(TAG.ActivationDate, 2000n) },
          { name: 'x-product', index: 0, value: T.text(TAG.AttributeValue, 'vsphere') },
          { name: 'x-count', index: 0, value: T.text(TAG.AttributeValue, '5') },
          { name: 'x-flag', index: 0, value: T.bool(TAG.AttributeValue, false) },
          { name: 'x-longbytes', index: 0, value: T.bytes(TAG.AttributeValue, longBytes) },
        ],
      },
      {
        uid: 'm-2',
        owner: 'alice',
        type: OT.SecretData,
        state: ST.Active,
        attrs: [
          nameAttr('disk-1'),
          { name: 'Activation Date', index: 0, value: T.date(TAG.ActivationDate, 3000n) },
          { name: 'x-product', index: 0, value: T.text(TAG.AttributeValue, 'other') },
          { name: 'x-product', index: 1, value: T.text(TAG.AttributeValue, 'vsphere') },
          { name: 'x-dtx', index: 0, value: T.dateExt(TAG.AttributeValue, 2_000_500_000n) },
        ],
      },
      {
        uid: 'm-0',
        owner: 'carol',
        type: OT.Certificate,
        state: ST.Destroyed,
        attrs: [{ name: 'x-dtx', index: 0, value: T.dateExt(TAG.AttributeValue, 5_000_000_000n) }],
      },
    ];
    for (const sp of specs) {
      const o = makeObject({ uid: sp.uid, owner: sp.owner, objectType: sp.type, state: sp.state, attributes: sp.attrs });
      objs.push(o);
      await s.insert(o);
    }
    const cases: [string, LocateQuery, string[]][] = [
      ['everything, insertion order', { filters: [] }, ['m-3', 'm-1', 'm-2', 'm-0']],
      ['Name equality (any instance)', { filters: [{ kind: 'equals', name: 'Name', value: 'disk-1' }] }, ['m-3', 'm-2']],
      ['Name, second instance', { filters: [{ kind: 'equals', name: 'Name', value: 'alias-1' }] }, ['m-3']],
      ['Name is case-sensitive', { filters: [{ kind: 'equals', name: 'Name', value: 'DISK-1' }] }, []],
      ['custom text, any instance', { filters: [{ kind: 'equals', name: 'x-product', value: 'vsphere' }] }, ['m-3', 'm-1', 'm-2']],
      ['integer by number', { filters: [{ kind: 'equals', name: 'x-count', value: 5 }] }, ['m-3']],
      ['integer by bigint', { filters: [{ kind: 'equals', name: 'x-count', value: 5n }] }, ['m-3']],
      ['text "5" is not the integer 5', { filters: [{ kind: 'equals', name: 'x-count', value: '5' }] }, ['m-1']],
      ['boolean', { filters: [{ kind: 'equals', name: 'x-flag', value: false }] }, ['m-1']],
      ['long integer', { filters: [{ kind: 'equals', name: 'x-long', value: 1n << 40n }] }, ['m-3']],
      ['byte string', { filters: [{ kind: 'equals', name: 'x-blob', value: Buffer.from('abc') }] }, ['m-3']],
      ['byte string mismatch', { filters: [{ kind: 'equals', name: 'x-blob', value: Buffer.from('abd') }] }, []],
      ['long text', { filters: [{ kind: 'equals', name: 'x-longtext', value: long }] }, ['m-3']],
      ['long text mismatch', { filters: [{ kind: 'equals', name: 'x-longtext', value: long + 'x' }] }, []],
      ['long bytes', { filters: [{ kind: 'equals', name: 'x-longbytes', value: Buffer.from(longBytes) }] }, ['m-1']],
      ['enumeration', { filters: [{ kind: 'equals', name: 'Cryptographic Algorithm', value: 3 }] }, ['m-1']],
      ['date equality in seconds', { filters: [{ kind: 'equals', name: 'Activation Date', value: 2000n }] }, ['m-1']],
      ['date range, inclusive', { filters: [{ kind: 'range', name: 'Activation Date', from: 1000n, to: 2000n }] }, ['m-3', 'm-1']],
      ['date range, from only', { filters: [{ kind: 'range', name: 'Activation Date', from: 2000n }] }, ['m-1', 'm-2']],
      ['date range, to only', { filters: [{ kind: 'range', name: 'Activation Date', to: 2999n }] }, ['m-3', 'm-1']],
      ['date range, open', { filters: [{ kind: 'range', name: 'Activation Date' }] }, ['m-3', 'm-1', 'm-2']],
      ['date range, empty', { filters: [{ kind: 'range', name: 'Activation Date', from: 3001n, to: 1n << 70n }] }, []],
      ['date-time extended range in seconds', { filters: [{ kind: 'range', name: 'x-dtx', from: 2000n, to: 2001n }] }, ['m-2']],
      ['date-time extended, whole seconds', { filters: [{ kind: 'range', name: 'x-dtx', from: 5000n, to: 5000n }] }, ['m-0']],
      ['range skips text values', { filters: [{ kind: 'range', name: 'x-count', from: 0n }] }, ['m-3']],
      ['present', { filters: [{ kind: 'present', name: 'x-flag' }] }, ['m-3', 'm-1']],
      ['present, structure', { filters: [{ kind: 'present', name: 'Name' }] }, ['m-3', 'm-1', 'm-2']],
      ['unknown attribute', { filters: [{ kind: 'present', name: 'x-none' }] }, []],
      ['absent', { filters: [{ kind: 'absent', name: 'x-flag' }] }, ['m-2', 'm-0']],
      ['absent, unknown attribute', { filters: [{ kind: 'absent', name: 'x-none' }] }, ['m-3', 'm-1', 'm-2', 'm-0']],
      ['absent and equals', { filters: [{ kind: 'absent', name: 'x-flag' }, { kind: 'equals', name: 'Name', value: 'disk-1' }] }, ['m-2']],
      ['owners', { owners: ['alice', 'carol'], filters: [] }, ['m-3', 'm-2', 'm-0']],
      ['no owners', { owners: [], filters: [] }, []],
      ['object types', { objectTypes: [OT.SymmetricKey], filters: [] }, ['m-3', 'm-1']],
      ['states', { states: [ST.Active, ST.Destroyed], filters: [] }, ['m-3', 'm-2', 'm-0']],
      [
        'all ANDed',
        {
          owners: ['alice', 'bob'],
          objectTypes: [OT.SymmetricKey, OT.SecretData],
          states: [ST.Active],
          filters: [
            { kind: 'equals', name: 'x-product', value: 'vsphere' },
            { kind: 'range', name: 'Activation Date', from: 0n, to: 5000n },
            { kind: 'present', name: 'Name' },
          ],
        },
        ['m-3', 'm-2'],
      ],
      ['owner and attribute', { owners: ['bob'], filters: [{ kind: 'equals', name: 'x-product', value: 'vsphere' }] }, ['m-1']],
      ['limit', { filters: [], limit: 2 }, ['m-3', 'm-1']],
      ['offset', { filters: [], offset: 1 }, ['m-1', 'm-2', 'm-0']],
      ['offset and limit', { filters: [], offset: 1, limit: 2 }, ['m-1', 'm-2']],
      ['offset past the end', { filters: [], offset: 10 }, []],
      ['limit 0', { filters: [], limit: 0 }, []],
      ['offset/limit after filters', { filters: [{ kind: 'equals', name: 'x-product', value: 'vsphere' }], offset: 1, limit: 1 }, ['m-1']],
    ];
    for (const [name, q, want] of cases) t.same(await s.locate(q), want, name);
  });

  await t.test('count by object type and state', async (t) => {
    const s = await withStore(t, open);
    t.same(await s.count(), [], 'empty store');
    await s.insert(makeObject({ objectType: OT.SymmetricKey, state: ST.Active }));
    await s.insert(makeObject({ objectType: OT.SymmetricKey, state: ST.Active }));
    await s.insert(makeObject({ objectType: OT.SymmetricKey, state: ST.Destroyed }));
    await s.insert(makeObject({ objectType: OT.SecretData, state: ST.PreActive }));
    const got = (await s.count()).sort((a, b) => a.objectType - b.objectType || a.state - b.state);
    t.same(got, [
      { objectType: OT.SymmetricKey, state: ST.Active, n: 2 },
      { objectType: OT.SymmetricKey, state: ST.Destroyed, n: 1 },
      { objectType: OT.SecretData, state: ST.PreActive, n: 1 },
    ]);
  });

  await t.test('meta', async (t) => {
    const s = await withStore(t, open);
    t.equal(await s.getMeta('masterkey.kind'), undefined);
    await s.setMeta('masterkey.kind', 'software');
    t.equal(await s.getMeta('masterkey.kind'), 'software');
    await s.setMeta('masterkey.kind', 'pkcs11');
    t.equal(await s.getMeta('masterkey.kind'), 'pkcs11', 'overwritten');
    await s.setMeta('empty', '');
    t.equal(await s.getMeta('empty'), '', 'empty value kept');
    t.match(await s.getMeta('schema_version'), /^[1-9][0-9]*$/, 'schema version readable');
    await t.rejects(s.setMeta('schema_version', '999'), /managed by the keystore/, 'schema version not writable');
  });

  await t.test('root keys', async (t) => {
    const s = await withStore(t, open);
    t.same(await s.rootKeys(), []);
    const r1 = { id: 'rk-1', wrapped: Buffer.alloc(40, 1), masterKeyId: 'sw-a', status: 'active' as const, createdAt: 1000 };
    await s.putRootKey(r1);
    t.same(await s.rootKeys(), [r1]);
    const r2 = { id: 'rk-2', wrapped: Buffer.alloc(40, 2), masterKeyId: 'sw-a', status: 'active' as const, createdAt: 2000 };
    await s.putRootKey(r2);
    t.same(await s.rootKeys(), [{ ...r1, status: 'retired' }, r2], 'a new active key retires the old one');
    const rewrapped = { ...r1, status: 'retired' as const, wrapped: Buffer.alloc(40, 3), masterKeyId: 'sw-b' };
    await s.putRootKey(rewrapped);
    t.same(await s.rootKeys(), [rewrapped, r2], 're-put replaces by id');
    await t.rejects(s.putRootKey({ ...r1, status: 'bogus' as 'active' }), TypeError);
  });

  await t.test('group commit: 200 concurrent inserts, a duplicate fails alone', async (t) => {
    const s = await withStore(t, open);
    const objs = Array.from({ length: 199 }, () => makeObject());
    const dup = { ...objs[17]!, owner: 'mallory' };
    const all = [...objs.slice(0, 100), dup, ...objs.slice(100)];
    const results = await Promise.allSettled(all.map((o) => s.insert(o)));
    const rejected = results.flatMap((r, i) => (r.status === 'rejected' ? [[i, r.reason] as const] : []));
    t.equal(rejected.length, 1, 'exactly one failed');
    t.equal(rejected[0]?.[0], 100, 'the duplicate');
    t.type(rejected[0]?.[1], DuplicateObjectError);
    for (const o of objs) assertSameObject(t, await s.get(o.uid), o, o.uid);
    t.equal((await s.locate({ filters: [] })).length, 199);
    t.same(await s.locate({ owners: ['mallory'], filters: [] }), [], 'nothing of the duplicate stored');
  });

  await t.test('close flushes pending writes; a closed store rejects', async (t) => {
    const s = await open();
    const o = makeObject();
    const pending = s.insert(o);
    await s.close();
    await t.resolves(pending, 'write queued before close resolved');
    await t.rejects(s.insert(makeObject()), KeyStoreClosedError);
    await t.rejects(s.get(o.uid), KeyStoreClosedError);
    await s.close();
    t.pass('close is idempotent');
  });
}
