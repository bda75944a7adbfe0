/**
 * Secrets: the HSM PIN, the database password, the node bundle passphrase. They are never flags
 * (a flag shows in `ps` and in shell history) and never values in kmipd.json. Each comes from,
 * in this order:
 *
 *   1. its environment variable            KMIPD_PKCS11_PIN, PGPASSWORD, KMIPD_BUNDLE_PASSPHRASE
 *   2. a file named by an environment var  KMIPD_PKCS11_PIN_FILE, KMIPD_DB_PASSWORD_FILE, KMIPD_BUNDLE_PASSPHRASE_FILE
 *   3. a systemd credential                $CREDENTIALS_DIRECTORY/kmipd-pkcs11-pin, .../kmipd-db-password,
 *                                          .../kmipd-bundle-passphrase (LoadCredential= in the unit)
 *   4. a file named in kmipd.json          master.pinFile, keystore.passwordFile, server.bundlePassphraseFile
 *
 * The rest of kmipd reads sources 1 and 4 itself (src/server/server.ts, store.ts, node-bundle.ts);
 * `exportSecrets` bridges 2 and 3 (and 4 for the passphrase) into the variable of source 1 at
 * start-up, in this process only, so that one rule holds for every command.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { RawManifest } from './manifest.js';

export interface SecretSpec {
  id: 'pkcs11Pin' | 'databasePassword' | 'bundlePassphrase';
  what: string;
  env: string;
  fileEnv: string;
  credential: string;
  /** The kmipd.json key naming a file (relative to the data directory). */
  manifestKey: string;
}

export const SECRETS: readonly SecretSpec[] = [
  { id: 'pkcs11Pin', what: 'HSM PIN', env: 'KMIPD_PKCS11_PIN', fileEnv: 'KMIPD_PKCS11_PIN_FILE', credential: 'kmipd-pkcs11-pin', manifestKey: 'master.pinFile' },
  { id: 'databasePassword', what: 'database password', env: 'PGPASSWORD', fileEnv: 'KMIPD_DB_PASSWORD_FILE', credential: 'kmipd-db-password', manifestKey: 'keystore.passwordFile' },
  {
    id: 'bundlePassphrase',
    what: 'node bundle passphrase',
    env: 'KMIPD_BUNDLE_PASSPHRASE',
    fileEnv: 'KMIPD_BUNDLE_PASSPHRASE_FILE',
    credential: 'kmipd-bundle-passphrase',
    manifestKey: 'server.bundlePassphraseFile',
  },
];

export type SecretSource = 'env' | 'env-file' | 'credential' | 'file' | 'none';

export interface SecretLocation {
  id: SecretSpec['id'];
  what: string;
  source: SecretSource;
  /** The variable or file it comes from (never its value). */
  where?: string;
  /** Whether this data directory needs it at all. */
  needed: boolean;
}

function manifestFile(m: RawManifest | undefined, key: string): string | undefined {
  let cur: unknown = m;
  for (const part of key.split('.')) cur = (cur as Record<string, unknown> | undefined)?.[part];
  return typeof cur === 'string' && cur !== '' ? cur : undefined;
}

function needed(spec: SecretSpec, m: RawManifest | undefined): boolean {
  const kind = (section: string): unknown => (m?.[section] as Record<string, unknown> | undefined)?.kind;
  if (spec.id === 'pkcs11Pin') return kind('master') === 'pkcs11';
  if (spec.id === 'databasePassword') return kind('keystore') === 'postgres';
  return false; // only `kmipd node export` and `serve --join` ask for it
}

/** Where a secret would come from now (the first source that is set), without reading it. */
export function locateSecret(spec: SecretSpec, dir: string, m: RawManifest | undefined, env: NodeJS.ProcessEnv = process.env): SecretLocation {
  const base = { id: spec.id, what: spec.what, needed: needed(spec, m) };
  if (env[spec.env] !== undefined && env[spec.env] !== '') return { ...base, source: 'env', where: spec.env };
  const fromEnv = env[spec.fileEnv];
  if (fromEnv !== undefined && fromEnv !== '') return { ...base, source: 'env-file', where: fromEnv };
  const credDir = env.CREDENTIALS_DIRECTORY;
  if (credDir !== undefined && credDir !== '' && existsSync(join(credDir, spec.credential))) {
    return { ...base, source: 'credential', where: join(credDir, spec.credential) };
  }
  const f = manifestFile(m, spec.manifestKey);
  if (f !== undefined) return { ...base, source: 'file', where: isAbsolute(f) ? f : resolve(dir, f) };
  return { ...base, source: 'none' };
}

/** A secret file's text without one trailing newline. */
export function readSecretFile(file: string): string {
  return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

export interface SecretFileProblem {
  level: 'error' | 'warning';
  message: string;
}

/** A secret's file: readable, a regular file, and not readable by group or others. */
export function checkSecretFile(loc: SecretLocation): SecretFileProblem[] {
  if (loc.source !== 'env-file' && loc.source !== 'credential' && loc.source !== 'file') return [];
  const file = loc.where ?? '';
  try {
    const st = statSync(file);
    if (!st.isFile()) return [{ level: 'error', message: `the ${loc.what} file ${file} is not a regular file` }];
    readFileSync(file);
    if ((st.mode & 0o077) !== 0 && loc.source !== 'credential') {
      return [{ level: 'warning', message: `the ${loc.what} file ${file} has mode 0${(st.mode & 0o777).toString(8)}; make it 0600 (chmod 600 ${file})` }];
    }
    return [];
  } catch (e) {
    return [{ level: 'error', message: `the ${loc.what} file ${file} cannot be read: ${(e as Error).message}` }];
  }
}

/**
 * Puts each secret found only in a file (sources 2 and 3, and 4 for the bundle passphrase) into
 * its environment variable, for the code that reads the variable. Returns what was done, for the
 * log (sources, never values). Throws when a named file cannot be read.
 */
export function exportSecrets(dir: string, m: RawManifest | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const done: string[] = [];
  for (const spec of SECRETS) {
    const loc = locateSecret(spec, dir, m, env);
    const bridge = loc.source === 'env-file' || loc.source === 'credential' || (loc.source === 'file' && spec.id === 'bundlePassphrase');
    if (!bridge || loc.where === undefined) continue;
    let value: string;
    try {
      value = readSecretFile(loc.where);
    } catch (e) {
      const via = loc.source === 'env-file' ? spec.fileEnv : loc.source === 'credential' ? 'systemd credential' : spec.manifestKey;
      throw new Error(`cannot read the ${spec.what} from ${loc.where} (${via}): ${(e as Error).message}`);
    }
    env[spec.env] = spec.id === 'pkcs11Pin' ? value.trim() : value;
    done.push(`${spec.what} from ${loc.where}`);
  }
  return done;
}
