/**
 * When each object was last fetched and when its attributes were last read, and by whom; when
 * each client identity was last seen.
 *
 * - Fetch: a successful Get (how vCenter fetches a key to unlock a VM) or a cryptographic
 *   operation with the object (Encrypt, Decrypt, Sign, Signature Verify, MAC, MAC Verify). Such
 *   a request refused only because of the object's state (Wrong Key Lifecycle State, e.g. an
 *   Encrypt with a Deactivated key) counts too, marked "refused": someone still wants the key.
 * - Attribute read: a successful Get Attributes or Get Attribute List (Locate matches do not
 *   count).
 * - Seen: any request of an identity, whatever its result.
 *
 * Cost on the hot path: a few Map.set per batch item, nothing else. Every `flushSeconds`
 * (default 60) and when the server stops, the maps are written to the keystore as meta rows
 * (src/admin/meta-keys.ts): `usage.<uid>` and `read.<uid>` = {"at","by","op"}, `seen.<identity>`
 * = {"at","op"}, one row per object or identity, overwritten; a write skips a row that another
 * node already moved later. New identities are added to the `clients.index` row (so `kmipd
 * client list` can find them without a scan). Memory is bounded: beyond MAX_PENDING entries a
 * flush starts early, and beyond HARD_MAX_PENDING (a keystore too slow to keep up) new entries
 * are dropped and counted. A server that dies loses at most one interval: for a question asked in
 * months ("unused for 180 days"), that is noise.
 *
 * Why meta rows and not a column of the objects table: no schema migration on either backend,
 * no write to the object row (its revision drives optimistic concurrency, and a last-use write
 * must never make a concurrent Modify fail), and SQLite's group commit folds one flush into one
 * transaction. Trade-off: listing reads two meta rows per object.
 */
import type { Logger } from 'pino';
import type { KeyStore } from '../keystore/types.js';
import type { ExecutedItem } from '../server/executor.js';
import { ATTR_READ_PREFIX, CLIENTS_INDEX, SEEN_PREFIX, USAGE_PREFIX } from './meta-keys.js';

/** Operations that fetch an object's material or use it. */
export const USE_OPERATIONS: ReadonlySet<string> = new Set(['Get', 'Encrypt', 'Decrypt', 'Sign', 'SignatureVerify', 'MAC', 'MACVerify']);
/** Operations that read an object's attributes. */
export const ATTRIBUTE_READ_OPERATIONS: ReadonlySet<string> = new Set(['GetAttributes', 'GetAttributeList']);
/** A failed use that still says the key is wanted: the object exists, only its state refused it. */
const REFUSED_BY_STATE = 'WrongKeyLifecycleState';
/** Entries held between flushes beyond which a flush starts early. */
const MAX_PENDING = 100_000;
/** Entries held beyond which new ones are dropped (the keystore cannot keep up). */
const HARD_MAX_PENDING = 4 * MAX_PENDING;
/** Identities this process knows to be in the clients index (bounded; cleared when full). */
const MAX_KNOWN_CLIENTS = 10_000;

export interface LastUse {
  at: Date;
  by: string;
  op: string;
  /** Set when the request was refused because of the object's state (it still shows demand). */
  refused?: string;
}

export interface LastSeen {
  at: Date;
  op: string;
}

interface Entry {
  at: number;
  by: string;
  op: string;
  refused?: string;
}

