/**
 * Schema migrations: the SQLite list, and the rules both backends share.
 *
 * The schema version lives in `meta.schema_version`; from version 2 on, the table
 * `schema_migrations` records every migration (version, name, SHA-256 of its SQL, whether it is
 * backward compatible, when, by which node and which kmipd). Migrations applied before that
 * table existed are recorded when it is created, with no time or node ("before the version
 * table").
 *
 * Pending migrations (all of them) run in one transaction together with the version bump and
 * their schema_migrations rows (SQLite: one IMMEDIATE transaction; PostgreSQL: one transaction
 * holding an advisory lock, see postgres-migrations.ts), so a crash or a failing step leaves the
 * store exactly at its old version.
 *
 * When a store is opened:
 *   - a brand-new store is created at the newest version;
 *   - a store with pending migrations is migrated only when asked (`kmipd migrate`,
 *     `kmipd serve --migrate`), else refused with PendingMigrationError, nothing written; except
 *     when every pending migration is `automatic` (bookkeeping tables nothing older reads);
 *   - a store one version ahead of this build is served when that migration is marked
 *     `compatible` (additive: code one version back keeps working on it), which makes rolling
 *     upgrades of nodes sharing a PostgreSQL keystore possible; two or more versions ahead, or
 *     one incompatible version ahead, is refused (UnsupportedSchemaError), nothing written.
 *
 * Rules for adding a migration: append `{ version: n + 1, ... }`, never edit a released one (its
 * checksum is recorded), keep `sql` to statements that work inside a transaction (no VACUUM, no
 * journal_mode changes), and set `compatible` only when code that does not know the migration
 * keeps serving correctly on the new schema (new nullable columns, indexes, tables it ignores).
 */
import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { VERSION } from '../version.js';
import { UnsupportedSchemaError } from './types.js';

export interface Migration {
  version: number;
  /** Short description, recorded and shown by `kmipd migrate`. */
  name: string;
  /** Plain SQL, one or more statements, run inside the migration transaction. */
  sql: string;
  /** Code that knows only the versions before this one can keep serving on it (additive change). */
  compatible: boolean;
  /**
   * Bookkeeping only (new tables the data path never reads): applied whenever the store is
   * opened, without `kmipd migrate`. Must also be `compatible`.
   */
  automatic?: boolean;
}

/** Who applies a migration: recorded in schema_migrations. */
export interface AppliedBy {
  /** The node id of the data directory (src/server/heartbeat.ts), or a tool name. */
  node: string;
  host: string;
  /** kmipd version. */
  version: string;
}

export function defaultAppliedBy(node = 'kmipd'): AppliedBy {
  return { node, host: hostname(), version: VERSION };
}

/** What to do with pending migrations on a store that exists already. */
export type PendingMode = 'apply' | 'refuse';

/** "KMIP" in ASCII: marks the file as a kmipd database (PRAGMA application_id). */
export const APPLICATION_ID = 0x4b4d4950;

