import t from 'tap';
import { Enums, Tag, compareVersions, enumValueInVersion, type KmipVersion } from '../../src/spec/index.js';
import { SERVER_INFO } from '../../src/server/server.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { batchItems, itemResult, startEngine } from '../helpers/engine.js';
import { FAILED, OK, childrenOf, textsOf } from './_objects.js';
import { profileInformation } from '../../src/operations/query.js';

const Q = Enums.Operation.Query;
const F = Enums.QueryFunction;

function fns(...f: number[]): TtlvNode[] {
  return f.map((v) => T.enum(Tag.QueryFunction, v));
}

function enums(p: StructureNode | undefined, tag: number): number[] {
  return childrenOf(p, tag).flatMap((c) => (c.type === 'Enumeration' ? [c.value] : []));
}

function struct(p: StructureNode | undefined, tag: number): StructureNode | undefined {
  return childrenOf(p, tag)[0] as StructureNode | undefined;
}

function boolIn(s: StructureNode | undefined, tag: number): boolean | undefined {
  const n = s?.value.find((c) => c.tag === tag);
  return n?.type === 'Boolean' ? n.value : undefined;
}

t.test('Query', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const registered = engine.executor.registered;
  const expectedOps = (v: KmipVersion) =>
    registered
      .filter((h) => compareVersions(h.since, v) <= 0 && enumValueInVersion('Operation', h.operation, v))
      .map((h) => h.operation)
      .sort((a, b) => a - b);

  await t.test('vCenter 1.1: Query Server Information answers with Vendor Identification', async (t) => {
    const resp = await engine.request([{ operation: Q, payload: fns(F.QueryServerInformation), id: Buffer.from('QLKC\x01\x00\x00\x00', 'latin1') }], { version: '1.1' });
    const item = batchItems(resp)[0]!;
    const id = item.value.find((c) => c.tag === Tag.UniqueBatchItemID);
    t.ok(id?.type === 'ByteString' && Buffer.from(id.value).equals(Buffer.from('QLKC\x01\x00\x00\x00', 'latin1')), 'Unique Batch Item ID echoed');
    const r = itemResult(item);
    t.equal(r.status, OK);
    t.same(textsOf(r.payload, Tag.VendorIdentification), [SERVER_INFO.vendor]);
    t.same(r.payload!.value.map((c) => c.tag), [Tag.VendorIdentification], 'nothing but Vendor Identification in 1.x');
  });

  await t.test('1.0: operations and objects from the registered handlers, in-version only', async (t) => {
    const r = await engine.call(Q, fns(F.QueryOperations, F.QueryObjects), { version: '1.0' });
    t.equal(r.status, OK);
    const ops = enums(r.payload, Tag.Operation);
    t.same(ops, expectedOps('1.0'));
    t.notOk(ops.includes(Enums.Operation.DiscoverVersions), 'Discover Versions is a 1.1 operation');
    t.notOk(ops.includes(Enums.Operation.SetAttribute), 'Set Attribute is a 2.0 operation');
    t.ok(ops.includes(Enums.Operation.Query) && ops.includes(Enums.Operation.Locate));
    const types = enums(r.payload, Tag.ObjectType);
    const declared = new Set(registered.flatMap((h) => [...(h.objectTypes ?? [])]).filter((v) => enumValueInVersion('ObjectType', v, '1.0')));
    t.same(new Set(types), declared, 'object types are those the handlers declare');
  });

  await t.test('1.0: functions of later versions are Invalid Field', async (t) => {
    for (const f of [F.QueryExtensionList, F.QueryRNGs, F.QueryCapabilities, F.QueryDefaultsInformation]) {
      const r = await engine.call(Q, fns(F.QueryOperations, f), { version: '1.0' });
      t.equal(r.status, FAILED, `function ${f}`);
      t.equal(r.reason, Enums.ResultReason.InvalidField);
    }
  });

  await t.test('1.1: extension list and map answer nothing (kmipd defines no extension)', async (t) => {
    const r = await engine.call(Q, fns(F.QueryExtensionList, F.QueryExtensionMap, F.QueryApplicationNamespaces), { version: '1.1' });
    t.equal(r.status, OK);
    t.same(r.payload?.value ?? [], []);
  });

  await t.test('1.4: every 1.x function', async (t) => {
    const all14 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    const r = await engine.call(Q, fns(...all14), { version: '1.4' });
    t.equal(r.status, OK);
    t.same(enums(r.payload, Tag.Operation), expectedOps('1.4'));
    t.ok(enums(r.payload, Tag.Operation).includes(Enums.Operation.DiscoverVersions));
    t.same(textsOf(r.payload, Tag.VendorIdentification), [SERVER_INFO.vendor]);
    t.same(childrenOf(r.payload, Tag.ApplicationNamespace), []);
    t.same(childrenOf(r.payload, Tag.ExtensionInformation), []);
    t.same(childrenOf(r.payload, Tag.AttestationType), []);
    t.same(childrenOf(r.payload, Tag.ValidationInformation), []);
    const rng = struct(r.payload, Tag.RNGParameters);
    t.ok(rng, 'RNG Parameters present (the spec requires one)');
    t.same(enums(rng, Tag.RNGAlgorithm), [Enums.RNGAlgorithm.DRBG]);
    const cap = struct(r.payload, Tag.CapabilityInformation);
    t.equal(boolIn(cap, Tag.StreamingCapability), false);
    t.equal(boolIn(cap, Tag.AsynchronousCapability), true, "Locate, Archive, Recover may answer Operation Pending");
    t.equal(boolIn(cap, Tag.AttestationCapability), false);
    t.equal(boolIn(cap, Tag.BatchUndoCapability), true, 'the executor implements Undo');
    t.equal(boolIn(cap, Tag.BatchContinueCapability), true);
    t.same(enums(cap, Tag.DestroyAction), [Enums.DestroyAction.KeyMaterialDeleted]);
    // Profiles: the claimed ones, 1.x names up to 1.4, no Profile Version (a 2.x field).
    const profiles = childrenOf(r.payload, Tag.ProfileInformation) as StructureNode[];
    const names = profiles.flatMap((p) => enums(p, Tag.ProfileName));
    t.ok(names.includes(Enums.ProfileName.OpaqueManagedObjectStoreServerKMIPV1_0));
    t.ok(names.includes(Enums.ProfileName.BasicCryptographicServerKMIPV1_4));
    t.ok(names.includes(Enums.ProfileName.AdvancedCryptographicServerKMIPV1_4));
    t.notOk(names.includes(Enums.ProfileName.AdvancedCryptographicServerKMIPV1_2), 'no Advanced Cryptographic test cases for 1.2: not claimed');
    t.notOk(names.includes(Enums.ProfileName.SuiteBMinLOS_128ServerKMIPV1_4), 'Suite B: not claimed');
    t.notOk(profiles.some((p) => struct(p, Tag.ProfileVersion)), 'no Profile Version in 1.x');
    t.same(enums(r.payload, Tag.ClientRegistrationMethod), [
      Enums.ClientRegistrationMethod.ServerPreGenerated,
      Enums.ClientRegistrationMethod.ClientGenerated,
      Enums.ClientRegistrationMethod.ClientRegistered,
    ]);
    // Field order follows the response table.
    const order = r.payload!.value.map((c) => c.tag);
    const pos = (tag: number) => order.indexOf(tag);
    t.ok(pos(Tag.Operation) < pos(Tag.VendorIdentification) && pos(Tag.VendorIdentification) < pos(Tag.RNGParameters) && pos(Tag.RNGParameters) < pos(Tag.CapabilityInformation));
  });

  await t.test('1.3: capability fields of 1.4 are left out', async (t) => {
    const r = await engine.call(Q, fns(F.QueryCapabilities), { version: '1.3' });
    const cap = struct(r.payload, Tag.CapabilityInformation);
    t.ok(cap);
    t.equal(boolIn(cap, Tag.BatchUndoCapability), undefined);
    t.equal(boolIn(cap, Tag.BatchContinueCapability), undefined);
  });

  await t.test('1.4: 2.x functions do not exist', async (t) => {
    const r = await engine.call(Q, fns(F.QueryStorageProtectionMasks), { version: '1.4' });
    t.equal(r.status, FAILED);
    t.equal(r.reason, Enums.ResultReason.InvalidField);
  });

  await t.test('2.1: operations include 2.x ones; Server Information structure; 2.x functions', async (t) => {
    const r = await engine.call(Q, fns(F.QueryOperations, F.QueryServerInformation, F.QueryDefaultsInformation, F.QueryStorageProtectionMasks, F.QueryCapabilities), { version: '2.1' });
    t.equal(r.status, OK);
    const ops = enums(r.payload, Tag.Operation);
    t.same(ops, expectedOps('2.1'));
    t.ok(ops.includes(Enums.Operation.SetAttribute));
    t.same(textsOf(r.payload, Tag.VendorIdentification), [SERVER_INFO.vendor]);
    const si = struct(r.payload, Tag.ServerInformation);
    t.same(textsOf(si, Tag.ProductName), [SERVER_INFO.product]);
    t.same(textsOf(si, Tag.ServerVersion), [SERVER_INFO.version]);
    const declaresDefaults = registered.some((h) => (h.objectDefaults ?? []).length > 0);
    t.equal(childrenOf(r.payload, Tag.DefaultsInformation).length, declaresDefaults ? 1 : 0, 'Defaults Information only from what the handlers declare');
    t.same(childrenOf(r.payload, Tag.ProtectionStorageMasks), [], 'no storage protection claimed unless configured');
    t.ok(struct(r.payload, Tag.CapabilityInformation));
  });

  await t.test('Query Objects: the object types Create, Register, Create Key Pair and Certify make', async (t) => {
    const r = await engine.call(Q, fns(F.QueryObjects), { version: '1.4' });
    const OT = Enums.ObjectType;
    const types = enums(r.payload, Tag.ObjectType);
    for (const ot of [OT.SymmetricKey, OT.SecretData, OT.OpaqueObject, OT.PrivateKey, OT.PublicKey, OT.Certificate]) t.ok(types.includes(ot), `object type ${ot}`);
    t.ok(types.includes(OT.Template), '1.x Template objects are registered (templates.test.ts)');
    t.ok(types.includes(OT.PGPKey), 'PGP keys are registered (register-more.test.ts)');
    const r20 = await engine.call(Q, fns(F.QueryObjects), { version: '2.0' });
    t.notOk(enums(r20.payload, Tag.ObjectType).includes(OT.Template), 'no Template object type in 2.x');
  });

  await t.test('Query Profiles by version: 1.3 has no 1.4 names; 2.x has 2.x names with Profile Version', async (t) => {
    const r13 = await engine.call(Q, fns(F.QueryProfiles), { version: '1.3' });
    const n13 = (childrenOf(r13.payload, Tag.ProfileInformation) as StructureNode[]).flatMap((p) => enums(p, Tag.ProfileName));
    t.ok(n13.includes(Enums.ProfileName.OpaqueManagedObjectStoreServerKMIPV1_3));
    t.notOk(n13.includes(Enums.ProfileName.OpaqueManagedObjectStoreServerKMIPV1_4), 'a 1.4 profile name does not exist in 1.3');
    const r20 = await engine.call(Q, fns(F.QueryProfiles), { version: '2.0' });
    const p20 = childrenOf(r20.payload, Tag.ProfileInformation) as StructureNode[];
    const versionsOf = (name: number, list: StructureNode[]) =>
      list
        .filter((p) => enums(p, Tag.ProfileName)[0] === name)
        .map((p) => {
          const pv = struct(p, Tag.ProfileVersion);
          const i = (tag: number) => pv?.value.find((c) => c.tag === tag);
          const ma = i(Tag.ProfileVersionMajor);
          const mi = i(Tag.ProfileVersionMinor);
          return `${ma?.type === 'Integer' ? ma.value : '?'}.${mi?.type === 'Integer' ? mi.value : '?'}`;
        });
    t.same(versionsOf(Enums.ProfileName.OpaqueManagedObjectStoreServer, p20), ['2.0'], '2.0 client: the 2.0 profile only');
    t.same(versionsOf(Enums.ProfileName.SymmetricKeyLifecycleServer, p20), [], 'SKLC has 2.1 test cases only');
    const r21 = await engine.call(Q, fns(F.QueryProfiles), { version: '2.1' });
    const p21 = childrenOf(r21.payload, Tag.ProfileInformation) as StructureNode[];
    t.same(versionsOf(Enums.ProfileName.OpaqueManagedObjectStoreServer, p21), ['2.0', '2.1']);
    t.same(versionsOf(Enums.ProfileName.SymmetricKeyLifecycleServer, p21), ['2.1']);
    t.notOk(p21.some((p) => enums(p, Tag.ProfileName)[0]! < 0x104), 'no 1.x profile names in 2.x');
  });

  await t.test('Profile Information carries the Server Port when the server knows it', async (t) => {
    const withPort = profileInformation('1.4', 5696) as StructureNode[];
    t.ok(withPort.length > 0);
    t.ok(withPort.every((p) => p.value.some((c) => c.tag === Tag.ServerPort && c.type === 'Integer' && c.value === 5696)));
    t.ok((profileInformation('1.4', undefined) as StructureNode[]).every((p) => !p.value.some((c) => c.tag === Tag.ServerPort)));
    t.same(profileInformation('1.2', 5696), [], 'no Profile Information before 1.3');
  });

  await t.test('no Query Function: Missing Data', async (t) => {
    const r = await engine.call(Q, [], { version: '1.4' });
    t.equal(r.status, FAILED);
    t.equal(r.reason, Enums.ResultReason.MissingData);
  });

  await t.test('Query cannot be undone: a batch with Undo is refused', async (t) => {
    const resp = await engine.request([{ operation: Q, payload: fns(F.QueryOperations) }], {
      version: '1.4',
      header: [T.enum(Tag.BatchErrorContinuationOption, Enums.BatchErrorContinuationOption.Undo)],
    });
    t.equal(itemResult(batchItems(resp)[0]!).status, FAILED);
  });
});
