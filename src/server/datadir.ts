import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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

export interface SoftwareMasterConfig {
  kind: 'software';
  /** Relative to the data directory. */
  file: string;
}

export interface Pkcs11MasterConfig {
  kind: 'pkcs11';
  module: string;
  token: string;
  keyLabel: string;
  /** Where to read the PIN when KMIPD_PKCS11_PIN is not set. */
  pinFile?: string;
  mode?: 'root' | 'direct';
}

export type MasterConfig = SoftwareMasterConfig | Pkcs11MasterConfig;

export interface Manifest {
  format: number;
  createdAt: string;
  createdBy: string;
  master: MasterConfig;
  keystore: { kind: 'sqlite'; file: string };
  policy: AccessPolicy;
  /** When present, every request must carry this Username/Password credential. */
  auth?: { username: string; passwordFile: string };
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
    typeof o.adminsMayReadKeyMaterial === 'boolean'
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
  if (!m.keystore || m.keystore.kind !== 'sqlite' || typeof m.keystore.file !== 'string') throw new DataDirError(`${file}: "keystore" must be {"kind":"sqlite","file":...}`);
  if (!validPolicy(m.policy)) throw new DataDirError(`${file}: "policy" must be {"groups": [[...]], "admins": [...], "adminsMayReadKeyMaterial": bool}`);
  return m;
}

export function writeManifest(dir: string, m: Manifest): void {
  const file = join(dir, MANIFEST);
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(m, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}

export function ensureDir(dir: string): string {
  const abs = resolve(dir);
  mkdirSync(abs, { recursive: true, mode: 0o700 });
  return abs;
}

export function logFirstRun(log: Logger, dir: string): void {
  log.info({ dir }, 'new data directory initialised');
}
