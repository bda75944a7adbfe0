/**
 * Asynchronous operations (KMIP 1.4 §4.27 Cancel, §4.28 Poll, §6.7 Asynchronous Indicator, §6.8
 * Asynchronous Correlation Value; 2.1 §6.1 "Cancel" and "Poll"): the table of the operations a
 * node answered with Operation Pending, and their lifecycle.
 *
 *   queued  --(start delay elapsed)-->  running  --(handler done)-->  done (Success / Failed)
 *   queued  --(Cancel)-->  canceled
 *
 * - A queued operation waits up to `startDelayMs` in the node's queue before it runs: the window
 *   during which a client can still Cancel it (Cancellation Result Canceled; it never runs).
 *   Once it runs, Cancel answers Unable to Cancel (a handler is not interrupted half way through
 *   its writes); once it is done, Completed or Failed, as the spec defines them.
 * - Poll is the client asking for the result: it starts a queued operation at once (the client
 *   has given up the chance to cancel it) and waits up to `pollWaitMs` for it; it answers the
 *   final response item (Success with its payload, or Operation Failed with its reason), or
 *   Operation Pending again with the same value while the operation still runs. A canceled
 *   operation answers Operation Failed / Operation Canceled By Requester. A finished result
 *   stays pollable until it expires (`ttlMs` after it finished), so a client that lost a Poll
 *   response can ask again.
 * - Every entry belongs to the client identity that asked: another identity's Poll gets Invalid
 *   Asynchronous Correlation Value (1.x: Item Not Found) and its Cancel Unavailable, exactly as
 *   for a value that never existed. Correlation values are 16 random bytes (node:crypto).
 * - Each identity holds at most `maxPerIdentity` entries; at the limit the oldest finished entry
 *   is dropped, and when every entry is still queued or running the new operation is answered
 *   synchronously instead (the server decides what runs asynchronously, §6.8).
 * - The table lives in memory on the node that accepted the operation: a Poll sent to another
 *   node of a cluster, or after a restart, finds nothing.
 */
import { randomBytes } from 'node:crypto';
import type { ResponseBatchItem } from '../codec/message.js';
import { KmipError } from '../codec/errors.js';
import type { AsyncAnswer } from '../operations/context.js';
import { Enums } from '../spec/index.js';

export interface AsyncLimits {
  /** How long an operation stays queued (cancellable) before it runs, in ms, unless a Poll starts it. */
  startDelayMs: number;
  /** How long a Poll waits for a running operation to finish before it answers Operation Pending, in ms. */
  pollWaitMs: number;
  /** Entries (queued, running or finished) one identity may hold. */
  maxPerIdentity: number;
  /** How long a finished result stays pollable, in ms. */
  ttlMs: number;
}

export const DEFAULT_ASYNC_LIMITS: AsyncLimits = { startDelayMs: 1000, pollWaitMs: 2000, maxPerIdentity: 64, ttlMs: 10 * 60_000 };

type EntryState = 'queued' | 'running' | 'done' | 'canceled';

interface Entry {
  key: string;
  value: Buffer;
  identity: string;
  operation: number;
  state: EntryState;
  run: () => Promise<ResponseBatchItem>;
  timer?: NodeJS.Timeout;
  running?: Promise<void>;
  result?: ResponseBatchItem;
  /** When a finished entry may be forgotten (ms since the epoch). */
  expiresAt?: number;
}

const CR = Enums.CancellationResult;

