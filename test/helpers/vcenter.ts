/**
 * vCenter's KMIP messages, as ../shared/VCENTER.md describes them (vCenter 7.0.3 captures):
 * KMIP 1.1 headers with only Protocol Version and Batch Count; DiscoverVersions with an empty
 * payload and no batch item ID; every other item with an 8-byte ID "QLKC" + a little-endian
 * counter starting at 1 in each message; one item per message except three AddAttribute.
 *
 * Messages that name a key carry the placeholder uid below; a replay swaps in the real uid
 * (same length, so the TTLV lengths stay right).
 */
import { Enums, Tag } from '../../src/spec/index.js';
import { T, encodeTtlv, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';

export const UID_PLACEHOLDER = '00000000-0000-4000-8000-000000000000';

function qlkc(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.write('QLKC', 0, 'latin1');
  b.writeUInt32LE(n, 4);
  return b;
}

function message(items: { op: number; payload: TtlvNode[]; noId?: boolean }[]): StructureNode {
  return T.struct(Tag.RequestMessage, [
    T.struct(Tag.RequestHeader, [
      T.struct(Tag.ProtocolVersion, [T.int(Tag.ProtocolVersionMajor, 1), T.int(Tag.ProtocolVersionMinor, 1)]),
      T.int(Tag.BatchCount, items.length),
    ]),
    ...items.map((it, i) =>
      T.struct(Tag.BatchItem, [
        T.enum(Tag.Operation, it.op),
        ...(it.noId ? [] : [T.bytes(Tag.UniqueBatchItemID, qlkc(i + 1))]),
        T.struct(Tag.RequestPayload, it.payload),
      ]),
    ),
  ]);
}

const uid = () => T.text(Tag.UniqueIdentifier, UID_PLACEHOLDER);
const Op = Enums.Operation;

function attr(name: string, value: string): TtlvNode {
  return T.struct(Tag.Attribute, [T.text(Tag.AttributeName, name), T.text(Tag.AttributeValue, value)]);
}

export const vcenterMessages = {
  discoverVersions: message([{ op: Op.DiscoverVersions, payload: [], noId: true }]),
  queryServerInformation: message([{ op: Op.Query, payload: [T.enum(Tag.QueryFunction, Enums.QueryFunction.QueryServerInformation)] }]),
  create: message([
    {
      op: Op.Create,
      payload: [
        T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
        T.struct(Tag.TemplateAttribute, [
          T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Algorithm'), T.enum(Tag.AttributeValue, Enums.CryptographicAlgorithm.AES)]),
          T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Usage Mask'), T.int(Tag.AttributeValue, 12)]),
          T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Length'), T.int(Tag.AttributeValue, 256)]),
        ]),
      ],
    },
  ]),
  getAttribute: (name: string) => message([{ op: Op.GetAttributes, payload: [uid(), T.text(Tag.AttributeName, name)] }]),
  addAttributes: (pairs: [string, string][]) =>
    message(pairs.map(([n, v]) => ({ op: Op.AddAttribute, payload: [uid(), attr(n, v)] }))),
  get: message([{ op: Op.Get, payload: [uid()] }]),
  activate: message([{ op: Op.Activate, payload: [uid()] }]),
};

/** One key's whole flow, in vCenter's order, as [name, bytes] pairs. */
export function keyFlow(component: 'Virtual Machine' | 'ESXi Server', identifier: string, name: string): [string, Buffer][] {
  const m = vcenterMessages;
  const tags1 = ['x-Product_Version', 'x-Vendor', 'x-Product'];
  const tags2 = ['x-Identifier', 'x-Component', 'x-Name'];
  return [
    ['discover-versions', encodeTtlv(m.discoverVersions)],
    ['create', encodeTtlv(m.create)],
    ...tags1.map((n): [string, Buffer] => [`get-attributes-${n}`, encodeTtlv(m.getAttribute(n))]),
    [
      'add-attributes-product',
      encodeTtlv(m.addAttributes([
        ['x-Product_Version', '7.0.3 build-19480866'],
        ['x-Vendor', 'VMware, Inc.'],
        ['x-Product', 'VMware vSphere'],
      ])),
    ],
    ['get-pre-active', encodeTtlv(m.get)],
    ['get-attributes-State', encodeTtlv(m.getAttribute('State'))],
    ['activate', encodeTtlv(m.activate)],
    ...tags2.map((n): [string, Buffer] => [`get-attributes-${n}`, encodeTtlv(m.getAttribute(n))]),
    [
      'add-attributes-identity',
      encodeTtlv(m.addAttributes([
        ['x-Identifier', identifier],
        ['x-Component', component],
        ['x-Name', name],
      ])),
    ],
  ];
}

/** Replaces the placeholder uid inside a vCenter message with a real one of the same length. */
export function withUid(bytes: Buffer, realUid: string): Buffer {
  const ph = Buffer.from(UID_PLACEHOLDER, 'latin1');
  const real = Buffer.from(realUid, 'latin1');
  if (real.length !== ph.length) throw new Error(`uid ${realUid} is not ${ph.length} bytes`);
  const out = Buffer.from(bytes);
  let i = out.indexOf(ph);
  while (i >= 0) {
    real.copy(out, i);
    i = out.indexOf(ph, i + ph.length);
  }
  return out;
}
