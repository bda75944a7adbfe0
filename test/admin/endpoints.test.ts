/**
 * The admin listener against an in-process server: /livez, /readyz, /health and /metrics, the
 * 503 answers HAProxy acts on (master key check failing, keystore closed), metric labels free of
 * key identifiers and client addresses, and mutual TLS when bound beyond loopback.
 */
import t from 'tap';
import tls from 'node:tls';
import { META_MASTER_CANARY, META_MASTER_ID } from '../../src/crypto/masterkey.js';
import { Metrics, handshakeFailureReason } from '../../src/admin/metrics.js';
import { silentLogger } from '../../src/server/log.js';
import { buildExecutor, type ServerState } from '../../src/server/server.js';
import { Enums } from '../../src/spec/index.js';
import { encodeTtlv } from '../../src/ttlv/index.js';
import { requestMessage } from '../helpers/engine.js';
import { isLoopback } from '../../src/admin/http.js';
import { KmipTestClient } from '../helpers/client.js';
import { activate, addTextAttributes, createAesKey, get } from '../helpers/kmip-requests.js';
import { adminGet, defaultSettings, labelValues, sample, startOpsServer, type OpsServer } from './_ops.js';

let srv: OpsServer;
let client: KmipTestClient;
let uid = '';

t.before(async () => {
  srv = await startOpsServer({ health: { cacheMs: 0 } });
  client = await KmipTestClient.connect(srv.port, await srv.creds('vcenter'));
  uid = await createAesKey(client);
  await addTextAttributes(client, uid, { 'x-Name': 'vm-01', 'x-Component': 'Virtual Machine' });
  await activate(client, uid);
  await get(client, uid);
});
t.teardown(async () => {
  await client.close().catch(() => undefined);
  await srv.stop();
});

const admin = (path: string, method = 'GET') => adminGet(srv.adminPort!, path, srv.caPem, undefined, method);

t.test('livez, readyz and health answer 200 on a healthy server', async (t) => {
  const live = await admin('/livez');
  t.equal(live.status, 200);
  t.equal(live.body, 'ok\n');
  const ready = await admin('/readyz');
  t.equal(ready.status, 200);
  t.equal(ready.body, 'ready\n');
  const h = await admin('/health');
  t.equal(h.status, 200);
  t.match(h.type, /application\/json/);
  const j = JSON.parse(h.body) as { status: string; checks: Record<string, { ok: boolean; detail?: string }> };
  t.equal(j.status, 'ok');
  t.same(Object.keys(j.checks), ['keystore', 'masterKey', 'serverCertificate', 'migrations'], 'one entry per dependency');
  t.ok(Object.values(j.checks).every((c) => c.ok));
  t.match(j.checks.masterKey?.detail, /canary verified, wrap\/unwrap ok/);
  t.equal((await admin('/nothing')).status, 404);
  t.equal((await admin('/livez', 'POST')).status, 405);
  t.equal((await admin('/readyz', 'HEAD')).status, 200);
});

