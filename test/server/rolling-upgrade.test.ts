/**
 * Schema migrations and node heartbeats on a shared PostgreSQL keystore, with in-process nodes.
 *
 * "Old code" is a node opened with the migration list cut to what it knows (exactly what an
 * older build has); the next migrations are real ones added through the same option:
 *   - two nodes at N serve; `kmipd migrate` (runMigrate, the function behind it) applies a
 *     compatible N+1; both old nodes keep serving and stay ready; one is restarted with N+1;
 *   - an incompatible N+2: the old node reports not ready and refuses to start.
 * Also: `kmipd migrate --dry-run` on PostgreSQL changes nothing, the real CLI applies, a failing
 * migration is rolled back; `kmipd cluster status` lists the nodes with their schema knowledge.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthChecker } from '../../src/admin/health.js';
import { runMigrate } from '../../src/cli/migrate.js';
import { PG_MIGRATIONS, type PgMigration } from '../../src/keystore/postgres-migrations.js';
import { buildNodeBundle, joinFromBundle, sealBundle } from '../../src/server/node-bundle.js';
import { silentLogger } from '../../src/server/log.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { runKmipd } from '../helpers/cli.js';
import { createKey, credsFor, getKey, keyBytes } from '../helpers/nodes.js';
import { startPgCluster } from '../helpers/pg.js';
import { need, postgres } from '../helpers/requirements.js';

const req = postgres();
const PASSPHRASE = 'correct horse battery staple';

t.test('rolling upgrade of nodes sharing a PostgreSQL keystore', async (t) => {
  if (!need(t, req)) return;
  const pg = await startPgCluster(req.bindir);
  t.teardown(() => pg.destroy());
  const url = await pg.createDatabase('rolling');
  const root = mkdtempSync(join(tmpdir(), 'kmipd-rolling-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  process.env.PGPASSWORD = pg.password;
  t.teardown(() => {
    delete process.env.PGPASSWORD;
  });
  const running = new Set<RunningServer>();
  t.teardown(async () => {
    for (const s of running) await s.stop().catch(() => undefined);
  });
  const A = join(root, 'a');
  const B = join(root, 'b');
  const log = silentLogger();
  const start = async (dir: string, migrations: readonly PgMigration[], extra: { store?: string } = {}): Promise<RunningServer> => {
    const s = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, log, migrations, heartbeatMs: 200, ...extra });
    running.add(s);
    return s;
  };
  const stop = async (s: RunningServer): Promise<void> => {
    await s.stop();
    running.delete(s);
  };
  const health = (s: RunningServer) =>
    new HealthChecker({ store: s.state.store, master: s.state.master, serverCertPem: () => s.trust.tlsOptions().cert }, log, { cacheMs: 0 }).report();
  const port = (s: RunningServer) => s.listener.address.port;

  // N: what this build knows. N+1: an additive change older code can serve. N+2: a change it cannot.
  const N = PG_MIGRATIONS.length;
  const next: PgMigration = {
    version: N + 1,
    name: 'test: objects.note and an index on updated_at',
    compatible: true,
    sql: 'ALTER TABLE objects ADD COLUMN note text; CREATE INDEX objects_updated ON objects (updated_at);',
  };
  const breaking: PgMigration = {
    version: N + 2,
    name: 'test: key policies old nodes would not enforce',
    compatible: false,
    sql: 'CREATE TABLE key_policies (uid text PRIMARY KEY REFERENCES objects (uid), policy text NOT NULL);',
  };
  const oldCode = PG_MIGRATIONS;
  const newCode = [...PG_MIGRATIONS, next];
  const newestCode = [...PG_MIGRATIONS, next, breaking];

  // ---- two nodes at N --------------------------------------------------------------------------
  let a = await start(A, oldCode, { store: url });
  const sealed = await sealBundle(Buffer.from(JSON.stringify(buildNodeBundle(A, { withServerCert: true }))), PASSPHRASE);
  await joinFromBundle(B, sealed, { passphrase: PASSPHRASE });
  let b = await start(B, oldCode);
  const creds = await credsFor(A, 'vcenter');
  const k1 = await createKey(port(a), creds);
  t.ok(keyBytes(await getKey(port(b), creds, k1)), 'both nodes at N serve');

  await t.test('kmipd migrate on PostgreSQL: --dry-run changes nothing', async (t) => {
    const snapshot = async () =>
      JSON.stringify([
        await pg.query('rolling', `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'kmipd' ORDER BY 1, 2`),
        await pg.query('rolling', `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'kmipd' ORDER BY 1`),
        await pg.query('rolling', `SELECT * FROM kmipd.schema_migrations ORDER BY version`),
        await pg.query('rolling', `SELECT key, value FROM kmipd.meta WHERE key NOT LIKE 'health.probe.%' AND key NOT LIKE 'usage.%' ORDER BY key`),
        await pg.query('rolling', `SELECT uid, revision FROM kmipd.objects ORDER BY seq`),
      ]);
    const before = await snapshot();
    const dry = await runMigrate(A, { migrations: newCode, dryRun: true });
    t.same({ state: dry.before.state, current: dry.before.current, known: dry.before.known, applied: dry.applied }, { state: 'pending', current: N, known: N + 1, applied: [] });
    t.same(dry.before.entries.map((e) => [e.version, e.status]), [...oldCode.map((m) => [m.version, 'applied']), [N + 1, 'pending']]);
    t.equal(await snapshot(), before, 'nothing changed');
    const cli = await runKmipd(['migrate', '--data', A, '--dry-run']);
    t.equal(cli.exitCode, 0, cli.err);
    t.match(cli.out, new RegExp(`keystore postgres://.*: schema version ${N}; this kmipd knows ${N}`));
    t.match(cli.out, /up to date: nothing to migrate/, 'the real build has nothing pending');
    t.equal(await snapshot(), before, 'nothing changed');
  });

  await t.test('kmipd migrate on PostgreSQL applies what a schema from an older build lacks', async (t) => {
    const legacy = `${url}?schema=legacy`;
    const { openPostgresStore } = await import('../../src/keystore/postgres.js');
    await (await openPostgresStore(legacy, { password: pg.password, migrations: PG_MIGRATIONS.slice(0, 1), pending: 'apply' })).close();
    const dry = await runKmipd(['migrate', '--data', A, '--store', legacy, '--dry-run']);
    t.match(dry.out, /schema version 1; this kmipd knows 2/);
    t.match(dry.out, /pending +2 +version table/);
    t.same(await pg.query('rolling', `SELECT value FROM legacy.meta WHERE key = 'schema_version'`), [{ value: '1' }], 'dry run: still at 1');
    const real = await runKmipd(['migrate', '--data', A, '--store', legacy, '--json']);
    t.equal(process.exitCode ?? 0, 0, real.err);
    const j = JSON.parse(real.out) as { applied: { version: number }[]; after: { current: number; state: string } };
    t.same([j.applied, j.after.current, j.after.state], [[{ version: 2, name: PG_MIGRATIONS[1]!.name }], 2, 'current']);
    const rows = await pg.query<{ version: number; applied_at: string | null; applied_by: string | null }>('rolling', 'SELECT version, applied_at, applied_by FROM legacy.schema_migrations ORDER BY version');
    t.same(rows.map((x) => [x.version, x.applied_at === null]), [[1, true], [2, false]], 'history recorded: 1 before the version table, 2 now');
    t.match(rows[1]?.applied_by, new RegExp(`^${a.state.nodeId}@`));

    // An empty schema: created by kmipd migrate (e.g. by the database owner before the nodes start).
    const fresh = `${url}?schema=fresh`;
    const created = await runKmipd(['migrate', '--data', A, '--store', fresh]);
    t.equal(process.exitCode ?? 0, 0, created.err);
    t.match(created.out, /the keystore has no schema yet/);
    t.match(created.out, new RegExp(`keystore now at schema version ${N}`));
    t.match((await runKmipd(['migrate', '--data', A, '--store', fresh])).out, /up to date/);
  });

  await t.test('a failing migration is rolled back and named', async (t) => {
    const bad: PgMigration = { version: N + 1, name: 'test: fails half way', compatible: true, sql: 'CREATE TABLE half (x int); SELECT 1/0;' };
    await t.rejects(runMigrate(A, { migrations: [...PG_MIGRATIONS, bad] }), new RegExp(`schema migration ${N + 1} \\(test: fails half way\\) failed: division by zero; the keystore stays at version ${N}`));
    t.same(await pg.query('rolling', `SELECT value FROM kmipd.meta WHERE key = 'schema_version'`), [{ value: String(N) }]);
    t.same(await pg.query('rolling', `SELECT 1 FROM information_schema.tables WHERE table_schema = 'kmipd' AND table_name = 'half'`), []);
  });

  // ---- kmipd migrate to N+1 while both old nodes serve ---------------------------------------
  const r = await runMigrate(A, { migrations: newCode });
  t.same(r.applied, [{ version: N + 1, name: next.name }], 'N+1 applied');
  t.same(await pg.query('rolling', `SELECT column_name FROM information_schema.columns WHERE table_schema = 'kmipd' AND table_name = 'objects' AND column_name = 'note'`), [{ column_name: 'note' }]);
  for (const [name, s] of [['A', a], ['B', b]] as const) {
    const k = await createKey(port(s), creds);
    t.ok(keyBytes(await getKey(port(s === a ? b : a), creds, k)), `old node ${name} creates keys the other reads, on schema N+1`);
    t.ok(keyBytes(await getKey(port(s), creds, k1)), `old node ${name} reads keys made before`);
    const h = await health(s);
    t.equal(h.status, 'ok', `old node ${name} stays ready`);
    t.match(h.checks.migrations?.detail, new RegExp(`schema version ${N + 1}, one compatible version ahead of this kmipd \\(${N}\\)`));
  }
  t.same(
    (await pg.query<{ version: number; applied_by: string }>('rolling', 'SELECT version, applied_by FROM kmipd.schema_migrations ORDER BY version')).map((x) => x.version),
    [...oldCode.map((m) => m.version), N + 1],
    'recorded in schema_migrations',
  );

  // ---- one node restarted with the new build -------------------------------------------------
  await stop(b);
  b = await start(B, newCode);
  t.equal((await health(b)).checks.migrations?.detail, `schema version ${N + 1}`, 'the upgraded node is current');
  const k2 = await createKey(port(b), creds);
  t.ok(keyBytes(await getKey(port(a), creds, k2)), 'old and new nodes serve side by side');

  await t.test('cluster status shows both nodes and what schema each knows', async (t) => {
    await Promise.all([a.heartbeat.beat(), b.heartbeat.beat()]);
    const st = await runKmipd(['cluster', 'status', '--data', A, '--json']);
    t.equal(st.exitCode, 0, st.err);
    const j = JSON.parse(st.out) as { ok: boolean; sameCertificate: boolean; nodes: { nodeId: string; status: string; info: { schema: { known: number; current: number } } }[] };
    t.equal(j.nodes.length, 2);
    t.same(
      j.nodes.map((n) => [n.nodeId, n.status, n.info.schema.known, n.info.schema.current]).sort(),
      [
        [a.state.nodeId, 'serving', N, N + 1],
        [b.state.nodeId, 'serving', N + 1, N + 1],
      ].sort(),
    );
    t.ok(j.sameCertificate && j.ok, 'both present the same certificate (joined --with-server-cert)');
  });

  // ---- an incompatible N+2 ---------------------------------------------------------------------
  const r2 = await runMigrate(B, { migrations: newestCode });
  t.same(r2.applied.map((x) => x.version), [N + 2]);
  const ha = await health(a);
  t.equal(ha.status, 'fail', 'the old node (N) is not ready');
  t.match(ha.checks.migrations?.error, new RegExp(`schema version ${N + 2}, newer than this kmipd supports: more than one version ahead of this kmipd \\(${N}\\)`));
  const hb = await health(b);
  t.equal(hb.status, 'fail', 'the N+1 node is not ready either: N+2 is not compatible');
  t.match(hb.checks.migrations?.error, new RegExp(`ahead of this kmipd \\(${N + 1}\\) by migration ${N + 2} "test: key policies old nodes would not enforce", which older code cannot serve`));
  await stop(a);
  await t.rejects(start(A, oldCode), { name: 'UnsupportedSchemaError', message: /upgrade this node \(the keystore was not modified\)/ }, 'the old node refuses to start');
  await t.rejects(start(A, newCode), { name: 'UnsupportedSchemaError' }, 'so does the N+1 build');
  a = await start(A, newestCode);
  t.equal((await health(a)).status, 'ok', 'the newest build starts and is ready');
  await t.test('heartbeat rows: a clean stop removes the row', async (t) => {
    await stop(b);
    const rows = await pg.query<{ node_id: string }>('rolling', 'SELECT node_id FROM kmipd.nodes');
    t.same(rows.map((x) => x.node_id), [a.state.nodeId]);
  });
});
