import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { EnvelopeError, RootKeyring, createSoftwareMasterKey, loadSoftwareMasterKey, type MasterKeyProvider } from '../crypto/index.js';
import { KmipError } from '../codec/errors.js';
import { openSqliteStore } from '../keystore/index.js';
import type { KeyStore, WrappedMaterial } from '../keystore/types.js';
import type { AccessPolicy, ServerInfo } from '../operations/context.js';
import { allHandlers } from '../operations/index.js';
import type { MaterialSealer } from '../operations/objects.js';
import { clientIdentityAllowed, ensureServerPki, type ServerPki } from '../pki/index.js';
import { KMIP_VERSIONS, compareVersions } from '../spec/index.js';
import { VERSION } from '../version.js';
import { DataDirError, defaultManifest, ensureDir, readManifest, writeManifest, type Manifest } from './datadir.js';
import { Executor } from './executor.js';
import { DEFAULT_LIMITS, KmipListener, type IdentifyResult, type ListenerLimits } from './listener.js';

export const SERVER_INFO: ServerInfo = {
  vendor: 'kmipd',
  product: 'kmipd KMIP server',
  version: VERSION,
  versions: [...KMIP_VERSIONS].sort((a, b) => compareVersions(b, a)),
};

/** Everything a data directory provides once opened: keys, store, certificates, policy. */
export interface ServerState {
  dir: string;
  manifest: Manifest;
  firstRun: boolean;
  pki: ServerPki;
  master: MasterKeyProvider;
  store: KeyStore;
  keyring: RootKeyring;
  sealer: MaterialSealer;
  close(): Promise<void>;
}

export interface OpenOptions {
  log: Logger;
  /** Extra subject alternative names for a new server certificate. */
  sans?: string[];
}

/** Seals through the root keyring; an envelope failure is a Cryptographic Failure for the client. */
function keyringSealer(ring: RootKeyring): MaterialSealer {
  return {
    async seal(uid: string, plaintext: Buffer): Promise<WrappedMaterial> {
      return ring.seal(uid, plaintext);
    },
    async open(uid: string, wrapped: WrappedMaterial): Promise<Buffer> {
      try {
        return ring.open(uid, wrapped);
      } catch (e) {
        if (e instanceof EnvelopeError) throw new KmipError('CryptographicFailure', 'the stored key material failed its integrity check');
        throw e;
      }
    },
  };
}

async function openMaster(dir: string, m: Manifest, firstRun: boolean): Promise<MasterKeyProvider> {
  if (m.master.kind === 'software') {
    const file = join(dir, m.master.file);
    // A first run that died before writing the manifest may have left its key behind: reuse it.
    return firstRun && !existsSync(file) ? createSoftwareMasterKey(file) : loadSoftwareMasterKey(file);
  }
  throw new DataDirError(`master key provider '${m.master.kind}' is not available in this build`);
}

/**
 * Opens (or, on first run, creates) a data directory: PKI, master key, keystore, root keys.
 * Refuses a directory from a newer kmipd, or a master key that does not match the keystore.
 */
export async function openServerState(dirArg: string, opts: OpenOptions): Promise<ServerState> {
  const dir = ensureDir(dirArg);
  let manifest = readManifest(dir);
  const firstRun = manifest === undefined;
  if (!manifest) manifest = defaultManifest(VERSION);
  const pkiOpts: { sans?: string[]; log: (msg: string) => void } = { log: (msg) => opts.log.info(msg) };
  if (opts.sans) pkiOpts.sans = opts.sans;
  const pki = await ensureServerPki(dir, pkiOpts);
  const master = await openMaster(dir, manifest, firstRun);
  const store = await openSqliteStore(join(dir, manifest.keystore.file));
  let keyring: RootKeyring;
  try {
    keyring = await RootKeyring.open(store, master);
  } catch (e) {
    await store.close();
    await master.close();
    throw e;
  }
  if (firstRun) writeManifest(dir, manifest);
  return {
    dir,
    manifest,
    firstRun,
    pki,
    master,
    store,
    keyring,
    sealer: keyringSealer(keyring),
    async close() {
      keyring.close();
      await store.close();
      await master.close();
    },
  };
}

export interface ServeOptions extends OpenOptions {
  dataDir: string;
  host: string;
  port: number;
  limits?: Partial<ListenerLimits>;
}

export interface RunningServer {
  state: ServerState;
  listener: KmipListener;
  executor: Executor;
  /** Graceful stop: no new connections, requests in flight finish, keystore closed. */
  stop(): Promise<void>;
}

export function identifyClient(cert: X509Certificate): IdentifyResult {
  const r = clientIdentityAllowed(cert);
  if (!r.ok) return { ok: false, reason: r.reason };
  return { ok: true, identity: { name: r.cn } };
}

function readSecret(dir: string, file: string): string {
  return readFileSync(join(dir, file), 'utf8').trim();
}

export function buildExecutor(state: ServerState, log: Logger, maxMessageSize: number, policy?: AccessPolicy): Executor {
  const m = state.manifest;
  const opts: ConstructorParameters<typeof Executor>[0] = {
    store: state.store,
    sealer: state.sealer,
    policy: policy ?? m.policy,
    server: SERVER_INFO,
    handlers: allHandlers,
    log,
    maxMessageSize,
  };
  if (m.auth) opts.requiredCredential = { username: m.auth.username, password: readSecret(state.dir, m.auth.passwordFile) };
  return new Executor(opts);
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const state = await openServerState(opts.dataDir, opts);
  const limits: ListenerLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const executor = buildExecutor(state, opts.log, limits.maxMessageSize);
  const listener = new KmipListener({
    host: opts.host,
    port: opts.port,
    tls: () => ({ cert: state.pki.serverCertPem, key: state.pki.serverKeyPem, ca: [state.pki.caCertPem] }),
    identify: (cert) => identifyClient(cert),
    executor,
    limits,
    log: opts.log,
  });
  try {
    await listener.listen();
  } catch (e) {
    await state.close();
    throw e;
  }
  return {
    state,
    listener,
    executor,
    async stop() {
      await listener.close();
      await state.close();
    },
  };
}
