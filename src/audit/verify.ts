/**
 * Verifying the audit trail: every file in chain order, every record, every anchor, and the
 * newest anchor the keystore remembers. Stops at the first bad record and names it by sequence
 * number, file and line.
 *
 * What each check catches:
 * - a record's own hash against its bytes: any edit of a record (its hash must be recomputed to
 *   hide it, which breaks the link to the next record, or all following ones must be rewritten);
 * - sequence numbers: a removed record (a gap) or records swapped or moved (out of order);
 * - each record's `prev` against the hash of the record before it: a record rewritten together
 *   with its own hash;
 * - anchors (HMAC under a key derived from the master key): a chain rewritten from some point
 *   with every hash recomputed; named by the first anchor that fails, with the range it covers;
 * - the keystore's `audit.anchor` (seq and hash of the newest anchor written): the tail removed
 *   from some anchor on, which leaves a shorter chain that is valid in itself.
 *
 * Records after the newest anchor are covered by the chain only: removing them leaves no trace
 * until the next anchor would have been written (at most `anchorEvery` records or the idle
 * interval). The report counts them.
 */
import type { MasterKeyProvider, MetaStore } from '../crypto/masterkey.js';
import { anchorValid, deriveAnchorKey } from './anchor.js';
import { parseMetaAnchor } from './log.js';
import { auditFiles, linesOf, metaAnchorKey, type AuditFile } from './read.js';
import { GENESIS, parseLine, selfConsistent } from './record.js';
import { META_AUDIT_ANCHOR } from './types.js';

export type ProblemKind = 'altered' | 'removed' | 'reordered' | 'truncated' | 'unauthenticated';

export interface AuditProblem {
  kind: ProblemKind;
  /** The sequence number of the first bad record (where it belongs, for removed ones). */
  seq: number;
  /** File name inside DIR/audit, and 1-based line. */
  file: string;
  line: number;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  files: string[];
  records: number;
  firstSeq?: number;
  lastSeq?: number;
  anchors: number;
  /** Anchors checked with the configured master key. */
  anchorsVerified: number;
  /** Anchors made under another master key id (before a master-key rotation). */
  anchorsOtherKey: number;
  lastAnchorSeq?: number;
  /** Records after the newest anchor (chained, not yet anchored). */
  unanchored: number;
  masterKeyId?: string;
  /** The newest anchor recorded in the keystore, when there is one. */
  keystoreAnchorSeq?: number;
  problem?: AuditProblem;
  notes: string[];
}

export interface VerifyOptions {
  dataDir: string;
  /** The data directory's master key: anchors are checked with the key derived from it. */
  master?: MasterKeyProvider;
  /** The keystore, holding the newest anchor's seq and hash. */
  meta?: MetaStore;
}

interface Pos {
  file: string;
  line: number;
}

