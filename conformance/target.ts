/**
 * Where the test cases run.
 *
 * - In process (default): every test case gets its own kmipd, started with `startServer` on
 *   127.0.0.1, port 0, over a fresh copy of a template data directory. The copy shares the
 *   template's CA, master key and (empty) keystore, so one set of client certificates serves
 *   every copy, and no test case sees the objects another one left behind (a failed test case
 *   does not clean up). The template's policy puts the runner's client identities in one group:
 *   the dual-client test cases (`# [Client-A]`, `# [Client-B]`, …) share their objects, as the
 *   OASIS transcripts expect. Client A is also a trusted upstream (the `upstreams` setting), so
 *   that the transcripts' Put and Notify are accepted as from a feeding key server.
 * - External (`--host/--port --ca --cert --key`): one server for all test cases, one identity
 *   (or a second one for Client-B and later with `--cert-b/--key-b`); no isolation.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueClientCert, loadCa } from '../src/pki/index.js';
import { readManifest, writeManifest } from '../src/server/datadir.js';
import { silentLogger } from '../src/server/log.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import type { Creds } from './client.js';

/** One test case's view of the server. */
export interface Session {
  host: string;
  port: number;
  servername?: string;
  /** Credentials for a client label of the transcript (A, B, C, …). */
  creds(label: string): Promise<Creds>;
  /**
   * Rejects when the server dies under this session (an exception that escapes kmipd's own
   * handling); never resolves otherwise.
   */
  crashed: Promise<never>;
  close(): Promise<void>;
}

export interface Target {
  describe: string;
  /** Isolated per test case (fresh data directory) or shared. */
  isolated: boolean;
  open(): Promise<Session>;
  dispose(): Promise<void>;
}

const LABELS = ['A', 'B', 'C', 'D', 'E', 'F'];
export const IDENTITY_PREFIX = 'kmip-conformance-client-';

function identity(label: string): string {
  return `${IDENTITY_PREFIX}${label.toLowerCase()}`;
}

/** Resolves after `ms`, or with the promise's value, whichever comes first. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<undefined>((r) => {
    timer = setTimeout(() => r(undefined), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Escaped exceptions of the in-process server. While a session is open they are its crash;
 * installed once per process.
 */
class CrashWatch {
  private current: ((e: Error) => void) | undefined;
  private users = 0;
  readonly orphans: string[] = [];
  private readonly on = (e: unknown): void => {
    const err = e instanceof Error ? e : new Error(String(e));
    if (this.current) this.current(err);
    else this.orphans.push(err.stack ?? err.message);
  };

  install(): void {
    if (this.users++ > 0) return;
    process.on('uncaughtException', this.on);
    process.on('unhandledRejection', this.on);
  }

  uninstall(): void {
    if (--this.users > 0) return;
    process.off('uncaughtException', this.on);
    process.off('unhandledRejection', this.on);
  }

  watch(): { crashed: Promise<never>; stop: () => void } {
    let reject!: (e: Error) => void;
    const crashed = new Promise<never>((_, r) => {
      reject = r;
    });
    crashed.catch(() => {});
    this.current = (e) => reject(e);
    return {
      crashed,
      stop: () => {
        this.current = undefined;
      },
    };
  }
}

const crashWatch = new CrashWatch();

export class InProcessTarget implements Target {
  readonly isolated = true;
  readonly describe = 'kmipd in process, a fresh data directory per test case';
  private readonly credsCache = new Map<string, Creds>();

  private constructor(
    private readonly root: string,
    private readonly template: string,
    private readonly caPem: string,
  ) {}

  static async create(): Promise<InProcessTarget> {
    crashWatch.install();
    const root = mkdtempSync(join(tmpdir(), 'kmipd-conformance-'));
    const template = join(root, 'template');
    const server = await startServer({ dataDir: template, host: '127.0.0.1', port: 0, log: silentLogger() });
    await server.stop();
    const manifest = readManifest(template);
    if (!manifest) throw new Error(`kmipd wrote no manifest in ${template}`);
    manifest.policy = { ...manifest.policy, groups: [...manifest.policy.groups, LABELS.map(identity)] };
    writeManifest(template, manifest);
    const caPem = readFileSync(join(template, 'pki', 'ca.crt'), 'utf8');
    return new InProcessTarget(root, template, caPem);
  }

  private async credsFor(label: string): Promise<Creds> {
    const l = LABELS.includes(label) ? label : 'A';
    let c = this.credsCache.get(l);
    if (!c) {
      const issued = await issueClientCert(loadCa(this.template), { commonName: identity(l), keyType: 'ec' });
      c = { ca: this.caPem, cert: issued.certPem, key: issued.keyPem };
      this.credsCache.set(l, c);
    }
    return c;
  }

  async open(): Promise<Session> {
    const dir = mkdtempSync(join(this.root, 'case-'));
    cpSync(this.template, dir, { recursive: true });
    // The transcripts' Put and Notify come from client A, playing the upstream key server that
    // feeds kmipd: trusted as a deployment trusts its feeding server, by naming its certificate
    // CN in the upstreams setting (src/operations/upstream.ts). Other clients are not upstreams.
    const server: RunningServer = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, log: silentLogger(), upstreams: [identity('A')] });
    const watch = crashWatch.watch();
    return {
      host: '127.0.0.1',
      port: server.listener.address.port,
      servername: 'localhost',
      creds: (label) => this.credsFor(label),
      crashed: watch.crashed,
      close: async () => {
        watch.stop();
        // A server stuck on a request that never finishes is abandoned, not waited for.
        await within(server.stop().catch(() => undefined), 3000);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  async dispose(): Promise<void> {
    crashWatch.uninstall();
    rmSync(this.root, { recursive: true, force: true });
  }
}

export interface ExternalOptions {
  host: string;
  port: number;
  ca: string;
  cert: string;
  key: string;
  certB?: string;
  keyB?: string;
  servername?: string;
}

export class ExternalTarget implements Target {
  readonly isolated = false;
  readonly describe: string;
  private readonly a: Creds;
  private readonly b: Creds;

  constructor(private readonly o: ExternalOptions) {
    this.describe = `the KMIP server at ${o.host}:${o.port}`;
    const ca = readFileSync(o.ca, 'utf8');
    this.a = { ca, cert: readFileSync(o.cert, 'utf8'), key: readFileSync(o.key, 'utf8') };
    this.b = o.certB && o.keyB ? { ca, cert: readFileSync(o.certB, 'utf8'), key: readFileSync(o.keyB, 'utf8') } : this.a;
  }

  async open(): Promise<Session> {
    const s: Session = {
      host: this.o.host,
      port: this.o.port,
      creds: async (label) => (label === 'A' ? this.a : this.b),
      crashed: new Promise<never>(() => {}),
      close: async () => {},
    };
    if (this.o.servername !== undefined) s.servername = this.o.servername;
    return s;
  }

  async dispose(): Promise<void> {}
}

/** Escaped exceptions seen while no test case was running. */
export function orphanCrashes(): readonly string[] {
  return crashWatch.orphans;
}
