import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { Enums, Tag } from '../../src/spec/index.js';
import { T, decodeTtlv, encodeTtlv, type StructureNode } from '../../src/ttlv/index.js';
import { KmipTestClient } from '../helpers/client.js';
import { batchItems, itemResult, requestMessage } from '../helpers/engine.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** An operation kmipd does not implement, to exercise the transport without any handler. */
const UNSUPPORTED_OP = Enums.Operation.PKCS_11; // kmipd exposes no PKCS#11 token (conformance/skip.ts)

function unsupportedRequest(version: '1.1' | '2.1' = '1.1', id?: Buffer): StructureNode {
  return requestMessage([{ operation: UNSUPPORTED_OP, payload: [], ...(id ? { id } : {}) }], { version });
}

let srv: TestServer;
t.before(async () => {
  srv = await startTestServer({ limits: { idleTimeoutMs: 1500, handshakeTimeoutMs: 1500, maxMessageSize: 64 * 1024 } });
});
t.teardown(async () => {
  await srv.stop();
});

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

t.test('a request over mutual TLS 1.3 and 1.2 gets a response in its own version', async (t) => {
  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    const c = await KmipTestClient.connect(srv.port, await srv.creds('alice'), { maxVersion });
    t.equal(c.socket.getProtocol(), maxVersion);
    const resp = await c.send(unsupportedRequest('1.1', Buffer.from('QLKC\x01\x00\x00\x00', 'latin1')));
    const header = resp.value[0] as StructureNode;
    const pv = header.value[0] as StructureNode;
    t.same(pv.value.map((n) => n.value), [1, 1], 'answered in 1.1');
    t.ok(header.value.some((n) => n.tag === Tag.TimeStamp), 'Time Stamp present');
    const item = batchItems(resp)[0]!;
    const r = itemResult(item);
    t.equal(r.status, Enums.ResultStatus.OperationFailed);
    t.equal(r.reason, Enums.ResultReason.OperationNotSupported);
    const id = item.value.find((n) => n.tag === Tag.UniqueBatchItemID);
    t.same(id?.value, Buffer.from('QLKC\x01\x00\x00\x00', 'latin1'), 'Unique Batch Item ID echoed');
    await c.close();
  }
});

t.test('vCenter cipher suites: TLS 1.2 RSA-AES-CBC-SHA256 are accepted', async (t) => {
  for (const cipher of ['AES128-SHA256', 'AES256-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256']) {
    const c = await KmipTestClient.connect(srv.port, await srv.creds('alice'), { maxVersion: 'TLSv1.2', ciphers: cipher });
    t.equal(c.socket.getCipher().standardName === undefined ? c.socket.getCipher().name : c.socket.getCipher().name, cipher);
    await c.close();
  }
});

t.test('session resumption works', async (t) => {
  const creds = await srv.creds('alice');
  const first = await KmipTestClient.connect(srv.port, creds, { maxVersion: 'TLSv1.2' });
  const session = await new Promise<Buffer>((resolve) => {
    const s = first.socket.getSession();
    if (s) resolve(s);
    else first.socket.once('session', resolve);
  });
  await first.send(unsupportedRequest());
  await first.close();
  const second = await KmipTestClient.connect(srv.port, creds, { maxVersion: 'TLSv1.2', session });
  t.ok(second.socket.isSessionReused(), 'TLS session reused');
  const r = await second.send(unsupportedRequest());
  t.equal(itemResult(batchItems(r)[0]!).reason, Enums.ResultReason.OperationNotSupported, 'and the identity is still known');
  await second.close();
});

t.test('clients without a certificate, or with an untrusted one, are refused', async (t) => {
  const { ca } = await srv.creds('alice');
  await t.rejects(
    new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca, servername: 'localhost' }, () => {
        // TLS 1.3: the refusal arrives after the client thinks it is connected.
        s.write(encodeTtlv(unsupportedRequest()));
      });
      s.on('data', () => resolve());
      s.on('error', reject);
      s.on('close', () => reject(new Error('closed without an answer')));
    }),
    'no client certificate',
  );
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-foreign-'));
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-subj', '/CN=mallory', '-days', '1'], dir);
  await t.rejects(
    KmipTestClient.connect(srv.port, { ca, cert: readFileSync(join(dir, 'c.pem'), 'utf8'), key: readFileSync(join(dir, 'k.pem'), 'utf8') }, { maxVersion: 'TLSv1.2' }),
    'self-signed certificate from an unknown CA',
  );
});

