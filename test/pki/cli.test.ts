/**
 * `kmipd cert issue`: in-process through commander, and once end to end through `node bin/kmipd`
 * (after building dist/ when it is missing or older than the sources).
 */
import t from 'tap';
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { register } from '../../src/cli/cert.js';
import { certInfo, clientIdentityAllowed, ensureServerPki } from '../../src/pki/index.js';
import { REPO_ROOT, need, newestTs } from '../helpers/requirements.js';
import { mode, openssl, ossl, tempDir } from './fixtures/helpers.js';

async function runCli(args: string[]): Promise<{ out: string; err: string; exitCode: number }> {
  let out = '';
  let err = '';
  const program = new Command('kmipd')
    .exitOverride()
    .configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  register(program);
  try {
    await program.parseAsync(['node', 'kmipd', ...args]);
    return { out, err, exitCode: 0 };
  } catch (e) {
    if (e instanceof CommanderError) return { out, err, exitCode: e.exitCode };
    throw e;
  }
}

t.test('cert issue writes NAME.crt, NAME.key (0600) and ca.crt', async (t) => {
  const root = tempDir(t);
  const data = join(root, 'data');
  const pki = await ensureServerPki(data, {});
  const outDir = join(root, 'out', 'nested');

  const r = await runCli(['cert', 'issue', '--data', data, '--cn', 'vcenter', '--out', outDir]);
  t.equal(r.exitCode, 0, r.err);
  t.same(readdirSync(outDir).sort(), ['ca.crt', 'vcenter.crt', 'vcenter.key']);
  t.equal(mode(join(outDir, 'vcenter.key')), 0o600, 'key 0600');
  t.equal(mode(outDir), 0o700, 'a new out folder is 0700');
  t.equal(readFileSync(join(outDir, 'ca.crt'), 'utf8'), pki.caCertPem);
  const certPem = readFileSync(join(outDir, 'vcenter.crt'), 'utf8');
  const keyPem = readFileSync(join(outDir, 'vcenter.key'), 'utf8');
  t.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');
  const info = certInfo(certPem);
  t.equal(info.subject, 'CN=vcenter');
  t.equal(info.keyDescription, 'RSA 2048');
  t.same(info.ekus, ['clientAuth']);
  t.same(clientIdentityAllowed(new X509Certificate(certPem)), { ok: true, cn: 'vcenter' });
  t.match(r.out, new RegExp(`certificate: +${resolve(outDir, 'vcenter.crt')}`));
  t.match(r.out, new RegExp(`private key: +${resolve(outDir, 'vcenter.key')} \\(PKCS#8, mode 0600\\)`));
  t.match(r.out, new RegExp(`CA certificate: ${resolve(outDir, 'ca.crt')}`));
  t.match(r.out, new RegExp(`SHA-256: ${info.sha256}`));

  const ec = await runCli(['cert', 'issue', '--data', data, '--cn', 'kmip-ec', '--out', outDir, '--key-type', 'ec', '--days', '30']);
  t.equal(ec.exitCode, 0, ec.err);
  const ecInfo = certInfo(readFileSync(join(outDir, 'kmip-ec.crt'), 'utf8'));
  t.equal(ecInfo.keyDescription, 'EC P-256');
  t.ok(ecInfo.notAfter.getTime() - Date.now() < 30.1 * 86_400_000, '--days 30');

  const again = await runCli(['cert', 'issue', '--data', data, '--cn', 'vcenter', '--out', outDir]);
  t.equal(again.exitCode, 0);
  t.match(again.out, /replaced the existing/);
  t.not(readFileSync(join(outDir, 'vcenter.key'), 'utf8'), keyPem, 'a new key');

  const odd = await runCli(['cert', 'issue', '--data', data, '--cn', 'Ops Team/1', '--out', outDir]);
  t.equal(odd.exitCode, 0, odd.err);
  t.ok(existsSync(join(outDir, 'Ops_Team_1.crt')), 'unsafe file-name characters replaced');
  t.equal(certInfo(readFileSync(join(outDir, 'Ops_Team_1.crt'), 'utf8')).commonName, 'Ops Team/1', 'CN kept as given');

  if (!need(t, openssl())) return;
  t.match(
    ossl(['verify', '-purpose', 'sslclient', '-CAfile', join(outDir, 'ca.crt'), join(outDir, 'vcenter.crt'), join(outDir, 'kmip-ec.crt')]),
    /vcenter.crt: OK\n.*kmip-ec.crt: OK/,
  );
});

