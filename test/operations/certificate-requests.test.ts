/**
 * Certificate Request objects (certificate-requests.ts): Register, Get, Get Attributes, Query
 * Objects, refusal of a request whose signature does not verify, and Certify naming a stored
 * request by Certificate Request Unique Identifier. Requests are made here with node:crypto keys,
 * assembled and signed with node-forge.
 */
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { attributesFrom2x } from '../../src/codec/attributes.js';
import { forge } from '../../src/pki/forge.js';
import { generateKey } from '../../src/pki/keys.js';
import { Enums, Masks, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type TtlvNode } from '../../src/ttlv/index.js';
import { startEngine, type Engine } from '../helpers/engine.js';
import { ALG, FAILED, OK, OP, activation, alg, bytes, enumValue, len, nowS, reason, struct, text, uidNode, notFound } from './_keys.js';
import { KFT, createPair, getBlock, keyFromBlock, usage } from './_asymmetric.js';

const OT = Enums.ObjectType;
const CRT = Enums.CertificateRequestType;
const M = Masks.CryptographicUsageMask;

/** A PKCS#10 request for the key in `keyPem` (PKCS#8), subject CN=cn: its DER and PEM. */
function makeCsr(keyPem: string, cn: string): { der: Buffer; pem: string } {
  const priv = forge.pki.privateKeyFromPem(keyPem);
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(priv.n, priv.e);
  csr.setSubject([{ name: 'commonName', value: cn }]);
  csr.sign(priv, forge.md.sha256.create());
  const pem = forge.pki.certificationRequestToPem(csr);
  const der = Buffer.from(forge.asn1.toDer(forge.pki.certificationRequestToAsn1(csr)).getBytes(), 'binary');
  return { der, pem };
}

function requestObject(type: number, value: Uint8Array): TtlvNode {
  return T.struct(Tag.CertificateRequest, [T.enum(Tag.CertificateRequestType, type), T.bytes(Tag.CertificateRequestValue, value)]);
}

async function registerRequest(engine: Engine, type: number, value: Uint8Array, version: KmipVersion = '2.1', attrs: TtlvNode[] = []) {
  return engine.call(OP.Register, [T.enum(Tag.ObjectType, OT.CertificateRequest), T.struct(Tag.Attributes, attrs), requestObject(type, value)], { version });
}

