/**
 * What the conformance runner does not run, each entry with its reason. Nothing is left out
 * silently: every skipped and every out-of-scope file is listed in the report.
 *
 * - SKIPS: server test cases for something kmipd deliberately does not offer. An operation that
 *   is merely not implemented yet is NOT a skip: its test cases fail until it is.
 * - Out of scope: files that are not server test cases for kmipd at all (KMIP 3.0, superseded
 *   drafts of a document whose later stage is present, server-to-client Query / Discover
 *   Versions). The server-to-client Put and Notify transcripts (`# [Server-to-Client]`) are run:
 *   kmipd receives Put and Notify from trusted upstreams, and client A plays the upstream
 *   (conformance/target.ts).
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

const CREDENTIAL_IDENTITY =
  "the test case tells clients apart by the Credential in the request header (two Username/Password or Device credentials over one TLS client): kmipd identifies a client by its TLS certificate (the CN), and a header credential is only the optional shared password of the \"auth\" setting, never a separate identity";
const ONE_TIME_PAD =
  'Encrypt / Decrypt with a One Time Pad Secret Data as stateless XOR with the same pad every time (TC-OTP-5 encrypts twice under one pad and decrypts both; TC-OTP-4 expects Get of the pad refused, a rule the spec does not state): a pad used more than once is not a one-time pad, and the XOR of two ciphertexts is the XOR of the plaintexts, so kmipd does not offer One Time Pad encryption (Encrypt / Decrypt need a Symmetric Key or an asymmetric key)';
const MDO_WITHOUT_LOCATION =
  'registers a metadata-only Secret Data (no Key Value) without a Key Value Location: kmipd keeps a metadata-only object only when the client says where its value is (Key Value Location, KMIP 1.2 §3.42), as the MDO test cases do (src/operations/register.ts)';

export const SKIPS: readonly SkipEntry[] = [
  // KMIP Test Cases 1.3 (cnd01) One Time Pad: the pad with key material (TC-OTP-SETUP-1) is
  // registered and cleaned up (TC-OTP-CLEANUP-1) and those run; what is done with it is skipped.
  { match: 'TC-OTP-1-*', reason: ONE_TIME_PAD },
  { match: 'TC-OTP-2-*', reason: ONE_TIME_PAD },
  { match: 'TC-OTP-4-*', reason: ONE_TIME_PAD },
  { match: 'TC-OTP-5-*', reason: ONE_TIME_PAD },
  { match: 'TC-OTP-SETUP-2-*', reason: MDO_WITHOUT_LOCATION },
  { match: 'TC-OTP-3-*', reason: MDO_WITHOUT_LOCATION },
  // SKFF-O-6 in 1.1 (OASIS and OVH copies) expects Get Attribute List to name an Object Group
  // the client never set; the 1.0 and 1.2 transcripts of the same test (SKFF-O-6-10, -12) do not.
  {
    match: 'SKFF-O-6-11',
    reason:
      "expects the reference server's own default Object Group on a key the client put in no group (Object Group may be set by the client or the server, KMIP 1.4 §3.33; the 1.0 and 1.2 transcripts of the same test list none): kmipd puts an object in a group only when the client asks",
  },
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
  // KMIP Test Cases 1.4 / 2.0 TC-ECDSA-SIGN-DIGESTEDDATA-1: Sign and Signature Verify of a
  // Digested Data (a digest the client computed) with an ECDSA key.
  {
    match: 'TC-ECDSA-SIGN-DIGESTEDDATA-*',
    reason:
      "ECDSA over a digest the client computed: kmipd's cryptography is node:crypto only, and node:crypto (OpenSSL 3 EVP_DigestSign) always hashes the message itself for EC keys (crypto.sign(null, digest, ecKey) signs SHA-256(digest); there is no pre-hashed ECDSA and no NULL digest); kmipd answers Unsupported Cryptographic Parameters rather than implement ECDSA outside node:crypto (RSA Digested Data is supported, see src/operations/sign.ts)",
  },
  // KMIP Test Cases 1.x §11.1-11.2 (OVH's TC-111/112): Fred creates a key; Barney (another
  // Username/Password or Device credential in the request header, over the same TLS client)
  // must get Permission Denied. kmipd's client identity is the TLS client certificate's CN; the
  // header credential is only checked against the one configured in "auth" (README, Access
  // control), never a second identity on the same certificate.
  // KMIP Test Cases 2.0 TC-IMPEXP-4: a Private Key registered in Transparent RSA form, then
  // Exported: the transcript expects two Digests, the mandatory one over the registered form and
  // one over PKCS#1. A server MAY add digests over other formats (1.4 §3.17); kmipd keeps the one
  // mandatory Digest, as TC-182 (1.1/1.2, "Digests of RSA Private Keys") expects of the same
  // registration. The Export and Import themselves are run by TC-IMPEXP-1/2/5.
  {
    match: 'TC-IMPEXP-4-*',
    reason:
      'expects a second, optional Digest (over PKCS#1) of a key registered in Transparent RSA form; kmipd computes only the mandatory Digest over the registered form, as TC-182 expects of the same registration (a server MAY add others, KMIP 1.4 §3.17)',
  },
  { match: 'TC-111-*', reason: CREDENTIAL_IDENTITY },
  { match: 'TC-112-*', reason: CREDENTIAL_IDENTITY },
  // KMIP Test Cases 1.1/1.2 §15.1 (OVH's TC-151): "Locate a fresh object from the default
  // group" on an empty server expects one: the transcript itself says it "assumes that the server
  // has fresh objects available in the default group, or that it creates a new object on-the-fly
  // as a consequence of the Locate request" and that this is "only one possible behavior".
  {
    match: 'TC-151-*',
    reason:
      'server policy the transcript assumes ("fresh objects available in the default group, or ... creates a new object on-the-fly" on Locate): kmipd keeps no pre-provisioned pool and creates objects only on Create / Register (group members are served by Locate with Object Group Member, as TC-152/153 show)',
  },
  // KMIP Test Cases 1.4 §12 TC-NP-1: the transcript's key server Creates a key, then pushes it
  // (Put New) to a client. Replayed against one server, the Put arrives at the server that just
  // generated a random key under that Unique Identifier, carrying the reference server's key
  // bytes. kmipd takes Put from a trusted upstream (src/operations/put.ts) but never changes an
  // existing object's key material: Object Already Exists. TC-NP-2, where the pushed key is the
  // one registered, is run and passes.
  {
    match: 'TC-NP-1-*',
    reason:
      "replayed against one server, its Put New carries the reference server's key bytes for the identifier under which kmipd itself generated a different key (the transcript's Create); kmipd never changes an existing object's key material, so it answers Object Already Exists (TC-NP-2, which pushes the registered key, passes)",
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

const ECC_DECRYPTED =
  'defective transcript: expects an encrypted PKCS#8 key registered without any password to come back decrypted (the reference server used its own out-of-band password, "secret") and labels the SEC1 ECPrivateKey it returns PKCS_8; kmipd returns the key as registered, as OVH\'s TC-ECC-2-10/-11 expect';
const ECC_ENCRYPTED =
  "defective transcript: Get of a plaintext SEC1 key expects an encrypted PKCS#8 blob (random salt, a password the client never gave) labelled ECPrivateKey; OVH's TC-ECC-3-12 and the OASIS TC-ECC-3-14/-20 expect the key as registered, and run";

const LEASE_POLICY =
  "defective transcript: expects the reference server's lease policy (Lease Time 16 then 0 in 1.0, 0 in 1.1) where the 1.2 copy of the same test case expects 3600, kmipd's default; the Lease Time granted is the server's choice";
const RECERTIFY_INDEX =
  "defective transcript: expects the reference server's Attribute Index numbering of the two Link instances Re-certify sets (Replaced Object Link first) where OVH's 1.2 copy of the same test case expects the reverse, which kmipd gives";

const OFFSET_ORDER =
  'defective transcript (1.3 draft): pages through the located keys oldest first, where the 1.4 and 2.0 versions of the same test case (which run) page newest first, as kmipd does';

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
  // Registers a PKCS#8 EncryptedPrivateKeyInfo (pbeWithSHAAnd3-KeyTripleDES-CBC) and gives no
  // password (no link, no attribute), then expects Get to return the key decrypted, as an SEC1
  // ECPrivateKey labelled PKCS_8: the password is "secret", known to the reference server out of
  // band. OVH's 1.0 and 1.1 copies (TC-ECC-2-10/-11) expect the key back as registered, which
  // kmipd does, and run.
  { match: 'TC-ECC-2-12', reason: ECC_DECRYPTED },
  { match: 'TC-ECC-2-14', reason: ECC_DECRYPTED },
  { match: 'TC-ECC-2-20', reason: ECC_DECRYPTED },
  // Registers a plaintext SEC1 ECPrivateKey; Get (no Key Format Type) expects an
  // EncryptedPrivateKeyInfo (pbeWithSHAAnd3-KeyTripleDES-CBC, random salt 2f2656a3…) labelled
  // ECPrivateKey. OVH's 1.2 copy and the OASIS 1.4 / 2.0 ones expect the key as registered, and run.
  { match: 'TC-ECC-3-10', reason: ECC_ENCRYPTED },
  { match: 'TC-ECC-3-11', reason: ECC_ENCRYPTED },
  {
    // Get with a Key Wrapping Specification that names Attribute Name Cryptographic Usage Mask
    // and no Encoding Option (so TTLV Encoding: the Key Value structure with the attribute,
    // 1.1 §2.1.6) expects 1fa68b0a…cfe5, the RFC 3394 §4.1 wrapping of the 16 key bytes alone:
    // TC-141's No Encoding answer pasted (its comment still says "No Encoding"). A TTLV Key
    // Value with the key and the attribute cannot wrap to 24 bytes.
    match: '*/TC_142_1?_Key_Wrapping_using_AES_Key_Wrap_with_Attributes.xml',
    reason:
      "defective transcript: asks for the key wrapped with its Cryptographic Usage Mask attribute (TTLV Encoding) but expects 1fa68b0a…, the RFC 3394 wrapping of the bare key bytes (TC-141's No Encoding answer); kmipd wraps the Key Value structure with the attribute, as the spec says",
  },
  // Obtain Lease: the Lease Time granted is the server's policy, and the three copies of TC-95
  // disagree: 1.0 expects 16 then 0, 1.1 expects 0 and 0, 1.2 expects 3600 and 3600 (kmipd's
  // default leaseTimeSeconds, which it answers, and TC-95-12 runs). No Deactivation Date or
  // Process Stop Date bounds the lease in these transcripts.
  { match: 'TC-95-10', reason: LEASE_POLICY },
  { match: 'TC-95-11', reason: LEASE_POLICY },
  // Re-certify: the new certificate's two Link instances (Public Key Link copied from the old
  // certificate, Replaced Object Link to it). 1.0 and 1.1 expect Replaced Object Link at Attribute
  // Index 0; OVH's 1.2 copy expects Public Key Link at index 0, which kmipd gives (TC-134-12 runs).
  { match: 'TC-134-10', reason: RECERTIFY_INDEX },
  { match: 'TC-134-11', reason: RECERTIFY_INDEX },
  // Locate with Maximum Items / Offset Items after five Creates: the 1.3 draft pages through
  // the keys oldest first (offset 0 is key1), while the same test cases in 1.4 and 2.0
  // (TC-OFFSET-1/2-14, -20) page newest first, which kmipd does and which run.
  { match: 'TC-OFFSET-1-13', reason: OFFSET_ORDER },
  { match: 'TC-OFFSET-2-13', reason: OFFSET_ORDER },
  {
    // Register of a PKCS#12 (kmipd registers the key and its certificate), then Locate by X.509
    // Certificate Identifier with the serial number as the DER INTEGER (020900d2f5…, found), then
    // Get Attributes expecting the same attribute as the INTEGER's content (00d2f5…) and the
    // Certificate Identifier serial as 00d2f5…. TC-CERTATTR-1-14 and TC-ECC-3-14 expect the DER
    // INTEGER form (0208…, 0209…) in Get Attributes, which kmipd gives; every other step runs.
    // The 2.0 copy (TC-PKCS12-2-20) has the same contradiction with TC-CERTATTR-1-20.
    match: 'TC-PKCS12-2-*',
    reason:
      'defective transcript: Get Attributes expects the certificate serial number as the INTEGER content (00d2f5…) where its own Locate a step earlier finds the certificate by the DER INTEGER (020900d2f5…) and TC-CERTATTR-1-14 / -20 and TC-ECC-3-14 expect the DER form, as kmipd answers',
  },
  {
    // Register a Secret Data, Export it, Import it back (refused: it exists), Get Attributes:
    // the expected attributes are the reference server's own from its 2018 run, as literals
    // (Initial Date and Last Change Date 2018-12-19T19:24:26+10:00, a Short Unique Identifier
    // f890a5…), not placeholders, so no replay of the Register today can match them.
    match: 'TC-IMPEXP-3-*',
    reason: 'defective transcript: Get Attributes expects the Initial Date, Last Change Date and Short Unique Identifier of the reference server\'s 2018 run as literal values for an object the replay registers today',
  },
  {
    // OVH's 1.2 copy of TC-312 expects Lease Time on the registered Template; KMIP 1.2 gives
    // Lease Time to Cryptographic Objects, which a Template is not (1.2 §2.2), and the 1.0 and
    // 1.1 copies of the same test case (TC_312_10 / _11, run and passing) expect none.
    match: '*/TC_312_12_Register_Create_Get_attributes_Destroy.xml',
    reason: 'defective transcript: expects Lease Time on a Template, which is not a Cryptographic Object (KMIP 1.2 §2.2, §3.20); its 1.0 and 1.1 copies expect none and pass',
  },
  {
    // The Suite B 2.0 committee-specification draft (csd01) expects Query Objects to list
    // Template, an Object Type KMIP 2.0 removed (1.3 deprecated it; 2.0 §11 has no Template).
    match: '*/v2.0/csd01/test-cases/kmip-v2.0/mandatory/SUITEB_*-M-1-20.xml',
    reason: 'defective transcript (2.0 draft csd01): Query is expected to list Object Type Template, which does not exist in KMIP 2.0',
  },
  {
    // The exhausted ticket's Query is expected back as a failed item without its Operation;
    // a Response Batch Item carries the Operation when the request item named one, and
    // the sibling transcripts TC-LOGIN-2-20 and TC-DLOGIN-1-20 expect it in the same situation.
    match: 'TC-LOGIN-3-20',
    reason: 'defective transcript: the failed item of an exhausted ticket is expected without the Operation its request named (a Response Batch Item echoes the Operation of the request item), where the sibling transcripts TC-LOGIN-2-20 and TC-DLOGIN-1-20 expect it',
  },
  {
    // OVH's own 1.2 file (not an OASIS test case): Create, then Encrypt with the new key while
    // it is still Pre-Active. KMIP 1.2 §3.22 (State): a Pre-Active object "SHALL NOT be used for
    // any cryptographic purpose", so kmipd refuses the Encrypt.
    match: '*/TC-SK-CREATE-ENCRYPT-DECRYPT-DESTROY.xml',
    reason: "defective transcript: encrypts with a Pre-Active key (never activated), which KMIP forbids (1.2 §3.22: a Pre-Active object shall not be used for any cryptographic purpose)",
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

export { supersededBy };
