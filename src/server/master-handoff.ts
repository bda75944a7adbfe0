/**
 * Handing a new master key to the other nodes of a shared (PostgreSQL) keystore.
 *
 * `kmipd master rotate|migrate|rollback` on one node re-wraps the shared root keys under a new
 * master key. The other nodes hold only the previous key. So that they follow without a restart
 * or a copied file, the command also stores a hand-off entry in the keystore, in the same
 * transaction that moves the root keys and the canary (src/crypto/rotation.ts):
 *
 *   meta "master.handoff" = { "format": 1, "entries": [ HandoffEntry, ... ] }
 *
 * An entry names the new version and its key id, and `from`, the id of the master key that was
 * current before. For a software master key it holds the new key's 32 bytes wrapped (RFC 5649,
 * through MasterKeyProvider.wrap, so inside the HSM when the old key is a PKCS#11 one) under that
 * previous key; for a PKCS#11 master key it holds no material, only where the new key is (token,
 * label): the key never leaves the HSM, and a node on the same token opens it by label.
 *
 * Every node (MasterHandoff, polling every HANDOFF_POLL_MS like the trust synchronisation, also
 * at start-up, and at once when a root key names a master key it does not know) compares the
 * keystore's master key id (the canary's, META_MASTER_ID) with the one its manifest names. When
 * they differ it:
 *   1. takes the data directory's key lock (so it never races `kmipd master` on the same node);
 *   2. finds the key: a version it kept itself (a rollback elsewhere: its `.retired` file), else
 *      the entries, unwrapping each with a key it holds (a chain, when it missed several
 *      rotations);
 *   3. checks the key against the keystore's canary: a key that does not reproduce it is never
 *      written or used;
 *   4. writes a software key to `master-<version>.key` (0600, fsynced, never over an existing
 *      file), renames the previous key file `<file>.retired` (as the rotating node does), and
 *      rewrites the manifest atomically; the running server keeps serving (its root keys did not
 *      change) and its next start opens the new key;
 *   5. records which version it runs under "master.adopted" (one JSON map, node id ->
 *      version), shown by `kmipd master status`, and an audit record `master adopt`.
 *
 * The window: while an entry exists, whoever holds the PREVIOUS master key (an old key file, a
 * backup of it) together with the keystore can compute the new one. `kmipd master retire-old`
 * closes it: once every node recorded the current version (or with --force) it erases the
 * entries' key material. A node that had not adopted by then needs a new node bundle.
 *
 * Keep-your-own-key is unchanged: no key is ever stored in clear, a software key travels only
 * wrapped under the master key it replaces, a PKCS#11 key never leaves its token.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, fchmodSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import {
  MASTER_KEY_BYTES,
  META_MASTER_ID,
  SoftwareMasterKey,
  WrongMasterKeyError,
  checkCanary,
  loadSoftwareMasterKey,
  type MasterKeyProvider,
} from '../crypto/index.js';
import type { KeyStore } from '../keystore/types.js';
import { readManifest, writeManifest, type MasterConfig, type Manifest, type Pkcs11MasterConfig, type RetiredMasterConfig } from './datadir.js';
import { versionOf } from './master-versions.js';
import { fsyncDir } from '../durable.js';

export const META_MASTER_HANDOFF = 'master.handoff';
export const META_MASTER_NODES = 'master.adopted';
/** How often a running node looks for a master key change made on another node. */
export const HANDOFF_POLL_MS = 2000;

export interface HandoffEntry {
  version: number;
  kind: 'software' | 'pkcs11';
  /** The new master key's id (MasterKeyProvider.keyId). */
  keyId: string;
  /** The id of the master key `wrapped` is wrapped under (the one current before the change). */
  from: string;
  createdAt: string;
  /** Software: hex of the new key's bytes, RFC 5649-wrapped under `from`. */
  wrapped?: string;
  /** PKCS#11: where the new key is (never its material). */
  pkcs11?: { module: string; token: string; keyLabel: string; baseKeyLabel?: string };
}

export interface HandoffDoc {
  format: 1;
  entries: HandoffEntry[];
  /** Entries erased by `kmipd master retire-old` (no material kept). */
  erased?: { version: number; keyId: string; at: string }[];
}

