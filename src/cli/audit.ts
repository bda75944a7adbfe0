/**
 * `kmipd audit`: the audit trail of a data folder (src/audit).
 *
 *   kmipd audit verify --data DIR [--json]
 *       checks the whole hash chain, every anchor (with the folder's master key) and the newest
 *       anchor the keystore remembers; names the first record altered, removed or reordered.
 *       Exit 0: intact; 1: a bad record was found; 2: the check could not run.
 *   kmipd audit show --data DIR [--since T] [--identity X] [--object UID] [--json]
 *       the records, oldest first; --json prints one JSON record per line.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseSince, queryAudit, type AuditFilter, type ShownRecord } from '../audit/query.js';
import { verifyAuditTrail, type VerifyReport } from '../audit/verify.js';
import { MANIFEST } from '../server/datadir.js';
import { silentLogger } from '../server/log.js';
import { openServerState } from '../server/server.js';
import { DEFAULT_DATA_DIR } from './cert.js';
import { writer } from './output.js';

function requireDataDir(dataDir: string): void {
  if (!existsSync(join(dataDir, MANIFEST))) throw new Error(`no kmipd data folder at ${resolve(dataDir)} (no ${MANIFEST}); give --data`);
}

/** Verifies the trail of `dataDir` with its own master key and keystore. */
export async function verifyDataDir(dataDir: string): Promise<VerifyReport> {
  requireDataDir(dataDir);
  const state = await openServerState(dataDir, { log: silentLogger() });
  try {
    return await verifyAuditTrail({ dataDir: state.dir, master: state.master, meta: state.store });
  } finally {
    await state.close();
  }
}

export function reportText(r: VerifyReport, dir: string): string {
  const lines: string[] = [];
  const span = r.records > 0 ? ` (seq ${r.firstSeq} to ${r.lastSeq})` : '';
  const other = r.anchorsOtherKey > 0 ? `, ${r.anchorsOtherKey} under an earlier master key` : '';
  lines.push(`audit trail ${join(dir, 'audit')}: ${r.files.length} file(s), ${r.records} record(s)${span}`);
  lines.push(`anchors: ${r.anchors} (${r.anchorsVerified} verified with master key ${r.masterKeyId ?? '-'}${other}); keystore records anchor seq ${r.keystoreAnchorSeq ?? '-'}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  if (r.problem) {
    const p = r.problem;
    lines.push(`FAILED: first bad record: seq ${p.seq}, ${p.file} line ${p.line} (${p.kind})`);
    lines.push(`  ${p.message}`);
  } else {
    lines.push('OK: every record is in its place and unaltered, and every anchor verifies');
  }
  return lines.join('\n') + '\n';
}

const cell = (v: string | undefined): string => (v === undefined || v === '' ? '-' : v);

function showTable(rows: readonly ShownRecord[]): string {
  const out = [['SEQ', 'TIME', 'IDENTITY', 'ADDRESS', 'OPERATION', 'OBJECT', 'RESULT']];
  for (const { record: r } of rows) {
    if (r.kind === 'anchor') out.push([String(r.seq), r.time, '-', '-', 'anchor', '-', `master ${cell(r.master)}`]);
    else {
      const result = r.reason ? `${cell(r.result)} (${r.reason})` : cell(r.result);
      const op = r.kind === 'admin' ? `admin: ${cell(r.operation)}` : r.kind === 'event' ? `event: ${cell(r.operation)}` : r.message !== undefined ? `${cell(r.operation)} ${JSON.stringify(r.message)}` : cell(r.operation);
      const who = r.onBehalfOf !== undefined ? `${cell(r.identity)} (for ${r.onBehalfOf})` : cell(r.identity);
      out.push([String(r.seq), r.time, who, cell(r.address), op, cell(r.object), r.kind === 'event' ? cell(r.reason) : result]);
    }
  }
  const widths = out[0]!.map((_, c) => Math.max(...out.map((l) => (l[c] ?? '').length)));
  return out.map((l) => l.map((v, c) => (c === l.length - 1 ? v : v.padEnd(widths[c] ?? 0))).join('  ')).join('\n') + '\n';
}

export function register(program: Command): void {
  const audit = program.command('audit').description('the audit trail: who did what to which key, tamper-evident');

  audit
    .command('verify')
    .description('check the hash chain, every anchor and the keystore\'s newest anchor; names the first record altered, removed or reordered (exit 1)')
    .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
    .option('--json', 'the report as JSON')
    .action(async (opts: { data: string; json?: boolean }, cmd: Command) => {
      let r: VerifyReport;
      try {
        r = await verifyDataDir(opts.data);
      } catch (e) {
        cmd.error(`kmipd audit verify: ${(e as Error).message}`, { exitCode: 2, code: 'kmipd.audit' });
      }
      writer(cmd)(opts.json ? JSON.stringify(r, null, 2) + '\n' : reportText(r, resolve(opts.data)));
      if (!r.ok) {
        const p = r.problem;
        cmd.error(`kmipd audit verify: the audit trail is not intact: seq ${p?.seq} (${p?.file} line ${p?.line}) ${p?.kind}`, {
          exitCode: 1,
          code: 'kmipd.audit.tampered',
        });
      }
    });

  audit
    .command('show')
    .description('the records, oldest first: time, identity, address, operation, object, result')
    .option('--data <dir>', 'kmipd data folder', DEFAULT_DATA_DIR)
    .option('--since <time>', 'records at or after this time: ISO 8601 (2024-05-01T12:00:00Z) or an age (30m, 12h, 7d)')
    .option('--identity <x>', 'records of this client identity, or of the certificate whose SHA-256 fingerprint starts with these hex digits (8 or more)')
    .option('--object <uid>', 'records about this Unique Identifier')
    .option('--json', 'one JSON record per line, as stored')
    .action(async (opts: { data: string; since?: string; identity?: string; object?: string; json?: boolean }, cmd: Command) => {
      let rows: ShownRecord[];
      try {
        requireDataDir(opts.data);
        const f: AuditFilter = {};
        if (opts.since !== undefined) f.since = parseSince(opts.since);
        if (opts.identity !== undefined) f.identity = opts.identity;
        if (opts.object !== undefined) f.object = opts.object;
        rows = [...queryAudit(resolve(opts.data), f)];
      } catch (e) {
        cmd.error(`kmipd audit show: ${(e as Error).message}`, { exitCode: 2, code: 'kmipd.audit' });
      }
      const out = writer(cmd);
      if (opts.json) out(rows.map((r) => JSON.stringify(r.record) + '\n').join(''));
      else out(showTable(rows) + `${rows.length} record(s)\n`);
    });
}
