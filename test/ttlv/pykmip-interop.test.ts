/**
 * Codec interop with PyKMIP 0.10 (python3-pykmip), in both directions:
 *
 * 1. PyKMIP builds and encodes a representative set of messages for KMIP 1.0-1.4 and 2.0
 *    (test/ttlv/pykmip_codec.py encode). We decode each with decodeTtlv, find the fields PyKMIP
 *    says it wrote by walking the tree by tag, and re-encode: the bytes must be PyKMIP's exactly.
 * 2. We build messages as TtlvNode trees, encode them with encodeTtlv, and PyKMIP decodes them
 *    with its own RequestMessage/ResponseMessage classes (pykmip_codec.py decode): the fields it
 *    reads must be the ones we put in.
 *
 * Both sides reduce a message to the same JSON summary (MessageSummary below, summarize() in the
 * Python script), so a field that either side misplaces, mistypes or mis-pads shows as a diff.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import {
  decodeTtlv,
  encodeTtlv,
  parseHex,
  T,
  toHex,
  type StructureNode,
  type TtlvNode,
} from '../../src/ttlv/index.js';
import { Tag } from '../../src/spec/index.js';
import { need, pykmip, PYTHON, REPO_ROOT } from '../helpers/requirements.js';

const SCRIPT = resolve(REPO_ROOT, 'test', 'ttlv', 'pykmip_codec.py');

/** Operation enumeration values used here (KMIP 1.4 §9.1.3.2.27). */
const Op = {
  Create: 1,
  Register: 3,
  Locate: 8,
  Get: 10,
  GetAttributes: 11,
  Activate: 18,
  Revoke: 19,
  Destroy: 20,
  Query: 24,
  DiscoverVersions: 30,
} as const;

/** Attribute names and their KMIP 2.0 tags, and how a 1.x Attribute Value of each is typed. */
const ATTRIBUTES: Record<string, { tag: number; kind: 'enum' | 'int' | 'text' | 'name' }> = {
  'Cryptographic Algorithm': { tag: Tag.CryptographicAlgorithm, kind: 'enum' },
  'Cryptographic Length': { tag: Tag.CryptographicLength, kind: 'int' },
  'Cryptographic Usage Mask': { tag: Tag.CryptographicUsageMask, kind: 'int' },
  Name: { tag: Tag.Name, kind: 'name' },
  'Object Type': { tag: Tag.ObjectType, kind: 'enum' },
  State: { tag: Tag.State, kind: 'enum' },
  'Operation Policy Name': { tag: Tag.OperationPolicyName, kind: 'text' },
};
const ATTRIBUTE_BY_TAG = new Map(Object.entries(ATTRIBUTES).map(([name, a]) => [a.tag, name]));

// ---------------------------------------------------------------------------------------------
// The summary both sides compute

type AttrPair = [string, number | string];

interface PayloadSummary {
  objectType?: number;
  uid?: string;
  uids?: string[];
  maximumItems?: number;
  attributes?: AttrPair[];
  attributeNames?: string[];
  keyFormatType?: number;
  keyMaterial?: string;
  cryptographicAlgorithm?: number;
  cryptographicLength?: number;
  revocationReason?: number;
  revocationMessage?: string;
  queryFunctions?: number[];
  protocolVersions?: [number, number][];
}

interface ItemSummary {
  operation: number;
  batchId?: string;
  status?: number;
  reason?: number;
  resultMessage?: string;
  payload: PayloadSummary | null;
}

interface MessageSummary {
  message: 'request' | 'response';
  version: [number, number];
  batchCount: number;
  timeStamp?: number;
  items: ItemSummary[];
}

interface PyEncoded {
  name: string;
  version: string;
  hex: string;
  expect: MessageSummary;
}

// ---------------------------------------------------------------------------------------------
// Reading a tree by tag

