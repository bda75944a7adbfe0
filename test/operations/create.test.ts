import { createHash } from 'node:crypto';
import t from 'tap';
import { Enums, Masks, Tag } from '../../src/spec/index.js';
import { T, type TtlvNode } from '../../src/ttlv/index.js';
import { batchItems, itemResult, startEngine } from '../helpers/engine.js';
import {
  AES256,
  ALG,
  ALL,
  FAILED,
  KFT,
  OK,
  OP,
  ST,
  V1,
  a,
  activation,
  alg,
  attrValue,
  attrValues,
  createKey,
  createPayload,
  deactivation,
  enumValue,
  expectedReason,
  get,
  keyBlock,
  keyBytes,
  len,
  mask,
  nameA,
  nowS,
  reason,
  scalar,
  stored,
  text,
  uidNode,
} from './_keys.js';

t.test('Create', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());

  await t.test("vCenter's exact Create: AES-256, mask 12, no name, KMIP 1.1, starts Pre-Active", async (t) => {
    const resp = await engine.request(
      [{ operation: OP.Create, id: Buffer.from('QLKC\x01\x00\x00\x00', 'latin1'), payload: createPayload('1.1', [alg(ALG.AES), mask(12), len(256)]) }],
      { version: '1.1' },
    );
    const item = batchItems(resp)[0]!;
    const r = itemResult(item);
    t.equal(r.status, OK);
    t.equal(enumValue(r.payload, Tag.ObjectType), Enums.ObjectType.SymmetricKey, 'response: Object Type');
    const uid = text(r.payload, Tag.UniqueIdentifier)!;
    t.type(uid, 'string', 'response: Unique Identifier');
    t.equal(r.payload?.value.length, 2, 'response holds only Object Type and Unique Identifier');
    const o = await stored(engine, uid);
    t.equal(o.state, ST.PreActive, 'Pre-Active');
    t.equal(o.owner, 'alice');
    t.equal(scalar(attrValue(o, 'State')), ST.PreActive, 'State attribute');
    t.equal(scalar(attrValue(o, 'Cryptographic Algorithm')), ALG.AES);
    t.equal(scalar(attrValue(o, 'Cryptographic Length')), 256);
    t.equal(scalar(attrValue(o, 'Cryptographic Usage Mask')), 12);
    t.equal(scalar(attrValue(o, 'Unique Identifier')), uid);
    t.equal(scalar(attrValue(o, 'Object Type')), Enums.ObjectType.SymmetricKey);
    t.equal(scalar(attrValue(o, 'Fresh')), true, 'Fresh');
    t.same(attrValues(o, 'Name'), [], 'no Name');
    t.equal(attrValue(o, 'Activation Date'), undefined, 'no Activation Date');
    const init = scalar(attrValue(o, 'Initial Date')) as bigint;
    t.ok(init <= nowS() && init >= nowS() - 5n, 'Initial Date is now');
    t.equal(scalar(attrValue(o, 'Last Change Date')), init, 'Last Change Date is the Initial Date');
    t.ok(o.material, 'material is stored (sealed)');

    // vCenter's next step: Get while Pre-Active.
    const g = await get(engine, uid, '1.1');
    t.equal(g.status, OK, 'Get of a Pre-Active key succeeds');
    const kb = keyBlock(g.payload)!;
    t.equal(enumValue(kb, Tag.KeyFormatType), KFT.Raw, 'Raw key block');
    t.equal(enumValue(kb, Tag.CryptographicAlgorithm), ALG.AES, 'key block: algorithm');
    t.equal(scalar(kb.value.find((c) => c.tag === Tag.CryptographicLength)), 256, 'key block: length');
    const key = keyBytes(g.payload)!;
    t.equal(key.length, 32, '32 key bytes');
    const digest = attrValue(o, 'Digest');
    t.ok(digest?.type === 'Structure');
    if (digest?.type === 'Structure') {
      t.equal(enumValue(digest, Tag.HashingAlgorithm), Enums.HashingAlgorithm.SHA_256);
      t.equal(enumValue(digest, Tag.KeyFormatType), KFT.Raw);
      const dv = digest.value.find((c) => c.tag === Tag.DigestValue);
      t.same(dv?.type === 'ByteString' ? Buffer.from(dv.value) : undefined, createHash('sha256').update(key).digest(), 'Digest is SHA-256 of the raw key');
    }
    const after = await stored(engine, uid);
    t.equal(scalar(attrValue(after, 'Fresh')), false, 'Fresh turns false once served');
    t.equal(after.state, ST.PreActive, 'still Pre-Active after Get');
  });

  for (const version of ALL) {
    await t.test(`KMIP ${version}: AES 128/192/256 in the ${version.startsWith('2') ? 'Attributes' : 'Template-Attribute'} shape`, async (t) => {
      for (const bits of [128, 192, 256]) {
        const uid = await createKey(engine, version, [alg(ALG.AES), len(bits), mask(12), nameA(`aes-${bits}-${version}`)]);
        const g = await get(engine, uid, version);
        t.equal(g.status, OK);
        t.equal(keyBytes(g.payload)?.length, bits / 8, `${bits}-bit key`);
        const o = await stored(engine, uid);
        const n = attrValue(o, 'Name');
        t.ok(n?.type === 'Structure' && text(n, Tag.NameValue) === `aes-${bits}-${version}`, 'Name kept');
      }
    });
  }

  await t.test('Triple DES 168: 24 bytes, every byte with odd parity', async (t) => {
    for (const bits of [168, 192, 112]) {
      const uid = await createKey(engine, '1.4', [alg(ALG.DES3), len(bits), mask(12)]);
      const key = keyBytes((await get(engine, uid)).payload)!;
      t.equal(key.length, bits === 112 ? 16 : 24, `${bits}: key bytes`);
      const odd = [...key].every((b) => {
        let n = 0;
        for (let v = b; v; v >>= 1) n += v & 1;
        return n % 2 === 1;
      });
      t.ok(odd, `${bits}: DES parity`);
      t.equal(scalar(attrValue(await stored(engine, uid), 'Cryptographic Length')), bits, 'Cryptographic Length as asked');
    }
  });

  await t.test('HMAC keys: length in bits, a multiple of 8', async (t) => {
    for (const [h, bits] of [
      [ALG.HMAC_SHA1, 160],
      [ALG.HMAC_SHA256, 256],
      [ALG.HMAC_SHA384, 384],
      [ALG.HMAC_SHA512, 512],
      [ALG.HMAC_SHA256, 1024],
    ] as const) {
      const uid = await createKey(engine, '2.1', [alg(h), len(bits), mask(Masks.CryptographicUsageMask.MACGenerate)]);
      t.equal(keyBytes((await get(engine, uid, '2.1')).payload)?.length, bits / 8, `HMAC ${h}/${bits}`);
    }
    for (const bits of [100, 0, 8, 9000]) {
      const r = await engine.call(OP.Create, createPayload('1.4', [alg(ALG.HMAC_SHA256), len(bits)]));
      t.equal(r.reason, reason('InvalidField'), `HMAC length ${bits} refused`);
    }
  });

  await t.test('algorithm and length: required, and checked', async (t) => {
    for (const version of ['1.4', '2.1'] as const) {
      let r = await engine.call(OP.Create, createPayload(version, [len(256)]), { version });
      t.equal(r.status, FAILED);
      t.equal(r.reason, reason('MissingData'), `${version}: no algorithm`);
      r = await engine.call(OP.Create, createPayload(version, [alg(ALG.AES)]), { version });
      t.equal(r.reason, reason('MissingData'), `${version}: no length`);
      r = await engine.call(OP.Create, createPayload(version, [alg(ALG.AES), len(100)]), { version });
      t.equal(r.reason, reason('InvalidField'), `${version}: AES-100`);
      r = await engine.call(OP.Create, createPayload(version, [alg(ALG.RSA), len(2048)]), { version });
      t.equal(r.reason, reason('InvalidField'), `${version}: RSA is not a symmetric key`);
      r = await engine.call(OP.Create, [T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey)], { version });
      t.equal(r.reason, reason('MissingData'), `${version}: no attributes at all`);
      r = await engine.call(OP.Create, createPayload(version, [alg(ALG.AES), len(256), a('Cryptographic Length', T.text(Tag.CryptographicLength, '256'))]), { version });
      t.equal(r.status, FAILED, `${version}: a Text String length is refused`);
    }
  });

  await t.test('other object types: refused honestly', async (t) => {
    for (const version of ['1.4', '2.1'] as const) {
      const r = await engine.call(OP.Create, [T.enum(Tag.ObjectType, Enums.ObjectType.PrivateKey), ...createPayload(version, AES256()).slice(1)], { version });
      t.equal(r.status, FAILED);
      t.equal(r.reason, expectedReason(version, 'InvalidObjectType', 'InvalidField'), `${version}: Private Key`);
    }
  });

  await t.test('Secret Data: random bytes of the requested length (TC-CREATE-SD-1)', async (t) => {
    const sdPayload = (version: '1.4' | '2.1', attrs: ReturnType<typeof len>[]) => [T.enum(Tag.ObjectType, Enums.ObjectType.SecretData), ...createPayload(version, attrs).slice(1)];
    const seen = new Set<string>();
    for (const version of ['1.0', '1.4', '2.0', '2.1'] as const) {
      const r = await engine.call(OP.Create, sdPayload(version === '1.0' || version === '1.4' ? '1.4' : '2.1', [len(80), nameA(`sd-${version}`)]), { version });
      t.equal(r.status, OK, `${version}: ${r.message ?? 'created'}`);
      t.equal(enumValue(r.payload, Tag.ObjectType), Enums.ObjectType.SecretData, 'the response names the Object Type');
      const uid = text(r.payload, Tag.UniqueIdentifier)!;
      const o = await stored(engine, uid);
      t.equal(o.objectType, Enums.ObjectType.SecretData);
      t.equal(o.state, ST.PreActive);
      t.equal(scalar(attrValue(o, 'Cryptographic Length')), 80);
      t.equal(attrValue(o, 'Cryptographic Algorithm'), undefined, 'no Cryptographic Algorithm');
      const g = await get(engine, uid, version);
      t.equal(g.status, OK);
      const sd = g.payload?.value.find((c) => c.tag === Tag.SecretData);
      t.equal(sd?.type === 'Structure' && enumValue(sd, Tag.SecretDataType), Enums.SecretDataType.Password, 'Secret Data Type Password');
      const block = keyBlock(g.payload, Tag.SecretData);
      t.equal(enumValue(block, Tag.KeyFormatType), KFT.Opaque, 'Opaque key block');
      const secret = keyBytes(g.payload, Tag.SecretData)!;
      t.equal(secret.length, 10, '80 bits are 10 bytes');
      seen.add(secret.toString('hex'));
      const digest = attrValue(o, 'Digest');
      const dv = digest?.type === 'Structure' ? digest.value.find((c) => c.tag === Tag.DigestValue) : undefined;
      t.same(dv?.type === 'ByteString' ? Buffer.from(dv.value) : undefined, createHash('sha256').update(secret).digest(), 'Digest: SHA-256 of the secret');
    }
    t.equal(seen.size, 4, 'every secret is new');
    const cases: [string, ReturnType<typeof len>[], string][] = [
      ['no length', [], 'MissingData'],
      ['not whole bytes', [len(81)], 'InvalidField'],
      ['too long', [len(8200)], 'InvalidField'],
      ['zero', [len(0)], 'InvalidField'],
      ['an algorithm', [len(128), alg(ALG.AES)], 'InvalidField'],
    ];
    for (const [what, attrs, why] of cases) {
      const r = await engine.call(OP.Create, sdPayload('2.1', attrs), { version: '2.1' });
      t.equal(r.status, FAILED, what);
      t.equal(r.reason, reason(why), `${what}: ${why}`);
    }
  });

  await t.test('server-set attributes cannot be given', async (t) => {
    for (const version of ['1.0', '1.4', '2.1'] as const) {
      for (const bad of [a('State', T.enum(Tag.State, ST.Active)), a('Initial Date', T.date(Tag.InitialDate, 1n)), a('Unique Identifier', T.text(Tag.UniqueIdentifier, 'mine'))]) {
        const r = await engine.call(OP.Create, createPayload(version, [...AES256(), bad]), { version });
        t.equal(r.status, FAILED);
        t.equal(r.reason, expectedReason(version, 'ReadOnlyAttribute', 'PermissionDenied'), `${version}: ${bad.name}`);
      }
    }
    const r = await engine.call(OP.Create, createPayload('1.4', [...AES256(), mask(4)]));
    t.equal(r.reason, reason('InvalidField'), 'a single-valued attribute twice: Invalid Field (1.x)');
    const r2 = await engine.call(OP.Create, createPayload('2.1', [...AES256(), mask(4)]), { version: '2.1' });
    t.equal(r2.reason, reason('AttributeSingleValued'), 'a single-valued attribute twice: Attribute Single Valued (2.x)');
    const r3 = await engine.call(OP.Create, createPayload('2.1', [...AES256(), nameA('twice'), nameA('twice')]), { version: '2.1' });
    t.equal(r3.reason, reason('NonUniqueNameAttribute'), 'the same name twice');
    const ok = await engine.call(OP.Create, createPayload('2.1', [...AES256(), a('Object Type', T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey))]), { version: '2.1' });
    t.equal(ok.status, OK, 'an Object Type attribute that agrees with the request is tolerated');
    const custom = await engine.call(OP.Create, createPayload('1.4', [...AES256(), a('x-Product', T.text(Tag.AttributeValue, 'kmipd tests'))]));
    t.equal(custom.status, OK, 'custom attributes are accepted');
  });

  await t.test('dates given at Create decide the first state', async (t) => {
    const now = nowS();
    let uid = await createKey(engine, '1.4', [...AES256(), activation(now - 10n)]);
    t.equal((await stored(engine, uid)).state, ST.Active, 'Activation Date in the past: Active');
    uid = await createKey(engine, '2.1', [...AES256(), activation(now)]);
    t.equal((await stored(engine, uid)).state, ST.Active, 'Activation Date now: Active');
    uid = await createKey(engine, '1.4', [...AES256(), activation(now + 3600n)]);
    t.equal((await stored(engine, uid)).state, ST.PreActive, 'Activation Date ahead: Pre-Active');
    uid = await createKey(engine, '2.0', [...AES256(), activation(now - 100n), deactivation(now - 10n)]);
    t.equal((await stored(engine, uid)).state, ST.Deactivated, 'both dates passed: Deactivated');
  });

  await t.test('a date reached later changes the state when the object is next read, and the change is kept', async (t) => {
    const uid = await createKey(engine, '1.4', [...AES256(), activation(nowS() + 2n)]);
    t.equal((await stored(engine, uid)).state, ST.PreActive);
    await new Promise((r) => setTimeout(r, 3100));
    t.equal((await stored(engine, uid)).state, ST.PreActive, 'nothing changes by itself');
    const g = await get(engine, uid);
    t.equal(g.status, OK);
    const o = await stored(engine, uid);
    t.equal(o.state, ST.Active, 'read: Active, persisted');
    t.equal(scalar(attrValue(o, 'State')), ST.Active, 'State attribute too');
  });

  await t.test('Protection Storage Masks (2.x)', async (t) => {
    const P = Masks.ProtectionStorageMask;
    const psm = (...m: number[]) => T.struct(Tag.ProtectionStorageMasks, m.map((v) => T.int(Tag.ProtectionStorageMask, v)));
    let r = await engine.call(OP.Create, [...createPayload('2.1', AES256()), psm(P.Software | P.OnPremises)], { version: '2.1' });
    t.equal(r.status, OK, 'software storage accepted');
    r = await engine.call(OP.Create, [...createPayload('2.1', AES256()), psm(P.Hardware, P.OffPremises)], { version: '2.1' });
    t.equal(r.status, FAILED);
    t.equal(r.reason, reason('FeatureNotSupported'), 'hardware-only storage refused');
  });

  await t.test('ID Placeholder: Create then Get and Activate without a uid', async (t) => {
    const resp = await engine.request([
      { operation: OP.Create, payload: createPayload('1.4', AES256()) },
      { operation: OP.Get, payload: [] },
      { operation: OP.Activate, payload: [] },
    ]);
    const items = batchItems(resp).map(itemResult);
    t.same(items.map((i) => i.status), [OK, OK, OK]);
    const uid = text(items[0]!.payload, Tag.UniqueIdentifier)!;
    t.equal(text(items[1]!.payload, Tag.UniqueIdentifier), uid, 'Get used the placeholder');
    t.equal((await stored(engine, uid)).state, ST.Active, 'Activate used the placeholder');
  });

  await t.test('Undo: a failing batch leaves no key behind', async (t) => {
    const before = (await engine.store.locate({ filters: [] })).length;
    const resp = await engine.request(
      [
        { operation: OP.Create, payload: createPayload('1.4', AES256()) },
        { operation: OP.Activate, payload: [] },
        { operation: OP.Destroy, payload: [] },
      ],
      { header: [T.enum(Tag.BatchErrorContinuationOption, Enums.BatchErrorContinuationOption.Undo)] },
    );
    const items = batchItems(resp).map(itemResult);
    t.same(items.map((i) => i.status), [Enums.ResultStatus.OperationUndone, Enums.ResultStatus.OperationUndone, FAILED]);
    t.equal((await engine.store.locate({ filters: [] })).length, before, 'the created key was rolled back');
  });

  await t.test("vCenter's whole sequence for one key (docs: VCENTER.md)", async (t) => {
    const id = (n: number) => Buffer.concat([Buffer.from('QLKC'), Buffer.from([n, 0, 0, 0])]);
    const v = { version: '1.1' as const };
    const one = async (operation: number, payload: TtlvNode[]) => itemResult(batchItems(await engine.request([{ operation, payload, id: id(1) }], v))[0]!);
    const c = await one(OP.Create, createPayload('1.1', [alg(ALG.AES), mask(12), len(256)]));
    t.equal(c.status, OK, 'Create');
    const uid = text(c.payload, Tag.UniqueIdentifier)!;
    for (const n of ['x-Product_Version', 'x-Vendor', 'x-Product']) {
      const r = await one(OP.GetAttributes, [uidNode(uid), T.text(Tag.AttributeName, n)]);
      t.equal(r.status, OK, `GetAttributes ${n} of an absent attribute`);
    }
    const add = (n: string, val: string) => T.struct(Tag.Attribute, [T.text(Tag.AttributeName, n), T.text(Tag.AttributeValue, val)]);
    const resp = await engine.request(
      [
        { operation: OP.AddAttribute, id: id(1), payload: [uidNode(uid), add('x-Product_Version', '7.0.3 build-19480866')] },
        { operation: OP.AddAttribute, id: id(2), payload: [uidNode(uid), add('x-Vendor', 'VMware, Inc.')] },
        { operation: OP.AddAttribute, id: id(3), payload: [uidNode(uid), add('x-Product', 'VMware vSphere')] },
      ],
      v,
    );
    t.same(batchItems(resp).map((i) => itemResult(i).status), [OK, OK, OK], 'three AddAttribute in one message');
    const g = await one(OP.Get, [uidNode(uid)]);
    t.equal(g.status, OK, 'Get while Pre-Active');
    t.equal(keyBytes(g.payload)?.length, 32);
    const st = await one(OP.GetAttributes, [uidNode(uid), T.text(Tag.AttributeName, 'State')]);
    const stAttr = st.payload?.value.find((x) => x.tag === Tag.Attribute);
    t.ok(stAttr?.type === 'Structure' && enumValue(stAttr, Tag.AttributeValue) === ST.PreActive, 'State: Pre-Active');
    t.equal((await one(OP.Activate, [uidNode(uid)])).status, OK, 'Activate');
    const o = await stored(engine, uid);
    t.equal(o.state, ST.Active);
    t.equal(scalar(attrValue(o, 'x-Vendor')), 'VMware, Inc.');
  });

  await t.test('KMIP 1.x versions all accept the vCenter shape', async (t) => {
    for (const version of V1) {
      const uid = await createKey(engine, version, [alg(ALG.AES), mask(12), len(256)]);
      t.equal((await stored(engine, uid)).state, ST.PreActive, version);
    }
  });
});
