/**
 * Helpers for the cryptographic service operation tests: registering known keys, building
 * Cryptographic Parameters, and calling Encrypt / Decrypt / MAC / Hash / Sign in one shot or in
 * parts.
 */
import type { KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Masks, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import type { Engine, ItemResult } from '../helpers/engine.js';
import { OK, OP, a, activation, bytes, nowS, template, text } from './_keys.js';

export const M = Masks.CryptographicUsageMask;
export const ALG = Enums.CryptographicAlgorithm;
export const MODE = Enums.BlockCipherMode;
export const PAD = Enums.PaddingMethod;
export const HASH = Enums.HashingAlgorithm;
export const OT = Enums.ObjectType;
export const KFT = Enums.KeyFormatType;
export const VI = Enums.ValidityIndicator;

export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

export interface ParamFields {
  mode?: number;
  padding?: number;
  hash?: number;
  algorithm?: number;
  randomIV?: boolean;
  tagLength?: number;
  saltLength?: number;
  mgfHash?: number;
  dsa?: number;
  counterLength?: number;
  ivLength?: number;
}

/** A Cryptographic Parameters structure (request field and attribute value alike). */
export function params(p: ParamFields): StructureNode {
  const c: TtlvNode[] = [];
  if (p.mode !== undefined) c.push(T.enum(Tag.BlockCipherMode, p.mode));
  if (p.padding !== undefined) c.push(T.enum(Tag.PaddingMethod, p.padding));
  if (p.hash !== undefined) c.push(T.enum(Tag.HashingAlgorithm, p.hash));
  if (p.dsa !== undefined) c.push(T.enum(Tag.DigitalSignatureAlgorithm, p.dsa));
  if (p.algorithm !== undefined) c.push(T.enum(Tag.CryptographicAlgorithm, p.algorithm));
  if (p.randomIV !== undefined) c.push(T.bool(Tag.RandomIV, p.randomIV));
  if (p.ivLength !== undefined) c.push(T.int(Tag.IVLength, p.ivLength));
  if (p.tagLength !== undefined) c.push(T.int(Tag.TagLength, p.tagLength));
  if (p.counterLength !== undefined) c.push(T.int(Tag.CounterLength, p.counterLength));
  if (p.saltLength !== undefined) c.push(T.int(Tag.SaltLength, p.saltLength));
  if (p.mgfHash !== undefined) {
    c.push(T.enum(Tag.MaskGenerator, Enums.MaskGenerator.MGF1));
    c.push(T.enum(Tag.MaskGeneratorHashingAlgorithm, p.mgfHash));
  }
  return T.struct(Tag.CryptographicParameters, c);
}

export const paramsAttr = (p: ParamFields): KmipAttribute => a('Cryptographic Parameters', params(p));

export interface KeyOptions {
  version?: KmipVersion;
  identity?: string;
  mask?: number;
  /** Extra attributes (Usage Limits, dates, Cryptographic Parameters...). */
  attrs?: KmipAttribute[];
  /** Default: active since an hour ago. */
  active?: boolean;
  length?: number;
}

/** Registers a symmetric key (Raw) and returns its uid. */
export async function registerSymmetric(engine: Engine, key: Buffer, algorithm: number, o: KeyOptions = {}): Promise<string> {
  const version = o.version ?? '1.4';
  const attrs: KmipAttribute[] = [a('Cryptographic Usage Mask', T.int(Tag.CryptographicUsageMask, o.mask ?? M.Encrypt | M.Decrypt))];
  if (o.active !== false) attrs.push(activation(nowS() - 3600n));
  attrs.push(...(o.attrs ?? []));
  const block = T.struct(Tag.KeyBlock, [
    T.enum(Tag.KeyFormatType, KFT.Raw),
    T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, key)]),
    T.enum(Tag.CryptographicAlgorithm, algorithm),
    T.int(Tag.CryptographicLength, o.length ?? key.length * 8),
  ]);
  const payload = [T.enum(Tag.ObjectType, OT.SymmetricKey), ...template(version, attrs), T.struct(Tag.SymmetricKey, [block])];
  const r = await engine.call(OP.Register, payload, { version, ...(o.identity ? { identity: o.identity } : {}) });
  if (r.status !== OK) throw new Error(`Register failed: ${r.reason} ${r.message}`);
  return text(r.payload, Tag.UniqueIdentifier)!;
}

