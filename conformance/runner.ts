/**
 * The conformance runner as a library: finds the OASIS XML test cases in the vectors folder,
 * sorts out what is skipped or out of scope, replays the rest against a target and returns
 * one record per file. `run.ts` is its command line; the tap test calls it directly.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { readXmlDocument, XmlCodecError } from '../src/codec/xml.js';
import { replay, type ReplayResult } from './replay.js';
import { classify, matchesFilter, matchesProfile, prerequisitesOf, type TestCaseInfo } from './sets.js';
import { outOfScopeByPath, skipReason, supersededBy } from './skip.js';
import { InProcessTarget, type Target } from './target.js';

export type Outcome = 'passed' | 'failed' | 'skipped' | 'out-of-scope';

export interface CaseRecord {
  info: TestCaseInfo;
  outcome: Outcome;
  /** Why skipped or out of scope. */
  reason?: string;
  result?: ReplayResult;
}

export interface RunOptions {
  vectorsDir: string;
  /** Only these files (paths relative to the vectors folder); default every XML file. */
  files?: readonly string[];
  /** `--filter`: globs on the test-case id, path or file name; any may match. */
  filters?: readonly string[];
  /** `--profile`: profile key or part of its label. */
  profile?: string;
  /** `--version`: protocol version, e.g. 1.4. */
  version?: string;
  /** Default: kmipd in process, a fresh data directory per test case. */
  target?: Target;
  timeoutMs?: number;
  toleranceSeconds?: number;
  /** Test cases run at once (default 1). */
  jobs?: number;
  /** Each difference and variation, as the exchanges happen. */
  verbose?: boolean;
  /** Progress and verbose lines; default nothing. */
  log?: (line: string) => void;
}

export interface RunSummary {
  records: CaseRecord[];
  passed: number;
  failed: number;
  skipped: number;
  outOfScope: number;
  durationMs: number;
  target: string;
  vectorsDir: string;
}

const SOURCE_FOLDERS = ['cosmian-kmip', 'ovh-kmip-go'];

/** Every XML file of the corpus, as sorted `/`-separated paths relative to `dir`. */
export function listXmlFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.toLowerCase().endsWith('.xml')) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  for (const f of SOURCE_FOLDERS) if (existsSync(join(dir, f))) walk(join(dir, f));
  return out.sort();
}

async function pool<T>(items: readonly T[], jobs: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await work(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, worker));
}

export async function runConformance(o: RunOptions): Promise<RunSummary> {
  const started = Date.now();
  const log = o.log ?? (() => {});
  const all = listXmlFiles(o.vectorsDir).map(classify);
  const superseded = supersededBy(all);
  let chosen = all;
  if (o.files) {
    const want = new Set(o.files.map((f) => f.replace(/\\/g, '/')));
    chosen = chosen.filter((i) => want.has(i.path));
    const missing = [...want].filter((f) => !all.some((i) => i.path === f));
    if (missing.length > 0) throw new Error(`not in ${o.vectorsDir}: ${missing.join(', ')}`);
  }
  if (o.filters && o.filters.length > 0) chosen = chosen.filter((i) => o.filters!.some((f) => matchesFilter(i, f)));
  if (o.profile) chosen = chosen.filter((i) => matchesProfile(i, o.profile!));
  if (o.version) chosen = chosen.filter((i) => i.version === o.version);

  const records: CaseRecord[] = chosen.map((info) => {
    const oos = outOfScopeByPath(info, superseded);
    if (oos) return { info, outcome: 'out-of-scope', reason: oos };
    const pre = prerequisitesOf(info, all);
    if (pre.missing.length > 0) {
      return { info, outcome: 'out-of-scope', reason: `needs the objects of ${pre.missing.join(', ')}, which the corpus does not have beside it` };
    }
    const skip = skipReason(info);
    if (skip) return { info, outcome: 'skipped', reason: skip };
    return { info, outcome: 'failed' };
  });
  // Transcripts that poll (`# [REPEAT]`, minutes of waiting) start first, so that the others
  // run while they wait.
  const polls = (r: CaseRecord) => readFileSync(join(o.vectorsDir, r.info.path), 'utf8').includes('[REPEAT]');
  const pending = records.filter((r) => r.outcome === 'failed');
  const toRun = [...pending.filter(polls), ...pending.filter((r) => !polls(r))];

  const target = o.target ?? (await InProcessTarget.create());
  const owned = o.target === undefined;
  let done = 0;
  try {
    await pool(toRun, o.jobs ?? 1, async (rec) => {
      const { info } = rec;
      let doc;
      const pre = prerequisitesOf(info, all).paths;
      const preDocs: { path: string; doc: ReturnType<typeof readXmlDocument> }[] = [];
      try {
        for (const p of pre) preDocs.push({ path: p, doc: readXmlDocument(readFileSync(join(o.vectorsDir, p), 'utf8')) });
        doc = readXmlDocument(readFileSync(join(o.vectorsDir, info.path), 'utf8'));
      } catch (e) {
        if (!(e instanceof XmlCodecError)) throw e;
        rec.outcome = 'out-of-scope';
        rec.reason = `defective transcript: unreadable XML (${e.message})`;
        return;
      }
      const lines: string[] = [];
      const session = await target.open();
      try {
        const ropts: Parameters<typeof replay>[2] = {
          timeoutMs: o.timeoutMs ?? 10_000,
          toleranceSeconds: o.toleranceSeconds ?? 10,
          provenance: { generated: new Set(), algorithms: new Map(), paddings: new Map() },
        };
        // Prerequisites first, in the same session; their failure fails this test case.
        for (const p of preDocs) {
          const r = await replay(p.doc, session, ropts);
          if (!r.passed) {
            const f = r.failure!;
            const id = all.find((i) => i.path === p.path)?.id ?? p.path;
            rec.result = {
              passed: false,
              exchanges: 0,
              completed: 0,
              durationMs: r.durationMs,
              failure: { kind: 'prerequisite', exchange: 0, line: 0, differences: f.differences, detail: `prerequisite ${id} failed at exchange ${f.exchange}: ${f.detail}`, ...(f.operation ? { operation: f.operation } : {}) },
            };
            break;
          }
        }
        if (o.verbose) ropts.log = (l) => lines.push(l);
        if (!rec.result) rec.result = await replay(doc, session, ropts);
      } finally {
        await session.close();
      }
      rec.outcome = rec.result.passed ? 'passed' : 'failed';
      if (rec.result.failure?.kind === 'test-file') {
        // The transcript cannot be replayed as written: not a test of the server.
        rec.outcome = 'out-of-scope';
        rec.reason = `defective transcript: ${rec.result.failure.detail}`;
      }
      done++;
      if (o.verbose) {
        const f = rec.result.failure;
        log(`${rec.outcome === 'passed' ? 'PASS' : 'FAIL'} ${info.id}  ${info.path}${f ? `\n    exchange ${f.exchange} (line ${f.line}), ${f.kind}: ${f.detail}` : ''}`);
        for (const l of lines) log(l);
      } else if (done % 100 === 0) {
        log(`... ${done}/${toRun.length} test cases run`);
      }
    });
  } finally {
    if (owned) await target.dispose();
  }
  const count = (x: Outcome) => records.filter((r) => r.outcome === x).length;
  return {
    records,
    passed: count('passed'),
    failed: count('failed'),
    skipped: count('skipped'),
    outOfScope: count('out-of-scope'),
    durationMs: Date.now() - started,
    target: target.describe,
    vectorsDir: o.vectorsDir,
  };
}
