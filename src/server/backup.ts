/**
 * Backup and restore of a keystore, portable between backends (SQLite <-> PostgreSQL), so that
 * moving a deployment from one to the other is a backup and a restore.
 *
 * A backup is a consistent snapshot taken while the server keeps serving (SQLite: a copy made
 * with the online backup API, then read; PostgreSQL: one REPEATABLE READ, READ ONLY
 * transaction). It holds the objects, the root keys and the meta entries, every key material
 * still wrapped: a backup reveals nothing without the master key, and the master key is never
 * in it. The file is gzip-compressed JSON lines:
 *
 *   {"format":"kmipd-backup","version":1,"createdAt",...,"source":{"backend"},"counts":{...}}
 *   {"t":"meta","key","value"}                                   (each meta entry)
 *   {"t":"rootKey","id","wrapped"(base64),"masterKeyId","status","createdAt"}
 *   {"t":"object","uid",...,"attributes"(base64 TTLV),"material":{"rootKeyId","blob"}|null}
 *   {"t":"end","objects":n,"sha256":hex}     (SHA-256 of every line before it, newlines included)
 *
 * It is written to a temporary file beside the target, fsynced, and renamed into place.
 *
 * A restore goes into an EMPTY keystore only (no object, no root key): the data directory's
 * own, or the one `--store` names (then recorded in the manifest). It is checked three times:
 * 1. before anything is written: the file is complete and unaltered (digest), the master key of
 *    the data directory reproduces the backup's canary and unwraps every root key, and every
 *    object's material opens (plaintext zeroed at once);
 * 2. the keystore is written (meta, root keys in one transaction, objects in their order);
 * 3. the keystore is read back: a RootKeyring opened on it (as the server does) opens every
 *    object's material, and the objects equal the backup's (count and digest).
 * Only then does the command report success.
 *
 * Meta entries not restored: schema_version (the target backend's own), trust.initialized
 * (describes the shared trust table, which is not in the backup: the first node to start seeds
 * it from its DATA/trust), audit.anchor (describes one data directory's audit log).
 */
