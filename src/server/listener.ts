import { X509Certificate, createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { ClientIdentity } from '../operations/context.js';
import { FrameDecoder, TtlvError } from '../ttlv/index.js';
import type { Executor } from './executor.js';
import { requestLineLogger } from './log.js';
import { type ConnectionRefusalReason, PeerFailureLog, handshakeFailureReason, normalizeAddress } from './peer-log.js';

/**
 * The KMIP profiles' TLS suites (RSA key transport with AES-CBC-SHA256, which vCenter picks
 * when offered) beside ECDHE-GCM; TLS 1.3 suites are configured separately by OpenSSL.
 */
export const CIPHERS = [
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'AES256-SHA256',
  'AES128-SHA256',
].join(':');

export interface ListenerLimits {
  maxMessageSize: number;
  /** A TLS handshake must complete within this many ms. Stops: slowloris on the handshake. */
  handshakeTimeoutMs: number;
  /** A connection with no traffic for this many ms is closed. Stops: idle connection hoarding. */
  idleTimeoutMs: number;
  /** Connections open at once; more are refused at accept. */
  maxConnections: number;
  /**
   * Connections open at once from one client address (IPv4-mapped IPv6 counted as IPv4); more
   * are closed at accept, before any TLS work. Stops one client from taking every connection.
   * Generous: vCenter connects from one address with many short parallel connections, and bursts
   * after host reboots and power-ons (Get and GetAttributes for every key in use).
   */
  maxConnectionsPerAddress: number;
  /** Requests executing at once across all connections; more wait their turn. */
  maxInFlight: number;
  /** Whole requests one connection may have queued (pipelined) before we stop reading from it. */
  maxQueuedPerConnection: number;
}

export const DEFAULT_LIMITS: ListenerLimits = {
  maxMessageSize: 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 120_000,
  maxConnections: 1024,
  maxConnectionsPerAddress: 256,
  maxInFlight: 256,
  maxQueuedPerConnection: 32,
};

export type IdentifyResult = { ok: true; identity: ClientIdentity } | { ok: false; reason: string };

/** A small hook for metrics (src/admin); never changes what the listener does. */
export interface ListenerObserver {
  /**
   * A client was accepted ('ok'), or refused: a failed TLS handshake (its error), a connection
   * without a client certificate, or a certificate the trust store refused.
   */
  handshake?(outcome: 'ok' | 'no-certificate' | 'refused' | Error): void;
  /** A connection closed at accept, before any TLS work, because of a connection limit. */
  connectionRefused?(reason: ConnectionRefusalReason): void;
}

export interface ListenerOptions {
  host: string;
  port: number;
  /**
   * Called on every change of certificate or trust (reloads); the listener swaps contexts.
   * `rejectUnauthorized: false` (default true) lets the handshake finish with a certificate
   * OpenSSL cannot verify (a pinned one), leaving the decision to `identify`.
   */
  tls: () => tls.SecureContextOptions & { rejectUnauthorized?: boolean };
  /** Maps a verified peer certificate to an identity, or refuses it. */
  identify: (cert: X509Certificate, address: string | undefined) => IdentifyResult;
  executor: Executor;
  limits: ListenerLimits;
  log: Logger;
  observer?: ListenerObserver;
  /** The aggregated log of failed handshakes (defaults: 60 s window, 10,000 addresses). */
  failureLog?: { windowMs?: number; maxPeers?: number };
}

/** A counting semaphore for the global in-flight cap. */
class Semaphore {
  private waiters: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiters.push(r));
  }
  release(): void {
    const w = this.waiters.shift();
    if (w) w();
    else this.free++;
  }
}

export class KmipListener {
  /** Accepts TCP connections, applies the connection limits, hands the rest to `server`. */
  private tcp: net.Server | undefined;
  /** Does TLS on the connections `tcp` hands over (never listens itself). */
  private server: tls.Server | undefined;
  /** Open TCP connections by client address (authenticated or still in the handshake). */
  private readonly perAddress = new Map<string, number>();
  /** Every accepted TCP connection, also those still in the TLS handshake (closed on close()). */
  private readonly accepted = new Set<net.Socket>();
  /** The normalised client address of each accepted TCP socket, read while it was open. */
  private readonly acceptedFrom = new WeakMap<object, string>();
  private readonly sockets = new Set<tls.TLSSocket>();
  /** Each open connection's client certificate and identity, for closeConnections. */
  private readonly peers = new WeakMap<tls.TLSSocket, { cert: X509Certificate; identity: ClientIdentity }>();
  private readonly inFlight: Semaphore;
  private readonly busy = new Set<Promise<void>>();
  /** Failed handshakes and refused connections, logged per client address (src/server/peer-log.ts). */
  readonly failures: PeerFailureLog;
  private closing = false;

  constructor(private readonly opts: ListenerOptions) {
    this.inFlight = new Semaphore(opts.limits.maxInFlight);
    this.failures = new PeerFailureLog({ log: opts.log, ...opts.failureLog });
  }

