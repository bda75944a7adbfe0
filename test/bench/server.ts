/**
 * kmipd over mutual TLS on 127.0.0.1, the server in its own process (`node bin/kmipd serve`
 * from dist/, fresh data directory, logging at its default level to a file) and the load
 * generated here:
 *
 * - Get, Locate (by Name, over a store of POPULATE named keys) and Create (durable: SQLite
 *   WAL with synchronous=FULL; concurrent Creates share a group commit) with 1 and 8
 *   persistent connections, each connection sending its next request when the previous
 *   answer arrives: requests/s, p50/p99 latency;
 * - Get with a new TLS connection per request (vCenter's way: TLS 1.2 full handshake, one
 *   Get, close), 8 workers;
 * - the ceiling: ceiling.ts (a bare node:tls server with kmipd's TLS set-up and framer that
 *   answers every frame with a canned Get response of kmipd's Get response size) under the
 *   same loads, plus its handshake-only rate;
 * - the durable ceiling ("ceiling + fsync", ceiling.ts --durable): the same, but every answer
 *   waits until a record of its request is flushed to disk, the records of concurrent requests
 *   sharing flushes, under the Get loads: the most a server can do here that makes a record
 *   durable before each answer, as kmipd's audit trail (and a durable Create) must;
 * - the Debian PyKMIP server (pykmip-server.ts) under the Get and Create loads.
 *
 * All messages are KMIP 1.2 (PyKMIP's range ends at 2.0; vCenter speaks 1.1). Targets: Get at 8
 * connections ≥ 60 % of the ceiling, Create ≥ 30 %, new-connection Get ≥ 80 % of the ceiling
 * under the same new-connection load.
 *
 * Besides rates, each row has the CPU the server process used over the measuring window (from
 * /proc: cores, and µs per answered request; a figure that other load on the machine changes
 * less than the rate) and the CPU of this process (the load generator: near 1 core it is the
 * limit). Before each case the bench waits, bounded, for the rest of the machine to go quiet; a
 * case during which other processes still used CPU is flagged NOISY. This module prints its own
 * table (to stderr under --json) and records the three targets as goals.
 *
 * Environment:
 *   KMIPD_BENCH_SECONDS=S        measuring time per case (default 4; warm-up 1 s, or S/4 if less)
 *   KMIPD_BENCH_CPU_PROF=DIR     run kmipd under `node --cpu-prof` writing to DIR, and print the
 *                                functions with the most self time after kmipd stops (filter the
 *                                cases, e.g. `run.js server "kmipd create"`, to profile one load)
 *   KMIPD_BENCH_NO_PYKMIP=1      skip PyKMIP
 *   KMIPD_BENCH_STORE=S          the keystore(s) kmipd runs on, like run.js --store=S (below)
 *
 * Keystores (run.js --store=sqlite|postgres|sqlite,postgres; default sqlite): with postgres the
 * bench starts a throw-away PostgreSQL cluster (test/helpers/pg.ts, fsync on: Creates are as
 * durable as with SQLite) and runs the kmipd cases twice, each time on a fresh database: with one
 * node, then with two nodes on the same database, the second set up as an operator would (`kmipd
 * node export` on the first, `kmipd serve --join` on the second), every load split evenly across
 * the two (connection or worker i goes to node i mod 2; the 1-connection cases become one
 * connection per node). Rows are labelled by store and node count ("kmipd pg ×2"); the SQLite
 * rows and the three goals are those of the SQLite run only, as before; the PostgreSQL runs print
 * the same comparisons with the ceiling, for information.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { issueClientCert, loadCa } from '../../src/pki/index.js';
import { Enums, Tag, enumValueName } from '../../src/spec/index.js';
import { decodeTtlv, encodeTtlv, FrameDecoder, T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { startPgCluster, type PgCluster } from '../helpers/pg.js';
import { postgres as postgresRequirement } from '../helpers/requirements.js';
import { RECORD_BYTES } from './ceiling.js';
import { startPyKmip, type Creds, type PyKmipServer } from './pykmip-server.js';
import type { BenchContext, BenchModule, BenchStore } from './run.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** dist/test/bench → the repository root. */
const REPO = resolve(HERE, '..', '..', '..');
const KMIPD_BIN = join(REPO, 'bin', 'kmipd');
const CEILING_JS = join(HERE, 'ceiling.js');

/** Named keys in the store before Locate is measured. */
export const POPULATE = 3000;
const CONNS = 8;
/** Hard bound on the requests of one case, whatever the rate. */
const MAX_REQUESTS_PER_CASE = 5_000_000;
/** A request unanswered this long after a case's end is abandoned (its connection destroyed). */
const STALL_MS = 10_000;

/** Waiting for other processes to go quiet before a case: at most this per case, and in all. */
const QUIET_PER_CASE_MS = 4000;
const QUIET_BUDGET_MS = 40_000;
/** Other processes using this much CPU during a case make its figures suspect: flagged. */
const NOISY_CORES = 0.15;

export const TARGETS = { get8: 60, create8: 30, newConnGet: 80 } as const;

// ---- KMIP 1.2 requests ----------------------------------------------------------------------

function request(operation: number, payload: TtlvNode[]): Buffer {
  return encodeTtlv(
    T.struct(Tag.RequestMessage, [
      T.struct(Tag.RequestHeader, [
        T.struct(Tag.ProtocolVersion, [T.int(Tag.ProtocolVersionMajor, 1), T.int(Tag.ProtocolVersionMinor, 2)]),
        T.int(Tag.BatchCount, 1),
      ]),
      T.struct(Tag.BatchItem, [T.enum(Tag.Operation, operation), T.struct(Tag.RequestPayload, payload)]),
    ]),
  );
}

function attr(name: string, value: TtlvNode): TtlvNode {
  return T.struct(Tag.Attribute, [T.text(Tag.AttributeName, name), value]);
}

function nameAttr(name: string): TtlvNode {
  return attr(
    'Name',
    T.struct(Tag.AttributeValue, [T.text(Tag.NameValue, name), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]),
  );
}

/** vCenter's Create (AES-256, Encrypt|Decrypt), with a Name when given. */
export function createRequest(name?: string): Buffer {
  const attrs = [
    attr('Cryptographic Algorithm', T.enum(Tag.AttributeValue, Enums.CryptographicAlgorithm.AES)),
    attr('Cryptographic Length', T.int(Tag.AttributeValue, 256)),
    attr('Cryptographic Usage Mask', T.int(Tag.AttributeValue, 12)),
  ];
  if (name !== undefined) attrs.push(nameAttr(name));
  return request(Enums.Operation.Create, [T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey), T.struct(Tag.TemplateAttribute, attrs)]);
}