t.test('EKU: none accepted, clientAuth accepted, serverAuth-only refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-eku-'));
  const caCrt = join(srv.dataDir, 'pki', 'ca.crt');
  const caKey = join(srv.dataDir, 'pki', 'ca.key');
  const make = (name: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', caCrt, '-CAkey', caKey, '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`], dir);
    return { ca: srv.caPem, cert: readFileSync(join(dir, `${name}.crt`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') };
  };
  const noEku = make('vcenter-noeku', 'basicConstraints=CA:FALSE\n');
  const client = make('with-clientauth', 'extendedKeyUsage=clientAuth\n');
  const serverOnly = make('server-only', 'extendedKeyUsage=serverAuth\n');
  for (const [creds, name] of [[noEku, 'no EKU'], [client, 'clientAuth']] as const) {
    const c = await KmipTestClient.connect(srv.port, creds, { maxVersion: 'TLSv1.2' });
    const r = await c.send(unsupportedRequest());
    t.equal(itemResult(batchItems(r)[0]!).reason, Enums.ResultReason.OperationNotSupported, `${name}: served`);
    await c.close();
  }
  await t.rejects(KmipTestClient.connect(srv.port, serverOnly, { maxVersion: 'TLSv1.2' }), 'serverAuth-only EKU refused');
});

t.test('requests pipelined on one connection are answered in order', async (t) => {
  const c = await KmipTestClient.connect(srv.port, await srv.creds('alice'));
  const ids = Array.from({ length: 20 }, (_, i) => Buffer.from([i]));
  const answers = await Promise.all(ids.map((id) => c.send(unsupportedRequest('1.1', id))));
  t.same(
    answers.map((a) => batchItems(a)[0]!.value.find((n) => n.tag === Tag.UniqueBatchItemID)?.value),
    ids,
    'in request order',
  );
  await c.close();
});

t.test('bad input: each is answered or closed, and other clients keep being served', async (t) => {
  const creds = await srv.creds('alice');
  // A fresh connection each time: the idle timeout of this test server is short.
  const alive = async (what: string) => {
    const watcher = await KmipTestClient.connect(srv.port, creds);
    const r = await watcher.send(unsupportedRequest());
    t.equal(itemResult(batchItems(r)[0]!).reason, Enums.ResultReason.OperationNotSupported, `still serving after ${what}`);
    await watcher.close();
  };

  // An intact frame holding bad TTLV inside: Invalid Message, connection stays usable.
  {
    const c = await KmipTestClient.connect(srv.port, creds);
    const bad = Buffer.from(encodeTtlv(unsupportedRequest()));
    bad[bad.length - 20] = 0x0c; // an unknown item type deep inside
    const resp = decodeTtlv(await c.sendBytes(bad)) as StructureNode;
    t.equal(itemResult(batchItems(resp)[0]!).reason, Enums.ResultReason.InvalidMessage, 'bad TTLV inside a frame: Invalid Message');
    const again = await c.send(unsupportedRequest());
    t.equal(itemResult(batchItems(again)[0]!).reason, Enums.ResultReason.OperationNotSupported, 'same connection still works');
    await c.close();
  }
  await alive('bad TTLV');

  // Wrong types in the header: Invalid Message.
  {
    const c = await KmipTestClient.connect(srv.port, creds);
    const msg = T.struct(Tag.RequestMessage, [T.struct(Tag.RequestHeader, [T.text(Tag.ProtocolVersion, '1.1'), T.int(Tag.BatchCount, 1)])]);
    const resp = await c.send(msg);
    t.equal(itemResult(batchItems(resp)[0]!).reason, Enums.ResultReason.InvalidMessage, 'wrong header types: Invalid Message');
    await c.close();
  }

  // A 2 GiB length header: refused before buffering, answered, closed.
  for (const len of [0x7fffffff, 0xffffffff]) {
    const c = await KmipTestClient.connect(srv.port, creds);
    const header = Buffer.from([0x42, 0x00, 0x78, 0x01, 0, 0, 0, 0]);
    header.writeUInt32BE(len, 4);
    const resp = decodeTtlv(await c.sendBytes(header)) as StructureNode;
    t.equal(itemResult(batchItems(resp)[0]!).reason, Enums.ResultReason.InvalidMessage, `length 0x${len.toString(16)}: Invalid Message`);
    await c.closed;
    t.pass('then the connection is closed');
  }
  await alive('2 GiB headers');

  // Garbage right after the handshake.
  {
    const c = await KmipTestClient.connect(srv.port, creds);
    c.socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await c.closed;
    t.pass('garbage: connection closed');
  }
  // Plain TCP that never handshakes, and a TLS client that sends nothing: timed out.
  {
    const raw = netConnect(srv.port, '127.0.0.1');
    const t0 = Date.now();
    await new Promise((r) => raw.once('close', r));
    t.ok(Date.now() - t0 < 10_000, 'silent TCP client dropped by the handshake timeout');
    const c = await KmipTestClient.connect(srv.port, creds);
    await c.closed;
    t.pass('silent TLS client dropped by the idle timeout');
  }
  // A lying length: a frame shorter than announced, then the client goes away.
  {
    const c = await KmipTestClient.connect(srv.port, creds);
    const full = encodeTtlv(unsupportedRequest());
    c.socket.end(full.subarray(0, full.length - 8));
    await c.closed;
  }
  await alive('truncated frame');
});
