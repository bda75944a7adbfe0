/**
 * Register a known AES-256 key and read it back, over any KMIP connection: the requests and
 * response readers shared by the durability tests (kill -9, restart, rotation, HSM).
 */
import { Enums, Tag } from '../../src/spec/index.js';
import { T, type StructureNode } from '../../src/ttlv/index.js';
import { batchItems, itemResult, requestMessage } from './engine.js';

export function registerMsg(key: Buffer): StructureNode {
  return requestMessage(
    [
      {
        operation: Enums.Operation.Register,
        payload: [
          T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
          T.struct(Tag.TemplateAttribute, [T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'Cryptographic Usage Mask'), T.int(Tag.AttributeValue, 12)])]),
          T.struct(Tag.SymmetricKey, [
            T.struct(Tag.KeyBlock, [
              T.enum(Tag.KeyFormatType, Enums.KeyFormatType.Raw),
              T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, key)]),
              T.enum(Tag.CryptographicAlgorithm, Enums.CryptographicAlgorithm.AES),
              T.int(Tag.CryptographicLength, 256),
            ]),
          ]),
        ],
      },
    ],
    { version: '1.4' },
  );
}

export function getMsg(uid: string): StructureNode {
  return requestMessage([{ operation: Enums.Operation.Get, payload: [T.text(Tag.UniqueIdentifier, uid)] }], { version: '1.4' });
}

export function uidOf(resp: StructureNode): string | undefined {
  const r = itemResult(batchItems(resp)[0]!);
  if (r.status !== Enums.ResultStatus.Success) return undefined;
  const u = r.payload?.value.find((n) => n.tag === Tag.UniqueIdentifier);
  return u?.type === 'TextString' ? u.value : undefined;
}

export function keyOf(resp: StructureNode): Buffer | undefined {
  const find = (n: StructureNode): Buffer | undefined => {
    for (const c of n.value) {
      if (c.tag === Tag.KeyMaterial && c.type === 'ByteString') return Buffer.from(c.value);
      if (c.type === 'Structure') {
        const f = find(c);
        if (f) return f;
      }
    }
    return undefined;
  };
  return find(resp);
}