export interface NodeMasterRecord {
  version: number;
  keyId: string;
  kind: string;
  /** When this node started running it (ISO). */
  since: string;
  /** Last time the node confirmed it (ISO). */
  seen: string;
  host: string;
  dir: string;
}

/** What identifies a node in "master.adopted": its host and data directory. */
export function nodeId(dir: string): string {
  return `${hostname()}:${resolve(dir)}`;
}

function isEntry(e: unknown): e is HandoffEntry {
  const o = e as Partial<HandoffEntry>;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.version === 'number' &&
    (o.kind === 'software' || o.kind === 'pkcs11') &&
    typeof o.keyId === 'string' &&
    typeof o.from === 'string' &&
    typeof o.createdAt === 'string' &&
    (o.wrapped === undefined || (typeof o.wrapped === 'string' && /^[0-9a-f]+$/i.test(o.wrapped))) &&
    (o.pkcs11 === undefined || (typeof o.pkcs11.token === 'string' && typeof o.pkcs11.keyLabel === 'string' && typeof o.pkcs11.module === 'string'))
  );
}

/** The hand-off entries of `store` (an empty document when there are none or the row is unreadable). */
export async function readHandoff(store: Pick<KeyStore, 'getMeta'>): Promise<HandoffDoc> {
  const raw = await store.getMeta(META_MASTER_HANDOFF);
  if (raw === undefined) return { format: 1, entries: [] };
  try {
    const d = JSON.parse(raw) as Partial<HandoffDoc>;
    const doc: HandoffDoc = { format: 1, entries: Array.isArray(d.entries) ? d.entries.filter(isEntry) : [] };
    if (Array.isArray(d.erased)) doc.erased = d.erased;
    return doc;
  } catch {
    return { format: 1, entries: [] };
  }
}

/**
 * The meta value to store with a master key change from `current` to `next` (configuration
 * `nextCfg` in data directory `dir`): the existing entries and one for `next`. For a software
 * key the key file is read and wrapped under `current` (the bytes are zeroed at once).
 */
export async function handoffMeta(store: Pick<KeyStore, 'getMeta'>, dir: string, current: MasterKeyProvider, nextCfg: MasterConfig, next: MasterKeyProvider): Promise<Record<string, string>> {
  const doc = await readHandoff(store);
  const entry: HandoffEntry = { version: versionOf(nextCfg), kind: nextCfg.kind, keyId: next.keyId, from: current.keyId, createdAt: new Date().toISOString() };
  if (nextCfg.kind === 'software') {
    const bytes = readFileSync(join(dir, nextCfg.file));
    try {
      if (bytes.length !== MASTER_KEY_BYTES) throw new Error(`the new master key file ${nextCfg.file} does not hold ${MASTER_KEY_BYTES} bytes`);
      const check = new SoftwareMasterKey(bytes, join(dir, nextCfg.file));
      const same = check.keyId === next.keyId;
      await check.close();
      if (!same) throw new Error(`the new master key file ${nextCfg.file} is not the key ${next.keyId}`);
      entry.wrapped = (await current.wrap(bytes)).toString('hex');
    } finally {
      bytes.fill(0);
    }
  } else {
    entry.pkcs11 = { module: nextCfg.module, token: nextCfg.token, keyLabel: nextCfg.keyLabel };
    if (nextCfg.baseKeyLabel !== undefined) entry.pkcs11.baseKeyLabel = nextCfg.baseKeyLabel;
  }
  doc.entries = [...doc.entries.filter((e) => e.keyId !== entry.keyId), entry];
  return { [META_MASTER_HANDOFF]: JSON.stringify(doc) };
}

interface ClusterLockable {
  withClusterLock<R>(purpose: string, fn: () => Promise<R>): Promise<R>;
}

function withLock<R>(store: KeyStore, purpose: string, fn: () => Promise<R>): Promise<R> {
  const l = store as KeyStore & Partial<ClusterLockable>;
  return typeof l.withClusterLock === 'function' ? l.withClusterLock(purpose, fn) : fn();
}

