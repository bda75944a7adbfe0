/**
 * The per-address connection limit as a setting: its default, its three sources (flag
 * --max-connections-per-address, KMIPD_MAX_CONNECTIONS_PER_ADDRESS, kmipd.json
 * server.limits.maxConnectionsPerAddress), bad values, and that `kmipd serve` applies it.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { ConfigError, addSettingFlags, resolveSettings, typedFlags } from '../../src/config/index.js';
import { issueClientCert, loadCa } from '../../src/pki/index.js';
import { KmipTestClient } from '../helpers/client.js';
import { discover } from '../helpers/kmip-requests.js';
import { spawnKmipd } from '../helpers/process.js';
import { Enums } from '../../src/spec/index.js';

t.test('default 256 of 1024; flag > environment > file', async (t) => {
  const d = resolveSettings({});
  t.equal(d.settings.limits.maxConnectionsPerAddress, 256);
  t.equal(d.settings.limits.maxConnections, 1024);
  t.equal(d.sources['limits.maxConnectionsPerAddress'], 'default');

  const file = { limits: { maxConnectionsPerAddress: 100 } };
  t.equal(resolveSettings({ file }).settings.limits.maxConnectionsPerAddress, 100);
  const env = { KMIPD_MAX_CONNECTIONS_PER_ADDRESS: '50' };
  t.equal(resolveSettings({ file, env }).settings.limits.maxConnectionsPerAddress, 50);
  const cmd = new Command('serve').exitOverride();
  addSettingFlags(cmd);
  cmd.parse(['--max-connections-per-address', '20'], { from: 'user' });
  const r = resolveSettings({ file, env, flags: typedFlags(cmd) });
  t.equal(r.settings.limits.maxConnectionsPerAddress, 20);
  t.equal(r.sources['limits.maxConnectionsPerAddress'], 'flag');
});

t.test('bad values name their source', async (t) => {
  const problems = (f: () => unknown): string[] => {
    try {
      f();
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
    return [];
  };
  t.same(problems(() => resolveSettings({ env: { KMIPD_MAX_CONNECTIONS_PER_ADDRESS: '0' } })), [
    'KMIPD_MAX_CONNECTIONS_PER_ADDRESS: must be an integer from 1 to 1000000, not "0"',
  ]);
  t.same(problems(() => resolveSettings({ file: { limits: { maxConnectionsPerAddress: 'many' } } })), [
    'kmipd.json: server.limits.maxConnectionsPerAddress: must be an integer from 1 to 1000000 (a JSON number), not "many"',
  ]);
});

t.test('kmipd serve --max-connections-per-address applies it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-peraddr-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = await spawnKmipd(['serve', '--data', dir, '--host', '127.0.0.1', '--port', '0', '--max-connections-per-address', '2']);
  t.teardown(() => {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
  });
  const issued = await issueClientCert(loadCa(dir), { commonName: 'vcenter', keyType: 'ec' });
  const creds = { ca: readFileSync(join(dir, 'pki', 'ca.crt'), 'utf8'), cert: issued.certPem, key: issued.keyPem };
  const open = [await KmipTestClient.connect(p.port, creds), await KmipTestClient.connect(p.port, creds)];
  await t.rejects(KmipTestClient.connect(p.port, creds), 'the third connection from 127.0.0.1 is closed');
  const other: import('node:tls').ConnectionOptions & { localAddress: string } = { localAddress: '127.0.0.2' };
  const c = await KmipTestClient.connect(p.port, creds, other);
  t.equal((await discover(c)).status, Enums.ResultStatus.Success, 'another address is served');
  for (const s of [...open, c]) await s.close();
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
  t.ok(p.output.some((l) => l.includes('"msg":"connection refused: too many connections from this address"') && l.includes('"addr":"127.0.0.1"')));
});
