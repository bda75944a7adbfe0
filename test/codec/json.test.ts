/** The JSON encoding's rules: names and hex, numbers kept exact, errors with JSON paths. */
import t from 'tap';
import { JsonCodecError, parseJson, parseJsonMessages, toJson } from '../../src/codec/json.js';
import { Tag } from '../../src/spec/index.js';
import { T, type TtlvNode } from '../../src/ttlv/index.js';

t.test('each type in JSON', (t) => {
  const node: TtlvNode = T.struct(Tag.CryptographicParameters, [
    T.enum(Tag.BlockCipherMode, 1),
    T.enum(Tag.PaddingMethod, 0x80000001),
    T.int(Tag.CryptographicUsageMask, 12),
    T.int(Tag.TagLength, -16),
    T.long(Tag.UsageLimitsTotal, 9007199254740991n),
    T.long(Tag.UsageLimitsCount, 9007199254740992n),
    T.big(Tag.Modulus, -128n),
    T.bool(Tag.RandomIV, false),
    T.bytes(Tag.KeyMaterial, Buffer.from([0xde, 0xad])),
    T.date(Tag.ActivationDate, 1258022871n),
    T.interval(Tag.LeaseTime, 3600),
    T.dateExt(Tag.ProtectStopDate, 1n),
    T.text(0x540001, 'na "quoted" \u0001'),
    T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'State'), T.enum(Tag.AttributeValue, 1)]),
  ]);
  const json = toJson(node, { indent: 0 });
  t.equal(
    json,
    '{"tag":"CryptographicParameters","value":[' +
      '{"tag":"BlockCipherMode","type":"Enumeration","value":"CBC"},' +
      '{"tag":"PaddingMethod","type":"Enumeration","value":"0x80000001"},' +
      '{"tag":"CryptographicUsageMask","type":"Integer","value":"Encrypt|Decrypt"},' +
      '{"tag":"TagLength","type":"Integer","value":-16},' +
      '{"tag":"UsageLimitsTotal","type":"LongInteger","value":9007199254740991},' +
      '{"tag":"UsageLimitsCount","type":"LongInteger","value":"0x0020000000000000"},' +
      '{"tag":"Modulus","type":"BigInteger","value":"0xFFFFFFFFFFFFFF80"},' +
      '{"tag":"RandomIV","type":"Boolean","value":false},' +
      '{"tag":"KeyMaterial","type":"ByteString","value":"dead"},' +
      '{"tag":"ActivationDate","type":"DateTime","value":"2009-11-12T10:47:51Z"},' +
      '{"tag":"LeaseTime","type":"Interval","value":3600},' +
      '{"tag":"ProtectStopDate","type":"DateTimeExtended","value":"1970-01-01T00:00:00.000001Z"},' +
      '{"tag":"0x540001","type":"TextString","value":"na \\"quoted\\" \\u0001"},' +
      '{"tag":"Attribute","value":[{"tag":"AttributeName","type":"TextString","value":"State"},{"tag":"AttributeValue","type":"Enumeration","value":"PreActive"}]}]}',
  );
  t.same(parseJson(json), node);
  t.same(parseJson(toJson(node)), node, 'indented too');
  t.end();
});

