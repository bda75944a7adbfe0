/**
 * vCenter's four "Make KMS trust vCenter" modes end to end over real mutual TLS, with the trust
 * changed by the kmipd CLI (in-process, through buildProgram) while the server runs:
 *
 * - New Certificate Signing Request: an OpenSSL CSR without extensions, signed by `cert sign`;
 * - KMS certificate and private key: `cert issue`;
 * - vCenter Root CA Certificate: a foreign CA added with `trust add-ca`, its client certificate
 *   without EKU (and one through an intermediate the client sends);
 * - vCenter Certificate: a pinned self-signed certificate (identity = the pinned name), and a
 *   pinned one from a CA kmipd does not trust.
 *
 * Also: nothing is weakened (unknown self-signed, children of a pinned certificate, wrong EKU),
 * removal applies at once and closes the removed client's connections, expiry is flagged,
 * `cert server` shows the fingerprints the server presents, `cert rotate-server` is picked up by
 * the running server, and one run of `node bin/kmipd`.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { certInfo, issueServerCert, loadCa } from '../../src/pki/index.js';
import { addPinnedCert } from '../../src/pki/trust.js';
import { TrustRuntime } from '../../src/server/trust-reload.js';
import { pemEncode } from '../../src/pki/der.js';
import { createLogger, silentLogger } from '../../src/server/log.js';
import { openServerState, startServer } from '../../src/server/server.js';
import { Enums } from '../../src/spec/index.js';
import { type ClientCreds, KmipTestClient } from '../helpers/client.js';
import { ensureBuilt, kmipdArgs, runKmipd } from '../helpers/cli.js';
import { attempt, createAesKey, discover, eventually } from '../helpers/kmip-requests.js';
import { REPO_ROOT, need } from '../helpers/requirements.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { openssl, ossl, tempDir } from '../pki/fixtures/helpers.js';

let srv: TestServer;
let work: string;
const read = (f: string): string => readFileSync(join(work, f), 'utf8');

t.before(async () => {
  srv = await startTestServer();
  work = mkdtempSync(join(tmpdir(), 'kmipd-trust-'));
});
t.teardown(async () => {
  await srv.stop();
  rmSync(work, { recursive: true, force: true });
});

/** A self-signed certificate (openssl req -x509: CA:TRUE, no EKU unless added). */
function selfSigned(name: string, cn: string, days = 365, addext: string[] = []): ClientCreds {
  ossl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${cn}`, '-days', String(days), ...addext.flatMap((e) => ['-addext', e])],
    { cwd: work },
  );
  return { ca: srv.caPem, cert: read(`${name}.crt`), key: read(`${name}.key`) };
}

/** A certificate for CN=cn issued by the CA `ca` (files ca.crt / ca.key in work) with the extension lines `ext`. */
function issuedBy(ca: string, name: string, cn: string, ext: string, days = 30): ClientCreds {
  writeFileSync(join(work, `${name}.ext`), ext);
  ossl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], { cwd: work });
  ossl(
    ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', String(days), '-extfile', `${name}.ext`],
    { cwd: work },
  );
  return { ca: srv.caPem, cert: read(`${name}.crt`), key: read(`${name}.key`) };
}

async function ownerOf(uid: string): Promise<string | undefined> {
  return (await srv.server.state.store.get(uid))?.owner;
}

async function createOver(creds: ClientCreds, opts: { maxVersion?: 'TLSv1.2' | 'TLSv1.3'; ciphers?: string } = {}): Promise<string> {
  const c = await KmipTestClient.connect(srv.port, creds, opts);
  try {
    return await createAesKey(c);
  } finally {
    await c.close();
  }
}

const both = ['TLSv1.2', 'TLSv1.3'] as const;

async function refusedOnBoth(t: Test, creds: ClientCreds, what: string): Promise<void> {
  for (const v of both) t.equal(await attempt(srv.port, creds, { maxVersion: v }), 'refused', `${what} (${v})`);
}

async function servedOnBoth(t: Test, creds: ClientCreds, what: string): Promise<void> {
  t.ok(await eventually(async () => (await attempt(srv.port, creds)) === 'served'), `${what}: served`);
  for (const v of both) t.equal(await attempt(srv.port, creds, { maxVersion: v }), 'served', `${what} (${v})`);
}

t.test('openssl is needed to make the foreign certificates', async (t) => {
  if (!need(t, openssl())) return;
  t.pass('openssl present');
});

t.test('New Certificate Signing Request: an OpenSSL CSR without extensions, signed by `kmipd cert sign`', async (t) => {
  ossl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'vc-csr.key', '-out', 'vc-csr.csr', '-subj', '/CN=vcenter-csr'], { cwd: work });
  t.notMatch(ossl(['req', '-in', 'vc-csr.csr', '-noout', '-text'], { cwd: work }), /X509v3/, 'the CSR asks for no extensions');
  const r = await runKmipd(['cert', 'sign', '--data', srv.dataDir, '--csr', join(work, 'vc-csr.csr'), '--out', join(work, 'vc-csr.crt'), '--days', '30']);
  t.equal(r.exitCode, 0, r.err);
  t.match(r.out, /identity: +vcenter-csr/);
  const info = certInfo(read('vc-csr.crt'));
  t.equal(info.subject, 'CN=vcenter-csr', 'subject kept');
  t.match(r.out, info.sha256);
  const creds = { ca: srv.caPem, cert: read('vc-csr.crt'), key: read('vc-csr.key') };
  // vCenter 7.0.3 negotiated TLS_RSA_WITH_AES_128_CBC_SHA256
  const uid = await createOver(creds, { maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA256' });
  t.equal(await ownerOf(uid), 'vcenter-csr', 'the key is owned by the CSR subject CN');

  // a request altered after signing is refused
  const der = Buffer.from(read('vc-csr.csr').replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  der[der.length - 5] = (der[der.length - 5] ?? 0) ^ 0xff;
  writeFileSync(join(work, 'bad.csr'), pemEncode('CERTIFICATE REQUEST', der));
  const bad = await runKmipd(['cert', 'sign', '--data', srv.dataDir, '--csr', join(work, 'bad.csr'), '--out', join(work, 'bad.crt')]);
  t.equal(bad.exitCode, 1);
  t.match(bad.err, /signature does not verify/);
  t.notOk(existsSync(join(work, 'bad.crt')), 'nothing written');
});

t.test('KMS certificate and private key: `kmipd cert issue`', async (t) => {
  const out = join(work, 'kms');
  const r = await runKmipd(['cert', 'issue', '--data', srv.dataDir, '--cn', 'vcenter-kms', '--out', out]);
  t.equal(r.exitCode, 0, r.err);
  const creds = { ca: srv.caPem, cert: readFileSync(join(out, 'vcenter-kms.crt'), 'utf8'), key: readFileSync(join(out, 'vcenter-kms.key'), 'utf8') };
  t.equal(await ownerOf(await createOver(creds)), 'vcenter-kms');
});

t.test('vCenter Root CA Certificate: a foreign CA added with `trust add-ca`, client certificates without EKU', async (t) => {
  ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'fca.key', '-out', 'fca.crt', '-subj', '/CN=vCenter Root CA test', '-days', '365'], { cwd: work });
  const leaf = issuedBy('fca', 'vc-foreign', 'vc-foreign', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n');
  t.notMatch(ossl(['x509', '-in', 'vc-foreign.crt', '-noout', '-text'], { cwd: work }), /Extended Key Usage/, 'no EKU');
  await refusedOnBoth(t, leaf, 'before add-ca: refused');

  const r = await runKmipd(['trust', 'add-ca', '--data', srv.dataDir, join(work, 'fca.crt')]);
  t.equal(r.exitCode, 0, r.err);
  t.match(r.out, /Trusted the CA "vCenter Root CA test"/, 'named after its CN by default');
  await servedOnBoth(t, leaf, 'after add-ca, no restart');
  t.equal(await ownerOf(await createOver(leaf)), 'vc-foreign', 'identity: the CN');

  const serverOnly = issuedBy('fca', 'vc-serveronly', 'vc-serveronly', 'extendedKeyUsage=serverAuth\n');
  await refusedOnBoth(t, serverOnly, 'an EKU without clientAuth from the trusted CA: refused');

  // an intermediate CA the client sends along with its certificate
  const intermediate = issuedBy('fca', 'fint', 'vCenter intermediate test', 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  void intermediate;
  const viaInt = issuedBy('fint', 'vc-int', 'vc-int', 'basicConstraints=CA:FALSE\n');
  await refusedOnBoth(t, viaInt, 'without the intermediate in the chain sent: refused');
  const withChain = { ...viaInt, cert: viaInt.cert + read('fint.crt') };
  await servedOnBoth(t, withChain, 'with the intermediate sent');
  t.equal(await ownerOf(await createOver(withChain)), 'vc-int');
  // a resumed session carries the client certificate but not the chain it sent
  for (const maxVersion of both) {
    const first = await KmipTestClient.connect(srv.port, withChain, { maxVersion });
    const ticket = new Promise<Buffer>((resolve) => first.socket.once('session', resolve));
    await discover(first); // TLS 1.3 tickets arrive after the handshake
    const session = first.socket.getSession() ?? (await ticket);
    await first.close();
    const resumed = await KmipTestClient.connect(srv.port, withChain, { maxVersion, session });
    t.ok(resumed.socket.isSessionReused(), `${maxVersion}: session resumed`);
    t.equal((await discover(resumed)).status, Enums.ResultStatus.Success, `${maxVersion}: served on the resumed session`);
    await resumed.close();
  }

  const again = await runKmipd(['trust', 'add-ca', '--data', srv.dataDir, join(work, 'fca.crt'), '--name', 'other']);
  t.equal(again.exitCode, 1);
  t.match(again.err, /already trusted as "vCenter Root CA test"/);
  const notCa = await runKmipd(['trust', 'add-ca', '--data', srv.dataDir, join(work, 'vc-foreign.crt')]);
  t.equal(notCa.exitCode, 1);
  t.match(notCa.err, /not a CA/);
  const own = await runKmipd(['trust', 'add-ca', '--data', srv.dataDir, join(srv.dataDir, 'pki', 'ca.crt')]);
  t.equal(own.exitCode, 1);
  t.match(own.err, /kmipd's own CA/);
});

t.test("vCenter Certificate: a pinned self-signed certificate; the identity is the pinned name", async (t) => {
  const pinned = selfSigned('vc-self', 'vcenter-self');
  const unknown = selfSigned('mallory', 'mallory');
  await refusedOnBoth(t, pinned, 'before add-cert: refused');

  const r = await runKmipd(['trust', 'add-cert', '--data', srv.dataDir, join(work, 'vc-self.crt'), '--name', 'vcenter-pinned']);
  t.equal(r.exitCode, 0, r.err);
  t.match(r.out, /identity "vcenter-pinned"/);
  await servedOnBoth(t, pinned, 'pinned, no restart');
  t.ok(srv.server.trust.snapshot.handshakeVerifiable, 'a self-signed pin keeps OpenSSL verifying in the handshake');
  const uid = await createOver(pinned);
  t.equal(await ownerOf(uid), 'vcenter-pinned', 'the key belongs to the pinned name, not the CN');

  // nothing weakened
  await refusedOnBoth(t, unknown, 'an unknown self-signed certificate');
  await t.rejects(KmipTestClient.connect(srv.port, unknown, { maxVersion: 'TLSv1.2' }), 'TLS 1.2: refused in the handshake itself');
  // openssl req -x509 made the pinned certificate CA:TRUE, so OpenSSL accepts what it signs; kmipd does not
  t.match(ossl(['x509', '-in', 'vc-self.crt', '-noout', '-text'], { cwd: work }), /CA:TRUE/);
  const child = issuedBy('vc-self', 'pin-child', 'vcenter-self', 'basicConstraints=CA:FALSE\n');
  await refusedOnBoth(t, child, 'a certificate signed by the pinned one');
  await refusedOnBoth(t, { ...child, cert: child.cert + pinned.cert }, 'the same with the pinned certificate sent as its chain');

  selfSigned('vc-server-eku', 'vc-server-eku', 365, ['extendedKeyUsage=serverAuth']);
  const eku = await runKmipd(['trust', 'add-cert', '--data', srv.dataDir, join(work, 'vc-server-eku.crt'), '--name', 'x']);
  t.equal(eku.exitCode, 1, 'a certificate whose EKU excludes clientAuth cannot be pinned');
  t.match(eku.err, /clientAuth/);
  const dup = await runKmipd(['trust', 'add-cert', '--data', srv.dataDir, join(work, 'mallory.crt'), '--name', 'vcenter-pinned']);
  t.equal(dup.exitCode, 1);
  t.match(dup.err, /already named "vcenter-pinned"/);
});

t.test('a pinned certificate from a CA kmipd does not trust: the handshake lets it through, kmipd decides', async (t) => {
  ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'uca.key', '-out', 'uca.crt', '-subj', '/CN=untrusted CA', '-days', '30'], { cwd: work });
  const pinnedLeaf = issuedBy('uca', 'vc-leaf', 'vc-leaf', 'basicConstraints=CA:FALSE\n');
  const sibling = issuedBy('uca', 'vc-sibling', 'vc-leaf', 'basicConstraints=CA:FALSE\n');
  await refusedOnBoth(t, pinnedLeaf, 'before add-cert');
  const r = await runKmipd(['trust', 'add-cert', '--data', srv.dataDir, join(work, 'vc-leaf.crt'), '--name', 'vcenter-leaf']);
  t.equal(r.exitCode, 0, r.err);
  await servedOnBoth(t, pinnedLeaf, 'the pinned leaf');
  t.notOk(srv.server.trust.snapshot.handshakeVerifiable, 'verification moved from the handshake to kmipd');
  t.equal(await ownerOf(await createOver(pinnedLeaf)), 'vcenter-leaf');

  await refusedOnBoth(t, sibling, 'another certificate of the same untrusted CA, same CN');
  await refusedOnBoth(t, selfSigned('mallory2', 'vcenter-leaf'), 'an unknown self-signed certificate');
  t.equal(await attempt(srv.port, { ca: srv.caPem, cert: '', key: '' }), 'refused', 'no client certificate');
  t.equal(await attempt(srv.port, await srv.creds('alice')), 'served', "kmipd's own clients still served");

  const rm = await runKmipd(['trust', 'remove', '--data', srv.dataDir, 'vcenter-leaf']);
  t.equal(rm.exitCode, 0, rm.err);
  t.ok(await eventually(async () => srv.server.trust.snapshot.handshakeVerifiable), 'back to handshake verification once it is gone');
  await refusedOnBoth(t, pinnedLeaf, 'removed');
});

t.test('removal takes effect at once without a restart, and closes the removed client\'s connections', async (t) => {
  const pinned = { ca: srv.caPem, cert: read('vc-self.crt'), key: read('vc-self.key') };
  const foreign = { ca: srv.caPem, cert: read('vc-foreign.crt'), key: read('vc-foreign.key') };
  const open = await KmipTestClient.connect(srv.port, pinned);
  t.equal((await discover(open)).status, Enums.ResultStatus.Success, 'an open connection of the pinned client');
  const alice = await KmipTestClient.connect(srv.port, await srv.creds('alice'));

  const t0 = Date.now();
  const r = await runKmipd(['trust', 'remove', '--data', srv.dataDir, 'vcenter-pinned']);
  t.equal(r.exitCode, 0, r.err);
  t.match(r.out, /Removed the pinned certificate "vcenter-pinned"/);
  const closed = await Promise.race([open.closed.then(() => true), new Promise<boolean>((res) => setTimeout(() => res(false), 6000).unref())]);
  t.ok(closed, `its open connection is closed (${Date.now() - t0} ms)`);
  await refusedOnBoth(t, pinned, 'new connections of the removed pinned certificate');
  t.equal((await discover(alice)).status, Enums.ResultStatus.Success, 'other connections stay open');
  await alice.close();

  const rmCa = await runKmipd(['trust', 'remove', '--data', srv.dataDir, 'vCenter Root CA test']);
  t.equal(rmCa.exitCode, 0, rmCa.err);
  t.ok(await eventually(async () => (await attempt(srv.port, foreign)) === 'refused'), 'clients of the removed CA refused');
  await refusedOnBoth(t, foreign, 'clients of the removed CA');

  const unknown = await runKmipd(['trust', 'remove', '--data', srv.dataDir, 'no-such']);
  t.equal(unknown.exitCode, 1);
  t.match(unknown.err, /nothing trusted is named "no-such"/);
  const builtin = await runKmipd(['trust', 'remove', '--data', srv.dataDir, 'kmipd-ca']);
  t.equal(builtin.exitCode, 1);
  t.match(builtin.err, /cannot be removed/);
});

t.test('trust list: every CA and pinned certificate with its expiry; those within 30 days flagged, also in the server log', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const dir = tempDir(t, 'kmipd-trust-log-');
  const log = createLogger({ level: 'info', destination: sink });
  let server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, log });
  try {
    selfSigned('short', 'short-lived', 10);
    const add = await runKmipd(['trust', 'add-cert', '--data', dir, join(work, 'short.crt'), '--name', 'short-lived']);
    t.equal(add.exitCode, 0, add.err);
    t.match(add.out, /warning: it expires in \d+ days/);
    const addCa = await runKmipd(['trust', 'add-ca', '--data', dir, join(work, 'fca.crt'), '--name', 'vc-root']);
    t.equal(addCa.exitCode, 0, addCa.err);

    const list = await runKmipd(['trust', 'list', '--data', dir]);
    t.equal(list.exitCode, 0, list.err);
    t.match(list.out, /^NAME +KIND +IDENTITY +EXPIRES +DAYS +STATUS +SUBJECT/);
    t.match(list.out, /\nkmipd-ca +kmipd CA +\(CN\) .* ok +CN=kmipd CA/);
    t.match(list.out, /\nvc-root +CA +\(CN\) .* ok +CN=vCenter Root CA test/);
    t.match(list.out, /\nshort-lived +pinned +short-lived .* EXPIRING +CN=short-lived/);
    t.match(list.out, /warning: the pinned certificate short-lived \(CN=short-lived\) expires on/);

    const json = await runKmipd(['trust', 'list', '--data', dir, '--json']);
    const items = JSON.parse(json.out) as { name: string; kind: string; expiring: boolean; daysLeft: number; notAfter: string; sha256: string }[];
    t.same(items.map((i) => [i.name, i.kind, i.expiring]), [['kmipd-ca', 'kmipd-ca', false], ['short-lived', 'pinned', true], ['vc-root', 'ca', false]]);
    const short = items.find((i) => i.name === 'short-lived')!;
    t.ok(short.daysLeft <= 10 && short.daysLeft >= 9, `days left ${short.daysLeft}`);
    t.equal(short.sha256, new X509Certificate(read('short.crt')).fingerprint256);
    t.equal(short.notAfter, certInfo(read('short.crt')).notAfter.toISOString());

    t.ok(
      await eventually(async () => lines.some((l) => l.includes('trust store reloaded')) && lines.some((l) => /short-lived.*expires on/.test(l))),
      'the running server logs the reload and the expiring certificate',
    );
    await server.stop();
    lines.length = 0;
    server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, log });
    const warn = lines.find((l) => /short-lived.*expires on/.test(l));
    t.ok(warn, 'and again at start');
    t.equal((JSON.parse(warn ?? '{}') as { level?: number }).level, 40, 'at warn level');
  } finally {
    await server.stop();
  }
  const none = await runKmipd(['trust', 'list', '--data', join(dir, 'nothing')]);
  t.equal(none.exitCode, 1);
  t.match(none.err, /no kmipd data folder/);
  t.notOk(existsSync(join(dir, 'nothing')), 'no folder created');
});

t.test('cert server prints the certificate the server presents, with its fingerprints', async (t) => {
  const r = await runKmipd(['cert', 'server', '--data', srv.dataDir]);
  t.equal(r.exitCode, 0, r.err);
  const pem = readFileSync(join(srv.dataDir, 'pki', 'server.crt'), 'utf8');
  const x = new X509Certificate(pem);
  t.match(r.out, `SHA-1:    ${x.fingerprint}\n`);
  t.match(r.out, `SHA-256:  ${x.fingerprint256}\n`);
  t.match(r.out, `subject:  ${x.subject.split('\n').join(', ')}\n`);
  t.match(r.out, `issuer:   ${x.issuer.split('\n').join(', ')}\n`);
  t.match(r.out, /valid: +\d{4}-\d\d-\d\dT.* to \d{4}-/);
  t.match(r.out, pem.trim());
  const c = await KmipTestClient.connect(srv.port, await srv.creds('alice'));
  t.equal(c.socket.getPeerX509Certificate()?.fingerprint256, x.fingerprint256, 'the same certificate the server presents');
  await c.close();
});

t.test('cert rotate-server: the running server presents the new certificate without a restart', async (t) => {
  const before = new X509Certificate(readFileSync(join(srv.dataDir, 'pki', 'server.crt')));
  const alice = await srv.creds('alice');
  const open = await KmipTestClient.connect(srv.port, alice);
  const r = await runKmipd(['cert', 'rotate-server', '--data', srv.dataDir, '--san', 'kms.example.test']);
  t.equal(r.exitCode, 0, r.err);
  t.match(r.out, /vCenter must re-approve it/);
  const after = new X509Certificate(readFileSync(join(srv.dataDir, 'pki', 'server.crt')));
  t.not(after.fingerprint256, before.fingerprint256, 'a new certificate');
  t.match(r.out, after.fingerprint256);
  t.equal(after.subject, before.subject, 'same subject');
  const sans = certInfo(after.raw).sans;
  t.ok(sans.includes('DNS:kms.example.test') && sans.includes('DNS:localhost') && sans.includes('IP:127.0.0.1'), sans.join(', '));
  t.ok(existsSync(join(srv.dataDir, 'pki', 'server.crt.prev')) && existsSync(join(srv.dataDir, 'pki', 'server.key.prev')), 'the old pair kept');

  t.ok(
    await eventually(async () => {
      const c = await KmipTestClient.connect(srv.port, alice);
      const fp = c.socket.getPeerX509Certificate()?.fingerprint256;
      await c.close();
      return fp === after.fingerprint256;
    }),
    'new connections get the new certificate',
  );
  t.equal((await discover(open)).status, Enums.ResultStatus.Success, 'an open connection keeps working');
  await open.close();
  const show = await runKmipd(['cert', 'server', '--data', srv.dataDir]);
  t.match(show.out, `SHA-256:  ${after.fingerprint256}`);
});

t.test('the reload a poll makes (what runs when fs.watch misses a change), and a broken store', async (t) => {
  const dir = tempDir(t, 'kmipd-trust-poll-');
  const state = await openServerState(dir, { log: silentLogger() });
  t.teardown(() => state.close());
  const lines: string[] = [];
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk: Buffer, _e, cb) {
        lines.push(chunk.toString());
        cb();
      },
    }),
  });
  const rt = TrustRuntime.open(state, log); // not attached: no watcher, no timer
  const pin = selfSigned('poll-pin', 'poll-pin');
  const cert = new X509Certificate(pin.cert);
  t.match(rt.identify(cert), { ok: false });
  t.same(rt.check(), { trust: false, serverCert: false }, 'nothing changed');
  addPinnedCert(dir, pin.cert, { name: 'polled' });
  t.same(rt.check(), { trust: true, serverCert: false }, 'the new store is seen');
  t.same(rt.identify(cert), { ok: true, identity: { name: 'polled' } });
  writeFileSync(join(dir, 'trust', 'index.json'), '{ broken');
  t.same(rt.check(), { trust: false, serverCert: false }, 'a broken store is not applied');
  t.same(rt.identify(cert), { ok: true, identity: { name: 'polled' } }, 'the previous one stays in use');
  t.ok(lines.some((l) => l.includes('the trust store cannot be loaded')), 'and the error is logged');
  writeFileSync(join(dir, 'trust', 'index.json'), '{"format": 1, "entries": []}');
  t.same(rt.check(), { trust: true, serverCert: false });
  t.match(rt.identify(cert), { ok: false }, 'removed');

  // half a rotation (a new key, the old certificate): not applied until the pair matches
  const before = rt.tlsOptions().cert;
  const issued = await issueServerCert(loadCa(dir), { commonName: 'x', sans: ['localhost'] });
  writeFileSync(join(dir, 'pki', 'server.key'), issued.keyPem);
  t.same(rt.check(), { trust: false, serverCert: false }, 'a key without its certificate is not used');
  t.equal(rt.tlsOptions().cert, before);
  writeFileSync(join(dir, 'pki', 'server.crt'), issued.certPem);
  t.same(rt.check(), { trust: false, serverCert: true }, 'the whole pair is');
  t.equal(rt.tlsOptions().cert, issued.certPem);
  t.equal(state.pki.serverCertPem, issued.certPem, 'the server state follows');
  rt.close();
});

t.test('end to end: node bin/kmipd trust add-cert / list', async (t) => {
  const note = ensureBuilt('src/cli/trust.js');
  if (note) t.comment(note);
  t.ok(existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'trust.js')), 'dist/src/cli/trust.js built');
  const kmipd = (args: string[]) => spawnSync('env', kmipdArgs(args), { encoding: 'utf8' });
  selfSigned('spawned', 'spawned', 365);
  const add = kmipd(['trust', 'add-cert', '--data', srv.dataDir, join(work, 'spawned.crt'), '--name', 'spawned-pin']);
  t.equal(add.status, 0, add.stderr);
  const list = kmipd(['trust', 'list', '--data', srv.dataDir, '--json']);
  t.equal(list.status, 0, list.stderr);
  const items = JSON.parse(list.stdout) as { name: string; kind: string }[];
  t.ok(items.some((i) => i.name === 'spawned-pin' && i.kind === 'pinned'), 'the pinned certificate is listed');
  await servedOnBoth(t, { ca: srv.caPem, cert: read('spawned.crt'), key: read('spawned.key') }, 'pinned from another process');
  const bad = kmipd(['trust', 'remove', '--data', srv.dataDir]);
  t.not(bad.status, 0);
  t.match(bad.stderr, /missing required argument 'name'/);
});
