/**
 * When each object was last used, and by whom; and the keys nobody used for a long time.
 *
 * "Used" is a successful Get (how vCenter fetches a key to unlock a VM) or a cryptographic
 * operation with the object (Encrypt, Decrypt, Sign, Signature Verify, MAC, MAC Verify).
 *
 * Cost on the hot path: one Map.set per such batch item, nothing else. Every `flushSeconds`
 * (default 60) and when the server stops, the map is written to the keystore as meta rows
 * `usage.<uid>` = {"at","by","op"} (one row per object, overwritten; the write skips a row that
 * another node already moved later). A server that dies loses at most one interval of
 * last-use times: for a question asked in months ("unused for 180 days"), that is noise.
 *
 * Why meta rows and not a column of the objects table: no schema migration on either backend,
 * no write to the object row (its revision drives optimistic concurrency, and a last-use write
 * must never make a concurrent Modify fail), and SQLite's group commit folds one flush into one
 * transaction. Trade-off: `kmipd key stale` reads one meta row per object.
 */
import type { Logger } from 'pino';
import type { KeyStore } from '../keystore/types.js';
import type { ExecutedItem } from '../server/executor.js';
import { Enums } from '../spec/index.js';
import type { ServerState } from '../server/server.js';
import { type KeyRow, changeLifecycle, listKeys } from '../cli/key.js';
import { USAGE_PREFIX } from './meta-keys.js';

/** Operations that count as using an object. */
export const USE_OPERATIONS: ReadonlySet<string> = new Set(['Get', 'Encrypt', 'Decrypt', 'Sign', 'SignatureVerify', 'MAC', 'MACVerify']);
/** Bound on last-use times held between flushes (a flush starts early beyond it). */
const MAX_PENDING = 100_000;

export interface LastUse {
  at: Date;
  by: string;
  op: string;
}

export function parseLastUse(v: string | undefined): LastUse | undefined {
  if (v === undefined) return undefined;
  try {
    const o = JSON.parse(v) as { at?: unknown; by?: unknown; op?: unknown };
    if (typeof o.at !== 'string') return undefined;
    const at = new Date(o.at);
    if (Number.isNaN(at.getTime())) return undefined;
    return { at, by: typeof o.by === 'string' ? o.by : '?', op: typeof o.op === 'string' ? o.op : '?' };
  } catch {
    return undefined;
  }
}

export function lastUse(store: Pick<KeyStore, 'getMeta'>, uid: string): Promise<LastUse | undefined> {
  return store.getMeta(USAGE_PREFIX + uid).then(parseLastUse);
}

export interface UsageTrackerOptions {
  flushSeconds: number;
  log: Logger;
  clock?: () => number;
  /** Called when a flush fails (metrics). */
  onFlushError?: () => void;
}

export class UsageTracker {
  private pending = new Map<string, { at: number; by: string; op: string }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private readonly clock: () => number;

  constructor(
    private readonly store: Pick<KeyStore, 'getMeta' | 'setMeta'>,
    private readonly opts: UsageTrackerOptions,
  ) {
    this.clock = opts.clock ?? Date.now;
    if (opts.flushSeconds > 0) {
      this.timer = setInterval(() => void this.flush(), opts.flushSeconds * 1000);
      this.timer.unref();
    }
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** The executor's items: remembers the successful uses. O(1) per item, no I/O. */
  noteItems(items: readonly ExecutedItem[]): void {
    if (this.closed) return;
    for (const it of items) {
      if (it.result !== 'Success' || it.uid === undefined || !USE_OPERATIONS.has(it.operation)) continue;
      this.note(it.uid, it.identity, it.operation);
    }
  }

  note(uid: string, by: string, op: string): void {
    this.pending.set(uid, { at: this.clock(), by, op });
    if (this.pending.size >= MAX_PENDING) void this.flush();
  }

  /** Writes what is pending; concurrent calls share one flush. Never rejects. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.pending.size > 0 ? this.flush() : undefined));
    if (this.pending.size === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = this.write(batch).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async write(batch: Map<string, { at: number; by: string; op: string }>): Promise<void> {
    const failed: [string, { at: number; by: string; op: string }][] = [];
    let firstError: unknown;
    await Promise.all(
      [...batch].map(async ([uid, u]) => {
        try {
          const cur = await lastUse(this.store, uid);
          if (cur && cur.at.getTime() >= u.at) return; // another node recorded a later use
          await this.store.setMeta(USAGE_PREFIX + uid, JSON.stringify({ at: new Date(u.at).toISOString(), by: u.by, op: u.op }));
        } catch (e) {
          firstError ??= e;
          failed.push([uid, u]);
        }
      }),
    );
    if (failed.length > 0) {
      this.opts.onFlushError?.();
      this.opts.log.warn({ err: (firstError as Error | undefined)?.message, objects: failed.length }, 'cannot record last-use times in the keystore; will retry');
      if (!this.closed) for (const [uid, u] of failed) if (!this.pending.has(uid)) this.pending.set(uid, u);
    }
  }

  /** Stops the timer and writes what is pending (the keystore must still be open). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
    this.closed = true;
  }
}

// ---- stale keys ----------------------------------------------------------------------------------

const REVOCABLE = new Set(['PreActive', 'Active']);

export interface StaleKey extends KeyRow {
  lastUsed: string | null;
  lastUsedBy: string | null;
  /** Whole days since the last use, or since creation when never used. */
  idleDays: number;
}

/**
 * Keys (Pre-Active or Active: those still usable) whose last use, or creation when never used,
 * is at least `unusedForMs` before `now`.
 */
export async function staleKeys(state: ServerState, unusedForMs: number, now: Date = new Date()): Promise<StaleKey[]> {
  const out: StaleKey[] = [];
  for (const r of await listKeys(state)) {
    if (!REVOCABLE.has(r.state.replace(/[^A-Za-z]/g, ''))) continue;
    const u = await lastUse(state.store, r.uid);
    const since = u ? u.at : new Date(r.created);
    const idle = now.getTime() - since.getTime();
    if (idle < unusedForMs) continue;
    out.push({
      ...r,
      lastUsed: u ? u.at.toISOString().replace(/\.\d{3}Z$/, 'Z') : null,
      lastUsedBy: u ? u.by : null,
      idleDays: Math.floor(idle / 86_400_000),
    });
  }
  return out;
}

export interface RevokeOutcome {
  uid: string;
  ok: boolean;
  before?: string;
  after?: string;
  error?: string;
}

/** Revokes each key (the KMIP Revoke handler decides, as for `kmipd key revoke`). */
export async function revokeKeys(state: ServerState, uids: readonly string[], reason: string, message: string): Promise<RevokeOutcome[]> {
  const out: RevokeOutcome[] = [];
  for (const uid of uids) {
    try {
      const r = await changeLifecycle(state, 'revoke', uid, { reason, message });
      out.push({ uid, ok: true, before: r.before, after: r.after });
    } catch (e) {
      out.push({ uid, ok: false, error: (e as Error).message });
    }
  }
  return out;
}

/** The revocation reason `key stale --revoke` uses unless told otherwise. */
export const STALE_REVOCATION_REASON: keyof typeof Enums.RevocationReasonCode = 'CessationOfOperation';
