/**
 * Configuration: one precedence (flag > KMIPD_* environment > kmipd.json "server" > default),
 * errors naming the key path / variable / flag, unknown keys, secrets only from variables, files
 * and systemd credentials, and `kmipd config check|show`.
 */
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import {
  ConfigError,
  SETTINGS,
  addSettingFlags,
  checkConfig,
  exportSecrets,
  formatDuration,
  loadServerConfig,
  locateSecret,
  parseDuration,
  redactManifest,
  resolveSettings,
  SECRETS,
  typedFlags,
  unknownManifestKeys,
} from '../../src/config/index.js';
import { defaultManifest } from '../../src/server/datadir.js';
import { runKmipd } from '../helpers/cli.js';

function problems(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

function dataDir(t: { teardown(fn: () => void): void }, extra: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'kmipd.json'), JSON.stringify({ ...defaultManifest('test'), ...extra }, null, 2), { mode: 0o600 });
  return dir;
}

t.test('defaults when nothing is set', async (t) => {
  const { settings, sources } = resolveSettings({});
  t.equal(settings.host, '0.0.0.0');
  t.equal(settings.port, 5696);
  t.equal(settings.logLevel, 'info');
  t.equal(settings.admin.port, 5697, 'the admin listener on 127.0.0.1:5697 unless switched off');
  t.equal(settings.admin.host, '127.0.0.1');
  t.equal(settings.admin.host, '127.0.0.1');
  t.same(settings.admin.clients, ['kmipd-admin']);
  t.equal(settings.usage.flushSeconds, 60);
  t.equal(settings.limits.maxInFlight, 256);
  t.ok(Object.values(sources).every((s) => s === 'default'));
});

t.test('precedence: flag > environment > file > default, per setting', async (t) => {
  const file = { port: 7001, logLevel: 'warn', admin: { port: 7101, host: '127.0.0.2' }, limits: { maxConnections: 10 } };
  const env = { KMIPD_PORT: '7002', KMIPD_ADMIN_PORT: '7102', KMIPD_LOG_LEVEL: '' };
  const flags = { port: 7003 };
  const r = resolveSettings({ file, env, flags });
  t.equal(r.settings.port, 7003);
  t.equal(r.sources.port, 'flag');
  t.equal(r.settings.admin.port, 7102);
  t.equal(r.sources['admin.port'], 'env');
  t.equal(r.settings.logLevel, 'warn', 'an empty variable counts as unset');
  t.equal(r.sources.logLevel, 'file');
  t.equal(r.settings.admin.host, '127.0.0.2');
  t.equal(r.settings.limits.maxConnections, 10);
  t.equal(r.settings.host, '0.0.0.0');
  t.equal(r.sources.host, 'default');
  const off = resolveSettings({ file: { admin: { port: 5697 } }, env: { KMIPD_ADMIN_PORT: 'off' } });
  t.equal(off.settings.admin.port, undefined, '"off" in the environment switches a file setting off');
  const list = resolveSettings({ env: { KMIPD_ADMIN_CLIENTS: 'ops-a, ops-b' }, flags: { adminClient: ['ops-c'] } });
  t.same(list.settings.admin.clients, ['ops-c']);
  t.same(resolveSettings({ env: { KMIPD_ADMIN_CLIENTS: 'ops-a, ops-b' } }).settings.admin.clients, ['ops-a', 'ops-b']);
});

t.test('upstreams: no identity may send Put / Notify unless named (file, KMIPD_UPSTREAMS, --upstream)', async (t) => {
  t.same(resolveSettings({}).settings.upstreams, [], 'none by default');
  t.same(resolveSettings({ file: { upstreams: ['kms-a'] } }).settings.upstreams, ['kms-a']);
  t.same(resolveSettings({ file: { upstreams: ['kms-a'] }, env: { KMIPD_UPSTREAMS: 'kms-b, kms-c' } }).settings.upstreams, ['kms-b', 'kms-c']);
  t.same(resolveSettings({ env: { KMIPD_UPSTREAMS: 'kms-b' }, flags: { upstream: ['kms-d'] } }).settings.upstreams, ['kms-d']);
  const p = problems(() => resolveSettings({ file: { upstreams: 'kms-a' } }));
  t.ok(p.some((x) => /^kmipd\.json: server\.upstreams: must be a list of certificate common names \(a JSON array of strings\)/.test(x)), p.join('; '));
  const cmd = addSettingFlags(new Command()).exitOverride();
  cmd.parse(['--upstream', 'kms-a', '--upstream', 'kms-b'], { from: 'user' });
  t.same(typedFlags(cmd), { upstream: ['kms-a', 'kms-b'] });
});

