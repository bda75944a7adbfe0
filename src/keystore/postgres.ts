/**
 * The PostgreSQL keystore (node-postgres), for several kmipd nodes sharing one key database.
 *
 * Semantics are those of the SQLite store (the same behaviour suite runs on both), plus:
 * - every node reads and writes the database directly (no cache), so a write acknowledged on one
 *   node is seen by the next request on any node;
 * - a write method resolves only after its transaction has committed (synchronous_commit as the
 *   server is configured; PostgreSQL's default makes COMMIT durable);
 * - schema migrations, and whatever the caller runs through `withClusterLock`, are serialised
 *   across nodes with advisory locks;
 * - a connection problem (database down, restarting, unreachable) rejects with
 *   KeyStoreUnavailableError; the pool drops broken connections and reconnects on the next use.
 *
 * Concurrency: each write is one transaction on its own pooled connection. An insert is a single
 * statement; an update or restore first locks the object row (SELECT ... FOR UPDATE), then
 * rewrites the row and its index rows in statements that see everything committed before the
 * lock was granted, so concurrent writers of one object serialise, and exactly one of several
 * updates expecting the same revision wins.
 *
 * Connection: `postgres://USER@HOST:PORT/DB?sslmode=...&schema=...`. The password never comes
 * from the URL (it would be visible in the process list): PGPASSWORD, or a file named in the
 * manifest. TLS: sslmode=disable (default) | require | verify-ca | verify-full, with
 * sslrootcert / sslcert / sslkey file paths.
 *
 * No key material reaches this module in plaintext, and nothing here logs values.
 */
import { asBuffer, checkRootKey, rawRow, rootKeyBatch, rowToObject, type ObjectRow, type RootKeyBatch } from './rows.js';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { Pool, PoolClient, PoolConfig, QueryConfig, QueryResultRow } from 'pg';
import { encodeAttributes, filterKey, indexEntries, rangeBound, type IndexKey } from './attributes.js';
import { SCHEMA_VERSION_KEY, type AppliedBy, type MigrateResult, type PendingMode, type SchemaReport } from './migrations.js';
import type { NodeRegistry, NodeRow, SchemaAware } from './nodes.js';
import { PG_MIGRATIONS, pgMigrate, pgSchemaReport, type PgMigration } from './postgres-migrations.js';
import type { StoreSnapshot } from './snapshot.js';
import {
  ConcurrentModificationError,
  DuplicateObjectError,
  KeyStoreClosedError,
  UnsupportedSchemaError,
  type KeyStore,
  type LocateQuery,
  type RootKeyRecord,
  type StoredObject,
} from './types.js';
import { KeyStoreUnavailableError } from './unavailable.js';

/** "KMIP" in ASCII: the first key of every advisory lock kmipd takes. */
const LOCK_CLASS = 0x4b4d4950;
const DEFAULT_SCHEMA = 'kmipd';
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_QUERY_TIMEOUT_MS = 30_000;
/** Waiting for a cluster lock (another node initialising, migrating) may take longer. */
const LOCK_WAIT_TIMEOUT_MS = 600_000;
const ROOT_KEY_RETRIES = 5;

/** The store URL or its options are not usable. */
export class PostgresConfigError extends Error {
  override readonly name = 'PostgresConfigError';
}

export interface PostgresTarget {
  /** Pool settings (no password). */
  config: PoolConfig;
  /** The PostgreSQL schema holding kmipd's tables. */
  schema: string;
  /** The URL without anything secret, for logs and messages. */
  display: string;
}

