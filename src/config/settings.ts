/**
 * The server's settings: one table, four sources, one precedence.
 *
 *   flag  >  KMIPD_* environment variable  >  kmipd.json "server" section  >  built-in default
 *
 * The file is the data directory's manifest (`DIR/kmipd.json`, see src/server/datadir.ts); its
 * "server" section holds the settings below, e.g.
 *
 *   "server": {
 *     "host": "0.0.0.0", "port": 5696, "logLevel": "info", "logFile": "/var/log/kmipd/kmipd.log",
 *     "limits": { "maxMessageSize": 1048576, "handshakeTimeoutMs": 10000, "idleTimeoutMs": 120000,
 *                 "maxConnections": 1024, "maxConnectionsPerAddress": 256, "maxInFlight": 256 },
 *     "admin": { "host": "127.0.0.1", "port": 5697, "clients": ["kmipd-admin"] },
 *     "usage": { "flushSeconds": 60 },
 *     "store": { "poolSize": 10 },
 *     "bundlePassphraseFile": "/etc/kmipd/bundle.passphrase", "leaseTimeSeconds": 3600,
 *     "ticketLifetimeSeconds": 3600,
 *     "upstreams": ["upstream-kms"]
 *   }
 *
 * Every setting has an environment variable and (except the secret file) a `kmipd serve` flag.
 * Unknown keys and bad values are errors that name where they came from: the key path in the
 * file (`server.admin.port`), the variable (`KMIPD_ADMIN_PORT`) or the flag (`--admin-port`).
 * Secrets themselves are never settings: see secrets.ts.
 */
import { isIP } from 'node:net';
import { DEFAULT_LEASE_TIME_SECONDS } from '../operations/server-attributes.js';
import { DEFAULT_TICKET_LIFETIME_SECONDS } from '../operations/tickets.js';
import { DEFAULT_LIMITS, type ListenerLimits } from '../server/listener.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The conventional admin port (HTTPS: /livez, /readyz, /health, /metrics), one above KMIP's. */
export const ADMIN_PORT = 5697;
/** The admin client certificate CN accepted by default on a non-loopback admin listener. */
export const DEFAULT_ADMIN_CLIENT = 'kmipd-admin';

export interface ServerSettings {
  host: string;
  port: number;
  logLevel: LogLevel;
  /** Log to this file (reopened on SIGHUP, for logrotate) instead of standard output. */
  logFile: string | undefined;
  limits: Pick<ListenerLimits, 'maxMessageSize' | 'handshakeTimeoutMs' | 'idleTimeoutMs' | 'maxConnections' | 'maxConnectionsPerAddress' | 'maxInFlight'>;
  admin: {
    host: string;
    /** undefined: no admin listener. */
    port: number | undefined;
    /** CNs of the kmipd-issued client certificates the admin listener accepts beyond loopback. */
    clients: string[];
  };
  usage: {
    /** How often last-use records are written to the keystore; 0 turns usage tracking off. */
    flushSeconds: number;
  };
  store: {
    /** Connections a PostgreSQL keystore keeps open at most (SQLite: ignored). */
    poolSize: number;
  };
  /** A file holding the node bundle passphrase (`kmipd node export`, `serve --join`). */
  bundlePassphraseFile: string | undefined;
  /** Apply pending keystore schema migrations at start (`serve --migrate`) instead of refusing to start. */
  migrate: boolean;
  /** How often the node heartbeat is written to the keystore (`kmipd cluster status`). */
  heartbeatSeconds: number;
  /** The Lease Time attribute of cryptographic objects, in seconds; 0: none (src/operations/server-attributes.ts). */
  leaseTimeSeconds: number;
  /** The longest life of a KMIP 2.x Login / Delegated Login ticket, in seconds (src/operations/tickets.ts). */
  ticketLifetimeSeconds: number;
  /** CNs of the client certificates trusted as upstream key servers: the only identities that may send Put and Notify (src/operations/upstream.ts). */
  upstreams: string[];
}

