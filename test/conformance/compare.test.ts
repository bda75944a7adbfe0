/**
 * The conformance comparator: a response that differs where it must not (status, reason, a
 * missing attribute, a wrong value, a wrong type, a missing batch item) is caught, with the tag
 * path of the first difference; the profiles' permitted variations pass.
 */
import t from 'tap';
import { parseXml } from '../../src/codec/xml.js';
import { Enums } from '../../src/spec/index.js';
import type { TtlvNode } from '../../src/ttlv/types.js';
import { compareResponse, expectedFromXmlText, trackObjects, type CompareOptions, type Provenance } from '../../conformance/compare.js';

const V14 = '<ProtocolVersion><ProtocolVersionMajor type="Integer" value="1"/><ProtocolVersionMinor type="Integer" value="4"/></ProtocolVersion>';
const V21 = '<ProtocolVersion><ProtocolVersionMajor type="Integer" value="2"/><ProtocolVersionMinor type="Integer" value="1"/></ProtocolVersion>';

function response(items: string[], opts: { version?: string; time?: string } = {}): string {
  return (
    `<ResponseMessage><ResponseHeader>${opts.version ?? V14}<TimeStamp type="DateTime" value="${opts.time ?? '2024-01-01T00:00:00Z'}"/>` +
    `<BatchCount type="Integer" value="${items.length}"/></ResponseHeader>${items.join('')}</ResponseMessage>`
  );
}

function request(items: string[], version = V14): TtlvNode {
  return parseXml(`<RequestMessage><RequestHeader>${version}<BatchCount type="Integer" value="${items.length}"/></RequestHeader>${items.join('')}</RequestMessage>`);
}

function item(op: string, payload: string, status = 'Success', extra = ''): string {
  return `<BatchItem><Operation type="Enumeration" value="${op}"/><ResultStatus type="Enumeration" value="${status}"/>${extra}<ResponsePayload>${payload}</ResponsePayload></BatchItem>`;
}

function failed(op: string, reason: string, message?: string): string {
  return (
    `<BatchItem><Operation type="Enumeration" value="${op}"/><ResultStatus type="Enumeration" value="OperationFailed"/>` +
    `<ResultReason type="Enumeration" value="${reason}"/>${message !== undefined ? `<ResultMessage type="TextString" value="${message}"/>` : ''}</BatchItem>`
  );
}

function reqItem(op: string, payload: string): string {
  return `<BatchItem><Operation type="Enumeration" value="${op}"/><RequestPayload>${payload}</RequestPayload></BatchItem>`;
}

const uid = (v: string) => `<UniqueIdentifier type="TextString" value="${v}"/>`;
const attr = (name: string, type: string, value: string) =>
  `<Attribute><AttributeName type="TextString" value="${name}"/><AttributeValue type="${type}" value="${value}"/></Attribute>`;
const digest = (hex: string) =>
  `<Attribute><AttributeName type="TextString" value="Digest"/><AttributeValue><HashingAlgorithm type="Enumeration" value="SHA_256"/>` +
  `<DigestValue type="ByteString" value="${hex}"/><KeyFormatType type="Enumeration" value="Raw"/></AttributeValue></Attribute>`;
const symKey = (hex: string) =>
  `<SymmetricKey><KeyBlock><KeyFormatType type="Enumeration" value="Raw"/><KeyValue><KeyMaterial type="ByteString" value="${hex}"/></KeyValue>` +
  `<CryptographicAlgorithm type="Enumeration" value="AES"/><CryptographicLength type="Integer" value="128"/></KeyBlock></SymmetricKey>`;

function cmp(expectedXml: string, actualXml: string, opts: CompareOptions = {}) {
  return compareResponse(expectedFromXmlText(expectedXml), parseXml(actualXml), opts);
}

t.test('an identical response passes; the Time Stamp and Result Message may differ', (t) => {
  const e = response([item('Destroy', uid('k1'))]);
  t.ok(cmp(e, e).ok);
  const a = response([item('Destroy', uid('k1'))], { time: '2030-05-05T10:00:00Z' });
  t.ok(cmp(e, a).ok, 'another Time Stamp');
  const ef = response([failed('Get', 'ItemNotFound', 'no such object')]);
  t.ok(cmp(ef, response([failed('Get', 'ItemNotFound')])).ok, 'Result Message absent');
  t.ok(cmp(response([failed('Get', 'ItemNotFound')]), response([failed('Get', 'ItemNotFound', 'whatever text')])).ok, 'Result Message extra');
  t.end();
});