const URL_PARAMS = new Set(['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'schema', 'application_name', 'connect_timeout', 'host']);
const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;

export function isPostgresUrl(s: string): boolean {
  return /^postgres(ql)?:\/\//i.test(s);
}

/**
 * Reads a store URL. Relative file paths (sslrootcert, ...) are taken from `baseDir` (the data
 * directory) so that a URL recorded in the manifest means the same from every working folder.
 */
export function parsePostgresUrl(url: string, baseDir: string = process.cwd()): PostgresTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PostgresConfigError(`not a valid PostgreSQL URL: ${JSON.stringify(url.replace(/:[^:@/]*@/, ':***@'))}`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new PostgresConfigError(`a PostgreSQL store URL starts with postgres:// (got ${u.protocol}//)`);
  }
  if (u.password !== '') {
    throw new PostgresConfigError(
      'do not put the database password in the store URL (it would be visible in the process list and the manifest); ' +
        'set PGPASSWORD, or name a file holding it with "passwordFile" in kmipd.json',
    );
  }
  for (const k of u.searchParams.keys()) {
    if (!URL_PARAMS.has(k)) throw new PostgresConfigError(`unknown store URL parameter ${JSON.stringify(k)} (known: ${[...URL_PARAMS].join(', ')})`);
  }
  const p = (k: string): string | undefined => u.searchParams.get(k) ?? undefined;
  const file = (k: string): string | undefined => {
    const v = p(k);
    if (v === undefined) return undefined;
    const path = isAbsolute(v) ? v : resolve(baseDir, v);
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      throw new PostgresConfigError(`${k}=${v}: cannot read ${path}: ${(e as Error).message}`);
    }
  };
  const host = p('host') ?? (u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname);
  if (!host) throw new PostgresConfigError('the store URL names no host');
  const port = u.port === '' ? 5432 : Number(u.port);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  const user = decodeURIComponent(u.username);
  const schema = p('schema') ?? DEFAULT_SCHEMA;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new PostgresConfigError(`schema=${schema}: use lower-case letters, digits and _ (at most 63), starting with a letter or _`);
  }
  const modeRaw = p('sslmode') ?? 'disable';
  if (!(SSL_MODES as readonly string[]).includes(modeRaw)) {
    throw new PostgresConfigError(
      `sslmode=${modeRaw} is not supported: use disable, require (encrypted, server not verified), ` +
        'verify-ca (server certificate from sslrootcert\'s CA) or verify-full (and its name matches the host)',
    );
  }
  let mode = modeRaw as (typeof SSL_MODES)[number];
  const rootCert = file('sslrootcert');
  // As libpq: require with a root certificate verifies the chain.
  if (mode === 'require' && rootCert !== undefined) mode = 'verify-ca';
  let ssl: false | ConnectionOptions = false;
  if (mode !== 'disable') {
    const o: ConnectionOptions = {};
    if (rootCert !== undefined) o.ca = rootCert;
    const cert = file('sslcert');
    const key = file('sslkey');
    if ((cert === undefined) !== (key === undefined)) throw new PostgresConfigError('sslcert and sslkey go together');
    if (cert !== undefined && key !== undefined) {
      o.cert = cert;
      o.key = key;
    }
    if (mode === 'require') o.rejectUnauthorized = false;
    else {
      o.rejectUnauthorized = true;
      if (mode === 'verify-ca') o.checkServerIdentity = () => undefined;
    }
    ssl = o;
  }
  const timeoutRaw = p('connect_timeout');
  let connectionTimeoutMillis = DEFAULT_CONNECT_TIMEOUT_MS;
  if (timeoutRaw !== undefined) {
    const s = Number(timeoutRaw);
    if (!Number.isInteger(s) || s < 1 || s > 600) throw new PostgresConfigError('connect_timeout is whole seconds from 1 to 600');
    connectionTimeoutMillis = s * 1000;
  }
  const config: PoolConfig = {
    host,
    port,
    ssl,
    connectionTimeoutMillis,
    query_timeout: DEFAULT_QUERY_TIMEOUT_MS,
    keepAlive: true,
    application_name: p('application_name') ?? 'kmipd',
  };
  if (database) config.database = database;
  if (user) config.user = user;
  const shown = new URL(u.toString());
  for (const k of ['sslcert', 'sslkey']) if (shown.searchParams.has(k)) shown.searchParams.set(k, '…');
  return { config, schema, display: shown.toString() };
}

// ---------------------------------------------------------------------------------------------
// Errors

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOENT', // a Unix socket that is not there (server down)
  // SQLSTATE
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, recovering)
  '53300', // too_many_connections
  '57014', // query_canceled (statement timeout)
]);

/** Whether `e` says the database could not be reached (rather than that a statement failed). */
export function isConnectionError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08'))) return true;
  return /Connection terminated|connection error|timeout exceeded when trying to connect|Query read timeout|not queryable|Connection ended|the database system is (starting up|shutting down|in recovery)/i.test(
    e.message,
  );
}

function pgCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

function pgConstraint(e: unknown): string | undefined {
  const c = (e as { constraint?: unknown } | null)?.constraint;
  return typeof c === 'string' ? c : undefined;
}

function unavailable(e: unknown, display: string): KeyStoreUnavailableError {
  return new KeyStoreUnavailableError(`the PostgreSQL keystore (${display}) is unreachable: ${(e as Error).message}`, { cause: e });
}

// ---------------------------------------------------------------------------------------------
// Rows

function isUint32(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}


/** PostgreSQL text cannot hold U+0000. */
function checkText(s: string, what: string): void {
  if (s.includes('\u0000')) throw new TypeError(`${what} must not contain U+0000 (not storable in PostgreSQL text)`);
}

interface IndexRow {
  name: string;
  instance: number;
  bin: Buffer | null;
  num: string | null;
}

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
  index: IndexRow[];
}

const TEXT_PREFIX = Buffer.from('t');
const BYTES_PREFIX = Buffer.from('b');

function numText(v: number | bigint): string | null {
  if (typeof v === 'bigint') return v.toString(10);
  if (!Number.isFinite(v)) return null;
  return Number.isInteger(v) ? BigInt(v).toString(10) : String(v);
}

/** The two columns of an index key (see the attr_index comment in postgres-migrations.ts). */
function keyColumns(k: IndexKey): { bin: Buffer | null; num: string | null } {
  if (k === null) return { bin: null, num: null };
  if (typeof k === 'number' || typeof k === 'bigint') return { bin: null, num: numText(k) };
  if (typeof k === 'string') return { bin: Buffer.concat([TEXT_PREFIX, Buffer.from(k, 'utf8')]), num: null };
  return { bin: Buffer.concat([BYTES_PREFIX, k]), num: null };
}

