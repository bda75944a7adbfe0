/**
 * The XML encoding's rules one by one: names and hex, each type's text, placeholders, and errors
 * that say where.
 */
import t, { type Test } from 'tap';
import { parseXml, readXmlDocument, toXml, XmlCodecError, type PlaceholderHook } from '../../src/codec/xml.js';
import { Tag } from '../../src/spec/index.js';
import { T, type TtlvNode } from '../../src/ttlv/index.js';

function fails(t: Test, text: string, re: RegExp, where: { line: number; column: number; path?: string }): void {
  try {
    parseXml(text);
    t.fail(`expected an error for ${text}`);
  } catch (e) {
    t.type(e, XmlCodecError);
    const err = e as XmlCodecError;
    t.match(err.message, re);
    t.same({ line: err.line, column: err.column }, { line: where.line, column: where.column }, `${err.message}: where`);
    if (where.path !== undefined) t.equal(err.path, where.path);
  }
}

t.test('each type as text', (t) => {
  const xml = `<CryptographicParameters>
  <BlockCipherMode type="Enumeration" value="CBC"/>
  <PaddingMethod type="Enumeration" value="0x80000001"/>
  <TagLength type="Integer" value="-16"/>
  <IVLength type="Integer" value="0x00000010"/>
  <CryptographicUsageMask type="Integer" value="Encrypt   Decrypt"/>
  <LeaseTime type="Interval" value="3600"/>
  <UsageLimitsTotal type="LongInteger" value="-9223372036854775808"/>
  <Modulus type="BigInteger" value="0000000000010001"/>
  <PublicExponent type="BigInteger" value="ffffffffffffff80"/>
  <RandomIV type="Boolean" value="true"/>
  <KeyMaterial type="ByteString" value="0A0b"/>
  <ActivationDate type="DateTime" value="2012-04-27T18:12:24+10:00"/>
  <DeactivationDate type="DateTime" value="0x000000004AFBE9A7"/>
  <ProtectStopDate type="DateTimeExtended" value="2009-11-12T10:47:51.5Z"/>
  <NameValue type="TextString" value="&#913;&#x3b2; &lt;&amp;&gt; &quot;x&quot; &apos;"/>
  <TTLV tag="0x540001" type="TextString" value="na"/>
</CryptographicParameters>`;
  const node = parseXml(xml);
  const want: TtlvNode = T.struct(Tag.CryptographicParameters, [
    T.enum(Tag.BlockCipherMode, 1),
    T.enum(Tag.PaddingMethod, 0x80000001),
    T.int(Tag.TagLength, -16),
    T.int(Tag.IVLength, 16),
    T.int(Tag.CryptographicUsageMask, 12),
    T.interval(Tag.LeaseTime, 3600),
    T.long(Tag.UsageLimitsTotal, -(1n << 63n)),
    T.big(Tag.Modulus, 65537n),
    T.big(Tag.PublicExponent, -128n),
    T.bool(Tag.RandomIV, true),
    T.bytes(Tag.KeyMaterial, Buffer.from([10, 11])),
    T.date(Tag.ActivationDate, 1335514344n),
    T.date(Tag.DeactivationDate, 1258023335n),
    T.dateExt(Tag.ProtectStopDate, 1258022871500000n),
    T.text(Tag.NameValue, 'Αβ <&> "x" \''),
    T.text(0x540001, 'na'),
  ]);
  t.same(node, want);
  t.equal(
    toXml(node),
    `<CryptographicParameters>
  <BlockCipherMode type="Enumeration" value="CBC"/>
  <PaddingMethod type="Enumeration" value="0x80000001"/>
  <TagLength type="Integer" value="-16"/>
  <IVLength type="Integer" value="16"/>
  <CryptographicUsageMask type="Integer" value="Encrypt Decrypt"/>
  <LeaseTime type="Interval" value="3600"/>
  <UsageLimitsTotal type="LongInteger" value="-9223372036854775808"/>
  <Modulus type="BigInteger" value="0000000000010001"/>
  <PublicExponent type="BigInteger" value="ffffffffffffff80"/>
  <RandomIV type="Boolean" value="true"/>
  <KeyMaterial type="ByteString" value="0a0b"/>
  <ActivationDate type="DateTime" value="2012-04-27T08:12:24Z"/>
  <DeactivationDate type="DateTime" value="2009-11-12T10:55:35Z"/>
  <ProtectStopDate type="DateTimeExtended" value="2009-11-12T10:47:51.500000Z"/>
  <NameValue type="TextString" value="Αβ &lt;&amp;&gt; &quot;x&quot; '"/>
  <TTLV tag="0x540001" type="TextString" value="na"/>
</CryptographicParameters>`,
  );
  t.end();
});

