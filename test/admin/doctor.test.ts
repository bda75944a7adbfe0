/**
 * `kmipd doctor`: a checklist with fixes over a good data directory (idle, and with its server
 * running on the configured port) and over a broken one; exit 1 on any failure.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DoctorReport, runDoctor } from '../../src/admin/doctor.js';
import { X509Certificate } from 'node:crypto';
import { issueServerCert, loadCa } from '../../src/pki/index.js';
import { trustPaths } from '../../src/pki/trust.js';
import { runKmipd } from '../helpers/cli.js';
import { defaultSettings, startOpsServer, type OpsServer } from './_ops.js';

let srv: OpsServer;
let good: string;
const cleanup: string[] = [];

function setServerSection(dir: string, server: Record<string, unknown>): void {
  const file = join(dir, 'kmipd.json');
  const m = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...m, server }, null, 2));
}

const status = (r: DoctorReport, name: string) => r.checks.filter((c) => c.name === name).map((c) => c.status);
const check = (r: DoctorReport, name: string) => r.checks.find((c) => c.name === name);

t.before(async () => {
  srv = await startOpsServer({ settings: defaultSettings((s) => (s.admin.port = undefined)), keepDir: true });
  good = srv.dataDir;
  cleanup.push(good);
});
t.teardown(async () => {
  await srv.stop();
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

t.test('a good data directory while its server runs on the configured port', async (t) => {
  setServerSection(good, { host: '127.0.0.1', port: srv.port, admin: { port: 'off' } });
  const r = await runDoctor(good, { env: {} });
  t.ok(r.ok, JSON.stringify(r.checks, null, 1));
  t.same(
    r.checks.map((c) => c.name),
    ['data directory', 'manifest and configuration', 'private files', 'keystore', 'master key', 'certificates', 'trust store', 'KMIP port', 'audit trail', 'clock'],
  );
  t.ok(r.checks.every((c) => c.status === 'ok'));
  t.match(check(r, 'keystore')?.detail, /integrity check ok, schema version \d+/);
  t.match(check(r, 'master key')?.detail, /reproduces the keystore's canary/);
  t.match(check(r, 'KMIP port')?.detail, /kmipd is running \(it serves this directory's server certificate\)/);
});

t.test('kmipd doctor prints a checklist and exits 0 when all is well (server stopped: the port is free)', async (t) => {
  await srv.stop();
  setServerSection(good, { host: '127.0.0.1', port: srv.port, admin: { port: 'off' } });
  const r = await runKmipd(['doctor', '--data', good]);
  t.equal(r.exitCode, 0, r.out + r.err);
  t.match(r.out, /^kmipd doctor: /);
  t.match(r.out, /\n {2}\[ok\] {3}KMIP port: 127\.0\.0\.1:\d+ is free \(kmipd is not running\)/);
  t.match(r.out, /\n10 checks: 10 ok, 0 warning\(s\), 0 failure\(s\)\n$/);
  const j = await runKmipd(['doctor', '--data', good, '--json']);
  t.equal((JSON.parse(j.out) as DoctorReport).ok, true);
});

t.test('a broken data directory: each failure with its fix, exit 1', async (t) => {
  const bad = mkdtempSync(join(tmpdir(), 'kmipd-doctor-bad-'));
  cleanup.push(bad);
  cpSync(good, bad, { recursive: true });
  chmodSync(bad, 0o755);
  chmodSync(join(bad, 'pki', 'ca.key'), 0o644);
  writeFileSync(join(bad, 'master.key'), randomBytes(32), { mode: 0o600 }); // another master key
  writeFileSync(trustPaths(bad).index, '{"format": 1, "entries": [{"kind": "ca"}]}');
  const squatter: Server = createServer();
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
  t.teardown(() => squatter.close());
  const port = (squatter.address() as { port: number }).port;
  setServerSection(bad, { host: '127.0.0.1', port, limits: { maxInFlight: 0 } });

  const r = await runDoctor(bad, { env: {}, probeTimeoutMs: 300 });
  t.equal(r.ok, false);
  t.same(status(r, 'data directory'), ['fail'], 'open to every user');
  t.match(check(r, 'data directory')?.detail, /mode 0755 lets every user in/);
  t.match(check(r, 'data directory')?.fix, /chmod 700/);
  t.same(status(r, 'private files'), ['fail'], 'a private key readable by every user');
  t.match(check(r, 'private files')?.detail, /other users can read or change them: .*ca\.key has mode 0644/);
  t.match(check(r, 'private files')?.fix, /chmod 600 .*ca\.key/);
  t.same(status(r, 'manifest and configuration'), ['fail']);
  t.match(check(r, 'manifest and configuration')?.detail, /server\.limits\.maxInFlight: must be an integer from 1 to 100000/);
  t.same(status(r, 'master key'), ['fail']);
  t.match(check(r, 'master key')?.detail, /wrong master key/);
  t.match(check(r, 'master key')?.fix, /put back the master key this keystore was created with/);
  t.same(status(r, 'trust store'), ['fail']);
  t.same(status(r, 'keystore'), ['ok'], 'the keystore itself is fine');

  const cli = await runKmipd(['doctor', '--data', bad]);
  t.equal(cli.exitCode, 1);
  t.match(cli.out, /\[FAIL\] master key: wrong master key.*\n {9}fix: put back the master key/);
  t.match(cli.out, /\[FAIL\] data directory: .*mode 0755/);
  t.match(cli.err, /some checks failed/);
});

t.test('a damaged keystore, a port held by another program, a clock gone back', async (t) => {
  const bad = mkdtempSync(join(tmpdir(), 'kmipd-doctor-bad2-'));
  cleanup.push(bad);
  cpSync(good, bad, { recursive: true });
  for (const f of ['keystore.sqlite-wal', 'keystore.sqlite-shm']) rmSync(join(bad, f), { force: true });
  const db = readFileSync(join(bad, 'keystore.sqlite'));
  db.fill(0x5a, 4096 + 200, 4096 * 3); // scribble over pages after the header
  writeFileSync(join(bad, 'keystore.sqlite'), db);
  const squatter: Server = createServer((s) => s.end('HTTP/1.0 200 OK\r\n\r\n'));
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
  t.teardown(() => squatter.close());
  setServerSection(bad, { host: '127.0.0.1', port: (squatter.address() as { port: number }).port });
  const r = await runDoctor(bad, { env: {}, probeTimeoutMs: 300, now: new Date('2023-01-01T00:00:00Z') });
  t.equal(r.ok, false);
  t.same(status(r, 'keystore'), ['fail']);
  t.match(check(r, 'keystore')?.fix, /restore/);
  t.same(status(r, 'KMIP port'), ['fail']);
  t.match(check(r, 'KMIP port')?.detail, /is in use by another program/);
  t.same(status(r, 'clock'), ['fail']);
  t.match(check(r, 'clock')?.detail, /before the data directory was created/);

  const none = await runDoctor(join(bad, 'nope'), { env: {} });
  t.same(none.checks.map((c) => `${c.name}:${c.status}`), ['data directory:fail']);
});

t.test('group access is a warning; expired certificates and a pinned certificate without clientAuth are failures', async (t) => {
  await srv.stop();
  const bad = mkdtempSync(join(tmpdir(), 'kmipd-doctor-bad3-'));
  cleanup.push(bad);
  cpSync(good, bad, { recursive: true });
  setServerSection(bad, { host: '127.0.0.1', port: 0 });
  chmodSync(bad, 0o750);
  chmodSync(join(bad, 'pki', 'server.key'), 0o640);
  // A pinned "client" certificate whose EKU is serverAuth only: the server would refuse it.
  const web = new X509Certificate((await issueServerCert(loadCa(bad), { commonName: 'web', sans: ['web.example'] })).certPem);
  const entry = {
    kind: 'pinned',
    name: 'web',
    sha256: web.fingerprint256,
    subject: web.subject,
    issuer: web.issuer,
    notBefore: new Date(web.validFrom).toISOString(),
    notAfter: new Date(web.validTo).toISOString(),
    addedAt: new Date().toISOString(),
    pem: web.toString(),
  };
  writeFileSync(trustPaths(bad).index, JSON.stringify({ format: 1, entries: [entry] }));

  const r = await runDoctor(bad, { env: {} });
  t.equal(r.ok, false);
  t.same(status(r, 'data directory'), ['warn']);
  t.match(check(r, 'data directory')?.detail, /mode 0750 lets its group in/);
  t.same(status(r, 'private files'), ['warn']);
  t.match(check(r, 'private files')?.detail, /server\.key has mode 0640/);
  t.same(status(r, 'trust store'), ['fail']);
  t.match(check(r, 'trust store')?.detail, /pinned certificate web: the certificate's extended key usage \(serverAuth\) does not allow TLS client authentication/);

  // Years later: every certificate has expired.
  const later = await runDoctor(bad, { env: {}, now: new Date('2040-01-01T00:00:00Z') });
  t.same(status(later, 'certificates'), ['fail']);
  t.match(check(later, 'certificates')?.detail, /ca kmipd-ca expired on .*server server expired on/);
  t.match(check(later, 'certificates')?.fix, /kmipd cert rotate-server/);
});
