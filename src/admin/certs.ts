/**
 * Every certificate kmipd uses or trusts, with its end of validity and what its expiry breaks:
 * kmipd's CA, the server certificate, the trusted CAs and the pinned client certificates of the
 * trust store. (Client certificates issued by `kmipd cert issue` / `cert sign` are not recorded
 * anywhere by kmipd; they expire with their own date, at the latest with the CA.)
 *
 * `kmipd cert list` shows them; a running server warns in its log when one comes within 30, 7
 * and 1 days of its end (ExpiryWarner), and every day once it has expired.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { certInfo } from '../pki/info.js';
import { pkiPaths } from '../pki/store.js';
import { type ExpiryStatus, expiryStatus, listTrust, trustPaths } from '../pki/trust.js';

const DAY_MS = 86_400_000;
/** Days before the end of validity at which the server log warns. */
export const EXPIRY_THRESHOLDS_DAYS = [30, 7, 1] as const;

export type CertKind = 'ca' | 'server' | 'trusted_ca' | 'pinned';

export interface CertRecord {
  kind: CertKind;
  name: string;
  /** The file it is read from. */
  path: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  /** Whole days left (negative once expired). */
  daysLeft: number;
  status: ExpiryStatus;
  sha256: string;
  /** What stops working when it expires, per vCenter trust mode. */
  breaks: string;
}

/** What the expiry of each kind of certificate breaks, for operators. */
export function whatExpiryBreaks(kind: CertKind, name: string): string {
  switch (kind) {
    case 'ca':
      return (
        "every certificate kmipd's CA issued: the server certificate (no client can connect) and the client certificates of " +
        'vCenter modes "KMS certificate and private key" and "New Certificate Signing Request". A new CA means new client ' +
        'certificates for those modes and vCenter re-approving the server certificate ("Make vCenter Trust KMS").'
      );
    case 'server':
      return (
        'TLS to kmipd: every client, vCenter in all four trust modes, fails the handshake. Renew with `kmipd cert rotate-server` ' +
        'before the end; vCenter must then re-approve the new certificate ("Make vCenter Trust KMS"); clients that trust the kmipd CA need nothing.'
      );
    case 'trusted_ca':
      return (
        `vCenter mode "vCenter Root CA Certificate": client certificates chaining to ${name} are refused. ` +
        'Trust the renewed root CA with `kmipd trust add-ca` before the end, then remove this one.'
      );
    case 'pinned':
      return (
        `vCenter mode "vCenter Certificate": the client ${name} is refused. When vCenter renews its certificate, ` +
        `pin the new one (\`kmipd trust add-cert FILE --name ${name}\` after \`kmipd trust remove ${name}\`).`
      );
  }
}

function record(kind: CertKind, name: string, path: string, pem: string, now: Date): CertRecord {
  const i = certInfo(pem);
  return {
    kind,
    name,
    path,
    subject: i.subject,
    issuer: i.issuer,
    notBefore: i.notBefore,
    notAfter: i.notAfter,
    daysLeft: Math.floor((i.notAfter.getTime() - now.getTime()) / DAY_MS),
    status: expiryStatus(i.notBefore, i.notAfter, now),
    sha256: i.sha256,
    breaks: whatExpiryBreaks(kind, name),
  };
}

/**
 * The certificates of data directory `dataDir`. `serverCertPem`: the one a running server
 * serves (default: DATA/pki/server.crt). Unreadable ones are listed in `problems`.
 */
