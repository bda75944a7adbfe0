/**
 * Node heartbeats: every serving node writes one row of the keystore's `nodes` table every
 * interval (default 10 s), so that `kmipd cluster status` can list the nodes sharing a keystore:
 *
 *   node id (stable, DIR/node-id), host name, pid, kmipd version, the schema version it knows and
 *   the store's, started at, interval, KMIP listen address and port, keystore state, master key
 *   (HSM) state, and the server certificate it presents: SHA-256 fingerprint, subject, expiry.
 *
 * The write runs on a timer, never on the request path; a failed write is logged (once per
 * change of state) and retried at the next interval, never fatal. A clean shutdown removes the
 * row; a node that dies keeps its row, which `cluster status` reports stale after 3 intervals.
 */
import { X509Certificate, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { MasterKeyProvider } from '../crypto/masterkey.js';
import { isNodeRegistry, isSchemaAware } from '../keystore/nodes.js';
import type { KeyStore } from '../keystore/types.js';
import { VERSION } from '../version.js';

export const NODE_ID_FILE = 'node-id';
export const DEFAULT_HEARTBEAT_MS = 10_000;
/** A node whose last heartbeat is older than this many of its intervals is stale. */
export const STALE_INTERVALS = 3;
const CHECK_TIMEOUT_MS = 5000;

/**
 * The node id of a data directory: DIR/node-id (JSON: id, and the directory and host it was made
 * for), created (random, mode 0600) when missing. A directory copied to another path or host (a
 * new node made from a copy) gets a new id, so two nodes never share one; node bundles do not
 * carry it.
 */
export function ensureNodeId(dirArg: string): string {
  const dir = resolve(dirArg);
  const file = join(dir, NODE_ID_FILE);
  const rec = readRecord(file);
  if (rec !== undefined && rec.dir === dir && rec.host === hostname()) return rec.id;
  const id = randomUUID();
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify({ id, dir, host: hostname(), createdAt: new Date().toISOString() }) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  return id;
}

function readRecord(file: string): { id: string; dir: string; host: string } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const v = JSON.parse(text) as { id?: unknown; dir?: unknown; host?: unknown };
    if (typeof v.id === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(v.id) && typeof v.dir === 'string' && typeof v.host === 'string') return { id: v.id, dir: v.dir, host: v.host };
  } catch {
    /* replaced below */
  }
  return undefined;
}

/** The node id of a data directory, or undefined when it never served. */
export function readNodeId(dir: string): string | undefined {
  return readRecord(join(resolve(dir), NODE_ID_FILE))?.id;
}

export interface CheckState {
  ok: boolean;
  detail?: string;
  error?: string;
}

/** The JSON a node writes in its heartbeat row. */
export interface NodeInfo {
  nodeId: string;
  host: string;
  pid: number;
  version: string;
  /** The newest schema version this node knows, and the store's at the last heartbeat. */
  schema: { known: number; current: number; state: string };
  startedAt: string;
  intervalMs: number;
  listen: { address: string; port: number };
  keystore: CheckState & { backend: string };
  master: CheckState & { provider: string; keyId: string };
  certificate: { sha256: string; subject: string; notAfter: string } | { error: string };
}

export interface HeartbeatOptions {
  nodeId: string;
  store: KeyStore;
  master: MasterKeyProvider;
  /** The server certificate presented now (PEM; reloads included). */
  serverCertPem(): string;
  listen(): { address: string; port: number };
  log: Logger;
  intervalMs?: number;
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export function certificateSummary(pem: string): NodeInfo['certificate'] {
  try {
    const c = new X509Certificate(pem);
    return { sha256: c.fingerprint256, subject: c.subject.replace(/\n/g, ', '), notAfter: new Date(c.validTo).toISOString() };
  } catch (e) {
    return { error: `the server certificate cannot be read: ${(e as Error).message}` };
  }
}

export class Heartbeat {
  readonly nodeId: string;
  readonly intervalMs: number;
  private readonly startedAt = new Date().toISOString();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private lastOk: boolean | undefined;
  /** Heartbeats written since start (metrics, tests). */
  beats = 0;

