/**
 * Schema migrations on SQLite, end to end: `kmipd migrate --dry-run` changes nothing (schema and
 * rows compared before and after), `kmipd migrate` applies and records, a data directory from a
 * build before the version table opens with only that table added, a server refuses to start
 * with a pending migration (and starts with --migrate), a failing migration leaves the store at
 * its old version and is named, and /readyz turns 503 when another process migrates the store
 * beyond what the running build serves.
 */
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { queryAudit } from '../../src/audit/index.js';
import { runMigrate } from '../../src/cli/migrate.js';
import { resolveSettings } from '../../src/config/settings.js';
import { LATEST_SCHEMA_VERSION, MIGRATIONS, migrationChecksum, type Migration } from '../../src/keystore/migrations.js';
import { silentLogger } from '../../src/server/log.js';
import { readNodeId } from '../../src/server/heartbeat.js';
import { openServerState, startServer } from '../../src/server/server.js';
import { runKmipd } from '../helpers/cli.js';
import { createKey, credsFor } from '../helpers/nodes.js';
import { adminGet, startOpsServer } from '../admin/_ops.js';

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kmipd-migrate-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const keystore = (dir: string): string => join(dir, 'keystore.sqlite');

/** The schema and every row of every table, for before/after comparisons. */
function dump(file: string): string {
  const db = new Database(file, { readonly: true });
  try {
    const schema = db.prepare(`SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name`).all() as { type: string; name: string }[];
    const out: unknown[] = [schema, db.pragma('application_id', { simple: true }), db.pragma('user_version', { simple: true })];
    for (const s of schema) {
      if (s.type !== 'table' || s.name.startsWith('sqlite_')) continue;
      const rows = db.prepare(`SELECT * FROM "${s.name}"`).raw().all() as unknown[][];
      out.push(s.name, rows.map((r) => r.map((v) => (Buffer.isBuffer(v) ? v.toString('hex') : v))).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))));
    }
    return JSON.stringify(out);
  } finally {
    db.close();
  }
}

function schemaVersion(dir: string): number {
  const db = new Database(keystore(dir), { readonly: true });
  try {
    return Number((db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string }).value);
  } finally {
    db.close();
  }
}

function versionRows(dir: string): { version: number; name: string; checksum: string; applied_at: number | null; applied_by: string | null; kmipd_version: string | null }[] {
  const db = new Database(keystore(dir), { readonly: true });
  try {
    return db.prepare('SELECT * FROM schema_migrations ORDER BY version').all() as ReturnType<typeof versionRows>;
  } finally {
    db.close();
  }
}

/** A data directory whose keystore was made by a build that knew only `known` migrations. */
async function olderDir(known: readonly Migration[]): Promise<string> {
  const dir = tempDir();
  const state = await openServerState(dir, { log: silentLogger(), migrations: known, migrate: true });
  await state.close();
  return dir;
}

const additive: Migration = {
  version: LATEST_SCHEMA_VERSION + 1,
  name: 'test: objects.note and an index on updated_at',
  compatible: true,
  sql: 'ALTER TABLE objects ADD COLUMN note TEXT; CREATE INDEX objects_updated ON objects (updated_at);',
};