function struct(n: TtlvNode | undefined, what: string): StructureNode {
  if (!n || n.type !== 'Structure') throw new Error(`${what}: expected a Structure, got ${n?.type ?? 'nothing'}`);
  return n;
}
function child(s: StructureNode, tag: number): TtlvNode | undefined {
  return s.value.find((c) => c.tag === tag);
}
function children(s: StructureNode, tag: number): TtlvNode[] {
  return s.value.filter((c) => c.tag === tag);
}
function num(n: TtlvNode | undefined): number | undefined {
  if (!n) return undefined;
  if (n.type === 'Integer' || n.type === 'Enumeration' || n.type === 'Interval') return n.value;
  if (n.type === 'LongInteger' || n.type === 'DateTime') return Number(n.value);
  throw new Error(`tag 0x${n.tag.toString(16)}: expected a number, got ${n.type}`);
}
function text(n: TtlvNode | undefined): string | undefined {
  if (!n) return undefined;
  if (n.type !== 'TextString') throw new Error(`tag 0x${n.tag.toString(16)}: expected a Text String, got ${n.type}`);
  return n.value;
}
function bytesHex(n: TtlvNode | undefined): string | undefined {
  if (!n) return undefined;
  if (n.type !== 'ByteString') throw new Error(`tag 0x${n.tag.toString(16)}: expected a Byte String, got ${n.type}`);
  return Buffer.from(n.value).toString('hex');
}
function set<K extends keyof PayloadSummary>(s: PayloadSummary, k: K, v: PayloadSummary[K] | undefined): void {
  if (v !== undefined) s[k] = v;
}

function attrValue(name: string, v: TtlvNode): number | string {
  if (ATTRIBUTES[name]?.kind === 'name') {
    const nv = text(child(struct(v, 'Name'), Tag.NameValue));
    if (nv === undefined) throw new Error('Name without a Name Value');
    return nv;
  }
  const r = v.type === 'TextString' ? v.value : num(v);
  if (r === undefined) throw new Error(`attribute ${name} has no value`);
  return r;
}

/** 1.x: Attribute structures (Attribute Name, Attribute Value); 2.0: an Attributes structure of tagged values. */
function attrPairs(p: StructureNode): AttrPair[] | undefined {
  const container = child(p, Tag.TemplateAttribute) ?? child(p, Tag.Attributes);
  if (container && container.tag === Tag.Attributes) {
    return struct(container, 'Attributes').value.map((v): AttrPair => {
      const name = ATTRIBUTE_BY_TAG.get(v.tag);
      if (!name) throw new Error(`unexpected attribute tag 0x${v.tag.toString(16)}`);
      return [name, attrValue(name, v)];
    });
  }
  const attrs = children(container ? struct(container, 'Template-Attribute') : p, Tag.Attribute);
  if (!container && attrs.length === 0) return undefined;
  return attrs.map((a): AttrPair => {
    const s = struct(a, 'Attribute');
    const name = text(child(s, Tag.AttributeName));
    const value = child(s, Tag.AttributeValue);
    if (name === undefined || !value) throw new Error('Attribute without name or value');
    return [name, attrValue(name, value)];
  });
}

function payloadSummary(p: StructureNode, op: number, request: boolean): PayloadSummary {
  const s: PayloadSummary = {};
  set(s, 'objectType', num(child(p, Tag.ObjectType)));
  if (op === Op.Locate && !request) {
    s.uids = children(p, Tag.UniqueIdentifier).map((u) => text(u) ?? '');
  } else {
    set(s, 'uid', text(child(p, Tag.UniqueIdentifier)));
  }
  set(s, 'maximumItems', num(child(p, Tag.MaximumItems)));
  set(s, 'attributes', attrPairs(p));
  if (op === Op.GetAttributes && request) {
    const names = children(p, Tag.AttributeName).map((n) => text(n) ?? '');
    // 2.0: Attribute Reference enumerations hold the attribute's tag.
    for (const r of children(p, Tag.AttributeReference)) {
      names.push(ATTRIBUTE_BY_TAG.get(num(r) ?? 0) ?? `?${String(num(r))}`);
    }
    s.attributeNames = names;
  }
  set(s, 'keyFormatType', num(child(p, Tag.KeyFormatType)));
  const key = child(p, Tag.SymmetricKey);
  if (key) {
    const kb = struct(child(struct(key, 'Symmetric Key'), Tag.KeyBlock), 'Key Block');
    set(s, 'keyFormatType', num(child(kb, Tag.KeyFormatType)));
    set(s, 'keyMaterial', bytesHex(child(struct(child(kb, Tag.KeyValue), 'Key Value'), Tag.KeyMaterial)));
    set(s, 'cryptographicAlgorithm', num(child(kb, Tag.CryptographicAlgorithm)));
    set(s, 'cryptographicLength', num(child(kb, Tag.CryptographicLength)));
  }
  const rr = child(p, Tag.RevocationReason);
  if (rr) {
    set(s, 'revocationReason', num(child(struct(rr, 'Revocation Reason'), Tag.RevocationReasonCode)));
    set(s, 'revocationMessage', text(child(struct(rr, 'Revocation Reason'), Tag.RevocationMessage)));
  }
  if (op === Op.Query) s.queryFunctions = children(p, Tag.QueryFunction).map((q) => num(q) ?? -1);
  if (op === Op.DiscoverVersions) s.protocolVersions = children(p, Tag.ProtocolVersion).map(version);
  return s;
}

