import t from 'tap';
import { X509Certificate, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  certInfo,
  createCA,
  issueClientCert,
  issueServerCert,
  normalizeSans,
} from '../../src/pki/index.js';
import { need } from '../helpers/requirements.js';
import { openssl, ossl, osslStatus, sharedCa, tempDir, write } from './fixtures/helpers.js';

const DAY = 86_400_000;

function keyMatches(certPem: string, keyPem: string): boolean {
  const cert = new X509Certificate(certPem);
  const key = createPrivateKey(keyPem);
  const spki = (k: Parameters<typeof createPublicKey>[0]) => createPublicKey(k).export({ type: 'spki', format: 'der' });
  if (!spki(key).equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) return false;
  const data = Buffer.from('kmipd');
  return verify('sha256', data, cert.publicKey, sign('sha256', data, key));
}

t.test('CA certificate', async (t) => {
  const ca = await sharedCa();
  const x = new X509Certificate(ca.certPem);
  t.equal(x.subject, 'CN=kmipd test CA');
  t.equal(x.issuer, x.subject, 'self-issued');
  t.ok(x.ca, 'CA:true');
  t.ok(x.checkIssued(x) && x.verify(x.publicKey), 'self-signed signature verifies');
  t.equal(x.publicKey.asymmetricKeyType, 'rsa');
  t.equal(x.publicKey.asymmetricKeyDetails?.modulusLength, 3072);
  t.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');
  t.ok(keyMatches(ca.certPem, ca.keyPem), 'key belongs to the certificate');
  const info = certInfo(ca.certPem);
  t.equal(info.isCA, true);
  t.equal(info.ekus, undefined, 'no EKU on the CA');
  t.ok(info.notAfter.getTime() - Date.now() > 3640 * DAY, '10 years');

  if (!need(t, openssl())) return;
  const dir = tempDir(t);
  write(dir, 'ca.crt', ca.certPem);
  const text = ossl(['x509', '-in', 'ca.crt', '-text', '-noout'], { cwd: dir });
  t.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
  t.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE/);
  t.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
  t.match(text, /X509v3 Subject Key Identifier:/);
  t.match(text, /Public-Key: \(3072 bit\)/);
  t.match(ossl(['verify', '-x509_strict', '-CAfile', 'ca.crt', 'ca.crt'], { cwd: dir }), /ca.crt: OK/);
});

