/**
 * The Quantum Safe attribute (KMIP 2.0/2.1 §4 "Quantum Safe") and the rule of the Quantum Safe
 * Server profile: an object the client asks to be quantum safe (Quantum Safe = True at Create,
 * Create Key Pair, Register or Import) must be one the server considers quantum safe; otherwise
 * the request fails with General Failure (the profile's test cases QS-M-2-20 / QS-M-2-21: an
 * AES-128 key with Quantum Safe True is refused so).
 *
 * What kmipd considers quantum safe (the usual reading of Grover's and Shor's algorithms, as in
 * NIST's post-quantum guidance):
 * - symmetric ciphers and MAC keys of at least 256 bits: AES, ARIA, Camellia, ChaCha20
 *   (and ChaCha20-Poly1305), Twofish, and the HMAC algorithms of the SHA-2 and SHA-3 families
 *   other than SHA-224. Grover's search halves a symmetric key's strength, so 256 bits keep 128;
 *   128 or 192 bits do not count;
 * - nothing asymmetric kmipd makes or reads: RSA, DSA, Diffie-Hellman and every elliptic curve
 *   algorithm fall to Shor's algorithm at any length;
 * - an object without Cryptographic Algorithm and Length (Secret Data, Opaque Object,
 *   Certificate without them) cannot be vouched for, so it is refused too.
 * Quantum Safe False, or absent, asks nothing.
 */
import type { KmipAttribute } from '../codec/attributes.js';
import { KmipError } from '../codec/errors.js';
import { Enums, enumValueName } from '../spec/index.js';
import { boolOf, enumOf, intOf } from './lifecycle.js';

const ALG = Enums.CryptographicAlgorithm;

/** Algorithms that are quantum safe with a key of at least QUANTUM_SAFE_MIN_BITS bits. */
export const QUANTUM_SAFE_ALGORITHMS: readonly number[] = [
  ALG.AES,
  ALG.ARIA,
  ALG.Camellia,
  ALG.ChaCha20,
  ALG.ChaCha20Poly1305,
  ALG.Twofish,
  ALG.HMAC_SHA256,
  ALG.HMAC_SHA384,
  ALG.HMAC_SHA512,
  ALG.HMAC_SHA3_256,
  ALG.HMAC_SHA3_384,
  ALG.HMAC_SHA3_512,
];

export const QUANTUM_SAFE_MIN_BITS = 256;

/** Whether kmipd considers `algorithm` with a `length`-bit key quantum safe. */
export function isQuantumSafe(algorithm: number | undefined, length: number | undefined): boolean {
  if (algorithm === undefined || length === undefined) return false;
  return QUANTUM_SAFE_ALGORITHMS.includes(algorithm) && length >= QUANTUM_SAFE_MIN_BITS;
}

/** Throws General Failure when `attrs` (a new object's full list) ask for Quantum Safe and the object is not. */
export function checkQuantumSafe(attrs: readonly KmipAttribute[]): void {
  if (boolOf(attrs, 'Quantum Safe') !== true) return;
  const algorithm = enumOf(attrs, 'Cryptographic Algorithm');
  const length = intOf(attrs, 'Cryptographic Length');
  if (isQuantumSafe(algorithm, length)) return;
  const what = algorithm === undefined ? 'an object without a Cryptographic Algorithm' : `${enumValueName('CryptographicAlgorithm', algorithm) ?? algorithm}${length !== undefined ? `-${length}` : ''}`;
  throw new KmipError('GeneralFailure', `not quantum safe: ${what} (kmipd counts symmetric and HMAC keys of ${QUANTUM_SAFE_MIN_BITS} bits or more only)`);
}
