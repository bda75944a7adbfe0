/**
 * `kmipd cert`: certificates of the CA of a data folder.
 *
 *   kmipd cert issue --data DIR --cn NAME --out OUTDIR [--key-type rsa|ec] [--days N]
 *
 * writes OUTDIR/NAME.crt, OUTDIR/NAME.key (PKCS#8 PEM, mode 0600) and OUTDIR/ca.crt. The CA
 * must exist already: `kmipd serve --data DIR` creates it on its first run. (The command does
 * not create one itself, so that a mistyped --data cannot quietly start a second, unrelated CA.)
 *
 *   kmipd cert sign --data DIR --csr FILE --out FILE [--days N]    vCenter "New Certificate Signing Request"
 *   kmipd cert server --data DIR                                   the server certificate, for "Make vCenter Trust KMS"
 *   kmipd cert rotate-server --data DIR [--san NAME...] [--days N] a new server certificate
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
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
import { DEFAULT_CLIENT_DAYS, DEFAULT_SERVER_DAYS } from '../pki/issue.js';
import { signCsr } from '../pki/csr.js';
import { pemEncode } from '../pki/der.js';
import { readServerCert, rotateServerCert } from '../pki/rotate.js';
import { writer } from './output.js';

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

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

interface SignOptions {
  data: string;
  csr: string;
  out: string;
  days?: number;
}

function sign(cmd: Command, opts: SignOptions): void {
  const fail = (msg: string, code: string): never => cmd.error(`kmipd cert sign: ${msg}`, { exitCode: 1, code });
  let ca: CaMaterial;
  try {
    ca = loadCa(opts.data);
  } catch (e) {
    return fail((e as Error).message, 'kmipd.noCa');
  }
  let csrPem: string;
  try {
    const bytes = readFileSync(opts.csr);
    const text = bytes.toString('latin1');
    // PEM as vCenter gives it; DER is accepted too
    csrPem = text.includes('-----BEGIN') ? text : pemEncode('CERTIFICATE REQUEST', bytes);
  } catch (e) {
    return fail(`cannot read ${opts.csr}: ${(e as Error).message}`, 'kmipd.read');
  }
  let signed: { certPem: string; subject: string };
  try {
    signed = signCsr(ca, csrPem, opts.days !== undefined ? { days: opts.days } : {});
  } catch (e) {
    return fail((e as Error).message, 'kmipd.csr');
  }
  try {
    mkdirSync(dirname(resolve(opts.out)), { recursive: true, mode: 0o700 });
    writeFileAtomic(opts.out, signed.certPem, 0o644);
  } catch (e) {
    return fail(`cannot write ${opts.out}: ${(e as Error).message}`, 'kmipd.write');
  }
  const info = certInfo(signed.certPem);
  writer(cmd)(
    [
      `Signed the request: a client certificate for ${info.subject} (${info.keyDescription}), valid until ${info.notAfter.toISOString()}`,
      `  certificate:    ${resolve(opts.out)}`,
      `  identity:       ${info.commonName ?? '?'} (its CN)`,
      `  issuer:         ${info.issuer}`,
      `  CA certificate: ${resolve(join(opts.data, 'pki', 'ca.crt'))}`,
      `  SHA-1:   ${info.sha1}`,
      `  SHA-256: ${info.sha256}`,
      '',
    ].join('\n'),
  );
}

function showServer(cmd: Command, opts: { data: string }): void {
  let s: ReturnType<typeof readServerCert>;
  try {
    s = readServerCert(opts.data);
  } catch (e) {
    cmd.error(`kmipd cert server: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.noCert' });
  }
  const i = s.info;
  writer(cmd)(
    [
      `Server certificate ${resolve(s.path)}`,
      `  subject:  ${i.subject}`,
      `  issuer:   ${i.issuer}`,
      `  valid:    ${i.notBefore.toISOString()} to ${i.notAfter.toISOString()}`,
      `  key:      ${i.keyDescription}`,
      `  SANs:     ${i.sans.join(', ')}`,
      `  SHA-1:    ${i.sha1}`,
      `  SHA-256:  ${i.sha256}`,
      `  issuing CA certificate: ${resolve(s.caPath)}`,
      'vCenter shows this subject, issuer, validity and fingerprint when it asks to trust the KMS; compare before approving, or paste this PEM:',
      s.pem.trimEnd(),
      '',
    ].join('\n'),
  );
}

async function rotateServer(cmd: Command, opts: { data: string; san: string[]; days?: number }): Promise<void> {
  let r: Awaited<ReturnType<typeof rotateServerCert>>;
  try {
    const o: { sans: string[]; days?: number } = { sans: opts.san };
    if (opts.days !== undefined) o.days = opts.days;
    r = await rotateServerCert(opts.data, o);
  } catch (e) {
    cmd.error(`kmipd cert rotate-server: ${(e as Error).message}`, { exitCode: 1, code: 'kmipd.rotate' });
  }
  const i = r.info;
  writer(cmd)(
    [
      `Issued a new server certificate ${resolve(join(opts.data, 'pki', 'server.crt'))}`,
      `  subject:  ${i.subject}`,
      `  issuer:   ${i.issuer}`,
      `  valid:    ${i.notBefore.toISOString()} to ${i.notAfter.toISOString()}`,
      `  SANs:     ${i.sans.join(', ')}`,
      `  SHA-1:    ${i.sha1}`,
      `  SHA-256:  ${i.sha256}`,
      ...(r.previous ? [`  replaces SHA-256 ${r.previous.sha256} (kept as server.crt.prev / server.key.prev)`] : []),
      'vCenter must re-approve it: in the vSphere Client, open the key provider, select this KMS and run',
      '"Make vCenter Trust KMS" (compare the fingerprint above, or paste the PEM from `kmipd cert server`).',
      'Other clients that pinned the old certificate must trust the new one; clients that trust the kmipd CA need nothing.',
      'A running kmipd uses it for new connections within a few seconds, without a restart.',
      '',
    ].join('\n'),
  );
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
  cert
    .command('sign')
    .description(
      "sign a certificate signing request (vCenter's \"New Certificate Signing Request\"): a client certificate (clientAuth) keeping the request's subject; the identity is its CN",
    )
    .option('--data <dir>', 'kmipd data folder holding the CA', DEFAULT_DATA_DIR)
    .requiredOption('--csr <file>', 'the certificate signing request (PEM or DER)')
    .requiredOption('--out <file>', 'where to write the signed certificate (PEM)')
    .option('--days <n>', `validity in days (default ${DEFAULT_CLIENT_DAYS}, never past the CA's end)`, parseDays)
    .action((opts: SignOptions, cmd: Command) => {
      sign(cmd, opts);
    });
  cert
    .command('server')
    .description("show the server certificate (PEM, subject, issuer, validity, SHA-1 and SHA-256 fingerprints) for vCenter's \"Make vCenter Trust KMS\"")
    .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
    .action((opts: { data: string }, cmd: Command) => {
      showServer(cmd, opts);
    });
  cert
    .command('rotate-server')
    .description('issue a new server certificate (vCenter must then re-approve it); a running server uses it without a restart')
    .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
    .option('--san <name>', 'an extra subject alternative name (repeatable); the defaults and the current ones are kept', collect, [])
    .option('--days <n>', `validity in days (default ${DEFAULT_SERVER_DAYS}, never past the CA's end)`, parseDays)
    .action(async (opts: { data: string; san: string[]; days?: number }, cmd: Command) => {
      await rotateServer(cmd, opts);
    });
}
