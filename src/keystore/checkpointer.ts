/**
 * SQLite checkpoints off the event loop, for a long-running server.
 *
 * A WAL database must now and then copy the pages of its write-ahead log back into the database
 * file: a checkpoint. By default SQLite runs one inside the COMMIT that takes the log past 1,000
 * pages, on the committing thread: here the event loop. A checkpoint syncs the WAL, copies the
 * pages, then syncs the database file: milliseconds on a local SSD, tens on network storage,
 * during which not one connection of the server is served.
 *
 * With background checkpoints the store turns automatic checkpoints off on its own connection
 * (wal_autocheckpoint = 0) and this worker thread, with its own connection to the same file,
 * runs PASSIVE checkpoints instead: at most one every `intervalMs` while commits keep coming,
 * and one `intervalMs` after the last commit. A PASSIVE checkpoint never blocks the writer or a
 * reader; it copies the frames no reader still needs, and what it leaves is copied by the next.
 * Durability is unchanged: commits are acknowledged once the store has flushed the WAL, as
 * before, and a checkpoint syncs the WAL before it copies from it (synchronous = NORMAL).
 *
 * Should the worker fail (it cannot open the file, it dies, or its checkpoints keep failing),
 * `onFailure` is told why, once, and the store turns SQLite's automatic checkpoints back on for
 * its own connection: the log never grows without bound.
 *
 * The worker is a few lines of CommonJS evaluated in the thread (no separate file to find from
 * both src/ under the test runner and dist/), loading the same better-sqlite3 as the store.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** At most one checkpoint this often while commits keep coming (and once this long after the last). */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 100;
/** Checkpoints that fail in a row before the worker is given up. */
const MAX_FAILURES = 3;
/** How long close() waits for a checkpoint in progress before it stops the worker. */
const CLOSE_WAIT_MS = 10_000;

/** Messages from the worker. */
type FromWorker =
  | { type: 'ready' }
  | { type: 'done'; busy: number; log: number; checkpointed: number }
  | { type: 'failed'; message: string };