t.test('errors name the key path, the variable or the flag; every problem is reported', async (t) => {
  const p = problems(() =>
    resolveSettings({
      file: { admin: { prot: 5697, port: 'x' }, limits: { maxInFlight: 0 }, colour: 'blue', port: '5696', usage: 3 },
      env: { KMIPD_LOG_LEVEL: 'loud', KMIPD_HOST: 'bad host name!' },
      flags: { adminPort: '70000' },
    }),
  );
  const has = (re: RegExp) => t.ok(p.some((x) => re.test(x)), `a problem matching ${re}`);
  has(/^kmipd\.json: server\.admin\.prot: unknown setting \(known here: host, port, clients\)$/);
  has(/^kmipd\.json: server\.admin\.port: must be a port number from 0 to 65535, or "off", not "x"$/);
  has(/^kmipd\.json: server\.limits\.maxInFlight: must be an integer from 1 to 100000, not 0$/);
  has(/^kmipd\.json: server\.colour: unknown setting/);
  has(/^kmipd\.json: server\.port: must be an integer from 0 to 65535 \(a JSON number\)/);
  has(/^kmipd\.json: server\.usage: must be an object/);
  has(/^KMIPD_LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal, not "loud"$/);
  has(/^KMIPD_HOST: "bad host name!" is neither an IP address nor a host name$/);
  has(/^--admin-port: must be a port number/);
  t.equal(p.length, 9, 'all of them at once');
  t.match(problems(() => resolveSettings({ file: [1, 2] }))[0], /server: must be an object of settings/);
  t.match(new ConfigError(p).message, /^9 configuration problems:\n {2}kmipd\.json/);
});

t.test('a bad value in a lower source is an error even when a higher one overrides it', async (t) => {
  const p = problems(() => resolveSettings({ file: { port: 'abc' }, flags: { port: 5000 } }));
  t.same(p, ['kmipd.json: server.port: must be an integer from 0 to 65535 (a JSON number), not "abc"']);
});

t.test('only flags typed on the command line count; defaults of the serve flags do not', async (t) => {
  const cmd = new Command('serve').exitOverride();
  cmd.option('--port <n>', 'port', (v) => Number(v), 5696).option('--host <addr>', 'host', '0.0.0.0');
  addSettingFlags(cmd);
  cmd.parse(['--port', '7000', '--admin-port', '0', '--admin-client', 'a', '--admin-client', 'b'], { from: 'user' });
  t.same(typedFlags(cmd), { port: 7000, adminPort: '0', adminClient: ['a', 'b'] });
  const r = resolveSettings({ flags: typedFlags(cmd), env: { KMIPD_HOST: '10.0.0.1' } });
  t.equal(r.settings.host, '10.0.0.1', 'the default of --host does not hide KMIPD_HOST');
  t.equal(r.settings.admin.port, 0);
});

t.test('no secret is ever a flag', async (t) => {
  for (const s of SETTINGS) {
    if (/pin|password|passphrase|secret/i.test(s.path)) t.equal(s.flag, undefined, `${s.path} has no flag`);
  }
  const serve = (await import('../../src/cli/main.js')).buildProgram().commands.find((c) => c.name() === 'serve');
  const flags = serve?.options.map((o) => o.long ?? '') ?? [];
  t.ok(flags.includes('--admin-port'));
  t.notOk(flags.some((f) => /pin$|password|passphrase/.test(f)), `serve flags: ${flags.join(' ')}`);
});

