/**
 * Put and Notify received from an upstream key server (src/operations/put.ts, notify.ts,
 * upstream.ts): only identities named in `upstreams` may send them; Put New stores the pushed
 * object under the upstream's identifier and attributes, sealed at rest; Put Replace links old
 * and new; Notify applies attribute changes; bad payloads get their Result Reason.
 */
import { randomBytes, randomUUID, createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { attributesForVersion, type KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { KmipError } from '../../src/codec/errors.js';
import { ObjectService } from '../../src/operations/objects.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { ALG, FAILED, KFT, OK, OP, ST, a, alg, attrValue, attrValues, createKey, get, keyBytes, len, mask, nowS, reason, scalar, stored, uidNode, notFound } from './_keys.js';

const PF = Enums.PutFunction;
const LT = Enums.LinkType;
const UPSTREAM = 'upstream-kms';
const CONSUMER = 'vcenter';

function aesKey(key: Buffer): StructureNode {
  return T.struct(Tag.SymmetricKey, [
    T.struct(Tag.KeyBlock, [
      T.enum(Tag.KeyFormatType, KFT.Raw),
      T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, key)]),
      T.enum(Tag.CryptographicAlgorithm, ALG.AES),
      T.int(Tag.CryptographicLength, key.length * 8),
    ]),
  ]);
}

function digestOf(key: Buffer): KmipAttribute {
  return a('Digest', T.struct(Tag.Digest, [T.enum(Tag.HashingAlgorithm, Enums.HashingAlgorithm.SHA_256), T.bytes(Tag.DigestValue, createHash('sha256').update(key).digest()), T.enum(Tag.KeyFormatType, KFT.Raw)]));
}

const custom = (name: string, v: string) => a(name, T.text(Tag.AttributeValue, v));
const initialDate = (s: bigint) => a('Initial Date', T.date(Tag.InitialDate, s));
const lastChange = (s: bigint) => a('Last Change Date', T.date(Tag.LastChangeDate, s));
const stateA = (s: number) => a('State', T.enum(Tag.State, s));

/** What an upstream sends with a key: its own server-maintained attributes included. */
function upstreamAttrs(uid: string, key: Buffer, extra: KmipAttribute[] = []): KmipAttribute[] {
  const s = nowS() - 86_400n;
  return [
    a('Unique Identifier', T.text(Tag.UniqueIdentifier, uid)),
    a('Object Type', T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey)),
    alg(ALG.AES),
    len(key.length * 8),
    mask(12),
    digestOf(key),
    initialDate(s),
    lastChange(s),
    stateA(ST.PreActive),
    a('Lease Time', T.interval(Tag.LeaseTime, 600)),
    ...extra,
  ];
}

function putPayload(version: KmipVersion, uid: string, fn: number, object: StructureNode | undefined, attrs: KmipAttribute[], replaced?: string): TtlvNode[] {
  const p: TtlvNode[] = [uidNode(uid), T.enum(Tag.PutFunction, fn)];
  if (replaced !== undefined) p.push(T.text(Tag.ReplacedUniqueIdentifier, replaced));
  if (object) p.push(object);
  p.push(...attributesForVersion(attrs, version));
  return p;
}

async function put(engine: Engine, version: KmipVersion, uid: string, key: Buffer, o: { fn?: number; replaced?: string; attrs?: KmipAttribute[]; identity?: string } = {}) {
  const attrs = o.attrs ?? upstreamAttrs(uid, key);
  return engine.call(OP.Put, putPayload(version, uid, o.fn ?? (o.replaced ? PF.Replace : PF.New), aesKey(key), attrs, o.replaced), { version, identity: o.identity ?? UPSTREAM });
}

function notifyPayload(version: KmipVersion, uid: string, attrs: KmipAttribute[], extra: TtlvNode[] = []): TtlvNode[] {
  return [uidNode(uid), ...attributesForVersion(attrs, version), ...extra];
}