function parseJson(v: string | undefined): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  try {
    const o = JSON.parse(v) as unknown;
    return o !== null && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function dateOf(v: unknown): Date | undefined {
  if (typeof v !== 'string') return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** A `usage.` or `read.` row (rows written before `refused` existed read the same). */
export function parseLastUse(v: string | undefined): LastUse | undefined {
  const o = parseJson(v);
  const at = dateOf(o?.at);
  if (!o || !at) return undefined;
  const u: LastUse = { at, by: typeof o.by === 'string' ? o.by : '?', op: typeof o.op === 'string' ? o.op : '?' };
  if (typeof o.refused === 'string') u.refused = o.refused;
  return u;
}

export function parseLastSeen(v: string | undefined): LastSeen | undefined {
  const o = parseJson(v);
  const at = dateOf(o?.at);
  if (!o || !at) return undefined;
  return { at, op: typeof o.op === 'string' ? o.op : '?' };
}

type MetaReader = Pick<KeyStore, 'getMeta'>;

/** The last material fetch or cryptographic use of an object. */
export function lastUse(store: MetaReader, uid: string): Promise<LastUse | undefined> {
  return store.getMeta(USAGE_PREFIX + uid).then(parseLastUse);
}

/** The last attribute read (Get Attributes, Get Attribute List) of an object. */
export function lastAttributeRead(store: MetaReader, uid: string): Promise<LastUse | undefined> {
  return store.getMeta(ATTR_READ_PREFIX + uid).then(parseLastUse);
}

/** When an identity last sent a request. */
export function lastSeen(store: MetaReader, identity: string): Promise<LastSeen | undefined> {
  return store.getMeta(SEEN_PREFIX + identity).then(parseLastSeen);
}

/** Every identity in the clients index. */
export async function seenIdentities(store: MetaReader): Promise<string[]> {
  return parseIndex(await store.getMeta(CLIENTS_INDEX));
}

function parseIndex(v: string | undefined): string[] {
  if (v === undefined) return [];
  try {
    const a = JSON.parse(v) as unknown;
    return Array.isArray(a) ? a.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

/** The later of two times (either may be absent). */
export function latest(...uses: (LastUse | undefined)[]): LastUse | undefined {
  let best: LastUse | undefined;
  for (const u of uses) if (u && (!best || u.at.getTime() > best.at.getTime())) best = u;
  return best;
}

export interface UsageTrackerOptions {
  flushSeconds: number;
  log: Logger;
  clock?: () => number;
  /** Called when a flush fails (metrics). */
  onFlushError?: () => void;
}

type Kind = 'fetch' | 'read' | 'seen';

export class UsageTracker {
  private pending: Record<Kind, Map<string, Entry>> = { fetch: new Map(), read: new Map(), seen: new Map() };
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private dropped = 0;
  private readonly knownClients = new Set<string>();
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

  /** Entries waiting for the next flush (objects fetched, objects read, identities seen). */
  get pendingCount(): number {
    return this.pending.fetch.size + this.pending.read.size + this.pending.seen.size;
  }

  /** Entries dropped because the keystore could not keep up (since the start). */
  get droppedCount(): number {
    return this.dropped;
  }

  /** The executor's items (all of one request): remembers uses, reads and the identity. O(1) per item, no I/O. */
  noteItems(items: readonly ExecutedItem[]): void {
    if (this.closed) return;
    for (const it of items) {
      this.noteSeen(it.identity, it.operation);
      if (it.uid === undefined) continue;
      if (USE_OPERATIONS.has(it.operation)) {
        if (it.result === 'Success') this.note(it.uid, it.identity, it.operation);
        else if (it.reason === REFUSED_BY_STATE) this.put('fetch', it.uid, { at: this.clock(), by: it.identity, op: it.operation, refused: it.reason });
      } else if (ATTRIBUTE_READ_OPERATIONS.has(it.operation) && it.result === 'Success') {
        this.put('read', it.uid, { at: this.clock(), by: it.identity, op: it.operation });
      }
    }
  }

  /** A material fetch or use of `uid`. */
  note(uid: string, by: string, op: string): void {
    this.put('fetch', uid, { at: this.clock(), by, op });
  }

  /** A request of `identity`. */
  noteSeen(identity: string, op: string): void {
    this.put('seen', identity, { at: this.clock(), by: identity, op });
  }

  private put(kind: Kind, id: string, e: Entry): void {
    if (this.closed || id.includes('\u0000')) return; // not storable (PostgreSQL text); no real key or name has one
    const m = this.pending[kind];
    const size = this.pendingCount;
    if (size >= HARD_MAX_PENDING && !m.has(id)) {
      this.dropped++;
      return;
    }
    m.set(id, e);
    if (size + 1 >= MAX_PENDING && !this.flushing) void this.flush();
  }

  /** Writes what is pending; concurrent calls share one flush. Never rejects. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.pendingCount > 0 ? this.flush() : undefined));
    if (this.pendingCount === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = { fetch: new Map(), read: new Map(), seen: new Map() };
    this.flushing = this.write(batch).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async write(batch: Record<Kind, Map<string, Entry>>): Promise<void> {
    const failed: [Kind, string, Entry][] = [];
    let firstError: unknown;
    const one = async (kind: Kind, id: string, e: Entry): Promise<void> => {
      try {
        const key = (kind === 'fetch' ? USAGE_PREFIX : kind === 'read' ? ATTR_READ_PREFIX : SEEN_PREFIX) + id;
        const cur = kind === 'seen' ? parseLastSeen(await this.store.getMeta(key)) : parseLastUse(await this.store.getMeta(key));
        if (cur && cur.at.getTime() >= e.at) return; // another node recorded a later one
        const at = new Date(e.at).toISOString();
        const row: Record<string, string> = kind === 'seen' ? { at, op: e.op } : { at, by: e.by, op: e.op };
        if (e.refused !== undefined) row.refused = e.refused;
        await this.store.setMeta(key, JSON.stringify(row));
      } catch (err) {
        firstError ??= err;
        failed.push([kind, id, e]);
      }
    };
    const jobs: Promise<void>[] = [];
    for (const kind of ['fetch', 'read', 'seen'] as const) for (const [id, e] of batch[kind]) jobs.push(one(kind, id, e));
    jobs.push(
      this.indexClients([...batch.seen.keys()]).catch((err: unknown) => {
        firstError ??= err;
        // the identities go back so that the next flush adds them to the index
        for (const [id, e] of batch.seen) failed.push(['seen', id, e]);
      }),
    );
    await Promise.all(jobs);
    if (failed.length > 0) {
      this.opts.onFlushError?.();
      this.opts.log.warn({ err: (firstError as Error | undefined)?.message, rows: failed.length }, 'cannot record last-use times in the keystore; will retry');
      if (!this.closed) for (const [kind, id, e] of failed) if (!this.pending[kind].has(id)) this.pending[kind].set(id, e);
    }
    if (this.dropped > 0) this.opts.log.warn({ dropped: this.dropped }, 'last-use times dropped: the keystore does not keep up with the requests');
  }

  /**
   * Adds identities not yet known to the `clients.index` row: read, merge, write, read back
   * (another node may have written the row meanwhile; then merge again).
   */
  private async indexClients(ids: readonly string[]): Promise<void> {
    let missing = ids.filter((id) => !this.knownClients.has(id));
    for (let attempt = 0; missing.length > 0; attempt++) {
      const index = await seenIdentities(this.store);
      const have = new Set(index);
      missing = missing.filter((id) => !have.has(id));
      if (missing.length === 0) break;
      if (attempt >= 5) throw new Error(`the clients index did not keep ${missing.length} identities (concurrent writers)`);
      await this.store.setMeta(CLIENTS_INDEX, JSON.stringify([...index, ...missing].sort()));
    }
    if (this.knownClients.size + ids.length > MAX_KNOWN_CLIENTS) this.knownClients.clear();
    for (const id of ids) this.knownClients.add(id);
  }

  /** Stops the timer and writes what is pending (the keystore must still be open). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
    this.closed = true;
  }
}
