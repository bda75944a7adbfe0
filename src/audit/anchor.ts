/**
 * Anchors: records that carry an HMAC-SHA256 of the chain head under a key only the master key
 * can produce. The hash chain alone proves order and integrity against careless edits, but
 * anyone can recompute SHA-256; an anchor makes a rewritten chain detectable by whoever holds
 * the master key.
 *
 * The anchor key:
 *
 *   ikm = master.wrap(ANCHOR_LABEL)                         RFC 5649 under the master key
 *   key = HKDF-SHA256(ikm, salt "kmipd audit", info "anchor hmac v1", 32 bytes)
 *
 * Why this way:
 * - The master key never leaves its provider (with PKCS#11 it never leaves the HSM); `wrap` is
 *   all the providers offer. RFC 5649 with its fixed initial value has no randomness, so
 *   wrap(fixed label) is the same bytes every time for the same master key: a stable secret
 *   that nobody without the master key can compute (AES key wrap is a keyed permutation).
 * - Nothing new to store, back up or lose: a copy of the data directory with its master key can
 *   verify its anchors, and no HMAC key sits on disk next to the log it protects.
 * - The label differs from the canary's: the canary's wrapping is stored openly in the keystore,
 *   so it must never be key material. HKDF turns the 40 wrapped bytes into a uniform 256-bit
 *   key bound to this one purpose.
 * - Each anchor names the master key id it was made under (a non-secret fingerprint). After a
 *   master-key rotation the old anchors cannot be recomputed, but the first anchor under the
 *   new key covers the chain head, which commits to every earlier record.
 *
 * The limit: whoever can use the master key (run kmipd with its key file or HSM PIN) can make
 * anchors; that is the same trust as reading every key in the store.
 */
import { createHmac, createSecretKey, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { MasterKeyProvider } from '../crypto/masterkey.js';
import { canonicalBody, type RecordBody } from './record.js';
import type { AuditRecord } from './types.js';

/** Wrapped by the master key to derive the anchor key; 32 bytes, distinct from the canary. */
export const ANCHOR_LABEL = Buffer.from('kmipd audit anchor key, v1 .....', 'ascii');
const HKDF_SALT = 'kmipd audit';
const HKDF_INFO = 'anchor hmac v1';

/** The anchor key of `master` (see the module comment). */
export async function deriveAnchorKey(master: MasterKeyProvider): Promise<KeyObject> {
  const ikm = await master.wrap(Buffer.from(ANCHOR_LABEL));
  try {
    const okm = Buffer.from(hkdfSync('sha256', ikm, HKDF_SALT, HKDF_INFO, 32));
    const key = createSecretKey(okm);
    okm.fill(0);
    return key;
  } finally {
    ikm.fill(0);
  }
}

/** The MAC over an anchor's canonical bytes without `mac` (seq, time, kind, master, prev). */
export function anchorMac(key: KeyObject, anchor: RecordBody | AuditRecord): string {
  const { mac: _mac, ...rest } = anchor;
  void _mac;
  return createHmac('sha256', key).update(canonicalBody(rest)).digest('hex');
}

export function anchorValid(key: KeyObject, anchor: AuditRecord): boolean {
  if (anchor.mac === undefined) return false;
  const want = Buffer.from(anchorMac(key, anchor), 'hex');
  const got = Buffer.from(anchor.mac, 'hex');
  return want.length === got.length && timingSafeEqual(want, got);
}
