/**
 * Benchmark runner: `npm run bench` (builds, then runs dist/test/bench/run.js).
 *
 *   node dist/test/bench/run.js [filter...] [--duration=ms] [--warmup=ms] [--json] [--strict]
 *                               [--store=sqlite|postgres|sqlite,postgres]
 *
 * --store chooses the keystore(s) of the server benchmark (default sqlite): postgres runs kmipd on
 * a throw-away PostgreSQL cluster with one node, then with two nodes sharing it. Also from
 * KMIPD_BENCH_STORE, or `npm run bench --store=postgres` (npm keeps the flag and hands it over as
 * npm_config_store); `npm run bench -- server --store=postgres` passes it through directly.
 *
 * Each benchmark module exports a BenchModule; add one by importing it below and listing it in
 * MODULES. A module gets a BenchContext whose `measure` runs one operation repeatedly (warm-up,
 * then a fixed duration) and returns a row for the table; a module may also state goals, which
 * are printed as met or not met (and fail the run under --strict).
 *
 * Filters match module names or row names (substring), so `run.js codec` runs only the codec.
 */
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import codec from './codec.js';
import hsm from './hsm.js';
import server from './server.js';

export interface BenchRow {
  /** Module and case, e.g. "codec: decode Get request". */
  name: string;
  opsPerSec: number;
  /** Payload throughput, when the case has a meaningful byte count per operation. */
  mbPerSec?: number;
  notes?: string;
}

export interface BenchGoal {
  description: string;
  measured: number;
  target: number;
  unit: string;
  met: boolean;
}

export interface MeasureOptions {
  /** Bytes processed per operation, for the MB/s column. */
  bytesPerOp?: number;
  /** Operations each call of `fn` performs (default 1); fn may loop internally to cut call overhead. */
  opsPerCall?: number;
  notes?: string;
}

/** The keystores the server benchmark runs kmipd on. */
export const BENCH_STORES = ['sqlite', 'postgres'] as const;
export type BenchStore = (typeof BENCH_STORES)[number];

export interface BenchContext {
  /** The keystores to run the server on (--store), in order; ['sqlite'] by default. */
  stores: readonly BenchStore[];
  /** Measuring time per case, milliseconds. */
  durationMs: number;
  warmupMs: number;
  /**
   * Runs `fn` during warm-up, then for durationMs, and returns the row (also recorded for the
   * table); undefined, without running anything, when the filters leave this case out.
   */
  measure(name: string, fn: () => unknown, opts?: MeasureOptions): BenchRow | undefined;
  /** Records a goal for the summary. */
  goal(description: string, measured: number, target: number, unit: string): BenchGoal;
  /** True when the filters select this case (modules may skip expensive set-up otherwise). */
  wants(name: string): boolean;
}

export interface BenchModule {
  name: string;
  run(ctx: BenchContext): Promise<void> | void;
}

/** Every benchmark module, in the order they run. Later: server over TLS, HSM. */
const MODULES: readonly BenchModule[] = [codec, server, hsm];

// ---------------------------------------------------------------------------------------------

/** Keeps results observable so the JIT cannot drop the measured work. */
let sink = 0;
function consume(v: unknown): void {
  if (v === null || v === undefined) sink ^= 1;
  else if (typeof v === 'object') sink ^= (v as { length?: number }).length ?? 3;
  else sink ^= String(v).length;
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Calls fn in growing batches until `ms` have passed; returns [calls, elapsed ms]. */
function runFor(fn: () => unknown, ms: number): [number, number] {
  let calls = 0;
  let batch = 1;
  const start = now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < batch; i++) consume(fn());
    calls += batch;
    elapsed = now() - start;
    // Aim for ~10 ms between clock reads once the operation's cost is known.
    if (elapsed < ms / 20) batch *= 2;
  }
  return [calls, elapsed];
}

interface Args {
  stores: BenchStore[];
  filters: string[];
  durationMs: number;
  warmupMs: number;
  json: boolean;
  strict: boolean;
}

/** `sqlite`, `postgres`, or both comma-separated; throws for anything else. */
export function parseStores(v: string, from: string): BenchStore[] {
  const list = v.split(',').map((x) => x.trim().toLowerCase()).filter((x) => x !== '');
  const out: BenchStore[] = [];
  for (const x of list) {
    const s = x === 'pg' || x === 'postgresql' ? 'postgres' : x;
    if (!(BENCH_STORES as readonly string[]).includes(s)) throw new Error(`${from}: unknown store ${JSON.stringify(x)} (sqlite, postgres, or both comma-separated)`);
    if (!out.includes(s as BenchStore)) out.push(s as BenchStore);
  }
  if (out.length === 0) throw new Error(`${from}: name a store (sqlite, postgres)`);
  return out;
}