t.test('a wrong Result Status or Result Reason is caught', (t) => {
  const e = response([item('Destroy', uid('k1'))]);
  const r = cmp(e, response([failed('Destroy', 'OperationNotSupported', 'not yet')]));
  t.notOk(r.ok);
  t.equal(r.differences[0]?.path, 'ResponseMessage/BatchItem[0]/ResultStatus');
  t.equal(r.differences[0]?.expected, 'Success');
  t.match(r.differences[0]?.actual, /OperationFailed \/ OperationNotSupported \("not yet"\)/);
  const r2 = cmp(response([failed('Get', 'ItemNotFound')]), response([failed('Get', 'PermissionDenied')]));
  t.notOk(r2.ok);
  t.equal(r2.differences[0]?.path, 'ResponseMessage/BatchItem[0]/ResultReason');
  const r3 = cmp(response([failed('Get', 'PermissionDenied')]), response([item('Get', uid('k1'))]));
  t.notOk(r3.ok, 'success where a failure is expected');
  t.end();
});

t.test('a wrong value, type, tag or an extra or missing field is caught', (t) => {
  const e = response([item('Create', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('k1')}`)]);
  const wrong = cmp(e, response([item('Create', `<ObjectType type="Enumeration" value="SecretData"/>${uid('k1')}`)]));
  t.notOk(wrong.ok);
  t.equal(wrong.differences[0]?.path, 'ResponseMessage/BatchItem[0]/ResponsePayload/ObjectType');
  t.match(wrong.differences[0]?.expected, /SymmetricKey/);
  t.match(wrong.differences[0]?.actual, /SecretData/);
  const type = cmp(e, response([item('Create', `<ObjectType type="Integer" value="2"/>${uid('k1')}`)]));
  t.notOk(type.ok, 'Integer where an Enumeration is expected');
  const missing = cmp(e, response([item('Create', uid('k1'))]));
  t.notOk(missing.ok, 'a missing field');
  const extra = cmp(e, response([item('Create', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('k1')}<ObjectType type="Enumeration" value="SymmetricKey"/>`)]));
  t.notOk(extra.ok, 'an extra field');
  const op = cmp(e, response([item('Register', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('k1')}`)]));
  t.notOk(op.ok, 'another operation');
  t.end();
});

t.test('a missing or extra batch item is caught', (t) => {
  const e = response([item('Locate', uid('k1')), item('Get', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('k1')}${symKey('00112233445566778899aabbccddeeff')}`)]);
  const r = cmp(e, response([item('Locate', uid('k1'))]));
  t.notOk(r.ok);
  t.equal(r.differences[0]?.path, 'ResponseMessage/BatchItem[1]', 'the missing item comes before the Batch Count');
  t.notOk(cmp(response([item('Locate', uid('k1'))]), response([item('Locate', uid('k1')), item('Locate', uid('k1'))])).ok);
  t.end();
});

t.test('placeholders bind at first sight and must then match', (t) => {
  const e = response([item('Create', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('$UNIQUE_IDENTIFIER_0')}`)]);
  const a = response([item('Create', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('b5e1c1b2-0000-4000-8000-000000000001')}`)]);
  const first = cmp(e, a);
  t.ok(first.ok);
  t.same(first.bound.get('$UNIQUE_IDENTIFIER_0'), { type: 'TextString', value: 'b5e1c1b2-0000-4000-8000-000000000001' });
  const e2 = response([item('Destroy', uid('$UNIQUE_IDENTIFIER_0'))]);
  t.ok(cmp(e2, response([item('Destroy', uid('b5e1c1b2-0000-4000-8000-000000000001'))]), { bindings: first.bound }).ok, 'the bound value');
  const other = cmp(e2, response([item('Destroy', uid('someone-else'))]), { bindings: first.bound });
  t.notOk(other.ok, 'another identifier than the bound one');
  t.match(other.differences[0]?.expected, /\$UNIQUE_IDENTIFIER_0 = TextString b5e1c1b2/);
  // Two placeholders in one list bind to distinct values.
  const two = cmp(response([item('Locate', uid('$UNIQUE_IDENTIFIER_1') + uid('$UNIQUE_IDENTIFIER_2'))]), response([item('Locate', uid('x') + uid('y'))]));
  t.ok(two.ok);
  t.not(two.bound.get('$UNIQUE_IDENTIFIER_1')?.value, two.bound.get('$UNIQUE_IDENTIFIER_2')?.value);
  t.end();
});

