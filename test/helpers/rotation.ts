/**
 * Helpers for the key-rotation tests against real processes: `kmipd ARGS` as a child process,
 * a data directory filled with registered keys (in this process, through the real executor),
 * and a client load of Register/Get that counts every failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { issueClientCert, loadCa } from '../../src/pki/index.js';
import { silentLogger } from '../../src/server/log.js';
import { buildExecutor, openServerState } from '../../src/server/server.js';
import { Enums, Tag } from '../../src/spec/index.js';
import { T, decodeTtlv, encodeTtlv, type StructureNode } from '../../src/ttlv/index.js';
import { KmipTestClient, type ClientCreds } from './client.js';
import { batchItems, itemResult, requestMessage } from './engine.js';
import { kmipdCommand } from './process.js';
export { getMsg, keyOf, registerMsg, uidOf } from './keys.js';
import { getMsg, keyOf, registerMsg, uidOf } from './keys.js';


export interface CliRun {
  child: ChildProcess;
  /** stdout and stderr lines so far. */
  lines: string[];
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>;
}

/** Starts `kmipd ARGS` (from source) in a child process. */
export function kmipdChild(args: string[], env: NodeJS.ProcessEnv = {}, onLine?: (line: string) => void): CliRun {
  const k = kmipdCommand(args, env);
  const child = spawn(k.command, k.args, { env: k.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let out = '';
  let err = '';
  const collect = (which: 'out' | 'err') => (b: Buffer) => {
    const s = b.toString('utf8');
    if (which === 'out') out += s;
    else err += s;
    for (const l of s.split('\n')) {
      if (!l) continue;
      lines.push(l);
      onLine?.(l);
    }
  };
  child.stdout!.on('data', collect('out'));
  child.stderr!.on('data', collect('err'));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>((r) =>
    child.once('exit', (code, signal) => {
      // let the pipes drain
      setImmediate(() => r({ code, signal, out, err }));
    }),
  );
  return { child, lines, done };
}

/** Runs `kmipd ARGS` to completion. */
export function kmipdRun(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }> {
  return kmipdChild(args, env).done;
}

/** "status reason: message" of a failed response, for test output. */
export function failureOf(resp: StructureNode): string {
  const r = itemResult(batchItems(resp)[0]!);
  return `status ${r.status} reason ${r.reason ?? '-'}: ${r.message ?? ''}`;
}

/** The identity the filled keys belong to (the client certificate's CN). */
export const LOAD_IDENTITY = 'rotation-load';

/** Registers `n` keys in `dataDir` (created if new) through the real executor, as LOAD_IDENTITY. */
export async function fillDataDir(dataDir: string, n: number, env: { master?: Parameters<typeof openServerState>[1]['master'] } = {}): Promise<Map<string, Buffer>> {
  const log = silentLogger();
  const opts: Parameters<typeof openServerState>[1] = { log };
  if (env.master) opts.master = env.master;
  const state = await openServerState(dataDir, opts);
  const keys = new Map<string, Buffer>();
  try {
    const exec = buildExecutor(state, log, 1024 * 1024);
    for (let i = 0; i < n; i += 200) {
      await Promise.all(
        Array.from({ length: Math.min(200, n - i) }, async () => {
          const key = randomBytes(32);
          const r = await exec.execute(encodeTtlv(registerMsg(key)), { name: LOAD_IDENTITY }, log);
          const tree = decodeTtlv(r.response);
          if (tree.type !== 'Structure') throw new Error('bad response');
          const uid = uidOf(tree);
          if (uid === undefined) throw new Error(`register failed: ${failureOf(tree)}`);
          keys.set(uid, key);
        }),
      );
    }
  } finally {
    await state.close();
  }
  return keys;
}

export async function loadCreds(dataDir: string): Promise<ClientCreds> {
  const issued = await issueClientCert(loadCa(dataDir), { commonName: LOAD_IDENTITY });
  return { ca: readFileSync(join(dataDir, 'pki', 'ca.crt'), 'utf8'), cert: issued.certPem, key: issued.keyPem };
}

export interface Load {
  /** Successful requests so far. */
  ok(): number;
  /** Every failure: what was sent and what came back. */
  failures: string[];
  /** Stops the workers and waits for them. */
  stop(): Promise<void>;
}

/**
 * `workers` connections, each looping: Register a new key (added to `keys`), Get a random known
 * key and compare its bytes. With `register: false` only Gets.
 */
export async function startLoad(port: number, creds: ClientCreds, keys: Map<string, Buffer>, opts: { workers?: number; register?: boolean } = {}): Promise<Load> {
  const uids = [...keys.keys()];
  const failures: string[] = [];
  let ok = 0;
  let stopping = false;
  const worker = async (): Promise<void> => {
    const c = await KmipTestClient.connect(port, creds);
    try {
      while (!stopping) {
        if (opts.register !== false) {
          const key = randomBytes(32);
          const r = await c.send(registerMsg(key));
          const uid = uidOf(r);
          if (uid === undefined) failures.push(`Register: ${failureOf(r)}`);
          else {
            keys.set(uid, key);
            uids.push(uid);
            ok++;
          }
        }
        const u = uids[Math.floor(Math.random() * uids.length)]!;
        const g = await c.send(getMsg(u));
        if (keyOf(g)?.equals(keys.get(u)!)) ok++;
        else failures.push(`Get ${u}: ${failureOf(g)}`);
      }
    } catch (e) {
      failures.push(`connection: ${(e as Error).message}`);
    } finally {
      await c.close().catch(() => undefined);
    }
  };
  const running = Array.from({ length: opts.workers ?? 4 }, () => worker());
  return {
    ok: () => ok,
    failures,
    async stop() {
      stopping = true;
      await Promise.all(running);
    },
  };
}

/** Gets every key of `keys` over one connection; returns how many came back byte for byte. */
export async function countReadable(port: number, creds: ClientCreds, keys: Map<string, Buffer>): Promise<{ same: number; firstFailure?: string }> {
  const c = await KmipTestClient.connect(port, creds);
  let same = 0;
  let firstFailure: string | undefined;
  try {
    const all = [...keys];
    for (let i = 0; i < all.length; i += 50) {
      const chunk = all.slice(i, i + 50);
      const resps = await Promise.all(chunk.map(([uid]) => c.send(getMsg(uid))));
      resps.forEach((r, j) => {
        const [uid, key] = chunk[j]!;
        if (keyOf(r)?.equals(key)) same++;
        else firstFailure ??= `Get ${uid}: ${failureOf(r)}`;
      });
    }
  } finally {
    await c.close();
  }
  const r: { same: number; firstFailure?: string } = { same };
  if (firstFailure !== undefined) r.firstFailure = firstFailure;
  return r;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `fn` is true (polling every 50 ms) or `ms` pass. */
export async function until(fn: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) return false;
    await sleep(50);
  }
  return true;
}
