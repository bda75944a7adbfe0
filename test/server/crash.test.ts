import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueClientCert, loadCa } from '../../src/pki/index.js';
import { KmipTestClient, type ClientCreds } from '../helpers/client.js';
import { getMsg, keyOf, registerMsg, uidOf } from '../helpers/keys.js';
import { spawnKmipd } from '../helpers/process.js';

t.test('kill -9 in the middle of writes: every acknowledged object survives intact', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kmipd-crash-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  let proc = await spawnKmipd(['serve', '--data', dataDir, '--host', '127.0.0.1', '--port', '0']);
  const issued = await issueClientCert(loadCa(dataDir), { commonName: 'writer' });
  const creds: ClientCreds = { ca: readFileSync(join(dataDir, 'pki', 'ca.crt'), 'utf8'), cert: issued.certPem, key: issued.keyPem };

  const acked = new Map<string, Buffer>();
  const writers = 4;
  let stop = false;
  const writer = async () => {
    const c = await KmipTestClient.connect(proc.port, creds);
    try {
      while (!stop) {
        const key = randomBytes(32);
        const resp = await c.send(registerMsg(key));
        const uid = uidOf(resp);
        if (uid) acked.set(uid, key);
      }
    } catch {
      // the server died under us: expected
    }
  };
  const running = Array.from({ length: writers }, () => writer());
  // Let writes flow, then kill the server without warning while they are still in flight.
  while (acked.size < 150) await new Promise((r) => setTimeout(r, 20));
  proc.child.kill('SIGKILL');
  await proc.exited;
  stop = true;
  await Promise.all(running);
  t.ok(acked.size >= 150, `${acked.size} registrations acknowledged before the kill`);

  proc = await spawnKmipd(['serve', '--data', dataDir, '--host', '127.0.0.1', '--port', '0']);
  const c = await KmipTestClient.connect(proc.port, creds);
  let intact = 0;
  for (const [uid, key] of acked) {
    const resp = await c.send(getMsg(uid));
    if (keyOf(resp)?.equals(key)) intact++;
  }
  t.equal(intact, acked.size, 'every acknowledged key is back, byte for byte');
  await c.close();
  proc.child.kill('SIGTERM');
  t.equal(await proc.exited, 0, 'SIGTERM stops the server cleanly');
});