/** Registers a private or public key in a DER format and returns its uid. */
export async function registerAsymmetric(
  engine: Engine,
  objectType: number,
  format: number,
  der: Buffer,
  algorithm: number,
  length: number,
  o: KeyOptions = {},
): Promise<string> {
  const version = o.version ?? '1.4';
  const attrs: KmipAttribute[] = [a('Cryptographic Usage Mask', T.int(Tag.CryptographicUsageMask, o.mask ?? (objectType === OT.PrivateKey ? M.Sign | M.Decrypt : M.Verify | M.Encrypt)))];
  if (o.active !== false) attrs.push(activation(nowS() - 3600n));
  attrs.push(...(o.attrs ?? []));
  const block = T.struct(Tag.KeyBlock, [
    T.enum(Tag.KeyFormatType, format),
    T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, der)]),
    T.enum(Tag.CryptographicAlgorithm, algorithm),
    T.int(Tag.CryptographicLength, length),
  ]);
  const tag = objectType === OT.PrivateKey ? Tag.PrivateKey : Tag.PublicKey;
  const payload = [T.enum(Tag.ObjectType, objectType), ...template(version, attrs), T.struct(tag, [block])];
  const r = await engine.call(OP.Register, payload, { version, ...(o.identity ? { identity: o.identity } : {}) });
  if (r.status !== OK) throw new Error(`Register failed: ${r.reason} ${r.message}`);
  return text(r.payload, Tag.UniqueIdentifier)!;
}

export interface CallOptions {
  version?: KmipVersion;
  identity?: string;
}

function opts(o: CallOptions): { version: KmipVersion; identity?: string } {
  return { version: o.version ?? '1.4', ...(o.identity ? { identity: o.identity } : {}) };
}

export interface CipherFields {
  params?: StructureNode;
  data?: Buffer;
  iv?: Buffer;
  aad?: Buffer;
  tag?: Buffer;
  cv?: Buffer;
  init?: boolean;
  final?: boolean;
}

export function cipherPayload(uid: string | undefined, f: CipherFields): TtlvNode[] {
  const p: TtlvNode[] = [];
  if (uid !== undefined) p.push(T.text(Tag.UniqueIdentifier, uid));
  if (f.params) p.push(f.params);
  if (f.data) p.push(T.bytes(Tag.Data, f.data));
  if (f.iv) p.push(T.bytes(Tag.IVCounterNonce, f.iv));
  if (f.cv) p.push(T.bytes(Tag.CorrelationValue, f.cv));
  if (f.init !== undefined) p.push(T.bool(Tag.InitIndicator, f.init));
  if (f.final !== undefined) p.push(T.bool(Tag.FinalIndicator, f.final));
  if (f.aad) p.push(T.bytes(Tag.AuthenticatedEncryptionAdditionalData, f.aad));
  if (f.tag) p.push(T.bytes(Tag.AuthenticatedEncryptionTag, f.tag));
  return p;
}

export function encrypt(engine: Engine, uid: string | undefined, f: CipherFields, o: CallOptions = {}): Promise<ItemResult> {
  return engine.call(OP.Encrypt, cipherPayload(uid, f), opts(o));
}

export function decrypt(engine: Engine, uid: string | undefined, f: CipherFields, o: CallOptions = {}): Promise<ItemResult> {
  return engine.call(OP.Decrypt, cipherPayload(uid, f), opts(o));
}

/** Data of a response ('' hex when absent). */
export function dataHex(r: ItemResult): string | undefined {
  return bytes(r.payload, Tag.Data)?.toString('hex');
}

export function fieldHex(r: ItemResult, tag: number): string | undefined {
  return bytes(r.payload, tag)?.toString('hex');
}

/** Runs a stream of parts through `op` and returns every response; the first part carries `first`. */
export async function streamParts(
  engine: Engine,
  op: number,
  uid: string | undefined,
  parts: Buffer[],
  first: Omit<CipherFields, 'data' | 'cv' | 'init' | 'final'> & { extra?: TtlvNode[] },
  last: { extra?: TtlvNode[]; tag?: Buffer } = {},
  o: CallOptions = {},
): Promise<ItemResult[]> {
  const out: ItemResult[] = [];
  let cv: Buffer | undefined;
  for (let i = 0; i < parts.length; i++) {
    const isFirst = i === 0;
    const isLast = i === parts.length - 1;
    const f: CipherFields = { data: parts[i]! };
    if (isFirst) Object.assign(f, { params: first.params, iv: first.iv, aad: first.aad, init: true });
    else f.cv = cv!;
    if (isLast) {
      f.final = true;
      if (last.tag) f.tag = last.tag;
    }
    const extra = [...(isFirst ? (first.extra ?? []) : []), ...(isLast ? (last.extra ?? []) : [])];
    const payload = [...cipherPayload(uid, Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)) as CipherFields), ...extra];
    const r = await engine.call(op, payload, opts(o));
    out.push(r);
    if (r.status !== OK) break;
    if (isFirst) cv = bytes(r.payload, Tag.CorrelationValue);
  }
  return out;
}

export function dataOf(rs: ItemResult[], tag: number = Tag.Data): Buffer {
  return Buffer.concat(rs.map((r) => bytes(r.payload, tag) ?? Buffer.alloc(0)));
}
