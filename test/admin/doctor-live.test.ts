/**
 * `kmipd doctor --live`: a vCenter-shaped session against a real kmipd over mutual TLS. A healthy
 * server passes every step and the probe key is gone afterwards; an untrusted client certificate,
 * a wrong --ca, a closed port and an error answer each fail the right step, exit 1.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LiveReport, parseLiveTarget, runLiveDoctor } from '../../src/admin/doctor-live.js';
import { createCA, issueClientCert, issueServerCert, loadCa } from '../../src/pki/index.js';
import { Enums, Tag } from '../../src/spec/index.js';
import { T } from '../../src/ttlv/index.js';
import { KmipTestClient, type ClientCreds } from '../helpers/client.js';
import { runKmipd } from '../helpers/cli.js';
import { batchItems, itemResult } from '../helpers/engine.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const STEPS = [
  'client certificate',
  'TLS handshake',
  'DiscoverVersions',
  'Query',
  'Create',
  'GetAttributes x-Product_Version, x-Vendor, x-Product (absent)',
  'AddAttribute x-Product_Version, x-Vendor, x-Product',
  'Get (Pre-Active)',
  'GetAttributes State (Pre-Active)',
  'Activate',
  'GetAttributes x-Identifier, x-Component, x-Name (absent)',
  'AddAttribute x-Identifier, x-Component, x-Name',
  'GetAttributes State (Active)',
  'cleanup: Revoke and Destroy the probe key',
];

let srv: TestServer;
let creds: ClientCreds;
const tmp = mkdtempSync(join(tmpdir(), 'kmipd-doctor-live-'));

/** Writes PEM files for the CLI; returns their paths. */
function files(name: string, c: ClientCreds): { ca: string; cert: string; key: string } {
  const p = { ca: join(tmp, `${name}-ca.crt`), cert: join(tmp, `${name}.crt`), key: join(tmp, `${name}.key`) };
  writeFileSync(p.ca, c.ca);
  writeFileSync(p.cert, c.cert);
  writeFileSync(p.key, c.key, { mode: 0o600 });
  return p;
}

const step = (r: LiveReport, name: string) => r.steps.find((s) => s.name === name);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

t.before(async () => {
  srv = await startTestServer();
  creds = await srv.creds('doctor-probe', 'ec');
});
t.teardown(async () => {
  await srv.stop();
  rmSync(tmp, { recursive: true, force: true });
});

t.test('HOST:PORT parsing', async (t) => {
  t.same(parseLiveTarget('kms.example.com:5696'), { host: 'kms.example.com', port: 5696 });
  t.same(parseLiveTarget('[::1]:15696'), { host: '::1', port: 15696 });
  t.same(parseLiveTarget('10.0.0.1'), { host: '10.0.0.1', port: 5696 });
  t.throws(() => parseLiveTarget('host:0'), /not HOST:PORT/);
  t.throws(() => parseLiveTarget('host:port'), /not HOST:PORT/);
});

t.test('the command line: --live needs --ca, --cert and --key; they need --live', async (t) => {
  const f = files('args', creds);
  const noKey = await runKmipd(['doctor', '--live', `127.0.0.1:${srv.port}`, '--ca', f.ca, '--cert', f.cert]);
  t.equal(noKey.exitCode, 1);
  t.match(noKey.err, /kmipd doctor: --live needs --key FILE/);
  const noLive = await runKmipd(['doctor', '--data', srv.dataDir, '--cert', f.cert]);
  t.equal(noLive.exitCode, 1);
  t.match(noLive.err, /--cert go with --live HOST:PORT/);
  const badTarget = await runKmipd(['doctor', '--live', 'kms:99999', '--ca', f.ca, '--cert', f.cert, '--key', f.key]);
  t.equal(badTarget.exitCode, 1);
  t.match(badTarget.err, /not HOST:PORT/);
  const missingFile = await runKmipd(['doctor', '--live', `127.0.0.1:${srv.port}`, '--ca', join(tmp, 'nope.crt'), '--cert', f.cert, '--key', f.key]);
  t.equal(missingFile.exitCode, 1);
  t.match(missingFile.err, /--ca .*nope\.crt cannot be read/);
  const badTimeout = await runKmipd(['doctor', '--live', `127.0.0.1:${srv.port}`, '--ca', f.ca, '--cert', f.cert, '--key', f.key, '--timeout', '0']);
  t.equal(badTimeout.exitCode, 1);
  t.match(badTimeout.err, /--timeout: must be a whole number of milliseconds/);
});

