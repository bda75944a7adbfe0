/**
 * Tampering with the audit files, and what `verify` says: a byte altered, a record removed,
 * two records swapped, the tail cut off, the chain rewritten with its hashes recomputed, anchors
 * checked with another data folder's master key, an earlier master key, an unfinished last line,
 * rotated files.
 */
import t, { type Test } from 'tap';
import { cpSync, mkdtempSync, readdirSync, rmSync, appendFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../../src/audit/log.js';
import { parseLine, seal, type RecordBody } from '../../src/audit/record.js';
import { verifyAuditTrail, type VerifyReport } from '../../src/audit/verify.js';
import type { AuditRecord } from '../../src/audit/types.js';
import { verifyDataDir } from '../../src/cli/audit.js';
import { createSoftwareMasterKey } from '../../src/crypto/index.js';
import { createKey, readLines, records, startAuditEngine, writeLines } from './_audit.js';

const tmp = mkdtempSync(join(tmpdir(), 'kmipd-audit-tamper-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

// One folder with 14 operations, anchors every 4 records, closed cleanly (a closing anchor).
const base = join(tmp, 'base');
let baseLines: string[] = [];
t.before(async () => {
  const e = await startAuditEngine({ dataDir: base, audit: { anchorEvery: 4 } });
  for (let i = 0; i < 7; i++) await createKey(e, i % 2 ? 'alice' : 'bob');
  await Promise.all(Array.from({ length: 7 }, () => createKey(e, 'carol')));
  await e.close();
  baseLines = readLines(base);
});

let n = 0;
function copy(): string {
  const d = join(tmp, `copy-${++n}`);
  cpSync(base, d, { recursive: true });
  return d;
}

function problem(t: Test, r: VerifyReport, kind: string, seq: number, line: number, file = 'audit.log'): void {
  t.notOk(r.ok, 'verify fails');
  t.equal(r.problem?.kind, kind, `kind ${kind}: ${r.problem?.message}`);
  t.equal(r.problem?.seq, seq, 'names the seq');
  t.equal(r.problem?.line, line, 'and the line');
  t.equal(r.problem?.file, file, 'and the file');
}

const kinds = () => baseLines.map((l) => (JSON.parse(l) as AuditRecord).kind);

t.test('the untouched log verifies: chain, every anchor, the keystore anchor', async (t) => {
  const r = await verifyDataDir(base);
  t.ok(r.ok, r.problem?.message ?? 'ok');
  t.equal(r.records, baseLines.length);
  t.ok(r.anchors >= 3, `${r.anchors} anchors`);
  t.equal(r.anchorsVerified, r.anchors);
  t.equal(r.keystoreAnchorSeq, baseLines.length, 'the last record is the closing anchor, recorded in the keystore');
  t.equal(kinds()[baseLines.length - 1], 'anchor');
  t.same(r.notes, []);
});

t.test('one byte altered in a record: that record is named', async (t) => {
  const seq = 6;
  t.equal(kinds()[seq - 1], 'kmip');
  for (const [what, edit] of [
    ['a value', (l: string) => l.replace('"identity":"', '"identity":"x')],
    ['a byte of its hash', (l: string) => l.replace(/"hash":"(.)/, (_m, c: string) => `"hash":"${c === '0' ? '1' : '0'}`)],
    ['its sequence number', (l: string) => l.replace(`"seq":${seq},`, `"seq":${seq + 1},`)],
    ['its JSON', (l: string) => l.replace('{', '[')],
    ['whitespace only', (l: string) => l.replace(',"kind"', ', "kind"')],
  ] as const) {
    const d = copy();
    const lines = [...baseLines];
    lines[seq - 1] = edit(lines[seq - 1]!);
    t.not(lines[seq - 1], baseLines[seq - 1]);
    writeLines(d, lines);
    const r = await verifyDataDir(d);
    t.test(what, async (t) => problem(t, r, 'altered', seq, seq));
  }
});

t.test('a record removed: the first missing seq is named where it belongs', async (t) => {
  const d = copy();
  writeLines(
    d,
    baseLines.filter((_, i) => i !== 6),
  );
  const r = await verifyDataDir(d);
  problem(t, r, 'removed', 7, 7);
  t.match(r.problem?.message, /seq 7 was removed/);

  const d2 = copy();
  writeLines(d2, baseLines.slice(1));
  problem(t, await verifyDataDir(d2), 'removed', 1, 1);
});

t.test('two records swapped: the first out of place is named', async (t) => {
  const d = copy();
  const lines = [...baseLines];
  [lines[4], lines[5]] = [lines[5]!, lines[4]!];
  writeLines(d, lines);
  const r = await verifyDataDir(d);
  problem(t, r, 'reordered', 5, 5);
  t.match(r.problem?.message, /seq 5 is at audit\.log line 6/);
});

t.test('the tail removed: noticed through the anchor the keystore remembers', async (t) => {
  // cut after an earlier anchor: what is left is a perfect chain ending in a valid anchor
  const anchors = kinds().flatMap((k, i) => (k === 'anchor' ? [i + 1] : []));
  const earlier = anchors[anchors.length - 2]!;
  const d = copy();
  writeLines(d, baseLines.slice(0, earlier));
  const r = await verifyDataDir(d);
  problem(t, r, 'truncated', earlier + 1, earlier + 1);
  t.match(r.problem?.message, new RegExp(`anchor at seq ${baseLines.length}`));

  // just the last three records
  const d2 = copy();
  writeLines(d2, baseLines.slice(0, -3));
  problem(t, await verifyDataDir(d2), 'truncated', baseLines.length - 2, baseLines.length - 2);

  // the whole file
  const d3 = copy();
  unlinkSync(join(d3, 'audit', 'audit.log'));
  problem(t, await verifyDataDir(d3), 'truncated', 1, 1);
});

/** Rewrites lines from index `from` on: `edit` the record there, then recompute every hash after. */
function rewrite(lines: readonly string[], from: number, edit: (r: RecordBody) => void, rehashFollowing: boolean): string[] {
  const out = lines.slice(0, from);
  let prev = from > 0 ? (JSON.parse(out[from - 1]!) as AuditRecord).hash : '0'.repeat(64);
  for (let i = from; i < lines.length; i++) {
    const p = parseLine(lines[i]!);
    if (!p.ok) throw new Error(p.error);
    if (i > from && !rehashFollowing) {
      out.push(lines[i]!);
      continue;
    }
    const { hash: _h, ...body } = p.record;
    void _h;
    body.prev = prev;
    if (i === from) edit(body);
    const s = seal(body);
    out.push(s.line);
    prev = s.record.hash;
  }
  return out;
}

t.test('a record altered with its hash recomputed: the link to the next record names it', async (t) => {
  const d = copy();
  writeLines(
    d,
    rewrite(baseLines, 5, (b) => (b.identity = 'mallory'), false),
  );
  const r = await verifyDataDir(d);
  problem(t, r, 'altered', 6, 6);
  t.match(r.problem?.message, /seq 7 .* does not chain from it/);
});

t.test('the chain rewritten with every hash recomputed: the first anchor after the edit fails', async (t) => {
  const d = copy();
  writeLines(
    d,
    rewrite(baseLines, 5, (b) => (b.identity = 'mallory'), true),
  );
  const r = await verifyDataDir(d);
  const next = kinds().findIndex((k, i) => i > 5 && k === 'anchor') + 1;
  const before = kinds().slice(0, 5).lastIndexOf('anchor') + 1;
  problem(t, r, 'unauthenticated', next, next);
  t.match(r.problem?.message, new RegExp(`from seq ${before + 1} to ${next - 1}`));
  // an attacker may also drop every anchor's MAC check by relabelling them with another key id:
  const d2 = copy();
  let lines = [...baseLines];
  for (let i = 0; i < lines.length; i++) if (kinds()[i] === 'anchor') lines = rewrite(lines, i, (b) => (b.master = 'sw-0000000000000000'), true);
  writeLines(d2, lines);
  const r2 = await verifyDataDir(d2);
  t.notOk(r2.ok);
  t.equal(r2.problem?.kind, 'altered', 'the keystore anchor no longer matches');
});

t.test('anchors verify only with the master key they were made with', async (t) => {
  const other = await startAuditEngine({ dataDir: join(tmp, 'other') });
  t.teardown(() => other.close());
  const first = kinds().indexOf('anchor') + 1;
  const withOther = await verifyAuditTrail({ dataDir: base, master: other.state.master });
  problem(t, withOther, 'unauthenticated', first, first);
  t.match(withOther.problem?.message, /configured master key sw-/);

  // a log carried into another data folder: its anchors are not that folder's
  const d = copy();
  const moved = join(tmp, 'moved');
  const o2 = await startAuditEngine({ dataDir: moved });
  await o2.close();
  cpSync(join(d, 'audit'), join(moved, 'audit'), { recursive: true });
  const r = await verifyDataDir(moved);
  t.notOk(r.ok);
  t.equal(r.problem?.kind, 'unauthenticated');

  // the right key, no keystore: the chain and anchors verify
  const own = await startAuditEngine({ dataDir: copy() });
  t.teardown(() => own.close());
  t.ok((await verifyAuditTrail({ dataDir: own.dataDir, master: own.state.master })).ok);
});

t.test('after a master-key change, anchors under the old key are covered by one under the new key', async (t) => {
  const dataDir = join(tmp, 'rotated-master');
  const oldKey = await createSoftwareMasterKey(join(tmp, 'old.key'));
  const newKey = await createSoftwareMasterKey(join(tmp, 'new.key'));
  const w1 = new AuditLog({ dataDir, master: oldKey, anchorEvery: 2, anchorIntervalMs: 0 });
  for (let i = 0; i < 5; i++) await w1.record([{ kind: 'kmip', identity: 'a', operation: 'Get', result: 'Success' }]);
  await w1.close();
  const before = await verifyAuditTrail({ dataDir, master: newKey });
  t.notOk(before.ok, 'the new key alone cannot vouch for anchors made with the old one');
  t.equal(before.problem?.kind, 'unauthenticated');
  const w2 = new AuditLog({ dataDir, master: newKey, anchorIntervalMs: 0 });
  await w2.record([{ kind: 'admin', identity: 'os:root', operation: 'master rotate', result: 'Success' }]);
  await w2.anchor();
  await w2.close();
  const after = await verifyAuditTrail({ dataDir, master: newKey });
  t.ok(after.ok, after.problem?.message ?? 'ok');
  t.ok(after.anchorsOtherKey >= 2);
  t.equal(after.anchorsVerified, 1);
  await oldKey.close();
  await newKey.close();
});

t.test('an unfinished last line (a crash mid-write) is not an error; the next writer cuts it off and says so', async (t) => {
  const d = copy();
  appendFileSync(join(d, 'audit', 'audit.log'), '{"seq":999,"time":"20');
  const r = await verifyDataDir(d);
  t.ok(r.ok, r.problem?.message ?? 'ok');
  t.match(r.notes.join('\n'), /unfinished last record/);
  const e = await startAuditEngine({ dataDir: d });
  await createKey(e);
  await e.close();
  const recs = records(d);
  const ev = recs[baseLines.length]!;
  t.equal(ev.kind, 'event');
  t.equal(ev.operation, 'discarded-unfinished-record');
  t.match(ev.reason, /^21 bytes/);
  const r2 = await verifyDataDir(d);
  t.ok(r2.ok, r2.problem?.message ?? 'ok');
  t.same(r2.notes, []);
});

t.test('rotation: the chain continues across files; tampering in a rotated file is named there', async (t) => {
  const d = join(tmp, 'rotation');
  const e = await startAuditEngine({ dataDir: d, audit: { maxFileBytes: 1500, anchorEvery: 1000 } });
  for (let i = 0; i < 20; i++) await createKey(e);
  await e.close();
  const files = readdirSync(join(d, 'audit')).filter((f) => f.endsWith('.log')).sort();
  t.ok(files.length >= 3, `rotated into ${files.length} files`);
  t.equal(files[0], 'audit-000000000001.log');
  const r = await verifyDataDir(d);
  t.ok(r.ok, r.problem?.message ?? 'ok');
  t.equal(r.files.length, files.length);
  t.equal(r.files[r.files.length - 1], 'audit.log');
  // each rotated file ends with an anchor
  for (const f of files.filter((x) => x !== 'audit.log')) {
    const last = readLines(d, f).pop()!;
    t.equal((JSON.parse(last) as AuditRecord).kind, 'anchor', `${f} closed by an anchor`);
  }
  const second = files[1]!;
  const lines = readLines(d, second);
  const target = JSON.parse(lines[1]!) as AuditRecord;
  lines[1] = lines[1]!.replace('"alice"', '"alicf"');
  const d2 = join(tmp, 'rotation-2');
  cpSync(d, d2, { recursive: true });
  writeLines(d2, lines, second);
  problem(t, await verifyDataDir(d2), 'altered', target.seq, 2, second);

  const d3 = join(tmp, 'rotation-3');
  cpSync(d, d3, { recursive: true });
  unlinkSync(join(d3, 'audit', files[0]!));
  const r3 = await verifyDataDir(d3);
  problem(t, r3, 'removed', 1, 1, second);
});
