/**
 * The runner's output: the version × profile table (passed/failed/skipped, counted in test
 * cases), the failures with their first difference, failure categories for planning, and every
 * skipped and out-of-scope file with its reason. Plain text for the terminal, Markdown for
 * conformance/REPORT.md; both end with the line `N passed, M failed, K skipped`.
 */
import type { CaseRecord, RunSummary } from './runner.js';
import { PROFILES, SOURCE_LABELS, VERSIONS, rowLabel, type Source } from './sets.js';

interface Cell {
  passed: number;
  failed: number;
  skipped: number;
}

const emptyCell = (): Cell => ({ passed: 0, failed: 0, skipped: 0 });

function add(c: Cell, r: CaseRecord): void {
  if (r.outcome === 'passed') c.passed++;
  else if (r.outcome === 'failed') c.failed++;
  else if (r.outcome === 'skipped') c.skipped++;
}

function cellText(c: Cell | undefined): string {
  if (!c || c.passed + c.failed + c.skipped === 0) return '-';
  return `${c.passed}/${c.failed}/${c.skipped}`;
}

/** Rows in profile order, mandatory before optional; columns the versions that have test cases. */
export function summaryTable(records: readonly CaseRecord[]): { header: string[]; rows: string[][] } {
  const counted = records.filter((r) => r.outcome !== 'out-of-scope');
  const versions = VERSIONS.filter((v) => counted.some((r) => r.info.version === v));
  const rowKeys: string[] = [];
  for (const p of PROFILES) {
    for (const req of ['M', 'O', 'TC'] as const) {
      const label = rowLabel({ profile: p.key, requirement: req });
      if (counted.some((r) => r.info.profile === p.key && r.info.requirement === req) && !rowKeys.includes(label)) rowKeys.push(label);
    }
  }
  const cells = new Map<string, Cell>();
  const key = (row: string, v: string) => `${row}\u0000${v}`;
  for (const r of counted) {
    const row = rowLabel(r.info);
    for (const k of [key(row, r.info.version), key(row, 'total'), key('Total', r.info.version), key('Total', 'total')]) {
      let c = cells.get(k);
      if (!c) cells.set(k, (c = emptyCell()));
      add(c, r);
    }
  }
  const header = ['Profile', ...versions, 'Total'];
  const rows = [...rowKeys, 'Total'].map((row) => [row, ...versions.map((v) => cellText(cells.get(key(row, v)))), cellText(cells.get(key(row, 'total')))]);
  return { header, rows };
}

function sourceTable(records: readonly CaseRecord[]): { header: string[]; rows: string[][] } {
  const sources = Object.keys(SOURCE_LABELS) as Source[];
  const rows = sources
    .map((s) => {
      const rs = records.filter((r) => r.info.source === s);
      const n = (o: CaseRecord['outcome']) => String(rs.filter((r) => r.outcome === o).length);
      return [SOURCE_LABELS[s], n('passed'), n('failed'), n('skipped'), n('out-of-scope')];
    })
    .filter((r) => r.slice(1).some((x) => x !== '0'));
  return { header: ['Set', 'passed', 'failed', 'skipped', 'out of scope'], rows };
}

