/**
 * Usage tracking (last use per object, batched off the hot path) and `kmipd key stale`: keys
 * nobody fetched for a long time, with vCenter's tags, and revoking them in one go.
 */
import t from 'tap';
import { rmSync } from 'node:fs';
import { Enums } from '../../src/spec/index.js';
import { USAGE_PREFIX } from '../../src/admin/meta-keys.js';
import { UsageTracker, lastUse } from '../../src/admin/usage.js';
import { staleKeys } from '../../src/admin/retire.js';
import { openServerState } from '../../src/server/server.js';
import { silentLogger } from '../../src/server/log.js';
import type { ExecutedItem } from '../../src/server/executor.js';
import { KmipTestClient } from '../helpers/client.js';
import { runKmipd } from '../helpers/cli.js';
import { activate, addTextAttributes, createAesKey, get } from '../helpers/kmip-requests.js';
import { defaultSettings, startOpsServer } from './_ops.js';

const DAY = 86_400_000;

t.test('the tracker writes nothing per request: one meta row per object per flush', async (t) => {
  const meta = new Map<string, string>();
  let writes = 0;
  const store = {
    getMeta: (k: string) => Promise.resolve(meta.get(k)),
    setMeta: (k: string, v: string) => {
      writes++;
      meta.set(k, v);
      return Promise.resolve();
    },
  };
  let now = 1_700_000_000_000;
  const u = new UsageTracker(store, { flushSeconds: 0, log: silentLogger(), clock: () => now });
  const item = (operation: string, uid: string, result = 'Success', identity = 'vcenter'): ExecutedItem => ({ operation, uid, result, identity, seconds: 0 });
  for (let i = 0; i < 1000; i++) u.noteItems([item('Get', `k${i % 3}`)]);
  u.noteItems([item('Get', 'k9', 'OperationFailed'), item('Locate', 'k8'), item('Create', 'k7'), item('Decrypt', 'k6', 'Success', 'pykmip')]);
  t.equal(writes, 0, 'no write on the request path');
  t.equal(u.pendingCount, 6, 'four objects used, two identities seen');
  await u.flush();
  t.equal(writes, 7, 'one row per object used, one per identity, and the new identities in the index');
  t.same([...meta.keys()].sort(), ['clients.index', 'seen.pykmip', 'seen.vcenter', 'usage.k0', 'usage.k1', 'usage.k2', 'usage.k6']);
  t.same(JSON.parse(meta.get('clients.index')!), ['pykmip', 'vcenter']);
  t.match(await lastUse(store, 'k6'), { by: 'pykmip', op: 'Decrypt', at: new Date(now) });
  // another node recorded a later use meanwhile: an older one does not overwrite it
  meta.set(`${USAGE_PREFIX}k0`, JSON.stringify({ at: new Date(now + 10_000).toISOString(), by: 'other-node', op: 'Get' }));
  now += 5000;
  u.noteItems([item('Get', 'k0')]);
  await u.close();
  t.equal((await lastUse(store, 'k0'))?.by, 'other-node');
  u.noteItems([item('Get', 'k1')]);
  t.equal(u.pendingCount, 0, 'closed: nothing more is taken');
});

t.test('a failed flush is retried with the next one', async (t) => {
  let fail = true;
  const meta = new Map<string, string>();
  const store = {
    getMeta: (k: string) => Promise.resolve(meta.get(k)),
    setMeta: (k: string, v: string) => (fail ? Promise.reject(new Error('database is locked')) : Promise.resolve(void meta.set(k, v))),
  };
  let errors = 0;
  const u = new UsageTracker(store, { flushSeconds: 0, log: silentLogger(), onFlushError: () => errors++ });
  u.note('a', 'vcenter', 'Get');
  await u.flush();
  t.equal(errors, 1);
  t.equal(u.pendingCount, 1, 'kept for the next flush');
  fail = false;
  await u.flush();
  t.ok(meta.has('usage.a'));
});

