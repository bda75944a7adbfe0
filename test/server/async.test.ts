/**
 * Asynchronous operations through the executor: Asynchronous Indicator, Operation Pending, Poll,
 * Cancel (src/server/async.ts, src/operations/poll-cancel.ts), in 1.x and 2.x.
 */
import t from 'tap';
import { Enums, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { batchItems, startEngine, type Engine } from '../helpers/engine.js';
import { records } from '../audit/_audit.js';
import { createKey, get, nameA, AES256, template, uidNode } from '../operations/_keys.js';

const Op = Enums.Operation;
const RS = Enums.ResultStatus;
const RR = Enums.ResultReason;
const CR = Enums.CancellationResult;
const ASYNC: TtlvNode[] = [T.bool(Tag.AsynchronousIndicator, true)];
/** A start delay no test waits out: the operation stays queued (cancellable) for the whole test. */
const NEVER = 3_600_000;

interface Item {
  operation?: number;
  status: number;
  reason?: number;
  correlation?: Buffer;
  batchItemId?: Buffer;
  payload?: StructureNode;
}

function read(item: StructureNode): Item {
  const r: Item = { status: -1 };
  for (const c of item.value) {
    if (c.tag === Tag.Operation && c.type === 'Enumeration') r.operation = c.value;
    else if (c.tag === Tag.ResultStatus && c.type === 'Enumeration') r.status = c.value;
    else if (c.tag === Tag.ResultReason && c.type === 'Enumeration') r.reason = c.value;
    else if (c.tag === Tag.AsynchronousCorrelationValue && c.type === 'ByteString') r.correlation = Buffer.from(c.value);
    else if (c.tag === Tag.UniqueBatchItemID && c.type === 'ByteString') r.batchItemId = Buffer.from(c.value);
    else if (c.tag === Tag.ResponsePayload && c.type === 'Structure') r.payload = c;
  }
  return r;
}

async function one(engine: Engine, operation: number, payload: TtlvNode[], opts: { version?: KmipVersion; identity?: string; async?: boolean; id?: Buffer } = {}): Promise<Item> {
  const resp = await engine.request([{ operation, payload, ...(opts.id ? { id: opts.id } : {}) }], {
    version: opts.version ?? '1.4',
    identity: opts.identity ?? 'alice',
    ...(opts.async ? { header: ASYNC } : {}),
  });
  const items = batchItems(resp);
  if (items.length !== 1) throw new Error(`expected one batch item, got ${items.length}`);
  return read(items[0]!);
}

/** Locate by Name: a 1.x Attribute, or the 2.x Attributes structure. */
function locateByName(name: string, version: KmipVersion = '1.4'): TtlvNode[] {
  return template(version, [nameA(name)]).flatMap((n) => (n.tag === Tag.TemplateAttribute && n.type === 'Structure' ? n.value : [n]));
}

function uids(p: StructureNode | undefined): string[] {
  return (p?.value ?? []).filter((c) => c.tag === Tag.UniqueIdentifier && c.type === 'TextString').map((c) => c.value as string);
}

const poll = (engine: Engine, value: Buffer, opts: { version?: KmipVersion; identity?: string } = {}) =>
  one(engine, Op.Poll, [T.bytes(Tag.AsynchronousCorrelationValue, value)], opts);
const cancel = (engine: Engine, value: Buffer, opts: { version?: KmipVersion; identity?: string } = {}) =>
  one(engine, Op.Cancel, [T.bytes(Tag.AsynchronousCorrelationValue, value)], opts);

function cancellation(i: Item): number | undefined {
  const c = i.payload?.value.find((n) => n.tag === Tag.CancellationResult);
  return c?.type === 'Enumeration' ? c.value : undefined;
}

/** Polls until the answer is no longer Operation Pending (the start delay is 0 here). */
async function settle(engine: Engine, value: Buffer, opts: { version?: KmipVersion; identity?: string } = {}): Promise<{ final: Item; pendings: number }> {
  let pendings = 0;
  for (let i = 0; i < 2000; i++) {
    const r = await poll(engine, value, opts);
    if (r.status !== RS.OperationPending) return { final: r, pendings };
    pendings++;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the operation never finished');
}

t.test('Locate with the Asynchronous Indicator: Operation Pending, then Poll delivers its result', async (t) => {
  const engine = await startEngine({ async: { startDelayMs: 0 } });
  t.teardown(() => engine.close());
  for (const version of ['1.2', '1.4', '2.0', '2.1'] as const) {
    const uid = await createKey(engine, version, [...AES256(), nameA(`async-${version}`)]);
    const id = Buffer.from('b1');
    const pending = await one(engine, Op.Locate, locateByName(`async-${version}`, version), { version, async: true, id });
    t.equal(pending.status, RS.OperationPending, `${version}: Operation Pending`);
    t.equal(pending.operation, Op.Locate);
    t.equal(pending.correlation?.length, 16, 'a 16-byte Asynchronous Correlation Value');
    t.same(pending.batchItemId, id, 'Unique Batch Item ID echoed');
    t.notOk(pending.payload, 'no payload while pending');
    const { final } = await settle(engine, pending.correlation!, { version });
    t.equal(final.operation, Op.Locate, 'Poll answers with the original operation');
    t.equal(final.status, RS.Success);
    t.same(uids(final.payload), [uid], 'the Locate result');
    // A finished result stays pollable until it expires.
    const again = await poll(engine, pending.correlation!, { version });
    t.same(uids(again.payload), [uid]);
    const c = await cancel(engine, pending.correlation!, { version });
    t.equal(c.status, RS.Success);
    t.equal(cancellation(c), CR.Completed, 'Cancel after completion: Completed');
  }
});

t.test('another identity can neither Poll nor Cancel the result; unknown values', async (t) => {
  const engine = await startEngine({ async: { startDelayMs: 0 } });
  t.teardown(() => engine.close());
  await createKey(engine, '1.4', [...AES256(), nameA('mine')]);
  const pending = await one(engine, Op.Locate, locateByName('mine'), { async: true });
  t.equal(pending.status, RS.OperationPending);
  const value = pending.correlation!;
  for (const [version, expected] of [
    ['1.4', RR.ItemNotFound],
    ['2.1', RR.InvalidAsynchronousCorrelationValue],
  ] as const) {
    const stolen = await poll(engine, value, { version, identity: 'mallory' });
    t.equal(stolen.status, RS.OperationFailed, `${version}: another identity's Poll fails`);
    t.equal(stolen.reason, expected);
    t.equal(stolen.operation, Op.Poll);
    const c = await cancel(engine, value, { version, identity: 'mallory' });
    t.equal(cancellation(c), CR.Unavailable, `${version}: another identity's Cancel: Unavailable`);
    const unknown = await poll(engine, Buffer.alloc(16, 7), { version });
    t.equal(unknown.status, RS.OperationFailed, `${version}: an unknown value`);
    t.equal(unknown.reason, expected);
    t.equal(cancellation(await cancel(engine, Buffer.alloc(16, 7), { version })), CR.Unavailable);
  }
  const missing = await one(engine, Op.Poll, []);
  t.equal(missing.status, RS.OperationFailed, 'Poll without a correlation value fails');
  const { final } = await settle(engine, value);
  t.equal(final.status, RS.Success, 'the owner still gets its result');
  t.equal(uids(final.payload).length, 1);
});

t.test('Cancel before the operation starts: Canceled, and it never runs', async (t) => {
  const engine = await startEngine({ async: { startDelayMs: NEVER } });
  t.teardown(() => engine.close());
  const uid = await createKey(engine, '1.4');
  for (const version of ['1.4', '2.1'] as const) {
    const pending = await one(engine, Op.Archive, [uidNode(uid)], { version, async: true });
    t.equal(pending.status, RS.OperationPending, `${version}: Archive pending`);
    const c = await cancel(engine, pending.correlation!, { version });
    t.equal(c.status, RS.Success);
    t.equal(c.operation, Op.Cancel);
    t.same(c.payload?.value.find((n) => n.tag === Tag.AsynchronousCorrelationValue)?.value, pending.correlation, 'Cancel echoes the value');
    t.equal(cancellation(c), CR.Canceled);
    t.equal(cancellation(await cancel(engine, pending.correlation!, { version })), CR.Canceled, 'canceling twice');
    const after = await poll(engine, pending.correlation!, { version });
    t.equal(after.status, RS.OperationFailed);
    t.equal(after.reason, RR.OperationCanceledByRequester, 'Poll of a canceled operation');
    t.equal((await get(engine, uid, version)).status, RS.Success, 'the canceled Archive never ran: Get works');
  }
  // A cancellation cannot be rolled back: no Undo batch with Cancel.
  const undo = await engine.request(
    [
      { operation: Op.Cancel, payload: [T.bytes(Tag.AsynchronousCorrelationValue, Buffer.alloc(16))] },
      { operation: Op.Get, payload: [uidNode(uid)] },
    ],
    { header: [T.enum(Tag.BatchErrorContinuationOption, Enums.BatchErrorContinuationOption.Undo)] },
  );
  t.same(batchItems(undo).map((i) => read(i).reason), [RR.FeatureNotSupported, RR.FeatureNotSupported], 'Undo with Cancel: Feature Not Supported');
});

t.test('a Poll starts a queued operation; Operation Pending while it runs', async (t) => {
  // pollWaitMs 0: the Poll answers at once, before the operation it started can finish.
  const engine = await startEngine({ async: { startDelayMs: NEVER, pollWaitMs: 0 } });
  t.teardown(() => engine.close());
  const uid = await createKey(engine, '1.4');
  for (const version of ['1.4', '2.1'] as const) {
    const archive = await one(engine, Op.Archive, [uidNode(uid)], { version, async: true });
    t.equal(archive.status, RS.OperationPending);
    const still = await poll(engine, archive.correlation!, { version });
    t.equal(still.status, RS.OperationPending, `${version}: Poll while it runs: pending`);
    t.equal(still.operation, Op.Archive, 'with the original operation');
    t.same(still.correlation, archive.correlation, 'and the same value');
    t.notOk(still.payload);
    const { final } = await settle(engine, archive.correlation!, { version });
    t.equal(final.status, RS.Success, 'the Poll started it although its start delay never elapses');
    t.equal((await get(engine, uid, version)).reason, RR.ObjectArchived);
    const c = await cancel(engine, archive.correlation!, { version });
    t.equal(cancellation(c), CR.Completed);
    const recover = await one(engine, Op.Recover, [uidNode(uid)], { version, async: true });
    t.equal((await settle(engine, recover.correlation!, { version })).final.status, RS.Success);
    t.equal((await get(engine, uid, version)).status, RS.Success, 'recovered');
  }
});

t.test('the audit trail records the Operation Pending answer and the background result', async (t) => {
  const engine = await startEngine({ async: { startDelayMs: 0 } });
  t.teardown(() => engine.close());
  const uid = await createKey(engine, '1.4');
  const pending = await one(engine, Op.Archive, [uidNode(uid)], { async: true });
  t.equal((await settle(engine, pending.correlation!)).final.status, RS.Success);
  const archive = records(engine.dataDir).filter((r) => r.kind === 'kmip' && r.operation === 'Archive');
  t.same(
    archive.map((r) => [r.result, r.object, r.identity]),
    [
      ['OperationPending', uid, 'alice'],
      ['Success', uid, 'alice'],
    ],
    'one record for the answer, one for the operation itself',
  );
  t.ok(records(engine.dataDir).some((r) => r.operation === 'Poll' && r.result === 'Success'), 'the Poll is recorded too');
});

t.test('errors inside the background operation come back through Poll', async (t) => {
  const engine = await startEngine({ async: { startDelayMs: 0 } });
  t.teardown(() => engine.close());
  for (const [version, expected] of [
    ['1.4', RR.ItemNotFound],
    ['2.1', RR.ObjectNotFound],
  ] as const) {
    const pending = await one(engine, Op.Recover, [uidNode('no-such-object')], { version, async: true });
    t.equal(pending.status, RS.OperationPending);
    const { final } = await settle(engine, pending.correlation!, { version });
    t.equal(final.operation, Op.Recover);
    t.equal(final.status, RS.OperationFailed);
    t.equal(final.reason, expected);
    t.equal(cancellation(await cancel(engine, pending.correlation!, { version })), CR.Failed, 'Cancel after a failure: Failed');
  }
  // Another identity's object is not found in the background either.
  const uid = await createKey(engine, '1.4', AES256(), 'alice');
  const pending = await one(engine, Op.Archive, [uidNode(uid)], { identity: 'mallory', async: true });
  const { final } = await settle(engine, pending.correlation!, { identity: 'mallory' });
  t.equal(final.reason, RR.ItemNotFound, 'ownership holds for background operations');
  t.equal((await get(engine, uid)).status, RS.Success);
});

t.test('what stays synchronous under the Asynchronous Indicator', async (t) => {
  const engine = await startEngine({ async: { startDelayMs: NEVER, maxPerIdentity: 2 } });
  t.teardown(() => engine.close());
  const uid = await createKey(engine, '1.4', [...AES256(), nameA('sync')]);
  const dv = await one(engine, Op.DiscoverVersions, [], { async: true });
  t.equal(dv.status, RS.Success, 'an operation kmipd never defers is answered at once');
  const g = await one(engine, Op.Get, [uidNode(uid)], { async: true });
  t.equal(g.status, RS.Success, 'Get: at once');
  // A batch of several items keeps its ID Placeholder and continuation rules: synchronous.
  const resp = await engine.request(
    [
      { operation: Op.Locate, payload: locateByName('sync') },
      { operation: Op.Archive, payload: [] },
    ],
    { header: ASYNC },
  );
  const items = batchItems(resp).map(read);
  t.same(items.map((i) => i.status), [RS.Success, RS.Success], 'a multi-item batch runs synchronously');
  t.same(uids(items[1]!.payload), [uid], 'the ID Placeholder carried the Locate result to Archive');
  t.equal((await get(engine, uid)).reason, RR.ObjectArchived);
  t.equal((await one(engine, Op.Recover, [uidNode(uid)])).status, RS.Success, 'without the indicator: at once');
  // At most maxPerIdentity operations in flight per identity; beyond, the answer is synchronous.
  const p1 = await one(engine, Op.Locate, locateByName('sync'), { async: true });
  const p2 = await one(engine, Op.Locate, locateByName('sync'), { async: true });
  const p3 = await one(engine, Op.Locate, locateByName('sync'), { async: true });
  t.same([p1.status, p2.status], [RS.OperationPending, RS.OperationPending]);
  t.equal(p3.status, RS.Success, 'the third is answered synchronously');
  t.same(uids(p3.payload), [uid]);
  const other = await one(engine, Op.Locate, locateByName('sync'), { async: true, identity: 'bob' });
  t.equal(other.status, RS.OperationPending, 'the limit is per identity');
  // A canceled entry is finished: it makes room for the next one.
  t.equal(cancellation(await cancel(engine, p1.correlation!)), CR.Canceled);
  const p4 = await one(engine, Op.Locate, locateByName('sync'), { async: true });
  t.equal(p4.status, RS.OperationPending);
  const gone = await poll(engine, p1.correlation!);
  t.equal(gone.reason, RR.ItemNotFound, 'the oldest finished entry was dropped for it');
});

t.test('stopping the executor cancels what is still queued', async (t) => {
  const engine = await startEngine({ async: { startDelayMs: NEVER } });
  const uid = await createKey(engine, '1.4');
  const pending = await one(engine, Op.Archive, [uidNode(uid)], { async: true });
  t.equal(pending.status, RS.OperationPending);
  t.equal(engine.executor.pending.size, 1);
  await engine.executor.close();
  const after = await poll(engine, pending.correlation!);
  t.equal(after.reason, RR.OperationCanceledByRequester, 'queued at stop: canceled, never run');
  t.equal((await get(engine, uid)).status, RS.Success);
  const late = await one(engine, Op.Locate, locateByName('x'), { async: true });
  t.equal(late.status, RS.Success, 'after stop every request is synchronous');
  await engine.close();
});
