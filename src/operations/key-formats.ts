/**
 * Asymmetric keys (Private Key, Public Key objects) in their Key Format Types, and the
 * conversions between them. Every key is read and written by node:crypto (createPrivateKey /
 * createPublicKey with DER or JWK input, KeyObject.export): the DER formats directly, the
 * transparent ones through JWK. DSA keys have no JWK form in node:crypto: their transparent
 * formats go through the PKCS#8 / SubjectPublicKeyInfo DER (RFC 3279 §2.3.2 Dss-Parms, RFC 5958),
 * built and read with asn1js; node:crypto still parses and checks that DER.
 *
 * Formats (KMIP 1.4 §9.1.3.2.3 Key Format Type; 2.1 §11 "Key Format Type"; the transparent
 * structures: 1.4 §2.1.7, 2.1 §2.1.7 "Transparent ... Key"):
 *
 *                      RSA                             EC (P-256, P-384, P-521, secp256k1)
 *   Private Key        PKCS#1, PKCS#8,                 EC Private Key (SEC1 / RFC 5915), PKCS#8,
 *                      Transparent RSA Private Key     Transparent EC Private Key (1.3+),
 *                                                      Transparent ECDSA/ECDH/ECMQV Private Key (1.x)
 *   Public Key         PKCS#1, X.509 (SPKI),           X.509 (SPKI),
 *                      Transparent RSA Public Key      Transparent EC Public Key (1.3+),
 *                                                      Transparent ECDSA/ECDH/ECMQV Public Key (1.x)
 *
 *                      DSA (registered; kmipd does not generate DSA keys)
 *   Private Key        PKCS#8, Transparent DSA Private Key (P, Q, G, X)
 *   Public Key         X.509 (SPKI), Transparent DSA Public Key (P, Q, G, Y)
 *
 * Transparent RSA Private Key: Modulus, Private Exponent, Public Exponent, P, Q, Prime Exponent
 * P, Prime Exponent Q, CRT Coefficient, all Big Integers (every field optional in the spec;
 * kmipd needs the modulus and enough of the rest to rebuild the key: the primes are recovered
 * from n, e, d when absent). Transparent EC Private Key: Recommended Curve, D (Big Integer).
 * Transparent EC Public Key: Recommended Curve, Q String (Byte String, the SEC1 point).
 * Transparent DSA keys: the domain parameters P, Q, G and X (private) or Y (public), all Big
 * Integers; the parameters are checked (Q divides P-1, G of order Q, 0 < X < Q, Y of order Q)
 * and a private key's Y is computed from X.
 *
 * Key Compression Type (1.4 §9.1.3.2.2) applies to EC public points: Uncompressed is always
 * accepted; X9.62 Compressed Prime is honoured for the Q String of a transparent EC public key.
 *
 * Error messages never hold key material (node:crypto's own messages are not passed on).
 */
import * as asn1js from 'asn1js';
import { ECDH, type KeyObject, createECDH, createPrivateKey, createPublicKey } from 'node:crypto';
import { KmipError } from '../codec/errors.js';
import { opt, optValue, reqValue } from '../codec/node.js';
import { Enums, Tag, enumValueName } from '../spec/index.js';
import { encodeTtlv, T, type StructureNode, type TtlvNode } from '../ttlv/index.js';

const KFT = Enums.KeyFormatType;
const OT = Enums.ObjectType;
const ALG = Enums.CryptographicAlgorithm;
const RC = Enums.RecommendedCurve;
const KCT = Enums.KeyCompressionType;

export function formatName(f: number): string {
  return enumValueName('KeyFormatType', f) ?? `Key Format Type ${f}`;
}

// ---------------------------------------------------------------------------------------------
// Curves

export interface Curve {
  /** OpenSSL's name (node:crypto namedCurve). */
  name: string;
  /** JWK "crv" (the curves node:crypto imports and exports as JWK). */
  jwk: string;
  recommended: number;
  bits: number;
}

/** The curves kmipd generates, stores and converts. */
export const CURVES: readonly Curve[] = [
  { name: 'prime256v1', jwk: 'P-256', recommended: RC.P_256, bits: 256 },
  { name: 'secp384r1', jwk: 'P-384', recommended: RC.P_384, bits: 384 },
  { name: 'secp521r1', jwk: 'P-521', recommended: RC.P_521, bits: 521 },
  { name: 'secp256k1', jwk: 'secp256k1', recommended: RC.SECP256K1, bits: 256 },
];

export function curveByName(name: string | undefined): Curve | undefined {
  return CURVES.find((c) => c.name === name);
}

export function curveByRecommended(rc: number): Curve | undefined {
  return CURVES.find((c) => c.recommended === rc);
}