t.test('metrics: Prometheus text with requests, latency, handshakes, connections, keystore, objects, certificates, build', async (t) => {
  // a handshake without a client certificate is refused and counted
  await new Promise<void>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca: srv.caPem, servername: 'localhost' });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.on('secureConnect', () => s.write(Buffer.alloc(8)));
  });
  await new Promise((r) => setTimeout(r, 50));
  const m = await admin('/metrics');
  t.equal(m.status, 200);
  t.match(m.type, /^text\/plain; version=0\.0\.4/);
  const text = m.body;
  t.equal(sample(text, 'kmipd_requests_total', { operation: 'Create', result: 'Success' }), 1, 'requests by operation and result');
  t.equal(sample(text, 'kmipd_requests_total', { operation: 'Get', result: 'Success' }), 1);
  t.equal(sample(text, 'kmipd_request_duration_seconds_count', { operation: 'Get' }), 1, 'latency histogram by operation');
  t.ok((sample(text, 'kmipd_tls_handshakes_total', { result: 'accepted' }) ?? 0) >= 1);
  t.ok((sample(text, 'kmipd_tls_handshake_failures_total', { reason: 'no_client_certificate' }) ?? 0) >= 1, 'a handshake failure by reason');
  t.equal(sample(text, 'kmipd_open_connections'), 1);
  t.ok((sample(text, 'kmipd_keystore_operation_duration_seconds_count', { method: 'insert' }) ?? 0) >= 1, 'keystore latency');
  t.equal(sample(text, 'kmipd_objects', { type: 'SymmetricKey', state: 'Active' }), 1, 'objects by type and state');
  t.equal(sample(text, 'kmipd_audit_write_failures_total'), 0);
  t.ok((sample(text, 'kmipd_certificate_expiry_timestamp_seconds', { certificate: 'server' }) ?? 0) > Date.now() / 1000);
  t.ok((sample(text, 'kmipd_certificate_expiry_timestamp_seconds', { certificate: 'ca' }) ?? 0) > Date.now() / 1000);
  t.equal(sample(text, 'kmipd_build_info'), 1);
  t.equal(sample(text, 'kmipd_last_backup_timestamp_seconds'), 0, 'no backup recorded: 0, old enough for any alert');
  t.equal(sample(text, 'kmipd_keystore_background_checkpoints'), 1, 'SQLite checkpoints run on their worker thread');
  // The Create above is checkpointed within 100 ms of its commit.
  let complete = sample(text, 'kmipd_keystore_checkpoints_total', { result: 'complete' }) ?? 0;
  for (let i = 0; i < 50 && complete < 1; i++) {
    await new Promise((r) => setTimeout(r, 50));
    complete = sample((await admin('/metrics')).body, 'kmipd_keystore_checkpoints_total', { result: 'complete' }) ?? 0;
  }
  t.ok(complete >= 1, `${complete} background checkpoint(s) counted`);
  t.equal(sample((await admin('/metrics')).body, 'kmipd_keystore_checkpoints_total', { result: 'failed' }), 0, 'none failed');

  const values = labelValues(text);
  t.ok(values.length > 20);
  for (const v of values) {
    if (v.includes(uid) || /\b127\.0\.0\.1\b|::1|::ffff:/.test(v) || v === 'vcenter' || v === 'vm-01') t.fail(`label value ${JSON.stringify(v)} names a key, a client or an address`);
  }
  t.pass('no label holds a key identifier, a client identity or a client address');
});

t.test('object counts are refreshed at most every 30 s', async (t) => {
  const before = sample((await admin('/metrics')).body, 'kmipd_objects', { type: 'SymmetricKey', state: 'PreActive' }) ?? 0;
  await createAesKey(client);
  const after = sample((await admin('/metrics')).body, 'kmipd_objects', { type: 'SymmetricKey', state: 'PreActive' }) ?? 0;
  t.equal(after, before, 'the cached counts are served within 30 s');
});

