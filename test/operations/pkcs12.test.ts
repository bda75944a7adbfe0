/**
 * PKCS#12: the container (src/pki/pkcs12.ts) read back by OpenSSL through node:tls and by
 * kmipd, a file made by `openssl pkcs12` the old way (3DES, SHA-1 MAC) opened, a wrong password
 * refused; Get in Key Format Type PKCS#12 (src/operations/pkcs12.ts) with the chain its PKCS#12
 * Certificate Links name and the password its PKCS#12 Password Link names.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import t from 'tap';
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { linkNode } from '../../src/operations/lifecycle.js';
import { createCA, issueClientCert } from '../../src/pki/index.js';
import { buildPkcs12, KEY_ITERATIONS, MAX_ITERATIONS, Pkcs12Error, readPkcs12 } from '../../src/pki/pkcs12.js';
import { Enums, Masks, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { need, opensslCli } from '../helpers/requirements.js';
import { ALG, FAILED, KFT, OK, OP, a, activation, child, get, keyBlock, mask, nowS, reason, template, text } from './_keys.js';

const OT = Enums.ObjectType;
const LT = Enums.LinkType;
const M = Masks.CryptographicUsageMask;
const PASSWORD = Buffer.from('correct horse');

interface Chain {
  key: KeyObject;
  leaf: Buffer;
  ca: Buffer;
}

async function makeChain(): Promise<Chain> {
  const ca = await createCA({ commonName: 'kmipd PKCS#12 test root' });
  const leaf = await issueClientCert(ca, { commonName: 'pkcs12-leaf' });
  return {
    key: createPrivateKey(leaf.keyPem),
    leaf: Buffer.from(new X509Certificate(leaf.certPem).raw),
    ca: Buffer.from(new X509Certificate(ca.certPem).raw),
  };
}

function pkcs8(key: KeyObject): Buffer {
  return key.export({ type: 'pkcs8', format: 'der' });
}

function kindOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof Pkcs12Error ? e.kind : `not a Pkcs12Error: ${(e as Error).message}`;
  }
  return undefined;
}

t.test('the container: OpenSSL reads what kmipd writes, kmipd reads it back, a wrong password is refused', async (t) => {
  const c = await makeChain();
  const pfx = await buildPkcs12({ key: c.key, certificates: [c.leaf, c.ca], password: PASSWORD, friendlyName: 'my key ✓' });
  // OpenSSL (through node:tls) checks the MAC, decrypts the key and pairs it with the certificate.
  t.doesNotThrow(() => createSecureContext({ pfx, passphrase: PASSWORD.toString() }), 'OpenSSL opens it');
  t.throws(() => createSecureContext({ pfx, passphrase: 'wrong' }), 'OpenSSL refuses another password');
  const back = readPkcs12(pfx, PASSWORD);
  t.same(pkcs8(back.key), pkcs8(c.key), 'the same private key');
  t.same(back.certificates.map((x) => x.der), [c.leaf, c.ca], 'the chain, leaf first');
  t.equal(back.friendlyName, 'my key ✓', 'the friendly name (BMPString)');
  t.equal(kindOf(() => readPkcs12(pfx, Buffer.from('wrong'))), 'password');
  const damaged = Buffer.from(pfx);
  damaged[damaged.length - 40]! ^= 1;
  t.ok(kindOf(() => readPkcs12(damaged, PASSWORD)) !== undefined, 'a damaged file is refused');
  t.equal(kindOf(() => readPkcs12(Buffer.from('not a pkcs12'), PASSWORD)), 'format');
  // The key bag is PBES2: PBKDF2-HMAC-SHA256, KEY_ITERATIONS, AES-256-CBC; the MAC HMAC-SHA256.
  const hex = pfx.toString('hex');
  t.ok(hex.includes('06096086480165030401' + '2a'), 'AES-256-CBC');
  t.ok(hex.includes('06082a864886f70d0209'), 'hmacWithSHA256 (the PBKDF2 PRF)');
  t.ok(hex.includes('0203' + KEY_ITERATIONS.toString(16).padStart(6, '0')), `${KEY_ITERATIONS} PBKDF2 iterations`);
  t.ok(hex.includes('0609608648016503040201'), 'SHA-256 (the MAC)');
  const keyOnly = await buildPkcs12({ key: c.key, certificates: [], password: PASSWORD });
  t.same(pkcs8(readPkcs12(keyOnly, PASSWORD).key), pkcs8(c.key), 'a key without certificates');
});

t.test('a PKCS#12 made the old way by openssl (3DES key and certificates, SHA-1 MAC)', async (t) => {
  if (!need(t, opensslCli())) return;
  const c = await makeChain();
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-p12-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'key.pem'), c.key.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'certs.pem'), new X509Certificate(c.leaf).toString() + new X509Certificate(c.ca).toString());
  const r = spawnSync('openssl', [
    'pkcs12', '-export', '-inkey', join(dir, 'key.pem'), '-in', join(dir, 'certs.pem'), '-name', 'legacy',
    '-keypbe', 'PBE-SHA1-3DES', '-certpbe', 'PBE-SHA1-3DES', '-macalg', 'sha1', '-passout', `pass:${PASSWORD.toString()}`, '-out', join(dir, 'x.p12'),
  ]);
  t.equal(r.status, 0, r.stderr.toString());
  const p12 = readFileSync(join(dir, 'x.p12'));
  const back = readPkcs12(p12, PASSWORD);
  t.same(pkcs8(back.key), pkcs8(c.key), 'the key (3DES shrouded key bag, node:crypto)');
  t.same(back.certificates.map((x) => x.der), [c.leaf, c.ca], 'the certificates (3DES encrypted data)');
  t.equal(back.friendlyName, 'legacy');
  t.equal(kindOf(() => readPkcs12(p12, Buffer.from('nope'))), 'password');
  // A file asking for more key-derivation work than kmipd does on the request path.
  const heavy = spawnSync('openssl', [
    'pkcs12', '-export', '-inkey', join(dir, 'key.pem'), '-in', join(dir, 'certs.pem'), '-iter', String(MAX_ITERATIONS + 1),
    '-passout', `pass:${PASSWORD.toString()}`, '-out', join(dir, 'heavy.p12'),
  ]);
  t.equal(heavy.status, 0, heavy.stderr.toString());
  t.equal(kindOf(() => readPkcs12(readFileSync(join(dir, 'heavy.p12')), PASSWORD)), 'unsupported', `more than ${MAX_ITERATIONS} iterations refused`);
});

// ---------------------------------------------------------------------------------------------
// Get in Key Format Type PKCS#12

async function register(engine: Engine, version: KmipVersion, objectType: number, object: StructureNode, attrs: KmipAttribute[]): Promise<string> {
  const r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, objectType), ...template(version, attrs), object], { version });
  if (r.status !== OK) throw new Error(`Register failed: ${r.reason} ${r.message}`);
  return text(r.payload, Tag.UniqueIdentifier)!;
}

const secretData = (bytes: Buffer): StructureNode =>
  T.struct(Tag.SecretData, [
    T.enum(Tag.SecretDataType, Enums.SecretDataType.Password),
    T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.Opaque), T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, bytes)])]),
  ]);
const certificate = (der: Buffer): StructureNode =>
  T.struct(Tag.Certificate, [T.enum(Tag.CertificateType, Enums.CertificateType.X_509), T.bytes(Tag.CertificateValue, der)]);
const privateKey = (key: KeyObject): StructureNode =>
  T.struct(Tag.PrivateKey, [
    T.struct(Tag.KeyBlock, [
      T.enum(Tag.KeyFormatType, KFT.PKCS_8),
      T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, pkcs8(key))]),
      T.enum(Tag.CryptographicAlgorithm, ALG.RSA),
      T.int(Tag.CryptographicLength, key.asymmetricKeyDetails?.modulusLength ?? 0),
    ]),
  ]);
const link = (type: number, uid: string) => a('Link', linkNode(type, uid));

function pfxOf(block: StructureNode | undefined): Buffer | undefined {
  const kv = child(block, Tag.KeyValue);
  if (kv?.type === 'ByteString') return Buffer.from(kv.value);
  const m = kv?.type === 'Structure' ? kv.value.find((x) => x.tag === Tag.KeyMaterial) : undefined;
  return m?.type === 'ByteString' ? Buffer.from(m.value) : undefined;
}

t.test('Get in Key Format Type PKCS#12', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const c = await makeChain();
  const PKCS12 = [T.enum(Tag.KeyFormatType, KFT.PKCS_12)];

  for (const version of ['1.4', '2.1'] as KmipVersion[]) {
    await t.test(`KMIP ${version}: the key, its chain by PKCS#12 Certificate Links, under the linked password`, async (t) => {
      const pw = await register(engine, version, OT.SecretData, secretData(PASSWORD), [mask(M.DeriveKey), activation(nowS() - 3600n)]);
      const caUid = await register(engine, version, OT.Certificate, certificate(c.ca), []);
      const leafUid = await register(engine, version, OT.Certificate, certificate(c.leaf), [link(LT.PKCS_12CertificateLink, caUid)]);
      const keyUid = await register(engine, version, OT.PrivateKey, privateKey(c.key), [
        mask(M.Sign),
        link(LT.PKCS_12PasswordLink, pw),
        link(LT.PKCS_12CertificateLink, leafUid),
        a('PKCS#12 Friendly Name', T.text(Tag.PKCS_12FriendlyName, 'alias')),
      ]);
      const g = await get(engine, keyUid, version, PKCS12);
      t.equal(g.status, OK, g.message ?? '');
      const block = keyBlock(g.payload, Tag.PrivateKey);
      t.equal((child(block, Tag.KeyFormatType) as { value: number } | undefined)?.value, KFT.PKCS_12);
      t.equal(child(block, Tag.KeyValue)?.type, version === '2.1' ? 'Structure' : 'ByteString', 'the Key Value form of the version (TC-PKCS12-1-20 / -14)');
      const pfx = pfxOf(block)!;
      t.doesNotThrow(() => createSecureContext({ pfx, passphrase: PASSWORD.toString() }), 'OpenSSL opens it with the Secret Data password');
      const back = readPkcs12(pfx, PASSWORD);
      t.same(pkcs8(back.key), pkcs8(c.key), 'the private key');
      t.same(back.certificates.map((x) => x.der), [c.leaf, c.ca], 'leaf then root, as linked');
      t.equal(back.friendlyName, 'alias');
      t.equal(pfx.indexOf(pkcs8(c.key)), -1, 'the key is not in the clear');
    });
  }

  await t.test('a password object that is not Active: Permission Denied (1.x), Wrong Key Lifecycle State (2.x)', async (t) => {
    for (const [version, expected] of [['1.4', 'PermissionDenied'], ['2.1', 'WrongKeyLifecycleState']] as const) {
      const pw = await register(engine, version, OT.SecretData, secretData(PASSWORD), [mask(M.DeriveKey)]);
      const keyUid = await register(engine, version, OT.PrivateKey, privateKey(c.key), [mask(M.Sign), link(LT.PKCS_12PasswordLink, pw)]);
      const g = await get(engine, keyUid, version, PKCS12);
      t.equal(g.status, FAILED);
      t.equal(g.reason, reason(expected), version);
    }
  });

  await t.test('no password link; a certificate that is not the key\'s; a symmetric key', async (t) => {
    const keyUid = await register(engine, '2.1', OT.PrivateKey, privateKey(c.key), [mask(M.Sign)]);
    t.equal((await get(engine, keyUid, '2.1', PKCS12)).reason, reason('MissingData'));
    const pw = await register(engine, '2.1', OT.SecretData, secretData(PASSWORD), [mask(M.DeriveKey), activation(nowS() - 60n)]);
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const leafUid = await register(engine, '2.1', OT.Certificate, certificate(c.leaf), []);
    const wrong = await register(engine, '2.1', OT.PrivateKey, privateKey(other), [mask(M.Sign), link(LT.PKCS_12PasswordLink, pw), link(LT.PKCS_12CertificateLink, leafUid)]);
    t.equal((await get(engine, wrong, '2.1', PKCS12)).reason, reason('InvalidField'));
    const cert = await get(engine, leafUid, '2.1', PKCS12);
    t.equal(cert.status, FAILED, 'a certificate alone is not returned as PKCS#12');
  });
});

// ---------------------------------------------------------------------------------------------
// Register in Key Format Type PKCS#12

const pkcs12Key = (pfx: Buffer, asKeyValueBytes: boolean): StructureNode =>
  T.struct(Tag.PrivateKey, [
    T.struct(Tag.KeyBlock, [
      T.enum(Tag.KeyFormatType, KFT.PKCS_12),
      asKeyValueBytes ? T.bytes(Tag.KeyValue, pfx) : T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, pfx)]),
    ]),
  ]);

async function registerResult(engine: Engine, version: KmipVersion, object: StructureNode, attrs: KmipAttribute[]) {
  return engine.call(OP.Register, [T.enum(Tag.ObjectType, OT.PrivateKey), ...template(version, attrs), object], { version });
}

function linkedFrom(attrs: readonly KmipAttribute[], type: number): string | undefined {
  for (const x of attrs) {
    if (x.name !== 'Link' || x.value.type !== 'Structure') continue;
    const lt = x.value.value.find((c) => c.tag === Tag.LinkType);
    const id = x.value.value.find((c) => c.tag === Tag.LinkedObjectIdentifier);
    if (lt?.type === 'Enumeration' && lt.value === type && id?.type === 'TextString') return id.value;
  }
  return undefined;
}

t.test('Register in Key Format Type PKCS#12', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const c = await makeChain();
  const pfx = await buildPkcs12({ key: c.key, certificates: [c.leaf, c.ca], password: PASSWORD, friendlyName: 'from-the-file' });

  for (const [version, asBytes] of [['1.4', true], ['2.1', false]] as const) {
    await t.test(`KMIP ${version}: the key (as PKCS#8) and its certificates, linked`, async (t) => {
      const pw = await register(engine, version, OT.SecretData, secretData(PASSWORD), [mask(M.DeriveKey), activation(nowS() - 60n)]);
      const r = await registerResult(engine, version, pkcs12Key(pfx, asBytes), [
        mask(M.Sign),
        link(LT.PKCS_12PasswordLink, pw),
        a('PKCS#12 Friendly Name', T.text(Tag.PKCS_12FriendlyName, 'alias')),
      ]);
      t.equal(r.status, OK, r.message ?? '');
      const keyUid = text(r.payload, Tag.UniqueIdentifier)!;
      const g = await get(engine, keyUid, version);
      const block = keyBlock(g.payload, Tag.PrivateKey);
      t.equal((child(block, Tag.KeyFormatType) as { value: number }).value, KFT.PKCS_8, 'kept as PKCS#8');
      const km = (child(block, Tag.KeyValue) as StructureNode).value.find((x) => x.tag === Tag.KeyMaterial) as { value: Uint8Array };
      t.same(Buffer.from(km.value), pkcs8(c.key), 'the key from the container');
      t.equal((child(block, Tag.CryptographicLength) as { value: number }).value, 2048);

      const keyObj = await engine.store.get(keyUid);
      const leafUid = linkedFrom(keyObj!.attributes, LT.PKCS_12CertificateLink);
      t.ok(leafUid, 'a PKCS#12 Certificate Link to its certificate');
      t.equal(linkedFrom(keyObj!.attributes, LT.PKCS_12PasswordLink), pw, 'the password link kept');
      const digest = keyObj!.attributes.find((x) => x.name === 'Digest')!.value as StructureNode;
      t.equal((digest.value.find((x) => x.tag === Tag.KeyFormatType) as { value: number }).value, KFT.PKCS_8, 'the Digest is over the PKCS#8');
      const leafGet = await get(engine, leafUid!, version);
      t.same(Buffer.from((child(child(leafGet.payload, Tag.Certificate) as StructureNode, Tag.CertificateValue) as { value: Uint8Array }).value), c.leaf, 'the leaf certificate');
      const leafObj = await engine.store.get(leafUid!);
      t.equal((leafObj!.attributes.find((x) => x.name === 'PKCS#12 Friendly Name')?.value as { value: string }).value, 'from-the-file', "the certificate's friendly name from its bag");
      const caUid = linkedFrom(leafObj!.attributes, LT.PKCS_12CertificateLink);
      const caObj = await engine.store.get(caUid!);
      t.equal(caObj?.objectType, OT.Certificate, 'the root, linked from the leaf');

      // And back out as a PKCS#12: the same key and chain.
      const back = await get(engine, keyUid, version, [T.enum(Tag.KeyFormatType, KFT.PKCS_12)]);
      t.equal(back.status, OK, back.message ?? '');
      const again = readPkcs12(pfxOf(keyBlock(back.payload, Tag.PrivateKey))!, PASSWORD);
      t.same(pkcs8(again.key), pkcs8(c.key));
      t.same(again.certificates.map((x) => x.der), [c.leaf, c.ca]);
      t.equal(again.friendlyName, 'alias', "the key's own friendly name (the request's)");
    });
  }

  await t.test('the password must be Active; a wrong password is a Cryptographic Failure; nothing is kept', async (t) => {
    const total = async () => (await engine.store.count()).reduce((n, r) => n + r.n, 0);
    const before = await total();
    for (const [version, expected] of [['1.4', 'PermissionDenied'], ['2.1', 'WrongKeyLifecycleState']] as const) {
      const pw = await register(engine, version, OT.SecretData, secretData(PASSWORD), [mask(M.DeriveKey)]);
      const r = await registerResult(engine, version, pkcs12Key(pfx, version === '1.4'), [mask(M.Sign), link(LT.PKCS_12PasswordLink, pw)]);
      t.equal(r.reason, reason(expected), `${version}: Pre-Active password (TC-PKCS12-2)`);
    }
    const wrong = await register(engine, '2.1', OT.SecretData, secretData(Buffer.from('wrong')), [mask(M.DeriveKey), activation(nowS() - 60n)]);
    const r = await registerResult(engine, '2.1', pkcs12Key(pfx, false), [mask(M.Sign), link(LT.PKCS_12PasswordLink, wrong)]);
    t.equal(r.status, FAILED);
    t.equal(r.reason, reason('CryptographicFailure'));
    const none = await registerResult(engine, '2.1', pkcs12Key(pfx, false), [mask(M.Sign)]);
    t.equal(none.reason, reason('MissingData'), 'no PKCS#12 Password Link');
    t.equal(await total(), before + 3, 'only the three password objects were added');
  });

  await t.test('a PKCS#12 made by openssl with 3DES and a SHA-1 MAC', async (t) => {
    if (!need(t, opensslCli())) return;
    const dir = mkdtempSync(join(tmpdir(), 'kmipd-p12-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'key.pem'), c.key.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'certs.pem'), new X509Certificate(c.leaf).toString());
    const o = spawnSync('openssl', [
      'pkcs12', '-export', '-inkey', join(dir, 'key.pem'), '-in', join(dir, 'certs.pem'),
      '-keypbe', 'PBE-SHA1-3DES', '-certpbe', 'PBE-SHA1-3DES', '-macalg', 'sha1', '-passout', `pass:${PASSWORD.toString()}`, '-out', join(dir, 'x.p12'),
    ]);
    t.equal(o.status, 0, o.stderr.toString());
    const pw = await register(engine, '1.4', OT.SecretData, secretData(PASSWORD), [mask(M.DeriveKey), activation(nowS() - 60n)]);
    const r = await registerResult(engine, '1.4', pkcs12Key(readFileSync(join(dir, 'x.p12')), true), [mask(M.Sign), link(LT.PKCS_12PasswordLink, pw)]);
    t.equal(r.status, OK, r.message ?? '');
  });
});