function curveName(rc: number): string {
  return enumValueName('RecommendedCurve', rc) ?? `curve ${rc}`;
}

function checkedCurve(rc: number): Curve {
  const c = curveByRecommended(rc);
  if (!c) throw new KmipError('FeatureNotSupported', `kmipd keeps EC keys on P-256, P-384, P-521 and secp256k1, not ${curveName(rc)}`);
  return c;
}

// ---------------------------------------------------------------------------------------------
// What kmipd knows about a key

/** RSA, EC or DSA: the key types kmipd keeps as Private / Public Key objects. */
export type KeyKind = 'rsa' | 'ec' | 'dsa';

export interface KeyFacts {
  kind: KeyKind;
  /** Cryptographic Algorithm: RSA, EC or DSA. */
  algorithm: number;
  /** Cryptographic Length: RSA modulus bits, the curve's bits, or the bits of DSA's P. */
  length: number;
  curve?: Curve;
  /** RSA public exponent. */
  publicExponent?: bigint;
}

/** The algorithm, length and curve of a node:crypto key; Feature Not Supported for other key types. */
export function keyFacts(key: KeyObject): KeyFacts {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') {
    const facts: KeyFacts = { kind: 'rsa', algorithm: ALG.RSA, length: d?.modulusLength ?? 0 };
    if (d?.publicExponent !== undefined) facts.publicExponent = d.publicExponent;
    return facts;
  }
  if (key.asymmetricKeyType === 'ec') {
    const curve = curveByName(d?.namedCurve);
    if (!curve) throw new KmipError('FeatureNotSupported', `kmipd keeps EC keys on P-256, P-384, P-521 and secp256k1, not ${d?.namedCurve ?? 'an unnamed curve'}`);
    return { kind: 'ec', algorithm: ALG.EC, length: curve.bits, curve };
  }
  if (key.asymmetricKeyType === 'dsa') return { kind: 'dsa', algorithm: ALG.DSA, length: d?.modulusLength ?? 0 };
  throw new KmipError('FeatureNotSupported', `kmipd keeps RSA, EC and DSA keys, not ${key.asymmetricKeyType ?? 'this key type'}`);
}

/** Cryptographic Algorithm values a client may declare for a key of this kind (1.x names EC keys ECDSA, ECDH or ECMQV). */
export function algorithmsFor(kind: KeyKind): readonly number[] {
  if (kind === 'rsa') return [ALG.RSA];
  if (kind === 'dsa') return [ALG.DSA];
  return [ALG.EC, ALG.ECDSA, ALG.ECDH, ALG.ECMQV];
}

/** "an RSA", "an EC", "a DSA": for messages. */
export function kindArticle(kind: KeyKind): string {
  return kind === 'rsa' ? 'an RSA' : kind === 'ec' ? 'an EC' : 'a DSA';
}

// ---------------------------------------------------------------------------------------------
// Formats

const TRANSPARENT_EC_PRIVATE: readonly number[] = [KFT.TransparentECPrivateKey, KFT.TransparentECDSAPrivateKey, KFT.TransparentECDHPrivateKey, KFT.TransparentECMQVPrivateKey];
const TRANSPARENT_EC_PUBLIC: readonly number[] = [KFT.TransparentECPublicKey, KFT.TransparentECDSAPublicKey, KFT.TransparentECDHPublicKey, KFT.TransparentECMQVPublicKey];

/** The formats a key of `kind` can be returned in, for Private Key (true) or Public Key objects. */
export function formatsFor(kind: KeyKind, isPrivate: boolean): readonly number[] {
  if (kind === 'rsa') return isPrivate ? [KFT.PKCS_1, KFT.PKCS_8, KFT.TransparentRSAPrivateKey] : [KFT.PKCS_1, KFT.X_509, KFT.TransparentRSAPublicKey];
  if (kind === 'dsa') return isPrivate ? [KFT.PKCS_8, KFT.TransparentDSAPrivateKey] : [KFT.X_509, KFT.TransparentDSAPublicKey];
  return isPrivate ? [KFT.ECPrivateKey, KFT.PKCS_8, ...TRANSPARENT_EC_PRIVATE] : [KFT.X_509, ...TRANSPARENT_EC_PUBLIC];
}

/** The format kmipd stores a generated key in (and Get returns by default). */
export function defaultFormat(kind: KeyKind, isPrivate: boolean): number {
  if (kind === 'rsa') return KFT.PKCS_1;
  if (kind === 'dsa') return isPrivate ? KFT.PKCS_8 : KFT.X_509;
  return isPrivate ? KFT.ECPrivateKey : KFT.X_509;
}