t.test('cert issue errors', async (t) => {
  const root = tempDir(t);
  const none = await runCli(['cert', 'issue', '--data', join(root, 'nothing'), '--cn', 'x', '--out', join(root, 'o')]);
  t.equal(none.exitCode, 1);
  t.match(none.err, /run `kmipd serve --data .*nothing` once first/);
  t.notOk(existsSync(join(root, 'o')), 'nothing written');
  t.notOk(existsSync(join(root, 'nothing')), 'no data folder created');

  const data = join(root, 'data');
  await ensureServerPki(data, {});
  const badType = await runCli(['cert', 'issue', '--data', data, '--cn', 'x', '--out', join(root, 'o'), '--key-type', 'dsa']);
  t.not(badType.exitCode, 0);
  t.match(badType.err, /Allowed choices are rsa, ec/);
  const badDays = await runCli(['cert', 'issue', '--data', data, '--cn', 'x', '--out', join(root, 'o'), '--days', 'ten']);
  t.not(badDays.exitCode, 0);
  t.match(badDays.err, /whole number of days/);
  const noCn = await runCli(['cert', 'issue', '--data', data, '--out', join(root, 'o')]);
  t.not(noCn.exitCode, 0);
  t.match(noCn.err, /--cn/);
  const longCn = await runCli(['cert', 'issue', '--data', data, '--cn', 'x'.repeat(70), '--out', join(root, 'o')]);
  t.equal(longCn.exitCode, 1);
  t.match(longCn.err, /at most 64/);
});


/**
 * Runs `node bin/kmipd ARGS` as a user would. tap adds its TypeScript and process-info hooks
 * to NODE_OPTIONS of every child process, so `env -u NODE_OPTIONS` drops them again.
 */
function kmipd(args: string[]): SpawnSyncReturns<string> {
  return spawnSync('env', ['-u', 'NODE_OPTIONS', process.execPath, join(REPO_ROOT, 'bin', 'kmipd'), ...args], {
    encoding: 'utf8',
  });
}

t.test('end to end: node bin/kmipd cert issue', async (t) => {
  const mainJs = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
  const certJs = join(REPO_ROOT, 'dist', 'src', 'cli', 'cert.js');
  const stale =
    !existsSync(mainJs) || !existsSync(certJs) || statSync(certJs).mtimeMs < newestTs(join(REPO_ROOT, 'src'));
  if (stale) {
    t.comment('building dist/ (npx tsc -p tsconfig.build.json)');
    const b = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, encoding: 'utf8' });
    // tsc still emits when other parts of the tree have type errors; the type check is a separate test step
    if (b.status !== 0) t.comment(`tsc exited ${b.status}: ${b.stdout.slice(0, 500)}`);
  }
  t.ok(existsSync(certJs), 'dist/src/cli/cert.js built');

  const root = tempDir(t);
  const data = join(root, 'data');
  await ensureServerPki(data, {});
  const outDir = join(root, 'out');
  const r = kmipd(['cert', 'issue', '--data', data, '--cn', 'vcenter', '--out', outDir, '--key-type', 'ec']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /Issued a client certificate for CN=vcenter \(EC P-256\)/);
  t.same(readdirSync(outDir).sort(), ['ca.crt', 'vcenter.crt', 'vcenter.key']);
  t.equal(mode(join(outDir, 'vcenter.key')), 0o600);
  t.same(certInfo(readFileSync(join(outDir, 'vcenter.crt'), 'utf8')).ekus, ['clientAuth']);

  const help = kmipd(['cert', 'issue', '--help']);
  t.equal(help.status, 0);
  for (const flag of ['--data <dir>', '--cn <name>', '--out <dir>', '--key-type <type>', '--days <n>']) t.match(help.stdout, flag);

  const missing = kmipd(['cert', 'issue', '--data', join(root, 'none'), '--cn', 'x', '--out', outDir]);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /kmipd serve --data/);
});