function version(n: TtlvNode): [number, number] {
  const s = struct(n, 'Protocol Version');
  return [num(child(s, Tag.ProtocolVersionMajor)) ?? -1, num(child(s, Tag.ProtocolVersionMinor)) ?? -1];
}

function summarize(root: TtlvNode): MessageSummary {
  const msg = struct(root, 'message');
  const request = msg.tag === Tag.RequestMessage;
  if (!request && msg.tag !== Tag.ResponseMessage) throw new Error(`not a message: 0x${msg.tag.toString(16)}`);
  const header = struct(child(msg, request ? Tag.RequestHeader : Tag.ResponseHeader), 'header');
  const out: MessageSummary = {
    message: request ? 'request' : 'response',
    version: version(struct(child(header, Tag.ProtocolVersion), 'Protocol Version')),
    batchCount: num(child(header, Tag.BatchCount)) ?? -1,
    items: [],
  };
  if (!request) out.timeStamp = num(child(header, Tag.TimeStamp)) ?? -1;
  for (const bi of children(msg, Tag.BatchItem)) {
    const b = struct(bi, 'Batch Item');
    const op = num(child(b, Tag.Operation)) ?? -1;
    const item: ItemSummary = { operation: op, payload: null };
    const id = bytesHex(child(b, Tag.UniqueBatchItemID));
    if (id !== undefined) item.batchId = id;
    if (!request) {
      item.status = num(child(b, Tag.ResultStatus)) ?? -1;
      const reason = num(child(b, Tag.ResultReason));
      if (reason !== undefined) item.reason = reason;
      const m = text(child(b, Tag.ResultMessage));
      if (m !== undefined) item.resultMessage = m;
    }
    const p = child(b, request ? Tag.RequestPayload : Tag.ResponsePayload);
    if (p) item.payload = payloadSummary(struct(p, 'payload'), op, request);
    out.items.push(item);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Building a tree from a summary (our encoder's side)

function attrNode(v2: boolean, name: string, value: number | string): TtlvNode {
  const a = ATTRIBUTES[name];
  if (!a) throw new Error(`no encoding known for attribute ${name}`);
  const tag = v2 ? a.tag : Tag.AttributeValue;
  let v: TtlvNode;
  switch (a.kind) {
    case 'enum':
      v = T.enum(tag, Number(value));
      break;
    case 'int':
      v = T.int(tag, Number(value));
      break;
    case 'text':
      v = T.text(tag, String(value));
      break;
    case 'name':
      // Name Type 1: Uninterpreted Text String
      v = T.struct(tag, [T.text(Tag.NameValue, String(value)), T.enum(Tag.NameType, 1)]);
      break;
  }
  return v2 ? v : T.struct(Tag.Attribute, [T.text(Tag.AttributeName, name), v]);
}

function buildPayload(p: PayloadSummary, op: number, request: boolean, v2: boolean): StructureNode {
  const c: TtlvNode[] = [];
  if (p.objectType !== undefined) c.push(T.enum(Tag.ObjectType, p.objectType));
  if (p.uid !== undefined) c.push(T.text(Tag.UniqueIdentifier, p.uid));
  if (p.keyFormatType !== undefined && p.keyMaterial === undefined) c.push(T.enum(Tag.KeyFormatType, p.keyFormatType));
  if (p.maximumItems !== undefined) c.push(T.int(Tag.MaximumItems, p.maximumItems));
  if (p.attributes) {
    const attrs = p.attributes.map(([n, v]) => attrNode(v2, n, v));
    if (v2) c.push(T.struct(Tag.Attributes, attrs));
    else if (op === Op.Locate) c.push(...attrs);
    else c.push(T.struct(Tag.TemplateAttribute, attrs));
  }
  for (const n of p.attributeNames ?? []) {
    if (v2) c.push(T.enum(Tag.AttributeReference, ATTRIBUTES[n]?.tag ?? 0));
    else c.push(T.text(Tag.AttributeName, n));
  }
  if (p.keyMaterial !== undefined) {
    const kb: TtlvNode[] = [
      T.enum(Tag.KeyFormatType, p.keyFormatType ?? 1),
      T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, Buffer.from(p.keyMaterial, 'hex'))]),
    ];
    if (p.cryptographicAlgorithm !== undefined) kb.push(T.enum(Tag.CryptographicAlgorithm, p.cryptographicAlgorithm));
    if (p.cryptographicLength !== undefined) kb.push(T.int(Tag.CryptographicLength, p.cryptographicLength));
    c.push(T.struct(Tag.SymmetricKey, [T.struct(Tag.KeyBlock, kb)]));
  }
  if (p.revocationReason !== undefined) {
    const rr: TtlvNode[] = [T.enum(Tag.RevocationReasonCode, p.revocationReason)];
    if (p.revocationMessage !== undefined) rr.push(T.text(Tag.RevocationMessage, p.revocationMessage));
    c.push(T.struct(Tag.RevocationReason, rr));
  }
  for (const q of p.queryFunctions ?? []) c.push(T.enum(Tag.QueryFunction, q));
  for (const [maj, min] of p.protocolVersions ?? []) c.push(versionNode(maj, min));
  for (const u of p.uids ?? []) c.push(T.text(Tag.UniqueIdentifier, u));
  return T.struct(request ? Tag.RequestPayload : Tag.ResponsePayload, c);
}

