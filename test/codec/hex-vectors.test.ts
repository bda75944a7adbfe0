/**
 * The 77 whole-message hex vectors (KMIP 1.0 Use Cases, 1.1 Test Cases, as transcribed from
 * NLnetLabs/kmip-protocol): each decodes, re-encodes byte for byte, and survives the XML and the
 * JSON encodings byte for byte.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseXml, toXml } from '../../src/codec/xml.js';
import { parseJson, toJson } from '../../src/codec/json.js';
import { decodeTtlv, encodeTtlv, parseHex } from '../../src/ttlv/index.js';
import { need, vectorsDir } from '../helpers/requirements.js';

function hexFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? hexFiles(join(dir, e.name)) : e.name.endsWith('.hex') ? [join(dir, e.name)] : []))
    .sort();
}

t.test('nlnetlabs hex vectors: TTLV, XML and JSON round trips are byte-identical', (t) => {
  const v = vectorsDir();
  if (!need(t, v)) return;
  const root = resolve(v.dir, 'nlnetlabs-kmip-protocol');
  const files = hexFiles(root);
  t.equal(files.length, 77, '77 vectors');
  let xmlOk = 0;
  let jsonOk = 0;
  for (const f of files) {
    const name = relative(root, f);
    const bytes = parseHex(readFileSync(f, 'utf8'));
    const node = decodeTtlv(bytes);
    t.ok(encodeTtlv(node).equals(bytes), `${name}: TTLV re-encodes byte for byte`);
    const xml = toXml(node);
    if (encodeTtlv(parseXml(xml)).equals(bytes)) xmlOk++;
    else t.fail(`${name}: differs through XML`, { xml });
    const json = toJson(node);
    if (encodeTtlv(parseJson(json)).equals(bytes)) jsonOk++;
    else t.fail(`${name}: differs through JSON`, { json });
  }
  t.equal(xmlOk, files.length, 'every vector is byte-identical through XML');
  t.equal(jsonOk, files.length, 'every vector is byte-identical through JSON');
  t.comment(`hex vectors: ${files.length} messages, ${xmlOk} through XML, ${jsonOk} through JSON`);
  t.end();
});

t.test('a vector in XML and JSON reads as the KMIP documents write it', (t) => {
  const v = vectorsDir();
  if (!need(t, v)) return;
  const f = resolve(v.dir, 'nlnetlabs-kmip-protocol/kmip_10_use_case_3_1_basic_functionality/kmip_1_0_usecase_3_1_2_step_2_create_symmetric_key_request.hex');
  const node = decodeTtlv(parseHex(readFileSync(f, 'utf8')));
  const xml = toXml(node);
  t.match(xml, /^<RequestMessage>\n {2}<RequestHeader>\n {4}<ProtocolVersion>\n {6}<ProtocolVersionMajor type="Integer" value="1"\/>/);
  t.match(xml, /<Operation type="Enumeration" value="Create"\/>/);
  t.match(xml, /<ObjectType type="Enumeration" value="SymmetricKey"\/>/);
  t.match(xml, /<AttributeName type="TextString" value="Cryptographic Algorithm"\/>\n\s*<AttributeValue type="Enumeration" value="AES"\/>/);
  t.match(xml, /<AttributeName type="TextString" value="Cryptographic Usage Mask"\/>\n\s*<AttributeValue type="Integer" value="(Encrypt Decrypt|Decrypt Encrypt)"\/>/);
  const json = toJson(node, { indent: 0 });
  t.match(json, /\{"tag":"Operation","type":"Enumeration","value":"Create"\}/);
  t.match(json, /\{"tag":"AttributeValue","type":"Integer","value":"(Encrypt\|Decrypt|Decrypt\|Encrypt)"\}/);
  t.match(json, /^\{"tag":"RequestMessage","value":\[/);
  t.end();
});
