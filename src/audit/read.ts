/**
 * Reading the audit files: the rotated ones oldest first, then the live one, line by line in
 * bounded memory. Lines are decoded from their exact bytes (the chain covers the bytes).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AUDIT_DIR, AUDIT_FILE, META_AUDIT_ANCHOR, ROTATED_RE } from './types.js';

export interface AuditFile {
  /** File name inside DIR/audit. */
  name: string;
  path: string;
}

export function auditDir(dataDir: string): string {
  return join(dataDir, AUDIT_DIR);
}

const TRAIL_ID_FILE = 'trail-id';

/**
 * The keystore meta key that holds this trail's newest anchor. Nodes sharing one keystore
 * (PostgreSQL) each keep their own trail, so each needs its own key: the host name and a random
 * id made with the trail (a data directory copied to start another node should leave out
 * `audit/`, which gives the copy a trail of its own). A trail made before the id existed uses
 * the plain key.
 */
export function metaAnchorKey(dataDir: string, create: boolean): string {
  const file = join(auditDir(dataDir), TRAIL_ID_FILE);
  if (!existsSync(file)) {
    if (!create) return META_AUDIT_ANCHOR;
    mkdirSync(auditDir(dataDir), { recursive: true, mode: 0o700 });
    writeFileSync(file, `${hostname()}.${randomBytes(8).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  }
  return `${META_AUDIT_ANCHOR}.${readFileSync(file, 'utf8').trim()}`;
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
