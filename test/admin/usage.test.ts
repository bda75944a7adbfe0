/**
 * Usage tracking under load over real mutual TLS: last material fetch and last attribute read
 * per key, last seen per client identity, written by the server's own flush timer (never per
 * request); then `kmipd key list` / `key show` / `client list` showing them, and the list
 * filters --unused-for, --used-by, --owner.
 */
import t from 'tap';
import { rmSync } from 'node:fs';
import { ATTR_READ_PREFIX, CLIENTS_INDEX, SEEN_PREFIX, USAGE_PREFIX } from '../../src/admin/meta-keys.js';
import { UsageTracker, lastAttributeRead, lastSeen, lastUse, seenIdentities } from '../../src/admin/usage.js';
import type { ExecutedItem } from '../../src/server/executor.js';
import { silentLogger } from '../../src/server/log.js';
import { Enums } from '../../src/spec/index.js';
import { KmipTestClient } from '../helpers/client.js';
import { runKmipd } from '../helpers/cli.js';
import { activate, createAesKey, discover, eventually, get, stateOf } from '../helpers/kmip-requests.js';
import { defaultSettings, startOpsServer } from './_ops.js';

const DAY = 86_400_000;

function memoryStore() {
  const meta = new Map<string, string>();
  let writes = 0;
  return {
    meta,
    get writes() {
      return writes;
    },
    getMeta: (k: string) => Promise.resolve(meta.get(k)),
    setMeta: (k: string, v: string) => {
      writes++;
      meta.set(k, v);
      return Promise.resolve();
    },
  };
}

t.test('tracker: fetches, attribute reads, refused uses and identities kept apart; old rows readable', async (t) => {
  const store = memoryStore();
  let now = 1_700_000_000_000;
  const u = new UsageTracker(store, { flushSeconds: 0, log: silentLogger(), clock: () => now });
  const item = (operation: string, uid: string | undefined, identity: string, result = 'Success', reason?: string): ExecutedItem => {
    const e: ExecutedItem = { operation, result, identity, seconds: 0 };
    if (uid !== undefined) e.uid = uid;
    if (reason !== undefined) e.reason = reason;
    return e;
  };
  u.noteItems([item('Get', 'k1', 'vcenter'), item('GetAttributes', 'k1', 'vcenter')]);
  u.noteItems([item('GetAttributeList', 'k2', 'auditor')]);
  u.noteItems([item('Encrypt', 'k3', 'pykmip', 'OperationFailed', 'WrongKeyLifecycleState')]);
  u.noteItems([item('Get', 'k4', 'pykmip', 'OperationFailed', 'ItemNotFound')]); // not a key: no row
  u.noteItems([item('Locate', 'k5', 'vcenter')]); // a search match is not a read
  u.noteItems([item('-', undefined, 'scanner', 'OperationFailed', 'InvalidMessage')]); // seen all the same
  u.noteItems([item('Discover Versions', undefined, 'bad\u0000name')]); // never storable: ignored
  t.equal(store.writes, 0, 'nothing written on the request path');
  await u.flush();
  t.match(await lastUse(store, 'k1'), { by: 'vcenter', op: 'Get', at: new Date(now) });
  t.match(await lastAttributeRead(store, 'k1'), { by: 'vcenter', op: 'GetAttributes' });
  t.equal(await lastUse(store, 'k2'), undefined, 'an attribute read is not a fetch');
  t.match(await lastAttributeRead(store, 'k2'), { by: 'auditor', op: 'GetAttributeList' });
  t.match(await lastUse(store, 'k3'), { by: 'pykmip', op: 'Encrypt', refused: 'WrongKeyLifecycleState' }, 'a use refused by the key state still shows demand');
  t.notOk(store.meta.has(USAGE_PREFIX + 'k4'));
  t.notOk(store.meta.has(ATTR_READ_PREFIX + 'k5'));
  t.same((await seenIdentities(store)).sort(), ['auditor', 'pykmip', 'scanner', 'vcenter']);
  t.match(await lastSeen(store, 'scanner'), { op: '-', at: new Date(now) });
  // a row written by an older kmipd ({at, by, op}) reads the same
  store.meta.set(USAGE_PREFIX + 'old', JSON.stringify({ at: '2025-01-02T03:04:05.000Z', by: 'vcenter', op: 'Get' }));
  t.same(await lastUse(store, 'old'), { at: new Date('2025-01-02T03:04:05.000Z'), by: 'vcenter', op: 'Get' });
  // the index is only written for identities it does not hold yet
  const before = store.writes;
  now += 1000;
  u.noteItems([item('Get', 'k1', 'vcenter')]);
  await u.flush();
  t.equal(store.writes - before, 2, 'one usage row and one seen row; the index already holds vcenter');
  await u.close();
});

