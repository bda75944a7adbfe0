/**
 * Export and Import (round trip, ownership, Get's rules), Adjust Attribute, Set / Get
 * Constraints, Set Endpoint Role, and the Quantum Safe rule.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import t from 'tap';
import { attributesFrom2x, type KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Tag } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { ALG, FAILED, KFT, OK, OP, ST, a, activation, alg, attrValue, createKey, createPayload, get, keyBytes, len, mask, nameA, nowS, reason, stored, struct, template, text, uidNode, notFound } from './_keys.js';

const V = '2.1' as const;
const OT = Enums.ObjectType;

async function exportObject(engine: Engine, uid: string, identity = 'alice', extra: TtlvNode[] = []) {
  return engine.call(OP.Export, [uidNode(uid), ...extra], { version: V, identity });
}

function exportedAttributes(p: StructureNode | undefined): KmipAttribute[] {
  const s = struct(p, Tag.Attributes);
  return s ? attributesFrom2x(s) : [];
}

/** An Import payload built from an Export response, under `uid`. */
function importPayload(exported: StructureNode, uid: string, replace?: boolean): TtlvNode[] {
  const objectType = exported.value.find((c) => c.tag === Tag.ObjectType)!;
  const attrs = struct(exported, Tag.Attributes)!;
  const renamed = T.struct(
    Tag.Attributes,
    attrs.value.flatMap((c) => (c.tag === Tag.UniqueIdentifier ? [T.text(Tag.UniqueIdentifier, uid)] : c.tag === Tag.ShortUniqueIdentifier ? [] : [c])),
  );
  const object = exported.value[exported.value.length - 1]!;
  const out: TtlvNode[] = [uidNode(uid), objectType];
  if (replace !== undefined) out.push(T.bool(Tag.ReplaceExisting, replace));
  out.push(renamed, object);
  return out;
}

function registerSecret(engine: Engine, attrs: KmipAttribute[], identity = 'alice') {
  return engine.call(
    OP.Register,
    [
      T.enum(Tag.ObjectType, OT.SecretData),
      ...template(V, attrs),
      T.struct(Tag.SecretData, [
        T.enum(Tag.SecretDataType, Enums.SecretDataType.Password),
        T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.Raw), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, Buffer.from('password'))])]),
      ]),
    ],
    { version: V, identity },
  );
}

t.test('Export returns the object and all its attributes; Import brings it back under a chosen identifier', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const uid = await createKey(engine, V, [alg(ALG.AES), len(256), mask(12), nameA('exported')]);
  const key = keyBytes((await get(engine, uid, V)).payload)!;

  const ex = await exportObject(engine, uid);
  t.equal(ex.status, OK, ex.message ?? "");
  t.same(keyBytes(ex.payload), key, 'the key, as Get returns it');
  const attrs = exportedAttributes(ex.payload);
  for (const n of ['Unique Identifier', 'Short Unique Identifier', 'Object Type', 'Cryptographic Algorithm', 'Cryptographic Length', 'Digest', 'State', 'Initial Date', 'Name', 'Always Sensitive', 'Protection Storage Mask']) {
    t.ok(attrs.some((x) => x.name === n), `the export holds ${n}`);
  }

  // Into a fresh server (the data-centre move Export / Import is for), by another identity.
  const other = await startEngine();
  t.teardown(() => other.close());
  const imported = await other.call(OP.Import, importPayload(ex.payload!, uid), { version: V, identity: 'bob' });
  t.equal(imported.status, OK, imported.message ?? "");
  t.equal(text(imported.payload, Tag.UniqueIdentifier), uid, 'the identifier the client chose');
  const back = await other.call(OP.Get, [uidNode(uid)], { version: V, identity: 'bob' });
  t.equal(back.status, OK);
  t.same(keyBytes(back.payload), key, 'the same key');
  const o = await stored(other, uid);
  t.equal(o.owner, 'bob', 'owned by the importer');
  t.same(attrValue(o, 'Initial Date'), attrs.find((x) => x.name === 'Initial Date')!.value, 'Initial Date as supplied, not the import time');
  t.ok(o.material, 'material stored');
  t.notOk(o.material!.blob.includes(key.subarray(0, 16)), 'sealed at rest, not in plaintext');
  t.equal((await get(other, uid, V, [], 'alice')).reason, notFound(V), 'another identity does not see it');

  // The same identifier again: refused without Replace Existing, replaced with it.
  const again = await other.call(OP.Import, importPayload(ex.payload!, uid, false), { version: V, identity: 'bob' });
  t.equal(again.status, FAILED);
  t.equal(again.reason, reason('ObjectAlreadyExists'));
  const replaced = await other.call(OP.Import, importPayload(ex.payload!, uid, true), { version: V, identity: 'bob' });
  t.equal(replaced.status, OK, replaced.message ?? "");
});