t.test('bounded labels: handshake failure reasons and unknown values', async (t) => {
  t.equal(handshakeFailureReason(Object.assign(new Error('x'), { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' })), 'timeout');
  t.equal(handshakeFailureReason(new Error('error:0A0000C7:SSL routines::peer did not return a certificate')), 'no_client_certificate');
  t.equal(handshakeFailureReason(new Error('error:0A000418:SSL routines::tlsv1 alert unknown ca')), 'untrusted_certificate');
  t.equal(handshakeFailureReason(new Error('error:0A00010B:SSL routines::wrong version number')), 'protocol');
  t.equal(handshakeFailureReason(new Error('something 10.1.2.3 said')), 'other');
  const m = srv.ops.metrics;
  m.executed([{ operation: '0x7777', result: 'OperationFailed', reason: 'Made Up', identity: 'x', seconds: 0.001, uid: 'u-1' }]);
  const text = (await m.text()).body;
  t.equal(sample(text, 'kmipd_requests_total', { operation: 'other', result: 'OperationFailed', reason: 'other' }), 1);
});

t.test('readyz goes 503 while the master key check fails, and back; logged once per change', async (t) => {
  const store = srv.server.state.store;
  const canary = await store.getMeta(META_MASTER_CANARY);
  t.ok(canary);
  await store.setMeta(META_MASTER_CANARY, '00'.repeat(40));
  const r1 = await admin('/readyz');
  const r2 = await admin('/readyz');
  t.equal(r1.status, 503);
  t.equal(r2.status, 503);
  t.match(r1.body, /not ready\nmasterKey: WrongMasterKeyError: wrong master key/);
  const h = JSON.parse((await admin('/health')).body) as { status: string; checks: Record<string, { ok: boolean }> };
  t.equal(h.status, 'fail');
  t.equal(h.checks.masterKey?.ok, false);
  t.equal(h.checks.keystore?.ok, true, 'the other dependencies are reported separately');
  t.equal((await admin('/livez')).status, 200, 'livez does not care');
  await store.setMeta(META_MASTER_CANARY, canary!);
  t.equal((await admin('/readyz')).status, 200);
  // `kmipd master rotate` in another process: the canary now names another key; still ready
  const id = await store.getMeta(META_MASTER_ID);
  await store.setMeta(META_MASTER_ID, 'software:another-version');
  await store.setMeta(META_MASTER_CANARY, '11'.repeat(40));
  const moved = await admin('/health');
  t.equal(moved.status, 200, 'a master key rotated by another process does not make this server unready');
  t.match(moved.body, /the keystore is under master key software:another-version now/);
  await store.setMeta(META_MASTER_ID, id!);
  await store.setMeta(META_MASTER_CANARY, canary!);
  t.equal((await admin('/readyz')).status, 200);
  const logged = srv.memory.messages().filter((m) => m.startsWith('readiness: masterKey'));
  t.equal(logged.length, 2, 'one line when it failed, one when it recovered: not one per probe');
  t.match(logged[0], /^readiness: masterKey failing: WrongMasterKeyError/);
  t.equal(logged[1], 'readiness: masterKey ok again');
});

t.test('beyond loopback the admin listener requires an admin client certificate from the kmipd CA', async (t) => {
  t.ok(isLoopback('127.0.0.1') && isLoopback('::1') && isLoopback('localhost'));
  t.notOk(isLoopback('0.0.0.0') || isLoopback('10.0.0.1'));
  const wide = await startOpsServer({ settings: defaultSettings((s) => (s.admin.host = '0.0.0.0')) });
  t.teardown(() => wide.stop());
  t.ok(wide.ops.admin?.requiresClientCertificate);
  await t.rejects(adminGet(wide.adminPort!, '/livez', wide.caPem), 'no client certificate: the handshake fails');
  const adminCreds = await wide.creds('kmipd-admin');
  const ok = await adminGet(wide.adminPort!, '/readyz', wide.caPem, adminCreds);
  t.equal(ok.status, 200);
  const other = await wide.creds('vcenter');
  const refused = await adminGet(wide.adminPort!, '/metrics', wide.caPem, other);
  t.equal(refused.status, 403, 'a KMIP client certificate is not an admin certificate');
  t.match(refused.body, /not an admin client certificate/);
});

t.test('readyz goes 503 when the keystore is closed; livez stays 200', async (t) => {
  await srv.server.state.store.close();
  const r = await admin('/readyz');
  t.equal(r.status, 503);
  t.match(r.body, /keystore: .*closed/i);
  t.equal((await admin('/livez')).status, 200);
  const h = JSON.parse((await admin('/health')).body) as { checks: Record<string, { ok: boolean }> };
  t.equal(h.checks.keystore?.ok, false);
});

t.test('audit write failures are counted (through the executor observer)', async (t) => {
  const m = new Metrics();
  const failing = { record: () => Promise.reject(new Error('disk full')) } as unknown as ServerState['audit'];
  const executor = buildExecutor({ ...srv.server.state, audit: failing }, silentLogger(), 1024 * 1024, undefined, m.observer());
  const r = await executor.execute(encodeTtlv(requestMessage([{ operation: Enums.Operation.DiscoverVersions, payload: [] }])), { name: 'vcenter' }, silentLogger());
  t.equal(r.items[0]?.reason, 'GeneralFailure');
  const text = (await m.text()).body;
  t.equal(sample(text, 'kmipd_audit_write_failures_total'), 1);
  t.equal(sample(text, 'kmipd_requests_total', { operation: 'DiscoverVersions', result: 'OperationFailed', reason: 'GeneralFailure' }), 1);
});
