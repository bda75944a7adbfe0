/**
 * Benchmark (not a test): inserts N objects (default 1,000,000) with a Name and an x- attribute
 * through the normal insert() path, in concurrent batches that group commit, then times Locate.
 *
 *   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs test/keystore/bench-locate.ts [N] [dir]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openSqliteStore } from '../../src/keystore/sqlite.js';
import type { LocateQuery, StoredObject } from '../../src/keystore/types.js';
import { T } from '../../src/ttlv/index.js';

const N = Number(process.argv[2] ?? 1_000_000);
const dir = process.argv[3] ?? mkdtempSync(join(tmpdir(), 'kmipd-bench-'));
const BATCH = 10_000;
const file = join(dir, 'bench.db');

function obj(i: number): StoredObject {
  return {
    uid: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
    objectType: 2,
    state: 1,
    owner: `client-${i % 50}`,
    attributes: [
      { name: 'Name', index: 0, value: T.struct(0x420053, [T.text(0x420055, `vm-disk-key-${i}`), T.enum(0x420054, 1)]) },
      { name: 'x-Product', index: 0, value: T.text(0x42000b, `product-${i % 1000}`) },
    ],
    material: { rootKeyId: 'rk-bench', blob: Buffer.alloc(61, i & 0xff) },
    revision: 1,
    createdAt: 1_700_000_000_000 + i,
    updatedAt: 1_700_000_000_000 + i,
  };
}

async function time<R>(label: string, fn: () => Promise<R>, reps = 1): Promise<R> {
  let r: R | undefined;
  const t0 = performance.now();
  for (let k = 0; k < reps; k++) r = await fn();
  const ms = (performance.now() - t0) / reps;
  console.log(`${label}: ${ms < 10 ? ms.toFixed(3) : ms.toFixed(0)} ms${reps > 1 ? ` (mean of ${reps})` : ''}`);
  return r as R;
}

const store = await openSqliteStore(file);
const t0 = performance.now();
for (let b = 0; b < N; b += BATCH) {
  const ps: Promise<void>[] = [];
  for (let i = b; i < Math.min(N, b + BATCH); i++) ps.push(store.insert(obj(i)));
  await Promise.all(ps);
}
const insertMs = performance.now() - t0;
console.log(`inserted ${N} objects in ${(insertMs / 1000).toFixed(1)} s (${Math.round(N / (insertMs / 1000))}/s)`);
await store.close();
console.log(`database size: ${(statSync(file).size / 1e6).toFixed(0)} MB`);

// Reopen, as a server would after a restart (also runs PRAGMA optimize).
const s = await time('reopen', () => openSqliteStore(file));
const mid = Math.floor(N / 2);
const qName: LocateQuery = { filters: [{ kind: 'equals', name: 'Name', value: `vm-disk-key-${mid}` }] };
const qNameOwner: LocateQuery = { owners: [`client-${mid % 50}`], states: [1], filters: qName.filters };
const qX: LocateQuery = { filters: [{ kind: 'equals', name: 'x-Product', value: 'product-7' }], limit: 10 };
const qXAll: LocateQuery = { filters: [{ kind: 'equals', name: 'x-Product', value: 'product-7' }] };
console.log('plan (Name):', s.explainLocate(qName).join(' | '));
console.log('result (Name):', await s.locate(qName));
await time('Locate by Name, first call', () => s.locate(qName));
await time('Locate by Name', () => s.locate(qName), 1000);
await time('Locate by Name + owner + state', () => s.locate(qNameOwner), 1000);
await time('Locate by x-Product, limit 10', () => s.locate(qX), 1000);
const all = await time(`Locate by x-Product, all matches`, () => s.locate(qXAll), 20);
console.log(`  (${all.length} matches)`);
await time('Locate by Name, missing', () => s.locate({ filters: [{ kind: 'equals', name: 'Name', value: 'nope' }] }), 1000);
await time('count()', () => s.count(), 5);
await s.close();
if (process.argv[3] === undefined) rmSync(dir, { recursive: true, force: true });