function versionNode(major: number, minor: number): StructureNode {
  return T.struct(Tag.ProtocolVersion, [T.int(Tag.ProtocolVersionMajor, major), T.int(Tag.ProtocolVersionMinor, minor)]);
}

function build(m: MessageSummary): TtlvNode {
  const request = m.message === 'request';
  const v2 = m.version[0] >= 2;
  const header = request
    ? T.struct(Tag.RequestHeader, [versionNode(...m.version), T.int(Tag.BatchCount, m.batchCount)])
    : T.struct(Tag.ResponseHeader, [
        versionNode(...m.version),
        T.date(Tag.TimeStamp, BigInt(m.timeStamp ?? 0)),
        T.int(Tag.BatchCount, m.batchCount),
      ]);
  const items = m.items.map((it) => {
    const c: TtlvNode[] = [T.enum(Tag.Operation, it.operation)];
    if (it.batchId !== undefined) c.push(T.bytes(Tag.UniqueBatchItemID, Buffer.from(it.batchId, 'hex')));
    if (!request) {
      c.push(T.enum(Tag.ResultStatus, it.status ?? 0));
      if (it.reason !== undefined) c.push(T.enum(Tag.ResultReason, it.reason));
      if (it.resultMessage !== undefined) c.push(T.text(Tag.ResultMessage, it.resultMessage));
    }
    if (it.payload) c.push(buildPayload(it.payload, it.operation, request, v2));
    return T.struct(Tag.BatchItem, c);
  });
  return T.struct(request ? Tag.RequestMessage : Tag.ResponseMessage, [header, ...items]);
}

// ---------------------------------------------------------------------------------------------
// Our messages, for PyKMIP to decode

const UID = '5c9b81ef-4ee5-42cd-ba2d-c002fdd0c7b3';
const VERSIONS: [number, number][] = [
  [1, 0],
  [1, 1],
  [1, 2],
  [1, 3],
  [1, 4],
  [2, 0],
];

