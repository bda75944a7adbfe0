/**
 * Real mutual-TLS handshakes with node:tls: kmipd's server certificate on the server, issued
 * client certificates (RSA, EC, and one signed from a vCenter-style CSR) on the client, both
 * sides verifying against the kmipd CA, and the server reading the client's CN.
 */
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import {
  type CaMaterial,
  clientIdentityAllowed,
  createCA,
  ensureServerPki,
  issueClientCert,
  signCsr,
} from '../../src/pki/index.js';
import { need } from '../helpers/requirements.js';
import { openssl, ossl, tempDir } from './fixtures/helpers.js';

interface Outcome {
  /** What the server decided about the client. */
  server: { authorized: boolean; identity?: ReturnType<typeof clientIdentityAllowed>; error?: string };
  /** What the client saw. */
  client: { ok: boolean; error?: string; reply?: string };
}

async function handshake(
  pki: { caCertPem: string; serverCertPem: string; serverKeyPem: string },
  client: { certPem: string; keyPem: string },
  clientCa = pki.caCertPem,
): Promise<Outcome> {
  let serverSide: Outcome['server'] | undefined;
  const server = createServer({
    key: pki.serverKeyPem,
    cert: pki.serverCertPem,
    ca: [pki.caCertPem],
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
  });
  server.on('secureConnection', (s: TLSSocket) => {
    const peer = s.getPeerX509Certificate();
    serverSide = { authorized: s.authorized };
    if (peer) serverSide.identity = clientIdentityAllowed(peer);
    const id = serverSide.identity;
    s.end(id?.ok ? `hello ${id.cn}` : 'refused');
  });
  server.on('tlsClientError', (err: Error) => {
    serverSide ??= { authorized: false, error: err.message };
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const clientSide = await new Promise<Outcome['client']>((resolve) => {
    let data = '';
    const sock = connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: [clientCa],
      cert: client.certPem,
      key: client.keyPem,
    });
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (data += d));
    sock.on('end', () => resolve({ ok: true, reply: data }));
    sock.on('error', (err: Error) => resolve({ ok: false, error: err.message }));
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
  // the server event may land just after the client gave up
  for (let i = 0; i < 50 && !serverSide; i++) await new Promise((r) => setTimeout(r, 10));
  return { server: serverSide ?? { authorized: false, error: 'no server event' }, client: clientSide };
}

t.test('mutual TLS with kmipd certificates', async (t) => {
  const data = join(tempDir(t), 'data');
  const pki = await ensureServerPki(data, {});
  const ca: CaMaterial = { certPem: pki.caCertPem, keyPem: pki.caKeyPem };

  for (const keyType of ['rsa', 'ec'] as const) {
    const c = await issueClientCert(ca, { commonName: `kmip-${keyType}`, keyType });
    const r = await handshake(pki, c);
    t.equal(r.server.authorized, true, `${keyType}: the server verified the client chain`);
    t.same(r.server.identity, { ok: true, cn: `kmip-${keyType}` }, `${keyType}: server sees the CN`);
    t.same(r.client, { ok: true, reply: `hello kmip-${keyType}` }, `${keyType}: client verified the server (CA + localhost SAN)`);
  }

  // a client whose certificate comes from another CA is turned away in the handshake
  const stranger = await createCA({ commonName: 'stranger CA' });
  const foreign = await issueClientCert(stranger, { commonName: 'intruder', keyType: 'ec' });
  const r = await handshake(pki, foreign);
  t.equal(r.client.ok && r.client.reply === 'hello intruder', false, 'foreign client refused');
  t.not(r.server.authorized, true);

  // a client that does not trust the server's CA refuses the server
  const distrust = await issueClientCert(ca, { commonName: 'careful', keyType: 'ec' });
  const r2 = await handshake(pki, distrust, stranger.certPem);
  t.equal(r2.client.ok, false, 'client refuses an unknown server CA');
  t.match(r2.client.error ?? '', /self[- ]signed|unable to (get|verify)/i);
});

t.test('mutual TLS with a certificate signed from a vCenter-style CSR (no EKU requested)', async (t) => {
  if (!need(t, openssl())) return;
  const dir = tempDir(t);
  const pki = await ensureServerPki(join(dir, 'data'), {});
  const ca: CaMaterial = { certPem: pki.caCertPem, keyPem: pki.caKeyPem };
  ossl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=vcenter', '-keyout', join(dir, 'vc.key'), '-out', join(dir, 'vc.csr')]);
  const { certPem } = signCsr(ca, readFileSync(join(dir, 'vc.csr'), 'utf8'), {});
  const r = await handshake(pki, { certPem, keyPem: readFileSync(join(dir, 'vc.key'), 'utf8') });
  t.equal(r.server.authorized, true);
  t.same(r.server.identity, { ok: true, cn: 'vcenter' });
  t.same(r.client, { ok: true, reply: 'hello vcenter' });
});

t.test('a CA-signed client certificate whose EKU is serverAuth only is not a client', async (t) => {
  if (!need(t, openssl())) return;
  const dir = tempDir(t);
  const pki = await ensureServerPki(join(dir, 'data'), {});
  // sign a serverAuth-only certificate with the kmipd CA key using openssl
  ossl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=websrv', '-keyout', join(dir, 'w.key'), '-out', join(dir, 'w.csr')]);
  const ext = join(dir, 'ext.cnf');
  writeFileSync(ext, 'extendedKeyUsage=serverAuth\n');
  ossl([
    'x509', '-req', '-in', join(dir, 'w.csr'), '-CA', pki.paths.caCert, '-CAkey', pki.paths.caKey, '-CAcreateserial',
    '-days', '2', '-extfile', ext, '-out', join(dir, 'w.crt'),
  ]);
  const certPem = readFileSync(join(dir, 'w.crt'), 'utf8');
  const id = clientIdentityAllowed(new X509Certificate(certPem));
  t.equal(id.ok, false, 'clientIdentityAllowed refuses it');
  const r = await handshake(pki, { certPem, keyPem: readFileSync(join(dir, 'w.key'), 'utf8') });
  // OpenSSL itself rejects the purpose during the handshake; if it ever let it through,
  // kmipd's own check still refuses it.
  t.comment(`server: ${JSON.stringify(r.server)}; client: ${JSON.stringify(r.client)}`);
  t.not(r.client.reply, 'hello websrv', 'never accepted as a KMIP client');
  t.ok(r.server.authorized === false || (r.server.identity && !r.server.identity.ok), 'refused by TLS or by identity check');
});
