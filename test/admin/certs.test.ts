/**
 * `kmipd cert list`: every certificate kmipd uses or trusts, with expiry and what the expiry
 * breaks per vCenter trust mode; the server log's warnings at 30, 7 and 1 days.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExpiryWarner, certificateInventory } from '../../src/admin/certs.js';
import { createCA } from '../../src/pki/ca.js';
import { issueClientCert } from '../../src/pki/issue.js';
import { ensureServerPki } from '../../src/pki/store.js';
import { addPinnedCert, addTrustedCa } from '../../src/pki/trust.js';
import { runKmipd } from '../helpers/cli.js';
import { memoryLog } from './_ops.js';

const DAY = 86_400_000;
let dir: string;

interface Listed {
  kind: string;
  name: string;
  notAfter: string;
  daysLeft: number;
  status: string;
  breaks: string;
}

t.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kmipd-certs-'));
  await ensureServerPki(dir);
  const vcRoot = await createCA({ commonName: 'vCenter root CA' });
  addTrustedCa(dir, vcRoot.certPem, { name: 'vcenter-root' });
  const other = await createCA({ commonName: 'other CA' });
  const pinned = await issueClientCert(other, { commonName: 'vc01', keyType: 'ec', days: 10 });
  addPinnedCert(dir, pinned.certPem, { name: 'vcenter' });
});
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('cert list: CA, server, trusted CAs and pinned certificates with what their expiry breaks', async (t) => {
  const r = await runKmipd(['cert', 'list', '--data', dir, '--json']);
  t.equal(r.exitCode, 0, r.err);
  const list = JSON.parse(r.out) as Listed[];
  t.same(list.map((c) => `${c.kind}:${c.name}`), ['ca:kmipd-ca', 'server:server', 'trusted_ca:vcenter-root', 'pinned:vcenter']);
  const by = (k: string) => list.find((c) => c.kind === k)!;
  t.match(by('server').breaks, /vCenter must then re-approve the new certificate/);
  t.match(by('server').breaks, /kmipd cert rotate-server/);
  t.match(by('trusted_ca').breaks, /vCenter mode "vCenter Root CA Certificate"/);
  t.match(by('pinned').breaks, /vCenter mode "vCenter Certificate": the client vcenter is refused/);
  t.match(by('ca').breaks, /"KMS certificate and private key" and "New Certificate Signing Request"/);
  t.equal(by('pinned').status, 'expiring');
  t.ok(by('pinned').daysLeft >= 9 && by('pinned').daysLeft <= 10);

  const text = await runKmipd(['cert', 'list', '--data', dir]);
  t.match(text.out, /^KIND +NAME +NOT AFTER +DAYS +STATUS +SUBJECT\n/);
  t.match(text.out, /\n! pinned vcenter: expiring: vCenter mode "vCenter Certificate"/);
});

t.test('cert list --expiring 30d: only what ends within 30 days', async (t) => {
  const r = await runKmipd(['cert', 'list', '--data', dir, '--expiring', '30d', '--json']);
  t.same((JSON.parse(r.out) as Listed[]).map((c) => c.name), ['vcenter']);
  const text = await runKmipd(['cert', 'list', '--data', dir, '--expiring', '30d']);
  t.match(text.out, /1 certificate\(s\) expire within 30d\n$/);
  const bad = await runKmipd(['cert', 'list', '--data', dir, '--expiring', 'soon']);
  t.not(bad.exitCode, 0);
  t.match(bad.err, /write a number and a unit/);
  const none = await runKmipd(['cert', 'list', '--data', join(dir, 'nothing')]);
  t.equal(none.exitCode, 1);
  t.match(none.err, /no kmipd PKI/);
});

t.test('the server log warns at 30, 7 and 1 days, once each, and daily once expired', async (t) => {
  const { certs } = certificateInventory(dir);
  const pinned = certs.filter((c) => c.kind === 'pinned');
  const end = pinned[0]!.notAfter.getTime();
  const mem = memoryLog();
  const w = new ExpiryWarner(mem.log);
  t.same(w.check(pinned, new Date(end - 40 * DAY)), [], 'nothing 40 days before');
  const at30 = w.check(pinned, new Date(end - 29 * DAY));
  t.equal(at30.length, 1);
  t.match(at30[0], /^the pinned certificate vcenter \(.*CN=vc01\) expires on .* \(in 29 day\(s\)\); then: vCenter mode "vCenter Certificate"/);
  t.same(w.check(pinned, new Date(end - 20 * DAY)), [], 'not again before the next threshold');
  t.equal(w.check(pinned, new Date(end - 6 * DAY)).length, 1, '7 days');
  t.same(w.check(pinned, new Date(end - 5 * DAY)), []);
  t.match(w.check(pinned, new Date(end - 0.5 * DAY))[0], /in less than a day/);
  const gone = w.check(pinned, new Date(end + DAY));
  t.match(gone[0], /expired on .*; broken: vCenter mode "vCenter Certificate"/);
  t.same(w.check(pinned, new Date(end + 1.5 * DAY)), [], 'expired: at most once a day');
  t.equal(w.check(pinned, new Date(end + 2.1 * DAY)).length, 1);
  t.same(mem.lines.map((l) => l.level), [40, 40, 40, 50, 50], 'warnings, then errors');
  const fresh = new ExpiryWarner(memoryLog().log);
  t.equal(fresh.check(pinned, new Date(end - 3 * DAY)).length, 1, 'a server started within the window warns once at start');
  t.same(fresh.check(pinned, new Date(end - 2 * DAY)), []);
});
