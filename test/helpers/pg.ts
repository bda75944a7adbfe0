/**
 * A throw-away PostgreSQL cluster for tests: initdb into a temporary folder, a postmaster on a
 * free loopback port, password authentication (scram) for user `kmipd`. Never touches the
 * system's own cluster.
 *
 * PostgreSQL refuses to run as root: when the tests run as root, initdb and postgres run as the
 * `postgres` user (else `nobody`), with the folder handed to that user.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export const PG_USER = 'kmipd';

export interface PgCluster {
  host: string;
  port: number;
  user: string;
  password: string;
  dir: string;
  /** postgres://kmipd@127.0.0.1:PORT/DB (no password: give it as PGPASSWORD). */
  url(db: string, params?: Record<string, string>): string;
  /** Creates a new, empty database; returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Runs one statement as the superuser in `db`. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(db: string, sql: string, values?: unknown[]): Promise<R[]>;
  /** Fast shutdown (clients are disconnected; data kept). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Stops it and removes its folder. */
  destroy(): Promise<void>;
  /** The server log so far. */
  log(): string;
}

function lookupUser(name: string): { uid: number; gid: number } | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && f[3] !== undefined) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dbCounter = 0;

export interface PgClusterOptions {
  /** Serve TLS with this certificate and key (PEM) besides plain connections. */
  ssl?: { certPem: string; keyPem: string };
  /** Keep fsync and full-page writes on (a benchmark of durable commits); tests run without. */
  durable?: boolean;
}

export async function startPgCluster(bindir: string, opts: PgClusterOptions = {}): Promise<PgCluster> {
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? (lookupUser('postgres') ?? lookupUser('nobody')) : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-pg-'));
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const pwfile = join(dir, 'pw');
  writeFileSync(pwfile, password + '\n', { mode: 0o600 });
  if (owner) {
    chownSync(dir, owner.uid, owner.gid);
    chownSync(pwfile, owner.uid, owner.gid);
  }
  const as = owner ? { uid: owner.uid, gid: owner.gid } : {};
  const data = join(dir, 'data');
  const init = spawnSync(
    join(bindir, 'initdb'),
    ['-D', data, '-U', PG_USER, `--pwfile=${pwfile}`, '-A', 'scram-sha-256', '--no-sync', '-E', 'UTF8', '--locale=C'],
    { ...as, encoding: 'utf8', cwd: dir, env: { ...process.env, LC_ALL: 'C' } },
  );
  if (init.status !== 0) throw new Error(`initdb failed (${init.status}): ${init.stderr}${init.stdout}`);
  rmSync(pwfile);
  const extra: string[] = [];
  if (opts.ssl) {
    for (const [name, pem, mode] of [['server.crt', opts.ssl.certPem, 0o644], ['server.key', opts.ssl.keyPem, 0o600]] as const) {
      const f = join(data, name);
      writeFileSync(f, pem, { mode });
      if (owner) chownSync(f, owner.uid, owner.gid);
    }
    extra.push('-c', 'ssl=on', '-c', 'ssl_cert_file=server.crt', '-c', 'ssl_key_file=server.key');
  }
  let port = await freePort();
  let child: ChildProcess | undefined;
  let logText = '';

  const connectOnce = async (db = 'postgres'): Promise<pg.Client> => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: PG_USER, password, database: db, connectionTimeoutMillis: 2000 });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };

  const start = async (): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      const p = spawn(
        join(bindir, 'postgres'),
        ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', ...(opts.durable === true ? [] : ['-c', 'fsync=off', '-c', 'full_page_writes=off']), '-c', 'max_connections=200', ...extra],
        { ...as, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } },
      );
      child = p;
      p.stdout!.on('data', (d: Buffer) => (logText += d.toString()));
      p.stderr!.on('data', (d: Buffer) => (logText += d.toString()));
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      const deadline = Date.now() + 30_000;
      let up = false;
      while (Date.now() < deadline && p.exitCode === null) {
        try {
          const c = await connectOnce();
          await c.end();
          up = true;
          break;
        } catch {
          await sleep(100);
        }
      }
      if (up) return;
      p.kill('SIGKILL');
      await exited;
      if (attempt < 3 && /could not bind|Address already in use/.test(logText)) {
        port = await freePort();
        continue;
      }
      throw new Error(`postgres did not start:\n${logText}`);
    }
  };

  const stop = async (): Promise<void> => {
    const p = child;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGINT'); // fast shutdown
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(t);
  };

  // Never leave a postmaster behind, even when the test process ends abruptly.
  const onExit = (): void => {
    if (child && child.exitCode === null) child.kill('SIGQUIT');
  };
  process.on('exit', onExit);

  await start();

  const cluster: PgCluster = {
    host: '127.0.0.1',
    get port() {
      return port;
    },
    user: PG_USER,
    password,
    dir,
    url(db, params = {}) {
      const q = new URLSearchParams(params).toString();
      return `postgres://${PG_USER}@127.0.0.1:${port}/${db}${q ? `?${q}` : ''}`;
    },
    async createDatabase(name) {
      const db = name ?? `t${process.pid}_${++dbCounter}_${Math.random().toString(36).slice(2, 8)}`;
      const c = await connectOnce();
      try {
        await c.query(`CREATE DATABASE "${db}"`);
      } finally {
        await c.end();
      }
      return cluster.url(db);
    },
    async query<R extends pg.QueryResultRow = pg.QueryResultRow>(db: string, sql: string, values?: unknown[]) {
      const c = await connectOnce(db);
      try {
        return (await c.query<R>(sql, values)).rows;
      } finally {
        await c.end();
      }
    },
    stop,
    start,
    async destroy() {
      await stop();
      process.off('exit', onExit);
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    },
    log: () => logText,
  };
  return cluster;
}
