/**
 * The canonical form of an audit record and its hash chain.
 *
 * A record is one line of JSON with its members in the fixed order of FIELD_ORDER, absent
 * members left out, no whitespace, strings as JSON.stringify writes them. `hash` comes last:
 *
 *   body  = the canonical JSON of every member except `hash`
 *   hash  = SHA-256( bytes(prev) || utf8(body) )       prev = the previous record's hash
 *   line  = body with `,"hash":"<hex>"` before its closing brace
 *
 * Reading re-serialises what it parsed and demands the very same bytes, so any edit (a value,
 * whitespace, member order, an extra member) is either a hash mismatch or a non-canonical line.
 */
import { createHash } from 'node:crypto';
import type { AuditKind, AuditRecord } from './types.js';

export const GENESIS = '0'.repeat(64);

/** Values longer than this (a client may name any uid) are cut, so a line stays small. */
export const MAX_VALUE_CHARS = 1024;

const FIELD_ORDER = [
  'seq',
  'time',
  'kind',
  'identity',
  'fingerprint',
  'address',
  'version',
  'operation',
  'object',
  'result',
  'reason',
  'onBehalfOf',
  'message',
  'master',
  'mac',
  'prev',
  'hash',
] as const;

type Field = (typeof FIELD_ORDER)[number];

const COMMON: readonly Field[] = ['seq', 'time', 'kind', 'prev', 'hash'];

/** Which members each kind must and may have. */
const SHAPES: Record<AuditKind, { required: readonly Field[]; optional: readonly Field[] }> = {
  kmip: { required: [...COMMON, 'identity', 'operation', 'result'], optional: ['fingerprint', 'address', 'version', 'object', 'reason', 'onBehalfOf', 'message'] },
  admin: { required: [...COMMON, 'identity', 'operation', 'result'], optional: ['address', 'object', 'reason'] },
  anchor: { required: [...COMMON, 'master', 'mac'], optional: [] },
  event: { required: [...COMMON, 'operation'], optional: ['reason'] },
};

const HEX64 = /^[0-9a-f]{64}$/;

/** A record without its hash, as built by the writer. */
export type RecordBody = Omit<AuditRecord, 'hash'>;

/** Cuts a value to MAX_VALUE_CHARS (marking the cut). */
export function clip(s: string): string {
  return s.length <= MAX_VALUE_CHARS ? s : `${s.slice(0, MAX_VALUE_CHARS)}…[${s.length - MAX_VALUE_CHARS} more]`;
}

/** `"name":` of each field, made once. */
const KEY_PREFIX: Readonly<Record<Field, string>> = Object.fromEntries(FIELD_ORDER.map((f) => [f, `${JSON.stringify(f)}:`])) as Record<Field, string>;

function serialize(r: Partial<AuditRecord>, withHash: boolean): string {
  let out = '';
  for (const f of FIELD_ORDER) {
    if (f === 'hash' && !withHash) continue;
    const v = r[f];
    if (v === undefined) continue;
    out += `${out.length === 0 ? '{' : ','}${KEY_PREFIX[f]}${JSON.stringify(v)}`;
  }
  return out.length === 0 ? '{}' : `${out}}`;
}

/** The canonical bytes of `r` without `hash` (what the hash, and an anchor's MAC, cover). */
export function canonicalBody(r: RecordBody | AuditRecord): string {
  return serialize(r, false);
}

export function chainHash(prev: string, body: string): string {
  return createHash('sha256').update(Buffer.from(prev, 'hex')).update(body, 'utf8').digest('hex');
}

/** Completes `body` with its hash; returns the record and its line (no newline). */
export function seal(body: RecordBody): { record: AuditRecord; line: string } {
  const text = canonicalBody(body);
  const hash = chainHash(body.prev, text);
  const record: AuditRecord = { ...body, hash };
  // `hash` is the last field: the line is the body with it appended (what serialize(record, true) gives).
  return { record, line: `${text.slice(0, -1)},${KEY_PREFIX.hash}${JSON.stringify(hash)}}` };
}

export type ParseResult = { ok: true; record: AuditRecord } | { ok: false; error: string; seq?: number };

/** Reads one line strictly: shape, types, canonical bytes. Does not check the chain. */
export function parseLine(line: string): ParseResult {
  if (line.length === 0) return { ok: false, error: 'an empty line' };
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { ok: false, error: 'not valid JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, error: 'not a JSON object' };
  const o = v as Record<string, unknown>;
  const seq = typeof o.seq === 'number' && Number.isSafeInteger(o.seq) && o.seq > 0 ? o.seq : undefined;
  const bad = (error: string): ParseResult => (seq === undefined ? { ok: false, error } : { ok: false, error, seq });
  if (seq === undefined) return bad('no valid "seq"');
  const kind = o.kind;
  if (kind !== 'kmip' && kind !== 'admin' && kind !== 'anchor' && kind !== 'event') return bad('no valid "kind"');
  const shape = SHAPES[kind];
  for (const k of Object.keys(o)) {
    if (!shape.required.includes(k as Field) && !shape.optional.includes(k as Field)) return bad(`an unexpected member "${k}"`);
  }
  for (const f of shape.required) if (o[f] === undefined) return bad(`no "${f}"`);
  for (const [k, val] of Object.entries(o)) {
    if (k === 'seq') continue;
    if (typeof val !== 'string') return bad(`"${k}" is not a string`);
  }
  if (!HEX64.test(o.prev as string) || !HEX64.test(o.hash as string)) return bad('"prev" or "hash" is not a SHA-256 in hex');
  const record = o as unknown as AuditRecord;
  if (serialize(record, true) !== line) return bad('not in canonical form');
  return { ok: true, record };
}

/** Whether `r`'s own hash matches its content and `prev` (it may still not follow its predecessor). */
export function selfConsistent(r: AuditRecord): boolean {
  return chainHash(r.prev, canonicalBody(r)) === r.hash;
}
