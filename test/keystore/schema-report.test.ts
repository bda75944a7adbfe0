/**
 * The rules shared by both backends, on their own: which schema states a build serves, what it
 * says otherwise, checksum mismatches; and how `kmipd cluster status` judges heartbeat rows.
 */
import t from 'tap';
import { clusterStatus, FINGERPRINT_WARNING } from '../../src/cli/cluster.js';
import { buildSchemaReport, checkMigrationList, migrationChecksum, type AppliedMigration, type Migration } from '../../src/keystore/migrations.js';
import type { NodeInfo } from '../../src/server/heartbeat.js';

const m = (version: number, compatible: boolean, automatic = false): Migration => ({ version, name: `m${version}`, sql: `CREATE TABLE t${version} (x int)`, compatible, automatic });
const row = (mig: Migration, checksum = migrationChecksum(mig)): AppliedMigration => ({
  version: mig.version,
  name: mig.name,
  checksum,
  compatible: mig.compatible,
  appliedAt: 1_700_000_000_000,
  appliedBy: 'n@h',
  kmipdVersion: '0.1.0',
});

t.test('schema states', async (t) => {
  const list = [m(1, false), m(2, true, true)];
  const r = (current: number, rows: AppliedMigration[]) => buildSchemaReport('sqlite', 'db', current, list, rows);
  t.equal(r(0, []).state, 'new');
  t.equal(r(2, list.map((x) => row(x))).state, 'current');
  const autoOnly = r(1, [row(list[0]!)]);
  t.same([autoOnly.state, autoOnly.problem], ['pending', undefined], 'only automatic migrations pending: opened anyway');
  const withManual = buildSchemaReport('sqlite', 'db', 1, [...list, m(3, true)], [row(list[0]!)]);
  t.equal(withManual.state, 'pending');
  t.match(withManual.problem, /db is at schema version 1; this kmipd needs version 3 \(pending: 2 "m2", 3 "m3"\)\. Run `kmipd migrate --data DIR`/);

  const ahead = [...list, m(3, true)];
  t.equal(r(3, ahead.map((x) => row(x))).state, 'compatible-newer', 'one compatible version ahead: served');
  const incompatible = [...list, m(3, false)];
  const i = r(3, incompatible.map((x) => row(x)));
  t.equal(i.state, 'newer');
  t.match(i.problem, /ahead of this kmipd \(2\) by migration 3 "m3", which older code cannot serve/);
  const two = r(4, [...ahead, m(4, true)].map((x) => row(x)));
  t.equal(two.state, 'newer', 'two versions ahead: refused even when both are compatible');
  t.match(two.problem, /more than one version ahead of this kmipd \(2\)/);
  t.same(two.entries.map((e) => [e.version, e.status]), [[1, 'applied'], [2, 'applied'], [3, 'newer'], [4, 'newer']]);

  const edited = r(2, [row(list[0]!, 'f'.repeat(64)), row(list[1]!)]);
  t.same(edited.entries.map((e) => e.checksumMismatch === true), [true, false], 'an edited released migration is flagged');

  t.throws(() => checkMigrationList([m(1, false), m(3, true)]), /not numbered 1\.\.n/);
  t.throws(() => checkMigrationList([m(1, false, true)]), /automatic but not compatible/);
});

t.test('cluster status: stale by each node\'s interval, unhealthy nodes, certificates', async (t) => {
  const now = Date.parse('2026-06-01T12:00:00Z');
  const info = (id: string, over: Partial<NodeInfo> = {}): string =>
    JSON.stringify({
      nodeId: id,
      host: `host-${id}`,
      pid: 1,
      version: '0.1.0',
      schema: { known: 2, current: 2, state: 'current' },
      startedAt: '2026-06-01T00:00:00Z',
      intervalMs: 10_000,
      listen: { address: '10.0.0.1', port: 5696 },
      keystore: { backend: 'postgres', ok: true },
      master: { provider: 'pkcs11', keyId: 'k', ok: true },
      certificate: { sha256: 'AA', subject: 'CN=kms', notAfter: '2027-01-01T00:00:00Z' },
      ...over,
    } satisfies NodeInfo);
  const s = clusterStatus('db', 'postgres', now, [
    { nodeId: 'a', state: 'serving', heartbeatAt: now - 29_000, info: info('a') },
    { nodeId: 'b', state: 'serving', heartbeatAt: now - 31_000, info: info('b', { certificate: { sha256: 'BB', subject: 'CN=kms', notAfter: '2027-01-01T00:00:00Z' } }) },
    { nodeId: 'c', state: 'serving', heartbeatAt: now - 31_000, info: info('c', { intervalMs: 60_000 }) },
  ]);
  t.same(s.nodes.map((n) => n.status), ['serving', 'stale', 'serving'], 'stale after 3 of the node\'s own intervals');
  t.ok(s.sameCertificate && s.ok, 'the stale node\'s other certificate does not count');

  const bad = clusterStatus('db', 'postgres', now, [
    { nodeId: 'a', state: 'serving', heartbeatAt: now, info: info('a', { master: { provider: 'pkcs11', keyId: 'k', ok: false, error: 'CKR_DEVICE_REMOVED' } }) },
    { nodeId: 'b', state: 'serving', heartbeatAt: now, info: info('b', { certificate: { sha256: 'BB', subject: 'CN=kms', notAfter: '2026-05-01T00:00:00Z' } }) },
  ]);
  t.same(bad.nodes.map((n) => n.problems), [['master key (pkcs11): CKR_DEVICE_REMOVED'], ['server certificate expired on 2026-05-01T00:00:00Z']]);
  t.notOk(bad.ok);
  t.notOk(bad.sameCertificate);
  t.ok(bad.warnings.includes(FINGERPRINT_WARNING));
  t.same(bad.certificates.map((c) => [c.sha256, c.nodes]), [['AA', ['a']], ['BB', ['b']]]);
});
