import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { certInfo, ensureServerPki, loadCa, writeFileAtomic } from '../../src/pki/index.js';
import { need } from '../helpers/requirements.js';
import { mode, openssl, ossl, tempDir } from './fixtures/helpers.js';

t.test('first run creates the PKI; later runs load the same files', async (t) => {
  const root = tempDir(t);
  const data = join(root, 'a', 'kmipd-data');
  const logs: string[] = [];
  const first = await ensureServerPki(data, { sans: ['kms.example.com', '192.168.1.10'], log: (m) => logs.push(m) });
  t.equal(first.created, true);
  t.equal(mode(data), 0o700, 'data folder 0700');
  t.equal(mode(first.paths.dir), 0o700, 'pki folder 0700');
  t.equal(mode(first.paths.caKey), 0o600, 'ca.key 0600');
  t.equal(mode(first.paths.serverKey), 0o600, 'server.key 0600');
  t.equal(mode(first.paths.caCert), 0o644);
  t.equal(mode(first.paths.serverCert), 0o644);
  t.same(readdirSync(first.paths.dir).sort(), ['ca.crt', 'ca.key', 'server.crt', 'server.key'], 'no temporary files left');
  t.same(
    readdirSync(data).filter((f) => f !== 'pki'),
    [],
    'no temporary folder left',
  );
  t.equal(readFileSync(first.paths.caCert, 'utf8'), first.caCertPem);
  t.equal(readFileSync(first.paths.serverKey, 'utf8'), first.serverKeyPem);
  t.match(first.caKeyPem, /^-----BEGIN PRIVATE KEY-----/);
  t.match(first.serverKeyPem, /^-----BEGIN PRIVATE KEY-----/);
  t.ok(logs.some((l) => /created the CA/.test(l)), 'logged the CA');
  t.ok(logs.some((l) => /created the server certificate.*SHA-1 ([0-9A-F]{2}:){19}/.test(l)), 'logged the server fingerprint');

  const server = new X509Certificate(first.serverCertPem);
  const ca = new X509Certificate(first.caCertPem);
  t.ok(server.checkIssued(ca) && server.verify(ca.publicKey));
  t.equal(server.publicKey.asymmetricKeyType, 'rsa');
  t.equal(server.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  const sans = certInfo(first.serverCertPem).sans;
  for (const s of ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1', 'DNS:kms.example.com', 'IP:192.168.1.10']) t.ok(sans.includes(s), s);
  t.ok(sans.includes(`DNS:${hostname()}`), 'host name');
  t.same(certInfo(first.serverCertPem).ekus, ['serverAuth']);

  const stamp = statSync(first.paths.serverKey).mtimeMs;
  const logs2: string[] = [];
  const second = await ensureServerPki(data, { sans: ['kms.example.com', '192.168.1.10'], log: (m) => logs2.push(m) });
  t.equal(second.created, false);
  t.equal(second.caCertPem, first.caCertPem, 'same CA');
  t.equal(second.caKeyPem, first.caKeyPem);
  t.equal(second.serverCertPem, first.serverCertPem, 'same server certificate');
  t.equal(second.serverKeyPem, first.serverKeyPem);
  t.equal(statSync(first.paths.serverKey).mtimeMs, stamp, 'files not rewritten');
  t.same(logs2, [], 'nothing to say');

  const logs3: string[] = [];
  const third = await ensureServerPki(data, { sans: ['new.example.com'], log: (m) => logs3.push(m) });
  t.equal(third.serverCertPem, first.serverCertPem, 'a new --san does not regenerate the pinned certificate');
  t.ok(logs3.some((l) => /lacks new.example.com/.test(l)), 'but says how to get it');

  t.same(loadCa(data), { certPem: first.caCertPem, keyPem: first.caKeyPem }, 'loadCa');

  if (!need(t, openssl())) return;
  t.match(
    ossl(['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', first.paths.caCert, first.paths.serverCert]),
    /: OK/,
  );
  t.equal(
    ossl(['pkey', '-in', first.paths.serverKey, '-pubout']),
    ossl(['x509', '-in', first.paths.serverCert, '-pubkey', '-noout']),
    'openssl: server key matches server.crt',
  );
});

t.test('partial states', async (t) => {
  const data = join(tempDir(t), 'd');
  const first = await ensureServerPki(data, {});

  // server pair deleted: a new one from the same CA
  rmSync(first.paths.serverCert);
  rmSync(first.paths.serverKey);
  const logs: string[] = [];
  const again = await ensureServerPki(data, { log: (m) => logs.push(m) });
  t.equal(again.caCertPem, first.caCertPem, 'CA kept');
  t.not(again.serverCertPem, first.serverCertPem, 'new server certificate');
  t.equal(mode(again.paths.serverKey), 0o600);
  t.ok(logs.some((l) => /issued a new server certificate/.test(l)));

  // a crash between server.key and server.crt: server.crt missing -> reissued
  rmSync(first.paths.serverCert);
  const healed = await ensureServerPki(data, {});
  t.ok(new X509Certificate(healed.serverCertPem).checkIssued(new X509Certificate(first.caCertPem)));

  // server.key missing but server.crt there: refuse rather than pin-break silently
  rmSync(first.paths.serverKey);
  await t.rejects(ensureServerPki(data, {}), /server\.key is missing/);
  writeFileSync(first.paths.serverKey, healed.serverKeyPem, { mode: 0o600 });

  // a key that does not match
  writeFileSync(first.paths.serverKey, first.serverKeyPem === healed.serverKeyPem ? '' : first.serverKeyPem);
  await t.rejects(ensureServerPki(data, {}), /does not belong/);
  writeFileSync(first.paths.serverKey, healed.serverKeyPem);

  // loose permissions are reported
  chmodSync(first.paths.caKey, 0o644);
  const logs2: string[] = [];
  await ensureServerPki(data, { log: (m) => logs2.push(m) });
  t.ok(logs2.some((l) => /ca\.key has mode 0644/.test(l)), 'warns about 0644');
  chmodSync(first.paths.caKey, 0o600);

  // CA key gone: refuse
  rmSync(first.paths.caKey);
  await t.rejects(ensureServerPki(data, {}), /incomplete: .*ca\.key/);
  t.throws(() => loadCa(data), /kmipd serve --data/);
});

t.test('loadCa without a CA says what to do', async (t) => {
  const data = tempDir(t);
  t.throws(() => loadCa(data), { message: new RegExp(`run \`kmipd serve --data ${data}\``) });
  mkdirSync(join(data, 'pki'));
  writeFileSync(join(data, 'pki', 'ca.crt'), 'junk');
  writeFileSync(join(data, 'pki', 'ca.key'), 'junk');
  t.throws(() => loadCa(data), /not usable: the CA certificate cannot be read/);
});

t.test('an existing data folder keeps its mode; an empty pki folder is filled', async (t) => {
  const data = tempDir(t);
  chmodSync(data, 0o750);
  mkdirSync(join(data, 'pki'), { mode: 0o700 });
  const p = await ensureServerPki(data, {});
  t.equal(mode(data), 0o750);
  t.ok(existsSync(p.paths.caKey) && existsSync(p.paths.serverCert));
});

t.test('two servers starting at once agree on one PKI', async (t) => {
  const data = join(tempDir(t), 'race');
  const [a, b] = await Promise.all([ensureServerPki(data, {}), ensureServerPki(data, {})]);
  t.equal(a.caCertPem, b.caCertPem);
  t.equal(a.serverCertPem, b.serverCertPem);
  t.equal([a.created, b.created].filter(Boolean).length, 1, 'exactly one created it');
  t.same(readdirSync(data), ['pki'], 'the loser cleaned up');
});

t.test('writeFileAtomic sets the mode whatever the umask', async (t) => {
  const dir = tempDir(t);
  const old = process.umask(0o000);
  try {
    writeFileAtomic(join(dir, 'k'), 'secret', 0o600);
    t.equal(mode(join(dir, 'k')), 0o600);
    process.umask(0o077);
    writeFileAtomic(join(dir, 'c'), 'public', 0o644);
    t.equal(mode(join(dir, 'c')), 0o644);
  } finally {
    process.umask(old);
  }
  writeFileAtomic(join(dir, 'k'), 'replaced', 0o600);
  t.equal(readFileSync(join(dir, 'k'), 'utf8'), 'replaced');
  t.same(readdirSync(dir).sort(), ['c', 'k'], 'no temporary files');
  t.throws(() => writeFileAtomic(join(dir, 'missing', 'x'), 'x', 0o600), /ENOENT/);
});
