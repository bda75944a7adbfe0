/**
 * Key rotation against real processes (software master key): a server under a Register/Get
 * load while `kmipd master rotate` and `kmipd root rotate` run in other processes (no request
 * may fail), `kmipd master status` numbers, a restart with only --data; and `kmipd root rotate`
 * killed with SIGKILL part way, then run again: it resumes with the same root key and every
 * object opens.
 */
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyStatus } from '../../src/server/key-admin.js';
import { runKmipd } from '../helpers/cli.js';
import { spawnKmipd } from '../helpers/process.js';
import { countReadable, fillDataDir, kmipdChild, kmipdRun, loadCreds, startLoad, until } from '../helpers/rotation.js';

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kmipd-rotation-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** `kmipd master status --json`, run in this process (it only reads the manifest and the keystore). */
async function status(dataDir: string): Promise<KeyStatus> {
  const r = await runKmipd(['master', 'status', '--data', dataDir, '--json']);
  if (r.exitCode !== 0) throw new Error(`master status failed: ${r.err}`);
  return JSON.parse(r.out) as KeyStatus;
}

const serveArgs = (dataDir: string) => ['serve', '--data', dataDir, '--host', '127.0.0.1', '--port', '0'];

t.test('master rotate and root rotate in other processes while the server is under load: no request fails', async (t) => {
  const dataDir = tempDir();
  const keys = await fillDataDir(dataDir, 800);
  const creds = await loadCreds(dataDir);
  let server = await spawnKmipd(serveArgs(dataDir));
  const load = await startLoad(server.port, creds, keys);
  await until(() => load.ok() > 200, 20_000);

  const steps: [string, string[]][] = [
    ['master rotate (to version 2)', ['master', 'rotate', '--data', dataDir]],
    // The new root key is wrapped by master key version 2, which the server has never opened.
    ['root rotate', ['root', 'rotate', '--data', dataDir, '--batch', '50']],
    ['master rotate (to version 3)', ['master', 'rotate', '--data', dataDir]],
  ];
  for (const [what, args] of steps) {
    const before = load.ok();
    const r = await kmipdRun(args);
    t.equal(r.code, 0, `${what}: exit 0`);
    if (r.code !== 0) t.comment(r.out + r.err);
    t.ok(load.ok() > before, `${what}: the server kept serving meanwhile (${load.ok() - before} requests)`);
    t.comment(`${what}: ${r.out.trim().split('\n')[0]}`);
  }
  await until(() => false, 1000);
  await load.stop();
  t.same(load.failures.slice(0, 5), [], `no failed request among ${load.ok()}`);
  t.equal(load.failures.length, 0);

  const s = await status(dataDir);
  t.same(
    s.masterVersions.map((v) => [v.version, v.status]),
    [
      [1, 'retired'],
      [2, 'retired'],
      [3, 'active'],
    ],
    'status: three master key versions, the newest active',
  );
  t.ok(existsSync(join(dataDir, 'master.key.retired')) && existsSync(join(dataDir, 'master-2.key.retired')) && existsSync(join(dataDir, 'master-3.key')));
  t.equal(s.rootKeys.length, 2, 'status: two root keys');
  t.ok(s.rootKeys.every((k) => k.masterVersion === 3), 'status: both wrapped by version 3');
  const active = s.rootKeys.find((k) => k.status === 'active')!;
  const retired = s.rootKeys.find((k) => k.status === 'retired')!;
  t.equal(active.objects, keys.size, `status: all ${keys.size} objects under the active root key`);
  t.equal(retired.objects, 0, 'status: none under the retired one');
  t.same([s.objects.sealed, s.objects.underRetiredRootKeys, s.rootRotationComplete], [keys.size, 0, true]);

  server.child.kill('SIGTERM');
  t.equal(await server.exited, 0, 'clean stop');
  // The server's anchors follow the rotations it did not make itself: its closing anchor is
  // under version 3, so the whole trail verifies with the current master key.
  const v = await kmipdRun(['audit', 'verify', '--data', dataDir]);
  t.equal(v.code, 0, `audit verify after the rotations: ${v.out}${v.err}`);
  t.notMatch(v.out + v.err, /cannot check/, 'every anchor checked or covered by a later one under the current master key');
  server = await spawnKmipd(serveArgs(dataDir));
  const r = await countReadable(server.port, creds, keys);
  t.equal(r.same, keys.size, `a restart with only --data reads every key back${r.firstFailure ? ` (${r.firstFailure})` : ''}`);
  server.child.kill('SIGTERM');
  await server.exited;
});

t.test('root rotate killed with SIGKILL part way; run again it resumes and loses nothing', async (t) => {
  const dataDir = tempDir();
  const keys = await fillDataDir(dataDir, 3000);
  const creds = await loadCreds(dataDir);
  const server = await spawnKmipd(serveArgs(dataDir));
  t.teardown(() => {
    server.child.kill('SIGKILL');
  });
  // Readers only: every object must stay readable while it is re-wrapped, killed, resumed.
  const readers = await startLoad(server.port, creds, keys, { register: false, workers: 2 });

  let progressed = false;
  const first = kmipdChild(['root', 'rotate', '--data', dataDir, '--batch', '5'], {}, (line) => {
    if (/objects re-wrapped/.test(line)) progressed = true;
  });
  t.ok(await until(() => progressed, 60_000), 'progress shows the re-wrap has started');
  first.child.kill('SIGKILL');
  const killed = await first.done;
  t.equal(killed.signal, 'SIGKILL', 'killed');
  t.match(killed.err, /new root key rk-\w+ is active; re-wrapping 3000 object/);

  const mid = await status(dataDir);
  const newKey = mid.rootKeys.find((k) => k.status === 'active')!;
  const oldKey = mid.rootKeys.find((k) => k.status === 'retired')!;
  t.ok(newKey.objects > 0 && oldKey.objects > 0, `interrupted part way: ${newKey.objects} re-wrapped, ${oldKey.objects} not yet`);
  t.equal(newKey.objects + oldKey.objects, keys.size, 'every object accounted for');
  t.equal(mid.rootRotationComplete, false);

  const again = await kmipdRun(['root', 'rotate', '--data', dataDir, '--batch', '200']);
  t.equal(again.code, 0, 'the second run succeeds (the lock left by the killed run is taken over)');
  t.match(again.err, new RegExp(`resuming: root key ${newKey.id} is active; ${oldKey.objects} object`), 'it resumes with the same root key');
  t.match(again.out, /complete/);

  const end = await status(dataDir);
  t.equal(end.rootKeys.length, 2, 'no third root key');
  t.same(
    end.rootKeys.map((k) => [k.id, k.status, k.objects]).sort(),
    [
      [newKey.id, 'active', keys.size],
      [oldKey.id, 'retired', 0],
    ].sort(),
    'status: every object under the new root key',
  );
  await readers.stop();
  t.same(readers.failures.slice(0, 5), [], `no read failed during the kill and the resume (${readers.ok()} reads)`);
  const r = await countReadable(server.port, creds, keys);
  t.equal(r.same, keys.size, `every object opens${r.firstFailure ? ` (${r.firstFailure})` : ''}`);
});
