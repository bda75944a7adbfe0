/** Server and client certificates signed by kmipd's CA. */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { buildCertificate, checkCommonName, commonNameDer, ipBytes, isDnsName, randomSerial, type CertProfile } from './build.js';
import { type CaMaterial, type IssuedCert, type PreparedCa, checkDays, prepareCa, validityFor } from './ca.js';
import { OID, pemEncode } from './der.js';
import { checkKeyType, generateKey, type KeyType } from './keys.js';

export const DEFAULT_SERVER_DAYS = 1825;
export const DEFAULT_CLIENT_DAYS = 1825;

/**
 * Validates SAN entries: an IPv4/IPv6 address becomes an iPAddress SAN, anything else must be
 * a DNS name (optionally written `DNS:name` / `IP:addr`). Duplicates are dropped.
 */
export function normalizeSans(sans: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const entry of sans) {
    let s = String(entry).trim();
    let kind: 'ip' | 'dns' | undefined;
    const m = /^(DNS|IP):(.*)$/i.exec(s);
    if (m) {
      kind = (m[1] ?? '').toUpperCase() === 'IP' ? 'ip' : 'dns';
      s = (m[2] ?? '').trim();
    }
    if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
    let key: string | undefined;
    if (isIP(s) && kind !== 'dns' && !s.includes('%')) {
      key = `ip:${ipBytes(s).toString('hex')}`;
    } else if (kind !== 'ip' && isDnsName(s)) {
      key = `dns:${s.toLowerCase()}`;
    }
    if (key === undefined) {
      throw new Error(`invalid subject alternative name ${JSON.stringify(entry)}: not an IP address or DNS name`);
    }
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(s);
  }
  return out;
}

/** Client certificates: clientAuth. RSA keys also get keyEncipherment. */
export function clientProfile(keyType: string): CertProfile {
  return {
    ca: false,
    keyUsage: keyType === 'rsa' ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'],
    extKeyUsage: [OID.clientAuth],
  };
}

/** Signs a leaf certificate for an existing public key and checks the result with node:crypto. */
export function signLeaf(
  ca: PreparedCa,
  leaf: { subjectDer: Uint8Array; spkiDer: Uint8Array; profile: CertProfile; days: number },
): string {
  const der = buildCertificate(
    {
      serial: randomSerial(),
      issuerDer: ca.subjectDer,
      subjectDer: leaf.subjectDer,
      spkiDer: leaf.spkiDer,
      ...validityFor(leaf.days, ca.notAfter),
      profile: leaf.profile,
      authorityKeyId: ca.keyId,
    },
    ca.signer,
  );
  const x = new X509Certificate(der);
  if (!x.checkIssued(ca.cert) || !x.verify(ca.cert.publicKey)) {
    throw new Error('internal: the issued certificate does not verify against the CA');
  }
  return pemEncode('CERTIFICATE', der);
}

async function issueWithNewKey(
  ca: CaMaterial,
  commonName: string,
  keyType: KeyType,
  profileFor: (keyType: KeyType) => CertProfile,
  days: number,
): Promise<IssuedCert> {
  checkCommonName(commonName);
  const p = prepareCa(ca);
  const key = await generateKey(keyType);
  const certPem = signLeaf(p, { subjectDer: commonNameDer(commonName), spkiDer: key.spkiDer, profile: profileFor(keyType), days });
  return { certPem, keyPem: key.keyPem };
}

/**
 * A TLS server certificate: serverAuth, digitalSignature (+keyEncipherment for RSA), SANs
 * (iPAddress for IP strings, dNSName otherwise). RSA-2048 unless keyType is 'ec' (P-256).
 */
export async function issueServerCert(
  ca: CaMaterial,
  opts: { commonName: string; sans: string[]; keyType?: KeyType; days?: number },
): Promise<IssuedCert> {
  const sans = normalizeSans(opts.sans);
  if (sans.length === 0) throw new Error('a server certificate needs at least one subject alternative name');
  const days = checkDays(opts.days, DEFAULT_SERVER_DAYS);
  return issueWithNewKey(
    ca,
    opts.commonName,
    checkKeyType(opts.keyType),
    (kt) => ({
      ca: false,
      keyUsage: kt === 'rsa' ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'],
      extKeyUsage: [OID.serverAuth],
      sans,
    }),
    days,
  );
}

/** A TLS client certificate (clientAuth) with subject CN=commonName. RSA-2048 or EC P-256. */
export async function issueClientCert(
  ca: CaMaterial,
  opts: { commonName: string; keyType?: KeyType; days?: number },
): Promise<IssuedCert> {
  const days = checkDays(opts.days, DEFAULT_CLIENT_DAYS);
  return issueWithNewKey(ca, opts.commonName, checkKeyType(opts.keyType), clientProfile, days);
}
