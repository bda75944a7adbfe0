/**
 * The trust store (src/pki/trust.ts) without TLS: adding, refusing, removing, listing, the
 * decision about a client certificate at a given time, and what the store on disk looks like.
 * (Over real TLS: test/server/trust-modes.test.ts.)
 */
import t from 'tap';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCertificate, commonNameDer, keyIdentifier, randomSerial, type CertProfile } from '../../src/pki/build.js';
import { prepareCa } from '../../src/pki/ca.js';
import { pemEncode } from '../../src/pki/der.js';
import { forge } from '../../src/pki/forge.js';
import { ensureServerPki, issueClientCert } from '../../src/pki/index.js';
import { generateKey } from '../../src/pki/keys.js';
import {
  TrustError,
  addPinnedCert,
  addTrustedCa,
  expiryWarnings,
  listTrust,
  loadTrustSnapshot,
  removeTrust,
  trustPaths,
  verifyClient,
} from '../../src/pki/trust.js';
import { tempDir } from './fixtures/helpers.js';

const DAY = 86_400_000;
const LEAF: CertProfile = { ca: false, keyUsage: ['digitalSignature', 'keyEncipherment'] };
const CA: CertProfile = { ca: true, keyUsage: ['keyCertSign', 'cRLSign'] };

/** A certificate with chosen dates and profile: self-signed, or signed by `issuer`. */
async function makeCert(
  cn: string,
  opts: { from?: number; to?: number; profile?: CertProfile; issuer?: { certPem: string; keyPem: string } } = {},
): Promise<{ certPem: string; keyPem: string; x: X509Certificate }> {
  const key = await generateKey('rsa');
  const now = Date.now();
  const subject = commonNameDer(cn);
  let issuerDer: Uint8Array = subject;
  let akid = keyIdentifier(key.spkiDer);
  let signerPem = key.keyPem;
  if (opts.issuer) {
    const p = prepareCa(opts.issuer);
    issuerDer = p.subjectDer;
    akid = p.keyId;
    signerPem = opts.issuer.keyPem;
  }
  const signer = forge.pki.privateKeyFromPem(createPrivateKey(signerPem).export({ type: 'pkcs1', format: 'pem' }).toString());
  const der = buildCertificate(
    {
      serial: randomSerial(),
      issuerDer,
      subjectDer: subject,
      spkiDer: key.spkiDer,
      notBefore: new Date(Math.floor((now + (opts.from ?? -DAY)) / 1000) * 1000),
      notAfter: new Date(Math.floor((now + (opts.to ?? 365 * DAY)) / 1000) * 1000),
      profile: opts.profile ?? LEAF,
      authorityKeyId: akid,
    },
    signer,
  );
  const certPem = pemEncode('CERTIFICATE', der);
  return { certPem, keyPem: key.keyPem, x: new X509Certificate(certPem) };
}

