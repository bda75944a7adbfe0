/**
 * The KMIP 2.x Log operation's text and a delegated ticket's delegating identity in the audit
 * trail: chained and verified like every other member, shown by `kmipd audit show`, and an edit
 * of the client's text is caught by `kmipd audit verify`.
 */
import t from 'tap';
import { Tag } from '../../src/spec/index.js';
import { T } from '../../src/ttlv/index.js';
import type { AuditRecord } from '../../src/audit/types.js';
import { runKmipd } from '../helpers/cli.js';
import { OK, OP, readLines, startAuditEngine, writeLines } from './_audit.js';

t.test('Log messages and onBehalfOf in the audit trail', async (t) => {
  const e = await startAuditEngine();
  t.teardown(() => e.dispose());
  const text = 'backup rotated "weekly"\u001b[2J';
  const r = await e.call(OP.Log, [T.text(Tag.LogMessage, text)], { name: 'alice', fingerprint: 'ab'.repeat(32) }, '2.1');
  t.equal(r.status, OK, r.message ?? '');
  await e.state.audit.record([{ kind: 'kmip', identity: 'bob', onBehalfOf: 'alice', operation: 'Get', object: 'uid-1', result: 'Success', version: '2.1' }]);
  await e.close();

  const json = await runKmipd(['audit', 'show', '--data', e.dataDir, '--json']);
  t.equal(json.exitCode, 0, json.err);
  const records = json.out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditRecord);
  t.equal(records.find((x) => x.operation === 'Log')?.message, text);
  t.equal(records.find((x) => x.operation === 'Get')?.onBehalfOf, 'alice');

  const table = await runKmipd(['audit', 'show', '--data', e.dataDir]);
  t.equal(table.exitCode, 0, table.err);
  t.match(table.out, /Log "backup rotated \\"weekly\\"\\u001b\[2J"/, 'the text quoted, control characters escaped');
  t.notOk(table.out.includes('\u001b'), 'no raw escape reaches the terminal');
  t.match(table.out, /bob \(for alice\)/);

  t.equal((await runKmipd(['audit', 'verify', '--data', e.dataDir])).exitCode, 0, 'intact');
  const lines = readLines(e.dataDir);
  const i = lines.findIndex((l) => l.includes('"operation":"Log"'));
  const altered = [...lines];
  altered[i] = altered[i]!.replace('weekly', 'monthly');
  writeLines(e.dataDir, altered);
  const bad = await runKmipd(['audit', 'verify', '--data', e.dataDir]);
  t.equal(bad.exitCode, 1, 'an edited Log Message is caught');
  t.match(bad.out, /altered/);
});