t.test('a healthy server: every step ok, the probe key removed, exit 0', async (t) => {
  const r = await runLiveDoctor({ host: '127.0.0.1', port: srv.port, caPem: creds.ca, certPem: creds.cert, keyPem: creds.key });
  t.same(
    r.steps.map((s) => s.name),
    STEPS,
  );
  t.same(
    r.steps.filter((s) => s.status !== 'ok').map((s) => `${s.name}: ${s.status}: ${s.detail}`),
    [],
    'every step ok',
  );
  t.equal(r.ok, true);
  t.match(step(r, 'client certificate')?.detail, /CN=doctor-probe.*EC P-256/);
  t.match(step(r, 'TLS handshake')?.detail, /^TLSv1\.[23], TLS_\w+; server certificate .*SHA-256 [0-9A-F:]+; chains to --ca$/);
  t.match(step(r, 'DiscoverVersions')?.detail, /answered in KMIP 1\.1; the server speaks .*\b1\.1\b/);
  t.match(step(r, 'Query')?.detail, /^Vendor Identification "kmipd"; \d+ operations/);
  if (step(r, 'Query')?.status === 'ok') t.match(step(r, 'Query')?.detail, /operations \(every one vCenter uses\), \d+ object types \(Symmetric Key among them\)$/);
  const uid = r.probeUid;
  t.ok(uid, 'the probe UID is reported');
  t.match(step(r, 'Create')?.detail, new RegExp(`UID ${uid}$`));
  t.match(step(r, 'AddAttribute x-Identifier, x-Component, x-Name')?.detail, /x-Name="kmipd-doctor probe"/);
  t.equal(step(r, 'Get (Pre-Active)')?.detail, 'Raw key block, AES, 256 bits, 32 bytes of key material (not shown)');
  t.equal(step(r, 'GetAttributes State (Pre-Active)')?.detail, 'Pre-Active');
  t.equal(step(r, 'GetAttributes State (Active)')?.detail, 'Active');
  t.equal(step(r, 'cleanup: Revoke and Destroy the probe key')?.detail, `${uid} revoked (Cessation of Operation), destroyed`);
  t.equal(r.probeLeft, undefined);
  for (const s of r.steps) t.ok(Number.isInteger(s.ms) && s.ms >= 0, `${s.name}: a duration`);

  // The probe key is gone from the server.
  const c = await KmipTestClient.connect(srv.port, creds);
  try {
    const resp = await c.send(
      T.struct(Tag.RequestMessage, [
        T.struct(Tag.RequestHeader, [T.struct(Tag.ProtocolVersion, [T.int(Tag.ProtocolVersionMajor, 1), T.int(Tag.ProtocolVersionMinor, 1)]), T.int(Tag.BatchCount, 1)]),
        T.struct(Tag.BatchItem, [T.enum(Tag.Operation, Enums.Operation.Get), T.struct(Tag.RequestPayload, [T.text(Tag.UniqueIdentifier, uid!)])]),
      ]),
    );
    t.not(itemResult(batchItems(resp)[0]!).status, Enums.ResultStatus.Success, 'Get of the probe key fails afterwards');
  } finally {
    await c.close();
  }

  const f = files('good', creds);
  const cli = await runKmipd(['doctor', '--live', `127.0.0.1:${srv.port}`, '--ca', f.ca, '--cert', f.cert, '--key', f.key]);
  t.equal(cli.exitCode, 0, cli.out + cli.err);
  t.match(cli.out, /^kmipd doctor --live 127\.0\.0\.1:\d+: a vCenter-shaped KMIP 1\.1 session\n/);
  t.match(cli.out, /\n {2}\[ok\] {3}Get \(Pre-Active\) \(\d+ ms\): Raw key block/);
  t.match(cli.out, /\n14 steps: 14 ok, 0 warning\(s\), 0 failure\(s\)\n$/);

  const j = await runKmipd(['doctor', '--live', `127.0.0.1:${srv.port}`, '--ca', f.ca, '--cert', f.cert, '--key', f.key, '--json', '--timeout', '20000']);
  t.equal(j.exitCode, 0, j.err);
  const parsed = JSON.parse(j.out) as { ok: boolean; data?: unknown; live: LiveReport };
  t.equal(parsed.ok, true);
  t.equal(parsed.data, undefined, 'no data directory checks without --data');
  t.same(
    parsed.live.steps.map((s) => s.status),
    parsed.live.steps.map(() => 'ok'),
  );

  // --live with --data: both reports, one exit status.
  const both = await runKmipd(['doctor', '--data', srv.dataDir, '--live', `127.0.0.1:${srv.port}`, '--ca', f.ca, '--cert', f.cert, '--key', f.key, '--json']);
  const b = JSON.parse(both.out) as { ok: boolean; data: { checks: { name: string }[] }; live: LiveReport };
  t.ok(b.data.checks.some((c) => c.name === 'keystore'), 'the data directory checks ran');
  t.equal(b.live.steps.length, STEPS.length);
});