t.test('secrets: variable > *_FILE variable > systemd credential > file named in kmipd.json', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-secrets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const creds = join(dir, 'creds');
  mkdirSync(creds);
  writeFileSync(join(creds, 'kmipd-pkcs11-pin'), '1234\n', { mode: 0o400 });
  writeFileSync(join(dir, 'pin.file'), '5678\n', { mode: 0o600 });
  writeFileSync(join(dir, 'pin.manifest'), '9999\n', { mode: 0o600 });
  const m = { master: { kind: 'pkcs11', module: '/x.so', token: 't', keyLabel: 'k', pinFile: 'pin.manifest' } };
  const pin = SECRETS.find((s) => s.id === 'pkcs11Pin')!;
  t.match(locateSecret(pin, dir, m, {}), { source: 'file', where: join(dir, 'pin.manifest'), needed: true });
  t.match(locateSecret(pin, dir, m, { CREDENTIALS_DIRECTORY: creds }), { source: 'credential', where: join(creds, 'kmipd-pkcs11-pin') });
  t.match(locateSecret(pin, dir, m, { CREDENTIALS_DIRECTORY: creds, KMIPD_PKCS11_PIN_FILE: join(dir, 'pin.file') }), { source: 'env-file' });
  t.match(locateSecret(pin, dir, m, { CREDENTIALS_DIRECTORY: creds, KMIPD_PKCS11_PIN: '0000' }), { source: 'env', where: 'KMIPD_PKCS11_PIN' });

  const env: NodeJS.ProcessEnv = { CREDENTIALS_DIRECTORY: creds };
  const done = exportSecrets(dir, m, env);
  t.equal(env.KMIPD_PKCS11_PIN, '1234', 'the credential reaches the variable the server reads');
  t.same(done, [`HSM PIN from ${join(creds, 'kmipd-pkcs11-pin')}`], 'what is logged names the source, never the value');
  const env2: NodeJS.ProcessEnv = { KMIPD_DB_PASSWORD_FILE: join(dir, 'nope') };
  t.throws(() => exportSecrets(dir, m, env2), /cannot read the database password from .*nope \(KMIPD_DB_PASSWORD_FILE\)/);
  const env3: NodeJS.ProcessEnv = { KMIPD_BUNDLE_PASSPHRASE_FILE: join(dir, 'pin.file') };
  exportSecrets(dir, m, env3);
  t.equal(env3.KMIPD_BUNDLE_PASSPHRASE, '5678');
});

