/**
 * An in-process kmipd with its operations runtime (metrics, usage, admin listener), a log kept
 * in memory, and an HTTPS client for the admin endpoints.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { Operations, type OperationsOptions } from '../../src/admin/runtime.js';
import { resolveSettings, type ServerSettings } from '../../src/config/settings.js';
import { issueClientCert, loadCa } from '../../src/pki/index.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { ClientCreds } from '../helpers/client.js';

export interface MemoryLog {
  log: Logger;
  lines: Record<string, unknown>[];
  messages(): string[];
}

export function memoryLog(level = 'info'): MemoryLog {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines, messages: () => lines.map((l) => String(l.msg)) };
}

export interface OpsServer {
  server: RunningServer;
  ops: Operations;
  port: number;
  adminPort: number | undefined;
  dataDir: string;
  caPem: string;
  memory: MemoryLog;
  settings: ServerSettings;
  creds(cn: string): Promise<ClientCreds>;
  stop(): Promise<void>;
}

export function defaultSettings(patch: (s: ServerSettings) => void = () => {}): ServerSettings {
  const s = resolveSettings({}).settings;
  s.host = '127.0.0.1';
  s.port = 0;
  s.admin.port = 0;
  patch(s);
  return s;
}

export async function startOpsServer(
  opts: { settings?: ServerSettings; dataDir?: string; health?: OperationsOptions['health']; reloadSettings?: () => ServerSettings; keepDir?: boolean } = {},
): Promise<OpsServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'kmipd-ops-'));
  const settings = opts.settings ?? defaultSettings();
  const memory = memoryLog(settings.logLevel);
  const o: OperationsOptions = { log: memory.log, settings };
  if (opts.health) o.health = opts.health;
  if (opts.reloadSettings) o.reloadSettings = opts.reloadSettings;
  const ops = new Operations(o);
  const server = await startServer({ dataDir, host: settings.host, port: settings.port, log: memory.log, limits: settings.limits, observer: ops.observer });
  await ops.attach(server);
  const caPem = readFileSync(join(dataDir, 'pki', 'ca.crt'), 'utf8');
  const cache = new Map<string, ClientCreds>();
  let stopped = false;
  return {
    server,
    ops,
    port: server.listener.address.port,
    adminPort: ops.admin?.address.port,
    dataDir,
    caPem,
    memory,
    settings,
    async creds(cn) {
      let c = cache.get(cn);
      if (!c) {
        const issued = await issueClientCert(loadCa(dataDir), { commonName: cn, keyType: 'ec' });
        c = { ca: caPem, cert: issued.certPem, key: issued.keyPem };
        cache.set(cn, c);
      }
      return c;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await ops.stop(server);
      await server.stop();
      if (!opts.dataDir && !opts.keepDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface HttpAnswer {
  status: number;
  type: string;
  body: string;
}

/** GET https://127.0.0.1:port/path, trusting the kmipd CA; with a client certificate when given. */
export function adminGet(port: number, path: string, caPem: string, client?: { cert: string; key: string }, method = 'GET'): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, method, ca: caPem, servername: 'localhost', agent: false, ...(client ? { cert: client.cert, key: client.key } : {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Every label value of a Prometheus text exposition. */
export function labelValues(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /\{(.*)\}/.exec(line);
    if (!m?.[1]) continue;
    for (const lv of m[1].matchAll(/[a-zA-Z_][a-zA-Z0-9_]*="((?:[^"\\]|\\.)*)"/g)) out.push(lv[1] ?? '');
  }
  return out;
}

/** The value of the first sample of `name` whose labels include every `labels` pair. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (!Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) continue;
    const value = Number(line.trim().split(/\s+/).pop());
    return value;
  }
  return undefined;
}
