/**
 * The client trust store shared by the nodes of a PostgreSQL deployment.
 *
 * Each node keeps its trust store where `kmipd trust ...` and the server's TrustRuntime expect
 * it, DATA/trust/index.json (src/pki/trust.ts). With a PostgreSQL keystore the entries are also
 * kept in the database's `trust` table, the copy every node agrees on, and each running node
 * synchronises the two every TRUST_POLL_MS:
 *
 * - changes made to the local file since the last synchronisation (`kmipd trust add-ca |
 *   add-cert | remove` on this node, also while the server was stopped) are applied to the table;
 * - the table is then written to the local file when they differ; the TrustRuntime reloads it
 *   (it is told at once, and it also watches the file), so connections use the new trust
 *   without a restart, and connections it no longer accepts are closed.
 *
 * "Since the last synchronisation" is judged against DATA/trust/.db-sync.json, the set of
 * fingerprints the file and the table last agreed on, and the store it was agreed with. Without
 * it (a node that never synchronised with this database) the table wins, except for a database
 * whose table was never initialised (meta `trust.initialized`): then the file seeds it (the first
 * node, or a store just restored from a SQLite backup).
 *
 * The file is written under DATA/trust/.lock, the lock `kmipd trust` takes, and only when it is
 * still the version the round read, so a command's change is never overwritten unseen (it is
 * pushed on the next round). Two nodes adding the same name at once: the first to reach the
 * table wins; the other's entry is dropped with a warning.
 */
import { closeSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ensurePrivateDir, writeFileAtomic } from '../pki/store.js';
import { TRUST_FORMAT, readTrustEntries, trustPaths, type TrustEntry } from '../pki/trust.js';
import type { KeyStore } from '../keystore/types.js';
import { TRUST_POLL_MS } from './trust-reload.js';

export const SYNC_STATE_FILE = '.db-sync.json';
export const META_TRUST_INITIALIZED = 'trust.initialized';
const LOCK_STALE_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

interface TrustRow {
  sha256: string;
  name: string;
  entry: string;
  addedAt: number;
}

/** What a store needs to share trust (the PostgreSQL store has it; SQLite does not). */
export interface SharedTrustStore {
  trustRows(): Promise<TrustRow[]>;
  changeTrust(add: readonly TrustRow[], remove: readonly string[]): Promise<{ skipped: string[] }>;
  readonly display: string;
  readonly schema: string;
}

export function sharesTrust(store: KeyStore): store is KeyStore & SharedTrustStore {
  const s = store as Partial<SharedTrustStore>;
  return typeof s.trustRows === 'function' && typeof s.changeTrust === 'function';
}

interface SyncState {
  format: 1;
  store: string;
  sha256: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sameEntries(a: readonly TrustEntry[], b: readonly TrustEntry[]): boolean {
  if (a.length !== b.length) return false;
  const key = (e: TrustEntry) => `${e.sha256}\u0000${e.name}\u0000${e.kind}`;
  const ka = a.map(key).sort();
  const kb = b.map(key).sort();
  return ka.every((k, i) => k === kb[i]);
}

function rowsSignature(rows: readonly TrustRow[]): string {
  return JSON.stringify(rows.map((r) => [r.sha256, r.name, r.addedAt]));
}

function rowOf(e: TrustEntry): TrustRow {
  const t = Date.parse(e.addedAt);
  return { sha256: e.sha256, name: e.name, entry: JSON.stringify(e), addedAt: Number.isFinite(t) ? t : Date.now() };
}

function entryOf(r: TrustRow): TrustEntry | undefined {
  let e: unknown;
  try {
    e = JSON.parse(r.entry);
  } catch {
    return undefined;
  }
  const o = e as Record<string, unknown>;
  const strings = ['name', 'sha256', 'subject', 'issuer', 'notBefore', 'notAfter', 'addedAt', 'pem'];
  if (typeof o !== 'object' || o === null || (o.kind !== 'ca' && o.kind !== 'pinned') || strings.some((k) => typeof o[k] !== 'string')) return undefined;
  if (o.sha256 !== r.sha256 || o.name !== r.name) return undefined;
  return o as unknown as TrustEntry;
}

export interface TrustSyncResult {
  /** Local changes applied to the database. */
  pushed: { added: string[]; removed: string[]; skipped: string[] };
  /** Whether the local file was rewritten from the database. */
  pulled: boolean;
}

export class TrustSync {
  readonly #dir: string;
  readonly #store: KeyStore & SharedTrustStore;
  readonly #log: Logger;
  readonly #onChange: () => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #closed = false;
  /** Signature of the file and of the rows at the last successful synchronisation. */
  #lastFileSig = '';
  #lastRowsSig = '';
  #failing = false;

  private constructor(dir: string, store: KeyStore & SharedTrustStore, log: Logger, onChange: () => void) {
    this.#dir = dir;
    this.#store = store;
    this.#log = log;
    this.#onChange = onChange;
  }

  /**
   * Synchronises once (so that the server starts on the shared trust) and keeps doing it every
   * `pollMs`. Undefined for a store that does not share trust. `onChange` is called after the
   * local file was rewritten.
   */
  static async start(
    dir: string,
    store: KeyStore,
    log: Logger,
    opts: { pollMs?: number; onChange?: () => void } = {},
  ): Promise<TrustSync | undefined> {
    if (!sharesTrust(store)) return undefined;
    const s = new TrustSync(dir, store, log, opts.onChange ?? (() => undefined));
    await s.syncOnce();
    s.#timer = setInterval(() => s.#tick(), opts.pollMs ?? TRUST_POLL_MS);
    s.#timer.unref();
    return s;
  }

