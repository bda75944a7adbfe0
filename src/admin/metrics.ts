/**
 * Prometheus metrics (prom-client), in a registry of their own (never the global one), fed by a
 * small observer the executor, the listener and the keystore call (ServerObserver in
 * src/server/server.ts). Nothing else in kmipd imports prom-client.
 *
 * Labels are bounded: operation names and result reasons come from the KMIP enumerations (any
 * other value is "other"), keystore methods from the KeyStore interface, handshake failure
 * reasons from a fixed list, certificate names from the trust store the operator manages. Never
 * a key identifier, a client identity or a client address.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { KeyStore } from '../keystore/types.js';
import { stateName } from '../operations/lifecycle.js';
import type { ExecutedItem } from '../server/executor.js';
import type { ServerObserver } from '../server/server.js';
import { type ConnectionRefusalReason, CONNECTION_REFUSAL_REASONS, handshakeFailureReason } from '../server/peer-log.js';
import { Enums, enumValueName } from '../spec/index.js';
import { VERSION } from '../version.js';

/** How long object counts (a GROUP BY over the keystore) are reused between scrapes. */
export const OBJECT_COUNT_TTL_MS = 30_000;

const OPERATIONS = new Set(Object.keys(Enums.Operation));
const REASONS = new Set(Object.keys(Enums.ResultReason));
const RESULTS = new Set(['Success', 'OperationFailed', 'OperationPending', 'OperationUndone']);
const STORE_METHODS = new Set(['insert', 'get', 'update', 'restore', 'locate', 'count', 'rootKeys', 'putRootKey', 'putRootKeys', 'countByRootKey', 'getMeta', 'setMeta']);
const STORE_ERRORS = new Set(['ConcurrentModificationError', 'DuplicateObjectError', 'KeyStoreClosedError', 'KeyStoreUnavailableError', 'UnsupportedSchemaError', 'KmipError']);

// The fixed lists of reasons live with the listener, which logs by them too (src/server/peer-log.ts).
export { HANDSHAKE_FAILURE_REASONS, type HandshakeFailureReason, handshakeFailureReason } from '../server/peer-log.js';

function boundedOperation(op: string): string {
  if (OPERATIONS.has(op)) return op;
  return op === '-' ? 'none' : 'other';
}

function boundedReason(r: string | undefined): string {
  if (r === undefined) return '';
  return REASONS.has(r) ? r : 'other';
}

/** What the metrics read from the running server at scrape time (set once it runs). */
export interface MetricsSources {
  connections(): number;
  countObjects(): Promise<{ objectType: number; state: number; n: number }[]>;
  /** Certificates with their end of validity (kind: server, ca, trusted_ca, pinned). */
  certificates(): { kind: string; name: string; notAfter: Date }[];
  /** When `kmipd backup` last succeeded, if recorded. */
  lastBackup(): Promise<Date | undefined>;
  /** An SQLite keystore's background checkpoints (undefined: PostgreSQL, or none started). */
  checkpoints(): CheckpointReport | undefined;
}

/** What the metrics show of an SQLite keystore's background checkpoints (src/keystore/checkpointer.ts). */
export interface CheckpointReport {
  /** Still running on their worker (false: failed, SQLite checkpoints inside commits again). */
  active: boolean;
  completed: number;
  busy: number;
  failed: number;
  lastLogFrames: number;
}

export class Metrics {
  readonly registry = new Registry();
  private sources: MetricsSources | undefined;
  private objectCounts: { at: number; rows: { objectType: number; state: number; n: number }[] } | undefined;
  private countsInFlight: Promise<void> | undefined;

  readonly requests: Counter<'operation' | 'result' | 'reason'>;
  readonly latency: Histogram<'operation'>;
  readonly handshakes: Counter<'result'>;
  readonly handshakeFailures: Counter<'reason'>;
  readonly connectionsRefused: Counter<'reason'>;
  readonly storeLatency: Histogram<'method'>;
  readonly storeErrors: Counter<'method' | 'error'>;
  readonly auditFailures: Counter;
  readonly usageFlushFailures: Counter;
  readonly reloads: Counter<'result'>;

