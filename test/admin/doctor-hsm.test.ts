/**
 * `kmipd doctor` with a PKCS#11 master key on SoftHSM2: it logs in, finds the master key, does a
 * test wrap/unwrap on the token; the PIN may come as a systemd credential; a wrong PIN fails
 * the HSM check without printing either PIN.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kmipdCommand, spawnKmipd } from '../helpers/process.js';
import { need, softhsm } from '../helpers/requirements.js';
import { createSoftHsm } from '../helpers/softhsm.js';

function doctor(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  const k = kmipdCommand(['doctor', ...args], env);
  return new Promise((resolve) => {
    const c = spawn(k.command, k.args, { env: k.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (out += b.toString()));
    c.once('exit', (code) => resolve({ code, out }));
  });
}

t.test('the HSM check: login, the master key, a test wrap on the token', async (t) => {
  if (!need(t, softhsm())) return;
  const hsm = await createSoftHsm();
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-doctor-hsm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const proc = await spawnKmipd(
    ['serve', '--data', dir, '--host', '127.0.0.1', '--port', '0', '--master', 'pkcs11', '--pkcs11-module', hsm.module, '--pkcs11-token', hsm.token],
    { ...hsm.env, KMIPD_PKCS11_PIN: hsm.pin },
  );
  proc.child.kill('SIGTERM');
  t.equal(await proc.exited, 0);
  const file = join(dir, 'kmipd.json');
  writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), server: { host: '127.0.0.1', port: 0 } }, null, 2));

  const good = await doctor(['--data', dir], { ...hsm.env, KMIPD_PKCS11_PIN: hsm.pin });
  t.equal(good.code, 0, good.out);
  t.match(good.out, new RegExp(`\\[ok\\] {3}HSM: token "${hsm.token}": logged in, master key found, test wrap/unwrap round trip ok\\n`));
  t.match(good.out, /\[ok\] {3}master key: pkcs11:.* reproduces the keystore's canary/);

  // The PIN as a systemd credential (LoadCredential=kmipd-pkcs11-pin:...).
  const creds = mkdtempSync(join(tmpdir(), 'kmipd-creds-'));
  t.teardown(() => rmSync(creds, { recursive: true, force: true }));
  writeFileSync(join(creds, 'kmipd-pkcs11-pin'), `${hsm.pin}\n`, { mode: 0o400 });
  const viaCredential = await doctor(['--data', dir], { ...hsm.env, KMIPD_PKCS11_PIN: '', CREDENTIALS_DIRECTORY: creds });
  t.equal(viaCredential.code, 0, viaCredential.out);
  t.match(viaCredential.out, /\[ok\] {3}HSM: /);

  const wrong = await doctor(['--data', dir], { ...hsm.env, KMIPD_PKCS11_PIN: '99999999' });
  t.equal(wrong.code, 1);
  t.match(wrong.out, /\[FAIL\] HSM: cannot open the master key in the HSM: /);
  t.notOk(wrong.out.includes(hsm.pin), 'the PIN is not printed');
  t.notOk(wrong.out.includes('99999999'), 'nor the wrong one');
});
