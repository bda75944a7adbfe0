/**
 * `kmipd audit show` and `kmipd audit verify` through the real program.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditRecord } from '../../src/audit/types.js';
import { parseSince } from '../../src/audit/query.js';
import { runKmipd } from '../helpers/cli.js';
import { createKey, readLines, startAuditEngine, uidNode, OP, writeLines } from './_audit.js';

const dataDir = mkdtempSync(join(tmpdir(), 'kmipd-audit-cli-'));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
const fpAlice = 'c0ffee'.repeat(10) + 'abcd';
let uidA = '';
let uidB = '';

t.before(async () => {
  const e = await startAuditEngine({ dataDir, audit: { anchorEvery: 3 } });
  // two old records, written with an explicit time
  await e.state.audit.record([
    { kind: 'kmip', time: new Date('2020-01-01T00:00:00Z'), identity: 'old-client', operation: 'Get', object: 'old-uid', result: 'Success' },
    { kind: 'admin', time: new Date('2020-01-02T00:00:00Z'), identity: 'os:root', operation: 'trust add-ca', result: 'Success' },
  ]);
  uidA = await createKey(e, { name: 'alice', fingerprint: fpAlice, address: '10.0.0.1' });
  uidB = await createKey(e, { name: 'bob', fingerprint: 'ee'.repeat(32), address: '10.0.0.2' });
  await e.call(OP.Get, [uidNode(uidA)], { name: 'alice', fingerprint: fpAlice, address: '10.0.0.1' });
  await e.call(OP.Get, [uidNode(uidA)], { name: 'bob', fingerprint: 'ee'.repeat(32), address: '10.0.0.2' });
  await e.close();
});

async function show(...args: string[]): Promise<AuditRecord[]> {
  const r = await runKmipd(['audit', 'show', '--data', dataDir, '--json', ...args]);
  t.equal(r.exitCode, 0, r.err);
  return r.out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditRecord);
}

t.test('show: every record, or filtered by identity, fingerprint, object and time', async (t) => {
  const all = await show();
  t.same(
    all.map((r) => r.seq),
    all.map((_, i) => i + 1),
  );
  t.ok(all.some((r) => r.kind === 'anchor'));
  t.same(
    (await show('--identity', 'alice')).map((r) => [r.operation, r.object]),
    [
      ['Create', uidA],
      ['Get', uidA],
    ],
  );
  t.same(
    (await show('--identity', fpAlice.slice(0, 12).toUpperCase())).map((r) => r.identity),
    ['alice', 'alice'],
    'a fingerprint prefix (any case)',
  );
  t.same(
    (await show('--object', uidA)).map((r) => `${r.identity} ${r.operation} ${r.result}`),
    ['alice Create Success', 'alice Get Success', `bob Get OperationFailed`],
    'everyone who touched the object, failures included',
  );
  t.same((await show('--object', uidB)).length, 1);
  const since = await show('--since', '2021-01-01');
  t.notOk(
    since.some((r) => r.identity === 'old-client' || r.identity === 'os:root'),
    'nothing older',
  );
  t.ok(since.some((r) => r.identity === 'alice'));
  t.same(
    (await show('--since', '1h', '--identity', 'old-client')).length,
    0,
  );
  t.same((await show('--since', '2019-12-31T23:00:00Z', '--identity', 'old-client')).length, 1);

  const text = await runKmipd(['audit', 'show', '--data', dataDir, '--identity', 'bob']);
  t.equal(text.exitCode, 0);
  t.match(text.out, /^SEQ\s+TIME\s+IDENTITY\s+ADDRESS\s+OPERATION\s+OBJECT\s+RESULT/);
  t.match(text.out, /bob\s+10\.0\.0\.2\s+Get\s+\S+\s+OperationFailed \(ItemNotFound\)/);
  t.match(text.out, /2 record\(s\)\n$/);

  const bad = await runKmipd(['audit', 'show', '--data', dataDir, '--since', 'yesterday-ish']);
  t.equal(bad.exitCode, 2);
  t.match(bad.err, /--since wants/);
  t.equal(parseSince('90s', new Date(100_000)).getTime(), 10_000);
});

t.test('verify: exit 0 when intact, 1 with the first bad record named, 2 when it cannot run', async (t) => {
  const ok = await runKmipd(['audit', 'verify', '--data', dataDir]);
  t.equal(ok.exitCode, 0, ok.err);
  t.match(ok.out, /OK: every record/);
  t.match(ok.out, /anchors: \d+ \(\d+ verified with master key sw-/);

  const json = await runKmipd(['audit', 'verify', '--data', dataDir, '--json']);
  t.equal(json.exitCode, 0);
  t.equal((JSON.parse(json.out) as { ok: boolean }).ok, true);

  const lines = readLines(dataDir);
  const altered = [...lines];
  altered[4] = altered[4]!.replace('"result":"Success"', '"result":"Sucsess"');
  t.not(altered[4], lines[4]);
  writeLines(dataDir, altered);
  const bad = await runKmipd(['audit', 'verify', '--data', dataDir]);
  t.equal(bad.exitCode, 1);
  t.match(bad.out, /FAILED: first bad record: seq 5, audit\.log line 5 \(altered\)/);
  t.match(bad.err, /seq 5 \(audit\.log line 5\) altered/);
  writeLines(dataDir, lines);
  t.equal((await runKmipd(['audit', 'verify', '--data', dataDir])).exitCode, 0, 'restored');

  const none = await runKmipd(['audit', 'verify', '--data', join(dataDir, 'nothing-here')]);
  t.equal(none.exitCode, 2);
  t.match(none.err, /no kmipd data folder/);
});