t.test('Import never replaces another identity\'s object', async (t) => {
  const engine = await startEngine({ policy: { admins: ['carol'], adminsMayReadKeyMaterial: true } });
  t.teardown(() => engine.close());
  const uid = await createKey(engine, V);
  const key = keyBytes((await get(engine, uid, V)).payload)!;
  const theirs = await createKey(engine, V, undefined, 'bob');
  const ex = await exportObject(engine, theirs, 'bob');
  t.equal(ex.status, OK);
  for (const identity of ['bob', 'carol']) {
    const r = await engine.call(OP.Import, importPayload(ex.payload!, uid, true), { version: V, identity });
    t.equal(r.status, FAILED, `${identity} may not replace alice's key`);
    t.equal(r.reason, reason('ObjectAlreadyExists'));
  }
  t.same(keyBytes((await get(engine, uid, V)).payload), key, 'alice\'s key unchanged');
  t.equal((await stored(engine, uid)).owner, 'alice');
});

t.test('Import checks what it is given', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const uid = await createKey(engine, V);
  const ex = (await exportObject(engine, uid)).payload!;
  const fresh = randomUUID();
  // Unique Identifier attribute disagreeing with the request's.
  const p = importPayload(ex, fresh);
  p[0] = uidNode(randomUUID());
  let r = await engine.call(OP.Import, p, { version: V });
  t.equal(r.reason, reason('InvalidField'), 'Unique Identifier attribute must agree');
  // A key whose length contradicts its attribute.
  const bad = importPayload(ex, fresh).map((c) =>
    c.tag === Tag.SymmetricKey
      ? T.struct(Tag.SymmetricKey, [T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.Raw), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, randomBytes(16))]), T.enum(Tag.CryptographicAlgorithm, ALG.AES), T.int(Tag.CryptographicLength, 256)])])
      : c,
  );
  r = await engine.call(OP.Import, bad, { version: V });
  t.equal(r.status, FAILED, 'a 16-byte key declared 256 bits is refused');
  // Destroyed state.
  const destroyed = importPayload(ex, fresh).map((c) =>
    c.tag === Tag.Attributes ? T.struct(Tag.Attributes, (c as StructureNode).value.map((x) => (x.tag === Tag.State ? T.enum(Tag.State, ST.Destroyed) : x))) : c,
  );
  r = await engine.call(OP.Import, destroyed, { version: V });
  t.equal(r.reason, reason('InvalidField'), 'not as a destroyed object');
  r = await engine.call(OP.Import, [uidNode(''), T.enum(Tag.ObjectType, OT.SymmetricKey)], { version: V });
  t.equal(r.status, FAILED, 'an empty identifier is refused');
  t.equal((await engine.call(OP.Get, [uidNode(fresh)], { version: V })).reason, notFound(V), 'nothing stored');
});

t.test('Export refuses what Get refuses', async (t) => {
  const engine = await startEngine({ policy: { admins: ['carol'], adminsMayReadKeyMaterial: false } });
  t.teardown(() => engine.close());
  const uid = await createKey(engine, V);
  const same = async (what: string, u: string, identity = 'alice', expected?: string) => {
    const g = await get(engine, u, V, [], identity);
    const e = await exportObject(engine, u, identity);
    t.equal(g.status, FAILED, `${what}: Get fails`);
    t.equal(e.status, FAILED, `${what}: Export fails`);
    t.equal(e.reason, g.reason, `${what}: with the same reason`);
    if (expected) t.equal(e.reason, reason(expected), `${what}: ${expected}`);
    t.notOk(keyBytes(e.payload), `${what}: no key`);
  };
  await same('another identity', uid, 'bob', 'ObjectNotFound');
  await same('an admin without the right to read material', uid, 'carol', 'PermissionDenied');
  const notExtractable = await createKey(engine, V, [alg(ALG.AES), len(256), mask(12), a('Extractable', T.bool(Tag.Extractable, false))]);
  await same('Extractable false', notExtractable, 'alice', 'NotExtractable');
  const sensitive = await createKey(engine, V, [alg(ALG.AES), len(256), mask(12), a('Sensitive', T.bool(Tag.Sensitive, true))]);
  await same('Sensitive', sensitive, 'alice', 'Sensitive');

  // Destroyed: the attributes, not the key.
  const gone = await createKey(engine, V);
  t.equal((await engine.call(OP.Destroy, [uidNode(gone)], { version: V })).status, OK);
  const e = await exportObject(engine, gone);
  t.equal(e.status, OK);
  t.ok(struct(e.payload, Tag.Attributes), 'attributes');
  t.notOk(struct(e.payload, Tag.SymmetricKey), 'no key');
});