t.test('kmipd migrate: --dry-run changes nothing; without it the pending migration is applied, recorded and audited', async (t) => {
  // A store made before the version table existed (migration 1 only).
  const dir = await olderDir(MIGRATIONS.slice(0, 1));
  t.equal(schemaVersion(dir), 1);
  const before = dump(keystore(dir));

  const dry = await runKmipd(['migrate', '--data', dir, '--dry-run']);
  t.equal(dry.exitCode, 0, dry.err);
  t.equal(process.exitCode ?? 0, 0);
  t.match(dry.out, /schema version 1; this kmipd knows 2/);
  t.match(dry.out, /applied +1 +initial schema/);
  t.match(dry.out, /pending +2 +version table \(schema_migrations\) and node heartbeats \(nodes\) \[compatible, automatic\]/);
  t.match(dry.out, /dry run: 1 migration would be applied in one transaction \(nothing was changed\)/);
  t.equal(dump(keystore(dir)), before, 'dry run: schema and rows unchanged');

  const json = await runKmipd(['migrate', '--data', dir, '--dry-run', '--json']);
  const j = JSON.parse(json.out) as { dryRun: boolean; before: { state: string; current: number; known: number }; applied: unknown[] };
  t.same({ dryRun: j.dryRun, state: j.before.state, current: j.before.current, known: j.before.known, applied: j.applied }, { dryRun: true, state: 'pending', current: 1, known: 2, applied: [] });
  t.equal(dump(keystore(dir)), before, 'dry run --json: unchanged');

  const real = await runKmipd(['migrate', '--data', dir]);
  t.equal(real.exitCode, 0, real.err);
  t.equal(process.exitCode ?? 0, 0, real.err);
  t.match(real.out, /applied 2 "version table/);
  t.match(real.out, /keystore now at schema version 2/);
  t.equal(schemaVersion(dir), 2);
  const rows = versionRows(dir);
  t.same(
    rows.map((r) => [r.version, r.name, r.checksum]),
    MIGRATIONS.map((m) => [m.version, m.name, migrationChecksum(m)]),
    'every migration recorded with the checksum of its SQL',
  );
  t.same([rows[0]!.applied_at, rows[0]!.applied_by], [null, null], 'history from before the version table: no time or node');
  t.ok(rows[1]!.applied_at! > Date.now() - 600_000, 'applied now');
  t.match(rows[1]!.applied_by, new RegExp(`^${readNodeId(dir)}@`), 'by this data directory\'s node');
  t.ok(rows[1]!.kmipd_version);

  const again = await runKmipd(['migrate', '--data', dir]);
  t.match(again.out, /up to date: nothing to migrate/);
  t.match(again.out, /applied +2 +version table.* by /, 'the listing shows when and by whom');

  const admin = [...queryAudit(dir)].filter((r) => r.record.kind === 'admin').map((r) => [r.record.operation, r.record.result]);
  t.same(admin, [
    ['migrate', 'Success'],
    ['migrate', 'Success'],
  ], 'each real run is audited; dry runs are not');
});

t.test('a data directory from a build before the version table opens, changed only by that table', async (t) => {
  const old = MIGRATIONS.slice(0, 1);
  const dir = await olderDir(old);
  const srv = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, log: silentLogger(), migrations: old });
  const uid = await createKey(srv.listener.address.port, await credsFor(dir, 'vcenter'));
  await srv.stop();
  const before = JSON.parse(dump(keystore(dir))) as unknown[];
  t.ok(JSON.stringify(before).includes(uid), 'a key in it');
  // The real build, without --migrate.
  const state = await openServerState(dir, { log: silentLogger() });
  await state.close();
  t.equal(schemaVersion(dir), 2, 'the automatic migration was applied');
  const after = JSON.parse(dump(keystore(dir))) as unknown[];
  const names = (d: unknown[]) => (d[0] as { name: string }[]).map((s) => s.name);
  t.same(
    names(after).filter((n) => !names(before).includes(n)).sort(),
    ['nodes', 'schema_migrations'],
    'only the version table and the node table were added',
  );
  for (const table of ['objects', 'attr_index', 'attr_names', 'root_keys', 'removed']) {
    t.same(after[after.indexOf(table) + 1], before[before.indexOf(table) + 1], `${table} unchanged`);
  }
  const meta = (d: unknown[]) => (d[d.indexOf('meta') + 1] as [string, string][]).filter(([k]) => k !== 'schema_version');
  t.same(meta(after), meta(before), 'meta unchanged but for the schema version');
});