const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
let db;
try {
  const Database = require(workerData.driver);
  db = new Database(workerData.file, { fileMustExist: true });
  // Never wait for a lock: a PASSIVE checkpoint that finds one busy reports it and is retried.
  db.pragma('busy_timeout = 0');
  db.pragma('synchronous = NORMAL');
  db.pragma('fullfsync = ON');
  db.pragma('checkpoint_fullfsync = ON');
  if (db.pragma('journal_mode', { simple: true }) !== 'wal') throw new Error('the database is not in WAL mode');
} catch (e) {
  parentPort.postMessage({ type: 'failed', message: String((e && e.message) || e) });
  process.exit(1);
}
parentPort.postMessage({ type: 'ready' });
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    parentPort.postMessage({ type: 'done', busy: r.busy, log: r.log, checkpointed: r.checkpointed });
  } catch (e) {
    parentPort.postMessage({ type: 'failed', message: String((e && e.message) || e) });
  }
});
`;

export interface CheckpointerOptions {
  intervalMs?: number;
  /** Told once when background checkpoints stop working (the store falls back to SQLite's own). */
  onFailure: (why: string) => void;
}

export interface CheckpointStats {
  /** Checkpoints asked of the worker, and finished by it (fully or not). */
  requested: number;
  completed: number;
  /** Checkpoints that stopped short (SQLITE_BUSY), and that failed. */
  busy: number;
  failed: number;
  /** Frames in the WAL, and frames copied, at the last checkpoint. */
  lastLogFrames: number;
  lastCheckpointedFrames: number;
}

export class Checkpointer {
  readonly stats: CheckpointStats = { requested: 0, completed: 0, busy: 0, failed: 0, lastLogFrames: 0, lastCheckpointedFrames: 0 };
  readonly #intervalMs: number;
  readonly #onFailure: (why: string) => void;
  #worker: Worker | undefined;
  #running = false;
  /** Commits since the last checkpoint was asked for. */
  #dirty = false;
  #timer: NodeJS.Timeout | undefined;
  #failuresInARow = 0;
  #stopped = false;
  /** Resolves when the checkpoint in progress (if any) is done. */
  #idle: (() => void)[] = [];

  private constructor(opts: CheckpointerOptions) {
    this.#intervalMs = Math.max(1, opts.intervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS);
    this.#onFailure = opts.onFailure;
  }

  /** Starts the worker on `file` (a WAL database); rejects when it cannot open it. */
  static async start(file: string, opts: CheckpointerOptions): Promise<Checkpointer> {
    const c = new Checkpointer(opts);
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, driver } });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: FromWorker): void => {
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (m.type === 'ready') resolve();
        else reject(new Error(m.type === 'failed' ? m.message : `unexpected message ${m.type}`));
      };
      const onError = (e: Error): void => reject(e);
      const onExit = (code: number): void => reject(new Error(`the checkpoint worker exited with ${code}`));
      worker.once('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
    }).catch(async (e: unknown) => {
      await worker.terminate();
      throw e;
    });
    c.#worker = worker;
    worker.on('message', (m: FromWorker) => c.#onMessage(m));
    worker.on('error', (e) => c.#fail(`the checkpoint worker failed: ${e.message}`));
    worker.on('exit', (code) => {
      if (!c.#stopped) c.#fail(`the checkpoint worker exited with ${code}`);
    });
    // An idle worker does not keep the process alive (the store's close() ends it); one that is
    // checkpointing does, until it answers.
    worker.unref();
    return c;
  }

  /** Background checkpoints still run (false once failed or closed). */
  get active(): boolean {
    return !this.#stopped;
  }

  /** The store committed (and flushed) a transaction: a checkpoint is due within intervalMs. */
  committed(): void {
    if (this.#stopped) return;
    this.#dirty = true;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#running || !this.#dirty || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#request();
    }, this.#intervalMs);
    this.#timer.unref();
  }

  #request(): void {
    if (this.#stopped || this.#running || !this.#dirty || !this.#worker) return;
    this.#dirty = false;
    this.#running = true;
    this.stats.requested++;
    this.#worker.ref();
    this.#worker.postMessage('checkpoint');
  }

  #onMessage(m: FromWorker): void {
    if (m.type === 'ready') return;
    this.#running = false;
    this.#worker?.unref();
    if (m.type === 'done') {
      this.#failuresInARow = 0;
      this.stats.completed++;
      if (m.busy !== 0) this.stats.busy++;
      this.stats.lastLogFrames = m.log;
      this.stats.lastCheckpointedFrames = m.checkpointed;
      // Frames left behind (a reader still needed them) are copied by the next checkpoint.
      if (m.busy !== 0 || m.checkpointed < m.log) this.#dirty = true;
    } else {
      this.stats.failed++;
      this.#dirty = true;
      if (++this.#failuresInARow >= MAX_FAILURES) {
        this.#fail(`${MAX_FAILURES} checkpoints in a row failed, the last with: ${m.message}`);
        return;
      }
    }
    for (const r of this.#idle.splice(0)) r();
    this.#schedule();
  }

  #fail(why: string): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#running = false;
    for (const r of this.#idle.splice(0)) r();
    void this.#worker?.terminate();
    this.#worker = undefined;
    this.#onFailure(why);
  }

  /** Waits for the checkpoint in progress, if any (tests). */
  async settled(): Promise<void> {
    if (!this.#running) return;
    await new Promise<void>((r) => this.#idle.push(r));
  }

  /** Runs a checkpoint now (after the one running, if any) and waits for it (tests). */
  async checkpointNow(): Promise<void> {
    await this.settled();
    if (this.#stopped) return;
    this.#dirty = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#request();
    await this.settled();
  }

  /** Lets a checkpoint in progress finish, then ends the worker. Idempotent. */
  async close(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const worker = this.#worker;
    if (this.#stopped || !worker) return;
    await Promise.race([this.settled(), new Promise<void>((r) => setTimeout(r, CLOSE_WAIT_MS).unref())]);
    this.#stopped = true;
    this.#worker = undefined;
    const exited = new Promise<void>((r) => worker.once('exit', () => r()));
    worker.ref();
    worker.postMessage('close');
    const stop = setTimeout(() => void worker.terminate(), CLOSE_WAIT_MS);
    await exited;
    clearTimeout(stop);
  }
}
