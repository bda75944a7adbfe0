/**
 * Readiness: can this server answer KMIP requests correctly right now?
 *
 *   keystore           a probe meta key written and read back (the database takes writes)
 *   masterKey          the canary reproduced by the master key, and a wrap/unwrap round trip
 *                      (for PKCS#11 this is a real operation in the HSM)
 *   serverCertificate  the certificate being served is within its validity
 *   migrations         the keystore's schema is one this build serves: the version it knows, or
 *                      one compatible version ahead (a rolling upgrade in progress); not ready
 *                      when another node migrated it beyond that, or it has pending migrations
 *
 * Each check has a deadline (a hung database or HSM fails the check instead of hanging the
 * probe). Results are reused for a second and concurrent probes share one run, so a load
 * balancer probing every second costs one keystore write per second at most. The log gets a
 * line only when a check changes state, never per probe.
 */
import { hostname } from 'node:os';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { META_MASTER_ID, checkCanary, type MasterKeyProvider } from '../crypto/masterkey.js';
import { LATEST_SCHEMA_VERSION, SCHEMA_VERSION_KEY } from '../keystore/migrations.js';
import { PG_LATEST_SCHEMA_VERSION } from '../keystore/postgres-migrations.js';
import { isSchemaAware } from '../keystore/nodes.js';
import type { KeyStore } from '../keystore/types.js';
import { VERSION } from '../version.js';
import { validNow } from './certs.js';
import { PROBE_PREFIX } from './meta-keys.js';

export interface CheckResult {
  ok: boolean;
  /** How long the check took. */
  ms: number;
  detail?: string;
  error?: string;
}

export interface HealthReport {
  status: 'ok' | 'fail';
  version: string;
  time: string;
  checks: Record<string, CheckResult>;
}

export interface HealthTarget {
  store: KeyStore;
  master: MasterKeyProvider;
  /** The server certificate served now (PEM). */
  serverCertPem(): string;
}

export interface HealthOptions {
  timeoutMs?: number;
  cacheMs?: number;
  clock?: () => Date;
}