export class AsyncOperations {
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(
    private readonly limits: AsyncLimits = DEFAULT_ASYNC_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Queues `run` for `identity` and returns its correlation value, or undefined when the
   * identity already has `maxPerIdentity` operations in flight (run it synchronously then).
   * `run` must not throw: its failures are results.
   */
  add(identity: string, operation: number, run: () => Promise<ResponseBatchItem>): Buffer | undefined {
    if (this.closed) return undefined;
    this.sweep();
    const mine = [...this.entries.values()].filter((e) => e.identity === identity);
    if (mine.length >= this.limits.maxPerIdentity) {
      const finished = mine.find((e) => e.state === 'done' || e.state === 'canceled');
      if (!finished) return undefined;
      this.entries.delete(finished.key);
    }
    const value = randomBytes(16);
    const entry: Entry = { key: value.toString('hex'), value, identity, operation, state: 'queued', run };
    entry.timer = setTimeout(() => this.start(entry), this.limits.startDelayMs);
    entry.timer.unref();
    this.entries.set(entry.key, entry);
    return value;
  }

  private start(entry: Entry): void {
    if (entry.state !== 'queued') return;
    clearTimeout(entry.timer);
    delete entry.timer;
    entry.state = 'running';
    entry.running = entry.run().then(
      (result) => this.finish(entry, result),
      // `run` reports its own failures; this is the last line of defence.
      (e: unknown) => this.finish(entry, { operation: entry.operation, status: 'OperationFailed', reason: 'GeneralFailure', message: e instanceof KmipError ? e.message : 'internal error; see the server log' }),
    );
  }

  private finish(entry: Entry, result: ResponseBatchItem): void {
    entry.state = 'done';
    entry.result = result;
    entry.expiresAt = this.now() + this.limits.ttlMs;
    delete entry.running;
  }

  private sweep(): void {
    const t = this.now();
    for (const [k, e] of this.entries) if (e.expiresAt !== undefined && e.expiresAt <= t) this.entries.delete(k);
  }

  private lookup(identity: string, value: Uint8Array): Entry | undefined {
    this.sweep();
    const e = this.entries.get(Buffer.from(value).toString('hex'));
    return e && e.identity === identity ? e : undefined;
  }

  /**
   * Poll: the answer for `identity`'s operation `value`. A Poll means the client wants the result
   * rather than a chance to cancel: a queued operation starts at once, and the Poll waits up to
   * `pollWaitMs` for a running one before it answers Operation Pending.
   */
  async poll(identity: string, value: Uint8Array): Promise<AsyncAnswer> {
    const e = this.lookup(identity, value);
    if (!e) throw new KmipError('InvalidAsynchronousCorrelationValue', 'no asynchronous operation of this client has that Asynchronous Correlation Value (unknown, expired, or accepted by another node)');
    if (e.state === 'queued' && !this.closed) this.start(e);
    if (e.running && this.limits.pollWaitMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([e.running, new Promise<void>((r) => (timer = setTimeout(r, this.limits.pollWaitMs)))]);
      clearTimeout(timer);
    }
    switch (e.state) {
      case 'queued':
      case 'running':
        return { operation: e.operation, status: 'OperationPending', correlation: e.value };
      case 'canceled':
        return { operation: e.operation, status: 'OperationFailed', reason: 'OperationCanceledByRequester', message: 'the operation was canceled' };
      case 'done': {
        const r = e.result!;
        const a: AsyncAnswer = { operation: r.operation ?? e.operation, status: r.status === 'Success' ? 'Success' : 'OperationFailed' };
        if (r.reason !== undefined) a.reason = r.reason;
        if (r.message !== undefined) a.message = r.message;
        if (r.payload !== undefined) a.payload = r.payload;
        return a;
      }
    }
  }

  /** Cancel: the Cancellation Result for `identity`'s operation `value`. */
  cancel(identity: string, value: Uint8Array): number {
    const e = this.lookup(identity, value);
    if (!e) return CR.Unavailable;
    switch (e.state) {
      case 'queued':
        clearTimeout(e.timer);
        delete e.timer;
        e.state = 'canceled';
        e.expiresAt = this.now() + this.limits.ttlMs;
        return CR.Canceled;
      case 'canceled':
        return CR.Canceled;
      case 'running':
        return CR.UnableToCancel;
      case 'done':
        return e.result?.status === 'Success' ? CR.Completed : CR.Failed;
    }
  }

  /** Entries held (every state), for tests and metrics. */
  get size(): number {
    return this.entries.size;
  }

  /** Stops: queued operations are canceled (they never run), running ones are waited for. */
  async close(): Promise<void> {
    this.closed = true;
    const running: Promise<void>[] = [];
    for (const e of this.entries.values()) {
      if (e.state === 'queued') {
        clearTimeout(e.timer);
        delete e.timer;
        e.state = 'canceled';
      } else if (e.running) running.push(e.running);
    }
    await Promise.all(running);
  }
}
