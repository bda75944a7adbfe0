/**
 * Key rotation on a keystore: moving the root keys to another master key, and moving every
 * object's material to a new root key. The data-directory side (which key files and token
 * keys, the manifest, locking) is in src/server/key-admin.ts.
 *
 * Master key: the root keys are unwrapped with the master key that wrapped each of them,
 * wrapped under the new one (checked by unwrapping again), and stored together with the new
 * master key's canary in ONE keystore transaction (KeyStore.putRootKeys). The root keys
 * themselves do not change, so a running server, which holds them unwrapped, is not affected.
 *
 * Root key: objects are re-wrapped one batch at a time (opened with the root key they are
 * under, sealed with the active one, written back with the optimistic `update`: a concurrent
 * write by a server is never overwritten, the object is read again and re-wrapped again).
 * Each batch is one group commit. The work is idempotent: interrupted at any point, running it
 * again continues with the objects still under retired root keys.
 */
import { ConcurrentModificationError, type KeyStore, type RootKeyRecord, type StoredObject } from '../keystore/types.js';
import type { RootKeyring } from './envelope.js';
import { META_MASTER_CANARY, META_MASTER_ID, META_MASTER_KIND, KeyUnwrapError, computeCanary, type MasterKeyProvider } from './masterkey.js';

/** A root key could not be moved to the new master key: nothing was written. */
export class RootKeyRewrapError extends Error {
  override readonly name = 'RootKeyRewrapError';
}

/**
 * Re-wraps every root key record of `store` under `to` and records `to`'s canary, in one
 * transaction. `masterOf` gives the master key that wrapped a record (by its masterKeyId);
 * records already under `to` are kept as they are. Returns how many records there are.
 * Rejects with RootKeyRewrapError, writing nothing, if a root key cannot be moved.
 */
export async function rewrapRootKeys(
  store: KeyStore,
  to: MasterKeyProvider,
  masterOf: (masterKeyId: string) => Promise<MasterKeyProvider | undefined>,
  /**
   * More keystore meta to write in the same transaction as the canary: the hand-off of the new
   * master key to the other nodes of a shared keystore (src/server/master-handoff.ts), so that
   * no node ever sees the new canary without it.
   */
  extraMeta: Record<string, string> = {},
): Promise<number> {
  // A root key added by another process between our read and our write would be left behind:
  // read again afterwards and go on until every record is under `to` (the admin commands lock
  // each other out, so this only guards against a server creating its first root key).
  for (let round = 0; round < 5; round++) {
    const records = await store.rootKeys();
    if (round > 0 && records.every((r) => r.masterKeyId === to.keyId)) return records.length;
    const next: RootKeyRecord[] = [];
    for (const r of records) {
      if (r.masterKeyId === to.keyId) {
        next.push(r);
        continue;
      }
      const from = await masterOf(r.masterKeyId);
      if (from === undefined) {
        throw new RootKeyRewrapError(`root key ${r.id} is wrapped by master key ${r.masterKeyId}, which is not available; nothing was changed`);
      }
      let plain: Buffer | undefined;
      let check: Buffer | undefined;
      try {
        try {
          plain = await from.unwrap(r.wrapped);
        } catch (e) {
          if (e instanceof KeyUnwrapError) {
            throw new RootKeyRewrapError(`root key ${r.id} cannot be unwrapped by master key ${from.kind}:${from.keyId}; nothing was changed`);
          }
          throw e;
        }
        const wrapped = await to.wrap(plain);
        check = await to.unwrap(wrapped);
        if (!check.equals(plain)) throw new RootKeyRewrapError(`the new master key ${to.kind}:${to.keyId} does not unwrap what it wrapped; nothing was changed`);
        next.push({ ...r, wrapped, masterKeyId: to.keyId });
      } finally {
        plain?.fill(0);
        check?.fill(0);
      }
    }
    const canary = await computeCanary(to);
    await store.putRootKeys(next, {
      ...extraMeta,
      [META_MASTER_KIND]: to.kind,
      [META_MASTER_ID]: to.keyId,
      [META_MASTER_CANARY]: canary.toString('hex'),
    });
    const after = await store.rootKeys();
    if (after.every((r) => r.masterKeyId === to.keyId)) return after.length;
  }
  throw new RootKeyRewrapError('root keys kept being added while they were re-wrapped; run the command again');
}

/** How many objects each root key protects, with the keys' records. */
export interface RootKeyUsage {
  id: string;
  status: 'active' | 'retired';
  createdAt: number;
  masterKeyId: string;
  objects: number;
}

export async function rootKeyUsage(store: KeyStore): Promise<{ keys: RootKeyUsage[]; other: { rootKeyId: string; n: number }[] }> {
  const [records, counts] = await Promise.all([store.rootKeys(), store.countByRootKey()]);
  const byId = new Map(counts.map((c) => [c.rootKeyId, c.n]));
  const ids = new Set(records.map((r) => r.id));
  return {
    keys: records.map((r) => ({ id: r.id, status: r.status, createdAt: r.createdAt, masterKeyId: r.masterKeyId, objects: byId.get(r.id) ?? 0 })),
    /** Material not under any root key record (direct mode: sealed by the HSM key). */
    other: counts.filter((c) => !ids.has(c.rootKeyId)),
  };
}

