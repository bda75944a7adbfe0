/**
 * `kmipd trust`: the client certificates kmipd accepts besides those of its own CA.
 *
 *   kmipd trust add-ca   --data DIR FILE [--name NAME]   vCenter "Root CA Certificate" mode
 *   kmipd trust add-cert --data DIR FILE --name NAME     vCenter "vCenter Certificate" mode
 *   kmipd trust list     [--data DIR] [--json]
 *   kmipd trust remove   --data DIR NAME
 *
 * A running server applies every change to new connections within about two seconds, and
 * closes the open connections of a client that is no longer trusted.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  type TrustEntry,
  type TrustListItem,
  EXPIRY_WARNING_DAYS,
  addPinnedCert,
  addTrustedCa,
  expiryWarnings,
  listTrust,
  removeTrust,
} from '../pki/trust.js';
import { DEFAULT_DATA_DIR } from './cert.js';
import { writer } from './output.js';

const APPLIED = 'a running kmipd applies this to new connections within a few seconds, without a restart';

function fail(cmd: Command, what: string, e: unknown, code: string): never {
  cmd.error(`kmipd trust ${what}: ${(e as Error).message}`, { exitCode: 1, code });
}

function readCertFile(cmd: Command, what: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    fail(cmd, what, new Error(`cannot read ${file}: ${(e as Error).message}`), 'kmipd.read');
  }
}

function entryLines(e: TrustEntry): string[] {
  return [
    `  subject:  ${e.subject}`,
    `  issuer:   ${e.issuer}`,
    `  valid:    ${e.notBefore} to ${e.notAfter}`,
    `  SHA-256:  ${e.sha256}`,
  ];
}

function expiryNote(e: TrustEntry): string[] {
  const days = Math.floor((Date.parse(e.notAfter) - Date.now()) / 86_400_000);
  return days < EXPIRY_WARNING_DAYS ? [`  warning: it expires in ${days} days`] : [];
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

const KIND_LABEL: Record<TrustListItem['kind'], string> = { 'kmipd-ca': 'kmipd CA', ca: 'CA', pinned: 'pinned' };

function table(items: readonly TrustListItem[]): string {
  const rows = [
    ['NAME', 'KIND', 'IDENTITY', 'EXPIRES', 'DAYS', 'STATUS', 'SUBJECT'],
    ...items.map((i) => [
      i.name,
      KIND_LABEL[i.kind],
      i.kind === 'pinned' ? i.name : '(CN)',
      i.notAfter.toISOString(),
      String(i.daysLeft),
      i.status === 'ok' ? 'ok' : i.status.toUpperCase(),
      i.subject,
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : pad(cell, widths[c] ?? 0))).join('  ')).join('\n') + '\n';
}

function itemJson(i: TrustListItem): Record<string, unknown> {
  return {
    name: i.name,
    kind: i.kind,
    identity: i.kind === 'pinned' ? i.name : null,
    subject: i.subject,
    issuer: i.issuer,
    notBefore: i.notBefore.toISOString(),
    notAfter: i.notAfter.toISOString(),
    daysLeft: i.daysLeft,
    status: i.status,
    expiring: i.status !== 'ok',
    selfSigned: i.selfSigned,
    sha1: i.sha1,
    sha256: i.sha256,
    ...(i.addedAt !== undefined ? { addedAt: i.addedAt } : {}),
  };
}

export function register(program: Command): void {
  const trust = program
    .command('trust')
    .description("client certificates kmipd accepts besides its own CA's (vCenter: Make KMS trust vCenter)");

  trust
    .command('add-ca')
    .description("trust a CA (vCenter's root CA): every client certificate chaining to it is accepted, identified by its CN")
    .argument('<file>', 'the CA certificate, PEM or DER')
    .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
    .option('--name <name>', "a name for it in the trust store (default: the CA's CN)")
    .action((file: string, opts: { data: string; name?: string }, cmd: Command) => {
      const bytes = readCertFile(cmd, 'add-ca', file);
      let e: TrustEntry;
      try {
        e = addTrustedCa(opts.data, bytes, opts.name !== undefined ? { name: opts.name } : {});
      } catch (err) {
        fail(cmd, 'add-ca', err, 'kmipd.trust');
      }
      writer(cmd)(
        [
          `Trusted the CA ${JSON.stringify(e.name)}: client certificates it issued are accepted, identified by their CN.`,
          ...entryLines(e),
          ...expiryNote(e),
          `(${APPLIED})`,
          '',
        ].join('\n'),
      );
    });

  trust
    .command('add-cert')
    .description('pin one client certificate (vCenter Certificate mode; self-signed allowed): it is accepted as identity NAME')
    .argument('<file>', 'the client certificate, PEM or DER')
    .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
    .requiredOption('--name <name>', 'the identity of the client presenting this certificate (it owns the keys it creates)')
    .action((file: string, opts: { data: string; name: string }, cmd: Command) => {
      const bytes = readCertFile(cmd, 'add-cert', file);
      let e: TrustEntry;
      try {
        e = addPinnedCert(opts.data, bytes, { name: opts.name });
      } catch (err) {
        fail(cmd, 'add-cert', err, 'kmipd.trust');
      }
      writer(cmd)(
        [
          `Pinned the certificate as ${JSON.stringify(e.name)}: a client presenting exactly this certificate is accepted with identity ${JSON.stringify(e.name)}.`,
          ...entryLines(e),
          ...expiryNote(e),
          `(${APPLIED})`,
          '',
        ].join('\n'),
      );
    });

  trust
    .command('list')
    .description(`every trusted CA and pinned certificate with its expiry (those within ${EXPIRY_WARNING_DAYS} days flagged)`)
    .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
    .option('--json', 'JSON output')
    .action((opts: { data: string; json?: boolean }, cmd: Command) => {
      let items: TrustListItem[];
      try {
        items = listTrust(opts.data);
      } catch (err) {
        fail(cmd, 'list', err, 'kmipd.trust');
      }
      if (opts.json) {
        writer(cmd)(JSON.stringify(items.map(itemJson), null, 2) + '\n');
        return;
      }
      const warnings = expiryWarnings(items).map((w) => `warning: ${w}`);
      writer(cmd)(table(items) + (warnings.length ? warnings.join('\n') + '\n' : ''));
    });

  trust
    .command('remove')
    .description('remove a trusted CA or pinned certificate (open connections of its clients are closed)')
    .argument('<name>', 'its name, as `kmipd trust list` shows it')
    .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
    .action((name: string, opts: { data: string }, cmd: Command) => {
      let e: TrustEntry;
      try {
        e = removeTrust(opts.data, name);
      } catch (err) {
        fail(cmd, 'remove', err, 'kmipd.trust');
      }
      writer(cmd)(
        `Removed the ${e.kind === 'ca' ? 'trusted CA' : 'pinned certificate'} ${JSON.stringify(e.name)} (${e.subject}).\n(${APPLIED}; open connections of its clients are closed)\n`,
      );
    });
}
