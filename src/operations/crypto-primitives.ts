/**
 * Constructions node:crypto does not offer directly, built only from node:crypto primitives
 * (createHash, createCipheriv aes-*-ecb, randomBytes, and raw RSA through publicEncrypt /
 * privateDecrypt / privateEncrypt with RSA_NO_PADDING):
 *
 * - RSAES-OAEP (RFC 8017 §7.1) with an MGF1 hash other than the OAEP hash (node's oaepHash
 *   drives both): CS-AC-M-OAEP-7..10 use SHA-384 with MGF1-SHA-256. When the two hashes are the
 *   same the callers use node's own OAEP instead. Decoding checks every condition without an
 *   early exit and fails with one undifferentiated error.
 * - EMSA-PSS (RFC 8017 §9.1) for Digested Data (node signs messages, not digests) and for an
 *   MGF1 hash other than the signature hash.
 * - PKCS #1 v1.5 signatures over Digested Data: DigestInfo + node's privateEncrypt (block type 1).
 * - AES-CMAC (RFC 4493 / NIST SP 800-38B): node:crypto has no CMAC; this is CBC-MAC with the
 *   subkeys, on aes-*-ecb.
 */
import { createCipheriv, createHash, constants, privateDecrypt, privateEncrypt, publicDecrypt, publicEncrypt, randomBytes, timingSafeEqual, type Cipher, type KeyObject } from 'node:crypto';
import { cryptoFailure, type HashInfo } from './crypto-params.js';

/** Modulus length in bytes of an RSA key. */
export function rsaBytes(key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw cryptoFailure('not an RSA key');
  return Math.ceil(bits / 8);
}

function rsaBits(key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw cryptoFailure('not an RSA key');
  return bits;
}

function mgf1(hash: HashInfo, seed: Uint8Array, length: number): Buffer {
  const out = Buffer.alloc(Math.ceil(length / hash.size) * hash.size);
  const c = Buffer.alloc(4);
  for (let i = 0, off = 0; off < length; i++, off += hash.size) {
    c.writeUInt32BE(i, 0);
    createHash(hash.node).update(seed).update(c).digest().copy(out, off);
  }
  return out.subarray(0, length);
}

function xorInto(a: Buffer, b: Uint8Array): void {
  for (let i = 0; i < a.length; i++) a[i] = a[i]! ^ b[i]!;
}

// ---------------------------------------------------------------------------------------------
// OAEP

/** RSAES-OAEP encryption with separate OAEP and MGF1 hashes. */
export function oaepEncrypt(pub: KeyObject, hash: HashInfo, mgfHash: HashInfo, label: Uint8Array, message: Uint8Array): Buffer {
  const k = rsaBytes(pub);
  const h = hash.size;
  if (message.length > k - 2 * h - 2) throw cryptoFailure(`the data is too long for RSA-OAEP with this key (at most ${Math.max(0, k - 2 * h - 2)} bytes)`);
  const db = Buffer.alloc(k - h - 1);
  createHash(hash.node).update(label).digest().copy(db, 0);
  db[k - message.length - h - 2] = 0x01;
  Buffer.from(message).copy(db, k - message.length - h - 1);
  const seed = randomBytes(h);
  xorInto(db, mgf1(mgfHash, seed, db.length));
  xorInto(seed, mgf1(mgfHash, db, h));
  const em = Buffer.concat([Buffer.alloc(1), seed, db]);
  try {
    return publicEncrypt({ key: pub, padding: constants.RSA_NO_PADDING }, em);
  } finally {
    em.fill(0);
    db.fill(0);
  }
}

