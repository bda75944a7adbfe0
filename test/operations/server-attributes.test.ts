/**
 * Server-maintained attributes (src/operations/server-attributes.ts): Lease Time, the Sensitive /
 * Extractable family, 2.x Short Unique Identifier / Key Format Type / Protection Storage Mask,
 * Create's Original Creation Date and Random Number Generator, unnamed Get Attributes leaving
 * out what PyKMIP cannot decode only for the policy's pykmipClients, objects stored without them,
 * and Obtain Lease.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { Enums, Masks, Tag, type KmipVersion } from '../../src/spec/index.js';
import { encodeTtlv, T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { FAILED, OK, attribute1x, attributes1x, childrenOf, insertObject, nameAttr } from './_objects.js';

const Op = Enums.Operation;
const OT = Enums.ObjectType;
const R = Enums.ResultReason;
const S = Enums.State;

async function create(engine: Engine, version: KmipVersion, extra: StructureNode[] = []): Promise<string> {
  const attrs = [
    attribute1x('Cryptographic Algorithm', T.enum(0, Enums.CryptographicAlgorithm.AES)),
    attribute1x('Cryptographic Length', T.int(0, 256)),
    attribute1x('Cryptographic Usage Mask', T.int(0, 12)),
    ...extra,
  ];
  const r = await engine.call(Op.Create, [T.enum(Tag.ObjectType, OT.SymmetricKey), T.struct(Tag.TemplateAttribute, attrs)], { version });
  if (r.status !== OK) throw new Error(`Create failed: ${r.message}`);
  const uid = childrenOf(r.payload, Tag.UniqueIdentifier)[0];
  if (uid?.type !== 'TextString') throw new Error('no uid');
  return uid.value;
}

async function list1x(engine: Engine, uid: string, version: KmipVersion): Promise<string[]> {
  const r = await engine.call(Op.GetAttributeList, [T.text(Tag.UniqueIdentifier, uid)], { version });
  return childrenOf(r.payload, Tag.AttributeName).flatMap((n) => (n.type === 'TextString' ? [n.value] : []));
}

async function list2x(engine: Engine, uid: string, version: KmipVersion = '2.1'): Promise<number[]> {
  const r = await engine.call(Op.GetAttributeList, [T.text(Tag.UniqueIdentifier, uid)], { version });
  return childrenOf(r.payload, Tag.AttributeReference).flatMap((n) => (n.type === 'Enumeration' ? [n.value] : []));
}

async function get1x(engine: Engine, uid: string, names: string[], version: KmipVersion = '1.4') {
  const r = await engine.call(Op.GetAttributes, [T.text(Tag.UniqueIdentifier, uid), ...names.map((n) => T.text(Tag.AttributeName, n))], { version });
  return new Map(attributes1x(r.payload).map((a) => [a.name, a.value]));
}

async function get2x(engine: Engine, uid: string, tags: number[]): Promise<TtlvNode[]> {
  const r = await engine.call(Op.GetAttributes, [T.text(Tag.UniqueIdentifier, uid), ...tags.map((tag) => T.enum(Tag.AttributeReference, tag))], { version: '2.1' });
  const a = childrenOf(r.payload, Tag.Attributes)[0];
  return a?.type === 'Structure' ? a.value : [];
}

function primitive(n: TtlvNode | undefined): unknown {
  if (!n || n.type === 'Structure') return undefined;
  if (n.type === 'ByteString') return Buffer.from(n.value).toString('hex');
  return n.value;
}

async function modify1x(engine: Engine, uid: string, name: string, value: TtlvNode) {
  return engine.call(Op.ModifyAttribute, [T.text(Tag.UniqueIdentifier, uid), attribute1x(name, value)], { version: '1.4' });
}

t.test('server-maintained attributes', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  await t.test('a new key (1.4): listed, and answered when named', async (t) => {
    const uid = await create(engine, '1.4');
    const names = await list1x(engine, uid, '1.4');
    for (const n of ['Lease Time', 'Original Creation Date', 'Random Number Generator', 'Sensitive', 'Always Sensitive', 'Extractable', 'Never Extractable']) {
      t.ok(names.includes(n), `Get Attribute List names ${n}`);
    }
    for (const n of ['Key Format Type', 'Short Unique Identifier', 'Protection Storage Mask']) t.notOk(names.includes(n), `${n} is not a 1.x attribute`);
    const got = await get1x(engine, uid, ['Lease Time', 'Sensitive', 'Always Sensitive', 'Extractable', 'Never Extractable', 'Random Number Generator', 'Original Creation Date', 'Initial Date']);
    t.equal(primitive(got.get('Lease Time')), 3600, 'Lease Time: the default 3600 s');
    t.equal(primitive(got.get('Sensitive')), false);
    t.equal(primitive(got.get('Always Sensitive')), false);
    t.equal(primitive(got.get('Extractable')), true);
    t.equal(primitive(got.get('Never Extractable')), false);
    t.equal(primitive(got.get('Original Creation Date')), primitive(got.get('Initial Date')), 'Original Creation Date: when the server made it');
    const rng = got.get('Random Number Generator');
    const alg = rng?.type === 'Structure' ? rng.value.find((c) => c.tag === Tag.RNGAlgorithm) : undefined;
    t.equal(primitive(alg), Enums.RNGAlgorithm.DRBG, 'Random Number Generator: the DRBG of node:crypto');
  });

  await t.test('an unnamed Get Attributes answers every attribute', async (t) => {
    const uid = await create(engine, '1.4');
    const all = await get1x(engine, uid, []);
    for (const n of ['Lease Time', 'Sensitive', 'Cryptographic Algorithm', 'Digest', 'State', 'Original Creation Date', 'Random Number Generator', 'Always Sensitive', 'Extractable', 'Never Extractable']) {
      t.ok(all.has(n), `${n} in the answer`);
    }
    const v10 = await create(engine, '1.0');
    t.ok((await get1x(engine, v10, [], '1.0')).has('Digest'), 'Digest in an unnamed 1.0 answer');
  });

  await t.test('for the policy\'s PyKMIP clients it leaves out what PyKMIP cannot decode', async (t) => {
    const py = await startEngine({ policy: { pykmipClients: ['alice'] } });
    t.teardown(() => py.close());
    const uid = await create(py, '1.4');
    const all = await get1x(py, uid, []);
    for (const n of ['Lease Time', 'Sensitive', 'Cryptographic Algorithm', 'Digest', 'State']) t.ok(all.has(n), `${n} in the answer`);
    for (const n of ['Original Creation Date', 'Random Number Generator', 'Always Sensitive', 'Extractable', 'Never Extractable']) t.notOk(all.has(n), `${n} only when named`);
    t.ok((await get1x(py, uid, ['Always Sensitive'])).has('Always Sensitive'), 'answered when named');
    const v10 = await create(py, '1.0');
    t.notOk((await get1x(py, v10, [], '1.0')).has('Digest'), '1.0: Digest (its 1.0 shape) only when named');
    t.ok((await get1x(py, v10, [], '1.1')).has('Digest'), '1.1: Digest in the answer');
    const star = await startEngine({ policy: { pykmipClients: ['*'] } });
    t.teardown(() => star.close());
    const u2 = await create(star, '1.4');
    t.notOk((await get1x(star, u2, [])).has('Always Sensitive'), '"*" lists every identity');
  });

  await t.test('versions: each attribute only where it exists', async (t) => {
    const uid = await create(engine, '1.1');
    const names = await list1x(engine, uid, '1.1');
    t.ok(names.includes('Lease Time'), 'Lease Time in 1.1');
    for (const n of ['Original Creation Date', 'Random Number Generator', 'Sensitive', 'Always Sensitive']) t.notOk(names.includes(n), `no ${n} for a 1.1 client`);
  });

  await t.test('2.1: Short Unique Identifier, Key Format Type, Protection Storage Mask', async (t) => {
    const uid = await create(engine, '2.1');
    const refs = await list2x(engine, uid);
    for (const tag of [Tag.ShortUniqueIdentifier, Tag.KeyFormatType, Tag.ProtectionStorageMask, Tag.LeaseTime, Tag.AlwaysSensitive]) t.ok(refs.includes(tag), `listed: 0x${tag.toString(16)}`);
    const got = await get2x(engine, uid, [Tag.ShortUniqueIdentifier, Tag.KeyFormatType, Tag.ProtectionStorageMask]);
    const by = (tag: number) => primitive(got.find((n) => n.tag === tag));
    t.equal(by(Tag.ShortUniqueIdentifier), createHash('sha256').update(uid).digest('hex'), 'Short Unique Identifier: SHA-256 of the Unique Identifier');
    t.equal(by(Tag.KeyFormatType), Enums.KeyFormatType.Raw, 'Key Format Type: Raw, as stored');
    t.equal(by(Tag.ProtectionStorageMask), Masks.ProtectionStorageMask.Software, 'Protection Storage Mask: Software');
  });

  await t.test('objects stored before these attributes existed get them on read', async (t) => {
    const uid = await insertObject(engine);
    const stored = await engine.store.get(uid);
    t.notOk(stored?.attributes.some((a) => a.name === 'Lease Time' || a.name === 'Sensitive'), 'nothing of the kind is stored');
    const got = await get1x(engine, uid, ['Lease Time', 'Always Sensitive', 'Never Extractable']);
    t.equal(primitive(got.get('Lease Time')), 3600);
    t.equal(primitive(got.get('Always Sensitive')), false);
    t.equal(primitive(got.get('Never Extractable')), false);
    const opaque = await insertObject(engine, { objectType: OT.OpaqueObject, state: S.Active });
    const names = await list1x(engine, opaque, '1.4');
    for (const n of ['Lease Time', 'Sensitive', 'Extractable']) t.notOk(names.includes(n), `an Opaque Object has no ${n}`);
    t.ok((await list2x(engine, opaque)).includes(Tag.ShortUniqueIdentifier), 'but a Short Unique Identifier (2.x)');
  });

  await t.test('Always Sensitive and Never Extractable follow the history', async (t) => {
    const uid = await create(engine, '1.4', [attribute1x('Sensitive', T.bool(0, true)), attribute1x('Extractable', T.bool(0, false))]);
    let got = await get1x(engine, uid, ['Always Sensitive', 'Never Extractable']);
    t.equal(primitive(got.get('Always Sensitive')), true, 'sensitive from the start');
    t.equal(primitive(got.get('Never Extractable')), true, 'never extractable from the start');
    t.equal((await modify1x(engine, uid, 'Sensitive', T.bool(0, false))).status, OK);
    t.equal((await modify1x(engine, uid, 'Sensitive', T.bool(0, true))).status, OK);
    t.equal((await modify1x(engine, uid, 'Extractable', T.bool(0, true))).status, OK);
    t.equal((await modify1x(engine, uid, 'Extractable', T.bool(0, false))).status, OK);
    got = await get1x(engine, uid, ['Sensitive', 'Always Sensitive', 'Extractable', 'Never Extractable']);
    t.equal(primitive(got.get('Sensitive')), true);
    t.equal(primitive(got.get('Always Sensitive')), false, 'was not sensitive for a while');
    t.equal(primitive(got.get('Extractable')), false);
    t.equal(primitive(got.get('Never Extractable')), false, 'was extractable for a while');
    const stored = await engine.store.get(uid);
    const v = (n: string) => primitive(stored?.attributes.find((a) => a.name === n)?.value);
    t.same([v('Always Sensitive'), v('Never Extractable')], [false, false], 'and that is stored');

    // An object stored without Sensitive that becomes sensitive later was not always sensitive.
    const old = await insertObject(engine);
    t.equal((await engine.call(Op.AddAttribute, [T.text(Tag.UniqueIdentifier, old), attribute1x('Sensitive', T.bool(0, true))], { version: '1.4' })).status, OK);
    got = await get1x(engine, old, ['Sensitive', 'Always Sensitive']);
    t.same([primitive(got.get('Sensitive')), primitive(got.get('Always Sensitive'))], [true, false]);
  });

  await t.test('Usage Limits: the count starts at the total (TC-51)', async (t) => {
    const uid = await create(engine, '1.1');
    const limits = T.struct(0, [T.long(Tag.UsageLimitsTotal, 1000n), T.enum(Tag.UsageLimitsUnit, Enums.UsageLimitsUnit.Byte)]);
    const r = await engine.call(Op.AddAttribute, [T.text(Tag.UniqueIdentifier, uid), attribute1x('Usage Limits', limits)], { version: '1.1' });
    t.equal(r.status, OK);
    const echoed = attributes1x(r.payload)[0]?.value;
    t.same(echoed?.type === 'Structure' ? echoed.value.map((c) => [c.tag, primitive(c)]) : [], [
      [Tag.UsageLimitsTotal, 1000n],
      [Tag.UsageLimitsCount, 1000n],
      [Tag.UsageLimitsUnit, Enums.UsageLimitsUnit.Byte],
    ]);
    const given = T.struct(0, [T.long(Tag.UsageLimitsTotal, 1000n), T.long(Tag.UsageLimitsCount, 10n), T.enum(Tag.UsageLimitsUnit, Enums.UsageLimitsUnit.Object)]);
    const other = await create(engine, '1.1', [attribute1x('Usage Limits', given)]);
    const v = (await get1x(engine, other, ['Usage Limits'], '1.1')).get('Usage Limits');
    t.equal(primitive(v?.type === 'Structure' ? v.value.find((c) => c.tag === Tag.UsageLimitsCount) : undefined), 10n, 'a count the client gave is kept');
  });

  await t.test('Get Usage Allocation takes from the count (TC-51)', async (t) => {
    const limits = T.struct(0, [T.long(Tag.UsageLimitsTotal, 1000n), T.enum(Tag.UsageLimitsUnit, Enums.UsageLimitsUnit.Byte)]);
    const uid = await create(engine, '1.1', [attribute1x('Usage Limits', limits)]);
    const alloc = (n: bigint, version: KmipVersion = '1.1') => engine.call(Op.GetUsageAllocation, [T.text(Tag.UniqueIdentifier, uid), T.long(Tag.UsageLimitsCount, n)], { version });
    let r = await alloc(500n, '2.1');
    t.equal(r.reason, R.WrongKeyLifecycleState, 'not while Pre-Active');
    t.equal((await engine.call(Op.Activate, [T.text(Tag.UniqueIdentifier, uid)], { version: '1.1' })).status, OK);
    r = await alloc(500n);
    t.equal(r.status, OK, 'first 500');
    t.equal(primitive(childrenOf(r.payload, Tag.UniqueIdentifier)[0]), uid);
    t.equal((await alloc(500n)).status, OK, 'second 500');
    const v = (await get1x(engine, uid, ['Usage Limits'], '1.1')).get('Usage Limits');
    t.equal(primitive(v?.type === 'Structure' ? v.value.find((c) => c.tag === Tag.UsageLimitsCount) : undefined), 0n, 'nothing left');
    r = await alloc(1n);
    t.equal(r.status, FAILED);
    t.equal(r.reason, R.PermissionDenied, '1.x: Permission Denied');
    t.equal((await alloc(1n, '2.1')).reason, R.UsageLimitExceeded, '2.x: Usage Limit Exceeded');
    const unlimited = await insertObject(engine, { state: S.Active });
    const u = await engine.call(Op.GetUsageAllocation, [T.text(Tag.UniqueIdentifier, unlimited), T.long(Tag.UsageLimitsCount, 1n)], { version: '1.1' });
    t.equal(u.reason, R.PermissionDenied, 'no Usage Limits, nothing to allocate');
  });

  await t.test('Check compares with the server Lease Time', async (t) => {
    const uid = await create(engine, '1.4');
    const check = (lease: number) => engine.call(Op.Check, [T.text(Tag.UniqueIdentifier, uid), T.interval(Tag.LeaseTime, lease)], { version: '1.4' });
    t.equal((await check(3600)).status, OK);
    t.equal((await check(3601)).reason, R.PermissionDenied, 'longer than the Lease Time');
  });

  await t.test('clients cannot set them', async (t) => {
    const uid = await create(engine, '1.4');
    for (const [name, value] of [
      ['Lease Time', T.interval(0, 60)],
      ['Always Sensitive', T.bool(0, true)],
    ] as const) {
      const r = await engine.call(Op.AddAttribute, [T.text(Tag.UniqueIdentifier, uid), attribute1x(name, value)], { version: '1.4' });
      t.equal(r.status, FAILED, `Add ${name} refused`);
    }
    const r = await engine.call(Op.Create, [T.enum(Tag.ObjectType, OT.SymmetricKey), T.struct(Tag.TemplateAttribute, [attribute1x('Cryptographic Algorithm', T.enum(0, Enums.CryptographicAlgorithm.AES)), attribute1x('Cryptographic Length', T.int(0, 128)), attribute1x('Lease Time', T.interval(0, 60))])], { version: '1.4' });
    t.equal(r.status, FAILED, 'Lease Time in a Create template refused');
  });

  await t.test('Obtain Lease', async (t) => {
    const uid = await create(engine, '1.1', [attribute1x('Name', nameAttr('lease-key').value)]);
    const pre = await engine.call(Op.ObtainLease, [T.text(Tag.UniqueIdentifier, uid)], { version: '1.1' });
    t.equal(pre.reason, R.PermissionDenied, 'no lease on a Pre-Active key (1.x: Permission Denied)');
    t.equal((await engine.call(Op.Activate, [T.text(Tag.UniqueIdentifier, uid)], { version: '1.1' })).status, OK);
    const r = await engine.call(Op.ObtainLease, [T.text(Tag.UniqueIdentifier, uid)], { version: '1.1' });
    t.equal(r.status, OK);
    t.equal(primitive(childrenOf(r.payload, Tag.LeaseTime)[0]), 3600, 'the server Lease Time');
    const lcd = childrenOf(r.payload, Tag.LastChangeDate)[0];
    const got = await get1x(engine, uid, ['Last Change Date'], '1.1');
    t.equal(primitive(lcd), primitive(got.get('Last Change Date')), 'with the Last Change Date');
    const compromised = await insertObject(engine, { state: S.Compromised });
    const refused = await engine.call(Op.ObtainLease, [T.text(Tag.UniqueIdentifier, compromised)], { version: '1.1' });
    t.equal(refused.status, FAILED);
    t.equal(refused.reason, R.PermissionDenied, 'no lease on a Compromised key (TC-95)');
    const opaque = await insertObject(engine, { objectType: OT.OpaqueObject, state: S.Active });
    const o = await engine.call(Op.ObtainLease, [T.text(Tag.UniqueIdentifier, opaque)], { version: '1.1' });
    t.equal(primitive(childrenOf(o.payload, Tag.LeaseTime)[0]), 0, 'an Opaque Object: no lease limit');
  });

  await t.test('Register: a Transparent Symmetric Key is digested over its Key Material (TC-181)', async (t) => {
    const key = Buffer.from('0000111122223333444455556666777788889999aaaabbbbccccddddeeeeffff', 'hex');
    const material = T.struct(Tag.KeyMaterial, [T.bytes(Tag.Key, key)]);
    const block = T.struct(Tag.KeyBlock, [
      T.enum(Tag.KeyFormatType, Enums.KeyFormatType.TransparentSymmetricKey),
      T.struct(Tag.KeyValue, [material]),
      T.enum(Tag.CryptographicAlgorithm, Enums.CryptographicAlgorithm.AES),
      T.int(Tag.CryptographicLength, 256),
    ]);
    const r = await engine.call(Op.Register, [T.enum(Tag.ObjectType, OT.SymmetricKey), T.struct(Tag.TemplateAttribute, [attribute1x('Cryptographic Usage Mask', T.int(0, 12))]), T.struct(Tag.SymmetricKey, [block])], { version: '1.1' });
    t.equal(r.status, OK, r.message ?? 'Register');
    const uid = primitive(childrenOf(r.payload, Tag.UniqueIdentifier)[0]) as string;
    const d = (await get1x(engine, uid, ['Digest'], '1.1')).get('Digest');
    const parts = d?.type === 'Structure' ? d.value : [];
    t.equal(primitive(parts.find((c) => c.tag === Tag.DigestValue)), createHash('sha256').update(encodeTtlv(material)).digest('hex'));
    t.equal(primitive(parts.find((c) => c.tag === Tag.DigestValue)), '499ce96ff6f5e19fe9fe7a2fe4c3e92b88db0001a4e8df28d9966856b6c4b87c', 'the OASIS transcript value');
    t.equal(primitive(parts.find((c) => c.tag === Tag.KeyFormatType)), Enums.KeyFormatType.TransparentSymmetricKey);
  });
});

t.test('leaseTimeSeconds setting', async (t) => {
  for (const [lease, listed] of [
    [60, true],
    [0, false],
  ] as const) {
    await t.test(`leaseTimeSeconds ${lease}`, async (t) => {
      const engine = await startEngine({ leaseTimeSeconds: lease });
      t.teardown(() => engine.close());
      const uid = await create(engine, '1.4');
      t.equal((await list1x(engine, uid, '1.4')).includes('Lease Time'), listed, listed ? 'Lease Time listed' : 'no Lease Time attribute');
      if (listed) t.equal(primitive((await get1x(engine, uid, ['Lease Time'])).get('Lease Time')), lease);
      t.equal((await engine.call(Op.Activate, [T.text(Tag.UniqueIdentifier, uid)], { version: '1.4' })).status, OK, 'activated (no lease before)');
      const r = await engine.call(Op.ObtainLease, [T.text(Tag.UniqueIdentifier, uid)], { version: '1.4' });
      t.equal(primitive(childrenOf(r.payload, Tag.LeaseTime)[0]), lease, 'Obtain Lease grants it');
    });
  }
});
