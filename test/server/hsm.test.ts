import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueClientCert, loadCa } from '../../src/pki/index.js';
import { KmipTestClient, type ClientCreds } from '../helpers/client.js';
import { getMsg, keyOf, registerMsg, uidOf } from '../helpers/keys.js';
import { spawnKmipd } from '../helpers/process.js';
import { need, softhsm } from '../helpers/requirements.js';
import { createSoftHsm } from '../helpers/softhsm.js';

/** Every file under `dir`, recursively. */
function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

for (const mode of ['root', 'direct'] as const) {
  t.test(`PKCS#11 master key (${mode} mode) on SoftHSM2, through the real server process`, async (t) => {
    if (!need(t, softhsm())) return;
    const hsm = await createSoftHsm();
    const dataDir = mkdtempSync(join(tmpdir(), `kmipd-hsm-${mode}-`));
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
    const env = { ...hsm.env, KMIPD_PKCS11_PIN: hsm.pin };
    let proc = await spawnKmipd(
      ['serve', '--data', dataDir, '--host', '127.0.0.1', '--port', '0', '--master', 'pkcs11', '--pkcs11-module', hsm.module, '--pkcs11-token', hsm.token, '--hsm-mode', mode],
      env,
    );
    t.notOk(proc.output.join('\n').includes(hsm.pin), 'the PIN never appears in the log');
    const manifest = JSON.parse(readFileSync(join(dataDir, 'kmipd.json'), 'utf8')) as { master: { kind: string; mode: string } };
    t.same([manifest.master.kind, manifest.master.mode], ['pkcs11', mode], 'the choice is recorded in the data directory');
    t.notOk(readdirSync(dataDir).includes('master.key'), 'no software master key file');

    const issued = await issueClientCert(loadCa(dataDir), { commonName: 'hsm-client' });
    const creds: ClientCreds = { ca: readFileSync(join(dataDir, 'pki', 'ca.crt'), 'utf8'), cert: issued.certPem, key: issued.keyPem };
    const keys = new Map<string, Buffer>();
    let c = await KmipTestClient.connect(proc.port, creds);
    for (let i = 0; i < 10; i++) {
      const key = randomBytes(32);
      keys.set(uidOf(await c.send(registerMsg(key)))!, key);
    }
    await c.close();
    proc.child.kill('SIGTERM');
    t.equal(await proc.exited, 0, 'clean stop');

    // The plaintext scan: no 16-byte run of any key anywhere under the data directory.
    const leaks = files(dataDir).filter((f) => {
      const bytes = readFileSync(f);
      return [...keys.values()].some((k) => bytes.includes(k.subarray(0, 16)) || bytes.includes(k.subarray(16)));
    });
    t.same(leaks, [], 'no key material in the clear under the data directory');

    // Wrong PIN: refused with a clear message that does not contain either PIN.
    const bad = await spawnKmipd(['serve', '--data', dataDir, '--host', '127.0.0.1', '--port', '0'], { ...hsm.env, KMIPD_PKCS11_PIN: '99999999' }).then(
      () => undefined,
      (e: Error) => e.message,
    );
    t.match(bad ?? '', /PIN/i, 'wrong PIN refused at start-up');
    t.notMatch(bad ?? '', /99999999/, 'without echoing the PIN');

    // Restart with only --data (and the PIN): every key is back.
    proc = await spawnKmipd(['serve', '--data', dataDir, '--host', '127.0.0.1', '--port', '0'], env);
    c = await KmipTestClient.connect(proc.port, creds);
    let same = 0;
    for (const [uid, key] of keys) if (keyOf(await c.send(getMsg(uid)))?.equals(key)) same++;
    t.equal(same, keys.size, 'keys created under the PKCS#11 master key survive a restart');
    await c.close();
    proc.child.kill('SIGTERM');
    await proc.exited;
    hsm.cleanup();
  });
}
