/**
 * Which keystore a data directory uses, and opening it.
 *
 *   "keystore": { "kind": "sqlite", "file": "keystore.sqlite" }              (the default)
 *   "keystore": { "kind": "postgres", "url": "postgres://kmipd@db:5432/kmipd?sslmode=verify-full",
 *                 "passwordFile": "pg.password" }                            (optional)
 *
 * `kmipd serve --store postgres://...` chooses PostgreSQL for a new data directory (recorded in
 * the manifest); on an existing PostgreSQL directory it overrides the recorded URL for that run
 * (e.g. after the database moved). Switching an existing directory between SQLite and PostgreSQL
 * is a backup and a restore (`kmipd backup`, `kmipd restore --store ...`), never a flag.
 *
 * The password of the database comes from PGPASSWORD, else from the manifest's passwordFile
 * (relative to the data directory, mode 0600 recommended); never from the URL.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { KmipError } from '../codec/errors.js';
import type { AppliedBy, Migration, PendingMode } from '../keystore/migrations.js';
import { openSqliteStore, type SqliteStoreOptions } from '../keystore/sqlite.js';
import type { KeyStore } from '../keystore/types.js';
import { KeyStoreUnavailableError } from '../keystore/unavailable.js';
import { DataDirError, type KeystoreConfig, type Manifest } from './datadir.js';

export const DEFAULT_SQLITE_FILE = 'keystore.sqlite';

export function isPostgresStoreArg(s: string): boolean {
  return /^postgres(ql)?:\/\//i.test(s);
}

/** The keystore a `--store` value names: `sqlite`, `sqlite:FILE`, or a postgres:// URL. */
export function storeConfigFromArg(arg: string, current?: KeystoreConfig): KeystoreConfig {
  if (isPostgresStoreArg(arg)) {
    const c: KeystoreConfig = { kind: 'postgres', url: arg };
    if (current?.kind === 'postgres' && current.passwordFile !== undefined) c.passwordFile = current.passwordFile;
    return c;
  }
  if (arg === 'sqlite') return { kind: 'sqlite', file: current?.kind === 'sqlite' ? current.file : DEFAULT_SQLITE_FILE };
  if (arg.startsWith('sqlite:') && arg.length > 'sqlite:'.length) return { kind: 'sqlite', file: arg.slice('sqlite:'.length) };
  throw new DataDirError(`--store ${JSON.stringify(arg)}: give postgres://USER@HOST:PORT/DB[?sslmode=...], sqlite, or sqlite:FILE`);
}

/** What a keystore configuration says, without secrets. */
export function describeStore(c: KeystoreConfig): string {
  if (c.kind === 'sqlite') return `sqlite:${c.file}`;
  try {
    const u = new URL(c.url);
    u.password = '';
    return u.toString();
  } catch {
    return 'postgres (unparsable URL)';
  }
}

/**
 * Applies `serve --store` to the manifest about to be used: for a new directory it chooses the
 * keystore; for an existing one it may only change the URL of a PostgreSQL store.
 */
export function applyStoreOption(m: Manifest, arg: string | undefined, firstRun: boolean, log?: Logger): void {
  if (arg === undefined) return;
  const wanted = storeConfigFromArg(arg, m.keystore);
  if (firstRun) {
    m.keystore = wanted;
    return;
  }
  if (wanted.kind !== m.keystore.kind) {
    throw new DataDirError(
      `this data directory keeps its keys in ${describeStore(m.keystore)}; --store ${wanted.kind} would start it on another, empty keystore. ` +
        'To move the keys, run `kmipd backup --data DIR --out FILE` and `kmipd restore --data DIR --in FILE --store ...`',
    );
  }
  if (wanted.kind === 'sqlite' && m.keystore.kind === 'sqlite' && wanted.file !== m.keystore.file) {
    throw new DataDirError(`this data directory keeps its keys in ${m.keystore.file}, not ${wanted.file}`);
  }
  if (wanted.kind === 'postgres' && m.keystore.kind === 'postgres' && wanted.url !== m.keystore.url) {
    log?.warn({ recorded: describeStore(m.keystore), using: describeStore(wanted) }, 'using the --store URL instead of the one in kmipd.json for this run');
    m.keystore = wanted;
  }
}