export type Source = 'flag' | 'env' | 'file' | 'default';
type Origin = 'flag' | 'env' | 'file';

export interface SettingSpec {
  /** Path under "server" in kmipd.json, dotted. */
  path: string;
  env: string;
  /** The `kmipd serve` flag; absent for settings that name a secret's file. */
  flag?: string;
  /** The commander attribute of the flag (camelCase of the flag). */
  key?: string;
  default: unknown;
  /** Checks and converts a value; throws Error(reason) for a bad one. */
  parse(raw: unknown, from: Origin): unknown;
  help: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0]! : `${problems.length} configuration problems:\n  ${problems.join('\n  ')}`);
  }
}

// ---- value parsers -----------------------------------------------------------------------------

function int(min: number, max: number): SettingSpec['parse'] {
  return (raw, from) => {
    let n: number;
    if (typeof raw === 'number') n = raw;
    else if (typeof raw === 'string' && from !== 'file' && /^\s*\d+\s*$/.test(raw)) n = Number(raw);
    else throw new Error(`must be an integer from ${min} to ${max}${from === 'file' ? ' (a JSON number)' : ''}, not ${JSON.stringify(raw)}`);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`must be an integer from ${min} to ${max}, not ${JSON.stringify(raw)}`);
    return n;
  };
}

const HOST_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function host(raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') throw new Error(`must be an address or host name, not ${JSON.stringify(raw)}`);
  const h = raw.trim();
  if (isIP(h) === 0 && !HOST_RE.test(h)) throw new Error(`${JSON.stringify(h)} is neither an IP address nor a host name`);
  return h;
}

function level(raw: unknown): LogLevel {
  if (typeof raw === 'string' && (LOG_LEVELS as readonly string[]).includes(raw)) return raw as LogLevel;
  throw new Error(`must be one of ${LOG_LEVELS.join(', ')}, not ${JSON.stringify(raw)}`);
}

function path(raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') throw new Error(`must be a file path, not ${JSON.stringify(raw)}`);
  if (/[\u0000-\u001f]/.test(raw)) throw new Error('must not contain control characters');
  return raw;
}

function bool(raw: unknown, from: Origin): boolean {
  if (typeof raw === 'boolean') return raw;
  if (typeof raw === 'string' && from !== 'file') {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
  }
  throw new Error(`must be true or false${from === 'file' ? ' (a JSON boolean)' : ''}, not ${JSON.stringify(raw)}`);
}

function portOrOff(raw: unknown, from: Origin): number | undefined {
  if (raw === 'off' || raw === null || raw === false) return undefined;
  try {
    return int(0, 65535)(raw, from) as number;
  } catch {
    throw new Error(`must be a port number from 0 to 65535, or "off", not ${JSON.stringify(raw)}`);
  }
}

function names(raw: unknown, from: Origin): string[] {
  let list: unknown[];
  if (Array.isArray(raw)) list = raw;
  else if (typeof raw === 'string' && from !== 'file') list = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  else throw new Error(`must be a list of certificate common names${from === 'file' ? ' (a JSON array of strings)' : ' (comma-separated)'}, not ${JSON.stringify(raw)}`);
  for (const n of list) {
    if (typeof n !== 'string' || n === '' || /[\u0000-\u001f\u007f]/.test(n)) throw new Error(`holds ${JSON.stringify(n)}, which is not a certificate common name`);
  }
  return list as string[];
}

// ---- the table ---------------------------------------------------------------------------------