t.test('$NOW and $NOW±n must fall within the run time window', (t) => {
  const window = { from: 1_700_000_000n, to: 1_700_000_030n };
  const e = response([item('GetAttributes', uid('k1') + attr('Initial Date', 'DateTime', '$NOW') + attr('Activation Date', 'DateTime', '$NOW-3600'))]);
  const act = (init: string, act: string) => response([item('GetAttributes', uid('k1') + attr('Initial Date', 'DateTime', init) + attr('Activation Date', 'DateTime', act))]);
  t.ok(cmp(e, act('2023-11-14T22:13:25Z', '2023-11-14T21:13:25Z'), { now: window }).ok, '1700000005 and an hour before');
  const late = cmp(e, act('2023-11-14T23:13:25Z', '2023-11-14T21:13:25Z'), { now: window });
  t.notOk(late.ok, 'an Initial Date an hour off');
  t.equal(late.differences[0]?.path, 'ResponseMessage/BatchItem[0]/ResponsePayload/Attribute[Initial Date]/AttributeValue');
  t.notOk(cmp(e, act('2023-11-14T22:13:25Z', '2023-11-14T22:13:25Z'), { now: window }).ok, '$NOW-3600 given as now');
  t.end();
});

t.test('date-times: server-set ones may differ, ones the client sent may not', (t) => {
  const e = response([item('GetAttributes', uid('k1') + attr('Initial Date', 'DateTime', '2012-04-27T08:12:24Z') + attr('Activation Date', 'DateTime', '2012-01-01T00:00:00Z'))]);
  const a = response([item('GetAttributes', uid('k1') + attr('Initial Date', 'DateTime', '2024-06-01T10:00:00Z') + attr('Activation Date', 'DateTime', '2012-01-01T00:00:00Z'))]);
  const clientDates = new Set([BigInt(Date.UTC(2012, 0, 1) / 1000)]);
  const ok = cmp(e, a, { clientDates });
  t.ok(ok.ok);
  t.match(ok.variations.join('\n'), /Initial Date.*date-time set by the server/);
  const b = response([item('GetAttributes', uid('k1') + attr('Initial Date', 'DateTime', '2024-06-01T10:00:00Z') + attr('Activation Date', 'DateTime', '2013-01-01T00:00:00Z'))]);
  const bad = cmp(e, b, { clientDates });
  t.notOk(bad.ok, 'the Activation Date the client set differs');
  t.match(bad.differences[0]?.path, /Attribute\[Activation Date\]/);
  t.end();
});

t.test('Get Attributes: order free; extras only without names; missing and wrong values caught', (t) => {
  const e = response([item('GetAttributes', uid('k1') + attr('State', 'Enumeration', 'PreActive') + attr('Cryptographic Length', 'Integer', '256'))]);
  const named = request([reqItem('GetAttributes', uid('k1') + '<AttributeName type="TextString" value="State"/><AttributeName type="TextString" value="Cryptographic Length"/>')]);
  const unnamed = request([reqItem('GetAttributes', uid('k1'))]);
  const permuted = response([item('GetAttributes', uid('k1') + attr('Cryptographic Length', 'Integer', '256') + attr('State', 'Enumeration', 'PreActive'))]);
  t.ok(cmp(e, permuted, { request: named }).ok, 'another order');
  const extra = response([item('GetAttributes', uid('k1') + attr('State', 'Enumeration', 'PreActive') + attr('Cryptographic Length', 'Integer', '256') + attr('Fresh', 'Boolean', 'true'))]);
  t.ok(cmp(e, extra, { request: unnamed }).ok, 'an extra attribute when no names were asked for');
  t.notOk(cmp(e, extra, { request: named }).ok, 'an extra attribute that was not asked for');
  const missing = cmp(e, response([item('GetAttributes', uid('k1') + attr('State', 'Enumeration', 'PreActive'))]), { request: unnamed });
  t.notOk(missing.ok, 'a missing attribute');
  t.match(missing.differences[0]?.path, /Attribute\[Cryptographic Length\]$/);
  t.equal(missing.differences[0]?.actual, '(absent)');
  const wrong = cmp(e, response([item('GetAttributes', uid('k1') + attr('State', 'Enumeration', 'Active') + attr('Cryptographic Length', 'Integer', '256'))]), { request: unnamed });
  t.notOk(wrong.ok, 'a wrong value');
  t.equal(wrong.differences[0]?.path, 'ResponseMessage/BatchItem[0]/ResponsePayload/Attribute[State]/AttributeValue');
  t.match(wrong.differences[0]?.expected, /PreActive/);
  t.match(wrong.differences[0]?.actual, /Active/);
  t.end();
});