function isPrivateType(objectType: number): boolean {
  if (objectType === OT.PrivateKey) return true;
  if (objectType === OT.PublicKey) return false;
  throw new KmipError('InternalServerError', 'not an asymmetric key object');
}

// ---------------------------------------------------------------------------------------------
// Big Integers <-> bytes (unsigned, big-endian)

function bytesToBig(b: Uint8Array): bigint {
  if (b.length === 0) return 0n;
  return BigInt('0x' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex'));
}

/** Minimal unsigned big-endian bytes; `size` pads on the left. */
function bigToBytes(v: bigint, size = 0): Buffer {
  if (v < 0n) throw new KmipError('InvalidField', 'a key component must not be negative');
  let hex = v.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  const b = v === 0n ? Buffer.alloc(0) : Buffer.from(hex, 'hex');
  if (b.length >= size) return b;
  return Buffer.concat([Buffer.alloc(size - b.length), b]);
}

const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
const fromB64u = (s: unknown): Buffer => {
  if (typeof s !== 'string') throw new KmipError('InternalServerError', 'node:crypto returned an incomplete JWK');
  return Buffer.from(s, 'base64url');
};

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let r = 1n;
  let b = base % mod;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % mod;
    b = (b * b) % mod;
    e >>= 1n;
  }
  return r;
}

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b < 0n ? -b : b;
  while (y) [x, y] = [y, x % y];
  return x;
}

function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [((a % m) + m) % m, m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  if (oldR !== 1n) throw new KmipError('InvalidField', 'the RSA key components are inconsistent');
  return ((oldS % m) + m) % m;
}

/** The primes of n from (n, e, d) (the standard randomised factoring; NIST SP 800-56B C.2). */
function recoverPrimes(n: bigint, e: bigint, d: bigint): [bigint, bigint] {
  const k = d * e - 1n;
  if (k <= 0n || k % 2n !== 0n) throw new KmipError('InvalidField', 'the RSA key components are inconsistent');
  let t = k;
  let s = 0;
  while (t % 2n === 0n) {
    t /= 2n;
    s++;
  }
  for (let g = 2n; g < 200n; g++) {
    let x = modPow(g, t, n);
    if (x === 1n || x === n - 1n) continue;
    for (let i = 0; i < s; i++) {
      const y = (x * x) % n;
      if (y === 1n) {
        const p = gcd(x - 1n, n);
        if (p > 1n && p < n) return p > n / p ? [p, n / p] : [n / p, p];
        break;
      }
      if (y === n - 1n) break;
      x = y;
    }
  }
  throw new KmipError('InvalidField', 'the RSA key components are inconsistent');
}

// ---------------------------------------------------------------------------------------------
// Import: Key Material in a Key Format Type -> KeyObject

function badMaterial(format: number): never {
  throw new KmipError('InvalidField', `the Key Material is not a valid key in ${formatName(format)} format`);
}

function derOf(material: TtlvNode, format: number): Buffer {
  if (material.type !== 'ByteString') throw new KmipError('InvalidField', `${formatName(format)} Key Material must be a Byte String`);
  return Buffer.from(material.value.buffer, material.value.byteOffset, material.value.byteLength);
}

function bigField(s: StructureNode, tag: number): bigint | undefined {
  const v = optValue(s, tag, 'BigInteger');
  if (v !== undefined && v < 0n) throw new KmipError('InvalidField', 'a key component must not be negative');
  return v;
}

function structOf(material: TtlvNode, format: number): StructureNode {
  if (material.type !== 'Structure') throw new KmipError('InvalidField', `${formatName(format)} Key Material must be a Structure`);
  return material;
}

function rsaPrivateFromTransparent(s: StructureNode): KeyObject {
  const n = bigField(s, Tag.Modulus);
  if (n === undefined || n <= 1n) throw new KmipError('MissingData', 'a Transparent RSA Private Key needs its Modulus');
  let e = bigField(s, Tag.PublicExponent);
  let d = bigField(s, Tag.PrivateExponent);
  let p = bigField(s, Tag.P);
  let q = bigField(s, Tag.Q);
  if ((p === undefined) !== (q === undefined)) throw new KmipError('MissingData', 'a Transparent RSA Private Key needs both primes P and Q, or neither');
  if (p !== undefined && q !== undefined) {
    if (p * q !== n) throw new KmipError('InvalidField', 'the RSA key components are inconsistent');
    const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
    if (e === undefined && d !== undefined) e = modInverse(d, lambda);
    if (d === undefined && e !== undefined) d = modInverse(e, lambda);
  }
  if (e === undefined || d === undefined) throw new KmipError('MissingData', 'a Transparent RSA Private Key needs its exponents (or the primes and one exponent)');
  if (p === undefined || q === undefined) [p, q] = recoverPrimes(n, e, d);
  const dp = bigField(s, Tag.PrimeExponentP) ?? d % (p - 1n);
  const dq = bigField(s, Tag.PrimeExponentQ) ?? d % (q - 1n);
  const qi = bigField(s, Tag.CRTCoefficient) ?? modInverse(q, p);
  const jwk = {
    kty: 'RSA',
    n: b64u(bigToBytes(n)),
    e: b64u(bigToBytes(e)),
    d: b64u(bigToBytes(d)),
    p: b64u(bigToBytes(p)),
    q: b64u(bigToBytes(q)),
    dp: b64u(bigToBytes(dp)),
    dq: b64u(bigToBytes(dq)),
    qi: b64u(bigToBytes(qi)),
  };
  try {
    return createPrivateKey({ key: jwk, format: 'jwk' });
  } catch {
    return badMaterial(KFT.TransparentRSAPrivateKey);
  }
}