/** RSAES-OAEP decryption with separate OAEP and MGF1 hashes. */
export function oaepDecrypt(priv: KeyObject, hash: HashInfo, mgfHash: HashInfo, label: Uint8Array, ciphertext: Uint8Array): Buffer {
  const k = rsaBytes(priv);
  const h = hash.size;
  if (ciphertext.length !== k || k < 2 * h + 2) throw cryptoFailure();
  let em: Buffer;
  try {
    em = privateDecrypt({ key: priv, padding: constants.RSA_NO_PADDING }, ciphertext);
  } catch {
    throw cryptoFailure();
  }
  try {
    if (em.length !== k) throw cryptoFailure();
    const seed = Buffer.from(em.subarray(1, 1 + h));
    const db = Buffer.from(em.subarray(1 + h));
    xorInto(seed, mgf1(mgfHash, db, h));
    xorInto(db, mgf1(mgfHash, seed, db.length));
    const lHash = createHash(hash.node).update(label).digest();
    let bad = em[0]! | (timingSafeEqual(lHash, db.subarray(0, h)) ? 0 : 1);
    // First 0x01 after the zero padding, found without branching on secret bytes.
    let found = 0;
    let index = 0;
    for (let i = h; i < db.length; i++) {
      const b = db[i]!;
      const isOne = ((b ^ 1) - 1) >>> 31;
      const isZero = (b - 1) >>> 31;
      const first = isOne & (found ^ 1);
      index |= -first & i;
      bad |= (found ^ 1) & (isOne ^ 1) & (isZero ^ 1);
      found |= isOne;
    }
    bad |= found ^ 1;
    const out = Buffer.from(db.subarray(index + 1));
    seed.fill(0);
    db.fill(0);
    if (bad !== 0) {
      out.fill(0);
      throw cryptoFailure();
    }
    return out;
  } finally {
    em.fill(0);
  }
}

// ---------------------------------------------------------------------------------------------
// PSS

/** RSASSA-PSS signature of a digest. `saltLength` undefined: the digest length. */
export function pssSignDigest(priv: KeyObject, hash: HashInfo, mgfHash: HashInfo, saltLength: number | undefined, digest: Uint8Array): Buffer {
  if (digest.length !== hash.size) throw cryptoFailure(`the Digested Data is ${digest.length} bytes, not the ${hash.size} of the hash`);
  const modBits = rsaBits(priv);
  const k = Math.ceil(modBits / 8);
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const sLen = saltLength ?? hash.size;
  if (emLen < hash.size + sLen + 2) throw cryptoFailure('the salt is too long for this key');
  const salt = randomBytes(sLen);
  const H = createHash(hash.node).update(Buffer.alloc(8)).update(digest).update(salt).digest();
  const db = Buffer.alloc(emLen - hash.size - 1);
  db[emLen - sLen - hash.size - 2] = 0x01;
  salt.copy(db, db.length - sLen);
  xorInto(db, mgf1(mgfHash, H, db.length));
  db[0] = db[0]! & (0xff >>> (8 * emLen - emBits));
  const em = Buffer.concat([Buffer.alloc(k - emLen), db, H, Buffer.from([0xbc])]);
  return privateEncrypt({ key: priv, padding: constants.RSA_NO_PADDING }, em);
}

/** Verifies an RSASSA-PSS signature of a digest. `saltLength` undefined: any salt length. */
export function pssVerifyDigest(pub: KeyObject, hash: HashInfo, mgfHash: HashInfo, saltLength: number | undefined, digest: Uint8Array, signature: Uint8Array): boolean {
  if (digest.length !== hash.size) return false;
  const modBits = rsaBits(pub);
  const k = Math.ceil(modBits / 8);
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (signature.length !== k || emLen < hash.size + 2) return false;
  let m: Buffer;
  try {
    m = publicEncrypt({ key: pub, padding: constants.RSA_NO_PADDING }, signature);
  } catch {
    return false;
  }
  for (let i = 0; i < k - emLen; i++) if (m[i] !== 0) return false;
  const em = m.subarray(k - emLen);
  if (em[emLen - 1] !== 0xbc) return false;
  const db = Buffer.from(em.subarray(0, emLen - hash.size - 1));
  const H = em.subarray(emLen - hash.size - 1, emLen - 1);
  const topMask = 0xff >>> (8 * emLen - emBits);
  if ((db[0]! & ~topMask & 0xff) !== 0) return false;
  xorInto(db, mgf1(mgfHash, H, db.length));
  db[0] = db[0]! & topMask;
  let one = 0;
  while (one < db.length && db[one] === 0) one++;
  if (one >= db.length || db[one] !== 0x01) return false;
  const salt = db.subarray(one + 1);
  if (saltLength !== undefined && salt.length !== saltLength) return false;
  const H2 = createHash(hash.node).update(Buffer.alloc(8)).update(digest).update(salt).digest();
  return timingSafeEqual(H, H2);
}

