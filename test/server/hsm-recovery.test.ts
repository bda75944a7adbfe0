/**
 * Direct mode (every object sealed inside the HSM) through the real server process: the token
 * disappears while serving (its directory moved away), a Get then fails with a clear KMIP
 * Cryptographic Failure instead of an internal error; the token comes back and the server
 * recovers by itself (the provider re-opens its session): Gets work again and nothing is lost.
 * Master and root key rotation are refused in direct mode with a message saying why.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Enums } from '../../src/spec/index.js';
import { KmipTestClient } from '../helpers/client.js';
import { batchItems, itemResult } from '../helpers/engine.js';
import { spawnKmipd } from '../helpers/process.js';
import { need, softhsm } from '../helpers/requirements.js';
import { getMsg, keyOf, kmipdRun, loadCreds, registerMsg, sleep, uidOf } from '../helpers/rotation.js';
import { createSoftHsm } from '../helpers/softhsm.js';

t.test('direct mode: HSM gone mid-serve gives a clear KMIP error; back, the server recovers by itself', async (t) => {
  if (!need(t, softhsm())) return;
  const hsm = await createSoftHsm();
  t.teardown(() => hsm.cleanup());
  const env = { ...hsm.env, KMIPD_PKCS11_PIN: hsm.pin };
  const dataDir = mkdtempSync(join(tmpdir(), 'kmipd-hsm-recovery-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const proc = await spawnKmipd(
    ['serve', '--data', dataDir, '--host', '127.0.0.1', '--port', '0', '--master', 'pkcs11', '--pkcs11-module', hsm.module, '--pkcs11-token', hsm.token, '--hsm-mode', 'direct'],
    env,
  );
  t.teardown(() => {
    proc.child.kill('SIGKILL');
  });
  const c = await KmipTestClient.connect(proc.port, await loadCreds(dataDir));
  t.teardown(() => c.close());
  const keys = new Map<string, Buffer>();
  for (let i = 0; i < 10; i++) {
    const key = randomBytes(32);
    const uid = uidOf(await c.send(registerMsg(key)));
    if (uid) keys.set(uid, key);
  }
  t.equal(keys.size, 10, 'ten keys registered, sealed in the HSM');
  const [uid0, key0] = [...keys][0]!;

  const hidden = join(dirname(hsm.tokensDir), `away-${Date.now()}`);
  renameSync(hsm.tokenDir, hidden);
  let restored = false;
  t.teardown(() => {
    if (!restored) renameSync(hidden, hsm.tokenDir);
  });
  const r1 = itemResult(batchItems(await c.send(getMsg(uid0)))[0]!);
  t.equal(r1.status, Enums.ResultStatus.OperationFailed, 'token gone: the Get fails');
  t.equal(r1.reason, Enums.ResultReason.CryptographicFailure, 'as a Cryptographic Failure');
  t.match(r1.message, /HSM .*unavailable.*retry later/, `with a clear message: "${r1.message}"`);
  const r2 = itemResult(batchItems(await c.send(registerMsg(randomBytes(32))))[0]!);
  t.equal(r2.reason, Enums.ResultReason.CryptographicFailure, 'a Register fails the same way (nothing half-stored)');
  t.notOk(proc.output.join('\n').includes(hsm.pin), 'the PIN is not in the log');

  renameSync(hidden, hsm.tokenDir);
  restored = true;
  // The provider tries to re-open at most once a second: the first Gets after the return may still fail.
  let recovered = false;
  const end = Date.now() + 15_000;
  while (!recovered && Date.now() < end) {
    recovered = keyOf(await c.send(getMsg(uid0)))?.equals(key0) === true;
    if (!recovered) await sleep(200);
  }
  t.ok(recovered, 'token back: Gets work again, with no restart');
  let same = 0;
  for (const [uid, key] of keys) if (keyOf(await c.send(getMsg(uid)))?.equals(key)) same++;
  t.equal(same, keys.size, 'every key is intact');
  const key = randomBytes(32);
  const uid = uidOf(await c.send(registerMsg(key)));
  t.ok(uid && keyOf(await c.send(getMsg(uid)))?.equals(key), 'new keys are sealed again');

  const rot = await kmipdRun(['master', 'rotate', '--data', dataDir], env);
  t.equal(rot.code, 1, 'master rotate is refused in direct mode');
  t.match(rot.err, /direct mode/);
  const rr = await kmipdRun(['root', 'rotate', '--data', dataDir], env);
  t.equal(rr.code, 1, 'root rotate too');
  t.match(rr.err, /direct mode.*root keys protect nothing/);
});