/** The database password: PGPASSWORD, else the manifest's passwordFile; undefined when neither. */
export function postgresPassword(dir: string, c: Extract<KeystoreConfig, { kind: 'postgres' }>): string | undefined {
  const env = process.env.PGPASSWORD;
  if (env !== undefined && env !== '') return env;
  if (c.passwordFile === undefined) return undefined;
  const file = isAbsolute(c.passwordFile) ? c.passwordFile : resolve(dir, c.passwordFile);
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new DataDirError(`cannot read the database password file ${file} ("passwordFile" in kmipd.json): ${(e as Error).message}`);
  }
}

/** How openKeyStore treats the schema (src/keystore/migrations.ts). */
export interface SchemaOptions {
  /** Pending migrations of an existing store: refused (default) or applied. */
  pending?: PendingMode;
  /** The migrations this build knows (tests simulate older and newer builds with it). */
  migrations?: readonly Migration[];
  appliedBy?: AppliedBy;
  /** Connections a PostgreSQL keystore keeps open at most (setting store.poolSize; SQLite: ignored). */
  poolSize?: number;
  /** SQLite: checkpoints on a worker thread, off the event loop (a long-running server); PostgreSQL: ignored. */
  backgroundCheckpoints?: boolean;
}

/**
 * Opens the keystore a manifest names: a new one is created at the newest schema; one with
 * pending migrations is refused (PendingMigrationError naming `kmipd migrate`) unless
 * `schema.pending` is 'apply'.
 */
export async function openKeyStore(dir: string, c: KeystoreConfig, log?: Logger, schema: SchemaOptions = {}): Promise<KeyStore> {
  if (c.kind === 'sqlite') {
    const o: SqliteStoreOptions = {};
    if (schema.pending) o.pending = schema.pending;
    if (schema.migrations) o.migrations = schema.migrations;
    if (schema.appliedBy) o.appliedBy = schema.appliedBy;
    if (schema.backgroundCheckpoints) {
      o.backgroundCheckpoints = true;
      o.onCheckpointFailure = (why) =>
        log?.error({ err: why }, 'background keystore checkpoints stopped; SQLite checkpoints inside commits again (slower, still safe)');
    }
    return openSqliteStore(join(dir, c.file), o);
  }
  // Loaded only when used: SQLite-only installations never load the PostgreSQL driver.
  const { openPostgresStore } = await import('../keystore/postgres.js');
  const opts: Parameters<typeof openPostgresStore>[1] = { baseDir: dir };
  if (schema.pending) opts.pending = schema.pending;
  if (schema.migrations) opts.migrations = schema.migrations;
  if (schema.appliedBy) opts.appliedBy = schema.appliedBy;
  if (schema.poolSize !== undefined) opts.poolSize = schema.poolSize;
  const password = postgresPassword(dir, c);
  if (password !== undefined) opts.password = password;
  let warned = 0;
  opts.onConnectionError = (err) => {
    // One line per burst: a database restart breaks every pooled connection at once.
    const now = Date.now();
    if (now - warned > 5000) log?.warn({ err: err.message }, 'lost a connection to the PostgreSQL keystore; reconnecting on the next request');
    warned = now;
  };
  return openPostgresStore(c.url, opts);
}

interface ClusterLockable {
  withClusterLock<R>(purpose: string, fn: () => Promise<R>): Promise<R>;
}

function lockable(store: KeyStore): store is KeyStore & ClusterLockable {
  return typeof (store as Partial<ClusterLockable>).withClusterLock === 'function';
}

/**
 * Runs `fn` (first-run initialisation: master-key canary, first root key) so that of several
 * nodes starting at once on one shared keystore only one does it at a time; the others then find
 * what it created. A store of one node only (SQLite) runs `fn` directly.
 */
export function withInitLock<R>(store: KeyStore, fn: () => Promise<R>): Promise<R> {
  return lockable(store) ? store.withClusterLock('init', fn) : fn();
}

/** The message a client reads when the keystore's database cannot be reached. */
export const UNAVAILABLE_MESSAGE = 'the key database is unavailable right now; retry later';

/**
 * The store as operations see it: a database outage becomes a KMIP error (General Failure with
 * a message saying to retry) instead of an internal error.
 */
export function guardStore(store: KeyStore): KeyStore {
  const map = (e: unknown): never => {
    if (e instanceof KeyStoreUnavailableError) throw new KmipError('GeneralFailure', UNAVAILABLE_MESSAGE);
    throw e;
  };
  return new Proxy(store, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]): unknown => {
        const r: unknown = (v as (...a: unknown[]) => unknown).apply(target, args);
        return r instanceof Promise ? r.catch(map) : r;
      };
    },
  });
}
