import { X509Certificate, createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import t from 'tap';
import { attributeFrom1x, attributesFrom2x, type KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Masks, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { need, vectorsDir } from '../helpers/requirements.js';
import { ALG, FAILED, OK, OP, ST, a, activation, alg, attrValue, attrValues, bytes, child, enumValue, len, nameA, nowS, reason, scalar, stored, struct, template, text, uidNode } from './_keys.js';
import { KFT, LT, OT, RC, createPair, curveParams, getBlock, keyFromBlock, linksOf, usage } from './_asymmetric.js';

const M = Masks.CryptographicUsageMask;
const DSA = Enums.DigitalSignatureAlgorithm;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The issuer and subject Name DER of a certificate, read with asn1js here. */
function names(der: Buffer): { issuer: Buffer; subject: Buffer; serial: Buffer } {
  const cert = asn1js.fromBER(der).result as asn1js.Sequence;
  const tbs = cert.valueBlock.value[0] as asn1js.Sequence;
  const f = tbs.valueBlock.value;
  const off = f[0]!.idBlock.tagClass === 3 ? 1 : 0;
  const raw = (b: asn1js.AsnType) => Buffer.from(b.valueBeforeDecodeView);
  return { serial: raw(f[off]!), issuer: raw(f[off + 2]!), subject: raw(f[off + 4]!) };
}

function certObject(der: Uint8Array): StructureNode {
  return T.struct(Tag.Certificate, [T.enum(Tag.CertificateType, Enums.CertificateType.X_509), T.bytes(Tag.CertificateValue, der)]);
}

async function registerCert(engine: Engine, version: KmipVersion, der: Uint8Array, attrs: KmipAttribute[] = []): Promise<string> {
  const r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, OT.Certificate), ...template(version, attrs), certObject(der)], { version });
  if (r.status !== OK) throw new Error(`Register failed: ${r.reason} ${r.message}`);
  return text(r.payload, Tag.UniqueIdentifier)!;
}

/** All attributes Get Attributes returns (no names) in the version's shape, as the internal model. */
async function getAllAttributes(engine: Engine, uid: string, version: KmipVersion): Promise<KmipAttribute[]> {
  const r = await engine.call(OP.GetAttributes, [uidNode(uid)], { version });
  if (r.status !== OK) throw new Error(`Get Attributes failed: ${r.reason} ${r.message}`);
  if (version.startsWith('2.')) return attributesFrom2x(struct(r.payload, Tag.Attributes)!);
  return r.payload!.value.filter((c): c is StructureNode => c.tag === Tag.Attribute && c.type === 'Structure').map((s) => attributeFrom1x(s));
}

function value(list: KmipAttribute[], name: string): TtlvNode | undefined {
  return list.find((x) => x.name === name)?.value;
}

function texts(list: KmipAttribute[], name: string): string[] {
  return list.filter((x) => x.name === name).map((x) => (x.value.type === 'TextString' ? x.value.value : ''));
}

