/**
 * Several kmipd processes on one PostgreSQL keystore: joining from a node bundle, every write
 * seen by the other node at once, trust changes reaching every node, a node surviving another's
 * death and a database outage, and nodes starting together creating one root key.
 */
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCA, issueClientCert } from '../../src/pki/index.js';
import { Enums } from '../../src/spec/index.js';
import { runKmipd } from '../helpers/cli.js';
import type { ClientCreds } from '../helpers/client.js';
import { attempt, createAesKey, eventually } from '../helpers/kmip-requests.js';
import { createKey, credsFor, getKey, keyBytes, nodeLauncher, stopNode, withClient } from '../helpers/nodes.js';
import { startPgCluster } from '../helpers/pg.js';
import { spawnKmipd } from '../helpers/process.js';
import { need, postgres } from '../helpers/requirements.js';
import { startLoad } from '../helpers/rotation.js';

const req = postgres();
const PASSPHRASE = 'correct horse battery staple';

t.test('several kmipd nodes on one PostgreSQL keystore', async (t) => {
  if (!need(t, req)) return;
  const started = Date.now();
  let last = started;
  const lap = (what: string): void => {
    t.comment(`${what}: ${((Date.now() - last) / 1000).toFixed(1)} s`);
    last = Date.now();
  };
  const pg = await startPgCluster(req.bindir);
  t.teardown(() => pg.destroy());
  const url = await pg.createDatabase('cluster');
  const root = mkdtempSync(join(tmpdir(), 'kmipd-cluster-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const env = { PGPASSWORD: pg.password, KMIPD_BUNDLE_PASSPHRASE: PASSPHRASE };
  const serve = nodeLauncher(t, env);
  const A = join(root, 'a');
  const B = join(root, 'b');
  const bundle = join(root, 'node.bundle');

  lap('pg up');
  const a = await serve(A, ['--store', url]);
  const creds = await credsFor(A, 'vcenter');
  const manifestA = JSON.parse(readFileSync(join(A, 'kmipd.json'), 'utf8')) as { keystore: unknown };
  t.same(manifestA.keystore, { kind: 'postgres', url }, 'the store URL is recorded, without a password');

  lap('node A started');
  // ---- join ----------------------------------------------------------------------------------
  // In-process commands (node export/join, trust ...) reach the database like a user's would.
  process.env.KMIPD_BUNDLE_PASSPHRASE = PASSPHRASE;
  process.env.PGPASSWORD = pg.password;
  t.teardown(() => {
    delete process.env.KMIPD_BUNDLE_PASSPHRASE;
    delete process.env.PGPASSWORD;
  });
  const ex = await runKmipd(['node', 'export', '--data', A, '--out', bundle]);
  t.equal(ex.exitCode, 0, `node export: ${ex.err}`);
  const bundleText = readFileSync(bundle, 'utf8');
  t.notOk(bundleText.includes('BEGIN'), 'the bundle is encrypted (no PEM in clear)');
  t.equal(JSON.parse(bundleText).kdf.name, 'scrypt');
  process.env.KMIPD_BUNDLE_PASSPHRASE = 'a wrong passphrase!!';
  const wrong = await runKmipd(['node', 'join', '--data', join(root, 'wrong'), '--in', bundle]);
  t.equal(wrong.exitCode, 1, 'a wrong passphrase is refused');
  t.match(wrong.err, /wrong passphrase/);
  process.env.KMIPD_BUNDLE_PASSPHRASE = PASSPHRASE;
  const withCert = join(root, 'with-cert.bundle');
  t.equal((await runKmipd(['node', 'export', '--data', A, '--out', withCert, '--with-server-cert'])).exitCode, 0);
  const LB = join(root, 'behind-one-name');
  const lb = await runKmipd(['node', 'join', '--data', LB, '--in', withCert]);
  t.equal(lb.exitCode, 0, `node join: ${lb.err}`);
  t.ok(readFileSync(join(LB, 'pki', 'server.crt')).equals(readFileSync(join(A, 'pki', 'server.crt'))), '--with-server-cert: the joined node presents the same server certificate');
  t.same(JSON.parse(readFileSync(join(LB, 'kmipd.json'), 'utf8')).keystore, { kind: 'postgres', url }, "the exporting node's store is the default");
  t.equal((await runKmipd(['node', 'join', '--data', LB, '--in', withCert])).out.includes('set up already'), true, 'joining again changes nothing');

  lap('export');
  const b = await serve(B, ['--join', bundle, '--store', url, '--san', 'node-b.example']);
  const caA = new X509Certificate(readFileSync(join(A, 'pki', 'ca.crt')));
  const certA = new X509Certificate(readFileSync(join(A, 'pki', 'server.crt')));
  const certB = new X509Certificate(readFileSync(join(B, 'pki', 'server.crt')));
  t.ok(readFileSync(join(B, 'pki', 'ca.crt')).equals(readFileSync(join(A, 'pki', 'ca.crt'))), 'B has the shared CA');
  t.ok(certB.checkIssued(caA) && certB.verify(caA.publicKey), "B's server certificate is issued by the shared CA");
  t.not(certB.fingerprint256, certA.fingerprint256, 'B has its own server certificate');
  t.match(certB.subjectAltName ?? '', /DNS:node-b\.example/, 'with its own SANs');
  t.ok(readFileSync(join(B, 'master.key')).equals(readFileSync(join(A, 'master.key'))), 'B has the master key');

  lap('node B joined and started');
  // ---- every write seen at once --------------------------------------------------------------
  const keys = new Map<string, Buffer>();
  const uid = await createKey(a.port, creds);
  const onB = keyBytes(await getKey(b.port, creds, uid));
  const onA = keyBytes(await getKey(a.port, creds, uid));
  t.ok(onA && onB && onA.equals(onB) && onA.length === 32, 'a key created on A is read on B in the next request');
  keys.set(uid, onA!);
  for (let i = 0; i < 10; i++) {
    const [mk, rd] = i % 2 ? [a, b] : [b, a];
    const u = await createKey(mk.port, creds);
    const k = keyBytes(await getKey(rd.port, creds, u));
    if (!k) t.fail(`key ${u} created on one node not readable on the other`);
    else keys.set(u, k);
  }
  t.equal(keys.size, 11, 'keys created alternately on both nodes, each read on the other');

  // ---- concurrent creates on both nodes: no collision, every key served by the other node ----
  const PER_CLIENT = 25;
  const clients = [a, a, a, a, b, b, b, b];
  const made = await Promise.all(
    clients.map((node) =>
      withClient(node.port, creds, async (c) => {
        const out: string[] = [];
        for (let i = 0; i < PER_CLIENT; i++) out.push(await createAesKey(c));
        return { node, uids: out };
      }),
    ),
  );
  const all = made.flatMap((m) => m.uids);
  t.equal(all.length, clients.length * PER_CLIENT, `${all.length} keys created by 4 + 4 concurrent connections`);
  t.equal(new Set(all).size, all.length, 'no unique identifier used twice across the nodes');
  let crossRead = 0;
  for (const m of made) {
    const other = m.node === a ? b : a;
    const sample = [m.uids[0]!, m.uids[m.uids.length - 1]!];
    for (const u of sample) if (keyBytes(await getKey(other.port, creds, u))?.length === 32) crossRead++;
  }
  t.equal(crossRead, clients.length * 2, 'keys created concurrently on one node are read on the other');

  lap('writes');
  // ---- trust changes reach every node --------------------------------------------------------
  const partnerCa = await createCA({ commonName: 'partner CA' });
  const partnerCaFile = join(root, 'partner-ca.crt');
  writeFileSync(partnerCaFile, partnerCa.certPem);
  const partnerLeaf = await issueClientCert(partnerCa, { commonName: 'partner-vcenter' });
  const partner: ClientCreds = { ca: creds.ca, cert: partnerLeaf.certPem, key: partnerLeaf.keyPem };
  t.equal(await attempt(b.port, partner), 'refused', 'a client of an unknown CA is refused on B');
  const added = await runKmipd(['trust', 'add-ca', '--data', A, partnerCaFile, '--name', 'partner']);
  t.equal(added.exitCode, 0, `trust add-ca on A: ${added.err}`);
  const t0 = Date.now();
  t.ok(await eventually(async () => (await attempt(b.port, partner)) === 'served', 15_000), 'a CA trusted on A is trusted on B, without a restart');
  t.comment(`trust reached B in ${Date.now() - t0} ms`);
  const removed = await runKmipd(['trust', 'remove', '--data', B, 'partner']);
  t.equal(removed.exitCode, 0, `trust remove on B: ${removed.err}`);
  t.ok(await eventually(async () => (await attempt(a.port, partner)) === 'refused', 15_000), 'a removal on B reaches A');

  lap('trust');
  // ---- a node started from a copy of another's data directory --------------------------------
  const C = join(root, 'copy-of-a');
  cpSync(A, C, { recursive: true });
  const c = await serve(C, ['--store', url]);
  t.ok(keyBytes(await getKey(c.port, creds, uid))?.equals(keys.get(uid)!), 'a node from a copied data directory serves the same keys');
  await stopNode(c);

  lap('copy');
  // ---- node A dies; B keeps serving ----------------------------------------------------------
  await stopNode(a, 'SIGKILL');
  const afterDeath = await createKey(b.port, creds);
  const k2 = keyBytes(await getKey(b.port, creds, afterDeath));
  t.ok(k2, 'B creates and reads keys after A was killed');
  keys.set(afterDeath, k2!);
  t.ok(keyBytes(await getKey(b.port, creds, uid))?.equals(keys.get(uid)!), "and reads A's keys");

  lap('A killed');
  // ---- the database goes away briefly, under load --------------------------------------------
  const load = await startLoad(b.port, creds, keys, { workers: 2 });
  await eventually(async () => load.ok() > 20, 10_000);
  await pg.stop();
  const during = await getKey(b.port, creds, uid);
  t.equal(during.status, Enums.ResultStatus.OperationFailed, 'a request during the outage fails');
  t.equal(during.reason, Enums.ResultReason.GeneralFailure, 'with General Failure');
  t.match(during.message, /key database is unavailable.*retry/, 'and a message saying so');
  await t.rejects(createKey(b.port, creds), /Create failed: .*key database is unavailable/, 'a Create too');
  await pg.start();
  t.ok(await eventually(async () => keyBytes(await getKey(b.port, creds, uid)) !== undefined, 20_000), 'B recovers by itself once the database is back');
  const okAfterRecovery = load.ok();
  t.ok(await eventually(async () => load.ok() > okAfterRecovery + 20, 10_000), 'the load goes on after the outage, on the same connections');
  await load.stop();
  t.same(
    load.failures.filter((f) => !/key database is unavailable/.test(f)),
    [],
    `during the outage the load's requests failed only with "key database is unavailable" (${load.failures.length} of them); no connection dropped`,
  );
  let intact = 0;
  for (const [u, k] of keys) if (keyBytes(await getKey(b.port, creds, u))?.equals(k)) intact++;
  t.equal(intact, keys.size, 'every acknowledged key is still there, unchanged');
  t.ok(keyBytes(await getKey(b.port, creds, await createKey(b.port, creds))), 'and new keys can be created');
  t.match(b.output.join('\n'), /lost a connection to the PostgreSQL keystore/, 'the outage is in the log');
  await stopNode(b);

  lap('outage');
  // ---- two nodes starting together on an empty database: one root key, one canary ------------
  const url2 = await pg.createDatabase('cluster_two');
  const D = join(root, 'd');
  const E = join(root, 'e');
  for (const dir of [D, E]) {
    const j = await runKmipd(['node', 'join', '--data', dir, '--in', bundle, '--store', url2]);
    t.equal(j.exitCode, 0, `node join ${dir}: ${j.err}`);
  }
  const [d, e] = await Promise.all([serve(D), serve(E)]);
  const rootKeys = await pg.query<{ n: string }>('cluster_two', 'SELECT count(*) AS n FROM kmipd.root_keys');
  t.equal(Number(rootKeys[0]?.n), 1, 'one root key');
  const canaries = await pg.query<{ value: string }>('cluster_two', `SELECT value FROM kmipd.meta WHERE key = 'masterkey.canary'`);
  t.equal(canaries.length, 1, 'one canary');
  const u3 = await createKey(d.port, creds);
  t.ok(keyBytes(await getKey(e.port, creds, u3)), 'and the two serve the same keys');
  await Promise.all([stopNode(d), stopNode(e)]);

  lap('concurrent start');
  // ---- a fresh data directory is no way to join ----------------------------------------------
  const stranger = spawnKmipd(['serve', '--data', join(root, 'stranger'), '--host', '127.0.0.1', '--port', '0', '--store', url], env);
  await t.rejects(stranger, /wrong master key/, 'a node with another master key is refused by the shared canary');

  t.comment(`cluster test took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
