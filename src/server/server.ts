import type { AsyncLimits } from './async.js';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { AuditLog, type AuditTuning } from '../audit/log.js';
import { EnvelopeError, RootKeyring, createSoftwareMasterKey, loadSoftwareMasterKey, type MasterKeyProvider } from '../crypto/index.js';
import { KmipError } from '../codec/errors.js';
import type { KeyStore, WrappedMaterial } from '../keystore/types.js';
import type { AccessPolicy, ServerInfo } from '../operations/context.js';
import { allHandlers } from '../operations/index.js';
import type { MaterialSealer } from '../operations/objects.js';
import { clientIdentityAllowed, ensureServerPki, type ServerPki } from '../pki/index.js';
import { KMIP_VERSIONS, compareVersions } from '../spec/index.js';
import { VERSION } from '../version.js';
import { DataDirError, defaultManifest, ensureDir, readManifest, writeManifest, type Manifest, type MasterConfig, type Pkcs11MasterConfig } from './datadir.js';
import { Executor, type ExecutorObserver } from './executor.js';
import { MasterResolver, dataMasterId, selectMasterConfig } from './master-versions.js';
import { MasterHandoff, adoptMasterChange, type AdoptOptions, type AdoptResult } from './master-handoff.js';
import { acquireKeyLock } from './key-admin.js';
import { DEFAULT_LIMITS, KmipListener, type IdentifyResult, type ListenerLimits, type ListenerObserver } from './listener.js';
import { TrustRuntime } from './trust-reload.js';
import { loadTrustSnapshot } from '../pki/trust.js';
import { applyStoreOption, guardStore, openKeyStore, withInitLock } from './store.js';
import { TrustSync } from './trust-sync.js';
import { Heartbeat, ensureNodeId } from './heartbeat.js';
import { defaultAppliedBy, type MigrateResult, type Migration } from '../keystore/migrations.js';
import { TicketService } from '../operations/tickets.js';
import type { Checkpointer, CheckpointStats } from '../keystore/checkpointer.js';

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
  /** The audit trail, DIR/audit (src/audit); opened lazily, anchored on close. */
  audit: AuditLog;
  /** This data directory's node id (DIR/node-id, src/server/heartbeat.ts). */
  nodeId: string;
  /** Adopts master key changes made by other nodes (src/server/master-handoff.ts); started by startServer. */
  handoff?: MasterHandoff;
  /** An SQLite keystore's background checkpoints, when they were started (src/keystore/checkpointer.ts). */
  checkpoints(): (CheckpointStats & { active: boolean }) | undefined;
  close(): Promise<void>;
}

export interface OpenOptions {
  log: Logger;
  /** Extra subject alternative names for a new server certificate. */
  sans?: string[];
  /** The master-key provider for a new data directory (ignored once the directory exists). */
  master?: MasterConfig;
  /** Anchor interval and rotation of the audit log (defaults in src/audit/log.ts). */
  audit?: AuditTuning;
  /** `serve --store`: the keystore of a new directory, or another URL for its PostgreSQL store (src/server/store.ts). */
  store?: string;
  /** `serve --migrate`: apply pending schema migrations at start instead of refusing to start. */
  migrate?: boolean;
  /** The schema migrations this build knows (default: the real list; tests simulate other builds). */
  migrations?: readonly Migration[];
  /** Connections a PostgreSQL keystore keeps open at most (setting store.poolSize; default 10). */
  storePoolSize?: number;
  /** An SQLite keystore checkpoints on a worker thread, off the event loop (the server; src/keystore/checkpointer.ts). */
  backgroundCheckpoints?: boolean;
}

/** How often a server re-reads the root key records, to seal under a root key another process made active. */
export const ROOT_KEY_REFRESH_MS = 2000;

/**
 * Seals through the root keyring; an envelope failure is a Cryptographic Failure for the client.
 * A root key the keyring does not hold yet (made by `kmipd root rotate` in another process) is
 * loaded from the store first.
 */
