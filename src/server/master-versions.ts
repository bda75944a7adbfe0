/**
 * Versions of the master key of a data directory, as the manifest (kmipd.json) records them.
 *
 *   master          the version that wraps the root keys now ("active")
 *   masterPending   only while `kmipd master rotate|migrate|rollback` runs (or after it was
 *                   interrupted): the version the root keys are being moved to
 *   masterHistory   earlier versions ("retired"), kept so that a rollback is possible: a software
 *                   key file renamed `<file>.retired`, a PKCS#11 token key left on the token
 *
 * Which version the data needs is recorded with the data itself: the keystore's canary names
 * the master key id it was made with (META_MASTER_ID). A change of master key re-wraps the root
 * keys and re-records the canary in one keystore transaction, between two manifest writes, so
 * after a crash at any point the manifest lists the version the keystore needs, either as
 * `master` or as `masterPending`; selectMasterConfig() picks it.
 *
 * Nothing here imports the server: the server and the admin commands pass what they need.
 */
import { join } from 'node:path';
import { META_MASTER_ID, createSoftwareMasterKey, loadSoftwareMasterKey, type MasterKeyProvider } from '../crypto/index.js';
import type { KeyStore } from '../keystore/types.js';
import { readManifest, type Manifest, type MasterConfig, type Pkcs11MasterConfig } from './datadir.js';

export type MasterVersionStatus = 'active' | 'pending' | 'retired';

export interface MasterVersion {
  version: number;
  kind: MasterConfig['kind'];
  /** MasterKeyProvider.keyId; undefined when never recorded. */
  keyId: string | undefined;
  /** ISO date, when known. */
  createdAt: string | undefined;
  retiredAt?: string;
  status: MasterVersionStatus;
  /** Where the key lives: its file, or its token and label. */
  location: string;
  config: MasterConfig;
}

export function versionOf(cfg: MasterConfig): number {
  return cfg.version ?? 1;
}

export function describeMasterConfig(cfg: MasterConfig): string {
  if (cfg.kind === 'software') return `file ${cfg.file}`;
  return `token "${cfg.token}", key "${cfg.keyLabel}"${cfg.mode === 'direct' ? ' (direct mode)' : ''}`;
}

/** The master key id the keystore's canary was recorded for, if any. */
export function dataMasterId(store: KeyStore): Promise<string | undefined> {
  return store.getMeta(META_MASTER_ID);
}

/**
 * The master key configuration the data needs: the pending one when the keystore was already
 * moved to it (a master key change interrupted before its last manifest write), else `master`.
 */
export function selectMasterConfig(m: Manifest, dataKeyId: string | undefined): { config: MasterConfig; pending: boolean } {
  const p = m.masterPending;
  if (p !== undefined && p.keyId !== undefined && dataKeyId !== undefined && p.keyId === dataKeyId) return { config: p, pending: true };
  return { config: m.master, pending: false };
}

/** Every master key version the manifest knows, oldest first. */
export function masterVersions(m: Manifest, dataKeyId?: string): MasterVersion[] {
  const sel = selectMasterConfig(m, dataKeyId);
  const out: MasterVersion[] = [];
  for (const h of m.masterHistory ?? []) {
    out.push({ version: versionOf(h), kind: h.kind, keyId: h.keyId, createdAt: h.createdAt, retiredAt: h.retiredAt, status: 'retired', location: describeMasterConfig(h), config: h });
  }
  const cur = m.master;
  // The data's id names the current key unless the data already moved to the pending one.
  const curId = cur.keyId ?? (sel.pending ? undefined : dataKeyId);
  out.push({
    version: versionOf(cur),
    kind: cur.kind,
    keyId: curId,
    createdAt: cur.createdAt ?? (versionOf(cur) === 1 ? m.createdAt : undefined),
    status: 'active',
    location: describeMasterConfig(cur),
    config: cur,
  });
  const p = m.masterPending;
  if (p !== undefined) {
    out.push({ version: versionOf(p), kind: p.kind, keyId: p.keyId, createdAt: p.createdAt, status: 'pending', location: describeMasterConfig(p), config: p });
  }
  return out.sort((a, b) => a.version - b.version);
}

/** The next free version number. */
export function nextMasterVersion(m: Manifest): number {
  return Math.max(...masterVersions(m).map((v) => v.version)) + 1;
}