export const SETTINGS: readonly SettingSpec[] = [
  { path: 'host', env: 'KMIPD_HOST', flag: '--host', key: 'host', default: '0.0.0.0', parse: host, help: 'address the KMIP listener binds' },
  { path: 'port', env: 'KMIPD_PORT', flag: '--port', key: 'port', default: 5696, parse: int(0, 65535), help: 'KMIP port' },
  { path: 'logLevel', env: 'KMIPD_LOG_LEVEL', flag: '--log-level', key: 'logLevel', default: 'info', parse: level, help: 'log level (reloaded on SIGHUP)' },
  { path: 'logFile', env: 'KMIPD_LOG_FILE', flag: '--log-file', key: 'logFile', default: undefined, parse: path, help: 'log file instead of standard output (reopened on SIGHUP)' },
  {
    path: 'limits.maxMessageSize',
    env: 'KMIPD_MAX_MESSAGE_SIZE',
    flag: '--max-message-size',
    key: 'maxMessageSize',
    default: DEFAULT_LIMITS.maxMessageSize,
    parse: int(1024, 64 * 1024 * 1024),
    help: 'largest request accepted, bytes',
  },
  {
    path: 'limits.handshakeTimeoutMs',
    env: 'KMIPD_HANDSHAKE_TIMEOUT',
    flag: '--handshake-timeout',
    key: 'handshakeTimeout',
    default: DEFAULT_LIMITS.handshakeTimeoutMs,
    parse: int(100, 600_000),
    help: 'TLS handshake deadline, ms',
  },
  {
    path: 'limits.idleTimeoutMs',
    env: 'KMIPD_IDLE_TIMEOUT',
    flag: '--idle-timeout',
    key: 'idleTimeout',
    default: DEFAULT_LIMITS.idleTimeoutMs,
    parse: int(100, 86_400_000),
    help: 'idle connections closed after, ms',
  },
  {
    path: 'limits.maxConnections',
    env: 'KMIPD_MAX_CONNECTIONS',
    flag: '--max-connections',
    key: 'maxConnections',
    default: DEFAULT_LIMITS.maxConnections,
    parse: int(1, 1_000_000),
    help: 'connections open at once',
  },
  {
    // 256 of the 1024: a vCenter (one address, many short parallel connections, bursts after
    // host reboots) has room, and still a single address cannot take every connection.
    path: 'limits.maxConnectionsPerAddress',
    env: 'KMIPD_MAX_CONNECTIONS_PER_ADDRESS',
    flag: '--max-connections-per-address',
    key: 'maxConnectionsPerAddress',
    default: DEFAULT_LIMITS.maxConnectionsPerAddress,
    parse: int(1, 1_000_000),
    help: 'connections open at once from one client address (more are closed before TLS)',
  },
  {
    path: 'limits.maxInFlight',
    env: 'KMIPD_MAX_IN_FLIGHT',
    flag: '--max-in-flight',
    key: 'maxInFlight',
    default: DEFAULT_LIMITS.maxInFlight,
    parse: int(1, 100_000),
    help: 'requests executing at once',
  },
  { path: 'admin.host', env: 'KMIPD_ADMIN_HOST', flag: '--admin-host', key: 'adminHost', default: '127.0.0.1', parse: host, help: 'address of the admin HTTPS listener' },
  {
    path: 'admin.port',
    env: 'KMIPD_ADMIN_PORT',
    flag: '--admin-port',
    key: 'adminPort',
    default: ADMIN_PORT,
    parse: portOrOff,
    help: `admin HTTPS port (/livez /readyz /health /metrics; default ${ADMIN_PORT}), or off`,
  },
  {
    path: 'admin.clients',
    env: 'KMIPD_ADMIN_CLIENTS',
    flag: '--admin-client',
    key: 'adminClient',
    default: [DEFAULT_ADMIN_CLIENT],
    parse: names,
    help: 'CNs of admin client certificates (from the kmipd CA) accepted beyond loopback',
  },
  {
    path: 'usage.flushSeconds',
    env: 'KMIPD_USAGE_FLUSH_SECONDS',
    flag: '--usage-flush-seconds',
    key: 'usageFlushSeconds',
    default: 60,
    parse: int(0, 86_400),
    help: 'how often last-use times are written to the keystore (0: usage tracking off)',
  },
  {
    path: 'migrate',
    env: 'KMIPD_MIGRATE',
    flag: '--migrate',
    key: 'migrate',
    default: false,
    parse: bool,
    help: 'apply pending keystore schema migrations at start (single node; clusters run `kmipd migrate`)',
  },
  {
    path: 'heartbeatSeconds',
    env: 'KMIPD_HEARTBEAT_SECONDS',
    flag: '--heartbeat-seconds',
    key: 'heartbeatSeconds',
    default: 10,
    parse: int(1, 3600),
    help: 'how often this node writes its heartbeat to the keystore (kmipd cluster status)',
  },
  {
    path: 'store.poolSize',
    env: 'KMIPD_STORE_POOL_SIZE',
    flag: '--store-pool-size',
    key: 'storePoolSize',
    default: 10,
    parse: int(1, 1000),
    help: 'connections to a PostgreSQL keystore kept open at most (SQLite: ignored)',
  },
  {
    path: 'leaseTimeSeconds',
    env: 'KMIPD_LEASE_TIME_SECONDS',
    flag: '--lease-time-seconds',
    key: 'leaseTimeSeconds',
    default: DEFAULT_LEASE_TIME_SECONDS,
    parse: int(0, 0x7fffffff),
    help: 'the Lease Time attribute kmipd gives cryptographic objects, in seconds (0: none)',
  },
  {
    path: 'ticketLifetimeSeconds',
    env: 'KMIPD_TICKET_LIFETIME_SECONDS',
    flag: '--ticket-lifetime-seconds',
    key: 'ticketLifetimeSeconds',
    default: DEFAULT_TICKET_LIFETIME_SECONDS,
    parse: int(1, 7 * 86_400),
    help: 'the longest life of a KMIP 2.x Login or Delegated Login ticket, in seconds (a client\'s Lease Time asks for less)',
  },
  {
    path: 'upstreams',
    env: 'KMIPD_UPSTREAMS',
    flag: '--upstream',
    key: 'upstream',
    default: [],
    parse: names,
    help: 'CNs of client certificates trusted as upstream key servers, which may push objects (Put) and attribute changes (Notify)',
  },
  {
    path: 'bundlePassphraseFile',
    env: 'KMIPD_BUNDLE_PASSPHRASE_FILE',
    default: undefined,
    parse: path,
    help: 'file holding the node bundle passphrase (never a flag)',
  },
];

