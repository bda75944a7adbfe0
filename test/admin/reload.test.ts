/**
 * Reload without restart: the server certificate, the trust store, the log level and the log
 * file, all or nothing; open sessions kept. Through the exported reload function against an
 * in-process server, and once through a real SIGHUP to a `kmipd serve` process.
 */
import t from 'tap';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLogging } from '../../src/admin/logging.js';
import { reloadServer } from '../../src/admin/reload.js';
import { loadServerConfig } from '../../src/config/load.js';
import { createCA } from '../../src/pki/ca.js';
import { rotateServerCert } from '../../src/pki/rotate.js';
import { pkiPaths } from '../../src/pki/store.js';
import { trustPaths } from '../../src/pki/trust.js';
import { KmipTestClient } from '../helpers/client.js';
import { createAesKey } from '../helpers/kmip-requests.js';
import { batchItems, itemResult, requestMessage } from '../helpers/engine.js';
import { Enums, Tag } from '../../src/spec/index.js';
import { T } from '../../src/ttlv/index.js';
import { spawnKmipd } from '../helpers/process.js';
import { startOpsServer, type OpsServer } from './_ops.js';

let srv: OpsServer;

function setServerSection(dir: string, server: Record<string, unknown>): void {
  const file = join(dir, 'kmipd.json');
  const m = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...m, server }, null, 2));
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` gets. */
async function servedFingerprint(port: number, creds: { ca: string; cert: string; key: string }): Promise<string> {
  const c = await KmipTestClient.connect(port, creds);
  const fp = c.socket.getPeerX509Certificate()?.fingerprint256 ?? '';
  await c.close();
  return fp;
}

t.before(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kmipd-reload-'));
  srv = await startOpsServer({ dataDir, reloadSettings: () => loadServerConfig(dataDir, { env: {} }).settings });
  t.teardown(async () => {
    await srv.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
});

t.test('nothing changed: the reload succeeds and changes nothing', async (t) => {
  const r = srv.ops.reload();
  t.match(r, { ok: true, serverCertificate: false, trust: false, logReopened: false });
  t.equal(r.logLevel, undefined);
  t.ok(srv.memory.messages().includes('reloaded'));
});

t.test('a new server certificate is used for new connections; open sessions are kept', async (t) => {
  const creds = await srv.creds('vcenter');
  const open = await KmipTestClient.connect(srv.port, creds);
  const before = await servedFingerprint(srv.port, creds);
  const rotated = await rotateServerCert(srv.dataDir);
  const r = srv.ops.reload();
  t.equal(r.ok, true);
  const after = await servedFingerprint(srv.port, creds);
  t.not(after, before);
  t.equal(after, rotated.info.sha256, 'new handshakes get the new certificate');
  t.ok(await createAesKey(open), 'the connection opened before the reload still works');
  t.equal(open.socket.getPeerX509Certificate()?.fingerprint256, before, 'and keeps its session');
  await open.close();
  t.equal(srv.ops.admin?.reloadTls(), false, 'the admin listener already took it');
});

t.test('a bad new certificate is refused: the old one keeps serving, the log says why', async (t) => {
  const creds = await srv.creds('vcenter');
  const p = pkiPaths(srv.dataDir);
  const good = { cert: readFileSync(p.serverCert, 'utf8'), key: readFileSync(p.serverKey, 'utf8') };
  const served = await servedFingerprint(srv.port, creds);
  const stranger = await createCA({ commonName: 'not the kmipd CA' });
  writeFileSync(p.serverKey, stranger.keyPem);
  writeFileSync(p.serverCert, stranger.certPem);
  setServerSection(srv.dataDir, { logLevel: 'debug' });
  try {
    const r = srv.ops.reload();
    t.equal(r.ok, false);
    t.match(r.error, /the server certificate in .*pki cannot be used: .*was not issued by the kmipd CA/);
    t.equal(srv.memory.log.level, 'info', 'all or nothing: the log level did not change either');
    const line = srv.memory.lines.find((l) => l.msg === 'reload refused; nothing was changed, the current certificate and settings stay in use');
    t.match(line, { level: 50, err: /was not issued by the kmipd CA/ });
    t.equal(await servedFingerprint(srv.port, creds), served, 'the old certificate still serves');
  } finally {
    writeFileSync(p.serverKey, good.key);
    writeFileSync(p.serverCert, good.cert);
    setServerSection(srv.dataDir, {});
  }
});

t.test('a broken trust store or configuration is refused as a whole; a good one is applied with the log level', async (t) => {
  const tp = trustPaths(srv.dataDir);
  setServerSection(srv.dataDir, { logLevel: 'debug' });
  writeFileSync(tp.index, '{ not json');
  let r = srv.ops.reload();
  t.equal(r.ok, false);
  t.match(r.error, /the trust store cannot be loaded: .*is not valid JSON/);
  t.equal(srv.memory.log.level, 'info');
  rmSync(tp.index);
  setServerSection(srv.dataDir, { logLevel: 'debug', admin: { prot: 1 } });
  r = srv.ops.reload();
  t.equal(r.ok, false);
  t.match(r.error, /the configuration is not valid: kmipd\.json: server\.admin\.prot: unknown setting/);
  setServerSection(srv.dataDir, { logLevel: 'debug' });
  r = srv.ops.reload();
  t.equal(r.ok, true);
  t.same(r.logLevel, { from: 'info', to: 'debug' });
  t.equal(srv.memory.log.level, 'debug');
  const c = await KmipTestClient.connect(srv.port, await srv.creds('vcenter'));
  await c.close(); // a connection without requests is logged at debug level
  await new Promise((r) => setTimeout(r, 50));
  t.ok(srv.memory.lines.some((l) => l.level === 20 && l.msg === 'connection closed'), 'debug lines are written now');
  setServerSection(srv.dataDir, {});
  t.equal(srv.ops.reload().logLevel?.to, 'info');
});

t.test('the log file is reopened (after logrotate moved it away)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-logfile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'kmipd.log');
  const logging = openLogging({ logLevel: 'info', logFile: file });
  await once(logging.destination!, 'ready');
  logging.log.info('before rotation');
  logging.destination!.flushSync();
  renameSync(file, `${file}.1`);
  const r = reloadServer({ server: srv.server, log: logging.log, logDestination: logging.destination! });
  t.equal(r.logReopened, true);
  await once(logging.destination!, 'ready');
  logging.log.info('after rotation');
  logging.destination!.flushSync();
  await new Promise((res) => setTimeout(res, 50));
  t.ok(existsSync(file), 'a new file');
  t.match(readFileSync(`${file}.1`, 'utf8'), /before rotation/);
  const now = readFileSync(file, 'utf8');
  t.match(now, /after rotation/);
  t.notMatch(now, /before rotation/);
});

t.test('upstreams are reloaded: a newly named identity may Notify, an identity taken out no longer may', async (t) => {
  const c = await KmipTestClient.connect(srv.port, await srv.creds('kms-a'));
  t.teardown(() => c.close());
  const uid = await createAesKey(c);
  const notify = async (): Promise<number | undefined> => {
    const resp = await c.send(
      requestMessage([{ operation: Enums.Operation.Notify, payload: [T.text(Tag.UniqueIdentifier, uid), T.struct(Tag.Attribute, [T.text(Tag.AttributeName, 'x-note'), T.text(Tag.AttributeValue, 'n')])] }], { version: '1.4' }),
    );
    return itemResult(batchItems(resp)[0]!).reason;
  };
  t.equal(await notify(), Enums.ResultReason.PermissionDenied, 'not an upstream at first');
  setServerSection(srv.dataDir, { upstreams: ['kms-a'] });
  const r = srv.ops.reload();
  t.same(r.upstreams, { from: [], to: ['kms-a'] });
  t.equal(await notify(), undefined, 'an upstream after the reload, on the open connection too');
  setServerSection(srv.dataDir, {});
  t.same(srv.ops.reload().upstreams, { from: ['kms-a'], to: [] });
  t.equal(await notify(), Enums.ResultReason.PermissionDenied, 'and no longer after the next one');
  t.equal(srv.ops.reload().upstreams, undefined, 'unchanged: not reported');
});

t.test('SIGHUP to a kmipd serve process reloads it (one real process)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-sighup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = await spawnKmipd(['serve', '--data', dir, '--host', '127.0.0.1', '--port', '0'], { KMIPD_LOG_LEVEL: '' });
  t.teardown(() => {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
  });
  const waitFor = async (re: RegExp, ms = 10_000): Promise<string> => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const line = p.output.find((l) => re.test(l));
      if (line) return line;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no line matching ${re} in:\n${p.output.join('\n')}`);
  };
  setServerSection(dir, { logLevel: 'debug' });
  p.child.kill('SIGHUP');
  const line = JSON.parse(await waitFor(/"msg":"reloaded"/)) as Record<string, unknown>;
  t.equal(line.logLevel, 'info -> debug');
  t.equal(p.child.exitCode, null, 'still running');
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
  await waitFor(/"msg":"stopped"/);
});
