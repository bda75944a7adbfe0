/**
 * Joining nodes: what one node hands another so that both serve the same keys.
 *
 * Nodes that share a keystore (PostgreSQL) must also share the CA (clients trust one CA), the
 * client trust store, and the master key (it unwraps the root keys in the shared store).
 * `kmipd node export` writes them into one file, encrypted under a passphrase:
 *
 *   { "format": "kmipd-node-bundle", "version": 1,
 *     "kdf": { "name": "scrypt", "N", "r", "p", "salt" },
 *     "cipher": { "name": "aes-256-gcm", "iv", "tag" },
 *     "data": base64 ciphertext }
 *
 * The key is scrypt(passphrase, salt); every header field is authenticated (AAD), so a changed
 * parameter fails like a wrong passphrase. The plaintext is a JSON NodeBundle: the CA
 * certificate and key, optionally the server certificate and key (for nodes behind one load
 * balancer name that clients pinned), the trust entries, the manifest without local paths
 * (master key file, PIN file, SQLite file, password files), the software master key if the
 * master key is software (a PKCS#11 master key stays in its HSM: the joining node names the same
 * token), and the database and client-auth passwords when the manifest keeps them in files.
 *
 * `kmipd serve --join FILE --data DIR2 [--store URL]` (or `kmipd node join`) sets DIR2 up from
 * it: the files are written, the manifest last; the server then issues DIR2's own server
 * certificate from the shared CA with this host's names (unless the bundle carried one), and at
 * start-up the master key is checked against the shared keystore's canary.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb, type ScryptOptions } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { ensurePrivateDir, loadCa, pkiPaths, writeFileAtomic } from '../pki/store.js';
import { TRUST_FORMAT, readTrustEntries, trustPaths, type TrustEntry } from '../pki/trust.js';
import { VERSION } from '../version.js';
import { DATA_FORMAT, MANIFEST, ensureDir, readManifest, writeManifest, type KeystoreConfig, type Manifest, type MasterConfig } from './datadir.js';
import { storeConfigFromArg } from './store.js';

export const BUNDLE_FORMAT = 'kmipd-node-bundle';
export const BUNDLE_VERSION = 1;
export const PASSPHRASE_ENV = 'KMIPD_BUNDLE_PASSPHRASE';
export const MIN_PASSPHRASE = 12;
const SCRYPT = { N: 1 << 17, r: 8, p: 1 } as const;
const SCRYPT_MAXMEM = 512 * 1024 * 1024;
const MASTER_KEY_BYTES = 32;

export class BundleError extends Error {
  override readonly name = 'BundleError';
}

/** The manifest as it travels: no local paths. */
export interface PortableManifest {
  master: MasterConfig extends infer M ? (M extends { kind: 'software' } ? Omit<M, 'file'> : Omit<M, 'pinFile'>) : never;
  keystore: { kind: 'sqlite' } | { kind: 'postgres'; url: string };
  policy: Manifest['policy'];
  auth?: { username: string };
}

export interface NodeBundle {
  createdAt: string;
  createdBy: string;
  ca: { certPem: string; keyPem: string };
  server?: { certPem: string; keyPem: string };
  trust: TrustEntry[];
  manifest: PortableManifest;
  /** Base64 of the software master key. */
  masterKey?: string;
  /** Contents of the manifest's password files. */
  secrets?: { database?: string; auth?: string };
}

function scrypt(passphrase: string, salt: Buffer, p: { N: number; r: number; p: number }): Promise<Buffer> {
  const opts: ScryptOptions = { N: p.N, r: p.r, p: p.p, maxmem: SCRYPT_MAXMEM };
  return new Promise((res, rej) => scryptCb(passphrase.normalize('NFC'), salt, 32, opts, (err, key) => (err ? rej(err) : res(key))));
}

interface Envelope {
  format: string;
  version: number;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: { name: 'aes-256-gcm'; iv: string; tag: string };
  data: string;
}

function aadOf(e: Envelope): Buffer {
  const k = e.kdf;
  return Buffer.from(JSON.stringify([e.format, e.version, k.name, k.N, k.r, k.p, k.salt, e.cipher.name, e.cipher.iv]), 'utf8');
}