const VERSION_TABLE_AND_NODES_SQLITE = `
  -- Every migration applied to this store (src/keystore/migrations.ts).
  CREATE TABLE schema_migrations (
    version       INTEGER PRIMARY KEY NOT NULL,
    name          TEXT    NOT NULL,
    checksum      TEXT    NOT NULL,  -- SHA-256 (hex) of the migration's SQL
    compatible    INTEGER NOT NULL CHECK (compatible IN (0, 1)),
    applied_at    INTEGER,           -- ms since the epoch; NULL: applied before this table existed
    applied_by    TEXT,              -- node id @ host
    kmipd_version TEXT
  ) WITHOUT ROWID;

  -- The nodes serving this keystore and their last heartbeat (src/server/heartbeat.ts).
  CREATE TABLE nodes (
    node_id      TEXT    PRIMARY KEY NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('serving', 'stopped')),
    heartbeat_at INTEGER NOT NULL,   -- ms since the epoch
    info         TEXT    NOT NULL    -- JSON
  ) WITHOUT ROWID;
`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema: meta, objects, attribute names and index, tombstones, root keys',
    compatible: false,
    sql: `
        CREATE TABLE meta (
          key   TEXT PRIMARY KEY NOT NULL,
          value TEXT NOT NULL
        ) WITHOUT ROWID;

        -- seq is the rowid: insertion order, never reused (AUTOINCREMENT), the join key of the index.
        CREATE TABLE objects (
          seq         INTEGER PRIMARY KEY AUTOINCREMENT,
          uid         TEXT    NOT NULL UNIQUE,
          object_type INTEGER NOT NULL,
          state       INTEGER NOT NULL,
          owner       TEXT    NOT NULL,
          attributes  BLOB    NOT NULL,  -- TTLV, see src/keystore/attributes.ts
          root_key_id TEXT,
          material    BLOB,              -- wrapped by the envelope; never plaintext
          revision    INTEGER NOT NULL,
          created_at  INTEGER NOT NULL,
          updated_at  INTEGER NOT NULL,
          CHECK ((root_key_id IS NULL) = (material IS NULL))
        );
        CREATE INDEX objects_type_state ON objects (object_type, state);
        CREATE INDEX objects_state ON objects (state);
        CREATE INDEX objects_owner ON objects (owner);

        -- Attribute names, interned: the index repeats a small integer instead of the name.
        CREATE TABLE attr_names (
          id   INTEGER PRIMARY KEY,
          name TEXT NOT NULL UNIQUE
        );

        -- The Locate index: one row per attribute instance of each object (seq = objects.seq).
        -- "key" has no declared type on purpose (BLOB affinity): values keep their storage
        -- class, so the text '5' never equals the integer 5. See src/keystore/attributes.ts.
        CREATE TABLE attr_index (
          seq      INTEGER NOT NULL,
          name_id  INTEGER NOT NULL,
          instance INTEGER NOT NULL,
          key,
          PRIMARY KEY (seq, name_id, instance)
        ) WITHOUT ROWID;
        CREATE INDEX attr_index_lookup ON attr_index (name_id, key, seq);

        -- The seq of rows removed by restore(uid, null), so that restoring them again puts them
        -- back at their old place in the Locate order.
        CREATE TABLE removed (
          uid TEXT PRIMARY KEY NOT NULL,
          seq INTEGER NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE root_keys (
          id            TEXT PRIMARY KEY NOT NULL,
          wrapped       BLOB NOT NULL,
          master_key_id TEXT NOT NULL,
          status        TEXT NOT NULL CHECK (status IN ('active', 'retired')),
          created_at    INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX root_keys_one_active ON root_keys (status) WHERE status = 'active';

        PRAGMA application_id = ${APPLICATION_ID};
      `,
  },
  {
    version: 2,
    name: 'version table (schema_migrations) and node heartbeats (nodes)',
    compatible: true,
    automatic: true,
    sql: VERSION_TABLE_AND_NODES_SQLITE,
  },
];

export const LATEST_SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

export const SCHEMA_VERSION_KEY = 'schema_version';

// ---------------------------------------------------------------------------------------------
// Shared by both backends

export class PendingMigrationError extends Error {
  override readonly name = 'PendingMigrationError';
}

/** SHA-256 (hex) of a migration's SQL, as recorded in schema_migrations. */
export function migrationChecksum(m: Pick<Migration, 'sql'>): string {
  return createHash('sha256').update(m.sql, 'utf8').digest('hex');
}

