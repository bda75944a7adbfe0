import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { openLogging } from '../admin/logging.js';
import { Operations } from '../admin/runtime.js';
import { addSettingFlags, defaultDataDir, exportSecrets, loadServerConfig, typedFlags } from '../config/index.js';
import { DEFAULT_LIMITS } from '../server/listener.js';
import { startServer } from '../server/server.js';
import { readManifest, type MasterConfig } from '../server/datadir.js';
import { bundlePassphrase, joinFromBundle } from '../server/node-bundle.js';

export const DEFAULT_DATA_DIR = './kmipd-data';

function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

interface ServeFlags {
  data: string;
  host: string;
  port: number;
  san: string[];
  logLevel: string;
  maxMessageSize: number;
  handshakeTimeout: number;
  idleTimeout: number;
  maxConnections: number;
  maxInFlight: number;
  master: 'software' | 'pkcs11';
  pkcs11Module?: string;
  pkcs11Token?: string;
  pkcs11KeyLabel: string;
  hsmMode: 'root' | 'direct';
  store?: string;
  join?: string;
}

/** The master-key choice for a new data directory; the PIN never comes from a flag. */
function masterConfig(f: ServeFlags): MasterConfig | undefined {
  if (f.master === 'software') return undefined;
  if (!f.pkcs11Module || !f.pkcs11Token) throw new InvalidArgumentError('--master pkcs11 needs --pkcs11-module PATH and --pkcs11-token LABEL');
  return { kind: 'pkcs11', module: f.pkcs11Module, token: f.pkcs11Token, keyLabel: f.pkcs11KeyLabel, mode: f.hsmMode };
}

