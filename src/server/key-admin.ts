/**
 * Key administration of a data directory, for `kmipd master ...` and `kmipd root ...`: the
 * master key versions (rotate, migrate between software and PKCS#11, roll back), the root keys
 * (rotate, re-wrap every object), and their status. All of it works while a server serves from
 * the same directory (SQLite in WAL mode; see src/crypto/rotation.ts for why a running server
 * is not disturbed).
 *
 * A master key change, step by step (each step durable before the next):
 *   1. the new key is created: a new file `master-<version>.key` (0600), or a new token key
 *      generated inside the HSM (`<label>-v<version>` when rotating);
 *   2. the manifest records it as `masterPending`, with its key id;
 *   3. the root keys are re-wrapped under it and its canary recorded, in ONE keystore transaction
 *      (with a shared keystore also the hand-off the other nodes adopt it from: master-handoff.ts);
 *   4. the previous key is retired: a key file is renamed `<file>.retired`, a token key stays
 *      on the token; the manifest makes the new key `master` and lists the old one in
 *      `masterHistory` (atomic rename of kmipd.json).
 * Killed between 3 and 4, a server still starts (it follows the keystore's canary to the
 * pending key), and any `kmipd master rotate|migrate|rollback` finishes the change first.
 *
 * On a node that has not yet adopted a change made by another node (its server was down), the
 * commands adopt it first.
 *
 * The commands exclude each other with a lock file in the data directory (`.kmipd-keys.lock`,
 * holding the pid; left behind by a killed command, it is taken over once that pid is gone).
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RootKeyring, WrongMasterKeyError, checkCanary, type MasterKeyProvider } from '../crypto/index.js';
import {
  objectsUnderRetiredRootKeys,
  rewrapObjects,
  rewrapRootKeys,
  rootKeyUsage,
  type RewrapProgress,
  type RewrapResult,
  type RootKeyUsage,
} from '../crypto/rotation.js';
import type { KeyStore } from '../keystore/types.js';
import { MANIFEST, readManifest, writeManifest, type Manifest, type MasterConfig, type Pkcs11MasterConfig, type RetiredMasterConfig } from './datadir.js';
import {
  MasterResolver,
  dataMasterId,
  describeMasterConfig,
  masterVersions,
  nextMasterVersion,
  openMasterConfig,
  selectMasterConfig,
  versionOf,
  type MasterVersionStatus,
} from './master-versions.js';
import { ROOT_KEY_REFRESH_MS, pkcs11Pin } from './server.js';
import { silentLogger } from './log.js';
import { adoptMasterChange, eraseHandoff, forgetNode, handoffMeta, nodeId, readHandoff, readNodeMasters, recordNodeMaster, type HandoffEntry } from './master-handoff.js';
import { openKeyStore } from './store.js';
import { fsyncDir } from '../durable.js';

/** A key administration command cannot proceed; the message says why and what to do. */
export class KeyAdminError extends Error {
  override readonly name = 'KeyAdminError';
}

export const KEY_LOCK_FILE = '.kmipd-keys.lock';

// ---- data directory, lock -----------------------------------------------------------------------

function dataDirOf(arg: string): string {
  const dir = resolve(arg);
  if (!existsSync(join(dir, MANIFEST))) {
    throw new KeyAdminError(`no kmipd data directory at ${dir} (no ${MANIFEST}); give --data, or run \`kmipd serve --data ${arg}\` once first`);
  }
  return dir;
}

function manifestOf(dir: string): Manifest {
  const m = readManifest(dir);
  if (m === undefined) throw new KeyAdminError(`no ${MANIFEST} in ${dir}`);
  return m;
}