t.test('Get Attributes: the reference server own x- attributes may be missing, the client ones may not', (t) => {
  const e = response([item('GetAttributes', uid('k1') + attr('x-Vendor', 'TextString', 'v') + attr('State', 'Enumeration', 'Active'))]);
  const a = response([item('GetAttributes', uid('k1') + attr('State', 'Enumeration', 'Active'))]);
  const unnamed = request([reqItem('GetAttributes', uid('k1'))]);
  t.ok(cmp(e, a, { request: unnamed }).ok);
  t.notOk(cmp(e, a, { request: unnamed, clientTexts: new Set(['x-Vendor']) }).ok, 'an x- attribute the client set');
  t.end();
});

t.test('an Attribute Index of 0 equals an absent one', (t) => {
  const withIndex = `<Attribute><AttributeName type="TextString" value="Name"/><AttributeIndex type="Integer" value="0"/><AttributeValue><NameValue type="TextString" value="n"/><NameType type="Enumeration" value="UninterpretedTextString"/></AttributeValue></Attribute>`;
  const without = `<Attribute><AttributeName type="TextString" value="Name"/><AttributeValue><NameValue type="TextString" value="n"/><NameType type="Enumeration" value="UninterpretedTextString"/></AttributeValue></Attribute>`;
  t.ok(cmp(response([item('GetAttributes', uid('k1') + withIndex)]), response([item('GetAttributes', uid('k1') + without)])).ok);
  t.notOk(cmp(response([item('GetAttributes', uid('k1') + withIndex.replace('value="0"', 'value="1"'))]), response([item('GetAttributes', uid('k1') + without)])).ok);
  t.end();
});

t.test('KMIP 2.x Attributes: extras without names, missing ones caught', (t) => {
  const e = response([item('GetAttributes', `${uid('k1')}<Attributes><State type="Enumeration" value="Active"/><CryptographicLength type="Integer" value="128"/></Attributes>`)], { version: V21 });
  const extra = response([item('GetAttributes', `${uid('k1')}<Attributes><CryptographicLength type="Integer" value="128"/><Fresh type="Boolean" value="true"/><State type="Enumeration" value="Active"/></Attributes>`)], { version: V21 });
  t.ok(cmp(e, extra, { request: request([reqItem('GetAttributes', uid('k1'))], V21) }).ok);
  const missing = cmp(e, response([item('GetAttributes', `${uid('k1')}<Attributes><State type="Enumeration" value="Active"/></Attributes>`)], { version: V21 }));
  t.notOk(missing.ok);
  t.match(missing.differences[0]?.path, /Attributes\/CryptographicLength$/);
  t.end();
});

t.test('key material and digest of server-generated objects may differ; of registered ones not', (t) => {
  const e = response([item('Get', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('k1')}${symKey('755d03c639648fb5828d5f1cc9fe9b57')}`)]);
  const a = response([item('Get', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('k1')}${symKey('0102030405060708090a0b0c0d0e0f10')}`)]);
  const gen = cmp(e, a, { generated: new Set(['k1']) });
  t.ok(gen.ok, 'a generated key');
  t.match(gen.variations.join('\n'), /KeyMaterial: key material of a server-generated object/);
  t.equal(gen.substitutions.length, 1, 'the transcript material stands for the server one in later requests');
  const reg = cmp(e, a);
  t.notOk(reg.ok, 'a registered key');
  t.match(reg.differences[0]?.path, /SymmetricKey\/KeyBlock\/KeyValue\/KeyMaterial$/);
  const ed = response([item('GetAttributes', uid('k1') + digest('bc12861408b8ac72cdb3b2748ad342b7dc519bd109046a1b931fdaed73591f29'))]);
  const ad = response([item('GetAttributes', uid('k1') + digest('00'.repeat(32)))]);
  t.ok(cmp(ed, ad, { generated: new Set(['k1']) }).ok);
  t.notOk(cmp(ed, ad).ok);
  t.end();
});