function plainTable(t: { header: string[]; rows: string[][] }): string {
  const all = [t.header, ...t.rows];
  const widths = t.header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(t.header), widths.map((w) => '-'.repeat(w)).join('  '), ...t.rows.map(line)].join('\n');
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function mdTable(t: { header: string[]; rows: string[][] }): string {
  return [
    `| ${t.header.map(mdEscape).join(' | ')} |`,
    `| ${t.header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...t.rows.map((r) => `| ${r.map(mdEscape).join(' | ')} |`),
  ].join('\n');
}

export function finalLine(s: Pick<RunSummary, 'passed' | 'failed' | 'skipped'>): string {
  return `${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`;
}

/** The failure's category, for planning: the operation and what went wrong. */
export function category(r: CaseRecord): string {
  const f = r.result?.failure;
  if (!f) return 'unknown';
  const op = f.operation ?? '(no operation)';
  switch (f.kind) {
    case 'difference': {
      if (f.expectedStatus !== f.actualStatus || /ResultReason$/.test(f.differences[0]?.path ?? '')) {
        const got = `${f.actualStatus ?? '?'}${f.actualReason ? `/${f.actualReason}` : ''}`;
        const want = f.expectedStatus && f.expectedStatus !== 'Success' ? ` (expected ${f.expectedStatus}${f.expectedReason ? `/${f.expectedReason}` : ''})` : '';
        return `${op}: ${got}${want}`;
      }
      const d = f.differences[0];
      const where = d ? d.path.split('/').slice(-2).join('/').replace(/\[\d+\]/g, '') : '?';
      return `${op}: differs at ${where}`;
    }
    case 'test-file': {
      const m = /uses (\$[A-Z_]+)/.exec(f.detail);
      return `test file: ${m ? `unbound ${m[1]!.replace(/_\d+$/, '_n')}` : f.detail.slice(0, 60)}`;
    }
    case 'prerequisite':
      return `prerequisite failed: ${/^prerequisite (\S+)/.exec(f.detail)?.[1]?.replace(/-\d\d$/, '-*') ?? '?'}`;
    default:
      return `${op}: ${f.kind}`;
  }
}

function counts(keys: readonly string[]): [string, number][] {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return [...m].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

/** Operations answered Operation Not Supported, and in how many test cases that was the first failure. */
function unsupported(records: readonly CaseRecord[]): [string, number][] {
  return counts(
    records
      .filter((r) => r.outcome === 'failed' && r.result?.failure?.actualReason === 'OperationNotSupported')
      .map((r) => r.result!.failure!.operation ?? '?'),
  );
}

export function renderText(s: RunSummary, opts: { maxFailures?: number } = {}): string {
  const out: string[] = [];
  out.push(`KMIP conformance: ${s.target}; vectors ${s.vectorsDir}`);
  out.push('');
  out.push('passed/failed/skipped, counted in test cases:');
  out.push(plainTable(summaryTable(s.records)));
  out.push('');
  out.push(plainTable(sourceTable(s.records)));
  const failed = s.records.filter((r) => r.outcome === 'failed');
  if (failed.length > 0) {
    out.push('');
    out.push('Top failure categories (operation: what happened -> test cases):');
    for (const [k, n] of counts(failed.map(category)).slice(0, 15)) out.push(`  ${String(n).padStart(4)}  ${k}`);
    const max = opts.maxFailures ?? 25;
    out.push('');
    out.push(`Failures (first ${Math.min(max, failed.length)} of ${failed.length}; all in REPORT.md):`);
    for (const r of failed.slice(0, max)) {
      const f = r.result?.failure;
      out.push(`  ${r.info.id}  ${r.info.path}`);
      if (f) out.push(`      exchange ${f.exchange} (line ${f.line}) ${f.operation ?? ''}: ${f.detail}`);
    }
  }
  out.push('');
  out.push(`${s.outOfScope} files out of scope, each with its reason in REPORT.md; run in ${(s.durationMs / 1000).toFixed(1)} s`);
  out.push(finalLine(s));
  return out.join('\n');
}

export function renderMarkdown(s: RunSummary, meta: { command: string; date: Date; version: string }): string {
  const out: string[] = [];
  const failed = s.records.filter((r) => r.outcome === 'failed');
  const skipped = s.records.filter((r) => r.outcome === 'skipped');
  const oos = s.records.filter((r) => r.outcome === 'out-of-scope');
  out.push('# kmipd conformance report');
  out.push('');
  out.push(
    `Generated by \`${meta.command}\` on ${meta.date.toISOString().slice(0, 16).replace('T', ' ')} UTC against ${s.target} (kmipd ${meta.version}), ` +
      `from the OASIS XML test cases in the vectors folder (\`$KMIP_VECTORS\` or \`../shared/kmip-vectors\`; see its SOURCES.md). ` +
      `Each test case is replayed request by request over mutual TLS and each response compared with the expected one under the ` +
      `profiles' permitted test case variations (\`conformance/compare.ts\`). ${(s.durationMs / 1000).toFixed(1)} s.`,
  );
  out.push('');
  out.push('## Summary');
  out.push('');
  out.push('Cells are passed/failed/skipped, counted in test cases (files); "-" where a set has none.');
  out.push('');
  out.push(mdTable(summaryTable(s.records)));
  out.push('');
  out.push(mdTable(sourceTable(s.records)));
  out.push('');
  out.push(
    'The OVH set holds copies of the OASIS 1.3 and 1.4 profile files (the same messages, other whitespace), so those test cases count twice. ' +
      'The "Message encodings" rows replay the MSGENC test cases over TTLV: the HTTPS/JSON/XML transports themselves are not exercised.',
  );
  if (failed.length > 0) {
    out.push('');
    out.push('## Failure categories');
    out.push('');
    out.push('By the first failing exchange of each test case: its operation, and the result kmipd gave (or where the response differs).');
    out.push('');
    out.push(mdTable({ header: ['Test cases', 'Category'], rows: counts(failed.map(category)).map(([k, n]) => [String(n), k]) }));
    const uns = unsupported(s.records);
    if (uns.length > 0) {
      out.push('');
      out.push('### Operations answered Operation Not Supported');
      out.push('');
      out.push(mdTable({ header: ['Test cases', 'Operation'], rows: uns.map(([k, n]) => [String(n), k]) }));
    }
    out.push('');
    out.push('## Failures');
    out.push('');
    out.push(
      'Exchange k/n: the k-th of n request/response pairs, from 0 (messages 2k and 2k+1 of the file; the line is that of the request). ' +
        'The first difference: tag path, expected, actual.',
    );
    out.push('');
    out.push(
      mdTable({
        header: ['Test case', 'File', 'Exchange', 'Operation', 'First difference'],
        rows: failed.map((r) => {
          const f = r.result?.failure;
          const d = f?.differences[0];
          const diff = !f ? '' : d && f.kind !== 'prerequisite' ? `\`${d.path}\`: expected ${d.expected}; got ${d.actual}` : `${f.kind}: ${f.detail}`;
          return [r.info.id, r.info.path, f ? `${f.exchange}/${r.result!.exchanges} (line ${f.line})` : '', f?.operation ?? '', diff.length > 400 ? `${diff.slice(0, 397)}...` : diff];
        }),
      }),
    );
  }
  out.push('');
  out.push('## Skipped');
  out.push('');
  out.push('Only things kmipd deliberately does not offer (`conformance/skip.ts`).');
  out.push('');
  out.push(skipped.length === 0 ? 'None.' : mdTable({ header: ['Test case', 'File', 'Reason'], rows: skipped.map((r) => [r.info.id, r.info.path, r.reason ?? '']) }));
  out.push('');
  out.push('## Out of scope');
  out.push('');
  out.push('Files that are not server test cases for kmipd; not counted above.');
  out.push('');
  if (oos.length === 0) out.push('None.');
  else {
    const byReason = new Map<string, CaseRecord[]>();
    for (const r of oos) {
      const k = (r.reason ?? '').replace(/ \(.*\)$/, '');
      byReason.set(k, [...(byReason.get(k) ?? []), r]);
    }
    for (const [reason, rs] of byReason) {
      out.push(`- **${reason}** (${rs.length}):`);
      for (const r of rs) {
        const later = /\((.*)\)$/.exec(r.reason ?? '')?.[1];
        out.push(`  - ${r.info.path}${later && later !== reason ? ` → ${later}` : ''}`);
      }
    }
  }
  out.push('');
  out.push('## Permitted variations applied');
  out.push('');
  out.push(
    [
      '- Identifiers the server assigns (`$UNIQUE_IDENTIFIER_n` and the other `$…` placeholders bind at first sight, then must match and are substituted in later requests); Time Stamp; correlation values.',
      '- `$NOW`/`$NOW±n`: within the test case\'s run time (± the tolerance); a date-time the client never sent (Initial Date, Last Change Date, …) may differ.',
      '- Server-generated objects (Create, Create Key Pair, Re-key, Certify, Create Split Key, and what derives from them): key material, key format (when the request names none), digest, certificate, certificate issuer and serial number, and outputs under such keys.',
      '- Outputs of server randomness: ciphertext and IV when the server picks the IV, RSA encryption, ECDSA/DSA/PSS signatures, RNG Retrieve data. A literal value accepted this way stands for the server\'s: later requests that carry it get the server\'s value.',
      '- Result Message: ignored. Query: more operations and object types than expected, any vendor/server/extension/profile/capability information. Get Attributes with no names and Get Attribute List: extra attributes, and the reference server\'s own `x-` attributes may be missing.',
      '- Order: attributes in a list, Locate\'s identifiers, Get Attribute List\'s names. Discover Versions without a client list: the server may list more versions, the expected ones in the same order.',
      '- A request placeholder that no response bound takes the server\'s latest value of the same tag (some transcripts write `$MAC_DATA`, `$DATA_0`, `$IV_COUNTER_NONCE` in a request after a response that shows the value literally).',
      '- Attribute Index 0 equals an absent Attribute Index. Runs of spaces in text values of the 1.0-1.2 transcripts (a line-wrapping artifact of their extraction) count as one space.',
    ].join('\n'),
  );
  out.push('');
  out.push(finalLine(s));
  out.push('');
  return out.join('\n');
}