function ourMessages(version: [number, number]): [string, MessageSummary][] {
  const req = (items: ItemSummary[]): MessageSummary => ({ message: 'request', version, batchCount: items.length, items });
  const resp = (items: ItemSummary[]): MessageSummary => ({
    message: 'response',
    version,
    batchCount: items.length,
    timeStamp: 1_700_000_000,
    items,
  });
  const uids50 = Array.from({ length: 50 }, (_, i) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`);
  return [
    [
      'create',
      req([
        {
          operation: Op.Create,
          payload: {
            objectType: 2, // Symmetric Key
            attributes: [
              ['Cryptographic Algorithm', 3], // AES
              ['Cryptographic Length', 256],
              ['Cryptographic Usage Mask', 0x0c], // Encrypt | Decrypt
              ['Name', 'kmipd-vSphere-key'],
            ],
          },
        },
      ]),
    ],
    ['get-request', req([{ operation: Op.Get, payload: { uid: UID, keyFormatType: 1 } }])],
    [
      'get-response',
      resp([
        {
          operation: Op.Get,
          status: 0,
          payload: {
            objectType: 2,
            uid: UID,
            keyFormatType: 1, // Raw
            keyMaterial: 'a5'.repeat(32),
            cryptographicAlgorithm: 3,
            cryptographicLength: 256,
          },
        },
      ]),
    ],
    [
      'locate-request',
      req([
        {
          operation: Op.Locate,
          payload: {
            maximumItems: 50,
            attributes: [
              ['Object Type', 2],
              ['Name', 'k'],
            ],
          },
        },
      ]),
    ],
    ['locate-response-50', resp([{ operation: Op.Locate, status: 0, payload: { uids: uids50 } }])],
    [
      'register',
      req([
        {
          operation: Op.Register,
          payload: {
            objectType: 2,
            attributes: [
              ['Cryptographic Usage Mask', 0x0c],
              ['Name', 'seven'], // a Text String needing 1 padding byte
            ],
            keyFormatType: 1,
            keyMaterial: '00112233445566778899aabbccddeeff0011223344', // 21 bytes: 3 padding bytes
            cryptographicAlgorithm: 3,
            cryptographicLength: 168,
          },
        },
      ]),
    ],
    [
      'get-attributes',
      req([{ operation: Op.GetAttributes, payload: { uid: UID, attributeNames: ['State', 'Cryptographic Length'] } }]),
    ],
    ['activate', req([{ operation: Op.Activate, payload: { uid: UID } }])],
    [
      'revoke',
      req([{ operation: Op.Revoke, payload: { uid: UID, revocationReason: 5, revocationMessage: 'superseded' } }]),
    ],
    ['destroy', req([{ operation: Op.Destroy, payload: { uid: UID } }])],
    ['query', req([{ operation: Op.Query, payload: { queryFunctions: [1, 2, 3] } }])],
    [
      'discover-versions',
      req([
        {
          operation: Op.DiscoverVersions,
          payload: {
            protocolVersions: [
              [2, 0],
              [1, 4],
              [1, 0],
            ],
          },
        },
      ]),
    ],
    [
      'batch',
      req([
        { operation: Op.Activate, batchId: '01', payload: { uid: UID } },
        { operation: Op.Get, batchId: '0002', payload: { uid: UID } },
        { operation: Op.Revoke, batchId: 'deadbeefcafe0003', payload: { uid: 'x', revocationReason: 1 } },
        { operation: Op.Destroy, batchId: '04', payload: { uid: UID } },
        { operation: Op.Query, batchId: '05', payload: { queryFunctions: [3] } },
      ]),
    ],
    [
      'batch-response',
      resp([
        { operation: Op.Activate, batchId: '01', status: 0, payload: { uid: UID } },
        { operation: Op.Destroy, batchId: '02', status: 1, reason: 1, resultMessage: 'Item Not Found', payload: null },
        { operation: Op.Revoke, batchId: '03', status: 0, payload: { uid: UID } },
      ]),
    ],
  ];
}

// ---------------------------------------------------------------------------------------------

function python(args: string[], input?: string): string {
  const r = spawnSync(PYTHON, [SCRIPT, ...args], { input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`pykmip_codec.py ${args.join(' ')} exited ${String(r.status)}: ${r.stderr}`);
  return r.stdout;
}

t.test('PyKMIP-encoded messages decode, carry the expected fields, and re-encode byte for byte', (t) => {
  if (!need(t, pykmip())) return;
  const encoded = JSON.parse(python(['encode'])) as PyEncoded[];
  const versions = new Set(encoded.map((e) => e.version));
  t.same([...versions].sort(), ['1.0', '1.1', '1.2', '1.3', '1.4', '2.0'], 'PyKMIP encoded every version');
  t.ok(encoded.length >= 80, `${encoded.length} messages`);
  for (const e of encoded) {
    const label = `${e.name} ${e.version}`;
    const bytes = parseHex(e.hex);
    const node = decodeTtlv(bytes);
    t.strictSame(summarize(node), e.expect, `${label}: fields`);
    t.equal(toHex(encodeTtlv(node)), e.hex, `${label}: re-encodes to PyKMIP's bytes`);
    const msg = struct(node, label);
    // Request/Response Message -> Batch Item -> payload
    const items = children(msg, Tag.BatchItem);
    t.equal(items.length, e.expect.batchCount, `${label}: batch items match Batch Count`);
    if (e.name === 'create' || e.name === 'register') {
      const payload = struct(child(struct(items[0], 'item'), Tag.RequestPayload), 'payload');
      const v2 = e.version === '2.0';
      // 1.x: Template-Attribute of Attribute structures; 2.0: Attributes of tagged values
      t.equal(child(payload, Tag.TemplateAttribute) !== undefined, !v2, `${label}: Template-Attribute iff 1.x`);
      t.equal(child(payload, Tag.Attributes) !== undefined, v2, `${label}: Attributes iff 2.0`);
    }
    if (e.name === 'get-attributes') {
      const payload = struct(child(struct(items[0], 'item'), Tag.RequestPayload), 'payload');
      const refs = children(payload, Tag.AttributeReference);
      if (e.version === '2.0') {
        t.same(
          refs.map((r) => [r.type, r.value]),
          [
            ['Enumeration', Tag.CryptographicAlgorithm],
            ['Enumeration', Tag.CryptographicLength],
            ['Enumeration', Tag.State],
          ],
          `${label}: Attribute References name tags`,
        );
      } else t.equal(refs.length, 0, `${label}: Attribute Names, no references`);
    }
    if (e.name === 'get-response') {
      const payload = struct(child(struct(items[0], 'item'), Tag.ResponsePayload), 'payload');
      const key = struct(child(payload, Tag.SymmetricKey), 'key');
      const kb = struct(child(key, Tag.KeyBlock), 'key block');
      const km = child(struct(child(kb, Tag.KeyValue), 'key value'), Tag.KeyMaterial);
      t.equal(km?.type, 'ByteString', `${label}: Key Material is a Byte String`);
      t.equal(km?.type === 'ByteString' ? km.value.length : -1, 32, `${label}: 32-byte key`);
    }
  }
  t.end();
});