function keyringSealer(ring: RootKeyring, log: Logger): MaterialSealer {
  return {
    async seal(uid: string, plaintext: Buffer): Promise<WrappedMaterial> {
      return ring.seal(uid, plaintext);
    },
    async open(uid: string, wrapped: WrappedMaterial): Promise<Buffer> {
      try {
        return await ring.openOrReload(uid, wrapped);
      } catch (e) {
        if (e instanceof EnvelopeError) throw new KmipError('CryptographicFailure', 'the stored key material failed its integrity check');
        log.error({ err: e, uid, rootKeyId: wrapped.rootKeyId }, 'cannot load the root key of an object');
        throw new KmipError('CryptographicFailure', 'the root key protecting this object cannot be loaded now; retry later');
      }
    },
  };
}

/** How the PIN of a PKCS#11 token is found: the environment, else the file the manifest names. */
export function pkcs11Pin(dir: string, m: Pkcs11MasterConfig): string {
  const env = process.env.KMIPD_PKCS11_PIN;
  if (env !== undefined && env !== '') return env;
  if (m.pinFile) return readFileSync(resolve(dir, m.pinFile), 'utf8').trim();
  throw new DataDirError('the HSM PIN is not set: put it in the environment variable KMIPD_PKCS11_PIN, or name a file with "pinFile" in kmipd.json');
}

async function openMaster(dir: string, m: Manifest, firstRun: boolean): Promise<MasterKeyProvider> {
  if (m.master.kind === 'software') {
    const file = join(dir, m.master.file);
    // A first run that died before writing the manifest may have left its key behind: reuse it.
    return firstRun && !existsSync(file) ? createSoftwareMasterKey(file) : loadSoftwareMasterKey(file);
  }
  // Loaded only when used: it brings the native PKCS#11 binding.
  const { openPkcs11MasterKey } = await import('../crypto/pkcs11.js');
  const cfg = m.master;
  return openPkcs11MasterKey({ module: cfg.module, token: cfg.token, keyLabel: cfg.keyLabel, pin: pkcs11Pin(dir, cfg), create: firstRun });
}

/** The sealer for object material: the root keyring, or the HSM itself in direct mode. */
async function openSealer(dir: string, m: Manifest, firstRun: boolean, ring: RootKeyring, log: Logger): Promise<{ sealer: MaterialSealer; close(): Promise<void> }> {
  const cfg = m.master;
  if (cfg.kind !== 'pkcs11' || cfg.mode !== 'direct') return { sealer: keyringSealer(ring, log), close: async () => {} };
  const { openPkcs11DirectSealer, HsmUnavailableError } = await import('../crypto/pkcs11.js');
  const direct = await openPkcs11DirectSealer({ module: cfg.module, token: cfg.token, keyLabel: cfg.keyLabel, pin: pkcs11Pin(dir, cfg), create: firstRun });
  const guard = async <R>(f: () => Promise<R>): Promise<R> => {
    try {
      return await f();
    } catch (e) {
      if (e instanceof HsmUnavailableError) throw new KmipError('CryptographicFailure', 'the HSM holding the keys is unavailable; retry later');
      if (e instanceof EnvelopeError) throw new KmipError('CryptographicFailure', 'the stored key material failed its integrity check');
      throw e;
    }
  };
  return {
    sealer: {
      seal: (uid, plaintext) => guard(() => direct.seal(uid, plaintext)),
      open: (uid, wrapped) => guard(() => direct.open(uid, wrapped)),
    },
    close: () => direct.close(),
  };
}

/**
 * Opens (or, on first run, creates) a data directory: PKI, master key, keystore, root keys.
 * Refuses a directory from a newer kmipd, or a master key that does not match the keystore.
 */
