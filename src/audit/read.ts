/**
 * Reading the audit files: the rotated ones oldest first, then the live one, line by line in
 * bounded memory. Lines are decoded from their exact bytes (the chain covers the bytes).
 */
import { closeSync, existsSync, openSync, readSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { AUDIT_DIR, AUDIT_FILE, ROTATED_RE } from './types.js';

export interface AuditFile {
  /** File name inside DIR/audit. */
  name: string;
  path: string;
}

export function auditDir(dataDir: string): string {
  return join(dataDir, AUDIT_DIR);
}

/** Every audit file of `dataDir` in chain order: rotated files by their first seq, then audit.log. */
export function auditFiles(dataDir: string): AuditFile[] {
  const dir = auditDir(dataDir);
  if (!existsSync(dir)) return [];
  const rotated = readdirSync(dir)
    .filter((n) => ROTATED_RE.test(n))
    .sort();
  const names = existsSync(join(dir, AUDIT_FILE)) ? [...rotated, AUDIT_FILE] : rotated;
  return names.map((name) => ({ name, path: join(dir, name) }));
}

export interface RawLine {
  /** 1-based line number within its file. */
  line: number;
  text: string;
  /** False for a last line without its newline (a write that had not finished). */
  complete: boolean;
}

const CHUNK = 1 << 20;

/** The lines of `path`, read in 1 MiB chunks. */
export function* linesOf(path: string): Generator<RawLine> {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let carry: Buffer[] = [];
    let carryLen = 0;
    let line = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) break;
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, start);
        if (nl < 0 || nl >= n) break;
        const piece = buf.subarray(start, nl);
        const bytes = carryLen ? Buffer.concat([...carry, piece]) : piece;
        carry = [];
        carryLen = 0;
        yield { line: ++line, text: bytes.toString('utf8'), complete: true };
        start = nl + 1;
      }
      if (start < n) {
        carry.push(Buffer.from(buf.subarray(start, n)));
        carryLen += n - start;
      }
    }
    if (carryLen) yield { line: ++line, text: Buffer.concat(carry).toString('utf8'), complete: false };
  } finally {
    closeSync(fd);
  }
}
