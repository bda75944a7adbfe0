/**
 * Reload without restart (SIGHUP, `systemctl reload kmipd`): the server certificate and key, the
 * trust store, the log level, the trusted upstream key servers (`upstreams`: who may send Put and
 * Notify), and the log file (reopened, for logrotate).
 *
 * All or nothing: everything new is read and checked first (the certificate pair belongs
 * together, was issued by the kmipd CA and is within its validity; the trust store parses; the
 * configuration is valid); only then is anything applied. On any problem nothing changes, the
 * old certificate keeps serving and the log says why. Open connections and their TLS sessions
 * are kept; new handshakes use what was loaded.
 *
 * The audit log needs no reopening: it checks its file before every write and follows a rename
 * (src/audit/log.ts). The watcher of src/server/trust-reload.ts keeps applying trust and
 * certificate changes by itself within seconds; a reload applies them at once, and checks them as
 * one.
 */
import type { Logger } from 'pino';
import { loadServerPair } from '../pki/rotate.js';
import { loadTrustSnapshot } from '../pki/trust.js';
import type { RunningServer } from '../server/server.js';
import type { LogLevel, ServerSettings } from '../config/settings.js';
import { validNow } from './certs.js';

export interface Reopenable {
  reopen(): void;
}

export interface ReloadTarget {
  server: RunningServer;
  log: Logger;
  /** The settings as they are now (flags and environment as at start, kmipd.json re-read). */
  settings?: () => ServerSettings;
  /** The log file, when logging to one. */
  logDestination?: Reopenable;
  /** Called after a successful reload (e.g. the admin listener takes the new certificate). */
  afterApply?: () => void;
}

export interface ReloadResult {
  ok: boolean;
  /** Why nothing was applied. */
  error?: string;
  serverCertificate: boolean;
  trust: boolean;
  logLevel?: { from: string; to: LogLevel };
  /** The trusted upstreams, when the reload changed them. */
  upstreams?: { from: string[]; to: string[] };
  logReopened: boolean;
}

/** Re-reads, checks, then applies; never throws. */
export function reloadServer(t: ReloadTarget): ReloadResult {
  const result: ReloadResult = { ok: false, serverCertificate: false, trust: false, logReopened: false };
  const { state, trust } = t.server;
  const log = t.log;
  // ---- 1. read and check everything ----
  let level: LogLevel | undefined;
  let upstreams: string[] | undefined;
  try {
    if (t.settings) {
      const s = t.settings();
      level = s.logLevel;
      upstreams = s.upstreams;
    }
  } catch (e) {
    return fail(result, log, `the configuration is not valid: ${(e as Error).message}`);
  }
  try {
    const pair = loadServerPair(state.dir, state.pki.caCertPem);
    const v = validNow(pair.certPem);
    if (!v.ok) throw new Error(`the certificate ${v.reason ?? 'is not valid'}`);
  } catch (e) {
    return fail(result, log, `the server certificate in ${state.dir}/pki cannot be used: ${(e as Error).message}`);
  }
  try {
    loadTrustSnapshot(state.dir, state.pki.caCertPem);
  } catch (e) {
    return fail(result, log, `the trust store cannot be loaded: ${(e as Error).message}`);
  }
  // ---- 2. apply ----
  const applied = trust.check();
  result.serverCertificate = applied.serverCert;
  result.trust = applied.trust;
  if (level !== undefined && level !== log.level) {
    result.logLevel = { from: log.level, to: level };
    log.level = level;
  }
  const executor = t.server.executor;
  if (upstreams !== undefined && upstreams.join('\n') !== executor.upstreams.join('\n')) {
    result.upstreams = { from: [...executor.upstreams], to: upstreams };
    executor.upstreams = upstreams;
  }
  if (t.logDestination) {
    try {
      t.logDestination.reopen();
      result.logReopened = true;
    } catch (e) {
      log.error({ err: (e as Error).message }, 'reload: cannot reopen the log file; logging continues to the old one');
    }
  }
  try {
    t.afterApply?.();
  } catch (e) {
    log.error({ err: (e as Error).message }, 'reload: a listener did not take the new settings');
  }
  result.ok = true;
  log.info(
    {
      serverCertificate: result.serverCertificate ? 'reloaded' : 'unchanged',
      trust: result.trust ? 'reloaded' : 'unchanged',
      logLevel: result.logLevel ? `${result.logLevel.from} -> ${result.logLevel.to}` : 'unchanged',
      upstreams: result.upstreams ? result.upstreams.to : 'unchanged',
      logFile: result.logReopened ? 'reopened' : 'standard output',
    },
    'reloaded',
  );
  return result;
}

function fail(r: ReloadResult, log: Logger, why: string): ReloadResult {
  r.error = why;
  log.error({ err: why }, 'reload refused; nothing was changed, the current certificate and settings stay in use');
  return r;
}
