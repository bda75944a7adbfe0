/**
 * The KMIP server profiles kmipd claims in Query Profiles (KMIP 1.3+ §4.25 / 2.1 §6.1.37,
 * Profile Information 1.4 §2.1.19 / 2.1 §2.1.19).
 *
 * A profile is claimed for a protocol version only where every mandatory OASIS test case of
 * that profile and version passes against kmipd in `npm run conformance` (conformance/REPORT.md,
 * rows "… (mandatory)"). `test/conformance/corpus-*.test.ts` replay them with the whole corpus and fail
 * when one of them stops passing, so that a claim here cannot outlive the behaviour behind it.
 *
 * Not claimed: Baseline before 2.1 (1.x defines no test cases of its own; 2.0 has none), Suite B
 * and Quantum Safe (their test cases pass, but the profiles also prescribe the TLS parameters and
 * certificate algorithms of the connection, Suite B ECDSA/ECDHE suites for example, which kmipd's
 * default setup does not use and its tests do not check), PKCS#11, and the HTTPS / JSON / XML
 * transports (kmipd speaks TTLV over TLS only). Versions without test cases are not claimed.
 */
import type { KmipVersion } from '../spec/index.js';

export interface ProfileClaim {
  /** The conformance set (conformance/sets.ts key) whose mandatory test cases back the claim. */
  set: string;
  /** Profile Name stem: 1.x appends `KMIPV<major>_<minor>`, 2.x uses it as is. */
  name: string;
  /** Protocol versions whose mandatory test cases of this set all pass. */
  versions: readonly KmipVersion[];
}

export const PROFILE_CLAIMS: readonly ProfileClaim[] = [
  { set: 'BL', name: 'BaselineServer', versions: ['2.1'] },
  { set: 'OMOS', name: 'OpaqueManagedObjectStoreServer', versions: ['1.0', '1.1', '1.2', '1.3', '1.4', '2.0', '2.1'] },
  { set: 'SKLC', name: 'SymmetricKeyLifecycleServer', versions: ['1.0', '1.1', '1.2', '1.3', '1.4', '2.1'] },
  { set: 'AKLC', name: 'AsymmetricKeyLifecycleServer', versions: ['1.0', '1.1', '1.2', '1.3', '1.4', '2.0', '2.1'] },
  { set: 'SKFF', name: 'SymmetricKeyFoundryServer', versions: ['1.0', '1.1', '1.2', '1.3', '1.4', '2.0', '2.1'] },
  { set: 'CS-BC', name: 'BasicCryptographicServer', versions: ['1.2', '1.3', '1.4', '2.0', '2.1'] },
  { set: 'CS-AC', name: 'AdvancedCryptographicServer', versions: ['1.3', '1.4', '2.0', '2.1'] },
  { set: 'CS-RNG', name: 'RNGCryptographicServer', versions: ['1.3', '1.4', '2.0', '2.1'] },
  { set: 'TL', name: 'TapeLibraryServer', versions: ['1.0', '1.3', '1.4', '2.0', '2.1'] },
  { set: 'SASED', name: 'StorageArrayWithSelfEncryptingDriveServer', versions: ['1.0', '1.3', '1.4', '2.0', '2.1'] },
  // AX has a Profile Name only from 2.0 (AES XTS Server); its 1.4 test cases pass too.
  { set: 'AX', name: 'AESXTSServer', versions: ['2.0', '2.1'] },
];
