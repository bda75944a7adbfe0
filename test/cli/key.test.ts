/**
 * `kmipd key`: the admin's inventory of what vCenter created. Keys are made over real TLS the
 * way vCenter makes them (Create, three Add Attribute with x-Name / x-Component /
 * x-Identifier, Activate), then listed, shown and moved through their lifecycle by the CLI
 * against the data folder of the running server, which sees the changes at once. Also: the CLI
 * waits for a writer holding the database (busy timeout) instead of failing, and CLI processes
 * writing while the server writes all succeed.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Enums, Tag } from '../../src/spec/index.js';
import { KmipTestClient } from '../helpers/client.js';
import { ensureBuilt, kmipdArgs, runKmipd } from '../helpers/cli.js';
import { activate, addTextAttributes, createAesKey, get, stateOf } from '../helpers/kmip-requests.js';
import { REPO_ROOT } from '../helpers/requirements.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const ST = Enums.State;

let srv: TestServer;
let vcenter: KmipTestClient;
const uids = { vm1: '', vm2: '', host: '', plain: '' };

interface Row {
  uid: string;
  objectType: string;
  state: string;
  owner: string;
  created: string;
  'x-Name': string | null;
  'x-Component': string | null;
  'x-Identifier': string | null;
}

async function tagged(name: string, component: string, identifier: string, active: boolean): Promise<string> {
  const uid = await createAesKey(vcenter);
  await addTextAttributes(vcenter, uid, { 'x-Product_Version': '7.0.3 build-19480866', 'x-Vendor': 'VMware, Inc.', 'x-Product': 'VMware vSphere' });
  if (active) {
    const r = await activate(vcenter, uid);
    if (r.status !== Enums.ResultStatus.Success) throw new Error(`Activate failed: ${r.message}`);
  }
  await addTextAttributes(vcenter, uid, { 'x-Identifier': identifier, 'x-Component': component, 'x-Name': name });
  return uid;
}

async function list(...args: string[]): Promise<Row[]> {
  const r = await runKmipd(['key', 'list', '--data', srv.dataDir, '--json', ...args]);
  if (r.exitCode !== 0) throw new Error(r.err);
  return JSON.parse(r.out) as Row[];
}

const key = (...args: string[]) => runKmipd(['key', ...args.slice(0, 1), '--data', srv.dataDir, ...args.slice(1)]);

t.before(async () => {
  srv = await startTestServer();
  vcenter = await KmipTestClient.connect(srv.port, await srv.creds('vcenter'));
  uids.vm1 = await tagged('vm-01', 'Virtual Machine', '4211a1b2-0000-4000-8000-000000000001', true);
  uids.vm2 = await tagged('vm-02', 'Virtual Machine', '4211a1b2-0000-4000-8000-000000000002', false);
  uids.host = await tagged('esx-01.example.test', 'ESXi Server', '30373237-3132-4d32-3230-303030303031', true);
  const other = await KmipTestClient.connect(srv.port, await srv.creds('pykmip'));
  uids.plain = await createAesKey(other);
  await other.close();
});
t.teardown(async () => {
  await vcenter.close();
  await srv.stop();
});

t.test('key list: every key with uid, state, owner, created date and the vCenter tags', async (t) => {
  const rows = await list();
  t.same(rows.map((r) => r.uid), [uids.vm1, uids.vm2, uids.host, uids.plain], 'every key, every owner, oldest first');
  const vm1 = rows[0]!;
  t.match(vm1, {
    objectType: 'SymmetricKey',
    state: 'Active',
    owner: 'vcenter',
    'x-Name': 'vm-01',
    'x-Component': 'Virtual Machine',
    'x-Identifier': '4211a1b2-0000-4000-8000-000000000001',
  });
  t.match(vm1.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  t.ok(Math.abs(Date.parse(vm1.created) - Date.now()) < 120_000, 'created just now');
  t.match(rows[3], { owner: 'pykmip', state: 'PreActive', 'x-Name': null, 'x-Component': null, 'x-Identifier': null });

  const text = await key('list');
  t.equal(text.exitCode, 0, text.err);
  t.match(text.out, /^UID +TYPE +STATE +OWNER +CREATED +LAST FETCHED +BY +ATTRS READ +X-NAME +X-COMPONENT +X-IDENTIFIER\n/);
  t.match(text.out, new RegExp(`\\n${uids.vm1} +SymmetricKey +Active +vcenter +\\S+ +never +- +never +vm-01 +Virtual Machine +4211a1b2-0000-4000-8000-000000000001\\n`));
  t.match(text.out, new RegExp(`\\n${uids.plain} +SymmetricKey +PreActive +pykmip +\\S+ +never +- +never +- +- +-\\n`));
  t.match(text.out, /\n4 objects \(2 Active, 2 PreActive\)\n$/);
});

t.test('key list filters: --component, --name, --state', async (t) => {
  const ids = async (...args: string[]) => (await list(...args)).map((r) => r.uid);
  t.same(await ids('--component', 'Virtual Machine'), [uids.vm1, uids.vm2]);
  t.same(await ids('--component', 'virtual machine'), [uids.vm1, uids.vm2], 'case-insensitive');
  t.same(await ids('--component', 'ESXi Server'), [uids.host]);
  t.same(await ids('--name', 'vm-01'), [uids.vm1], 'the whole name');
  t.same(await ids('--name', 'vm'), [], 'not a substring');
  t.same(await ids('--name', 'vm-*'), [uids.vm1, uids.vm2], '* matches anything');
  t.same(await ids('--state', 'Active'), [uids.vm1, uids.host]);
  t.same(await ids('--state', 'Pre-Active'), [uids.vm2, uids.plain], 'the spec spelling');
  t.same(await ids('--state', 'preactive', '--component', 'Virtual Machine'), [uids.vm2], 'combined');
  const bad = await key('list', '--state', 'Sleeping');
  t.equal(bad.exitCode, 1);
  t.match(bad.err, /unknown state "Sleeping"; one of PreActive, Active, Deactivated, Compromised, Destroyed, DestroyedCompromised/);
});

t.test("key show: one key's attributes, never its material", async (t) => {
  const g = await get(vcenter, uids.vm1);
  const kb = g.payload?.value.find((n) => n.tag === Tag.SymmetricKey);
  const bytes = findBytes(kb);
  t.equal(bytes?.length, 32, 'the key (read over KMIP for comparison)');

  const r = await key('show', uids.vm1);
  t.equal(r.exitCode, 0, r.err);
  t.match(r.out, `uid:       ${uids.vm1}\n`);
  t.match(r.out, /state: +Active\n/);
  t.match(r.out, /owner: +vcenter\n/);
  t.match(r.out, /material: +stored, wrapped \(never shown\)\n/);
  t.match(r.out, /\n  Cryptographic Algorithm: +AES\n/);
  t.match(r.out, /\n  Cryptographic Length: +256\n/);
  t.match(r.out, /\n  Cryptographic Usage Mask: +Encrypt\|Decrypt\n/);
  t.match(r.out, /\n  x-Name: +vm-01\n/);
  t.match(r.out, /\n  x-Component: +Virtual Machine\n/);
  t.match(r.out, /\n  x-Vendor: +VMware, Inc\.\n/);
  t.match(r.out, /\n  Activation Date: +\d{4}-\d\d-\d\dT/);
  const json = await key('show', uids.vm1, '--json');
  const d = JSON.parse(json.out) as { hasMaterial: boolean; attributes: { name: string; value: string }[] };
  t.equal(d.hasMaterial, true);
  t.equal(d.attributes.find((a) => a.name === 'x-Identifier')?.value, '4211a1b2-0000-4000-8000-000000000001');
  for (const out of [r.out, json.out]) {
    t.notOk(out.toLowerCase().includes(bytes!.toString('hex')), 'the key bytes (hex) appear nowhere');
    t.notOk(out.includes(bytes!.toString('base64')), 'nor in base64');
  }
  const none = await key('show', 'no-such-uid');
  t.equal(none.exitCode, 1);
  t.match(none.err, /no object with Unique Identifier "no-such-uid"/);
});

function findBytes(n: unknown): Buffer | undefined {
  if (!n || typeof n !== 'object') return undefined;
  const node = n as { tag?: number; type?: string; value?: unknown };
  if (node.tag === Tag.KeyMaterial && node.type === 'ByteString') return Buffer.from(node.value as Uint8Array);
  if (Array.isArray(node.value)) {
    for (const c of node.value) {
      const b = findBytes(c);
      if (b) return b;
    }
  }
  return undefined;
}

t.test('activate, revoke, destroy: the KMIP rules, and the running server sees the result', async (t) => {
  let r = await key('activate', uids.vm2);
  t.equal(r.exitCode, 0, r.err);
  t.match(r.out, `${uids.vm2}: PreActive -> Active\n`);
  t.equal(await stateOf(vcenter, uids.vm2), ST.Active, 'vCenter sees it Active at once');
  r = await key('activate', uids.vm2);
  t.equal(r.exitCode, 1);
  t.match(r.err, /only a Pre-Active object can be activated; this one is Active \(WrongKeyLifecycleState\)/);

  r = await key('destroy', uids.vm1);
  t.equal(r.exitCode, 1, 'an Active key cannot be destroyed');
  t.match(r.err, /revoke it first/);
  t.equal(await stateOf(vcenter, uids.vm1), ST.Active, 'unchanged');

  r = await key('revoke', uids.vm1, '--reason', 'nonsense');
  t.equal(r.exitCode, 1);
  t.match(r.err, /unknown revocation reason "nonsense"; one of Unspecified, KeyCompromise, CACompromise, AffiliationChanged, Superseded, CessationOfOperation, PrivilegeWithdrawn/);
  r = await key('revoke', uids.vm1, '--reason', 'Cessation of Operation', '--message', 'VM retired');
  t.equal(r.exitCode, 0, r.err);
  t.match(r.out, `${uids.vm1}: Active -> Deactivated\n  revocation reason: CessationOfOperation\n`);
  t.equal(await stateOf(vcenter, uids.vm1), ST.Deactivated);
  const shown = await key('show', uids.vm1);
  t.match(shown.out, /Revocation Reason: +\{RevocationReasonCode=CessationOfOperation, RevocationMessage=VM retired\}/);
  t.match(shown.out, /Deactivation Date: +\d{4}-/);

  r = await key('destroy', uids.vm1, '--reason', 'VM deleted');
  t.equal(r.exitCode, 0, r.err);
  t.match(r.out, `${uids.vm1}: Deactivated -> Destroyed\n  reason: VM deleted\n`);
  const g = await get(vcenter, uids.vm1);
  t.not(g.status, Enums.ResultStatus.Success, 'Get of the destroyed key fails');
  t.match((await key('show', uids.vm1)).out, /material: +none\n/);
  t.equal((await list('--state', 'destroyed'))[0]?.uid, uids.vm1, 'still listed, as Destroyed');
  r = await key('destroy', uids.vm1);
  t.equal(r.exitCode, 1);
  t.match(r.err, /already been destroyed/);

  r = await key('revoke', uids.host, '--reason', 'key-compromise');
  t.equal(r.exitCode, 0, r.err);
  t.match(r.out, 'Active -> Compromised');
  r = await key('revoke', uids.plain);
  t.equal(r.exitCode, 0, r.err);
  t.match(r.out, 'PreActive -> Deactivated\n  revocation reason: Unspecified');
  r = await key('activate', 'no-such-uid');
  t.equal(r.exitCode, 1);
  t.match(r.err, /no object with Unique Identifier "no-such-uid"/);

  const missing = await runKmipd(['key', 'list', '--data', join(srv.dataDir, 'nothing')]);
  t.equal(missing.exitCode, 1);
  t.match(missing.err, /no kmipd data folder/);
  t.notOk(existsSync(join(srv.dataDir, 'nothing')), 'no data folder created');
});

t.test('a CLI write waits for another writer holding the database (busy timeout) instead of failing', async (t) => {
  const uid = await createAesKey(vcenter);
  const db = join(srv.dataDir, 'keystore.sqlite');
  const holder = spawn(
    'env',
    [
      '-u',
      'NODE_OPTIONS',
      process.execPath,
      '-e',
      `const D = require('better-sqlite3'); const db = new D(${JSON.stringify(db)}); db.exec('BEGIN IMMEDIATE');
       process.stdout.write('locked\\n'); setTimeout(() => { db.exec('COMMIT'); db.close(); }, 1500);`,
    ],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    holder.stdout.on('data', (b: Buffer) => b.toString().includes('locked') && resolve());
    holder.once('exit', (code) => reject(new Error(`lock holder exited ${code}`)));
  });
  const t0 = Date.now();
  const r = await key('activate', uid);
  const waited = Date.now() - t0;
  t.equal(r.exitCode, 0, r.err);
  t.ok(waited >= 800, `it waited for the lock (${waited} ms)`);
  t.equal(await stateOf(vcenter, uid), ST.Active);
  await new Promise((r2) => (holder.exitCode === null ? holder.once('exit', r2) : r2(null)));
});

t.test('CLI processes and the server writing at the same time all succeed', async (t) => {
  const note = ensureBuilt('src/cli/key.js');
  if (note) t.comment(note);
  const targets = await Promise.all(Array.from({ length: 6 }, () => createAesKey(vcenter)));
  const clis = targets.map(
    (uid) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        let out = '';
        const c = spawn('env', kmipdArgs(['key', 'activate', '--data', srv.dataDir, uid]), { stdio: ['ignore', 'pipe', 'pipe'] });
        c.stdout.on('data', (b: Buffer) => (out += b.toString()));
        c.stderr.on('data', (b: Buffer) => (out += b.toString()));
        c.once('exit', (code) => resolve({ code, out }));
      }),
  );
  // meanwhile the server creates and tags keys on four connections
  const conns = await Promise.all(Array.from({ length: 4 }, async () => KmipTestClient.connect(srv.port, await srv.creds('vcenter'))));
  const created: string[] = [];
  const writers = conns.map(async (c, i) => {
    for (let n = 0; n < 10; n++) {
      const uid = await createAesKey(c);
      await addTextAttributes(c, uid, { 'x-Name': `load-${i}-${n}`, 'x-Component': 'Virtual Machine', 'x-Identifier': `${i}-${n}` });
      created.push(uid);
    }
  });
  const [results] = await Promise.all([Promise.all(clis), Promise.all(writers)]);
  for (const c of conns) await c.close();
  results.forEach((r, i) => t.equal(r.code, 0, `CLI ${i}: ${r.out.trim()}`));
  t.equal(created.length, 40, 'every server write succeeded');
  for (const uid of targets) t.equal(await stateOf(vcenter, uid), ST.Active);
  t.equal((await list('--name', 'load-*')).length, 40, 'and every tag landed');
});