/** The master key version each node recorded, by node id. */
export async function readNodeMasters(store: Pick<KeyStore, 'getMeta'>): Promise<Record<string, NodeMasterRecord>> {
  const raw = await store.getMeta(META_MASTER_NODES);
  if (raw === undefined) return {};
  try {
    const o = JSON.parse(raw) as unknown;
    return typeof o === 'object' && o !== null && !Array.isArray(o) ? (o as Record<string, NodeMasterRecord>) : {};
  } catch {
    return {};
  }
}

/** Records that the node of `dir` runs master key `v` (rewritten only when it changed, or daily). */
export async function recordNodeMaster(store: KeyStore, dir: string, v: { version: number; keyId: string; kind: string }): Promise<void> {
  const id = nodeId(dir);
  await withLock(store, 'master-nodes', async () => {
    const all = await readNodeMasters(store);
    const cur = all[id];
    const now = new Date().toISOString();
    if (cur !== undefined && cur.keyId === v.keyId && cur.version === v.version && Date.now() - Date.parse(cur.seen) < 86_400_000) return;
    all[id] = { version: v.version, keyId: v.keyId, kind: v.kind, since: cur !== undefined && cur.keyId === v.keyId ? cur.since : now, seen: now, host: hostname(), dir: resolve(dir) };
    await store.setMeta(META_MASTER_NODES, JSON.stringify(all));
  });
}

/** Forgets a node in "master.adopted" (it was removed from the cluster). */
export async function forgetNode(store: KeyStore, id: string): Promise<boolean> {
  return withLock(store, 'master-nodes', async () => {
    const all = await readNodeMasters(store);
    if (all[id] === undefined) return false;
    delete all[id];
    await store.setMeta(META_MASTER_NODES, JSON.stringify(all));
    return true;
  });
}

/** Erases every hand-off entry's material (`kmipd master retire-old`); returns the versions erased. */
export async function eraseHandoff(store: KeyStore): Promise<HandoffEntry[]> {
  const doc = await readHandoff(store);
  if (doc.entries.length === 0) return [];
  const at = new Date().toISOString();
  const erased = [...(doc.erased ?? []), ...doc.entries.map((e) => ({ version: e.version, keyId: e.keyId, at }))];
  await store.setMeta(META_MASTER_HANDOFF, JSON.stringify({ format: 1, entries: [], erased } satisfies HandoffDoc));
  return doc.entries;
}

// ---- adoption ------------------------------------------------------------------------------------

export interface AdoptResult {
  adopted: boolean;
  from?: { version: number; keyId: string };
  to?: { version: number; keyId: string; kind: string };
  /** Why nothing was adopted although the keystore is under another master key. */
  reason?: string;
}

export interface AdoptOptions {
  log: Logger;
  /** Opens a master key configuration of this data directory. */
  open(cfg: MasterConfig): Promise<MasterKeyProvider>;
  /** Takes the data directory's key lock; throws when another command holds it. */
  lock(what: string): () => void;
  /** The id of the key the manifest's `master` names, when the manifest does not record it. */
  currentKeyId?: string;
}


function freeName(dir: string, name: string): string {
  if (!existsSync(join(dir, name))) return name;
  for (let i = 2; ; i++) if (!existsSync(join(dir, `${name}-${i}`))) return `${name}-${i}`;
}

/** Writes `key` to DIR/NAME (0600), fsynced, linked into place: never replaces a file. */
function writeKeyFile(dir: string, name: string, key: Buffer): void {
  const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      fchmodSync(fd, 0o600);
      writeSync(fd, key);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, join(dir, name));
    fsyncDir(dir);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* gone */
    }
  }
}

interface Held {
  key: MasterKeyProvider;
  /** Software keys unwrapped from an entry: their bytes, to write the file (zeroed after). */
  bytes?: Buffer;
  entry?: HandoffEntry;
}

/**
 * Brings data directory `dir` to the master key the keystore is under now, if another node
 * changed it (see the module comment). Resolves { adopted: false } when there is nothing to do,
 * or with a reason when it cannot (yet); rejects with WrongMasterKeyError when a candidate key
 * does not reproduce the keystore's canary.
 */
