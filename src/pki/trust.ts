/**
 * The client trust store of a data folder: which client certificates kmipd accepts besides
 * those its own CA issued. It serves the four modes of vCenter's "Make KMS trust vCenter":
 *
 * - a trusted CA (`kmipd trust add-ca`): every client certificate chaining to it is accepted,
 *   and the client is identified by its certificate's CN, as for kmipd's own CA;
 * - a pinned certificate (`kmipd trust add-cert`): exactly that certificate (SHA-256
 *   fingerprint) is accepted, self-signed or issued by a CA kmipd does not trust, and the client
 *   is identified by the name given when it was pinned.
 *
 * On disk: DATA/trust/index.json, one JSON document holding every entry with its PEM, written
 * atomically (temporary file, fsync, rename) under a lock file, so that a reader (the running
 * server) sees either the old or the new store, never a mixture. The server watches it and
 * applies changes to new connections without a restart.
 *
 * The decision about a client certificate is `verifyClient`: a pinned fingerprint, or a chain
 * (through the intermediates the client sent) to one of the trusted CAs; validity dates of every
 * certificate used; the EKU rule (none, or one with clientAuth). It does not rely on OpenSSL's
 * verdict in the handshake, which is only a first filter.
 */
import { X509Certificate } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { OID, ekuName, parseCertificate, parseExtKeyUsage, pemEncode } from './der.js';
import { certInfo, clientIdentityAllowed, formatName } from './info.js';
import { ensurePrivateDir, pkiPaths, writeFileAtomic } from './store.js';

export const TRUST_FORMAT = 1;
/** Certificates that expire within this many days are flagged (trust list, server log). */
export const EXPIRY_WARNING_DAYS = 30;
/** The name under which kmipd's own CA appears in the list; it cannot be removed. */
export const BUILTIN_CA_NAME = 'kmipd-ca';
/** Longest chain of intermediates followed from a client certificate to a trusted CA. */
const MAX_CHAIN = 8;
const DAY_MS = 86_400_000;

export class TrustError extends Error {
  override readonly name = 'TrustError';
}

export type TrustKind = 'ca' | 'pinned';

/** One entry of DATA/trust/index.json. */
export interface TrustEntry {
  kind: TrustKind;
  /** Unique in the store; for a pinned certificate also the client identity. */
  name: string;
  /** SHA-256 fingerprint, `AA:BB:...` as node:crypto writes it. */
  sha256: string;
  subject: string;
  issuer: string;
  notBefore: string;
  notAfter: string;
  addedAt: string;
  pem: string;
}

interface TrustIndex {
  format: number;
  entries: TrustEntry[];
}

export interface TrustPaths {
  dir: string;
  index: string;
  lock: string;
}

export function trustPaths(dataDir: string): TrustPaths {
  const dir = join(dataDir, 'trust');
  return { dir, index: join(dir, 'index.json'), lock: join(dir, '.lock') };
}

// ---------------------------------------------------------------------------------------------
// Reading certificate files

/**
 * The one certificate in `bytes`: PEM (a single CERTIFICATE block) or DER. A file with several
 * certificates is refused, so that nobody trusts more than they meant to.
 */
export function parseCertificateFile(bytes: Buffer | string, what = 'the file'): X509Certificate {
  const text = typeof bytes === 'string' ? bytes : bytes.toString('latin1');
  if (text.includes('-----BEGIN')) {
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) throw new TrustError(`${what} holds no PEM "CERTIFICATE" block`);
    if (blocks.length > 1) throw new TrustError(`${what} holds ${blocks.length} certificates; give one certificate per file`);
    try {
      return new X509Certificate(blocks[0] ?? '');
    } catch (e) {
      throw new TrustError(`${what}: the certificate cannot be read (${(e as Error).message})`);
    }
  }
  try {
    return new X509Certificate(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  } catch (e) {
    throw new TrustError(`${what} is neither a PEM nor a DER certificate (${(e as Error).message})`);
  }
}

function dateOf(nodeText: string): Date {
  return new Date(nodeText);
}

function validity(x: X509Certificate): { notBefore: Date; notAfter: Date } {
  let notBefore = dateOf(x.validFrom);
  let notAfter = dateOf(x.validTo);
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) {
    const i = certInfo(x.raw);
    notBefore = i.notBefore;
    notAfter = i.notAfter;
  }
  return { notBefore, notAfter };
}

export type ExpiryStatus = 'ok' | 'expiring' | 'expired' | 'not yet valid';

