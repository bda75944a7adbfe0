/**
 * `kmipd migrate [--data DIR] [--store URL] [--dry-run] [--json]`: the keystore's schema
 * migrations, applied and pending (src/keystore/migrations.ts).
 *
 * Without --dry-run the pending migrations are applied, all in one transaction (SQLite:
 * IMMEDIATE; PostgreSQL: holding the cluster-wide migration lock, so running it on two nodes at
 * once applies them once), each reported; a failing one leaves the store at its old version and
 * is named. With --dry-run nothing is written (SQLite is opened read-only; PostgreSQL is only
 * read). Exit status: 0 when the store is (now) at a version this kmipd serves, 1 otherwise.
 *
 * The admin record of the command goes to the audit trail (src/cli/main.ts), except for dry runs.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { defaultDataDir } from '../config/index.js';
import {
  MIGRATIONS,
  defaultAppliedBy,
  migrate,
  sqliteSchemaReport,
  type AppliedBy,
  type MigrateResult,
  type Migration,
  type SchemaReport,
} from '../keystore/migrations.js';
import type { NodeRow } from '../keystore/nodes.js';
import { PG_MIGRATIONS } from '../keystore/postgres-migrations.js';
import { sqliteNodes } from '../keystore/sqlite.js';
import { DataDirError, readManifest, type KeystoreConfig } from '../server/datadir.js';
import { readNodeId } from '../server/heartbeat.js';
import { describeStore, postgresPassword, storeConfigFromArg } from '../server/store.js';
import { writer } from './output.js';

/** A keystore opened for looking at (and, unless read-only, migrating) its schema and node table. */
export interface SchemaTool {
  backend: string;
  /** The store, without secrets. */
  display: string;
  report(): Promise<SchemaReport>;
  apply(by: AppliedBy): Promise<MigrateResult>;
  listNodes(): Promise<{ now: number; nodes: NodeRow[] }>;
  close(): Promise<void>;
}

export interface SchemaToolOptions {
  /** `--store`: another store than the manifest's (postgres://..., sqlite:FILE). */
  store?: string;
  /** Open SQLite read-only (dry runs, status). */
  readonly?: boolean;
  /** The migrations this build knows (tests simulate other builds). */
  migrations?: readonly Migration[];
}

/** The keystore of data directory `dir` (or the one `--store` names). */
export function storeOf(dir: string, storeArg?: string): KeystoreConfig {
  const m = readManifest(dir);
  if (storeArg !== undefined) return storeConfigFromArg(storeArg, m?.keystore);
  if (m === undefined) throw new DataDirError(`no kmipd data directory at ${dir} (no kmipd.json); give --data DIR, or --store URL`);
  return m.keystore;
}

export async function openSchemaTool(dir: string, opts: SchemaToolOptions = {}): Promise<SchemaTool> {
  const cfg = storeOf(dir, opts.store);
  if (cfg.kind === 'sqlite') {
    const file = join(dir, cfg.file);
    if (!existsSync(file)) throw new DataDirError(`there is no keystore at ${file} yet: \`kmipd serve\` creates it at the newest schema`);
    const migrations = opts.migrations ?? MIGRATIONS;
    const db = new Database(file, { fileMustExist: true, readonly: opts.readonly === true });
    db.pragma('busy_timeout = 5000');
    return {
      backend: 'sqlite',
      display: describeStore(cfg).replace(/^sqlite:/, `sqlite:${dir}/`),
      report: async () => sqliteSchemaReport(db, migrations),
      apply: async (by) => migrate(db, migrations, { pending: 'apply', by }),
      listNodes: async () => sqliteNodes(db),
      close: async () => {
        db.close();
      },
    };
  }
  const { openPostgresStore } = await import('../keystore/postgres.js');
  const o: Parameters<typeof openPostgresStore>[1] = { baseDir: dir, pending: 'inspect', poolSize: 2, migrations: opts.migrations ?? PG_MIGRATIONS };
  const password = postgresPassword(dir, cfg);
  if (password !== undefined) o.password = password;
  const store = await openPostgresStore(cfg.url, o);
  return {
    backend: 'postgres',
    display: store.display,
    report: () => store.schemaReport(),
    apply: (by) => store.applyMigrations(by),
    listNodes: async () => {
      const r = await store.schemaReport();
      if (r.current < 2) return { now: Date.now(), nodes: [] };
      return store.listNodes();
    },
    close: () => store.close(),
  };
}

export interface MigrateOutcome {
  store: string;
  backend: string;
  dryRun: boolean;
  before: SchemaReport;
  /** Applied by this run (empty for a dry run or nothing pending). */
  applied: { version: number; name: string }[];
  after: SchemaReport;
  /** Whether this kmipd serves the store as it is now. */
  ok: boolean;
}