t.test('Certificate Request objects', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.close());
  const key = await generateKey('rsa');
  const csr = makeCsr(key.keyPem, 'csr.example.com');

  await t.test('Register and Get return it as registered (PKCS_10 and PEM), in 2.0 and 2.1', async (t) => {
    for (const version of ['2.0', '2.1'] as const) {
      for (const [type, value] of [
        [CRT.PKCS_10, csr.der],
        [CRT.PEM, Buffer.from(csr.pem, 'latin1')],
      ] as const) {
        const name = `csr-${version}-${type}`;
        const r = await registerRequest(engine, type, value, version, [T.struct(Tag.Name, [T.text(Tag.NameValue, name), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)])]);
        t.equal(r.status, OK, `${version} register ${r.message ?? ''}`);
        const uid = text(r.payload, Tag.UniqueIdentifier)!;
        const g = await engine.call(OP.Get, [uidNode(uid)], { version });
        t.equal(g.status, OK);
        t.equal(enumValue(g.payload, Tag.ObjectType), OT.CertificateRequest);
        const obj = struct(g.payload, Tag.CertificateRequest);
        t.equal(enumValue(obj, Tag.CertificateRequestType), type);
        t.same(bytes(obj, Tag.CertificateRequestValue), Buffer.from(value), 'the same bytes');
        const ga = await engine.call(OP.GetAttributes, [uidNode(uid)], { version });
        t.equal(ga.status, OK);
        const attrs = attributesFrom2x(struct(ga.payload, Tag.Attributes)!);
        const ot = attrs.find((x) => x.name === 'Object Type')?.value;
        t.equal(ot?.type === 'Enumeration' ? ot.value : undefined, OT.CertificateRequest, 'Object Type attribute');
        t.ok(attrs.some((x) => x.name === 'Digest'), 'a Digest');
        const loc = await engine.call(OP.Locate, [T.struct(Tag.Attributes, [T.enum(Tag.ObjectType, OT.CertificateRequest), T.struct(Tag.Name, [T.text(Tag.NameValue, name), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)])])], { version });
        t.same(loc.payload?.value.filter((c) => c.tag === Tag.UniqueIdentifier).map((c) => c.value), [uid], 'Locate by Object Type and Name');
        const fmt = await engine.call(OP.Get, [uidNode(uid), T.enum(Tag.KeyFormatType, KFT.Raw)], { version });
        t.equal(fmt.reason, reason('KeyFormatTypeNotSupported'), 'no Key Format Type applies');
      }
    }
  });

  await t.test('refusals', async (t) => {
    const bad = Buffer.from(csr.der);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0x01; // the last octet of the signature
    let r = await registerRequest(engine, CRT.PKCS_10, bad);
    t.equal(r.status, FAILED);
    t.equal(r.reason, reason('InvalidCSR'), 'a request whose signature does not verify');
    r = await registerRequest(engine, CRT.PKCS_10, Buffer.from('3000', 'hex'));
    t.equal(r.reason, reason('InvalidCSR'), 'not a request');
    r = await registerRequest(engine, CRT.CRMF, csr.der);
    t.equal(r.reason, reason('FeatureNotSupported'), 'CRMF is not read');
    r = await engine.call(OP.Register, [T.enum(Tag.ObjectType, OT.CertificateRequest), T.struct(Tag.TemplateAttribute, []), requestObject(CRT.PKCS_10, csr.der)], { version: '1.4' });
    t.equal(r.status, FAILED, 'no Certificate Request objects in 1.x');
    const count = (await engine.store.count()).filter((c) => c.objectType === OT.CertificateRequest).reduce((n, c) => n + c.n, 0);
    t.equal(count, 4, 'only the four registered above were kept');
  });

  await t.test('Query Objects lists Certificate Request in 2.x only', async (t) => {
    for (const [version, listed] of [['2.1', true], ['1.4', false]] as const) {
      const r = await engine.call(OP.Query, [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryObjects)], { version });
      t.equal(r.payload?.value.some((c) => c.tag === Tag.ObjectType && c.value === OT.CertificateRequest), listed, version);
    }
  });

  await t.test('Certify by Certificate Request Unique Identifier', async (t) => {
    const pair = await createPair(engine, '2.1', [alg(ALG.RSA), len(2048), activation(nowS() - 60n)], [usage(M.Sign)], [usage(M.Verify)]);
    const g = await engine.call(OP.Get, [uidNode(pair.priv), T.enum(Tag.KeyFormatType, KFT.PKCS_8)], { version: '2.1' });
    const pem = keyFromBlock(getBlock(g.payload)!, true).export({ type: 'pkcs8', format: 'pem' }).toString();
    const own = makeCsr(pem, 'stored-request');
    const reqUid = text((await registerRequest(engine, CRT.PKCS_10, own.der)).payload, Tag.UniqueIdentifier)!;
    let r = await engine.call(OP.Certify, [uidNode(pair.pub), T.text(Tag.CertificateRequestUniqueIdentifier, reqUid)], { version: '2.1' });
    t.equal(r.status, OK, r.message ?? 'certified');
    const cert = await engine.call(OP.Get, [uidNode(text(r.payload, Tag.UniqueIdentifier)!)], { version: '2.1' });
    const x = new X509Certificate(bytes(struct(cert.payload, Tag.Certificate), Tag.CertificateValue)!);
    t.equal(x.subject, 'CN=stored-request', 'the stored request\'s subject');

    const otherUid = text((await registerRequest(engine, CRT.PKCS_10, csr.der)).payload, Tag.UniqueIdentifier)!;
    r = await engine.call(OP.Certify, [uidNode(pair.pub), T.text(Tag.CertificateRequestUniqueIdentifier, otherUid)], { version: '2.1' });
    t.equal(r.reason, reason('InvalidCSR'), 'a request for another key');
    r = await engine.call(OP.Certify, [uidNode(pair.pub), T.text(Tag.CertificateRequestUniqueIdentifier, reqUid)], { version: '2.1', identity: 'bob' });
    t.equal(r.reason, notFound('2.1'), 'another identity\'s objects');
    r = await engine.call(OP.Certify, [uidNode(pair.pub), T.text(Tag.CertificateRequestUniqueIdentifier, pair.priv)], { version: '2.1' });
    t.equal(r.reason, reason('IllegalObjectType'), 'a key is not a Certificate Request');
    r = await engine.call(
      OP.Certify,
      [uidNode(pair.pub), T.text(Tag.CertificateRequestUniqueIdentifier, reqUid), T.enum(Tag.CertificateRequestType, CRT.PKCS_10), T.bytes(Tag.CertificateRequestValue, own.der)],
      { version: '2.1' },
    );
    t.equal(r.reason, reason('InvalidField'), 'both a stored and an inline request');
  });
});
