import t from 'tap';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CsrError, certInfo, clientIdentityAllowed, signCsr } from '../../src/pki/index.js';
import { need } from '../helpers/requirements.js';
import { openssl, ossl, sharedCa, tempDir, write } from './fixtures/helpers.js';

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}
function derToPem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ${label}-----\n`;
}

/** Makes a CSR with openssl in `dir`; returns its PEM and the key file. */
function makeCsr(dir: string, name: string, args: string[]): { csrPem: string; keyPath: string } {
  const keyPath = join(dir, `${name}.key`);
  const csrPath = join(dir, `${name}.csr`);
  ossl(['req', '-new', '-nodes', '-keyout', keyPath, '-out', csrPath, ...args]);
  return { csrPem: readFileSync(csrPath, 'utf8'), keyPath };
}

t.test('a vCenter-style CSR (RSA, no extensions at all) is signed', async (t) => {
  if (!need(t, openssl())) return;
  const ca = await sharedCa();
  const dir = tempDir(t);
  const { csrPem, keyPath } = makeCsr(dir, 'vc', ['-newkey', 'rsa:2048', '-subj', '/CN=vcenter']);
  t.notMatch(ossl(['req', '-in', join(dir, 'vc.csr'), '-noout', '-text']), /X509v3/, 'the CSR really has no extensions');
  const { certPem, subject } = signCsr(ca, csrPem, {});
  t.equal(subject, 'CN=vcenter');
  const x = new X509Certificate(certPem);
  const cax = new X509Certificate(ca.certPem);
  t.ok(x.checkIssued(cax) && x.verify(cax.publicKey), 'signed by the CA');
  t.same(x.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'clientAuth EKU');
  const fromKey = createPublicKey(createPrivateKey(readFileSync(keyPath))).export({ type: 'spki', format: 'der' });
  t.ok(x.publicKey.export({ type: 'spki', format: 'der' }).equals(fromKey), 'the CSR key is in the certificate');
  t.same(clientIdentityAllowed(x), { ok: true, cn: 'vcenter' });

  write(dir, 'ca.crt', ca.certPem);
  write(dir, 'vc.crt', certPem);
  t.match(ossl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', 'ca.crt', 'vc.crt'], { cwd: dir }), /vc.crt: OK/);
  const text = ossl(['x509', '-in', 'vc.crt', '-text', '-noout'], { cwd: dir });
  t.match(text, /Subject: CN = vcenter\n/);
  t.match(text, /Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
  t.match(text, /TLS Web Client Authentication/);
  // openssl agrees the certificate and the key the CSR was made with go together
  t.equal(
    ossl(['x509', '-in', 'vc.crt', '-pubkey', '-noout'], { cwd: dir }),
    ossl(['pkey', '-in', keyPath, '-pubout']),
  );
});

t.test('EC CSR with a multi-attribute subject keeps the subject exactly', async (t) => {
  if (!need(t, openssl())) return;
  const ca = await sharedCa();
  const dir = tempDir(t);
  const { csrPem } = makeCsr(dir, 'ec', [
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-384',
    '-subj',
    '/C=US/O=VMware, Inc./OU=vSphere/CN=vc02.example.com',
  ]);
  const { certPem, subject } = signCsr(ca, csrPem, { days: 10 });
  t.equal(subject, 'C=US, O=VMware\\, Inc., OU=vSphere, CN=vc02.example.com');
  const csrSubject = ossl(['req', '-in', join(dir, 'ec.csr'), '-noout', '-subject', '-nameopt', 'RFC2253']);
  write(dir, 'ec.crt', certPem);
  const certSubject = ossl(['x509', '-in', join(dir, 'ec.crt'), '-noout', '-subject', '-nameopt', 'RFC2253']);
  t.equal(certSubject, csrSubject, 'same subject as the CSR');
  const info = certInfo(certPem);
  t.equal(info.keyDescription, 'EC P-384');
  t.equal(info.commonName, 'vc02.example.com');
  t.ok(info.notAfter.getTime() - Date.now() < 10.1 * 86_400_000, '--days honoured');
  t.match(ossl(['x509', '-in', join(dir, 'ec.crt'), '-text', '-noout']), /Key Usage: critical\s+Digital Signature\n/);
  write(dir, 'ca.crt', ca.certPem);
  t.match(ossl(['verify', '-purpose', 'sslclient', '-CAfile', 'ca.crt', 'ec.crt'], { cwd: dir }), /ec.crt: OK/);
});

t.test('requested extensions are ignored: the profile is always clientAuth', async (t) => {
  if (!need(t, openssl())) return;
  const ca = await sharedCa();
  const dir = tempDir(t);
  const { csrPem } = makeCsr(dir, 'ext', [
    '-newkey',
    'rsa:2048',
    '-subj',
    '/CN=greedy',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'extendedKeyUsage=serverAuth',
    '-addext',
    'subjectAltName=DNS:www.example.com',
  ]);
  const { certPem } = signCsr(ca, csrPem, {});
  const x = new X509Certificate(certPem);
  t.notOk(x.ca, 'no CA:true');
  t.same(x.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'clientAuth only');
  t.equal(x.subjectAltName, undefined, 'no SAN');
});

t.test('an altered CSR is refused', async (t) => {
  if (!need(t, openssl())) return;
  const ca = await sharedCa();
  const dir = tempDir(t);
  const { csrPem } = makeCsr(dir, 'vc', ['-newkey', 'rsa:2048', '-subj', '/CN=vcenter']);
  const der = pemToDer(csrPem);
  // change the CN "vcenter" -> "vcentes" inside the signed request info
  const at = der.indexOf(Buffer.from('vcenter'));
  t.ok(at > 0);
  const forged = Buffer.from(der);
  forged[at + 6] = 's'.charCodeAt(0);
  t.throws(() => signCsr(ca, derToPem('CERTIFICATE REQUEST', forged), {}), { name: 'CsrError', message: /signature does not verify/ });
  // flip a bit of the signature itself
  const badSig = Buffer.from(der);
  badSig[badSig.length - 5] = (badSig[badSig.length - 5] ?? 0) ^ 1;
  t.throws(() => signCsr(ca, derToPem('CERTIFICATE REQUEST', badSig), {}), /signature does not verify/);
  // an EC CSR whose public key is swapped for another key
  const a = makeCsr(dir, 'a', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/CN=a']);
  const b = makeCsr(dir, 'b', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/CN=a']);
  const spki = (pem: string): Buffer =>
    createPublicKey(createPrivateKey(readFileSync(pem))).export({ type: 'spki', format: 'der' });
  const aDer = pemToDer(a.csrPem);
  const aSpki = spki(a.keyPath);
  const pos = aDer.indexOf(aSpki);
  t.ok(pos > 0, 'found the SPKI');
  const swapped = Buffer.concat([aDer.subarray(0, pos), spki(b.keyPath), aDer.subarray(pos + aSpki.length)]);
  t.throws(() => signCsr(ca, derToPem('CERTIFICATE REQUEST', swapped), {}), /signature does not verify/);
  t.ok(signCsr(ca, a.csrPem, {}).certPem, 'the untouched one is fine');
});

t.test('unreadable or unsuitable CSRs are refused with a reason', async (t) => {
  const ca = await sharedCa();
  t.throws(() => signCsr(ca, 'hello', {}), { name: 'CsrError', message: /no PEM block/ });
  t.throws(() => signCsr(ca, ca.certPem, {}), /no PEM block "CERTIFICATE REQUEST"/);
  t.throws(() => signCsr(ca, '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', {}), CsrError);
  t.throws(() => signCsr(ca, '-----BEGIN CERTIFICATE REQUEST-----\n%%%\n-----END CERTIFICATE REQUEST-----\n', {}), /base64/);
  if (!need(t, openssl())) return;
  const dir = tempDir(t);
  const noCn = makeCsr(dir, 'nocn', ['-newkey', 'rsa:2048', '-subj', '/O=Acme']);
  t.throws(() => signCsr(ca, noCn.csrPem, {}), /no common name/);
  const twoCn = makeCsr(dir, 'twocn', ['-newkey', 'rsa:2048', '-subj', '/CN=a/CN=b']);
  t.throws(() => signCsr(ca, twoCn.csrPem, {}), /2 common names/);
  const weak = makeCsr(dir, 'weak', ['-newkey', 'rsa:1024', '-subj', '/CN=weak']);
  t.throws(() => signCsr(ca, weak.csrPem, {}), /1024 bits/);
  const okCsr = makeCsr(dir, 'ok', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/CN=ok']);
  // trailing garbage after the DER
  const trailing = Buffer.concat([pemToDer(okCsr.csrPem), Buffer.from([0, 0])]);
  t.throws(() => signCsr(ca, derToPem('CERTIFICATE REQUEST', trailing), {}), /unexpected bytes/);
  // the older "NEW CERTIFICATE REQUEST" label is accepted
  const legacy = okCsr.csrPem.replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST');
  t.equal(signCsr(ca, legacy, {}).subject, 'CN=ok');
  t.throws(() => signCsr(ca, okCsr.csrPem, { days: -1 }), /days/);
});
