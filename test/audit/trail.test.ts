/**
 * The audit trail as the server writes it: one record per batch item through the real
 * executor (Create, Register, Get, Activate, Get Attributes, Locate, Revoke, Destroy, failures),
 * with the identity, fingerprint and address of the client; no key material anywhere in the
 * file; the chain and anchors verify; admin commands through auditAdmin; a real TLS client.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { auditAdmin, adminIdentity } from '../../src/audit/admin.js';
import { metaAnchorKey } from '../../src/audit/read.js';
import { verifyAuditTrail } from '../../src/audit/verify.js';
import { Enums, Tag } from '../../src/spec/index.js';
import { T } from '../../src/ttlv/index.js';
import { KmipTestClient } from '../helpers/client.js';
import { createAesKey, get as getOverTls } from '../helpers/kmip-requests.js';
import { startTestServer } from '../helpers/server.js';
import { OK, OP, auditPath, createKey, records, registerPayload, startAuditEngine, uidNode, uidOf } from './_audit.js';

t.test('every batch item is recorded with who, from where, what, which object and the result', async (t) => {
  const e = await startAuditEngine({ audit: { anchorEvery: 5 } });
  t.teardown(() => e.dispose());
  const alice = { name: 'alice', fingerprint: 'ab'.repeat(32), address: '192.0.2.7' };

  const created = await createKey(e, alice);
  const secret = randomBytes(32);
  const reg = await e.call(OP.Register, registerPayload(secret), alice);
  t.equal(reg.status, OK, 'Register');
  const registered = uidOf(reg);
  t.equal((await e.call(OP.Get, [uidNode(registered)], alice)).status, OK, 'Get');
  t.equal((await e.call(OP.Activate, [uidNode(created)], alice)).status, OK, 'Activate');
  t.equal((await e.call(OP.GetAttributes, [uidNode(created)], alice)).status, OK, 'Get Attributes');
  t.equal((await e.call(OP.Locate, [], alice)).status, OK, 'Locate');
  const revoke = [uidNode(created), T.struct(Tag.RevocationReason, [T.enum(Tag.RevocationReasonCode, Enums.RevocationReasonCode.CessationOfOperation)])];
  t.equal((await e.call(OP.Revoke, revoke, alice)).status, OK, 'Revoke');
  t.equal((await e.call(OP.Destroy, [uidNode(created)], alice)).status, OK, 'Destroy');
  // failures: an unknown uid, and another identity's object (indistinguishable for mallory)
  t.not((await e.call(OP.Get, [uidNode('no-such-uid')], alice)).status, OK);
  t.not((await e.call(OP.Get, [uidNode(registered)], { name: 'mallory', address: '198.51.100.9' })).status, OK);

  const kmip = records(e.dataDir).filter((r) => r.kind === 'kmip');
  t.same(
    kmip.map((r) => [r.operation, r.object, r.result, r.reason]),
    [
      ['Create', created, 'Success', undefined],
      ['Register', registered, 'Success', undefined],
      ['Get', registered, 'Success', undefined],
      ['Activate', created, 'Success', undefined],
      ['GetAttributes', created, 'Success', undefined],
      ['Locate', undefined, 'Success', undefined],
      ['Revoke', created, 'Success', undefined],
      ['Destroy', created, 'Success', undefined],
      ['Get', 'no-such-uid', 'OperationFailed', 'ItemNotFound'],
      ['Get', registered, 'OperationFailed', 'ItemNotFound'],
    ],
    'operations, objects and results in order (failed items name the object they asked for)',
  );
  const first = kmip[0]!;
  t.equal(first.identity, 'alice');
  t.equal(first.fingerprint, 'ab'.repeat(32));
  t.equal(first.address, '192.0.2.7');
  t.equal(first.version, '1.4');
  t.ok(Math.abs(Date.parse(first.time) - Date.now()) < 60_000, 'time is now');
  t.equal(kmip[9]!.identity, 'mallory');
  t.equal(kmip[9]!.address, '198.51.100.9');

  const all = records(e.dataDir);
  t.same(
    all.map((r) => r.seq),
    all.map((_, i) => i + 1),
    'sequence numbers 1, 2, 3...',
  );
  t.ok(all.filter((r) => r.kind === 'anchor').length >= 2, 'anchors every 5 records');

  // Never key material: the registered bytes, and the material Get returned, in any encoding.
  const file = readFileSync(auditPath(e.dataDir));
  const text = file.toString('utf8');
  for (const enc of ['hex', 'base64', 'base64url'] as const) t.notOk(text.includes(secret.toString(enc)), `no key bytes as ${enc}`);
  t.equal(file.indexOf(secret), -1, 'no raw key bytes');
  t.notOk(text.toLowerCase().includes(secret.toString('hex').slice(0, 16)), 'not even part of them');

  const r = await verifyAuditTrail({ dataDir: e.dataDir, master: e.state.master, meta: e.state.store });
  t.ok(r.ok, `verifies: ${r.problem?.message ?? ''}`);
  t.equal(r.anchorsVerified, r.anchors);
  t.equal(r.records, all.length);
});

t.test('clean shutdown anchors the chain head and records it in the keystore', async (t) => {
  const e = await startAuditEngine();
  t.teardown(() => e.dispose());
  await createKey(e);
  await createKey(e);
  t.same(
    records(e.dataDir).map((r) => r.kind),
    ['kmip', 'kmip'],
    'no anchor yet (default: every 1000 records)',
  );
  await e.close();
  const recs = records(e.dataDir);
  t.same(
    recs.map((r) => r.kind),
    ['kmip', 'kmip', 'anchor'],
    'an anchor on close',
  );
  const again = await startAuditEngine({ dataDir: e.dataDir });
  t.teardown(() => again.close());
  t.same(JSON.parse((await again.state.store.getMeta(metaAnchorKey(e.dataDir, false))) ?? 'null'), { seq: 3, hash: recs[2]!.hash }, 'keystore meta holds the newest anchor');
  const r = await verifyAuditTrail({ dataDir: e.dataDir, master: again.state.master, meta: again.state.store });
  t.ok(r.ok);
  t.equal(r.anchorsVerified, 1);
  t.equal(r.unanchored, 0);
  // a data folder opened only to read writes nothing
  await again.close();
  t.equal(records(e.dataDir).length, 3, 'reading the folder (open, close) adds no record');
});

t.test('the CLI of the lifecycle commands is audited through the executor, admin commands through auditAdmin', async (t) => {
  const e = await startAuditEngine();
  t.teardown(() => e.dispose());
  const uid = await createKey(e);
  await auditAdmin(e.dataDir, { command: 'key revoke', object: uid, result: 'Success', reason: 'KeyCompromise' }, { state: e.state });
  await e.close();
  // and without an open state: the folder is opened (master key and keystore) and closed again
  await auditAdmin(e.dataDir, { command: 'trust add-ca', object: 'sha256:1234', result: 'Failed', reason: 'not a CA certificate' });
  const recs = records(e.dataDir);
  const admin = recs.filter((r) => r.kind === 'admin');
  t.equal(admin.length, 2);
  t.equal(admin[0]!.operation, 'key revoke');
  t.equal(admin[0]!.object, uid);
  t.equal(admin[0]!.reason, 'KeyCompromise');
  t.equal(admin[0]!.identity, adminIdentity());
  t.match(admin[0]!.address, /^local:/);
  t.equal(admin[1]!.result, 'Failed');
  t.equal(recs[recs.length - 1]!.kind, 'anchor', 'an admin record is anchored at once');
  const idx = recs.findIndex((r) => r === admin[0]);
  t.equal(recs[idx + 1]?.kind, 'anchor');
  await t.rejects(auditAdmin(join(e.dataDir, 'nope'), { command: 'x', result: 'Success' }), /no kmipd data folder/);
});

t.test('over TLS: the certificate identity, its SHA-256 fingerprint and the source address', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const creds = await srv.creds('vcenter');
  const client = await KmipTestClient.connect(srv.port, creds);
  t.teardown(() => client.close());
  const uid = await createAesKey(client);
  t.equal((await getOverTls(client, uid)).status, OK);
  const recs = records(srv.dataDir).filter((r) => r.kind === 'kmip');
  t.equal(recs.length, 2, 'the records are on disk when the responses arrive');
  const der = Buffer.from(creds.cert.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const fp = createHash('sha256').update(der).digest('hex');
  for (const r of recs) {
    t.equal(r.identity, 'vcenter');
    t.equal(r.fingerprint, fp);
    t.match(r.address, /127\.0\.0\.1/);
    t.equal(r.version, '1.1');
    t.equal(r.object, uid);
  }
  t.ok(readdirSync(join(srv.dataDir, 'audit')).includes('audit.lock'));
});