async function notify(engine: Engine, version: KmipVersion, uid: string, attrs: KmipAttribute[], o: { identity?: string; extra?: TtlvNode[] } = {}) {
  return engine.call(OP.Notify, notifyPayload(version, uid, attrs, o.extra), { version, identity: o.identity ?? UPSTREAM });
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

function linksOf(o: Awaited<ReturnType<typeof stored>>, type: number): string[] {
  return attrValues(o, 'Link')
    .filter((v) => v.type === 'Structure' && v.value.some((c) => c.tag === Tag.LinkType && c.type === 'Enumeration' && c.value === type))
    .map((v) => {
      const id = v.type === 'Structure' ? v.value.find((c) => c.tag === Tag.LinkedObjectIdentifier) : undefined;
      return id?.type === 'TextString' ? id.value : '';
    });
}

t.test('Put and Notify', async (t) => {
  const engine = await startEngine({ upstreams: [UPSTREAM], policy: { groups: [[UPSTREAM, CONSUMER]] } });
  t.teardown(() => engine.close());

  t.test('only a trusted upstream may Put or Notify; a refused Put stores nothing', async (t) => {
    for (const version of ['1.4', '2.1'] as const) {
      const uid = randomUUID();
      const key = randomBytes(32);
      for (const identity of ['mallory', CONSUMER]) {
        const r = await put(engine, version, uid, key, { identity });
        t.equal(r.status, FAILED, `${version} ${identity}`);
        t.equal(r.reason, reason('PermissionDenied'));
        t.equal(await engine.store.get(uid), undefined, 'nothing stored');
      }
      const own = await createKey(engine, version, undefined, 'mallory');
      const before = await stored(engine, own);
      const n = await notify(engine, version, own, [custom('x-evil', '1'), lastChange(nowS())], { identity: 'mallory' });
      t.equal(n.reason, reason('PermissionDenied'), 'Notify too, even on its own object');
      t.equal((await stored(engine, own)).revision, before.revision, 'nothing changed');
    }
    const none = await startEngine();
    t.teardown(() => none.close());
    const r = await put(none, '1.4', randomUUID(), randomBytes(16));
    t.equal(r.reason, reason('PermissionDenied'), 'no upstream is trusted by default');
  });

  t.test('Put New stores the pushed key under its identifier and attributes; Get returns it', async (t) => {
    for (const version of ['1.0', '1.4', '2.0', '2.1'] as const) {
      const uid = `upstream-${randomUUID()}`;
      const key = randomBytes(32);
      const attrs = upstreamAttrs(uid, key, [custom('x-origin', 'dc1')]);
      const r = await put(engine, version, uid, key, { attrs });
      t.equal(r.status, OK, `${version}: ${r.message ?? ''}`);
      t.equal(r.payload?.value.length, 0, 'empty response payload');
      const o = await stored(engine, uid);
      t.equal(o.owner, UPSTREAM, 'owned by the upstream');
      t.equal(o.state, ST.PreActive);
      t.equal(scalar(attrValue(o, 'Initial Date')), scalar(attrs.find((x) => x.name === 'Initial Date')!.value), 'Initial Date as sent');
      t.equal(scalar(attrValue(o, 'Last Change Date')), scalar(attrs.find((x) => x.name === 'Last Change Date')!.value), 'Last Change Date as sent');
      t.equal(scalar(attrValue(o, 'Lease Time')), 600, 'Lease Time as sent');
      t.equal(scalar(attrValue(o, 'x-origin')), 'dc1');
      t.equal(attrValues(o, 'Digest').length, 1, 'one Digest');
      const g = await get(engine, uid, version, [], UPSTREAM);
      t.equal(g.status, OK);
      t.same(keyBytes(g.payload), key, 'Get returns the pushed key');
      const c = await get(engine, uid, version, [], CONSUMER);
      t.same(keyBytes(c.payload), key, "the upstream's group reads it");
      t.equal((await get(engine, uid, version, [], 'mallory')).reason, notFound(version), 'others do not');
    }
  });

  t.test('a pushed object may come Active; State and dates are taken as sent', async (t) => {
    const uid = randomUUID();
    const key = randomBytes(16);
    const past = nowS() - 3600n;
    const attrs = upstreamAttrs(uid, key).filter((x) => x.name !== 'State');
    attrs.push(stateA(ST.Active), a('Activation Date', T.date(Tag.ActivationDate, past)));
    t.equal((await put(engine, '1.4', uid, key, { attrs })).status, OK);
    t.equal((await stored(engine, uid)).state, ST.Active);
  });

  t.test('the key material is sealed at rest: no file of the data directory holds it', async (t) => {
    const uid = randomUUID();
    const key = randomBytes(32);
    t.equal((await put(engine, '2.1', uid, key)).status, OK);
    const o = await stored(engine, uid);
    t.ok(o.material, 'material stored');
    t.notOk(o.material!.blob.includes(key), 'the stored blob is not the key');
    const db = new Database(join(engine.dataDir, 'keystore.sqlite'), { readonly: true, fileMustExist: true });
    t.teardown(() => db.close());
    const row = db.prepare('SELECT * FROM objects WHERE uid = ?').get(uid) as Record<string, unknown> | undefined;
    t.ok(row, 'the keystore row exists');
    for (const [col, v] of Object.entries(row ?? {})) {
      if (Buffer.isBuffer(v)) t.notOk(v.includes(key), `column ${col} does not hold the key`);
      if (typeof v === 'string') t.notOk(v.includes(key.toString('hex')), `column ${col} does not hold the key in hex`);
    }
    t.not(row?.material, null, 'the material column is set');
    for (const f of filesUnder(engine.dataDir)) t.notOk(readFileSync(f).includes(key), `${f} does not hold the key`);
  });

  t.test('an identifier that exists: the same object again updates it, other material is refused', async (t) => {
    const uid = randomUUID();
    const key = randomBytes(32);
    t.equal((await put(engine, '1.4', uid, key)).status, OK);
    const again = await put(engine, '1.4', uid, key, { attrs: upstreamAttrs(uid, key, [custom('x-origin', 'dc2'), stateA(ST.Active)]).filter((x, i, all) => x.name !== 'State' || i === all.length - 1) });
    t.equal(again.status, OK, `re-delivery: ${again.message ?? ''}`);
    const o = await stored(engine, uid);
    t.equal(scalar(attrValue(o, 'x-origin')), 'dc2', 'attributes updated');
    t.equal(o.state, ST.Active, 'state updated');
    for (const [version, expected] of [['1.4', 'ObjectAlreadyExists'], ['1.2', 'IllegalOperation'], ['2.1', 'ObjectAlreadyExists']] as const) {
      const other = await put(engine, version, uid, randomBytes(32));
      t.equal(other.status, FAILED, version);
      t.equal(other.reason, reason(expected), `${version}: ${expected}`);
    }
    const g = await get(engine, uid, '1.4', [], UPSTREAM);
    t.same(keyBytes(g.payload), key, 'the key is unchanged');
    const refused = await put(engine, '1.4', uid, key, { attrs: [...upstreamAttrs(uid, key).filter((x) => x.name !== 'State'), stateA(ST.Destroyed)] });
    t.equal(refused.reason, reason('InvalidField'), 'a re-delivery cannot destroy it either (Notify does)');
    t.ok((await stored(engine, uid)).material, 'still has its material');
    const mine = await createKey(engine, '1.4', undefined, 'mallory');
    const hijack = await put(engine, '1.4', mine, randomBytes(32));
    t.equal(hijack.reason, reason('ObjectAlreadyExists'), "another owner's identifier cannot be taken");
    t.equal((await stored(engine, mine)).owner, 'mallory');
  });

  t.test('Put Replace stores the new object and links it with the replaced one', async (t) => {
    for (const version of ['1.4', '2.1'] as const) {
      const oldUid = randomUUID();
      const newUid = randomUUID();
      t.equal((await put(engine, version, oldUid, randomBytes(32))).status, OK);
      const key = randomBytes(32);
      const r = await put(engine, version, newUid, key, { replaced: oldUid });
      t.equal(r.status, OK, `${version}: ${r.message ?? ''}`);
      t.same(keyBytes((await get(engine, newUid, version, [], UPSTREAM)).payload), key);
      t.same(linksOf(await stored(engine, oldUid), LT.ReplacementObjectLink), [newUid], 'old -> new');
      t.same(linksOf(await stored(engine, newUid), LT.ReplacedObjectLink), [oldUid], 'new -> old');
      // Replacing again moves the old object's Replacement link.
      const newer = randomUUID();
      t.equal((await put(engine, version, newer, randomBytes(32), { replaced: oldUid })).status, OK);
      t.same(linksOf(await stored(engine, oldUid), LT.ReplacementObjectLink), [newer], 'one Replacement link, the latest');
    }
    const lone = randomUUID();
    const r = await put(engine, '1.4', lone, randomBytes(16), { replaced: randomUUID() });
    t.equal(r.status, OK, 'a replaced object unknown here: as New');
    t.same(linksOf(await stored(engine, lone), LT.ReplacedObjectLink), [], 'no link to an object that is not here');
    const theirs = await createKey(engine, '1.4', undefined, 'mallory');
    const denied = randomUUID();
    const d = await put(engine, '1.4', denied, randomBytes(16), { replaced: theirs });
    t.equal(d.reason, reason('PermissionDenied'), 'an object the upstream may not change cannot be replaced');
    t.equal(await engine.store.get(denied), undefined);
  });

  t.test('Notify changes the attributes it names', async (t) => {
    const uid = randomUUID();
    const key = randomBytes(32);
    t.equal((await put(engine, '1.4', uid, key)).status, OK);
    const lcd = nowS() - 10n;
    let r = await notify(engine, '1.4', uid, [custom('x-provider', 'unknown'), lastChange(lcd)]);
    t.equal(r.status, OK, r.message ?? '');
    t.equal(r.payload?.value.length, 0, 'empty response payload');
    let o = await stored(engine, uid);
    t.equal(scalar(attrValue(o, 'x-provider')), 'unknown');
    t.equal(scalar(attrValue(o, 'Last Change Date')), lcd, 'Last Change Date as sent');

    r = await notify(engine, '1.4', uid, [custom('x-provider', 'third party'), stateA(ST.Active), a('Activation Date', T.date(Tag.ActivationDate, nowS() - 5n))]);
    t.equal(r.status, OK, r.message ?? '');
    o = await stored(engine, uid);
    t.same(attrValues(o, 'x-provider').map(scalar), ['third party'], 'replaced, not added');
    t.equal(o.state, ST.Active);
    t.ok(scalar(attrValue(o, 'Last Change Date')) as bigint >= nowS() - 5n, 'Last Change Date now when not sent');

    // 1.x: an Attribute without Attribute Value is a deleted attribute.
    const del = T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'x-provider')]);
    r = await engine.call(OP.Notify, [uidNode(uid), del, ...attributesForVersion([lastChange(nowS())], '1.4')], { version: '1.4', identity: UPSTREAM });
    t.equal(r.status, OK, r.message ?? '');
    t.equal(attrValues(await stored(engine, uid), 'x-provider').length, 0, 'deleted (1.x)');

    // 2.x: Attributes replace every instance of each attribute they hold; Attribute Reference deletes.
    r = await notify(engine, '2.1', uid, [custom('x-tag', 'a'), custom('x-tag', 'b'), a('Contact Information', T.text(Tag.ContactInformation, 'ops@example.com'))]);
    t.equal(r.status, OK, r.message ?? '');
    t.same(attrValues(await stored(engine, uid), 'x-tag').map(scalar), ['a', 'b']);
    r = await notify(engine, '2.1', uid, [lastChange(nowS())], { extra: [T.enum(Tag.AttributeReference, Tag.ContactInformation)] });
    t.equal(r.status, OK, r.message ?? '');
    t.equal(attrValue(await stored(engine, uid), 'Contact Information'), undefined, 'deleted (2.x)');
    t.same(keyBytes((await get(engine, uid, '1.4', [], UPSTREAM)).payload), key, 'the key is untouched');
  });

  t.test('Notify of Destroyed removes the key material; a destroyed object stays destroyed', async (t) => {
    const uid = randomUUID();
    t.equal((await put(engine, '1.4', uid, randomBytes(32))).status, OK);
    const r = await notify(engine, '1.4', uid, [lastChange(nowS()), stateA(ST.Destroyed)]);
    t.equal(r.status, OK, r.message ?? '');
    const o = await stored(engine, uid);
    t.equal(o.state, ST.Destroyed);
    t.equal(o.material, null, 'material gone');
    t.ok(attrValue(o, 'Destroy Date'), 'Destroy Date set');
    t.equal((await get(engine, uid, '1.4', [], UPSTREAM)).status, FAILED, 'Get fails');
    const again = await notify(engine, '1.4', uid, [lastChange(nowS()), stateA(ST.Destroyed)]);
    t.equal(again.status, OK, 'notifying the destruction again is harmless');
    const back = await notify(engine, '2.1', uid, [stateA(ST.Active)]);
    t.equal(back.reason, reason('WrongKeyLifecycleState'), 'no way back');
    const back1 = await notify(engine, '1.4', uid, [stateA(ST.Active)]);
    t.equal(back1.reason, reason('PermissionDenied'), '1.x: Permission Denied');
  });

  t.test('bad payloads get the right Result Reason and change nothing', async (t) => {
    const uid = randomUUID();
    const key = randomBytes(32);
    const call = (payload: TtlvNode[], version: KmipVersion = '1.4', op: number = OP.Put) => engine.call(op, payload, { version, identity: UPSTREAM });
    const attrs = upstreamAttrs(uid, key);
    const cases: [string, TtlvNode[], string, KmipVersion?][] = [
      ['no Put Function', [uidNode(uid), aesKey(key)], 'MissingData'],
      ['no Unique Identifier', [T.enum(Tag.PutFunction, PF.New), aesKey(key)], 'MissingData'],
      ['an unknown Put Function', putPayload('1.4', uid, 7, aesKey(key), attrs), 'InvalidField'],
      ['Replace without Replaced Unique Identifier', putPayload('1.4', uid, PF.Replace, aesKey(key), attrs), 'MissingData'],
      ['New with a Replaced Unique Identifier', putPayload('1.4', uid, PF.New, aesKey(key), attrs, randomUUID()), 'InvalidField'],
      ['an object replacing itself', putPayload('1.4', uid, PF.Replace, aesKey(key), attrs, uid), 'InvalidField'],
      ['no Managed Object', putPayload('1.4', uid, PF.New, undefined, attrs), 'MissingData'],
      ['two Managed Objects', [...putPayload('1.4', uid, PF.New, aesKey(key), attrs), aesKey(key)], 'InvalidField'],
      ['a Digest that does not match the key', putPayload('1.4', uid, PF.New, aesKey(key), [...attrs.filter((x) => x.name !== 'Digest'), digestOf(randomBytes(32))]), 'InvalidField'],
      ['a Unique Identifier attribute naming another object', putPayload('1.4', uid, PF.New, aesKey(key), [...attrs.filter((x) => x.name !== 'Unique Identifier'), a('Unique Identifier', T.text(Tag.UniqueIdentifier, 'other'))]), 'InvalidField'],
      ['an Object Type attribute that is not the object', putPayload('1.4', uid, PF.New, aesKey(key), [...attrs.filter((x) => x.name !== 'Object Type'), a('Object Type', T.enum(Tag.ObjectType, Enums.ObjectType.SecretData))]), 'InvalidField'],
      ['a Cryptographic Length that is not the key', putPayload('1.4', uid, PF.New, aesKey(key), [...attrs.filter((x) => x.name !== 'Cryptographic Length'), len(128)]), 'InvalidField'],
      ['a 15-byte AES key', putPayload('1.4', uid, PF.New, aesKey(randomBytes(15)), []), 'InvalidField'],
      ['a pushed Destroyed object', putPayload('1.4', uid, PF.New, aesKey(key), [...attrs.filter((x) => x.name !== 'State'), stateA(ST.Destroyed)]), 'InvalidField'],
      ['State twice (2.x)', putPayload('2.1', uid, PF.New, aesKey(key), [...attrs, stateA(ST.Active)]), 'AttributeSingleValued', '2.1'],
      ['State twice (1.x)', putPayload('1.4', uid, PF.New, aesKey(key), [...attrs, stateA(ST.Active)]), 'InvalidField'],
      ['an attribute that does not apply (Certificate Type on a key, 2.x)', putPayload('2.1', uid, PF.New, aesKey(key), [...attrs, a('Certificate Type', T.enum(Tag.CertificateType, Enums.CertificateType.X_509))]), 'InvalidAttribute', '2.1'],
      ['a State that is no state', putPayload('2.1', uid, PF.New, aesKey(key), [...attrs.filter((x) => x.name !== 'State'), stateA(99)]), 'InvalidAttributeValue', '2.1'],
      ['an attribute without value', [...putPayload('1.4', uid, PF.New, aesKey(key), attrs), T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'x-gone')])], 'MissingData'],
      ['a Template', [uidNode(uid), T.enum(Tag.PutFunction, PF.New), T.struct(Tag.Template, [])], 'FeatureNotSupported'],
      ['an empty Unique Identifier', putPayload('1.4', '', PF.New, aesKey(key), []), 'InvalidField'],
      ['a Unique Identifier with a control character', putPayload('1.4', 'a\nb', PF.New, aesKey(key), []), 'InvalidField'],
      ['a 300-character Unique Identifier', putPayload('1.4', 'u'.repeat(300), PF.New, aesKey(key), []), 'InvalidField'],
    ];
    for (const [what, payload, expected, version] of cases) {
      const r = await call(payload, version ?? '1.4');
      t.equal(r.status, FAILED, what);
      t.equal(r.reason, reason(expected), `${what}: ${expected} (${r.message ?? ''})`);
    }
    t.equal(await engine.store.get(uid), undefined, 'none of them stored anything');

    t.equal((await put(engine, '1.4', uid, key)).status, OK);
    const before = await stored(engine, uid);
    const notifies: [string, TtlvNode[], string, KmipVersion?][] = [
      ['an object that does not exist', notifyPayload('1.4', randomUUID(), [lastChange(nowS())]), 'ItemNotFound'],
      ['no attribute', [uidNode(uid)], 'MissingData'],
      ['no Unique Identifier', attributesForVersion([lastChange(nowS())], '1.4'), 'MissingData'],
      ['a changed Cryptographic Length', notifyPayload('1.4', uid, [len(128)]), 'InvalidField'],
      ['a changed Digest', notifyPayload('1.4', uid, [digestOf(randomBytes(32))]), 'InvalidField'],
      ['a changed Unique Identifier', notifyPayload('1.4', uid, [a('Unique Identifier', T.text(Tag.UniqueIdentifier, 'x'))]), 'InvalidField'],
      ['a deleted Initial Date', [uidNode(uid), T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Initial Date')])], 'InvalidField'],
      ['an attribute that does not apply (2.x)', notifyPayload('2.1', uid, [a('Certificate Type', T.enum(Tag.CertificateType, 1))]), 'InvalidAttribute', '2.1'],
    ];
    for (const [what, payload, expected, version] of notifies) {
      const r = await call(payload, version ?? '1.4', OP.Notify);
      t.equal(r.status, FAILED, what);
      t.equal(r.reason, reason(expected), `Notify, ${what}: ${expected} (${r.message ?? ''})`);
    }
    const theirs = await createKey(engine, '1.4', undefined, 'mallory');
    t.equal((await notify(engine, '1.4', theirs, [lastChange(nowS())])).reason, reason('ItemNotFound'), "another owner's object is not found");
    t.equal((await stored(engine, uid)).revision, before.revision, 'the object is unchanged');
  });

  t.test('other object types: Secret Data pushed, Get returns it', async (t) => {
    const uid = randomUUID();
    const secret = randomBytes(24);
    const obj = T.struct(Tag.SecretData, [
      T.enum(Tag.SecretDataType, Enums.SecretDataType.Password),
      T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.Opaque), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, secret)])]),
    ]);
    const r = await engine.call(OP.Put, putPayload('2.1', uid, PF.New, obj, [a('Object Type', T.enum(Tag.ObjectType, Enums.ObjectType.SecretData)), lastChange(nowS() - 60n)]), { version: '2.1', identity: UPSTREAM });
    t.equal(r.status, OK, r.message ?? '');
    const o = await stored(engine, uid);
    t.equal(o.objectType, Enums.ObjectType.SecretData);
    const g = await get(engine, uid, '2.1', [], CONSUMER);
    t.same(keyBytes(g.payload, Tag.SecretData), secret);
  });

  t.test('a refused insert of an existing identifier is not journalled: Undo keeps the object that was there', async (t) => {
    const uid = randomUUID();
    t.equal((await put(engine, '1.4', uid, randomBytes(16))).status, OK);
    const objects = new ObjectService(engine.store, engine.state.sealer, { name: UPSTREAM }, { groups: [], admins: [], adminsMayReadKeyMaterial: false });
    const err = await objects.create({ uid, objectType: Enums.ObjectType.OpaqueObject, state: ST.PreActive, attributes: [] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof KmipError && err.reason === 'ObjectAlreadyExists', 'Object Already Exists');
    await objects.undo();
    t.ok(await engine.store.get(uid), 'still there after the Undo');
  });

  t.test('Query lists Notify and Put', async (t) => {
    for (const version of ['1.0', '1.4', '2.1'] as const) {
      const r = await engine.call(OP.Query, [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryOperations)], { version });
      const ops = (r.payload?.value ?? []).filter((c) => c.tag === Tag.Operation).map(scalar);
      t.ok(ops.includes(OP.Notify) && ops.includes(OP.Put), version);
    }
  });
});
