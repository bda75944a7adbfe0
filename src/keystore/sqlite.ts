/**
 * The SQLite keystore (better-sqlite3).
 *
 * Durability: WAL journal. A write method's promise resolves only once the transaction holding it
 * is committed AND the WAL holding that commit has been fdatasync'ed: acknowledged means on disk.
 * SQLite itself runs with synchronous=NORMAL (COMMIT writes the WAL frames into the page cache
 * without an fsync; checkpoints still sync the WAL before copying it and the database after);
 * this module then flushes the WAL with fdatasync(2) on libuv's thread pool, off the event loop,
 * and settles the group's promises when it returns. That is synchronous=FULL's guarantee without
 * its cost: with FULL, the fsync ran inside COMMIT, on the event loop, and stalled every
 * connection of the server for its duration (0.1 ms on a local SSD, 5-10 ms on a SAN). A crash or
 * power loss before the flush loses only unacknowledged transactions; SQLite's WAL checksums
 * discard a partly written one at recovery. While a flush runs, the next group commits and waits
 * for the next flush (one flush at a time; each covers everything committed before it started).
 * A failed flush is fatal for writing (Linux may drop the dirty pages and report the error only
 * once: retrying could acknowledge lost data): the group is rejected and every later write too,
 * until the server is restarted (reads still work). Readers on the event loop may see a
 * transaction between its COMMIT and its flush; its writer is not answered until the flush.
 *
 * Group commit: write methods do not touch the database themselves. They validate and encode
 * their row at once (so bad input fails early and alone), then queue a job. The queue is flushed
 * on setImmediate: every job queued until then runs in one IMMEDIATE transaction, each inside its
 * own SAVEPOINT, so a job that fails (duplicate uid, revision conflict, ...) is rolled back to its
 * savepoint and rejects alone while the others commit. One fsync then covers the whole group.
 *
 * better-sqlite3 is synchronous: a group's statements run on the event loop (the WAL flush does
 * not). Reads run directly, between groups, and therefore only ever see committed data.
 *
 * No key material reaches this module in plaintext (WrappedMaterial is sealed by the envelope),
 * and nothing here logs values.
 */
import { asBuffer, checkRootKey, rootKeyBatch, rowToObject, type ObjectRow, type RootKeyBatch } from './rows.js';
import Database from 'better-sqlite3';
import { closeSync, fdatasync, fstatSync, fsyncSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { encodeAttributes, filterKey, indexEntries, rangeBound, type IndexKey } from './attributes.js';
import { KeyStoreUnavailableError } from './unavailable.js';
import { Checkpointer } from './checkpointer.js';
import { fsyncDir } from '../durable.js';
import {
  assertSupportedSchema,
  migrate,
  sqliteSchemaReport,
  SCHEMA_VERSION_KEY,
  type AppliedBy,
  type MigrateResult,
  type Migration,
  MIGRATIONS,
  type PendingMode,
  type SchemaReport,
} from './migrations.js';
import type { NodeRegistry, NodeRow, SchemaAware } from './nodes.js';
import {
  ConcurrentModificationError,
  DuplicateObjectError,
  KeyStoreClosedError,
  type KeyStore,
  type LocateQuery,
  type RootKeyRecord,
  type StoredObject,
} from './types.js';

/** At most this many queued writes share one transaction (bounds the time the loop is held). */
const MAX_GROUP = 2000;
/** Prepared Locate statements kept, keyed by their SQL. */
const LOCATE_CACHE = 256;
/** Object rows kept for get() (see #row): about 1-2 KB each. */
const ROW_CACHE = 4096;

export interface SqliteStoreOptions {
  /** The migrations this build knows (defaults to the real list; tests give older or newer ones). */
  migrations?: readonly Migration[];
  /**
   * Flushes the WAL file (an open descriptor) to disk; defaults to fdatasync(2) on the thread
   * pool. Tests wrap it to check that nothing is acknowledged before it returns.
   */
  flushWal?: (fd: number) => Promise<void>;
  /**
   * Pending migrations of an existing database: applied, or refused with PendingMigrationError
   * before anything is written (default 'refuse'). A new database is always created; automatic
   * migrations are always applied (see migrations.ts).
   */
  pending?: PendingMode;
  /** Recorded in schema_migrations for the migrations applied. */
  appliedBy?: AppliedBy;
  /**
   * Checkpoints on a worker thread instead of inside COMMIT on the event loop (checkpointer.ts):
   * for the long-running server. Short-lived commands keep SQLite's automatic checkpoints.
   */
  backgroundCheckpoints?: boolean;
  /** Told when background checkpoints stop working (the store falls back to SQLite's own). */
  onCheckpointFailure?: (why: string) => void;
}

/** SQLite's own automatic checkpoint threshold (pages), restored when background checkpoints fail. */
const AUTO_CHECKPOINT_PAGES = 1000;

/** fdatasync(2) on libuv's thread pool. */
function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}