function prepareObject(obj: StoredObject, revision = obj.revision): PreparedObject {
  if (typeof obj !== 'object' || obj === null) throw new TypeError('object expected');
  if (typeof obj.uid !== 'string' || obj.uid.length === 0) throw new TypeError('uid must be a non-empty string');
  checkText(obj.uid, 'uid');
  if (!isUint32(obj.objectType)) throw new TypeError(`object ${obj.uid}: objectType must be a uint32`);
  if (!isUint32(obj.state)) throw new TypeError(`object ${obj.uid}: state must be a uint32`);
  if (typeof obj.owner !== 'string') throw new TypeError(`object ${obj.uid}: owner must be a string`);
  checkText(obj.owner, `object ${obj.uid}: owner`);
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
    checkText(m.rootKeyId, `object ${obj.uid}: rootKeyId`);
    rootKeyId = m.rootKeyId;
    material = Buffer.from(asBuffer(m.blob)); // a copy: the row must not change if the caller's buffer does
  }
  const attributes = encodeAttributes(obj.attributes);
  const index = indexEntries(obj.attributes).map((e) => {
    checkText(e.name, `object ${obj.uid}: attribute name`);
    return { name: e.name, instance: e.instance, ...keyColumns(e.key) };
  });
  return {
    uid: obj.uid,
    objectType: obj.objectType,
    state: obj.state,
    owner: obj.owner,
    attributes,
    rootKeyId,
    material,
    revision,
    createdAt: obj.createdAt,
    updatedAt: obj.updatedAt,
    index,
  };
}

/** The four arrays unnest() turns back into index rows. */
function indexArrays(rows: readonly IndexRow[]): [string[], number[], (Buffer | null)[], (string | null)[]] {
  return [rows.map((r) => r.name), rows.map((r) => r.instance), rows.map((r) => r.bin), rows.map((r) => r.num)];
}



interface RootKeyRow {
  id: string;
  wrapped: Buffer;
  master_key_id: string;
  status: string;
  created_at: number;
}

function rootKeyFromRow(r: RootKeyRow): RootKeyRecord {
  return {
    id: r.id,
    wrapped: r.wrapped,
    masterKeyId: r.master_key_id,
    status: r.status === 'active' ? 'active' : 'retired',
    createdAt: r.created_at,
  };
}


/** int8 as a JS number (every int8 kmipd stores is a safe integer); numeric stays text. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === 20 && format !== 'binary') return (v: string) => Number(v);
    return format === undefined ? pg.types.getTypeParser(oid) : pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

/** A query that may wait for a lock longer than the usual query timeout (node-postgres reads `query_timeout` per query). */
function lockQuery(text: string, values: number[]): QueryConfig {
  return { text, values, query_timeout: LOCK_WAIT_TIMEOUT_MS } as QueryConfig;
}

/** The second key of an advisory lock: `purpose` within `schema`. */
function lockKey(schema: string, purpose: string): number {
  return createHash('sha256').update(`${schema}\u0000${purpose}`).digest().readInt32BE(0);
}

// ---------------------------------------------------------------------------------------------
// Opening and migrating

export interface PostgresStoreOptions {
  /** Defaults to PGPASSWORD. */
  password?: string;
  /** Where relative file paths in the URL are resolved (the data directory). */
  baseDir?: string;
  /** Connections kept open at most (default DEFAULT_POOL_SIZE; setting store.poolSize). */
  poolSize?: number;
  /** The migrations this build knows (defaults to the real list; tests give older or newer ones). */
  migrations?: readonly PgMigration[];
  /**
   * Pending migrations of an existing schema: applied, or refused with PendingMigrationError
   * (default 'refuse'); 'inspect' connects without touching the schema (`kmipd migrate`). A new
   * schema is created, and automatic migrations applied, unless 'inspect' (see migrations.ts).
   */
  pending?: PendingMode | 'inspect';
  /** Recorded in schema_migrations for the migrations applied. */
  appliedBy?: AppliedBy;
  /** Called when the pool loses a connection (it reconnects by itself). */
  onConnectionError?: (err: Error) => void;
}

/** Connections a store keeps open at most unless told otherwise. */
export const DEFAULT_POOL_SIZE = 10;

function poolSizeOf(n: number | undefined): number {
  if (n === undefined) return DEFAULT_POOL_SIZE;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`the PostgreSQL pool size must be a positive integer, not ${String(n)}`);
  return n;
}

/**
 * Connects to the database of `url`, creates or migrates kmipd's schema, and returns the store.
 * Rejects with UnsupportedSchemaError (database untouched) for a schema from a newer kmipd or
 * one that is not kmipd's, KeyStoreUnavailableError when the database cannot be reached, and
 * PostgresConfigError for a bad URL.
 */