function defaultStores(env: NodeJS.ProcessEnv): BenchStore[] {
  if (env.KMIPD_BENCH_STORE) return parseStores(env.KMIPD_BENCH_STORE, 'KMIPD_BENCH_STORE');
  // `npm run bench --store=postgres`: npm takes the flag as its own config and exports it
  // (`--store postgres`, with a space, arrives as "true" and a positional `postgres`: parseArgs).
  if (env.npm_config_store && env.npm_config_store !== 'true') return parseStores(env.npm_config_store, 'npm run bench --store');
  return ['sqlite'];
}

function parseArgs(argv: string[]): Args {
  const a: Args = { stores: defaultStores(process.env), filters: [], durationMs: 1000, warmupMs: 300, json: false, strict: false };
  let storeWord = process.env.npm_config_store === 'true' && !process.env.KMIPD_BENCH_STORE;
  for (const arg of argv) {
    const [k, v] = arg.split('=', 2) as [string, string | undefined];
    if (k === '--store' && v) a.stores = parseStores(v, '--store');
    else if (k === '--duration' && v) a.durationMs = Number(v);
    else if (k === '--warmup' && v) a.warmupMs = Number(v);
    else if (k === '--json') a.json = true;
    else if (k === '--strict') a.strict = true;
    else if (k.startsWith('--')) throw new Error(`unknown option ${arg}`);
    else if (storeWord && (BENCH_STORES as readonly string[]).includes(arg.toLowerCase())) {
      a.stores = parseStores(arg, 'npm run bench --store');
      storeWord = false;
    } else a.filters.push(arg.toLowerCase());
  }
  if (!(a.durationMs > 0) || !(a.warmupMs >= 0)) throw new Error('--duration and --warmup take milliseconds');
  return a;
}

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined) return '';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function table(rows: BenchRow[]): string {
  const head = ['benchmark', 'ops/s', 'MB/s', 'notes'];
  const body = rows.map((r) => [r.name, fmt(r.opsPerSec), fmt(r.mbPerSec, 1), r.notes ?? '']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 1 || i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  // A filter naming a module selects modules; any other filter selects rows within them.
  const moduleFilters = args.filters.filter((f) => MODULES.some((m) => m.name.toLowerCase().includes(f)));
  const rowFilters = args.filters.filter((f) => !moduleFilters.includes(f));
  const rows: BenchRow[] = [];
  const goals: BenchGoal[] = [];
  const cpu = cpus();
  if (!args.json) {
    console.log(`kmipd benchmarks: node ${process.version}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}`);
    console.log(`one thread; ${args.warmupMs} ms warm-up and ${args.durationMs} ms per case\n`);
  }
  for (const mod of MODULES) {
    if (moduleFilters.length && !moduleFilters.some((f) => mod.name.toLowerCase().includes(f))) continue;
    const wants = (name: string) =>
      rowFilters.length === 0 || rowFilters.some((f) => `${mod.name}: ${name}`.toLowerCase().includes(f));
    const ctx: BenchContext = {
      stores: args.stores,
      durationMs: args.durationMs,
      warmupMs: args.warmupMs,
      wants,
      measure(name, fn, opts = {}) {
        if (!wants(name)) return undefined;
        runFor(fn, args.warmupMs);
        const [calls, ms] = runFor(fn, args.durationMs);
        const opsPerSec = ((calls * (opts.opsPerCall ?? 1)) / ms) * 1000;
        const row: BenchRow = { name: `${mod.name}: ${name}`, opsPerSec };
        if (opts.bytesPerOp !== undefined) row.mbPerSec = (opsPerSec * opts.bytesPerOp) / 1e6;
        if (opts.notes !== undefined) row.notes = opts.notes;
        rows.push(row);
        return row;
      },
      goal(description, measured, target, unit) {
        const g: BenchGoal = { description: `${mod.name}: ${description}`, measured, target, unit, met: measured >= target };
        goals.push(g);
        return g;
      },
    };
    await mod.run(ctx);
  }
  if (args.json) {
    console.log(JSON.stringify({ node: process.version, cpu: cpu[0]?.model, rows, goals }, null, 2));
  } else {
    console.log(table(rows));
    if (goals.length) {
      console.log('\ngoals:');
      for (const g of goals) {
        console.log(`  ${g.met ? 'MET    ' : 'NOT MET'}  ${g.description}: ${fmt(g.measured)} ${g.unit} (goal ≥ ${fmt(g.target)})`);
      }
    }
  }
  if (sink === 0.5) console.log(''); // never true; keeps `sink` alive
  return args.strict && goals.some((g) => !g.met) ? 1 : 0;
}

// Run when executed directly (not when imported by a test).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exitCode = 2;
    },
  );
}
