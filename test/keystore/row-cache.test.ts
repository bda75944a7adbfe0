/**
 * The SQLite store's row cache for get(): it must never serve a row that a write (this
 * connection's, or another process's through its own connection) has changed, never let a
 * caller's changes to what it got reach the cache, and stay bounded.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/keystore/sqlite.js';
import { assertSameObject, makeObject, nameAttr } from './suite.js';

function tempFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'kmipd-rowcache-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return join(d, 'keys.db');
}

t.test("this connection's writes are seen at once", async (t) => {
  const s = await openSqliteStore(tempFile());
  t.teardown(() => s.close());
  const o = makeObject();
  await s.insert(o);
  assertSameObject(t, await s.get(o.uid), o, 'first read');
  t.equal(s.cachedRows, 1, 'cached');
  const changed = { ...o, state: o.state + 1, attributes: [nameAttr('renamed')] };
  await s.update(changed, o.revision);
  const got = await s.get(o.uid);
  t.equal(got?.revision, o.revision + 1, 'the new revision');
  t.equal(got?.state, changed.state, 'the new state');
  t.equal(got?.attributes.length, 1, 'the new attributes');
  await s.restore(o.uid, null);
  t.equal(await s.get(o.uid), undefined, 'a removed object is gone');
});

t.test("another connection's writes are seen at the next read", async (t) => {
  const file = tempFile();
  const server = await openSqliteStore(file);
  t.teardown(() => server.close());
  const o = makeObject();
  await server.insert(o);
  await server.get(o.uid);
  await server.get(o.uid);
  t.equal(server.cachedRows, 1, 'the server has the row cached');
  // The admin CLI (another process) writes through its own connection.
  const cli = await openSqliteStore(file);
  await cli.update({ ...o, state: o.state + 1 }, o.revision);
  const other = makeObject();
  await cli.insert(other);
  await cli.close();
  const got = await server.get(o.uid);
  t.equal(got?.revision, o.revision + 1, 'the CLI revision, not the cached one');
  t.equal(got?.state, o.state + 1);
  assertSameObject(t, await server.get(other.uid), other, "the CLI's new object");
});

t.test("what a caller does to what it got does not reach the cache", async (t) => {
  const s = await openSqliteStore(tempFile());
  t.teardown(() => s.close());
  const o = makeObject();
  await s.insert(o);
  const first = (await s.get(o.uid))!;
  first.material!.blob.fill(0);
  first.attributes.length = 0;
  assertSameObject(t, await s.get(o.uid), o, 'the second read is intact');
});

t.test('the cache is bounded', async (t) => {
  const s = await openSqliteStore(tempFile());
  t.teardown(() => s.close());
  const objs = Array.from({ length: 4200 }, () => makeObject());
  await Promise.all(objs.map((o) => s.insert(o)));
  for (const o of objs) await s.get(o.uid);
  t.equal(s.cachedRows, 4096, 'at most 4,096 rows');
  // The least recently used went first: the newest reads are served, and correct.
  assertSameObject(t, await s.get(objs[4199]!.uid), objs[4199]!, 'a recent one');
  assertSameObject(t, await s.get(objs[0]!.uid), objs[0]!, 'an evicted one, read again');
});
