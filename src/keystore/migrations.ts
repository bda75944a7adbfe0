/**
 * Schema migrations of the SQLite keystore.
 *
 * The schema version lives in `meta.schema_version`. A migration is applied once, in order; all
 * pending migrations run in one IMMEDIATE transaction together with the version bump, so a crash
 * or a failing step leaves the database exactly at its old version. A database whose version is
 * above the newest migration known to this build was written by a newer kmipd: it is refused
 * before anything is written to it.
 *
 * Rules for adding a migration: append `{ version: n + 1, ... }`, never edit a released one, keep
 * `up` to plain SQL that works inside a transaction (no VACUUM, no journal_mode changes).
 */
import type Database from 'better-sqlite3';
import { UnsupportedSchemaError } from './types.js';

export interface Migration {
  version: number;
  description: string;
  up(db: Database.Database): void;
}

/** "KMIP" in ASCII: marks the file as a kmipd database (PRAGMA application_id). */
export const APPLICATION_ID = 0x4b4d4950;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'initial schema: meta, objects, attribute names and index, tombstones, root keys',
    up(db) {
      db.exec(`
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
      `);
      db.pragma(`application_id = ${APPLICATION_ID}`);
    },
  },
];

export const LATEST_SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

export const SCHEMA_VERSION_KEY = 'schema_version';

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

function checkList(migrations: readonly Migration[]): number {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration list is not numbered 1..n (entry ${i} has version ${m.version})`);
  });
  return migrations.length;
}

/**
 * Refuses (UnsupportedSchemaError) a database newer than `migrations` knows, writing nothing.
 * Call this before anything that writes (pragmas included).
 */
export function assertSupportedSchema(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number {
  const latest = checkList(migrations);
  const v = readSchemaVersion(db);
  if (v > latest) {
    throw new UnsupportedSchemaError(
      `${db.name} has schema version ${v}, newer than this kmipd supports (${latest}): ` +
        'it was written by a newer kmipd; upgrade kmipd (the database was not modified)',
    );
  }
  return v;
}

/**
 * Brings the database to the newest version of `migrations` in one transaction.
 * Returns the versions before and after.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): { from: number; to: number } {
  const latest = checkList(migrations);
  const from = assertSupportedSchema(db, migrations);
  if (from === latest) return { from, to: from };
  const run = db.transaction(() => {
    // Read again under the write lock: another process may have migrated meanwhile.
    const current = assertSupportedSchema(db, migrations);
    for (const m of migrations) {
      if (m.version <= current) continue;
      try {
        m.up(db);
      } catch (e) {
        throw new Error(`schema migration ${m.version} (${m.description}) failed: ${(e as Error).message}`, { cause: e });
      }
    }
    db.prepare(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(
      SCHEMA_VERSION_KEY,
      String(latest),
    );
  });
  run.immediate();
  return { from, to: latest };
}