function rsaPublicFromTransparent(s: StructureNode): KeyObject {
  const n = bigField(s, Tag.Modulus);
  const e = bigField(s, Tag.PublicExponent);
  if (n === undefined || e === undefined) throw new KmipError('MissingData', 'a Transparent RSA Public Key needs its Modulus and Public Exponent');
  try {
    return createPublicKey({ key: { kty: 'RSA', n: b64u(bigToBytes(n)), e: b64u(bigToBytes(e)) }, format: 'jwk' });
  } catch {
    return badMaterial(KFT.TransparentRSAPublicKey);
  }
}

function curveBytes(c: Curve): number {
  return Math.ceil(c.bits / 8);
}

/** An uncompressed SEC1 point (04 || X || Y) from any SEC1 encoding of it (compressed points included). */
function uncompressedPoint(c: Curve, q: Uint8Array, format: number): Buffer {
  try {
    return ecdhConvert(q, c.name, 'uncompressed');
  } catch {
    return badMaterial(format);
  }
}

/** A SEC1 point in another form (node:crypto's ECDH.convertKey). */
function ecdhConvert(point: Uint8Array, curve: string, form: 'uncompressed' | 'compressed'): Buffer {
  const out = ECDH.convertKey(Buffer.from(point), curve, undefined, undefined, form);
  return typeof out === 'string' ? Buffer.from(out, 'latin1') : out;
}

function jwkPoint(c: Curve, uncompressed: Buffer): { x: string; y: string } {
  const size = curveBytes(c);
  if (uncompressed.length !== 1 + 2 * size || uncompressed[0] !== 4) throw new KmipError('InvalidField', 'the EC point is not on the curve');
  return { x: b64u(uncompressed.subarray(1, 1 + size)), y: b64u(uncompressed.subarray(1 + size)) };
}

function ecPrivateFromTransparent(s: StructureNode, format: number): KeyObject {
  const c = checkedCurve(reqValue(s, Tag.RecommendedCurve, 'Enumeration'));
  const d = bigField(s, Tag.D);
  if (d === undefined || d === 0n) throw new KmipError('MissingData', `a ${formatName(format)} needs its private value D`);
  const dBytes = bigToBytes(d, curveBytes(c));
  if (dBytes.length !== curveBytes(c)) return badMaterial(format);
  try {
    const ecdh = createECDH(c.name);
    ecdh.setPrivateKey(dBytes);
    const point = ecdh.getPublicKey();
    return createPrivateKey({ key: { kty: 'EC', crv: c.jwk, d: b64u(dBytes), ...jwkPoint(c, point) }, format: 'jwk' });
  } catch (e) {
    if (e instanceof KmipError) throw e;
    return badMaterial(format);
  } finally {
    dBytes.fill(0);
  }
}

function ecPublicFromTransparent(s: StructureNode, format: number): KeyObject {
  const c = checkedCurve(reqValue(s, Tag.RecommendedCurve, 'Enumeration'));
  const q = reqValue(s, Tag.QString, 'ByteString');
  const point = uncompressedPoint(c, q, format);
  try {
    return createPublicKey({ key: { kty: 'EC', crv: c.jwk, ...jwkPoint(c, point) }, format: 'jwk' });
  } catch (e) {
    if (e instanceof KmipError) throw e;
    return badMaterial(format);
  }
}

// DSA: PKCS#8 / SubjectPublicKeyInfo DER <-> P, Q, G, X / Y (RFC 3279 §2.3.2, RFC 5958).

const DSA_OID = '1.2.840.10040.4.1';
/** Larger P or Q than any DSA standard names (FIPS 186-4: P up to 3072 bits, Q up to 256) is refused before any arithmetic. */
const DSA_MAX_P_BITS = 15360;
const DSA_MAX_Q_BITS = 512;