t.test('server certificate: SANs, EKU, key usage; RSA and EC', async (t) => {
  const ca = await sharedCa();
  const sans = ['localhost', '127.0.0.1', '::1', 'kms.example.com', '10.0.0.5', 'fe80::1'];
  for (const keyType of ['rsa', 'ec'] as const) {
    const s = await issueServerCert(ca, { commonName: 'kms.example.com', sans, keyType });
    const x = new X509Certificate(s.certPem);
    const cax = new X509Certificate(ca.certPem);
    t.ok(x.checkIssued(cax), `${keyType}: issued by the CA`);
    t.ok(x.verify(cax.publicKey), `${keyType}: signature verifies with the CA key`);
    t.notOk(x.ca, `${keyType}: not a CA`);
    t.equal(x.subject, 'CN=kms.example.com');
    t.equal(x.checkHost('localhost'), 'localhost');
    t.equal(x.checkHost('kms.example.com'), 'kms.example.com');
    t.equal(x.checkIP('127.0.0.1'), '127.0.0.1');
    t.equal(x.checkIP('10.0.0.5'), '10.0.0.5');
    t.ok(x.checkIP('::1'), 'IPv6 SAN');
    t.same(x.keyUsage, ['1.3.6.1.5.5.7.3.1'], `${keyType}: EKU serverAuth only`);
    t.equal(x.publicKey.asymmetricKeyType, keyType);
    t.ok(keyMatches(s.certPem, s.keyPem), `${keyType}: key belongs to the certificate`);
    const info = certInfo(s.certPem);
    t.same(info.sans, ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1', 'DNS:kms.example.com', 'IP:10.0.0.5', 'IP:fe80::1']);
    t.same(info.ekus, ['serverAuth']);
    t.equal(info.keyDescription, keyType === 'rsa' ? 'RSA 2048' : 'EC P-256');

    if (!need(t, openssl())) return;
    const dir = tempDir(t);
    write(dir, 'ca.crt', ca.certPem);
    write(dir, 's.crt', s.certPem);
    t.match(ossl(['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', 'ca.crt', 's.crt'], { cwd: dir }), /s.crt: OK/);
    const bad = osslStatus(['verify', '-purpose', 'sslclient', '-CAfile', 'ca.crt', 's.crt'], dir);
    t.not(bad.status, 0, `${keyType}: not usable as a client certificate`);
    const text = ossl(['x509', '-in', 's.crt', '-text', '-noout'], { cwd: dir });
    t.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    t.match(text, /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication\n/);
    t.match(
      text,
      keyType === 'rsa' ? /Key Usage: critical\s+Digital Signature, Key Encipherment\n/ : /Key Usage: critical\s+Digital Signature\n/,
    );
    t.match(
      text,
      /DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:kms.example.com, IP Address:10.0.0.5, IP Address:FE80:0:0:0:0:0:0:1/,
    );
    t.match(text, /X509v3 Subject Key Identifier:/);
    t.match(text, /X509v3 Authority Key Identifier:/);
    t.match(text, keyType === 'rsa' ? /Public-Key: \(2048 bit\)/ : /ASN1 OID: prime256v1/);
  }
});

t.test('client certificates, RSA and EC', async (t) => {
  const ca = await sharedCa();
  const cax = new X509Certificate(ca.certPem);
  const dir = tempDir(t);
  write(dir, 'ca.crt', ca.certPem);
  for (const keyType of ['rsa', 'ec'] as const) {
    const c = await issueClientCert(ca, { commonName: `client-${keyType}`, keyType });
    const x = new X509Certificate(c.certPem);
    t.ok(x.checkIssued(cax) && x.verify(cax.publicKey), `${keyType}: signed by the CA`);
    t.same(x.keyUsage, ['1.3.6.1.5.5.7.3.2'], `${keyType}: EKU clientAuth`);
    t.equal(x.publicKey.asymmetricKeyType, keyType);
    t.equal(x.subjectAltName, undefined, 'no SAN');
    t.ok(keyMatches(c.certPem, c.keyPem));
    t.match(c.keyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8');
    const info = certInfo(c.certPem);
    t.equal(info.commonName, `client-${keyType}`);
    t.same(info.ekus, ['clientAuth']);
    t.equal(info.keyType, keyType);

    if (!need(t, openssl())) return;
    write(dir, `${keyType}.crt`, c.certPem);
    t.match(
      ossl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', 'ca.crt', `${keyType}.crt`], { cwd: dir }),
      new RegExp(`${keyType}.crt: OK`),
    );
    const text = ossl(['x509', '-in', `${keyType}.crt`, '-text', '-noout'], { cwd: dir });
    t.match(text, /TLS Web Client Authentication/);
    t.notMatch(text, /TLS Web Server Authentication/);
    t.match(
      text,
      keyType === 'rsa' ? /Key Usage: critical\s+Digital Signature, Key Encipherment\n/ : /Key Usage: critical\s+Digital Signature\n/,
    );
    if (keyType === 'ec') {
      t.match(text, /Public Key Algorithm: id-ecPublicKey/);
      t.match(text, /NIST CURVE: P-256/);
    }
    // the key file openssl reads is the same key
    write(dir, `${keyType}.key`, c.keyPem);
    const fromKey = ossl(['pkey', '-in', `${keyType}.key`, '-pubout'], { cwd: dir });
    const fromCert = ossl(['x509', '-in', `${keyType}.crt`, '-pubkey', '-noout'], { cwd: dir });
    t.equal(fromKey, fromCert, `${keyType}: openssl sees the key matching the certificate`);
  }
});

t.test('serial numbers: 128-bit random positive; fingerprints match openssl', async (t) => {
  const ca = await sharedCa();
  const serials = new Set<string>();
  const certs: string[] = [];
  for (let i = 0; i < 6; i++) {
    const c = await issueClientCert(ca, { commonName: `s${i}`, keyType: 'ec' });
    certs.push(c.certPem);
    const x = new X509Certificate(c.certPem);
    serials.add(x.serialNumber);
    t.ok(x.serialNumber.length <= 34, 'at most 17 bytes');
    t.ok(BigInt(`0x${x.serialNumber}`) > 0n, 'positive');
  }
  t.equal(serials.size, 6, 'distinct');
  if (!need(t, openssl())) return;
  const dir = tempDir(t);
  const p = write(dir, 'c.crt', certs[0] ?? '');
  const info = certInfo(readFileSync(p, 'utf8'));
  t.equal(ossl(['x509', '-in', p, '-noout', '-fingerprint', '-sha1']).trim().split('=')[1], info.sha1);
  t.equal(ossl(['x509', '-in', p, '-noout', '-fingerprint', '-sha256']).trim().split('=')[1], info.sha256);
  t.equal(ossl(['x509', '-in', p, '-noout', '-serial']).trim().split('=')[1], info.serial);
  t.match(info.sha1, /^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
});

t.test('validity: days honoured, clamped to the CA, backdated a little', async (t) => {
  const shortCa = await createCA({ commonName: 'short CA', days: 30 });
  const c = await issueClientCert(shortCa, { commonName: 'c', days: 365, keyType: 'ec' });
  const caInfo = certInfo(shortCa.certPem);
  const info = certInfo(c.certPem);
  t.ok(info.notAfter.getTime() <= caInfo.notAfter.getTime(), 'never outlives the CA');
  t.ok(info.notBefore.getTime() < Date.now() - 60_000, 'notBefore in the past (clock skew)');
  const d = await issueClientCert(shortCa, { commonName: 'd', days: 2, keyType: 'ec' });
  const span = certInfo(d.certPem).notAfter.getTime() - Date.now();
  t.ok(span > 1.9 * DAY && span < 2.1 * DAY, '2 days');
  await t.rejects(issueClientCert(shortCa, { commonName: 'x', days: 0 }), /days/);
  await t.rejects(issueClientCert(shortCa, { commonName: 'x', days: 1.5 }), /days/);
});

t.test('bad inputs are refused', async (t) => {
  const ca = await sharedCa();
  await t.rejects(issueClientCert(ca, { commonName: '' }), /common name/);
  await t.rejects(issueClientCert(ca, { commonName: 'x'.repeat(65) }), /64/);
  await t.rejects(issueClientCert(ca, { commonName: 'a\nb' }), /control/);
  await t.rejects(issueClientCert(ca, { commonName: 'a', keyType: 'dsa' as 'rsa' }), /key type/);
  await t.rejects(issueServerCert(ca, { commonName: 's', sans: ['bad name!'] }), /subject alternative name/);
  await t.rejects(issueServerCert(ca, { commonName: 's', sans: [] }), /at least one/);
  const notCa = await issueClientCert(ca, { commonName: 'leaf', keyType: 'rsa' });
  await t.rejects(issueClientCert({ certPem: notCa.certPem, keyPem: notCa.keyPem }, { commonName: 'x' }), /not a CA/);
  const other = await createCA({ commonName: 'other' });
  await t.rejects(issueClientCert({ certPem: ca.certPem, keyPem: other.keyPem }, { commonName: 'x' }), /does not belong/);
});

t.test('normalizeSans', async (t) => {
  t.same(normalizeSans(['localhost', 'LOCALHOST', '127.0.0.1', 'IP:127.0.0.1', '::1', '0:0::1', 'DNS:a.b', '[::2]']), [
    'localhost',
    '127.0.0.1',
    '::1',
    'a.b',
    '::2',
  ]);
  t.same(normalizeSans(['*.example.com', 'host_1.lan']), ['*.example.com', 'host_1.lan']);
  t.throws(() => normalizeSans(['IP:not-an-ip']), /subject alternative name/);
  t.throws(() => normalizeSans(['a..b']), /subject alternative name/);
  t.throws(() => normalizeSans(['fe80::1%eth0']), /subject alternative name/);
});