t.test('key stale: last use through a real server, vCenter tags, --revoke --yes', async (t) => {
  const srv = await startOpsServer({ settings: defaultSettings((s) => (s.admin.port = undefined)), keepDir: true });
  t.teardown(async () => {
    await srv.stop();
    rmSync(srv.dataDir, { recursive: true, force: true });
  });
  const vc = await KmipTestClient.connect(srv.port, await srv.creds('vcenter'));
  const make = async (name: string): Promise<string> => {
    const uid = await createAesKey(vc);
    await activate(vc, uid);
    await addTextAttributes(vc, uid, { 'x-Name': name, 'x-Component': 'Virtual Machine', 'x-Identifier': `id-${name}` });
    return uid;
  };
  const used = await make('vm-used');
  const never = await make('vm-never');
  const recent = await make('vm-recent');
  const pre = await createAesKey(vc); // Pre-Active, never used
  await get(vc, used);
  await get(vc, recent);
  await vc.close();
  t.equal(srv.ops.usage?.pendingCount, 3, 'remembered in memory: two keys fetched, one identity seen');
  t.equal(await srv.server.state.store.getMeta(USAGE_PREFIX + used), undefined, 'not written per Get');
  await srv.ops.usage?.flush();
  t.match(await lastUse(srv.server.state.store, used), { by: 'vcenter', op: 'Get' });
  // "recent" was used again 150 days from now (as another node would record it)
  const later = new Date(Date.now() + 150 * DAY);
  await srv.server.state.store.setMeta(USAGE_PREFIX + recent, JSON.stringify({ at: later.toISOString(), by: 'vcenter', op: 'Get' }));

  const in200 = new Date(Date.now() + 200 * DAY);
  const stale = await staleKeys(srv.server.state, 180 * DAY, in200);
  t.same(stale.map((k) => k.uid).sort(), [used, never, pre].sort(), 'unused for 180 days as seen 200 days from now');
  const u = stale.find((k) => k.uid === used)!;
  t.match(u, { 'x-Name': 'vm-used', 'x-Component': 'Virtual Machine', 'x-Identifier': 'id-vm-used', lastUsedBy: 'vcenter', state: 'Active' });
  t.ok(u.idleDays >= 199 && u.idleDays <= 200);
  t.match(stale.find((k) => k.uid === never), { lastUsed: null, lastUsedBy: null });

  await srv.stop();
  const list = await runKmipd(['key', 'stale', '--data', srv.dataDir, '--unused-for', '0s', '--json']);
  t.equal(list.exitCode, 0, list.err);
  const rows = JSON.parse(list.out) as { uid: string; lastUsed: string | null; 'x-Name': string | null }[];
  t.same(rows.map((r) => r.uid).sort(), [used, never, pre].sort(), 'a last use in the future is not stale');
  const text = await runKmipd(['key', 'stale', '--data', srv.dataDir, '--unused-for', '0s']);
  t.match(text.out, /^UID +TYPE +STATE +OWNER +CREATED +LAST USED +BY +IDLE DAYS +X-NAME +X-COMPONENT +X-IDENTIFIER\n/);
  t.match(text.out, /never +- +\d+ +vm-never +Virtual Machine +id-vm-never/);
  t.match(text.out, /3 key\(s\) not used for 0s or more\n$/);

  const unconfirmed = await runKmipd(['key', 'stale', '--data', srv.dataDir, '--unused-for', '0s', '--revoke']);
  t.equal(unconfirmed.exitCode, 1);
  t.match(unconfirmed.err, /3 key\(s\) would be revoked \(reason CessationOfOperation\); add --yes to revoke them/);
  const yesAlone = await runKmipd(['key', 'stale', '--data', srv.dataDir, '--unused-for', '0s', '--yes']);
  t.equal(yesAlone.exitCode, 1);

  const revoked = await runKmipd(['key', 'stale', '--data', srv.dataDir, '--unused-for', '0s', '--revoke', '--yes']);
  t.equal(revoked.exitCode, 0, revoked.err);
  t.match(revoked.out, /revoked 3 of 3 key\(s\) not used for 0s/);
  const state = await openServerState(srv.dataDir, { log: silentLogger() });
  try {
    for (const uid of [used, never, pre]) t.equal((await state.store.get(uid))?.state, Enums.State.Deactivated, `${uid} revoked`);
    t.equal((await state.store.get(recent))?.state, Enums.State.Active, 'the recently used key is untouched');
  } finally {
    await state.close();
  }
  const again = await runKmipd(['key', 'stale', '--data', srv.dataDir, '--unused-for', '0s', '--json']);
  t.same(JSON.parse(again.out), [], 'revoked keys are no longer listed');
});