  constructor(private readonly opts: HeartbeatOptions) {
    this.nodeId = opts.nodeId;
    this.intervalMs = opts.intervalMs ?? DEFAULT_HEARTBEAT_MS;
  }

  /** Writes the first heartbeat (awaited, errors logged), then one every interval. */
  async start(): Promise<void> {
    await this.beat();
    if (this.stopped) return;
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
    this.timer.unref();
  }

  /** One heartbeat now (a beat already running is awaited instead of starting another). */
  beat(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.running ??= this.write().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async masterState(): Promise<NodeInfo['master']> {
    const m = this.opts.master;
    const base = { provider: m.kind, keyId: m.keyId };
    try {
      const probe = randomBytes(32);
      const back = await withDeadline(m.wrap(probe).then((w) => m.unwrap(w)), CHECK_TIMEOUT_MS, 'the master key');
      const same = back.length === probe.length && timingSafeEqual(back, probe);
      back.fill(0);
      return same ? { ...base, ok: true, detail: 'wrap/unwrap ok' } : { ...base, ok: false, error: 'a wrap/unwrap round trip returned other bytes' };
    } catch (e) {
      return { ...base, ok: false, error: (e as Error).message };
    }
  }

  private async keystoreState(): Promise<{ ks: NodeInfo['keystore']; schema: NodeInfo['schema'] }> {
    const store = this.opts.store;
    if (!isSchemaAware(store)) return { ks: { backend: store.backend, ok: true }, schema: { known: 0, current: 0, state: 'unknown' } };
    try {
      const r = await withDeadline(store.schemaReport(), CHECK_TIMEOUT_MS, 'the keystore');
      const ok = r.state === 'current' || r.state === 'compatible-newer';
      const ks: NodeInfo['keystore'] = ok
        ? { backend: store.backend, ok, detail: `schema ${r.current}${r.state === 'compatible-newer' ? ' (one compatible version ahead)' : ''}` }
        : { backend: store.backend, ok, error: r.problem ?? `schema ${r.current}, this node needs ${r.known}` };
      return { ks, schema: { known: r.known, current: r.current, state: r.state } };
    } catch (e) {
      return { ks: { backend: store.backend, ok: false, error: (e as Error).message }, schema: { known: 0, current: 0, state: 'unknown' } };
    }
  }

  /** The row this node writes now. */
  async info(): Promise<NodeInfo> {
    const [{ ks, schema }, master] = await Promise.all([this.keystoreState(), this.masterState()]);
    return {
      nodeId: this.nodeId,
      host: hostname(),
      pid: process.pid,
      version: VERSION,
      schema,
      startedAt: this.startedAt,
      intervalMs: this.intervalMs,
      listen: this.opts.listen(),
      keystore: ks,
      master,
      certificate: certificateSummary(this.opts.serverCertPem()),
    };
  }

  private async write(): Promise<void> {
    const store = this.opts.store;
    try {
      if (!isNodeRegistry(store)) throw new Error(`the ${store.backend} keystore keeps no node table`);
      const info = await this.info();
      if (this.stopped) return;
      await store.putNode(this.nodeId, 'serving', JSON.stringify(info));
      this.beats++;
      if (this.lastOk === false) this.opts.log.info({ nodeId: this.nodeId }, 'heartbeat written again');
      this.lastOk = true;
    } catch (e) {
      if (this.lastOk !== false) this.opts.log.warn({ err: (e as Error).message, nodeId: this.nodeId }, 'cannot write the node heartbeat; will retry');
      this.lastOk = false;
    }
  }

  /** Stops the timer and removes this node's row (clean shutdown); errors are logged. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    const store = this.opts.store;
    if (!isNodeRegistry(store)) return;
    try {
      await store.removeNode(this.nodeId);
    } catch (e) {
      this.opts.log.warn({ err: (e as Error).message, nodeId: this.nodeId }, 'cannot remove the node heartbeat row');
    }
  }
}