export function register(program: Command): void {
  const serve = program
    .command('serve')
    .description('run the KMIP server (creates the data directory with its PKI, master key and keystore on first run)')
    .option('--data <dir>', 'data directory', DEFAULT_DATA_DIR)
    .option('--host <addr>', 'address to listen on', '0.0.0.0')
    .option('--port <n>', 'KMIP port', intArg('--port', 0, 65535), 5696)
    .option('--san <name>', 'extra subject alternative name for a new server certificate (repeatable)', collect, [])
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default(process.env.KMIPD_LOG_LEVEL ?? 'info'))
    .option('--max-message-size <bytes>', 'largest request accepted', intArg('--max-message-size', 1024, 64 * 1024 * 1024), DEFAULT_LIMITS.maxMessageSize)
    .option('--handshake-timeout <ms>', 'TLS handshake deadline', intArg('--handshake-timeout', 100, 600_000), DEFAULT_LIMITS.handshakeTimeoutMs)
    .option('--idle-timeout <ms>', 'close connections idle this long', intArg('--idle-timeout', 100, 86_400_000), DEFAULT_LIMITS.idleTimeoutMs)
    .option('--max-connections <n>', 'connections open at once', intArg('--max-connections', 1, 1_000_000), DEFAULT_LIMITS.maxConnections)
    .option('--max-in-flight <n>', 'requests executing at once', intArg('--max-in-flight', 1, 100_000), DEFAULT_LIMITS.maxInFlight)
    .addOption(new Option('--master <kind>', 'master key provider of a NEW data directory (recorded; later starts need only --data)').choices(['software', 'pkcs11']).default('software'))
    .option('--pkcs11-module <path>', 'PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so); PIN from KMIPD_PKCS11_PIN')
    .option('--pkcs11-token <label>', 'label of the token holding the master key')
    .option('--pkcs11-key-label <label>', 'label of the master key in the token', 'kmipd-master')
    .addOption(new Option('--hsm-mode <mode>', 'root: the HSM wraps root keys; direct: every object is sealed inside the HSM').choices(['root', 'direct']).default('root'))
    .option('--store <store>', 'keystore of a NEW data directory: postgres://USER@HOST:PORT/DB[?sslmode=verify-full&sslrootcert=FILE] shared by several nodes (password from PGPASSWORD or "passwordFile" in kmipd.json), or sqlite (default)')
    .option('--join <bundle>', 'set up a NEW data directory from `kmipd node export` of another node (passphrase from KMIPD_BUNDLE_PASSPHRASE or asked), then serve')
    .option('--migrate', 'apply pending keystore schema migrations at start instead of refusing to start (single-node SQLite; on a cluster run `kmipd migrate` once)')
    .option('--heartbeat-seconds <n>', 'how often this node writes its heartbeat to the keystore, for `kmipd cluster status` (default 10)');
  // Every setting: flag > KMIPD_* environment > kmipd.json "server" section > default (src/config).
  addSettingFlags(serve).action(async (f: ServeFlags, cmd: Command) => {
      if (cmd.getOptionValueSource('data') !== 'cli') f.data = defaultDataDir();
      const flags = typedFlags(cmd);
      let cfg: ReturnType<typeof loadServerConfig>;
      try {
        cfg = loadServerConfig(f.data, { flags });
        exportSecrets(f.data, cfg.raw); // *_FILE variables and systemd credentials
      } catch (e) {
        process.stderr.write(`kmipd: cannot start: ${(e as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      const settings = cfg.settings;
      const logging = openLogging(settings);
      const log = logging.log;
      for (const w of cfg.warnings) log.warn(w);
      const ops = new Operations({
        log,
        settings,
        reloadSettings: () => loadServerConfig(f.data, { flags }).settings,
        ...(logging.destination ? { logDestination: logging.destination } : {}),
      });
      let server;
      try {
        const master = masterConfig(f);
        if (f.join !== undefined) {
          const bundle = readFileSync(f.join, 'utf8');
          const joinOpts: Parameters<typeof joinFromBundle>[2] = { passphrase: '', log };
          if (f.store !== undefined) joinOpts.store = f.store;
          if (f.pkcs11Module !== undefined) joinOpts.pkcs11Module = f.pkcs11Module;
          // Asked only when the directory still needs setting up (a repeated --join is a no-op).
          joinOpts.passphrase = readManifest(f.data) !== undefined ? '' : await bundlePassphrase({ confirm: false });
          await joinFromBundle(f.data, bundle, joinOpts);
        }
        server = await startServer({
          ...(f.store !== undefined ? { store: f.store } : {}),
          ...(master ? { master } : {}),
          dataDir: f.data,
          host: settings.host,
          port: settings.port,
          sans: f.san,
          log,
          limits: { ...settings.limits },
          storePoolSize: settings.store.poolSize,
          leaseTimeSeconds: settings.leaseTimeSeconds,
          ticketLifetimeSeconds: settings.ticketLifetimeSeconds,
          upstreams: settings.upstreams,
          observer: ops.observer,
          migrate: settings.migrate,
          heartbeatMs: settings.heartbeatSeconds * 1000,
        });
        try {
          await ops.attach(server); // admin listener, usage tracking, certificate expiry warnings
        } catch (e) {
          await ops.stop(server);
          await server.stop();
          throw e;
        }
      } catch (e) {
        process.stderr.write(`kmipd: cannot start: ${(e as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      const { state, listener } = server;
      const addr = listener.address;
      log.info({ host: addr.address, port: addr.port, data: state.dir, master: state.master.kind, keystore: state.store.backend }, 'kmipd listening');
      if (state.firstRun) {
        process.stdout.write(
          [
            `kmipd: new data directory ${state.dir}`,
            `  CA certificate (give it to clients to trust this server): ${join(state.dir, 'pki', 'ca.crt')}`,
            `  server certificate: ${join(state.dir, 'pki', 'server.crt')}`,
            `  get a client certificate:  kmipd cert issue --data ${f.data} --cn NAME --out DIR`,
            '',
          ].join('\n'),
        );
      }
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'stopping: no new connections, finishing requests in flight');
        ops
          .stop(server)
          .then(() => server.stop())
          .then(() => {
            log.info('stopped');
            log.flush();
          })
          .catch((err: unknown) => {
            log.error({ err }, 'error while stopping');
            process.exitCode = 1;
          });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      // SIGHUP (systemctl reload): certificate, trust store, log level, log file; all or nothing.
      process.on('SIGHUP', () => {
        log.info({ signal: 'SIGHUP' }, 'reloading');
        if (!stopping) ops.reload();
      });
    });
}
