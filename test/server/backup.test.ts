/**
 * `kmipd backup` while the server serves, and `kmipd restore` across backends:
 * SQLite -> PostgreSQL -> SQLite with every key readable; refusals (non-empty store, another
 * master key, a damaged file).
 */
import t from 'tap';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { progressBar } from '../../src/cli/progress.js';
import { silentLogger } from '../../src/server/log.js';
import { openServerState } from '../../src/server/server.js';
import { Enums } from '../../src/spec/index.js';
import { runKmipd } from '../helpers/cli.js';
import type { ClientCreds } from '../helpers/client.js';
import { createKey, credsFor, getKey, keyBytes, stopNode } from '../helpers/nodes.js';
import { startPgCluster } from '../helpers/pg.js';
import { spawnKmipd, type KmipdProcess } from '../helpers/process.js';
import { need, postgres } from '../helpers/requirements.js';

const req = postgres();

t.test('progress bar: lines every 10 % when stderr is not a terminal', async (t) => {
  let out = '';
  const stream = { isTTY: false, write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream;
  const bar = progressBar({ stream, minTotal: 10 })('restore', 100);
  for (let i = 0; i < 100; i++) bar.tick();
  bar.done();
  t.match(out, /^restore: 1% \(1\/100\)\n/);
  t.match(out, /restore: 50% \(50\/100\)\n/);
  t.match(out, /restore: 100% \(100\/100\)\n$/);
  t.equal(out.split('\n').length, 12, 'one line per 10 %, no repeat at the end');
  let small = '';
  const quiet = progressBar({ stream: { isTTY: false, write: (s: string) => ((small += s), true) } as unknown as NodeJS.WriteStream, minTotal: 1000 })('x', 10);
  quiet.tick();
  quiet.done();
  t.equal(small, '', 'nothing for a small job');
});

t.test('backup while serving; restore SQLite -> PostgreSQL -> SQLite', async (t) => {
  if (!need(t, req)) return;
  const started = Date.now();
  const pg = await startPgCluster(req.bindir);
  t.teardown(() => pg.destroy());
  const pgUrl = await pg.createDatabase('restored');
  const root = mkdtempSync(join(tmpdir(), 'kmipd-backup-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  process.env.PGPASSWORD = pg.password;
  t.teardown(() => {
    delete process.env.PGPASSWORD;
  });
  const running: KmipdProcess[] = [];
  t.teardown(async () => {
    for (const p of running) await stopNode(p, 'SIGKILL');
  });
  const serve = async (dir: string, extra: string[] = []): Promise<KmipdProcess> => {
    const p = await spawnKmipd(['serve', '--data', dir, '--host', '127.0.0.1', '--port', '0', ...extra], { PGPASSWORD: pg.password });
    running.push(p);
    return p;
  };

  /** Creates keys on `port` until `stop()`; records each acknowledged one with its bytes. */
  const writer = (port: number, creds: ClientCreds, keys: Map<string, Buffer>) => {
    let stopped = false;
    const done = (async () => {
      while (!stopped) {
        const u = await createKey(port, creds);
        const k = keyBytes(await getKey(port, creds, u));
        if (k) keys.set(u, k);
      }
    })();
    return async () => {
      stopped = true;
      await done;
    };
  };
  /** How many of `keys` `port` serves with the same bytes; fails on any other answer than ItemNotFound. */
  const readable = async (port: number, creds: ClientCreds, keys: Map<string, Buffer>): Promise<number> => {
    let n = 0;
    for (const [u, k] of keys) {
      const r = await getKey(port, creds, u);
      const b = keyBytes(r);
      if (b?.equals(k)) n++;
      else if (r.reason !== Enums.ResultReason.ItemNotFound) t.fail(`key ${u}: ${b ? 'different bytes' : `${r.reason} ${r.message}`}`);
    }
    return n;
  };
  const countIn = (out: string): number => Number(/Backed up (\d+) object/.exec(out)?.[1] ?? NaN);

  // ---- a SQLite node, backed up while it creates keys ---------------------------------------
  const S = join(root, 'sqlite-node');
  const s = await serve(S);
  const creds = await credsFor(S, 'vcenter');
  const keys = new Map<string, Buffer>();
  for (let i = 0; i < 30; i++) {
    const u = await createKey(s.port, creds);
    keys.set(u, keyBytes(await getKey(s.port, creds, u))!);
  }
  const before = keys.size;
  const stopWriting = writer(s.port, creds, keys);
  await new Promise((r) => setTimeout(r, 300));
  const f1 = join(root, 'one.kmipd-backup');
  const b1 = await runKmipd(['backup', '--data', S, '--out', f1]);
  await new Promise((r) => setTimeout(r, 300));
  await stopWriting();
  t.equal(b1.exitCode, 0, `backup of the serving SQLite node: ${b1.err}`);
  const n1 = countIn(b1.out);
  t.ok(n1 > before && n1 < keys.size, `the backup holds the ${n1} keys acknowledged before the snapshot (${before} before the backup started, ${keys.size} in the end)`);
  const lines = gunzipSync(readFileSync(f1)).toString('utf8');
  t.notOk(lines.includes('BEGIN'), 'nothing in clear');
  for (const k of [...keys.values()].slice(0, 5)) t.notOk(lines.includes(k.toString('base64')), 'no plaintext key in the backup');

  // ---- restore refused into a store that is not empty --------------------------------------
  const refused = await runKmipd(['restore', '--data', S, '--in', f1]);
  t.equal(refused.exitCode, 1, 'restore into the node\'s own (full) store is refused');
  t.match(refused.err, /not empty/);

  // ---- SQLite -> PostgreSQL -------------------------------------------------------------------
  const P = join(root, 'pg-node');
  cpSync(S, P, { recursive: true }); // the same master key and PKI; its SQLite store stays behind
  const r1 = await runKmipd(['restore', '--data', P, '--in', f1, '--store', pgUrl]);
  t.equal(r1.exitCode, 0, `restore into PostgreSQL: ${r1.err}`);
  t.match(r1.out, new RegExp(`Restored ${n1} object\\(s\\)`));
  t.match(r1.out, new RegExp(`Verified: the key material of every object \\(${n1}\\) opens with master key software:sw-`));
  t.same(JSON.parse(readFileSync(join(P, 'kmipd.json'), 'utf8')).keystore, { kind: 'postgres', url: pgUrl }, 'the manifest now names PostgreSQL');
  const again = await runKmipd(['restore', '--data', P, '--in', f1]);
  t.equal(again.exitCode, 1, 'a second restore into the now full PostgreSQL store is refused');
  t.match(again.err, /not empty/);
  await stopNode(s);

  const p = await serve(P);
  t.equal(await readable(p.port, creds, keys), n1, 'every key of the backup is readable from PostgreSQL');

  // ---- PostgreSQL (serving) -> SQLite --------------------------------------------------------
  const stopWriting2 = writer(p.port, creds, keys);
  await new Promise((r) => setTimeout(r, 300));
  const f2 = join(root, 'two.kmipd-backup');
  const b2 = await runKmipd(['backup', '--data', P, '--out', f2]);
  await new Promise((r) => setTimeout(r, 300));
  await stopWriting2();
  t.equal(b2.exitCode, 0, `backup of the serving PostgreSQL node: ${b2.err}`);
  const n2 = countIn(b2.out);
  t.ok(n2 > n1, `the second backup holds ${n2} keys`);
  await stopNode(p);
  const r2 = await runKmipd(['restore', '--data', P, '--in', f2, '--store', 'sqlite:restored.sqlite']);
  t.equal(r2.exitCode, 0, `restore into SQLite: ${r2.err}`);
  t.same(JSON.parse(readFileSync(join(P, 'kmipd.json'), 'utf8')).keystore, { kind: 'sqlite', file: 'restored.sqlite' });
  const q = await serve(P);
  t.equal(await readable(q.port, creds, keys), n2, 'every key of the second backup is readable from SQLite again');
  await stopNode(q);

  // ---- refusals --------------------------------------------------------------------------------
  const damaged = join(root, 'damaged.kmipd-backup');
  const text = gunzipSync(readFileSync(f2)).toString('utf8');
  const i = text.indexOf('"blob":"') + 12;
  writeFileSync(damaged, gzipSync(text.slice(0, i) + (text[i] === 'A' ? 'B' : 'A') + text.slice(i + 1)));
  const bad = await runKmipd(['restore', '--data', P, '--in', damaged, '--store', 'sqlite:never.sqlite']);
  t.equal(bad.exitCode, 1, 'a damaged backup is refused');
  t.match(bad.err, /damaged or was altered/);
  const truncated = join(root, 'truncated.kmipd-backup');
  writeFileSync(truncated, gzipSync(text.split('\n').slice(0, 5).join('\n') + '\n'));
  const cut = await runKmipd(['restore', '--data', P, '--in', truncated, '--store', 'sqlite:never.sqlite']);
  t.equal(cut.exitCode, 1, 'a truncated backup is refused');
  t.match(cut.err, /truncated/);

  const W = join(root, 'other-node');
  await (await openServerState(W, { log: silentLogger() })).close(); // a data directory with its own master key
  const foreign = await runKmipd(['restore', '--data', W, '--in', f1, '--store', 'sqlite:other.sqlite']);
  t.equal(foreign.exitCode, 1, 'a restore with another master key is refused');
  t.match(foreign.err, /does not belong to this data directory's master key/);

  t.comment(`backup/restore test took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
