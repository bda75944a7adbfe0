/**
 * Fixtures for the attribute and Locate tests: objects inserted straight into the engine's
 * keystore with the attributes the lifecycle module gives a new object, and small readers of
 * response payloads.
 */
import { randomUUID } from 'node:crypto';
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { initialAttributes } from '../../src/operations/lifecycle.js';
import { Enums, Tag } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import type { Engine } from '../helpers/engine.js';

export const OK = Enums.ResultStatus.Success;
export const FAILED = Enums.ResultStatus.OperationFailed;

export function attr(name: string, value: TtlvNode): KmipAttribute {
  return { name, index: 0, value };
}

export function nameAttr(value: string): KmipAttribute {
  return attr('Name', T.struct(Tag.Name, [T.text(Tag.NameValue, value), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]));
}

export function customAttr(name: string, value: string): KmipAttribute {
  return attr(name, T.text(Tag.AttributeValue, value));
}

export interface NewObject {
  owner?: string;
  objectType?: number;
  attrs?: KmipAttribute[];
  /** Forces the state (and the State attribute). */
  state?: number;
  /** Creation time (ms); objects are returned by Locate newest first by insertion order. */
  now?: Date;
}

/** Inserts an AES-256 key (or another object type) owned by `owner` (default alice). */
export async function insertObject(engine: Engine, o: NewObject = {}): Promise<string> {
  const uid = randomUUID();
  const objectType = o.objectType ?? Enums.ObjectType.SymmetricKey;
  const now = o.now ?? new Date();
  const client: KmipAttribute[] =
    objectType === Enums.ObjectType.SymmetricKey
      ? [
          attr('Cryptographic Algorithm', T.enum(Tag.CryptographicAlgorithm, Enums.CryptographicAlgorithm.AES)),
          attr('Cryptographic Length', T.int(Tag.CryptographicLength, 256)),
          attr('Cryptographic Usage Mask', T.int(Tag.CryptographicUsageMask, 12)),
        ]
      : [];
  client.push(...(o.attrs ?? []));
  const init = initialAttributes({ uid, objectType, now, client });
  let attributes = init.attributes;
  let state = init.state;
  if (o.state !== undefined) {
    state = o.state;
    attributes = attributes.map((a) => (a.name === 'State' ? { ...a, value: T.enum(Tag.State, state) } : a));
  }
  const ms = now.getTime();
  await engine.store.insert({ uid, objectType, state, owner: o.owner ?? 'alice', attributes, material: null, revision: 1, createdAt: ms, updatedAt: ms });
  return uid;
}

/** Children of a payload with `tag`. */
export function childrenOf(p: StructureNode | undefined, tag: number): TtlvNode[] {
  return (p?.value ?? []).filter((c) => c.tag === tag);
}

export function textsOf(p: StructureNode | undefined, tag: number): string[] {
  return childrenOf(p, tag).flatMap((c) => (c.type === 'TextString' ? [c.value] : []));
}

/** 1.x response Attribute structures as { name, index, value }. */
export function attributes1x(p: StructureNode | undefined): { name: string; index: number; value: TtlvNode | undefined }[] {
  return childrenOf(p, Tag.Attribute).map((a) => {
    const s = a as StructureNode;
    const n = s.value.find((c) => c.tag === Tag.AttributeName);
    const i = s.value.find((c) => c.tag === Tag.AttributeIndex);
    return {
      name: n?.type === 'TextString' ? n.value : '?',
      index: i?.type === 'Integer' ? i.value : 0,
      value: s.value.find((c) => c.tag === Tag.AttributeValue),
    };
  });
}

/** 1.x Attribute structure for a request. */
export function attribute1x(name: string, value: TtlvNode, index?: number): StructureNode {
  const c: TtlvNode[] = [T.text(Tag.AttributeName, name)];
  if (index !== undefined) c.push(T.int(Tag.AttributeIndex, index));
  c.push({ ...value, tag: Tag.AttributeValue } as TtlvNode);
  return T.struct(Tag.Attribute, c);
}

/** 2.x vendor attribute (Attribute structure of Vendor Identification, Attribute Name, Attribute Value). */
export function vendorAttribute(vendor: string, name: string, value: TtlvNode): StructureNode {
  return T.struct(Tag.Attribute, [T.text(Tag.VendorIdentification, vendor), T.text(Tag.AttributeName, name), { ...value, tag: Tag.AttributeValue } as TtlvNode]);
}

export function vendorReference(vendor: string, name: string): StructureNode {
  return T.struct(Tag.AttributeReference, [T.text(Tag.VendorIdentification, vendor), T.text(Tag.AttributeName, name)]);
}
