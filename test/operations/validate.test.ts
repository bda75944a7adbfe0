/**
 * Validate (validate.ts): certificate chains made here with kmipd's PKI code (src/pki) and
 * node:crypto keys; the answer is the Validity Indicator.
 */
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { buildCertificate, commonNameDer, keyIdentifier, randomSerial, type CertProfile } from '../../src/pki/build.js';
import { forge } from '../../src/pki/forge.js';
import { issueClientCert } from '../../src/pki/issue.js';
import { addTrustedCa, removeTrust } from '../../src/pki/trust.js';
import { generateKey, type GeneratedKey } from '../../src/pki/keys.js';
import { Enums, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { FAILED, OK, OP, enumValue, reason, revokePayload, text, uidNode, notFound } from './_keys.js';

const VI = Enums.ValidityIndicator;
const DAY = 86_400_000;

interface Made {
  der: Buffer;
  key: GeneratedKey;
  name: Buffer;
}

const CA: CertProfile = { ca: true, keyUsage: ['keyCertSign', 'cRLSign'] };
const LEAF: CertProfile = { ca: false, keyUsage: ['digitalSignature'] };

/** A certificate for a new RSA key, signed by `issuer` (self-signed without one). */
async function make(cn: string, profile: CertProfile, issuer?: Made, dates?: { notBefore: Date; notAfter: Date }): Promise<Made> {
  const key = await generateKey('rsa');
  const name = commonNameDer(cn);
  const signerKey = issuer ? issuer.key : key;
  const der = buildCertificate(
    {
      serial: randomSerial(),
      issuerDer: issuer ? issuer.name : name,
      subjectDer: name,
      spkiDer: key.spkiDer,
      notBefore: dates?.notBefore ?? new Date(Date.now() - DAY),
      notAfter: dates?.notAfter ?? new Date(Date.now() + 30 * DAY),
      profile,
      authorityKeyId: keyIdentifier(signerKey.spkiDer),
    },
    forge.pki.privateKeyFromPem(signerKey.keyPem),
  );
  return { der, key, name };
}

function certNode(der: Uint8Array): TtlvNode {
  return T.struct(Tag.Certificate, [T.enum(Tag.CertificateType, Enums.CertificateType.X_509), T.bytes(Tag.CertificateValue, der)]);
}

async function register(engine: Engine, der: Uint8Array, identity = 'alice', version: KmipVersion = '2.1'): Promise<string> {
  const attrs = version.startsWith('2.') ? [T.struct(Tag.Attributes, [])] : [];
  const r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, Enums.ObjectType.Certificate), ...attrs, certNode(der)], { version, identity });
  if (r.status !== OK) throw new Error(`Register failed: ${r.reason} ${r.message}`);
  return text(r.payload, Tag.UniqueIdentifier)!;
}

async function validate(engine: Engine, items: TtlvNode[], opts: { version?: KmipVersion; identity?: string; at?: Date } = {}) {
  const payload = [...items];
  if (opts.at) payload.push(T.date(Tag.ValidityDate, BigInt(Math.floor(opts.at.getTime() / 1000))));
  return engine.call(OP.Validate, payload, { version: opts.version ?? '2.1', identity: opts.identity ?? 'alice' });
}

async function indicator(engine: Engine, items: TtlvNode[], opts: { version?: KmipVersion; identity?: string; at?: Date } = {}): Promise<number | undefined> {
  const r = await validate(engine, items, opts);
  if (r.status !== OK) throw new Error(`Validate failed: ${r.reason} ${r.message}`);
  return enumValue(r.payload, Tag.ValidityIndicator);
}