t.test('an Attribute Value is named after its sibling Attribute Name', (t) => {
  const attr = (name: string, value: TtlvNode): TtlvNode => T.struct(Tag.Attribute, [T.text(Tag.AttributeName, name), value]);
  const node = T.struct(Tag.TemplateAttribute, [
    attr('State', T.enum(Tag.AttributeValue, 2)),
    attr('Cryptographic Algorithm', T.enum(Tag.AttributeValue, 3)),
    attr('Cryptographic Usage Mask', T.int(Tag.AttributeValue, 1 | 2)),
    attr('x-vendor', T.enum(Tag.AttributeValue, 7)),
    attr('Cryptographic Length', T.int(Tag.AttributeValue, 256)),
  ]);
  const xml = toXml(node);
  t.match(xml, /value="State"\/>\n\s+<AttributeValue type="Enumeration" value="Active"\/>/);
  t.match(xml, /value="Cryptographic Algorithm"\/>\n\s+<AttributeValue type="Enumeration" value="AES"\/>/);
  t.match(xml, /<AttributeValue type="Integer" value="Sign Verify"\/>/);
  t.match(xml, /<AttributeValue type="Enumeration" value="0x00000007"\/>/);
  t.match(xml, /<AttributeValue type="Integer" value="256"\/>/);
  t.same(parseXml(xml), node);
  t.end();
});

t.test('a mask value with bits that have no name is written as a number', (t) => {
  const node = T.int(Tag.CryptographicUsageMask, 0x40000000 | 4);
  t.equal(toXml(node), `<CryptographicUsageMask type="Integer" value="${0x40000004}"/>`);
  t.equal(toXml(T.int(Tag.CryptographicUsageMask, 0)), '<CryptographicUsageMask type="Integer" value="0"/>');
  t.same(parseXml('<CryptographicUsageMask type="Integer" value="Encrypt 0x40000000"/>'), node);
  t.end();
});

t.test('placeholders go through the hook', (t) => {
  const calls: [string, string, string][] = [];
  const hook: PlaceholderHook = (name, type, path) => {
    calls.push([name, type, path.map((p) => p.toString(16)).join('/')]);
    if (name === '$NOW-3600') return 1000n - 3600n;
    if (name === '$UNIQUE_IDENTIFIER_0') return 'uid-0';
    return undefined;
  };
  const xml = `<RequestPayload>
  <UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_0"/>
  <ActivationDate type="DateTime" value="$NOW-3600"/>
  <NameValue type="TextString" value="$LEFT_AS_TEXT"/>
</RequestPayload>`;
  t.same(
    parseXml(xml, { placeholder: hook }),
    T.struct(Tag.RequestPayload, [T.text(Tag.UniqueIdentifier, 'uid-0'), T.date(Tag.ActivationDate, -2600n), T.text(Tag.NameValue, '$LEFT_AS_TEXT')]),
  );
  t.same(calls, [
    ['$UNIQUE_IDENTIFIER_0', 'TextString', '420079/420094'],
    ['$NOW-3600', 'DateTime', '420079/420001'],
    ['$LEFT_AS_TEXT', 'TextString', '420079/420055'],
  ]);
  t.same(parseXml('<UniqueIdentifier type="TextString" value="$X"/>'), T.text(Tag.UniqueIdentifier, '$X'), 'no hook: text stays');
  fails(t, '<R>\n <ActivationDate type="DateTime" value="$NOW"/></R>'.replace(/R/g, 'RequestPayload'), /placeholder \$NOW has no value bound \(type DateTime\)/, {
    line: 2,
    column: 34,
    path: 'RequestPayload/ActivationDate',
  });
  t.throws(() => parseXml('<ActivationDate type="DateTime" value="$NOW"/>', { placeholder: () => 'text' }), /was bound to a value that does not fit type DateTime/);
  t.end();
});

