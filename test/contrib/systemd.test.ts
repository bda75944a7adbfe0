/**
 * contrib/systemd: the unit holds what a production service needs (dedicated user, state
 * directory, credentials kmipd reads, readiness, reload, umask, sandboxing) and passes
 * `systemd-analyze verify` where systemd is installed; the readiness helper waits for a real
 * kmipd's /readyz and fails when it does not come.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SECRETS } from '../../src/config/secrets.js';
import { defaultSettings, startOpsServer } from '../admin/_ops.js';
import { kmipdCommand } from '../helpers/process.js';
import { REPO_ROOT, need } from '../helpers/requirements.js';

const UNIT = join(REPO_ROOT, 'contrib', 'systemd', 'kmipd.service');
const READY = join(REPO_ROOT, 'contrib', 'systemd', 'kmipd-ready.cjs');
const text = readFileSync(UNIT, 'utf8');

/** Every active (uncommented) `Key=value` of a section. */
function directives(section: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) current = line;
    else if (current === `[${section}]` && line && !line.startsWith('#')) {
      const i = line.indexOf('=');
      out.set(line.slice(0, i), [...(out.get(line.slice(0, i)) ?? []), line.slice(i + 1)]);
    }
  }
  return out;
}

const svc = directives('Service');
const one = (k: string): string | undefined => svc.get(k)?.[0];

t.test('the unit: a dedicated user, its state directory, reload, readiness, sandboxing', async (t) => {
  t.equal(one('User'), 'kmipd');
  t.not(one('User'), 'root');
  t.equal(one('StateDirectory'), 'kmipd');
  t.equal(one('StateDirectoryMode'), '0700');
  t.equal(one('UMask'), '0077');
  t.match(one('ExecStart'), /^\/usr\/local\/bin\/kmipd serve --data \/var\/lib\/kmipd --admin-port 5697$/);
  t.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  t.equal(one('Type'), 'exec');
  t.match(one('ExecStartPost'), /^\/usr\/local\/libexec\/kmipd-ready --url https:\/\/127\.0\.0\.1:5697\/readyz --ca \/var\/lib\/kmipd\/pki\/ca\.crt/, 'readiness waits for /readyz on the admin port ExecStart opens');
  for (const [k, v] of Object.entries({
    NoNewPrivileges: 'yes',
    ProtectSystem: 'strict',
    ProtectHome: 'yes',
    PrivateTmp: 'yes',
    PrivateDevices: 'yes',
    CapabilityBoundingSet: '',
    RestrictSUIDSGID: 'yes',
    ReadWritePaths: '/var/lib/kmipd',
  })) {
    t.equal(one(k), v, `${k}=${v}`);
  }
  t.same(svc.get('SystemCallFilter'), ['@system-service', '~@privileged']);
  t.ok(!svc.has('MemoryDenyWriteExecute'), "not MemoryDenyWriteExecute (V8's JIT)");
});

t.test('ExecStartPre: config check before every start but the first', async (t) => {
  const pre = one('ExecStartPre') ?? '';
  const m = /^\/bin\/sh -c '([^']+)'$/.exec(pre);
  t.ok(m, pre);
  const script = (dir: string): string => {
    const k = kmipdCommand([]);
    const kmipd = [k.command, ...k.args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
    return m![1]!.replaceAll('/usr/local/bin/kmipd', kmipd).replaceAll('/var/lib/kmipd', dir);
  };
  const sh = (dir: string) => spawnSync('/bin/sh', ['-c', script(dir)], { encoding: 'utf8', env: kmipdCommand([]).env, timeout: 120_000 });
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-unit-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = sh(dir);
  t.equal(first.status, 0, `an empty state directory (the first start) passes: ${first.stderr}`);
  writeFileSync(join(dir, 'kmipd.json'), JSON.stringify({ format: 1, server: { prot: 5696 } }));
  const broken = sh(dir);
  t.equal(broken.status, 1, 'a broken kmipd.json stops the start');
  t.match(broken.stderr, /^kmipd config check: .*kmipd\.json: /, "the check ran and names the file");
});

t.test('LoadCredential lines name exactly the credentials kmipd reads (commented: each is optional)', async (t) => {
  const commented = [...text.matchAll(/^#LoadCredential=([^:\n]+):(\S+)$/gm)].map((m) => m[1]);
  t.same(commented.sort(), SECRETS.map((s) => s.credential).sort());
  t.notOk(svc.has('LoadCredential'), 'none is on by default: a missing source file would stop the service');
});

t.test('systemd-analyze verify', async (t) => {
  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (!need(t, { ok: !analyze.error, why: `systemd-analyze (Debian package systemd): ${analyze.error?.message ?? ''}` })) return;
  // verify checks that each command exists: point them at this checkout's files.
  const dir = mkdtempSync(join(tmpdir(), 'kmipd-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const unit = join(dir, 'kmipd.service');
  writeFileSync(unit, text.replaceAll('/usr/local/bin/kmipd', join(REPO_ROOT, 'bin', 'kmipd')).replaceAll('/usr/local/libexec/kmipd-ready', READY));
  const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr.trim(), '', 'no warning (unknown keys and bad values are warnings)');

  // The check is real: a misspelt directive is reported.
  writeFileSync(unit, readFileSync(unit, 'utf8').replace('ProtectSystem=strict', 'ProtectSytem=strict'));
  const bad = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60_000 });
  t.match(bad.stderr, /Unknown key 'ProtectSytem'/);
});

t.test('the readiness helper is executable, and waits for a real kmipd to be ready', async (t) => {
  t.ok((statSync(READY).mode & 0o111) !== 0, 'executable');
  t.match(readFileSync(READY, 'utf8'), /^#!\/usr\/bin\/env node\n/);

  const run = (args: string[]): Promise<{ code: number | null; err: string }> =>
    new Promise((resolve) => {
      const c = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, READY, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr.on('data', (b: Buffer) => (err += b.toString()));
      c.once('exit', (code) => resolve({ code, err }));
    });

  const srv = await startOpsServer({ health: { cacheMs: 0 } });
  t.teardown(() => srv.stop());
  const ca = join(srv.dataDir, 'pki', 'ca.crt');
  t.ok(existsSync(ca));
  const ok = await run(['--url', `https://127.0.0.1:${srv.adminPort}/readyz`, '--ca', ca, '--timeout', '20']);
  t.equal(ok.code, 0, ok.err);

  // Not ready: /readyz answers 503 (the server certificate has expired by this clock).
  const late = await startOpsServer({ settings: defaultSettings(), health: { cacheMs: 0, clock: () => new Date('2045-01-01T00:00:00Z') } });
  t.teardown(() => late.stop());
  const notReady = await run(['--url', `https://127.0.0.1:${late.adminPort}/readyz`, '--ca', join(late.dataDir, 'pki', 'ca.crt'), '--timeout', '1', '--interval', '200']);
  t.equal(notReady.code, 1);
  t.match(notReady.err, /kmipd-ready: kmipd not ready after 1 s: https:\/\/127\.0\.0\.1:\d+\/readyz answered 503/);

  // Nothing listening.
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  const none = await run(['--url', `https://127.0.0.1:${port}/readyz`, '--ca', ca, '--timeout', '1']);
  t.equal(none.code, 1);
  t.match(none.err, /ECONNREFUSED/);

  const usage = await run(['--bogus', 'x']);
  t.equal(usage.code, 2);
});