interface RootKeyRow {
  id: string;
  wrapped: Buffer;
  master_key_id: string;
  status: string;
  created_at: number;
}

/** An object validated and encoded for storage, before it is queued. */
interface PreparedObject {
  uid: string;
  objectType: number;
  state: number;
  owner: string;
  attributes: Buffer;
  rootKeyId: string | null;
  material: Buffer | null;
  revision: number;
  createdAt: number;
  updatedAt: number;
  index: { nameId: number; instance: number; key: IndexKey }[];
}

interface Job {
  run(): unknown;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/** A committed job waiting for the WAL flush that makes it durable. */
interface Committed {
  job: Job;
  value: unknown;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

function isUint32(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}


/**
 * Validates and encodes an object; throws TypeError/AttributeEncodingError/TtlvError.
 * `nameId` gives the interned id of an attribute name.
 */
function prepareObject(obj: StoredObject, nameId: (name: string) => number, revision = obj.revision): PreparedObject {
  if (typeof obj !== 'object' || obj === null) throw new TypeError('object expected');
  if (typeof obj.uid !== 'string' || obj.uid.length === 0) throw new TypeError('uid must be a non-empty string');
  if (!isUint32(obj.objectType)) throw new TypeError(`object ${obj.uid}: objectType must be a uint32`);
  if (!isUint32(obj.state)) throw new TypeError(`object ${obj.uid}: state must be a uint32`);
  if (typeof obj.owner !== 'string') throw new TypeError(`object ${obj.uid}: owner must be a string`);
  if (!Number.isSafeInteger(revision)) throw new TypeError(`object ${obj.uid}: revision must be an integer`);
  if (!Number.isSafeInteger(obj.createdAt) || !Number.isSafeInteger(obj.updatedAt)) {
    throw new TypeError(`object ${obj.uid}: createdAt/updatedAt must be integer milliseconds`);
  }
  if (!Array.isArray(obj.attributes)) throw new TypeError(`object ${obj.uid}: attributes must be an array`);
  let rootKeyId: string | null = null;
  let material: Buffer | null = null;
  if (obj.material !== null) {
    const m = obj.material;
    if (typeof m !== 'object' || typeof m.rootKeyId !== 'string' || !(m.blob instanceof Uint8Array)) {
      throw new TypeError(`object ${obj.uid}: material must be null or { rootKeyId, blob }`);
    }
    rootKeyId = m.rootKeyId;
    material = Buffer.from(asBuffer(m.blob)); // a copy: the row must not change if the caller's buffer does
  }
  return {
    uid: obj.uid,
    objectType: obj.objectType,
    state: obj.state,
    owner: obj.owner,
    attributes: encodeAttributes(obj.attributes),
    rootKeyId,
    material,
    revision,
    createdAt: obj.createdAt,
    updatedAt: obj.updatedAt,
    index: indexEntries(obj.attributes).map((e) => ({ nameId: nameId(e.name), instance: e.instance, key: e.key })),
  };
}



/** Creates the database file with mode 0600 if it does not exist yet (and makes the entry durable). */
function createPrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw e;
  }
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  fsyncDir(dirname(path));
}


/**
 * Opens (creating if missing, mode 0600) the keystore at `path`, applying migrations as
 * `options.pending` says (see migrations.ts). Rejects, leaving the file untouched, with
 * UnsupportedSchemaError when the database was written by a newer kmipd beyond the
 * compatibility window or is not a kmipd database, and with PendingMigrationError when it needs
 * `kmipd migrate` first.
 */
