import t from 'tap';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCA, ensureServerPki, issueClientCert, issueServerCert } from '../../src/pki/index.js';
import { addPinnedCert, addTrustedCa, readTrustEntries, removeTrust } from '../../src/pki/trust.js';
import { silentLogger } from '../../src/server/log.js';
import { TrustSync } from '../../src/server/trust-sync.js';
import { KeyStoreUnavailableError } from '../../src/keystore/unavailable.js';
import { PG_LATEST_SCHEMA_VERSION, PG_MIGRATIONS, type PgMigration } from '../../src/keystore/postgres-migrations.js';
import { openPostgresStore, parsePostgresUrl, type PostgresKeyStore } from '../../src/keystore/postgres.js';
import { UnsupportedSchemaError } from '../../src/keystore/types.js';
import { T } from '../../src/ttlv/index.js';
import { need, postgres } from '../helpers/requirements.js';
import { startPgCluster, type PgCluster } from '../helpers/pg.js';
import { assertSameObject, keystoreSuite, makeObject, nameAttr } from './suite.js';

const req = postgres();

t.test('PostgreSQL keystore', async (t) => {
  if (!need(t, req)) return;
  const started = Date.now();
  const cluster: PgCluster = await startPgCluster(req.bindir);
  t.teardown(() => cluster.destroy());
  const url = await cluster.createDatabase('keystore_tests');
  const opts = { password: cluster.password };
  let schemas = 0;
  const freshUrl = (): string => `${url}?schema=s${++schemas}`;

  await t.test('KeyStore suite on PostgreSQL', (t) => keystoreSuite(t, () => openPostgresStore(freshUrl(), opts)));

  await t.test('store URLs: no password in the URL, TLS modes, unknown parameters refused', async (t) => {
    t.throws(() => parsePostgresUrl('postgres://u:secret@h/db'), /do not put the database password in the store URL/);
    t.throws(() => parsePostgresUrl('postgres://u@h/db?sslmode=prefer'), /sslmode=prefer is not supported/);
    t.throws(() => parsePostgresUrl('postgres://u@h/db?password=x'), /unknown store URL parameter "password"/);
    t.throws(() => parsePostgresUrl('postgres://u@h/db?schema=Bad-Name'), /schema=Bad-Name/);
    t.throws(() => parsePostgresUrl('mysql://u@h/db'), /starts with postgres:\/\//);
    const plain = parsePostgresUrl('postgres://alice@db.example:6543/keys');
    t.same(
      { host: plain.config.host, port: plain.config.port, user: plain.config.user, database: plain.config.database, ssl: plain.config.ssl, schema: plain.schema },
      { host: 'db.example', port: 6543, user: 'alice', database: 'keys', ssl: false, schema: 'kmipd' },
    );
    t.match(parsePostgresUrl('postgres://a@h/d?sslmode=require').config.ssl, { rejectUnauthorized: false });
    const full = parsePostgresUrl('postgres://a@h/d?sslmode=verify-full').config.ssl;
    t.match(full, { rejectUnauthorized: true });
    t.equal(typeof full === 'object' && full !== null ? full.checkServerIdentity : 'none', undefined, 'verify-full checks the host name');
    const ca = parsePostgresUrl('postgres://a@h/d?sslmode=verify-ca').config.ssl;
    t.equal(typeof ca === 'object' && ca !== null ? typeof ca.checkServerIdentity : 'none', 'function', 'verify-ca skips the host name');
    t.throws(() => parsePostgresUrl('postgres://a@h/d?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem'), /cannot read/);
  });

  await t.test('two stores on one database see each other\'s writes at once', async (t) => {
    const u = freshUrl();
    const a = await openPostgresStore(u, opts);
    const b = await openPostgresStore(u, opts);
    t.teardown(async () => {
      await a.close();
      await b.close();
    });
    const o = makeObject({ attributes: [nameAttr('shared'), { name: 'x-n', index: 0, value: T.long(0x42000b, 7n) }] });
    await a.insert(o);
    assertSameObject(t, await b.get(o.uid), o, 'read on b');
    t.same(await b.locate({ filters: [{ kind: 'equals', name: 'x-n', value: 7 }] }), [o.uid], 'indexed on b');
    const r = await b.update({ ...o, state: 3 }, o.revision);
    t.equal((await a.get(o.uid))?.state, 3, 'b\'s update seen on a');
    await t.rejects(a.update({ ...o, state: 4 }, o.revision), { name: 'ConcurrentModificationError' }, 'a\'s stale update refused');
    t.equal((await a.get(o.uid))?.revision, r.revision);
  });

  await t.test('exactly one active root key across stores, also when activated concurrently', async (t) => {
    const u = freshUrl();
    const stores = await Promise.all([1, 2, 3, 4].map(() => openPostgresStore(u, opts)));
    t.teardown(() => Promise.all(stores.map((s) => s.close())));
    await Promise.all(
      stores.map((s, i) => s.putRootKey({ id: `rk-${i}`, wrapped: Buffer.alloc(40, i + 1), masterKeyId: 'm', status: 'active', createdAt: 1000 + i })),
    );
    const keys = await stores[0]!.rootKeys();
    t.equal(keys.length, 4);
    t.equal(keys.filter((k) => k.status === 'active').length, 1, 'one active');
    await t.rejects(
      cluster.query('keystore_tests', `INSERT INTO "s${schemas}".root_keys VALUES ('x', '\\x00', 'm', 'active', 1)`),
      /root_keys_one_active/,
      'the database itself refuses a second active key',
    );
  });

  await t.test('migrations: applied once by nodes starting together; newer or foreign schemas refused untouched', async (t) => {
    const u = freshUrl();
    const schema = `s${schemas}`;
    const stores = await Promise.all(Array.from({ length: 8 }, () => openPostgresStore(u, opts)));
    for (const s of stores) t.equal(await s.getMeta('schema_version'), String(PG_LATEST_SCHEMA_VERSION));
    await Promise.all(stores.map((s) => s.close()));

    const m2: PgMigration = { version: PG_LATEST_SCHEMA_VERSION + 1, name: 'test: add a table', compatible: false, sql: 'CREATE TABLE extra (x int)' };
    await t.rejects(openPostgresStore(u, { ...opts, migrations: [...PG_MIGRATIONS, m2] }), { name: 'PendingMigrationError', message: /kmipd migrate/ }, 'not applied unless asked');
    const s2 = await openPostgresStore(u, { ...opts, migrations: [...PG_MIGRATIONS, m2], pending: 'apply' });
    t.equal(await s2.getMeta('schema_version'), String(m2.version), 'migrated');
    await s2.close();
    const m3: PgMigration = { version: m2.version + 1, name: 'test: fails half way', compatible: true, sql: 'CREATE TABLE half (x int); SELECT 1/0' };
    await t.rejects(
      openPostgresStore(u, { ...opts, migrations: [...PG_MIGRATIONS, m2, m3], pending: 'apply' }),
      new RegExp(`schema migration ${m3.version} \\(test: fails half way\\) failed: division by zero; the keystore stays at version ${m2.version}`),
    );
    const half = await cluster.query('keystore_tests', `SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'half'`, [schema]);
    t.equal(half.length, 0, 'partial migration rolled back');
    await t.rejects(openPostgresStore(u, opts), {
      name: 'UnsupportedSchemaError',
      message: new RegExp(`schema version ${m2.version}, newer than this kmipd supports: .*which older code cannot serve.*upgrade this node`),
    });
    await cluster.query('keystore_tests', 'CREATE SCHEMA foreign_app; CREATE TABLE foreign_app.songs (title text)');
    await t.rejects(openPostgresStore(`${url}?schema=foreign_app`, opts), UnsupportedSchemaError);
    await t.rejects(openPostgresStore(`${url}?schema=foreign_app`, opts), /not a kmipd keystore/);
  });

  await t.test('text PostgreSQL cannot hold is refused as bad input', async (t) => {
    const s = await openPostgresStore(freshUrl(), opts);
    t.teardown(() => s.close());
    await t.rejects(s.insert(makeObject({ owner: 'a\u0000b' })), TypeError);
    await t.rejects(s.insert(makeObject({ attributes: [{ name: 'x-\u0000', index: 0, value: T.int(0x42000b, 1) }] })), TypeError);
    t.equal(await s.get('nul\u0000uid'), undefined);
    // Text values with U+0000 are fine: attributes are stored as bytes.
    const o = makeObject({ attributes: [{ name: 'x-t', index: 0, value: T.text(0x42000b, 'a\u0000b') }] });
    await s.insert(o);
    assertSameObject(t, await s.get(o.uid), o, 'NUL inside a text value');
    t.same(await s.locate({ filters: [{ kind: 'equals', name: 'x-t', value: 'a\u0000b' }] }), [o.uid]);
  });

  await t.test('Locate plans use the attribute index', async (t) => {
    const s: PostgresKeyStore = await openPostgresStore(freshUrl(), opts);
    t.teardown(() => s.close());
    for (let b = 0; b < 3000; b += 500) {
      await Promise.all(
        Array.from({ length: 500 }, (_, j) =>
          s.insert(makeObject({ uid: `bulk-${b + j}`, attributes: [nameAttr(`disk-${b + j}`), { name: 'x-p', index: 0, value: T.text(0x42000b, `p-${(b + j) % 100}`) }] })),
        ),
      );
    }
    await cluster.query('keystore_tests', `ANALYZE "s${schemas}".attr_index; ANALYZE "s${schemas}".objects`);
    const q = { filters: [{ kind: 'equals' as const, name: 'Name', value: 'disk-1234' }] };
    t.same(await s.locate(q), ['bulk-1234']);
    const plan = await s.explainLocate(q);
    t.comment(plan.join('\n'));
    t.ok(plan.some((l) => /attr_index_bin/.test(l)), 'uses attr_index_bin');
    t.notOk(plan.some((l) => /Seq Scan on attr_index/.test(l)), 'no scan of the index table');
  });

  await t.test('database down: clear error; back up: the same store works again, nothing acknowledged lost', async (t) => {
    const s = await openPostgresStore(freshUrl(), opts);
    t.teardown(() => s.close());
    const before = Array.from({ length: 20 }, () => makeObject());
    for (const o of before) await s.insert(o);
    await cluster.stop();
    await t.rejects(s.get(before[0]!.uid), KeyStoreUnavailableError, 'read fails as unavailable');
    await t.rejects(s.insert(makeObject()), { name: 'KeyStoreUnavailableError', message: /PostgreSQL keystore .* is unreachable/ }, 'write too');
    await cluster.start();
    for (const o of before) assertSameObject(t, await s.get(o.uid), o, o.uid);
    const after = makeObject();
    await s.insert(after);
    assertSameObject(t, await s.get(after.uid), after, 'writes work again');
  });

  await t.test('TLS to the database: sslmode=verify-full with sslrootcert', async (t) => {
    const ca = await createCA({ commonName: 'db test CA' });
    const server = await issueServerCert(ca, { commonName: 'localhost', sans: ['localhost', '127.0.0.1'] });
    const other = await createCA({ commonName: 'some other CA' });
    const tlsCluster = await startPgCluster(req.bindir, { ssl: server });
    t.teardown(() => tlsCluster.destroy());
    const dir = mkdtempSync(join(tmpdir(), 'kmipd-pgtls-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'ca.pem'), ca.certPem);
    writeFileSync(join(dir, 'other.pem'), other.certPem);
    const base = await tlsCluster.createDatabase('tls');
    const o = { password: tlsCluster.password, baseDir: dir };
    const s = await openPostgresStore(`${base}?sslmode=verify-full&sslrootcert=ca.pem&application_name=kmipd-tls-test`, o);
    t.teardown(() => s.close());
    await s.insert(makeObject());
    const rows = await tlsCluster.query<{ ssl: boolean; version: string }>(
      'tls',
      `SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'kmipd-tls-test'`,
    );
    t.ok(rows.length > 0 && rows.every((r) => r.ssl), `the store's connections use TLS (${rows[0]?.version ?? 'none'})`);
    await t.rejects(openPostgresStore(`${base}?sslmode=verify-full&sslrootcert=other.pem`, o), /certificate/i, 'a server certificate from another CA is refused');
    const plain = await openPostgresStore(base, o);
    await plain.close();
    t.pass('sslmode=disable (the default) connects without TLS');
  });

  await t.test('shared trust: local changes pushed, others pulled, also changes made while stopped', async (t) => {
    const store = await openPostgresStore(freshUrl(), opts);
    t.teardown(() => store.close());
    const root = mkdtempSync(join(tmpdir(), 'kmipd-trustsync-'));
    t.teardown(() => rmSync(root, { recursive: true, force: true }));
    const X = join(root, 'x');
    const Y = join(root, 'y');
    await ensureServerPki(X);
    cpSync(join(X, 'pki'), join(Y, 'pki'), { recursive: true });
    const partner = await createCA({ commonName: 'partner CA' });
    const leaf = await issueClientCert(partner, { commonName: 'pinned-client' });
    const log = silentLogger();
    let changedY = 0;
    const sx = (await TrustSync.start(X, store, log, { pollMs: 3_600_000 }))!;
    const sy = (await TrustSync.start(Y, store, log, { pollMs: 3_600_000, onChange: () => changedY++ }))!;
    t.ok(sx && sy, 'a PostgreSQL store shares trust');
    addTrustedCa(X, partner.certPem, { name: 'partner' });
    t.same((await sx.syncOnce()).pushed.added, ['partner'], 'a CA trusted on X is pushed');
    t.same((await store.trustRows()).map((r) => r.name), ['partner']);
    t.ok((await sy.syncOnce()).pulled, 'and pulled by Y');
    t.same(readTrustEntries(Y).map((e) => e.name), ['partner']);
    t.equal(changedY, 1, 'Y was told');
    t.same(await sy.syncOnce(), { pushed: { added: [], removed: [], skipped: [] }, pulled: false }, 'nothing to do twice');
    removeTrust(Y, 'partner');
    t.same((await sy.syncOnce()).pushed.removed.length, 1, 'a removal on Y is pushed');
    t.ok((await sx.syncOnce()).pulled);
    t.same(readTrustEntries(X), [], 'and reaches X');
    await sx.close();
    addPinnedCert(X, leaf.certPem, { name: 'while-stopped' });
    const sx2 = (await TrustSync.start(X, store, log, { pollMs: 3_600_000 }))!;
    t.same((await store.trustRows()).map((r) => r.name), ['while-stopped'], 'a change made while the server was stopped is pushed at start');
    await sy.syncOnce();
    t.same(readTrustEntries(Y).map((e) => e.name), ['while-stopped']);
    await sx2.close();
    await sy.close();
  });

  t.comment(`PostgreSQL keystore tests took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
