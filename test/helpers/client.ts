/**
 * A minimal KMIP-over-TLS client for integration tests: mutual TLS, TTLV framing, responses
 * matched to requests in order.
 */
import tls from 'node:tls';
import { FrameDecoder, decodeTtlv, encodeTtlv, type StructureNode, type TtlvNode } from '../../src/ttlv/index.js';

export interface ClientCreds {
  ca: string;
  cert: string;
  key: string;
}

export class KmipTestClient {
  private readonly framer = new FrameDecoder({ maxMessageSize: 64 * 1024 * 1024 });
  private readonly waiting: { resolve: (b: Buffer) => void; reject: (e: Error) => void }[] = [];
  closed: Promise<void>;

  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.framer.push(chunk)) this.waiting.shift()?.resolve(f);
    });
    this.closed = new Promise((r) => socket.once('close', () => r()));
    const fail = (e: Error) => {
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static connect(port: number, creds: ClientCreds, opts: tls.ConnectionOptions = {}): Promise<KmipTestClient> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: creds.ca, cert: creds.cert, key: creds.key, ...opts });
      s.once('secureConnect', () => resolve(new KmipTestClient(s)));
      s.once('error', reject);
    });
  }

  sendBytes(bytes: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(bytes);
    });
  }

  async send(msg: TtlvNode): Promise<StructureNode> {
    const tree = decodeTtlv(await this.sendBytes(encodeTtlv(msg)));
    if (tree.type !== 'Structure') throw new Error('response is not a structure');
    return tree;
  }

  close(): Promise<void> {
    this.socket.end();
    return this.closed;
  }
}