t.test('unknown keys elsewhere in kmipd.json are named by their path', async (t) => {
  const m = { ...defaultManifest('x'), policy: { groups: [], admins: [], adminsMayReadKeyMaterial: false, adminz: [] }, colour: 1 } as Record<string, unknown>;
  (m.master as Record<string, unknown>).fiel = 'x';
  m.masterHistory = [{ kind: 'software', file: 'a', retiredAt: 'x', extra: 1 }];
  t.same(unknownManifestKeys(m).map((s) => s.replace(/ \(known.*$/, '')), [
    'colour: unknown key',
    'master.fiel: unknown key',
    'masterHistory[0].extra: unknown key',
    'policy.adminz: unknown key',
  ]);
});

t.test('redaction: secret-named values and URL passwords', async (t) => {
  const r = redactManifest({ keystore: { kind: 'postgres', url: 'postgres://kmipd:hunter2@db:5432/kmipd', passwordFile: 'pg.pw' }, auth: { password: 'x' } });
  const text = JSON.stringify(r);
  t.notOk(text.includes('hunter2'));
  t.match(text, /postgres:\/\/kmipd:redacted@db:5432\/kmipd/);
  t.match(text, /"password":"\[redacted\]"/);
  t.match(text, /"passwordFile":"pg.pw"/, 'a file name is where the secret is, not the secret');
});

t.test('durations', async (t) => {
  t.equal(parseDuration('180d'), 180 * 86_400_000);
  t.equal(parseDuration('12h'), 12 * 3_600_000);
  t.equal(parseDuration('2w'), 14 * 86_400_000);
  t.equal(formatDuration(parseDuration('30d')), '30d');
  t.throws(() => parseDuration('180'), /write a number and a unit/);
  t.throws(() => parseDuration('soon'));
});

t.test('loadServerConfig reads the "server" section of kmipd.json', async (t) => {
  const dir = dataDir(t, { server: { port: 6000, admin: { port: 6001 } } });
  const c = loadServerConfig(dir, { env: { KMIPD_PORTT: '1' }, flags: {} });
  t.equal(c.settings.port, 6000);
  t.equal(c.settings.admin.port, 6001);
  t.same(c.warnings, ['KMIPD_PORTT: not a kmipd setting (ignored)']);
  const bad = dataDir(t, { server: { admin: { prot: 1 } } });
  t.throws(() => loadServerConfig(bad, { env: {} }), { name: 'ConfigError', message: /server\.admin\.prot: unknown setting/ });
  t.equal(loadServerConfig(join(dir, 'none'), { env: {} }).settings.port, 5696, 'no kmipd.json yet (first run): defaults');
});

t.test('kmipd config check / show', async (t) => {
  const pwFile = 'auth.password';
  const dir = dataDir(t, { server: { port: 6000, logLevel: 'debug' }, auth: { username: 'vc', passwordFile: pwFile } });
  writeFileSync(join(dir, pwFile), 's3cret-value\n', { mode: 0o600 });
  const ok = await runKmipd(['config', 'check', '--data', dir]);
  t.equal(ok.exitCode, 0, ok.err);
  t.match(ok.out, /the configuration is valid/);

  const show = await runKmipd(['config', 'show', '--data', dir]);
  t.equal(show.exitCode, 0);
  t.match(show.out, /precedence: flag > KMIPD_\* environment > kmipd\.json "server" > default/);
  t.match(show.out, /\n {2}port +6000 +kmipd\.json +\(KMIPD_PORT, --port\)/);
  t.match(show.out, /\n {2}logLevel +debug +kmipd\.json/);
  t.match(show.out, /\n {2}admin\.port +5697 +default/);
  t.match(show.out, /HSM PIN: not set \(not needed by this data directory\)/);
  t.notOk(show.out.includes('s3cret-value'));
  const json = await runKmipd(['config', 'show', '--data', dir, '--json']);
  const j = JSON.parse(json.out) as { settings: { port: number }; sources: Record<string, string> };
  t.equal(j.settings.port, 6000);
  t.equal(j.sources.port, 'file');

  const bad = dataDir(t, { server: { admin: { prot: 5697 } }, policy: { groups: [], admins: [], adminsMayReadKeyMaterial: false, adminz: 1 } });
  const r = await runKmipd(['config', 'check', '--data', bad]);
  t.equal(r.exitCode, 1);
  t.match(r.err, /kmipd config check: kmipd\.json: server\.admin\.prot: unknown setting/);
  t.match(r.err, /kmipd config check: kmipd\.json: policy\.adminz: unknown key/);

  const hsm = dataDir(t, { master: { kind: 'pkcs11', module: '/x.so', token: 't', keyLabel: 'k' } });
  const h = await runKmipd(['config', 'check', '--data', hsm]);
  t.equal(h.exitCode, 1);
  t.match(h.err, /the HSM PIN is not set: put it in KMIPD_PKCS11_PIN, in a file named by KMIPD_PKCS11_PIN_FILE, in the systemd credential kmipd-pkcs11-pin/);

  chmodSync(join(dir, pwFile), 0o644);
  const loose = checkConfig(dir, {});
  t.same(loose.errors, []);
  t.match(loose.warnings.join('\n'), /auth\.passwordFile .* is readable by others; chmod 600/);

  const none = await runKmipd(['config', 'check', '--data', join(dir, 'missing')]);
  t.equal(none.exitCode, 1);
  t.match(none.err, /no kmipd\.json in .*missing: not a kmipd data directory/);
  t.ok(readFileSync(join(dir, 'kmipd.json'), 'utf8').includes('"server"'), 'check and show write nothing');
});

t.test('every command takes secrets from *_FILE variables, and refuses an unreadable one', async (t) => {
  const dir = dataDir(t);
  writeFileSync(join(dir, 'pin'), '4321\n', { mode: 0o600 });
  const saved = { file: process.env.KMIPD_PKCS11_PIN_FILE, pin: process.env.KMIPD_PKCS11_PIN };
  t.teardown(() => {
    for (const [k, v] of [['KMIPD_PKCS11_PIN_FILE', saved.file], ['KMIPD_PKCS11_PIN', saved.pin]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  delete process.env.KMIPD_PKCS11_PIN;
  process.env.KMIPD_PKCS11_PIN_FILE = join(dir, 'missing');
  const r = await runKmipd(['cert', 'list', '--data', dir]);
  t.equal(r.exitCode, 1);
  t.match(r.err, /kmipd: cannot read the HSM PIN from .*missing \(KMIPD_PKCS11_PIN_FILE\)/);
  const check = await runKmipd(['config', 'check', '--data', dir]);
  t.match(check.err, /the HSM PIN file .*missing cannot be read/, 'config check reports it as a problem of its own');
  process.env.KMIPD_PKCS11_PIN_FILE = join(dir, 'pin');
  const show = await runKmipd(['config', 'show', '--data', dir]);
  t.match(show.out, /HSM PIN: from the file .*pin \(named by an environment variable\) \(not needed by this data directory\)/);
  t.equal(process.env.KMIPD_PKCS11_PIN, undefined, 'config commands read no secret');
  const other = await runKmipd(['cert', 'list', '--data', dir]);
  t.notMatch(other.err, /PIN/);
  t.equal(process.env.KMIPD_PKCS11_PIN, '4321', 'other commands see the PIN where they read it');
});

t.test('every setting that names a flag is an option of the real `kmipd serve`', async (t) => {
  const { registerCommands } = await import('../../src/cli/commands.js');
  const program = new Command('kmipd');
  registerCommands(program);
  const serve = program.commands.find((c) => c.name() === 'serve');
  t.ok(serve, 'kmipd serve exists');
  const flags = new Set(serve?.options.map((o) => o.long));
  for (const s of SETTINGS) if (s.flag) t.ok(flags.has(s.flag), `${s.path}: ${s.flag}`);
});
