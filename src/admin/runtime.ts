/**
 * The operations side of a running server, in one place: metrics, last-use tracking, the admin
 * listener, certificate expiry warnings, and reloads. `kmipd serve` uses it; tests use it with an
 * in-process server:
 *
 *   const ops = new Operations({ log, settings });
 *   const server = await startServer({ ..., observer: ops.observer });
 *   await ops.attach(server);
 *   ...
 *   ops.reload();                       // SIGHUP
 *   await ops.stop(server);             // before server.stop()
 */
import type { Logger } from 'pino';
import type { ServerSettings } from '../config/settings.js';
import type { ExecutedItem } from '../server/executor.js';
import type { RunningServer, ServerObserver } from '../server/server.js';
import { type CertRecord, ExpiryWarner, certificateInventory } from './certs.js';
import { HealthChecker } from './health.js';
import { AdminListener } from './http.js';
import { META_LAST_BACKUP } from './meta-keys.js';
import { Metrics } from './metrics.js';
import { type ReloadResult, type Reopenable, reloadServer } from './reload.js';
import { UsageTracker } from './usage.js';

/** How often certificate expiry is looked at by a running server. */
export const EXPIRY_CHECK_MS = 3_600_000;
/** How often the admin listener looks for a new server certificate (besides reloads). */
const ADMIN_TLS_POLL_MS = 5000;

export interface OperationsOptions {
  log: Logger;
  settings: ServerSettings;
  /** Re-reads the settings on reload (same flags and environment, kmipd.json as it is now). */
  reloadSettings?: () => ServerSettings;
  logDestination?: Reopenable;
  /** Readiness check tuning (tests). */
  health?: ConstructorParameters<typeof HealthChecker>[2];
}

export class Operations {
  readonly metrics = new Metrics();
  readonly observer: ServerObserver;
  usage: UsageTracker | undefined;
  admin: AdminListener | undefined;
  health: HealthChecker | undefined;
  private server: RunningServer | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private adminTimer: NodeJS.Timeout | undefined;
  private readonly warner: ExpiryWarner;
  private settings: ServerSettings;

  constructor(private readonly opts: OperationsOptions) {
    this.settings = opts.settings;
    this.warner = new ExpiryWarner(opts.log);
    const m = this.metrics.observer();
    this.observer = {
      ...m,
      executed: (items: readonly ExecutedItem[]) => {
        m.executed(items);
        this.usage?.noteItems(items);
      },
    };
  }

  /** Starts what needs the running server: usage flushing, metrics sources, admin listener, expiry warnings. */
  async attach(server: RunningServer): Promise<void> {
    this.server = server;
    const { state, trust, listener } = server;
    const log = this.opts.log;
    if (this.settings.usage.flushSeconds > 0) {
      this.usage = new UsageTracker(state.store, { flushSeconds: this.settings.usage.flushSeconds, log, onFlushError: () => this.metrics.usageFlushFailures.inc() });
    }
    this.metrics.attach({
      connections: () => listener.connections,
      countObjects: () => state.store.count(),
      certificates: () => this.certificates().map((c) => ({ kind: c.kind, name: c.name, notAfter: c.notAfter })),
      checkpoints: () => state.checkpoints(),
      lastBackup: async () => {
        const v = await state.store.getMeta(META_LAST_BACKUP);
        const d = v === undefined ? undefined : new Date(v);
        return d && !Number.isNaN(d.getTime()) ? d : undefined;
      },
    });
    this.health = new HealthChecker({ store: state.store, master: state.master, serverCertPem: () => trust.tlsOptions().cert }, log, this.opts.health);
    const a = this.settings.admin;
    if (a.port !== undefined) {
      const admin = new AdminListener({
        host: a.host,
        port: a.port,
        clients: a.clients,
        tls: () => {
          const t = trust.tlsOptions();
          return { cert: t.cert, key: t.key };
        },
        caPem: state.pki.caCertPem,
        handlers: { health: () => this.health!.report(), metrics: () => this.metrics.text() },
        log,
      });
      await admin.listen();
      this.admin = admin;
      this.adminTimer = setInterval(() => admin.reloadTls(), ADMIN_TLS_POLL_MS);
      this.adminTimer.unref();
    }
    this.checkExpiry();
    this.expiryTimer = setInterval(() => this.checkExpiry(), EXPIRY_CHECK_MS);
    this.expiryTimer.unref();
  }

  /** The certificates of the running server (the served server certificate included). */
  certificates(): CertRecord[] {
    const s = this.server;
    if (!s) return [];
    return certificateInventory(s.state.dir, { serverCertPem: s.trust.tlsOptions().cert }).certs;
  }

  /** Logs certificates within 30, 7, 1 days of expiry (once per threshold). */
  checkExpiry(now: Date = new Date()): string[] {
    try {
      return this.warner.check(this.certificates(), now);
    } catch (e) {
      this.opts.log.warn({ err: (e as Error).message }, 'cannot check certificate expiry');
      return [];
    }
  }

  /** SIGHUP: see src/admin/reload.ts. */
  reload(): ReloadResult {
    const server = this.server;
    if (!server) return { ok: false, error: 'the server is not running', serverCertificate: false, trust: false, logReopened: false };
    const target: Parameters<typeof reloadServer>[0] = {
      server,
      log: this.opts.log,
      afterApply: () => {
        this.admin?.reloadTls();
        this.checkExpiry();
      },
    };
    const rs = this.opts.reloadSettings;
    if (rs) {
      target.settings = () => {
        const s = rs();
        this.settings = { ...this.settings, logLevel: s.logLevel };
        return s;
      };
    }
    if (this.opts.logDestination) target.logDestination = this.opts.logDestination;
    const r = reloadServer(target);
    this.metrics.reloads.inc({ result: r.ok ? 'ok' : 'refused' });
    return r;
  }

  /**
   * Before `server.stop()`: closes the admin listener, stops taking KMIP connections (requests
   * in flight finish), then writes the pending last-use times while the keystore is still open.
   */
  async stop(server: RunningServer | undefined = this.server): Promise<void> {
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    if (this.adminTimer) clearInterval(this.adminTimer);
    this.expiryTimer = this.adminTimer = undefined;
    await this.admin?.close();
    this.admin = undefined;
    if (server) await server.listener.close();
    await this.usage?.close();
  }
}