export interface DsaComponents {
  p: bigint;
  q: bigint;
  g: bigint;
  /** The private value (private keys only). */
  x?: bigint;
  y: bigint;
}

function bitLength(v: bigint): number {
  return v <= 0n ? 0 : v.toString(2).length;
}

/** Checks the domain parameters a transparent DSA key names; Invalid Field when they cannot be a DSA group. */
function checkDsaDomain(p: bigint, q: bigint, g: bigint, format: number): void {
  if (bitLength(p) > DSA_MAX_P_BITS || bitLength(q) > DSA_MAX_Q_BITS) throw new KmipError('InvalidField', `the DSA parameters of this ${formatName(format)} are larger than kmipd accepts`);
  if (p <= 3n || q <= 1n || q >= p || (p - 1n) % q !== 0n) throw new KmipError('InvalidField', `the DSA parameters P and Q of this ${formatName(format)} are inconsistent (Q must divide P-1)`);
  if (g <= 1n || g >= p || modPow(g, q, p) !== 1n) throw new KmipError('InvalidField', `the DSA generator G of this ${formatName(format)} is not of order Q`);
}

function dsaParams(p: bigint, q: bigint, g: bigint): asn1js.Sequence {
  return new asn1js.Sequence({
    value: [new asn1js.ObjectIdentifier({ value: DSA_OID }), new asn1js.Sequence({ value: [asn1js.Integer.fromBigInt(p), asn1js.Integer.fromBigInt(q), asn1js.Integer.fromBigInt(g)] })],
  });
}

function dsaFromTransparent(s: StructureNode, isPrivate: boolean, format: number): KeyObject {
  const p = bigField(s, Tag.P);
  const q = bigField(s, Tag.Q);
  const g = bigField(s, Tag.G);
  const value = bigField(s, isPrivate ? Tag.X : Tag.Y);
  if (p === undefined || q === undefined || g === undefined || value === undefined) {
    throw new KmipError('MissingData', `a ${formatName(format)} needs P, Q, G and ${isPrivate ? 'X' : 'Y'}`);
  }
  checkDsaDomain(p, q, g, format);
  let der: ArrayBuffer;
  if (isPrivate) {
    if (value <= 0n || value >= q) throw new KmipError('InvalidField', `the private value X of this ${formatName(format)} is not between 0 and Q`);
    const x = new asn1js.OctetString({ valueHex: asn1js.Integer.fromBigInt(value).toBER() });
    der = new asn1js.Sequence({ value: [new asn1js.Integer({ value: 0 }), dsaParams(p, q, g), x] }).toBER();
  } else {
    if (value <= 1n || value >= p - 1n || modPow(value, q, p) !== 1n) throw new KmipError('InvalidField', `the public value Y of this ${formatName(format)} is not in the group of order Q`);
    const y = new asn1js.BitString({ valueHex: asn1js.Integer.fromBigInt(value).toBER() });
    der = new asn1js.Sequence({ value: [dsaParams(p, q, g), y] }).toBER();
  }
  const key = Buffer.from(der);
  try {
    // OpenSSL computes a PKCS#8 DSA key's public value Y = G^X mod P on import.
    return isPrivate ? createPrivateKey({ key, format: 'der', type: 'pkcs8' }) : createPublicKey({ key, format: 'der', type: 'spki' });
  } catch {
    return badMaterial(format);
  } finally {
    key.fill(0); // the DER (and the private value in it) is not kept
  }
}

/** The children of a DER SEQUENCE node:crypto produced (an InternalServerError when it is not one). */
function derSeq(b: unknown): asn1js.AsnType[] {
  if (!(b instanceof asn1js.Sequence)) throw new KmipError('InternalServerError', 'node:crypto exported an unexpected DSA key encoding');
  return b.valueBlock.value;
}

function derInt(b: asn1js.AsnType | undefined): bigint {
  if (!(b instanceof asn1js.Integer)) throw new KmipError('InternalServerError', 'node:crypto exported an unexpected DSA key encoding');
  return b.toBigInt();
}

function derParse(bytes: Uint8Array): asn1js.AsnType {
  const r = asn1js.fromBER(bytes);
  if (r.offset === -1 || r.offset !== bytes.byteLength) throw new KmipError('InternalServerError', 'node:crypto exported an unexpected DSA key encoding');
  return r.result;
}

