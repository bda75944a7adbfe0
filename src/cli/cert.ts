/**
 * `kmipd cert issue`: issues a client certificate from the CA of a data folder.
 *
 *   kmipd cert issue --data DIR --cn NAME --out OUTDIR [--key-type rsa|ec] [--days N]
 *
 * writes OUTDIR/NAME.crt, OUTDIR/NAME.key (PKCS#8 PEM, mode 0600) and OUTDIR/ca.crt. The CA
 * must exist already: `kmipd serve --data DIR` creates it on its first run. (The command does
 * not create one itself, so that a mistyped --data cannot quietly start a second, unrelated CA.)
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  type CaMaterial,
  type IssuedCert,
  type KeyType,
  certInfo,
  ensurePrivateDir,
  issueClientCert,
  loadCa,
  writeFileAtomic,
} from '../pki/index.js';
import { DEFAULT_CLIENT_DAYS } from '../pki/issue.js';

export const DEFAULT_DATA_DIR = './kmipd-data';

interface IssueOptions {
  data: string;
  cn: string;
  out: string;
  keyType: KeyType;
  days?: number;
}

function parseDays(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number of days');
  const n = Number(value);
  if (n < 1 || n > 36_500) throw new InvalidArgumentError('expected 1 to 36500 days');
  return n;
}

/** A file name for a CN: characters other than letters, digits, '.', '_' and '-' become '_'. */
export function fileNameFor(cn: string): string {
  const name = cn.replace(/[^A-Za-z0-9._-]/g, '_');
  return /^\.*$/.test(name) ? `_${name}` : name;
}

async function issue(cmd: Command, opts: IssueOptions): Promise<void> {
  const out = (s: string): void => {
    const w = cmd.configureOutput().writeOut;
    if (w) w(s);
    else process.stdout.write(s);
  };
  const dataDir = opts.data;
  let ca: CaMaterial;
  try {
    ca = loadCa(dataDir);
  } catch (e) {
    cmd.error(`kmipd cert issue: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.noCa' });
  }
  let issued: IssuedCert;
  try {
    issued = await issueClientCert(ca, { commonName: opts.cn, keyType: opts.keyType, days: opts.days });
  } catch (e) {
    cmd.error(`kmipd cert issue: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.issue' });
  }
  const base = fileNameFor(opts.cn);
  const certPath = join(opts.out, `${base}.crt`);
  const keyPath = join(opts.out, `${base}.key`);
  const caPath = join(opts.out, 'ca.crt');
  const replaced = [certPath, keyPath].filter((p) => existsSync(p));
  try {
    ensurePrivateDir(opts.out);
    writeFileAtomic(keyPath, issued.keyPem, 0o600);
    writeFileAtomic(certPath, issued.certPem, 0o644);
    writeFileAtomic(caPath, ca.certPem, 0o644);
  } catch (e) {
    cmd.error(`kmipd cert issue: cannot write to ${opts.out}: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.write' });
  }
  const info = certInfo(issued.certPem);
  const lines = [
    `Issued a client certificate for ${info.subject} (${info.keyDescription}), valid until ${info.notAfter.toISOString()}`,
    `  certificate:    ${resolve(certPath)}`,
    `  private key:    ${resolve(keyPath)} (PKCS#8, mode 0600)`,
    `  CA certificate: ${resolve(caPath)}`,
    `  SHA-1:   ${info.sha1}`,
    `  SHA-256: ${info.sha256}`,
  ];
  if (replaced.length > 0) lines.push(`  (replaced the existing ${replaced.map((p) => resolve(p)).join(' and ')})`);
  out(lines.join('\n') + '\n');
}

export function register(program: Command): void {
  const cert = program.command('cert').description('certificates issued by the kmipd CA');
  cert
    .command('issue')
    .description(
      'issue a TLS client certificate (clientAuth) signed by the CA in the data folder; writes OUTDIR/NAME.crt, OUTDIR/NAME.key and OUTDIR/ca.crt',
    )
    .option('--data <dir>', 'kmipd data folder holding pki/ca.crt and pki/ca.key (made by `kmipd serve --data DIR`)', DEFAULT_DATA_DIR)
    .requiredOption('--cn <name>', 'the client identity: subject common name (CN); also the file name, with characters other than A-Z a-z 0-9 . _ - replaced by _')
    .requiredOption('--out <dir>', 'folder to write the certificate, key and CA certificate to (created if missing)')
    .addOption(new Option('--key-type <type>', 'key type: rsa (2048 bits) or ec (P-256)').choices(['rsa', 'ec']).default('rsa'))
    .option('--days <n>', `validity in days (default ${DEFAULT_CLIENT_DAYS}, never past the CA's end)`, parseDays)
    .action(async (opts: IssueOptions, cmd: Command) => {
      await issue(cmd, opts);
    });
}
