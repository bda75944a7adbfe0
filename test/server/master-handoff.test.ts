/**
 * Master key rotation across the nodes of one PostgreSQL keystore (src/server/master-handoff.ts):
 * `kmipd master rotate` on node A; node B, running, adopts the new key without a restart or a
 * copied file; node C, stopped during the rotation, adopts it at its next start; keys made
 * before and after on any node are readable on every node; a root key made under the new master
 * key reaches B; no request of a concurrent load fails; `kmipd master status` shows the version
 * each node runs; `kmipd master retire-old` waits for every node, then erases the hand-off.
 * The same with a PKCS#11 master key on a token both nodes use: the new token key is found by
 * its label, nothing leaves the HSM.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { KeyStatus } from '../../src/server/key-admin.js';
import { META_MASTER_HANDOFF } from '../../src/server/master-handoff.js';
import { KmipTestClient, type ClientCreds } from '../helpers/client.js';
import { nodeLauncher, stopNode } from '../helpers/nodes.js';
import { startPgCluster } from '../helpers/pg.js';
import { need, postgres, softhsm } from '../helpers/requirements.js';
import { createSoftHsm } from '../helpers/softhsm.js';
import { countReadable, getMsg, keyOf, kmipdRun, loadCreds, registerMsg, startLoad, uidOf } from '../helpers/rotation.js';

const req = postgres();
const PASSPHRASE = 'correct horse battery staple';

interface ManifestView {
  master: { kind: string; file?: string; version?: number; keyId?: string };
  masterHistory?: { file?: string; version?: number; keyId?: string }[];
}

function manifestOf(dir: string): ManifestView {
  return JSON.parse(readFileSync(join(dir, 'kmipd.json'), 'utf8')) as ManifestView;
}

async function register(port: number, creds: ClientCreds, keys: Map<string, Buffer>): Promise<string> {
  const c = await KmipTestClient.connect(port, creds);
  try {
    const key = randomBytes(32);
    const r = await c.send(registerMsg(key));
    const uid = uidOf(r);
    if (uid === undefined) throw new Error('Register failed');
    keys.set(uid, key);
    return uid;
  } finally {
    await c.close();
  }
}

async function readable(port: number, creds: ClientCreds, uid: string, key: Buffer): Promise<boolean> {
  const c = await KmipTestClient.connect(port, creds);
  try {
    return keyOf(await c.send(getMsg(uid)))?.equals(key) ?? false;
  } finally {
    await c.close();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function eventually(fn: () => boolean | Promise<boolean>, ms = 20_000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await sleep(200);
  }
}

t.test('a master key rotated on one node is adopted by the others', async (t) => {
  if (!need(t, req)) return;
  const pg = await startPgCluster(req.bindir);
  t.teardown(() => pg.destroy());
  const url = await pg.createDatabase('handoff');
  const db = 'handoff';
  const root = mkdtempSync(join(tmpdir(), 'kmipd-handoff-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const env = { PGPASSWORD: pg.password, KMIPD_BUNDLE_PASSPHRASE: PASSPHRASE };
  const serve = nodeLauncher(t, env);
  const cli = async (args: string[]) => {
    const r = await kmipdRun(args, env);
    return r;
  };
  const A = join(root, 'a');
  const B = join(root, 'b');
  const C = join(root, 'c');
  const bundle = join(root, 'node.bundle');

  const a = await serve(A, ['--store', url]);
  const creds = await loadCreds(A);
  t.equal((await cli(['node', 'export', '--data', A, '--out', bundle])).code, 0, 'node export');
  const b = await serve(B, ['--join', bundle]);
  let c = await serve(C, ['--join', bundle]);
  const keys = new Map<string, Buffer>();
  const onA = await register(a.port, creds, keys);
  const onB = await register(b.port, creds, keys);
  const onC = await register(c.port, creds, keys);
  // C goes down before the rotation.
  await stopNode(c);
  const oldKeyFile = readFileSync(join(B, 'master.key'));

  // ---- rotation on A, under load on A and B --------------------------------------------------------
  const loadA = await startLoad(a.port, creds, keys, { workers: 2 });
  const loadB = await startLoad(b.port, creds, keys, { workers: 2 });
  await sleep(500);
  const rot = await cli(['master', 'rotate', '--data', A]);
  t.equal(rot.code, 0, `master rotate: ${rot.err}`);
  t.match(rot.out, /adopt the new master key by themselves/);
  t.equal(manifestOf(A).master.version, 2);
  const newId = manifestOf(A).master.keyId;
  t.ok(newId, 'the new key id is recorded on A');

  // B adopts: a new key file, the old one kept as retired, the manifest naming version 2.
  t.ok(await eventually(() => manifestOf(B).master.version === 2), 'node B adopted version 2 while running');
  const mb = manifestOf(B);
  t.equal(mb.master.keyId, newId, 'B runs the same key as A');
  t.equal(mb.master.file, 'master-2.key');
  t.equal(statSync(join(B, 'master-2.key')).mode & 0o777, 0o600, 'the adopted key file is 0600');
  t.same(readFileSync(join(B, 'master-2.key')), readFileSync(join(A, 'master-2.key')), 'B holds the same key bytes as A');
  t.ok(existsSync(join(B, 'master.key.retired')) && !existsSync(join(B, 'master.key')), 'the previous key file is kept as retired');
  t.same(readFileSync(join(B, 'master.key.retired')), oldKeyFile);
  t.equal(mb.masterHistory?.at(-1)?.version, 1);
  await sleep(1500);
  await loadA.stop();
  await loadB.stop();
  t.same([...loadA.failures, ...loadB.failures], [], 'no request of the concurrent load failed');
  t.ok(loadA.ok() > 0 && loadB.ok() > 0, `the load ran (${loadA.ok()} + ${loadB.ok()} requests)`);

  // ---- every key on every running node ---------------------------------------------------------------
  for (const [name, p] of [['A', a], ['B', b]] as const) {
    const r = await countReadable(p.port, creds, keys);
    t.equal(r.same, keys.size, `node ${name} reads all ${keys.size} keys ${r.firstFailure ?? ''}`);
  }
  const afterOnB = await register(b.port, creds, keys);
  t.ok(await readable(a.port, creds, afterOnB, keys.get(afterOnB)!), 'a key created on B after adoption is readable on A');
  t.ok(await readable(b.port, creds, onA, keys.get(onA)!) && (await readable(a.port, creds, onB, keys.get(onB)!)), 'keys from before the rotation cross over');

  // ---- a root key under the new master key reaches B -----------------------------------------------------
  const rr = await cli(['root', 'rotate', '--data', A]);
  t.equal(rr.code, 0, `root rotate: ${rr.err}`);
  const underNewRoot = await register(a.port, creds, keys);
  t.ok(await eventually(() => readable(b.port, creds, underNewRoot, keys.get(underNewRoot)!)), 'B opens a key sealed under a root key wrapped by the new master key');

  // ---- status, and retire-old waiting for C ------------------------------------------------------------
  const st = await cli(['master', 'status', '--data', A, '--json']);
  t.equal(st.code, 0, st.err);
  const status = JSON.parse(st.out) as KeyStatus;
  const node = (dir: string) => status.nodes.find((n) => n.node.endsWith(`:${dir}`));
  t.equal(node(A)?.version, 2, 'status: A runs version 2');
  t.equal(node(B)?.version, 2, 'status: B runs version 2');
  t.ok(node(B)?.current);
  t.equal(node(C)?.version, 1, 'status: C (stopped) still on version 1');
  t.notOk(node(C)?.current);
  t.equal(status.handoffs.length, 1, 'one hand-off in the keystore');
  const text = await cli(['master', 'status', '--data', A]);
  t.match(text.out, /nodes \(the master key version each runs\)/);
  t.match(text.out, /behind/);
  const refused = await cli(['master', 'retire-old', '--data', A]);
  t.equal(refused.code, 1, 'retire-old is refused while C has not adopted');
  t.match(refused.err, /1 node\(s\) have not adopted/);

  // ---- C adopts at start -------------------------------------------------------------------------------
  c = await serve(C);
  t.equal(manifestOf(C).master.version, 2, 'node C adopted version 2 at its start');
  t.equal(manifestOf(C).master.keyId, newId);
  const rc = await countReadable(c.port, creds, keys);
  t.equal(rc.same, keys.size, `node C reads all ${keys.size} keys ${rc.firstFailure ?? ''}`);
  t.ok(await readable(a.port, creds, onC, keys.get(onC)!), 'the key created on C before the rotation is readable on A');

  // ---- B restarts on its new key file ----------------------------------------------------------------------
  await stopNode(b);
  const b2 = await serve(B);
  t.notOk(b2.output.some((l) => l.includes('adopted the master key')), 'B starts on its new key file (nothing to adopt)');
  const rb = await countReadable(b2.port, creds, keys);
  t.equal(rb.same, keys.size, `restarted B reads all ${keys.size} keys`);

  // ---- audit records -------------------------------------------------------------------------------------
  for (const [name, dir] of [['B', B], ['C', C]] as const) {
    const log = readFileSync(join(dir, 'audit', 'audit.log'), 'utf8');
    t.match(log, /"master adopt"/, `node ${name} audited its adoption`);
  }
  t.match(readFileSync(join(A, 'audit', 'audit.log'), 'utf8'), /"master rotate"/, 'the rotation is audited on A');

  // ---- retire-old ---------------------------------------------------------------------------------------
  t.ok(await eventually(async () => {
    const s = JSON.parse((await cli(['master', 'status', '--data', A, '--json'])).out) as KeyStatus;
    return s.nodes.every((n) => n.current);
  }), 'every node reports the current version');
  const retired = await cli(['master', 'retire-old', '--data', A]);
  t.equal(retired.code, 0, `retire-old: ${retired.err}`);
  t.match(retired.out, /hand-offs erased: version 2/);
  const row = await pg.query<{ value: string }>(db, 'SELECT value FROM kmipd.meta WHERE key = $1', [META_MASTER_HANDOFF]);
  const doc = JSON.parse(row[0]!.value) as { entries: unknown[]; erased: unknown[] };
  t.same(doc.entries, [], 'no wrapped master key is left in the keystore');
  t.equal(doc.erased.length, 1);
  t.match(readFileSync(join(A, 'audit', 'audit.log'), 'utf8'), /"master retire-old"/, 'retire-old is audited');
});

t.test('a PKCS#11 master key rotated on one node: the other finds the new token key by its label', async (t) => {
  if (!need(t, req) || !need(t, softhsm())) return;
  const hsm = await createSoftHsm();
  t.teardown(() => hsm.cleanup());
  const pg = await startPgCluster(req.bindir);
  t.teardown(() => pg.destroy());
  const url = await pg.createDatabase('handoff_hsm');
  const root = mkdtempSync(join(tmpdir(), 'kmipd-handoff-hsm-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const env = { ...hsm.env, KMIPD_PKCS11_PIN: hsm.pin, PGPASSWORD: pg.password, KMIPD_BUNDLE_PASSPHRASE: PASSPHRASE };
  const serve = nodeLauncher(t, env);
  const A = join(root, 'a');
  const B = join(root, 'b');
  const bundle = join(root, 'node.bundle');
  const a = await serve(A, ['--store', url, '--master', 'pkcs11', '--pkcs11-module', hsm.module, '--pkcs11-token', hsm.token]);
  const creds = await loadCreds(A);
  t.equal((await kmipdRun(['node', 'export', '--data', A, '--out', bundle], env)).code, 0, 'node export');
  let b = await serve(B, ['--join', bundle]);
  const keys = new Map<string, Buffer>();
  await register(a.port, creds, keys);
  await register(b.port, creds, keys);
  const load = await startLoad(b.port, creds, keys, { workers: 2 });

  const rot = await kmipdRun(['master', 'rotate', '--data', A], env);
  t.equal(rot.code, 0, `master rotate: ${rot.err}`);
  t.match(rot.out, /kmipd-master-v2/);
  t.notOk((rot.out + rot.err).includes(hsm.pin), 'the PIN is not shown');
  t.ok(await eventually(() => manifestOf(B).master.version === 2), 'node B adopted version 2 while running');
  const mb = manifestOf(B) as ManifestView & { master: { keyLabel?: string; token?: string } };
  t.equal(mb.master.kind, 'pkcs11');
  t.equal(mb.master.keyLabel, 'kmipd-master-v2', 'B names the new token key by its label');
  t.equal(mb.master.keyId, manifestOf(A).master.keyId);
  const rr = await kmipdRun(['root', 'rotate', '--data', A], env);
  t.equal(rr.code, 0, `root rotate: ${rr.err}`);
  const fresh = await register(a.port, creds, keys);
  t.ok(await eventually(() => readable(b.port, creds, fresh, keys.get(fresh)!)), 'B opens a key under a root key wrapped by the new token key');
  await load.stop();
  t.same(load.failures, [], 'no request of the load on B failed');

  await stopNode(b);
  b = await serve(B);
  const r = await countReadable(b.port, creds, keys);
  t.equal(r.same, keys.size, `restarted B reads all ${keys.size} keys ${r.firstFailure ?? ''}`);
  t.match(readFileSync(join(B, 'audit', 'audit.log'), 'utf8'), /"master adopt"/, 'B audited its adoption');
});