function refuseDirectMode(m: Manifest, command: string): void {
  const c = m.master;
  if (c.kind === 'pkcs11' && c.mode === 'direct') {
    throw new KeyAdminError(
      `${command}: this data directory uses the HSM in direct mode: every object is sealed by the token key "${c.keyLabel}-direct" ` +
        'itself and the root keys protect nothing; master and root key rotation are for root mode only',
    );
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the key administration lock of `dir`; returns its release. Refuses (KeyAdminError)
 * while another live process holds it; takes over a lock whose process is gone (kill -9).
 */
export function acquireKeyLock(dir: string, what: string): () => void {
  const file = join(dir, KEY_LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder: { pid?: unknown; what?: unknown; since?: unknown } = {};
      try {
        holder = JSON.parse(readFileSync(file, 'utf8')) as typeof holder;
      } catch {
        // empty or half-written: its writer died before finishing (or is writing right now)
      }
      if (typeof holder.pid === 'number' && pidAlive(holder.pid)) {
        throw new KeyAdminError(
          `another key command is running on this data directory: ${String(holder.what)} (pid ${holder.pid}, since ${String(holder.since)}); ` +
            `wait for it to finish (if that process is gone, remove ${file})`,
        );
      }
      if (typeof holder.pid !== 'number' && attempt === 0) {
        // Give a writer that just created it a moment to fill it in.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
        continue;
      }
      try {
        unlinkSync(file); // stale: its process is gone
      } catch {
        /* someone else removed it */
      }
      continue;
    }
    try {
      writeSync(fd, JSON.stringify({ pid: process.pid, what, since: new Date().toISOString() }));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return () => {
      try {
        const h = JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown };
        if (h.pid === process.pid) unlinkSync(file);
      } catch {
        /* gone already */
      }
    };
  }
  throw new KeyAdminError(`cannot take the lock ${file}; try again`);
}

/**
 * Runs `fn` under the keystore's cluster-wide lock when it has one (PostgreSQL shared by several
 * nodes: the data-directory lock file only excludes commands on this host).
 */
function withStoreLock<R>(store: KeyStore, fn: () => Promise<R>): Promise<R> {
  const lockable = store as KeyStore & { withClusterLock?: (purpose: string, f: () => Promise<R>) => Promise<R> };
  return typeof lockable.withClusterLock === 'function' ? lockable.withClusterLock('key-admin', fn) : fn();
}

/** A keystore several nodes may share (PostgreSQL). */
function sharedStore(store: KeyStore): boolean {
  return typeof (store as KeyStore & { withClusterLock?: unknown }).withClusterLock === 'function';
}


// ---- opening keys -------------------------------------------------------------------------------

/** True when `e` says the HSM cannot be reached (rather than refusing something). */
function hsmUnreachable(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  return e.name === 'HsmUnavailableError' || (e.name === 'Pkcs11SetupError' && (code === 'TOKEN_NOT_FOUND' || code === 'MODULE'));
}

/** Opens (or creates) the master key of `cfg`, with a message that says which key and why not. */
async function openVersion(dir: string, cfg: MasterConfig, opts: { create?: boolean; pin?: string } = {}): Promise<MasterKeyProvider> {
  try {
    return await openMasterConfig(dir, cfg, { create: opts.create === true, pin: (c: Pkcs11MasterConfig) => opts.pin ?? pkcs11Pin(dir, c) });
  } catch (e) {
    const what = `${opts.create === true ? 'create' : 'open'} master key version ${versionOf(cfg)} (${cfg.kind}, ${describeMasterConfig(cfg)})`;
    const hint = hsmUnreachable(e) ? ' (the HSM is unavailable; run the command again once it is back)' : '';
    throw new KeyAdminError(`cannot ${what}: ${(e as Error).message}${hint}`, { cause: e });
  }
}

/** Opens the master key the keystore is under now, and checks it against the canary. */
async function openCurrent(dir: string, m: Manifest, store: KeyStore): Promise<{ master: MasterKeyProvider; config: MasterConfig }> {
  const sel = selectMasterConfig(m, await dataMasterId(store));
  const master = await openVersion(dir, sel.config);
  try {
    await checkCanary(master, store);
  } catch (e) {
    await master.close();
    if (e instanceof WrongMasterKeyError) throw new KeyAdminError(`${e.message} (nothing was changed)`, { cause: e });
    throw e;
  }
  return { master, config: sel.config };
}

// ---- master key changes -------------------------------------------------------------------------

export interface MasterVersionSummary {
  version: number;
  kind: MasterConfig['kind'];
  id: string | null;
  created: string | null;
  status: MasterVersionStatus;
  retired?: string;
  location: string;
}

export interface MasterChangeResult {
  /** 'rotated', 'migrated', 'rolled back', or 'finished' (an interrupted change was completed instead). */
  action: 'rotated' | 'migrated' | 'rolled back' | 'finished';
  from: MasterVersionSummary;
  to: MasterVersionSummary;
  /** Root keys now wrapped by the new master key. */
  rootKeys: number;
  /** What the admin should know or do next (keep / shred the retired key). */
  notes: string[];
}

function infoOf(cfg: MasterConfig, status: MasterVersionStatus, keyId: string | undefined): MasterVersionSummary {
  const i: MasterVersionSummary = {
    version: versionOf(cfg),
    kind: cfg.kind,
    id: cfg.keyId ?? keyId ?? null,
    created: cfg.createdAt ?? null,
    status,
    location: describeMasterConfig(cfg),
  };
  const r = (cfg as Partial<RetiredMasterConfig>).retiredAt;
  if (r !== undefined) i.retired = r;
  return i;
}

function withoutRetiredAt(h: RetiredMasterConfig): MasterConfig {
  const { retiredAt: _unused, ...cfg } = h;
  return cfg;
}

/** A file name in `dir` that does not exist yet: `name`, else `name-2`, `name-3`, ... */
function freeName(dir: string, name: string): string {
  if (!existsSync(join(dir, name))) return name;
  for (let i = 2; ; i++) if (!existsSync(join(dir, `${name}-${i}`))) return `${name}-${i}`;
}

/**
 * Step 4: retires the current master key and makes the pending one current. Idempotent: a key
 * file renamed before an interruption is found under its new name.
 */
function retireAndSwitch(dir: string, m: Manifest): string[] {
  const old = m.master;
  const next = m.masterPending;
  if (next === undefined) throw new Error('internal: no pending master key');
  const notes: string[] = [];
  const retiredAt = new Date().toISOString();
  let retired: RetiredMasterConfig;
  if (old.kind === 'software') {
    const renamed = `${old.file}.retired`;
    let file = old.file;
    if (existsSync(join(dir, old.file))) {
      file = freeName(dir, renamed);
      renameSync(join(dir, old.file), join(dir, file));
      fsyncDir(dir);
    } else if (existsSync(join(dir, renamed))) {
      file = renamed; // renamed before an interruption
    }
    retired = { ...old, file, retiredAt };
    const path = join(dir, file);
    notes.push(
      `the previous master key file is kept as ${path}, so that \`kmipd master rollback\` is possible; ` +
        `once no backup of the keystore needs it, destroy it: shred -u ${path}`,
    );
  } else {
    retired = { ...old, retiredAt };
    notes.push(
      `the previous master key "${old.keyLabel}" stays on token "${old.token}", so that \`kmipd master rollback\` is possible; ` +
        'once no backup of the keystore needs it, destroy it in the HSM',
    );
  }
  m.masterHistory = [...(m.masterHistory ?? []).filter((h) => next.keyId === undefined || h.keyId !== next.keyId), retired];
  m.master = next;
  delete m.masterPending;
  writeManifest(dir, m);
  return notes;
}

/**
 * Another node changed the master key and this one has not adopted it yet (its server is down):
 * adopt it first (src/server/master-handoff.ts), so that the command works on the key the
 * keystore is under. The caller holds the key lock. Returns a note when it adopted one.
 */
async function catchUp(dir: string, store: KeyStore): Promise<string | undefined> {
  const r = await adoptMasterChange(dir, store, { log: silentLogger(), open: (c) => openVersion(dir, c), lock: () => () => undefined });
  if (!r.adopted || r.to === undefined) return undefined;
  await recordNodeMaster(store, dir, { version: r.to.version, keyId: r.to.keyId, kind: r.to.kind });
  return `first adopted master key version ${r.to.version}, made on another node sharing this keystore`;
}

/** Steps 2-4 with `next` (already created/opened) as the new master key. */
async function switchMaster(dir: string, m: Manifest, store: KeyStore, current: MasterKeyProvider, nextCfg: MasterConfig, next: MasterKeyProvider): Promise<{ rootKeys: number; notes: string[] }> {
  const created = m.master.createdAt ?? (versionOf(m.master) === 1 ? m.createdAt : undefined);
  m.master = { ...m.master, keyId: current.keyId, version: versionOf(m.master) };
  if (created !== undefined) m.master.createdAt = created;
  m.masterPending = { ...nextCfg, keyId: next.keyId, version: versionOf(nextCfg), createdAt: nextCfg.createdAt ?? new Date().toISOString() };
  writeManifest(dir, m);
  const resolver = new MasterResolver(dir, (c) => openVersion(dir, c), [current, next]);
  let rootKeys: number;
  try {
    // The other nodes of a shared keystore adopt `next` from this hand-off (master-handoff.ts);
    // a keystore of one node (SQLite) gets none: nobody needs it there.
    const handoff = sharedStore(store) ? await handoffMeta(store, dir, current, m.masterPending, next) : {};
    rootKeys = await rewrapRootKeys(store, next, resolver.masterFor, handoff);
  } finally {
    await resolver.close();
  }
  const notes = retireAndSwitch(dir, m);
  await recordNodeMaster(store, dir, { version: versionOf(m.master), keyId: next.keyId, kind: next.kind });
  if (sharedStore(store)) {
    notes.push(
      'the other nodes on this keystore adopt the new master key by themselves (within seconds while running, else at their next start); ' +
        '`kmipd master status` shows which version each runs. Until `kmipd master retire-old`, the keystore holds the new key wrapped under the previous one',
    );
  }
  return { rootKeys, notes };
}

/** Completes a change that was interrupted (a `masterPending` in the manifest). */
async function finishPending(dir: string, m: Manifest, store: KeyStore): Promise<MasterChangeResult> {
  const pending = m.masterPending;
  if (pending === undefined) throw new Error('internal: nothing pending');
  const from = infoOf(m.master, 'retired', undefined);
  const dataId = await dataMasterId(store);
  let rootKeys: number;
  if (pending.keyId === undefined || dataId !== pending.keyId) {
    // Interrupted before the keystore transaction: move the root keys now.
    const current = await openVersion(dir, m.master);
    try {
      await checkCanary(current, store);
      const next = await openVersion(dir, pending);
      try {
        if (pending.keyId !== undefined && next.keyId !== pending.keyId) {
          throw new KeyAdminError(
            `the pending master key (${describeMasterConfig(pending)}) is ${next.keyId}, not ${pending.keyId} as recorded in ${MANIFEST}; ` +
              'refusing to move the root keys to it',
          );
        }
        rootKeys = (await switchMaster(dir, m, store, current, pending, next)).rootKeys;
      } finally {
        await next.close();
      }
    } finally {
      await current.close();
    }
  } else {
    rootKeys = (await store.rootKeys()).length;
    retireAndSwitch(dir, m);
  }
  const to = infoOf(m.master, 'active', undefined);
  return {
    action: 'finished',
    from,
    to,
    rootKeys,
    notes: [`an interrupted master key change was completed (to version ${to.version}); nothing else was done: run the command again for a new change`],
  };
}

type NewKey = (ctx: { dir: string; manifest: Manifest; version: number; current: MasterKeyProvider; currentConfig: MasterConfig }) => Promise<{ config: MasterConfig; key: MasterKeyProvider; undo?: () => void }>;

async function changeMaster(dataDir: string, command: string, action: MasterChangeResult['action'], newKey: NewKey): Promise<MasterChangeResult> {
  const dir = dataDirOf(dataDir);
  const release = acquireKeyLock(dir, `kmipd ${command}`);
  try {
    const m = manifestOf(dir);
    refuseDirectMode(m, `kmipd ${command}`);
    const store = await openKeyStore(dir, m.keystore);
    try {
      return await withStoreLock(store, async () => {
        const caught = await catchUp(dir, store);
        const r = await changeMasterLocked(dir, caught === undefined ? m : manifestOf(dir), store, action, newKey);
        if (caught !== undefined) r.notes.unshift(caught);
        return r;
      });
    } finally {
      await store.close();
    }
  } finally {
    release();
  }
}

async function changeMasterLocked(dir: string, m: Manifest, store: KeyStore, action: MasterChangeResult['action'], newKey: NewKey): Promise<MasterChangeResult> {
  if (m.masterPending !== undefined) return finishPending(dir, m, store);
  const { master: current, config: currentConfig } = await openCurrent(dir, m, store);
  try {
    const from = infoOf(currentConfig, 'retired', current.keyId);
    const made = await newKey({ dir, manifest: m, version: nextMasterVersion(m), current, currentConfig });
    try {
      if (made.key.keyId === current.keyId) throw new KeyAdminError('the new master key is the current one; nothing was changed');
      let r;
      try {
        r = await switchMaster(dir, m, store, current, made.config, made.key);
      } catch (e) {
        // Before the keystore moved, the change is dropped; after, the next run finishes it.
        if (m.masterPending !== undefined && (await dataMasterId(store)) !== made.key.keyId) {
          delete m.masterPending;
          writeManifest(dir, m);
          made.undo?.();
        }
        throw e;
      }
      return { action, from, to: infoOf(m.master, 'active', made.key.keyId), rootKeys: r.rootKeys, notes: r.notes };
    } finally {
      await made.key.close();
    }
  } finally {
    await current.close();
  }
}

/** A new key file for version `version`; dropped again if the change fails before the keystore moved to it. */
async function newSoftwareKey(dir: string, version: number, createdAt: string): Promise<{ config: MasterConfig; key: MasterKeyProvider; undo: () => void }> {
  const config: MasterConfig = { kind: 'software', file: `master-${version}.key`, version, createdAt };
  const key = await openVersion(dir, config, { create: true });
  // It never wrapped anything the keystore committed: nothing can need it.
  return { config, key, undo: () => unlinkSync(join(dir, config.file)) };
}

/** `kmipd master rotate`: a new version of the same kind of master key. */
export function rotateMaster(dataDir: string): Promise<MasterChangeResult> {
  return changeMaster(dataDir, 'master rotate', 'rotated', async ({ dir, version, currentConfig: cur }) => {
    const createdAt = new Date().toISOString();
    if (cur.kind === 'software') return newSoftwareKey(dir, version, createdAt);
    const base = cur.baseKeyLabel ?? cur.keyLabel;
    const config: Pkcs11MasterConfig = { ...cur, keyLabel: `${base}-v${version}`, baseKeyLabel: base, version, createdAt };
    delete config.keyId;
    return { config, key: await openVersion(dir, config, { create: true }) };
  });
}

export type MigrateTarget = { to: 'software' } | { to: 'pkcs11'; module: string; token: string; keyLabel: string; pin: string };

/** `kmipd master migrate`: a new master key of the other kind (software <-> PKCS#11, root mode). */
export function migrateMaster(dataDir: string, target: MigrateTarget): Promise<MasterChangeResult> {
  return changeMaster(dataDir, 'master migrate', 'migrated', async ({ dir, version, currentConfig: cur }) => {
    if (cur.kind === target.to) {
      throw new KeyAdminError(`the master key is already a ${target.to} key (${describeMasterConfig(cur)}); for a new version of it use \`kmipd master rotate\``);
    }
    const createdAt = new Date().toISOString();
    if (target.to === 'software') return newSoftwareKey(dir, version, createdAt);
    const config: Pkcs11MasterConfig = { kind: 'pkcs11', module: target.module, token: target.token, keyLabel: target.keyLabel, mode: 'root', version, createdAt };
    return { config, key: await openVersion(dir, config, { create: true, pin: target.pin }) };
  });
}

/**
 * `kmipd master rollback`: the newest retired master key version becomes the current one again
 * (the root keys are re-wrapped under it); the current one is retired and kept in turn.
 */
export function rollbackMaster(dataDir: string): Promise<MasterChangeResult> {
  return changeMaster(dataDir, 'master rollback', 'rolled back', async ({ dir, manifest }) => {
    const h = manifest.masterHistory?.at(-1);
    if (h === undefined) throw new KeyAdminError('there is no earlier master key version to roll back to');
    const config = withoutRetiredAt(h);
    let undo: (() => void) | undefined;
    if (config.kind === 'software') {
      const original = config.file.replace(/\.retired(-\d+)?$/, '');
      if (original !== config.file) {
        if (existsSync(join(dir, config.file))) {
          if (existsSync(join(dir, original))) throw new KeyAdminError(`cannot restore ${config.file} as ${original}: that file exists`);
          renameSync(join(dir, config.file), join(dir, original));
          fsyncDir(dir);
          const retiredName = config.file;
          undo = () => renameSync(join(dir, original), join(dir, retiredName));
        }
        config.file = original;
      }
    }
    let key: MasterKeyProvider;
    try {
      key = await openVersion(dir, config);
      if (config.keyId !== undefined && key.keyId !== config.keyId) {
        await key.close();
        throw new KeyAdminError(`master key version ${versionOf(config)} (${describeMasterConfig(config)}) is now ${key.keyId}, not ${config.keyId} as recorded; refusing to use it`);
      }
    } catch (e) {
      undo?.();
      throw e;
    }
    const r: { config: MasterConfig; key: MasterKeyProvider; undo?: () => void } = { config, key };
    if (undo !== undefined) r.undo = undo;
    return r;
  });
}

// ---- status -------------------------------------------------------------------------------------

export interface RootKeyInfo {
  id: string;
  status: 'active' | 'retired';
  created: string;
  /** The master key version that wraps it (null: not found in the manifest). */
  masterVersion: number | null;
  masterKeyId: string;
  /** Objects whose material is sealed under it. */
  objects: number;
  note?: string;
}

export interface KeyStatus {
  dataDir: string;
  mode: 'root' | 'direct';
  masterVersions: MasterVersionSummary[];
  /** A master key change that was interrupted (finish it with `kmipd master rotate`), else null. */
  pendingMasterChange: string | null;
  rootKeys: RootKeyInfo[];
  objects: {
    /** Objects with key material. */
    sealed: number;
    underActiveRootKey: number;
    underRetiredRootKeys: number;
    /** Direct mode: sealed by the HSM key itself. */
    sealedByHsm: number;
    /** Under a key id that is no root key of this store (should be 0). */
    underUnknownKeys: number;
  };
  /** Whether every object is under the active root key (else `kmipd root rotate` resumes). */
  rootRotationComplete: boolean;
  /** The master key version each node sharing the keystore last recorded (src/server/master-handoff.ts). */
  nodes: NodeMasterInfo[];
  /** Master key hand-offs still in the keystore (closed by `kmipd master retire-old`). */
  handoffs: { version: number; keyId: string; from: string; kind: string; created: string }[];
  notes: string[];
}

export interface NodeMasterInfo {
  node: string;
  version: number;
  keyId: string;
  kind: string;
  /** Since when it runs that version, and when it last said so (ISO). */
  since: string;
  seen: string;
  /** True when it runs the master key the keystore is under. */
  current: boolean;
  /** This data directory. */
  self: boolean;
}

async function nodeInfos(store: KeyStore, dir: string, dataId: string | undefined): Promise<NodeMasterInfo[]> {
  const self = nodeId(dir);
  return Object.entries(await readNodeMasters(store))
    .map(([node, r]) => ({ node, version: r.version, keyId: r.keyId, kind: r.kind, since: r.since, seen: r.seen, current: r.keyId === dataId, self: node === self }))
    .sort((a, b) => a.node.localeCompare(b.node));
}

/** `kmipd master status`: reads the manifest and the keystore only (no master key, no PIN). */
export async function keyStatus(dataDir: string): Promise<KeyStatus> {
  const dir = dataDirOf(dataDir);
  const m = manifestOf(dir);
  const store = await openKeyStore(dir, m.keystore);
  try {
    const dataId = await dataMasterId(store);
    const versions = masterVersions(m, dataId);
    const sel = selectMasterConfig(m, dataId);
    const { keys, other } = await rootKeyUsage(store);
    const versionOfKeyId = (id: string): number | null => versions.find((v) => v.keyId === id)?.version ?? null;
    const notes: string[] = [];
    const rootKeys: RootKeyInfo[] = keys.map((k: RootKeyUsage) => {
      const info: RootKeyInfo = {
        id: k.id,
        status: k.status,
        created: new Date(k.createdAt).toISOString(),
        masterVersion: versionOfKeyId(k.masterKeyId),
        masterKeyId: k.masterKeyId,
        objects: k.objects,
      };
      if (k.status === 'retired') {
        info.note = k.objects === 0 ? 'no object left under it: it may be deleted (kmipd keeps it)' : 'still protects objects: run `kmipd root rotate` to move them';
      }
      return info;
    });
    const direct = m.master.kind === 'pkcs11' && m.master.mode === 'direct';
    const active = keys.find((k) => k.status === 'active');
    const underActive = active?.objects ?? 0;
    const underRetired = keys.filter((k) => k.status !== 'active').reduce((n, k) => n + k.objects, 0);
    const otherN = other.reduce((n, c) => n + c.n, 0);
    const pending =
      m.masterPending === undefined
        ? null
        : `to master key version ${versionOf(m.masterPending)} (${describeMasterConfig(m.masterPending)}); the keystore is ${sel.pending ? 'already' : 'not yet'} under it: run \`kmipd master rotate --data ${dataDir}\` to finish it`;
    if (pending !== null) notes.push(`an interrupted master key change: ${pending}`);
    const nodes = await nodeInfos(store, dir, dataId);
    const handoffs = (await readHandoff(store)).entries.map((e: HandoffEntry) => ({ version: e.version, keyId: e.keyId, from: e.from, kind: e.kind, created: e.createdAt }));
    const behind = nodes.filter((n) => !n.current);
    if (behind.length > 0) notes.push(`${behind.length} node(s) still run an earlier master key version: ${behind.map((n) => `${n.node} (v${n.version})`).join(', ')}; running nodes adopt it within seconds, stopped ones at their next start`);
    if (handoffs.length > 0) {
      notes.push(
        `the keystore holds ${handoffs.length} master key hand-off(s) (version ${handoffs.map((h) => h.version).join(', ')}): whoever has an earlier master key and the keystore can compute the newer one; ` +
          `once every node runs the current version, close this with \`kmipd master retire-old --data ${dataDir}\``,
      );
    }
    if (underRetired > 0) notes.push(`${underRetired} object(s) are still under retired root keys: \`kmipd root rotate --data ${dataDir}\` resumes moving them`);
    for (const v of versions) {
      if (v.status === 'retired') {
        notes.push(
          v.kind === 'software'
            ? `retired master key version ${v.version} is kept as ${join(dir, v.config.kind === 'software' ? v.config.file : '')}; shred it once no backup needs it`
            : `retired master key version ${v.version} is kept on the token (${v.location}); destroy it in the HSM once no backup needs it`,
        );
      }
    }
    return {
      dataDir: dir,
      mode: direct ? 'direct' : 'root',
      masterVersions: versions.map((v) => {
        const i: MasterVersionSummary = { version: v.version, kind: v.kind, id: v.keyId ?? null, created: v.createdAt ?? null, status: v.status, location: v.location };
        if (v.retiredAt !== undefined) i.retired = v.retiredAt;
        return i;
      }),
      pendingMasterChange: pending,
      rootKeys,
      objects: {
        sealed: underActive + underRetired + otherN,
        underActiveRootKey: underActive,
        underRetiredRootKeys: underRetired,
        sealedByHsm: direct ? otherN : 0,
        underUnknownKeys: direct ? 0 : otherN,
      },
      rootRotationComplete: underRetired === 0,
      nodes,
      handoffs,
      notes,
    };
  } finally {
    await store.close();
  }
}

// ---- retiring the previous master key versions ----------------------------------------------------

export interface RetireOldResult {
  /** Hand-offs erased (their wrapped keys are gone from the keystore). */
  erased: { version: number; keyId: string }[];
  /** Nodes that had not recorded the current version (only with force). */
  behind: NodeMasterInfo[];
  /** Nodes forgotten (--forget). */
  forgotten: string[];
  notes: string[];
}

/**
 * `kmipd master retire-old`: ends the hand-off window of the master key changes made so far:
 * the hand-off entries (the newer keys wrapped under the older ones) are erased from the keystore.
 * Refused while a node recorded an earlier version, unless `force` (that node then needs a new
 * node bundle). `forget`: node ids to drop from the list first (nodes removed for good).
 */
export async function retireOldMaster(dataDir: string, opts: { force?: boolean; forget?: string[] } = {}): Promise<RetireOldResult> {
  const dir = dataDirOf(dataDir);
  const release = acquireKeyLock(dir, 'kmipd master retire-old');
  try {
    const m = manifestOf(dir);
    const store = await openKeyStore(dir, m.keystore);
    try {
      return await withStoreLock(store, async () => {
        const dataId = await dataMasterId(store);
        const forgotten: string[] = [];
        for (const id of opts.forget ?? []) {
          if (!(await forgetNode(store, id))) throw new KeyAdminError(`no node ${JSON.stringify(id)} in the list (see \`kmipd master status\`); nothing was changed`);
          forgotten.push(id);
        }
        const behind = (await nodeInfos(store, dir, dataId)).filter((n) => !n.current);
        if (behind.length > 0 && opts.force !== true) {
          throw new KeyAdminError(
            `${behind.length} node(s) have not adopted the current master key yet: ${behind.map((n) => `${n.node} (version ${n.version})`).join(', ')}; ` +
              'start them (they adopt it at start), or give --forget NODE for nodes removed for good, or --force (they will then need a new node bundle); nothing was changed',
          );
        }
        const erased = (await eraseHandoff(store)).map((e) => ({ version: e.version, keyId: e.keyId }));
        const notes: string[] = [];
        notes.push(
          erased.length > 0
            ? 'the keystore no longer holds any master key wrapped under an earlier one: an old key file or backup of it reveals nothing newer'
            : 'there was no master key hand-off in the keystore',
        );
        for (const h of m.masterHistory ?? []) {
          notes.push(
            h.kind === 'software'
              ? `retired master key version ${versionOf(h)} is still kept as ${join(dir, h.file)} (for \`kmipd master rollback\` and for backups made under it); once no backup needs it: shred -u ${join(dir, h.file)} (on every node)`
              : `retired master key version ${versionOf(h)} is still on the token (${describeMasterConfig(h)}); destroy it in the HSM once no backup needs it`,
          );
        }
        return { erased, behind, forgotten, notes };
      });
    } finally {
      await store.close();
    }
  } finally {
    release();
  }
}

// ---- root key rotation --------------------------------------------------------------------------

export interface RootRotateOptions {
  /** Objects per batch (one keystore transaction). */
  batch?: number;
  /** Told once the new root key is active (or found active: a resumed rotation), before re-wrapping. */
  onStart?: (s: { resumed: boolean; activeKeyId: string; objects: number }) => void;
  onProgress?: (p: RewrapProgress) => void;
  signal?: AbortSignal;
  /** See RewrapOptions (tests). */
  quietMs?: number;
  maxIdleMs?: number;
  /**
   * How long after the new root key became active the run goes on looking for objects sealed
   * under a retired key by servers that have not switched yet (ms; default two server refresh
   * intervals and a second).
   */
  settleMs?: number;
}

export interface RootRotateResult {
  /** True when an interrupted rotation was continued instead of starting a new one. */
  resumed: boolean;
  activeKeyId: string;
  rewrap: RewrapResult;
  rootKeys: RootKeyUsage[];
}

/**
 * `kmipd root rotate`: a new active root key, then every object re-wrapped under it. When
 * objects are still under retired root keys (an earlier run was interrupted), no new key is
 * made: the run continues with them.
 */
export async function rotateRoot(dataDir: string, opts: RootRotateOptions = {}): Promise<RootRotateResult> {
  const dir = dataDirOf(dataDir);
  const release = acquireKeyLock(dir, 'kmipd root rotate');
  try {
    let m = manifestOf(dir);
    refuseDirectMode(m, 'kmipd root rotate');
    const store = await openKeyStore(dir, m.keystore);
    try {
      const caught = await withStoreLock(store, () => catchUp(dir, store));
      if (caught !== undefined) m = manifestOf(dir);
      const { master } = await openCurrent(dir, m, store);
      const resolver = new MasterResolver(dir, (c) => openVersion(dir, c), [master]);
      try {
        const ring = await RootKeyring.open(store, master, { masterFor: resolver.masterFor, minReloadIntervalMs: 0 });
        try {
          const resumed = (await objectsUnderRetiredRootKeys(store, ring.activeKeyId)) > 0;
          if (!resumed) await ring.rotate();
          opts.onStart?.({ resumed, activeKeyId: ring.activeKeyId, objects: await objectsUnderRetiredRootKeys(store, ring.activeKeyId) });
          const ro: Parameters<typeof rewrapObjects>[2] = {};
          if (opts.batch !== undefined) ro.batch = opts.batch;
          if (opts.onProgress !== undefined) ro.onProgress = opts.onProgress;
          if (opts.signal !== undefined) ro.signal = opts.signal;
          if (opts.quietMs !== undefined) ro.quietMs = opts.quietMs;
          if (opts.maxIdleMs !== undefined) ro.maxIdleMs = opts.maxIdleMs;
          const activeRecord = (await store.rootKeys()).find((k) => k.id === ring.activeKeyId);
          ro.settleUntil = (activeRecord?.createdAt ?? Date.now()) + (opts.settleMs ?? 2 * ROOT_KEY_REFRESH_MS + 1000);
          const rewrap = await rewrapObjects(store, ring, ro);
          return { resumed, activeKeyId: ring.activeKeyId, rewrap, rootKeys: (await rootKeyUsage(store)).keys };
        } finally {
          ring.close();
        }
      } finally {
        await resolver.close();
        await master.close();
      }
    } finally {
      await store.close();
    }
  } finally {
    release();
  }
}