/** P, Q, G, Y (and X for a private key) of a node:crypto DSA key, read from its own DER export. */
export function dsaComponents(key: KeyObject): DsaComponents {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const [alg, bits] = derSeq(derParse(publicKey.export({ type: 'spki', format: 'der' })));
  const [, params] = derSeq(alg);
  const [pB, qB, gB] = derSeq(params);
  if (!(bits instanceof asn1js.BitString)) throw new KmipError('InternalServerError', 'node:crypto exported an unexpected DSA key encoding');
  const out: DsaComponents = { p: derInt(pB), q: derInt(qB), g: derInt(gB), y: derInt(derParse(bits.valueBlock.valueHexView)) };
  if (key.type === 'private') {
    const der = key.export({ type: 'pkcs8', format: 'der' });
    try {
      const [, , priv] = derSeq(derParse(der));
      if (!(priv instanceof asn1js.OctetString)) throw new KmipError('InternalServerError', 'node:crypto exported an unexpected DSA key encoding');
      out.x = derInt(derParse(priv.valueBlock.valueHexView));
    } finally {
      der.fill(0);
    }
  }
  return out;
}

/**
 * The node:crypto key a Key Material in `format` holds, for a Private Key (`isPrivate`) or a
 * Public Key. Key Format Type Not Supported for formats kmipd does not read; Invalid Field for
 * material that is not a valid key in its format; Key Format Type Not Supported for an
 * encrypted PKCS#8 key (EncryptedPrivateKeyInfo: kmipd cannot know its password; Register keeps
 * it as registered, see isEncryptedPkcs8).
 */
export function importKey(isPrivate: boolean, format: number, material: TtlvNode): KeyObject {
  const der = (type: 'pkcs1' | 'pkcs8' | 'sec1' | 'spki'): KeyObject => {
    const bytes = derOf(material, format);
    try {
      return isPrivate ? createPrivateKey({ key: bytes, format: 'der', type: type as 'pkcs1' | 'pkcs8' | 'sec1' }) : createPublicKey({ key: bytes, format: 'der', type: type as 'pkcs1' | 'spki' });
    } catch (e) {
      if (isPrivate && type === 'pkcs8' && (e as { code?: unknown }).code === 'ERR_MISSING_PASSPHRASE') {
        throw new KmipError('KeyFormatTypeNotSupported', 'the key is an encrypted PKCS#8 key; kmipd cannot decrypt it');
      }
      return badMaterial(format);
    }
  };
  let key: KeyObject;
  if (isPrivate) {
    if (format === KFT.PKCS_1) key = der('pkcs1');
    else if (format === KFT.PKCS_8) key = der('pkcs8');
    else if (format === KFT.ECPrivateKey) key = der('sec1');
    else if (format === KFT.TransparentRSAPrivateKey) key = rsaPrivateFromTransparent(structOf(material, format));
    else if (TRANSPARENT_EC_PRIVATE.includes(format)) key = ecPrivateFromTransparent(structOf(material, format), format);
    else if (format === KFT.TransparentDSAPrivateKey) key = dsaFromTransparent(structOf(material, format), true, format);
    else throw new KmipError('KeyFormatTypeNotSupported', `kmipd does not read private keys in ${formatName(format)} format`);
  } else {
    if (format === KFT.PKCS_1) key = der('pkcs1');
    else if (format === KFT.X_509) key = der('spki');
    else if (format === KFT.TransparentRSAPublicKey) key = rsaPublicFromTransparent(structOf(material, format));
    else if (TRANSPARENT_EC_PUBLIC.includes(format)) key = ecPublicFromTransparent(structOf(material, format), format);
    else if (format === KFT.TransparentDSAPublicKey) key = dsaFromTransparent(structOf(material, format), false, format);
    else throw new KmipError('KeyFormatTypeNotSupported', `kmipd does not read public keys in ${formatName(format)} format`);
  }
  const facts = keyFacts(key);
  // A format that names the key type must hold that type (PKCS#1 parses RSA only; SEC1 EC only).
  if (format === KFT.TransparentRSAPrivateKey || format === KFT.TransparentRSAPublicKey) {
    if (facts.kind !== 'rsa') badMaterial(format);
  }
  return key;
}

/**
 * Whether a PKCS#8 private key's material is an EncryptedPrivateKeyInfo (RFC 5208 §6), asked
 * of node:crypto: such a key is registered as given, like a wrapped key (TC-ECC-2 registers one).
 */
export function isEncryptedPkcs8(format: number, material: TtlvNode | undefined): boolean {
  if (format !== KFT.PKCS_8 || material?.type !== 'ByteString') return false;
  try {
    createPrivateKey({ key: Buffer.from(material.value), format: 'der', type: 'pkcs8' });
    return false;
  } catch (e) {
    return (e as { code?: unknown }).code === 'ERR_MISSING_PASSPHRASE';
  }
}

// ---------------------------------------------------------------------------------------------
// Export: KeyObject -> Key Material in a Key Format Type

