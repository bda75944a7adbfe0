/**
 * What the conformance runner does not run, each entry with its reason. Nothing is left out
 * silently: every skipped and every out-of-scope file is listed in the report.
 *
 * - SKIPS: server test cases for something kmipd deliberately does not offer. An operation that
 *   is merely not implemented yet is NOT a skip: its test cases fail until it is.
 * - Out of scope: files that are not server test cases for kmipd at all (KMIP 3.0, superseded
 *   drafts of a document whose later stage is present, server-to-client transcripts).
 */
import { globMatch, supersededBy, type TestCaseInfo } from './sets.js';

export interface SkipEntry {
  /** Glob (`*`, `?`, case-insensitive) on the test-case id (SKFF-O-1-10) or the file path. */
  match: string;
  reason: string;
}

const SKIPJACK =
  'SKIPJACK (80-bit key; NIST disallowed it for encryption after 2010 and OpenSSL 3 has no implementation): kmipd does not offer it';

const RNG_SEED =
  "one of the RNG Cryptographic profile's four alternative answers to the same RNG Seed (all 32 bytes used, 16 used, none used, Permission Denied): kmipd's randomness is OpenSSL's DRBG through node:crypto, which has no interface to add seed material, so kmipd answers Data Length 0 (the seed is not used), as CS-RNG-O-3 expects";

export const SKIPS: readonly SkipEntry[] = [
  // Symmetric Key Foundry optional tests 1-3 create and register SKIPJACK keys.
  { match: 'SKFF-O-1-*', reason: SKIPJACK },
  { match: 'SKFF-O-2-*', reason: SKIPJACK },
  { match: 'SKFF-O-3-*', reason: SKIPJACK },
  // RNG Cryptographic optional test cases 1-4 send the same seed and expect four different
  // answers: each a server's choice. kmipd's is CS-RNG-O-3 (src/operations/rng-seed.ts).
  { match: 'CS-RNG-O-1-*', reason: RNG_SEED },
  { match: 'CS-RNG-O-2-*', reason: RNG_SEED },
  { match: 'CS-RNG-O-4-*', reason: RNG_SEED },
  // KMIP Test Cases 1.4 §5 TC-Q-VAL-1 expects the reference server's FIPS 140 (NIST CMVP)
  // certificate; TC-Q-VAL-2, the empty answer, is run.
  // PKCS#11 profile (2.0/2.1): the PKCS#11 operation carries PKCS#11 function calls to a token
  // of the server's.
  {
    match: 'PKCS11-M-*',
    reason:
      "kmipd does not expose a PKCS#11 token through the KMIP PKCS#11 operation: its only token is the HSM holding the master key, which no client may reach (keep your own key); the operation answers Operation Not Supported",
  },
  {
    match: 'TC-Q-VAL-1-*',
    reason:
      'kmipd holds no formal validation (FIPS 140 / CMVP certificate, Common Criteria) of its own, so Query Validations honestly answers nothing (as TC-Q-VAL-2 expects); this transcript expects a validated server',
  },
];

export function skipReason(info: TestCaseInfo): string | undefined {
  for (const s of SKIPS) {
    if (globMatch(s.match, info.id) || globMatch(s.match, info.path)) return s.reason;
  }
  return undefined;
}

/**
 * Transcripts that cannot be replayed as written, found by reading them. (Others the runner
 * finds itself: a request using a placeholder no response bound, messages out of order.)
 */
