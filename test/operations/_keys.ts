/**
 * Helpers for the object and lifecycle operation tests (Create, Register, Get, Activate,
 * Revoke, Destroy, Re-key, Check): request payloads in the 1.x and 2.x shapes and readers of
 * what the engine answers and stores.
 */
import { attributesForVersion, isV2, type KmipAttribute } from '../../src/codec/attributes.js';
import type { StoredObject } from '../../src/keystore/types.js';
import { Enums, Tag, enumValueByName, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import type { Engine, ItemResult } from '../helpers/engine.js';

export const OK = Enums.ResultStatus.Success;
export const FAILED = Enums.ResultStatus.OperationFailed;
export const OP = Enums.Operation;
export const ALG = Enums.CryptographicAlgorithm;
export const ST = Enums.State;
export const KFT = Enums.KeyFormatType;

export const V1: readonly KmipVersion[] = ['1.0', '1.4'];
export const V2: readonly KmipVersion[] = ['2.0', '2.1'];
export const ALL: readonly KmipVersion[] = [...V1, ...V2];

export function reason(name: string): number {
  const v = enumValueByName('ResultReason', name);
  if (v === undefined) throw new Error(`no Result Reason ${name}`);
  return v;
}

export function a(name: string, value: TtlvNode): KmipAttribute {
  return { name, index: 0, value };
}

export const alg = (v: number) => a('Cryptographic Algorithm', T.enum(Tag.CryptographicAlgorithm, v));
export const len = (v: number) => a('Cryptographic Length', T.int(Tag.CryptographicLength, v));
export const mask = (v: number) => a('Cryptographic Usage Mask', T.int(Tag.CryptographicUsageMask, v));
export const date = (name: string, tag: number, s: bigint) => a(name, T.date(tag, s));
export const activation = (s: bigint) => date('Activation Date', Tag.ActivationDate, s);
export const deactivation = (s: bigint) => date('Deactivation Date', Tag.DeactivationDate, s);
export const nameA = (v: string) =>
  a('Name', T.struct(Tag.Name, [T.text(Tag.NameValue, v), T.enum(Tag.NameType, Enums.NameType.UninterpretedTextString)]));

export function nowS(): bigint {
  return BigInt(Math.floor(Date.now() / 1000));
}

/** The request's attributes: a 1.x Template-Attribute, or a 2.x Attributes structure. */
export function template(version: KmipVersion, attrs: KmipAttribute[]): TtlvNode[] {
  if (isV2(version)) return attributesForVersion(attrs, version);
  return [T.struct(Tag.TemplateAttribute, attributesForVersion(attrs, version))];
}

export function uidNode(uid: string): TtlvNode {
  return T.text(Tag.UniqueIdentifier, uid);
}

export function createPayload(version: KmipVersion, attrs: KmipAttribute[], objectType: number = Enums.ObjectType.SymmetricKey): TtlvNode[] {
  return [T.enum(Tag.ObjectType, objectType), ...template(version, attrs)];
}

export const AES256 = (): KmipAttribute[] => [alg(ALG.AES), len(256), mask(12)];

/** Creates a key and returns its uid; fails the caller's test through the thrown error otherwise. */
export async function createKey(engine: Engine, version: KmipVersion, attrs: KmipAttribute[] = AES256(), identity?: string): Promise<string> {
  const r = await engine.call(OP.Create, createPayload(version, attrs), { version, ...(identity ? { identity } : {}) });
  if (r.status !== OK) throw new Error(`Create failed: ${r.reason} ${r.message}`);
  const u = text(r.payload, Tag.UniqueIdentifier);
  if (!u) throw new Error('Create returned no uid');
  return u;
}

export function child(p: StructureNode | undefined, tag: number): TtlvNode | undefined {
  return p?.value.find((c) => c.tag === tag);
}

export function struct(p: StructureNode | undefined, tag: number): StructureNode | undefined {
  const c = child(p, tag);
  return c?.type === 'Structure' ? c : undefined;
}

export function text(p: StructureNode | undefined, tag: number): string | undefined {
  const c = child(p, tag);
  return c?.type === 'TextString' ? c.value : undefined;
}

export function enumValue(p: StructureNode | undefined, tag: number): number | undefined {
  const c = child(p, tag);
  return c?.type === 'Enumeration' ? c.value : undefined;
}

export function bytes(p: StructureNode | undefined, tag: number): Buffer | undefined {
  const c = child(p, tag);
  return c?.type === 'ByteString' ? Buffer.from(c.value) : undefined;
}

/** The Key Block of a Get response's Symmetric Key (or Secret Data). */
export function keyBlock(p: StructureNode | undefined, objectTag: number = Tag.SymmetricKey): StructureNode | undefined {
  return struct(struct(p, objectTag), Tag.KeyBlock);
}

/** The key bytes of a Get response in Raw or Transparent Symmetric Key format. */
export function keyBytes(p: StructureNode | undefined, objectTag: number = Tag.SymmetricKey): Buffer | undefined {
  const kv = struct(keyBlock(p, objectTag), Tag.KeyValue);
  const km = child(kv, Tag.KeyMaterial);
  if (km?.type === 'ByteString') return Buffer.from(km.value);
  if (km?.type === 'Structure') return bytes(km, Tag.Key);
  return undefined;
}

export async function get(engine: Engine, uid: string, version: KmipVersion = '1.4', extra: TtlvNode[] = [], identity?: string): Promise<ItemResult> {
  return engine.call(OP.Get, [uidNode(uid), ...extra], { version, ...(identity ? { identity } : {}) });
}

export async function stored(engine: Engine, uid: string): Promise<StoredObject> {
  const o = await engine.store.get(uid);
  if (!o) throw new Error(`no stored object ${uid}`);
  return o;
}

export function attrValues(o: StoredObject, name: string): TtlvNode[] {
  return o.attributes.filter((x) => x.name === name).sort((x, y) => x.index - y.index).map((x) => x.value);
}

export function attrValue(o: StoredObject, name: string): TtlvNode | undefined {
  return attrValues(o, name)[0];
}

export function scalar(n: TtlvNode | undefined): number | bigint | boolean | string | undefined {
  if (!n || n.type === 'Structure' || n.type === 'ByteString') return undefined;
  return n.value;
}

export function revokePayload(uid: string, code: number, occurrence?: bigint, message?: string): TtlvNode[] {
  const rr: TtlvNode[] = [T.enum(Tag.RevocationReasonCode, code)];
  if (message !== undefined) rr.push(T.text(Tag.RevocationMessage, message));
  const p: TtlvNode[] = [uidNode(uid), T.struct(Tag.RevocationReason, rr)];
  if (occurrence !== undefined) p.push(T.date(Tag.CompromiseOccurrenceDate, occurrence));
  return p;
}

/** Names of the 1.x reason a 2.x-only reason becomes, for assertions over both generations. */
export function expectedReason(version: KmipVersion, v2: string, v1: string): number {
  return reason(isV2(version) ? v2 : v1);
}

/** The reason for a Unique Identifier that names no object this client may see: Object Not Found from 2.0, Item Not Found before. */
export function notFound(version: KmipVersion): number {
  return expectedReason(version, 'ObjectNotFound', 'ItemNotFound');
}