  get address(): { address: string; port: number } {
    const a = this.tcp?.address();
    if (!a || typeof a === 'string') throw new Error('listener is not listening');
    return { address: a.address, port: a.port };
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** TCP connections open now from `address` (counted against maxConnectionsPerAddress). */
  connectionsFrom(address: string): number {
    return this.perAddress.get(normalizeAddress(address) ?? address) ?? 0;
  }

  private tlsOptions(): tls.TlsOptions {
    const t = this.opts.tls();
    return {
      ...t,
      requestCert: true,
      rejectUnauthorized: t.rejectUnauthorized ?? true,
      minVersion: 'TLSv1.2',
      ciphers: CIPHERS,
      honorCipherOrder: true,
      handshakeTimeout: this.opts.limits.handshakeTimeoutMs,
      // Session resumption: TLS 1.2 tickets and TLS 1.3 PSKs (on by default), 5 minutes.
      sessionTimeout: 300,
    };
  }

  /** Re-reads certificates and trust; new handshakes use them, open sessions are kept. */
  reloadTls(): void {
    const server = this.server;
    if (!server) return;
    const o = this.tlsOptions();
    server.setSecureContext(o);
    // tls.Server reads rejectUnauthorized per connection from itself, not from the context.
    (server as tls.Server & { rejectUnauthorized: boolean }).rejectUnauthorized = o.rejectUnauthorized !== false;
  }

  /** Closes the open connections whose client `drop` selects (e.g. after its trust was removed). */
  closeConnections(drop: (cert: X509Certificate, identity: ClientIdentity) => boolean): number {
    let n = 0;
    for (const s of this.sockets) {
      const p = this.peers.get(s);
      if (p && drop(p.cert, p.identity)) {
        s.destroy();
        n++;
      }
    }
    return n;
  }

  async listen(): Promise<void> {
    const server = tls.createServer(this.tlsOptions());
    server.on('secureConnection', (s) => this.onConnection(s));
    server.on('tlsClientError', (e, s) => {
      // A client certificate OpenSSL could not verify ends the handshake without an error of its
      // own: Node closes the socket and reports 'socket hang up'. Its verification error says why.
      const err = typeof s.authorizationError === 'string' && (e as NodeJS.ErrnoException).code === 'ECONNRESET'
        ? Object.assign(new Error(`client certificate not verified: ${s.authorizationError}`), { code: s.authorizationError })
        : e;
      this.opts.observer?.handshake?.(err);
      // vCenter retries fast when it is not trusted (18 failed handshakes in 30 s): aggregated per address.
      this.failures.record(this.peerAddress(s), handshakeFailureReason(err), 'TLS handshake failed', { err: err.message });
      s.destroy();
    });
    server.on('error', (err) => this.opts.log.error({ err }, 'listener error'));
    this.server = server;
    // Connections are accepted by a plain TCP server so that the limits apply before any TLS
    // work; the TLS server takes over the accepted socket (its handle, no copy) through its
    // documented 'connection' event.
    const tcp = net.createServer((raw) => this.onAccept(raw, server));
    tcp.maxConnections = this.opts.limits.maxConnections;
    // Over maxConnections, Node closes the connection before JavaScript sees a socket.
    tcp.on('drop', (d) => {
      this.opts.observer?.connectionRefused?.('max_connections');
      this.failures.record(d?.remoteAddress, 'max_connections', 'connection refused: too many connections open', { maxConnections: this.opts.limits.maxConnections });
    });
    tcp.on('error', (err) => this.opts.log.error({ err }, 'listener error'));
    this.tcp = tcp;
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(this.opts.port, this.opts.host, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
  }

  /** A new TCP connection: counted against its address's limit, then handed to TLS or closed. */
  private onAccept(raw: net.Socket, server: tls.Server): void {
    const address = normalizeAddress(raw.remoteAddress);
    if (this.closing || address === undefined) {
      // stopping, or the peer is gone already (no address on a closed socket)
      raw.destroy();
      return;
    }
    const limit = this.opts.limits.maxConnectionsPerAddress;
    const open = this.perAddress.get(address) ?? 0;
    if (open >= limit) {
      raw.on('error', () => {}); // a reset while closing is of no interest
      raw.destroy();
      this.opts.observer?.connectionRefused?.('per_address_limit');
      this.failures.record(address, 'per_address_limit', 'connection refused: too many connections from this address', { open, maxConnectionsPerAddress: limit });
      return;
    }
    this.perAddress.set(address, open + 1);
    this.accepted.add(raw);
    this.acceptedFrom.set(raw, address);
    // The TCP socket closes with the TLS socket on top of it, however that ends.
    raw.once('close', () => {
      this.accepted.delete(raw);
      const n = (this.perAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, n);
    });
    server.emit('connection', raw);
  }

  /**
   * The client address of a TLS socket, also once it has closed (a client that gave up during the
   * handshake): then the TLS socket no longer knows it, and the accepted TCP socket it was built
   * on (Node's `_parent`) answers from what was recorded at accept.
   */
  private peerAddress(s: tls.TLSSocket): string | undefined {
    const parent = (s as tls.TLSSocket & { _parent?: unknown })._parent;
    const recorded = typeof parent === 'object' && parent !== null ? this.acceptedFrom.get(parent) : undefined;
    return recorded ?? normalizeAddress(s.remoteAddress);
  }

  private onConnection(sock: tls.TLSSocket): void {
    const log0 = this.opts.log;
    const started = Date.now();
    const address = sock.remoteAddress;
    if (this.closing) {
      sock.destroy();
      return;
    }
    const cert = sock.getPeerX509Certificate();
    if (!cert) {
      this.opts.observer?.handshake?.('no-certificate');
      // reached when the handshake does not reject (pinned certificates): aggregated like the rest
      this.failures.record(address, 'no_client_certificate', 'connection without a client certificate refused');
      sock.destroy();
      return;
    }
    const who = this.opts.identify(cert, address);
    if (!who.ok) {
      this.opts.observer?.handshake?.('refused');
      this.failures.record(address, 'client_certificate_refused', 'client certificate refused', { err: who.reason });
      sock.destroy();
      return;
    }
    this.opts.observer?.handshake?.('ok');
    const identity: ClientIdentity = {
      ...who.identity,
      fingerprint: who.identity.fingerprint ?? createHash('sha256').update(cert.raw).digest('hex'),
    };
    if (address !== undefined) identity.address = address;
    const log = log0.child({ client: identity.name, addr: address });
    /** The per-request line's logger, built once per connection (see requestLineLogger). */
    const reqLog = requestLineLogger(log);
    this.sockets.add(sock);
    this.peers.set(sock, { cert, identity });
    let requests = 0;
    const framer = new FrameDecoder({ maxMessageSize: this.opts.limits.maxMessageSize });
    const queue: Buffer[] = [];
    let pumping = false;
    let ending = false;

    sock.setTimeout(this.opts.limits.idleTimeoutMs, () => {
      log.debug('idle timeout');
      sock.destroy();
    });
    sock.setNoDelay(true);

    const pump = async (): Promise<void> => {
      if (pumping) return;
      pumping = true;
      try {
        while (queue.length > 0 && !sock.destroyed) {
          const frame = queue.shift()!;
          if (sock.isPaused() && queue.length < this.opts.limits.maxQueuedPerConnection / 2) sock.resume();
          await this.inFlight.acquire();
          const t0 = process.hrtime.bigint();
          try {
            const r = await this.opts.executor.execute(frame, identity, log);
            requests++;
            const ms = Math.round(Number(process.hrtime.bigint() - t0) / 1e4) / 100;
            // The answer first (its record is durable already), then the log lines.
            if (!sock.destroyed) sock.write(r.response);
            for (const it of r.items) {
              reqLog.info({ kmip: r.version, op: it.operation, uid: it.uid, result: it.result, reason: it.reason, ms }, 'request');
            }
          } finally {
            this.inFlight.release();
            frame.fill(0); // requests may carry key material (Register)
          }
        }
      } catch (err) {
        log.error({ err }, 'connection failed');
        sock.destroy();
      } finally {
        pumping = false;
        if (ending && queue.length === 0) sock.end();
      }
    };

    const track = (p: Promise<void>) => {
      this.busy.add(p);
      void p.finally(() => this.busy.delete(p));
    };

    sock.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = framer.push(chunk);
      } catch (e) {
        // A broken frame: the stream has lost its alignment. Answer once if we can, then close.
        const msg = e instanceof TtlvError ? e.message : 'framing error';
        log.warn({ err: msg }, 'malformed frame; closing connection');
        const r = this.opts.executor.messageError('InvalidMessage', `malformed message frame: ${msg}`);
        sock.end(r);
        return;
      }
      if (frames.length === 0) return;
      queue.push(...frames);
      if (queue.length >= this.opts.limits.maxQueuedPerConnection) sock.pause();
      track(pump());
    });
    sock.on('end', () => {
      ending = true;
      if (!pumping && queue.length === 0) sock.end();
    });
    sock.on('error', (err) => log.debug({ err: err.message }, 'socket error'));
    sock.on('close', () => {
      this.sockets.delete(sock);
      // Handshake-only health probes (vCenter every 5 minutes) are logged at debug level.
      const level = requests === 0 ? 'debug' : 'info';
      log[level]({ requests, ms: Date.now() - started, tls: sock.getProtocol(), cipher: sock.getCipher()?.name }, 'connection closed');
    });
  }

  /** Stops accepting, lets requests in flight finish (up to `graceMs`), then closes connections. */
  async close(graceMs = 10_000): Promise<void> {
    this.closing = true;
    const tcp = this.tcp;
    const closed = tcp ? new Promise<void>((r) => tcp.close(() => r())) : Promise.resolve();
    const deadline = new Promise<void>((r) => setTimeout(r, graceMs).unref());
    await Promise.race([Promise.all([...this.busy]), deadline]);
    for (const s of this.sockets) s.end();
    await Promise.race([new Promise<void>((r) => setTimeout(r, 200).unref()), closed]);
    for (const s of this.sockets) s.destroy();
    for (const r of this.accepted) r.destroy(); // handshakes still going on
    await closed;
    this.failures.close(); // pending summaries are written, not lost
  }
}
