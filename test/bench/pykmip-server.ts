/**
 * The Debian PyKMIP server (/usr/bin/pykmip-server, package python3-pykmip) on 127.0.0.1 for
 * the server bench: a temp folder with a CA made by kmipd's src/pki, a server and a client
 * certificate from it, a config file, an empty policy folder, an SQLite database and a log file.
 *
 * PyKMIP cannot report an ephemeral port, so a free one is picked first (bind to 0, close).
 * Its TLS1.2 suite speaks TLS 1.2 only; it understands KMIP up to 2.0 (the bench sends 1.2).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { createCA, issueClientCert, issueServerCert } from '../../src/pki/index.js';

export const PYTHON = '/usr/bin/python3';
export const PYKMIP_SERVER = '/usr/bin/pykmip-server';

export interface Creds {
  ca: string;
  cert: string;
  key: string;
}

export interface PyKmipServer {
  port: number;
  /** The server's main process (its sessions are threads of it). */
  pid: number;
  creds: Creds;
  dir: string;
  /** The tail of PyKMIP's log, for error notes. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

export type PyKmipStart = { ok: true; server: PyKmipServer } | { ok: false; why: string };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = a && typeof a !== 'string' ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One mutual-TLS handshake; resolves true when it completes. */
function probe(port: number, creds: Creds): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...creds, timeout: 2000 });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('secureConnect', () => done(true));
    s.once('error', () => done(false));
    s.once('timeout', () => done(false));
  });
}

/**
 * PyKMIP runs helper processes (a multiprocessing Manager, the policy monitor) and its accept
 * loop only notices SIGTERM at its 10 s socket timeout: the server is started as the leader of
 * its own process group, and that group (ours: nothing else is in it) is signalled.
 */
function signalGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // already gone
  }
}

function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    signalGroup(child, 'SIGKILL'); // helpers left behind, if any
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const t = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      signalGroup(child, 'SIGKILL');
      resolve();
    });
    signalGroup(child, 'SIGTERM');
  });
}

export async function startPyKmip(opts: { startTimeoutMs?: number } = {}): Promise<PyKmipStart> {
  if (!existsSync(PYKMIP_SERVER) || !existsSync(PYTHON)) {
    return { ok: false, why: `${PYKMIP_SERVER} not installed (apt-get install python3-pykmip)` };
  }
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-bench-pykmip-'));
  const file = (name: string) => join(dir, name);
  let child: ChildProcess | undefined;
  try {
    const ca = await createCA({ commonName: 'kmipd bench PyKMIP CA' });
    const server = await issueServerCert(ca, { commonName: 'pykmip-server', sans: ['127.0.0.1', 'localhost'] });
    const client = await issueClientCert(ca, { commonName: 'bench' });
    writeFileSync(file('ca.crt'), ca.certPem);
    writeFileSync(file('server.crt'), server.certPem);
    writeFileSync(file('server.key'), server.keyPem, { mode: 0o600 });
    mkdirSync(file('policies'));
    const port = await freePort();
    writeFileSync(
      file('server.conf'),
      [
        '[server]',
        'hostname=127.0.0.1',
        `port=${port}`,
        `certificate_path=${file('server.crt')}`,
        `key_path=${file('server.key')}`,
        `ca_path=${file('ca.crt')}`,
        'auth_suite=TLS1.2',
        'enable_tls_client_auth=True',
        `policy_path=${file('policies')}`,
        `database_path=${file('pykmip.db')}`,
        'logging_level=INFO',
        '',
      ].join('\n'),
    );
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    child = spawn(PYTHON, [PYKMIP_SERVER, '-f', file('server.conf'), '-l', file('server.log')], {
      cwd: dir,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    const spawned = child;
    const onExit = () => signalGroup(spawned, 'SIGKILL');
    process.once('exit', onExit);
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => {
      if (stderr.length < 8192) stderr += b.toString('utf8');
    });
    let exited: string | undefined;
    child.once('exit', (code, sig) => {
      exited = `exited with ${code ?? sig}`;
    });
    child.once('error', (e) => {
      exited = `could not be started: ${e.message}`;
    });
    const creds: Creds = { ca: ca.certPem, cert: client.certPem, key: client.keyPem };
    const logTail = (lines = 5): string => {
      try {
        return readFileSync(file('server.log'), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    };
    const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
    let up = false;
    while (!up && exited === undefined && Date.now() < deadline) {
      await sleep(200);
      if (exited === undefined) up = await probe(port, creds);
    }
    if (!up) {
      const last = (stderr.trim().split('\n').pop() ?? '') || logTail(1);
      const why = exited ? `pykmip-server ${exited}${last ? `: ${last}` : ''}` : `pykmip-server did not accept a TLS connection in time${last ? `: ${last}` : ''}`;
      await stopChild(child, 2000);
      process.off('exit', onExit);
      rmSync(dir, { recursive: true, force: true });
      return { ok: false, why };
    }
    const c = child;
    return {
      ok: true,
      server: {
        port,
        pid: c.pid ?? -1,
        creds,
        dir,
        logTail,
        async stop() {
          await stopChild(c, 1500);
          process.off('exit', onExit);
          rmSync(dir, { recursive: true, force: true });
        },
      },
    };
  } catch (e) {
    if (child) await stopChild(child, 2000);
    rmSync(dir, { recursive: true, force: true });
    return { ok: false, why: `PyKMIP set-up failed: ${e instanceof Error ? e.message : String(e)}` };
  }
}
