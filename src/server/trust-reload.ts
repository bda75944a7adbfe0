/**
 * The running server's view of its certificates and client trust, kept current without a restart.
 *
 * It watches DATA/trust (the trust store written by `kmipd trust ...`) and DATA/pki (the server
 * certificate replaced by `kmipd cert rotate-server`) with fs.watch, and polls them every 2 s as
 * well (fs.watch misses events on some file systems). On a change it reloads, swaps the
 * listener's TLS context for new handshakes, and closes open connections whose client the new
 * trust no longer accepts. A store or pair that fails to load is logged and the previous one kept.
 */
import type { X509Certificate } from 'node:crypto';
import { type FSWatcher, statSync, watch } from 'node:fs';
import type { Logger } from 'pino';
import { ensurePrivateDir, pkiPaths } from '../pki/store.js';
import { type ServerPair, loadServerPair } from '../pki/rotate.js';
import { type ClientVerdict, type TrustSnapshot, expiryWarnings, loadTrustSnapshot, peerIntermediates, trustPaths, verifyClient } from '../pki/trust.js';
import { certInfo } from '../pki/info.js';
import type { IdentifyResult, KmipListener } from './listener.js';
import type { ServerState } from './server.js';

export const TRUST_POLL_MS = 2000;
const DEBOUNCE_MS = 50;
/** Intermediate CA certificates remembered from full handshakes, for resumed sessions. */
/** Bound on the verdict cache (cleared whole when full: rebuilding it is cheap). */
const MAX_CACHED_VERDICTS = 4096;
const MAX_KNOWN_INTERMEDIATES = 256;

export interface TlsMaterial {
  cert: string;
  key: string;
  ca: string[];
  rejectUnauthorized: boolean;
}

function fileSignature(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return '-';
  }
}

export class TrustRuntime {
  private snap: TrustSnapshot;
  private pair: ServerPair;
  private trustSig: string;
  private pairSig: string;
  private listener: KmipListener | undefined;
  private readonly watchers: FSWatcher[] = [];
  private poll: NodeJS.Timeout | undefined;
  private daily: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly intermediates = new Map<string, X509Certificate>();

  private constructor(
    private readonly state: ServerState,
    private readonly log: Logger,
  ) {
    this.trustSig = this.trustSignature();
    this.pairSig = this.pairSignature();
    this.snap = loadTrustSnapshot(state.dir, state.pki.caCertPem);
    this.pair = { certPem: state.pki.serverCertPem, keyPem: state.pki.serverKeyPem };
    this.describe('trust store loaded');
  }

  /** Loads DATA/trust (a malformed store is an error: the server does not start on it). */
  static open(state: ServerState, log: Logger): TrustRuntime {
    return new TrustRuntime(state, log);
  }

  get snapshot(): TrustSnapshot {
    return this.snap;
  }

  /** The trust list with expiry computed now (the snapshot's was computed when it was loaded). */
  currentItems(): TrustSnapshot['items'] {
    try {
      return loadTrustSnapshot(this.state.dir, this.state.pki.caCertPem).items;
    } catch {
      return this.snap.items;
    }
  }

  /** What the listener's TLS context needs, now. */
  tlsOptions(): TlsMaterial {
    return { cert: this.pair.certPem, key: this.pair.keyPem, ca: this.snap.caPems, rejectUnauthorized: this.snap.handshakeVerifiable };
  }

  /** Accepted client certificates by SHA-256 fingerprint, for the current snapshot only. */
  private readonly verdicts = new Map<string, { verdict: ClientVerdict; raw: Buffer; until: Date }>();

  /** The listener's identify step: the current trust decides. */
  identify(cert: X509Certificate): IdentifyResult {
    const v = this.verify(cert);
    if (!v.ok) return { ok: false, reason: v.reason };
    return { ok: true, identity: { name: v.name } };
  }

  /**
   * verifyClient with the intermediates seen in earlier handshakes: a resumed TLS session gives
   * the client's certificate without the chain it sent, and must still reach the trusted CA.
   */
  private verify(cert: X509Certificate): ClientVerdict {
    // vCenter opens a short connection per step with the same certificate: an accepted
    // certificate's verdict is kept until the trust store changes or the certificate expires.
    const now = new Date();
    const fp = cert.fingerprint256;
    const cached = this.verdicts.get(fp);
    if (cached && now < cached.until && cached.raw.equals(cert.raw)) return cached.verdict;
    const v = verifyClient(this.snap, cert, now, [...this.intermediates.values()]);
    if (v.ok) {
      if (this.verdicts.size >= MAX_CACHED_VERDICTS) this.verdicts.clear();
      this.verdicts.set(fp, { verdict: v, raw: cert.raw, until: new Date(cert.validTo) });
    }
    if (v.ok && v.via === 'ca') {
      for (const c of peerIntermediates(cert)) {
        if (!c.ca || this.intermediates.has(c.fingerprint256)) continue;
        if (this.intermediates.size >= MAX_KNOWN_INTERMEDIATES) {
          const oldest = this.intermediates.keys().next();
          if (!oldest.done) this.intermediates.delete(oldest.value);
        }
        this.intermediates.set(c.fingerprint256, c);
      }
    }
    return v;
  }

