/**
 * Archive / Recover and an asynchronous Archive over TLS against a kmipd process on a PostgreSQL
 * keystore: the archived state (its Archive Date attribute) survives a restart of the node.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Enums, Tag } from '../../src/spec/index.js';
import { T, type TtlvNode } from '../../src/ttlv/index.js';
import { KmipTestClient, type ClientCreds } from '../helpers/client.js';
import { batchItems, itemResult, requestMessage, type ItemResult } from '../helpers/engine.js';
import { createKey, credsFor, getKey, nodeLauncher, stopNode, withClient } from '../helpers/nodes.js';
import { startPgCluster } from '../helpers/pg.js';
import { need, postgres } from '../helpers/requirements.js';

const req = postgres();
const Op = Enums.Operation;
const RS = Enums.ResultStatus;
const RR = Enums.ResultReason;

async function send(c: KmipTestClient, operation: number, payload: TtlvNode[], header: TtlvNode[] = []): Promise<{ r: ItemResult; correlation?: Buffer }> {
  const resp = await c.send(requestMessage([{ operation, payload }], { version: '1.4', header }));
  const item = batchItems(resp)[0];
  if (!item) throw new Error('no batch item in the response');
  const acv = item.value.find((n) => n.tag === Tag.AsynchronousCorrelationValue);
  return { r: itemResult(item), ...(acv?.type === 'ByteString' ? { correlation: Buffer.from(acv.value) } : {}) };
}

function call(port: number, creds: ClientCreds, operation: number, uid: string): Promise<ItemResult> {
  return withClient(port, creds, async (c) => (await send(c, operation, [T.text(Tag.UniqueIdentifier, uid)])).r);
}

t.test('the archived state on PostgreSQL, across a restart', async (t) => {
  if (!need(t, req)) return;
  const pg = await startPgCluster(req.bindir);
  t.teardown(() => pg.destroy());
  const url = await pg.createDatabase('archive');
  const root = mkdtempSync(join(tmpdir(), 'kmipd-archive-pg-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const serve = nodeLauncher(t, { PGPASSWORD: pg.password });
  const dir = join(root, 'a');

  let node = await serve(dir, ['--store', url]);
  const creds = await credsFor(dir, 'vcenter');
  const uid = await createKey(node.port, creds);

  // An asynchronous Archive, polled on the connection that sent it.
  await withClient(node.port, creds, async (c) => {
    const pending = await send(c, Op.Archive, [T.text(Tag.UniqueIdentifier, uid)], [T.bool(Tag.AsynchronousIndicator, true)]);
    t.equal(pending.r.status, RS.OperationPending, 'Archive: Operation Pending');
    t.ok(pending.correlation, 'with a correlation value');
    let final: ItemResult | undefined;
    for (let i = 0; i < 200 && !final; i++) {
      const p = await send(c, Op.Poll, [T.bytes(Tag.AsynchronousCorrelationValue, pending.correlation!)]);
      if (p.r.status !== RS.OperationPending) final = p.r;
      else await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(final?.status, RS.Success, 'Poll: the Archive succeeded');
  });
  t.equal((await getKey(node.port, creds, uid)).reason, RR.ObjectArchived, 'Get: Object Archived');

  await stopNode(node);
  node = await serve(dir, ['--store', url]);
  t.equal((await getKey(node.port, creds, uid)).reason, RR.ObjectArchived, 'still archived after the restart');
  t.equal((await call(node.port, creds, Op.Recover, uid)).status, RS.Success, 'Recover');
  t.equal((await getKey(node.port, creds, uid)).status, RS.Success, 'Get works again');
  await stopNode(node);
  node = await serve(dir, ['--store', url]);
  t.equal((await getKey(node.port, creds, uid)).status, RS.Success, 'recovered state persisted');
});