t.test('Adjust Attribute', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const start = nowS() + 86400n;
  const uid = await createKey(engine, V, [alg(ALG.AES), len(256), mask(12), activation(start), a('x-count', T.int(Tag.AttributeValue, 10)), a('x-flag', T.bool(Tag.AttributeValue, false))]);
  const adjust = (ref: TtlvNode, type: number, value?: TtlvNode) =>
    engine.call(OP.AdjustAttribute, [uidNode(uid), ref, T.enum(Tag.AdjustmentType, type), ...(value ? [value] : [])], { version: V });
  const custom = (n: string) => T.struct(Tag.AttributeReference, [T.text(Tag.VendorIdentification, 'x'), T.text(Tag.AttributeName, n)]);
  const ADJ = Enums.AdjustmentType;
  let r = await adjust(custom('count'), ADJ.Increment, T.int(Tag.AdjustmentValue, 5));
  t.equal(r.status, OK, r.message ?? "");
  t.equal(attrValue(await stored(engine, uid), 'x-count')?.value, 15, 'incremented');
  r = await adjust(custom('count'), ADJ.Decrement, T.int(Tag.AdjustmentValue, 20));
  t.equal(attrValue(await stored(engine, uid), 'x-count')?.value, -5, 'decremented');
  r = await adjust(custom('count'), ADJ.Negate);
  t.equal(attrValue(await stored(engine, uid), 'x-count')?.value, 5, 'negated');
  r = await adjust(custom('flag'), ADJ.Negate);
  t.equal(attrValue(await stored(engine, uid), 'x-flag')?.value, true, 'a boolean negated');
  r = await adjust(custom('count'), ADJ.Increment, T.int(Tag.AdjustmentValue, 2 ** 31 - 1));
  t.equal(r.reason, reason('InvalidField'), 'overflow refused');
  t.equal(attrValue(await stored(engine, uid), 'x-count')?.value, 5, 'and nothing changed');
  r = await adjust(custom('count'), ADJ.Increment);
  t.equal(r.reason, reason('MissingData'), 'Increment needs a value');

  const activationRef = T.enum(Tag.AttributeReference, Tag.ActivationDate);
  r = await adjust(activationRef, ADJ.Increment, T.interval(Tag.AdjustmentValue, 3600));
  t.equal(r.status, OK, r.message ?? "");
  t.equal(attrValue(await stored(engine, uid), 'Activation Date')?.value, start + 3600n, 'a date moved by an interval');
  r = await adjust(activationRef, ADJ.Negate);
  t.equal(r.reason, reason('InvalidField'), 'a date cannot be negated');
  r = await adjust(T.enum(Tag.AttributeReference, Tag.CryptographicLength), ADJ.Increment, T.int(Tag.AdjustmentValue, 1));
  t.equal(r.status, FAILED, 'a read-only attribute stays read-only');
  t.equal(attrValue(await stored(engine, uid), 'Cryptographic Length')?.value, 256);
  r = await adjust(T.enum(Tag.AttributeReference, Tag.DeactivationDate), ADJ.Increment, T.int(Tag.AdjustmentValue, 1));
  t.equal(r.reason, reason('AttributeNotFound'), 'an absent attribute');
});