t.test('Validate', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const root = await make('Validate Root', CA);
  const inter = await make('Validate Inter', CA, root);
  const leaf = await make('Validate Leaf', LEAF, inter);

  await t.test('a chain to a root the client keeps in kmipd is Valid, in 1.x and 2.x, in any order', async (t) => {
    for (const version of ['1.0', '1.4', '2.0', '2.1'] as const) {
      const rootUid = await register(engine, root.der, 'alice', version);
      t.equal(await indicator(engine, [certNode(leaf.der), certNode(inter.der), uidNode(rootUid)], { version }), VI.Valid, version);
      t.equal(await indicator(engine, [certNode(inter.der), uidNode(rootUid), certNode(leaf.der)], { version }), VI.Valid, `${version} shuffled`);
    }
    const [rootUid, interUid, leafUid] = [await register(engine, root.der), await register(engine, inter.der), await register(engine, leaf.der)];
    t.equal(await indicator(engine, [uidNode(leafUid), uidNode(interUid), uidNode(rootUid)]), VI.Valid, 'all by Unique Identifier');
    t.equal(await indicator(engine, [uidNode(rootUid)]), VI.Valid, 'the stored root alone');
  });

  await t.test('a certificate kmipd\'s own CA issued is Valid; the same inline root made elsewhere is not trusted', async (t) => {
    const ca = { certPem: engine.state.pki.caCertPem, keyPem: engine.state.pki.caKeyPem };
    const client = new X509Certificate((await issueClientCert(ca, { commonName: 'vc-1' })).certPem);
    const kmipdCa = new X509Certificate(ca.certPem);
    t.equal(await indicator(engine, [certNode(client.raw)]), VI.Valid, 'leaf alone, kmipd CA as anchor');
    t.equal(await indicator(engine, [certNode(client.raw), certNode(kmipdCa.raw)]), VI.Valid, 'with kmipd CA inline');
    t.equal(await indicator(engine, [certNode(leaf.der), certNode(inter.der), certNode(root.der)]), VI.Unknown, 'inline self-signed root: Unknown');
    t.equal(await indicator(engine, [certNode(leaf.der), certNode(inter.der)]), VI.Unknown, 'no root: Unknown');
    t.equal(await indicator(engine, [certNode(root.der)]), VI.Unknown, 'an inline self-signed certificate alone: Unknown');
  });

  await t.test('a CA added to kmipd\'s client trust store is an anchor while it is there', async (t) => {
    const ext = await make('Validate External CA', CA);
    const extLeaf = await make('Validate External Leaf', LEAF, ext);
    t.equal(await indicator(engine, [certNode(extLeaf.der)]), VI.Unknown, 'before');
    addTrustedCa(engine.dataDir, ext.der, { name: 'validate-ext' });
    t.equal(await indicator(engine, [certNode(extLeaf.der)]), VI.Valid, 'trusted');
    t.equal(await indicator(engine, [certNode(extLeaf.der), certNode(ext.der)]), VI.Valid, 'with the CA inline');
    removeTrust(engine.dataDir, 'validate-ext');
    t.equal(await indicator(engine, [certNode(extLeaf.der)]), VI.Unknown, 'removed');
  });

  await t.test('a broken signature is Invalid', async (t) => {
    const rootUid = await register(engine, root.der);
    const bad = Buffer.from(leaf.der);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0x01; // the last octet of the signature BIT STRING
    t.ok(new X509Certificate(bad), 'still parses');
    t.equal(await indicator(engine, [certNode(bad), certNode(inter.der), uidNode(rootUid)]), VI.Invalid);
    // A certificate whose issuer name matches but was signed by another key.
    const impostor = await make('Validate Inter', CA);
    const forged = await make('Validate Leaf', LEAF, impostor);
    t.equal(await indicator(engine, [certNode(forged.der), certNode(inter.der), uidNode(rootUid)]), VI.Invalid, 'issuer name right, key wrong');
  });

  await t.test('dates: every certificate must be valid at the Validity Date (now by default)', async (t) => {
    const rootUid = await register(engine, root.der);
    const chain = [certNode(leaf.der), certNode(inter.der), uidNode(rootUid)];
    t.equal(await indicator(engine, chain, { at: new Date(Date.now() + 10 * DAY) }), VI.Valid, 'within');
    t.equal(await indicator(engine, chain, { at: new Date(Date.now() + 60 * DAY) }), VI.Invalid, 'after notAfter');
    t.equal(await indicator(engine, chain, { at: new Date(Date.now() - 2 * DAY) }), VI.Invalid, 'before notBefore');
    const expired = await make('Validate Old', LEAF, inter, { notBefore: new Date(Date.now() - 20 * DAY), notAfter: new Date(Date.now() - 10 * DAY) });
    t.equal(await indicator(engine, [certNode(expired.der), certNode(inter.der), uidNode(rootUid)]), VI.Invalid, 'expired now');
    t.equal(await indicator(engine, [certNode(expired.der), certNode(inter.der), uidNode(rootUid)], { at: new Date(Date.now() - 15 * DAY) }), VI.Invalid, 'its issuer was not valid yet');
  });

  await t.test('not one chain, or an issuer that is not a CA, is Invalid', async (t) => {
    const rootUid = await register(engine, root.der);
    t.equal(await indicator(engine, [certNode(leaf.der), uidNode(rootUid)]), VI.Invalid, 'missing intermediate');
    const other = await make('Validate Other', LEAF, inter);
    t.equal(await indicator(engine, [certNode(leaf.der), certNode(other.der), certNode(inter.der), uidNode(rootUid)]), VI.Invalid, 'two leaves');
    const underLeaf = await make('Validate Under Leaf', LEAF, leaf);
    t.equal(await indicator(engine, [certNode(underLeaf.der), certNode(leaf.der), certNode(inter.der), uidNode(rootUid)]), VI.Invalid, 'a non-CA issuer');
  });

  await t.test('a compromised stored certificate is Invalid', async (t) => {
    const rootUid = await register(engine, root.der);
    const r = await engine.call(OP.Revoke, revokePayload(rootUid, Enums.RevocationReasonCode.KeyCompromise, BigInt(Math.floor(Date.now() / 1000))), { version: '2.1' });
    t.equal(r.status, OK, r.message ?? "revoked");
    t.equal(await indicator(engine, [certNode(leaf.der), certNode(inter.der), uidNode(rootUid)]), VI.Invalid);
  });

  await t.test('refusals', async (t) => {
    const bobRoot = await register(engine, root.der, 'bob');
    let r = await validate(engine, [certNode(leaf.der), certNode(inter.der), uidNode(bobRoot)]);
    t.equal(r.status, FAILED);
    t.equal(r.reason, notFound('2.1'), 'another identity\'s certificate');
    r = await validate(engine, [certNode(leaf.der), certNode(inter.der), uidNode(bobRoot)], { identity: 'bob' });
    t.equal(enumValue(r.payload, Tag.ValidityIndicator), VI.Valid, 'its owner may use it');
    r = await validate(engine, []);
    t.equal(r.reason, reason('MissingData'), 'nothing to validate');
    r = await validate(engine, [T.struct(Tag.Certificate, [T.enum(Tag.CertificateType, Enums.CertificateType.X_509), T.bytes(Tag.CertificateValue, Buffer.from('not a certificate'))])]);
    t.equal(r.reason, reason('InvalidField'), 'not a certificate');
    const key = await engine.call(OP.Create, [T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey), T.struct(Tag.Attributes, [T.enum(Tag.CryptographicAlgorithm, Enums.CryptographicAlgorithm.AES), T.int(Tag.CryptographicLength, 128), T.int(Tag.CryptographicUsageMask, 12)])], { version: '2.1' });
    r = await validate(engine, [uidNode(text(key.payload, Tag.UniqueIdentifier)!)]);
    t.equal(r.reason, reason('IllegalObjectType'), 'a key is not a certificate');
  });

  await t.test('Query lists Validate', async (t) => {
    const r = await engine.call(OP.Query, [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryOperations)], { version: '2.1' });
    t.ok(r.payload?.value.some((c) => c.tag === Tag.Operation && c.value === OP.Validate));
  });
});
