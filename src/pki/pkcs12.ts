/**
 * PKCS#12 (RFC 7292) containers: a private key with its certificate chain, protected by a
 * password. node-forge only lays out and reads the ASN.1 structure (forge.asn1); every
 * cryptographic step is node:crypto's:
 *
 * - writing: the key is encrypted by node:crypto (PBES2: PBKDF2-HMAC-SHA256 with a 16-byte salt
 *   and 100,000 iterations, run off the event loop by crypto.pbkdf2; AES-256-CBC with a random
 *   IV) into the EncryptedPrivateKeyInfo of a PKCS#8 Shrouded Key Bag; the certificates go in Cert Bags (not encrypted: certificates are
 *   public, as `openssl pkcs12 -export -certpbe NONE`); the whole is authenticated by an
 *   HMAC-SHA256 MAC (key from the RFC 7292 Appendix B KDF over SHA-256, 2048 iterations, 16
 *   byte salt). OpenSSL 1.1+/3, Java and Windows read this.
 * - reading: the MAC is checked first (SHA-1, SHA-256, SHA-384, SHA-512); Shrouded Key Bags
 *   are decrypted by node:crypto createPrivateKey (PBES2 or the PKCS#12 PBE schemes OpenSSL's
 *   default provider offers, 3DES included); encrypted certificate content (PKCS#7 Encrypted
 *   Data) is decrypted with createDecipheriv for PBES2 (AES-CBC) and pbeWithSHAAnd3-KeyTripleDES-CBC.
 *   RC2 and RC4 (the legacy 40-bit schemes) are not in node:crypto's default provider: such a
 *   file is refused with a message saying so.
 *
 * The password: the Secret Data bytes, read as UTF-8; the MAC and the PKCS#12 PBE schemes use
 * it as a BMPString (RFC 7292 B.1), PBES2 as the bytes themselves (as OpenSSL does).
 */
import { X509Certificate, createCipheriv, createDecipheriv, createHash, createHmac, createPrivateKey, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { type Forge, forge } from './forge.js';
import { fromBinary, toBinary } from './build.js';

const { asn1 } = forge;
type Asn1 = Forge.asn1.Asn1;

const U = asn1.Class.UNIVERSAL;
const C = asn1.Class.CONTEXT_SPECIFIC;
const AT = asn1.Type;

export class Pkcs12Error extends Error {
  /** password: the MAC did not verify (wrong password or damaged file); unsupported: a scheme kmipd cannot process; format: not a PKCS#12 it can read. */
  constructor(
    readonly kind: 'password' | 'unsupported' | 'format',
    message: string,
  ) {
    super(message);
    this.name = 'Pkcs12Error';
  }
}

const OID = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  pbeSha1TripleDes: '1.2.840.113549.1.12.1.3',
  pbeSha1Rc2_128: '1.2.840.113549.1.12.1.5',
  pbeSha1Rc2_40: '1.2.840.113549.1.12.1.6',
  pbeSha1Rc4_128: '1.2.840.113549.1.12.1.1',
  pbeSha1Rc4_40: '1.2.840.113549.1.12.1.2',
} as const;

/** Digest algorithms (MAC, PBKDF2 PRF): OID -> node name, output and block sizes. */
const HASHES: Record<string, { node: string; u: number; v: number }> = {
  '1.3.14.3.2.26': { node: 'sha1', u: 20, v: 64 },
  '2.16.840.1.101.3.4.2.1': { node: 'sha256', u: 32, v: 64 },
  '2.16.840.1.101.3.4.2.2': { node: 'sha384', u: 48, v: 128 },
  '2.16.840.1.101.3.4.2.3': { node: 'sha512', u: 64, v: 128 },
};
const HMAC_PRFS: Record<string, string> = {
  '1.2.840.113549.2.7': 'sha1',
  '1.2.840.113549.2.9': 'sha256',
  '1.2.840.113549.2.10': 'sha384',
  '1.2.840.113549.2.11': 'sha512',
};
const AES_CBC: Record<string, string> = {
  '2.16.840.1.101.3.4.1.2': 'aes-128-cbc',
  '2.16.840.1.101.3.4.1.22': 'aes-192-cbc',
  '2.16.840.1.101.3.4.1.42': 'aes-256-cbc',
};