export function getRequest(uid: string): Buffer {
  return request(Enums.Operation.Get, [T.text(Tag.UniqueIdentifier, uid)]);
}

export function locateByNameRequest(name: string): Buffer {
  return request(Enums.Operation.Locate, [nameAttr(name)]);
}

// ---- responses -------------------------------------------------------------------------------

/** Result Status: tag 42007F, type Enumeration, length 4. */
const RESULT_STATUS = Buffer.from('42007f0500000004', 'hex');

function findChild(s: StructureNode, tag: number): TtlvNode | undefined {
  return s.value.find((c) => c.tag === tag);
}

/** Why a response is not a success, read from the whole tree (only on the failure path). */
function describeFailure(frame: Buffer): string {
  try {
    const root = decodeTtlv(frame);
    if (root.type !== 'Structure') return 'response is not a structure';
    const item = findChild(root, Tag.BatchItem);
    if (item?.type !== 'Structure') return 'response has no batch item';
    const reason = findChild(item, Tag.ResultReason);
    const message = findChild(item, Tag.ResultMessage);
    const r = reason?.type === 'Enumeration' ? (enumValueName('ResultReason', reason.value) ?? String(reason.value)) : 'no reason';
    return `${r}${message?.type === 'TextString' ? `: ${message.value}` : ''}`;
  } catch (e) {
    return `undecodable response: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** undefined for a Success response, else why not. Cheap on the success path (a byte search). */
function checkResponse(frame: Buffer): string | undefined {
  const at = frame.indexOf(RESULT_STATUS);
  if (at < 0 || at + 12 > frame.length) return describeFailure(frame);
  return frame.readUInt32BE(at + 8) === Enums.ResultStatus.Success ? undefined : describeFailure(frame);
}

function responseText(frame: Buffer, tag: number): string | undefined {
  const root = decodeTtlv(frame);
  if (root.type !== 'Structure') return undefined;
  const item = findChild(root, Tag.BatchItem);
  if (item?.type !== 'Structure') return undefined;
  const payload = findChild(item, Tag.ResponsePayload);
  if (payload?.type !== 'Structure') return undefined;
  const v = findChild(payload, tag);
  return v?.type === 'TextString' ? v.value : undefined;
}

// ---- load generation ---------------------------------------------------------------------------

interface Target {
  port: number;
  creds: Creds;
  /** The server's process id, for its CPU time over the measuring window (Linux /proc). */
  pid?: number;
}

/** One server, or several nodes serving the same keys: connection (or worker) i goes to node i mod n. */
type Targets = Target | readonly Target[];

function targetList(t: Targets): readonly Target[] {
  return Array.isArray(t) ? (t as readonly Target[]) : [t as Target];
}

function nodeFor(t: Targets, i: number): Target {
  const l = targetList(t);
  return l[i % l.length]!;
}

/** The server process ids (undefined when any is unknown: no server CPU figure then). */
function pidsOf(t: Targets): number[] | undefined {
  const l = targetList(t);
  return l.every((x) => x.pid !== undefined) ? l.map((x) => x.pid!) : undefined;
}

/** User + system CPU time of whole processes (all threads), summed, ms; undefined without /proc. */
function processesCpuMs(pids: readonly number[]): number | undefined {
  let sum = 0;
  for (const p of pids) {
    const ms = processCpuMs(p);
    if (ms === undefined) return undefined;
    sum += ms;
  }
  return sum;
}

/** User + system CPU time of a whole process (all threads), ms; undefined without /proc. */
function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 (utime, stime) of proc(5), in clock ticks (USER_HZ: 100 on Linux).
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

/** CPU time all processes used (busy, not idle or iowait), ms; undefined without /proc. */
function systemBusyMs(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const busy = (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0);
    return (busy * 1000) / 100;
  } catch {
    return undefined;
  }
}

function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

interface Snap {
  server: number | undefined;
  own: number;
  system: number | undefined;
}

/** CPU used by the server, by this (load-generating) process and by everything, between two instants. */
class CpuWindow {
  private from: Snap | undefined;
  private to: Snap | undefined;
  private readonly timers: NodeJS.Timeout[];
  constructor(
    private readonly pids: readonly number[] | undefined,
    startInMs: number,
    endInMs: number,
  ) {
    this.timers = [setTimeout(() => (this.from = this.snap()), startInMs), setTimeout(() => (this.to ??= this.snap()), endInMs)];
  }
  private snap(): Snap {
    return { server: this.pids === undefined ? undefined : processesCpuMs(this.pids), own: ownCpuMs(), system: systemBusyMs() };
  }
  /** CPU ms over the window (server, this process, everything), once it has started. */
  finish(): Snap | undefined {
    for (const t of this.timers) clearTimeout(t);
    if (!this.from) return undefined;
    this.to ??= this.snap();
    const a = this.from;
    const b = this.to;
    const d = (x: number | undefined, y: number | undefined) => (x !== undefined && y !== undefined ? y - x : undefined);
    return { server: d(a.server, b.server), own: b.own - a.own, system: d(a.system, b.system) };
  }
}

export interface LoadResult {
  /** Completed (answered) requests per second in the measuring window, errors included. */
  rate: number;
  completed: number;
  errors: number;
  firstError?: string;
  p50Ms?: number;
  p99Ms?: number;
  /** Negotiated protocol and cipher of the first connection. */
  tls?: string;
  /** Server CPU over the window, in cores (1 = one core busy all the time; all nodes together). */
  serverCores?: number;
  /** Server CPU time per answered request, µs. */
  serverUsPerReq?: number;
  /** This process's CPU over the window, in cores: near 1 means the load generator is the limit. */
  clientCores?: number;
  /** CPU used by everything else on the machine over the window, in cores (noise). */
  otherCores?: number;
}

function tlsOptions(t: Target, extra: tls.ConnectionOptions = {}): tls.ConnectionOptions {
  return { host: '127.0.0.1', port: t.port, servername: 'localhost', ca: t.creds.ca, cert: t.creds.cert, key: t.creds.key, ...extra };
}

function connect(t: Target, extra: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolvePromise, reject) => {
    const s = tls.connect(tlsOptions(t, extra));
    s.setTimeout(15_000, () => s.destroy(new Error('TLS connect timed out')));
    s.once('secureConnect', () => {
      s.setTimeout(0);
      s.setNoDelay(true);
      resolvePromise(s);
    });
    s.once('error', reject);
  });
}

function describeTls(s: tls.TLSSocket): string {
  return `${s.getProtocol() ?? '?'} ${s.getCipher().name}`;
}

function percentile(sorted: Float64Array, p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** Counts answers and latencies inside the measuring window [measureFrom, measureTo). */
class Stats {
  completed = 0;
  errors = 0;
  firstError: string | undefined;
  total = 0;
  private lat = new Float64Array(1 << 16);
  private nLat = 0;
  private readonly cpu: CpuWindow;
  constructor(
    readonly measureFrom: number,
    readonly measureTo: number,
    pids: readonly number[] | undefined,
  ) {
    const now = performance.now();
    this.cpu = new CpuWindow(pids, measureFrom - now, measureTo - now);
  }

  done(sentAt: number, at: number, error: string | undefined): void {
    this.total++;
    if (error !== undefined) this.fail(error);
    if (at < this.measureFrom || at >= this.measureTo) return;
    this.completed++;
    if (sentAt >= this.measureFrom) {
      if (this.nLat === this.lat.length) {
        const grown = new Float64Array(this.lat.length * 2);
        grown.set(this.lat);
        this.lat = grown;
      }
      this.lat[this.nLat++] = at - sentAt;
    }
  }

  fail(error: string): void {
    this.errors++;
    this.firstError ??= error;
  }

  result(): LoadResult {
    const lat = this.lat.subarray(0, this.nLat).sort();
    const r: LoadResult = { rate: (this.completed * 1000) / (this.measureTo - this.measureFrom), completed: this.completed, errors: this.errors };
    if (this.firstError !== undefined) r.firstError = this.firstError;
    const p50 = percentile(lat, 0.5);
    const p99 = percentile(lat, 0.99);
    if (p50 !== undefined) r.p50Ms = p50;
    if (p99 !== undefined) r.p99Ms = p99;
    const cpu = this.cpu.finish();
    if (cpu) {
      const windowMs = this.measureTo - this.measureFrom;
      r.clientCores = cpu.own / windowMs;
      if (cpu.server !== undefined) {
        r.serverCores = cpu.server / windowMs;
        if (this.completed > 0) r.serverUsPerReq = (cpu.server * 1000) / this.completed;
        // Kernel time of loopback TCP lands on both sides; this is what is left for others.
        if (cpu.system !== undefined) r.otherCores = Math.max(0, (cpu.system - cpu.server - cpu.own) / windowMs);
      }
    }
    return r;
  }
}

interface Timing {
  warmupMs: number;
  measureMs: number;
}

/**
 * `conns` persistent connections; each sends a request, waits for its answer, sends the next,
 * from the start of warm-up to the end of the measuring window.
 */
export async function persistentLoad(t: Targets, conns: number, next: (conn: number) => Buffer, timing: Timing): Promise<LoadResult> {
  const socks = await Promise.all(Array.from({ length: conns }, (_, i) => connect(nodeFor(t, i))));
  const info = socks[0] ? describeTls(socks[0]) : undefined;
  const start = performance.now();
  const stats = new Stats(start + timing.warmupMs, start + timing.warmupMs + timing.measureMs, pidsOf(t));
  const watchdog = setTimeout(() => {
    for (const s of socks) s.destroy(new Error('request stalled past the end of the case'));
  }, timing.warmupMs + timing.measureMs + STALL_MS);
  await Promise.all(
    socks.map(
      (s, ci) =>
        new Promise<void>((done) => {
          const framer = new FrameDecoder({ maxMessageSize: 64 * 1024 * 1024 });
          let sentAt = 0;
          let finished = false;
          const finish = () => {
            if (finished) return;
            finished = true;
            s.removeAllListeners('data');
            done();
          };
          const send = () => {
            const now = performance.now();
            if (now >= stats.measureTo || stats.total >= MAX_REQUESTS_PER_CASE) return finish();
            sentAt = now;
            s.write(next(ci));
          };
          s.on('data', (chunk: Buffer) => {
            let frames: Buffer[];
            try {
              frames = framer.push(chunk);
            } catch (e) {
              stats.fail(`bad frame: ${(e as Error).message}`);
              s.destroy();
              return finish();
            }
            for (const f of frames) {
              stats.done(sentAt, performance.now(), checkResponse(f));
              send();
            }
          });
          s.on('error', (e) => {
            if (!finished) stats.fail(`connection error: ${e.message}`);
            finish();
          });
          s.on('close', () => {
            if (!finished) stats.fail('the server closed the connection');
            finish();
          });
          send();
        }),
    ),
  );
  clearTimeout(watchdog);
  for (const s of socks) s.destroy();
  const r = stats.result();
  if (info !== undefined) r.tls = info;
  return r;
}

/**
 * `workers` loops of: new TLS connection (full handshake, no session reuse), one request
 * (none when `req` is undefined: handshake only), close. The latency is connect-to-answer.
 */
export async function newConnectionLoad(t: Targets, workers: number, req: Buffer | undefined, timing: Timing, extra: tls.ConnectionOptions): Promise<LoadResult> {
  const start = performance.now();
  const stats = new Stats(start + timing.warmupMs, start + timing.warmupMs + timing.measureMs, pidsOf(t));
  let info: string | undefined;
  await Promise.all(
    Array.from(
      { length: workers },
      (_, w) =>
        new Promise<void>((done) => {
          const node = nodeFor(t, w);
          const one = () => {
            const t0 = performance.now();
            if (t0 >= stats.measureTo || stats.total >= MAX_REQUESTS_PER_CASE) return done();
            const s = tls.connect(tlsOptions(node, extra));
            const framer = new FrameDecoder({ maxMessageSize: 64 * 1024 * 1024 });
            let settled = false;
            const settle = (error: string | undefined, answered: boolean) => {
              if (settled) return;
              settled = true;
              s.setTimeout(0);
              if (answered) stats.done(t0, performance.now(), error);
              else if (error !== undefined) stats.fail(error);
              if (answered && error === undefined) s.end();
              else s.destroy();
              // Back off a little after a failure, so a refusing server is not hammered.
              if (answered && error === undefined) setImmediate(one);
              else setTimeout(one, 20);
            };
            s.setTimeout(STALL_MS, () => settle('timed out', false));
            s.once('secureConnect', () => {
              info ??= describeTls(s);
              s.setNoDelay(true);
              if (req) s.write(req);
              else settle(undefined, true);
            });
            s.on('data', (chunk: Buffer) => {
              try {
                const frames = framer.push(chunk);
                const f = frames[0];
                if (f) settle(checkResponse(f), true);
              } catch (e) {
                settle(`bad frame: ${(e as Error).message}`, true);
              }
            });
            s.on('error', (e) => settle(`connection error: ${e.message}`, false));
            s.on('close', () => settle('closed before the answer', false));
          };
          one();
        }),
    ),
  );
  const r = stats.result();
  if (info !== undefined) r.tls = info;
  return r;
}

/** One request on an open connection; resolves with the answer (set-up steps only). */
function exchange(s: tls.TLSSocket, req: Buffer, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((res, rej) => {
    const fr = new FrameDecoder({ maxMessageSize: 64 * 1024 * 1024 });
    const cleanup = () => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('error', onError);
      s.off('close', onClose);
    };
    const onData = (c: Buffer) => {
      const f = fr.push(c)[0];
      if (f) {
        cleanup();
        res(f);
      }
    };
    const onError = (e: Error) => {
      cleanup();
      rej(e);
    };
    const onClose = () => onError(new Error('connection closed before the answer'));
    const timer = setTimeout(() => onError(new Error('no answer in time')), timeoutMs);
    s.on('data', onData);
    s.on('error', onError);
    s.on('close', onClose);
    s.write(req);
  });
}

/** Sends requests 0..count-1 over `conns` connections, one at a time on each; counts failures. */
export async function sendCount(t: Targets, conns: number, count: number, make: (i: number) => Buffer): Promise<{ errors: number; firstError?: string }> {
  const socks = await Promise.all(Array.from({ length: Math.min(conns, count) }, (_, i) => connect(nodeFor(t, i))));
  let nextIndex = 0;
  let errors = 0;
  let firstError: string | undefined;
  try {
    await Promise.all(
      socks.map(async (s) => {
        while (nextIndex < count) {
          const answer = await exchange(s, make(nextIndex++));
          const err = checkResponse(answer);
          if (err !== undefined) {
            errors++;
            firstError ??= err;
          }
        }
      }),
    );
  } finally {
    for (const s of socks) s.destroy();
  }
  return firstError === undefined ? { errors } : { errors, firstError };
}

// ---- child processes ---------------------------------------------------------------------------

function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface NodeChild {
  child: ChildProcess;
  port: number;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * Spawns `node ARGS` with stdout and stderr going to `logFile` (read by nobody during the
 * run: no pipe for the bench process to drain), and waits for a JSON line `msg` with a port.
 */
async function spawnNode(args: string[], logFile: string, msg: string, timeoutMs: number, env: NodeJS.ProcessEnv = {}): Promise<NodeChild> {
  const fd = openSync(logFile, 'w');
  const child = spawn(process.execPath, args, { cwd: REPO, env: childEnv(env), stdio: ['pipe', fd, fd] });
  closeSync(fd);
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  let exited: string | undefined;
  child.once('exit', (code, sig) => {
    exited = `exited with ${code ?? sig}`;
  });
  child.once('error', (e) => {
    exited = `could not be started: ${e.message}`;
  });
  const stop = async (): Promise<void> => {
    process.off('exit', kill);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(t);
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = '';
    try {
      text = readFileSync(logFile, 'utf8');
    } catch {
      // not written yet
    }
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const o = JSON.parse(line) as { msg?: unknown; port?: unknown };
        if (o.msg === msg && typeof o.port === 'number') return { child, port: o.port, logFile, stop };
      } catch {
        // a partial line
      }
    }
    if (exited !== undefined || Date.now() > deadline) {
      await stop();
      const tail = text.trimEnd().split('\n').slice(-5).join('\n');
      throw new Error(`${args.join(' ')}: ${exited ?? 'did not start in time'}\n${tail}`);
    }
    await sleep(50);
  }
}

// ---- a quiet machine, and the disk ------------------------------------------------------------------

/**
 * Waits (bounded) until the rest of the machine is nearly idle: CPU used by all processes minus
 * this one, sampled over 250 ms, below QUIET_CORES. Other work on a 2-core machine halves the
 * figures; when the wait runs out the case runs anyway and its row is flagged NOISY.
 * Returns the ms waited.
 */
const QUIET_CORES = 0.25;
async function waitQuiet(maxMs: number): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const s0 = systemBusyMs();
    const o0 = ownCpuMs();
    await sleep(250);
    const s1 = systemBusyMs();
    const o1 = ownCpuMs();
    if (s0 === undefined || s1 === undefined) return 0;
    const others = (s1 - s0 - (o1 - o0)) / 250;
    const waited = performance.now() - t0;
    if (others < QUIET_CORES || waited >= maxMs) return waited;
  }
}

/**
 * Median latency of append 4 KiB + fsync in `dir` (what one SQLite WAL commit with
 * synchronous=FULL costs at least), ms. With C one-at-a-time connections a durable server commits
 * at most C requests per fsync: C / this is the bound on its Create rate.
 */
export function fsyncMedianMs(dir: string, n = 100): number {
  const file = join(dir, `fsync-probe-${process.pid}`);
  const fd = openSync(file, 'w');
  const page = Buffer.alloc(4096, 0x5a);
  const lat: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      writeSync(fd, page);
      fsyncSync(fd);
      lat.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  lat.sort((a, b) => a - b);
  return lat[Math.floor(lat.length / 2)] ?? 0;
}

// ---- CPU profile summary -------------------------------------------------------------------------

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

function shortUrl(url: string): string {
  const i = url.indexOf('/dist/');
  if (i >= 0) return url.slice(i + 6);
  const n = url.indexOf('/node_modules/');
  if (n >= 0) return url.slice(n + 14);
  return url.replace(/^file:\/\//, '');
}

function category(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  if (url.startsWith('node:')) {
    const m = /^node:internal\/([a-z_]+)/.exec(url);
    return `node:${m?.[1] ?? url.slice(5)}`;
  }
  const n = /\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (n) return n[1] ?? 'node_modules';
  const d = /\/dist\/src\/([a-z]+)\//.exec(url);
  if (d) return `kmipd src/${d[1] ?? ''}`;
  return shortUrl(url);
}

/** The top functions and areas by self time in the .cpuprofile files of `dir`. */
export function summarizeProfiles(dir: string, who: string, top = 25): string {
  const byFn = new Map<string, number>();
  const byCat = new Map<string, number>();
  let total = 0;
  let files = 0;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
    files++;
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
    p.samples.forEach((id, i) => {
      const us = p.timeDeltas[i] ?? 0;
      const cf = nodes.get(id);
      if (!cf) return;
      total += us;
      const fnKey = `${cf.functionName || '(anonymous)'}  ${cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : ''}`.trimEnd();
      byFn.set(fnKey, (byFn.get(fnKey) ?? 0) + us);
      const cat = category(cf.url, cf.functionName);
      byCat.set(cat, (byCat.get(cat) ?? 0) + us);
    });
  }
  if (files === 0 || total === 0) return `no CPU profile in ${dir}`;
  const busy = total - (byFn.get('(idle)') ?? 0);
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
  const lines = [`${who} CPU profile (${files} file(s), ${(busy / 1e6).toFixed(1)} s busy of ${(total / 1e6).toFixed(1)} s; % of busy):`, '  by area:'];
  for (const [k, v] of [...byCat].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`    ${pct(v)}  ${k}`);
  lines.push('  top functions (self time):');
  for (const [k, v] of [...byFn].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`    ${pct(v)}  ${k}`);
  return lines.join('\n');
}

// ---- the bench -------------------------------------------------------------------------------------

/** p2: one connection per node of a two-node variant (no ceiling row to compare with). */
type LoadKey = 'p1' | 'p2' | 'p8' | 'newconn' | 'handshake';

/** How kmipd runs: its keystore and how many nodes share it. */
interface Variant {
  /** 'sqlite' (the default run, labelled plain "kmipd"), 'postgres-1', 'postgres-2'. */
  id: string;
  store: BenchStore;
  nodes: 1 | 2;
  /** The server column of its rows. */
  label: string;
}

function variantsFor(stores: readonly BenchStore[]): Variant[] {
  const out: Variant[] = [];
  for (const store of stores) {
    if (store === 'sqlite') out.push({ id: 'sqlite', store, nodes: 1, label: stores.length > 1 ? 'kmipd sqlite' : 'kmipd' });
    else out.push({ id: 'postgres-1', store, nodes: 1, label: 'kmipd pg ×1' }, { id: 'postgres-2', store, nodes: 2, label: 'kmipd pg ×2' });
  }
  return out;
}

interface Row {
  server: string;
  /** Which server: kmipd (any variant), the ceiling, the durable ceiling or PyKMIP. */
  kind: 'kmipd' | 'ceiling' | 'durable ceiling' | 'PyKMIP';
  /** The kmipd variant (Variant.id). */
  variant?: string;
  label: string;
  /** The case's label as for one server (what filters and the goals match). */
  base?: string;
  load: LoadKey;
  result?: LoadResult;
  note?: string;
}

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function notesFor(r: Row): string {
  const parts: string[] = [];
  if (r.note) parts.push(r.note);
  if (r.result?.tls) parts.push(r.result.tls);
  if (r.result?.otherCores !== undefined && r.result.otherCores >= NOISY_CORES) parts.push(`NOISY: other processes used ${fmt(r.result.otherCores, 2)} cores`);
  if (r.result && r.result.errors > 0) parts.push(`${fmt(r.result.errors)} errors, first: ${r.result.firstError ?? '?'}`);
  return parts.join('; ');
}

function printTable(rows: Row[], ceilingOf: (load: LoadKey) => number | undefined, out: (s: string) => void): void {
  const head = ['server', 'load', 'req/s', 'p50 ms', 'p99 ms', 'of ceiling', 'srv CPU', 'srv µs/req', 'gen CPU', 'notes'];
  const body = rows.map((r) => {
    const c = ceilingOf(r.load);
    const ratio = r.kind !== 'ceiling' && r.result && c ? `${((100 * r.result.rate) / c).toFixed(1)} %` : '';
    const x = r.result;
    return [r.server, r.label, x ? fmt(x.rate) : '—', fmt(x?.p50Ms, 2), fmt(x?.p99Ms, 2), ratio, fmt(x?.serverCores, 2), fmt(x?.serverUsPerReq), fmt(x?.clientCores, 2), notesFor(r)];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const right = new Set([2, 3, 4, 5, 6, 7, 8]);
  const line = (cells: string[]) => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  out(line(head));
  out(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const b of body) out(line(b));
}

/** A running kmipd variant: its nodes (one or two processes on one keystore). */
interface KmipdRun {
  nodes: NodeChild[];
  /** The first node's data directory (its PKI serves the ceiling). */
  dataDir: string;
  creds: Creds;
  targets: Target[];
}

const BUNDLE_PASSPHRASE = 'kmipd bench node bundle passphrase';

/** `node bin/kmipd ARGS` to completion (set-up commands such as `node export`). */
function runKmipdCommand(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [KMIPD_BIN, ...args], { cwd: REPO, env: childEnv(env), stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolvePromise() : reject(new Error(`kmipd ${args.slice(0, 2).join(' ')} exited with ${String(code)}: ${err.trim()}`))));
  });
}

async function run(ctx: BenchContext): Promise<void> {
  // In --json mode stdout carries the JSON document: this module's own table goes to stderr.
  const out = process.argv.includes('--json') ? (s: string) => process.stderr.write(`${s}\n`) : (s: string) => process.stdout.write(`${s}\n`);
  const seconds = Number(process.env.KMIPD_BENCH_SECONDS ?? '4');
  const measureMs = Math.max(200, (Number.isFinite(seconds) && seconds > 0 ? seconds : 4) * 1000);
  const timing: Timing = { measureMs, warmupMs: Math.min(1000, measureMs / 4) };
  const profDir = process.env.KMIPD_BENCH_CPU_PROF ? resolve(process.env.KMIPD_BENCH_CPU_PROF) : undefined;
  const rows: Row[] = [];
  const want = (server: string, label: string) => ctx.wants(`${server} ${label}`);
  let quietBudgetMs = QUIET_BUDGET_MS;
  let waitedTotal = 0;
  /** `filterLabel`: the label filters match (the same for every variant, so `kmipd get` selects them all). */
  const case_ = async (
    who: { server: string; kind: Row['kind']; variant?: string },
    label: string,
    load: LoadKey,
    fn: () => Promise<LoadResult>,
    note?: string,
    filterLabel = label,
  ): Promise<Row | undefined> => {
    if (!want(who.kind, filterLabel)) return undefined;
    const waited = await waitQuiet(Math.min(QUIET_PER_CASE_MS, quietBudgetMs));
    quietBudgetMs = Math.max(0, quietBudgetMs - waited);
    waitedTotal += waited;
    const row: Row = { server: who.server, kind: who.kind, label, base: filterLabel, load };
    if (who.variant !== undefined) row.variant = who.variant;
    if (note) row.note = note;
    try {
      row.result = await fn();
    } catch (e) {
      row.note = `${note ? `${note}; ` : ''}failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
    }
    rows.push(row);
    process.stderr.write(`  ${who.server} ${label}: ${row.result ? `${fmt(row.result.rate)} req/s` : row.note}\n`);
    return row;
  };
  const CEILING = { server: 'ceiling', kind: 'ceiling' } as const;
  const DURABLE = { server: 'ceiling + fsync', kind: 'durable ceiling' } as const;
  const PYKMIP = { server: 'PyKMIP', kind: 'PyKMIP' } as const;
  const labels = {
    get1: 'Get, 1 connection',
    get8: `Get, ${CONNS} connections`,
    loc1: 'Locate by Name, 1 connection',
    loc8: `Locate by Name, ${CONNS} connections`,
    cre1: 'Create (durable), 1 connection',
    cre8: `Create (durable), ${CONNS} connections`,
    newGet: `Get, new TLS connection per request, ${CONNS} workers`,
    hs: `TLS handshake only, ${CONNS} workers`,
  };
  const variants = variantsFor(ctx.stores);
  const wantKmipd = Object.values(labels).some((l) => want('kmipd', l));
  const wantCeiling = Object.values(labels).some((l) => want('ceiling', l));
  const wantDurable = [labels.get1, labels.get8].some((l) => want(DURABLE.kind, l));
  const wantPy = !process.env.KMIPD_BENCH_NO_PYKMIP && Object.values(labels).some((l) => want('PyKMIP', l));
  if (!wantKmipd && !wantCeiling && !wantDurable && !wantPy) return;
  // vCenter's way: TLS 1.2, full handshake every time (no session resumption).
  const vcenterTls: tls.ConnectionOptions = { maxVersion: 'TLSv1.2' };

  out(`\nserver: KMIP 1.2 over mutual TLS on 127.0.0.1; each server in its own process, load from this one;`);
  out(`${fmt(timing.warmupMs)} ms warm-up + ${fmt(timing.measureMs)} ms per case; connections send one request at a time;`);
  out('srv CPU: server process cores over the case, srv µs/req: its CPU per answer, gen CPU: the load generator (this process)');
  if (variants.some((v) => v.store === 'postgres')) {
    out('kmipd pg ×1: one node on a PostgreSQL keystore (fsync on); kmipd pg ×2: two nodes on one PostgreSQL database, the load split evenly');
    out('(connection or worker i on node i mod 2; srv CPU: both nodes together, PostgreSQL itself not counted)');
  }
  out('');
  const work = mkdtempSync(join(tmpdir(), 'kmipd-bench-server-'));
  let kmipd: KmipdRun | undefined;
  let ceiling: NodeChild | undefined;
  let durableCeiling: NodeChild | undefined;
  let py: PyKmipServer | undefined;
  let pgc: PgCluster | undefined;
  let fsyncMs: number | undefined;
  let pyWhy: string | undefined;
  const stopKmipd = async (): Promise<void> => {
    const r = kmipd;
    kmipd = undefined;
    for (const n of r?.nodes ?? []) await n.stop();
  };
  const profArgs = (who: string): string[] => {
    if (!profDir) return [];
    mkdirSync(join(profDir, who), { recursive: true });
    return ['--cpu-prof', `--cpu-prof-dir=${join(profDir, who)}`];
  };
  const profiles: string[] = [];
  /** The PKI, creds and canned Get answer size the ceiling needs (from the first kmipd run). */
  let firstDataDir: string | undefined;
  let creds: Creds | undefined;
  let getReq: Buffer | undefined;
  let getResponseBytes: number | undefined;

  /** Starts the nodes of `v` on fresh data directories (and, for PostgreSQL, a fresh database). */
  const startVariant = async (v: Variant): Promise<KmipdRun> => {
    const base = join(work, v.id);
    const dirs = Array.from({ length: v.nodes }, (_, i) => join(base, `node${i + 1}`));
    const env: NodeJS.ProcessEnv = {};
    const storeArgs: string[] = [];
    if (v.store === 'postgres') {
      if (pgc === undefined) {
        const req = postgresRequirement();
        if (!req.ok) throw new Error(`no PostgreSQL server here (${req.why})`);
        process.stderr.write('server bench: starting a throw-away PostgreSQL cluster\n');
        pgc = await startPgCluster(req.bindir, { durable: true });
      }
      storeArgs.push('--store', await pgc.createDatabase(`bench_${v.id.replace(/\W/g, '_')}_${process.pid}`));
      env.PGPASSWORD = pgc.password;
      env.KMIPD_BUNDLE_PASSPHRASE = BUNDLE_PASSPHRASE;
    }
    const r: KmipdRun = { nodes: [], dataDir: dirs[0]!, creds: { ca: '', cert: '', key: '' }, targets: [] };
    kmipd = r;
    const serve = async (i: number, extra: string[]): Promise<void> => {
      const who = v.nodes > 1 ? `kmipd-${v.id}-node${i + 1}` : v.id === 'sqlite' ? 'kmipd' : `kmipd-${v.id}`;
      const args = [...profArgs(who), KMIPD_BIN, 'serve', '--data', dirs[i]!, '--host', '127.0.0.1', '--port', '0', '--admin-port', 'off', ...extra];
      mkdirSync(base, { recursive: true });
      r.nodes.push(await spawnNode(args, join(base, `kmipd-node${i + 1}.log`), 'kmipd listening', 120_000, env));
      if (profDir) profilesOf.push([join(profDir, who), who]);
    };
    process.stderr.write(`server bench: starting ${v.label} (first run: CA, server certificate, master key)\n`);
    await serve(0, storeArgs);
    if (v.nodes === 2) {
      // The second node as an operator sets it up: a node bundle of the first, joined.
      const bundle = join(base, 'node.bundle');
      await runKmipdCommand(['node', 'export', '--data', dirs[0]!, '--out', bundle], env);
      await serve(1, ['--join', bundle]);
    }
    const issued = await issueClientCert(loadCa(dirs[0]!), { commonName: 'bench' });
    r.creds = { ca: readFileSync(join(dirs[0]!, 'pki', 'ca.crt'), 'utf8'), cert: issued.certPem, key: issued.keyPem };
    r.targets = r.nodes.map((n) => {
      const t: Target = { port: n.port, creds: r.creds };
      if (n.child.pid !== undefined) t.pid = n.child.pid;
      return t;
    });
    return r;
  };
  const profilesOf: [string, string][] = [];

  /** The kmipd cases on variant `v` (its rows labelled by its store and node count). */
  const kmipdCases = async (v: Variant): Promise<void> => {
    const who = { server: v.label, kind: 'kmipd' as const, variant: v.id };
    const r = await startVariant(v);
    const k = r.targets;
    // The key every Get fetches (on the first node), and the Get response size (for the ceiling's canned answer).
    const sock = await connect(k[0]!);
    const created = await exchange(sock, createRequest('bench-get-target'));
    const createErr = checkResponse(created);
    if (createErr) throw new Error(`kmipd Create failed: ${createErr}`);
    const uid = responseText(created, Tag.UniqueIdentifier);
    if (!uid) throw new Error('kmipd Create returned no Unique Identifier');
    const req = getRequest(uid);
    const got = await exchange(sock, req);
    const getErr = checkResponse(got);
    if (getErr) throw new Error(`kmipd Get failed: ${getErr}`);
    sock.destroy();
    if (firstDataDir === undefined) {
      firstDataDir = r.dataDir;
      creds = r.creds;
      getReq = req;
      getResponseBytes = got.length;
    }
    if (!wantKmipd) return;
    const two = v.nodes === 2;
    // Two nodes: the 1-connection cases become one connection per node, the others are split.
    const one = two ? 2 : 1;
    const oneLoad: LoadKey = two ? 'p2' : 'p1';
    const l = (base: string, key: 'one' | 'many' | 'workers'): string => {
      if (!two) return base;
      if (key === 'one') return base.replace('1 connection', '1 connection per node');
      return `${base} (${CONNS / 2} per node)`;
    };
    await case_(who, l(labels.get1, 'one'), oneLoad, () => persistentLoad(k, one, () => req, timing), undefined, labels.get1);
    await case_(who, l(labels.get8, 'many'), 'p8', () => persistentLoad(k, CONNS, () => req, timing), undefined, labels.get8);
    if (want('kmipd', labels.loc1) || want('kmipd', labels.loc8)) {
      const t0 = performance.now();
      const pop = await sendCount(k, CONNS, POPULATE, (i) => createRequest(`bench-key-${i}`));
      if (pop.errors > 0) throw new Error(`populating the store failed: ${pop.firstError ?? '?'}`);
      process.stderr.write(`  ${v.label}: created ${fmt(POPULATE)} named keys in ${fmt(performance.now() - t0)} ms\n`);
      // Every connection walks the names in its own order; each Locate matches one key.
      const locates = Array.from({ length: POPULATE }, (_, i) => locateByNameRequest(`bench-key-${(i * 7919) % POPULATE}`));
      const cursor = Array.from({ length: CONNS }, (_, c) => (c * 397) % POPULATE);
      const nextLocate = (c: number): Buffer => {
        const i = cursor[c]!;
        cursor[c] = (i + 1) % POPULATE;
        return locates[i]!;
      };
      const note = `${fmt(POPULATE + 1)} keys in the store, 1 match`;
      await case_(who, l(labels.loc1, 'one'), oneLoad, () => persistentLoad(k, one, nextLocate, timing), note, labels.loc1);
      await case_(who, l(labels.loc8, 'many'), 'p8', () => persistentLoad(k, CONNS, nextLocate, timing), note, labels.loc8);
    }
    const cre = createRequest();
    if (fsyncMs === undefined && (want('kmipd', labels.cre1) || want('kmipd', labels.cre8))) fsyncMs = fsyncMedianMs(work);
    const bound = (conns: number) => (fsyncMs ? `fsync p50 ${fmt(fsyncMs, 2)} ms: ≤ ${fmt((conns * 1000) / fsyncMs)}/s at ${conns} conn.` : undefined);
    await case_(who, l(labels.cre1, 'one'), oneLoad, () => persistentLoad(k, one, () => cre, timing), bound(one), labels.cre1);
    await case_(who, l(labels.cre8, 'many'), 'p8', () => persistentLoad(k, CONNS, () => cre, timing), bound(CONNS), labels.cre8);
    await case_(who, l(labels.newGet, 'workers'), 'newconn', () => newConnectionLoad(k, CONNS, req, timing, vcenterTls), 'full handshake each', labels.newGet);
  };

  try {
    // ---- kmipd, on each keystore variant ----
    for (const v of variants) {
      try {
        await kmipdCases(v);
      } catch (e) {
        const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
        // Without a first run the ceiling has nothing to compare with: as before, that is fatal.
        if (firstDataDir === undefined && v === variants[0]) throw e;
        rows.push({ server: v.label, kind: 'kmipd', variant: v.id, label: 'all cases', load: 'p8', note: `not measured: ${why}` });
      } finally {
        await stopKmipd();
      }
    }
    if (profDir) for (const [dir, who] of profilesOf) profiles.push(summarizeProfiles(dir, who));
    await pgc?.destroy();
    pgc = undefined;
    if (firstDataDir === undefined || creds === undefined || getReq === undefined || getResponseBytes === undefined) throw new Error('no kmipd run to compare with');
    const dataDir = firstDataDir;
    const kmipdCreds = creds;
    const responseBytes = getResponseBytes;

    /** ceiling.ts in its own process on kmipd's PKI (`who` names its log and profile folder). */
    const spawnCeiling = async (who: string, extra: string[]): Promise<{ child: NodeChild; target: Target }> => {
      const pki = join(dataDir, 'pki');
      const args = [CEILING_JS, '--cert', join(pki, 'server.crt'), '--key', join(pki, 'server.key'), '--ca', join(pki, 'ca.crt')];
      args.push('--port', '0', '--response-bytes', String(responseBytes), ...extra);
      const child = await spawnNode([...profArgs(who), ...args], join(work, `${who}.log`), 'ceiling listening', 30_000);
      const target: Target = { port: child.port, creds: kmipdCreds };
      if (child.child.pid !== undefined) target.pid = child.child.pid;
      return { child, target };
    };

    // ---- the ceiling ----
    if (wantCeiling) {
      const started = await spawnCeiling('ceiling', []);
      ceiling = started.child;
      const c = started.target;
      const note = `canned ${fmt(getResponseBytes)}-byte answer`;
      const req = getReq;
      await case_(CEILING, labels.get1, 'p1', () => persistentLoad(c, 1, () => req, timing), note);
      await case_(CEILING, labels.get8, 'p8', () => persistentLoad(c, CONNS, () => req, timing), note);
      await case_(CEILING, labels.newGet, 'newconn', () => newConnectionLoad(c, CONNS, req, timing, vcenterTls), 'full handshake each');
      await case_(CEILING, labels.hs, 'handshake', () => newConnectionLoad(c, CONNS, undefined, timing, vcenterTls), 'connect, handshake, close');
      await ceiling.stop();
      ceiling = undefined;
      if (profDir) profiles.push(summarizeProfiles(join(profDir, 'ceiling'), 'ceiling'));
    }

    // ---- the durable ceiling: the same, but each answer waits for a record of its request to be
    // flushed to disk (group commit), as kmipd's answers wait for their audit records ----
    if (wantDurable) {
      const started = await spawnCeiling('durable-ceiling', ['--durable', join(work, 'durable-ceiling.records')]);
      durableCeiling = started.child;
      const c = started.target;
      const note = `canned answer after a ${RECORD_BYTES}-byte record per request is flushed (fdatasync, shared by concurrent requests)`;
      const req = getReq;
      await case_(DURABLE, labels.get1, 'p1', () => persistentLoad(c, 1, () => req, timing), note);
      await case_(DURABLE, labels.get8, 'p8', () => persistentLoad(c, CONNS, () => req, timing), note);
      await durableCeiling.stop();
      durableCeiling = undefined;
      if (profDir) profiles.push(summarizeProfiles(join(profDir, 'durable-ceiling'), 'durable ceiling'));
    }

    // ---- PyKMIP ----
    if (wantPy) {
      process.stderr.write('server bench: starting PyKMIP\n');
      const started = await startPyKmip();
      if (!started.ok) pyWhy = started.why;
      else {
        py = started.server;
        const p: Target = { port: py.port, creds: py.creds, pid: py.pid };
        const pySock = await connect(p);
        const pyCreated = await exchange(pySock, createRequest('bench-get-target'));
        pySock.destroy();
        const err = checkResponse(pyCreated);
        const pyUid = err === undefined ? responseText(pyCreated, Tag.UniqueIdentifier) : undefined;
        if (pyUid === undefined) pyWhy = `PyKMIP Create failed: ${err ?? 'no Unique Identifier'}`;
        else {
          const pyGet = getRequest(pyUid);
          const cre = createRequest();
          const note = 'threads, one per connection';
          await case_(PYKMIP, labels.get1, 'p1', () => persistentLoad(p, 1, () => pyGet, timing));
          await case_(PYKMIP, labels.get8, 'p8', () => persistentLoad(p, CONNS, () => pyGet, timing), note);
          await case_(PYKMIP, labels.cre1, 'p1', () => persistentLoad(p, 1, () => cre, timing), 'SQLite via SQLAlchemy');
          await case_(PYKMIP, labels.cre8, 'p8', () => persistentLoad(p, CONNS, () => cre, timing), note);
          await case_(PYKMIP, labels.newGet, 'newconn', () => newConnectionLoad(p, CONNS, pyGet, timing, vcenterTls), 'full handshake each');
        }
      }
      if (pyWhy !== undefined) rows.push({ server: 'PyKMIP', kind: 'PyKMIP', label: 'all cases', load: 'p8', note: `not measured: ${pyWhy}` });
      await py?.stop();
      py = undefined;
    }

    // ---- the table and the targets ----
    const ceilingOf = (load: LoadKey) => rows.find((r) => r.kind === 'ceiling' && r.load === load)?.result?.rate;
    const ceilingUs = (load: LoadKey) => rows.find((r) => r.kind === 'ceiling' && r.load === load)?.result?.serverUsPerReq;
    const durableOf = (load: LoadKey) => rows.find((r) => r.kind === 'durable ceiling' && r.load === load)?.result?.rate;
    out('');
    printTable(rows, ceilingOf, out);
    const hs = ceilingOf('handshake');
    if (hs !== undefined) out(`\nceiling handshake rate (TLS 1.2, mutual, full): ${fmt(hs)} handshakes/s; with one Get each: ${fmt(ceilingOf('newconn'))} connections/s`);
    const targets: [string, string, LoadKey, number][] = [
      [`Get at ${CONNS} connections`, labels.get8, 'p8', TARGETS.get8],
      [`Create (durable) at ${CONNS} connections`, labels.cre8, 'p8', TARGETS.create8],
      ['Get with a new connection per request', labels.newGet, 'newconn', TARGETS.newConnGet],
    ];
    const lines: string[] = [];
    for (const v of variants) {
      // The goals are the SQLite server's; the PostgreSQL variants are compared for information.
      const isGoal = v.id === 'sqlite';
      const prefix = variants.length > 1 ? `${v.label}: ` : '';
      const kmipdRow = (load: LoadKey, base: string) => rows.find((r) => r.variant === v.id && r.load === load && r.base === base)?.result;
      for (const [what, label, load, target] of targets) {
        const row = kmipdRow(load, label);
        const rate = row?.rate;
        const ceil = ceilingOf(load);
        if (rate === undefined || ceil === undefined || ceil === 0) continue;
        const pct = (100 * rate) / ceil;
        if (isGoal) {
          const g = ctx.goal(`${what}, % of the ceiling`, pct, target, '%');
          lines.push(`  ${g.met ? 'MET   ' : 'MISSED'}  ${prefix}${what} ≥ ${target} % of the ceiling: ${pct.toFixed(1)} % (${fmt(rate)} vs ${fmt(ceil)} req/s)`);
        } else {
          lines.push(`  ${pct >= target ? 'above ' : 'below '}  ${prefix}${what}: ${pct.toFixed(1)} % of the ceiling (${fmt(rate)} vs ${fmt(ceil)} req/s; the SQLite goal is ≥ ${target} %)`);
        }
        // The same comparison by server CPU per request: what the ratio becomes once the server,
        // not the load generator, is the limit (and a figure other load on the machine moves less).
        const us = row?.serverUsPerReq;
        const cus = ceilingUs(load);
        if (us !== undefined && cus !== undefined && us > 0) {
          lines.push(`          server CPU per request: kmipd ${fmt(us)} µs, ceiling ${fmt(cus)} µs → ${((100 * cus) / us).toFixed(1)} % of the ceiling where the server is the limit`);
        }
        // What is left once every answer must wait for a durable record (kmipd's audit trail):
        // the durable ceiling, as a share of the ceiling, and kmipd as a share of it.
        const dur = durableOf(load);
        if (dur !== undefined && dur > 0) {
          lines.push(
            `          a record made durable before each answer: at most ${fmt(dur)} req/s here (${((100 * dur) / ceil).toFixed(1)} % of the ceiling);` +
              ` kmipd reaches ${((100 * rate) / dur).toFixed(1)} % of that`,
          );
        }
      }
    }
    if (lines.length) out(`\ntargets:\n${lines.join('\n')}`);
    if (fsyncMs) {
      const dur = durableOf('p8');
      out(
        `\ndurable Create: one fsync per group commit takes ${fmt(fsyncMs, 2)} ms here (append 4 KiB + fsync, median): the fsyncs alone would let ${CONNS}` +
          ` one-at-a-time connections make ${fmt((CONNS * 1000) / fsyncMs)} Creates/s` +
          (dur !== undefined
            ? `; with TLS, and each answer waiting for its flush, the durable ceiling measured ${fmt(dur)} req/s, doing nothing else.`
            : ', before TLS and the wait for each flush (the durable ceiling, not run here, measures both).'),
      );
    }
    const noisy = rows.filter((r) => r.result?.otherCores !== undefined && r.result.otherCores >= NOISY_CORES).length;
    out(
      `\nwaited ${fmt(waitedTotal / 1000, 1)} s for other processes to go quiet; ${noisy} of ${rows.length} cases ran while they used ≥ ${NOISY_CORES} cores (NOISY: low, rerun on a quiet machine)`,
    );
    for (const p of profiles) out(`\n${p}`);
    out('');
  } finally {
    await stopKmipd();
    await ceiling?.stop();
    await durableCeiling?.stop();
    await py?.stop();
    await pgc?.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}

const server: BenchModule = { name: 'server', run };
export default server;