  constructor(private readonly clock: () => number = Date.now) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: 'kmipd_build_info', help: 'kmipd version and Node.js version (value 1)', labelNames: ['version', 'node'], registers }).set(
      { version: VERSION, node: process.versions.node },
      1,
    );
    this.requests = new Counter({
      name: 'kmipd_requests_total',
      help: 'KMIP batch items answered, by operation, result status and result reason',
      labelNames: ['operation', 'result', 'reason'],
      registers,
    });
    this.latency = new Histogram({
      name: 'kmipd_request_duration_seconds',
      help: 'time to execute a KMIP batch item, by operation',
      labelNames: ['operation'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.handshakes = new Counter({ name: 'kmipd_tls_handshakes_total', help: 'TLS connections by outcome: accepted, or failed', labelNames: ['result'], registers });
    this.handshakeFailures = new Counter({
      name: 'kmipd_tls_handshake_failures_total',
      help: 'TLS handshakes that failed or clients refused after it, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.connectionsRefused = new Counter({
      name: 'kmipd_connections_refused_total',
      help: 'connections closed at accept, before TLS, by the limit reached (per_address_limit, max_connections)',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of CONNECTION_REFUSAL_REASONS) this.connectionsRefused.inc({ reason }, 0);
    const conn: Gauge = new Gauge({
      name: 'kmipd_open_connections',
      help: 'KMIP connections open now',
      registers,
      collect: () => {
        conn.set(this.sources?.connections() ?? 0);
      },
    });
    this.storeLatency = new Histogram({
      name: 'kmipd_keystore_operation_duration_seconds',
      help: 'keystore calls made for KMIP requests, by method',
      labelNames: ['method'],
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    });
    this.storeErrors = new Counter({ name: 'kmipd_keystore_errors_total', help: 'keystore calls that failed, by method and error kind', labelNames: ['method', 'error'], registers });
    const objects: Gauge<'type' | 'state'> = new Gauge({
      name: 'kmipd_objects',
      help: `managed objects by type and state (refreshed at most every ${OBJECT_COUNT_TTL_MS / 1000} s)`,
      labelNames: ['type', 'state'],
      registers,
      collect: async () => {
        const rows = await this.counts();
        objects.reset();
        for (const r of rows) objects.set({ type: enumValueName('ObjectType', r.objectType) ?? 'other', state: stateName(r.state) }, r.n);
      },
    });
    this.auditFailures = new Counter({ name: 'kmipd_audit_write_failures_total', help: 'requests failed because the audit trail could not be written', registers });
    this.usageFlushFailures = new Counter({ name: 'kmipd_usage_flush_failures_total', help: 'failed writes of key last-use records to the keystore', registers });
    this.reloads = new Counter({ name: 'kmipd_reloads_total', help: 'configuration reloads (SIGHUP), by result', labelNames: ['result'], registers });
    const expiry: Gauge<'certificate' | 'name'> = new Gauge({
      name: 'kmipd_certificate_expiry_timestamp_seconds',
      help: 'end of validity of each certificate kmipd uses or trusts (server, ca, trusted_ca, pinned), Unix time',
      labelNames: ['certificate', 'name'],
      registers,
      collect: () => {
        expiry.reset();
        for (const c of this.sources?.certificates() ?? []) expiry.set({ certificate: c.kind, name: c.name }, Math.floor(c.notAfter.getTime() / 1000));
      },
    });
    // Background checkpoints: counters fed from the checkpointer's own counts at scrape time.
    const seen = { complete: 0, partial: 0, failed: 0 };
    const checkpoints: Counter<'result'> = new Counter({
      name: 'kmipd_keystore_checkpoints_total',
      help: 'SQLite keystore checkpoints run in the background, by result (complete; partial: a reader held frames back, copied next time; failed)',
      labelNames: ['result'],
      registers,
      collect: () => {
        const c = this.sources?.checkpoints();
        if (!c) return;
        const now = { complete: c.completed - c.busy, partial: c.busy, failed: c.failed };
        for (const k of ['complete', 'partial', 'failed'] as const) {
          if (now[k] > seen[k]) checkpoints.inc({ result: k }, now[k] - seen[k]);
          else checkpoints.inc({ result: k }, 0);
          seen[k] = Math.max(seen[k], now[k]);
        }
      },
    });
    const checkpointer: Gauge = new Gauge({
      name: 'kmipd_keystore_background_checkpoints',
      help: 'SQLite keystore: 1 while checkpoints run on their worker thread, 0 once it failed (SQLite checkpoints inside commits again; see the log)',
      registers,
      collect: () => {
        checkpointer.reset();
        const c = this.sources?.checkpoints();
        if (c) checkpointer.set(c.active ? 1 : 0);
      },
    });
    const walFrames: Gauge = new Gauge({
      name: 'kmipd_keystore_wal_frames',
      help: 'SQLite keystore: pages in the write-ahead log at the last background checkpoint',
      registers,
      collect: () => {
        walFrames.reset();
        const c = this.sources?.checkpoints();
        if (c) walFrames.set(c.lastLogFrames);
      },
    });
    const backup: Gauge = new Gauge({
      name: 'kmipd_last_backup_timestamp_seconds',
      help: 'when `kmipd backup` last succeeded, Unix time (0: never recorded, so that an alert on its age fires)',
      registers,
      collect: async () => {
        backup.reset();
        try {
          const at = await this.sources?.lastBackup();
          if (at !== undefined) backup.set(Math.floor(at.getTime() / 1000));
        } catch {
          // the keystore is not readable now: /readyz says so; the metric is left out
        }
      },
    });
  }

  /** Connects the scrape-time metrics to a running server. */
  attach(sources: MetricsSources): void {
    this.sources = sources;
  }

  private async counts(): Promise<{ objectType: number; state: number; n: number }[]> {
    const cached = this.objectCounts;
    if (cached && this.clock() - cached.at < OBJECT_COUNT_TTL_MS) return cached.rows;
    const src = this.sources;
    if (!src) return [];
    this.countsInFlight ??= src
      .countObjects()
      .then((rows) => {
        this.objectCounts = { at: this.clock(), rows };
      })
      .catch(() => {
        // keep the last counts; the keystore's trouble shows in /readyz and kmipd_keystore_errors_total
      })
      .finally(() => {
        this.countsInFlight = undefined;
      });
    await this.countsInFlight;
    return this.objectCounts?.rows ?? [];
  }

  /** The text exposition for /metrics. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  executed(items: readonly ExecutedItem[]): void {
    for (const it of items) {
      const operation = boundedOperation(it.operation);
      const result = RESULTS.has(it.result) ? it.result : 'other';
      this.requests.inc({ operation, result, reason: boundedReason(it.reason) });
      this.latency.observe({ operation }, it.seconds);
    }
  }

  handshake(outcome: 'ok' | 'no-certificate' | 'refused' | Error): void {
    if (outcome === 'ok') {
      this.handshakes.inc({ result: 'accepted' });
      return;
    }
    this.handshakes.inc({ result: 'failed' });
    this.handshakeFailures.inc({ reason: handshakeFailureReason(outcome) });
  }

  connectionRefused(reason: ConnectionRefusalReason): void {
    this.connectionsRefused.inc({ reason: (CONNECTION_REFUSAL_REASONS as readonly string[]).includes(reason) ? reason : 'other' });
  }

  /** The keystore as the executor should use it: every call timed, failures counted. */
  instrumentStore(store: KeyStore): KeyStore {
    return new Proxy(store, {
      get: (target, prop) => {
        const v: unknown = Reflect.get(target, prop, target);
        if (typeof v !== 'function' || typeof prop !== 'string' || !STORE_METHODS.has(prop)) return v;
        const method = prop;
        return (...args: unknown[]): unknown => {
          const t0 = performance.now();
          const done = (ok: boolean, e?: unknown): void => {
            this.storeLatency.observe({ method }, (performance.now() - t0) / 1000);
            if (!ok) {
              const name = e instanceof Error ? e.name : 'other';
              this.storeErrors.inc({ method, error: STORE_ERRORS.has(name) ? name : 'other' });
            }
          };
          let r: unknown;
          try {
            r = (v as (...a: unknown[]) => unknown).apply(target, args);
          } catch (e) {
            done(false, e);
            throw e;
          }
          if (r instanceof Promise) {
            return r.then(
              (x: unknown) => {
                done(true);
                return x;
              },
              (e: unknown) => {
                done(false, e);
                throw e;
              },
            );
          }
          done(true);
          return r;
        };
      },
    });
  }

  /** The part of the observer the metrics implement. */
  observer(): Required<Pick<ServerObserver, 'executed' | 'handshake' | 'connectionRefused' | 'auditFailed' | 'instrumentStore'>> {
    return {
      executed: (items) => this.executed(items),
      handshake: (o) => this.handshake(o),
      connectionRefused: (r) => this.connectionRefused(r),
      auditFailed: () => this.auditFailures.inc(),
      instrumentStore: (s) => this.instrumentStore(s),
    };
  }
}