/** Encrypts a bundle's plaintext under `passphrase` (scrypt + AES-256-GCM); the file's text. */
export async function sealBundle(plain: Buffer, passphrase: string): Promise<string> {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const key = await scrypt(passphrase, salt, SCRYPT);
  try {
    const env: Envelope = {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      kdf: { name: 'scrypt', ...SCRYPT, salt: salt.toString('base64') },
      cipher: { name: 'aes-256-gcm', iv: iv.toString('base64'), tag: '' },
      data: '',
    };
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(aadOf(env));
    const ct = Buffer.concat([c.update(plain), c.final()]);
    env.cipher.tag = c.getAuthTag().toString('base64');
    env.data = ct.toString('base64');
    return JSON.stringify(env, null, 2) + '\n';
  } finally {
    key.fill(0);
  }
}

/** Decrypts a bundle file's text; BundleError for a wrong passphrase or an altered file. */
export async function openBundle(text: string, passphrase: string): Promise<Buffer> {
  let env: Envelope;
  try {
    env = JSON.parse(text) as Envelope;
  } catch {
    throw new BundleError('not a kmipd node bundle (not JSON)');
  }
  if (env?.format !== BUNDLE_FORMAT) throw new BundleError('not a kmipd node bundle');
  if (env.version !== BUNDLE_VERSION) throw new BundleError(`node bundle version ${String(env.version)} is not supported by this kmipd (${BUNDLE_VERSION})`);
  const k = env.kdf;
  if (k?.name !== 'scrypt' || env.cipher?.name !== 'aes-256-gcm') throw new BundleError('node bundle: unsupported key derivation or cipher');
  for (const v of [k.N, k.r, k.p]) if (!Number.isInteger(v) || v < 1) throw new BundleError('node bundle: bad scrypt parameters');
  if (k.N > 1 << 20 || k.r > 32 || k.p > 16) throw new BundleError('node bundle: scrypt parameters out of range');
  const key = await scrypt(passphrase, Buffer.from(k.salt, 'base64'), k);
  try {
    const d = createDecipheriv('aes-256-gcm', key, Buffer.from(env.cipher.iv, 'base64'));
    d.setAAD(aadOf(env));
    d.setAuthTag(Buffer.from(env.cipher.tag, 'base64'));
    const pt = d.update(Buffer.from(env.data, 'base64'));
    try {
      return Buffer.concat([pt, d.final()]);
    } catch {
      throw new BundleError('cannot open the node bundle: wrong passphrase, or the file was altered');
    } finally {
      pt.fill(0);
    }
  } finally {
    key.fill(0);
  }
}

