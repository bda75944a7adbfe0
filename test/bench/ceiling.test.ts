/**
 * The bench's ceilings are what kmipd's speed targets are measured against, so they must be what
 * they claim: the plain ceiling answers every frame with its canned bytes at once, and the durable
 * ceiling (--durable) answers a request only after a record of it is in the records file, with
 * the records of concurrent connections' requests sharing flushes.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { createCA, issueClientCert, issueServerCert } from '../../src/pki/index.js';
import { FrameDecoder } from '../../src/ttlv/index.js';
import { getRequest } from './server.js';
import { cannedResponse, RECORD_BYTES, startCeiling } from './ceiling.js';

const dir = mkdtempSync(join(tmpdir(), 'kmipd-ceiling-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const ca = await createCA({ commonName: 'ceiling test CA' });
const server = await issueServerCert(ca, { commonName: 'localhost', sans: ['localhost', '127.0.0.1'] });
const client = await issueClientCert(ca, { commonName: 'bench' });
const files = { cert: join(dir, 'server.crt'), key: join(dir, 'server.key'), ca: join(dir, 'ca.crt') };
writeFileSync(files.cert, server.certPem);
writeFileSync(files.key, server.keyPem);
writeFileSync(files.ca, ca.certPem);

async function connect(port: number): Promise<{ send(req: Buffer): Promise<Buffer>; close(): void }> {
  const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.certPem, cert: client.certPem, key: client.keyPem });
  await new Promise<void>((resolve, reject) => {
    sock.once('secureConnect', resolve);
    sock.once('error', reject);
  });
  const framer = new FrameDecoder({ maxMessageSize: 1 << 20 });
  const waiting: ((b: Buffer) => void)[] = [];
  sock.on('data', (chunk: Buffer) => {
    for (const f of framer.push(chunk)) waiting.shift()?.(f);
  });
  return {
    send(req) {
      return new Promise((resolve) => {
        waiting.push(resolve);
        sock.write(req);
      });
    },
    close: () => sock.destroy(),
  };
}

const request = getRequest('00000000-0000-4000-8000-000000000000');

t.test('the plain ceiling answers every frame with the canned response', async (t) => {
  const srv = await startCeiling({ ...files, port: 0, responseBytes: 400 });
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const c = await connect((srv.address() as { port: number }).port);
  t.teardown(() => c.close());
  const canned = cannedResponse(400);
  t.equal(canned.length, 400, 'a canned answer of the size asked for');
  for (let i = 0; i < 3; i++) t.same(await c.send(request), canned, `answer ${i + 1}`);
});

t.test('the durable ceiling answers only once the request has its record on disk', async (t) => {
  const records = join(dir, 'records');
  const srv = await startCeiling({ ...files, port: 0, durable: records });
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const port = (srv.address() as { port: number }).port;
  const conns = await Promise.all([connect(port), connect(port), connect(port)]);
  t.teardown(() => conns.forEach((c) => c.close()));
  let answered = 0;
  let short = 0;
  await Promise.all(
    conns.map(async (c) => {
      for (let i = 0; i < 5; i++) {
        const answer = await c.send(request);
        answered++;
        if (answer.length !== cannedResponse().length) t.fail('not the canned answer');
        // The record of this request (and of every request answered before it) is written.
        if (statSync(records).size < answered * RECORD_BYTES) short++;
      }
    }),
  );
  t.equal(answered, 15, 'every request answered');
  t.equal(short, 0, 'no answer came before its record was written');
  t.equal(statSync(records).size, 15 * RECORD_BYTES, 'one record per request, no more');
});