t.test('Register Certificate', async (t) => {
  const engine = await startEngine();
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-cert-'));
  t.teardown(async () => {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });
  openssl(
    [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.der', '-outform', 'DER', '-days', '30', '-sha384',
      '-subj', '/C=US/ST=Oregon/O=Acme Corp/OU=KMIP/OU=Keys/CN=kmipd test/emailAddress=keys@example.com',
      '-addext', 'subjectAltName=DNS:kmip.example.com,IP:10.0.0.1',
    ],
    dir,
  );
  const der = readFileSync(join(dir, 'cert.der'));
  const x = new X509Certificate(der);
  const n = names(der);

  for (const version of ['1.0', '1.4', '2.1'] as const) {
    await t.test(`KMIP ${version}: attributes derived from an openssl certificate`, async (t) => {
      // Certificate Type is server-set, but clients echo it (TC-CERTATTR-1): accepted when it agrees.
      const uid = await registerCert(engine, version, der, [a('Certificate Type', T.enum(Tag.CertificateType, Enums.CertificateType.X_509)), usage(M.Verify)]);
      const g = await engine.call(OP.Get, [uidNode(uid)], { version });
      t.equal(enumValue(g.payload, Tag.ObjectType), OT.Certificate);
      t.same(bytes(struct(g.payload, Tag.Certificate), Tag.CertificateValue), der, 'Get: the DER as registered');
      const o = await stored(engine, uid);
      t.equal(o.state, ST.PreActive);
      t.equal(scalar(attrValue(o, 'Certificate Type')), Enums.CertificateType.X_509);
      t.equal(scalar(attrValue(o, 'Certificate Length')), der.length);
      t.equal(scalar(attrValue(o, 'Digital Signature Algorithm')), DSA.SHA_384WithRSAEncryption);
      t.equal(scalar(attrValue(o, 'Cryptographic Algorithm')), ALG.RSA);
      t.equal(scalar(attrValue(o, 'Cryptographic Length')), 2048);
      const id = attrValue(o, 'X.509 Certificate Identifier') as StructureNode;
      t.same(bytes(id, Tag.IssuerDistinguishedName), n.issuer, 'X.509 Certificate Identifier: issuer DER');
      t.same(bytes(id, Tag.CertificateSerialNumber), n.serial, 'X.509 Certificate Identifier: the serialNumber INTEGER');
      const subj = attrValue(o, 'X.509 Certificate Subject') as StructureNode;
      t.same(bytes(subj, Tag.SubjectDistinguishedName), n.subject);
      t.ok(bytes(subj, Tag.SubjectAlternativeName), 'subject alternative name extension value');
      t.same(bytes(attrValue(o, 'X.509 Certificate Issuer') as StructureNode, Tag.IssuerDistinguishedName), n.issuer);
      const cid = attrValue(o, 'Certificate Identifier') as StructureNode;
      const dn = 'emailAddress=keys@example.com,CN=kmipd test,OU=Keys,OU=KMIP,O=Acme Corp,ST=Oregon,C=US';
      t.equal(text(cid, Tag.Issuer), dn, 'Certificate Identifier: RFC 4514 issuer');
      t.equal(text(cid, Tag.SerialNumber), x.serialNumber.toUpperCase().replace(/^(00)+/, ''), 'serial in hex');
      const cs = attrValue(o, 'Certificate Subject') as StructureNode;
      t.equal(text(cs, Tag.CertificateSubjectDistinguishedName), dn);
      t.same(
        cs.value.filter((c) => c.tag === Tag.CertificateSubjectAlternativeName).map((c) => (c.type === 'TextString' ? c.value : '')),
        ['DNS:kmip.example.com', 'IP:10.0.0.1'],
      );
      t.same(attrValues(o, 'Certificate Subject OU').map(scalar), ['KMIP', 'Keys'], 'one instance per OU');
      t.equal(scalar(attrValue(o, 'Certificate Subject CN')), 'kmipd test');
      t.equal(scalar(attrValue(o, 'Certificate Issuer Email')), 'keys@example.com');
      t.equal(scalar(attrValue(o, 'Certificate Subject ST')), 'Oregon');
      const d = attrValue(o, 'Digest') as StructureNode;
      t.same(bytes(d, Tag.DigestValue), createHash('sha256').update(der).digest());
      t.equal(enumValue(d, Tag.KeyFormatType), KFT.Raw);

      // What each version sees.
      const seen = await getAllAttributes(engine, uid, version);
      const has = (name: string) => seen.some((x) => x.name === name);
      t.equal(has('Certificate Identifier'), version !== '2.1', 'Certificate Identifier: 1.x only');
      t.equal(has('X.509 Certificate Identifier'), version !== '1.0', 'X.509 Certificate Identifier: 1.1+');
      t.equal(has('Certificate Subject CN'), version !== '1.0', 'Certificate Subject CN: 1.4+');
      t.same(texts(seen, 'Certificate Subject OU'), version === '1.0' ? [] : ['KMIP', 'Keys']);
    });
  }

  await t.test('Certificate attributes are read-only; Locate finds certificates by them', async (t) => {
    const uid = await registerCert(engine, '2.1', der, [nameA('located-cert')]);
    const m = await engine.call(OP.ModifyAttribute, [uidNode(uid), T.struct(Tag.NewAttribute, [T.int(Tag.CertificateLength, 123)])], { version: '2.1' });
    t.equal(m.reason, reason('AttributeReadOnly'), 'BL-M-10-21: Certificate Length');
    const m2 = await engine.call(OP.AddAttribute, [uidNode(uid), T.struct(Tag.NewAttribute, [T.text(Tag.CertificateSubjectCN, 'x')])], { version: '2.1' });
    t.equal(m2.status, FAILED, 'Certificate Subject CN cannot be added');
    const r = await engine.call(OP.Locate, [T.struct(Tag.Attributes, [T.enum(Tag.ObjectType, OT.Certificate), T.text(Tag.CertificateSubjectCN, 'kmipd test'), nameA('located-cert').value])], { version: '2.1' });
    t.same(r.payload?.value.filter((c) => c.tag === Tag.UniqueIdentifier).map((c) => (c.type === 'TextString' ? c.value : '')), [uid], 'Locate by Certificate Subject CN');
  });

  await t.test('bad certificates', async (t) => {
    let r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, OT.Certificate), ...template('1.4', []), certObject(Buffer.from([0x30, 0]))]);
    t.equal(r.reason, reason('InvalidField'), 'not a certificate');
    r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, OT.Certificate), ...template('1.4', [a('Certificate Type', T.enum(Tag.CertificateType, Enums.CertificateType.PGP))]), certObject(der)]);
    t.equal(r.reason, reason('InvalidField'), 'Certificate Type attribute disagrees');
    r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, OT.Certificate), T.struct(Tag.Certificate, [T.enum(Tag.CertificateType, Enums.CertificateType.PGP), T.bytes(Tag.CertificateValue, der)])]);
    t.equal(r.reason, reason('FeatureNotSupported'), 'PGP certificates');
    r = await engine.call(OP.Get, [uidNode(await registerCert(engine, '1.4', der)), T.enum(Tag.KeyFormatType, KFT.PKCS_1)]);
    t.equal(r.reason, reason('KeyFormatTypeNotSupported'), 'no key format for a certificate');
  });

  await t.test('TC-CERTATTR-1-14 and TC-ECC-3-14: the values the test cases expect', async (t) => {
    const v = vectorsDir();
    if (!need(t, v)) return;
    const base = join(v.dir, 'cosmian-kmip/website/testcases/v1.4/cnprd01/test-cases/kmip-v1.4');
    const xml = readFileSync(join(base, 'TC-CERTATTR-1-14.xml'), 'utf8');
    const cert = Buffer.from(/<CertificateValue type="ByteString" value="([0-9a-f]+)"/.exec(xml)![1]!, 'hex');
    const uid = await registerCert(engine, '1.4', cert, [a('Certificate Type', T.enum(Tag.CertificateType, Enums.CertificateType.X_509))]);
    const seen = await getAllAttributes(engine, uid, '1.4');
    const cid = value(seen, 'Certificate Identifier') as StructureNode;
    t.equal(text(cid, Tag.Issuer), 'CN=Inter,O=Kmip Test,C=AU');
    t.equal(text(cid, Tag.SerialNumber), '3132333435363738');
    t.equal(text(value(seen, 'Certificate Issuer') as StructureNode, Tag.CertificateIssuerDistinguishedName), 'CN=Inter,O=Kmip Test,C=AU');
    t.equal(text(value(seen, 'Certificate Subject') as StructureNode, Tag.CertificateSubjectDistinguishedName), 'CN=EE,O=Kmip Test,C=AU');
    t.same(texts(seen, 'Certificate Issuer C'), ['AU']);
    t.same(texts(seen, 'Certificate Issuer CN'), ['Inter']);
    t.same(texts(seen, 'Certificate Issuer O'), ['Kmip Test']);
    t.same(texts(seen, 'Certificate Subject CN'), ['EE']);
    t.equal(scalar(value(seen, 'Certificate Length')), 557);
    t.equal(scalar(value(seen, 'Cryptographic Length')), 1024);
    t.equal(scalar(value(seen, 'Digital Signature Algorithm')), DSA.SHA_256WithRSAEncryption);
    t.equal(bytes(value(seen, 'Digest') as StructureNode, Tag.DigestValue)?.toString('hex'), 'c2afb2c05ca8690d7d9cf753c3cceb758030c29538b730bb23b77dc5ff0bbb36');
    const xid = value(seen, 'X.509 Certificate Identifier') as StructureNode;
    t.equal(bytes(xid, Tag.CertificateSerialNumber)?.toString('hex'), '02083132333435363738');
    t.equal(bytes(xid, Tag.IssuerDistinguishedName)?.toString('hex'), '3031310b300906035504061302415531123010060355040a13094b6d69702054657374310e300c06035504031305496e746572');
    t.equal(bytes(value(seen, 'X.509 Certificate Subject') as StructureNode, Tag.SubjectDistinguishedName)?.toString('hex'), '302e310b300906035504061302415531123010060355040a13094b6d69702054657374310b3009060355040313024545');

    const ecc = readFileSync(join(base, 'TC-ECC-3-14.xml'), 'utf8');
    const eccCert = Buffer.from(/<CertificateValue type="ByteString" value="([0-9a-f]+)"/.exec(ecc)![1]!, 'hex');
    const u2 = await registerCert(engine, '1.4', eccCert, [usage(M.Verify | M.Sign)]);
    const o = await stored(engine, u2);
    t.equal(scalar(attrValue(o, 'Digital Signature Algorithm')), DSA.ECDSAWithSHA256, 'ECDSAWithSHA256');
    t.equal(bytes(attrValue(o, 'X.509 Certificate Identifier') as StructureNode, Tag.CertificateSerialNumber)?.toString('hex'), '020900ec0b7402196d5295');
    t.equal(scalar(attrValue(o, 'Cryptographic Algorithm')), ALG.EC, 'secp256k1 key: EC');
  });
});