export function expiryStatus(notBefore: Date, notAfter: Date, now: Date = new Date()): ExpiryStatus {
  if (now < notBefore) return 'not yet valid';
  if (now > notAfter) return 'expired';
  if (notAfter.getTime() - now.getTime() < EXPIRY_WARNING_DAYS * DAY_MS) return 'expiring';
  return 'ok';
}

function isSelfSigned(x: X509Certificate): boolean {
  try {
    return x.checkIssued(x) && x.verify(x.publicKey);
  } catch {
    return false;
  }
}

/** Whether `child` was signed by `issuer` (names, key identifiers and the signature). */
function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return child.checkIssued(issuer) && child.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** The EKU rule: no EKU, or one that includes clientAuth (or anyExtendedKeyUsage). Undefined when allowed. */
export function ekuRefusal(x: X509Certificate): string | undefined {
  let parsed;
  try {
    parsed = parseCertificate(x.raw);
  } catch (e) {
    return `the certificate cannot be parsed: ${(e as Error).message}`;
  }
  const eku = parsed.extensions.get(OID.extKeyUsage);
  if (!eku) return undefined;
  let oids: string[];
  try {
    oids = parseExtKeyUsage(eku.value);
  } catch (e) {
    return `the extended key usage extension cannot be parsed: ${(e as Error).message}`;
  }
  if (oids.includes(OID.clientAuth) || oids.includes(OID.anyExtendedKeyUsage)) return undefined;
  return `the certificate's extended key usage (${oids.map(ekuName).join(', ')}) does not allow TLS client authentication (clientAuth)`;
}

// ---------------------------------------------------------------------------------------------
// The index on disk

function checkEntry(e: unknown, file: string): TrustEntry {
  const o = e as Record<string, unknown>;
  const strings = ['name', 'sha256', 'subject', 'issuer', 'notBefore', 'notAfter', 'addedAt', 'pem'];
  if (typeof o !== 'object' || o === null || (o.kind !== 'ca' && o.kind !== 'pinned') || strings.some((k) => typeof o[k] !== 'string')) {
    throw new TrustError(`${file}: an entry is malformed (kind, name, sha256, subject, issuer, notBefore, notAfter, addedAt, pem expected)`);
  }
  return o as unknown as TrustEntry;
}

