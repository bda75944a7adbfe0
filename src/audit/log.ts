/**
 * The audit log writer: DIR/audit/audit.log, one canonical JSON record per line (record.ts),
 * each hash-chained to the one before, with HMAC anchors (anchor.ts) every N records, after an
 * idle interval, on rotation and on clean shutdown.
 *
 * Durability: `record()` resolves only after the lines are written and fsynced. Group commit:
 * records handed in while a write is in progress are queued and written together by the next
 * write (one write() and one fsync for the whole group), like the SQLite keystore's group commit.
 *
 * Several processes append to one chain (the server, and admin CLI commands run beside it);
 * each group is appended under a lock (lock.ts), after re-reading the chain head from the file
 * when another writer has moved it.
 *
 * Crash safety: a crash in the middle of a write leaves a last line without its newline. That
 * record was never acknowledged (its response was never sent), so the next writer cuts it off
 * and records that it did (an "event" record). A failed write is likewise cut off at once.
 *
 * Rotation: when audit.log reaches `maxFileBytes` it is closed with an anchor and renamed
 * audit-<first seq, 12 digits>.log; the chain continues in a new audit.log.
 */
import {
  closeSync,
  existsSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  readdirSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { MasterKeyProvider, MetaStore } from '../crypto/masterkey.js';
import { anchorMac, deriveAnchorKey } from './anchor.js';
import { metaAnchorKey } from './read.js';
import { CrossProcessLock, withProcessLock } from './lock.js';
import { GENESIS, clip, parseLine, seal, selfConsistent, type RecordBody } from './record.js';
import { fsyncDir } from '../durable.js';
import {
  AUDIT_DIR,
  AUDIT_FILE,
  AUDIT_LOCK,
  AuditUnavailableError,
  META_AUDIT_ANCHOR,
  ROTATED_RE,
  rotatedName,
  type AuditEntry,
  type AuditKind,
  type AuditRecord,
  type AuditSink,
} from './types.js';

export const DEFAULT_ANCHOR_EVERY = 1000;
export const DEFAULT_ANCHOR_INTERVAL_MS = 60_000;
export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024;
const DEFAULT_LOCK_TIMEOUT_MS = 10_000;
/** At most this many records share one write. */
const MAX_GROUP = 2000;
/** Group pacing (AuditLog.kick): the longest wait for company, ms (one timer tick). */
const LINGER_MS = 1;
/** ... only when flushes take at least this long, ms: below it, waiting costs more than it saves. */
const LINGER_MIN_FLUSH_MS = 0.25;
/** ... and only this soon after the previous group, ms. */
const EXPECT_VALID_MS = 10;
/** No canonical record comes near this; a longer last line is not ours. */
const MAX_LINE_BYTES = 1 << 20;

export interface AuditTuning {
  /** An anchor after every this many records (default 1000). */
  anchorEvery?: number;
  /** An anchor this long after the last unanchored record this process wrote (default 60 s; 0: never). */
  anchorIntervalMs?: number;
  /** Rotate audit.log at this size (default 64 MiB; 0: never). */
  maxFileBytes?: number;
  /** How long to wait for another process holding the log (default 10 s). */
  lockTimeoutMs?: number;
}

export interface AuditLogOptions extends AuditTuning {
  /** The data directory; the log lives in DIR/audit. */
  dataDir: string;
  /** Derives the anchor key. Without it no anchors are written (another writer anchors later). */
  master?: MasterKeyProvider;
  /**
   * The master key anchors are made with now, asked at each anchor (a running server after a
   * master key rotation made by `kmipd master rotate` or adopted from another node: the key
   * that wraps the active root key). Undefined answer, or absent: `master`.
   */
  currentMaster?: () => Promise<MasterKeyProvider | undefined>;
  /** Where the newest anchor is recorded (the keystore), so that a removed tail is noticed. */
  meta?: MetaStore;
  log?: Logger;
  clock?: () => Date;
  /** Called with each group's records once they are fsynced, before anyone is told (tests). */
  onDurable?: (records: readonly AuditRecord[]) => void;
}

interface Waiter {
  entries: readonly AuditEntry[];
  anchor: boolean;
  /** Nothing to wait for company for: an anchor, or open(). */
  urgent: boolean;
  resolve(): void;
  reject(e: unknown): void;
}

interface Head {
  seq: number;
  hash: string;
  kind: AuditKind | undefined;
}

export interface MetaAnchor {
  seq: number;
  hash: string;
}

/** Reads the keystore's `audit.anchor` value; undefined when absent or unreadable. */
export function parseMetaAnchor(v: string | undefined): MetaAnchor | undefined {
  if (v === undefined) return undefined;
  try {
    const o = JSON.parse(v) as { seq?: unknown; hash?: unknown };
    if (typeof o.seq === 'number' && Number.isSafeInteger(o.seq) && typeof o.hash === 'string') return { seq: o.seq, hash: o.hash };
  } catch {
    /* fall through */
  }
  return undefined;
}

/** SYNC=1 in the environment: flush on the event loop (measuring only; see append). */
const SYNC_FLUSH = process.env.KMIPD_AUDIT_SYNC_FLUSH === '1';

/** fdatasync(2) on the thread pool: one round trip. Appends change the size, which it flushes too. */
function datasync(fd: number): Promise<void> {
  if (SYNC_FLUSH) {
    fdatasyncSync(fd);
    return Promise.resolve();
  }
  return new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}


/** The last line of the first `end` bytes of `fd` (which end with a newline), without it. */
function lastLine(fd: number, end: number): string {
  let from = end - 1; // the final newline
  const parts: Buffer[] = [];
  let total = 0;
  while (from > 0) {
    const n = Math.min(64 * 1024, from);
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, from - n);
    const nl = buf.lastIndexOf(0x0a);
    if (nl >= 0) {
      parts.unshift(buf.subarray(nl + 1));
      return Buffer.concat(parts).toString('utf8');
    }
    parts.unshift(buf);
    total += n;
    from -= n;
    if (total > MAX_LINE_BYTES) throw new AuditUnavailableError('the last line of the audit log is too long to be a record');
  }
  return Buffer.concat(parts).toString('utf8');
}