export async function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Promise<SqliteKeyStore> {
  const file = resolve(path);
  createPrivateFile(file);
  const db = new Database(file, { fileMustExist: true });
  let migrated: MigrateResult;
  try {
    db.pragma('busy_timeout = 5000');
    // Before anything writes (journal_mode does): refuse a newer, foreign or not yet migrated
    // database untouched.
    const migrations = options.migrations ?? MIGRATIONS;
    const pending = options.pending ?? 'refuse';
    assertSupportedSchema(db, migrations, pending, true);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`${file}: cannot switch to WAL mode (journal_mode is ${String(mode)})`);
    // NORMAL: COMMIT does not fsync; the store flushes the WAL itself, off the event loop, before
    // it acknowledges anything (see the top of this file).
    db.pragma('synchronous = NORMAL');
    // macOS: fsync does not reach the platter without F_FULLFSYNC (no effect elsewhere).
    db.pragma('fullfsync = ON');
    db.pragma('checkpoint_fullfsync = ON');
    db.pragma('foreign_keys = OFF');
    db.pragma('trusted_schema = OFF');
    // Each job of a group commit runs in its own SAVEPOINT, whose journal holds the original image
    // of every page the job changes. Kept in memory rather than in a temporary file: a third of a
    // durable Create's CPU went to those file writes, and page images (attributes, wrapped keys)
    // have no business in /var/tmp. A savepoint's journal is one job's pages: small.
    db.pragma('temp_store = MEMORY');
    migrated = migrate(db, migrations, { pending, ...(options.appliedBy ? { by: options.appliedBy } : {}) });
    // Keep planner statistics fresh, bounded in cost (SQLite's recommended use on open).
    db.pragma('analysis_limit = 1000');
    db.pragma('optimize = 0x10002');
  } catch (e) {
    db.close();
    throw e;
  }
  const store = new SqliteKeyStore(db, file, options.migrations ?? MIGRATIONS, options.flushWal ?? fdatasyncAsync);
  store.migrated = migrated;
  if (options.backgroundCheckpoints) {
    const fallBack = (why: string): void => {
      // SQLite checkpoints inside COMMIT again: slower, but the log stays bounded.
      if (!store.closed) db.pragma(`wal_autocheckpoint = ${AUTO_CHECKPOINT_PAGES}`);
      options.onCheckpointFailure?.(why);
    };
    db.pragma('wal_autocheckpoint = 0');
    try {
      store.checkpointer = await Checkpointer.start(file, { onFailure: fallBack });
    } catch (e) {
      fallBack(`cannot start background checkpoints: ${(e as Error).message}`);
    }
  }
  return store;
}

/** The node heartbeat rows of an SQLite keystore (none before the nodes table exists). */
export function sqliteNodes(db: Database.Database): { now: number; nodes: NodeRow[] } {
  const has = db.prepare(`SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'nodes'`).get() !== undefined;
  if (!has) return { now: Date.now(), nodes: [] };
  const rows = db.prepare('SELECT node_id, state, heartbeat_at, info FROM nodes ORDER BY node_id').all() as {
    node_id: string;
    state: string;
    heartbeat_at: number;
    info: string;
  }[];
  return {
    now: Date.now(),
    nodes: rows.map((r) => ({ nodeId: r.node_id, state: r.state === 'stopped' ? 'stopped' : 'serving', heartbeatAt: r.heartbeat_at, info: r.info })),
  };
}

export class SqliteKeyStore implements KeyStore, NodeRegistry, SchemaAware {
  readonly backend = 'sqlite';
  readonly path: string;
  readonly #migrations: readonly Migration[];
  /** What opening the store migrated (from = to when nothing). */
  migrated: MigrateResult | undefined;
  /** Background checkpoints (openSqliteStore's backgroundCheckpoints), when they run. */
  checkpointer: Checkpointer | undefined;

  readonly #db: Database.Database;
  #queue: Job[] = [];
  #scheduled: NodeJS.Immediate | undefined;
  #closed = false;
  #commits = 0;
  readonly #flushWal: (fd: number) => Promise<void>;
  /** Committed jobs waiting for the next WAL flush. */
  #unflushed: Committed[] = [];
  /** The WAL flush in progress, if any. */
  #flushing: Promise<void> | undefined;
  /** Descriptor of the WAL file (opened at the first flush) and its inode. */
  #walFd: number | undefined;
  #walIno = -1;
  /** Set when a WAL flush failed: nothing more is acknowledged (see the top of this file). */
  #flushError: Error | undefined;
  readonly #locateCache = new Map<string, Database.Statement>();
  /** Rows get() read, by uid, least recently used first; valid while #dataVersion holds (see #row). */
  readonly #rows = new Map<string, ObjectRow>();
  #dataVersion: unknown;
  /** Interned attribute names (ids never change once committed). */
  readonly #nameIds = new Map<string, number>();

