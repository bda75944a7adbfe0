/**
 * store.poolSize: the PostgreSQL connection pool of a node, a setting like the others (flag >
 * KMIPD_STORE_POOL_SIZE > kmipd.json "server.store.poolSize" > 10), and the pool really holds
 * at most that many connections.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, resolveSettings } from '../../src/config/index.js';
import type { KeyStore } from '../../src/keystore/types.js';
import { openKeyStore } from '../../src/server/store.js';
import { startPgCluster } from '../helpers/pg.js';
import { need, postgres } from '../helpers/requirements.js';

t.test('store.poolSize resolves like every setting', async (t) => {
  t.equal(resolveSettings({}).settings.store.poolSize, 10, 'default unchanged: 10');
  const r = resolveSettings({ file: { store: { poolSize: 20 } }, env: { KMIPD_STORE_POOL_SIZE: '30' }, flags: { storePoolSize: '40' } });
  t.equal(r.settings.store.poolSize, 40);
  t.equal(r.sources['store.poolSize'], 'flag');
  t.equal(resolveSettings({ file: { store: { poolSize: 20 } }, env: { KMIPD_STORE_POOL_SIZE: '30' } }).settings.store.poolSize, 30);
  t.equal(resolveSettings({ file: { store: { poolSize: 20 } } }).settings.store.poolSize, 20);
  const bad = (input: Parameters<typeof resolveSettings>[0]): string[] => {
    try {
      resolveSettings(input);
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
    return [];
  };
  t.match(bad({ env: { KMIPD_STORE_POOL_SIZE: '0' } }), [/KMIPD_STORE_POOL_SIZE: must be an integer from 1 to 1000/]);
  t.match(bad({ file: { store: { poolSize: '5' } } }), [/server\.store\.poolSize: .*JSON number/]);
  t.match(bad({ file: { store: { size: 5 } } }), [/server\.store\.size: unknown setting \(known here: poolSize\)/]);
});

t.test('a PostgreSQL keystore opens at most poolSize connections', async (t) => {
  const req = postgres();
  if (!need(t, req)) return;
  const pg = await startPgCluster(req.bindir);
  t.teardown(() => pg.destroy());
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-pool-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  process.env.PGPASSWORD = pg.password;
  t.teardown(() => {
    delete process.env.PGPASSWORD;
  });

  /** Busy connections while `n` concurrent holders each keep one (distinct advisory locks). */
  const peak = async (poolSize: number | undefined, n: number): Promise<number> => {
    const url = await pg.createDatabase();
    const db = new URL(url).pathname.slice(1);
    const store: KeyStore = await openKeyStore(dir, { kind: 'postgres', url }, undefined, poolSize === undefined ? {} : { poolSize });
    const lockable = store as KeyStore & { withClusterLock<R>(purpose: string, fn: () => Promise<R>): Promise<R> };
    let most = 0;
    let stop = false;
    const sampler = (async () => {
      while (!stop) {
        const rows = await pg.query<{ n: string }>('postgres', 'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1', [db]);
        most = Math.max(most, Number(rows[0]!.n));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await Promise.all(Array.from({ length: n }, (_, i) => lockable.withClusterLock(`pool-test-${i}`, () => new Promise((r) => setTimeout(r, 400)))));
    } finally {
      stop = true;
      await sampler;
      await store.close();
    }
    return most;
  };
  const small = await peak(2, 6);
  t.ok(small >= 1 && small <= 2, `poolSize 2: at most 2 connections (saw ${small})`);
  const large = await peak(6, 6);
  t.ok(large >= 4 && large <= 6, `poolSize 6: up to 6 connections at once (saw ${large})`);
  const def = await peak(undefined, 12);
  t.ok(def > 6 && def <= 10, `default: at most 10 connections (saw ${def})`);
});
