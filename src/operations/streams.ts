/**
 * Streaming ("by parts") cryptographic operations: KMIP 1.3+ Init Indicator, Correlation Value
 * and Final Indicator on Encrypt, Decrypt, Sign, Signature Verify, MAC, MAC Verify and Hash
 * (1.4 §4.29-4.35; 2.1 §6.1 and the Correlation Value field).
 *
 * - A request with Init Indicator true starts a stream: the server answers a fresh random
 *   Correlation Value (16 bytes) that the client sends with every later part.
 * - A request with a Correlation Value continues it; with Final Indicator true it ends it (the
 *   answer then carries no Correlation Value).
 *
 * The state (a node:crypto Cipher, Hash, Hmac, Sign or Verify object, or buffered data) lives in
 * this process's memory only:
 * - bound to the client identity that opened it, the operation and the key: another identity,
 *   another operation or another key gets the same answer as for a value that never existed
 *   (Invalid Correlation Value; 1.x Invalid Field) and cannot tell the difference;
 * - limited: `maxPerIdentity` open streams per identity and `maxTotal` in all (Server Limit
 *   Exceeded; 1.x General Failure), `maxBuffered` bytes of data held back in all (AEAD
 *   decryption, Ed25519 signatures), `idleMs` without a part and the stream is dropped (swept
 *   on every stream request and by a background timer while streams are open);
 * - a part that fails ends its stream (its state may be half-updated), as does a server
 *   restart. In a cluster, a stream is only known to the node that opened it.
 * - one part at a time: a part sent while another part of the same stream is being processed
 *   is refused as an unknown Correlation Value.
 */
import { randomBytes } from 'node:crypto';
import { isV2 } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { optValue } from '../codec/node.js';
import { Tag } from '../spec/index.js';
import type { StructureNode } from '../ttlv/types.js';
import type { OperationContext } from './context.js';

/** The type of state a kind of stream keeps; compared by identity. */
export interface StreamKind<T> {
  readonly operation: string;
  /** Phantom: ties the kind to its state type. */
  readonly state?: (s: T) => T;
}

export function streamKind<T>(operation: string): StreamKind<T> {
  return { operation };
}

export interface StreamLimits {
  /** Open streams per client identity. */
  maxPerIdentity: number;
  /** Open streams in all. */
  maxTotal: number;
  /** Milliseconds without a part before a stream is dropped. */
  idleMs: number;
  /** Bytes of data held back by all streams together. */
  maxBuffered: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  maxPerIdentity: 32,
  maxTotal: 1024,
  idleMs: 5 * 60 * 1000,
  maxBuffered: 64 * 1024 * 1024,
};

interface Entry {
  id: string;
  identity: string;
  kind: StreamKind<unknown>;
  uid: string | undefined;
  state: unknown;
  lastUsed: number;
  busy: boolean;
  buffered: number;
  dispose: (() => void) | undefined;
}

/** One part's hold on a stream: its state, until `release` (keep open) or `close` (end). */
export interface Lease<T> {
  readonly correlationValue: Buffer;
  readonly uid: string | undefined;
  readonly state: T;
}

function correlationError(ctx: OperationContext): KmipError {
  return new KmipError(isV2(ctx.version) ? 'InvalidCorrelationValue' : 'InvalidField', 'unknown or expired Correlation Value');
}

