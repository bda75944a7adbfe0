/**
 * `kmipd doctor --data DIR`: what an operator would check by hand, as a checklist with fixes.
 *
 * It writes nothing: the SQLite keystore is opened read-only (also while the server runs), the
 * master key only wraps the canary value in memory. (A PostgreSQL keystore is opened the way the
 * server opens it.) Checks that depend on an earlier one are skipped when it failed.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import tls from 'node:tls';
import Database from 'better-sqlite3';
import { checkConfig } from '../config/load.js';
import { exportSecrets } from '../config/secrets.js';
import type { ServerSettings } from '../config/settings.js';
import { META_MASTER_ID, WrongMasterKeyError, checkCanary, type MasterKeyProvider } from '../crypto/masterkey.js';
import { LATEST_SCHEMA_VERSION, SCHEMA_VERSION_KEY } from '../keystore/migrations.js';
import type { KeyStore } from '../keystore/types.js';
import { loadServerPair } from '../pki/rotate.js';
import { loadCa, pkiPaths } from '../pki/store.js';
import { ekuRefusal, loadTrustSnapshot } from '../pki/trust.js';
import { MANIFEST, readManifest, type Manifest } from '../server/datadir.js';
import { openMasterConfig, selectMasterConfig } from '../server/master-versions.js';
import { pkcs11Pin } from '../server/server.js';
import { openKeyStore } from '../server/store.js';
import { certificateInventory } from './certs.js';
import { latestSchemaVersion } from './health.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface DoctorCheck {
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export interface DoctorReport {
  dir: string;
  checks: DoctorCheck[];
  ok: boolean;
}

export interface DoctorOptions {
  env?: NodeJS.ProcessEnv;
  now?: Date;
  /** How long to wait for a TLS answer from a port in use. */
  probeTimeoutMs?: number;
}

const SKEW_MS = 5 * 60_000;

/** The meta rows of a keystore, read-only. */
interface MetaReader {
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;
  newestChange(): Promise<number | undefined>;
  close(): Promise<void>;
}

function sqliteReader(file: string): { reader: MetaReader; quickCheck: string; schema: number } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const rows = db.pragma('quick_check') as { quick_check: string }[];
    const quickCheck = rows.map((r) => r.quick_check).join('; ');
    const meta = db.prepare('SELECT value FROM meta WHERE key = ?');
    const schema = Number((meta.get(SCHEMA_VERSION_KEY) as { value: string } | undefined)?.value ?? NaN);
    const reader: MetaReader = {
      getMeta: (k) => Promise.resolve((meta.get(k) as { value: string } | undefined)?.value),
      setMeta: () => Promise.reject(new Error('read-only')),
      newestChange: () => Promise.resolve((db.prepare('SELECT max(updated_at) AS t FROM objects').get() as { t: number | null }).t ?? undefined),
      close: () => {
        db.close();
        return Promise.resolve();
      },
    };
    return { reader, quickCheck, schema };
  } catch (e) {
    db.close();
    throw e;
  }
}

function storeReader(store: KeyStore): MetaReader {
  return {
    getMeta: (k) => store.getMeta(k),
    setMeta: () => Promise.reject(new Error('read-only')),
    newestChange: () => Promise.resolve(undefined),
    close: () => store.close(),
  };
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

function octal(m: number): string {
  return `0${m.toString(8)}`;
}

/** Whether `host:port` can be bound now: 'free', 'in-use', or an error text. */
function tryBind(host: string, port: number): Promise<'free' | 'in-use' | string> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => res(e.code === 'EADDRINUSE' ? 'in-use' : `${e.code ?? ''} ${e.message}`.trim()));
    s.listen({ host, port, exclusive: true }, () => s.close(() => res('free')));
  });
}

