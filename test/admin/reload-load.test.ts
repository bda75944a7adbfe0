/**
 * SIGHUP under load, on a real `kmipd serve` process: clients keep long sessions (Create + Get in
 * a loop on one connection) and open short vCenter-style connections (handshake, Discover
 * Versions, Create or Get, close) without pause while the server certificate is replaced by a
 * good one, then by a key that does not match it, then by a garbage PEM, each followed by a
 * SIGHUP. Every request must succeed; the open sessions keep going on their connection; new
 * handshakes get the new certificate after the good reload, and still that one after the
 * refused reloads, whose log lines say why.
 */
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueClientCert, loadCa } from '../../src/pki/index.js';
import { rotateServerCert } from '../../src/pki/rotate.js';
import { pkiPaths } from '../../src/pki/store.js';
import { Enums } from '../../src/spec/index.js';
import { KmipTestClient, type ClientCreds } from '../helpers/client.js';
import { createAesKey, discover, get } from '../helpers/kmip-requests.js';
import { spawnKmipd } from '../helpers/process.js';

const LONG_SESSIONS = 3;
const SHORT_WORKERS = 3;

interface Handshake {
  /** When the client started connecting (Date.now()). */
  started: number;
  fingerprint: string;
}

t.test('SIGHUP with a good and with a broken server certificate under load: no request fails', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-reload-load-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = await spawnKmipd(['serve', '--data', dir, '--host', '127.0.0.1', '--port', '0'], { KMIPD_LOG_LEVEL: '' });
  t.teardown(() => {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
  });
  const issued = await issueClientCert(loadCa(dir), { commonName: 'vcenter', keyType: 'ec' });
  const creds: ClientCreds = { ca: readFileSync(join(dir, 'pki', 'ca.crt'), 'utf8'), cert: issued.certPem, key: issued.keyPem };
  const paths = pkiPaths(dir);

  /** The first log line matching `re` written after line `from`. */
  const waitFor = async (re: RegExp, from: number, ms = 30_000): Promise<Record<string, unknown>> => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const line = p.output.slice(from).find((l) => re.test(l));
      if (line) return JSON.parse(line) as Record<string, unknown>;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no line matching ${re} in:\n${p.output.slice(from).join('\n')}`);
  };

  // ---- the load ----
  let requests = 0;
  const failures: string[] = [];
  const handshakes: Handshake[] = [];
  const uids: string[] = [];
  let stop = false;
  const ok = (r: { status: number; reason?: number | undefined; message?: string | undefined }, what: string): void => {
    if (r.status !== Enums.ResultStatus.Success) throw new Error(`${what}: status ${r.status} reason ${r.reason} ${r.message ?? ''}`);
    requests++;
  };

  const sessions = await Promise.all(Array.from({ length: LONG_SESSIONS }, () => KmipTestClient.connect(p.port, creds)));
  // (read at once: a TLS 1.3 client no longer shows it once a session ticket has arrived)
  const sessionFingerprints = sessions.map((s) => s.socket.getPeerX509Certificate()?.fingerprint256);
  const originalFingerprint = sessionFingerprints[0]!;
  /** Requests answered on each long session. */
  const perSession = sessions.map(() => 0);
  const long = sessions.map(async (c, i) => {
    while (!stop) {
      try {
        const uid = await createAesKey(c);
        requests++;
        uids.push(uid);
        ok(await get(c, uid), 'Get');
        perSession[i]! += 2;
      } catch (e) {
        failures.push(`session ${i}: ${(e as Error).message}`);
        return; // its connection is gone: nothing more to count on it
      }
    }
  });
  const short = Array.from({ length: SHORT_WORKERS }, async (_, i) => {
    for (let n = 0; !stop; n++) {
      const started = Date.now();
      let c: KmipTestClient | undefined;
      try {
        c = await KmipTestClient.connect(p.port, creds);
        handshakes.push({ started, fingerprint: c.socket.getPeerX509Certificate()!.fingerprint256 });
        ok(await discover(c), 'Discover Versions');
        const uid = uids[(n * 7 + i) % Math.max(1, uids.length)];
        if (uid === undefined || n % 3 === 0) {
          uids.push(await createAesKey(c));
          requests++;
        } else ok(await get(c, uid), 'Get');
        await c.close();
      } catch (e) {
        failures.push(`short connection ${i}/${n}: ${(e as Error).message}`);
        c?.socket.destroy();
      }
    }
  });

  /** Lets the load run until `n` more requests and `k` more new connections were made. */
  const progress = async (n: number, k: number): Promise<void> => {
    const r0 = requests;
    const h0 = handshakes.length;
    const end = Date.now() + 60_000;
    while ((requests < r0 + n || handshakes.length < h0 + k) && failures.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  };
  /** The certificate new handshakes got since `since`, all of them. */
  const servedSince = (since: number): Set<string> => new Set(handshakes.filter((h) => h.started > since).map((h) => h.fingerprint));

  await progress(30, 5);
  t.ok(requests >= 30, `load running (${requests} requests)`);
  t.same(new Set(sessionFingerprints), new Set([originalFingerprint]));
  t.same(servedSince(0), new Set([originalFingerprint]), 'before: the original certificate');
  /** Whether every long session answers more requests on its connection from now on. */
  const sessionsGoOn = async (): Promise<boolean> => {
    const before = [...perSession];
    const end = Date.now() + 60_000;
    while (perSession.some((n, i) => n < before[i]! + 4) && failures.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    return perSession.every((n, i) => n >= before[i]! + 4);
  };

  // ---- 1. a new valid certificate, then SIGHUP ----
  const rotated = await rotateServerCert(dir);
  const newFingerprint = rotated.info.sha256;
  t.not(newFingerprint, originalFingerprint);
  let mark = p.output.length;
  p.child.kill('SIGHUP');
  const reloaded = await waitFor(/"msg":"reloaded"/, mark);
  const appliedAt = Date.now();
  t.match(reloaded, { level: 30 }, 'the reload succeeded');
  await progress(30, 5);
  t.same(servedSince(appliedAt), new Set([newFingerprint]), 'new handshakes after the reload get the new certificate');
  t.ok(await sessionsGoOn(), 'the sessions opened before the reload (with the old certificate) keep working on their connection');

  // ---- 2. a key that does not belong to the certificate, then SIGHUP ----
  const good = { cert: readFileSync(paths.serverCert, 'utf8'), key: readFileSync(paths.serverKey, 'utf8') };
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  writeFileSync(paths.serverKey, stranger);
  mark = p.output.length;
  p.child.kill('SIGHUP');
  const refused = await waitFor(/"msg":"reload refused/, mark);
  let refusedAt = Date.now();
  t.match(refused, { level: 50, err: /server certificate in .*pki cannot be used: .*server\.key does not belong to .*server\.crt/ }, 'the log says why');
  await progress(30, 5);
  t.same(servedSince(refusedAt), new Set([newFingerprint]), 'the certificate in use keeps serving');
  t.ok(await sessionsGoOn(), 'the sessions keep working');

  // ---- 3. a garbage certificate (with the right key back), then SIGHUP ----
  writeFileSync(paths.serverKey, good.key);
  writeFileSync(paths.serverCert, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
  mark = p.output.length;
  p.child.kill('SIGHUP');
  const garbage = await waitFor(/"msg":"reload refused/, mark);
  refusedAt = Date.now();
  t.match(garbage, { level: 50, err: /server certificate in .*pki cannot be used/ }, `the log says why: ${String(garbage.err)}`);
  await progress(30, 5);
  t.same(servedSince(refusedAt), new Set([newFingerprint]), 'the certificate in use still serves');
  t.ok(await sessionsGoOn(), 'the sessions keep working');

  // ---- the result ----
  stop = true;
  await Promise.all([...long, ...short]);
  for (const s of sessions) await s.close();
  t.same(failures, [], 'no request failed');
  t.ok(requests > 0, `${requests} requests (${perSession.join(' + ')} on the long sessions), ${handshakes.length} new connections`);
  t.ok(handshakes.length > 15);
  writeFileSync(paths.serverCert, good.cert);
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0, 'stops cleanly');
});