/** What `kmipd migrate` does, for the CLI and for tests (which give other migration lists). */
export async function runMigrate(dir: string, opts: { store?: string; dryRun?: boolean; migrations?: readonly Migration[]; by?: AppliedBy } = {}): Promise<MigrateOutcome> {
  const toolOpts: SchemaToolOptions = { readonly: opts.dryRun === true };
  if (opts.store !== undefined) toolOpts.store = opts.store;
  if (opts.migrations !== undefined) toolOpts.migrations = opts.migrations;
  const tool = await openSchemaTool(dir, toolOpts);
  try {
    const before = await tool.report();
    let applied: MigrateOutcome['applied'] = [];
    let after = before;
    // A new (empty) PostgreSQL schema is created here too: e.g. by a database owner before the
    // nodes, which then need no right to create tables, start.
    if (!opts.dryRun && (before.state === 'pending' || before.state === 'new')) {
      applied = (await tool.apply(opts.by ?? defaultAppliedBy(readNodeId(dir) ?? 'kmipd-migrate'))).applied;
      after = await tool.report();
    }
    const ok = after.state === 'current' || after.state === 'compatible-newer';
    return { store: tool.display, backend: tool.backend, dryRun: opts.dryRun === true, before, applied, after, ok };
  } finally {
    await tool.close();
  }
}

function entryLine(e: SchemaReport['entries'][number]): string {
  const flags = [e.compatible ? 'compatible' : '', e.automatic ? 'automatic' : ''].filter(Boolean).join(', ');
  let when = '';
  if (e.appliedAt !== undefined) {
    when = e.appliedAt === null ? '  (before the version table)' : `  ${e.appliedAt} by ${e.appliedBy ?? '?'} (kmipd ${e.kmipdVersion ?? '?'})`;
  }
  const mismatch = e.checksumMismatch ? '  WARNING: recorded checksum differs from this build\'s SQL' : '';
  return `  ${e.status.padEnd(8)} ${String(e.version).padStart(3)}  ${e.name}${flags ? ` [${flags}]` : ''}${when}${mismatch}\n`;
}

export function migrateText(o: MigrateOutcome): string {
  const b = o.before;
  let s = `keystore ${o.store}: schema version ${b.current}; this kmipd knows ${b.known}\n`;
  for (const e of b.entries) s += entryLine(e);
  const pending = b.entries.filter((e) => e.status === 'pending');
  if (b.state === 'new') s += 'the keystore has no schema yet: kmipd migrate (or the first `kmipd serve`) creates it at the newest version\n';
  if (o.dryRun) {
    if (b.state === 'pending' || b.state === 'new') s += `dry run: ${pending.length} migration${pending.length === 1 ? '' : 's'} would be applied in one transaction (nothing was changed)\n`;
  } else {
    for (const a of o.applied) s += `applied ${a.version} "${a.name}"\n`;
    if (o.applied.length > 0) s += `keystore now at schema version ${o.after.current}\n`;
  }
  if (b.state === 'current' && o.applied.length === 0) s += 'up to date: nothing to migrate\n';
  if (o.after.state === 'compatible-newer') s += `the keystore is one compatible version ahead (migrated by a newer kmipd): this kmipd keeps serving it; upgrade it\n`;
  if (o.after.problem !== undefined && !(o.dryRun && o.after.state === 'pending')) s += `${o.after.problem}\n`;
  return s;
}

export function register(program: Command): void {
  program
    .command('migrate')
    .description('list the keystore schema migrations, applied and pending, and apply the pending ones (all in one transaction)')
    .option('--data <dir>', 'kmipd data directory (default ./kmipd-data, or KMIPD_DATA)')
    .option('--store <store>', 'the keystore, when not the one in DIR/kmipd.json: postgres://USER@HOST:PORT/DB[?schema=...] or sqlite:FILE')
    .option('--dry-run', 'show what would be applied; change nothing')
    .option('--json', 'JSON output')
    .action(async (opts: { data?: string; store?: string; dryRun?: boolean; json?: boolean }, cmd: Command) => {
      if (opts.data === undefined) cmd.setOptionValue('data', defaultDataDir()); // the audit hook reads it
      const dir = cmd.opts<{ data: string }>().data;
      let o: MigrateOutcome;
      try {
        o = await runMigrate(dir, { ...(opts.store !== undefined ? { store: opts.store } : {}), dryRun: opts.dryRun === true });
      } catch (e) {
        // Not cmd.error (which exits at once): the audit hook records the failure.
        const err = cmd.configureOutput().writeErr ?? ((s: string) => process.stderr.write(s));
        err(`kmipd migrate: ${(e as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      writer(cmd)(opts.json ? JSON.stringify(o, null, 2) + '\n' : migrateText(o));
      if (!o.ok && !(o.dryRun && (o.before.state === 'pending' || o.before.state === 'new'))) process.exitCode = 1;
    });
}
