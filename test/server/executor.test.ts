import t from 'tap';
import { Enums, Tag } from '../../src/spec/index.js';
import { T, encodeTtlv, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { batchItems, itemResult, requestMessage, startEngine, type Engine } from '../helpers/engine.js';

const Op = Enums.Operation;
const RS = Enums.ResultStatus;
const RR = Enums.ResultReason;

function createPayload(name?: string): TtlvNode[] {
  const attrs = [
    T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Algorithm'), T.enum(Tag.AttributeValue, Enums.CryptographicAlgorithm.AES)]),
    T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Length'), T.int(Tag.AttributeValue, 256)]),
    T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Usage Mask'), T.int(Tag.AttributeValue, 12)]),
  ];
  if (name) {
    attrs.push(
      T.struct(Tag.Attribute, [
        T.text(Tag.AttributeName, 'Name'),
        T.struct(Tag.AttributeValue, [T.text(Tag.NameValue, name), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]),
      ]),
    );
  }
  return [T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey), T.struct(Tag.TemplateAttribute, attrs)];
}

function header(resp: StructureNode): StructureNode {
  return resp.value[0] as StructureNode;
}

function version(resp: StructureNode): [number, number] {
  const pv = header(resp).value.find((n) => n.tag === Tag.ProtocolVersion) as StructureNode;
  return pv.value.map((n) => n.value as number) as [number, number];
}

function uid(r: { payload?: StructureNode }): string {
  const u = r.payload?.value.find((n) => n.tag === Tag.UniqueIdentifier);
  if (u?.type !== 'TextString') throw new Error('no uid in payload');
  return u.value;
}

let engine: Engine;
t.before(async () => {
  engine = await startEngine();
});
t.teardown(() => engine.close());

t.test('every version is answered in its own version, with a Time Stamp', async (t) => {
  for (const v of ['1.0', '1.1', '1.2', '1.3', '1.4', '2.0', '2.1'] as const) {
    const resp = await engine.request([{ operation: Op.DiscoverVersions, payload: [] }], { version: v });
    t.same(version(resp), v.split('.').map(Number), `answered in ${v}`);
    t.ok(header(resp).value.some((n) => n.tag === Tag.TimeStamp && n.type === 'DateTime'), `${v}: Time Stamp`);
  }
});

t.test('an unsupported protocol version gets the prescribed error', async (t) => {
  const r1 = await engine.request([{ operation: Op.DiscoverVersions, payload: [] }], { version: '1.4' });
  t.equal(itemResult(batchItems(r1)[0]!).status, RS.Success);
  const msg = requestMessage([{ operation: Op.Create, payload: createPayload() }], { version: '1.4' });
  const pv = ((msg.value[0] as StructureNode).value[0] as StructureNode).value;
  pv[1] = T.int(Tag.ProtocolVersionMinor, 9); // 1.9
  const r = await engine.raw(encodeTtlv(msg));
  t.same(version(r), [1, 4], '1.9 is answered in 1.4, the highest below it');
  const item = itemResult(batchItems(r)[0]!);
  t.equal(item.status, RS.OperationFailed);
  t.equal(item.reason, RR.InvalidMessage, '1.x: Invalid Message');
  pv[0] = T.int(Tag.ProtocolVersionMajor, 3);
  pv[1] = T.int(Tag.ProtocolVersionMinor, 0);
  const r3 = await engine.raw(encodeTtlv(msg));
  t.same(version(r3), [2, 1], '3.0 is answered in 2.1');
  t.equal(itemResult(batchItems(r3)[0]!).reason, RR.UnsupportedProtocolVersion, '2.x: Unsupported Protocol Version');
});

t.test('Batch Count must match the items', async (t) => {
  const msg = requestMessage([{ operation: Op.DiscoverVersions, payload: [] }], { version: '1.4' });
  const h = msg.value[0] as StructureNode;
  h.value[h.value.length - 1] = T.int(Tag.BatchCount, 2);
  const r = await engine.raw(encodeTtlv(msg));
  t.equal(itemResult(batchItems(r)[0]!).reason, RR.InvalidMessage);
});

t.test('Unique Batch Item IDs are echoed; vCenter three-item batch', async (t) => {
  const ids = [1, 2, 3].map((n) => Buffer.concat([Buffer.from('QLKC'), Buffer.from([n, 0, 0, 0])]));
  const resp = await engine.request(
    ids.map((id) => ({ operation: Op.DiscoverVersions, payload: [], id })),
    { version: '1.1' },
  );
  t.same(
    batchItems(resp).map((b) => b.value.find((n) => n.tag === Tag.UniqueBatchItemID)?.value),
    ids,
  );
});

t.test('ID Placeholder carries the uid from one item to the next', async (t) => {
  const resp = await engine.request([
    { operation: Op.Create, payload: createPayload() },
    { operation: Op.Activate, payload: [] },
    { operation: Op.GetAttributes, payload: [T.text(Tag.AttributeName, 'State')] },
  ]);
  const items = batchItems(resp).map(itemResult);
  t.same(items.map((i) => i.status), [RS.Success, RS.Success, RS.Success]);
  const created = uid(items[0]!);
  t.equal(uid(items[1]!), created, 'Activate used the placeholder');
  const state = items[2]!.payload?.value.find((n) => n.tag === Tag.Attribute) as StructureNode | undefined;
  t.equal(state?.value.find((n) => n.tag === Tag.AttributeValue)?.value, Enums.State.Active);
});

