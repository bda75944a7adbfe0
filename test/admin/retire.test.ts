/**
 * `kmipd key stale --in-use FILE` (a plain list or PowerCLI's Export-Csv) and `kmipd key retire`:
 * a dry run changes nothing (states, audit trail); --yes deactivates the stale keys and records
 * it; a later run destroys only keys Deactivated for the grace period and not requested since
 * (a key fetched after its deactivation is kept); the in-use keys are never touched; every
 * step is in the audit trail (the KMIP record of the executor and the admin record).
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RETIRE_PREFIX, USAGE_PREFIX } from '../../src/admin/meta-keys.js';
import { parseInUse, planRetire } from '../../src/admin/retire.js';
import type { AuditRecord } from '../../src/audit/types.js';
import { silentLogger } from '../../src/server/log.js';
import { type ServerState, openServerState } from '../../src/server/server.js';
import { Enums } from '../../src/spec/index.js';
import { KmipTestClient } from '../helpers/client.js';
import { runKmipd } from '../helpers/cli.js';
import { activate, addTextAttributes, createAesKey, get } from '../helpers/kmip-requests.js';
import { defaultSettings, startOpsServer } from './_ops.js';

const DAY = 86_400_000;
const ST = Enums.State;

t.test('the in-use list: one ID per line, or a CSV with a KeyId column', async (t) => {
  t.same([...parseInUse('# exported 2026-11-01\n\nuid-1\n  uid-2  \r\n"uid-3"\n# uid-4\n')], ['uid-1', 'uid-2', 'uid-3'], 'lines, comments and blanks');
  const powercli = [
    '#TYPE Selected.VMware.VimAutomation.ViCore.Impl.V1.VM.UniversalVirtualMachineImpl',
    '"Name","KeyId","ProviderId"',
    '"vm-01","uid-1","kmipd"',
    '"vm, with comma","uid-2","kmipd"',
    '"vm-plain","",""',
    '',
  ].join('\r\n');
  t.same([...parseInUse(powercli)], ['uid-1', 'uid-2'], "Export-Csv as Windows PowerShell writes it (#TYPE line, quotes, empty cells)");
  t.same([...parseInUse('host,key_id\nesx-01,uid-9\n')], ['uid-9'], 'key_id, any case');
  t.same([...parseInUse('KEYID\nuid-7\n')], ['uid-7'], 'a one-column CSV with its header');
  const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('"Name","KeyID"\r\n"vm","uid-5"\r\n', 'utf16le')]);
  t.same([...parseInUse(utf16)], ['uid-5'], 'UTF-16 LE with BOM');
  t.same([...parseInUse(Buffer.from('\ufeffuid-6\n'))], ['uid-6'], 'UTF-8 BOM');
  t.throws(() => parseInUse('Name,Key\nvm,uid\n'), /no KeyId column/);
  t.same([...parseInUse('')], []);
});

async function audit(dataDir: string): Promise<AuditRecord[]> {
  const r = await runKmipd(['audit', 'show', '--data', dataDir, '--json']);
  if (r.exitCode !== 0) throw new Error(r.err);
  return r.out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditRecord);
}

async function withState<R>(dataDir: string, fn: (s: ServerState) => Promise<R>): Promise<R> {
  const s = await openServerState(dataDir, { log: silentLogger() });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

t.test('key stale --in-use and key retire: dry run, deactivate, destroy after the grace period', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kmipd-retire-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const settings = defaultSettings((s) => (s.admin.port = undefined));
  let srv = await startOpsServer({ settings, dataDir });
  let vc = await KmipTestClient.connect(srv.port, await srv.creds('vcenter'));
  const make = async (name: string, active = true): Promise<string> => {
    const uid = await createAesKey(vc);
    if (active) await activate(vc, uid);
    await addTextAttributes(vc, uid, { 'x-Name': name, 'x-Component': 'Virtual Machine' });
    return uid;
  };
  const k = {
    fetched: await make('vm-fetched'), // fetched once, then left: retired, fetched again after: kept
    never: await make('vm-never'), // never fetched: retired, destroyed after the grace period
    pre: await make('vm-pre', false), // Pre-Active: retired, still in its grace period at the second run
    inUse: await make('vm-in-use'), // in vCenter's list: never touched
    recent: await make('vm-recent'), // fetched "recently": not stale
  };
  await get(vc, k.fetched);
  await vc.close();
  await srv.stop(); // writes the pending last-use times
  await withState(dataDir, (s) => s.store.setMeta(USAGE_PREFIX + k.recent, JSON.stringify({ at: new Date(Date.now() + 10 * DAY).toISOString(), by: 'vcenter', op: 'Get' })));

  const list = join(dataDir, 'in-use.txt');
  writeFileSync(list, `# vCenter keys\n${k.inUse}\n\nsome-other-kms-key\n`);
  const csv = join(dataDir, 'in-use.csv');
  writeFileSync(csv, `#TYPE Selected.VMware.VimAutomation.ViCore.Impl.V1.VM.UniversalVirtualMachineImpl\r\n"Name","KeyId"\r\n"vm-in-use","${k.inUse}"\r\n"vm-clear",""\r\n`);
  const staleUids = [k.fetched, k.never, k.pre];

  for (const file of [list, csv]) {
    const r = await runKmipd(['key', 'stale', '--data', dataDir, '--unused-for', '0s', '--in-use', file, '--json']);
    t.equal(r.exitCode, 0, r.err);
    t.same((JSON.parse(r.out) as { uid: string }[]).map((x) => x.uid).sort(), [...staleUids].sort(), `stale without the in-use key (${file.endsWith('.csv') ? 'CSV' : 'plain list'})`);
    const text = await runKmipd(['key', 'stale', '--data', dataDir, '--unused-for', '0s', '--in-use', file]);
    t.match(text.out, /3 key\(s\) not used for 0s or more\n1 more left out: in use/);
  }
  const extra = join(dataDir, 'extra.txt');
  writeFileSync(extra, `${k.pre}\n`);
  const two = await runKmipd(['key', 'stale', '--data', dataDir, '--unused-for', '0s', '--in-use', csv, '--in-use', extra, '--json']);
  t.same((JSON.parse(two.out) as { uid: string }[]).map((x) => x.uid).sort(), [k.fetched, k.never].sort(), '--in-use given twice: both lists count');
  const without = await runKmipd(['key', 'stale', '--data', dataDir, '--unused-for', '0s', '--json']);
  t.equal((JSON.parse(without.out) as unknown[]).length, 4, 'without --in-use the in-use key is stale too');
  const missing = await runKmipd(['key', 'stale', '--data', dataDir, '--in-use', join(dataDir, 'nope.txt')]);
  t.equal(missing.exitCode, 1);
  t.match(missing.err, /cannot read the in-use list/);
  const defaulted = await runKmipd(['key', 'stale', '--data', dataDir, '--json']);
  t.same(JSON.parse(defaulted.out), [], '--unused-for defaults to 180d: nothing that old');

  const states = () => withState(dataDir, async (s) => Object.fromEntries(await Promise.all(Object.entries(k).map(async ([n, uid]) => [n, (await s.store.get(uid))?.state]))));
  const initial = { fetched: ST.Active, never: ST.Active, pre: ST.PreActive, inUse: ST.Active, recent: ST.Active };
  t.same(await states(), initial);

  // ---- dry run ----
  const auditBefore = await audit(dataDir);
  const dry = await runKmipd(['key', 'retire', '--data', dataDir, '--unused-for', '0s', '--in-use', csv]);
  t.equal(dry.exitCode, 0, dry.err);
  t.match(dry.out, /would deactivate \(unused for 0s\):\nUID +STATE +OWNER +LAST FETCHED +BY +X-NAME +X-COMPONENT +WHY\n/);
  t.match(dry.out, new RegExp(`\\n${k.fetched} +Active +vcenter +\\S+Z +vcenter +vm-fetched +Virtual Machine +not fetched 0 day\\(s\\) ago\\n`));
  t.match(dry.out, new RegExp(`\\n${k.inUse} +Active .*in the in-use list\\n`));
  t.match(dry.out, /dry run: 3 to deactivate, 0 to destroy, 0 kept \(requested since deactivation\), 0 in grace period, 1 in use, 0 skipped; nothing changed \(add --yes to apply\)\n$/);
  const dryJson = JSON.parse((await runKmipd(['key', 'retire', '--data', dataDir, '--unused-for', '0s', '--in-use', list, '--json'])).out) as { dryRun: boolean; deactivate: { uid: string }[]; actions: unknown[] };
  t.equal(dryJson.dryRun, true);
  t.same(dryJson.deactivate.map((c) => c.uid).sort(), [...staleUids].sort());
  t.same(dryJson.actions, []);
  t.same(await states(), initial, 'the dry run changed no state');
  t.equal((await audit(dataDir)).length, auditBefore.length, 'and wrote nothing to the audit trail');
  t.equal(await withState(dataDir, (s) => s.store.getMeta(RETIRE_PREFIX + k.never)), undefined, 'nor a retire record');

  // ---- retire --yes: deactivate ----
  const yes = await runKmipd(['key', 'retire', '--data', dataDir, '--unused-for', '0s', '--in-use', list, '--yes']);
  t.equal(yes.exitCode, 0, yes.err);
  t.match(yes.out, `${k.never}: Active -> Deactivated\n`);
  t.match(yes.out, `${k.pre}: PreActive -> Deactivated\n`);
  t.match(yes.out, /deactivated 3 of 3, destroyed 0 of 0\n$/);
  t.same(await states(), { ...initial, fetched: ST.Deactivated, never: ST.Deactivated, pre: ST.Deactivated }, 'the stale keys are Deactivated; in-use and recent untouched');
  const records = await audit(dataDir);
  for (const uid of staleUids) {
    t.ok(
      records.some((r) => r.kind === 'kmip' && r.operation === 'Revoke' && r.object === uid && r.result === 'Success' && r.identity === 'kmipd-cli-admin'),
      'the KMIP Revoke record',
    );
    t.ok(
      records.some((r) => r.kind === 'admin' && r.operation === 'key retire' && r.object === uid && r.result === 'Success' && /^deactivate \(CessationOfOperation\): unused for 0s: (not|never) fetched/.test(r.reason ?? '')),
      'the admin record',
    );
  }
  t.notOk(records.some((r) => r.object === k.inUse && r.kind !== 'kmip'), 'nothing about the in-use key');
  t.notOk(records.some((r) => r.object === k.inUse && r.operation === 'Revoke'));
  const shown = JSON.parse((await runKmipd(['key', 'show', '--data', dataDir, k.never, '--json'])).out) as { retired: { at: string; by: string } | null; attributes: { name: string; value: string }[] };
  t.match(shown.retired, { at: /Z$/, by: /^os:/, reason: /^unused for 0s: never fetched, created 0 day\(s\) ago$/ });
  t.match(shown.attributes.find((a) => a.name === 'Revocation Reason')?.value, /CessationOfOperation/);

  // ---- the VM of "fetched" is powered on again: vCenter fetches its key after the retirement ----
  srv = await startOpsServer({ settings, dataDir });
  vc = await KmipTestClient.connect(srv.port, await srv.creds('vcenter'));
  t.equal((await get(vc, k.fetched)).status, Enums.ResultStatus.Success, 'a Deactivated key can still be fetched');
  await vc.close();
  await srv.stop();

  // fake clock: 40 days later, with a grace of 30 days
  const in40 = new Date(Date.now() + 40 * DAY);
  const plan = await withState(dataDir, (s) => planRetire(s, { unusedForMs: 0, graceMs: 30 * DAY, inUse: new Set([k.inUse]), now: in40 }));
  t.same(plan.destroy.map((c) => c.uid).sort(), [k.never, k.pre].sort(), '40 days later: the keys nobody asked for');
  t.same(plan.requested.map((c) => c.uid), [k.fetched], 'the key fetched after its deactivation is kept');
  t.match(plan.requested[0], { requestedBy: 'vcenter', note: /requested since its deactivation \(Get by vcenter\)/ });
  t.same(plan.deactivate.map((c) => c.uid), [k.recent], 'by then the "recent" key is stale as well');
  const soon = await withState(dataDir, (s) => planRetire(s, { unusedForMs: 0, graceMs: 30 * DAY, inUse: new Set([k.inUse]) }));
  t.same(soon.destroy, [], 'today: every retired key is in its grace period');
  t.same(soon.waiting.map((c) => c.uid).sort(), [k.never, k.pre].sort());

  // the CLI with backdated retirements: "never" 40 days ago, "pre" 10 days ago
  await withState(dataDir, async (s) => {
    const backdate = async (uid: string, days: number) => {
      const row = JSON.parse((await s.store.getMeta(RETIRE_PREFIX + uid))!) as { at: string };
      await s.store.setMeta(RETIRE_PREFIX + uid, JSON.stringify({ ...row, at: new Date(Date.now() - days * DAY).toISOString() }));
    };
    await backdate(k.never, 40);
    await backdate(k.pre, 10);
    await backdate(k.fetched, 40);
  });
  const auditBefore2 = (await audit(dataDir)).length;
  const dry2 = await runKmipd(['key', 'retire', '--data', dataDir, '--unused-for', '180d', '--in-use', csv]);
  t.equal(dry2.exitCode, 0, dry2.err);
  t.match(dry2.out, /would destroy \(Deactivated for 30d or more, not requested since\):\n/);
  t.match(dry2.out, new RegExp(`\\n${k.never} +Deactivated .*Deactivated for 40 day\\(s\\), not requested since\\n`));
  t.match(dry2.out, new RegExp(`kept: requested since their deactivation:\\n[^]*\\n${k.fetched} +Deactivated `));
  t.match(dry2.out, new RegExp(`waiting: grace period of 30d not over:\\n[^]*\\n${k.pre} +Deactivated .*grace period: 20 day\\(s\\) left\\n`));
  t.match(dry2.out, /dry run: 0 to deactivate, 1 to destroy, 1 kept \(requested since deactivation\), 1 in grace period, 0 in use, 0 skipped/);
  t.equal((await audit(dataDir)).length, auditBefore2, 'the dry run wrote nothing');

  const yes2 = await runKmipd(['key', 'retire', '--data', dataDir, '--unused-for', '180d', '--in-use', csv, '--yes', '--json']);
  t.equal(yes2.exitCode, 0, yes2.err);
  const result = JSON.parse(yes2.out) as { dryRun: boolean; actions: { uid: string; action: string; ok: boolean; before: string; after: string }[] };
  t.equal(result.dryRun, false);
  t.same(result.actions, [{ uid: k.never, action: 'destroy', ok: true, before: 'Deactivated', after: 'Destroyed' }]);
  t.same(await states(), { fetched: ST.Deactivated, never: ST.Destroyed, pre: ST.Deactivated, inUse: ST.Active, recent: ST.Active }, 'only the key past its grace period, not requested since, is destroyed');
  const records2 = await audit(dataDir);
  t.ok(records2.some((r) => r.kind === 'kmip' && r.operation === 'Destroy' && r.object === k.never && r.result === 'Success'), 'the KMIP Destroy record');
  t.ok(
    records2.some((r) => r.kind === 'admin' && r.operation === 'key retire' && r.object === k.never && /^destroy: Deactivated since .*grace 30d over, not requested since$/.test(r.reason ?? '')),
    'the admin record of the destruction',
  );
  t.notOk(records2.some((r) => r.operation === 'Destroy' && r.object !== k.never), 'no other key destroyed');
  const verify = await runKmipd(['audit', 'verify', '--data', dataDir]);
  t.equal(verify.exitCode, 0, `the audit chain verifies: ${verify.out}${verify.err}`);

  // explicit UIDs replace the stale selection; the in-use list still wins
  const named = JSON.parse((await runKmipd(['key', 'retire', '--data', dataDir, '--in-use', list, '--json', k.recent, k.inUse, 'no-such-uid', k.never])).out) as {
    deactivate: { uid: string }[];
    inUse: { uid: string }[];
    skipped: { uid: string; note: string }[];
  };
  t.same(named.deactivate.map((c) => c.uid), [k.recent], 'a named key is retired however recently it was used');
  t.same(named.inUse.map((c) => c.uid), [k.inUse]);
  t.same(named.skipped.map((c) => [c.uid, c.note]), [
    ['no-such-uid', 'no such key'],
    [k.never, 'Destroyed: neither usable nor Deactivated'],
  ]);
});