/** The end offset of the last complete line of the first `size` bytes (0 when none). */
function lastNewlineEnd(fd: number, size: number): number {
  let from = size;
  while (from > 0) {
    const n = Math.min(64 * 1024, from);
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, from - n);
    const nl = buf.lastIndexOf(0x0a);
    if (nl >= 0) return from - n + nl + 1;
    from -= n;
  }
  return 0;
}

function firstLineSeq(fd: number): number | undefined {
  const buf = Buffer.alloc(4096);
  const n = readSync(fd, buf, 0, buf.length, 0);
  const m = /^\{"seq":(\d+),/.exec(buf.subarray(0, n).toString('latin1'));
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

function entryBody(e: AuditEntry, now: Date, seq: number, prev: string): RecordBody {
  const when = e.time !== undefined && !Number.isNaN(e.time.getTime()) ? e.time : now;
  const opt = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : clip(String(v)));
  const body: RecordBody = {
    seq,
    time: when.toISOString(),
    kind: e.kind === 'admin' ? 'admin' : 'kmip',
    identity: clip(String(e.identity)),
    operation: clip(String(e.operation)),
    result: clip(String(e.result)),
    prev,
  };
  const address = opt(e.address);
  const object = opt(e.object);
  const reason = opt(e.reason);
  if (body.kind === 'kmip') {
    const fingerprint = opt(e.fingerprint);
    const version = opt(e.version);
    if (fingerprint !== undefined) body.fingerprint = fingerprint;
    if (version !== undefined) body.version = version;
    const onBehalfOf = opt(e.onBehalfOf);
    const message = opt(e.message);
    if (onBehalfOf !== undefined) body.onBehalfOf = onBehalfOf;
    if (message !== undefined) body.message = message;
  }
  if (address !== undefined) body.address = address;
  if (object !== undefined) body.object = object;
  if (reason !== undefined) body.reason = reason;
  return body;
}

export class AuditLog implements AuditSink {
  readonly dir: string;
  readonly file: string;
  readonly stats = { groups: 0, syncs: 0, records: 0, anchors: 0, rotations: 0 };

  private readonly anchorEvery: number;
  private readonly anchorIntervalMs: number;
  private readonly maxFileBytes: number;
  private readonly lock: CrossProcessLock;
  private readonly clock: () => Date;

  /** audit.log, opened for appending; kept open between groups. */
  private fd: number | undefined;
  private ino = -1;
  /** Size of audit.log as this writer last left it; -1 when unknown. */
  private size = -1;
  private head: Head = { seq: 0, hash: GENESIS, kind: undefined };
  private firstSeqInFile: number | undefined;
  private dirReady = false;

  private queue: Waiter[] = [];
  private running = false;
  private scheduled = false;
  private idle: Promise<void> = Promise.resolve();
  /** Queued waiters that must not wait for company (anchor, open). */
  private urgent = 0;
  /** Group pacing (see kick): waiters expected in the next group, until when that guess holds. */
  private expect = 1;
  private expectUntil = 0;
  /** How long the last flush (fdatasync) took, ms. */
  private lastFlushMs = 0;
  private linger: NodeJS.Timeout | undefined;
  /** This writer appended records that no anchor covers yet. */
  private ownUnanchored = false;
  /** An anchor fell due but could not be made (master key unavailable); retried next write. */
  private anchorOwed = false;
  private key: KeyObject | undefined;
  /** The key id of the master key `key` was derived from. */
  private keyMaster: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(private readonly opts: AuditLogOptions) {
    this.dir = join(resolve(opts.dataDir), AUDIT_DIR);
    this.file = join(this.dir, AUDIT_FILE);
    this.anchorEvery = Math.max(1, opts.anchorEvery ?? DEFAULT_ANCHOR_EVERY);
    this.anchorIntervalMs = opts.anchorIntervalMs ?? DEFAULT_ANCHOR_INTERVAL_MS;
    this.maxFileBytes = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    this.lock = new CrossProcessLock(join(this.dir, AUDIT_LOCK), opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS);
    this.clock = opts.clock ?? (() => new Date());
  }

  /** Appends `entries`; resolves once they are on disk (fsynced). Rejects with AuditUnavailableError. */
  record(entries: readonly AuditEntry[]): Promise<void> {
    if (this.closing) return Promise.reject(new AuditUnavailableError('audit trail unavailable: the audit log is closed'));
    if (entries.length === 0) return Promise.resolve();
    return this.enqueue(entries, false);
  }

  /** Writes an anchor now unless the newest record already is one. */
  anchor(): Promise<void> {
    if (this.closing) return Promise.reject(new AuditUnavailableError('audit trail unavailable: the audit log is closed'));
    return this.enqueue([], true);
  }

  /**
   * Checks that the log can be written (folder, lock, a readable chain head) and cuts off an
   * unfinished record a crash left; the server calls it at start to fail early.
   */
  open(): Promise<void> {
    if (this.closing) return Promise.reject(new AuditUnavailableError('audit trail unavailable: the audit log is closed'));
    return this.enqueue([], false);
  }

  /** Anchors what this writer wrote, waits for queued writes, releases the file. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.settle();
    if (this.ownUnanchored && this.opts.master) {
      try {
        await this.enqueue([], true);
      } catch (e) {
        this.opts.log?.error({ err: (e as Error).message }, 'could not write the closing audit anchor');
      }
    }
    await this.settle();
    this.dropFile();
    this.lock.close();
    this.key = undefined;
  }

  /** Until every queued write has been done (or failed). */
  private async settle(): Promise<void> {
    while (this.running || this.scheduled || this.queue.length > 0) {
      if (this.running) await this.idle;
      else {
        this.kick();
        await new Promise<void>((r) => setImmediate(r));
      }
    }
  }

  private enqueue(entries: readonly AuditEntry[], anchor: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const urgent = entries.length === 0;
      this.queue.push({ entries, anchor, urgent, resolve, reject });
      if (urgent) this.urgent++;
      this.kick();
    });
  }

  /**
   * Starts the next group, now or a little later. One group is written (and flushed) at a time;
   * records handed in meanwhile wait for the next one. Clients that send their next request
   * when the previous answer arrives (every KMIP client) would then split into two cohorts that
   * alternate, each flush carrying half of them. So when the last flush was slow, the next group
   * waits for as many requests as were around last time (the group just written plus those
   * queued behind it): at most LINGER_MS (one timer tick), and never for an anchor or at close.
   */
  private kick(): void {
    if (this.running || this.scheduled || this.queue.length === 0) return;
    if (
      this.queue.length >= this.expect ||
      this.urgent > 0 ||
      this.closing ||
      this.lastFlushMs < LINGER_MIN_FLUSH_MS ||
      performance.now() > this.expectUntil
    ) {
      if (this.linger) clearTimeout(this.linger);
      this.linger = undefined;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.drain();
      });
      return;
    }
    this.linger ??= setTimeout(() => {
      this.linger = undefined;
      this.expectUntil = 0;
      this.kick();
    }, LINGER_MS);
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    let done!: () => void;
    this.idle = new Promise<void>((r) => (done = r));
    try {
      if (this.queue.length > 0) {
        const group: Waiter[] = [];
        let n = 0;
        while (this.queue.length > 0) {
          const w = this.queue[0]!;
          if (group.length > 0 && n + w.entries.length > MAX_GROUP) break;
          this.queue.shift();
          if (w.urgent) this.urgent--;
          group.push(w);
          n += w.entries.length;
        }
        try {
          await this.writeGroup(
            group.flatMap((w) => w.entries),
            group.some((w) => w.anchor),
          );
          for (const w of group) w.resolve();
        } catch (e) {
          const err =
            e instanceof AuditUnavailableError ? e : new AuditUnavailableError(`audit trail unavailable: ${(e as Error).message}`, { cause: e });
          this.opts.log?.error({ err: err.message, records: n }, 'audit trail unavailable');
          for (const w of group) w.reject(err);
        }
        this.expect = group.length + this.queue.length;
        this.expectUntil = performance.now() + EXPECT_VALID_MS;
      }
    } finally {
      this.running = false;
      done();
      this.kick();
    }
  }

  private async writeGroup(entries: readonly AuditEntry[], forceAnchor: boolean): Promise<void> {
    await withProcessLock(this.file, async () => {
      this.ensureDir();
      await this.lock.acquire();
      try {
        const torn = this.refresh();
        if (this.maxFileBytes > 0 && this.size >= this.maxFileBytes) await this.rotate();
        const now = this.clock();
        const out: { record: AuditRecord; line: string }[] = [];
        let seq = this.head.seq;
        let hash = this.head.hash;
        const add = (body: RecordBody): void => {
          const s = seal(body);
          out.push(s);
          seq = body.seq;
          hash = s.record.hash;
        };
        if (torn > 0) {
          add({
            seq: seq + 1,
            prev: hash,
            time: now.toISOString(),
            kind: 'event',
            operation: 'discarded-unfinished-record',
            reason: `${torn} bytes at the end of ${AUDIT_FILE} without a newline (a write cut short by a crash or an error; never acknowledged)`,
          });
        }
        for (const e of entries) add(entryBody(e, now, seq + 1, hash));
        const lastKind = out.length > 0 ? out[out.length - 1]!.record.kind : this.head.kind;
        const crossed = Math.floor(this.head.seq / this.anchorEvery) !== Math.floor(seq / this.anchorEvery);
        if ((crossed || forceAnchor || this.anchorOwed) && lastKind !== undefined && lastKind !== 'anchor') {
          const anchor = await this.anchorKey();
          if (anchor) add(this.anchorBody(anchor.key, anchor.masterKeyId, seq + 1, hash, now));
          else if (this.opts.master) this.anchorOwed = true;
        }
        if (out.length === 0) return;
        await this.append(out);
      } finally {
        this.lock.release();
      }
    });
  }

  private anchorBody(key: KeyObject, masterKeyId: string, seq: number, prev: string, now: Date): RecordBody {
    const body: RecordBody = { seq, time: now.toISOString(), kind: 'anchor', master: masterKeyId, prev };
    body.mac = anchorMac(key, body);
    return body;
  }

  /** The anchor key of the master key in use now (derived once per master key). */
  private async anchorKey(): Promise<{ key: KeyObject; masterKeyId: string } | undefined> {
    let master = this.opts.master;
    if (!master) return undefined;
    try {
      if (this.opts.currentMaster) master = (await this.opts.currentMaster()) ?? master;
      if (this.key === undefined || this.keyMaster !== master.keyId) {
        this.key = await deriveAnchorKey(master);
        this.keyMaster = master.keyId;
      }
      return { key: this.key, masterKeyId: master.keyId };
    } catch (e) {
      this.opts.log?.error({ err: (e as Error).message }, 'cannot derive the audit anchor key from the master key; anchor postponed');
      return undefined;
    }
  }

  /** Writes and fsyncs `out` at the end of audit.log; on failure cuts the partial bytes back off. */
  private async append(out: readonly { record: AuditRecord; line: string }[]): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) throw new AuditUnavailableError('internal: audit.log is not open');
    let text = '';
    for (const o of out) text += `${o.line}\n`;
    const buf = Buffer.from(text, 'utf8');
    try {
      // The write itself only copies into the page cache: synchronous, a few µs. The flush is
      // the slow part; done off the event loop, requests keep being decoded and executed (and
      // their records queued for the next group) while it runs.
      let off = 0;
      while (off < buf.length) {
        const n = writeSync(fd, buf, off, buf.length - off);
        if (n <= 0) throw new Error('short write');
        off += n;
      }
      const t0 = performance.now();
      await datasync(fd);
      this.lastFlushMs = performance.now() - t0;
    } catch (e) {
      // Nothing of this group is acknowledged: take it back off the file (best effort; the
      // next writer cuts an unfinished line anyway and re-reads the head).
      try {
        ftruncateSync(fd, this.size);
        fsyncSync(fd);
      } catch {
        /* the next write re-reads the file */
      }
      this.dropFile();
      throw new AuditUnavailableError(`audit trail unavailable: cannot write ${this.file}: ${(e as Error).message}`, { cause: e });
    }
    const first = out[0]!.record;
    const last = out[out.length - 1]!.record;
    if (this.size === 0 || this.firstSeqInFile === undefined) this.firstSeqInFile = first.seq;
    this.size += buf.length;
    this.head = { seq: last.seq, hash: last.hash, kind: last.kind };
    this.stats.groups++;
    this.stats.syncs++;
    this.stats.records += out.length;
    this.opts.onDurable?.(out.map((o) => o.record));
    const anchors = out.filter((o) => o.record.kind === 'anchor');
    if (anchors.length > 0) this.anchorOwed = false;
    if (last.kind === 'anchor') this.ownUnanchored = false;
    else if (out.some((o) => o.record.kind !== 'anchor')) this.markUnanchored();
    const newest = anchors[anchors.length - 1];
    if (newest) await this.noteAnchor(newest.record, anchors.length);
  }

  private markUnanchored(): void {
    this.ownUnanchored = true;
    if (this.timer || this.anchorIntervalMs <= 0 || !this.opts.master) return;
    this.timer = setInterval(() => {
      if (!this.ownUnanchored || this.closing) return;
      this.anchor().catch(() => {
        /* logged by drain */
      });
    }, this.anchorIntervalMs);
    this.timer.unref();
  }

  /** Keeps the newest anchor in the keystore (only ever forward), to notice a removed tail. */
  private async noteAnchor(r: AuditRecord, count: number): Promise<void> {
    this.stats.anchors += count;
    const meta = this.opts.meta;
    if (!meta) return;
    try {
      const key = metaAnchorKey(this.opts.dataDir, true);
      const cur = parseMetaAnchor(await meta.getMeta(key));
      if (cur && cur.seq >= r.seq) return;
      await meta.setMeta(key, JSON.stringify({ seq: r.seq, hash: r.hash }));
    } catch (e) {
      this.opts.log?.error({ err: (e as Error).message }, 'cannot record the newest audit anchor in the keystore');
    }
  }

  private dropFile(): void {
    const fd = this.fd;
    this.fd = undefined;
    this.ino = -1;
    this.size = -1;
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        /* nothing to do */
      }
    }
  }

  /**
   * Makes sure audit.log is open and the head is current: re-reads it when another writer
   * appended or rotated since. Returns how many bytes of an unfinished last line were cut off.
   */
  private ensureDir(): void {
    if (this.dirReady) return;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new AuditUnavailableError(`audit trail unavailable: cannot create ${this.dir}: ${(e as Error).message}`);
    }
    this.dirReady = true;
  }

  private refresh(): number {
    // One stat of the path (a few µs, synchronous) tells whether another writer appended (the
    // size moved) or rotated (another inode) since this writer's last group.
    let st: { ino: number; size: number } | undefined = statSync(this.file, { throwIfNoEntry: false });
    if (!st || this.fd === undefined || st.ino !== this.ino) {
      this.dropFile();
      const fd = openSync(this.file, 'a+', 0o600);
      this.fd = fd;
      const s2 = fstatSync(fd);
      this.ino = s2.ino;
      if (!st) fsyncDir(this.dir);
      st = s2;
    }
    if (st.size === this.size) return 0;
    return this.scan(st.size);
  }

  private scan(size: number): number {
    const fd = this.fd!;
    let torn = 0;
    if (size > 0) {
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, size - 1);
      if (b[0] !== 0x0a) {
        const keep = lastNewlineEnd(fd, size);
        torn = size - keep;
        ftruncateSync(fd, keep);
        fsyncSync(fd);
        this.opts.log?.warn({ bytes: torn, file: this.file }, 'cut off an unfinished audit record (a write cut short)');
        size = keep;
      }
    }
    if (size === 0) {
      this.firstSeqInFile = undefined;
      this.head = this.headOfRotated();
    } else {
      this.head = this.headOf(lastLine(fd, size), AUDIT_FILE);
      this.firstSeqInFile = firstLineSeq(fd);
    }
    this.size = size;
    return torn;
  }

  private headOf(line: string, name: string): Head {
    const p = parseLine(line);
    if (!p.ok || !selfConsistent(p.record)) {
      throw new AuditUnavailableError(
        `audit trail unavailable: the last record of ${join(this.dir, name)} is unreadable (${p.ok ? 'its hash does not match' : p.error}); run \`kmipd audit verify\``,
      );
    }
    return { seq: p.record.seq, hash: p.record.hash, kind: p.record.kind };
  }

  /** The head of the newest rotated file (the live one is empty), or the genesis. */
  private headOfRotated(): Head {
    const rotated = existsSync(this.dir) ? readdirSync(this.dir).filter((n) => ROTATED_RE.test(n)).sort() : [];
    const newest = rotated[rotated.length - 1];
    if (!newest) return { seq: 0, hash: GENESIS, kind: undefined };
    const fd = openSync(join(this.dir, newest), 'r');
    try {
      const size = fstatSync(fd).size;
      if (size === 0) return { seq: 0, hash: GENESIS, kind: undefined };
      return this.headOf(lastLine(fd, size), newest);
    } finally {
      closeSync(fd);
    }
  }

  private async rotate(): Promise<void> {
    if (this.head.kind !== 'anchor' && this.head.kind !== undefined) {
      const anchor = await this.anchorKey();
      if (anchor) await this.append([seal(this.anchorBody(anchor.key, anchor.masterKeyId, this.head.seq + 1, this.head.hash, this.clock()))]);
    }
    const target = join(this.dir, rotatedName(this.firstSeqInFile ?? this.head.seq));
    if (existsSync(target)) throw new AuditUnavailableError(`audit trail unavailable: cannot rotate ${this.file}: ${target} exists`);
    const head = this.head;
    this.dropFile();
    renameSync(this.file, target);
    fsyncDir(this.dir);
    this.fd = openSync(this.file, 'a+', 0o600);
    this.ino = fstatSync(this.fd).ino;
    fsyncDir(this.dir);
    this.size = 0;
    this.firstSeqInFile = undefined;
    this.head = head;
    this.stats.rotations++;
    this.opts.log?.info({ file: target }, 'audit log rotated');
  }
}