t.test('the Certificate Length of a certificate the server generated may differ; of a registered one not', (t) => {
  const e = response([item('GetAttributes', uid('c1') + attr('Certificate Length', 'Integer', '635'))]);
  const a = response([item('GetAttributes', uid('c1') + attr('Certificate Length', 'Integer', '871'))]);
  const gen = cmp(e, a, { generated: new Set(['c1']) });
  t.ok(gen.ok, 'Certify made it (TC-134)');
  t.match(gen.variations.join('\n'), /field of a certificate the server generated/);
  t.notOk(cmp(e, a).ok, 'a registered certificate has its own length');
  t.end();
});

t.test('trackObjects: Create and Create Key Pair results are generated, Register results not', (t) => {
  const prov: Provenance = { generated: new Set(), algorithms: new Map(), paddings: new Map() };
  const req = request([
    reqItem('Create', '<ObjectType type="Enumeration" value="SymmetricKey"/><TemplateAttribute>' + attr('Cryptographic Algorithm', 'Enumeration', 'AES') + '</TemplateAttribute>'),
    reqItem('Register', '<ObjectType type="Enumeration" value="SecretData"/>'),
  ]);
  const res = parseXml(response([item('Create', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('c1')}`), item('Register', uid('r1'))]));
  trackObjects(req, res, prov);
  t.ok(prov.generated.has('c1'));
  t.notOk(prov.generated.has('r1'));
  t.equal(prov.algorithms.get('c1'), Enums.CryptographicAlgorithm.AES);
  t.end();
});

t.test('a key created earlier in the same batch counts as generated', (t) => {
  const e = response([
    item('Create', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('$UNIQUE_IDENTIFIER_0')}`),
    item('Get', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('$UNIQUE_IDENTIFIER_0')}${symKey('2a'.repeat(16))}`),
  ]);
  const a = response([
    item('Create', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('new')}`),
    item('Get', `<ObjectType type="Enumeration" value="SymmetricKey"/>${uid('new')}${symKey('3b'.repeat(16))}`),
  ]);
  t.ok(cmp(e, a).ok);
  t.end();
});

t.test('Encrypt: ciphertext and IV vary when the server chose the IV; not with the client IV', (t) => {
  const e = response([item('Encrypt', `${uid('k1')}<Data type="ByteString" value="e768203ba72b6e15"/><IVCounterNonce type="ByteString" value="ff02030405060708"/>`)]);
  const a = response([item('Encrypt', `${uid('k1')}<Data type="ByteString" value="0000000000000001"/><IVCounterNonce type="ByteString" value="aaaaaaaaaaaaaaaa"/>`)]);
  const noIv = request([reqItem('Encrypt', `${uid('k1')}<Data type="ByteString" value="01020304"/>`)]);
  const r = cmp(e, a, { request: noIv });
  t.ok(r.ok);
  t.equal(r.substitutions.length, 2, 'the transcript ciphertext and IV map to the server ones');
  const withIv = request([reqItem('Encrypt', `${uid('k1')}<Data type="ByteString" value="01020304"/><IVCounterNonce type="ByteString" value="ff02030405060708"/>`)]);
  const e2 = response([item('Encrypt', `${uid('k1')}<Data type="ByteString" value="e768203ba72b6e15"/>`)]);
  const a2 = response([item('Encrypt', `${uid('k1')}<Data type="ByteString" value="0000000000000001"/>`)]);
  t.notOk(cmp(e2, a2, { request: withIv }).ok, 'a known key and IV give one ciphertext');
  t.end();
});

t.test('Query: more operations pass, a missing one fails; vendor information is free', (t) => {
  const op = (o: string) => `<Operation type="Enumeration" value="${o}"/>`;
  const e = response([item('Query', op('Create') + op('Get') + '<VendorIdentification type="TextString" value="Acme KMIP"/>' + '<ServerInformation><TTLV tag="0x540001" type="TextString" value="x"/></ServerInformation>')]);
  t.ok(cmp(e, response([item('Query', op('Get') + op('Create') + op('Destroy') + '<VendorIdentification type="TextString" value="kmipd"/>')])).ok);
  const missing = cmp(e, response([item('Query', op('Get') + '<VendorIdentification type="TextString" value="kmipd"/>')]));
  t.notOk(missing.ok);
  t.match(missing.differences[0]?.expected, /Create/);
  const profiles = response([item('Query', '<ProfileInformation><ProfileName type="Enumeration" value="0x00000001"/></ProfileInformation>')]);
  t.notOk(cmp(profiles, response([item('Query', '')])).ok, 'profile information the transcript has must be answered');
  t.ok(cmp(profiles, response([item('Query', '<ProfileInformation><ProfileName type="Enumeration" value="0x00000002"/></ProfileInformation>')])).ok, 'with the server own content');
  t.end();
});