t.test('PyKMIP decodes messages encoded by kmipd', (t) => {
  if (!need(t, pykmip())) return;
  const cases: { label: string; spec: MessageSummary; hex: string }[] = [];
  for (const v of VERSIONS) {
    for (const [name, spec] of ourMessages(v)) {
      const bytes = encodeTtlv(build(spec));
      cases.push({ label: `${name} ${v.join('.')}`, spec, hex: toHex(bytes) });
    }
  }
  const lines = python(['decode'], cases.map((c) => c.hex).join('\n') + '\n')
    .split('\n')
    .filter((l) => l.trim() !== '');
  t.equal(lines.length, cases.length, 'one answer per message');
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]!;
    const got = JSON.parse(lines[i] ?? '{}') as MessageSummary | { error: string };
    if ('error' in got) {
      t.fail(`${c.label}: PyKMIP could not decode: ${got.error}`);
      continue;
    }
    t.strictSame(got, c.spec, `${c.label}: PyKMIP reads what we wrote`);
    // And our own decoder agrees with the spec too.
    t.strictSame(summarize(decodeTtlv(parseHex(c.hex))), c.spec, `${c.label}: we read what we wrote`);
  }
  t.end();
});

t.test('non-ASCII Text Strings (a known PyKMIP 0.10 limitation)', (t) => {
  if (!need(t, pykmip())) return;
  // PyKMIP 0.10 reads a Text String one byte at a time and decodes each byte alone as UTF-8
  // (kmip/core/primitives.py, TextString.read_value), and writes one byte per character: any
  // character outside ASCII fails both ways. Our bytes are correct UTF-8 (checked below against
  // Node's encoder); the PyKMIP assertion is a TODO so that a fixed PyKMIP shows up as a pass.
  const name = 'clé-vSphere-🔑';
  const spec: MessageSummary = {
    message: 'request',
    version: [1, 4],
    batchCount: 1,
    items: [{ operation: Op.Create, payload: { objectType: 2, attributes: [['Name', name]] } }],
  };
  const bytes = encodeTtlv(build(spec));
  t.ok(bytes.includes(Buffer.from(name, 'utf8')), 'the Name Value is UTF-8 on the wire');
  t.same(summarize(decodeTtlv(bytes)), spec, 'we read it back');
  const line = python(['decode'], toHex(bytes) + '\n').trim();
  const got = JSON.parse(line) as MessageSummary | { error: string };
  t.same(got, spec, 'PyKMIP reads a non-ASCII Name', { todo: 'PyKMIP 0.10 TextString.read_value decodes byte by byte' });
  t.end();
});