export async function adoptMasterChange(dir: string, store: KeyStore, opts: AdoptOptions): Promise<AdoptResult> {
  const dataId = await store.getMeta(META_MASTER_ID);
  if (dataId === undefined) return { adopted: false };
  const m0 = readManifest(dir);
  if (m0 === undefined) return { adopted: false };
  // This node's own `kmipd master` change in progress: key-admin.ts finishes it.
  if (m0.masterPending !== undefined) return { adopted: false };
  if (m0.master.kind === 'pkcs11' && m0.master.mode === 'direct') return { adopted: false };
  if ((m0.master.keyId ?? opts.currentKeyId) === dataId) return { adopted: false };
  let release: () => void;
  try {
    release = opts.lock('master key adoption (kmipd serve)');
  } catch (e) {
    return { adopted: false, reason: (e as Error).message };
  }
  const opened: Held[] = [];
  try {
    const m = readManifest(dir);
    if (m === undefined || m.masterPending !== undefined) return { adopted: false };
    const current = await opts.open(m.master);
    opened.push({ key: current });
    if (current.keyId === dataId) return { adopted: false };
    const from = { version: versionOf(m.master), keyId: current.keyId };

    // A version this node kept (a rollback made on another node)?
    const kept = m.masterHistory?.find((h) => h.keyId === dataId);
    let target: { cfg: MasterConfig; key: MasterKeyProvider; bytes?: Buffer };
    let restoreKept: RetiredMasterConfig | undefined;
    if (kept !== undefined) {
      const { retiredAt: _r, ...cfg } = kept;
      const key = await opts.open(cfg);
      opened.push({ key });
      target = { cfg, key };
      restoreKept = kept;
    } else {
      const doc = await readHandoff(store);
      const held = new Map<string, Held>([[current.keyId, { key: current }]]);
      for (let progress = true; progress && !held.has(dataId); ) {
        progress = false;
        for (const e of doc.entries) {
          if (held.has(e.keyId)) continue;
          const via = held.get(e.from);
          if (via === undefined) continue;
          const h = await unwrapEntry(dir, m, e, via.key, opts);
          opened.push(h);
          if (h.key.keyId !== e.keyId) throw new WrongMasterKeyError(`the hand-off of master key version ${e.version} gives key ${h.key.keyId}, not ${e.keyId}; refusing it`);
          held.set(e.keyId, h);
          progress = true;
        }
      }
      const h = held.get(dataId);
      if (h === undefined || h.entry === undefined) {
        return {
          adopted: false,
          reason:
            `the keystore is under master key ${dataId}, and there is no hand-off to it from a key this node holds (${current.keyId}); ` +
            'was the old version retired (`kmipd master retire-old`) before this node adopted it? Set this node up again from a new node bundle',
        };
      }
      const e = h.entry;
      const createdAt = e.createdAt;
      if (e.kind === 'software') target = { cfg: { kind: 'software', file: `master-${e.version}.key`, version: e.version, keyId: e.keyId, createdAt }, key: h.key, ...(h.bytes ? { bytes: h.bytes } : {}) };
      else target = { cfg: pkcs11Config(m, e), key: h.key };
    }
    // Only a key that reproduces the keystore's canary is ever written or used.
    if ((await checkCanary(target.key, store)) !== 'verified') return { adopted: false, reason: 'the keystore has no canary to check the new master key against' };

    const retiredAt = new Date().toISOString();
    let cfg = target.cfg;
    if (cfg.kind === 'software') {
      if (restoreKept !== undefined) {
        // Back under its original name when that is free (as `kmipd master rollback` does).
        const original = cfg.file.replace(/\.retired(-\d+)?$/, '');
        if (original !== cfg.file && !existsSync(join(dir, original)) && existsSync(join(dir, cfg.file))) {
          renameSync(join(dir, cfg.file), join(dir, original));
          fsyncDir(dir);
          cfg = { ...cfg, file: original };
        }
      } else {
        if (target.bytes === undefined) throw new Error('internal: no key bytes for a software hand-off');
        const name = freeName(dir, cfg.file);
        writeKeyFile(dir, name, target.bytes);
        cfg = { ...cfg, file: name };
        const check = await loadSoftwareMasterKey(join(dir, name));
        const ok = check.keyId === target.key.keyId;
        await check.close();
        if (!ok) throw new Error(`internal: ${name} does not hold the key just written`);
      }
    }
    const old = m.master;
    let retired: RetiredMasterConfig;
    if (old.kind === 'software') {
      let file = old.file;
      if (existsSync(join(dir, old.file))) {
        file = freeName(dir, `${old.file}.retired`);
        renameSync(join(dir, old.file), join(dir, file));
        fsyncDir(dir);
      }
      retired = { ...old, file, keyId: current.keyId, version: versionOf(old), retiredAt };
    } else {
      retired = { ...old, keyId: current.keyId, version: versionOf(old), retiredAt };
    }
    m.masterHistory = [...(m.masterHistory ?? []).filter((h) => h.keyId !== target.key.keyId && h.keyId !== current.keyId), retired];
    m.master = { ...cfg, keyId: target.key.keyId, version: versionOf(cfg) };
    writeManifest(dir, m);
    const to = { version: versionOf(cfg), keyId: target.key.keyId, kind: cfg.kind };
    opts.log.info({ from, to }, 'adopted the master key another node changed to; the previous one is kept as retired');
    return { adopted: true, from, to };
  } finally {
    for (const h of opened) {
      h.bytes?.fill(0);
      await h.key.close().catch(() => undefined);
    }
    release();
  }
}

