import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { queryAudit } from '../../src/audit/index.js';
import { buildProgram } from '../../src/cli/main.js';
import { createCA } from '../../src/pki/index.js';
import { silentLogger } from '../../src/server/log.js';
import { openServerState } from '../../src/server/server.js';

t.test('state-changing admin commands append an admin record to the audit trail', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-admin-audit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const state = await openServerState(dir, { log: silentLogger() });
  await state.close();
  const ca = await createCA({ commonName: 'vCenter Root CA (test)' });
  const caFile = join(dir, 'vc-root.pem');
  writeFileSync(caFile, ca.certPem);

  const out = process.stdout.write;
  process.stdout.write = () => true; // the commands print; this test reads the audit trail
  try {
    await buildProgram().parseAsync(['node', 'kmipd', 'trust', 'add-ca', '--data', dir, caFile, '--name', 'vcenter-root']);
    await buildProgram().parseAsync(['node', 'kmipd', 'trust', 'list', '--data', dir]);
    await buildProgram().parseAsync(['node', 'kmipd', 'trust', 'remove', '--data', dir, 'vcenter-root']);
  } finally {
    process.stdout.write = out;
  }
  t.equal(process.exitCode ?? 0, 0, 'the commands succeeded');
  const admin = [...queryAudit(dir)].filter((r) => r.record.kind === 'admin');
  t.same(
    admin.map((r) => [r.record.operation, r.record.result]),
    [
      ['trust add-ca', 'Success'],
      ['trust remove', 'Success'],
    ],
    'add-ca and remove are recorded (list changes nothing and is not)',
  );
  t.match(String(admin[0]?.record.identity), /^os:/, 'the operating-system user is the identity');

  const verify = process.exitCode;
  await buildProgram().parseAsync(['node', 'kmipd', 'audit', 'verify', '--data', dir]).catch(() => undefined);
  t.equal(process.exitCode ?? 0, verify ?? 0, 'the chain still verifies');
});