t.test('Certify', async (t) => {
  const engine = await startEngine();
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-certify-'));
  t.teardown(async () => {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The certificate DER of a Certificate object. */
  async function certDer(uid: string): Promise<Buffer> {
    const g = await engine.call(OP.Get, [uidNode(uid)], { version: '2.1' });
    return bytes(struct(g.payload, Tag.Certificate), Tag.CertificateValue)!;
  }

  async function keyPem(uid: string): Promise<string> {
    const g = await engine.call(OP.Get, [uidNode(uid), T.enum(Tag.KeyFormatType, KFT.PKCS_8)], { version: '2.1' });
    return keyFromBlock(getBlock(g.payload)!, true).export({ type: 'pkcs8', format: 'pem' }).toString();
  }

  await t.test('a PKCS#10 request for a key pair kmipd holds: self-signed, links both ways', async (t) => {
    const pair = await createPair(engine, '1.4', [alg(ALG.RSA), len(2048), activation(nowS() - 60n)], [usage(M.Sign)], [usage(M.Verify)]);
    writeFileSync(join(dir, 'leaf.key'), await keyPem(pair.priv), { mode: 0o600 });
    openssl(['req', '-new', '-key', 'leaf.key', '-subj', '/O=Acme/CN=leaf.example.com', '-outform', 'DER', '-out', 'leaf.csr'], dir);
    const csr = readFileSync(join(dir, 'leaf.csr'));
    const r = await engine.call(
      OP.Certify,
      [uidNode(pair.pub), T.enum(Tag.CertificateRequestType, Enums.CertificateRequestType.PKCS_10), T.bytes(Tag.CertificateRequest, csr), ...template('1.4', [usage(M.Verify), nameA('leaf-cert')])],
      { version: '1.4' },
    );
    t.equal(r.status, OK, r.message ?? 'Certify');
    const certUid = text(r.payload, Tag.UniqueIdentifier)!;
    const der = await certDer(certUid);
    const x = new X509Certificate(der);
    t.equal(x.subject, 'O=Acme\nCN=leaf.example.com', 'the request subject');
    t.equal(x.issuer, x.subject, 'self-issued (issuer = subject)');
    const pub = keyFromBlock(getBlock((await engine.call(OP.Get, [uidNode(pair.pub)], { version: '2.1' })).payload)!, false);
    t.ok(x.verify(pub), 'signed by the pair');
    t.ok(x.publicKey.equals(pub), 'certifies the public key');
    const c = await stored(engine, certUid);
    t.same(linksOf(attrValues(c, 'Link'), LT.PublicKeyLink), [pair.pub], 'certificate -> Public Key Link');
    t.same(linksOf(attrValues(await stored(engine, pair.pub), 'Link'), LT.CertificateLink), [certUid], 'public key -> Certificate Link');
    t.equal(scalar(attrValue(c, 'Certificate Subject CN')), 'leaf.example.com');
    t.equal(scalar(attrValue(c, 'Digital Signature Algorithm')), DSA.SHA_256WithRSAEncryption);
    t.equal(scalar(attrValue(c, 'Cryptographic Usage Mask')), M.Verify);
    t.equal(attrValues(c, 'Name').length, 1);
  });

  await t.test('a CA pair certifies itself, then a leaf named by Certificate Link (EC and RSA)', async (t) => {
    const ca = await createPair(engine, '2.1', [alg(ALG.EC), curveParams(RC.P_384), activation(nowS() - 60n)], [usage(M.Sign | M.CertificateSign)], [usage(M.Verify)]);
    let r = await engine.call(
      OP.Certify,
      [uidNode(ca.pub), T.struct(Tag.Attributes, [T.text(Tag.CertificateSubjectCN, 'kmipd test CA'), T.text(Tag.CertificateSubjectO, 'Acme'), T.int(Tag.CryptographicUsageMask, M.CertificateSign | M.CRLSign)])],
      { version: '2.1' },
    );
    t.equal(r.status, OK, r.message ?? 'Certify CA');
    const caCert = text(r.payload, Tag.UniqueIdentifier)!;
    const caX = new X509Certificate(await certDer(caCert));
    t.ok(caX.ca, 'CA: true for a Certificate Sign usage mask');
    t.equal(caX.subject, 'O=Acme\nCN=kmipd test CA');
    t.equal(scalar(attrValue(await stored(engine, caCert), 'Digital Signature Algorithm')), DSA.ECDSAWithSHA384);

    const leaf = await createPair(engine, '2.1', [alg(ALG.RSA), len(2048)], [usage(M.Sign)], [usage(M.Verify)]);
    r = await engine.call(
      OP.Certify,
      [
        uidNode(leaf.pub),
        T.struct(Tag.Attributes, [T.text(Tag.CertificateSubjectCN, 'leaf'), T.struct(Tag.Link, [T.enum(Tag.LinkType, LT.CertificateLink), T.text(Tag.LinkedObjectIdentifier, caCert)]), T.int(Tag.CryptographicUsageMask, M.Verify)]),
      ],
      { version: '2.1' },
    );
    t.equal(r.status, OK, r.message ?? 'Certify leaf');
    const leafCert = text(r.payload, Tag.UniqueIdentifier)!;
    const x = new X509Certificate(await certDer(leafCert));
    t.ok(x.checkIssued(caX), 'issued by the CA');
    t.ok(x.verify(caX.publicKey), 'signed by the CA key');
    t.notOk(x.ca);
    t.equal(x.issuer, caX.subject);
    const lc = await stored(engine, leafCert);
    t.same(linksOf(attrValues(lc, 'Link'), LT.CertificateLink), [caCert], 'the leaf keeps its parent Certificate Link');
    t.same(linksOf(attrValues(lc, 'Link'), LT.PublicKeyLink), [leaf.pub]);
    t.equal(scalar(attrValue(lc, 'Certificate Issuer CN')), 'kmipd test CA');
  });

  await t.test('Re-certify: same key and issuer, Replacement / Replaced links, names moved, the public key relinked', async (t) => {
    const pair = await createPair(engine, '1.4', [alg(ALG.EC), len(256)], [usage(M.Sign)], [usage(M.Verify)]);
    let r = await engine.call(OP.Certify, [uidNode(pair.pub), ...template('1.4', [a('Certificate Subject CN', T.text(Tag.CertificateSubjectCN, 'first')), nameA('cert-1'), usage(M.Verify)])], { version: '1.4' });
    t.equal(r.status, OK, r.message ?? 'Certify');
    const first = text(r.payload, Tag.UniqueIdentifier)!;
    r = await engine.call(OP.ReCertify, [uidNode(first), ...template('1.4', [nameA('cert-2')])], { version: '1.4' });
    t.equal(r.status, OK, r.message ?? 'Re-certify');
    const second = text(r.payload, Tag.UniqueIdentifier)!;
    const [o1, o2, pub] = await Promise.all([stored(engine, first), stored(engine, second), stored(engine, pair.pub)]);
    t.same(linksOf(attrValues(o2, 'Link'), LT.PublicKeyLink), [pair.pub]);
    t.same(linksOf(attrValues(o2, 'Link'), LT.ReplacedObjectLink), [first]);
    t.same(linksOf(attrValues(o1, 'Link'), LT.ReplacementObjectLink), [second]);
    t.same(linksOf(attrValues(pub, 'Link'), LT.CertificateLink), [second], 'the public key links to the replacement only');
    t.same(attrValues(o2, 'Name').map((v) => text(v as StructureNode, Tag.NameValue)), ['cert-2', 'cert-1'], 'names: the request\'s, then the moved ones');
    t.same(attrValues(o1, 'Name'), []);
    t.equal(scalar(attrValue(o2, 'Certificate Subject CN')), 'first', 'same subject');
    t.equal(scalar(attrValue(o2, 'Cryptographic Usage Mask')), M.Verify, 'attributes copied');
    const x1 = new X509Certificate(await certDer(first));
    const x2 = new X509Certificate(await certDer(second));
    t.not(x1.serialNumber, x2.serialNumber, 'a new certificate');
    t.ok(x2.publicKey.equals(x1.publicKey), 'for the same key');
  });

  await t.test('refusals', async (t) => {
    const preActive = await createPair(engine, '2.1', [alg(ALG.RSA), len(1024)], [usage(M.CertificateSign)]);
    let r = await engine.call(OP.Certify, [uidNode(preActive.pub), T.struct(Tag.Attributes, [T.text(Tag.CertificateSubjectCN, 'pre-active CA')])], { version: '2.1' });
    t.equal(r.status, OK, 'a Pre-Active pair may certify itself');
    const preCert = text(r.payload, Tag.UniqueIdentifier)!;
    const leaf = await createPair(engine, '2.1', [alg(ALG.RSA), len(1024)]);
    const byLink = T.struct(Tag.Link, [T.enum(Tag.LinkType, LT.CertificateLink), T.text(Tag.LinkedObjectIdentifier, preCert)]);
    r = await engine.call(OP.Certify, [uidNode(leaf.pub), T.struct(Tag.Attributes, [T.text(Tag.CertificateSubjectCN, 'x'), byLink])], { version: '2.1' });
    t.equal(r.reason, reason('WrongKeyLifecycleState'), "an issuer's key must be Active");
    const noSign = await createPair(engine, '2.1', [alg(ALG.RSA), len(1024)], [usage(M.Decrypt)]);
    r = await engine.call(OP.Certify, [uidNode(noSign.pub), T.struct(Tag.Attributes, [T.text(Tag.CertificateSubjectCN, 'x')])], { version: '2.1' });
    t.equal(r.reason, reason('IncompatibleCryptographicUsageMask'), 'a key that may not sign');
    r = await engine.call(OP.Certify, [uidNode(preActive.pub)], { version: '2.1' });
    t.equal(r.reason, reason('MissingData'), 'no subject');
    const lone = createPublicKey(createPrivateKey(readFileSync(join(dir, 'leaf.key'))));
    const spki = T.bytes(Tag.KeyMaterial, lone.export({ type: 'spki', format: 'der' }));
    const reg = await engine.call(OP.Register, [T.enum(Tag.ObjectType, OT.PublicKey), T.struct(Tag.PublicKey, [T.struct(Tag.KeyBlock, [T.enum(Tag.KeyFormatType, KFT.X_509), T.struct(Tag.KeyValue, [spki])])])], { version: '2.1' });
    const pubOnly = text(reg.payload, Tag.UniqueIdentifier)!;
    r = await engine.call(OP.Certify, [uidNode(pubOnly), T.struct(Tag.Attributes, [T.text(Tag.CertificateSubjectCN, 'x')])], { version: '2.1' });
    t.equal(r.reason, reason('MissingData'), 'no issuer: no private key and no Certificate Link');
    r = await engine.call(OP.Certify, [uidNode(pubOnly), T.enum(Tag.CertificateRequestType, Enums.CertificateRequestType.PKCS_10), T.bytes(Tag.CertificateRequestValue, Buffer.from('3000', 'hex'))], { version: '2.1' });
    t.equal(r.reason, reason('InvalidCSR'), 'a bad request');
    r = await engine.call(OP.Certify, [uidNode(preActive.priv), T.struct(Tag.Attributes, [T.text(Tag.CertificateSubjectCN, 'x')])], { version: '2.1' });
    t.equal(r.reason, reason('IllegalObjectType'), 'a private key is not certified');
  });
});

void ST;
void RC;