t.test('Set / Get Constraints: stored per identity, applied to new objects', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const constraint = (types: number[], groups: string[], attrs: TtlvNode[]) => {
    const c: TtlvNode[] = [];
    if (types.length) c.push(T.struct(Tag.ObjectTypes, types.map((x) => T.enum(Tag.ObjectType, x))));
    if (groups.length) c.push(T.struct(Tag.ObjectGroups, groups.map((g) => T.text(Tag.ObjectGroup, g))));
    c.push(T.struct(Tag.Attributes, attrs));
    return T.struct(Tag.Constraint, c);
  };
  const constraints = T.struct(Tag.Constraints, [
    constraint([OT.SymmetricKey], ['Group1'], [T.enum(Tag.CryptographicAlgorithm, ALG.AES), T.int(Tag.CryptographicLength, 256)]),
    constraint([OT.SymmetricKey], [], [T.enum(Tag.CryptographicAlgorithm, ALG.AES), T.int(Tag.CryptographicLength, 192)]),
  ]);
  let r = await engine.call(OP.SetConstraints, [constraints], { version: V });
  t.equal(r.status, OK, r.message ?? "");
  r = await engine.call(OP.GetConstraints, [], { version: V });
  t.same(struct(r.payload, Tag.Constraints), constraints, 'read back as set');
  t.notOk(struct((await engine.call(OP.GetConstraints, [], { version: V, identity: 'bob' })).payload, Tag.Constraints), 'bob has none');

  const create = (attrs: KmipAttribute[], identity = 'alice') => engine.call(OP.Create, createPayload(V, attrs), { version: V, identity });
  const group = (g: string) => a('Object Group', T.text(Tag.ObjectGroup, g));
  t.equal((await create([alg(ALG.AES), len(192), mask(12)])).status, OK, 'AES-192: allowed');
  r = await create([alg(ALG.AES), len(256), mask(12)]);
  t.equal(r.reason, reason('ConstraintViolation'), 'AES-256 outside Group1: refused');
  t.equal((await create([alg(ALG.AES), len(256), mask(12), group('Group1')])).status, OK, 'AES-256 in Group1: allowed');
  t.equal((await create([alg(ALG.AES), len(128), mask(12), group('Group1')])).reason, reason('ConstraintViolation'), 'AES-128 in Group1: refused');
  t.equal((await registerSecret(engine, [])).status, OK, 'Secret Data: no constraint applies');
  t.equal((await create([alg(ALG.AES), len(256), mask(12)], 'bob')).status, OK, 'bob is not bound by alice\'s constraints');
  // Create of Secret Data is a new object too: a constraint on Secret Data applies to it.
  r = await engine.call(OP.SetConstraints, [T.struct(Tag.Constraints, [constraint([OT.SecretData], [], [T.text(Tag.ObjectGroup, 'Secrets')])])], { version: V, identity: 'bob' });
  t.equal(r.status, OK, r.message ?? '');
  const secret = (attrs: KmipAttribute[]) => engine.call(OP.Create, createPayload(V, attrs, OT.SecretData), { version: V, identity: 'bob' });
  t.equal((await secret([len(256)])).reason, reason('ConstraintViolation'), 'generated Secret Data outside the Secrets group: refused');
  t.equal((await secret([len(256), group('Secrets')])).status, OK, 'in the Secrets group: allowed');
  const inGroup = text((await create([alg(ALG.AES), len(256), mask(12), group('Group1')])).payload, Tag.UniqueIdentifier)!;
  t.equal((await engine.call(OP.ReKey, [uidNode(inGroup)], { version: V })).status, OK, 'Re-key of an allowed key: allowed');
  await engine.call(OP.DeleteAttribute, [uidNode(inGroup), T.struct(Tag.CurrentAttribute, [T.text(Tag.ObjectGroup, 'Group1')])], { version: V });
  t.equal((await engine.call(OP.ReKey, [uidNode(inGroup)], { version: V })).reason, reason('ConstraintViolation'), 'Re-key is a new object too: checked');

  r = await engine.call(OP.SetConstraints, [], { version: V });
  t.equal(r.status, OK);
  t.notOk(struct((await engine.call(OP.GetConstraints, [], { version: V })).payload, Tag.Constraints), 'cleared');
  t.equal((await create([alg(ALG.AES), len(256), mask(12)])).status, OK, 'AES-256 allowed again');
  t.equal((await engine.call(OP.SetConstraints, [], { version: '2.0' })).reason, reason('OperationNotSupported'), 'a 2.1 operation');
});