/** The MAC's iterations (OpenSSL's default; the MAC guards integrity, the key has its own PBES2). */
const ITERATIONS = 2048;
/** PBKDF2 iterations for the key's encryption. */
export const KEY_ITERATIONS = 100_000;
const pbkdf2Async = promisify(pbkdf2);
/**
 * The most iterations a file may ask of a key derivation (MAC, content, key bag): reading runs
 * them synchronously (node:crypto's createPrivateKey has no asynchronous form), so a file asking
 * for more would stall the server. Tools write 2048 (OpenSSL, Windows) or 10000 (Java); kmipd
 * itself writes KEY_ITERATIONS.
 */
export const MAX_ITERATIONS = 250_000;

function checkIterations(n: number, what: string): number {
  if (n < 1 || n > MAX_ITERATIONS) throw new Pkcs12Error('unsupported', `the PKCS#12 ${what} asks for ${n} iterations (kmipd accepts 1 to ${MAX_ITERATIONS})`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// The RFC 7292 Appendix B key derivation (for the MAC key and the PKCS#12 PBE schemes)

/** BMPString of the password with its two zero bytes (RFC 7292 B.1). */
function bmpPassword(password: Uint8Array): Buffer {
  const s = Buffer.from(password).toString('utf8');
  const out = Buffer.alloc(s.length * 2 + 2);
  for (let i = 0; i < s.length; i++) out.writeUInt16BE(s.charCodeAt(i), i * 2);
  return out;
}

/** RFC 7292 B.2: `n` bytes of key (id 1), IV (id 2) or MAC key (id 3) material. */
export function pkcs12Kdf(hash: string, u: number, v: number, id: 1 | 2 | 3, bmpPass: Uint8Array, salt: Uint8Array, iterations: number, n: number): Buffer {
  const repeatTo = (src: Uint8Array): Buffer => {
    if (src.length === 0) return Buffer.alloc(0);
    const len = v * Math.ceil(src.length / v);
    const b = Buffer.alloc(len);
    for (let i = 0; i < len; i++) b[i] = src[i % src.length]!;
    return b;
  };
  const D = Buffer.alloc(v, id);
  const I = Buffer.concat([repeatTo(salt), repeatTo(bmpPass)]);
  const out: Buffer[] = [];
  let have = 0;
  while (have < n) {
    let A = createHash(hash).update(D).update(I).digest();
    for (let r = 1; r < iterations; r++) A = createHash(hash).update(A).digest();
    out.push(A);
    have += A.length;
    if (have >= n) break;
    const B = Buffer.alloc(v);
    for (let i = 0; i < v; i++) B[i] = A[i % u]!;
    for (let j = 0; j < I.length; j += v) {
      // I_j = (I_j + B + 1) mod 2^(8v)
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = I[j + k]! + B[k]! + carry;
        I[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  const result = Buffer.concat(out).subarray(0, n);
  I.fill(0);
  return Buffer.from(result);
}

// ---------------------------------------------------------------------------------------------
// ASN.1 helpers

const oid = (o: string): Asn1 => asn1.create(U, AT.OID, false, asn1.oidToDer(o).getBytes());
const seq = (items: Asn1[]): Asn1 => asn1.create(U, AT.SEQUENCE, true, items);
const set = (items: Asn1[]): Asn1 => asn1.create(U, AT.SET, true, items);
const octets = (b: Uint8Array): Asn1 => asn1.create(U, AT.OCTETSTRING, false, toBinary(b));
const explicit0 = (inner: Asn1): Asn1 => asn1.create(C, 0, true, [inner]);
const int = (n: number): Asn1 => asn1.create(U, AT.INTEGER, false, asn1.integerToDer(n).getBytes());
const der = (n: Asn1): Buffer => fromBinary(asn1.toDer(n).getBytes());

function parse(bytes: Uint8Array, what: string): Asn1 {
  try {
    return asn1.fromDer(toBinary(bytes), false);
  } catch {
    throw new Pkcs12Error('format', `${what} is not valid DER`);
  }
}

function children(n: Asn1 | undefined, what: string): Asn1[] {
  if (!n || !Array.isArray(n.value)) throw new Pkcs12Error('format', `${what}: not a constructed value`);
  return n.value as Asn1[];
}

function oidOf(n: Asn1 | undefined, what: string): string {
  if (!n || n.type !== AT.OID || typeof n.value !== 'string') throw new Pkcs12Error('format', `${what}: not an object identifier`);
  return asn1.derToOid(n.value);
}

/** An OCTET STRING's bytes (a constructed, BER, one concatenated). */
function octetsOf(n: Asn1 | undefined, what: string): Buffer {
  if (!n) throw new Pkcs12Error('format', `${what}: missing`);
  if (typeof n.value === 'string') return fromBinary(n.value);
  return Buffer.concat((n.value as Asn1[]).map((c) => octetsOf(c, what)));
}

function intOf(n: Asn1 | undefined, what: string): number {
  if (!n || n.type !== AT.INTEGER || typeof n.value !== 'string') throw new Pkcs12Error('format', `${what}: not an INTEGER`);
  const v = asn1.derToInteger(n.value);
  if (!Number.isSafeInteger(v) || v < 0) throw new Pkcs12Error('format', `${what}: out of range`);
  return v;
}

/** The content of a [0] EXPLICIT wrapper. */
function explicitContent(n: Asn1 | undefined, what: string): Asn1 {
  if (!n || n.tagClass !== C || n.type !== 0) throw new Pkcs12Error('format', `${what}: expected [0]`);
  const c = children(n, what)[0];
  if (!c) throw new Pkcs12Error('format', `${what}: empty [0]`);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface Pkcs12Input {
  key: KeyObject;
  /** DER certificates: the key's own first, then its chain towards the root. */
  certificates: readonly Uint8Array[];
  password: Uint8Array;
  friendlyName?: string;
}

function bagAttributes(localKeyId: Uint8Array | undefined, friendlyName: string | undefined): Asn1[] {
  const attrs: Asn1[] = [];
  if (friendlyName !== undefined) {
    // forge writes a BMPString from a JS string, one UTF-16 code unit per 2 bytes.
    attrs.push(seq([oid(OID.friendlyName), set([asn1.create(U, AT.BMPSTRING, false, friendlyName)])]));
  }
  if (localKeyId) attrs.push(seq([oid(OID.localKeyId), set([octets(localKeyId)])]));
  return attrs.length > 0 ? [set(attrs)] : [];
}

function dataContentInfo(content: Uint8Array): Asn1 {
  return seq([oid(OID.data), explicit0(octets(content))]);
}

/** The key as an EncryptedPrivateKeyInfo: PBES2, PBKDF2-HMAC-SHA256 (KEY_ITERATIONS), AES-256-CBC (RFC 8018). */
async function encryptedPrivateKeyInfo(key: KeyObject, password: Uint8Array): Promise<Asn1> {
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const k = await pbkdf2Async(Buffer.from(password), salt, KEY_ITERATIONS, 32, 'sha256');
  const plain = key.export({ type: 'pkcs8', format: 'der' });
  let encrypted: Buffer;
  try {
    const c = createCipheriv('aes-256-cbc', k, iv);
    encrypted = Buffer.concat([c.update(plain), c.final()]);
  } finally {
    plain.fill(0);
    k.fill(0);
  }
  const nul = asn1.create(U, AT.NULL, false, '');
  const algorithm = seq([
    oid(OID.pbes2),
    seq([
      seq([oid(OID.pbkdf2), seq([octets(salt), int(KEY_ITERATIONS), seq([oid('1.2.840.113549.2.9'), nul])])]),
      seq([oid('2.16.840.1.101.3.4.1.42'), octets(iv)]),
    ]),
  ]);
  return seq([algorithm, octets(encrypted)]);
}

/** A PKCS#12 PFX holding the key (encrypted) and its certificates, MAC'd under the password. */
export async function buildPkcs12(input: Pkcs12Input): Promise<Buffer> {
  const { key, certificates, password, friendlyName } = input;
  if (key.type !== 'private') throw new Error('a PKCS#12 holds a private key');
  const localKeyId = certificates[0] ? createHash('sha1').update(certificates[0]).digest() : undefined;

  const certBags = certificates.map((c, i) =>
    seq([
      oid(OID.certBag),
      explicit0(seq([oid(OID.x509Certificate), explicit0(octets(c))])),
      ...(i === 0 ? bagAttributes(localKeyId, friendlyName) : []),
    ]),
  );
  const keyBag = seq([oid(OID.shroudedKeyBag), explicit0(await encryptedPrivateKeyInfo(key, password)), ...bagAttributes(localKeyId, friendlyName)]);

  const safes: Asn1[] = [];
  if (certBags.length > 0) safes.push(dataContentInfo(der(seq(certBags))));
  safes.push(dataContentInfo(der(seq([keyBag]))));
  const authSafe = der(seq(safes));

  const salt = randomBytes(16);
  const hash = HASHES['2.16.840.1.101.3.4.2.1']!;
  const bmp = bmpPassword(password);
  const macKey = pkcs12Kdf(hash.node, hash.u, hash.v, 3, bmp, salt, ITERATIONS, hash.u);
  const mac = createHmac(hash.node, macKey).update(authSafe).digest();
  macKey.fill(0);
  bmp.fill(0);
  const macData = seq([
    seq([seq([oid('2.16.840.1.101.3.4.2.1'), asn1.create(U, AT.NULL, false, '')]), octets(mac)]),
    octets(salt),
    int(ITERATIONS),
  ]);
  return der(seq([int(3), dataContentInfo(authSafe), macData]));
}

// ---------------------------------------------------------------------------------------------
// Reading

export interface Pkcs12Certificate {
  der: Buffer;
  friendlyName?: string;
  localKeyId?: Buffer;
}

export interface Pkcs12Contents {
  key: KeyObject;
  /** The key's own certificate first (when the file has it), then its issuers, then any other. */
  certificates: Pkcs12Certificate[];
  friendlyName?: string;
}

function readBagAttributes(n: Asn1 | undefined): { friendlyName?: string; localKeyId?: Buffer } {
  const out: { friendlyName?: string; localKeyId?: Buffer } = {};
  if (!n) return out;
  for (const a of children(n, 'bag attributes')) {
    const [id, values] = children(a, 'bag attribute');
    const v = children(values, 'bag attribute values')[0];
    const name = oidOf(id, 'bag attribute');
    // forge reads a BMPString into a JS string.
    if (name === OID.friendlyName && v?.type === AT.BMPSTRING && typeof v.value === 'string') out.friendlyName = v.value; else if (name === OID.localKeyId && v) out.localKeyId = octetsOf(v, 'localKeyId');
  }
  return out;
}

/** Decrypts PKCS#7 Encrypted Data content with PBES2 (AES-CBC) or pbeWithSHAAnd3-KeyTripleDES-CBC. */
function decryptContent(algorithm: Asn1, encrypted: Buffer, password: Uint8Array): Buffer {
  const [algOid, params] = children(algorithm, 'content encryption algorithm');
  const alg = oidOf(algOid, 'content encryption algorithm');
  let cipher: string;
  let key: Buffer;
  let iv: Buffer;
  if (alg === OID.pbeSha1TripleDes) {
    const [saltN, iterN] = children(params, 'PBE parameters');
    const salt = octetsOf(saltN, 'PBE salt');
    const iterations = checkIterations(intOf(iterN, 'PBE iterations'), 'content encryption');
    const bmp = bmpPassword(password);
    key = pkcs12Kdf('sha1', 20, 64, 1, bmp, salt, iterations, 24);
    iv = pkcs12Kdf('sha1', 20, 64, 2, bmp, salt, iterations, 8);
    bmp.fill(0);
    cipher = 'des-ede3-cbc';
  } else if (alg === OID.pbes2) {
    const [kdf, scheme] = children(params, 'PBES2 parameters');
    const [kdfOid, kdfParams] = children(kdf, 'PBES2 key derivation');
    if (oidOf(kdfOid, 'PBES2 key derivation') !== OID.pbkdf2) throw new Pkcs12Error('unsupported', 'the PKCS#12 uses a PBES2 key derivation other than PBKDF2');
    const p = children(kdfParams, 'PBKDF2 parameters');
    const salt = octetsOf(p[0], 'PBKDF2 salt');
    const iterations = checkIterations(intOf(p[1], 'PBKDF2 iterations'), 'content encryption');
    let prf = 'sha1';
    for (const extra of p.slice(2)) {
      if (extra.type === AT.SEQUENCE) {
        const prfName = HMAC_PRFS[oidOf(children(extra, 'PBKDF2 PRF')[0], 'PBKDF2 PRF')];
        if (!prfName) throw new Pkcs12Error('unsupported', 'the PKCS#12 uses a PBKDF2 PRF kmipd does not know');
        prf = prfName;
      }
    }
    const [encOid, ivN] = children(scheme, 'PBES2 encryption scheme');
    const c = AES_CBC[oidOf(encOid, 'PBES2 encryption scheme')];
    if (!c) throw new Pkcs12Error('unsupported', 'the PKCS#12 certificates are encrypted with a cipher other than AES-CBC or 3DES');
    cipher = c;
    iv = octetsOf(ivN, 'PBES2 IV');
    key = pbkdf2Sync(Buffer.from(password), salt, iterations, Number(c.slice(4, 7)) / 8, prf);
  } else if ([OID.pbeSha1Rc2_40, OID.pbeSha1Rc2_128, OID.pbeSha1Rc4_40, OID.pbeSha1Rc4_128].includes(alg as never)) {
    throw new Pkcs12Error(
      'unsupported',
      'the PKCS#12 certificates are encrypted with RC2/RC4 (legacy 40/128-bit PBE), which kmipd\'s cryptography (node:crypto, OpenSSL 3 default provider) does not offer; export it again with AES (openssl pkcs12 -export -certpbe AES-256-CBC) or 3DES',
    );
  } else {
    throw new Pkcs12Error('unsupported', `the PKCS#12 content is encrypted with an algorithm kmipd does not know (${alg})`);
  }
  try {
    const d = createDecipheriv(cipher, key, iv);
    return Buffer.concat([d.update(encrypted), d.final()]);
  } catch {
    throw new Pkcs12Error('password', 'the PKCS#12 content does not decrypt with the password');
  } finally {
    key.fill(0);
  }
}

/** The iteration count of an EncryptedPrivateKeyInfo's algorithm (PBES2/PBKDF2 or a PKCS#12 PBE scheme). */
function keyBagIterations(epki: Asn1): number {
  const [algorithm] = children(epki, 'EncryptedPrivateKeyInfo');
  const [algOid, params] = children(algorithm, 'key encryption algorithm');
  if (oidOf(algOid, 'key encryption algorithm') === OID.pbes2) {
    const [kdf] = children(params, 'PBES2 parameters');
    const [, kdfParams] = children(kdf, 'PBES2 key derivation');
    return intOf(children(kdfParams, 'PBKDF2 parameters')[1], 'PBKDF2 iterations');
  }
  return intOf(children(params, 'PBE parameters')[1], 'PBE iterations');
}

function checkMac(pfx: Asn1[], authSafe: Buffer, password: Uint8Array): void {
  const macData = pfx[2];
  if (!macData) throw new Pkcs12Error('format', 'the PKCS#12 has no MAC (kmipd reads password-integrity PKCS#12 only)');
  const [digestInfo, saltN, iterN] = children(macData, 'MacData');
  const [algId, macN] = children(digestInfo, 'MAC DigestInfo');
  const hashOid = oidOf(children(algId, 'MAC algorithm')[0], 'MAC algorithm');
  const hash = HASHES[hashOid];
  if (!hash) throw new Pkcs12Error('unsupported', `the PKCS#12 MAC uses a digest kmipd does not know (${hashOid})`);
  const salt = octetsOf(saltN, 'MAC salt');
  const iterations = checkIterations(iterN ? intOf(iterN, 'MAC iterations') : 1, 'MAC');
  const expected = octetsOf(macN, 'MAC');
  const bmp = bmpPassword(password);
  const macKey = pkcs12Kdf(hash.node, hash.u, hash.v, 3, bmp, salt, iterations, hash.u);
  const mac = createHmac(hash.node, macKey).update(authSafe).digest();
  macKey.fill(0);
  bmp.fill(0);
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) {
    throw new Pkcs12Error('password', 'the PKCS#12 MAC does not verify with the password (wrong password or damaged file)');
  }
}

/** Opens a PKCS#12 with `password`: its one private key and its certificates. */
export function readPkcs12(bytes: Uint8Array, password: Uint8Array): Pkcs12Contents {
  let pfx: Asn1[];
  let authSafe: Buffer;
  try {
    pfx = children(parse(bytes, 'the PKCS#12'), 'PFX');
    if (intOf(pfx[0], 'PFX version') !== 3) throw new Pkcs12Error('format', 'not a PKCS#12 version 3 PFX');
    const [ct, content] = children(pfx[1], 'PFX authSafe');
    if (oidOf(ct, 'PFX authSafe') !== OID.data) throw new Pkcs12Error('unsupported', 'kmipd reads password-integrity PKCS#12 only (authSafe of type data)');
    authSafe = octetsOf(explicitContent(content, 'PFX authSafe'), 'PFX authSafe');
  } catch (e) {
    if (e instanceof Pkcs12Error) throw e;
    throw new Pkcs12Error('format', 'not a PKCS#12 kmipd can read');
  }
  checkMac(pfx, authSafe, password);

  const keys: { key: KeyObject; friendlyName?: string; localKeyId?: Buffer }[] = [];
  const certs: Pkcs12Certificate[] = [];
  try {
    for (const ci of children(parse(authSafe, 'the PKCS#12 authenticated safe'), 'AuthenticatedSafe')) {
      const [ct, content] = children(ci, 'ContentInfo');
      const type = oidOf(ct, 'ContentInfo');
      let safeContents: Buffer;
      if (type === OID.data) safeContents = octetsOf(explicitContent(content, 'ContentInfo'), 'ContentInfo');
      else if (type === OID.encryptedData) {
        const ed = children(explicitContent(content, 'EncryptedData'), 'EncryptedData');
        const eci = children(ed[1], 'EncryptedContentInfo');
        const encrypted = eci[2];
        if (!encrypted) continue;
        safeContents = decryptContent(eci[1]!, octetsOf(encrypted, 'encrypted content'), password);
      } else throw new Pkcs12Error('unsupported', 'the PKCS#12 holds public-key-encrypted (enveloped) content, which kmipd does not read');
      for (const bag of children(parse(safeContents, 'the PKCS#12 safe contents'), 'SafeContents')) {
        const [idN, valueN, attrsN] = children(bag, 'SafeBag');
        const id = oidOf(idN, 'SafeBag');
        const attrs = readBagAttributes(attrsN);
        const value = explicitContent(valueN, 'SafeBag');
        if (id === OID.shroudedKeyBag || id === OID.keyBag) {
          if (id === OID.shroudedKeyBag) checkIterations(keyBagIterations(value), 'key encryption');
          let key: KeyObject;
          try {
            key =
              id === OID.keyBag
                ? createPrivateKey({ key: der(value), format: 'der', type: 'pkcs8' })
                : createPrivateKey({ key: der(value), format: 'der', type: 'pkcs8', passphrase: Buffer.from(password) });
          } catch (e) {
            const code = (e as { code?: unknown }).code;
            if (code === 'ERR_OSSL_EVP_UNSUPPORTED' || code === 'ERR_OSSL_UNSUPPORTED') {
              throw new Pkcs12Error('unsupported', 'the PKCS#12 key is encrypted with a scheme node:crypto does not offer (RC2/RC4); export it again with AES or 3DES');
            }
            throw new Pkcs12Error('password', 'the PKCS#12 key does not decrypt with the password');
          }
          keys.push({ key, ...attrs });
        } else if (id === OID.certBag) {
          const [certId, certValue] = children(value, 'CertBag');
          if (oidOf(certId, 'CertBag') !== OID.x509Certificate) continue; // SDSI certificates: not X.509
          certs.push({ der: octetsOf(explicitContent(certValue, 'CertBag'), 'CertBag'), ...attrs });
        }
        // CRL and secret bags are not key material kmipd keeps.
      }
    }
  } catch (e) {
    if (e instanceof Pkcs12Error) throw e;
    throw new Pkcs12Error('format', 'the PKCS#12 content is malformed');
  }
  if (keys.length !== 1) throw new Pkcs12Error('format', keys.length === 0 ? 'the PKCS#12 holds no private key' : 'the PKCS#12 holds more than one private key');
  const { key, friendlyName } = keys[0]!;
  return { key, certificates: orderChain(key, certs), ...(friendlyName !== undefined ? { friendlyName } : {}) };
}

/** The key's certificate first, then each issuer found among the others, then the rest. */
function orderChain(key: KeyObject, certs: Pkcs12Certificate[]): Pkcs12Certificate[] {
  const parsed = certs.map((c) => {
    try {
      return { c, x: new X509Certificate(c.der) };
    } catch {
      throw new Pkcs12Error('format', 'the PKCS#12 holds a certificate that is not valid X.509');
    }
  });
  const own = parsed.findIndex((p) => p.x.checkPrivateKey(key));
  if (own < 0) return certs;
  const ordered = [parsed.splice(own, 1)[0]!];
  for (;;) {
    const last = ordered[ordered.length - 1]!.x;
    if (last.checkIssued(last)) break; // self-signed: the root
    const next = parsed.findIndex((p) => last.checkIssued(p.x));
    if (next < 0) break;
    ordered.push(parsed.splice(next, 1)[0]!);
  }
  return [...ordered, ...parsed].map((p) => p.c);
}

/** Whether the key and the first certificate belong together (a PKCS#12 Certificate Link's target). */
export function certificateMatchesKey(certDer: Uint8Array, key: KeyObject): boolean {
  try {
    return new X509Certificate(certDer).checkPrivateKey(key);
  } catch {
    return false;
  }
}
