/**
 * The master key in an HSM (SoftHSM2), against real processes, with a Register/Get load on the
 * server throughout: `kmipd master migrate` software -> PKCS#11, a restart on the HSM key,
 * `kmipd master rotate` (a new token key `<label>-vN`) and `kmipd root rotate` in other
 * processes, the token taken away (the server keeps serving in root mode, the rotation
 * commands fail with a clear message and change nothing), then back to software. No request
 * fails, and every key is read back after each restart.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { KeyStatus } from '../../src/server/key-admin.js';
import { runKmipd } from '../helpers/cli.js';
import { spawnKmipd, type KmipdProcess } from '../helpers/process.js';
import { need, softhsm } from '../helpers/requirements.js';
import { countReadable, fillDataDir, kmipdRun, loadCreds, sleep, startLoad, until, type Load } from '../helpers/rotation.js';
import { createSoftHsm } from '../helpers/softhsm.js';

t.test('software -> PKCS#11 -> rotations -> HSM outage -> software, under load, through real processes', async (t) => {
  if (!need(t, softhsm())) return;
  const hsm = await createSoftHsm();
  t.teardown(() => hsm.cleanup());
  const env = { ...hsm.env, KMIPD_PKCS11_PIN: hsm.pin };
  const dataDir = mkdtempSync(join(tmpdir(), 'kmipd-rotation-hsm-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const serve = ['serve', '--data', dataDir, '--host', '127.0.0.1', '--port', '0'];

  const keys = await fillDataDir(dataDir, 400);
  const creds = await loadCreds(dataDir);
  let server: KmipdProcess = await spawnKmipd(serve, env);
  let load: Load = await startLoad(server.port, creds, keys);
  const failures: string[] = [];
  const step = async (what: string, args: string[], wantCode = 0): Promise<string> => {
    const before = load.ok();
    const r = await kmipdRun(args, env);
    t.equal(r.code, wantCode, `${what}: exit ${wantCode}`);
    if (r.code !== wantCode) t.comment(r.out + r.err);
    t.ok(load.ok() > before, `${what}: the server kept serving (${load.ok() - before} requests meanwhile)`);
    t.notOk((r.out + r.err).includes(hsm.pin), `${what}: the PIN is not shown`);
    return r.out + r.err;
  };
  const restart = async (what: string, e: NodeJS.ProcessEnv): Promise<void> => {
    await load.stop();
    failures.push(...load.failures);
    server.child.kill('SIGTERM');
    t.equal(await server.exited, 0, `${what}: clean stop`);
    server = await spawnKmipd(serve, e);
    const r = await countReadable(server.port, creds, keys);
    t.equal(r.same, keys.size, `${what}: restarted with only --data, every key (${keys.size}) reads back${r.firstFailure ? ` (${r.firstFailure})` : ''}`);
    load = await startLoad(server.port, creds, keys);
  };
  await until(() => load.ok() > 100, 20_000);

  // 1. software -> PKCS#11.
  const migrate = ['master', 'migrate', '--data', dataDir, '--to', 'pkcs11', '--pkcs11-module', hsm.module, '--pkcs11-token', hsm.token];
  t.match(await step('migrate to pkcs11', migrate), /master key migrated: version 2 \(pkcs11.*shred -u/s);
  const m = JSON.parse(readFileSync(join(dataDir, 'kmipd.json'), 'utf8')) as { master: { kind: string; keyLabel: string } };
  t.same([m.master.kind, m.master.keyLabel], ['pkcs11', 'kmipd-master']);
  await restart('after the migration', env);

  // 2. rotations while serving from the HSM master key.
  t.match(await step('master rotate', ['master', 'rotate', '--data', dataDir]), /version 3 \(pkcs11, token "[^"]+", key "kmipd-master-v3"/);
  t.match(await step('root rotate', ['root', 'rotate', '--data', dataDir, '--batch', '50']), /root key rotation complete/);

  // 3. The token goes away: the server serves on (root mode), rotation commands refuse clearly.
  const hidden = join(dirname(hsm.tokensDir), `away-${Date.now()}`);
  renameSync(hsm.tokenDir, hidden);
  try {
    const before = load.ok();
    await sleep(1500);
    t.ok(load.ok() > before + 10, `token gone: the server keeps serving (${load.ok() - before} requests)`);
    const manifestBefore = readFileSync(join(dataDir, 'kmipd.json'), 'utf8');
    const e1 = await step('master rotate without the HSM', ['master', 'rotate', '--data', dataDir], 1);
    t.match(e1, /kmipd master rotate: cannot open master key version 3 \(pkcs11.*\).*HSM is unavailable/s, 'master rotate says the HSM is unavailable');
    const e2 = await step('root rotate without the HSM', ['root', 'rotate', '--data', dataDir], 1);
    t.match(e2, /kmipd root rotate: cannot open master key version 3.*HSM is unavailable/s, 'root rotate too');
    t.equal(readFileSync(join(dataDir, 'kmipd.json'), 'utf8'), manifestBefore, 'nothing was changed');
  } finally {
    renameSync(hidden, hsm.tokenDir);
  }

  // 4. Back to software.
  t.match(await step('migrate to software', ['master', 'migrate', '--data', dataDir, '--to', 'software']), /version 4 \(software, file master-4\.key.*stays on token/s);
  await until(() => false, 500);
  await load.stop();
  failures.push(...load.failures);
  t.same(failures.slice(0, 5), [], 'no request failed through all of it');
  t.equal(failures.length, 0);

  const r = await runKmipd(['master', 'status', '--data', dataDir, '--json']);
  const s = JSON.parse(r.out) as KeyStatus;
  t.same(
    s.masterVersions.map((v) => [v.version, v.kind, v.status]),
    [
      [1, 'software', 'retired'],
      [2, 'pkcs11', 'retired'],
      [3, 'pkcs11', 'retired'],
      [4, 'software', 'active'],
    ],
  );
  t.ok(s.rootKeys.every((k) => k.masterVersion === 4), 'every root key wrapped by version 4');
  t.same([s.objects.sealed, s.objects.underActiveRootKey, s.objects.underRetiredRootKeys], [keys.size, keys.size, 0], 'status: object counts');

  // 5. Software again: a restart needs neither the HSM nor the PIN.
  server.child.kill('SIGTERM');
  await server.exited;
  const plainEnv: NodeJS.ProcessEnv = { KMIPD_PKCS11_PIN: '' };
  server = await spawnKmipd(serve, plainEnv);
  const back = await countReadable(server.port, creds, keys);
  t.equal(back.same, keys.size, 'after the round trip, every key reads back on the software master key');
  server.child.kill('SIGTERM');
  await server.exited;
});