/** The configuration (current, pending or retired) whose recorded key id is `keyId`. */
export function findMasterConfig(m: Manifest, keyId: string): MasterConfig | undefined {
  if (m.master.keyId === keyId) return m.master;
  if (m.masterPending?.keyId === keyId) return m.masterPending;
  return m.masterHistory?.find((h) => h.keyId === keyId);
}

export interface OpenMasterOptions {
  /** Generate the key (a new file, or a new token key); refused if it exists. */
  create?: boolean;
  /** The PIN of a PKCS#11 token (never logged). */
  pin(cfg: Pkcs11MasterConfig): string;
}

/** Opens the master key of `cfg` (in data directory `dir`). */
export async function openMasterConfig(dir: string, cfg: MasterConfig, opts: OpenMasterOptions): Promise<MasterKeyProvider> {
  if (cfg.kind === 'software') {
    const file = join(dir, cfg.file);
    return opts.create === true ? createSoftwareMasterKey(file) : loadSoftwareMasterKey(file);
  }
  // Loaded only when used: it brings the native PKCS#11 binding.
  const { openPkcs11MasterKey } = await import('../crypto/pkcs11.js');
  return openPkcs11MasterKey({ module: cfg.module, token: cfg.token, keyLabel: cfg.keyLabel, pin: opts.pin(cfg), create: opts.create === true });
}

/**
 * Opens master keys by id for a running keyring (RootKeyringOptions.masterFor): when another
 * process rotated the master key and then added a root key wrapped under the new one, the
 * server finds the new version in the manifest, opens it, and checks that it is the key named.
 * Keys opened are kept until close().
 */
export class MasterResolver {
  readonly #dir: string;
  readonly #open: (cfg: MasterConfig) => Promise<MasterKeyProvider>;
  readonly #opened = new Map<string, Promise<MasterKeyProvider | undefined>>();
  /** The keys of #opened whose opening has finished. */
  readonly #ready = new Map<string, MasterKeyProvider>();
  readonly #given: Set<MasterKeyProvider>;
  readonly #onUnknown: ((keyId: string) => Promise<unknown>) | undefined;

  /**
   * `known`: keys already open (the caller keeps closing them). `onUnknown`: called when the
   * manifest names no key `keyId` (another node changed the master key: the server adopts it,
   * src/server/master-handoff.ts), then the manifest is read once more.
   */
  constructor(dir: string, open: (cfg: MasterConfig) => Promise<MasterKeyProvider>, known: MasterKeyProvider[] = [], onUnknown?: (keyId: string) => Promise<unknown>) {
    this.#dir = dir;
    this.#open = open;
    this.#onUnknown = onUnknown;
    this.#given = new Set(known);
    for (const k of known) {
      this.#opened.set(k.keyId, Promise.resolve(k));
      this.#ready.set(k.keyId, k);
    }
  }

  /**
   * The key `keyId` if it is open already; never opens, looks up or adopts anything (callers
   * that hold a lock the adoption may need, such as the audit writer, use this).
   */
  readonly openedKey = (keyId: string): MasterKeyProvider | undefined => this.#ready.get(keyId);

  readonly masterFor = (keyId: string): Promise<MasterKeyProvider | undefined> => {
    let p = this.#opened.get(keyId);
    if (p === undefined) {
      p = this.#find(keyId);
      this.#opened.set(keyId, p);
      // A failure is not remembered: the next reload tries again (the HSM may be back).
      p.then(
        (k) => {
          if (k === undefined) this.#opened.delete(keyId);
          else this.#ready.set(keyId, k);
        },
        () => this.#opened.delete(keyId),
      );
    }
    return p;
  };

  async #find(keyId: string): Promise<MasterKeyProvider | undefined> {
    const m = readManifest(this.#dir);
    let cfg = m === undefined ? undefined : findMasterConfig(m, keyId);
    if (cfg === undefined && this.#onUnknown !== undefined) {
      await this.#onUnknown(keyId);
      const again = readManifest(this.#dir);
      cfg = again === undefined ? undefined : findMasterConfig(again, keyId);
    }
    if (cfg === undefined) return undefined;
    const k = await this.#open(cfg);
    if (k.keyId !== keyId) {
      await k.close();
      return undefined;
    }
    return k;
  }

  /** Closes the keys this resolver opened (not the ones it was given). */
  async close(): Promise<void> {
    const all = await Promise.all([...this.#opened.values()].map((p) => p.catch(() => undefined)));
    this.#opened.clear();
    this.#ready.clear();
    for (const k of all) if (k !== undefined && !this.#given.has(k)) await k.close();
  }
}