  /** Starts watching and polling; changes are applied to `listener`. */
  attach(listener: KmipListener, pollMs = TRUST_POLL_MS): void {
    this.listener = listener;
    for (const dir of [trustPaths(this.state.dir).dir, pkiPaths(this.state.dir).dir]) {
      try {
        ensurePrivateDir(dir);
        const w = watch(dir, { persistent: false }, () => this.soon());
        w.on('error', (err) => {
          this.log.debug({ err: err.message, dir }, 'fs.watch failed; polling only');
          w.close();
        });
        this.watchers.push(w);
      } catch (e) {
        this.log.debug({ err: (e as Error).message, dir }, 'fs.watch unavailable; polling only');
      }
    }
    this.poll = setInterval(() => this.check(), pollMs);
    this.poll.unref();
    // a server running for weeks still warns when a certificate comes within 30 days of its end
    this.daily = setInterval(() => {
      for (const w of expiryWarnings(this.currentItems())) this.log.warn(`trust: ${w}`);
    }, 86_400_000);
    this.daily.unref();
  }

  private soon(): void {
    if (this.closed || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.check();
    }, DEBOUNCE_MS);
    this.debounce.unref();
  }

  private trustSignature(): string {
    return fileSignature(trustPaths(this.state.dir).index);
  }

  private pairSignature(): string {
    const p = pkiPaths(this.state.dir);
    return `${fileSignature(p.serverCert)}|${fileSignature(p.serverKey)}`;
  }

  private describe(what: string): void {
    const s = this.snap;
    const cas = s.entries.filter((e) => e.kind === 'ca').map((e) => e.name);
    const pinned = s.entries.filter((e) => e.kind === 'pinned').map((e) => e.name);
    this.log.info(
      { cas, pinned, handshakeVerification: s.handshakeVerifiable ? 'openssl+kmipd' : 'kmipd' },
      `${what}: kmipd CA, ${cas.length} trusted CA(s), ${pinned.length} pinned certificate(s)`,
    );
    for (const w of expiryWarnings(s.items)) this.log.warn(`trust: ${w}`);
  }

  /** Reloads what changed on disk since the last look. Returns what was applied. */
  check(): { trust: boolean; serverCert: boolean } {
    const applied = { trust: false, serverCert: false };
    if (this.closed) return applied;
    const trustSig = this.trustSignature();
    if (trustSig !== this.trustSig) {
      this.trustSig = trustSig;
      try {
        this.snap = loadTrustSnapshot(this.state.dir, this.state.pki.caCertPem);
        this.verdicts.clear();
        applied.trust = true;
        this.describe('trust store reloaded');
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'the trust store cannot be loaded; the previous one stays in use');
      }
    }
    const pairSig = this.pairSignature();
    if (pairSig !== this.pairSig) {
      try {
        const pair = loadServerPair(this.state.dir, this.state.pki.caCertPem);
        this.pairSig = pairSig;
        if (pair.certPem !== this.pair.certPem || pair.keyPem !== this.pair.keyPem) {
          this.pair = pair;
          this.state.pki.serverCertPem = pair.certPem;
          this.state.pki.serverKeyPem = pair.keyPem;
          applied.serverCert = true;
          const i = certInfo(pair.certPem);
          this.log.warn(
            { subject: i.subject, notAfter: i.notAfter.toISOString(), sha1: i.sha1, sha256: i.sha256 },
            'new server certificate in use for new connections; clients that pinned the old one (vCenter) must approve this one',
          );
        }
      } catch (e) {
        // e.g. between the two renames of a rotation: the next change event or poll retries
        this.log.debug({ err: (e as Error).message }, 'server certificate pair not (yet) usable; keeping the current one');
      }
    }
    if ((applied.trust || applied.serverCert) && this.listener) {
      this.listener.reloadTls();
      if (applied.trust) {
        const n = this.listener.closeConnections((cert, identity) => {
          const v = this.verify(cert);
          return !v.ok || v.name !== identity.name;
        });
        if (n > 0) this.log.warn({ connections: n }, 'closed connections whose client certificate is no longer trusted');
      }
    }
    return applied;
  }

  close(): void {
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    if (this.daily) clearInterval(this.daily);
    if (this.debounce) clearTimeout(this.debounce);
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
  }
}