export async function openServerState(dirArg: string, opts: OpenOptions): Promise<ServerState> {
  const dir = ensureDir(dirArg);
  let manifest = readManifest(dir);
  const firstRun = manifest === undefined;
  if (!manifest) {
    manifest = defaultManifest(VERSION);
    if (opts.master) manifest.master = opts.master;
  } else if (opts.master && opts.master.kind !== manifest.master.kind) {
    opts.log.warn({ recorded: manifest.master.kind, asked: opts.master.kind }, 'the data directory already has a master key provider; the one recorded is used');
  }
  applyStoreOption(manifest, opts.store, firstRun, opts.log);
  const pkiOpts: { sans?: string[]; log: (msg: string) => void } = { log: (msg) => opts.log.info(msg) };
  if (opts.sans) pkiOpts.sans = opts.sans;
  const pki = await ensureServerPki(dir, pkiOpts);
  const nodeId = ensureNodeId(dir);
  const store = await openKeyStore(dir, manifest.keystore, opts.log, {
    pending: opts.migrate ? 'apply' : 'refuse',
    appliedBy: defaultAppliedBy(nodeId),
    ...(opts.migrations ? { migrations: opts.migrations } : {}),
    ...(opts.storePoolSize !== undefined ? { poolSize: opts.storePoolSize } : {}),
    ...(opts.backgroundCheckpoints ? { backgroundCheckpoints: true } : {}),
  });
  const migrated = (store as { migrated?: MigrateResult }).migrated;
  if (migrated !== undefined && migrated.applied.length > 0) {
    if (migrated.from === 0) opts.log.info({ schemaVersion: migrated.to }, 'keystore created');
    else for (const m of migrated.applied) opts.log.info({ version: m.version, migration: m.name }, 'keystore schema migration applied');
  }
  // Another node sharing the keystore may have changed the master key while this one was
  // stopped: adopt its hand-off first (src/server/master-handoff.ts).
  const adoptOpts: AdoptOptions = {
    log: opts.log,
    open: (cfg) => openMaster(dir, { ...manifest!, master: cfg }, false),
    lock: (what) => acquireKeyLock(dir, what),
  };
  let startAdoption: AdoptResult | undefined;
  if (!firstRun) {
    try {
      startAdoption = await adoptMasterChange(dir, store, adoptOpts);
      if (startAdoption.adopted) {
        const fresh = readManifest(dir);
        if (fresh !== undefined) manifest = { ...fresh, keystore: manifest.keystore };
      } else if (startAdoption.reason !== undefined) {
        opts.log.warn({ reason: startAdoption.reason }, 'the keystore is under another master key, which this node cannot adopt');
      }
    } catch (e) {
      // The canary check below refuses the start with the full story.
      startAdoption = { adopted: false, reason: (e as Error).message };
      opts.log.error({ err: (e as Error).message }, 'cannot adopt the master key another node changed to');
    }
  }
  // The master key version the keystore was moved to: the manifest's, or the pending one of an
  // interrupted `kmipd master` command (see master-versions.ts).
  let master: MasterKeyProvider;
  try {
    const sel = selectMasterConfig(manifest, await dataMasterId(store));
    if (sel.pending) opts.log.warn({ dir }, 'an interrupted master key change: using the new master key; run `kmipd master rotate --data DIR` to finish it');
    master = await openMaster(dir, { ...manifest, master: sel.config }, firstRun);
  } catch (e) {
    await store.close();
    throw e;
  }
  const handoff = new MasterHandoff(dir, store, { ...adoptOpts, currentKeyId: master.keyId });
  if (startAdoption !== undefined) handoff.note(startAdoption);
  // Root keys added later by another process may be wrapped by a newer master key version, made
  // by a `kmipd master` command here or on another node (then adopted on the spot).
  const masters = new MasterResolver(dir, (cfg) => openMaster(dir, { ...manifest, master: cfg }, false), [master], () => handoff.adoptNow());
  let keyring: RootKeyring;
  let sealer: { sealer: MaterialSealer; close(): Promise<void> };
  try {
    // Nodes sharing a keystore and starting together: one creates the canary and root key.
    keyring = await withInitLock(store, () =>
      RootKeyring.open(store, master, {
        masterFor: masters.masterFor,
        refreshIntervalMs: ROOT_KEY_REFRESH_MS,
        onRefreshError: (err) => opts.log.warn({ err }, 'cannot load a root key added by another process; will retry'),
      }),
    );
    sealer = await openSealer(dir, manifest, firstRun, keyring, opts.log);
  } catch (e) {
    await store.close();
    await masters.close();
    await master.close();
    throw e;
  }
  if (firstRun) writeManifest(dir, manifest);
  // Anchors use the master key that wraps the active root key now: after `kmipd master rotate`
  // here or a change adopted from another node, the new one, without a restart. The audit
  // writer takes only a key that is open already: opening (or adopting) one may write an audit
  // record itself, so it is started here without waiting, and the next anchor uses it.
  const currentMaster = async (): Promise<MasterKeyProvider | undefined> => {
    const active = (await store.rootKeys()).find((r) => r.status === 'active');
    if (active === undefined) return master;
    const open = masters.openedKey(active.masterKeyId);
    if (open !== undefined) return open;
    masters.masterFor(active.masterKeyId).catch((e: unknown) => opts.log.warn({ err: (e as Error).message }, 'cannot open the master key for audit anchors'));
    return master;
  };
  const audit = new AuditLog({ ...opts.audit, dataDir: dir, master, currentMaster, meta: store, log: opts.log });
  return {
    dir,
    manifest,
    firstRun,
    pki,
    master,
    store,
    keyring,
    sealer: sealer.sealer,
    audit,
    nodeId,
    handoff,
    checkpoints() {
      const c = (store as { checkpointer?: Checkpointer }).checkpointer;
      return c === undefined ? undefined : { ...c.stats, active: c.active };
    },
    async close() {
      await handoff.close();
      await audit.close(); // its closing anchor needs the master key and the keystore
      await sealer.close();
      keyring.close();
      await store.close();
      await masters.close();
      await master.close();
    },
  };
}

