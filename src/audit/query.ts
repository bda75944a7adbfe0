/**
 * Reading the audit trail for people: every record in chain order, filtered. Reads the files
 * only (no master key needed); `verifyAuditTrail` is what proves them.
 */
import { auditFiles, linesOf } from './read.js';
import type { AuditRecord } from './types.js';

export interface AuditFilter {
  /** Records at or after this time. */
  since?: Date;
  /** The client identity (exact), or a prefix of 8+ hex digits of its certificate fingerprint. */
  identity?: string;
  /** The object's Unique Identifier (exact). */
  object?: string;
}

export interface ShownRecord {
  record: AuditRecord;
  file: string;
  line: number;
}

/** `2024-05-01T12:00:00Z`, `2024-05-01`, or relative to `now`: `30m`, `12h`, `7d`, `90s`. */
export function parseSince(text: string, now: Date = new Date()): Date {
  const rel = /^(\d+)\s*([smhd])$/.exec(text.trim());
  if (rel) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now.getTime() - Number(rel[1]) * unit);
  }
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new RangeError(`--since wants an ISO 8601 time (2024-05-01T12:00:00Z) or an age (30m, 12h, 7d), not ${JSON.stringify(text)}`);
  return new Date(t);
}

function identityMatcher(want: string): (r: AuditRecord) => boolean {
  const hex = want.toLowerCase().replace(/:/g, '');
  const byFingerprint = /^[0-9a-f]{8,64}$/.test(hex);
  return (r) => r.identity === want || (byFingerprint && r.fingerprint !== undefined && r.fingerprint.startsWith(hex));
}

/** The records of `dataDir` that pass `f` (lines that are not records are skipped). */
export function* queryAudit(dataDir: string, f: AuditFilter = {}): Generator<ShownRecord> {
  const since = f.since?.getTime();
  const who = f.identity !== undefined ? identityMatcher(f.identity) : undefined;
  for (const file of auditFiles(dataDir)) {
    for (const l of linesOf(file.path)) {
      if (!l.complete) continue;
      let r: AuditRecord;
      try {
        r = JSON.parse(l.text) as AuditRecord;
      } catch {
        continue;
      }
      if (typeof r !== 'object' || r === null || typeof r.seq !== 'number') continue;
      if (since !== undefined && !(Date.parse(r.time) >= since)) continue;
      if (who && !who(r)) continue;
      if (f.object !== undefined && r.object !== f.object) continue;
      yield { record: r, file: file.name, line: l.line };
    }
  }
}