class Timeout extends Error {}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`${what} did not answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export function latestSchemaVersion(backend: string): number | undefined {
  if (backend === 'sqlite') return LATEST_SCHEMA_VERSION;
  if (backend === 'postgres') return PG_LATEST_SCHEMA_VERSION;
  return undefined;
}

export class HealthChecker {
  private readonly timeoutMs: number;
  private readonly cacheMs: number;
  private readonly clock: () => Date;
  private readonly probeKey = `${PROBE_PREFIX}${hostname().slice(0, 64) || 'kmipd'}`;
  private cached: { at: number; report: HealthReport } | undefined;
  private running: Promise<HealthReport> | undefined;
  private readonly lastState = new Map<string, boolean>();

  constructor(
    private readonly target: HealthTarget,
    private readonly log: Logger,
    opts: HealthOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.cacheMs = opts.cacheMs ?? 1000;
    this.clock = opts.clock ?? (() => new Date());
  }

  /** The current report (at most `cacheMs` old). */
  report(): Promise<HealthReport> {
    const now = Date.now();
    if (this.cached && now - this.cached.at < this.cacheMs) return Promise.resolve(this.cached.report);
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async run(): Promise<HealthReport> {
    const checks: Record<string, CheckResult> = {};
    const defs: [string, () => Promise<string | undefined>][] = [
      ['keystore', () => this.keystore()],
      ['masterKey', () => this.masterKey()],
      ['serverCertificate', () => this.serverCertificate()],
      ['migrations', () => this.migrations()],
    ];
    await Promise.all(
      defs.map(async ([name, fn]) => {
        const t0 = performance.now();
        try {
          const detail = await withDeadline(fn(), this.timeoutMs, name);
          checks[name] = { ok: true, ms: round(performance.now() - t0), ...(detail !== undefined ? { detail } : {}) };
        } catch (e) {
          checks[name] = { ok: false, ms: round(performance.now() - t0), error: errorText(e) };
        }
      }),
    );
    const ordered: Record<string, CheckResult> = {};
    for (const [name] of defs) ordered[name] = checks[name]!;
    const report: HealthReport = {
      status: Object.values(ordered).every((c) => c.ok) ? 'ok' : 'fail',
      version: VERSION,
      time: this.clock().toISOString(),
      checks: ordered,
    };
    this.noteChanges(report);
    this.cached = { at: Date.now(), report };
    return report;
  }

  private noteChanges(r: HealthReport): void {
    for (const [name, c] of Object.entries(r.checks)) {
      const before = this.lastState.get(name);
      if (before === c.ok) continue;
      this.lastState.set(name, c.ok);
      if (!c.ok) this.log.warn({ check: name, err: c.error }, `readiness: ${name} failing: ${c.error ?? ''}`);
      else if (before === false) this.log.info({ check: name }, `readiness: ${name} ok again`);
    }
    const ready = r.status === 'ok';
    const before = this.lastState.get('*');
    if (before !== ready) {
      this.lastState.set('*', ready);
      if (before !== undefined || !ready) this.log[ready ? 'info' : 'warn'](ready ? 'ready' : 'not ready');
    }
  }

  private async keystore(): Promise<string | undefined> {
    const nonce = `${this.clock().toISOString()} ${randomBytes(8).toString('hex')}`;
    await this.target.store.setMeta(this.probeKey, nonce);
    const back = await this.target.store.getMeta(this.probeKey);
    if (back !== nonce) throw new Error('the probe value read back differs from the one written');
    return `${this.target.store.backend}: write and read ok`;
  }

  private async masterKey(): Promise<string | undefined> {
    const m = this.target.master;
    // After `kmipd master rotate|migrate` in another process the keystore's canary belongs to
    // the new master key version, while this server keeps working with the root keys it holds
    // (and opens the new version when it needs it): only a canary recorded for this very key
    // is compared.
    const dataKeyId = await this.target.store.getMeta(META_MASTER_ID);
    const canary = dataKeyId === undefined || dataKeyId === m.keyId ? await checkCanary(m, this.target.store) : 'moved';
    const probe = randomBytes(32);
    const wrapped = await m.wrap(probe);
    const back = await m.unwrap(wrapped);
    const same = back.length === probe.length && timingSafeEqual(back, probe);
    back.fill(0);
    if (!same) throw new Error('a wrap/unwrap round trip with the master key returned other bytes');
    const note = canary === 'verified' ? 'canary verified, ' : canary === 'moved' ? `the keystore is under master key ${dataKeyId ?? '?'} now (used when needed), ` : '';
    return `${m.kind}:${m.keyId}: ${note}wrap/unwrap ok`;
  }

  private serverCertificate(): Promise<string | undefined> {
    const v = validNow(this.target.serverCertPem(), this.clock());
    if (!v.ok) return Promise.reject(new Error(`the server certificate ${v.reason ?? 'is not valid'}`));
    return Promise.resolve(`valid until ${v.notAfter.toISOString()}`);
  }

  private async migrations(): Promise<string | undefined> {
    const store = this.target.store;
    if (isSchemaAware(store)) {
      const r = await store.schemaReport();
      if (r.state === 'current') return `schema version ${r.current}`;
      if (r.state === 'compatible-newer') return `schema version ${r.current}, one compatible version ahead of this kmipd (${r.known}): upgrade this node`;
      throw new Error(r.problem ?? `the keystore schema is at version ${r.current}, this kmipd needs ${r.known}`);
    }
    const latest = latestSchemaVersion(this.target.store.backend);
    const v = Number(await this.target.store.getMeta(SCHEMA_VERSION_KEY));
    if (latest === undefined) return `schema version ${v}`;
    if (v !== latest) throw new Error(`the keystore schema is at version ${v}, this kmipd needs ${latest}`);
    return `schema version ${v}`;
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function errorText(e: unknown): string {
  if (e instanceof Error) return `${e.name === 'Error' || e instanceof Timeout ? '' : `${e.name}: `}${e.message}`;
  return String(e);
}
