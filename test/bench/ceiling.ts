/**
 * The ceiling for a KMIP server on Node here: a bare TLS server with kmipd's TLS set-up (same
 * certificates, cipher list, mutual TLS, TLS versions, session timeout) and kmipd's framer, which
 * answers every frame with one canned response and does nothing else: no decoding, no client
 * identity, no executor, no keystore, no logging. Whatever a real server does on top costs rate.
 *
 * With --durable FILE it is the ceiling for a server that, like kmipd (its audit trail), makes a
 * record of every request durable before answering it: each request appends RECORD_BYTES to FILE,
 * and the answers wait until their records are flushed (fdatasync, off the event loop). Records
 * of concurrent requests share one flush, batched as well as batching can be for clients that send
 * one request at a time: a flush starts once every open connection has a request waiting (or 1 ms
 * after the first one waits), so each carries as many records as there are clients. Nothing else
 * is done: no decoding, no hashing, no keystore. It is the most a server can do here that makes a
 * record of each request durable before answering it (what kmipd's audit trail requires).
 *
 * Run as a script in its own process (the server bench spawns it from dist/):
 *
 *   node dist/test/bench/ceiling.js --cert FILE --key FILE --ca FILE [--port 0] [--response-bytes N]
 *                                   [--durable FILE]
 *
 * Prints one JSON line {"msg":"ceiling listening","port":N,"responseBytes":N} on stdout once it
 * listens; exits on SIGTERM/SIGINT or when its stdin closes (the parent went away).
 */
import { fdatasync, openSync, readFileSync, writeSync } from 'node:fs';
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
  /** Make a record of each request durable (appended to this file, flushed) before answering. */
  durable?: string;
}

/** The size of one request's record in the durable ceiling: about a kmipd audit line for a Get. */
export const RECORD_BYTES = 360;

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
  const d = m.get('durable');
  if (d !== undefined) a.durable = d;
  return a;
}

/** How long a queued record waits for the other connections' requests before its flush starts. */
const LINGER_MS = 1;

/**
 * Group commit: `add(n, answer)` queues n records; they are written in one write and flushed in
 * one fdatasync with every other record queued before the flush starts, and `answer` runs once
 * they are on disk. One flush at a time; a flush starts when `clients()` records are queued (each
 * connection sends one request at a time) or LINGER_MS after the first one was.
 */
function groupFlusher(file: string, clients: () => number): (n: number, answer: () => void) => void {
  const fd = openSync(file, 'a', 0o600);
  const record = Buffer.alloc(RECORD_BYTES, 0x61);
  record[RECORD_BYTES - 1] = 0x0a;
  let queued: { n: number; answer: () => void }[] = [];
  let queuedRecords = 0;
  let flushing = false;
  let scheduled = false;
  let linger: NodeJS.Timeout | undefined;
  const flush = (): void => {
    scheduled = false;
    if (flushing || queued.length === 0) return;
    flushing = true;
    const group = queued;
    const n = queuedRecords;
    queued = [];
    queuedRecords = 0;
    const buf = Buffer.allocUnsafe(n * RECORD_BYTES);
    for (let i = 0; i < n; i++) record.copy(buf, i * RECORD_BYTES);
    writeSync(fd, buf);
    fdatasync(fd, (err) => {
      flushing = false;
      if (err) throw err;
      for (const g of group) g.answer();
      kick();
    });
  };
  const start = (): void => {
    if (linger) clearTimeout(linger);
    linger = undefined;
    scheduled = true;
    // After this turn of the event loop's poll phase: every request read in it joins the group.
    setImmediate(flush);
  };
  const kick = (): void => {
    if (scheduled || flushing || queuedRecords === 0) return;
    if (queuedRecords >= clients()) start();
    else linger ??= setTimeout(start, LINGER_MS);
  };
  return (n, answer) => {
    queued.push({ n, answer });
    queuedRecords += n;
    kick();
  };
}

export function startCeiling(args: Args): Promise<tls.Server> {
  const limits = DEFAULT_LIMITS;
  const response = cannedResponse(args.responseBytes);
  let open = 0;
  const durable = args.durable === undefined ? undefined : groupFlusher(args.durable, () => open);
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
    open++;
    sock.once('close', () => open--);
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
      const n = frames.length;
      if (!durable) {
        for (let i = 0; i < n; i++) sock.write(response);
        return;
      }
      if (n > 0) {
        durable(n, () => {
          for (let i = 0; i < n; i++) if (!sock.destroyed) sock.write(response);
        });
      }
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
  process.stdout.write(
    `${JSON.stringify({ msg: 'ceiling listening', port, responseBytes: cannedResponse(args.responseBytes).length, durable: args.durable !== undefined })}\n`,
  );
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