/** Containers of the "server" section (objects whose members are settings). */
const GROUPS = new Set(['limits', 'admin', 'usage', 'store']);

/** Every KMIPD_* variable kmipd reads (settings, secrets, the data directory). */
export const KNOWN_ENV = new Set([
  ...SETTINGS.map((s) => s.env),
  'KMIPD_DATA',
  'KMIPD_PKCS11_PIN',
  'KMIPD_PKCS11_PIN_FILE',
  'KMIPD_DB_PASSWORD_FILE',
  'KMIPD_BUNDLE_PASSPHRASE',
]);

// ---- resolution --------------------------------------------------------------------------------

export interface ResolveInput {
  /** The "server" section of kmipd.json as parsed (any JSON value; checked here). */
  file?: unknown;
  /** Where the file is, for messages (default "kmipd.json"). */
  fileName?: string;
  env?: NodeJS.ProcessEnv;
  /** Values given on the command line, by commander attribute (only those the user typed). */
  flags?: Record<string, unknown>;
}

export interface Resolved {
  settings: ServerSettings;
  sources: Record<string, Source>;
}

function fileValues(section: unknown, fileName: string, problems: string[]): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (section === undefined) return out;
  if (typeof section !== 'object' || section === null || Array.isArray(section)) {
    problems.push(`${fileName}: server: must be an object of settings, not ${JSON.stringify(section)}`);
    return out;
  }
  const known = new Set(SETTINGS.map((s) => s.path));
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      const p = prefix ? `${prefix}.${k}` : k;
      if (!prefix && GROUPS.has(k)) {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) problems.push(`${fileName}: server.${p}: must be an object, not ${JSON.stringify(v)}`);
        else walk(v as Record<string, unknown>, p);
        continue;
      }
      if (!known.has(p)) {
        const siblings = SETTINGS.filter((s) => (prefix ? s.path.startsWith(`${prefix}.`) : !s.path.includes('.'))).map((s) => s.path.slice(prefix ? prefix.length + 1 : 0));
        const groups = prefix ? [] : [...GROUPS];
        problems.push(`${fileName}: server.${p}: unknown setting (known here: ${[...siblings, ...groups].join(', ')})`);
        continue;
      }
      out.set(p, v);
    }
  };
  walk(section as Record<string, unknown>, '');
  return out;
}