t.test('Batch Error Continuation: Stop, Continue, Undo', async (t) => {
  const missing = [T.text(Tag.UniqueIdentifier, 'no-such-object')];
  const items = [
    { operation: Op.Create, payload: createPayload('batch-undo') },
    { operation: Op.Activate, payload: missing },
    { operation: Op.Create, payload: createPayload() },
  ];
  const opt = (v: number) => [T.enum(Tag.BatchErrorContinuationOption, v)];

  const stop = batchItems(await engine.request(items, { header: opt(Enums.BatchErrorContinuationOption.Stop) })).map(itemResult);
  t.same(stop.map((i) => i.status), [RS.Success, RS.OperationFailed], 'Stop: processing ends at the failure');
  t.equal(stop[1]!.reason, RR.ItemNotFound);

  const cont = batchItems(await engine.request(items, { header: opt(Enums.BatchErrorContinuationOption.Continue) })).map(itemResult);
  t.same(cont.map((i) => i.status), [RS.Success, RS.OperationFailed, RS.Success], 'Continue: later items run');

  const undo = batchItems(await engine.request(items, { header: opt(Enums.BatchErrorContinuationOption.Undo) })).map(itemResult);
  t.same(undo.map((i) => i.status), [RS.OperationUndone, RS.OperationFailed], 'Undo: earlier items undone');
  const undoneUid = undo[0]!.payload?.value.find((n) => n.tag === Tag.UniqueIdentifier);
  t.equal(undoneUid?.type, 'TextString', 'an undone item keeps its Response Payload (the Unique Identifier it had)');
  t.notOk(undo[1]!.payload, 'the failed item has no Response Payload');
  const located = await engine.call(Op.Locate, [
    T.struct(Tag.Attribute, [
      T.text(Tag.AttributeName, 'Name'),
      T.struct(Tag.AttributeValue, [T.text(Tag.NameValue, 'batch-undo'), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]),
    ]),
  ]);
  const uids = located.payload?.value.filter((n) => n.tag === Tag.UniqueIdentifier) ?? [];
  t.equal(uids.length, 2, 'the undone Create left nothing behind (only Stop and Continue created one each)');
});

t.test('Maximum Response Size → Response Too Large', async (t) => {
  const small = await engine.request([{ operation: Op.Query, payload: [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryOperations)] }], {
    header: [T.int(Tag.MaximumResponseSize, 64)],
  });
  const r = itemResult(batchItems(small)[0]!);
  t.equal(r.status, RS.OperationFailed);
  t.equal(r.reason, RR.ResponseTooLarge);
  const big = await engine.request([{ operation: Op.Query, payload: [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryOperations)] }], {
    header: [T.int(Tag.MaximumResponseSize, 65536)],
  });
  t.equal(itemResult(batchItems(big)[0]!).status, RS.Success);
});

t.test('Asynchronous Indicator: an operation kmipd does not defer is answered synchronously', async (t) => {
  // Locate, Archive and Recover may answer Operation Pending (test/server/async.test.ts).
  const r = await engine.request([{ operation: Op.DiscoverVersions, payload: [] }], { header: [T.bool(Tag.AsynchronousIndicator, true)] });
  const items = batchItems(r);
  t.equal(items.length, 1);
  const item = itemResult(items[0]!);
  t.equal(item.status, RS.Success);
  t.ok(item.payload?.value.some((n) => n.tag === Tag.ProtocolVersion), 'the Discover Versions answer itself');
});

t.test('unknown operations answer Operation Not Supported without failing the message', async (t) => {
  const r = await engine.request(
    [
      { operation: Op.PKCS_11, payload: [] }, // kmipd exposes no PKCS#11 token
      { operation: Op.DiscoverVersions, payload: [] },
    ],
    { header: [T.enum(Tag.BatchErrorContinuationOption, Enums.BatchErrorContinuationOption.Continue)] },
  );
  const items = batchItems(r).map(itemResult);
  t.equal(items[0]!.reason, RR.OperationNotSupported);
  t.equal(items[1]!.status, RS.Success);
});

t.test('an operation newer than the request version is not supported in it', async (t) => {
  const r = await engine.call(Op.SetAttribute, [T.text(Tag.UniqueIdentifier, 'x')], { version: '1.4' });
  t.equal(r.reason, RR.OperationNotSupported);
});

t.test('a Username/Password credential is checked when the server requires one', async (t) => {
  const e = await startEngine({ auth: { username: 'vcenter', password: 's3cret' } });
  t.teardown(() => e.close());
  const cred = (user: string, pw: string) => [
    T.struct(Tag.Authentication, [
      T.struct(Tag.Credential, [
        T.enum(Tag.CredentialType, Enums.CredentialType.UsernameAndPassword),
        T.struct(Tag.CredentialValue, [T.text(Tag.Username, user), T.text(Tag.Password, pw)]),
      ]),
    ]),
  ];
  const none = await e.call(Op.DiscoverVersions, []);
  t.equal(none.reason, RR.AuthenticationNotSuccessful, 'no credential');
  const wrong = await e.call(Op.DiscoverVersions, [], { header: cred('vcenter', 'nope') });
  t.equal(wrong.reason, RR.AuthenticationNotSuccessful, 'wrong password');
  t.notMatch(wrong.message ?? '', /s3cret|nope/, 'the message never repeats a password');
  const ok = await e.call(Op.DiscoverVersions, [], { header: cred('vcenter', 's3cret') });
  t.equal(ok.status, RS.Success, 'right credential');
});