/** Checks that a list is numbered 1..n; returns n. */
export function checkMigrationList(migrations: readonly Migration[]): number {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration list is not numbered 1..n (entry ${i} has version ${m.version})`);
    if (m.automatic && !m.compatible) throw new Error(`migration ${m.version} is automatic but not compatible`);
  });
  return migrations.length;
}

/** A row of schema_migrations. */
export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
  compatible: boolean;
  /** ms since the epoch; null: applied before the version table existed. */
  appliedAt: number | null;
  appliedBy: string | null;
  kmipdVersion: string | null;
}

export interface MigrationEntry {
  version: number;
  name: string;
  checksum: string;
  compatible: boolean;
  automatic: boolean;
  /** applied; pending (this build knows it, the store does not have it); newer (the store has it, this build does not). */
  status: 'applied' | 'pending' | 'newer';
  appliedAt?: string | null;
  appliedBy?: string | null;
  kmipdVersion?: string | null;
  /** The recorded checksum differs from this build's SQL (a released migration was edited). */
  checksumMismatch?: boolean;
}

/**
 * - new: no schema yet (created at the newest version on first start)
 * - current: at the newest version this build knows
 * - pending: older; `kmipd migrate` brings it up to date (automatic-only pending: opened anyway)
 * - compatible-newer: one version ahead, that migration compatible: this build serves it
 * - newer: ahead beyond the compatibility window: this build refuses it
 */
export type SchemaState = 'new' | 'current' | 'pending' | 'compatible-newer' | 'newer';

export interface SchemaReport {
  backend: string;
  /** The store's schema version (0: none). */
  current: number;
  /** The newest version this build knows. */
  known: number;
  state: SchemaState;
  /** Every migration this build knows, then those only the store knows. */
  entries: MigrationEntry[];
  /** Why this build cannot serve the store as it is (pending or newer states); undefined when it can. */
  problem?: string;
}

/** Builds the report from the store's version and schema_migrations rows. */
export function buildSchemaReport(backend: string, where: string, current: number, migrations: readonly Migration[], rows: readonly AppliedMigration[]): SchemaReport {
  const known = checkMigrationList(migrations);
  const byVersion = new Map(rows.map((r) => [r.version, r]));
  const entries: MigrationEntry[] = migrations.map((m) => {
    const r = byVersion.get(m.version);
    const e: MigrationEntry = {
      version: m.version,
      name: m.name,
      checksum: migrationChecksum(m),
      compatible: m.compatible,
      automatic: m.automatic === true,
      status: m.version <= current ? 'applied' : 'pending',
    };
    if (r !== undefined) {
      e.appliedAt = r.appliedAt === null ? null : new Date(r.appliedAt).toISOString();
      e.appliedBy = r.appliedBy;
      e.kmipdVersion = r.kmipdVersion;
      if (r.checksum !== e.checksum) e.checksumMismatch = true;
    }
    return e;
  });
  for (const r of rows) {
    if (r.version <= known) continue;
    entries.push({
      version: r.version,
      name: r.name,
      checksum: r.checksum,
      compatible: r.compatible,
      automatic: false,
      status: 'newer',
      appliedAt: r.appliedAt === null ? null : new Date(r.appliedAt).toISOString(),
      appliedBy: r.appliedBy,
      kmipdVersion: r.kmipdVersion,
    });
  }
  const report: SchemaReport = { backend, current, known, state: 'current', entries };
  if (current === 0) report.state = 'new';
  else if (current < known) {
    report.state = 'pending';
    const pending = migrations.filter((m) => m.version > current);
    if (!pending.every((m) => m.automatic)) {
      report.problem =
        `${where} is at schema version ${current}; this kmipd needs version ${known} ` +
        `(pending: ${pending.map((m) => `${m.version} "${m.name}"`).join(', ')}). ` +
        'Run `kmipd migrate --data DIR` (see what it would do with --dry-run), or start with `kmipd serve --migrate`; nothing was changed';
    }
  } else if (current > known) {
    const next = byVersion.get(known + 1);
    if (current === known + 1 && next?.compatible === true) report.state = 'compatible-newer';
    else {
      report.state = 'newer';
      const why =
        current > known + 1
          ? `more than one version ahead of this kmipd (${known})`
          : `ahead of this kmipd (${known}) by migration ${known + 1}${next ? ` "${next.name}"` : ''}, which older code cannot serve`;
      report.problem =
        `${where} has schema version ${current}, newer than this kmipd supports: ${why}. ` +
        'It was migrated by a newer kmipd; upgrade this node (the keystore was not modified)';
    }
  }
  return report;
}

/** The migrations still to apply to reach the newest version of `migrations`. */
export function pendingMigrations(current: number, migrations: readonly Migration[]): Migration[] {
  return migrations.filter((m) => m.version > current);
}

/** The schema_migrations rows to insert after applying `applied` to a store: also the history before the table existed. */
export function historyRows(
  target: number,
  migrations: readonly Migration[],
  present: ReadonlySet<number>,
  applied: ReadonlySet<number>,
  by: AppliedBy,
  now: number,
): AppliedMigration[] {
  const out: AppliedMigration[] = [];
  for (const m of migrations) {
    if (m.version > target || present.has(m.version)) continue;
    const now_ = applied.has(m.version);
    out.push({
      version: m.version,
      name: m.name,
      checksum: migrationChecksum(m),
      compatible: m.compatible,
      appliedAt: now_ ? now : null,
      appliedBy: now_ ? `${by.node}@${by.host}` : null,
      kmipdVersion: now_ ? by.version : null,
    });
  }
  return out;
}

export interface MigrateResult {
  from: number;
  to: number;
  /** The migrations applied by this call, in order. */
  applied: { version: number; name: string }[];
}

// ---------------------------------------------------------------------------------------------
// SQLite

/**
 * Reads the schema version without writing anything: 0 for an empty database (no tables).
 * Throws UnsupportedSchemaError for a database that is not a kmipd database.
 */
export function readSchemaVersion(db: Database.Database): number {
  const appId = db.pragma('application_id', { simple: true });
  const hasMeta = db.prepare(`SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'`).get() !== undefined;
  if (!hasMeta) {
    const anything = db.prepare(`SELECT 1 FROM sqlite_schema LIMIT 1`).get() !== undefined;
    if (!anything && appId === 0) return 0;
    throw new UnsupportedSchemaError(`${db.name} is not a kmipd database (it has tables, but no kmipd schema version)`);
  }
  if (appId !== APPLICATION_ID) {
    throw new UnsupportedSchemaError(`${db.name} is not a kmipd database (application_id ${String(appId)})`);
  }
  const row = db.prepare(`SELECT value FROM meta WHERE key = ?`).get(SCHEMA_VERSION_KEY) as { value: string } | undefined;
  const v = row === undefined ? NaN : Number(row.value);
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new UnsupportedSchemaError(`${db.name} has an unreadable schema version (${row?.value ?? 'none'})`);
  }
  return v;
}