function compressionName(c: number): string {
  return enumValueName('KeyCompressionType', c) ?? `Key Compression Type ${c}`;
}

/**
 * The Key Material of `key` in `format` (a Byte String or a transparent Structure). Key Format
 * Type Not Supported when the format does not apply to the key; Key Compression Type Not
 * Supported for a compression kmipd does not produce for that format.
 */
export function exportKey(key: KeyObject, isPrivate: boolean, format: number, compression?: number): TtlvNode {
  const facts = keyFacts(key);
  if (!formatsFor(facts.kind, isPrivate).includes(format)) {
    const what = `${kindArticle(facts.kind)} ${isPrivate ? 'private' : 'public'} key`;
    throw new KmipError('KeyFormatTypeNotSupported', `${what} cannot be returned in ${formatName(format)} format`);
  }
  const compressed = compression === KCT.ECPublicKeyTypeX9_62CompressedPrime;
  if (compression !== undefined && compression !== KCT.ECPublicKeyTypeUncompressed) {
    const ok = compressed && facts.kind === 'ec' && TRANSPARENT_EC_PUBLIC.includes(format);
    if (!ok) throw new KmipError('KeyCompressionTypeNotSupported', `kmipd does not return ${formatName(format)} keys with ${compressionName(compression)}`);
  }
  if (compression !== undefined && facts.kind !== 'ec') {
    throw new KmipError('KeyCompressionTypeNotSupported', 'Key Compression Type applies to elliptic curve keys only');
  }
  const bytes = (b: Buffer): TtlvNode => T.bytes(Tag.KeyMaterial, b);
  switch (format) {
    case KFT.PKCS_1:
      return bytes(key.export({ type: 'pkcs1', format: 'der' }));
    case KFT.PKCS_8:
      return bytes(key.export({ type: 'pkcs8', format: 'der' }));
    case KFT.ECPrivateKey:
      return bytes(key.export({ type: 'sec1', format: 'der' }));
    case KFT.X_509:
      return bytes(key.export({ type: 'spki', format: 'der' }));
    default:
      break;
  }
  if (format === KFT.TransparentDSAPrivateKey || format === KFT.TransparentDSAPublicKey) {
    const c = dsaComponents(key);
    const last = isPrivate ? T.big(Tag.X, c.x ?? 0n) : T.big(Tag.Y, c.y);
    return T.struct(Tag.KeyMaterial, [T.big(Tag.P, c.p), T.big(Tag.Q, c.q), T.big(Tag.G, c.g), last]);
  }
  const jwk = key.export({ format: 'jwk' });
  const big = (tag: number, v: unknown): TtlvNode => T.big(tag, bytesToBig(fromB64u(v)));
  if (format === KFT.TransparentRSAPrivateKey) {
    return T.struct(Tag.KeyMaterial, [
      big(Tag.Modulus, jwk.n),
      big(Tag.PrivateExponent, jwk.d),
      big(Tag.PublicExponent, jwk.e),
      big(Tag.P, jwk.p),
      big(Tag.Q, jwk.q),
      big(Tag.PrimeExponentP, jwk.dp),
      big(Tag.PrimeExponentQ, jwk.dq),
      big(Tag.CRTCoefficient, jwk.qi),
    ]);
  }
  if (format === KFT.TransparentRSAPublicKey) return T.struct(Tag.KeyMaterial, [big(Tag.Modulus, jwk.n), big(Tag.PublicExponent, jwk.e)]);
  const curve = facts.curve!;
  const rc = T.enum(Tag.RecommendedCurve, curve.recommended);
  if (TRANSPARENT_EC_PRIVATE.includes(format)) return T.struct(Tag.KeyMaterial, [rc, big(Tag.D, jwk.d)]);
  // Transparent EC public key: the SEC1 point.
  const point = Buffer.concat([Buffer.from([4]), fromB64u(jwk.x), fromB64u(jwk.y)]);
  const q = compressed ? ecdhConvert(point, curve.name, 'compressed') : point;
  return T.struct(Tag.KeyMaterial, [rc, T.bytes(Tag.QString, q)]);
}

// ---------------------------------------------------------------------------------------------
// Key blocks and objects

/** The parts of an asymmetric key's Key Block. */
export interface AsymmetricBlock {
  format: number;
  /** The Key Value as received (kept whole when the key is wrapped). */
  keyValue: TtlvNode;
  /** The Key Material; undefined when the key is wrapped. */
  material?: TtlvNode;
  wrapping?: StructureNode;
  compression?: number;
  algorithm?: number;
  length?: number;
}

