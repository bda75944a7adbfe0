/**
 * Helpers for the asymmetric key and certificate tests: Create Key Pair / Re-key Key Pair
 * payloads in the 1.x and 2.x shapes, and readers that turn what Get returns into node:crypto
 * keys independently of the server's own conversion code (DER through node:crypto, transparent
 * structures through JWK built here).
 */
import { ECDH, type KeyObject, createECDH, createPrivateKey, createPublicKey } from 'node:crypto';
import { attributesForVersion, isV2, type KmipAttribute } from '../../src/codec/attributes.js';
import { Enums, Tag, type KmipVersion } from '../../src/spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';
import type { Engine } from '../helpers/engine.js';
import { OK, OP, a, child, struct, text } from './_keys.js';

export const OT = Enums.ObjectType;
export const LT = Enums.LinkType;
export const KFT = Enums.KeyFormatType;
export const RC = Enums.RecommendedCurve;

export const usage = (v: number) => a('Cryptographic Usage Mask', T.int(Tag.CryptographicUsageMask, v));
export const curveParams = (rc: number) => a('Cryptographic Domain Parameters', T.struct(Tag.CryptographicDomainParameters, [T.enum(Tag.RecommendedCurve, rc)]));

/** One part (Common / Private / Public) of a Create Key Pair request in the version's shape. */
export function part(version: KmipVersion, v2Tag: number, v1Tag: number, attrs: KmipAttribute[]): TtlvNode[] {
  if (attrs.length === 0) return [];
  if (isV2(version)) return attributesForVersion(attrs, version, v2Tag);
  return [T.struct(v1Tag, attributesForVersion(attrs, version))];
}

export function pairPayload(version: KmipVersion, common: KmipAttribute[], priv: KmipAttribute[], pub: KmipAttribute[]): TtlvNode[] {
  return [
    ...part(version, Tag.CommonAttributes, Tag.CommonTemplateAttribute, common),
    ...part(version, Tag.PrivateKeyAttributes, Tag.PrivateKeyTemplateAttribute, priv),
    ...part(version, Tag.PublicKeyAttributes, Tag.PublicKeyTemplateAttribute, pub),
  ];
}

export interface Pair {
  priv: string;
  pub: string;
}

export async function createPair(engine: Engine, version: KmipVersion, common: KmipAttribute[], priv: KmipAttribute[] = [], pub: KmipAttribute[] = []): Promise<Pair> {
  const r = await engine.call(OP.CreateKeyPair, pairPayload(version, common, priv, pub), { version });
  if (r.status !== OK) throw new Error(`Create Key Pair failed: ${r.reason} ${r.message}`);
  return { priv: text(r.payload, Tag.PrivateKeyUniqueIdentifier)!, pub: text(r.payload, Tag.PublicKeyUniqueIdentifier)! };
}

/** Link targets of one Link Type among stored attribute values. */
export function linksOf(values: TtlvNode[], type: number): string[] {
  return values.flatMap((v) => {
    if (v.type !== 'Structure') return [];
    const lt = v.value.find((c) => c.tag === Tag.LinkType);
    const id = v.value.find((c) => c.tag === Tag.LinkedObjectIdentifier);
    return lt?.type === 'Enumeration' && lt.value === type && id?.type === 'TextString' ? [id.value] : [];
  });
}

/** The Key Block of a Get response's Private Key / Public Key. */
export function getBlock(payload: StructureNode | undefined): StructureNode | undefined {
  return struct(struct(payload, Tag.PrivateKey) ?? struct(payload, Tag.PublicKey), Tag.KeyBlock);
}

function bigOf(s: StructureNode, tag: number): Buffer {
  const n = child(s, tag);
  if (n?.type !== 'BigInteger') throw new Error(`no Big Integer ${tag.toString(16)}`);
  let hex = n.value.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  return Buffer.from(hex, 'hex');
}

const JWK_CURVES: Record<number, { crv: string; name: string; size: number }> = {
  [RC.P_256]: { crv: 'P-256', name: 'prime256v1', size: 32 },
  [RC.P_384]: { crv: 'P-384', name: 'secp384r1', size: 48 },
  [RC.P_521]: { crv: 'P-521', name: 'secp521r1', size: 66 },
  [RC.SECP256K1]: { crv: 'secp256k1', name: 'secp256k1', size: 32 },
};

function pad(b: Buffer, size: number): Buffer {
  return b.length >= size ? b : Buffer.concat([Buffer.alloc(size - b.length), b]);
}

/** The node:crypto key a Get response holds, read by the test itself. */
export function keyFromBlock(block: StructureNode, isPrivate: boolean): KeyObject {
  const f = child(block, Tag.KeyFormatType);
  const kv = struct(block, Tag.KeyValue);
  const km = child(kv, Tag.KeyMaterial);
  if (f?.type !== 'Enumeration' || !km) throw new Error('no key material');
  const format = f.value;
  if (km.type === 'ByteString') {
    const der = Buffer.from(km.value);
    const type = format === KFT.PKCS_1 ? 'pkcs1' : format === KFT.PKCS_8 ? 'pkcs8' : format === KFT.ECPrivateKey ? 'sec1' : 'spki';
    return isPrivate ? createPrivateKey({ key: der, format: 'der', type: type as 'pkcs1' }) : createPublicKey({ key: der, format: 'der', type: type as 'spki' });
  }
  if (km.type !== 'Structure') throw new Error('bad key material');
  const u = (b: Buffer) => b.toString('base64url');
  if (format === KFT.TransparentRSAPrivateKey) {
    const g = (t: number) => u(bigOf(km, t));
    return createPrivateKey({
      key: { kty: 'RSA', n: g(Tag.Modulus), e: g(Tag.PublicExponent), d: g(Tag.PrivateExponent), p: g(Tag.P), q: g(Tag.Q), dp: g(Tag.PrimeExponentP), dq: g(Tag.PrimeExponentQ), qi: g(Tag.CRTCoefficient) },
      format: 'jwk',
    });
  }
  if (format === KFT.TransparentRSAPublicKey) return createPublicKey({ key: { kty: 'RSA', n: u(bigOf(km, Tag.Modulus)), e: u(bigOf(km, Tag.PublicExponent)) }, format: 'jwk' });
  const rc = child(km, Tag.RecommendedCurve);
  if (rc?.type !== 'Enumeration') throw new Error('no curve');
  const c = JWK_CURVES[rc.value]!;
  if (isPrivate) {
    const d = pad(bigOf(km, Tag.D), c.size);
    const e = createECDH(c.name);
    e.setPrivateKey(d);
    const q = e.getPublicKey();
    return createPrivateKey({ key: { kty: 'EC', crv: c.crv, d: u(d), x: u(q.subarray(1, 1 + c.size)), y: u(q.subarray(1 + c.size)) }, format: 'jwk' });
  }
  const qs = child(km, Tag.QString);
  if (qs?.type !== 'ByteString') throw new Error('no Q String');
  const q = ECDH.convertKey(Buffer.from(qs.value), c.name, undefined, undefined, 'uncompressed') as Buffer;
  return createPublicKey({ key: { kty: 'EC', crv: c.crv, x: u(q.subarray(1, 1 + c.size)), y: u(q.subarray(1 + c.size)) }, format: 'jwk' });
}

export function formatOf(block: StructureNode | undefined): number | undefined {
  const f = child(block, Tag.KeyFormatType);
  return f?.type === 'Enumeration' ? f.value : undefined;
}