export interface ServeOptions extends OpenOptions {
  dataDir: string;
  host: string;
  port: number;
  limits?: Partial<ListenerLimits>;
  /** The Lease Time of cryptographic objects (seconds, 0: none); default DEFAULT_LEASE_TIME_SECONDS. */
  leaseTimeSeconds?: number;
  /** The longest life of a Login / Delegated Login ticket, seconds; default DEFAULT_TICKET_LIFETIME_SECONDS. */
  ticketLifetimeSeconds?: number;
  /** Identities trusted as upstream key servers, the only ones that may send Put and Notify (none by default). */
  upstreams?: readonly string[];
  /** Metrics and usage tracking (src/admin): told about requests and handshakes. */
  observer?: ServerObserver;
  /** How often the node heartbeat is written (src/server/heartbeat.ts; default 10 s). */
  heartbeatMs?: number;
}

/** The hooks of src/admin into a running server; every part is optional. */
export interface ServerObserver extends ExecutorObserver, ListenerObserver {
  /** Wraps the keystore the executor uses (e.g. to time its calls). */
  instrumentStore?(store: KeyStore): KeyStore;
}

export interface RunningServer {
  state: ServerState;
  listener: KmipListener;
  executor: Executor;
  /** Client trust and the server certificate, reloaded from DATA/trust and DATA/pki on change. */
  trust: TrustRuntime;
  /** This node's row in the keystore's node table (`kmipd cluster status`). */
  heartbeat: Heartbeat;
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

/** kmipd's CA and the trusted CAs of DATA/trust (Validate's anchors); kmipd's CA alone when the store cannot be read. */
function serverTrustAnchors(state: ServerState): X509Certificate[] {
  try {
    return loadTrustSnapshot(state.dir, state.pki.caCertPem).anchors.map((a) => a.cert);
  } catch {
    return [new X509Certificate(state.pki.caCertPem)];
  }
}

export function buildExecutor(
  state: ServerState,
  log: Logger,
  maxMessageSize: number,
  policy?: AccessPolicy,
  observer?: ServerObserver,
  info: { port?: number; leaseTimeSeconds?: number; ticketLifetimeSeconds?: number; clock?: () => Date; upstreams?: readonly string[]; async?: Partial<AsyncLimits> } = {},
): Executor {
  const m = state.manifest;
  const opts: ConstructorParameters<typeof Executor>[0] = {
    store: guardStore(state.store),
    sealer: state.sealer,
    policy: policy ?? m.policy,
    server: {
      ...SERVER_INFO,
      ...(info.port !== undefined && info.port > 0 ? { port: info.port } : {}),
      ...(info.leaseTimeSeconds !== undefined ? { leaseTimeSeconds: info.leaseTimeSeconds } : {}),
      ...(info.upstreams !== undefined ? { upstreams: [...info.upstreams] } : {}),
      trustAnchors: () => serverTrustAnchors(state),
    },
    handlers: allHandlers,
    log,
    maxMessageSize,
    audit: state.audit,
    // Login tickets live in this node's memory (see src/operations/tickets.ts).
    tickets: new TicketService(info.ticketLifetimeSeconds !== undefined ? { maxLifetimeSeconds: info.ticketLifetimeSeconds } : {}),
  };
  if (info.clock) opts.clock = info.clock;
  if (info.async) opts.async = info.async;
  if (observer) {
    opts.observer = observer;
    if (observer.instrumentStore) opts.store = guardStore(observer.instrumentStore(state.store));
  }
  if (m.auth) opts.requiredCredential = { username: m.auth.username, password: readSecret(state.dir, m.auth.passwordFile) };
  return new Executor(opts);
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const state = await openServerState(opts.dataDir, { ...opts, backgroundCheckpoints: true });
  const limits: ListenerLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const executor = buildExecutor(state, opts.log, limits.maxMessageSize, undefined, opts.observer, {
    port: opts.port,
    ...(opts.leaseTimeSeconds !== undefined ? { leaseTimeSeconds: opts.leaseTimeSeconds } : {}),
    ...(opts.ticketLifetimeSeconds !== undefined ? { ticketLifetimeSeconds: opts.ticketLifetimeSeconds } : {}),
    ...(opts.upstreams !== undefined ? { upstreams: opts.upstreams } : {}),
  });
  let trust: TrustRuntime;
  let trustSync: TrustSync | undefined;
  try {
    await state.audit.open(); // fail at start, not on the first request, when the log cannot be written
    await state.handoff?.start(state.audit);
    // A shared keystore shares the trust store too: bring DATA/trust up to date first.
    let runtime: TrustRuntime | undefined;
    trustSync = await TrustSync.start(state.dir, state.store, opts.log, { onChange: () => runtime?.check() });
    trust = runtime = TrustRuntime.open(state, opts.log);
  } catch (e) {
    await trustSync?.close();
    await state.close();
    throw e;
  }
  const listener = new KmipListener({
    host: opts.host,
    port: opts.port,
    tls: () => trust.tlsOptions(),
    identify: (cert) => trust.identify(cert),
    executor,
    limits,
    log: opts.log,
    ...(opts.observer ? { observer: opts.observer } : {}),
  });
  try {
    await listener.listen();
  } catch (e) {
    await trustSync?.close();
    await state.close();
    throw e;
  }
  trust.attach(listener);
  const heartbeat = new Heartbeat({
    nodeId: state.nodeId,
    store: state.store,
    master: state.master,
    serverCertPem: () => trust.tlsOptions().cert,
    listen: () => {
      const a = listener.address;
      return { address: a.address, port: a.port };
    },
    log: opts.log,
    ...(opts.heartbeatMs !== undefined ? { intervalMs: opts.heartbeatMs } : {}),
  });
  await heartbeat.start(); // a failed write is logged, never fatal
  return {
    state,
    listener,
    executor,
    trust,
    heartbeat,
    async stop() {
      await heartbeat.stop();
      await trustSync?.close();
      trust.close();
      await listener.close();
      await executor.close(); // queued asynchronous operations are canceled, running ones finish
      await state.close();
    },
  };
}