t.test('a server that does not trust the client certificate: the handshake fails, exit 1', async (t) => {
  const otherCa = await createCA({ commonName: 'not the kmipd CA' });
  const stranger = await issueClientCert(otherCa, { commonName: 'stranger' });
  const r = await runLiveDoctor({ host: '127.0.0.1', port: srv.port, caPem: srv.caPem, certPem: stranger.certPem, keyPem: stranger.keyPem });
  t.equal(r.ok, false);
  t.equal(step(r, 'client certificate')?.status, 'ok', 'the certificate itself is fine');
  const hs = step(r, 'TLS handshake');
  t.equal(hs?.status, 'fail');
  t.match(hs?.detail, /does not trust the client certificate|refused this client certificate|requires a client certificate/);
  t.match(hs?.fix, /kmipd trust add-ca/);
  t.same(
    r.steps.slice(2).map((s) => s.status),
    STEPS.slice(2, -1).map(() => 'skip'),
    'the later steps are skipped, and no key was made to clean up',
  );
  t.equal(r.probeUid, undefined);

  const f = files('stranger', { ca: srv.caPem, cert: stranger.certPem, key: stranger.keyPem });
  const cli = await runKmipd(['doctor', '--live', `127.0.0.1:${srv.port}`, '--ca', f.ca, '--cert', f.cert, '--key', f.key]);
  t.equal(cli.exitCode, 1);
  t.match(cli.out, /\[FAIL\] TLS handshake \(\d+ ms\): /);
  t.match(cli.out, /\[skip\] Create \(0 ms\): not run: "TLS handshake" failed/);
  t.match(cli.err, /the live session failed/);
});

t.test('a wrong --ca: the server certificate is reported as not trusted', async (t) => {
  const otherCa = await createCA({ commonName: 'some other CA' });
  const r = await runLiveDoctor({ host: '127.0.0.1', port: srv.port, caPem: otherCa.certPem, certPem: creds.cert, keyPem: creds.key });
  t.equal(r.ok, false);
  const hs = step(r, 'TLS handshake');
  t.equal(hs?.status, 'fail');
  t.match(hs?.detail, /the server certificate does not chain to --ca \([A-Z_]+\); server certificate .*SHA-256/);
  t.match(hs?.fix, /pki\/ca\.crt/);
});

t.test('a port where nothing listens: a clear failure', async (t) => {
  const port = await freePort();
  const r = await runLiveDoctor({ host: '127.0.0.1', port, caPem: creds.ca, certPem: creds.cert, keyPem: creds.key, timeoutMs: 3000 });
  t.equal(r.ok, false);
  t.equal(step(r, 'TLS handshake')?.status, 'fail');
  t.equal(step(r, 'TLS handshake')?.detail, `nothing listens on 127.0.0.1:${port} (connection refused)`);
  const f = files('closed', creds);
  const cli = await runKmipd(['doctor', '--live', `127.0.0.1:${port}`, '--ca', f.ca, '--cert', f.cert, '--key', f.key, '--json']);
  t.equal(cli.exitCode, 1);
  t.equal((JSON.parse(cli.out) as { ok: boolean }).ok, false);
});

t.test('a client certificate whose EKU excludes clientAuth is refused before connecting', async (t) => {
  const serverOnly = await issueServerCert(loadCa(srv.dataDir), { commonName: 'not-a-client', sans: ['localhost'] });
  const r = await runLiveDoctor({ host: '127.0.0.1', port: srv.port, caPem: srv.caPem, certPem: serverOnly.certPem, keyPem: serverOnly.keyPem });
  t.equal(step(r, 'client certificate')?.status, 'fail');
  t.match(step(r, 'client certificate')?.detail, /extended key usage \(serverAuth\) does not allow TLS client authentication/);
  t.equal(step(r, 'TLS handshake')?.status, 'skip');
  const mismatched = await runLiveDoctor({ host: '127.0.0.1', port: srv.port, caPem: srv.caPem, certPem: creds.cert, keyPem: serverOnly.keyPem });
  t.match(step(mismatched, 'client certificate')?.detail, /--key is not the private key of --cert/);
});

t.test('an error answer is reported with its Result Reason and Result Message', async (t) => {
  // A kmipd that requires a Username and Password credential (vCenter's optional password).
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-doctor-auth-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = await startTestServer({ dataDir: dir });
  const c = await first.creds('doctor-probe');
  await first.stop();
  const manifest = JSON.parse(readFileSync(join(dir, 'kmipd.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'auth-password'), 's3cret', { mode: 0o600 });
  writeFileSync(join(dir, 'kmipd.json'), JSON.stringify({ ...manifest, auth: { username: 'vcenter', passwordFile: 'auth-password' } }, null, 2));
  const locked = await startTestServer({ dataDir: dir });
  t.teardown(() => locked.stop());
  const r = await runLiveDoctor({ host: '127.0.0.1', port: locked.port, caPem: c.ca, certPem: c.cert, keyPem: c.key });
  t.equal(step(r, 'TLS handshake')?.status, 'ok');
  t.equal(step(r, 'DiscoverVersions')?.status, 'fail');
  t.equal(step(r, 'DiscoverVersions')?.detail, 'DiscoverVersions: Operation Failed, Result Reason Authentication Not Successful: a valid Username and Password credential is required');
  t.equal(r.ok, false);
});
