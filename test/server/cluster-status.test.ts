/**
 * `kmipd cluster status` against real kmipd processes on one PostgreSQL keystore: both nodes
 * listed with their heartbeats; a node killed (no clean shutdown) turns stale after 3 heartbeat
 * intervals; a node presenting another server certificate makes the command warn and fail; a
 * clean stop removes the node's row.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runKmipd } from '../helpers/cli.js';
import { eventually } from '../helpers/kmip-requests.js';
import { createKey, credsFor, stopNode } from '../helpers/nodes.js';
import { startPgCluster } from '../helpers/pg.js';
import { spawnKmipd, type KmipdProcess } from '../helpers/process.js';
import { need, postgres } from '../helpers/requirements.js';

const req = postgres();
const PASSPHRASE = 'correct horse battery staple';

interface Status {
  ok: boolean;
  sameCertificate: boolean;
  warnings: string[];
  nodes: { nodeId: string; status: string; healthy: boolean; info?: { pid: number; listen: { port: number }; certificate: { sha256: string } } }[];
}

t.test('kmipd cluster status with real nodes on one PostgreSQL keystore', async (t) => {
  if (!need(t, req)) return;
  const pg = await startPgCluster(req.bindir);
  t.teardown(() => pg.destroy());
  const url = await pg.createDatabase('status');
  const root = mkdtempSync(join(tmpdir(), 'kmipd-status-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const env = { PGPASSWORD: pg.password, KMIPD_BUNDLE_PASSPHRASE: PASSPHRASE };
  process.env.PGPASSWORD = pg.password;
  process.env.KMIPD_BUNDLE_PASSPHRASE = PASSPHRASE;
  t.teardown(() => {
    delete process.env.PGPASSWORD;
    delete process.env.KMIPD_BUNDLE_PASSPHRASE;
  });
  const running: KmipdProcess[] = [];
  t.teardown(async () => {
    for (const p of running) await stopNode(p, 'SIGKILL');
  });
  const serve = async (dir: string, extra: string[]): Promise<KmipdProcess> => {
    const p = await spawnKmipd(['serve', '--data', dir, '--host', '127.0.0.1', '--port', '0', '--heartbeat-seconds', '1', ...extra], env);
    running.push(p);
    return p;
  };
  const status = async (): Promise<{ s: Status; exit: number; text: string }> => {
    const r = await runKmipd(['cluster', 'status', '--data', A, '--json']);
    const exit = Number(process.exitCode ?? 0);
    process.exitCode = 0;
    const text = await runKmipd(['cluster', 'status', '--data', A]);
    process.exitCode = 0;
    return { s: JSON.parse(r.out) as Status, exit: r.exitCode || exit, text: text.out };
  };
  const A = join(root, 'a');
  const B = join(root, 'b');
  const C = join(root, 'c');

  const a = await serve(A, ['--store', url]);
  const withCert = join(root, 'with-cert.bundle');
  t.equal((await runKmipd(['node', 'export', '--data', A, '--out', withCert, '--with-server-cert'])).exitCode, 0);
  const b = await serve(B, ['--join', withCert]);
  t.ok(await createKey(b.port, await credsFor(A, 'vcenter')), 'B serves');

  // ---- both nodes listed ----------------------------------------------------------------------
  let st = await status();
  t.equal(st.s.nodes.length, 2, 'two nodes');
  t.same(st.s.nodes.map((n) => n.status), ['serving', 'serving']);
  t.same(st.s.nodes.map((n) => n.info?.pid).sort(), [a.child.pid, b.child.pid].sort(), 'the pids of the two processes');
  t.same(st.s.nodes.map((n) => n.info?.listen.port).sort(), [a.port, b.port].sort(), 'their KMIP ports');
  const fpA = new X509Certificate(readFileSync(join(A, 'pki', 'server.crt'))).fingerprint256;
  t.same(st.s.nodes.map((n) => n.info?.certificate.sha256), [fpA, fpA], 'the certificate each presents');
  t.ok(st.s.sameCertificate && st.s.ok, 'same certificate, all healthy');
  t.equal(st.exit, 0);
  t.match(st.text, new RegExp(`every live node presents the same server certificate \\(SHA-256 ${fpA}\\)`));

  // ---- B killed: stale after 3 intervals -------------------------------------------------------
  const bId = st.s.nodes.find((n) => n.info?.pid === b.child.pid)!.nodeId;
  await stopNode(b, 'SIGKILL');
  t.ok(
    await eventually(async () => (await status()).s.nodes.find((n) => n.nodeId === bId)?.status === 'stale', 20_000),
    'the killed node turns stale',
  );
  st = await status();
  t.equal(st.s.nodes.find((n) => n.nodeId !== bId)?.status, 'serving', 'A still serving');
  t.ok(st.s.warnings.some((w) => w.startsWith(`node ${bId}`) && /is stale: no heartbeat for/.test(w)), 'a warning names it');
  t.equal(st.exit, 0, 'a stale node alone does not fail the command');
  t.match(st.text, new RegExp(`${bId}  STALE`));

  // ---- C with its own server certificate: fingerprint mismatch ---------------------------------
  const own = join(root, 'own-cert.bundle');
  t.equal((await runKmipd(['node', 'export', '--data', A, '--out', own])).exitCode, 0);
  const c = await serve(C, ['--join', own]);
  const fpC = new X509Certificate(readFileSync(join(C, 'pki', 'server.crt'))).fingerprint256;
  t.not(fpC, fpA);
  t.ok(await eventually(async () => (await status()).s.nodes.filter((n) => n.status === 'serving').length === 2, 10_000), 'C listed');
  st = await status();
  t.notOk(st.s.sameCertificate, 'different certificates detected');
  t.notOk(st.s.ok);
  t.equal(st.exit, 1, 'exit 1');
  t.match(st.text, /server certificates presented by the live nodes:/);
  t.match(st.text, new RegExp(`${fpA}: `));
  t.match(st.text, new RegExp(`${fpC}: `));
  t.match(st.text, /WARNING: the live nodes present different server certificates\. vCenter trusts each KMS entry of a key provider by the certificate/);

  // ---- a clean stop removes the row -------------------------------------------------------------
  const cId = st.s.nodes.find((n) => n.info?.pid === c.child.pid)!.nodeId;
  await stopNode(c, 'SIGTERM');
  st = await status();
  t.notOk(st.s.nodes.some((n) => n.nodeId === cId), 'C removed its row on a clean shutdown');
  await stopNode(a, 'SIGTERM');
});