  readonly #s: {
    begin: Database.Statement;
    commit: Database.Statement;
    rollback: Database.Statement;
    savepoint: Database.Statement;
    release: Database.Statement;
    rollbackTo: Database.Statement;
    getByUid: Database.Statement;
    dataVersion: Database.Statement;
    seqRev: Database.Statement;
    insert: Database.Statement;
    update: Database.Statement;
    deleteObject: Database.Statement;
    insertIndex: Database.Statement;
    nameId: Database.Statement;
    addName: Database.Statement;
    deleteIndex: Database.Statement;
    getRemoved: Database.Statement;
    putRemoved: Database.Statement;
    deleteRemoved: Database.Statement;
    count: Database.Statement;
    rootKeys: Database.Statement;
    countByRootKey: Database.Statement;
    retireActive: Database.Statement;
    putRootKey: Database.Statement;
    getMeta: Database.Statement;
    setMeta: Database.Statement;
  };

  /** Use openSqliteStore. */
  constructor(
    db: Database.Database,
    path: string,
    migrations: readonly Migration[] = MIGRATIONS,
    flushWal: (fd: number) => Promise<void> = fdatasyncAsync,
  ) {
    this.#db = db;
    this.path = path;
    this.#migrations = migrations;
    this.#flushWal = flushWal;
    const p = (sql: string): Database.Statement => db.prepare(sql);
    this.#s = {
      begin: p('BEGIN IMMEDIATE'),
      commit: p('COMMIT'),
      rollback: p('ROLLBACK'),
      savepoint: p('SAVEPOINT job'),
      release: p('RELEASE job'),
      rollbackTo: p('ROLLBACK TO job'),
      getByUid: p('SELECT * FROM objects WHERE uid = ?'),
      dataVersion: p('PRAGMA data_version').pluck(),
      seqRev: p('SELECT seq, revision FROM objects WHERE uid = ?'),
      insert: p(
        `INSERT INTO objects (seq, uid, object_type, state, owner, attributes, root_key_id, material, revision, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      update: p(
        `UPDATE objects SET object_type = ?, state = ?, owner = ?, attributes = ?, root_key_id = ?, material = ?,
           revision = ?, created_at = ?, updated_at = ? WHERE seq = ?`,
      ),
      deleteObject: p('DELETE FROM objects WHERE seq = ?'),
      insertIndex: p('INSERT INTO attr_index (seq, name_id, instance, key) VALUES (?, ?, ?, ?)'),
      nameId: p('SELECT id FROM attr_names WHERE name = ?').pluck(),
      addName: p('INSERT INTO attr_names (name) VALUES (?) ON CONFLICT (name) DO NOTHING'),
      deleteIndex: p('DELETE FROM attr_index WHERE seq = ?'),
      getRemoved: p('SELECT seq FROM removed WHERE uid = ?'),
      putRemoved: p('INSERT INTO removed (uid, seq) VALUES (?, ?) ON CONFLICT (uid) DO UPDATE SET seq = excluded.seq'),
      deleteRemoved: p('DELETE FROM removed WHERE uid = ?'),
      count: p(
        'SELECT object_type AS objectType, state, count(*) AS n FROM objects GROUP BY object_type, state ORDER BY object_type, state',
      ),
      rootKeys: p('SELECT * FROM root_keys ORDER BY created_at, id'),
      countByRootKey: p(
        'SELECT root_key_id AS rootKeyId, count(*) AS n FROM objects WHERE root_key_id IS NOT NULL GROUP BY root_key_id ORDER BY root_key_id',
      ),
      retireActive: p(`UPDATE root_keys SET status = 'retired' WHERE status = 'active' AND id <> ?`),
      putRootKey: p(
        `INSERT INTO root_keys (id, wrapped, master_key_id, status, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET wrapped = excluded.wrapped, master_key_id = excluded.master_key_id,
           status = excluded.status, created_at = excluded.created_at`,
      ),
      getMeta: p('SELECT value FROM meta WHERE key = ?'),
      setMeta: p('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
    };
  }

  /** close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Transactions committed by the write queue since open (for metrics and tests). */
  get commits(): number {
    return this.#commits;
  }

  // ---- write path ---------------------------------------------------------------------------

  /** The id of an attribute name as stored, or undefined when no object ever had it. */
  #lookupName(name: string): number | undefined {
    let id = this.#nameIds.get(name);
    if (id === undefined) {
      id = this.#s.nameId.get(name) as number | undefined;
      if (id !== undefined) this.#nameIds.set(name, id);
    }
    return id;
  }

  /**
   * The id of an attribute name, allocated if new. A new name is committed at once, in its own
   * small transaction outside the group (never inside one: a flush runs synchronously, so no
   * transaction is open here). Names are a small, slowly growing set, so this is rare; an id
   * whose object then fails to insert is simply unused.
   */
  readonly #internName = (name: string): number => {
    let id = this.#lookupName(name);
    if (id === undefined) {
      if (this.#db.inTransaction) throw new Error('internal: attribute name allocated inside a transaction');
      this.#s.addName.run(name);
      id = this.#s.nameId.get(name) as number;
      this.#nameIds.set(name, id);
    }
    return id;
  };

  /** Queues a job for the next group commit; resolves with its result once that commit is durable. */
  #enqueue<R>(run: () => R): Promise<R> {
    if (this.#closed) return Promise.reject(new KeyStoreClosedError('keystore is closed'));
    if (this.#flushError) return Promise.reject(this.#flushError);
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      this.#scheduled ??= setImmediate(() => this.#flush());
    });
  }

  /** Runs every queued job, in groups of at most MAX_GROUP per transaction, then settles them. */
  #flush(): void {
    this.#scheduled = undefined;
    while (this.#queue.length > 0) {
      const jobs = this.#queue.splice(0, MAX_GROUP);
      const outcomes = this.#runGroup(jobs);
      jobs.forEach((j, i) => {
        const o = outcomes[i]!;
        // A failed job changed nothing (rolled back to its savepoint): answered at once.
        if (o.ok) this.#unflushed.push({ job: j, value: o.value });
        else j.reject(o.error);
      });
    }
    this.#startWalFlush();
  }

  /**
   * Flushes the WAL unless a flush is running already (then the one after it covers these
   * commits: it starts when the running one returns). Settles the committed jobs it covers.
   */
  #startWalFlush(): void {
    if (this.#flushing !== undefined || this.#unflushed.length === 0) return;
    const batch = this.#unflushed;
    this.#unflushed = [];
    const settle = (error: Error | undefined): void => {
      for (const c of batch) {
        if (error) c.job.reject(error);
        else c.job.resolve(c.value);
      }
    };
    if (this.#flushError) {
      settle(this.#flushError);
      return;
    }
    let fd: number;
    try {
      fd = this.#walDescriptor();
    } catch (e) {
      this.#failFlush(e);
      settle(this.#flushError);
      return;
    }
    this.#flushing = this.#flushWal(fd).then(
      () => {
        settle(undefined);
        this.checkpointer?.committed();
      },
      (e: unknown) => {
        this.#failFlush(e);
        settle(this.#flushError);
      },
    ).finally(() => {
      this.#flushing = undefined;
      this.#startWalFlush();
    });
  }

  #failFlush(e: unknown): void {
    this.#flushError ??= new KeyStoreUnavailableError(
      `cannot flush the keystore's write-ahead log ${this.path}-wal to disk (${(e as Error).message}); ` +
        'nothing more is acknowledged: restart the server once the disk is healthy',
      { cause: e },
    );
  }

  /**
   * The WAL file's descriptor. SQLite keeps the file while a connection (ours) is open, and
   * truncates it in place; it is reopened should its inode ever change. A WAL file seen for the
   * first time also has its directory entry flushed.
   */
  #walDescriptor(): number {
    const path = `${this.path}-wal`;
    const ino = statSync(path).ino;
    if (this.#walFd !== undefined && ino === this.#walIno) return this.#walFd;
    if (this.#walFd !== undefined) closeSync(this.#walFd);
    this.#walFd = undefined;
    const fd = openSync(path, 'r');
    this.#walIno = fstatSync(fd).ino;
    this.#walFd = fd;
    fsyncDir(dirname(this.path));
    return fd;
  }

  #runGroup(jobs: Job[]): Outcome[] {
    // Whatever this group changes, get() reads afresh afterwards.
    this.#rows.clear();
    const db = this.#db;
    const s = this.#s;
    const out: Outcome[] = [];
    /** Index of the first job of the transaction in progress. */
    let txStart = 0;
    const failSince = (from: number, error: unknown): void => {
      for (let j = from; j < jobs.length; j++) {
        if (out[j] === undefined || out[j]!.ok) out[j] = { ok: false, error };
      }
    };
    try {
      s.begin.run();
      for (let i = 0; i < jobs.length; i++) {
        s.savepoint.run();
        try {
          out[i] = { ok: true, value: jobs[i]!.run() };
          s.release.run();
        } catch (error) {
          out[i] = { ok: false, error };
          if (db.inTransaction) {
            s.rollbackTo.run();
            s.release.run();
          } else {
            // SQLite rolled the whole transaction back (e.g. SQLITE_FULL): the earlier jobs of
            // this transaction are lost too. Fail them, and carry on with a new transaction.
            const lost = new Error(`transaction rolled back: ${(error as Error).message}`, { cause: error });
            for (let j = txStart; j < i; j++) if (out[j]!.ok) out[j] = { ok: false, error: lost };
            txStart = i + 1;
            s.begin.run();
          }
        }
      }
      s.commit.run();
      this.#commits++;
    } catch (error) {
      // BEGIN or COMMIT failed: nothing of this transaction is durable.
      if (db.inTransaction) {
        try {
          s.rollback.run();
        } catch {
          /* the connection rolled back already */
        }
      }
      failSince(txStart, error);
    }
    return out;
  }

  insert(obj: StoredObject): Promise<void> {
    let row: PreparedObject;
    try {
      row = prepareObject(obj, this.#internName);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#enqueue(() => {
      if (this.#s.seqRev.get(row.uid) !== undefined) throw new DuplicateObjectError(`object ${row.uid} exists already`);
      this.#insertRow(row, null);
    });
  }

  update(obj: StoredObject, expectedRevision: number): Promise<StoredObject> {
    let row: PreparedObject;
    try {
      if (!Number.isSafeInteger(expectedRevision)) throw new TypeError('expectedRevision must be an integer');
      row = prepareObject(obj, this.#internName, expectedRevision + 1);
    } catch (e) {
      return Promise.reject(e);
    }
    const result: StoredObject = { ...obj, revision: expectedRevision + 1 };
    return this.#enqueue(() => {
      const cur = this.#s.seqRev.get(row.uid) as { seq: number; revision: number } | undefined;
      if (cur === undefined) throw new ConcurrentModificationError(`object ${row.uid} does not exist (anymore)`);
      if (cur.revision !== expectedRevision) {
        throw new ConcurrentModificationError(
          `object ${row.uid} was modified concurrently (revision ${cur.revision}, expected ${expectedRevision})`,
        );
      }
      this.#updateRow(cur.seq, row);
      return result;
    });
  }

  restore(uid: string, obj: StoredObject | null): Promise<void> {
    let row: PreparedObject | null = null;
    try {
      if (typeof uid !== 'string' || uid.length === 0) throw new TypeError('uid must be a non-empty string');
      if (obj !== null) {
        if (obj.uid !== uid) throw new TypeError(`restore(${uid}) was given object ${String(obj.uid)}`);
        row = prepareObject(obj, this.#internName);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#enqueue(() => {
      const s = this.#s;
      const cur = s.seqRev.get(uid) as { seq: number } | undefined;
      if (row === null) {
        if (cur === undefined) return;
        s.deleteIndex.run(cur.seq);
        s.deleteObject.run(cur.seq);
        s.putRemoved.run(uid, cur.seq);
      } else if (cur !== undefined) {
        this.#updateRow(cur.seq, row);
      } else {
        const old = s.getRemoved.get(uid) as { seq: number } | undefined;
        this.#insertRow(row, old?.seq ?? null);
        if (old !== undefined) s.deleteRemoved.run(uid);
      }
    });
  }

  #insertRow(r: PreparedObject, seq: number | null): void {
    const s = this.#s;
    const info = s.insert.run(
      seq,
      r.uid,
      r.objectType,
      r.state,
      r.owner,
      r.attributes,
      r.rootKeyId,
      r.material,
      r.revision,
      r.createdAt,
      r.updatedAt,
    );
    const newSeq = info.lastInsertRowid;
    for (const e of r.index) s.insertIndex.run(newSeq, e.nameId, e.instance, e.key);
  }

  #updateRow(seq: number, r: PreparedObject): void {
    const s = this.#s;
    s.update.run(r.objectType, r.state, r.owner, r.attributes, r.rootKeyId, r.material, r.revision, r.createdAt, r.updatedAt, seq);
    s.deleteIndex.run(seq);
    for (const e of r.index) s.insertIndex.run(seq, e.nameId, e.instance, e.key);
  }

  putRootKey(r: RootKeyRecord): Promise<void> {
    try {
      checkRootKey(r);
    } catch (e) {
      return Promise.reject(e);
    }
    const wrapped = Buffer.from(asBuffer(r.wrapped));
    const { id, masterKeyId, status, createdAt } = r;
    return this.#enqueue(() => {
      if (status === 'active') this.#s.retireActive.run(id);
      this.#s.putRootKey.run(id, wrapped, masterKeyId, status, createdAt);
    });
  }

  putRootKeys(records: RootKeyRecord[], meta: Record<string, string> = {}): Promise<void> {
    let rows: RootKeyBatch['rows'];
    let metaRows: RootKeyBatch['metaRows'];
    try {
      ({ rows, metaRows } = rootKeyBatch(records, meta));
    } catch (e) {
      return Promise.reject(e);
    }
    // One job: its savepoint makes the records and the meta keys one all-or-nothing unit.
    return this.#enqueue(() => {
      for (const r of rows) {
        if (r.status === 'active') this.#s.retireActive.run(r.id);
        this.#s.putRootKey.run(r.id, r.wrapped, r.masterKeyId, r.status, r.createdAt);
      }
      for (const [k, v] of metaRows) this.#s.setMeta.run(k, v);
    });
  }

  setMeta(key: string, value: string): Promise<void> {
    if (typeof key !== 'string' || key.length === 0 || typeof value !== 'string') {
      return Promise.reject(new TypeError('meta key and value must be strings (key non-empty)'));
    }
    if (key === SCHEMA_VERSION_KEY) return Promise.reject(new Error(`meta key ${key} is managed by the keystore`));
    return this.#enqueue(() => {
      this.#s.setMeta.run(key, value);
    });
  }

  // ---- read path ----------------------------------------------------------------------------

  #read<R>(fn: () => R): Promise<R> {
    if (this.#closed) return Promise.reject(new KeyStoreClosedError('keystore is closed'));
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  get(uid: string): Promise<StoredObject | undefined> {
    return this.#read(() => {
      const r = this.#row(uid);
      if (r === undefined) return undefined;
      // Fresh buffers for the caller: nothing it does to them reaches the cached row.
      return rowToObject({ ...r, attributes: Buffer.from(r.attributes), material: r.material === null ? null : Buffer.from(r.material) });
    });
  }

  /** Cached rows: how many (tests). */
  get cachedRows(): number {
    return this.#rows.size;
  }

  /**
   * The row of `uid`, from the cache when it is still valid. Every write of this connection
   * empties the cache (#runGroup); writes of other connections (the admin CLI, another process)
   * change PRAGMA data_version, checked on every call, which empties it too. A Get thus costs a
   * pragma step and a map lookup instead of an index search, a row read and a copy out of SQLite:
   * the keystore read was the largest single part of a Get's CPU. Rows hold only what the
   * database holds (material sealed, never plaintext).
   */
  #row(uid: string): ObjectRow | undefined {
    const v = this.#s.dataVersion.get();
    if (v !== this.#dataVersion) {
      this.#rows.clear();
      this.#dataVersion = v;
    }
    const hit = this.#rows.get(uid);
    if (hit !== undefined) {
      this.#rows.delete(uid);
      this.#rows.set(uid, hit);
      return hit;
    }
    const r = this.#s.getByUid.get(uid) as ObjectRow | undefined;
    if (r === undefined) return undefined;
    this.#rows.set(uid, r);
    if (this.#rows.size > ROW_CACHE) this.#rows.delete(this.#rows.keys().next().value!);
    return r;
  }

  /** Builds the SQL and parameters of a Locate, or null when it can match nothing. */
  #locateSql(q: LocateQuery): { sql: string; params: unknown[] } | null {
    const where: string[] = [];
    const params: unknown[] = [];
    const inList = (col: string, values: readonly unknown[]): void => {
      where.push(`${col} IN (${values.map(() => '?').join(', ')})`);
      params.push(...values);
    };
    const filters = q.filters ?? [];
    // When an attribute filter drives the query, the owner/type/state indexes are disabled
    // (unary +): an attribute match is nearly always the more selective, and a planner that
    // picked "owner = x" for an owner of a million objects would scan them all.
    // ('absent' is no such match: it drops few objects.)
    const attrDriven = filters.some((f) => f.kind !== 'absent');
    const col = (c: string): string => (attrDriven ? `+o.${c}` : `o.${c}`);
    if (q.owners !== undefined) {
      if (q.owners.length === 0) return null;
      inList(col('owner'), q.owners);
    }
    if (q.objectTypes !== undefined) {
      if (q.objectTypes.length === 0) return null;
      inList(col('object_type'), q.objectTypes);
    }
    if (q.states !== undefined) {
      if (q.states.length === 0) return null;
      inList(col('state'), q.states);
    }
    for (const f of filters) {
      // A name no object ever had matches nothing (and is absent from every object).
      const nameId = this.#lookupName(f.name);
      if (nameId === undefined) {
        if (f.kind === 'absent') continue;
        return null;
      }
      switch (f.kind) {
        case 'equals':
          where.push('o.seq IN (SELECT seq FROM attr_index WHERE name_id = ? AND key = ?)');
          params.push(nameId, filterKey(f.value));
          break;
        case 'range': {
          const conds = ['name_id = ?'];
          params.push(nameId);
          if (f.from !== undefined) {
            conds.push('key >= ?');
            params.push(rangeBound(f.from));
          }
          if (f.to !== undefined) {
            conds.push('key <= ?');
            params.push(rangeBound(f.to));
          } else {
            // Every number sorts before every text: this keeps the range on numeric keys.
            conds.push(`key < ''`);
          }
          where.push(`o.seq IN (SELECT seq FROM attr_index WHERE ${conds.join(' AND ')})`);
          break;
        }
        case 'present':
          where.push('o.seq IN (SELECT seq FROM attr_index WHERE name_id = ?)');
          params.push(nameId);
          break;
        case 'absent':
          where.push('NOT EXISTS (SELECT 1 FROM attr_index a WHERE a.seq = o.seq AND a.name_id = ?)');
          params.push(nameId);
          break;
        default:
          throw new TypeError(`unknown filter kind ${String((f as { kind: unknown }).kind)}`);
      }
    }
    const offset = q.offset ?? 0;
    const limit = q.limit ?? -1;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new TypeError('offset must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < -1) throw new TypeError('limit must be a non-negative integer');
    if (limit === 0) return null;
    const sql =
      `SELECT o.uid FROM objects o` +
      (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
      ` ORDER BY o.seq LIMIT ? OFFSET ?`;
    params.push(limit, offset);
    return { sql, params };
  }

  #locateStatement(sql: string): Database.Statement {
    let st = this.#locateCache.get(sql);
    if (st === undefined) {
      st = this.#db.prepare(sql).pluck();
      if (this.#locateCache.size >= LOCATE_CACHE) {
        const oldest = this.#locateCache.keys().next();
        if (!oldest.done) this.#locateCache.delete(oldest.value);
      }
      this.#locateCache.set(sql, st);
    }
    return st;
  }

  locate(q: LocateQuery): Promise<string[]> {
    return this.#read(() => {
      const built = this.#locateSql(q);
      if (built === null) return [];
      return this.#locateStatement(built.sql).all(...built.params) as string[];
    });
  }

  /** The query plan of a Locate (EXPLAIN QUERY PLAN details), for diagnostics and tests. */
  explainLocate(q: LocateQuery): string[] {
    const built = this.#locateSql(q);
    if (built === null) return [];
    const rows = this.#db.prepare(`EXPLAIN QUERY PLAN ${built.sql}`).all(...built.params) as { detail: string }[];
    return rows.map((r) => r.detail);
  }

  count(): Promise<{ objectType: number; state: number; n: number }[]> {
    return this.#read(() => this.#s.count.all() as { objectType: number; state: number; n: number }[]);
  }

  rootKeys(): Promise<RootKeyRecord[]> {
    return this.#read(() =>
      (this.#s.rootKeys.all() as RootKeyRow[]).map((r) => ({
        id: r.id,
        wrapped: r.wrapped,
        masterKeyId: r.master_key_id,
        status: r.status === 'active' ? ('active' as const) : ('retired' as const),
        createdAt: r.created_at,
      })),
    );
  }

  countByRootKey(): Promise<{ rootKeyId: string; n: number }[]> {
    return this.#read(() => this.#s.countByRootKey.all() as { rootKeyId: string; n: number }[]);
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.#read(() => (this.#s.getMeta.get(key) as { value: string } | undefined)?.value);
  }

  // ---- schema and nodes (nodes.ts) ----------------------------------------------------------

  schemaReport(): Promise<SchemaReport> {
    return this.#read(() => sqliteSchemaReport(this.#db, this.#migrations));
  }

  putNode(nodeId: string, state: NodeRow['state'], info: string): Promise<void> {
    return this.#enqueue(() => {
      this.#db
        .prepare(
          `INSERT INTO nodes (node_id, state, heartbeat_at, info) VALUES (?, ?, ?, ?)
           ON CONFLICT (node_id) DO UPDATE SET state = excluded.state, heartbeat_at = excluded.heartbeat_at, info = excluded.info`,
        )
        .run(nodeId, state, Date.now(), info);
    });
  }

  removeNode(nodeId: string): Promise<void> {
    return this.#enqueue(() => {
      this.#db.prepare('DELETE FROM nodes WHERE node_id = ?').run(nodeId);
    });
  }

  listNodes(): Promise<{ now: number; nodes: NodeRow[] }> {
    return this.#read(() => sqliteNodes(this.#db));
  }

  /** Flushes pending writes (they resolve or reject as usual), then closes. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#scheduled !== undefined) {
      clearImmediate(this.#scheduled);
      this.#scheduled = undefined;
    }
    try {
      this.#flush();
      // Every committed job is answered before the connection goes (closing checkpoints the WAL).
      while (this.#flushing !== undefined) await this.#flushing;
      await this.checkpointer?.close();
      try {
        this.#db.pragma('optimize');
      } catch {
        /* statistics are an optimisation only */
      }
    } finally {
      this.#db.close();
      if (this.#walFd !== undefined) closeSync(this.#walFd);
      this.#walFd = undefined;
    }
  }
}