export function readAsymmetricBlock(block: StructureNode): AsymmetricBlock {
  const format = reqValue(block, Tag.KeyFormatType, 'Enumeration');
  const keyValue = block.value.find((c) => c.tag === Tag.KeyValue);
  if (!keyValue) throw new KmipError('MissingData', 'the Key Block has no Key Value');
  const parts: AsymmetricBlock = { format, keyValue };
  const compression = optValue(block, Tag.KeyCompressionType, 'Enumeration');
  if (compression !== undefined) parts.compression = compression;
  const wrapping = opt(block, Tag.KeyWrappingData, 'Structure');
  if (wrapping) parts.wrapping = wrapping;
  const algorithm = optValue(block, Tag.CryptographicAlgorithm, 'Enumeration');
  if (algorithm !== undefined) parts.algorithm = algorithm;
  const length = optValue(block, Tag.CryptographicLength, 'Integer');
  if (length !== undefined) parts.length = length;
  if (!wrapping) {
    if (keyValue.type !== 'Structure') throw new KmipError('InvalidField', 'an unwrapped Key Value must be a Structure');
    const material = keyValue.value.find((c) => c.tag === Tag.KeyMaterial);
    if (!material) throw new KmipError('MissingData', 'the Key Value has no Key Material');
    parts.material = material;
  }
  return parts;
}

/** The Private Key or Public Key structure with a Key Block of `format` / `material`. */
export function keyObjectNode(objectType: number, format: number, material: TtlvNode, algorithm: number, length: number): StructureNode {
  const block = T.struct(Tag.KeyBlock, [
    T.enum(Tag.KeyFormatType, format),
    T.struct(Tag.KeyValue, [material]),
    T.enum(Tag.CryptographicAlgorithm, algorithm),
    T.int(Tag.CryptographicLength, length),
  ]);
  return T.struct(objectType === OT.PrivateKey ? Tag.PrivateKey : Tag.PublicKey, [block]);
}

/** The bytes a Digest is computed over (1.4 §3.17): a Byte String's value, or the TTLV encoding of a structured Key Material. */
export function digestInput(material: TtlvNode): Buffer {
  if (material.type === 'ByteString') return Buffer.from(material.value);
  return encodeTtlv(material);
}

/** The key a stored Private Key / Public Key object holds (for Get, Re-key Key Pair and the cryptographic operations). */
export function storedKey(objectType: number, stored: StructureNode): { key: KeyObject; block: AsymmetricBlock } {
  const isPrivate = isPrivateType(objectType);
  const blockNode = opt(stored, Tag.KeyBlock, 'Structure');
  if (!blockNode) throw new KmipError('InternalServerError', 'the stored key has no Key Block');
  const block = readAsymmetricBlock(blockNode);
  if (block.wrapping || !block.material) throw new KmipError('KeyWrapTypeNotSupported', 'the key was registered wrapped and kmipd cannot unwrap it');
  return { key: importKey(isPrivate, block.format, block.material), block };
}

/**
 * Get's conversion of a stored Private Key / Public Key object (as created or registered) to
 * the Key Format Type and Key Compression Type asked for; undefined format: as stored.
 */
export function asymmetricInFormat(objectType: number, stored: StructureNode, requested: number | undefined, compression: number | undefined): StructureNode {
  const isPrivate = isPrivateType(objectType);
  const blockNode = opt(stored, Tag.KeyBlock, 'Structure');
  if (!blockNode) throw new KmipError('InternalServerError', 'the stored key has no Key Block');
  const block = readAsymmetricBlock(blockNode);
  const sameFormat = requested === undefined || requested === block.format;
  const plainCompression = compression === undefined || compression === KCT.ECPublicKeyTypeUncompressed;
  if (block.wrapping || !block.material) {
    if (sameFormat && compression === undefined) return stored;
    throw new KmipError('KeyFormatTypeNotSupported', `the key was registered wrapped in ${formatName(block.format)} format and cannot be converted`);
  }
  // As stored, nothing to convert: returned byte for byte without reading it (an encrypted
  // PKCS#8 key cannot be read).
  if (sameFormat && compression === undefined && block.compression === undefined) return stored;
  const key = importKey(isPrivate, block.format, block.material);
  const facts = keyFacts(key);
  if (compression !== undefined && facts.kind !== 'ec') throw new KmipError('KeyCompressionTypeNotSupported', 'Key Compression Type applies to elliptic curve keys only');
  // As stored: returned byte for byte (registered keys come back exactly as registered).
  if (sameFormat && plainCompression && block.compression === undefined) return stored;
  const format = requested ?? block.format;
  const material = exportKey(key, isPrivate, format, compression);
  return keyObjectNode(objectType, format, material, block.algorithm ?? facts.algorithm, block.length ?? facts.length);
}
