/**
 * Durability of the audit trail: a response is never handed out (or sent over TLS) before its
 * record is fsynced; a failed audit write fails the request, undoes it and logs an error;
 * concurrent requests share one write and fsync; several writers (in one process, in several
 * processes) keep one valid chain.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync, appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { AuditLog } from '../../src/audit/log.js';
import { verifyAuditTrail } from '../../src/audit/verify.js';
import type { AuditEntry, AuditRecord, AuditSink } from '../../src/audit/types.js';
import { createLogger, silentLogger } from '../../src/server/log.js';
import { buildExecutor, startServer } from '../../src/server/server.js';
import { Enums } from '../../src/spec/index.js';
import { decodeTtlv, encodeTtlv } from '../../src/ttlv/index.js';
import { KmipTestClient } from '../helpers/client.js';
import { batchItems, itemResult, requestMessage } from '../helpers/engine.js';
import { createAesKey } from '../helpers/kmip-requests.js';
import { startTestServer } from '../helpers/server.js';
import { OK, OP, auditPath, createKey, createPayload, records, startAuditEngine } from './_audit.js';

const CHILD = join(fileURLToPath(new URL('.', import.meta.url)), '_writer-child.ts');

t.test('execute returns only after the record is fsynced', async (t) => {
  const e = await startAuditEngine();
  t.teardown(() => e.dispose());
  const events: string[] = [];
  const audit = new AuditLog({
    dataDir: e.dataDir,
    master: e.state.master,
    meta: e.state.store,
    anchorIntervalMs: 0,
    onDurable: (recs) => {
      // at this moment the lines are written and fsynced; the file already holds them
      const onDisk = readFileSync(auditPath(e.dataDir), 'utf8');
      for (const r of recs) events.push(`durable ${r.seq} ${onDisk.includes(r.hash) ? 'on disk' : 'MISSING'}`);
    },
  });
  t.teardown(() => audit.close());
  const executor = buildExecutor({ ...e.state, audit }, silentLogger(), 1 << 20);
  const frame = () => encodeTtlv(requestMessage([{ operation: OP.Create, payload: createPayload() }]));
  for (let i = 0; i < 3; i++) {
    const r = await executor.execute(frame(), { name: 'alice' }, silentLogger());
    events.push(`returned ${r.items[0]?.result}`);
  }
  t.same(events, ['durable 1 on disk', 'returned Success', 'durable 2 on disk', 'returned Success', 'durable 3 on disk', 'returned Success']);
});

t.test('a sink that has not finished holds the response back', async (t) => {
  const e = await startAuditEngine();
  t.teardown(() => e.dispose());
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const seen: AuditEntry[][] = [];
  const sink: AuditSink = {
    async record(entries) {
      seen.push([...entries]);
      await gate;
    },
  };
  const executor = buildExecutor({ ...e.state, audit: sink as AuditLog }, silentLogger(), 1 << 20);
  let done = false;
  const p = executor.execute(encodeTtlv(requestMessage([{ operation: OP.Create, payload: createPayload() }])), { name: 'alice' }, silentLogger()).then((r) => {
    done = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 200));
  t.equal(seen.length, 1, 'the record was handed to the sink');
  t.equal(seen[0]?.[0]?.operation, 'Create');
  t.notOk(done, 'no response while the record is not durable');
  release();
  const r = await p;
  t.ok(done);
  t.equal(r.items[0]?.result, 'Success');
});

t.test('over TLS: nothing is sent before the sink resolves', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const real = srv.server.state.audit;
  const events: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const spy: AuditSink = {
    async record(entries) {
      events.push('record');
      await gate;
      await real.record(entries);
      events.push('durable');
    },
  };
  // the sink the running server's executor awaits, swapped for the spy
  (srv.server.executor as unknown as { opts: { audit: AuditSink } }).opts.audit = spy;
  const client = await KmipTestClient.connect(srv.port, await srv.creds('vcenter'));
  t.teardown(() => client.close());
  const uidP = createAesKey(client).then((uid) => {
    events.push('response');
    return uid;
  });
  await new Promise((r) => setTimeout(r, 300));
  t.same(events, ['record'], 'no response on the wire yet');
  release();
  const uid = await uidP;
  t.same(events, ['record', 'durable', 'response']);
  t.equal(records(srv.dataDir).find((r) => r.kind === 'kmip')?.object, uid);
});

function captureLogger(): { log: ReturnType<typeof createLogger>; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
      cb();
    },
  });
  return { log: createLogger({ level: 'info', destination }), lines };
}

t.test('when the audit trail cannot be written the request fails, is undone, and an error is logged', async (t) => {
  const e = await startAuditEngine();
  t.teardown(() => e.dispose());
  // audit.log is a directory: the real writer cannot open it
  mkdirSync(join(e.dataDir, 'audit', 'audit.log'), { recursive: true });
  const { log, lines } = captureLogger();
  const before = await e.state.store.locate({ filters: [] });
  const r = await e.executor.execute(encodeTtlv(requestMessage([{ operation: OP.Create, payload: createPayload() }])), { name: 'alice' }, log);
  const tree = decodeTtlv(r.response);
  if (tree.type !== 'Structure') throw new Error('not a structure');
  const item = itemResult(batchItems(tree)[0]!);
  t.equal(item.status, Enums.ResultStatus.OperationFailed);
  t.equal(item.reason, Enums.ResultReason.GeneralFailure);
  t.equal(item.message, 'audit trail unavailable');
  t.same(await e.state.store.locate({ filters: [] }), before, 'the key it created is gone again');
  t.ok(
    lines.some((l) => l.level === 50 && /audit trail unavailable/.test(l.msg)),
    'logged at error level',
  );
  rmSync(join(e.dataDir, 'audit', 'audit.log'), { recursive: true });
  t.equal((await e.call(OP.Create, createPayload())).status, OK, 'served again once the log can be written');
});

t.test('concurrent requests share one write and fsync (group commit)', async (t) => {
  const e = await startAuditEngine({ audit: { anchorEvery: 50 } });
  t.teardown(() => e.dispose());
  // ten waves of twenty concurrent requests
  const N = 200;
  for (let w = 0; w < 10; w++) await Promise.all(Array.from({ length: 20 }, (_, i) => createKey(e, `client-${i % 5}`)));
  const s = e.state.audit.stats;
  t.ok(s.syncs <= N / 10, `${N} requests, ${s.syncs} fsyncs`);
  const recs = records(e.dataDir);
  t.equal(recs.filter((r) => r.kind === 'kmip').length, N);
  const anchors = recs.filter((r) => r.kind === 'anchor');
  t.equal(anchors.length, 4, 'an anchor at the end of each group that passed a multiple of 50');
  const v = await verifyAuditTrail({ dataDir: e.dataDir, master: e.state.master, meta: e.state.store });
  t.ok(v.ok, v.problem?.message ?? 'ok');
});

t.test('two writers in one process and three processes keep one chain', async (t) => {
  const e = await startAuditEngine({ audit: { anchorEvery: 25 } });
  t.teardown(() => e.dispose());
  const second = new AuditLog({ dataDir: e.dataDir, anchorIntervalMs: 0 });
  const children = ['child-a', 'child-b'].map(
    (id) =>
      new Promise<string>((resolve, reject) => {
        const c = spawn(process.execPath, [...process.execArgv, CHILD, e.dataDir, '150', id], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        c.stdout.on('data', (b: Buffer) => (out += b.toString()));
        c.stderr.on('data', (b: Buffer) => (out += b.toString()));
        c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`child ${id} exited ${code}: ${out}`))));
      }),
  );
  const mine: Promise<unknown>[] = [];
  for (let i = 0; i < 60; i++) {
    mine.push(createKey(e));
    mine.push(second.record([{ kind: 'admin', identity: 'second', operation: 'x', result: 'Success' }]));
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all([...mine, ...children]);
  await second.close();
  await e.close();
  const recs = records(e.dataDir);
  const count = (id: string) => recs.filter((r) => r.identity === id).length;
  t.equal(count('child-a'), 150);
  t.equal(count('child-b'), 150);
  t.equal(count('second'), 60);
  t.equal(count('alice'), 60);
  const again = await startAuditEngine({ dataDir: e.dataDir });
  t.teardown(() => again.close());
  const v = await verifyAuditTrail({ dataDir: e.dataDir, master: again.state.master, meta: again.state.store });
  t.ok(v.ok, v.problem?.message ?? 'ok');
  t.equal(v.records, recs.length);
  t.equal(recs[recs.length - 1]!.kind, 'anchor');
});

t.test('the server refuses to start on an audit log whose last record is unreadable', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kmipd-audit-start-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const e = await startAuditEngine({ dataDir });
  await createKey(e);
  await e.close();
  appendFileSync(auditPath(dataDir), '{"seq":3,"garbage":true}\n');
  await t.rejects(startServer({ dataDir, host: '127.0.0.1', port: 0, log: silentLogger() }), /last record of .* is unreadable/);
  // made readable again (the garbage removed), it starts
  const text = readFileSync(auditPath(dataDir), 'utf8').split('\n');
  writeFileSync(auditPath(dataDir), text.slice(0, -2).join('\n') + '\n');
  const s = await startServer({ dataDir, host: '127.0.0.1', port: 0, log: silentLogger() });
  await s.stop();
  const last = records(dataDir).pop() as AuditRecord;
  t.equal(last.kind, 'anchor');
});

t.test('idle anchors, close right after record, and a writer without the master key', async (t) => {
  const e = await startAuditEngine({ audit: { anchorIntervalMs: 100 } });
  t.teardown(() => e.dispose());
  await createKey(e);
  await new Promise((r) => setTimeout(r, 400));
  t.same(
    records(e.dataDir).map((r) => r.kind),
    ['kmip', 'anchor'],
    'an anchor after the idle interval',
  );

  const w = new AuditLog({ dataDir: e.dataDir, anchorIntervalMs: 0 });
  const p = w.record([{ kind: 'admin', identity: 'x', operation: 'y', result: 'Success' }]);
  await w.close(); // closed before the queued write ran: it is still written
  await p;
  await t.rejects(w.record([{ kind: 'admin', identity: 'x', operation: 'y', result: 'Success' }]), /closed/);
  const kinds = records(e.dataDir).map((r) => r.kind);
  t.same(kinds, ['kmip', 'anchor', 'admin'], 'no master key, no anchor');
  const v = await verifyAuditTrail({ dataDir: e.dataDir, master: e.state.master, meta: e.state.store });
  t.ok(v.ok);
  t.equal(v.unanchored, 1);
  t.match(v.notes.join('\n'), /seq 3 to 3 follow the newest anchor/);
  await e.state.audit.anchor();
  t.equal(records(e.dataDir).pop()?.kind, 'anchor', 'the next writer with the key anchors them');
});
