/**
 * The admin listener: HTTPS, separate from the KMIP port, for load balancers, orchestrators and
 * Prometheus.
 *
 *   GET /livez    200 "ok" while the process answers (touches nothing else, never the database)
 *   GET /readyz   200 "ready" or 503 with the failing checks (src/admin/health.ts)
 *   GET /health   the same checks as JSON, one entry per dependency; 200 or 503
 *   GET /metrics  Prometheus text format (src/admin/metrics.ts)
 *
 * TLS with kmipd's server certificate (the one the KMIP listener serves, reloads included). On a
 * loopback address server authentication is enough; on any other address the client must
 * present a certificate issued by the kmipd CA whose CN is one of the configured admin clients
 * (`kmipd cert issue --cn kmipd-admin --out DIR`), e.g. for HAProxy
 * `check-ssl verify required ca-file ca.crt crt kmipd-admin.pem`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { clientIdentityAllowed } from '../pki/info.js';
import { CIPHERS } from '../server/listener.js';
import type { HealthReport } from './health.js';

export interface AdminHandlers {
  health(): Promise<HealthReport>;
  metrics(): Promise<{ contentType: string; body: string }>;
}

export interface AdminListenerOptions {
  host: string;
  port: number;
  /** CNs accepted beyond loopback. */
  clients: readonly string[];
  /** The server certificate and key (PEM), read at start and on reloadTls(). */
  tls(): { cert: string; key: string };
  /** kmipd's CA (PEM): the only issuer of admin client certificates. */
  caPem: string;
  handlers: AdminHandlers;
  log: Logger;
}

/** Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return h.slice(7).startsWith('127.');
  return false;
}

export class AdminListener {
  private server: https.Server | undefined;
  private readonly mutual: boolean;
  private served = '';

  constructor(private readonly opts: AdminListenerOptions) {
    this.mutual = !isLoopback(opts.host);
  }

  /** Whether clients must present an admin certificate (any address but loopback). */
  get requiresClientCertificate(): boolean {
    return this.mutual;
  }

  get address(): { address: string; port: number } {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new Error('the admin listener is not listening');
    return { address: a.address, port: a.port };
  }

  private tlsOptions(): https.ServerOptions {
    const t = this.opts.tls();
    this.served = t.cert;
    return {
      cert: t.cert,
      key: t.key,
      minVersion: 'TLSv1.2',
      ciphers: CIPHERS,
      honorCipherOrder: true,
      ...(this.mutual ? { requestCert: true, rejectUnauthorized: true, ca: [this.opts.caPem] } : { requestCert: false }),
    };
  }

  async listen(): Promise<void> {
    const server = https.createServer(this.tlsOptions(), (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.opts.log.error({ err }, 'admin request failed');
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error; see the server log\n');
        else res.destroy();
      });
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    server.keepAliveTimeout = 5_000;
    server.on('tlsClientError', (err) => this.opts.log.debug({ err: err.message }, 'admin listener: TLS handshake failed'));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.opts.log.error({ err }, 'admin listener error'));
    const a = this.address;
    this.opts.log.info({ host: a.address, port: a.port, clientCertificate: this.mutual ? 'required' : 'not required (loopback)' }, 'admin listener (HTTPS: /livez /readyz /health /metrics)');
  }

  /** Uses the current server certificate for new connections (after a rotation or reload). */
  reloadTls(): boolean {
    const server = this.server;
    if (!server) return false;
    const t = this.opts.tls();
    if (t.cert === this.served) return false;
    server.setSecureContext(this.tlsOptions());
    return true;
  }

  private refuse(req: IncomingMessage): string | undefined {
    if (!this.mutual) return undefined;
    const sock = req.socket as TLSSocket;
    const cert = sock.getPeerX509Certificate();
    if (!sock.authorized || !cert) return 'an admin client certificate from the kmipd CA is required';
    const id = clientIdentityAllowed(cert);
    if (!id.ok) return id.reason;
    if (!this.opts.clients.includes(id.cn)) return `the certificate of ${JSON.stringify(id.cn)} is not an admin client certificate`;
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const refused = this.refuse(req);
    if (refused !== undefined) {
      send(res, 403, 'text/plain; charset=utf-8', `forbidden: ${refused}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/livez':
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n', req.method === 'HEAD');
        return;
      case '/readyz': {
        const r = await this.opts.handlers.health();
        const failing = Object.entries(r.checks).filter(([, c]) => !c.ok);
        const body = r.status === 'ok' ? 'ready\n' : `not ready\n${failing.map(([n, c]) => `${n}: ${c.error ?? 'failed'}`).join('\n')}\n`;
        send(res, r.status === 'ok' ? 200 : 503, 'text/plain; charset=utf-8', body, req.method === 'HEAD');
        return;
      }
      case '/health': {
        const r = await this.opts.handlers.health();
        send(res, r.status === 'ok' ? 200 : 503, 'application/json', JSON.stringify(r, null, 2) + '\n', req.method === 'HEAD');
        return;
      }
      case '/metrics': {
        const m = await this.opts.handlers.metrics();
        send(res, 200, m.contentType, m.body, req.method === 'HEAD');
        return;
      }
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'not found: /livez /readyz /health /metrics\n');
    }
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  }
}

function send(res: ServerResponse, status: number, type: string, body: string, headOnly = false): void {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(headOnly ? undefined : body);
}