function pkcs11Config(m: Manifest, e: HandoffEntry): Pkcs11MasterConfig {
  const p = e.pkcs11!;
  // This node's module path and PIN file when it already uses an HSM (paths differ per host).
  const local = m.master.kind === 'pkcs11' ? m.master : m.masterHistory?.find((h): h is RetiredMasterConfig & Pkcs11MasterConfig => h.kind === 'pkcs11');
  const cfg: Pkcs11MasterConfig = { kind: 'pkcs11', module: local?.module ?? p.module, token: p.token, keyLabel: p.keyLabel, mode: 'root', version: e.version, keyId: e.keyId, createdAt: e.createdAt };
  if (p.baseKeyLabel !== undefined) cfg.baseKeyLabel = p.baseKeyLabel;
  if (local?.pinFile !== undefined) cfg.pinFile = local.pinFile;
  return cfg;
}

async function unwrapEntry(dir: string, m: Manifest, e: HandoffEntry, via: MasterKeyProvider, opts: AdoptOptions): Promise<Held> {
  if (e.kind === 'pkcs11') return { key: await opts.open(pkcs11Config(m, e)), entry: e };
  if (e.wrapped === undefined) throw new Error(`the hand-off of master key version ${e.version} holds no key (erased)`);
  const bytes = await via.unwrap(Buffer.from(e.wrapped, 'hex'));
  if (bytes.length !== MASTER_KEY_BYTES) {
    bytes.fill(0);
    throw new Error(`the hand-off of master key version ${e.version} does not hold a ${MASTER_KEY_BYTES}-byte key`);
  }
  return { key: new SoftwareMasterKey(bytes, join(dir, `master-${e.version}.key`)), bytes, entry: e };
}

// ---- the running node -------------------------------------------------------------------------------

export interface HandoffAudit {
  record(entries: readonly { kind: 'admin'; identity: string; address?: string; operation: string; object?: string; result: string; reason?: string }[]): Promise<void>;
  anchor(): Promise<void>;
}

/**
 * A running node's side: adopts master key changes made by other nodes (polling, or at once via
 * adoptNow()), records the version it runs, and writes an audit record for each adoption.
 */
export class MasterHandoff {
  readonly #dir: string;
  readonly #store: KeyStore;
  readonly #opts: AdoptOptions;
  #audit: HandoffAudit | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<AdoptResult> | undefined;
  #lastDataId: string | undefined;
  #lastReason: string | undefined;
  #closed = false;
  /** Adoptions made before the audit log was attached (at start-up). */
  #unaudited: AdoptResult[] = [];

  constructor(dir: string, store: KeyStore, opts: AdoptOptions) {
    this.#dir = dir;
    this.#store = store;
    this.#opts = opts;
  }

