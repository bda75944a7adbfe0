/**
 * Failed handshakes and refused connections, logged per client address without flooding the log.
 *
 * vCenter retries fast when kmipd does not trust it (18 failed handshakes in 30 s seen), and a
 * scanner may try thousands of addresses: one line per failure would bury everything else. So:
 *
 * - the first failure of an address is logged at once (warn, with its reason and details);
 * - further failures of that address within the window (60 s) are only counted, by reason, and
 *   summarised in one line when the window ends:
 *   "49 more failed handshakes from 10.0.0.5 in 60 s: reasons {untrusted_certificate: 49}";
 *   the next failure after that starts a new window (logged at once again);
 * - at most `maxPeers` addresses (10,000) are tracked; failures from further addresses are
 *   counted together and summarised in one "other peers" line, so a scan cannot eat memory;
 * - reasons come from a fixed list (HANDSHAKE_FAILURE_REASONS, CONNECTION_REFUSAL_REASONS);
 * - one timer, unref'd, runs only while something is tracked; `close()` flushes what is pending.
 */
import type { Logger } from 'pino';

export const HANDSHAKE_FAILURE_REASONS = [
  'timeout',
  'no_client_certificate',
  'untrusted_certificate',
  'certificate_expired',
  'client_certificate_refused',
  'protocol',
  'connection_reset',
  'other',
] as const;
export type HandshakeFailureReason = (typeof HANDSHAKE_FAILURE_REASONS)[number];

/** Connections closed at accept, before any TLS work. */
export const CONNECTION_REFUSAL_REASONS = ['per_address_limit', 'max_connections'] as const;
export type ConnectionRefusalReason = (typeof CONNECTION_REFUSAL_REASONS)[number];

export type PeerFailureReason = HandshakeFailureReason | ConnectionRefusalReason;

/** A failed handshake's reason, from a fixed list (never the error text itself). */
export function handshakeFailureReason(outcome: 'no-certificate' | 'refused' | Error): HandshakeFailureReason {
  if (outcome === 'no-certificate') return 'no_client_certificate';
  if (outcome === 'refused') return 'client_certificate_refused';
  const code = (outcome as NodeJS.ErrnoException).code ?? '';
  const m = `${code} ${outcome.message}`.toLowerCase();
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT' || m.includes('timed out') || m.includes('timeout')) return 'timeout';
  // OpenSSL's verification codes (X509_V_ERR_*), as Node reports them for a client certificate
  if (code === 'CERT_HAS_EXPIRED') return 'certificate_expired';
  if (/^(UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|CERT_|INVALID_|PATH_LENGTH_|KEYUSAGE_|ERR_TLS_CERT)/.test(code)) return 'untrusted_certificate';
  if (m.includes('peer did not return a certificate') || m.includes('no certificate')) return 'no_client_certificate';
  if (m.includes('certificate has expired') || m.includes('certificate expired') || m.includes('certificate_expired')) return 'certificate_expired';
  if (/unknown ca|unable to get|self[ -]signed|certificate verify failed|unsupported certificate|bad certificate|certificate unknown|certificate_unknown|unable to verify/.test(m)) return 'untrusted_certificate';
  if (/wrong version number|unsupported protocol|version too low|no shared cipher|no suitable|inappropriate fallback|http request|unknown protocol|no protocols available|wrong_version|unexpected message|record layer/.test(m)) return 'protocol';
  if (code === 'ECONNRESET' || code === 'EPIPE' || m.includes('socket hang up') || m.includes('econnreset')) return 'connection_reset';
  return 'other';
}

/** The address as one peer: IPv4-mapped IPv6 (`::ffff:10.0.0.5`) is the IPv4 address. */
export function normalizeAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m ? m[1] : address;
}

export const PEER_LOG_WINDOW_MS = 60_000;
export const PEER_LOG_MAX_PEERS = 10_000;