t.test('the trust store: add, refuse, list, remove', async (t) => {
  const data = join(tempDir(t), 'data');
  t.throws(() => addPinnedCert(data, 'x', { name: 'n' }), /no kmipd data folder/, 'needs a data folder with a CA');
  t.notOk(existsSync(data), 'and creates none');
  const pki = await ensureServerPki(data, {});

  const vcRoot = await makeCert('vCenter Root', { profile: CA });
  const pin = await makeCert('vcenter-self', { profile: CA });
  const shortLived = await makeCert('short', { to: 5 * DAY });

  const ca = addTrustedCa(data, vcRoot.certPem);
  t.equal(ca.name, 'vCenter Root', 'named after the CN');
  t.equal(ca.sha256, vcRoot.x.fingerprint256);
  // DER is accepted too
  const p = addPinnedCert(data, pin.x.raw, { name: ' vcenter-pinned ' });
  t.equal(p.name, 'vcenter-pinned', 'name trimmed');
  t.equal(p.pem, pin.certPem, 'stored as PEM');
  addPinnedCert(data, shortLived.certPem, { name: 'short' });

  t.throws(() => addTrustedCa(data, pin.certPem), /already trusted as "vcenter-pinned"/, 'a certificate is trusted once, as a CA or as a pin');
  t.throws(() => addTrustedCa(data, vcRoot.certPem, { name: 'again' }), /already trusted as "vCenter Root"/);
  const sameName = (await makeCert('vCenter Root', { profile: CA })).certPem;
  t.throws(() => addTrustedCa(data, sameName), /already named "vCenter Root"/);
  t.throws(() => addPinnedCert(data, pin.certPem, { name: 'other' }), /already trusted as "vcenter-pinned"/);
  t.throws(() => addTrustedCa(data, shortLived.certPem, { name: 'leaf' }), /not a CA/);
  t.throws(() => addTrustedCa(data, pki.caCertPem, { name: 'own' }), /kmipd's own CA/);
  t.throws(() => addPinnedCert(data, pin.certPem + shortLived.certPem, { name: 'two' }), /holds 2 certificates/);
  t.throws(() => addPinnedCert(data, 'not a certificate', { name: 'junk' }), /neither a PEM nor a DER/);
  const expired = (await makeCert('old', { from: -10 * DAY, to: -DAY })).certPem;
  t.throws(() => addPinnedCert(data, expired, { name: 'old' }), /expired on/);
  const notYet = (await makeCert('later', { from: DAY })).certPem;
  t.throws(() => addPinnedCert(data, notYet, { name: 'later' }), /not valid before/);
  const serverAuth = (await makeCert('srv', { profile: { ...LEAF, extKeyUsage: ['1.3.6.1.5.5.7.3.1'] } })).certPem;
  t.throws(() => addPinnedCert(data, serverAuth, { name: 'srv' }), /clientAuth/);
  for (const bad of ['', 'kmipd-ca', 'a\nb', 'x'.repeat(65)]) t.throws(() => addPinnedCert(data, pin.certPem, { name: bad }), TrustError, `name ${JSON.stringify(bad)}`);

  const index = JSON.parse(readFileSync(trustPaths(data).index, 'utf8')) as { format: number; entries: { name: string }[] };
  t.equal(index.format, 1);
  t.same(index.entries.map((e) => e.name), ['vCenter Root', 'vcenter-pinned', 'short']);
  t.equal(statSync(trustPaths(data).index).mode & 0o777, 0o644);
  t.notOk(existsSync(trustPaths(data).lock), 'lock released');

  const items = listTrust(data);
  t.same(items.map((i) => [i.name, i.kind, i.status]), [
    ['kmipd-ca', 'kmipd-ca', 'ok'],
    ['vCenter Root', 'ca', 'ok'],
    ['vcenter-pinned', 'pinned', 'ok'],
    ['short', 'pinned', 'expiring'],
  ]);
  t.equal(items[3]?.daysLeft, 4);
  const warnings = expiryWarnings(items);
  t.equal(warnings.length, 1);
  t.match(warnings[0], /pinned certificate short \(CN=short\) expires on .* \(in 4 days\)/);
  t.same(expiryWarnings(listTrust(data, new Date(Date.now() + 6 * DAY))).length, 1, 'expired later');
  t.match(expiryWarnings(listTrust(data, new Date(Date.now() + 6 * DAY)))[0], /expired on/);

  t.throws(() => removeTrust(data, 'kmipd-ca'), /cannot be removed/);
  t.throws(() => removeTrust(data, 'nope'), /nothing trusted is named "nope" \(names: vCenter Root, vcenter-pinned, short\)/);
  t.equal(removeTrust(data, 'short').name, 'short');
  t.same(listTrust(data).map((i) => i.name), ['kmipd-ca', 'vCenter Root', 'vcenter-pinned']);
});

t.test('a stale lock is taken over; a newer or broken store is refused', async (t) => {
  const data = join(tempDir(t), 'data');
  await ensureServerPki(data, {});
  const pin = await makeCert('p');
  addPinnedCert(data, pin.certPem, { name: 'p' });
  const { lock, index } = trustPaths(data);
  writeFileSync(lock, '');
  const old = new Date(Date.now() - 60_000);
  utimesSync(lock, old, old);
  t.equal(removeTrust(data, 'p').name, 'p', 'a lock left 60 s ago by a crashed command is stale');

  writeFileSync(index, JSON.stringify({ format: 2, entries: [] }));
  t.throws(() => listTrust(data), /newer kmipd/);
  writeFileSync(index, '{"format": 1, "entries": [{"kind": "pinned"}]}');
  t.throws(() => listTrust(data), /malformed/);
  writeFileSync(index, '{');
  t.throws(() => loadTrustSnapshot(data, readFileSync(join(data, 'pki', 'ca.crt'), 'utf8')), /not valid JSON/);
});

t.test('verifyClient: pinned by fingerprint, or a chain to a trusted CA; dates and EKU', async (t) => {
  const data = join(tempDir(t), 'data');
  const pki = await ensureServerPki(data, {});
  const kmipdCa = { certPem: pki.caCertPem, keyPem: pki.caKeyPem };
  const vcRoot = await makeCert('vCenter Root', { profile: CA, to: 100 * DAY });
  const pin = await makeCert('vcenter-self', { profile: CA, to: 50 * DAY });
  const untrusted = await makeCert('untrusted CA', { profile: CA });
  const pinnedLeaf = await makeCert('vc-leaf', { issuer: untrusted });
  addTrustedCa(data, vcRoot.certPem);
  addPinnedCert(data, pin.certPem, { name: 'vcenter-pinned' });

  let snap = loadTrustSnapshot(data, pki.caCertPem);
  t.ok(snap.handshakeVerifiable, 'every entry self-signed: OpenSSL can verify in the handshake');
  t.equal(snap.caPems.length, 3, 'kmipd CA, trusted CA and pinned certificate go to the TLS ca list');

  const own = new X509Certificate((await issueClientCert(kmipdCa, { commonName: 'alice' })).certPem);
  t.same(verifyClient(snap, own), { ok: true, name: 'alice', via: 'ca', trustedBy: 'kmipd-ca' });
  const fromRoot = await makeCert('vc-foreign', { issuer: vcRoot, to: 200 * DAY });
  t.same(verifyClient(snap, fromRoot.x), { ok: true, name: 'vc-foreign', via: 'ca', trustedBy: 'vCenter Root' });
  t.same(verifyClient(snap, pin.x), { ok: true, name: 'vcenter-pinned', via: 'pinned', trustedBy: 'vcenter-pinned' });

  const later = new Date(Date.now() + 150 * DAY);
  t.match(verifyClient(snap, fromRoot.x, later), { ok: false, reason: /neither pinned nor issued by a trusted CA/ }, 'its CA has expired by then');
  t.match(verifyClient(snap, pin.x, later), { ok: false, reason: /client certificate expired/ }, 'the pinned certificate has expired by then');
  t.match(verifyClient(snap, own, new Date(Date.now() - 2 * DAY)), { ok: false, reason: /not valid before/ });

  const childOfPin = await makeCert('vcenter-self', { issuer: pin });
  t.match(verifyClient(snap, childOfPin.x), { ok: false }, 'signed by the pinned certificate: refused');
  t.match(verifyClient(snap, (await makeCert('mallory')).x), { ok: false }, 'unknown self-signed: refused');
  t.match(verifyClient(snap, pinnedLeaf.x), { ok: false }, 'not pinned yet');
  const serverOnly = await makeCert('vc-srv', { issuer: vcRoot, profile: { ...LEAF, extKeyUsage: ['1.3.6.1.5.5.7.3.1'] } });
  t.match(verifyClient(snap, serverOnly.x), { ok: false, reason: /clientAuth/ });
  const anyEku = await makeCert('vc-any', { issuer: vcRoot, profile: { ...LEAF, extKeyUsage: ['2.5.29.37.0'] } });
  t.match(verifyClient(snap, anyEku.x), { ok: true, name: 'vc-any' });

  addPinnedCert(data, pinnedLeaf.certPem, { name: 'vcenter-leaf' });
  snap = loadTrustSnapshot(data, pki.caCertPem);
  t.notOk(snap.handshakeVerifiable, 'a pin from an unknown CA: the handshake cannot verify it');
  t.same(verifyClient(snap, pinnedLeaf.x), { ok: true, name: 'vcenter-leaf', via: 'pinned', trustedBy: 'vcenter-leaf' });
  t.match(verifyClient(snap, (await makeCert('vc-leaf', { issuer: untrusted })).x), { ok: false }, 'its sibling is not pinned');

  removeTrust(data, 'vCenter Root');
  snap = loadTrustSnapshot(data, pki.caCertPem);
  t.match(verifyClient(snap, fromRoot.x), { ok: false }, 'removed CA: refused');
});