t.test('usage under concurrent load over mTLS: every request answered, rows flushed by the timer', async (t) => {
  const srv = await startOpsServer({ settings: defaultSettings((s) => ((s.admin.port = undefined), (s.usage.flushSeconds = 1))), keepDir: true });
  t.teardown(async () => {
    await srv.stop();
    rmSync(srv.dataDir, { recursive: true, force: true });
  });
  const owner = await KmipTestClient.connect(srv.port, await srv.creds('vcenter-a'));
  const keys: string[] = [];
  for (let i = 0; i < 20; i++) {
    const uid = await createAesKey(owner);
    await activate(owner, uid);
    keys.push(uid);
  }
  await owner.close();
  const fetched = keys.slice(0, 10); // Get by vcenter-a only
  const read = keys.slice(10, 15); // Get Attributes only (other connections of the owner: only it may read them)
  const untouched = keys.slice(15);

  // 9 connections, 2 identities, 40 requests each, all in flight at once
  const clients: { c: KmipTestClient; job: (i: number) => Promise<boolean> }[] = [];
  for (let n = 0; n < 3; n++) {
    const a = await KmipTestClient.connect(srv.port, await srv.creds('vcenter-a'));
    clients.push({ c: a, job: async (i) => (await get(a, fetched[(i + n) % fetched.length]!)).status === Enums.ResultStatus.Success });
    const b = await KmipTestClient.connect(srv.port, await srv.creds('vcenter-a'));
    clients.push({ c: b, job: async (i) => (await stateOf(b, read[(i + n) % read.length]!)) === Enums.State.Active });
    const p = await KmipTestClient.connect(srv.port, await srv.creds('pykmip'));
    clients.push({ c: p, job: async () => (await discover(p)).status === Enums.ResultStatus.Success });
  }
  const PER = 40;
  const answers = await Promise.all(clients.flatMap(({ job }) => Array.from({ length: PER }, (_, i) => job(i))));
  t.equal(answers.length, clients.length * PER);
  t.equal(answers.filter(Boolean).length, clients.length * PER, 'every request answered with success');
  for (const { c } of clients) await c.close();

  const store = srv.server.state.store;
  t.ok(
    await eventually(async () => {
      for (const uid of fetched) if ((await lastUse(store, uid))?.by !== 'vcenter-a') return false;
      for (const uid of read) if ((await lastAttributeRead(store, uid))?.by !== 'vcenter-a') return false;
      return (await lastSeen(store, 'pykmip')) !== undefined;
    }),
    'the flush timer wrote the rows',
  );
  for (const uid of fetched) {
    t.match(await lastUse(store, uid), { by: 'vcenter-a', op: 'Get' });
    t.equal(await store.getMeta(ATTR_READ_PREFIX + uid), undefined, 'no attribute read of a fetched-only key');
  }
  for (const uid of read) {
    t.match(await lastAttributeRead(store, uid), { by: 'vcenter-a', op: 'GetAttributes' });
    t.equal(await store.getMeta(USAGE_PREFIX + uid), undefined, 'reading attributes is not a fetch');
  }
  for (const uid of untouched) {
    t.equal(await store.getMeta(USAGE_PREFIX + uid), undefined);
    t.equal(await store.getMeta(ATTR_READ_PREFIX + uid), undefined);
  }
  t.same(JSON.parse((await store.getMeta(CLIENTS_INDEX))!), ['pykmip', 'vcenter-a'], 'each identity once in the index');
  t.match(await lastSeen(store, 'pykmip'), { op: 'DiscoverVersions' });
  t.match(await lastSeen(store, 'vcenter-a'), { op: /^(Get|GetAttributes)$/ });
  t.equal(srv.ops.usage?.droppedCount, 0);

  // one key last fetched 200 days ago (as an older row would say)
  const old = untouched[0]!;
  await store.setMeta(USAGE_PREFIX + old, JSON.stringify({ at: new Date(Date.now() - 200 * DAY).toISOString(), by: 'vcenter-old', op: 'Get' }));
  await srv.stop();
  const d = srv.dataDir;

  const list = async (...args: string[]) => {
    const r = await runKmipd(['key', 'list', '--data', d, '--json', ...args]);
    t.equal(r.exitCode, 0, r.err);
    return JSON.parse(r.out) as { uid: string; lastFetched: string | null; lastFetchedBy: string | null; lastFetchOp: string | null; lastAttributesRead: string | null; lastAttributesReadBy: string | null }[];
  };
  const all = await list();
  t.equal(all.length, 20);
  t.match(all.find((r) => r.uid === fetched[0]), { lastFetchedBy: 'vcenter-a', lastFetchOp: 'Get', lastFetched: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, lastAttributesRead: null });
  t.match(all.find((r) => r.uid === read[0]), { lastFetched: null, lastFetchedBy: null, lastAttributesReadBy: 'vcenter-a' });
  t.same((await list('--used-by', 'vcenter-a')).map((r) => r.uid), fetched, '--used-by');
  t.same((await list('--used-by', 'vcenter-*')).map((r) => r.uid), [...fetched, old], '--used-by with *');
  t.same((await list('--unused-for', '100d')).map((r) => r.uid), [old], '--unused-for: only the key last fetched 200 days ago');
  t.same((await list('--unused-for', '0s')).length, 20, '--unused-for 0s: every key (never fetched counts from creation)');
  t.same((await list('--owner', 'pykmip')).length, 0, '--owner');
  t.same((await list('--owner', 'vcenter-a')).length, 20);
  const bad = await runKmipd(['key', 'list', '--data', d, '--unused-for', 'half a year']);
  t.not(bad.exitCode, 0);
  t.match(bad.err, /not a duration/);

  const text = await runKmipd(['key', 'list', '--data', d, '--used-by', 'vcenter-a']);
  t.match(text.out, new RegExp(`\\n${fetched[0]} +SymmetricKey +Active +vcenter-a +\\S+ +\\d{4}-\\S+Z +vcenter-a +never +- +- +-\\n`));

  const show = await runKmipd(['key', 'show', '--data', d, fetched[0]!]);
  t.equal(show.exitCode, 0, show.err);
  t.match(show.out, /\nfetched: +\d{4}-\S+Z by vcenter-a \(Get\)\n/);
  t.match(show.out, /\nattrs read: never \(since usage tracking\)\n/);
  t.match(show.out, /\nowner seen: \d{4}-\S+Z\n/);
  const showJson = JSON.parse((await runKmipd(['key', 'show', '--data', d, read[0]!, '--json'])).out) as Record<string, unknown>;
  t.match(showJson, { lastFetched: null, lastAttributesRead: { by: 'vcenter-a', op: 'GetAttributes' }, ownerLastSeen: /Z$/, retired: null });

  const clientsOut = await runKmipd(['client', 'list', '--data', d, '--json']);
  t.equal(clientsOut.exitCode, 0, clientsOut.err);
  const rows = JSON.parse(clientsOut.out) as { identity: string; lastSeen: string | null; lastOperation: string | null; keys: number }[];
  t.same(rows.map((r) => r.identity).sort(), ['pykmip', 'vcenter-a']);
  t.match(rows.find((r) => r.identity === 'vcenter-a'), { keys: 20, lastSeen: /Z$/, lastOperation: /^(Get|GetAttributes)$/ });
  t.match(rows.find((r) => r.identity === 'pykmip'), { keys: 0, lastOperation: 'DiscoverVersions' });
  const clientsText = await runKmipd(['client', 'list', '--data', d]);
  t.match(clientsText.out, /^IDENTITY +LAST SEEN +LAST OPERATION +KEYS\n/);
  t.match(clientsText.out, /\nvcenter-a +\d{4}-\S+Z +Get(Attributes)? +20\n/);
  t.match(clientsText.out, /\n2 identities\n$/);
});