  /** An adoption made before this object existed (at start-up): audited once the log is attached. */
  note(r: AdoptResult): void {
    if (r.adopted || r.reason !== undefined) this.#unaudited.push(r);
  }

  /** Adopts a change now if there is one (concurrent callers share one run); never rejects. */
  adoptNow(): Promise<AdoptResult> {
    if (this.#closed) return Promise.resolve({ adopted: false, reason: 'closed' });
    this.#running ??= this.#adopt().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #adopt(): Promise<AdoptResult> {
    let r: AdoptResult;
    try {
      r = await adoptMasterChange(this.#dir, this.#store, this.#opts);
    } catch (e) {
      const reason = (e as Error).message;
      if (reason !== this.#lastReason) this.#opts.log.error({ err: reason }, 'cannot adopt the master key another node changed to; will retry');
      this.#lastReason = reason;
      if (e instanceof WrongMasterKeyError) await this.#auditResult({ adopted: false, reason }, 'Failed');
      return { adopted: false, reason };
    }
    if (r.reason !== undefined && r.reason !== this.#lastReason) this.#opts.log.warn({ reason: r.reason }, 'the keystore is under another master key, not adopted yet');
    this.#lastReason = r.reason;
    if (r.adopted) await this.#auditResult(r, 'Success');
    await this.#recordSelf().catch((e: unknown) => this.#opts.log.warn({ err: (e as Error).message }, 'cannot record this node\'s master key version in the keystore'));
    return r;
  }

  async #recordSelf(): Promise<void> {
    const m = readManifest(this.#dir);
    if (m === undefined) return;
    const dataId = await this.#store.getMeta(META_MASTER_ID);
    const keyId = m.master.keyId ?? this.#opts.currentKeyId ?? dataId;
    if (keyId === undefined) return;
    await recordNodeMaster(this.#store, this.#dir, { version: versionOf(m.master), keyId, kind: m.master.kind });
  }

  async #auditResult(r: AdoptResult, result: string): Promise<void> {
    if (this.#audit === undefined) {
      this.#unaudited.push(r);
      return;
    }
    const entry: Parameters<HandoffAudit['record']>[0][number] = {
      kind: 'admin',
      identity: 'kmipd:node',
      address: `local:${hostname()}`,
      operation: 'master adopt',
      result,
    };
    if (r.to !== undefined) entry.object = `master key version ${r.to.version} (${r.to.keyId})`;
    if (r.from !== undefined) entry.reason = `from version ${r.from.version} (${r.from.keyId})`;
    else if (r.reason !== undefined) entry.reason = r.reason.slice(0, 200);
    try {
      await this.#audit.record([entry]);
      await this.#audit.anchor();
    } catch (e) {
      this.#opts.log.error({ err: (e as Error).message }, 'cannot write the audit record of a master key adoption');
    }
  }

  /** Starts polling (and writes the audit records of adoptions made before). */
  async start(audit: HandoffAudit | undefined, pollMs = HANDOFF_POLL_MS): Promise<void> {
    this.#audit = audit;
    for (const r of this.#unaudited.splice(0)) await this.#auditResult(r, r.adopted ? 'Success' : 'Failed');
    await this.#recordSelf().catch((e: unknown) => this.#opts.log.warn({ err: (e as Error).message }, 'cannot record this node\'s master key version in the keystore'));
    this.#lastDataId = await this.#store.getMeta(META_MASTER_ID).catch(() => undefined);
    this.#timer = setInterval(() => this.#tick(), pollMs);
    this.#timer.unref();
  }

  #tick(): void {
    if (this.#closed || this.#running !== undefined) return;
    this.#store.getMeta(META_MASTER_ID).then(
      (id) => {
        // Cheap when nothing changed; after a change, until adopted (or the reason goes away).
        if (id === this.#lastDataId && this.#lastReason === undefined) return;
        void this.adoptNow().then((r) => {
          if (r.reason === undefined) this.#lastDataId = id;
        });
      },
      () => undefined, // the keystore is down: the next tick tries again
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#running?.catch(() => undefined);
  }
}