export async function openPostgresStore(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresKeyStore> {
  const target = parsePostgresUrl(url, opts.baseDir);
  const password = opts.password ?? process.env.PGPASSWORD;
  const config: PoolConfig = { ...target.config, max: poolSizeOf(opts.poolSize), idleTimeoutMillis: 30_000, types: TYPES };
  if (password !== undefined && password !== '') config.password = password;
  const pool = new pg.Pool(config);
  // An idle connection that breaks (server restart) is dropped by the pool; without a listener
  // the 'error' event would end the process.
  pool.on('error', (err) => opts.onConnectionError?.(err));
  let migrated: MigrateResult | undefined;
  try {
    const c = await pool.connect();
    let broken = false;
    const onErr = (): void => {
      broken = true;
    };
    c.on('error', onErr);
    try {
      if (opts.pending === 'inspect') await c.query('SELECT 1');
      else migrated = await migrateSchema(c, target.schema, opts.migrations ?? PG_MIGRATIONS, opts.pending ?? 'refuse', opts.appliedBy);
    } catch (e) {
      broken = broken || isConnectionError(e);
      throw e;
    } finally {
      c.off('error', onErr);
      c.release(broken);
    }
  } catch (e) {
    await pool.end().catch(() => undefined);
    if (isConnectionError(e)) throw unavailable(e, target.display);
    throw e;
  }
  const store = new PostgresKeyStore(pool, target, opts.migrations ?? PG_MIGRATIONS);
  store.migrated = migrated;
  return store;
}

function migrateSchema(c: PoolClient, schema: string, migrations: readonly PgMigration[], pending: PendingMode, by?: AppliedBy): Promise<MigrateResult> {
  return pgMigrate(c, schema, migrations, {
    pending,
    ...(by ? { by } : {}),
    lock: () => c.query(lockQuery('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, lockKey(schema, 'migrate')])),
    isConnectionError,
  });
}

// ---------------------------------------------------------------------------------------------
// The store

export class PostgresKeyStore implements KeyStore, NodeRegistry, SchemaAware {
  readonly backend = 'postgres';
  readonly #migrations: readonly PgMigration[];
  /** What opening the store migrated (from = to when nothing; undefined with pending 'inspect'). */
  migrated: MigrateResult | undefined;
  readonly schema: string;
  /** The URL without secrets. */
  readonly display: string;

  readonly #pool: Pool;
  #closed = false;
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #sql: Record<string, string>;
  readonly #s: string;

  /** Use openPostgresStore. */
  constructor(pool: Pool, target: PostgresTarget, migrations: readonly PgMigration[] = PG_MIGRATIONS) {
    this.#pool = pool;
    this.#migrations = migrations;
    this.schema = target.schema;
    this.display = target.display;
    const s = `"${target.schema}".`;
    this.#s = s;
    const cols = 'uid, object_type, state, owner, attributes, root_key_id, material, revision, created_at, updated_at';
    const unnestIndex = (seqExpr: string, from: string, first: number) =>
      `INSERT INTO ${s}attr_index (seq, name, instance, bin, num)
       SELECT ${seqExpr}, x.name, x.instance, x.bin, x.num
       FROM ${from}unnest($${first}::text[], $${first + 1}::int4[], $${first + 2}::bytea[], $${first + 3}::numeric[]) AS x(name, instance, bin, num)`;
    this.#sql = {
      get: `SELECT ${cols} FROM ${s}objects WHERE uid = $1`,
      insert: `WITH o AS (
          INSERT INTO ${s}objects (${cols}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq)
        ${unnestIndex('o.seq', 'o, ', 11)}`,
      lockRow: `SELECT seq, revision FROM ${s}objects WHERE uid = $1 FOR UPDATE`,
      updateRow: `UPDATE ${s}objects SET object_type = $2, state = $3, owner = $4, attributes = $5, root_key_id = $6, material = $7,
          revision = $8, created_at = $9, updated_at = $10 WHERE seq = $1`,
      deleteIndex: `DELETE FROM ${s}attr_index WHERE seq = $1`,
      insertIndex: unnestIndex('$1::bigint', '', 2),
      insertAt: `INSERT INTO ${s}objects (seq, ${cols}) VALUES ($11, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq`,
      insertNew: `INSERT INTO ${s}objects (${cols}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq`,
      deleteRow: `DELETE FROM ${s}objects WHERE seq = $1`,
      putRemoved: `INSERT INTO ${s}removed (uid, seq) VALUES ($1, $2) ON CONFLICT (uid) DO UPDATE SET seq = excluded.seq`,
      getRemoved: `SELECT seq FROM ${s}removed WHERE uid = $1 FOR UPDATE`,
      deleteRemoved: `DELETE FROM ${s}removed WHERE uid = $1`,
      exists: `SELECT revision FROM ${s}objects WHERE uid = $1`,
      count: `SELECT object_type AS "objectType", state, count(*)::int8 AS n FROM ${s}objects GROUP BY object_type, state ORDER BY object_type, state`,
      countByRootKey: `SELECT root_key_id AS "rootKeyId", count(*)::int8 AS n FROM ${s}objects WHERE root_key_id IS NOT NULL GROUP BY root_key_id ORDER BY root_key_id`,
      rootKeys: `SELECT id, wrapped, master_key_id, status, created_at FROM ${s}root_keys ORDER BY created_at, id`,
      retireActive: `UPDATE ${s}root_keys SET status = 'retired' WHERE status = 'active' AND id <> $1`,
      putRootKey: `INSERT INTO ${s}root_keys (id, wrapped, master_key_id, status, created_at) VALUES ($1, $2, $3, $4, $5)
          ON CONFLICT (id) DO UPDATE SET wrapped = excluded.wrapped, master_key_id = excluded.master_key_id,
            status = excluded.status, created_at = excluded.created_at`,
      getMeta: `SELECT value FROM ${s}meta WHERE key = $1`,
      setMeta: `INSERT INTO ${s}meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      allMeta: `SELECT key, value FROM ${s}meta ORDER BY key`,
      countObjects: `SELECT count(*)::int8 AS n FROM ${s}objects`,
      trust: `SELECT sha256, name, entry, added_at FROM ${s}trust ORDER BY added_at, name`,
      putTrust: `INSERT INTO ${s}trust (sha256, name, entry, added_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
      deleteTrust: `DELETE FROM ${s}trust WHERE sha256 = $1`,
    };
  }

  // ---- plumbing -----------------------------------------------------------------------------

  /** Runs `fn` as one operation: refused after close, awaited by close, errors classified. */
  #op<R>(fn: () => Promise<R>): Promise<R> {
    if (this.#closed) return Promise.reject(new KeyStoreClosedError('keystore is closed'));
    const p = (async () => {
      try {
        return await fn();
      } catch (e) {
        if (isConnectionError(e)) throw unavailable(e, this.display);
        throw e;
      }
    })();
    this.#inflight.add(p);
    const done = (): void => {
      this.#inflight.delete(p);
    };
    p.then(done, done);
    return p;
  }

  async #query<R extends QueryResultRow>(q: string | QueryConfig, values?: unknown[]): Promise<R[]> {
    const cfg: QueryConfig = typeof q === 'string' ? { text: q } : q;
    if (values !== undefined) cfg.values = values;
    const r = await this.#pool.query<R>(cfg);
    return r.rows;
  }

  /** A dedicated connection for `fn`; dropped instead of reused when it broke. */
  async #withClient<R>(fn: (c: PoolClient) => Promise<R>): Promise<R> {
    const c = await this.#pool.connect();
    let broken: Error | undefined;
    const onErr = (e: Error): void => {
      broken = e;
    };
    c.on('error', onErr);
    try {
      return await fn(c);
    } catch (e) {
      if (isConnectionError(e)) broken ??= e as Error;
      throw e;
    } finally {
      c.off('error', onErr);
      c.release(broken ?? undefined);
    }
  }

  /** `fn` in a READ COMMITTED transaction; committed when it returns. */
  #tx<R>(fn: (c: PoolClient) => Promise<R>, begin = 'BEGIN'): Promise<R> {
    return this.#withClient(async (c) => {
      await c.query(begin);
      let r: R;
      try {
        r = await fn(c);
      } catch (e) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
      await c.query('COMMIT');
      return r;
    });
  }

  // ---- writes -------------------------------------------------------------------------------

  insert(obj: StoredObject): Promise<void> {
    let row: PreparedObject;
    try {
      row = prepareObject(obj);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#op(async () => {
      try {
        await this.#query({ name: 'kmipd-insert', text: this.#sql.insert! }, [...this.#rowValues(row), ...indexArrays(row.index)]);
      } catch (e) {
        if (pgCode(e) === '23505' && pgConstraint(e) === 'objects_uid_key') throw new DuplicateObjectError(`object ${row.uid} exists already`);
        throw e;
      }
    });
  }

  /**
   * Inserts `objs` in one transaction, keeping their order as the Locate order (for restores:
   * concurrent single inserts could take sequence numbers out of order). Rejects, inserting
   * nothing, on a duplicate uid.
   */
  insertMany(objs: readonly StoredObject[]): Promise<void> {
    let rows: PreparedObject[];
    try {
      rows = objs.map((o) => prepareObject(o));
    } catch (e) {
      return Promise.reject(e);
    }
    if (rows.length === 0) return this.#op(async () => undefined);
    const s = this.#s;
    return this.#op(() =>
      this.#tx(async (c) => {
        const seqs = (
          await c.query<{ seq: number }>(
            `SELECT nextval(pg_get_serial_sequence($1, 'seq')) AS seq FROM generate_series(1, $2) ORDER BY 1`,
            [`${s}objects`, rows.length],
          )
        ).rows.map((r) => r.seq);
        const col = <K extends keyof PreparedObject>(k: K): PreparedObject[K][] => rows.map((r) => r[k]);
        try {
          await c.query(
            `INSERT INTO ${s}objects (seq, uid, object_type, state, owner, attributes, root_key_id, material, revision, created_at, updated_at)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::bytea[], $7::text[], $8::bytea[], $9::int8[], $10::int8[], $11::int8[])`,
            [
              seqs,
              col('uid'),
              col('objectType'),
              col('state'),
              col('owner'),
              col('attributes'),
              col('rootKeyId'),
              col('material'),
              col('revision'),
              col('createdAt'),
              col('updatedAt'),
            ],
          );
        } catch (e) {
          if (pgCode(e) === '23505' && pgConstraint(e) === 'objects_uid_key') throw new DuplicateObjectError(`an object of this batch exists already: ${(e as { detail?: string }).detail ?? ''}`);
          throw e;
        }
        const idx = rows.flatMap((r, i) => r.index.map((x) => ({ seq: seqs[i]!, ...x })));
        if (idx.length > 0) {
          await c.query(
            `INSERT INTO ${s}attr_index (seq, name, instance, bin, num) SELECT * FROM unnest($1::int8[], $2::text[], $3::int4[], $4::bytea[], $5::numeric[])`,
            [idx.map((x) => x.seq), idx.map((x) => x.name), idx.map((x) => x.instance), idx.map((x) => x.bin), idx.map((x) => x.num)],
          );
        }
      }),
    );
  }

  #rowValues(r: PreparedObject): unknown[] {
    return [r.uid, r.objectType, r.state, r.owner, r.attributes, r.rootKeyId, r.material, r.revision, r.createdAt, r.updatedAt];
  }

  /** Rewrites the locked row `seq` and its index rows. */
  async #rewrite(c: PoolClient, seq: number, r: PreparedObject): Promise<void> {
    const [, ...rest] = this.#rowValues(r);
    await c.query({ name: 'kmipd-update-row', text: this.#sql.updateRow!, values: [seq, ...rest] });
    await c.query({ name: 'kmipd-delete-index', text: this.#sql.deleteIndex!, values: [seq] });
    if (r.index.length > 0) await c.query({ name: 'kmipd-insert-index', text: this.#sql.insertIndex!, values: [seq, ...indexArrays(r.index)] });
  }

  update(obj: StoredObject, expectedRevision: number): Promise<StoredObject> {
    let row: PreparedObject;
    try {
      if (!Number.isSafeInteger(expectedRevision)) throw new TypeError('expectedRevision must be an integer');
      row = prepareObject(obj, expectedRevision + 1);
    } catch (e) {
      return Promise.reject(e);
    }
    const result: StoredObject = { ...obj, revision: expectedRevision + 1 };
    return this.#op(() =>
      this.#tx(async (c) => {
        const cur = (await c.query<{ seq: number; revision: number }>({ name: 'kmipd-lock-row', text: this.#sql.lockRow!, values: [row.uid] })).rows[0];
        if (cur === undefined) throw new ConcurrentModificationError(`object ${row.uid} does not exist (anymore)`);
        if (cur.revision !== expectedRevision) {
          throw new ConcurrentModificationError(
            `object ${row.uid} was modified concurrently (revision ${cur.revision}, expected ${expectedRevision})`,
          );
        }
        await this.#rewrite(c, cur.seq, row);
        return result;
      }),
    );
  }

  restore(uid: string, obj: StoredObject | null): Promise<void> {
    let row: PreparedObject | null = null;
    try {
      if (typeof uid !== 'string' || uid.length === 0) throw new TypeError('uid must be a non-empty string');
      checkText(uid, 'uid');
      if (obj !== null) {
        if (obj.uid !== uid) throw new TypeError(`restore(${uid}) was given object ${String(obj.uid)}`);
        row = prepareObject(obj);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const sql = this.#sql;
    return this.#op(() =>
      this.#tx(async (c) => {
        const cur = (await c.query<{ seq: number }>({ name: 'kmipd-lock-row', text: sql.lockRow!, values: [uid] })).rows[0];
        if (row === null) {
          if (cur === undefined) return;
          await c.query({ name: 'kmipd-delete-index', text: sql.deleteIndex!, values: [cur.seq] });
          await c.query(sql.deleteRow!, [cur.seq]);
          await c.query(sql.putRemoved!, [uid, cur.seq]);
        } else if (cur !== undefined) {
          await this.#rewrite(c, cur.seq, row);
        } else {
          const old = (await c.query<{ seq: number }>(sql.getRemoved!, [uid])).rows[0];
          let seq: number;
          if (old !== undefined) {
            seq = old.seq;
            await c.query({ name: 'kmipd-delete-index', text: sql.deleteIndex!, values: [seq] });
            await c.query(sql.insertAt!, [...this.#rowValues(row), seq]);
            await c.query(sql.deleteRemoved!, [uid]);
          } else {
            seq = (await c.query<{ seq: number }>(sql.insertNew!, this.#rowValues(row))).rows[0]!.seq;
          }
          if (row.index.length > 0) await c.query({ name: 'kmipd-insert-index', text: sql.insertIndex!, values: [seq, ...indexArrays(row.index)] });
        }
      }),
    );
  }

  putRootKey(r: RootKeyRecord): Promise<void> {
    try {
      checkRootKey(r, checkText);
    } catch (e) {
      return Promise.reject(e);
    }
    const wrapped = Buffer.from(asBuffer(r.wrapped));
    const { id, masterKeyId, status, createdAt } = r;
    return this.#op(() =>
      this.#retryActivation(() =>
        this.#tx(async (c) => {
          if (status === 'active') await c.query(this.#sql.retireActive!, [id]);
          await c.query(this.#sql.putRootKey!, [id, wrapped, masterKeyId, status, createdAt]);
        }),
      ),
    );
  }

  putRootKeys(records: RootKeyRecord[], meta: Record<string, string> = {}): Promise<void> {
    let rows: RootKeyBatch['rows'];
    let metaRows: RootKeyBatch['metaRows'];
    try {
      ({ rows, metaRows } = rootKeyBatch(records, meta, checkText));
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#op(() =>
      this.#retryActivation(() =>
        this.#tx(async (c) => {
          for (const r of rows) {
            if (r.status === 'active') await c.query(this.#sql.retireActive!, [r.id]);
            await c.query(this.#sql.putRootKey!, [r.id, r.wrapped, r.masterKeyId, r.status, r.createdAt]);
          }
          for (const [k, v] of metaRows) await c.query(this.#sql.setMeta!, [k, v]);
        }),
      ),
    );
  }

  /**
   * Two nodes activating root keys at once: the second transaction's retire step did not see
   * the first's new key and hits the one-active index; run it again, it sees it now.
   */
  async #retryActivation(fn: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (pgCode(e) !== '23505' || pgConstraint(e) !== 'root_keys_one_active' || attempt >= ROOT_KEY_RETRIES) throw e;
      }
    }
  }

  setMeta(key: string, value: string): Promise<void> {
    if (typeof key !== 'string' || key.length === 0 || typeof value !== 'string') {
      return Promise.reject(new TypeError('meta key and value must be strings (key non-empty)'));
    }
    if (key === SCHEMA_VERSION_KEY) return Promise.reject(new Error(`meta key ${key} is managed by the keystore`));
    try {
      checkText(key, 'meta key');
      checkText(value, 'meta value');
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#op(async () => {
      await this.#query(this.#sql.setMeta!, [key, value]);
    });
  }

  // ---- reads --------------------------------------------------------------------------------

  get(uid: string): Promise<StoredObject | undefined> {
    if (typeof uid === 'string' && uid.includes('\u0000')) return this.#op(async () => undefined);
    return this.#op(async () => {
      const r = (await this.#query<ObjectRow>({ name: 'kmipd-get', text: this.#sql.get! }, [uid]))[0];
      return r === undefined ? undefined : rowToObject(r);
    });
  }

  /** Builds the SQL and parameters of a Locate, or null when it can match nothing. */
  #locateSql(q: LocateQuery): { text: string; values: unknown[] } | null {
    const s = this.#s;
    const where: string[] = [];
    const values: unknown[] = [];
    const param = (v: unknown, cast = ''): string => {
      values.push(v);
      return `$${values.length}${cast}`;
    };
    const anyOf = (col: string, list: readonly unknown[], cast: string): void => {
      where.push(`${col} = ANY(${param(list, cast)})`);
    };
    if (q.owners !== undefined) {
      if (q.owners.length === 0) return null;
      if (q.owners.some((o) => typeof o !== 'string' || o.includes('\u0000'))) {
        const ok = q.owners.filter((o) => typeof o === 'string' && !o.includes('\u0000'));
        if (ok.length === 0) return null;
        anyOf('o.owner', ok, '::text[]');
      } else anyOf('o.owner', q.owners, '::text[]');
    }
    if (q.objectTypes !== undefined) {
      if (q.objectTypes.length === 0) return null;
      anyOf('o.object_type', q.objectTypes, '::int8[]');
    }
    if (q.states !== undefined) {
      if (q.states.length === 0) return null;
      anyOf('o.state', q.states, '::int8[]');
    }
    for (const f of q.filters ?? []) {
      if (typeof f.name !== 'string' || f.name.includes('\u0000')) {
        if (f.kind === 'absent') continue; // no such attribute can be stored: absent everywhere
        return null; // ...and matches nothing
      }
      const sub = (cond: string): void => {
        where.push(`o.seq IN (SELECT seq FROM ${s}attr_index WHERE ${cond})`);
      };
      switch (f.kind) {
        case 'equals': {
          const k = filterKey(f.value);
          const cols = keyColumns(k);
          if (cols.bin !== null) sub(`name = ${param(f.name)} AND bin = ${param(cols.bin, '::bytea')}`);
          else if (cols.num !== null) sub(`name = ${param(f.name)} AND num = ${param(cols.num, '::numeric')}`);
          else return null;
          break;
        }
        case 'range': {
          const conds = [`name = ${param(f.name)}`, 'num IS NOT NULL'];
          if (f.from !== undefined) conds.push(`num >= ${param(numText(rangeBound(f.from)), '::numeric')}`);
          if (f.to !== undefined) conds.push(`num <= ${param(numText(rangeBound(f.to)), '::numeric')}`);
          sub(conds.join(' AND '));
          break;
        }
        case 'present':
          sub(`name = ${param(f.name)}`);
          break;
        case 'absent':
          where.push(`NOT EXISTS (SELECT 1 FROM ${s}attr_index a WHERE a.seq = o.seq AND a.name = ${param(f.name)})`);
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
    const text =
      `SELECT o.uid FROM ${s}objects o` +
      (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
      ` ORDER BY o.seq LIMIT ${param(limit < 0 ? null : limit, '::int8')} OFFSET ${param(offset, '::int8')}`;
    return { text, values };
  }

  locate(q: LocateQuery): Promise<string[]> {
    let built: { text: string; values: unknown[] } | null;
    try {
      built = this.#locateSql(q);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#op(async () => {
      if (built === null) return [];
      return (await this.#query<{ uid: string }>(built.text, built.values)).map((r) => r.uid);
    });
  }

  /** The plan of a Locate (EXPLAIN lines), for diagnostics and tests. */
  explainLocate(q: LocateQuery): Promise<string[]> {
    const built = this.#locateSql(q);
    return this.#op(async () => {
      if (built === null) return [];
      return (await this.#query<{ 'QUERY PLAN': string }>(`EXPLAIN ${built.text}`, built.values)).map((r) => r['QUERY PLAN']);
    });
  }

  count(): Promise<{ objectType: number; state: number; n: number }[]> {
    return this.#op(() => this.#query<{ objectType: number; state: number; n: number }>(this.#sql.count!));
  }

  rootKeys(): Promise<RootKeyRecord[]> {
    return this.#op(async () => (await this.#query<RootKeyRow>(this.#sql.rootKeys!)).map(rootKeyFromRow));
  }

  countByRootKey(): Promise<{ rootKeyId: string; n: number }[]> {
    return this.#op(() => this.#query<{ rootKeyId: string; n: number }>(this.#sql.countByRootKey!));
  }

  getMeta(key: string): Promise<string | undefined> {
    if (typeof key === 'string' && key.includes('\u0000')) return this.#op(async () => undefined);
    return this.#op(async () => (await this.#query<{ value: string }>(this.#sql.getMeta!, [key]))[0]?.value);
  }

  // ---- cluster ------------------------------------------------------------------------------

  /**
   * Runs `fn` holding a cluster-wide advisory lock named `purpose` (per schema): of several
   * nodes doing the same, one runs at a time. Used around first-run initialisation (root key,
   * master-key canary), so that nodes starting together create one of each.
   */
  withClusterLock<R>(purpose: string, fn: () => Promise<R>): Promise<R> {
    return this.#op(() =>
      this.#withClient(async (c) => {
        const key = [LOCK_CLASS, lockKey(this.schema, purpose)];
        await c.query(lockQuery('SELECT pg_advisory_lock($1, $2)', key));
        try {
          return await fn();
        } finally {
          await c.query('SELECT pg_advisory_unlock($1, $2)', key).catch(() => undefined);
        }
      }),
    );
  }

  /** The shared trust entries (see src/server/trust-sync.ts), oldest first. */
  trustRows(): Promise<{ sha256: string; name: string; entry: string; addedAt: number }[]> {
    return this.#op(async () =>
      (await this.#query<{ sha256: string; name: string; entry: string; added_at: number }>(this.#sql.trust!)).map((r) => ({
        sha256: r.sha256,
        name: r.name,
        entry: r.entry,
        addedAt: r.added_at,
      })),
    );
  }

  /**
   * Applies trust changes in one transaction: removals by SHA-256, then additions. An addition
   * whose fingerprint or name another entry holds already is skipped and returned (another node
   * won); adding an entry that is there already changes nothing.
   */
  changeTrust(
    add: readonly { sha256: string; name: string; entry: string; addedAt: number }[],
    remove: readonly string[],
  ): Promise<{ skipped: string[] }> {
    return this.#op(() =>
      this.#tx(async (c) => {
        for (const sha of remove) await c.query(this.#sql.deleteTrust!, [sha]);
        const skipped: string[] = [];
        for (const a of add) {
          const inserted = (await c.query(this.#sql.putTrust!, [a.sha256, a.name, a.entry, a.addedAt])).rowCount ?? 0;
          if (inserted > 0) continue;
          // Taken already: by this very entry (a repeated push) is fine; by another, it lost.
          const same = await c.query(`SELECT 1 FROM ${this.#s}trust WHERE sha256 = $1 AND name = $2`, [a.sha256, a.name]);
          if (same.rows.length === 0) skipped.push(a.name);
        }
        return { skipped };
      }),
    );
  }

  /**
   * A consistent snapshot of the whole store for `fn` (a REPEATABLE READ, READ ONLY
   * transaction), while other connections keep writing.
   */
  snapshot<R>(fn: (snap: StoreSnapshot) => Promise<R>): Promise<R> {
    const sql = this.#sql;
    const s = this.#s;
    return this.#op(() =>
      this.#tx(async (c) => {
        const snap: StoreSnapshot = {
          backend: this.backend,
          meta: async () => (await c.query<{ key: string; value: string }>(sql.allMeta!)).rows.map((r) => [r.key, r.value] as [string, string]),
          rootKeys: async () => (await c.query<RootKeyRow>(sql.rootKeys!)).rows.map(rootKeyFromRow),
          countObjects: async () => (await c.query<{ n: number }>(sql.countObjects!)).rows[0]?.n ?? 0,
          objects: (batch: number) => ({
            async *[Symbol.asyncIterator]() {
              await c.query(
                `DECLARE kmipd_backup NO SCROLL CURSOR FOR SELECT uid, object_type, state, owner, attributes, root_key_id, material, revision, created_at, updated_at FROM ${s}objects ORDER BY seq`,
              );
              try {
                for (;;) {
                  const rows = (await c.query<ObjectRow>(`FETCH FORWARD ${Math.max(1, Math.floor(batch))} FROM kmipd_backup`)).rows;
                  if (rows.length === 0) break;
                  yield rows.map(rawRow);
                }
              } finally {
                await c.query('CLOSE kmipd_backup').catch(() => undefined);
              }
            },
          }),
        };
        return fn(snap);
      }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'),
    );
  }

  // ---- schema and nodes (nodes.ts) ----------------------------------------------------------

  schemaReport(): Promise<SchemaReport> {
    return this.#op(() => this.#withClient((c) => pgSchemaReport(c, this.schema, this.#migrations)));
  }

  /** Applies the pending migrations (one transaction, cluster-wide lock): `kmipd migrate`. */
  applyMigrations(by?: AppliedBy): Promise<MigrateResult> {
    return this.#op(() => this.#withClient((c) => migrateSchema(c, this.schema, this.#migrations, 'apply', by)));
  }

  putNode(nodeId: string, state: NodeRow['state'], info: string): Promise<void> {
    return this.#op(async () => {
      await this.#query(
        `INSERT INTO ${this.#s}nodes (node_id, state, heartbeat_at, info)
         VALUES ($1, $2, (extract(epoch from clock_timestamp()) * 1000)::bigint, $3)
         ON CONFLICT (node_id) DO UPDATE SET state = excluded.state, heartbeat_at = excluded.heartbeat_at, info = excluded.info`,
        [nodeId, state, info],
      );
    });
  }

  removeNode(nodeId: string): Promise<void> {
    return this.#op(async () => {
      await this.#query(`DELETE FROM ${this.#s}nodes WHERE node_id = $1`, [nodeId]);
    });
  }

  listNodes(): Promise<{ now: number; nodes: NodeRow[] }> {
    return this.#op(() =>
      this.#tx(async (c) => {
        const now = Number((await c.query<{ now: string }>(`SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS now`)).rows[0]?.now);
        const rows = (
          await c.query<{ node_id: string; state: string; heartbeat_at: number; info: string }>(
            `SELECT node_id, state, heartbeat_at, info FROM ${this.#s}nodes ORDER BY node_id`,
          )
        ).rows;
        return {
          now,
          nodes: rows.map((r) => ({ nodeId: r.node_id, state: r.state === 'stopped' ? ('stopped' as const) : ('serving' as const), heartbeatAt: Number(r.heartbeat_at), info: r.info })),
        };
      }),
    );
  }

  /** Waits for operations in progress (they resolve or reject as usual), then closes. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    await this.#pool.end();
  }
}