/** The entries of DATA/trust/index.json; none when the file does not exist. */
export function readTrustEntries(dataDir: string): TrustEntry[] {
  const { index } = trustPaths(dataDir);
  let text: string;
  try {
    text = readFileSync(index, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new TrustError(`cannot read ${index}: ${(e as Error).message}`);
  }
  let doc: TrustIndex;
  try {
    doc = JSON.parse(text) as TrustIndex;
  } catch (e) {
    throw new TrustError(`${index} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || typeof doc.format !== 'number' || !Array.isArray(doc.entries)) {
    throw new TrustError(`${index}: {"format": 1, "entries": [...]} expected`);
  }
  if (doc.format > TRUST_FORMAT) {
    throw new TrustError(`${index} was written by a newer kmipd (trust format ${doc.format}; this kmipd reads ${TRUST_FORMAT})`);
  }
  return doc.entries.map((e) => checkEntry(e, index));
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs `fn` holding DATA/trust/.lock (created exclusively; a lock older than 30 s is stale). */
function withLock<R>(dataDir: string, fn: () => R): R {
  const p = trustPaths(dataDir);
  ensurePrivateDir(p.dir);
  const deadline = Date.now() + 10_000;
  let fd: number | undefined;
  while (fd === undefined) {
    try {
      fd = openSync(p.lock, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - statSync(p.lock).mtimeMs > 30_000) rmSync(p.lock, { force: true });
      } catch {
        // gone meanwhile: try again
      }
      if (Date.now() > deadline) throw new TrustError(`${p.lock} is held by another kmipd command; try again (or delete it if none is running)`);
      sleepSync(50);
    }
  }
  try {
    return fn();
  } finally {
    closeSync(fd);
    rmSync(p.lock, { force: true });
  }
}

function writeEntries(dataDir: string, entries: TrustEntry[]): void {
  const doc: TrustIndex = { format: TRUST_FORMAT, entries };
  writeFileAtomic(trustPaths(dataDir).index, JSON.stringify(doc, null, 2) + '\n', 0o644);
}

/** Throws unless DATA holds a kmipd PKI (the CA made by `kmipd serve`); returns the CA PEM. */
function requireDataDir(dataDir: string): string {
  const p = pkiPaths(dataDir);
  if (!existsSync(p.caCert)) {
    throw new TrustError(`no kmipd data folder at ${dataDir} (missing ${p.caCert}); run \`kmipd serve --data ${dataDir}\` once first`);
  }
  return readFileSync(p.caCert, 'utf8');
}

export function checkTrustName(name: string): string {
  const n = name.trim();
  if (n.length === 0) throw new TrustError('the name must not be empty');
  if ([...n].length > 64) throw new TrustError('the name must be at most 64 characters');
  if (/[\u0000-\u001f\u007f]/.test(n)) throw new TrustError('the name must not contain control characters');
  if (n === BUILTIN_CA_NAME) throw new TrustError(`the name ${BUILTIN_CA_NAME} is reserved for kmipd's own CA`);
  return n;
}

function entryFor(kind: TrustKind, name: string, x: X509Certificate, now: Date): TrustEntry {
  const v = validity(x);
  return {
    kind,
    name,
    sha256: x.fingerprint256,
    subject: formatName(x.subject),
    issuer: formatName(x.issuer),
    notBefore: v.notBefore.toISOString(),
    notAfter: v.notAfter.toISOString(),
    addedAt: now.toISOString(),
    pem: pemEncode('CERTIFICATE', x.raw),
  };
}

function checkUsable(x: X509Certificate, now: Date): void {
  const v = validity(x);
  if (now > v.notAfter) throw new TrustError(`the certificate expired on ${v.notAfter.toISOString()}`);
  if (now < v.notBefore) throw new TrustError(`the certificate is not valid before ${v.notBefore.toISOString()}`);
}

function addEntry(dataDir: string, entry: TrustEntry, kmipdCaPem: string): TrustEntry {
  const kmipdCa = new X509Certificate(kmipdCaPem);
  if (kmipdCa.fingerprint256 === entry.sha256) throw new TrustError(`this is kmipd's own CA (${BUILTIN_CA_NAME}); it is always trusted`);
  return withLock(dataDir, () => {
    const entries = readTrustEntries(dataDir);
    const sameName = entries.find((e) => e.name === entry.name);
    if (sameName) throw new TrustError(`a trusted ${sameName.kind === 'ca' ? 'CA' : 'certificate'} is already named ${JSON.stringify(entry.name)}; choose another name (--name), or remove it first`);
    const same = entries.find((e) => e.sha256 === entry.sha256);
    if (same) throw new TrustError(`this certificate is already trusted as ${JSON.stringify(same.name)}`);
    writeEntries(dataDir, [...entries, entry]);
    return entry;
  });
}

/**
 * Trusts the CA certificate in `certFile` (PEM or DER): every client certificate chaining to it
 * is accepted, identified by its CN. The certificate must be a CA (basicConstraints CA:true)
 * and currently valid. The name defaults to its CN.
 */
export function addTrustedCa(dataDir: string, cert: Buffer | string, opts: { name?: string; now?: Date } = {}): TrustEntry {
  const kmipdCaPem = requireDataDir(dataDir);
  const now = opts.now ?? new Date();
  const x = parseCertificateFile(cert, 'the CA file');
  if (!x.ca) {
    throw new TrustError('the certificate is not a CA (basicConstraints CA:true missing); to accept this one client certificate, pin it with `kmipd trust add-cert`');
  }
  checkUsable(x, now);
  const cn = certInfo(x.raw).commonName;
  const name = checkTrustName(opts.name ?? cn ?? formatName(x.subject));
  return addEntry(dataDir, entryFor('ca', name, x, now), kmipdCaPem);
}

/**
 * Pins the client certificate in `certFile` (PEM or DER; self-signed allowed) under `name`,
 * which becomes the identity of the client presenting it. Refused when expired, or when its EKU
 * excludes TLS client authentication.
 */
export function addPinnedCert(dataDir: string, cert: Buffer | string, opts: { name: string; now?: Date }): TrustEntry {
  const kmipdCaPem = requireDataDir(dataDir);
  const now = opts.now ?? new Date();
  const name = checkTrustName(opts.name);
  const x = parseCertificateFile(cert, 'the certificate file');
  checkUsable(x, now);
  const eku = ekuRefusal(x);
  if (eku) throw new TrustError(eku);
  return addEntry(dataDir, entryFor('pinned', name, x, now), kmipdCaPem);
}

/** Removes the entry named `name`; returns it. */
export function removeTrust(dataDir: string, name: string): TrustEntry {
  requireDataDir(dataDir);
  if (name === BUILTIN_CA_NAME) throw new TrustError(`${BUILTIN_CA_NAME} is kmipd's own CA; it cannot be removed`);
  return withLock(dataDir, () => {
    const entries = readTrustEntries(dataDir);
    const found = entries.find((e) => e.name === name);
    if (!found) {
      const names = entries.map((e) => e.name);
      throw new TrustError(`nothing trusted is named ${JSON.stringify(name)}${names.length ? ` (names: ${names.join(', ')})` : ''}`);
    }
    writeEntries(
      dataDir,
      entries.filter((e) => e !== found),
    );
    return found;
  });
}

// ---------------------------------------------------------------------------------------------
// Listing

export interface TrustListItem {
  kind: 'kmipd-ca' | TrustKind;
  name: string;
  /** What the server calls a client accepted through this entry. */
  identity: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  sha1: string;
  sha256: string;
  selfSigned: boolean;
  /** Whole days until notAfter (negative once expired). */
  daysLeft: number;
  status: ExpiryStatus;
  addedAt?: string;
}

function listItem(kind: TrustListItem['kind'], name: string, x: X509Certificate, now: Date, addedAt?: string): TrustListItem {
  const v = validity(x);
  const item: TrustListItem = {
    kind,
    name,
    identity: kind === 'pinned' ? name : 'the CN of each client certificate',
    subject: formatName(x.subject),
    issuer: formatName(x.issuer),
    notBefore: v.notBefore,
    notAfter: v.notAfter,
    sha1: x.fingerprint,
    sha256: x.fingerprint256,
    selfSigned: isSelfSigned(x),
    daysLeft: Math.floor((v.notAfter.getTime() - now.getTime()) / DAY_MS),
    status: expiryStatus(v.notBefore, v.notAfter, now),
  };
  if (addedAt !== undefined) item.addedAt = addedAt;
  return item;
}

function itemsFrom(kmipdCa: X509Certificate, entries: readonly TrustEntry[], certs: readonly X509Certificate[], now: Date): TrustListItem[] {
  const items = [listItem('kmipd-ca', BUILTIN_CA_NAME, kmipdCa, now)];
  entries.forEach((e, i) => items.push(listItem(e.kind, e.name, certs[i]!, now, e.addedAt)));
  return items;
}

/** kmipd's own CA and every entry of the store, with expiry. */
export function listTrust(dataDir: string, now: Date = new Date()): TrustListItem[] {
  const kmipdCa = new X509Certificate(requireDataDir(dataDir));
  const entries = readTrustEntries(dataDir);
  return itemsFrom(kmipdCa, entries, entries.map((e) => parseCertificateFile(e.pem, `trust entry ${e.name}`)), now);
}

/** One line per entry that expires within EXPIRY_WARNING_DAYS, has expired, or is not valid yet. */
export function expiryWarnings(items: readonly TrustListItem[]): string[] {
  return items
    .filter((i) => i.status !== 'ok')
    .map((i) => {
      const what = i.kind === 'pinned' ? 'pinned certificate' : i.kind === 'ca' ? 'trusted CA' : "kmipd's CA";
      if (i.status === 'expired') return `the ${what} ${i.name} (${i.subject}) expired on ${i.notAfter.toISOString()}`;
      if (i.status === 'not yet valid') return `the ${what} ${i.name} (${i.subject}) is not valid before ${i.notBefore.toISOString()}`;
      return `the ${what} ${i.name} (${i.subject}) expires on ${i.notAfter.toISOString()} (in ${i.daysLeft} days)`;
    });
}

// ---------------------------------------------------------------------------------------------
// The server's view: a snapshot, and the decision about one client certificate

export interface TrustSnapshot {
  /** kmipd's CA and the trusted CAs. */
  anchors: { name: string; cert: X509Certificate }[];
  /** Pinned certificates by SHA-256 fingerprint. */
  pins: Map<string, { name: string; cert: X509Certificate }>;
  /** Every certificate for the TLS `ca` option (trusted CAs and pinned certificates). */
  caPems: string[];
  /**
   * Whether OpenSSL can verify every accepted certificate during the handshake: true when every
   * entry is self-signed or chains, within the store, to a self-signed one. Otherwise (a pinned
   * certificate from a CA kmipd does not know, an intermediate CA without its root) the handshake
   * must not reject unverified certificates, and `verifyClient` alone decides.
   */
  handshakeVerifiable: boolean;
  items: TrustListItem[];
  entries: TrustEntry[];
}

function chainsToSelfSigned(x: X509Certificate, pool: readonly X509Certificate[], depth: number): boolean {
  if (isSelfSigned(x)) return true;
  if (depth === 0) return false;
  return pool.some((p) => p !== x && issuedBy(x, p) && chainsToSelfSigned(p, pool, depth - 1));
}

/** Reads the store of `dataDir` with kmipd's CA into what the server uses to decide. */
export function loadTrustSnapshot(dataDir: string, kmipdCaPem: string, now: Date = new Date()): TrustSnapshot {
  const kmipdCa = new X509Certificate(kmipdCaPem);
  const entries = readTrustEntries(dataDir);
  const certs = entries.map((e) => parseCertificateFile(e.pem, `trust entry ${e.name}`));
  const anchors = [{ name: BUILTIN_CA_NAME, cert: kmipdCa }];
  const pins = new Map<string, { name: string; cert: X509Certificate }>();
  entries.forEach((e, i) => {
    const cert = certs[i]!;
    if (cert.fingerprint256 !== e.sha256) throw new TrustError(`trust entry ${e.name}: its sha256 does not match its certificate`);
    if (e.kind === 'ca') anchors.push({ name: e.name, cert });
    else pins.set(cert.fingerprint256, { name: e.name, cert });
  });
  const pool = [kmipdCa, ...certs];
  const handshakeVerifiable = certs.every((c) => chainsToSelfSigned(c, pool, MAX_CHAIN));
  return {
    anchors,
    pins,
    caPems: [kmipdCaPem, ...entries.map((e) => e.pem)],
    handshakeVerifiable,
    items: itemsFrom(kmipdCa, entries, certs, now),
    entries,
  };
}

export type ClientVerdict =
  | { ok: true; name: string; via: 'pinned' | 'ca'; trustedBy: string }
  | { ok: false; reason: string };

function validAt(x: X509Certificate, now: Date, what: string): string | undefined {
  const v = validity(x);
  if (now > v.notAfter) return `${what} expired on ${v.notAfter.toISOString()}`;
  if (now < v.notBefore) return `${what} is not valid before ${v.notBefore.toISOString()}`;
  return undefined;
}

/**
 * The certificates the client sent after its own (node links them through issuerCertificate).
 * A resumed TLS session carries the client's certificate but not these.
 */
export function peerIntermediates(cert: X509Certificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set([cert.fingerprint256]);
  let c = cert.issuerCertificate;
  while (c && out.length < MAX_CHAIN && !seen.has(c.fingerprint256)) {
    out.push(c);
    seen.add(c.fingerprint256);
    c = c.issuerCertificate;
  }
  return out;
}

/** The trusted CA that `x` chains to through `pool` (CA certificates the client sent), if any. */
function findAnchor(
  x: X509Certificate,
  pool: readonly X509Certificate[],
  anchors: TrustSnapshot['anchors'],
  now: Date,
  depth: number,
): string | undefined {
  for (const a of anchors) {
    if (a.cert.ca && issuedBy(x, a.cert) && validAt(a.cert, now, 'CA') === undefined) return a.name;
  }
  if (depth === 0) return undefined;
  for (const p of pool) {
    if (!p.ca || !issuedBy(x, p) || validAt(p, now, 'CA') !== undefined) continue;
    const found = findAnchor(p, pool.filter((q) => q !== p), anchors, now, depth - 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Decides about a client certificate (as node gives the peer's, linked to the chain it sent):
 * a pinned one by exact SHA-256 fingerprint (identity: the pinned name), otherwise a chain to a
 * trusted CA (identity: the CN) through the intermediates the client sent or `known` ones (CA
 * certificates seen before: a resumed session brings no chain). Each link's signature is
 * checked, so an intermediate adds no trust of its own. Validity dates of every certificate
 * used are checked, and the EKU rule (none, or one allowing clientAuth) applies to both.
 */
export function verifyClient(
  snap: TrustSnapshot,
  cert: X509Certificate,
  now: Date = new Date(),
  known: readonly X509Certificate[] = [],
): ClientVerdict {
  const expired = validAt(cert, now, 'the client certificate');
  if (expired) return { ok: false, reason: expired };
  const pin = snap.pins.get(cert.fingerprint256);
  if (pin && pin.cert.raw.equals(cert.raw)) {
    const eku = ekuRefusal(cert);
    if (eku) return { ok: false, reason: eku };
    return { ok: true, name: pin.name, via: 'pinned', trustedBy: pin.name };
  }
  const sent = peerIntermediates(cert);
  const pool = [...sent, ...known.filter((k) => !sent.some((s) => s.fingerprint256 === k.fingerprint256))];
  const anchor = findAnchor(cert, pool, snap.anchors, now, MAX_CHAIN);
  if (anchor === undefined) {
    return { ok: false, reason: `the client certificate (${formatName(cert.subject)}, issuer ${formatName(cert.issuer)}) is neither pinned nor issued by a trusted CA` };
  }
  const id = clientIdentityAllowed(cert);
  if (!id.ok) return { ok: false, reason: id.reason };
  return { ok: true, name: id.cn, via: 'ca', trustedBy: anchor };
}
