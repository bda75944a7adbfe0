/**
 * The runner's KMIP client: one mutual-TLS connection, TTLV frames, one request at a time,
 * each with a deadline. Failures say what happened (timeout, connection closed, bad frame) so
 * that the report can tell a hang from a crash.
 */
import { isIP } from 'node:net';
import tls from 'node:tls';
import { FrameDecoder, decodeTtlv, encodeTtlv, type TtlvNode } from '../src/ttlv/index.js';

export interface Creds {
  ca: string;
  cert: string;
  key: string;
}

export type ClientFailureKind = 'timeout' | 'closed' | 'connect' | 'protocol';

export class ClientFailure extends Error {
  override readonly name = 'ClientFailure';
  constructor(
    readonly kind: ClientFailureKind,
    message: string,
  ) {
    super(message);
  }
}

/** Responses up to 64 MiB: large enough for any test case, small enough to stop a runaway. */
const MAX_RESPONSE = 64 * 1024 * 1024;

export class KmipConnection {
  private readonly framer = new FrameDecoder({ maxMessageSize: MAX_RESPONSE });
  private pending: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private closedError: ClientFailure | undefined;

  private constructor(private readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = this.framer.push(chunk);
      } catch (e) {
        this.fail(new ClientFailure('protocol', `unreadable response frame: ${(e as Error).message}`));
        socket.destroy();
        return;
      }
      for (const f of frames) {
        const p = this.pending;
        this.pending = undefined;
        if (p) p.resolve(f);
        else this.fail(new ClientFailure('protocol', 'the server sent a message nobody asked for'));
      }
    });
    socket.on('error', (e) => this.fail(new ClientFailure('closed', `connection error: ${e.message}`)));
    socket.on('close', () => this.fail(new ClientFailure('closed', 'the server closed the connection without a response')));
  }

  private fail(e: ClientFailure): void {
    this.closedError ??= e;
    const p = this.pending;
    this.pending = undefined;
    p?.reject(e);
  }

  static connect(host: string, port: number, creds: Creds, timeoutMs: number, servername?: string): Promise<KmipConnection> {
    return new Promise((resolve, reject) => {
      const opts: tls.ConnectionOptions = { host, port, ca: creds.ca, cert: creds.cert, key: creds.key };
      const sni = servername ?? (isIP(host) ? undefined : host);
      if (sni !== undefined) opts.servername = sni;
      const s = tls.connect(opts);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new ClientFailure('connect', `no TLS connection to ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        resolve(new KmipConnection(s));
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(new ClientFailure('connect', `cannot connect to ${host}:${port}: ${e.message}`));
      });
    });
  }

  /** Sends one request and waits up to `timeoutMs` for its response. */
  request(msg: TtlvNode, timeoutMs: number): Promise<TtlvNode> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.pending) return Promise.reject(new ClientFailure('protocol', 'a request is already in flight'));
    const bytes = encodeTtlv(msg);
    return new Promise<TtlvNode>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        reject(new ClientFailure('timeout', `no response within ${timeoutMs / 1000} s`));
        this.socket.destroy();
      }, timeoutMs);
      this.pending = {
        resolve: (frame) => {
          clearTimeout(timer);
          try {
            resolve(decodeTtlv(frame, { maxMessageSize: MAX_RESPONSE }));
          } catch (e) {
            reject(new ClientFailure('protocol', `the response is not valid TTLV: ${(e as Error).message}`));
          }
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.socket.write(bytes);
    });
  }

  close(): void {
    this.pending = undefined;
    this.socket.destroy();
  }
}