t.test('Quantum Safe: only what kmipd considers quantum safe', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const qs = a('Quantum Safe', T.bool(Tag.QuantumSafe, true));
  let r = await engine.call(OP.Create, createPayload(V, [alg(ALG.AES), len(128), mask(12), qs]), { version: V });
  t.equal(r.status, FAILED);
  t.equal(r.reason, reason('GeneralFailure'), 'AES-128 is not (QS-M-2)');
  r = await engine.call(OP.Create, createPayload(V, [alg(ALG.AES), len(192), mask(12), qs]), { version: V });
  t.equal(r.reason, reason('GeneralFailure'), 'AES-192 is not');
  r = await engine.call(OP.Create, createPayload(V, [alg(ALG.AES), len(256), mask(12), qs]), { version: V });
  t.equal(r.status, OK, 'AES-256 is');
  r = await engine.call(OP.Create, createPayload(V, [alg(ALG.AES), len(128), mask(12), a('Quantum Safe', T.bool(Tag.QuantumSafe, false))]), { version: V });
  t.equal(r.status, OK, 'Quantum Safe false asks nothing');
  r = await registerSecret(engine, [qs]);
  t.equal(r.reason, reason('GeneralFailure'), 'Secret Data cannot be vouched for');

  const pair = (common: TtlvNode[]) =>
    engine.call(
      OP.CreateKeyPair,
      [T.struct(Tag.CommonAttributes, [T.enum(Tag.CryptographicAlgorithm, ALG.RSA), T.int(Tag.CryptographicLength, 2048), ...common]), T.struct(Tag.PrivateKeyAttributes, [T.int(Tag.CryptographicUsageMask, 1)]), T.struct(Tag.PublicKeyAttributes, [T.int(Tag.CryptographicUsageMask, 2)])],
      { version: V },
    );
  t.equal((await pair([])).status, OK, 'control: the same request without Quantum Safe succeeds');
  const before = await engine.store.count();
  r = await pair([T.bool(Tag.QuantumSafe, true)]);
  t.equal(r.reason, reason('GeneralFailure'), 'RSA is never quantum safe');
  t.same(await engine.store.count(), before, 'neither half stored');
});

t.test('Set Endpoint Role', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  let r = await engine.call(OP.SetEndpointRole, [T.enum(Tag.EndpointRole, Enums.EndpointRole.Client)], { version: '2.0' });
  t.equal(r.status, OK);
  t.equal(r.payload?.value.find((c) => c.tag === Tag.EndpointRole)?.value, Enums.EndpointRole.Client);
  r = await engine.call(OP.SetEndpointRole, [T.enum(Tag.EndpointRole, Enums.EndpointRole.Server)], { version: V });
  t.equal(r.reason, reason('FeatureNotSupported'), 'kmipd sends no requests to its peers');
});

t.test('Protect Stop Date applies to Secret Data (BL-M-4-21, TC-IMPEXP-3-20)', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const r = await registerSecret(engine, [a('Protect Stop Date', T.date(Tag.ProtectStopDate, nowS()))]);
  t.equal(r.status, OK, r.message ?? "");
  const ex = await exportObject(engine, text(r.payload, Tag.UniqueIdentifier)!);
  t.ok(exportedAttributes(ex.payload).some((x) => x.name === 'Protect Stop Date'));
});

t.test('KMIP 1.4: Export answers Attribute structures; Import reads them', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const uid = await createKey(engine, '1.4', [alg(ALG.AES), len(256), mask(12), nameA('one-four')]);
  const key = keyBytes((await get(engine, uid, '1.4')).payload)!;
  const ex = await engine.call(OP.Export, [uidNode(uid)], { version: '1.4' });
  t.equal(ex.status, OK, ex.message ?? '');
  const attrs = ex.payload!.value.filter((c) => c.tag === Tag.Attribute);
  t.ok(attrs.length > 5, 'Attribute structures');
  t.notOk(struct(ex.payload, Tag.Attributes), 'no 2.x Attributes structure');
  const fresh = randomUUID();
  const payload: TtlvNode[] = [
    uidNode(fresh),
    T.enum(Tag.ObjectType, OT.SymmetricKey),
    ...attrs.filter((c) => (c as StructureNode).value.find((x) => x.tag === Tag.AttributeName)?.value !== 'Unique Identifier'),
    struct(ex.payload, Tag.SymmetricKey)!,
  ];
  const r = await engine.call(OP.Import, payload, { version: '1.4', identity: 'bob' });
  t.equal(r.status, OK, r.message ?? '');
  t.same(keyBytes((await get(engine, fresh, '1.4', [], 'bob')).payload), key, 'the same key under the new identifier');
  t.same(attrValue(await stored(engine, fresh), 'Name'), attrValue(await stored(engine, uid), 'Name'), 'its Name came along');
  t.equal((await engine.call(OP.Export, [uidNode(uid)], { version: '1.3' })).reason, reason('OperationNotSupported'), 'not before 1.4');
});
