/**
 * What a node refuses to adopt (src/server/master-handoff.ts): a hand-off whose wrapped key was
 * altered, one that unwraps to another key than the one the keystore is under, and none at all
 * (erased by `kmipd master retire-old --force` before the node adopted). In each case nothing is
 * written to the node's data directory, and its start fails with the wrong-master-key message
 * instead of running on a key the keystore does not accept. Also: a `kmipd master` or `root`
 * command on a node that has not adopted yet adopts first; a SQLite keystore (one node) gets no
 * hand-off at all.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SoftwareMasterKey, loadSoftwareMasterKey } from '../../src/crypto/index.js';
import { acquireKeyLock } from '../../src/server/key-admin.js';
import { META_MASTER_HANDOFF, adoptMasterChange, readHandoff, type AdoptOptions } from '../../src/server/master-handoff.js';
import { openMasterConfig } from '../../src/server/master-versions.js';
import { silentLogger } from '../../src/server/log.js';
import { openServerState } from '../../src/server/server.js';
import { openKeyStore } from '../../src/server/store.js';
import { readManifest } from '../../src/server/datadir.js';
import { runKmipd } from '../helpers/cli.js';
import { startPgCluster } from '../helpers/pg.js';
import { need, postgres } from '../helpers/requirements.js';

const req = postgres();
const PASSPHRASE = 'correct horse battery staple';

t.test('a node refuses a hand-off it cannot prove', async (t) => {
  if (!need(t, req)) return;
  const pg = await startPgCluster(req.bindir);
  t.teardown(() => pg.destroy());
  const root = mkdtempSync(join(tmpdir(), 'kmipd-handoff-refuse-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  process.env.PGPASSWORD = pg.password;
  process.env.KMIPD_BUNDLE_PASSPHRASE = PASSPHRASE;
  t.teardown(() => {
    delete process.env.PGPASSWORD;
    delete process.env.KMIPD_BUNDLE_PASSPHRASE;
  });
  const log = silentLogger();

  /** Node A on a fresh database, node B joined from its bundle (B started once), A rotated. */
  const setUp = async (name: string): Promise<{ A: string; B: string; db: string }> => {
    const url = await pg.createDatabase(name);
    const A = join(root, `${name}-a`);
    const B = join(root, `${name}-b`);
    await (await openServerState(A, { log, store: url })).close();
    const bundle = join(root, `${name}.bundle`);
    t.equal((await runKmipd(['node', 'export', '--data', A, '--out', bundle])).exitCode, 0, `${name}: node export`);
    t.equal((await runKmipd(['node', 'join', '--data', B, '--in', bundle])).exitCode, 0, `${name}: node join`);
    // B runs once, as `kmipd serve` would: it records the master key version it runs.
    const state = await openServerState(B, { log });
    await state.handoff!.start(undefined);
    await state.close();
    const rot = await runKmipd(['master', 'rotate', '--data', A]);
    t.equal(rot.exitCode, 0, `${name}: master rotate ${rot.err}`);
    return { A, B, db: name };
  };
  const adopt = async (B: string) => {
    const m = readManifest(B)!;
    const store = await openKeyStore(B, m.keystore);
    const opts: AdoptOptions = { log, open: (cfg) => openMasterConfig(B, cfg, { pin: () => '' }), lock: (w) => acquireKeyLock(B, w) };
    try {
      return await adoptMasterChange(B, store, opts);
    } finally {
      await store.close();
    }
  };
  const untouched = (B: string, what: string): void => {
    const m = readManifest(B)!;
    t.equal(m.master.version ?? 1, 1, `${what}: B's manifest still names version 1`);
    t.ok(existsSync(join(B, 'master.key')), `${what}: B's key file is where it was`);
    t.same(readdirSync(B).filter((f) => /^master-|\.tmp$/.test(f)), [], `${what}: no key file (or temporary) was written`);
  };
  const setEntries = async (db: string, f: (e: Record<string, unknown>) => void): Promise<void> => {
    const [row] = await pg.query<{ value: string }>(db, 'SELECT value FROM kmipd.meta WHERE key = $1', [META_MASTER_HANDOFF]);
    const doc = JSON.parse(row!.value) as { entries: Record<string, unknown>[] };
    for (const e of doc.entries) f(e);
    await pg.query(db, 'UPDATE kmipd.meta SET value = $2 WHERE key = $1', [META_MASTER_HANDOFF, JSON.stringify(doc)]);
  };

  await t.test('an altered wrapped key', async (t) => {
    const { B, db } = await setUp('altered');
    await setEntries(db, (e) => {
      const w = Buffer.from(e.wrapped as string, 'hex');
      w[5]! ^= 0x01;
      e.wrapped = w.toString('hex');
    });
    await t.rejects(adopt(B), /key unwrap failed/, 'the integrity check of RFC 5649 refuses it');
    untouched(B, 'altered');
    await t.rejects(openServerState(B, { log }), /wrong master key/, 'B does not start on its old key either');
    untouched(B, 'altered, after the start attempt');
  });

  await t.test('a hand-off that unwraps to another key', async (t) => {
    const { A, B, db } = await setUp('swapped');
    const old = await loadSoftwareMasterKey(join(A, 'master.key.retired'));
    const other = randomBytes(32);
    const otherId = new SoftwareMasterKey(other, 'x').keyId;
    const wrapped = (await old.wrap(other)).toString('hex');
    await old.close();
    await setEntries(db, (e) => {
      e.wrapped = wrapped;
    });
    await t.rejects(adopt(B), new RegExp(`gives key ${otherId}, not `), 'a key that is not the one named is refused');
    untouched(B, 'swapped');
  });

  await t.test('the hand-off was erased before the node adopted', async (t) => {
    const { A, B } = await setUp('erased');
    const refused = await runKmipd(['master', 'retire-old', '--data', A]);
    t.equal(refused.exitCode, 1, 'retire-old refuses while B is behind');
    const forced = await runKmipd(['master', 'retire-old', '--data', A, '--force']);
    t.equal(forced.exitCode, 0, `retire-old --force ${forced.err}`);
    t.match(forced.out, /nodes still on an earlier version \(--force\)/);
    const m = readManifest(A)!;
    const store = await openKeyStore(A, m.keystore);
    t.same((await readHandoff(store)).entries, [], 'nothing wrapped is left');
    await store.close();
    const r = await adopt(B);
    t.equal(r.adopted, false);
    t.match(r.reason, /new node bundle/, 'B is told to be set up again');
    untouched(B, 'erased');
    t.notOk(readFileSync(join(B, 'kmipd.json'), 'utf8').includes('master-2'), 'the manifest does not name the new key');
  });

  await t.test('a key command on a node that has not adopted yet adopts first', async (t) => {
    const { A, B } = await setUp('catchup');
    const rot = await runKmipd(['master', 'rotate', '--data', B]);
    t.equal(rot.exitCode, 0, `master rotate on B: ${rot.err}`);
    t.match(rot.out, /first adopted master key version 2, made on another node/);
    t.equal(readManifest(B)!.master.version, 3, 'B rotated on from version 2 to 3');
    const rr = await runKmipd(['root', 'rotate', '--data', A]);
    t.equal(rr.exitCode, 0, `root rotate on A: ${rr.err}`);
    t.equal(readManifest(A)!.master.version, 3, 'A adopted version 3 before rotating the root key');
    t.same(readFileSync(join(A, 'master-3.key')), readFileSync(join(B, 'master-3.key')), 'the same key on both');
    // A rollback on A: B finds the version it kept itself (its .retired file) and restores it.
    const back = await runKmipd(['master', 'rollback', '--data', A]);
    t.equal(back.exitCode, 0, `master rollback on A: ${back.err}`);
    const r = await adopt(B);
    t.equal(r.adopted, true, 'B follows the rollback');
    t.equal(r.to?.version, 2);
    const mb = readManifest(B)!;
    t.equal(mb.master.keyId, readManifest(A)!.master.keyId, 'B runs the key A rolled back to');
    t.same(mb.master.kind === 'software' ? mb.master.file : '', 'master-2.key', 'its kept file is back under its own name');
    t.ok(existsSync(join(B, 'master-3.key.retired')), 'version 3 is kept as retired on B');
  });

  await t.test('a SQLite keystore (one node) gets no hand-off', async (t) => {
    const dir = join(root, 'sqlite');
    await (await openServerState(dir, { log })).close();
    t.equal((await runKmipd(['master', 'rotate', '--data', dir])).exitCode, 0);
    const store = await openKeyStore(dir, readManifest(dir)!.keystore);
    t.equal(await store.getMeta(META_MASTER_HANDOFF), undefined, 'no wrapped master key in the keystore');
    await store.close();
  });
});