t.test('errors say where', (t) => {
  fails(t, '<RequestMessage>\n  <Operatoin type="Enumeration" value="Create"/>\n</RequestMessage>', /unknown tag name <Operatoin>/, {
    line: 2,
    column: 3,
    path: 'RequestMessage/Operatoin',
  });
  fails(t, '<RequestMessage>\n  <Operation type="Enumeration" value="Crate"/>\n</RequestMessage>', /'Crate' is not a value of Operation/, {
    line: 2,
    column: 33,
    path: 'RequestMessage/Operation',
  });
  fails(t, '<BatchCount type="Integer" value="99999999999"/>', /Integer 99999999999 is out of range/, { line: 1, column: 28 });
  fails(t, '<BatchCount type="Integr" value="1"/>', /unknown type 'Integr'/, { line: 1, column: 13 });
  fails(t, '<BatchCount type="Integer"/>', /an item of type Integer needs a value attribute/, { line: 1, column: 1 });
  fails(t, '<BatchCount type="Integer" value="1" vlaue="2"/>', /unknown attribute 'vlaue'/, { line: 1, column: 38 });
  fails(t, '<RequestMessage>\n  <BatchItem>\n  </RequestMessage>', /<\/RequestMessage> closes <BatchItem> \(opened at line 2, column 3\)/, {
    line: 3,
    column: 3,
    path: 'RequestMessage/BatchItem',
  });
  fails(t, '<RequestMessage>\n  <BatchItem>', /<BatchItem> \(line 2\) is never closed/, { line: 2, column: 14 });
  fails(t, '<RequestMessage>\n  # TIME 0\n</RequestMessage>', /unexpected text '# TIME 0'/, { line: 2, column: 3, path: 'RequestMessage' });
  fails(t, '<NameValue type="TextString" value="a & b"/>', /'&' that starts no reference/, { line: 1, column: 39 });
  fails(t, '<NameValue type="TextString" value="&bogus;"/>', /unknown reference &bogus;/, { line: 1, column: 37 });
  fails(t, '<ActivationDate type="DateTime" value="2009-02-30T00:00:00Z"/>', /not a valid date and time/, { line: 1, column: 33 });
  fails(t, '<ActivationDate type="DateTime" value="2009-01-01T00:00:00.5Z"/>', /fraction of a second/, { line: 1, column: 33 });
  fails(t, '<KeyMaterial type="ByteString" value="abc"/>', /odd number of hex digits/, { line: 1, column: 32 });
  fails(t, '<CryptographicUsageMask type="Integer" value="Encrypt Sing"/>', /'Sing' is not a bit of Cryptographic Usage Mask/, { line: 1, column: 40 });
  fails(t, '<BatchCount type="Integer" value="Encrypt"/>', /not a mask whose bits have names/, { line: 1, column: 28 });
  fails(t, '<TTLV tag="0x4200001" type="Integer" value="1"/>', /^tag '0x4200001' is not 0x and up to 6 hex digits/, { line: 1, column: 7 });
  fails(t, '<RequestMessage/>\n<ResponseMessage/>', /content after the end of the root element <RequestMessage>/, { line: 2, column: 1 });
  t.end();
});

t.test('strict parseXml, tolerant readXmlDocument', (t) => {
  t.throws(() => parseXml('# title\n<RequestMessage/>'), /text before the root element at line 1, column 1/);
  t.throws(() => parseXml('<RequestMessage/>\n</RequestMessage>'), /closing tag <\/RequestMessage> without an opening tag|content after the end/);
  const doc = readXmlDocument('<?xml version="1.0"?>\n<!-- c -->\n# Request 0\n<RequestMessage/>\n#<ResponseMessage>\n#</ResponseMessage>\n<ResponseMessage/>\n');
  t.equal(doc.root, undefined, 'no container');
  t.same(
    doc.messages.map((m) => [m.kind, m.notes]),
    [
      ['RequestMessage', ['# Request 0']],
      ['ResponseMessage', ['#<ResponseMessage>', '#</ResponseMessage>']],
    ],
  );
  const inline = readXmlDocument('<KMIP> # TIME 0 <RequestMessage/> # TIME 1 # [Client-A] <ResponseMessage/></KMIP>');
  t.same(
    inline.messages.map((m) => [m.kind, m.notes]),
    [
      ['RequestMessage', ['# TIME 0']],
      ['ResponseMessage', ['# TIME 1 # [Client-A]']],
    ],
  );
  t.end();
});