/** Resolves every setting from its sources (flag > env > file > default); throws ConfigError listing every problem. */
export function resolveSettings(input: ResolveInput): Resolved {
  const problems: string[] = [];
  const fileName = input.fileName ?? 'kmipd.json';
  const fromFile = fileValues(input.file, fileName, problems);
  const env = input.env ?? {};
  const flags = input.flags ?? {};
  const values = new Map<string, unknown>();
  const sources: Record<string, Source> = {};
  for (const s of SETTINGS) {
    const tries: { origin: Origin; where: string; has: boolean; raw: unknown }[] = [
      { origin: 'flag', where: s.flag ?? '', has: s.key !== undefined && s.flag !== undefined && flags[s.key] !== undefined, raw: s.key !== undefined ? flags[s.key] : undefined },
      { origin: 'env', where: s.env, has: env[s.env] !== undefined && env[s.env] !== '', raw: env[s.env] },
      { origin: 'file', where: `${fileName}: server.${s.path}`, has: fromFile.has(s.path), raw: fromFile.get(s.path) },
    ];
    // Every given value is checked, also those a higher source overrides: a typo waits for no one.
    let chosen: { origin: Origin; value: unknown } | undefined;
    for (const t of tries) {
      if (!t.has) continue;
      try {
        const v = s.parse(t.raw, t.origin);
        chosen ??= { origin: t.origin, value: v };
      } catch (e) {
        problems.push(`${t.where}: ${(e as Error).message}`);
      }
    }
    values.set(s.path, chosen ? chosen.value : s.default);
    sources[s.path] = chosen ? chosen.origin : 'default';
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const v = <T>(p: string): T => values.get(p) as T;
  return {
    settings: {
      host: v('host'),
      port: v('port'),
      logLevel: v('logLevel'),
      logFile: v('logFile'),
      limits: {
        maxMessageSize: v('limits.maxMessageSize'),
        handshakeTimeoutMs: v('limits.handshakeTimeoutMs'),
        idleTimeoutMs: v('limits.idleTimeoutMs'),
        maxConnections: v('limits.maxConnections'),
        maxConnectionsPerAddress: v('limits.maxConnectionsPerAddress'),
        maxInFlight: v('limits.maxInFlight'),
      },
      admin: { host: v('admin.host'), port: v('admin.port'), clients: v('admin.clients') },
      usage: { flushSeconds: v('usage.flushSeconds') },
      store: { poolSize: v('store.poolSize') },
      bundlePassphraseFile: v('bundlePassphraseFile'),
      migrate: v('migrate'),
      heartbeatSeconds: v('heartbeatSeconds'),
      leaseTimeSeconds: v('leaseTimeSeconds'),
      ticketLifetimeSeconds: v('ticketLifetimeSeconds'),
      upstreams: v('upstreams'),
    },
    sources,
  };
}

/** KMIPD_* variables in `env` that kmipd does not know (likely typos). */
export function unknownEnv(env: NodeJS.ProcessEnv): string[] {
  return Object.keys(env)
    .filter((k) => k.startsWith('KMIPD_') && !KNOWN_ENV.has(k))
    .sort();
}

/** The value of a resolved setting by its path, for display. */
export function settingValue(s: ServerSettings, p: string): unknown {
  let cur: unknown = s;
  for (const part of p.split('.')) cur = (cur as Record<string, unknown> | undefined)?.[part];
  return cur;
}