import { META_LAST_BACKUP } from '../admin/meta-keys.js';
import Database from 'better-sqlite3';
import { createHash, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { createGunzip, createGzip } from 'node:zlib';
import { META_MASTER_ID, RootKeyring, checkCanary, openWith, type MasterKeyProvider, type MetaStore } from '../crypto/index.js';
import type { WrappedMaterial } from '../keystore/types.js';
import { decodeAttributes, encodeAttributes } from '../keystore/attributes.js';
import { SCHEMA_VERSION_KEY, assertSupportedSchema } from '../keystore/migrations.js';
import type { RawObjectRow, StoreSnapshot } from '../keystore/snapshot.js';
import { rawRow, type ObjectRow } from '../keystore/rows.js';
import type { KeyStore, RootKeyRecord, StoredObject } from '../keystore/types.js';
import { VERSION } from '../version.js';
import { MANIFEST, readManifest, writeManifest, type KeystoreConfig, type Manifest, type MasterConfig } from './datadir.js';
import { MasterResolver, openMasterConfig, selectMasterConfig } from './master-versions.js';
import { pkcs11Pin } from './server.js';
import { describeStore, openKeyStore, storeConfigFromArg, withInitLock } from './store.js';

export const BACKUP_FORMAT = 'kmipd-backup';
export const BACKUP_VERSION = 1;
/** Meta entries a restore does not copy (see the file comment). */
export const META_NOT_RESTORED: readonly string[] = [SCHEMA_VERSION_KEY, 'trust.initialized', 'audit.anchor'];
const BATCH = 500;

export interface Progress {
  tick(n?: number): void;
  done(): void;
}
export type ProgressFactory = (label: string, total: number) => Progress;
const noProgress: ProgressFactory = () => ({ tick: () => undefined, done: () => undefined });

export class BackupError extends Error {
  override readonly name = 'BackupError';
}

export interface BackupHeader {
  format: string;
  version: number;
  createdAt: string;
  createdBy: string;
  source: { backend: string; store: string };
  counts: { meta: number; rootKeys: number; objects: number };
}

interface MetaRec {
  t: 'meta';
  key: string;
  value: string;
}
interface RootKeyRec {
  t: 'rootKey';
  id: string;
  wrapped: string;
  masterKeyId: string;
  status: 'active' | 'retired';
  createdAt: number;
}
interface ObjectRec {
  t: 'object';
  uid: string;
  objectType: number;
  state: number;
  owner: string;
  attributes: string;
  material: { rootKeyId: string; blob: string } | null;
  revision: number;
  createdAt: number;
  updatedAt: number;
}
interface EndRec {
  t: 'end';
  objects: number;
  sha256: string;
}
type Rec = MetaRec | RootKeyRec | ObjectRec | EndRec;

function objectRec(r: RawObjectRow): ObjectRec {
  return {
    t: 'object',
    uid: r.uid,
    objectType: r.objectType,
    state: r.state,
    owner: r.owner,
    attributes: r.attributes.toString('base64'),
    material: r.material === null ? null : { rootKeyId: r.material.rootKeyId, blob: r.material.blob.toString('base64') },
    revision: r.revision,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

// ---------------------------------------------------------------------------------------------
// Snapshots


/**
 * A snapshot of the SQLite keystore at `file`: the online backup API copies it (one step, so
 * the copy is one consistent state however busy the server is) into a private temporary file
 * beside it, which `fn` reads and which is removed afterwards.
 */
async function sqliteSnapshot<R>(file: string, fn: (snap: StoreSnapshot) => Promise<R>): Promise<R> {
  const src = new Database(file, { fileMustExist: true });
  const tmp = join(dirname(file), `.${basename(file)}.backup-${randomBytes(6).toString('hex')}`);
  closeSync(openSync(tmp, 'wx', 0o600));
  const cleanup = (): void => {
    for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`, `${tmp}-journal`]) rmSync(f, { force: true });
  };
  try {
    try {
      src.pragma('busy_timeout = 10000');
      assertSupportedSchema(src);
      await src.backup(tmp, { progress: ({ totalPages }) => totalPages });
    } finally {
      src.close();
    }
    const db = new Database(tmp, { fileMustExist: true });
    try {
      assertSupportedSchema(db);
      const snap: StoreSnapshot = {
        backend: 'sqlite',
        meta: async () => (db.prepare('SELECT key, value FROM meta ORDER BY key').all() as { key: string; value: string }[]).map((r) => [r.key, r.value]),
        rootKeys: async () =>
          (db.prepare('SELECT * FROM root_keys ORDER BY created_at, id').all() as { id: string; wrapped: Buffer; master_key_id: string; status: string; created_at: number }[]).map(
            (r) => ({ id: r.id, wrapped: r.wrapped, masterKeyId: r.master_key_id, status: r.status === 'active' ? 'active' : 'retired', createdAt: r.created_at }),
          ),
        countObjects: async () => (db.prepare('SELECT count(*) AS n FROM objects').get() as { n: number }).n,
        objects: (batch: number) => ({
          async *[Symbol.asyncIterator]() {
            const it = db
              .prepare('SELECT uid, object_type, state, owner, attributes, root_key_id, material, revision, created_at, updated_at FROM objects ORDER BY seq')
              .iterate() as IterableIterator<ObjectRow>;
            let rows: RawObjectRow[] = [];
            for (const r of it) {
              rows.push(rawRow(r));
              if (rows.length >= batch) {
                yield rows;
                rows = [];
              }
            }
            if (rows.length > 0) yield rows;
          },
        }),
      };
      return await fn(snap);
    } finally {
      db.close();
    }
  } finally {
    cleanup();
  }
}

interface Snapshotting {
  snapshot<R>(fn: (snap: StoreSnapshot) => Promise<R>): Promise<R>;
}

function canSnapshot(s: KeyStore): s is KeyStore & Snapshotting {
  return typeof (s as Partial<Snapshotting>).snapshot === 'function';
}

// ---------------------------------------------------------------------------------------------
// Writing

class BackupWriter {
  readonly #file: string;
  readonly #tmp: string;
  readonly #fd: number;
  readonly #gzip = createGzip();
  readonly #out: ReturnType<typeof createWriteStream>;
  readonly #hash = createHash('sha256');
  readonly #done: Promise<void>;

  constructor(file: string) {
    this.#file = resolve(file);
    this.#tmp = join(dirname(this.#file), `.${basename(this.#file)}.tmp-${randomBytes(6).toString('hex')}`);
    this.#fd = openSync(this.#tmp, 'wx', 0o600);
    this.#out = createWriteStream('', { fd: this.#fd, autoClose: false });
    this.#gzip.pipe(this.#out);
    this.#done = new Promise((res, rej) => {
      this.#out.once('finish', res);
      this.#out.once('error', rej);
      this.#gzip.once('error', rej);
    });
    this.#done.catch(() => undefined);
  }

  async line(rec: BackupHeader | Rec, hashed = true): Promise<void> {
    const text = JSON.stringify(rec) + '\n';
    if (hashed) this.#hash.update(text, 'utf8');
    if (!this.#gzip.write(text)) await Promise.race([once(this.#gzip, 'drain'), this.#done]);
  }

  async finish(objects: number): Promise<void> {
    await this.line({ t: 'end', objects, sha256: this.#hash.digest('hex') }, false);
    this.#gzip.end();
    await this.#done;
    fsyncSync(this.#fd);
    closeSync(this.#fd);
    renameSync(this.#tmp, this.#file);
    const d = openSync(dirname(this.#file), 'r');
    try {
      fsyncSync(d);
    } catch {
      // some file systems cannot fsync a directory
    } finally {
      closeSync(d);
    }
  }

  abort(): void {
    this.#gzip.destroy();
    this.#out.destroy();
    try {
      closeSync(this.#fd);
    } catch {
      // closed already
    }
    rmSync(this.#tmp, { force: true });
  }
}

export interface BackupSummary {
  file: string;
  backend: string;
  store: string;
  objects: number;
  rootKeys: number;
  meta: number;
}

function loadManifest(dir: string, dirArg: string): Manifest {
  const m = readManifest(dir);
  if (m === undefined) throw new BackupError(`no kmipd data directory at ${dir} (no ${MANIFEST}); give --data, or run \`kmipd serve --data ${dirArg}\` once first`);
  return m;
}

/** Writes a backup of the keystore of data directory `dirArg` to `outFile`. */
export async function writeBackup(dirArg: string, outFile: string, opts: { progress?: ProgressFactory } = {}): Promise<BackupSummary> {
  const dir = resolve(dirArg);
  const m = loadManifest(dir, dirArg);
  const progress = opts.progress ?? noProgress;
  const storeName = describeStore(m.keystore);
  const run = async (snap: StoreSnapshot): Promise<BackupSummary> => {
    const meta = await snap.meta();
    const rootKeys = await snap.rootKeys();
    const n = await snap.countObjects();
    const w = new BackupWriter(outFile);
    try {
      const header: BackupHeader = {
        format: BACKUP_FORMAT,
        version: BACKUP_VERSION,
        createdAt: new Date().toISOString(),
        createdBy: `kmipd ${VERSION}`,
        source: { backend: snap.backend, store: storeName },
        counts: { meta: meta.length, rootKeys: rootKeys.length, objects: n },
      };
      await w.line(header);
      for (const [key, value] of meta) await w.line({ t: 'meta', key, value });
      for (const r of rootKeys) {
        await w.line({ t: 'rootKey', id: r.id, wrapped: Buffer.from(r.wrapped).toString('base64'), masterKeyId: r.masterKeyId, status: r.status, createdAt: r.createdAt });
      }
      const bar = progress('backup', n);
      let written = 0;
      for await (const batch of snap.objects(BATCH)) {
        for (const r of batch) await w.line(objectRec(r));
        written += batch.length;
        bar.tick(batch.length);
      }
      bar.done();
      if (written !== n) throw new BackupError(`internal: the snapshot counted ${n} objects but yielded ${written}`);
      await w.finish(written);
      return { file: resolve(outFile), backend: snap.backend, store: storeName, objects: n, rootKeys: rootKeys.length, meta: meta.length };
    } catch (e) {
      w.abort();
      throw e;
    }
  };
  let summary: BackupSummary;
  if (m.keystore.kind === 'sqlite') summary = await sqliteSnapshot(join(dir, m.keystore.file), run);
  else {
    const store = await openKeyStore(dir, m.keystore);
    try {
      if (!canSnapshot(store)) throw new BackupError(`the ${store.backend} keystore cannot take a snapshot`);
      summary = await store.snapshot(run);
    } finally {
      await store.close();
    }
  }
  // For /metrics (kmipd_last_backup_timestamp_seconds) and `kmipd doctor`.
  const store = await openKeyStore(dir, m.keystore);
  try {
    await store.setMeta(META_LAST_BACKUP, new Date().toISOString());
  } finally {
    await store.close();
  }
  return summary;
}

// ---------------------------------------------------------------------------------------------
// Reading

function isStr(v: unknown): v is string {
  return typeof v === 'string';
}
function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function checkRec(rec: unknown, line: number): Rec {
  const r = rec as Record<string, unknown>;
  const bad = (): never => {
    throw new BackupError(`backup line ${line}: malformed ${typeof r?.t === 'string' ? r.t : 'record'}`);
  };
  if (typeof r !== 'object' || r === null) bad();
  switch (r.t) {
    case 'meta':
      if (!isStr(r.key) || !isStr(r.value)) bad();
      break;
    case 'rootKey':
      if (!isStr(r.id) || !isStr(r.wrapped) || !isStr(r.masterKeyId) || (r.status !== 'active' && r.status !== 'retired') || !isInt(r.createdAt)) bad();
      break;
    case 'object': {
      const m = r.material as Record<string, unknown> | null;
      if (!isStr(r.uid) || !isInt(r.objectType) || !isInt(r.state) || !isStr(r.owner) || !isStr(r.attributes) || !isInt(r.revision) || !isInt(r.createdAt) || !isInt(r.updatedAt)) bad();
      if (m !== null && (typeof m !== 'object' || !isStr(m.rootKeyId) || !isStr(m.blob))) bad();
      break;
    }
    case 'end':
      if (!isInt(r.objects) || !isStr(r.sha256)) bad();
      break;
    default:
      bad();
  }
  return r as unknown as Rec;
}

/**
 * Reads a backup file: the header, then every record; the end record is checked against the
 * digest of the lines before it (a truncated or altered file fails here).
 */
async function* readBackup(file: string): AsyncGenerator<{ header: BackupHeader } | { rec: Rec }> {
  const input = createReadStream(file);
  const gunzip = createGunzip();
  input.on('error', (e) => gunzip.destroy(e));
  const rl = createInterface({ input: input.pipe(gunzip), crlfDelay: Infinity });
  const hash = createHash('sha256');
  let n = 0;
  let ended = false;
  try {
    for await (const text of rl) {
      n++;
      if (ended) throw new BackupError(`backup line ${n}: data after the end record`);
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch {
        throw new BackupError(`backup line ${n} is not JSON: the file is damaged`);
      }
      if (n === 1) {
        const h = v as BackupHeader;
        if (h?.format !== BACKUP_FORMAT) throw new BackupError(`${file} is not a kmipd backup`);
        if (h.version !== BACKUP_VERSION) throw new BackupError(`${file} is a kmipd backup of version ${String(h.version)}; this kmipd reads version ${BACKUP_VERSION}`);
        hash.update(text + '\n', 'utf8');
        yield { header: h };
        continue;
      }
      const rec = checkRec(v, n);
      if (rec.t === 'end') {
        if (rec.sha256 !== hash.digest('hex')) throw new BackupError('the backup file is damaged or was altered (its digest does not match)');
        ended = true;
      } else hash.update(text + '\n', 'utf8');
      yield { rec };
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'Z_BUF_ERROR' || (e as NodeJS.ErrnoException).code === 'Z_DATA_ERROR') {
      throw new BackupError(`${file} is truncated or not a gzip file: ${(e as Error).message}`);
    }
    throw e;
  } finally {
    rl.close();
    input.destroy();
  }
  if (n === 0) throw new BackupError(`${file} is empty`);
  if (!ended) throw new BackupError(`${file} is truncated (no end record)`);
}

function toObject(r: ObjectRec): StoredObject {
  return {
    uid: r.uid,
    objectType: r.objectType,
    state: r.state,
    owner: r.owner,
    attributes: decodeAttributes(Buffer.from(r.attributes, 'base64')),
    material: r.material === null ? null : { rootKeyId: r.material.rootKeyId, blob: Buffer.from(r.material.blob, 'base64') },
    revision: r.revision,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

/** What the restore compares between the backup and the keystore it wrote. */
function digestObject(h: ReturnType<typeof createHash>, o: StoredObject): void {
  const fields = JSON.stringify([o.uid, o.objectType, o.state, o.owner, o.revision, o.createdAt, o.updatedAt, o.material?.rootKeyId ?? null]);
  h.update(`${fields.length}:${fields}`);
  const attrs = encodeAttributes(o.attributes);
  h.update(`${attrs.length}:`).update(attrs);
  const blob = o.material === null ? Buffer.alloc(0) : Buffer.from(o.material.blob);
  h.update(`${blob.length}:`).update(blob);
}

// ---------------------------------------------------------------------------------------------
// Restoring

export class RestoreError extends Error {
  override readonly name = 'RestoreError';
}

export interface RestoreSummary {
  store: string;
  backend: string;
  objects: number;
  rootKeys: number;
  meta: number;
  verified: number;
  masterKey: string;
  /** The manifest now names this keystore (it named another before). */
  switched: boolean;
}

/** Opens object material for verification: root keys unwrapped by the master key, or the HSM itself (direct mode). */
interface Opener {
  open(uid: string, wrapped: WrappedMaterial): Promise<Buffer>;
  close(): Promise<void>;
}

async function directOpener(dir: string, cfg: MasterConfig): Promise<Opener | undefined> {
  if (cfg.kind !== 'pkcs11' || cfg.mode !== 'direct') return undefined;
  const { openPkcs11DirectSealer } = await import('../crypto/pkcs11.js');
  const d = await openPkcs11DirectSealer({ module: cfg.module, token: cfg.token, keyLabel: cfg.keyLabel, pin: pkcs11Pin(dir, cfg), create: false });
  return { open: (uid, w) => d.open(uid, w), close: () => d.close() };
}

async function assertEmpty(store: KeyStore, name: string): Promise<void> {
  const objects = (await store.count()).reduce((a, c) => a + c.n, 0);
  const roots = (await store.rootKeys()).length;
  if (objects > 0 || roots > 0) {
    throw new RestoreError(
      `the keystore ${name} is not empty (${objects} object(s), ${roots} root key(s)); a restore goes into an empty keystore only: ` +
        'give another one with --store (a new SQLite file, or an empty PostgreSQL database or schema)',
    );
  }
}

/**
 * Restores the backup `inFile` into the keystore of data directory `dirArg` (or the one
 * `opts.store` names, which the manifest then records). See the file comment for the checks.
 */
export async function restoreBackup(
  dirArg: string,
  inFile: string,
  opts: { store?: string; progress?: ProgressFactory } = {},
): Promise<RestoreSummary> {
  const dir = resolve(dirArg);
  const m = loadManifest(dir, dirArg);
  const progress = opts.progress ?? noProgress;
  const target: KeystoreConfig = opts.store !== undefined ? storeConfigFromArg(opts.store, m.keystore) : m.keystore;
  const targetName = describeStore(target);

  // The header and the small parts first (meta, root keys come before the objects).
  let header: BackupHeader | undefined;
  const meta = new Map<string, string>();
  const rootRecs: RootKeyRecord[] = [];
  for await (const item of readBackup(inFile)) {
    if ('header' in item) header = item.header;
    else if (item.rec.t === 'meta') meta.set(item.rec.key, item.rec.value);
    else if (item.rec.t === 'rootKey') {
      const r = item.rec;
      rootRecs.push({ id: r.id, wrapped: Buffer.from(r.wrapped, 'base64'), masterKeyId: r.masterKeyId, status: r.status, createdAt: r.createdAt });
    } else break;
  }
  if (header === undefined) throw new BackupError(`${inFile} is not a kmipd backup`);
  if (rootRecs.filter((r) => r.status === 'active').length > 1) throw new RestoreError('the backup has more than one active root key');

  const store = await openKeyStore(dir, target);
  const masterCfg = selectMasterConfig(m, meta.get(META_MASTER_ID)).config;
  const pin = { pin: (c: Extract<MasterConfig, { kind: 'pkcs11' }>) => pkcs11Pin(dir, c) };
  let master: MasterKeyProvider | undefined;
  let resolver: MasterResolver | undefined;
  let direct: Opener | undefined;
  const rootKeys = new Map<string, KeyObject>();
  /** Set once the keystore is being written: a failure from then on leaves it partly restored. */
  let writing = false;
  try {
    await assertEmpty(store, targetName);
    master = await openMasterConfig(dir, masterCfg, pin);
    const theMaster = master;
    resolver = new MasterResolver(dir, (cfg) => openMasterConfig(dir, cfg, pin), [theMaster]);

    // ---- 1. verify the backup against this directory's master key, writing nothing --------
    const metaView: MetaStore = {
      getMeta: async (k) => meta.get(k),
      setMeta: async () => {
        throw new Error('read-only');
      },
    };
    try {
      await checkCanary(theMaster, metaView);
    } catch (e) {
      throw new RestoreError(`the backup does not belong to this data directory's master key: ${(e as Error).message}`);
    }
    for (const r of rootRecs) {
      const mk = (r.masterKeyId === theMaster.keyId ? theMaster : await resolver.masterFor(r.masterKeyId)) ?? theMaster;
      let plain: Buffer;
      try {
        plain = await mk.unwrap(r.wrapped);
      } catch {
        throw new RestoreError(`root key ${r.id} of the backup (wrapped by master key ${r.masterKeyId}) cannot be unwrapped by ${mk.kind}:${mk.keyId}`);
      }
      try {
        rootKeys.set(r.id, createSecretKey(plain));
      } finally {
        plain.fill(0);
      }
    }
    direct = await directOpener(dir, masterCfg);
    const openers: Opener = direct ?? {
      async open(uid, w) {
        const k = rootKeys.get(w.rootKeyId);
        if (k === undefined) throw new RestoreError(`object ${uid} is sealed under root key ${w.rootKeyId}, which the backup does not hold`);
        return openWith(k, w.rootKeyId, uid, Buffer.from(w.blob));
      },
      close: async () => undefined,
    };
    const verifyMaterial = async (o: StoredObject): Promise<void> => {
      if (o.material === null) return;
      let plain: Buffer;
      try {
        plain = await openers.open(o.uid, o.material);
      } catch (e) {
        throw new RestoreError(`the key material of object ${o.uid} does not verify: ${(e as Error).message}`);
      }
      plain.fill(0);
    };

    const expected = createHash('sha256');
    let count = 0;
    const bar1 = progress('restore: verifying the backup', header.counts.objects);
    // A failure is reported once the whole file was read: a damaged file is named as such.
    let failure: unknown;
    for await (const item of readBackup(inFile)) {
      if ('header' in item || item.rec.t !== 'object') continue;
      count++;
      bar1.tick();
      if (failure !== undefined) continue;
      try {
        const o = toObject(item.rec);
        await verifyMaterial(o);
        digestObject(expected, o);
      } catch (e) {
        failure = e;
      }
    }
    bar1.done();
    if (failure !== undefined) throw failure;
    if (count !== header.counts.objects) throw new BackupError(`the backup's header announces ${header.counts.objects} objects, but it holds ${count}`);
    const expectedDigest = expected.digest('hex');

    // ---- 2. write -------------------------------------------------------------------------
    await assertEmpty(store, targetName);
    writing = true;
    let metaCount = 0;
    for (const [k, v] of meta) {
      if (META_NOT_RESTORED.includes(k)) continue;
      await store.setMeta(k, v);
      metaCount++;
    }
    if (rootRecs.length > 0) await store.putRootKeys(rootRecs);
    const bulk = (store as Partial<{ insertMany(objs: readonly StoredObject[]): Promise<void> }>).insertMany?.bind(store);
    const bar2 = progress('restore: writing', count);
    let batch: StoredObject[] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      if (bulk) await bulk(batch);
      else await Promise.all(batch.map((o) => store.insert(o)));
      bar2.tick(batch.length);
      batch = [];
    };
    for await (const item of readBackup(inFile)) {
      if ('header' in item || item.rec.t !== 'object') continue;
      batch.push(toObject(item.rec));
      if (batch.length >= BATCH) await flush();
    }
    await flush();
    bar2.done();

    // ---- 3. read back through a RootKeyring, as the server will --------------------------
    let verified = 0;
    const got = createHash('sha256');
    const ring = await withInitLock(store, () => RootKeyring.open(store, theMaster, { masterFor: resolver!.masterFor }));
    try {
      const reader: Opener = direct ?? { open: async (uid, w) => ring.open(uid, w), close: async () => undefined };
      const uids = await store.locate({ filters: [] });
      if (uids.length !== count) throw new RestoreError(`the keystore holds ${uids.length} objects after the restore, the backup ${count}`);
      const bar3 = progress('restore: verifying the keystore', uids.length);
      for (const uid of uids) {
        const o = await store.get(uid);
        if (o === undefined) throw new RestoreError(`object ${uid} vanished during the restore`);
        if (o.material !== null) {
          let plain: Buffer;
          try {
            plain = await reader.open(uid, o.material);
          } catch (e) {
            throw new RestoreError(`the restored key material of object ${uid} does not open with the master key: ${(e as Error).message}`);
          }
          plain.fill(0);
        }
        digestObject(got, o);
        verified++;
        bar3.tick();
      }
      bar3.done();
    } finally {
      ring.close();
    }
    if (got.digest('hex') !== expectedDigest) throw new RestoreError('the restored keystore does not match the backup');

    let switched = false;
    if (JSON.stringify(target) !== JSON.stringify(m.keystore)) {
      writeManifest(dir, { ...m, keystore: target });
      switched = true;
    }
    return {
      store: targetName,
      backend: store.backend,
      objects: count,
      rootKeys: rootRecs.length,
      meta: metaCount,
      verified,
      masterKey: `${theMaster.kind}:${theMaster.keyId}`,
      switched,
    };
  } catch (e) {
    if (!writing) throw e;
    throw new RestoreError(
      `${(e as Error).message}. The keystore ${targetName} now holds a partial restore` +
        `${target === m.keystore ? '' : ' (kmipd.json still names the old one)'}: empty it (delete the SQLite file, or drop the PostgreSQL schema) before trying again`,
      { cause: e },
    );
  } finally {
    rootKeys.clear();
    await direct?.close();
    await resolver?.close();
    await master?.close();
    await store.close();
  }
}