function readSecretFile(dir: string, file: string, what: string): string {
  const p = isAbsolute(file) ? file : resolve(dir, file);
  try {
    return readFileSync(p, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new BundleError(`cannot read ${what} ${p}: ${(e as Error).message}`);
  }
}

function portableMaster(m: MasterConfig): PortableManifest['master'] {
  if (m.kind === 'software') {
    const { file: _file, ...rest } = m;
    return rest;
  }
  const { pinFile: _pin, ...rest } = m;
  return rest;
}

/** Everything another node needs to join the node of data directory `dirArg` (plaintext). */
export function buildNodeBundle(dirArg: string, opts: { withServerCert?: boolean } = {}): NodeBundle {
  const dir = resolve(dirArg);
  const m = readManifest(dir);
  if (m === undefined) throw new BundleError(`no kmipd data directory at ${dir} (no ${MANIFEST}); run \`kmipd serve --data ${dirArg}\` once first`);
  if (m.masterPending !== undefined) throw new BundleError('a master key change is in progress in this data directory; finish it (`kmipd master ...`) before exporting');
  const ca = loadCa(dir);
  const bundle: NodeBundle = {
    createdAt: new Date().toISOString(),
    createdBy: `kmipd ${VERSION}`,
    ca: { certPem: ca.certPem, keyPem: ca.keyPem },
    trust: readTrustEntries(dir),
    manifest: {
      master: portableMaster(m.master),
      keystore: m.keystore.kind === 'postgres' ? { kind: 'postgres', url: m.keystore.url } : { kind: 'sqlite' },
      policy: m.policy,
    },
  };
  if (opts.withServerCert) {
    const p = pkiPaths(dir);
    bundle.server = { certPem: readFileSync(p.serverCert, 'utf8'), keyPem: readFileSync(p.serverKey, 'utf8') };
  }
  const secrets: NonNullable<NodeBundle['secrets']> = {};
  if (m.auth) {
    bundle.manifest.auth = { username: m.auth.username };
    secrets.auth = readSecretFile(dir, m.auth.passwordFile, 'the client password file');
  }
  if (m.keystore.kind === 'postgres' && m.keystore.passwordFile !== undefined) {
    secrets.database = readSecretFile(dir, m.keystore.passwordFile, 'the database password file');
  }
  if (secrets.auth !== undefined || secrets.database !== undefined) bundle.secrets = secrets;
  if (m.master.kind === 'software') {
    const key = readFileSync(join(dir, m.master.file));
    try {
      if (key.length !== MASTER_KEY_BYTES) throw new BundleError(`the master key file ${m.master.file} does not hold ${MASTER_KEY_BYTES} bytes`);
      bundle.masterKey = key.toString('base64');
    } finally {
      key.fill(0);
    }
  }
  return bundle;
}

function str(v: unknown): v is string {
  return typeof v === 'string';
}

function parseBundle(plain: Buffer): NodeBundle {
  let b: NodeBundle;
  try {
    b = JSON.parse(plain.toString('utf8')) as NodeBundle;
  } catch {
    throw new BundleError('the node bundle content is not valid JSON');
  }
  const ok =
    typeof b === 'object' &&
    b !== null &&
    str(b.ca?.certPem) &&
    str(b.ca?.keyPem) &&
    Array.isArray(b.trust) &&
    typeof b.manifest === 'object' &&
    b.manifest !== null &&
    (b.manifest.master?.kind === 'software' || b.manifest.master?.kind === 'pkcs11') &&
    (b.manifest.keystore?.kind === 'sqlite' || (b.manifest.keystore?.kind === 'postgres' && str(b.manifest.keystore.url))) &&
    typeof b.manifest.policy === 'object' &&
    (b.server === undefined || (str(b.server.certPem) && str(b.server.keyPem))) &&
    (b.manifest.master.kind !== 'software' || str(b.masterKey));
  if (!ok) throw new BundleError('the node bundle content is incomplete or malformed');
  return b;
}

/** The files a data directory is made of; joining refuses a directory holding any of them. */
const DATA_ENTRIES = [MANIFEST, 'pki', 'trust', 'master.key', 'keystore.sqlite'];

export interface JoinOptions {
  passphrase: string;
  /** `--store`; defaults to the bundle's PostgreSQL URL (a SQLite bundle needs one). */
  store?: string;
  /** PKCS#11 module path on this machine, if it differs from the exporting node's. */
  pkcs11Module?: string;
  log?: Logger;
}

/**
 * Sets up data directory `dirArg` from the bundle text `bundleText`. Returns false, changing
 * nothing, when the directory is already set up (a repeated `serve --join`); refuses a directory
 * that holds part of another data directory.
 */
export async function joinFromBundle(dirArg: string, bundleText: string, opts: JoinOptions): Promise<boolean> {
  const dir = ensureDir(dirArg);
  if (readManifest(dir) !== undefined) {
    opts.log?.info({ dir }, 'the data directory is set up already; --join ignored');
    return false;
  }
  const present = DATA_ENTRIES.filter((f) => existsSync(join(dir, f)));
  if (present.length > 0) {
    throw new BundleError(`${dir} already holds ${present.join(', ')} (but no ${MANIFEST}); join into a new, empty directory`);
  }
  const plain = await openBundle(bundleText, opts.passphrase);
  let b: NodeBundle;
  let masterKey: Buffer | undefined;
  try {
    b = parseBundle(plain);
    if (b.masterKey !== undefined) masterKey = Buffer.from(b.masterKey, 'base64');
  } finally {
    plain.fill(0);
  }
  try {
    const pm = b.manifest;
    let keystore: KeystoreConfig;
    if (opts.store !== undefined) keystore = storeConfigFromArg(opts.store);
    else if (pm.keystore.kind === 'postgres') keystore = { kind: 'postgres', url: pm.keystore.url };
    else {
      keystore = { kind: 'sqlite', file: 'keystore.sqlite' };
      opts.log?.warn('the bundle comes from a node with its own SQLite keystore: this node gets its own, empty one (give --store postgres://... to share keys)');
    }
    // The PKI: built aside and renamed into place in one step.
    const tmp = mkdtempSync(join(dir, '.pki-join-'));
    try {
      writeFileAtomic(join(tmp, 'ca.key'), b.ca.keyPem, 0o600);
      writeFileAtomic(join(tmp, 'ca.crt'), b.ca.certPem, 0o644);
      if (b.server) {
        writeFileAtomic(join(tmp, 'server.key'), b.server.keyPem, 0o600);
        writeFileAtomic(join(tmp, 'server.crt'), b.server.certPem, 0o644);
      }
      renameSync(tmp, pkiPaths(dir).dir);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    ensurePrivateDir(trustPaths(dir).dir);
    writeFileAtomic(trustPaths(dir).index, JSON.stringify({ format: TRUST_FORMAT, entries: b.trust }, null, 2) + '\n', 0o644);
    let master: MasterConfig;
    if (pm.master.kind === 'software') {
      if (masterKey === undefined || masterKey.length !== MASTER_KEY_BYTES) throw new BundleError('the node bundle holds no usable master key');
      writeFileAtomic(join(dir, 'master.key'), masterKey, 0o600);
      master = { ...pm.master, kind: 'software', file: 'master.key' };
    } else {
      master = { ...pm.master, kind: 'pkcs11' };
      if (opts.pkcs11Module !== undefined) master.module = opts.pkcs11Module;
    }
    const manifest: Manifest = {
      format: DATA_FORMAT,
      createdAt: new Date().toISOString(),
      createdBy: `kmipd ${VERSION} (joined from a node bundle of ${b.createdAt})`,
      master,
      keystore,
      policy: pm.policy,
    };
    if (b.secrets?.database !== undefined && keystore.kind === 'postgres') {
      writeFileAtomic(join(dir, 'pg.password'), b.secrets.database + '\n', 0o600);
      keystore.passwordFile = 'pg.password';
    }
    if (pm.auth !== undefined && b.secrets?.auth !== undefined) {
      writeFileAtomic(join(dir, 'auth.password'), b.secrets.auth + '\n', 0o600);
      manifest.auth = { username: pm.auth.username, passwordFile: 'auth.password' };
    }
    writeManifest(dir, manifest);
    opts.log?.info({ dir, keystore: keystore.kind }, 'data directory set up from a node bundle');
    return true;
  } finally {
    masterKey?.fill(0);
  }
}

// ---------------------------------------------------------------------------------------------
// The passphrase

/** Reads a line from the terminal without echoing it. */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolvePromise, reject) => {
    process.stderr.write(question);
    let s = '';
    const done = (): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    const onData = (chunk: Buffer | string): void => {
      for (const c of chunk.toString()) {
        if (c === '\r' || c === '\n') {
          done();
          resolvePromise(s);
          return;
        }
        if (c === '\u0003' || c === '\u0004') {
          done();
          reject(new BundleError('cancelled'));
          return;
        }
        if (c === '\u007f' || c === '\b') s = s.slice(0, -1);
        else s += c;
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}

/**
 * The bundle passphrase: KMIPD_BUNDLE_PASSPHRASE, else asked on the terminal (twice when
 * `confirm`). A new bundle's passphrase must have at least MIN_PASSPHRASE characters.
 */
export async function bundlePassphrase(opts: { confirm: boolean }): Promise<string> {
  let p = process.env[PASSPHRASE_ENV];
  if (p === undefined || p === '') {
    if (!process.stdin.isTTY) throw new BundleError(`no passphrase: set ${PASSPHRASE_ENV}, or run in a terminal to be asked`);
    p = await promptHidden('node bundle passphrase: ');
    if (opts.confirm) {
      const again = await promptHidden('again: ');
      if (again !== p) throw new BundleError('the two passphrases differ');
    }
  }
  if (opts.confirm && [...p].length < MIN_PASSPHRASE) throw new BundleError(`the passphrase must have at least ${MIN_PASSPHRASE} characters`);
  return p;
}
