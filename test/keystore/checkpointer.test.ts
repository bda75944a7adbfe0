/**
 * Background checkpoints (src/keystore/checkpointer.ts): the server's SQLite store copies its
 * write-ahead log into the database file from a worker thread, SQLite's own checkpoints inside
 * COMMIT being off; everything committed stays readable, and the log does not grow without bound.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpointer } from '../../src/keystore/checkpointer.js';
import { openSqliteStore } from '../../src/keystore/sqlite.js';
import { assertSameObject, makeObject, nameAttr } from './suite.js';

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kmipd-ckpt-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

t.test('the worker copies committed pages into the database file; SQLite itself does not', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'keys.db');
  const store = await openSqliteStore(file, { backgroundCheckpoints: true });
  t.teardown(() => store.close());
  const ckpt = store.checkpointer;
  t.ok(ckpt?.active, 'background checkpoints run');
  const before = statSync(file).size;
  const objs = Array.from({ length: 300 }, (_, i) => makeObject({ attributes: [nameAttr(`ckpt-${i}`)] }));
  // Several groups, each its own commit.
  for (let i = 0; i < objs.length; i += 30) await Promise.all(objs.slice(i, i + 30).map((o) => store.insert(o)));
  t.ok(store.commits >= 10, `${store.commits} commits`);
  await ckpt!.checkpointNow();
  t.ok(ckpt!.stats.completed >= 1, `${ckpt!.stats.completed} checkpoints completed`);
  t.equal(ckpt!.stats.failed, 0, 'none failed');
  t.ok(ckpt!.stats.lastLogFrames > 0, `the last one saw ${ckpt!.stats.lastLogFrames} frames in the log`);
  t.equal(ckpt!.stats.lastCheckpointedFrames, ckpt!.stats.lastLogFrames, 'and copied them all');
  // 300 objects with their index rows are far more than the empty database's pages, and far
  // fewer than SQLite's own 1,000-page threshold: only the worker can have grown the file.
  t.ok(statSync(file).size > before, `database file grew from ${before} to ${statSync(file).size} bytes`);
  for (const o of [objs[0]!, objs[150]!, objs[299]!]) assertSameObject(t, await store.get(o.uid), o, `${o.uid} readable`);
});

t.test('checkpoints follow commits by themselves, and stop when commits stop', async (t) => {
  const file = join(tempDir(), 'keys.db');
  const store = await openSqliteStore(file, { backgroundCheckpoints: true });
  t.teardown(() => store.close());
  const ckpt = store.checkpointer!;
  const before = statSync(file).size;
  for (let i = 0; i < 20; i++) await store.insert(makeObject());
  // One interval (100 ms) after the last commit a checkpoint runs without being asked.
  const deadline = Date.now() + 5000;
  while (ckpt.stats.completed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.ok(ckpt.stats.completed >= 1, 'a checkpoint ran after the commits');
  t.ok(statSync(file).size > before, 'the commits reached the database file');
  const n = ckpt.stats.requested;
  await new Promise((r) => setTimeout(r, 400));
  t.equal(ckpt.stats.requested, n, 'no checkpoint without new commits');
});

t.test('close ends the worker; the data is all there on reopen', async (t) => {
  const file = join(tempDir(), 'keys.db');
  const store = await openSqliteStore(file, { backgroundCheckpoints: true });
  const objs = Array.from({ length: 50 }, () => makeObject());
  await Promise.all(objs.map((o) => store.insert(o)));
  await store.close();
  t.notOk(store.checkpointer?.active, 'the worker is gone');
  const again = await openSqliteStore(file);
  t.teardown(() => again.close());
  for (const o of objs) assertSameObject(t, await again.get(o.uid), o, `${o.uid} after reopen`);
});

t.test('a store without background checkpoints has no worker (short-lived commands)', async (t) => {
  const store = await openSqliteStore(join(tempDir(), 'keys.db'));
  t.teardown(() => store.close());
  t.equal(store.checkpointer, undefined);
});

t.test('a worker that cannot open its database is refused at start, with the reason', async (t) => {
  const dir = tempDir();
  await t.rejects(Checkpointer.start(join(dir, 'missing.db'), { onFailure: () => t.fail('not started: no failure to report') }), /unable to open|does not exist|directory does not exist|SQLITE_CANTOPEN/i);
  const plain = join(dir, 'rollback.db');
  const db = new Database(plain);
  db.exec('CREATE TABLE x (a)');
  db.close();
  await t.rejects(Checkpointer.start(plain, { onFailure: () => undefined }), /not in WAL mode/);
});