t.test('accepted input forms', (t) => {
  t.same(parseJson('{"tag":"UsageLimitsCount","type":"LongInteger","value":9223372036854775807}'), T.long(Tag.UsageLimitsCount, (1n << 63n) - 1n), 'numbers stay exact');
  t.same(parseJson('{"tag":"Modulus","type":"BigInteger","value":340282366920938463463374607431768211456}'), T.big(Tag.Modulus, 1n << 128n));
  t.same(parseJson('{"tag":"CryptographicUsageMask","type":"Integer","value":"Encrypt | Decrypt"}'), T.int(Tag.CryptographicUsageMask, 12));
  t.same(parseJson('{"tag":"BatchCount","type":"Integer","value":"0x00000002"}'), T.int(Tag.BatchCount, 2));
  t.same(parseJson('{"tag":"Operation","type":"Enumeration","value":1}'), T.enum(Tag.Operation, 1));
  t.same(parseJson('{"tag":"Operation","type":"Enumeration","value":"0x00000001","name":"ignored"}'), T.enum(Tag.Operation, 1));
  t.same(parseJson('{"tag":"0x42007A","value":[]}'), T.struct(Tag.ResponseHeader, []), 'hex tag of a known tag');
  t.same(parseJson('{"tag":"Activation Date","type":"DateTime","value":"2009-11-12T10:47:51+00:00"}'), T.date(Tag.ActivationDate, 1258022871n), 'spec name');
  t.same(
    parseJsonMessages('[{"tag":"RequestMessage","value":[]},{"tag":"ResponseMessage","value":[]}]'),
    [T.struct(Tag.RequestMessage, []), T.struct(Tag.ResponseMessage, [])],
  );
  t.same(
    parseJson('{"tag":"UniqueIdentifier","type":"TextString","value":"$ID"}', { placeholder: (n, type) => (type === 'TextString' ? `${n}!` : undefined) }),
    T.text(Tag.UniqueIdentifier, '$ID!'),
  );
  t.end();
});

t.test('errors give the JSON path, line, column and tag path', (t) => {
  const cases: [string, RegExp, string, number, number][] = [
    ['{"tag":"RequestMessage","value":[{"tag":"BatchCount","type":"Integer","value":"x"}]}', /Integer 'x' is not a number/, '$.value[0].value', 1, 79],
    ['{"tag":"RequestMessage","value":[\n {"tag":"BatchCont","type":"Integer","value":1}]}', /unknown tag name "BatchCont"/, '$.value[0].tag', 2, 9],
    ['{"tag":"BatchCount","type":"Integer","value":2147483648}', /Integer 2147483648 is out of range/, '$.value', 1, 46],
    ['{"tag":"BatchCount","type":"Integer","value":1.5}', /not a whole number/, '$.value', 1, 46],
    ['{"tag":"BatchCount","type":"Integr","value":1}', /unknown type "Integr"/, '$.type', 1, 28],
    ['{"tag":"BatchCount","type":"Integer"}', /item without "value"/, '$', 1, 1],
    ['{"tag":"BatchCount","type":"Integer","value":1,"vale":2}', /unknown member "vale"/, '$', 1, 1],
    ['{"tag":"RequestMessage","value":{}}', /a Structure's value must be an array, not an object/, '$.value', 1, 33],
    ['{"tag":"RequestMessage","value":[1]}', /an item must be an object/, '$.value[0]', 1, 34],
    ['{"tag":"RequestMessage",\n "value":[}', /unexpected character '}'/, '$.value[0]', 2, 11],
    ['{"tag":"A","tag":"B"}', /member "tag" appears twice/, '$', 1, 17],
    ['{"tag":"RandomIV","type":"Boolean","value":"maybe"}', /neither true nor false/, '$.value', 1, 44],
    ['{"tag":"Operation","type":"Enumeration","value":"Crate"}', /'Crate' is not a value of Operation/, '$.value', 1, 49],
    ['{"tag":"ActivationDate","type":"DateTime","value":"$NOW"}', /placeholder \$NOW has no value bound/, '$.value', 1, 51],
  ];
  for (const [text, re, path, line, column] of cases) {
    try {
      parseJson(text);
      t.fail(`no error for ${text}`);
    } catch (e) {
      t.type(e, JsonCodecError);
      const err = e as JsonCodecError;
      t.match(err.message, re);
      t.same([err.jsonPath, err.line, err.column], [path, line, column], err.message);
    }
  }
  const deep = (() => {
    try {
      parseJson('{"tag":"RequestMessage","value":[{"tag":"BatchItem","value":[{"tag":"Operation","type":"Enumeration","value":"Nope"}]}]}');
    } catch (e) {
      return e as JsonCodecError;
    }
    return undefined;
  })();
  t.equal(deep?.tagPath, 'RequestMessage/BatchItem/Operation');
  t.end();
});