export class StreamRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly leases = new WeakMap<object, Entry>();
  private readonly limits: StreamLimits;
  private buffered = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    limits: Partial<StreamLimits> = {},
    private readonly clock: () => number = () => Date.now(),
  ) {
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...limits };
  }

  get size(): number {
    return this.entries.size;
  }

  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Drops streams idle for longer than the limit. */
  sweep(): void {
    const cutoff = this.clock() - this.limits.idleMs;
    for (const e of this.entries.values()) if (!e.busy && e.lastUsed < cutoff) this.remove(e);
  }

  /**
   * Opens a stream for the client of `ctx` and returns its Correlation Value. `dispose` is
   * called once when the stream ends, however it ends (zero buffered data there); `buffered`
   * is the data the state already holds back.
   */
  open<T>(ctx: OperationContext, kind: StreamKind<T>, uid: string | undefined, state: T, dispose?: (s: T) => void, buffered = 0): Buffer {
    this.sweep();
    const identity = ctx.identity.name;
    try {
      this.checkRoom(identity, buffered);
    } catch (e) {
      dispose?.(state);
      throw e;
    }
    const cv = randomBytes(16);
    const id = cv.toString('hex');
    this.entries.set(id, {
      id,
      identity,
      kind: kind as StreamKind<unknown>,
      uid,
      state,
      lastUsed: this.clock(),
      busy: false,
      buffered,
      dispose: dispose ? () => dispose(state) : undefined,
    });
    this.buffered += buffered;
    this.watch();
    return cv;
  }

  private checkRoom(identity: string, buffered: number): void {
    if (buffered > 0 && this.buffered + buffered > this.limits.maxBuffered) {
      throw new KmipError('ServerLimitExceeded', 'the server holds too much streamed data; send smaller streams');
    }
    let mine = 0;
    for (const e of this.entries.values()) if (e.identity === identity) mine++;
    if (mine >= this.limits.maxPerIdentity) {
      throw new KmipError('ServerLimitExceeded', `too many open streams for this client (at most ${this.limits.maxPerIdentity}); finish or abandon some`);
    }
    if (this.entries.size >= this.limits.maxTotal) throw new KmipError('ServerLimitExceeded', 'too many open streams on this server');
  }

  /** Sweeps idle streams in the background while any is open (an unref'd timer). */
  private watch(): void {
    if (this.timer || this.entries.size === 0) return;
    this.timer = setInterval(() => {
      this.sweep();
      if (this.entries.size === 0) this.unwatch();
    }, Math.max(1000, Math.floor(this.limits.idleMs / 2)));
    this.timer.unref();
  }

  private unwatch(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Takes the stream named by `cv` for one part. It must have been opened by the same identity,
   * for the same kind of operation and, when `uid` is given, on the same object.
   */
  take<T>(ctx: OperationContext, kind: StreamKind<T>, cv: Uint8Array, uid: string | undefined): Lease<T> {
    this.sweep();
    const e = this.entries.get(Buffer.from(cv).toString('hex'));
    if (!e || e.busy || e.identity !== ctx.identity.name || e.kind !== kind || (uid !== undefined && e.uid !== uid)) {
      throw correlationError(ctx);
    }
    e.busy = true;
    const lease: Lease<T> = { correlationValue: Buffer.from(e.id, 'hex'), uid: e.uid, state: e.state as T };
    this.leases.set(lease, e);
    return lease;
  }

  /**
   * Accounts for `bytes` more (or, negative, fewer) bytes of data held back by the stream;
   * refuses growth beyond the server's budget.
   */
  account(lease: Lease<unknown>, bytes: number): void {
    const e = this.leases.get(lease);
    if (!e) return;
    if (bytes > 0 && this.buffered + bytes > this.limits.maxBuffered) {
      throw new KmipError('ServerLimitExceeded', 'the server holds too much streamed data; send smaller streams');
    }
    e.buffered += bytes;
    this.buffered += bytes;
  }

  /** Ends the part and keeps the stream open. */
  release(lease: Lease<unknown>): void {
    const e = this.leases.get(lease);
    if (!e) return;
    this.leases.delete(lease);
    e.busy = false;
    e.lastUsed = this.clock();
  }

  /** Ends the stream. */
  close(lease: Lease<unknown>): void {
    const e = this.leases.get(lease);
    if (!e) return;
    this.leases.delete(lease);
    this.remove(e);
  }

  /** Ends every stream (server shutdown, tests). */
  clear(): void {
    for (const e of [...this.entries.values()]) this.remove(e);
    this.unwatch();
  }

  private remove(e: Entry): void {
    if (!this.entries.delete(e.id)) return;
    this.buffered -= e.buffered;
    e.buffered = 0;
    try {
      e.dispose?.();
    } catch {
      // disposing only zeroes buffers
    }
  }
}

/**
 * The process's streams, shared by every handler (one registry per process: correlation values
 * are random and bound to the identity, so servers sharing a process cannot use each other's).
 */
export const streams = new StreamRegistry();

/**
 * Runs one part of a stream with its lease: `body` returns whether the stream goes on. A part
 * that throws ends the stream.
 */
export async function withLease<T, R>(registry: StreamRegistry, lease: Lease<T>, body: (state: T) => Promise<{ result: R; done: boolean }>): Promise<R> {
  let done = true;
  try {
    const r = await body(lease.state);
    done = r.done;
    return r.result;
  } finally {
    if (done) registry.close(lease);
    else registry.release(lease);
  }
}

export type StreamPhase =
  /** No stream: the whole data in one request (Init and Final both true count as this too). */
  | 'once'
  /** Init Indicator: the first part. */
  | 'init'
  /** Correlation Value without Final Indicator: a middle part. */
  | 'more'
  /** Correlation Value with Final Indicator: the last part. */
  | 'final';

/** Reads Init Indicator, Final Indicator and Correlation Value from a request payload. */
export function streamPhase(payload: StructureNode): { phase: StreamPhase; correlationValue?: Uint8Array } {
  const init = optValue(payload, Tag.InitIndicator, 'Boolean') ?? false;
  const final = optValue(payload, Tag.FinalIndicator, 'Boolean') ?? false;
  const cv = optValue(payload, Tag.CorrelationValue, 'ByteString');
  if (cv !== undefined) {
    if (init) throw new KmipError('InvalidField', 'a request continuing a stream (Correlation Value) cannot also start one (Init Indicator)');
    return { phase: final ? 'final' : 'more', correlationValue: cv };
  }
  if (init && !final) return { phase: 'init' };
  return { phase: 'once' };
}