/** The certificate a TLS server on `host:port` presents, if it answers TLS. */
function peerCertificate(host: string, port: number, timeoutMs: number): Promise<X509Certificate | undefined> {
  return new Promise((res) => {
    const target = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    const s = tls.connect({ host: target, port, rejectUnauthorized: false, servername: 'localhost', minVersion: 'TLSv1.3' });
    const done = (c: X509Certificate | undefined): void => {
      clearTimeout(timer);
      s.destroy();
      res(c);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    s.once('secureConnect', () => done(s.getPeerX509Certificate() ?? undefined));
    s.once('error', () => done(undefined));
  });
}

export async function runDoctor(dirArg: string, opts: DoctorOptions = {}): Promise<DoctorReport> {
  const env = opts.env ?? process.env;
  const now = opts.now ?? new Date();
  const dir = resolve(dirArg);
  const checks: DoctorCheck[] = [];
  const add = (name: string, status: CheckStatus, detail: string, fix?: string): void => {
    checks.push(fix !== undefined ? { name, status, detail, fix } : { name, status, detail });
  };
  const report = (): DoctorReport => ({ dir, checks, ok: checks.every((c) => c.status !== 'fail') });
  /** Runs a group of checks; anything unexpected becomes a failure of `name`, not a crash. */
  const guard = async (name: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      add(name, 'fail', `cannot be checked: ${(e as Error).message}`);
    }
  };

  // ---- data directory --------------------------------------------------------------------------
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    add('data directory', 'fail', `${dir} does not exist or is not a directory`, `give the right --data, or create one with \`kmipd serve --data ${dirArg}\``);
    return report();
  }
  {
    const m = mode(dir);
    const st = statSync(dir);
    const uid = process.getuid?.();
    const problems: string[] = [];
    const fixes: string[] = [];
    // Open to every user: a failure; to the group: a warning.
    const world = (m & 0o007) !== 0;
    if ((m & 0o077) !== 0) {
      problems.push(`mode ${octal(m)} lets ${world ? 'every user' : 'its group'} in`);
      fixes.push(`chmod 700 ${dir}`);
    }
    if (uid !== undefined && st.uid !== uid) {
      problems.push(`owned by uid ${st.uid}, this is uid ${uid}`);
      fixes.push(`run as the user that owns it, or chown -R <kmipd user> ${dir}`);
    }
    try {
      accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
    } catch {
      problems.push('not readable and writable by this user');
    }
    if (problems.length > 0) add('data directory', world || problems.some((p) => p.startsWith('not')) ? 'fail' : 'warn', `${dir}: ${problems.join('; ')}`, fixes.join('; ') || undefined);
    else add('data directory', 'ok', `${dir}, mode ${octal(m)}`);
  }

  // ---- manifest and configuration ----------------------------------------------------------------
  if (!existsSync(join(dir, MANIFEST))) {
    add('manifest', 'fail', `no ${MANIFEST} in ${dir}: not a kmipd data directory`, `run \`kmipd serve --data ${dirArg}\` once to create one, or give the right --data`);
    return report();
  }
  const cfg = checkConfig(dir, env);
  let manifest: Manifest | undefined;
  try {
    manifest = readManifest(dir);
  } catch {
    manifest = undefined;
  }
  if (cfg.errors.length > 0) add('manifest and configuration', 'fail', cfg.errors.join('; '), `fix ${join(dir, MANIFEST)} or the environment; \`kmipd config check --data ${dirArg}\` lists every problem`);
  else if (cfg.warnings.length > 0) add('manifest and configuration', 'warn', cfg.warnings.join('; '));
  else add('manifest and configuration', 'ok', `${MANIFEST} valid (data format ${manifest?.format ?? '?'})`);
  if (!manifest) return report();
  try {
    exportSecrets(dir, cfg.loaded?.raw, env);
  } catch (e) {
    add('secrets', 'fail', (e as Error).message, 'make the secret file readable by the kmipd user');
  }
  const settings: ServerSettings | undefined = cfg.loaded?.settings;

  // ---- private files -----------------------------------------------------------------------------
  {
    const p = pkiPaths(dir);
    const files = [p.caKey, p.serverKey];
    if (manifest.master.kind === 'software') files.push(join(dir, manifest.master.file));
    if (manifest.keystore.kind === 'sqlite') {
      const ks = join(dir, manifest.keystore.file);
      files.push(ks, `${ks}-wal`, `${ks}-shm`);
    }
    const present = files.filter((f) => existsSync(f));
    // Readable by anyone: a failure (a key to copy). Readable by the group: a warning.
    const world = present.filter((f) => (mode(f) & 0o007) !== 0);
    const group = present.filter((f) => (mode(f) & 0o070) !== 0 && !world.includes(f));
    const text = (l: string[]): string => l.map((f) => `${f} has mode ${octal(mode(f))}`).join('; ');
    if (world.length > 0) add('private files', 'fail', `other users can read or change them: ${text(world)}${group.length ? `; ${text(group)}` : ''}`, `chmod 600 ${[...world, ...group].join(' ')}`);
    else if (group.length > 0) add('private files', 'warn', text(group), `chmod 600 ${group.join(' ')}`);
    else add('private files', 'ok', 'private keys, master key and keystore are readable by their owner only');
  }

  // ---- keystore ----------------------------------------------------------------------------------
  let reader: MetaReader | undefined;
  const ks = manifest.keystore;
  if (ks.kind === 'sqlite') {
    const file = join(dir, ks.file);
    if (!existsSync(file)) {
      add('keystore', 'fail', `${file} does not exist`, 'restore it from a backup (`kmipd restore`); without it the keys are gone');
    } else {
      try {
        const r = sqliteReader(file);
        reader = r.reader;
        if (r.quickCheck !== 'ok') {
          add('keystore', 'fail', `PRAGMA quick_check: ${r.quickCheck.slice(0, 300)}`, 'stop the server, restore the keystore from the last backup (`kmipd restore`)');
          await r.reader.close();
          reader = undefined; // nothing read from a damaged database is worth checking against
        }
        else if (r.schema > LATEST_SCHEMA_VERSION) add('keystore', 'fail', `schema version ${r.schema} is newer than this kmipd (${LATEST_SCHEMA_VERSION})`, 'upgrade kmipd');
        else if (r.schema < LATEST_SCHEMA_VERSION) {
          add('keystore', 'warn', `schema version ${r.schema}; this kmipd's is ${LATEST_SCHEMA_VERSION}`, `run \`kmipd migrate --data ${dir}\` (--dry-run shows what it does); migrations marked automatic are applied when the server starts`);
        }
        else add('keystore', 'ok', `${file}: integrity check ok, schema version ${r.schema}`);
      } catch (e) {
        add('keystore', 'fail', `${file} cannot be opened: ${(e as Error).message}`, 'check its permissions; restore it from a backup if it is damaged');
      }
    }
  } else {
    try {
      const store = await openKeyStore(dir, ks);
      reader = storeReader(store);
      const v = Number(await store.getMeta(SCHEMA_VERSION_KEY));
      add('keystore', 'ok', `PostgreSQL reachable, schema version ${v}${latestSchemaVersion('postgres') === v ? '' : ' (not the latest)'}`);
    } catch (e) {
      const name = (e as Error).name;
      if (name === 'PendingMigrationError' || name === 'UnsupportedSchemaError') add('keystore', 'fail', (e as Error).message, `\`kmipd migrate --data ${dir} --dry-run\` lists the migrations`);
      else add('keystore', 'fail', `the PostgreSQL keystore cannot be reached: ${(e as Error).message}`, 'check the database, the URL in kmipd.json and the password (PGPASSWORD, KMIPD_DB_PASSWORD_FILE or keystore.passwordFile)');
    }
  }

  try {
    // ---- master key (and the HSM) ----------------------------------------------------------------
    if (!reader) {
      add('master key', 'skip', 'needs a readable keystore');
    } else {
      await guard('master key', async () => {
        const sel = selectMasterConfig(manifest, await reader.getMeta(META_MASTER_ID));
        const isHsm = sel.config.kind === 'pkcs11';
        let master: MasterKeyProvider | undefined;
        try {
          master = await openMasterConfig(dir, sel.config, { pin: (c) => pkcs11Pin(dir, c) });
        } catch (e) {
          if (isHsm) add('HSM', 'fail', `cannot open the master key in the HSM: ${(e as Error).message}`, 'check that the HSM (or its network) is up, the PKCS#11 module path, the token label and the PIN');
          else add('master key', 'fail', (e as Error).message, 'restore the master key file from its backup (mode 0600); without it the keys cannot be opened');
        }
        if (master) {
          // A test wrap and unwrap of random bytes: with an HSM, real operations on the token.
          let roundTrip: string | undefined;
          try {
            const probe = randomBytes(32);
            const back = await master.unwrap(await master.wrap(probe));
            if (!back.equals(probe)) roundTrip = 'the unwrapped bytes differ from those wrapped';
          } catch (e) {
            roundTrip = (e as Error).message;
          }
          const token = sel.config.kind === 'pkcs11' ? sel.config.token : '';
          if (roundTrip !== undefined) {
            add(isHsm ? 'HSM' : 'master key', 'fail', `a test wrap/unwrap round trip failed: ${roundTrip}`, isHsm ? 'check the HSM (its log, its sessions, the key object); `kmipd master status`' : undefined);
          } else if (isHsm) {
            add('HSM', 'ok', `token "${token}": logged in, master key found, test wrap/unwrap round trip ok`);
          }
          try {
            const r = await checkCanary(master, reader);
            if (r === 'verified') add('master key', 'ok', `${master.kind}:${master.keyId} reproduces the keystore's canary`);
            else add('master key', 'warn', 'the keystore has no canary yet (the server records one when it starts)');
          } catch (e) {
            if (e instanceof WrongMasterKeyError) add('master key', 'fail', e.message, 'put back the master key this keystore was created with (a backup of the key file, or the right HSM token/label)');
            else add('master key', 'fail', (e as Error).message);
          } finally {
            await master.close();
          }
        }
      });
    }

    // ---- certificates ------------------------------------------------------------------------------
    let pairOk = false;
    await guard('certificates', async () => {
      try {
        const ca = loadCa(dir);
        loadServerPair(dir, ca.certPem);
        pairOk = true;
      } catch (e) {
        add('certificates', 'fail', (e as Error).message, 'restore DIR/pki from a backup, or issue a new server certificate with `kmipd cert rotate-server` (vCenter must then re-approve it)');
      }
      if (pairOk) {
        const inv = certificateInventory(dir, { now });
        const expired = inv.certs.filter((c) => c.notAfter.getTime() <= now.getTime());
        const soon = inv.certs.filter((c) => c.notAfter.getTime() > now.getTime() && c.daysLeft < 30);
        const fixFor = (kind: string): string =>
          kind === 'server' ? '`kmipd cert rotate-server` (then re-approve it in vCenter)' : kind === 'ca' ? 'plan a new CA: every client certificate and the server certificate must be re-issued' : 'add the renewed certificate with `kmipd trust add-ca` / `add-cert`, then remove the old one';
        if (expired.length > 0) {
          add('certificates', 'fail', expired.map((c) => `${c.kind} ${c.name} expired on ${c.notAfter.toISOString()}`).join('; '), [...new Set(expired.map((c) => fixFor(c.kind)))].join('; '));
        } else if (soon.length > 0) {
          add('certificates', 'warn', soon.map((c) => `${c.kind} ${c.name} expires in ${c.daysLeft} day(s) (${c.notAfter.toISOString()})`).join('; '), [...new Set(soon.map((c) => fixFor(c.kind)))].join('; '));
        } else {
          const first = [...inv.certs].sort((a, b) => a.notAfter.getTime() - b.notAfter.getTime())[0];
          add('certificates', 'ok', `${inv.certs.length} certificate(s); the first to expire: ${first ? `${first.kind} ${first.name} in ${first.daysLeft} days` : '-'}`);
        }
        for (const p of inv.problems) add('certificates', 'fail', p);
      }
    });

    // ---- trust store -------------------------------------------------------------------------------
  try {
    const snap = loadTrustSnapshot(dir, loadCa(dir).certPem, now);
    // A pinned certificate the server would refuse anyway (the index edited by hand, or restored).
    const refused = [...snap.pins.values()].flatMap((p) => {
      const why = ekuRefusal(p.cert);
      return why ? [`pinned certificate ${p.name}: ${why}`] : [];
    });
    const notCa = snap.anchors.filter((a) => !a.cert.ca).map((a) => `trusted CA ${a.name} is not a CA certificate (basicConstraints CA:true missing): no client chains to it`);
    const problems = [...refused, ...notCa];
    if (problems.length > 0) add('trust store', 'fail', problems.join('; '), 'remove the entry (`kmipd trust remove NAME`) and add the right certificate (`kmipd trust add-cert` / `add-ca`)');
    else add('trust store', 'ok', `kmipd CA + ${snap.anchors.length - 1} trusted CA(s), ${snap.pins.size} pinned certificate(s)`);
  } catch (e) {
    add('trust store', 'fail', (e as Error).message, 'repair DIR/trust/index.json from a backup, or re-add the entries with `kmipd trust add-ca` / `add-cert`');
  }

  // ---- ports -------------------------------------------------------------------------------------
    if (settings) {
      await guard('ports', async () => {
        const ourSha = pairOk ? new X509Certificate(loadServerPair(dir, loadCa(dir).certPem).certPem).fingerprint256 : undefined;
        const ports: [string, string, number][] = [['KMIP port', settings.host, settings.port]];
        if (settings.admin.port !== undefined) ports.push(['admin port', settings.admin.host, settings.admin.port]);
        for (const [name, host, port] of ports) {
          if (port === 0) {
            add(name, 'ok', 'an ephemeral port (0): nothing to check');
            continue;
          }
          const b = await tryBind(host, port);
          if (b === 'free') {
            add(name, 'ok', `${host}:${port} is free (kmipd is not running)`);
            continue;
          }
          if (b !== 'in-use') {
            add(name, 'fail', `${host}:${port} cannot be bound: ${b}`, port < 1024 ? 'ports below 1024 need privileges: use 5696, or AmbientCapabilities=CAP_NET_BIND_SERVICE' : 'check the address (server.host / KMIPD_HOST)');
            continue;
          }
          const peer = await peerCertificate(host, port, opts.probeTimeoutMs ?? 3000);
          if (peer && ourSha !== undefined && peer.fingerprint256 === ourSha) add(name, 'ok', `${host}:${port}: kmipd is running (it serves this directory's server certificate)`);
          else add(name, 'fail', `${host}:${port} is in use by ${peer ? `a TLS server with another certificate (${peer.subject.replace(/\n/g, ', ')})` : 'another program'}`, `stop that program, or choose another port (${name === 'KMIP port' ? 'server.port / --port' : 'server.admin.port / --admin-port'})`);
        }
      });
    }

    // ---- audit trail -------------------------------------------------------------------------------
    const auditDir = join(dir, 'audit');
    if (existsSync(auditDir)) {
      try {
        accessSync(auditDir, constants.W_OK);
        add('audit trail', 'ok', `${auditDir} is writable`);
      } catch {
        add('audit trail', 'fail', `${auditDir} is not writable: every KMIP request would fail`, `chown -R <kmipd user> ${auditDir}`);
      }
    }

    // ---- clock -------------------------------------------------------------------------------------
    {
      const problems: string[] = [];
      const created = new Date(manifest.createdAt);
      if (!Number.isNaN(created.getTime()) && now.getTime() < created.getTime() - SKEW_MS) problems.push(`the clock (${now.toISOString()}) is before the data directory was created (${manifest.createdAt})`);
      try {
        const sc = new X509Certificate(loadServerPair(dir, loadCa(dir).certPem).certPem);
        const nb = new Date(sc.validFrom);
        if (now.getTime() < nb.getTime() - SKEW_MS) problems.push(`the clock is before the server certificate's start of validity (${nb.toISOString()})`);
      } catch {
        // reported above
      }
      const newest = reader ? await reader.newestChange().catch(() => undefined) : undefined;
      if (newest !== undefined && newest > now.getTime() + SKEW_MS) problems.push(`the keystore holds a change dated ${new Date(newest).toISOString()}, after now: the clock went back`);
      if (now.getUTCFullYear() < 2024) problems.push(`the clock says ${now.toISOString()}`);
      if (problems.length > 0) add('clock', 'fail', problems.join('; '), 'set the clock right and keep it synchronised (chrony / systemd-timesyncd): certificates and key dates depend on it');
      else add('clock', 'ok', `${now.toISOString()} is consistent with the data directory`);
    }
  } finally {
    await reader?.close();
  }
  return report();
}

const MARK: Record<CheckStatus, string> = { ok: '[ok]  ', warn: '[warn]', fail: '[FAIL]', skip: '[skip]' };

export function doctorText(r: DoctorReport): string {
  const lines = [`kmipd doctor: ${r.dir}`];
  for (const c of r.checks) {
    lines.push(`  ${MARK[c.status]} ${c.name}: ${c.detail}`);
    if (c.fix !== undefined && c.status !== 'ok') lines.push(`         fix: ${c.fix}`);
  }
  const n = (s: CheckStatus): number => r.checks.filter((c) => c.status === s).length;
  lines.push(`${r.checks.length} checks: ${n('ok')} ok, ${n('warn')} warning(s), ${n('fail')} failure(s)${n('skip') ? `, ${n('skip')} skipped` : ''}`);
  return lines.join('\n') + '\n';
}