t.test('Locate: identifiers in any order, none missing or extra', (t) => {
  const e = response([item('Locate', uid('a') + uid('b'))]);
  t.ok(cmp(e, response([item('Locate', uid('b') + uid('a'))])).ok);
  t.notOk(cmp(e, response([item('Locate', uid('a'))])).ok);
  t.notOk(cmp(e, response([item('Locate', uid('a') + uid('b') + uid('c'))])).ok);
  t.end();
});

t.test('Discover Versions: more versions only when the client listed none', (t) => {
  const pv = (maj: number, min: number) => `<ProtocolVersion><ProtocolVersionMajor type="Integer" value="${maj}"/><ProtocolVersionMinor type="Integer" value="${min}"/></ProtocolVersion>`;
  const e = response([item('DiscoverVersions', pv(1, 4) + pv(1, 3))]);
  const a = response([item('DiscoverVersions', pv(2, 1) + pv(2, 0) + pv(1, 4) + pv(1, 3) + pv(1, 2))]);
  t.ok(cmp(e, a, { request: request([reqItem('DiscoverVersions', '')]) }).ok);
  t.notOk(cmp(e, a, { request: request([reqItem('DiscoverVersions', pv(1, 4) + pv(1, 3))]) }).ok);
  t.notOk(cmp(e, response([item('DiscoverVersions', pv(1, 3) + pv(1, 4))]), { request: request([reqItem('DiscoverVersions', '')]) }).ok, 'out of order');
  t.end();
});

t.test('the response version follows the request when the transcript contradicts it', (t) => {
  const V13 = V14.replace('value="4"', 'value="3"');
  const e = response([item('Destroy', uid('k1'))], { version: V13 });
  const a = response([item('Destroy', uid('k1'))]);
  t.ok(cmp(e, a, { request: request([reqItem('Destroy', uid('k1'))]) }).ok);
  t.notOk(cmp(e, a, { request: request([reqItem('Destroy', uid('k1'))], V13) }).ok);
  t.end();
});

t.test('a correlation value placeholder follows the server when a new stream starts', (t) => {
  const bindings = new Map([['$CORRELATION_VALUE', { type: 'ByteString' as const, value: Buffer.from('aaaa', 'hex') }]]);
  const e = response([item('Encrypt', `${uid('k1')}<Data type="ByteString" value="00"/><CorrelationValue type="ByteString" value="$CORRELATION_VALUE"/>`)]);
  const r = cmp(e, response([item('Encrypt', `${uid('k1')}<Data type="ByteString" value="00"/><CorrelationValue type="ByteString" value="bbbb"/>`)]), { bindings });
  t.ok(r.ok);
  t.same(r.bound.get('$CORRELATION_VALUE')?.value, Buffer.from('bbbb', 'hex'));
  const other = new Map([['$UNIQUE_IDENTIFIER_0', { type: 'TextString' as const, value: 'k1' }]]);
  t.notOk(cmp(response([item('Destroy', uid('$UNIQUE_IDENTIFIER_0'))]), response([item('Destroy', uid('k2'))]), { bindings: other }).ok, 'identifiers do not re-bind');
  t.end();
});

t.test('signatures: PSS (from the key or the request) may differ, PKCS#1 v1.5 may not', (t) => {
  const e = response([item('Sign', `${uid('k1')}<SignatureData type="ByteString" value="0102"/>`)]);
  const a = response([item('Sign', `${uid('k1')}<SignatureData type="ByteString" value="0304"/>`)]);
  const plain = request([reqItem('Sign', `${uid('k1')}<Data type="ByteString" value="00"/>`)]);
  t.ok(cmp(e, a, { request: plain, paddings: new Map([['k1', Enums.PaddingMethod.PSS]]) }).ok, 'the key says PSS');
  t.notOk(cmp(e, a, { request: plain, paddings: new Map([['k1', Enums.PaddingMethod.PKCS1V1_5]]) }).ok, 'the key says PKCS#1 v1.5');
  const pss = request([reqItem('Sign', `${uid('k1')}<CryptographicParameters><PaddingMethod type="Enumeration" value="PSS"/></CryptographicParameters><Data type="ByteString" value="00"/>`)]);
  t.ok(cmp(e, a, { request: pss }).ok, 'the request says PSS');
  t.end();
});