// ---------------------------------------------------------------------------------------------
// PKCS #1 v1.5 signatures of a digest

const NIST_HASH_OID = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
const HASH_OID_LAST: Readonly<Record<string, number>> = {
  sha256: 0x01,
  sha384: 0x02,
  sha512: 0x03,
  sha224: 0x04,
  'sha512-224': 0x05,
  'sha512-256': 0x06,
  'sha3-224': 0x07,
  'sha3-256': 0x08,
  'sha3-384': 0x09,
  'sha3-512': 0x0a,
};

/** DER DigestInfo (RFC 8017 §9.2): AlgorithmIdentifier with NULL parameters, then the digest. */
export function digestInfo(hash: HashInfo, digest: Uint8Array): Buffer {
  const last = HASH_OID_LAST[hash.node];
  const oid = hash.node === 'sha1' ? [0x2b, 0x0e, 0x03, 0x02, 0x1a] : last !== undefined ? [...NIST_HASH_OID, last] : undefined;
  if (!oid) throw cryptoFailure(`no DigestInfo for ${hash.node}`);
  const alg = [0x30, oid.length + 4, 0x06, oid.length, ...oid, 0x05, 0x00];
  const body = Buffer.concat([Buffer.from(alg), Buffer.from([0x04, digest.length]), digest]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

/** PKCS #1 v1.5 signature over `payload` (a DigestInfo, or raw bytes without a hash). */
export function pkcs1SignRaw(priv: KeyObject, payload: Uint8Array): Buffer {
  if (payload.length > rsaBytes(priv) - 11) throw cryptoFailure('the Digested Data is too long for this key');
  return privateEncrypt({ key: priv, padding: constants.RSA_PKCS1_PADDING }, payload);
}

export function pkcs1VerifyRaw(pub: KeyObject, payload: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== rsaBytes(pub)) return false;
  let recovered: Buffer;
  try {
    recovered = publicDecrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
  return recovered.length === payload.length && timingSafeEqual(recovered, payload);
}

// ---------------------------------------------------------------------------------------------
// AES-CMAC

function dbl(b: Buffer): Buffer {
  const out = Buffer.alloc(16);
  let carry = 0;
  for (let i = 15; i >= 0; i--) {
    const v = b[i]!;
    out[i] = ((v << 1) | carry) & 0xff;
    carry = v >>> 7;
  }
  if (carry) out[15] = out[15]! ^ 0x87;
  return out;
}

/** AES-CMAC, incremental: `update` any number of times, then `digest` once. */
export class AesCmac {
  private readonly ecb: Cipher;
  private readonly k1: Buffer;
  private readonly k2: Buffer;
  private x: Buffer = Buffer.alloc(16);
  private pending: Buffer = Buffer.alloc(0);

  constructor(key: Uint8Array) {
    if (![16, 24, 32].includes(key.length)) throw cryptoFailure('AES-CMAC needs a 128, 192 or 256-bit AES key');
    this.ecb = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
    this.ecb.setAutoPadding(false);
    const l = this.block(Buffer.alloc(16));
    this.k1 = dbl(l);
    this.k2 = dbl(this.k1);
    l.fill(0);
  }

  private block(b: Buffer): Buffer {
    return this.ecb.update(b);
  }

  update(data: Uint8Array): this {
    let buf = Buffer.concat([this.pending, data]);
    // Keep the last block (complete or not) for digest().
    while (buf.length > 16) {
      const blk = Buffer.from(buf.subarray(0, 16));
      xorInto(blk, this.x);
      this.x = this.block(blk);
      buf = buf.subarray(16);
    }
    this.pending = Buffer.from(buf);
    return this;
  }

  digest(): Buffer {
    const last = Buffer.alloc(16);
    if (this.pending.length === 16) {
      this.pending.copy(last);
      xorInto(last, this.k1);
    } else {
      this.pending.copy(last);
      last[this.pending.length] = 0x80;
      xorInto(last, this.k2);
    }
    xorInto(last, this.x);
    const t = this.block(last);
    this.k1.fill(0);
    this.k2.fill(0);
    this.x.fill(0);
    this.pending.fill(0);
    return t;
  }
}