export const DEFECTIVE: readonly SkipEntry[] = [
  {
    // Registers an EC key pair (ECDSA), signs, then verifies with Cryptographic Parameters
    // RSA / PSS / SHA-256 (expects Valid) and RSA / PSS / SHA-1 (expects Invalid): the RSA
    // variant's parameters pasted into the ECC test. A server that took them would verify an
    // RSA-PSS signature with an EC key; kmipd refuses the contradiction (Cryptographic Failure)
    // rather than silently use another algorithm than the client named.
    match: 'CS-AC-M-3-ECC-13',
    reason: 'defective transcript: verifies an ECDSA signature under RSA-PSS Cryptographic Parameters on an EC key and expects Valid with SHA-256 (the RSA variant\'s parameters pasted into the ECC test); kmipd refuses parameters that contradict the key',
  },
  {
    // Registers Deactivation Date 2010-02-11T13:03:59 and expects the key Active, then
    // Deactivated two minutes later: replayed today the date is long past. The 1.1 and 1.2
    // transcripts use $NOW+120 instead and are run.
    match: 'TC-92-10',
    reason: 'defective transcript: its literal 2009/2010 dates decide the key states it expects (Deactivation Date long past today)',
  },
  {
    // AES-128-ECB of 01020304…16 under the registered key 0123456789abcdef… is d9bcce11…
    // (OpenSSL agrees; CS-BC-M-6-14 and OVH's reformatted 1.3 copy expect it); this copy
    // expects fd912d10…, the ciphertext of CS-BC-M-1's server-generated key.
    match: '*/CS-BC-M-6-13.xml',
    reason: 'defective transcript: expects ciphertext fd912d10… where AES-128-ECB under the registered key gives d9bcce11… (as CS-BC-M-6-14 expects)',
  },
  {
    // OVH's variant sets the IV to 000000000000000000000000 but keeps the ciphertext the OASIS
    // file expects for IV cafebabefacedbad (61353b4c…; with zeros AES-GCM gives 938186c7…).
    match: '*/CS-BC-M-GCM-3-14_okms.xml',
    reason: "defective transcript: OVH's variant changed the IV to zeros but kept the ciphertext of the OASIS IV (the OASIS CS-BC-M-GCM-3-14 is run)",
  },
  {
    // Get of the fourth Split Key part ($UNIQUE_IDENTIFIER_4, Key Part Identifier 4) expects the
    // response to name $UNIQUE_IDENTIFIER_1, the first part: a copy-paste slip (the 1.4 cn01
    // TC-SJ-2 and the 2.x TC-SJ files name the part asked for, and run).
    match: 'TC-SJ-4-14',
    reason: 'defective transcript: the Get of split key part 4 expects the response to carry the Unique Identifier of part 1',
  },
  {
    match: '*/TC_SJ_2_12_Register_and_Split_Join.xml',
    reason: 'defective transcript: the Get of split key part 4 expects the response to carry the Unique Identifier of part 1',
  },
  {
    match: '*/TC_SJ_4_12_Register_and_Split_Join_with_XOR.xml',
    reason: 'defective transcript: the Get of split key part 4 expects the response to carry the Unique Identifier of part 1',
  },
  {
    // OVH's codec round-trip file: one Encrypt with every field set, on an object that was never
    // registered (a literal identifier) and a stream (Correlation Value) that was never started.
    match: '*/CS_BC_M_7_12_Encrypt_with_All_Fields.xml',
    reason: "not a server test case: OVH's codec round-trip message (an Encrypt with every field, for an object and a stream no request created)",
  },
];

/** Out-of-scope rules that the path alone decides. */
export function outOfScopeByPath(info: TestCaseInfo, superseded: ReadonlyMap<string, string>): string | undefined {
  if (info.version === '3.0' || /(^|\/)v3\.0\//.test(info.path)) {
    return 'KMIP 3.0 (Profiles v3.0 csd01 draft): kmipd speaks KMIP 1.0-2.1';
  }
  // Test Cases 1.3/1.4 "S2C": Query and Discover Versions sent by a server to a client (the
  // server-to-client operations of KMIP 1.3+); the expected answers are a client's (Tape
  // Library Client profile, vendor "SOME-VENDOR-NAME", an empty Server Information).
  if (/^TC-Q-S2C-/i.test(info.id)) {
    return 'server-to-client Query / Discover Versions (the expected responses are a KMIP client\'s, e.g. its Tape Library Client profile): a replaying client cannot play the server\'s side';
  }
  for (const d of DEFECTIVE) if (globMatch(d.match, info.id) || globMatch(d.match, info.path)) return d.reason;
  const later = superseded.get(info.path);
  if (later !== undefined) return `superseded draft: a later stage of the same document is run instead (${later})`;
  return undefined;
}

/** Out-of-scope rules that need the file's content (its `# …` notes). */
export function outOfScopeByContent(notes: readonly string[]): string | undefined {
  if (notes.some((n) => /\[Server-to-Client\]/i.test(n))) {
    return 'holds server-to-client messages (Notify/Put initiated by the server), which a replaying client cannot provoke';
  }
  return undefined;
}

export { supersededBy };
