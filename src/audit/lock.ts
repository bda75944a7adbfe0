/**
 * One writer at a time for a data directory's audit log, across processes and within one.
 *
 * The server and admin CLI processes (`kmipd key revoke` while the server runs) append to the
 * same chain, and each record's hash depends on the one before it, so appends must be
 * serialised. Node offers no flock(); SQLite's locking is the portable lock already in the
 * project: `BEGIN IMMEDIATE` on an empty database file takes its write lock (a POSIX record
 * lock, dropped by the kernel when a process dies, so a crash never leaves a stale lock), and
 * `COMMIT` without changes releases it without writing anything. The file holds no data.
 *
 * Waiting is asynchronous (busy_timeout 0 and retries on a timer), so a server waiting for a
 * CLI writer keeps serving reads; within one process an async mutex queues writers first (two
 * connections of one process would otherwise wait on each other with the event loop blocked).
 */
import Database from 'better-sqlite3';
import { closeSync, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuditUnavailableError } from './types.js';

const processLocks = new Map<string, Promise<void>>();

/** Runs `fn` after every earlier call with the same `key` in this process has finished. */
export async function withProcessLock<R>(key: string, fn: () => Promise<R>): Promise<R> {
  const prev = processLocks.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const tail = prev.then(() => mine);
  processLocks.set(key, tail);
  await prev;
  try {
    return await fn();
  } finally {
    release();
    if (processLocks.get(key) === tail) processLocks.delete(key);
  }
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}

export class CrossProcessLock {
  private db: Database.Database | undefined;
  /** Prepared once: a taken-and-released lock costs two statement steps, no SQL parsing. */
  private begin: Database.Statement | undefined;
  private commit: Database.Statement | undefined;
  private held = false;

  constructor(
    private readonly path: string,
    private readonly timeoutMs: number,
  ) {}

  private open(): Database.Database {
    if (this.db) return this.db;
    try {
      closeSync(openSync(this.path, 'a', 0o600));
    } catch (e) {
      throw new AuditUnavailableError(`cannot create the audit lock ${this.path}: ${(e as Error).message}`);
    }
    const db = new Database(this.path, { fileMustExist: true });
    db.pragma('busy_timeout = 0');
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commit = db.prepare('COMMIT');
    this.db = db;
    return db;
  }

  async acquire(): Promise<void> {
    if (this.held) throw new Error('internal: audit lock taken twice');
    this.open();
    const begin = this.begin!;
    const deadline = Date.now() + this.timeoutMs;
    let wait = 1;
    for (;;) {
      try {
        begin.run();
        this.held = true;
        return;
      } catch (e) {
        if (!isBusy(e)) throw new AuditUnavailableError(`cannot take the audit lock ${this.path}: ${(e as Error).message}`);
        if (Date.now() >= deadline) throw new AuditUnavailableError(`the audit log is locked by another process for more than ${this.timeoutMs} ms`);
      }
      await sleep(wait);
      // Short waits: the server releases the lock between its groups only briefly.
      wait = Math.min(wait * 2, 5);
    }
  }

  release(): void {
    if (!this.held || !this.db) return;
    this.held = false;
    try {
      this.commit!.run();
    } catch {
      this.db.exec('ROLLBACK');
    }
  }

  close(): void {
    this.release();
    this.db?.close();
    this.db = undefined;
    this.begin = undefined;
    this.commit = undefined;
  }
}
