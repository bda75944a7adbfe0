import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { AccessPolicy } from '../operations/context.js';

/**
 * The data directory's manifest, `DIR/kmipd.json`: which format the directory is in, which
 * master-key provider holds its keys, and the server's access policy. Written on first run;
 * a directory in a newer format is refused, never modified.
 */
export const DATA_FORMAT = 1;
export const MANIFEST = 'kmipd.json';

/**
 * Which version of the master key a configuration is (see src/server/master-versions.ts):
 * written by `kmipd master rotate|migrate|rollback`; absent in a directory that never had its
 * master key changed (version 1, id recorded in the keystore's canary).
 */
export interface MasterVersionInfo {
  /** 1 for the key the directory was created with, then 2, 3, ... */
  version?: number;
  /** MasterKeyProvider.keyId of this key (not secret). */
  keyId?: string;
  /** ISO date of creation. */
  createdAt?: string;
}

export interface SoftwareMasterConfig extends MasterVersionInfo {
  kind: 'software';
  /** Relative to the data directory. */
  file: string;
}

export interface Pkcs11MasterConfig extends MasterVersionInfo {
  kind: 'pkcs11';
  module: string;
  token: string;
  keyLabel: string;
  /** Where to read the PIN when KMIPD_PKCS11_PIN is not set. */
  pinFile?: string;
  mode?: 'root' | 'direct';
  /** The label rotated versions are named after (`<baseKeyLabel>-v<version>`); default keyLabel. */
  baseKeyLabel?: string;
}

export type MasterConfig = SoftwareMasterConfig | Pkcs11MasterConfig;

/** A master key version that no longer wraps the root keys, kept so that a rollback is possible. */
export type RetiredMasterConfig = MasterConfig & { retiredAt: string };

/** Where the keys are kept (src/server/store.ts). Paths are relative to the data directory. */
export type KeystoreConfig =
  | { kind: 'sqlite'; file: string }
  /** `passwordFile`: read when PGPASSWORD is not set; the URL never holds the password. */
  | { kind: 'postgres'; url: string; passwordFile?: string };

export interface Manifest {
  format: number;
  createdAt: string;
  createdBy: string;
  master: MasterConfig;
  keystore: KeystoreConfig;
  policy: AccessPolicy;
  /** When present, every request must carry this Username/Password credential. */
  auth?: { username: string; passwordFile: string };
  /** A master key change in progress (`kmipd master ...`): the key the root keys are being moved to. */
  masterPending?: MasterConfig;
  /** Earlier master key versions, oldest first. */
  masterHistory?: RetiredMasterConfig[];
}

export class DataDirError extends Error {
  override readonly name = 'DataDirError';
}

export function defaultManifest(version: string): Manifest {
  return {
    format: DATA_FORMAT,
    createdAt: new Date().toISOString(),
    createdBy: `kmipd ${version}`,
    master: { kind: 'software', file: 'master.key' },
    keystore: { kind: 'sqlite', file: 'keystore.sqlite' },
    policy: { groups: [], admins: [], adminsMayReadKeyMaterial: false },
  };
}

function validPolicy(p: unknown): p is AccessPolicy {
  if (typeof p !== 'object' || p === null) return false;
  const o = p as Record<string, unknown>;
  const strings = (a: unknown) => Array.isArray(a) && a.every((x) => typeof x === 'string');
  return (
    Array.isArray(o.groups) &&
    o.groups.every(strings) &&
    strings(o.admins) &&
    typeof o.adminsMayReadKeyMaterial === 'boolean' &&
    (o.pykmipClients === undefined || strings(o.pykmipClients))
  );
}

/** Reads the manifest, or returns undefined when the directory has none (first run). */
export function readManifest(dir: string): Manifest | undefined {
  const file = join(dir, MANIFEST);
  if (!existsSync(file)) return undefined;
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  } catch (e) {
    throw new DataDirError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof m.format !== 'number') throw new DataDirError(`${file} has no "format"; is this a kmipd data directory?`);
  if (m.format > DATA_FORMAT) {
    throw new DataDirError(
      `${dir} was written by a newer kmipd (data format ${m.format}; this kmipd reads up to ${DATA_FORMAT}). ` +
        'Upgrade kmipd; the directory was not modified.',
    );
  }
  if (!m.master || (m.master.kind !== 'software' && m.master.kind !== 'pkcs11')) throw new DataDirError(`${file}: "master.kind" must be "software" or "pkcs11"`);
  if (m.master.kind === 'pkcs11') {
    const p = m.master;
    if (typeof p.module !== 'string' || typeof p.token !== 'string' || typeof p.keyLabel !== 'string') {
      throw new DataDirError(`${file}: "master" of kind pkcs11 needs "module", "token" and "keyLabel" strings`);
    }
    if (p.mode !== undefined && p.mode !== 'root' && p.mode !== 'direct') throw new DataDirError(`${file}: "master.mode" must be "root" or "direct"`);
    if (p.pinFile !== undefined && typeof p.pinFile !== 'string') throw new DataDirError(`${file}: "master.pinFile" must be a string`);
  }
  if (m.masterPending !== undefined && (typeof m.masterPending !== 'object' || m.masterPending === null || (m.masterPending.kind !== 'software' && m.masterPending.kind !== 'pkcs11'))) {
    throw new DataDirError(`${file}: "masterPending.kind" must be "software" or "pkcs11"`);
  }
  if (m.masterHistory !== undefined && !(Array.isArray(m.masterHistory) && m.masterHistory.every((h) => typeof h === 'object' && h !== null && typeof h.kind === 'string'))) {
    throw new DataDirError(`${file}: "masterHistory" must be a list of master key configurations`);
  }
  const ks = m.keystore as Partial<{ kind: string; file: unknown; url: unknown; passwordFile: unknown }> | undefined;
  const sqliteOk = ks?.kind === 'sqlite' && typeof ks.file === 'string';
  const postgresOk = ks?.kind === 'postgres' && typeof ks.url === 'string' && (ks.passwordFile === undefined || typeof ks.passwordFile === 'string');
  if (!sqliteOk && !postgresOk) throw new DataDirError(`${file}: "keystore" must be {"kind":"sqlite","file":...} or {"kind":"postgres","url":...,"passwordFile"?:...}`);
  if (!validPolicy(m.policy)) throw new DataDirError(`${file}: "policy" must be {"groups": [[...]], "admins": [...], "adminsMayReadKeyMaterial": bool, "pykmipClients"?: [...]}`);
  return m;
}

/** Replaces the manifest atomically and durably (temporary file fsynced, renamed, directory fsynced). */
export function writeManifest(dir: string, m: Manifest): void {
  const file = join(dir, MANIFEST);
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeFileSync(fd, JSON.stringify(m, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

export function ensureDir(dir: string): string {
  const abs = resolve(dir);
  mkdirSync(abs, { recursive: true, mode: 0o700 });
  return abs;
}

export function logFirstRun(log: Logger, dir: string): void {
  log.info({ dir }, 'new data directory initialised');
}