interface AppliedRowSqlite {
  version: number;
  name: string;
  checksum: string;
  compatible: number;
  applied_at: number | null;
  applied_by: string | null;
  kmipd_version: string | null;
}

function hasTable(db: Database.Database, name: string): boolean {
  return db.prepare(`SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?`).get(name) !== undefined;
}

function appliedRows(db: Database.Database): AppliedMigration[] {
  if (!hasTable(db, 'schema_migrations')) return [];
  return (db.prepare('SELECT * FROM schema_migrations ORDER BY version').all() as AppliedRowSqlite[]).map((r) => ({
    version: r.version,
    name: r.name,
    checksum: r.checksum,
    compatible: r.compatible === 1,
    appliedAt: r.applied_at,
    appliedBy: r.applied_by,
    kmipdVersion: r.kmipd_version,
  }));
}

/** The schema report of a SQLite keystore; reads only. */
export function sqliteSchemaReport(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): SchemaReport {
  const current = readSchemaVersion(db);
  return buildSchemaReport('sqlite', db.name, current, migrations, current === 0 ? [] : appliedRows(db));
}

/**
 * Refuses, writing nothing, a database this build cannot open: newer beyond the compatibility
 * window (UnsupportedSchemaError), or with pending migrations when `pending` is 'refuse' and
 * not all of them are automatic (PendingMigrationError); one compatible version ahead only when
 * `compatibleNewer`. Call this before anything that writes (pragmas included). Returns the report.
 */
export function assertSupportedSchema(
  db: Database.Database,
  migrations: readonly Migration[] = MIGRATIONS,
  pending: PendingMode = 'apply',
  /** Accept a database one compatible version ahead (serving); readers that copy everything (backups) do not. */
  compatibleNewer = false,
): SchemaReport {
  const r = sqliteSchemaReport(db, migrations);
  if (r.state === 'newer') throw new UnsupportedSchemaError(r.problem);
  if (r.state === 'compatible-newer' && !compatibleNewer) {
    throw new UnsupportedSchemaError(
      `${db.name} has schema version ${r.current}, newer than this kmipd (${r.known}): it was migrated by a newer kmipd; use that kmipd for this (the database was not modified)`,
    );
  }
  if (r.state === 'pending' && pending === 'refuse' && r.problem !== undefined) throw new PendingMigrationError(r.problem);
  return r;
}

/**
 * Brings the database to the newest version of `migrations` in one IMMEDIATE transaction
 * (nothing to do for a database at or compatibly ahead of it). Honours `pending` as
 * assertSupportedSchema does.
 */
export function migrate(
  db: Database.Database,
  migrations: readonly Migration[] = MIGRATIONS,
  opts: { pending?: PendingMode; by?: AppliedBy } = {},
): MigrateResult {
  const latest = checkMigrationList(migrations);
  const first = assertSupportedSchema(db, migrations, opts.pending ?? 'apply', true);
  if (first.current >= latest) return { from: first.current, to: first.current, applied: [] };
  const by = opts.by ?? defaultAppliedBy();
  let result: MigrateResult = { from: first.current, to: first.current, applied: [] };
  const run = db.transaction(() => {
    // Read again under the write lock: another process may have migrated meanwhile.
    const current = assertSupportedSchema(db, migrations, opts.pending ?? 'apply', true).current;
    if (current >= latest) {
      result = { from: current, to: current, applied: [] };
      return;
    }
    const todo = pendingMigrations(current, migrations);
    for (const m of todo) {
      try {
        db.exec(m.sql);
      } catch (e) {
        throw new Error(`schema migration ${m.version} (${m.name}) failed: ${(e as Error).message}; the keystore stays at version ${current}`, { cause: e });
      }
    }
    db.prepare(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(SCHEMA_VERSION_KEY, String(latest));
    if (hasTable(db, 'schema_migrations')) {
      const present = new Set((db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[]).map(Number));
      const ins = db.prepare(
        'INSERT INTO schema_migrations (version, name, checksum, compatible, applied_at, applied_by, kmipd_version) VALUES (?, ?, ?, ?, ?, ?, ?)',
      );
      for (const r of historyRows(latest, migrations, present, new Set(todo.map((m) => m.version)), by, Date.now())) {
        ins.run(r.version, r.name, r.checksum, r.compatible ? 1 : 0, r.appliedAt, r.appliedBy, r.kmipdVersion);
      }
    }
    result = { from: current, to: latest, applied: todo.map((m) => ({ version: m.version, name: m.name })) };
  });
  run.immediate();
  return result;
}