  get #storeId(): string {
    return `${this.#store.display}#${this.#store.schema}`;
  }

  #tick(): void {
    if (this.#running || this.#closed) return;
    this.#running = this.syncOnce()
      .then(() => {
        if (this.#failing) this.#log.info('trust synchronisation with the database works again');
        this.#failing = false;
      })
      .catch((e: unknown) => {
        if (!this.#failing) this.#log.warn({ err: (e as Error).message }, 'cannot synchronise the trust store with the database; retrying');
        this.#failing = true;
      })
      .finally(() => {
        this.#running = undefined;
      });
  }

  #fileSig(): string {
    try {
      const s = statSync(trustPaths(this.#dir).index);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return '-';
    }
  }

  #readState(): SyncState | undefined {
    try {
      const s = JSON.parse(readFileSync(join(trustPaths(this.#dir).dir, SYNC_STATE_FILE), 'utf8')) as SyncState;
      if (s.format !== 1 || s.store !== this.#storeId || !Array.isArray(s.sha256)) return undefined;
      return s;
    } catch {
      return undefined;
    }
  }

  #writeState(shas: string[]): void {
    const s: SyncState = { format: 1, store: this.#storeId, sha256: [...shas].sort() };
    ensurePrivateDir(trustPaths(this.#dir).dir);
    writeFileAtomic(join(trustPaths(this.#dir).dir, SYNC_STATE_FILE), JSON.stringify(s, null, 2) + '\n', 0o600);
  }

  /** The lock of `kmipd trust` (DATA/trust/.lock: created exclusively, stale after 30 s). */
  async #withLock<R>(fn: () => Promise<R>): Promise<R> {
    const p = trustPaths(this.#dir);
    ensurePrivateDir(p.dir);
    const deadline = Date.now() + LOCK_WAIT_MS;
    let fd: number | undefined;
    while (fd === undefined) {
      try {
        fd = openSync(p.lock, 'wx', 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        try {
          if (Date.now() - statSync(p.lock).mtimeMs > LOCK_STALE_MS) rmSync(p.lock, { force: true });
        } catch {
          // gone meanwhile
        }
        if (Date.now() > deadline) throw new Error(`${p.lock} is held by another kmipd command`);
        await sleep(50);
      }
    }
    try {
      return await fn();
    } finally {
      closeSync(fd);
      rmSync(p.lock, { force: true });
    }
  }

  /** One synchronisation (see the file comment). */
  async syncOnce(): Promise<TrustSyncResult> {
    const result: TrustSyncResult = { pushed: { added: [], removed: [], skipped: [] }, pulled: false };
    const store = this.#store;
    // Cheap check first: nothing changed on either side since the last time.
    const rows0 = await store.trustRows();
    const fileSig = this.#fileSig();
    if (fileSig === this.#lastFileSig && rowsSignature(rows0) === this.#lastRowsSig) return result;

    const local = readTrustEntries(this.#dir);
    const state = this.#readState();
    let add: TrustEntry[] = [];
    let remove: string[] = [];
    if (state !== undefined) {
      const base = new Set(state.sha256);
      const localShas = new Set(local.map((e) => e.sha256));
      add = local.filter((e) => !base.has(e.sha256));
      remove = state.sha256.filter((sha) => !localShas.has(sha));
    } else if ((await store.getMeta(META_TRUST_INITIALIZED)) === undefined) {
      const remoteShas = new Set(rows0.map((r) => r.sha256));
      add = local.filter((e) => !remoteShas.has(e.sha256));
    }
    if (add.length > 0 || remove.length > 0) {
      const { skipped } = await store.changeTrust(add.map(rowOf), remove);
      result.pushed = { added: add.map((e) => e.name).filter((n) => !skipped.includes(n)), removed: remove, skipped };
      for (const n of skipped) this.#log.warn({ name: n }, 'trust: an entry added here lost to one with the same name or certificate added on another node');
      if (result.pushed.added.length || remove.length) {
        this.#log.info({ added: result.pushed.added, removed: remove.length }, 'trust: local changes applied to the shared trust store');
      }
    }
    if ((await store.getMeta(META_TRUST_INITIALIZED)) === undefined) await store.setMeta(META_TRUST_INITIALIZED, new Date().toISOString());
    const rows = await store.trustRows();
    const remote: TrustEntry[] = [];
    for (const r of rows) {
      const e = entryOf(r);
      if (e === undefined) this.#log.error({ name: r.name }, 'trust: a malformed entry in the database is ignored');
      else remote.push(e);
    }
    if (!sameEntries(local, remote)) {
      // Only the file write holds the lock of `kmipd trust`, and only if the file is still the
      // one read above: a change made meanwhile is pushed on the next round instead.
      const written = await this.#withLock(async () => {
        if (this.#fileSig() !== fileSig) return false;
        writeFileAtomic(trustPaths(this.#dir).index, JSON.stringify({ format: TRUST_FORMAT, entries: remote }, null, 2) + '\n', 0o644);
        return true;
      });
      if (!written) return result;
      result.pulled = true;
      this.#log.info({ entries: remote.length }, 'trust: the shared trust store changed; local copy updated');
    }
    this.#writeState(remote.map((e) => e.sha256));
    this.#lastFileSig = this.#fileSig();
    this.#lastRowsSig = rowsSignature(rows);
    if (result.pulled) this.#onChange();
    return result;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
  }
}
