/**
 * The ceiling for a KMIP server on Node here: a bare TLS server with kmipd's TLS set-up (same
 * certificates, cipher list, mutual TLS, TLS versions, session timeout) and kmipd's framer, which
 * answers every frame with one canned response and does nothing else: no decoding, no client
 * identity, no executor, no keystore, no logging. Whatever a real server does on top costs rate.
 *
 * Run as a script in its own process (the server bench spawns it from dist/):
 *
 *   node dist/test/bench/ceiling.js --cert FILE --key FILE --ca FILE [--port 0] [--response-bytes N]
 *
 * Prints one JSON line {"msg":"ceiling listening","port":N,"responseBytes":N} on stdout once it
 * listens; exits on SIGTERM/SIGINT or when its stdin closes (the parent went away).
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import { CIPHERS, DEFAULT_LIMITS } from '../../src/server/listener.js';
import { Enums, Tag } from '../../src/spec/index.js';
import { encodeTtlv, FrameDecoder, T, type TtlvNode } from '../../src/ttlv/index.js';

function cannedGetResponse(material: number): TtlvNode {
  return T.struct(Tag.ResponseMessage, [
    T.struct(Tag.ResponseHeader, [
      T.struct(Tag.ProtocolVersion, [T.int(Tag.ProtocolVersionMajor, 1), T.int(Tag.ProtocolVersionMinor, 2)]),
      T.date(Tag.TimeStamp, BigInt(Math.floor(Date.now() / 1000))),
      T.int(Tag.BatchCount, 1),
    ]),
    T.struct(Tag.BatchItem, [
      T.enum(Tag.Operation, Enums.Operation.Get),
      T.enum(Tag.ResultStatus, Enums.ResultStatus.Success),
      T.struct(Tag.ResponsePayload, [
        T.enum(Tag.ObjectType, Enums.ObjectType.SymmetricKey),
        T.text(Tag.UniqueIdentifier, '00000000-0000-4000-8000-000000000000'),
        T.struct(Tag.SymmetricKey, [
          T.struct(Tag.KeyBlock, [
            T.enum(Tag.KeyFormatType, Enums.KeyFormatType.Raw),
            T.struct(Tag.KeyValue, [T.bytes(Tag.KeyMaterial, Buffer.alloc(material, 0x5a))]),
            T.enum(Tag.CryptographicAlgorithm, Enums.CryptographicAlgorithm.AES),
            T.int(Tag.CryptographicLength, 256),
          ]),
        ]),
      ]),
    ]),
  ]);
}

/**
 * A well-formed Get response (Result Status Success) of exactly `bytes` bytes when possible
 * (a multiple of 8 not below the size with an empty key); else the nearest size above.
 */
export function cannedResponse(bytes?: number): Buffer {
  const base = encodeTtlv(cannedGetResponse(32));
  if (bytes === undefined) return base;
  const material = Math.max(0, 32 + (bytes - base.length));
  return encodeTtlv(cannedGetResponse(material));
}

interface Args {
  cert: string;
  key: string;
  ca: string;
  port: number;
  responseBytes?: number;
}

function parseArgs(argv: string[]): Args {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (!k?.startsWith('--') || v === undefined) throw new Error(`ceiling: bad arguments near ${String(k)}`);
    m.set(k.slice(2), v);
  }
  const need = (k: string): string => {
    const v = m.get(k);
    if (v === undefined) throw new Error(`ceiling: --${k} is required`);
    return v;
  };
  const a: Args = { cert: need('cert'), key: need('key'), ca: need('ca'), port: Number(m.get('port') ?? '0') };
  const rb = m.get('response-bytes');
  if (rb !== undefined) a.responseBytes = Number(rb);
  return a;
}

export function startCeiling(args: Args): Promise<tls.Server> {
  const limits = DEFAULT_LIMITS;
  const response = cannedResponse(args.responseBytes);
  // The same options as KmipListener.tlsOptions().
  const server = tls.createServer({
    cert: readFileSync(args.cert, 'utf8'),
    key: readFileSync(args.key, 'utf8'),
    ca: [readFileSync(args.ca, 'utf8')],
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    ciphers: CIPHERS,
    honorCipherOrder: true,
    handshakeTimeout: limits.handshakeTimeoutMs,
    sessionTimeout: 300,
  });
  server.maxConnections = limits.maxConnections;
  server.on('tlsClientError', (_err, s) => s.destroy());
  server.on('secureConnection', (sock) => {
    const framer = new FrameDecoder({ maxMessageSize: limits.maxMessageSize });
    sock.setNoDelay(true);
    sock.setTimeout(limits.idleTimeoutMs, () => sock.destroy());
    sock.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = framer.push(chunk);
      } catch {
        sock.destroy();
        return;
      }
      for (let i = 0; i < frames.length; i++) sock.write(response);
    });
    sock.on('end', () => sock.end());
    sock.on('error', () => undefined);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(args.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const server = await startCeiling(args);
  const addr = server.address();
  const port = addr && typeof addr !== 'string' ? addr.port : -1;
  process.stdout.write(`${JSON.stringify({ msg: 'ceiling listening', port, responseBytes: cannedResponse(args.responseBytes).length })}\n`);
  const stop = () => {
    server.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdin.on('close', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`ceiling: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