const SEQ_AT_START = /^\{"seq":(\d+),/;

/** Where the record with sequence number `want` is, searching after `from` (in file `fi`). */
function findSeq(files: readonly AuditFile[], fi: number, fromLine: number, want: number): Pos | undefined {
  for (let i = fi; i < files.length; i++) {
    const f = files[i]!;
    for (const l of linesOf(f.path)) {
      if (i === fi && l.line <= fromLine) continue;
      const m = SEQ_AT_START.exec(l.text);
      if (m?.[1] !== undefined && Number(m[1]) === want) return { file: f.name, line: l.line };
    }
  }
  return undefined;
}

export async function verifyAuditTrail(opts: VerifyOptions): Promise<VerifyReport> {
  // The keystore first: a writer updates it after the anchor is on disk, never before.
  const metaAnchor = opts.meta ? parseMetaAnchor(await opts.meta.getMeta(metaAnchorKey(opts.dataDir, false))) : undefined;
  const key = opts.master ? await deriveAnchorKey(opts.master) : undefined;
  const files = auditFiles(opts.dataDir);
  const report: VerifyReport = {
    ok: false,
    files: files.map((f) => f.name),
    records: 0,
    anchors: 0,
    anchorsVerified: 0,
    anchorsOtherKey: 0,
    unanchored: 0,
    notes: [],
  };
  if (opts.master) report.masterKeyId = opts.master.keyId;
  if (metaAnchor) report.keystoreAnchorSeq = metaAnchor.seq;

  const fail = (kind: ProblemKind, seq: number, at: Pos, message: string): VerifyReport => {
    report.problem = { kind, seq, file: at.file, line: at.line, message };
    return report;
  };

  let expected = 1;
  let prevHash = GENESIS;
  let prev: (Pos & { seq: number }) | undefined;
  let end: Pos = { file: files[files.length - 1]?.name ?? 'audit.log', line: 0 };
  let lastVerifiedAnchor = 0;
  let pendingOtherKey: (Pos & { seq: number; master: string }) | undefined;
  let metaSeen: { hash: string; kind: string } | undefined;

  for (let fi = 0; fi < files.length; fi++) {
    const f = files[fi]!;
    end = { file: f.name, line: 0 };
    for (const l of linesOf(f.path)) {
      const at: Pos = { file: f.name, line: l.line };
      if (!l.complete) {
        if (fi === files.length - 1) {
          report.notes.push(`${f.name} line ${l.line}: an unfinished last record (being written, or cut short by a crash; never acknowledged); not part of the chain`);
          break;
        }
        return fail('altered', expected, at, `the last line of ${f.name} has no newline (the file was cut or altered)`);
      }
      end = at;
      const p = parseLine(l.text);
      if (!p.ok) {
        const said = p.seq !== undefined && p.seq !== expected ? ` (it says seq ${p.seq})` : '';
        return fail('altered', expected, at, `the record at ${f.name} line ${l.line} where seq ${expected} belongs was altered: ${p.error}${said}`);
      }
      const r = p.record;
      if (!selfConsistent(r)) {
        const said = r.seq !== expected ? ` (it says seq ${r.seq})` : '';
        return fail('altered', expected, at, `seq ${expected} at ${f.name} line ${l.line} was altered: its hash does not match its content${said}`);
      }
      if (r.seq !== expected) {
        if (r.seq > expected) {
          const later = findSeq(files, fi, l.line, expected);
          if (later) {
            return fail(
              'reordered',
              expected,
              at,
              `records are out of order: ${f.name} line ${l.line} holds seq ${r.seq} where seq ${expected} belongs; seq ${expected} is at ${later.file} line ${later.line}`,
            );
          }
          const range = r.seq - 1 > expected ? `seq ${expected} to ${r.seq - 1} were removed` : `seq ${expected} was removed`;
          const hint = l.line === 1 && fi === 0 && expected === 1 ? ' (the start of the log is missing: an older audit file or its first lines)' : '';
          return fail('removed', expected, at, `${range}: ${f.name} line ${l.line} holds seq ${r.seq}${hint}`);
        }
        return fail('reordered', expected, at, `records are out of order: ${f.name} line ${l.line} holds seq ${r.seq} again after seq ${expected - 1} (a record repeated or moved back)`);
      }
      if (r.prev !== prevHash) {
        if (prev) {
          return fail(
            'altered',
            prev.seq,
            prev,
            `seq ${prev.seq} at ${prev.file} line ${prev.line} was altered together with its hash: seq ${r.seq} (${f.name} line ${l.line}) does not chain from it`,
          );
        }
        return fail('altered', r.seq, at, `seq ${r.seq} does not start a chain (its "prev" is not the genesis value)`);
      }
      if (r.kind === 'anchor') {
        report.anchors++;
        report.lastAnchorSeq = r.seq;
        if (key && opts.master) {
          if (r.master === opts.master.keyId) {
            if (!anchorValid(key, r)) {
              return fail(
                'unauthenticated',
                r.seq,
                at,
                `the anchor seq ${r.seq} (${f.name} line ${l.line}) does not authenticate the chain: a record from seq ${lastVerifiedAnchor + 1} to ${r.seq - 1} was altered, removed or reordered with the hashes recomputed, or the anchor was forged`,
              );
            }
            report.anchorsVerified++;
            lastVerifiedAnchor = r.seq;
            pendingOtherKey = undefined;
          } else {
            report.anchorsOtherKey++;
            pendingOtherKey ??= { ...at, seq: r.seq, master: r.master ?? '?' };
          }
        }
      }
      if (metaAnchor && r.seq === metaAnchor.seq) metaSeen = { hash: r.hash, kind: r.kind };
      if (report.firstSeq === undefined) report.firstSeq = r.seq;
      report.lastSeq = r.seq;
      report.records++;
      prevHash = r.hash;
      prev = { ...at, seq: r.seq };
      expected++;
    }
  }

  const lastSeq = report.lastSeq ?? 0;
  if (metaAnchor) {
    if (lastSeq < metaAnchor.seq) {
      return fail(
        'truncated',
        lastSeq + 1,
        { file: end.file, line: end.line + 1 },
        `the tail of the log was removed: it ends at seq ${lastSeq} (${end.file} line ${end.line}), but the keystore records an anchor at seq ${metaAnchor.seq}; seq ${lastSeq + 1} onwards is missing`,
      );
    }
    if (!metaSeen || metaSeen.kind !== 'anchor' || metaSeen.hash !== metaAnchor.hash) {
      return fail(
        'altered',
        metaAnchor.seq,
        end,
        `seq ${metaAnchor.seq} is not the anchor the keystore records (hash ${metaAnchor.hash.slice(0, 16)}…): the log was replaced or rewritten`,
      );
    }
  }
  if (pendingOtherKey) {
    return fail(
      'unauthenticated',
      pendingOtherKey.seq,
      pendingOtherKey,
      `the anchor seq ${pendingOtherKey.seq} (${pendingOtherKey.file} line ${pendingOtherKey.line}) was made under master key ${pendingOtherKey.master}; the configured master key ${opts.master?.keyId ?? '?'} cannot check it, and no later anchor made with it covers the chain`,
    );
  }
  report.unanchored = lastSeq - (report.lastAnchorSeq ?? 0);
  if (files.length === 0) report.notes.push('no audit log yet');
  if (!key) report.notes.push('anchors were not checked (no master key given)');
  else if (report.records > 0 && report.anchors === 0) report.notes.push('no anchor yet: the chain is consistent but not yet authenticated by the master key');
  if (report.anchorsOtherKey > 0) report.notes.push(`${report.anchorsOtherKey} anchor(s) made under an earlier master key are covered by a later anchor under the current one`);
  if (report.unanchored > 0 && report.anchors > 0) {
    report.notes.push(`seq ${lastSeq - report.unanchored + 1} to ${lastSeq} follow the newest anchor: chained, not yet anchored (their removal would not be noticed)`);
  }
  if (metaAnchor === undefined && report.anchors > 0 && opts.meta) report.notes.push('the keystore records no anchor yet');
  report.ok = true;
  return report;
}
