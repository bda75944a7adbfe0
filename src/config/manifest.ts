/**
 * The configuration file is the data directory's manifest, `DIR/kmipd.json` (src/server/datadir.ts
 * owns its format, master, keystore, policy and auth sections; this module adds the "server"
 * section and checks the whole file for keys nobody reads).
 *
 * KNOWN_KEYS lists every key of every section. A key kmipd does not know is an error for
 * `kmipd config check` (it names the key path, e.g. `policy.adminz`), and for `kmipd serve` when
 * it is in the "server" section (elsewhere the server warns and starts: those sections are
 * written by kmipd's own commands). A new manifest field must be added here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MANIFEST } from '../server/datadir.js';

const VERSION_INFO = ['version', 'keyId', 'createdAt'];
const MASTER_KEYS: Record<string, readonly string[]> = {
  software: ['kind', 'file', ...VERSION_INFO],
  pkcs11: ['kind', 'module', 'token', 'keyLabel', 'pinFile', 'mode', 'baseKeyLabel', ...VERSION_INFO],
};
const KEYSTORE_KEYS: Record<string, readonly string[]> = {
  sqlite: ['kind', 'file'],
  postgres: ['kind', 'url', 'passwordFile'],
};

export const KNOWN_KEYS = {
  top: ['format', 'createdAt', 'createdBy', 'master', 'keystore', 'policy', 'auth', 'masterPending', 'masterHistory', 'server'],
  master: MASTER_KEYS,
  keystore: KEYSTORE_KEYS,
  policy: ['groups', 'admins', 'adminsMayReadKeyMaterial', 'pykmipClients'],
  auth: ['username', 'passwordFile'],
} as const;

export type RawManifest = Record<string, unknown>;

/** The manifest as plain JSON (undefined when the directory has none); throws on invalid JSON. */
export function readRawManifest(dir: string): RawManifest | undefined {
  const file = join(dir, MANIFEST);
  if (!existsSync(file)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${file} must hold a JSON object`);
  return v as RawManifest;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unknownIn(obj: unknown, allowed: readonly string[], at: string, out: string[]): void {
  if (!isObject(obj)) return; // shapes are datadir.ts's to check
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) out.push(`${at}${k}: unknown key (known: ${allowed.join(', ')})`);
  }
}

/**
 * Keys of the manifest outside the "server" section that kmipd does not know, as key paths
 * (`policy.adminz`, `masterHistory[0].colour`). The "server" section is checked by settings.ts.
 */
export function unknownManifestKeys(m: RawManifest): string[] {
  const out: string[] = [];
  unknownIn(m, KNOWN_KEYS.top, '', out);
  const master = (v: unknown, at: string, extra: readonly string[] = []): void => {
    if (!isObject(v)) return;
    const allowed = typeof v.kind === 'string' ? KNOWN_KEYS.master[v.kind] : undefined;
    if (allowed) unknownIn(v, [...allowed, ...extra], at, out);
  };
  master(m.master, 'master.');
  master(m.masterPending, 'masterPending.');
  if (Array.isArray(m.masterHistory)) m.masterHistory.forEach((h, i) => master(h, `masterHistory[${i}].`, ['retiredAt']));
  if (isObject(m.keystore) && typeof m.keystore.kind === 'string') {
    const allowed = KNOWN_KEYS.keystore[m.keystore.kind];
    if (allowed) unknownIn(m.keystore, allowed, 'keystore.', out);
  }
  unknownIn(m.policy, KNOWN_KEYS.policy, 'policy.', out);
  unknownIn(m.auth, KNOWN_KEYS.auth, 'auth.', out);
  return out;
}

const SECRET_KEY = /^(password|passphrase|pin|secret|token_?secret)$/i;

/**
 * A copy of the manifest fit to show: values of keys named like a secret are replaced, and a
 * password inside a URL (which kmipd never needs there) is masked. File names are kept: they are
 * where a secret is, not the secret.
 */
export function redactManifest(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(redactManifest);
  if (isObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : redactManifest(x);
    return out;
  }
  if (typeof v === 'string' && /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]*@/i.test(v)) {
    try {
      const u = new URL(v);
      if (u.password !== '') {
        u.password = 'redacted';
        return u.toString();
      }
    } catch {
      return '[redacted]';
    }
  }
  return v;
}