export function certificateInventory(dataDir: string, opts: { now?: Date; serverCertPem?: string } = {}): { certs: CertRecord[]; problems: string[] } {
  const now = opts.now ?? new Date();
  const p = pkiPaths(dataDir);
  const certs: CertRecord[] = [];
  const problems: string[] = [];
  const fromFile = (kind: CertKind, name: string, file: string, pem?: string): void => {
    try {
      if (pem === undefined && !existsSync(file)) {
        problems.push(`${file} is missing`);
        return;
      }
      certs.push(record(kind, name, file, pem ?? readFileSync(file, 'utf8'), now));
    } catch (e) {
      problems.push(`${file} cannot be read: ${(e as Error).message}`);
    }
  };
  fromFile('ca', 'kmipd-ca', p.caCert);
  fromFile('server', 'server', p.serverCert, opts.serverCertPem);
  if (existsSync(p.caCert)) {
    try {
      for (const t of listTrust(dataDir, now)) {
        if (t.kind === 'kmipd-ca') continue;
        certs.push({
          kind: t.kind === 'ca' ? 'trusted_ca' : 'pinned',
          name: t.name,
          path: trustPaths(dataDir).index,
          subject: t.subject,
          issuer: t.issuer,
          notBefore: t.notBefore,
          notAfter: t.notAfter,
          daysLeft: t.daysLeft,
          status: t.status,
          sha256: t.sha256,
          breaks: whatExpiryBreaks(t.kind === 'ca' ? 'trusted_ca' : 'pinned', t.name),
        });
      }
    } catch (e) {
      problems.push(`the trust store cannot be read: ${(e as Error).message}`);
    }
  }
  return { certs, problems };
}

/** Certificates whose end is within `withinMs` of `now` (or past). */
export function expiringWithin(certs: readonly CertRecord[], withinMs: number, now: Date = new Date()): CertRecord[] {
  return certs.filter((c) => c.notAfter.getTime() - now.getTime() <= withinMs);
}

const KIND_TEXT: Record<CertKind, string> = { ca: "kmipd's CA", server: 'the server certificate', trusted_ca: 'the trusted CA', pinned: 'the pinned certificate' };

/**
 * Logs a warning when a certificate comes within 30, 7 and 1 days of its end (once per
 * threshold and certificate), and an error at most once a day once it has expired.
 */
export class ExpiryWarner {
  /** SHA-256 -> the smallest threshold already warned about. */
  private readonly warned = new Map<string, number>();
  private readonly expiredAt = new Map<string, number>();

  constructor(private readonly log: Logger) {}

  /** Checks `certs` now; returns the lines logged. */
  check(certs: readonly CertRecord[], now: Date = new Date()): string[] {
    const lines: string[] = [];
    for (const c of certs) {
      const left = (c.notAfter.getTime() - now.getTime()) / DAY_MS;
      const what = `${KIND_TEXT[c.kind]}${c.kind === 'trusted_ca' || c.kind === 'pinned' ? ` ${c.name}` : ''} (${c.subject})`;
      if (left <= 0) {
        const last = this.expiredAt.get(c.sha256);
        if (last !== undefined && now.getTime() - last < DAY_MS) continue;
        this.expiredAt.set(c.sha256, now.getTime());
        const line = `${what} expired on ${c.notAfter.toISOString()}; broken: ${c.breaks}`;
        this.log.error({ certificate: c.kind, name: c.name, notAfter: c.notAfter.toISOString() }, line);
        lines.push(line);
        continue;
      }
      const threshold = [...EXPIRY_THRESHOLDS_DAYS].sort((a, b) => a - b).find((t) => left <= t);
      if (threshold === undefined) continue;
      const prev = this.warned.get(c.sha256);
      if (prev !== undefined && prev <= threshold) continue;
      this.warned.set(c.sha256, threshold);
      const days = Math.floor(left);
      const line = `${what} expires on ${c.notAfter.toISOString()} (in ${days === 0 ? 'less than a day' : `${days} day(s)`}); then: ${c.breaks}`;
      this.log.warn({ certificate: c.kind, name: c.name, notAfter: c.notAfter.toISOString(), daysLeft: days }, line);
      lines.push(line);
    }
    return lines;
  }
}

/** Whether a PEM certificate is valid at `now` (for readiness). */
export function validNow(pem: string, now: Date = new Date()): { ok: boolean; notAfter: Date; reason?: string } {
  const x = new X509Certificate(pem);
  const i = certInfo(x.raw);
  if (now > i.notAfter) return { ok: false, notAfter: i.notAfter, reason: `expired on ${i.notAfter.toISOString()}` };
  if (now < i.notBefore) return { ok: false, notAfter: i.notAfter, reason: `not valid before ${i.notBefore.toISOString()}` };
  return { ok: true, notAfter: i.notAfter };
}