/** Objects whose material is under a root key record other than the active one. */
export async function objectsUnderRetiredRootKeys(store: KeyStore, activeId: string): Promise<number> {
  const { keys } = await rootKeyUsage(store);
  return keys.filter((k) => k.id !== activeId).reduce((n, k) => n + k.objects, 0);
}

export interface RewrapProgress {
  /** Objects re-wrapped so far by this run. */
  done: number;
  /** done + what is still under retired root keys (grows if a server seals under a retired key meanwhile). */
  total: number;
  /** Pass over the store (1, 2, ...). */
  pass: number;
  /** Optimistic-concurrency conflicts met (each one re-read and retried). */
  conflicts: number;
  startedAt: number;
}

export interface RewrapOptions {
  /** Objects per batch (one keystore transaction); default 100. */
  batch?: number;
  onProgress?: (p: RewrapProgress) => void;
  /**
   * In the first two passes, objects changed less than this long ago (ms, default 1000) are
   * left for a later pass: a client busy with an object (create, then add attributes, then
   * activate) is not disturbed by a concurrent re-wrap.
   */
  quietMs?: number;
  /** Give up when objects under retired root keys remain but none could be re-wrapped for this long (ms, default 60000). */
  maxIdleMs?: number;
  /** Stop after the current batch. */
  signal?: AbortSignal;
  /**
   * Do not finish before this time (epoch ms), even with nothing left: servers switch to a new
   * active root key only at their next refresh, and may seal under the retired one until then.
   */
  settleUntil?: number;
}

export interface RewrapResult {
  rewrapped: number;
  conflicts: number;
  passes: number;
  /** Objects still under retired root keys (0 unless stopped or given up). */
  remaining: number;
}

type Outcome = 'rewrapped' | 'skipped' | 'deferred' | 'conflict';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Re-wraps every object under a retired root key of `ring` with its active root key, in
 * batches, until none is left. Objects are never unreadable: each is written back (with its
 * new envelope) in one update, and the retired keys stay in the store.
 */
export async function rewrapObjects(store: KeyStore, ring: RootKeyring, opts: RewrapOptions = {}): Promise<RewrapResult> {
  const batch = Math.max(1, opts.batch ?? 100);
  const quietMs = opts.quietMs ?? 1000;
  const maxIdleMs = opts.maxIdleMs ?? 60_000;
  const progress: RewrapProgress = { done: 0, total: 0, pass: 0, conflicts: 0, startedAt: Date.now() };
  const report = (): void => opts.onProgress?.({ ...progress });
  let lastRewrapAt = Date.now();
  let remaining = 0;

  const rewrapOne = async (uid: string, rootKeyIds: Set<string>, pass: number): Promise<Outcome> => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const obj: StoredObject | undefined = await store.get(uid);
      if (obj === undefined || obj.material === null) return 'skipped';
      const rk = obj.material.rootKeyId;
      if (rk === ring.activeKeyId || !rootKeyIds.has(rk)) return 'skipped';
      if (pass <= 2 && Date.now() - obj.updatedAt < quietMs) return 'deferred';
      const plain = await ring.openOrReload(uid, obj.material);
      let sealed;
      try {
        sealed = ring.seal(uid, plain);
      } finally {
        plain.fill(0);
      }
      try {
        // updatedAt is kept: a re-wrap is not a change of the object.
        await store.update({ ...obj, material: sealed }, obj.revision);
        return 'rewrapped';
      } catch (e) {
        if (!(e instanceof ConcurrentModificationError)) throw e;
        progress.conflicts++;
      }
    }
    return 'conflict';
  };

  for (let pass = 1; ; pass++) {
    // The records are read every pass: a server may be told about a newer active key meanwhile.
    await ring.refresh();
    const active = ring.activeKeyId;
    const records = await store.rootKeys();
    const retired = new Set(records.filter((r) => r.id !== active).map((r) => r.id));
    remaining = await objectsUnderRetiredRootKeys(store, active);
    progress.pass = pass;
    progress.total = progress.done + remaining;
    report();
    if (opts.signal?.aborted) break;
    if (remaining === 0) {
      const wait = (opts.settleUntil ?? 0) - Date.now();
      if (wait <= 0) break;
      await sleep(Math.min(wait, 1000));
      continue;
    }
    let rewrappedThisPass = 0;
    for (let offset = 0; !opts.signal?.aborted; ) {
      const uids = await store.locate({ filters: [], offset, limit: batch });
      if (uids.length === 0) break;
      offset += uids.length;
      const outcomes = await Promise.all(uids.map((u) => rewrapOne(u, retired, pass)));
      const n = outcomes.filter((o) => o === 'rewrapped').length;
      if (n > 0) {
        progress.done += n;
        rewrappedThisPass += n;
        lastRewrapAt = Date.now();
        report();
      }
    }
    if (rewrappedThisPass === 0) {
      if (Date.now() - lastRewrapAt > maxIdleMs) break;
      await sleep(Math.min(quietMs, 500));
    }
  }
  remaining = await objectsUnderRetiredRootKeys(store, ring.activeKeyId);
  progress.total = progress.done + remaining;
  report();
  return { rewrapped: progress.done, conflicts: progress.conflicts, passes: progress.pass, remaining };
}
