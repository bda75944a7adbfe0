import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { certInfo, clientIdentityAllowed } from '../../src/pki/index.js';
import { need } from '../helpers/requirements.js';
import { openssl, ossl, tempDir } from './fixtures/helpers.js';

/** A self-signed certificate made by openssl with the given subject and extra -addext options. */
function selfSigned(dir: string, name: string, subj: string, addext: string[] = [], extra: string[] = []): X509Certificate {
  const out = join(dir, `${name}.crt`);
  ossl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    join(dir, `${name}.key`),
    '-out',
    out,
    '-days',
    '2',
    '-subj',
    subj,
    ...addext.flatMap((e) => ['-addext', e]),
    ...extra,
  ]);
  return new X509Certificate(readFileSync(out));
}

t.test('EKU rules', async (t) => {
  if (!need(t, openssl())) return;
  const dir = tempDir(t);

  const none = selfSigned(dir, 'none', '/CN=vcenter');
  t.notMatch(ossl(['x509', '-in', join(dir, 'none.crt'), '-noout', '-text']), /Extended Key Usage/, 'really no EKU');
  t.equal(none.keyUsage, undefined, "node's keyUsage is undefined without an EKU");
  t.same(clientIdentityAllowed(none), { ok: true, cn: 'vcenter' }, 'no EKU: accepted');
  t.same(clientIdentityAllowed(none.raw), { ok: true, cn: 'vcenter' }, 'DER input works too');

  const server = selfSigned(dir, 'server', '/CN=web', ['extendedKeyUsage=serverAuth']);
  const r = clientIdentityAllowed(server);
  t.equal(r.ok, false, 'serverAuth only: refused');
  if (!r.ok) t.match(r.reason, /extended key usage \(serverAuth\) does not allow TLS client authentication/);

  const client = selfSigned(dir, 'client', '/CN=kmip-client', ['extendedKeyUsage=clientAuth']);
  t.same(clientIdentityAllowed(client), { ok: true, cn: 'kmip-client' }, 'clientAuth: accepted');

  const both = selfSigned(dir, 'both', '/CN=both', ['extendedKeyUsage=serverAuth,clientAuth']);
  t.same(clientIdentityAllowed(both), { ok: true, cn: 'both' }, 'serverAuth+clientAuth: accepted');

  const any = selfSigned(dir, 'any', '/CN=any', ['extendedKeyUsage=anyExtendedKeyUsage']);
  t.same(clientIdentityAllowed(any), { ok: true, cn: 'any' }, 'anyExtendedKeyUsage: accepted');

  const code = selfSigned(dir, 'code', '/CN=code', ['extendedKeyUsage=codeSigning,emailProtection']);
  const rc = clientIdentityAllowed(code);
  t.equal(rc.ok, false, 'codeSigning+emailProtection: refused');
  if (!rc.ok) t.match(rc.reason, /codeSigning, emailProtection/);

  // an EKU extension that is not a SEQUENCE of OIDs: node reports no EKU at all, kmipd refuses
  const broken = selfSigned(dir, 'broken', '/CN=broken', ['2.5.29.37=DER:0500']);
  t.equal(broken.keyUsage, undefined, "node's keyUsage cannot tell a malformed EKU from none");
  const rb = clientIdentityAllowed(broken);
  t.equal(rb.ok, false, 'malformed EKU: refused');
  if (!rb.ok) t.match(rb.reason, /extended key usage extension cannot be parsed/);
});

t.test('identity is the subject CN', async (t) => {
  if (!need(t, openssl())) return;
  const dir = tempDir(t);
  const multi = selfSigned(dir, 'multi', '/C=US/O=VMware/OU=vSphere/CN=vc01.example.com');
  t.same(clientIdentityAllowed(multi), { ok: true, cn: 'vc01.example.com' });

  const noCn = selfSigned(dir, 'nocn', '/O=Acme/OU=Ops');
  const r = clientIdentityAllowed(noCn);
  t.equal(r.ok, false);
  if (!r.ok) t.match(r.reason, /no common name/);

  const two = selfSigned(dir, 'two', '/CN=a/CN=b');
  const r2 = clientIdentityAllowed(two);
  t.equal(r2.ok, false);
  if (!r2.ok) t.match(r2.reason, /2 common names/);

  const utf8 = selfSigned(dir, 'utf8', '/CN=Zoë Ålund', [], ['-utf8']);
  t.same(clientIdentityAllowed(utf8), { ok: true, cn: 'Zoë Ålund' }, 'UTF-8 CN');

  t.same(clientIdentityAllowed(Buffer.from('not a certificate')).ok, false, 'garbage: refused');
});

t.test('certInfo on foreign certificates', async (t) => {
  if (!need(t, openssl())) return;
  const dir = tempDir(t);
  selfSigned(dir, 'w', '/C=US/O=Acme, Inc./CN=w.example', [
    'subjectAltName=DNS:w.example,IP:10.1.2.3,IP:2001:db8::7,email:ops@example.com,URI:https://w.example/',
    'extendedKeyUsage=serverAuth,1.2.3.4.5',
  ]);
  const pem = readFileSync(join(dir, 'w.crt'), 'utf8');
  const info = certInfo(pem);
  t.equal(info.subject, 'C=US, O=Acme\\, Inc., CN=w.example');
  t.equal(info.issuer, info.subject);
  t.equal(info.commonName, 'w.example');
  t.same(info.sans, ['DNS:w.example', 'IP:10.1.2.3', 'IP:2001:db8::7', 'email:ops@example.com', 'URI:https://w.example/']);
  t.same(info.ekus, ['serverAuth', '1.2.3.4.5']);
  t.equal(info.keyType, 'ec');
  t.equal(info.isCA, true, 'openssl req -x509 marks it CA:TRUE');
  t.equal(info.selfSigned, true);
  const fp = ossl(['x509', '-in', join(dir, 'w.crt'), '-noout', '-fingerprint', '-sha256']).trim().split('=')[1];
  t.equal(info.sha256, fp);
  const dates = ossl(['x509', '-in', join(dir, 'w.crt'), '-noout', '-startdate', '-enddate']);
  const m = /notBefore=(.*)\nnotAfter=(.*)/.exec(dates);
  t.equal(info.notBefore.getTime(), new Date(m?.[1] ?? '').getTime());
  t.equal(info.notAfter.getTime(), new Date(m?.[2] ?? '').getTime());
  t.equal(certInfo(new X509Certificate(pem).raw).sha1, info.sha1, 'DER input');
});