t.test('serve refuses a store with a pending migration, naming kmipd migrate; --migrate applies it', async (t) => {
  const dir = tempDir();
  await (await openServerState(dir, { log: silentLogger() })).close();
  const before = dump(keystore(dir));
  const newer = [...MIGRATIONS, additive];
  await t.rejects(startServer({ dataDir: dir, host: '127.0.0.1', port: 0, log: silentLogger(), migrations: newer }), {
    name: 'PendingMigrationError',
    message: new RegExp(`schema version ${LATEST_SCHEMA_VERSION}; this kmipd needs version ${additive.version} \\(pending: ${additive.version} "test: objects.note.*Run \`kmipd migrate --data DIR\``),
  });
  t.equal(dump(keystore(dir)), before, 'nothing written');

  const srv = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, log: silentLogger(), migrations: newer, migrate: true });
  t.equal(schemaVersion(dir), additive.version, 'serve --migrate applied it');
  await srv.stop();
  t.equal(versionRows(dir).at(-1)?.name, additive.name);

  // The setting behind --migrate: flag, KMIPD_MIGRATE or "server.migrate" in kmipd.json.
  t.equal(resolveSettings({}).settings.migrate, false, 'off by default');
  t.equal(resolveSettings({ env: { KMIPD_MIGRATE: '1' } }).settings.migrate, true);
  t.equal(resolveSettings({ file: { migrate: true } }).settings.migrate, true);
  t.equal(resolveSettings({ flags: { migrate: true } }).settings.migrate, true);
  t.throws(() => resolveSettings({ file: { migrate: 'yes' } }), /server\.migrate: must be true or false \(a JSON boolean\)/);
  t.equal(resolveSettings({ env: { KMIPD_HEARTBEAT_SECONDS: '2' } }).settings.heartbeatSeconds, 2);
});

t.test('a failing migration is named and leaves the store at its old version', async (t) => {
  const dir = tempDir();
  await (await openServerState(dir, { log: silentLogger() })).close();
  const before = dump(keystore(dir));
  const broken: Migration = { version: additive.version + 1, name: 'test: refers to a missing table', compatible: true, sql: 'CREATE TABLE half (x INTEGER); INSERT INTO nowhere VALUES (1);' };
  const list = [...MIGRATIONS, additive, broken];
  await t.rejects(runMigrate(dir, { migrations: list }), {
    message: new RegExp(`schema migration ${broken.version} \\(test: refers to a missing table\\) failed: no such table: nowhere; the keystore stays at version ${LATEST_SCHEMA_VERSION}`),
  });
  t.equal(dump(keystore(dir)), before, 'rolled back: the earlier migration of the same run too');
  await t.rejects(startServer({ dataDir: dir, host: '127.0.0.1', port: 0, log: silentLogger(), migrations: list, migrate: true }), /schema migration 4 \(test: refers to a missing table\) failed/);
  t.equal(dump(keystore(dir)), before, 'serve --migrate: rolled back as well');
});

t.test('/readyz is 503 with the reason when another process migrates beyond what this build serves', async (t) => {
  const srv = await startOpsServer({ health: { cacheMs: 0 } });
  t.teardown(() => srv.stop());
  const ready = async () => adminGet(srv.adminPort!, '/readyz', srv.caPem);
  t.equal((await ready()).status, 200);

  // A newer build adds a compatible migration: this node keeps serving and stays ready.
  const r1 = await runMigrate(srv.dataDir, { migrations: [...MIGRATIONS, additive] });
  t.same(r1.applied.map((a) => a.version), [additive.version]);
  const ok = await ready();
  t.equal(ok.status, 200, 'one compatible version ahead: ready');
  const h = JSON.parse((await adminGet(srv.adminPort!, '/health', srv.caPem)).body) as { checks: { migrations: { ok: boolean; detail: string } } };
  t.match(h.checks.migrations.detail, /one compatible version ahead of this kmipd \(2\)/);
  const creds = await srv.creds('vcenter');
  t.ok(await createKey(srv.port, creds), 'requests still served');

  // Then one this build cannot serve.
  const incompatible: Migration = { version: additive.version + 1, name: 'test: key policies old nodes would not enforce', compatible: false, sql: 'CREATE TABLE key_policies (uid TEXT PRIMARY KEY, policy TEXT NOT NULL);' };
  await runMigrate(srv.dataDir, { migrations: [...MIGRATIONS, additive, incompatible] });
  const not = await ready();
  t.equal(not.status, 503, 'not ready');
  t.match(not.body, /migrations.*schema version 4, newer than this kmipd supports: more than one version ahead of this kmipd \(2\).*upgrade this node/s);
  t.match((await runKmipd(['cluster', 'status', '--data', srv.dataDir])).out, /keystore sqlite:.*1 node/);
});