export interface PeerFailureLogOptions {
  log: Logger;
  /** Failures of one address after its first are summarised once per window. */
  windowMs?: number;
  /** Addresses tracked at once; beyond, failures are summarised as "other peers". */
  maxPeers?: number;
  clock?: () => number;
}

interface Bucket {
  /** When the window began (the failure logged at once). */
  since: number;
  /** Failures after the one logged at once. */
  more: number;
  reasons: Map<PeerFailureReason, number>;
}

const UNKNOWN_PEER = 'unknown';

export class PeerFailureLog {
  private readonly log: Logger;
  private readonly windowMs: number;
  private readonly maxPeers: number;
  private readonly clock: () => number;
  private readonly peers = new Map<string, Bucket>();
  /** Failures of addresses beyond maxPeers (their first one is not logged at once either). */
  private other: Bucket | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: PeerFailureLogOptions) {
    this.log = opts.log;
    this.windowMs = opts.windowMs ?? PEER_LOG_WINDOW_MS;
    this.maxPeers = opts.maxPeers ?? PEER_LOG_MAX_PEERS;
    this.clock = opts.clock ?? Date.now;
  }

  /** Addresses tracked now (bounded by maxPeers). */
  get tracked(): number {
    return this.peers.size;
  }

  /**
   * One failure of `address`. Logged at once as `msg` with `fields` (plus addr and reason) if it
   * is the first of its window; otherwise counted for the summary.
   */
  record(address: string | undefined, reason: PeerFailureReason, msg: string, fields: Record<string, unknown> = {}): void {
    const addr = normalizeAddress(address) ?? UNKNOWN_PEER;
    const now = this.clock();
    const b = this.peers.get(addr);
    if (b) {
      b.more++;
      b.reasons.set(reason, (b.reasons.get(reason) ?? 0) + 1);
      return;
    }
    if (this.peers.size >= this.maxPeers) {
      if (!this.other) {
        this.other = { since: now, more: 0, reasons: new Map() };
        this.log.warn(
          { addr, reason, trackedPeers: this.peers.size },
          `failures from more than ${this.maxPeers} addresses at once; failures of further addresses are summarised together`,
        );
      }
      this.other.more++;
      this.other.reasons.set(reason, (this.other.reasons.get(reason) ?? 0) + 1);
      this.arm();
      return;
    }
    this.peers.set(addr, { since: now, more: 0, reasons: new Map() });
    this.log.warn({ ...fields, addr, reason }, msg);
    this.arm();
  }

  /** Logs the summaries of windows that have ended (all of them with `all`), and forgets them. */
  sweep(all = false): void {
    const now = this.clock();
    for (const [addr, b] of this.peers) {
      if (!all && now - b.since < this.windowMs) continue;
      this.peers.delete(addr);
      if (b.more > 0) this.summary(`from ${addr}`, b, now, { addr });
    }
    const o = this.other;
    if (o && (all || now - o.since >= this.windowMs)) {
      this.other = undefined;
      this.summary(`from other peers (more than ${this.maxPeers} tracked)`, o, now, { addr: 'other peers' });
    }
    if (this.peers.size === 0 && !this.other) this.disarm();
  }

  /** Logs every pending summary now (shutdown) and stops the timer. */
  close(): void {
    this.sweep(true);
    this.disarm();
  }

  private summary(from: string, b: Bucket, now: number, fields: Record<string, unknown>): void {
    const seconds = Math.max(1, Math.round(Math.min(now - b.since, this.windowMs) / 1000));
    const reasons = Object.fromEntries([...b.reasons].sort((x, y) => y[1] - x[1]));
    const list = Object.entries(reasons)
      .map(([r, n]) => `${r}: ${n}`)
      .join(', ');
    const what = fields.addr === 'other peers' ? 'failed handshakes' : 'more failed handshakes';
    this.log.warn({ ...fields, failures: b.more, seconds, reasons }, `${b.more} ${what} ${from} in ${seconds} s: reasons {${list}}`);
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), Math.max(10, Math.min(1000, Math.floor(this.windowMs / 4))));
    this.timer.unref();
  }

  private disarm(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
